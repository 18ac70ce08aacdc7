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
//!
//! A request is bounded before anything is opened (items, values, bytes, and the least its
//! answer would take), the work runs on tokio's blocking pool, and each request is answered
//! exactly once: an answer too large for the object becomes an error in status, and an
//! answer whose write failed for another reason is written again, not recomputed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::manifest::{SealedSecret as CoreSealed, Template};
use gitseal::{PublicKey, Scope};
use gitseal_api::reseal_request::{
    MAX_RESEAL_ANSWER_BYTES, MAX_RESEAL_ITEMS, MAX_RESEAL_REQUEST_BYTES, MAX_RESEAL_VALUES,
    RESEAL_BYTES_PER_RECIPIENT, RESEAL_BYTES_PER_VALUE,
};
use gitseal_api::{ResealItem, ResealRequest, ResealRequestStatus};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use rayon::prelude::*;

use super::backoff::{Backoff, Retries};
use crate::keys::KeyStore;
use crate::kube_error::kube_message;
use crate::serve::http::Readiness;
use crate::serve::metrics::Metrics;

pub struct Context {
    pub client: kube::Client,
    pub namespace: String,
    pub keys: KeyStore,
    /// Escrow keys every answer is also sealed to: from the agent's flags only.
    pub escrow: Vec<PublicKey>,
    pub metrics: Option<Arc<Metrics>>,
    answered: Answered,
    retries: Retries,
}

impl Context {
    pub fn new(
        client: kube::Client,
        namespace: String,
        keys: KeyStore,
        escrow: Vec<PublicKey>,
    ) -> Self {
        Context {
            client,
            namespace,
            keys,
            escrow,
            metrics: None,
            answered: Answered::default(),
            retries: Retries::new(Backoff::TRANSIENT),
        }
    }

