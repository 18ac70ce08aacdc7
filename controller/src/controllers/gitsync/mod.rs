//! The GitSync controller of `gitseal-agent run`: each GitSync gets its own pass on its own
//! interval, and its own status. Status is written (server-side apply, field manager
//! `gitseal-agent`) only when it changed, and Events only on change, so a pass over an
//! unchanged repository and cluster writes nothing.
//!
//! What starts a pass ([`source::Due`]): the interval, a new `generation` (a spec change),
//! a new `reconcile.gitseal.dev/requestedAt` annotation, the API server coming back after
//! it was unreachable, or the retry of a transient failure (exponential backoff). Anything
//! else the watch delivers — notably the agent's own status writes — does not. A new
//! `requestedAt` also clears the backoff of a revision that failed in a way only a change
//! can fix: whoever asks for a pass gets an attempt (at most one per 5 s,
//! [`source::REQUEST_SPACING`]).
//!
//! Each GitSync carries the finalizer `gitseal.dev/gitsync`; [`deletion`] prunes or orphans
//! its objects before it goes.

mod deletion;
mod depends;
mod source;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gitseal::manifest::ManifestLimits;
use gitseal_api::conditions::{READY, STALLED, condition, settle};
use gitseal_api::names::RECONCILE_REQUESTED_ANNOTATION;
use gitseal_api::{GitSync, GitSyncStatus};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::Mutex;

use crate::keys::{KeyStore, KeyUsage};
use crate::kube_error::kube_message;
use crate::serve::api_counters::{ApiCounters, counted_client, counting_client};
use crate::serve::events::{Recorder, event_recorder, publish};
use crate::serve::http::Readiness;
use crate::serve::metrics::{Metrics, PassRecord};
use crate::sync::inventory::shards::ShardStore;
use crate::sync::inventory::summary;
use crate::sync::pass::{PassError, SyncState, run_pass};
use crate::sync::tenancy::Tenancy;
pub use source::tenancy;
use source::{Due, sync_spec};

