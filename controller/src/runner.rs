//! `gitseal-agent run`: watches GitSync objects; each gets its own pass on its own interval,
//! and its own status. Status is written (server-side apply, field manager
//! `gitseal-agent`) only when it changed, and Events only on change, so a pass over an
//! unchanged repository and cluster writes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::Mutex;

use crate::apply::FIELD_MANAGER;
use crate::conditions::{condition, settle};
use crate::crd::{GitSync, GitSyncStatus, Inventory};
use crate::git::{GitAuth, GitRef, GitSource};
use crate::metrics::Metrics;
use crate::pass::{SyncSpec, SyncState, run_pass};

/// A GitSync's namespace and name.
type SourceKey = (String, String);

/// The agent's Event recorder (reporting controller `gitseal-agent`, instance = the pod).
pub fn event_recorder(client: &kube::Client) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: "gitseal-agent".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    )
}

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    /// The agent's own namespace (sealing keys live there).
    pub namespace: String,
    pub cache_dir: PathBuf,
    pub concurrency: usize,
    pub recorder: Recorder,
    /// The sealing keys, kept current by the key manager (`None`: read them each pass).
    pub keys: Option<crate::keys::KeyStore>,
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
            namespace,
            cache_dir,
            concurrency,
            recorder,
            keys: None,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Uses `keys` for every pass instead of listing the key Secrets each time.
    pub fn with_keys(mut self, keys: crate::keys::KeyStore) -> Self {
        self.keys = Some(keys);
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

fn duration(s: Option<&str>, default: Duration, field: &str) -> Result<Duration, String> {
    match s {
        None | Some("") => Ok(default),
        Some(s) => humantime::parse_duration(s).map_err(|e| format!("spec.{field} `{s}`: {e}")),
    }
}

/// The credentials named by `secretRef`, read at pass time (rotated credentials apply on
/// the next pass).
async fn auth(client: &kube::Client, ns: &str, gs: &GitSync) -> Result<GitAuth, String> {
    let Some(r) = &gs.spec.secret_ref else {
        return Ok(GitAuth::None);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = api
        .get(&r.name)
        .await
        .map_err(|e| format!("secretRef {}: {}", r.name, crate::apply::kube_message(&e)))?;
    let mut data = s.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| SecretString::from(String::from_utf8_lossy(&v.0).into_owned()))
    };
    let auth = if let Some(identity) = text("identity") {
        let known_hosts = data
            .get("known_hosts")
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| format!("secretRef {}: ssh `identity` needs `known_hosts`", r.name))?;
        GitAuth::Ssh {
            identity,
            known_hosts,
        }
    } else if let Some(token) = text("bearerToken") {
        GitAuth::Token(token)
    } else if let (Some(u), Some(password)) = (text("username"), text("password")) {
        use secrecy::ExposeSecret;
        GitAuth::Basic {
            username: u.expose_secret().to_owned(),
            password,
        }
    } else {
        return Err(format!(
            "secretRef {}: expected `username`+`password`, `bearerToken`, or `identity`+`known_hosts`",
            r.name
        ));
    };
    use zeroize::Zeroize;
    data.values_mut().for_each(|v| v.0.zeroize());
    Ok(auth)
}

fn git_ref(gs: &GitSync) -> Result<GitRef, String> {
    let r = gs.spec.git_ref.clone().unwrap_or_default();
    match (r.branch, r.tag, r.commit) {
        (None, None, None) => Ok(GitRef::Branch("main".into())),
        (Some(b), None, None) => Ok(GitRef::Branch(b)),
        (None, Some(t), None) => Ok(GitRef::Tag(t)),
        (None, None, Some(c)) => Ok(GitRef::Commit(c)),
        _ => Err("spec.ref: give exactly one of branch, tag, commit".into()),
    }
}

