//! Re-sealing through the cluster: the agent answers `ResealRequest` objects in its own
//! namespace by opening each value with its keys and sealing it again to its newest active key
//! and the escrow keys of its own configuration (`--escrow-recipient`). Plaintext never leaves
//! the agent; who may re-seal is whoever RBAC lets create ResealRequests there.
//!
//! A request never chooses the recipients: one that names any is refused. Were it honoured,
//! anyone allowed to re-seal could have any value sealed to a key of their own and open it.
//! Nor can a request move a value: each value opens only under the binding it was sealed with
//! (scope, namespace, name, key; checked under the age header MAC), and is sealed again under
//! that same binding.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::manifest::{SealedSecret as CoreSealed, Template};
use gitseal::{PublicKey, Scope};
use gitseal_api::{ResealItem, ResealRequest, ResealRequestStatus};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use rayon::prelude::*;

use crate::keys::KeyStore;
use crate::kube_error::kube_message;

pub struct Context {
    pub client: kube::Client,
    pub namespace: String,
    pub keys: KeyStore,
    /// Escrow keys every answer is also sealed to: from the agent's flags only.
    pub escrow: Vec<PublicKey>,
}

/// The escrow keys named by `--escrow-recipient` and `--escrow-recipients-file`; keys whose
/// private half is published (docs/FORMAT.md test keys, keys.example placeholders) are
/// refused. Errors name the flag, file and line, never the line's text.
pub fn escrow_recipients(keys: &[String], files: &[PathBuf]) -> Result<Vec<PublicKey>, String> {
    let usable = |k: PublicKey| k.check_usable().map(|()| k).map_err(|e| e.to_string());
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let key = k
            .trim()
            .parse::<PublicKey>()
            .map_err(|e| e.to_string())
            .and_then(usable)
            .map_err(|e| format!("--escrow-recipient #{}: {e}", i + 1))?;
        out.push(key);
    }
    for file in files {
        let what = format!("--escrow-recipients-file {}", file.display());
        let limit = gitseal::rules::MAX_RECIPIENTS_FILE_BYTES;
        let mut text = String::new();
        std::fs::File::open(file)
            .and_then(|f| f.take(limit as u64 + 1).read_to_string(&mut text))
            .map_err(|e| format!("{what}: {e}"))?;
        for key in
            gitseal::rules::parse_recipients_file(&text).map_err(|e| format!("{what}: {e}"))?
        {
            out.push(usable(key).map_err(|e| format!("{what}: {e}"))?);
        }
    }
    Ok(out)
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reseal::Context({})", self.namespace)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

fn reseal_item(
    i: usize,
    item: &ResealItem,
    ring: &gitseal::Keyring,
    recipients: &[PublicKey],
) -> Result<BTreeMap<String, String>, String> {
    let what = format!(
        "items[{i}] {}/{}",
        item.namespace.as_deref().unwrap_or("-"),
        item.name
    );
    let scope: Scope = match item.scope.as_deref() {
        None => Scope::Strict,
        Some(s) => s.parse().map_err(|e| format!("{what}: {e}"))?,
    };
    let mut encrypted_data = BTreeMap::new();
    for (k, v) in &item.encrypted_data {
        let ct = B64
            .decode(v.trim())
            .map_err(|_| format!("{what}: encryptedData.{k} is not valid base64"))?;
        encrypted_data.insert(k.clone(), ct);
    }
    let mut sealed = CoreSealed {
        name: item.name.clone(),
        namespace: item.namespace.clone(),
        scope,
        labels: Default::default(),
        annotations: Default::default(),
        encrypted_data,
        template: Template::default(),
    };
    gitseal::sealing::reseal(&mut sealed, ring, recipients).map_err(|e| format!("{what}: {e}"))?;
    Ok(sealed
        .encrypted_data
        .iter()
        .map(|(k, v)| (k.clone(), B64.encode(v)))
        .collect())
}

/// Why a request that names recipients is refused (its status says so).
pub const RECIPIENTS_REFUSED: &str = "spec.recipients is refused: the agent re-seals only to its own newest active key and the escrow keys its configuration names (--escrow-recipient), never to keys a request names; to seal to other keys, re-seal offline (gitseal reseal -i IDENTITY -r AGE1...)";

/// What the answer is sealed to: the newest active key, then the escrow keys.
fn recipients(rr: &ResealRequest, ctx: &Context) -> Result<Vec<PublicKey>, String> {
    if !rr.spec.recipients.is_empty() {
        return Err(RECIPIENTS_REFUSED.to_owned());
    }
    let newest = ctx
        .keys
        .snapshot()
        .newest_active()
        .ok_or_else(|| "the agent has no active key".to_owned())
        .and_then(|k| k.public_key.parse::<PublicKey>().map_err(|e| e.to_string()))?;
    Ok(std::iter::once(newest)
        .chain(ctx.escrow.iter().cloned())
        .collect())
}

fn answer(rr: &ResealRequest, ctx: &Context) -> ResealRequestStatus {
    let recipients = match recipients(rr, ctx) {
        Ok(r) => r,
        Err(error) => {
            return ResealRequestStatus {
                error: Some(error),
                ..Default::default()
            };
        }
    };
    let ring = ctx.keys.ring();
    // Items in parallel, and each item's values in parallel inside `reseal` (rayon's pool):
    // a request of many small SealedSecrets and one of a few large ones both use every core.
    let results: Result<Vec<_>, String> = rr
        .spec
        .items
        .par_iter()
        .enumerate()
        .map(|(i, item)| reseal_item(i, item, &ring, &recipients))
        .collect();
    match results {
        Ok(results) => ResealRequestStatus {
            results,
            error: None,
        },
        Err(error) => ResealRequestStatus {
            error: Some(error),
            ..Default::default()
        },
    }
}

async fn reconcile(rr: Arc<ResealRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Answered once; the requester reads the answer and deletes the request.
    if rr
        .status
        .as_ref()
        .is_some_and(|s| !s.results.is_empty() || s.error.is_some())
    {
        return Ok(Action::await_change());
    }
    ctx.keys.ready().await;
    // CPU work: on tokio's blocking pool, spread over rayon's.
    let status = {
        let (rr, ctx) = (rr.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || answer(&rr, &ctx))
            .await
            .unwrap_or_else(|e| ResealRequestStatus {
                error: Some(format!("the reseal task failed: {e}")),
                ..Default::default()
            })
    };
    tracing::info!(
        request = %rr.name_any(),
        items = rr.spec.items.len(),
        names_recipients = !rr.spec.recipients.is_empty(),
        ok = status.error.is_none(),
        "reseal request answered"
    );
    let api: Api<ResealRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    super::apply_status(&api, &rr.name_any(), &status)
        .await
        .map_err(|e| Error(kube_message(&e)))?;
    Ok(Action::await_change())
}

fn error_policy(_rr: Arc<ResealRequest>, _e: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(std::time::Duration::from_secs(5))
}

/// Answers ResealRequests in the agent's namespace until a shutdown signal.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<ResealRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let controller = Controller::new(api, watcher::Config::default());
    super::run("resealrequest", controller, reconcile, error_policy, ctx).await;
}