/// What the agent keeps for one GitSync (by uid) while it leads; dropped when the GitSync is
/// finalized, and with the whole context when leadership ends.
#[derive(Debug, Default)]
struct Source {
    state: SyncState,
    /// The inventory store, read once per leadership (and again after a store error).
    store: Option<ShardStore>,
    due: Due,
}

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
    sources: Mutex<HashMap<String, Arc<Mutex<Source>>>>,
    /// Bumped each time the API server is reachable again: every GitSync gets a pass.
    api_back: AtomicU64,
    /// The controller's cache of GitSyncs (set when it starts): where dependencies are read.
    gitsyncs: std::sync::OnceLock<kube::runtime::reflector::Store<GitSync>>,
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
            sources: Mutex::new(HashMap::new()),
            api_back: AtomicU64::new(0),
            gitsyncs: std::sync::OnceLock::new(),
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

    /// The client a GitSync of `namespace` with `tenancy` acts with — every apply, prune and
    /// read of live objects of its passes, and the prune when it is deleted: the agent's own,
    /// or one impersonating the GitSync's ServiceAccount (the API server adds its groups).
    async fn pass_client(
        &self,
        tenancy: &Tenancy,
        namespace: &str,
    ) -> Result<kube::Client, String> {
        let Some(user) = tenancy.impersonate(namespace) else {
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

    async fn source(&self, uid: &str) -> Arc<Mutex<Source>> {
        self.sources
            .lock()
            .await
            .entry(uid.to_owned())
            .or_default()
            .clone()
    }

    async fn forget(&self, uid: &str) {
        self.sources.lock().await.remove(uid);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GitSync {0}: {1}")]
    Spec(String, String),
    #[error("{0}")]
    Kube(String),
}

/// Runs `f` under `after`; a timeout is a [`Error::Kube`] naming `what`.
async fn within<T>(
    after: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(after, f).await {
        Ok(r) => r.map_err(|e| Error::Kube(format!("{what}: {}", kube_message(&e)))),
        Err(_) => Err(Error::Kube(format!("{what}: no answer within {after:?}"))),
    }
}

async fn write_status(
    ctx: &Context,
    gs: &GitSync,
    mut status: GitSyncStatus,
    timeout: Duration,
) -> Result<(), Error> {
    let old = gs.status.clone().unwrap_or_default();
    if settle(&mut status, &old) {
        return Ok(());
    }
    let api: Api<GitSync> =
        Api::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    within(
        timeout,
        "status",
        super::apply_status(&api, &gs.name_any(), &status),
    )
    .await?;
    Ok(())
}

/// An Event about `gs` (only ever on a change). Each distinct note is an Event of its own
/// (`serve::events`), so a warning names what failed and a success the revision it applied.
async fn event(ctx: &Context, gs: &GitSync, warning: bool, reason: &str, note: &str) {
    publish(
        &ctx.recorder,
        &gs.object_ref(&()),
        warning,
        reason,
        "Reconcile",
        note,
    )
    .await;
}

/// How often a GitSync waiting for its dependsOn looks again (at most its interval).
const DEPENDENCY_RETRY: Duration = Duration::from_secs(5);

fn requested_at(gs: &GitSync) -> Option<String> {
    gs.annotations()
        .get(RECONCILE_REQUESTED_ANNOTATION)
        .cloned()
}

/// The status of a GitSync refused for its spec (`msg`): Ready=False and Stalled, reason
/// `InvalidSpec`; a pass request is answered by this refusal too (`gitseal reconcile gitsync
/// --wait` waits for it and reports the message). A Warning Event when the message is new.
async fn invalid_spec(
    ctx: &Context,
    gs: &GitSync,
    old: &GitSyncStatus,
    msg: &str,
    generation: Option<i64>,
    requested: Option<String>,
) -> GitSyncStatus {
    let mut status = old.clone();
    status.conditions = vec![
        condition(READY, false, "InvalidSpec", msg, generation),
        condition(STALLED, true, "InvalidSpec", msg, generation),
    ];
    status.observed_generation = generation;
    status.last_error = Some(msg.to_owned());
    status.last_handled_reconcile_at = requested.or(old.last_handled_reconcile_at.clone());
    if old.last_error.as_deref() != Some(msg) {
        event(ctx, gs, true, "InvalidSpec", msg).await;
    }
    status
}

fn ready_message(s: &GitSyncStatus) -> Option<&str> {
    s.conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.message.as_str())
}

async fn reconcile(gs: Arc<GitSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (gs_ns, gs_name) = (gs.namespace().unwrap_or_default(), gs.name_any());
    let key = format!("{gs_ns}/{gs_name}");
    let uid = gs.metadata.uid.clone().unwrap_or_default();
    let generation = gs.metadata.generation;
    let old = gs.status.clone().unwrap_or_default();
    let timeout = source::timeout(&gs);
    if gs.metadata.deletion_timestamp.is_some() {
        let action = deletion::finalize(&gs, &ctx, timeout).await?;
        ctx.forget(&uid).await;
        return Ok(action);
    }
    deletion::ensure_finalizer(&gs, &ctx, timeout).await?;
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
        ctx.metrics.sources.pass(
            &gs_ns,
            &gs_name,
            PassRecord {
                result: "suspended",
                seconds: 0.0,
                ready: false,
                objects: old.inventory.as_ref().map_or(0, |i| i.objects),
                applied_at: None,
                conflicts: None,
            },
        );
        write_status(&ctx, &gs, status, timeout).await?;
        return Ok(Action::await_change());
    }
    let source = ctx.source(&uid).await;
    let mut source = source.lock().await;
    let requested = requested_at(&gs);
    let api_back = ctx.api_back.load(Ordering::Relaxed);
    if let Some(wait) = source
        .due
        .not_yet(generation, requested.as_deref(), api_back)
    {
        // Woken by something that is no reason for a pass (e.g. our own status write).
        return Ok(Action::requeue(wait));
    }
    if source.due.newly_requested(requested.as_deref()) && source.state.retry.failures() > 0 {
        // Asked for a pass (a push webhook, `kubectl annotate`): attempted now, even if the
        // revision failed before and its backoff is not over — at most once per
        // REQUEST_SPACING, so requests cannot make a failing revision cost more than that.
        // A request that comes sooner stays unanswered until then.
        if let Err(wait) = source.due.admit_request(Instant::now()) {
            return Ok(Action::requeue(wait));
        }
        tracing::info!(gitsync = %key, "pass requested: the failure backoff is cleared");
        source.state.retry.succeeded();
    }
    let spec = match tokio::time::timeout(
        timeout,
        sync_spec(&ctx.client, &gs, &ctx.policy, &ctx.tenancy),
    )
    .await
    {
        Ok(spec) => spec,
        Err(_) => {
            let wait = source.due.failed(generation, requested.clone(), api_back);
            return Err(Error::Kube(format!(
                "{key}: reading its secretRef: no answer within {timeout:?} (retrying in {wait:?})"
            )));
        }
    };
    // The client the pass acts with: the agent's, or one impersonating the GitSync's
    // ServiceAccount (a failure to build it is reported like a spec error).
    let spec = match spec {
        Ok((spec, interval)) => ctx
            .pass_client(&spec.tenancy, &spec.namespace)
            .await
            .map(|c| (spec, interval, c)),
        Err(msg) => Err(msg),
    };
    let (spec, interval, pass_client) = match spec {
        Ok(s) => s,
        Err(msg) => {
            let status = invalid_spec(&ctx, &gs, &old, &msg, generation, requested.clone()).await;
            source
                .due
                // A spec error can come from an object the GitSync does not watch (its
                // `secretRef` Secret, not yet labelled as git credentials): look again at
                // its interval, at most 30 s.
                .done(
                    generation,
                    requested.clone(),
                    api_back,
                    interval_of(&gs).clamp(Duration::from_secs(1), Duration::from_secs(30)),
                );
            write_status(&ctx, &gs, status, timeout).await?;
            return Err(Error::Spec(key, msg));
        }
    };
    // dependsOn: no pass until every GitSync named is Ready; looked at again every
    // DEPENDENCY_RETRY (at most the interval) meanwhile.
    match depends::check(&ctx, &gs, &gs_ns).await {
        depends::Gate::Open => {}
        depends::Gate::Waiting(msg) => {
            let retry = DEPENDENCY_RETRY.min(interval);
            source
                .due
                .done(generation, requested.clone(), api_back, retry);
            let mut status = old.clone();
            status.conditions = vec![
                condition(READY, false, "DependencyNotReady", &msg, generation),
                condition(STALLED, false, "DependencyNotReady", &msg, generation),
            ];
            status.observed_generation = generation;
            status.last_handled_reconcile_at =
                requested.clone().or(old.last_handled_reconcile_at.clone());
            if ready_message(&old) != Some(msg.as_str()) {
                tracing::info!(gitsync = %key, why = %msg, "pass held: dependsOn");
                event(&ctx, &gs, false, "DependencyNotReady", &msg).await;
            }
            ctx.metrics.pass("dependency_not_ready");
            ctx.metrics.sources.pass(
                &gs_ns,
                &gs_name,
                PassRecord {
                    result: "dependency_not_ready",
                    seconds: 0.0,
                    ready: false,
                    objects: source.state.inventory.len(),
                    applied_at: None,
                    conflicts: None,
                },
            );
            write_status(&ctx, &gs, status, timeout).await?;
            return Ok(Action::requeue(retry));
        }
        depends::Gate::Invalid(msg) => {
            let status = invalid_spec(&ctx, &gs, &old, &msg, generation, requested.clone()).await;
            // Another GitSync's spec may end the cycle: look again at the interval, at
            // most 30 s.
            source.due.done(
                generation,
                requested.clone(),
                api_back,
                interval.clamp(Duration::from_secs(1), Duration::from_secs(30)),
            );
            write_status(&ctx, &gs, status, timeout).await?;
            return Err(Error::Spec(key, msg));
        }
    }
    if source.store.is_none() {
        // First pass of this leadership: what any earlier pass (of any replica) recorded.
        match tokio::time::timeout(timeout, ShardStore::load(&ctx.client, &gs)).await {
            Ok(Ok((store, entries))) => {
                source.state = SyncState {
                    inventory: entries,
                    ..SyncState::default()
                };
                source.store = Some(store);
            }
            Ok(Err(e)) => {
                let wait = source.due.failed(generation, requested.clone(), api_back);
                return Err(Error::Kube(format!("{key}: {e} (retrying in {wait:?})")));
            }
            Err(_) => {
                let wait = source.due.failed(generation, requested.clone(), api_back);
                return Err(Error::Kube(format!(
                    "{key}: reading the inventory: no answer within {timeout:?} (retrying in {wait:?})"
                )));
            }
        }
    }
    let ring = match &ctx.keys {
        Some((keys, _)) => {
            keys.ready().await;
            keys.ring()
        }
        None => {
            within(
                timeout,
                "sealing keys",
                crate::keys::store::load_ring(&ctx.client, &ctx.namespace),
            )
            .await?
        }
    };
    ctx.metrics.sealing_keys.set(ring.len() as i64);
    let timer = Instant::now();
    let Source { state, store, due } = &mut *source;
    let Some(store) = store.as_mut() else {
        return Err(Error::Kube(format!("{key}: inventory store missing")));
    };
    // This pass's own requests (other GitSyncs' passes run at the same time).
    let requests = Arc::new(ApiCounters::default());
    let result = run_pass(
        &counted_client(&pass_client, requests.clone()),
        &spec,
        state,
        &ring,
        &ctx.cache_dir,
        ctx.concurrency,
        store,
    )
    .await;
    let seconds = timer.elapsed().as_secs_f64();
    ctx.metrics.pass_seconds.observe(seconds);
    if let Err((_, PassError::Held { revision, wait })) = &result {
        // Reported when it failed; nothing new to say until the revision, spec or keys
        // change, which the next fetch (one interval on) sees.
        tracing::debug!(gitsync = %key, %revision, retry_in = ?wait, "pass held back");
        let next = interval.min(*wait);
        due.done(generation, requested.clone(), api_back, next);
        return Ok(Action::requeue(next));
    }
    let mut status = old.clone();
    status.observed_generation = generation;
    status.last_handled_reconcile_at = requested.clone().or(old.last_handled_reconcile_at.clone());
    let reload_inventory = matches!(&result, Err((_, PassError::Inventory(_))));
    let action = match result {
        Ok(outcome) => {
            due.done(generation, requested.clone(), api_back, interval);
            let changed = outcome.changed();
            ctx.metrics.pass(if changed { "ok" } else { "noop" });
            ctx.metrics
                .applied
                .inc_by(outcome.report.applied.len() as u64);
            ctx.metrics
                .pruned
                .inc_by(outcome.report.pruned.len() as u64);
            status.last_applied_revision = Some(outcome.revision.clone());
            status.last_attempted_revision = Some(outcome.revision.clone());
            status.last_error = None;
            let conflicts = &outcome.report.conflicts;
            if conflicts.is_empty() {
                let msg = format!("Applied revision: {}", outcome.revision);
                status.conditions = vec![condition(
                    READY,
                    true,
                    "ReconciliationSucceeded",
                    &msg,
                    generation,
                )];
            } else {
                let shown: Vec<String> = conflicts
                    .iter()
                    .take(5)
                    .map(|c| format!("{} is managed by GitSync {}", c.object, c.owner))
                    .collect();
                let more = conflicts.len().saturating_sub(shown.len());
                let msg = format!(
                    "{} object(s) not applied by GitSync {key}: {}{}; every other object of {} is applied",
                    conflicts.len(),
                    shown.join("; "),
                    if more > 0 {
                        format!("; and {more} more")
                    } else {
                        String::new()
                    },
                    outcome.revision,
                );
                status.conditions = vec![condition(
                    READY,
                    false,
                    "OwnershipConflict",
                    &msg,
                    generation,
                )];
                if ready_message(&old) != Some(msg.as_str()) {
                    tracing::warn!(gitsync = %key, conflicts = conflicts.len(), "objects managed by another GitSync were not applied");
                    event(&ctx, &gs, true, "OwnershipConflict", &msg).await;
                }
            }
            if let Some((_, usage)) = &ctx.keys {
                within(timeout, "key usage", async {
                    usage
                        .record_pass(
                            &ctx.client,
                            &ctx.namespace,
                            (&spec.namespace, &spec.name),
                            &state.key_uses,
                        )
                        .await;
                    Ok(())
                })
                .await?;
            }
            ctx.metrics.sources.pass(
                &gs_ns,
                &gs_name,
                PassRecord {
                    result: if changed { "ok" } else { "noop" },
                    seconds,
                    ready: true,
                    objects: outcome.report.inventory.len(),
                    applied_at: Some(unix_now()),
                    conflicts: Some(conflicts.len()),
                },
            );
            tracing::info!(
                gitsync = %key,
                revision = %outcome.revision,
                applied = outcome.report.applied.len(),
                unchanged = outcome.report.unchanged,
                pruned = outcome.report.pruned.len(),
                conflicts = conflicts.len(),
                api_reads = requests.reads(),
                api_writes = requests.writes(),
                millis = outcome.duration.as_millis() as u64,
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
            Action::requeue(interval)
        }
        Err((revision, e)) => {
            ctx.metrics.pass(e.kind());
            ctx.metrics.sources.pass(
                &gs_ns,
                &gs_name,
                PassRecord {
                    result: e.kind(),
                    seconds,
                    ready: false,
                    objects: state.inventory.len(),
                    applied_at: None,
                    conflicts: None,
                },
            );
            let msg = e.to_string();
            let transient = e.is_transient();
            let wait = if transient {
                due.failed(generation, requested.clone(), api_back)
            } else {
                due.done(generation, requested.clone(), api_back, interval);
                interval
            };
            tracing::warn!(
                gitsync = %key,
                error = %msg,
                kind = e.kind(),
                transient,
                retry_in = ?wait,
                api_reads = requests.reads(),
                api_writes = requests.writes(),
                "pass failed"
            );
            // Transient (the source or the API server unreachable, slow, failing): retried
            // with backoff. Anything else needs a change of the repository or the spec.
            status.conditions = vec![condition(READY, false, e.reason(), &msg, generation)];
            status
                .conditions
                .push(condition(STALLED, !transient, e.reason(), &msg, generation));
            if revision.is_some() {
                status.last_attempted_revision = revision;
            }
            if old.last_error.as_deref() != Some(msg.as_str()) {
                event(&ctx, &gs, true, e.reason(), &msg).await;
            }
            status.last_error = Some(msg);
            Action::requeue(wait)
        }
    };
    status.inventory = Some(summary(&state.inventory, store.shards()));
    let managed = state.inventory.len();
    if reload_inventory {
        // Someone else wrote the inventory: read it again before the next pass.
        source.store = None;
    }
    drop(source);
    let total = ctx.count_managed(managed, &uid).await;
    ctx.metrics.managed_objects.set(total as i64);
    write_status(&ctx, &gs, status, timeout).await?;
    Ok(action)
}

impl Context {
    /// Objects in every inventory (`mine` for `uid`, whose lock the caller released).
    async fn count_managed(&self, mine: usize, uid: &str) -> usize {
        let sources = self.sources.lock().await;
        let mut n = mine;
        for (k, s) in sources.iter() {
            if k != uid
                && let Ok(s) = s.try_lock()
            {
                n += s.state.inventory.len();
            }
        }
        n
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn interval_of(gs: &GitSync) -> Duration {
    gs.spec
        .interval
        .as_deref()
        .and_then(|s| humantime::parse_duration(s).ok())
        .unwrap_or(Duration::from_secs(60))
}

fn error_policy(gs: Arc<GitSync>, _e: &Error, _ctx: Arc<Context>) -> Action {
    // Errors here are failures to talk to the API server outside a pass (status, inventory,
    // finalizer): retry soon, the pass itself is gated by `Due`.
    Action::requeue(Duration::from_secs(2).min(interval_of(&gs)))
}

/// Runs the GitSync controller until dropped; `watch_namespace` limits it to the
/// GitSyncs of one namespace.
pub async fn run(ctx: Arc<Context>, watch_namespace: Option<&str>, readiness: &Readiness) {
    let api: Api<GitSync> = super::scoped_api(&ctx.client, watch_namespace);
    // Every GitSync gets a pass when the API server answers again after an outage.
    let back = {
        let ctx = ctx.clone();
        futures::stream::unfold(readiness.reachable(), move |mut rx| {
            let ctx = ctx.clone();
            async move {
                loop {
                    rx.changed().await.ok()?;
                    if *rx.borrow_and_update() {
                        ctx.api_back.fetch_add(1, Ordering::Relaxed);
                        return Some(((), rx));
                    }
                }
            }
        })
        .boxed()
    };
    let controller = Controller::new(api, watcher::Config::default());
    ctx.metrics.sources.follow(controller.store());
    let _ = ctx.gitsyncs.set(controller.store());
    let controller = controller.reconcile_all_on(back);
    super::run("gitsync", controller, reconcile, error_policy, ctx, || {
        readiness.controller_synced()
    })
    .await;
}
