//! The SealedSecret controller of `gitseal-agent run`: SealedSecret objects applied directly
//! (kubectl, Argo CD) are opened in memory into a Secret of the same name, which the agent
//! applies with server-side apply (field manager `gitseal-agent`) and owns through a
//! controller ownerReference, so deleting the SealedSecret garbage-collects the Secret.
//!
//! Writes happen only on change: the live Secret is read and compared with what it should
//! be (data, type, immutable, template labels and annotations, the ownerReference, and the
//! fields this manager owned before), and the status and Events are written only when they
//! differ from what is already there. A reconcile of an unchanged SealedSecret writes nothing.
//!
//! An existing Secret that this SealedSecret does not own is never taken over, unless it is
//! annotated `gitseal.dev/managed: "true"`: then the first SealedSecret of its name takes it
//! over, once, says so in an Event on both objects, and binds the annotation to its own uid.
//!
//! Whoever may create a SealedSecret may make it hostile (thousands of stanzas, huge values,
//! thousands of keys): the core's limits refuse such values before any decryption, the
//! decryption runs on tokio's blocking pool, and a failure only a change can fix is
//! reported once and retried after a backoff that doubles up to five minutes
//! ([`Backoff::PERMANENT`]) — at once when the object, its annotations or the sealing keys
//! change.

mod secret;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gitseal_api::conditions::{READY, STALLED, condition, settle};
use gitseal_api::names::{MANAGED_ANNOTATION, SEALED_SECRET_LABEL};
use gitseal_api::{SealedSecret, SealedSecretStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use zeroize::Zeroize;

use super::backoff::{Backoff, Retries, fingerprint};
use crate::keys::{KeyStore, KeyUsage, Use};
use crate::kube_error::kube_message;
use crate::serve::events::{Recorder, event_recorder, publish};
use crate::serve::http::Readiness;
use crate::serve::metrics::Metrics;
use secret::{
    Change, Failure, check_template, decide_and_write, desired, open, refuse_unowned, to_core,
};

/// Time between two reconciles of a SealedSecret that is up to date (a safety net; changes
/// to the SealedSecret or its Secret are seen at once through the watches).
const RESYNC: Duration = Duration::from_secs(3600);

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    /// The agent's own namespace (sealing keys live there).
    pub namespace: String,
    pub recorder: Recorder,
    /// The agent's always-current keys and where to record which key each SealedSecret
    /// needs; without them, keys are listed on each reconcile and usage is not recorded.
    pub keys: Option<(KeyStore, KeyUsage)>,
    pub metrics: Option<Arc<Metrics>>,
    /// Failures only a change can fix, by SealedSecret uid.
    held: Retries,
    /// Failed API calls, by SealedSecret uid.
    transient: Retries,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sealed::Context({})", self.namespace)
    }
}

impl Context {
    pub fn new(client: kube::Client, namespace: String) -> Self {
        let recorder = event_recorder(&client);
        Context {
            client,
            namespace,
            recorder,
            keys: None,
            metrics: None,
            held: Retries::new(Backoff::PERMANENT),
            transient: Retries::new(Backoff::TRANSIENT),
        }
    }

    /// Counts attempts in `gitseal_unseals_total`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The ids of the keys that open SealedSecrets now.
    async fn key_ids(&self) -> Vec<gitseal::KeyId> {
        match &self.keys {
            Some((store, _)) => {
                store.ready().await;
                store.ring().keys().map(|k| k.id()).collect()
            }
            // Read with each attempt: a change is seen there.
            None => Vec::new(),
        }
    }

    /// Uses the key store for keys and records which key opens each SealedSecret.
    pub fn with_keys(mut self, keys: KeyStore, usage: KeyUsage) -> Self {
        self.keys = Some((keys, usage));
        self
    }
}

/// Why a reconcile must be retried. Failures of the SealedSecret itself are not errors:
/// they are reported in its status and retried after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SealedSecret {object}: {message}")]
    Kube { object: String, message: String },
}

/// Makes the Secret what the SealedSecret opens to, writing only when it differs.
async fn sync_secret(ss: &Arc<SealedSecret>, ctx: &Context) -> Result<(Change, usize), Failure> {
    let name = ss.name_any();
    let ns = ss.namespace().unwrap_or_default();
    let uid = ss
        .metadata
        .uid
        .clone()
        .ok_or_else(|| Failure::new("InvalidSpec", "the SealedSecret has no uid yet"))?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut live = api
        .get_opt(&name)
        .await
        .map_err(|e| Failure::api(&format!("reading Secret {name}"), &e))?;
    let result = open_and_write(ss, ctx, &api, live.as_ref(), &uid).await;
    if let Some(data) = live.as_mut().and_then(|l| l.data.as_mut()) {
        data.values_mut().for_each(|v| v.0.zeroize());
    }
    result
}

