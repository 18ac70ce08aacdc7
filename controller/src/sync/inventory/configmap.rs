//! Where `gitseal-agent sync` keeps its inventory between runs (a ConfigMap in the agent's
//! namespace), so that `--once` runs in CI prune what left git. `run` keeps GitSyncs'
//! inventories in [`super::shards`].

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use gitseal_api::InventoryEntry;
use gitseal_api::names::{AGENT_FIELD_MANAGER, INVENTORY_CONFIGMAP_PREFIX, INVENTORY_KEY};

pub fn configmap_name(sync_name: &str) -> String {
    format!("{INVENTORY_CONFIGMAP_PREFIX}{sync_name}")
}

pub async fn load(
    client: &kube::Client,
    namespace: &str,
    sync_name: &str,
) -> Result<Vec<InventoryEntry>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = api.get_opt(&configmap_name(sync_name)).await? else {
        return Ok(Vec::new());
    };
    Ok(cm
        .data
        .and_then(|d| d.get(INVENTORY_KEY).cloned())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

pub async fn save(
    client: &kube::Client,
    namespace: &str,
    sync_name: &str,
    entries: &[InventoryEntry],
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = configmap_name(sync_name);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "gitseal-agent"}},
        "data": {INVENTORY_KEY: serde_json::to_string(entries).unwrap_or_default()},
    });
    api.patch(
        &name,
        &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// The `sync` command's ConfigMap as an [`InventoryStore`](super::InventoryStore).
pub struct ConfigMapStore {
    pub client: kube::Client,
    pub namespace: String,
    pub name: String,
}

impl super::InventoryStore for ConfigMapStore {
    async fn save(&mut self, entries: &[InventoryEntry]) -> Result<(), super::InventoryError> {
        match save(&self.client, &self.namespace, &self.name, entries).await {
            Ok(()) => Ok(()),
            // Bootstrap before the agent namespace exists: the pass goes on, as before; only
            // pruning by a later `sync` depends on this record.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!(
                    namespace = %self.namespace,
                    "inventory not saved: the namespace does not exist; a later `sync` cannot prune what this one applied"
                );
                Ok(())
            }
            Err(e) => Err(super::InventoryError::api(
                format!("ConfigMap {}", configmap_name(&self.name)),
                &e,
            )),
        }
    }
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfigMapStore({}/{})", self.namespace, self.name)
    }
}
