//! The GitSync controller of `gitseal-agent run`: each GitSync gets its own pass on its own
//! interval, and its own status. Status is written (server-side apply, field manager
//! `gitseal-agent`) only when it changed, and Events only on change, so a pass over an
//! unchanged repository and cluster writes nothing.

mod source;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gitseal::manifest::ManifestLimits;
use gitseal_api::conditions::{READY, STALLED, condition, settle};
use gitseal_api::{GitSync, GitSyncStatus, Inventory};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::Mutex;

use crate::keys::{KeyStore, KeyUsage};
use crate::kube_error::kube_message;
use crate::serve::api_counters::{ApiCounters, counting_client};
use crate::serve::events::{event_recorder, publish};
use crate::serve::metrics::Metrics;
use crate::sync::pass::{PassError, SyncSpec, SyncState, run_pass};
use source::sync_spec;

/// A GitSync's namespace and name.
type SourceKey = (String, String);

/// What the agent's admin allows the GitSyncs it answers, whoever wrote them: the lockdown
/// flags of `gitseal-agent run`. A GitSync's own spec can narrow these, never widen them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// `--max-file-bytes` … `--max-pass-nodes`: what one render may read.
    pub limits: ManifestLimits,
    /// `--allow-local-sources`: `file://` URLs and local paths.
    pub allow_local_sources: bool,
    /// `--allow-remote-bases`: kustomize may fetch remote bases for GitSyncs that ask
    /// (`spec.allowRemoteBases`).
    pub allow_remote_bases: bool,
}

/// Who GitSyncs act as (see [`crate::sync::tenancy`]): the agent's namespace, and the
/// ServiceAccount `--default-service-account` names for GitSyncs outside it that name none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenancyPolicy {
    pub agent_namespace: String,
    pub default_service_account: Option<String>,
}