async fn open_and_write(
    ss: &Arc<SealedSecret>,
    ctx: &Context,
    api: &Api<Secret>,
    live: Option<&Secret>,
    uid: &str,
) -> Result<(Change, usize), Failure> {
    let name = ss.name_any();
    // A Secret this object may not touch: refused before anything is opened.
    refuse_unowned(live, uid, &name)?;
    let ring = match &ctx.keys {
        Some((store, _)) => {
            store.ready().await;
            store.ring()
        }
        None => crate::keys::store::load_ring(&ctx.client, &ctx.namespace)
            .await
            .map_err(|e| Failure::api("reading the sealing keys", &e))?,
    };
    // Reading and opening the values is CPU work: off the async runtime.
    let (core, opened) = {
        let ss = ss.clone();
        tokio::task::spawn_blocking(move || {
            let core = to_core(&ss)?;
            check_template(&core)?;
            let opened = open(&core, &ring)?;
            Ok((core, opened))
        })
        .await
        .unwrap_or_else(|e| {
            Err(Failure::new(
                "DecryptFailed",
                format!("the task failed: {e}"),
            ))
        })?
    };
    let mut want = desired(ss, opened, uid);
    if let Some((_, usage)) = &ctx.keys {
        // Which key this object needs, for `gitseal keys list` and `keys retire`; written
        // only when it changes.
        let used = Use::of(&core);
        let object = used.object.clone();
        if let Err(e) = usage
            .record(
                &ctx.client,
                &ctx.namespace,
                &format!("sealedsecret:{object}"),
                &[used],
            )
            .await
        {
            tracing::warn!(object = %object, error = %kube_message(&e), "could not record key usage");
        }
    }
    let keys = want.data.len();
    decide_and_write(api, live, &mut want, uid, &name)
        .await
        .map(|c| (c, keys))
}

async fn write_status(
    ctx: &Context,
    ss: &SealedSecret,
    mut status: SealedSecretStatus,
) -> Result<bool, Error> {
    let old = ss.status.clone().unwrap_or_default();
    if settle(&mut status, &old) {
        return Ok(false);
    }
    let ns = ss.namespace().unwrap_or_default();
    let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &ns);
    super::apply_status(&api, &ss.name_any(), &status)
        .await
        .map_err(|e| Error::Kube {
            object: format!("{ns}/{}", ss.name_any()),
            message: format!("writing status: {}", kube_message(&e)),
        })?;
    Ok(true)
}

async fn event(
    ctx: &Context,
    ss: &SealedSecret,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    publish(
        &ctx.recorder,
        &ss.object_ref(&()),
        warning,
        reason,
        action,
        note,
    )
    .await;
}

/// Says, on the SealedSecret and on the Secret, that an existing Secret was taken over.
async fn took_over(ctx: &Context, ss: &SealedSecret, ns: &str, name: &str, keys: usize) {
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    tracing::info!(sealedsecret = %format!("{ns}/{name}"), secret = %name, uid, keys, "took over an existing Secret annotated gitseal.dev/managed=true");
    let note = format!(
        "existing Secret {name} (annotated {MANAGED_ANNOTATION}=true) taken over with {keys} key(s); the annotation now holds this SealedSecret's uid {uid}, so no other SealedSecret can take it over"
    );
    event(ctx, ss, false, "TookOver", "TakeOver", &note).await;
    let secret = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        namespace: Some(ns.to_owned()),
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let note = format!(
        "taken over by SealedSecret {ns}/{name} (uid {uid}) because it was annotated {MANAGED_ANNOTATION}=true; the annotation is now bound to that SealedSecret"
    );
    publish(
        &ctx.recorder,
        &secret,
        false,
        "TakenOver",
        "TakeOver",
        &note,
    )
    .await;
}

