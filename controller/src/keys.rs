//! The agent's sealing keys: Secrets in its namespace labelled `gitseal.dev/sealing-key`
//! (`active` or `retired`), each holding one age identity under `identity`.

use gitseal::{Keyring, SecretKey};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use zeroize::Zeroize;

pub const KEY_LABEL: &str = "gitseal.dev/sealing-key";
pub const IDENTITY_KEY: &str = "identity";

/// Loads every sealing key of `namespace`. A key Secret that cannot be read is skipped
/// with a warning naming it (never its content), so one bad Secret cannot stop all passes.
pub async fn load_ring(client: &kube::Client, namespace: &str) -> Result<Keyring, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default().labels(KEY_LABEL)).await?;
    let mut ring = Keyring::new();
    for s in list.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        let mut data = s.data.unwrap_or_default();
        match data.get(IDENTITY_KEY) {
            None => {
                tracing::warn!(secret = %name, "sealing key Secret has no `identity` key; skipped")
            }
            Some(bytes) => match gitseal::keys::read_identity_file(&bytes.0[..]) {
                Ok(keys) => keys.into_iter().for_each(|k: SecretKey| ring.add(k)),
                Err(e) => {
                    tracing::warn!(secret = %name, error = %e, "sealing key Secret unreadable; skipped")
                }
            },
        }
        data.values_mut().for_each(|v| v.0.zeroize());
    }
    Ok(ring)
}