/// What the agent needs to act as a GitSync's ServiceAccount: its own configuration and
/// request counters, and one client per impersonated ServiceAccount (built once, reused).
struct Impersonation {
    config: kube::Config,
    counters: Arc<ApiCounters>,
    clients: Mutex<HashMap<String, kube::Client>>,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    /// The agent's own namespace (sealing keys live there).
    pub namespace: String,
    pub cache_dir: PathBuf,
    pub concurrency: usize,
    /// What the agent's admin allows every GitSync (`run`'s flags).
    pub policy: SourcePolicy,
    /// Who GitSyncs act as.
    pub tenancy: TenancyPolicy,
    impersonation: Option<Impersonation>,
    pub recorder: Recorder,
    /// The sealing keys, kept current by the sealing keys controller (`None`: read them each
    /// pass), and where to record which key each SealedSecret needs.
    pub keys: Option<(KeyStore, KeyUsage)>,
    states: Mutex<HashMap<SourceKey, Arc<Mutex<SyncState>>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Context({})", self.namespace)
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        metrics: Arc<Metrics>,
        namespace: String,
        cache_dir: PathBuf,
        concurrency: usize,
    ) -> Self {
        let recorder = event_recorder(&client);
        Context {
            client,
            metrics,
            tenancy: TenancyPolicy {
                agent_namespace: namespace.clone(),
                default_service_account: None,
            },
            impersonation: None,
            namespace,
            cache_dir,
            concurrency,
            policy: SourcePolicy::default(),
            recorder,
            keys: None,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Applies the admin's `policy` to every GitSync.
    pub fn with_policy(mut self, policy: SourcePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Lets passes run as a GitSync's ServiceAccount (impersonating it with `config`, the
    /// agent's own credentials, counting requests in `counters`), and names the default one
    /// for GitSyncs outside the agent's namespace that name none.
    pub fn with_impersonation(
        mut self,
        config: kube::Config,
        counters: Arc<ApiCounters>,
        default_service_account: Option<String>,
    ) -> Self {
        self.tenancy.default_service_account = default_service_account;
        self.impersonation = Some(Impersonation {
            config,
            counters,
            clients: Mutex::new(HashMap::new()),
        });
        self
    }

    /// The client a pass of `spec` sends its requests with: the agent's own, or one
    /// impersonating the GitSync's ServiceAccount (the API server adds its groups).
    async fn pass_client(&self, spec: &SyncSpec) -> Result<kube::Client, String> {
        let Some(user) = spec.tenancy.impersonate(&spec.namespace) else {
            return Ok(self.client.clone());
        };
        let Some(imp) = &self.impersonation else {
            return Err(format!(
                "cannot act as {user}: this agent was started without impersonation"
            ));
        };
        let mut clients = imp.clients.lock().await;
        if let Some(c) = clients.get(&user) {
            return Ok(c.clone());
        }
        let mut config = imp.config.clone();
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups = None;
        let client = counting_client(config, imp.counters.clone())
            .map_err(|e| format!("a client acting as {user}: {}", kube_message(&e)))?;
        clients.insert(user, client.clone());
        Ok(client)
    }

    /// Uses `keys` for every pass instead of listing the key Secrets each time, and records
    /// key usage in `usage`.
    pub fn with_keys(mut self, keys: KeyStore, usage: KeyUsage) -> Self {
        self.keys = Some((keys, usage));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GitSync {0}: {1}")]
    Spec(String, String),
    #[error("{0}")]
    Kube(String),
}

async fn write_status(ctx: &Context, gs: &GitSync, mut status: GitSyncStatus) -> Result<(), Error> {
    let old = gs.status.clone().unwrap_or_default();
    if settle(&mut status, &old) {
        return Ok(());
    }
    let api: Api<GitSync> =
        Api::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    super::apply_status(&api, &gs.name_any(), &status)
        .await
        .map_err(|e| Error::Kube(kube_message(&e)))?;
    Ok(())
}

/// An Event about `gs` (only ever on a change). The Recorder folds Events of the same type,
/// reason and action into one series that keeps its first note; a warning's note names what
/// failed (the file, field and rule of a refusal), so each distinct one gets its own action
/// (`Reconcile-` and a digest of the note) and shows as an Event of its own.
async fn event(ctx: &Context, gs: &GitSync, warning: bool, reason: &str, note: &str) {
    use sha2::Digest as _;
    let action = if warning {
        let digest = sha2::Sha256::digest(note.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("Reconcile-{hex}")
    } else {
        "Reconcile".to_owned()
    };
    publish(
        &ctx.recorder,
        &gs.object_ref(&()),
        warning,
        reason,
        &action,
        note,
    )
    .await;
}

async fn reconcile(gs: Arc<GitSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = (gs.namespace().unwrap_or_default(), gs.name_any());
    let generation = gs.metadata.generation;
    let old = gs.status.clone().unwrap_or_default();
    if gs.spec.suspend {
        let mut status = old.clone();
        status.conditions.retain(|c| c.type_ != READY);
        status.conditions.push(condition(
            READY,
            false,
            "Suspended",
            "suspended: no passes until resumed",
            generation,
        ));
        status.observed_generation = generation;
        write_status(&ctx, &gs, status).await?;
        return Ok(Action::await_change());
    }
    let prepared = match sync_spec(&ctx.client, &gs, &ctx.policy, &ctx.tenancy).await {
        Ok((spec, interval)) => ctx.pass_client(&spec).await.map(|c| (spec, interval, c)),
        Err(msg) => Err(msg),
    };
    let (spec, interval, pass_client) = match prepared {
        Ok(s) => s,
        Err(msg) => {
            let mut status = old.clone();
            status.conditions = vec![
                condition(READY, false, "InvalidSpec", &msg, generation),
                condition(STALLED, true, "InvalidSpec", &msg, generation),
            ];
            status.observed_generation = generation;
            status.last_error = Some(msg.clone());
            if old.last_error.as_deref() != Some(msg.as_str()) {
                event(&ctx, &gs, true, "InvalidSpec", &msg).await;
            }
            write_status(&ctx, &gs, status).await?;
            return Err(Error::Spec(format!("{}/{}", key.0, key.1), msg));
        }
    };
    let state = {
        let mut states = ctx.states.lock().await;
        states.entry(key.clone()).or_default().clone()
    };
    let mut state = state.lock().await;
    if state.inventory.is_empty()
        && let Some(inv) = &old.inventory
    {
        // After a restart the inventory comes back from status, so pruning still works.
        state.inventory = inv.entries.clone();
    }
    let ring = match &ctx.keys {
        Some((keys, _)) => {
            keys.ready().await;
            keys.ring()
        }
        None => crate::keys::store::load_ring(&ctx.client, &ctx.namespace)
            .await
            .map_err(|e| Error::Kube(kube_message(&e)))?,
    };
    ctx.metrics.sealing_keys.set(ring.len() as i64);
    let timer = std::time::Instant::now();
    let result = run_pass(
        &pass_client,
        &spec,
        &mut state,
        &ring,
        &ctx.cache_dir,
        ctx.concurrency,
    )
    .await;
    ctx.metrics
        .pass_seconds
        .observe(timer.elapsed().as_secs_f64());
    if let Err((_, PassError::Held { revision, wait })) = &result {
        // Reported when it failed; nothing new to say until the revision, spec or keys
        // change, which the next fetch (one interval on) sees.
        tracing::debug!(gitsync = %format!("{}/{}", key.0, key.1), %revision, retry_in = ?wait, "pass held back");
        return Ok(Action::requeue(interval.min(*wait)));
    }
    let mut status = old.clone();
    status.observed_generation = generation;
    match result {
        Ok(outcome) => {
            let changed = outcome.changed();
            ctx.metrics.pass(if changed { "ok" } else { "noop" });
            ctx.metrics
                .applied
                .inc_by(outcome.report.applied.len() as u64);
            ctx.metrics
                .pruned
                .inc_by(outcome.report.pruned.len() as u64);
            let msg = format!("Applied revision: {}", outcome.revision);
            status.conditions = vec![condition(
                READY,
                true,
                "ReconciliationSucceeded",
                &msg,
                generation,
            )];
            status.last_applied_revision = Some(outcome.revision.clone());
            status.last_attempted_revision = Some(outcome.revision.clone());
            status.inventory = Some(Inventory {
                entries: outcome.report.inventory.clone(),
            });
            status.last_error = None;
            if let Some((_, usage)) = &ctx.keys {
                usage
                    .record_pass(
                        &ctx.client,
                        &ctx.namespace,
                        (&spec.namespace, &spec.name),
                        &state.key_uses,
                    )
                    .await;
            }
            tracing::info!(
                gitsync = %format!("{}/{}", key.0, key.1),
                revision = %outcome.revision,
                applied = outcome.report.applied.len(),
                unchanged = outcome.report.unchanged,
                pruned = outcome.report.pruned.len(),
                "pass done"
            );
            if changed || old.last_error.is_some() {
                let note = format!(
                    "{}: {} applied, {} unchanged, {} pruned",
                    outcome.revision,
                    outcome.report.applied.len(),
                    outcome.report.unchanged,
                    outcome.report.pruned.len()
                );
                event(&ctx, &gs, false, "ReconciliationSucceeded", &note).await;
            }
        }
        Err((revision, e)) => {
            ctx.metrics.pass(e.kind());
            let msg = e.to_string();
            tracing::warn!(gitsync = %format!("{}/{}", key.0, key.1), error = %msg, kind = e.kind(), "pass failed");
            // A source that cannot be fetched may come back; anything else needs a change.
            let stalled = e.stalls();
            status.conditions = vec![condition(READY, false, e.reason(), &msg, generation)];
            if stalled {
                status
                    .conditions
                    .push(condition(STALLED, true, e.reason(), &msg, generation));
            }
            if revision.is_some() {
                status.last_attempted_revision = revision;
            }
            if old.last_error.as_deref() != Some(msg.as_str()) {
                event(&ctx, &gs, true, e.reason(), &msg).await;
            }
            status.last_error = Some(msg);
        }
    }
    let managed: usize = {
        let states = ctx.states.lock().await;
        let mut n = state.inventory.len();
        for (k, s) in states.iter() {
            if *k != key
                && let Ok(s) = s.try_lock()
            {
                n += s.inventory.len();
            }
        }
        n
    };
    ctx.metrics.managed_objects.set(managed as i64);
    drop(state);
    write_status(&ctx, &gs, status).await?;
    Ok(Action::requeue(interval))
}

/// Retried at the GitSync's own interval, at most 30 s: a spec error can come from an object
/// the GitSync does not watch (its `secretRef` Secret, not yet labelled as git credentials).
fn error_policy(gs: Arc<GitSync>, _e: &Error, _ctx: Arc<Context>) -> Action {
    let interval = gs
        .spec
        .interval
        .as_deref()
        .and_then(|s| humantime::parse_duration(s).ok())
        .unwrap_or(Duration::from_secs(60));
    Action::requeue(interval.clamp(Duration::from_secs(1), Duration::from_secs(30)))
}

/// Runs the GitSync controller until a shutdown signal; `watch_namespace` limits it to the
/// GitSyncs of one namespace.
pub async fn run(ctx: Arc<Context>, watch_namespace: Option<&str>) {
    let api: Api<GitSync> = super::scoped_api(&ctx.client, watch_namespace);
    let controller = Controller::new(api, watcher::Config::default());
    super::run("gitsync", controller, reconcile, error_policy, ctx).await;
}