async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = ss.metadata.uid.clone().unwrap_or_default();
    if ss.metadata.deletion_timestamp.is_some() {
        // Its Secret goes with it (garbage collection): nothing to open or recreate.
        ctx.held.forget(&uid);
        ctx.transient.forget(&uid);
        return Ok(Action::await_change());
    }
    // What an attempt depends on: the spec (generation), the annotations (the scope) and the
    // keys. Until one changes, a failure only a change can fix is not tried again before
    // its backoff is over — however often the watches wake this object.
    let empty = BTreeMap::new();
    let tried = fingerprint((
        ss.metadata.generation,
        ss.metadata.annotations.as_ref().unwrap_or(&empty),
        ctx.key_ids().await,
    ));
    if let Some(wait) = ctx.held.waiting(&uid, tried) {
        return Ok(Action::requeue(wait));
    }
    let name = ss.name_any();
    let ns = ss.namespace().unwrap_or_default();
    let object = format!("{ns}/{name}");
    let generation = ss.metadata.generation;
    let old = ss.status.clone().unwrap_or_default();
    let old_ready = old.conditions.iter().find(|c| c.type_ == READY);
    let mut status = SealedSecretStatus {
        observed_generation: generation,
        ..old.clone()
    };
    match sync_secret(&ss, &ctx).await {
        Ok((change, keys)) => {
            ctx.held.forget(&uid);
            ctx.transient.forget(&uid);
            if let Some(m) = &ctx.metrics {
                m.unseal("ok");
            }
            let message = format!("Secret {name} holds the {keys} unsealed key(s)");
            status.conditions = vec![condition(READY, true, "Unsealed", &message, generation)];
            if change == Change::TakenOver {
                took_over(&ctx, &ss, &ns, &name, keys).await;
            } else if change != Change::Unchanged {
                let (verb, action) = match change {
                    Change::Created => ("created", "Create"),
                    Change::Recreated => ("recreated", "Recreate"),
                    Change::Updated | Change::Unchanged | Change::TakenOver => {
                        ("updated", "Update")
                    }
                };
                tracing::info!(sealedsecret = %object, secret = %name, keys, action = verb, "unsealed");
                event(
                    &ctx,
                    &ss,
                    false,
                    "Unsealed",
                    action,
                    &format!("Secret {name} {verb} with {keys} key(s)"),
                )
                .await;
            }
            let wrote_status = write_status(&ctx, &ss, status).await?;
            tracing::debug!(
                sealedsecret = %object,
                wrote_secret = change != Change::Unchanged,
                wrote_status,
                "sealedsecret reconciled"
            );
            Ok(Action::requeue(RESYNC))
        }
        Err(f) => {
            if let Some(m) = &ctx.metrics {
                m.unseal(f.reason);
            }
            tracing::warn!(sealedsecret = %object, reason = f.reason, error = %f.message, "cannot unseal");
            status.conditions = vec![condition(READY, false, f.reason, &f.message, generation)];
            if f.stalled {
                status
                    .conditions
                    .push(condition(STALLED, true, f.reason, &f.message, generation));
            }
            let shown: String = f.message.chars().take(1000).collect();
            let repeated = old_ready
                .is_some_and(|c| c.status == "False" && c.reason == f.reason && c.message == shown);
            if !repeated {
                event(&ctx, &ss, true, f.reason, "Unseal", &f.message).await;
            }
            let wrote_status = write_status(&ctx, &ss, status).await?;
            tracing::debug!(
                sealedsecret = %object,
                wrote_secret = false,
                wrote_status,
                "sealedsecret reconciled"
            );
            if f.transient {
                return Err(Error::Kube {
                    object,
                    message: f.message,
                });
            }
            // A Secret in the way is fixed on the Secret (deleted, or annotated), which this
            // object's watch does not see: its check is cheap, so it is retried sooner.
            let wait = if f.reason == "SecretExists" {
                ctx.transient.failed(&uid, tried)
            } else {
                ctx.held.failed(&uid, tried)
            };
            tracing::debug!(sealedsecret = %object, retry_in = ?wait, "backing off");
            Ok(Action::requeue(wait))
        }
    }
}

/// API calls that failed: retried with [`Backoff::TRANSIENT`].
fn error_policy(ss: Arc<SealedSecret>, _e: &Error, ctx: Arc<Context>) -> Action {
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    Action::requeue(ctx.transient.failed(uid, 0))
}

/// Runs the SealedSecret controller until dropped; `watch_namespace` limits it to
/// the SealedSecrets (and Secrets) of one namespace; at most `concurrency` reconciles run at
/// once.
///
/// What it keeps in memory: the SealedSecrets (without managedFields) and nothing of any
/// Secret: Secrets are watched as metadata only (`owns`), and the one a reconcile needs is
/// read then and dropped (its values overwritten) when the reconcile ends.
pub async fn run(
    ctx: Arc<Context>,
    watch_namespace: Option<&str>,
    concurrency: u16,
    readiness: &Readiness,
) {
    let sealed: Api<SealedSecret> = super::scoped_api(&ctx.client, watch_namespace);
    let secrets: Api<Secret> = super::scoped_api(&ctx.client, watch_namespace);
    // `owns` watches metadata only; the label keeps other Secrets out of the stream.
    let mut controller = super::lean_controller(sealed, watcher::Config::default(), concurrency)
        .owns(
            secrets,
            watcher::Config::default().labels(SEALED_SECRET_LABEL),
        );
    if let Some((store, _)) = &ctx.keys {
        // A key added or restored may open what failed: every SealedSecret is tried again at
        // once (its fingerprint changed, so no backoff holds it), without waiting out its
        // backoff. Keys change rarely; an object already up to date writes nothing.
        controller = controller.reconcile_all_on(store.changes());
    }
    super::run(
        "sealedsecret",
        controller,
        reconcile,
        error_policy,
        ctx,
        || readiness.controller_synced(),
    )
    .await;
}