async fn sync_spec(ctx: &Context, gs: &GitSync) -> Result<(SyncSpec, Duration), String> {
    let ns = gs.namespace().unwrap_or_default();
    let interval = duration(
        gs.spec.interval.as_deref(),
        Duration::from_secs(60),
        "interval",
    )?;
    let timeout = duration(
        gs.spec.timeout.as_deref(),
        Duration::from_secs(120),
        "timeout",
    )?;
    let source = GitSource {
        url: gs.spec.url.clone(),
        reference: git_ref(gs)?,
        auth: auth(&ctx.client, &ns, gs).await?,
        timeout,
    };
    Ok((
        SyncSpec {
            namespace: ns,
            name: gs.name_any(),
            source,
            path: gs.spec.path.clone().unwrap_or_default(),
            timeout,
            prune: gs.spec.prune,
            allow_empty: gs.spec.allow_empty,
            allow_plaintext: gs.spec.allow_plaintext_secrets,
            target_namespace: gs.spec.target_namespace.clone(),
        },
        interval,
    ))
}

async fn write_status(ctx: &Context, gs: &GitSync, mut status: GitSyncStatus) -> Result<(), Error> {
    let old = gs.status.clone().unwrap_or_default();
    if settle(&mut status, &old) {
        return Ok(());
    }
    let api: Api<GitSync> =
        Api::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    let body = json!({"apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync", "status": status});
    api.patch_status(
        &gs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::Kube(crate::apply::kube_message(&e)))?;
    Ok(())
}

async fn event(ctx: &Context, gs: &GitSync, warning: bool, reason: &str, note: String) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &gs.object_ref(&())).await {
        tracing::warn!(error = %crate::apply::kube_message(&e), "could not publish event");
    }
}

async fn reconcile(gs: Arc<GitSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = (gs.namespace().unwrap_or_default(), gs.name_any());
    let generation = gs.metadata.generation;
    let old = gs.status.clone().unwrap_or_default();
    if gs.spec.suspend {
        let mut status = old.clone();
        status.conditions.retain(|c| c.type_ != "Ready");
        status.conditions.push(condition(
            "Ready",
            false,
            "Suspended",
            "suspended: no passes until resumed",
            generation,
        ));
        status.observed_generation = generation;
        write_status(&ctx, &gs, status).await?;
        return Ok(Action::await_change());
    }
    let (spec, interval) = match sync_spec(&ctx, &gs).await {
        Ok(s) => s,
        Err(msg) => {
            let mut status = old.clone();
            status.conditions = vec![
                condition("Ready", false, "InvalidSpec", &msg, generation),
                condition("Stalled", true, "InvalidSpec", &msg, generation),
            ];
            status.observed_generation = generation;
            status.last_error = Some(msg.clone());
            if old.last_error.as_deref() != Some(msg.as_str()) {
                event(&ctx, &gs, true, "InvalidSpec", msg.clone()).await;
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
        Some(keys) => {
            keys.ready().await;
            keys.ring()
        }
        None => crate::keys::load_ring(&ctx.client, &ctx.namespace)
            .await
            .map_err(|e| Error::Kube(crate::apply::kube_message(&e)))?,
    };
    ctx.metrics.sealing_keys.set(ring.len() as i64);
    let timer = std::time::Instant::now();
    let result = run_pass(
        &ctx.client,
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
                "Ready",
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
            if let Some(keys) = &ctx.keys {
                keys.record_pass(
                    &ctx.client,
                    &ctx.namespace,
                    &spec,
                    &ctx.cache_dir,
                    &outcome.revision,
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
                event(&ctx, &gs, false, "ReconciliationSucceeded", note).await;
            }
        }
        Err((revision, e)) => {
            ctx.metrics.pass(e.kind());
            let msg = e.to_string();
            tracing::warn!(gitsync = %format!("{}/{}", key.0, key.1), error = %msg, kind = e.kind(), "pass failed");
            // A source that cannot be fetched may come back; anything else needs a change.
            let stalled = !matches!(e, crate::pass::PassError::Fetch(_));
            status.conditions = vec![condition("Ready", false, e.reason(), &msg, generation)];
            if stalled {
                status
                    .conditions
                    .push(condition("Stalled", true, e.reason(), &msg, generation));
            }
            if revision.is_some() {
                status.last_attempted_revision = revision;
            }
            if old.last_error.as_deref() != Some(msg.as_str()) {
                event(&ctx, &gs, true, e.reason(), msg.clone()).await;
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

fn error_policy(_gs: Arc<GitSync>, _e: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

/// Runs the GitSync controller until a shutdown signal; `watch_namespace` limits it to the
/// GitSyncs of one namespace.
pub async fn run(ctx: Arc<Context>, watch_namespace: Option<&str>) {
    let api: Api<GitSync> = match watch_namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
}