    /// Counts answers in `gitseal_reseal_answers_total`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
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

/// Why a request is refused before anything is opened: more than a request may hold, or an
/// answer that could not fit in the object (each value is sealed again to `recipients` keys).
fn refuse_oversized(rr: &ResealRequest, recipients: usize) -> Result<(), String> {
    let items = &rr.spec.items;
    if items.len() > MAX_RESEAL_ITEMS {
        return Err(format!(
            "{} items, more than the limit of {MAX_RESEAL_ITEMS} per ResealRequest (limit: items per request); \
             split it (gitseal reseal --cluster sends one SealedSecret per request)",
            items.len()
        ));
    }
    let values: usize = items.iter().map(|i| i.encrypted_data.len()).sum();
    if values > MAX_RESEAL_VALUES {
        return Err(format!(
            "{values} values, more than the limit of {MAX_RESEAL_VALUES} per ResealRequest (limit: values per request); split it"
        ));
    }
    let bytes: usize = items
        .iter()
        .flat_map(|i| i.encrypted_data.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if bytes > MAX_RESEAL_REQUEST_BYTES {
        return Err(format!(
            "{bytes} bytes of ciphertext, more than the limit of {} KiB per ResealRequest (limit: bytes per request); split it",
            MAX_RESEAL_REQUEST_BYTES >> 10
        ));
    }
    let least = values.saturating_mul(
        RESEAL_BYTES_PER_VALUE
            .saturating_add(recipients.saturating_mul(RESEAL_BYTES_PER_RECIPIENT)),
    );
    if least > MAX_RESEAL_ANSWER_BYTES {
        return Err(answer_too_large(least, true));
    }
    Ok(())
}

fn answer_too_large(bytes: usize, at_least: bool) -> String {
    format!(
        "the answer would be {}{bytes} bytes, more than the limit of {} KiB (limit: answer size; \
         request and answer must fit in one object); split the request: fewer values per request",
        if at_least { "at least " } else { "" },
        MAX_RESEAL_ANSWER_BYTES >> 10
    )
}

fn refused(error: String) -> ResealRequestStatus {
    ResealRequestStatus {
        error: Some(error),
        ..Default::default()
    }
}

/// An answer and its label in `gitseal_reseal_answers_total`: `ok`, `refused` (over a
/// limit), `error` (recipients named, a value that does not open), `too_large` (refused by
/// the API server), `unanswerable` (not even an error fits).
type Answer = (ResealRequestStatus, &'static str);

/// The answer to `rr`: new ciphertexts, or why there are none. CPU work: run it off the
/// async runtime.
fn answer(rr: &ResealRequest, ctx: &Context) -> Answer {
    let recipients = match recipients(rr, ctx) {
        Ok(r) => r,
        Err(error) => return (refused(error), "error"),
    };
    if let Err(e) = refuse_oversized(rr, recipients.len()) {
        return (refused(e), "refused");
    }
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
    let status = match results {
        Ok(results) => ResealRequestStatus {
            results,
            error: None,
        },
        Err(error) => return (refused(error), "error"),
    };
    let size = serde_json::to_vec(&status).map_or(usize::MAX, |v| v.len());
    if size > MAX_RESEAL_ANSWER_BYTES {
        return (refused(answer_too_large(size, false)), "refused");
    }
    (status, "ok")
}

/// Whether the API server refused a write for its size (it would never pass as it is).
fn too_large(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 413 || s.code == 422 || s.message.contains("too large"),
        _ => false,
    }
}

async fn reconcile(rr: Arc<ResealRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = rr.metadata.uid.clone().unwrap_or_default();
    // Answered once; the requester reads the answer and deletes the request.
    if rr
        .status
        .as_ref()
        .is_some_and(|s| !s.results.is_empty() || s.error.is_some())
        || ctx.answered.contains(&uid)
    {
        return Ok(Action::await_change());
    }
    // An answer whose write failed is written again, not computed again.
    let (status, label) = match ctx.answered.take_pending(&uid) {
        Some(answer) => answer,
        None => {
            ctx.keys.ready().await;
            // CPU work: on tokio's blocking pool, spread over rayon's.
            let (rr, ctx) = (rr.clone(), ctx.clone());
            tokio::task::spawn_blocking(move || answer(&rr, &ctx))
                .await
                .unwrap_or_else(|e| (refused(format!("the reseal task failed: {e}")), "error"))
        }
    };
    let name = rr.name_any();
    let api: Api<ResealRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let written = match super::apply_status(&api, &name, &status).await {
        Ok(_) => Ok(label),
        Err(e) if too_large(&e) => {
            // Never passes as it is: say so in place of the answer.
            let error = refused(format!(
                "the answer could not be written: {}; split the request",
                kube_message(&e)
            ));
            match super::apply_status(&api, &name, &error).await {
                Ok(_) => Ok("too_large"),
                Err(e2) if too_large(&e2) => {
                    // Not even an error fits (the request fills the object): give up on it.
                    tracing::warn!(request = %name, error = %kube_message(&e2), "reseal request cannot hold an answer; not answered");
                    Ok("unanswerable")
                }
                Err(e2) => Err(((error, "too_large"), e2)),
            }
        }
        Err(e) => Err(((status, label), e)),
    };
    match written {
        Ok(result) => {
            ctx.answered.insert(uid);
            if let Some(m) = &ctx.metrics {
                m.reseal(result);
            }
            tracing::info!(
                request = %name,
                items = rr.spec.items.len(),
                result,
                "reseal request answered"
            );
            Ok(Action::await_change())
        }
        Err((answer, e)) => {
            ctx.answered.keep_pending(uid, answer);
            Err(Error(format!(
                "writing the answer to {name}: {}",
                kube_message(&e)
            )))
        }
    }
}

/// Failed writes: retried with [`Backoff::TRANSIENT`].
fn error_policy(rr: Arc<ResealRequest>, _e: &Error, ctx: Arc<Context>) -> Action {
    let uid = rr.metadata.uid.as_deref().unwrap_or_default();
    Action::requeue(ctx.retries.failed(uid, 0))
}

/// Answers ResealRequests in the agent's namespace until dropped, at most `concurrency` at
/// once.
pub async fn run(ctx: Arc<Context>, concurrency: u16, readiness: &Readiness) {
    let api: Api<ResealRequest> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let controller = super::lean_controller(api, watcher::Config::default(), concurrency);
    super::run(
        "resealrequest",
        controller,
        reconcile,
        error_policy,
        ctx,
        || readiness.controller_synced(),
    )
    .await;
}

/// Requests answered lately (so one is never answered twice, even when a reconcile sees it
/// before the watch has its status), and answers computed but not yet written.
#[derive(Debug, Default)]
pub struct Answered {
    inner: std::sync::Mutex<AnsweredInner>,
}

#[derive(Debug, Default)]
struct AnsweredInner {
    order: std::collections::VecDeque<String>,
    set: std::collections::HashSet<String>,
    pending: std::collections::HashMap<String, Answer>,
}

/// Uids remembered; older requests are known answered from their status.
const REMEMBERED: usize = 4096;

impl Answered {
    fn lock(&self) -> std::sync::MutexGuard<'_, AnsweredInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn contains(&self, uid: &str) -> bool {
        self.lock().set.contains(uid)
    }
    fn insert(&self, uid: String) {
        let mut a = self.lock();
        a.pending.remove(&uid);
        if a.set.insert(uid.clone()) {
            a.order.push_back(uid);
        }
        while a.order.len() > REMEMBERED {
            if let Some(old) = a.order.pop_front() {
                a.set.remove(&old);
            }
        }
    }
    fn take_pending(&self, uid: &str) -> Option<Answer> {
        self.lock().pending.remove(uid)
    }
    fn keep_pending(&self, uid: String, answer: Answer) {
        let mut a = self.lock();
        if a.pending.len() >= REMEMBERED {
            a.pending.clear();
        }
        a.pending.insert(uid, answer);
    }
}
