//! The Receiver controller (with `--webhook-addr`): for each `Receiver`, reads the token from
//! the Secret it names and routes `/hook/<id>` to it ([`Hooks`]), and says in its status
//! where the git host must send pushes.
//!
//! Whoever may create a Receiver in a namespace can name a Secret of that namespace only, and
//! only one labelled `gitseal.dev/receiver-token: "true"` (the label is the Secret owner's
//! consent: the agent reads no other Secret for a Receiver), and a GitSync of that namespace
//! only. The token never leaves the agent: the status shows a SHA-256 of it mixed with the
//! Receiver's namespace and name, never the token, and is written only when it changes.
//!
//! Token Secrets and GitSyncs are watched as metadata only; a change to one reconciles the
//! Receivers that name it.
//!
//! It runs on every replica, so that a push reaching the standby (a Service spreads them over
//! both) is answered too: the webhook endpoint only annotates the GitSync, which the leader's
//! GitSync controller acts on. Only the leader writes Receiver status; a new leader
//! reconciles every Receiver when it takes over.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gitseal_api::conditions::{READY, STALLED, condition, settle};
use gitseal_api::names::{RECEIVER_TOKEN_KEY, RECEIVER_TOKEN_LABEL, WEBHOOK_PATH_PREFIX};
use gitseal_api::{GitSync, Receiver, ReceiverStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use secrecy::SecretSlice;
use tokio::sync::watch;
use zeroize::Zeroize;

use crate::kube_error::kube_message;
use crate::serve::http::Readiness;
use crate::serve::webhook::hooks::{Hook, Hooks};

/// Shortest token accepted: the status shows a hash of it, which must not be guessable.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Time between two reconciles of a Receiver (a safety net: changes are watched).
const RESYNC: Duration = Duration::from_secs(600);

pub struct Context {
    pub client: kube::Client,
    pub hooks: Hooks,
    /// The Receivers, as the controller caches them.
    pub receivers: Store<Receiver>,
    /// Whether this replica leads (only the leader writes status).
    pub leading: watch::Receiver<bool>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "receiver::Context({:?})", self.hooks)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Receiver {object}: {message}")]
pub struct Error {
    object: String,
    message: String,
}

/// Why a Receiver does not route: a condition reason and a message without secret bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NotReady {
    reason: &'static str,
    message: String,
    /// Only a change (to the Receiver, its Secret or GitSync) can fix it.
    stalled: bool,
}

fn not_ready(reason: &'static str, message: String) -> NotReady {
    NotReady {
        reason,
        message,
        stalled: true,
    }
}

/// The token of the Secret `namespace/name`, if that Secret opted in and holds a usable one.
async fn read_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<SecretSlice<u8>, NotReady> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = api.get_opt(name).await.map_err(|e| NotReady {
        reason: "ApiError",
        message: format!("reading Secret {name}: {}", kube_message(&e)),
        stalled: false,
    })?;
    let Some(mut secret) = found else {
        return Err(not_ready(
            "SecretNotFound",
            format!("Secret {name} not found in namespace {namespace} (spec.secretRef)"),
        ));
    };
    let opted_in = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(RECEIVER_TOKEN_LABEL))
        .is_some_and(|v| v == "true");
    let token = secret
        .data
        .as_mut()
        .and_then(|d| d.remove(RECEIVER_TOKEN_KEY))
        .map(|mut b| SecretSlice::from(std::mem::take(&mut b.0)));
    if let Some(d) = secret.data.as_mut() {
        d.values_mut().for_each(|v| v.0.zeroize());
    }
    if !opted_in {
        return Err(not_ready(
            "SecretNotOptedIn",
            format!(
                "Secret {name} is not labelled {RECEIVER_TOKEN_LABEL}: \"true\"; label it to let Receivers of this namespace use it as their token"
            ),
        ));
    }
    let Some(token) = token else {
        return Err(not_ready(
            "TokenMissing",
            format!("Secret {name} has no key `{RECEIVER_TOKEN_KEY}`"),
        ));
    };
    if secrecy::ExposeSecret::expose_secret(&token).len() < MIN_TOKEN_BYTES {
        return Err(not_ready(
            "TokenTooShort",
            format!(
                "the `{RECEIVER_TOKEN_KEY}` of Secret {name} is shorter than {MIN_TOKEN_BYTES} bytes; use a random one, e.g. `head -c 32 /dev/urandom | base64`"
            ),
        ));
    }
    Ok(token)
}

/// Routes the Receiver, or says why not.
async fn route(r: &Receiver, ctx: &Context) -> Result<(String, Option<String>), NotReady> {
    let ns = r.namespace().unwrap_or_default();
    let name = r.name_any();
    let uid = r
        .metadata
        .uid
        .clone()
        .ok_or_else(|| not_ready("InvalidSpec", "the Receiver has no uid yet".into()))?;
    let token = read_token(&ctx.client, &ns, &r.spec.secret_ref.name).await?;
    let git_sync = r.spec.git_sync_ref.name.clone();
    let id = ctx.hooks.set(Hook::new(
        ns.clone(),
        name,
        uid,
        r.spec.type_,
        git_sync.clone(),
        token,
    ));
    // Pushes are answered before the GitSync exists (it may come later); the status says so.
    let gitsyncs: Api<GitSync> = Api::namespaced(ctx.client.clone(), &ns);
    let missing = match gitsyncs.get_metadata_opt(&git_sync).await {
        Ok(found) => found.is_none(),
        Err(e) => {
            return Err(NotReady {
                reason: "ApiError",
                message: format!("reading GitSync {git_sync}: {}", kube_message(&e)),
                stalled: false,
            });
        }
    };
    let warning = missing.then(|| {
        format!("GitSync {git_sync} not found in namespace {ns} (spec.gitSyncRef); pushes are refused until it exists")
    });
    Ok((format!("{WEBHOOK_PATH_PREFIX}{id}"), warning))
}

async fn reconcile(r: Arc<Receiver>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = r.namespace().unwrap_or_default();
    let name = r.name_any();
    // Receivers deleted since: their paths go too.
    let receivers = ctx.receivers.clone();
    ctx.hooks.retain(|ns, name, uid| {
        receivers
            .get(&ObjectRef::new(name).within(ns))
            .is_some_and(|r| r.metadata.uid.as_deref() == Some(uid))
    });
    if r.metadata.deletion_timestamp.is_some() {
        ctx.hooks.remove(&ns, &name);
        return Ok(Action::await_change());
    }
    let generation = r.metadata.generation;
    let old = r.status.clone().unwrap_or_default();
    let mut status = ReceiverStatus {
        observed_generation: generation,
        ..Default::default()
    };
    let mut transient = None;
    match route(&r, &ctx).await {
        Ok((path, None)) => {
            let message = format!(
                "pushes to {path} start passes of GitSync {}",
                r.spec.git_sync_ref.name
            );
            status.conditions = vec![condition(READY, true, "Receiving", &message, generation)];
            status.webhook_path = Some(path);
        }
        Ok((path, Some(warning))) => {
            status.conditions = vec![condition(
                READY,
                false,
                "GitSyncNotFound",
                &warning,
                generation,
            )];
            status.webhook_path = Some(path);
        }
        Err(f) => {
            if !f.stalled {
                // Keep routing as before: the API server failed, not the Receiver.
                status.webhook_path = old.webhook_path.clone();
                transient = Some(f.message.clone());
            } else {
                ctx.hooks.remove(&ns, &name);
            }
            status.conditions = vec![condition(READY, false, f.reason, &f.message, generation)];
            if f.stalled {
                status
                    .conditions
                    .push(condition(STALLED, true, f.reason, &f.message, generation));
            }
        }
    }
    if !settle(&mut status, &old) && *ctx.leading.borrow() {
        let api: Api<Receiver> = Api::namespaced(ctx.client.clone(), &ns);
        super::apply_status(&api, &name, &status)
            .await
            .map_err(|e| Error {
                object: format!("{ns}/{name}"),
                message: format!("writing status: {}", kube_message(&e)),
            })?;
        tracing::info!(receiver = %format!("{ns}/{name}"), ready = status.webhook_path.is_some() && transient.is_none(), "receiver status");
    }
    if let Some(message) = transient {
        return Err(Error {
            object: format!("{ns}/{name}"),
            message,
        });
    }
    Ok(Action::requeue(RESYNC))
}

fn error_policy(_r: Arc<Receiver>, _e: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

/// The Receiver controller, not yet running (at most `concurrency` reconciles at once); its
/// cache (`.store()`) is what the webhook endpoint checks each request against.
pub fn controller(
    client: &kube::Client,
    watch_namespace: Option<&str>,
    concurrency: u16,
) -> Controller<Receiver> {
    let api: Api<Receiver> = super::scoped_api(client, watch_namespace);
    super::lean_controller(api, watcher::Config::default(), concurrency)
}

/// Runs `controller` until a shutdown signal. A change to a token Secret (labelled) or to a
/// GitSync, seen as metadata only, reconciles the Receivers of its namespace that name it.
pub async fn run(
    controller: Controller<Receiver>,
    ctx: Arc<Context>,
    watch_namespace: Option<&str>,
    readiness: &Readiness,
) {
    // Metadata-only watches (`PartialObjectMeta`): no Secret body is ever cached.
    let secrets: Api<PartialObjectMeta<Secret>> = super::scoped_api(&ctx.client, watch_namespace);
    let gitsyncs: Api<PartialObjectMeta<GitSync>> = super::scoped_api(&ctx.client, watch_namespace);
    let store = ctx.receivers.clone();
    let named = move |ns: Option<String>, name: String, by_secret: bool| {
        store
            .state()
            .into_iter()
            .filter(|r| {
                r.namespace() == ns
                    && if by_secret {
                        r.spec.secret_ref.name == name
                    } else {
                        r.spec.git_sync_ref.name == name
                    }
            })
            .map(|r| ObjectRef::from_obj(&*r))
            .collect::<Vec<_>>()
    };
    let by_secret = named.clone();
    let secret_changes = watcher(
        secrets,
        watcher::Config::default().labels(&format!("{RECEIVER_TOKEN_LABEL}=true")),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(|r| async move { r.ok() })
    .flat_map(move |m| futures::stream::iter(by_secret(m.namespace(), m.name_any(), true)));
    // Only a GitSync appearing or going changes a Receiver's status (their status writes
    // and pass requests do not).
    let mut known = std::collections::HashSet::new();
    let gitsync_changes = watcher(gitsyncs, watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move { e.ok() })
        .flat_map(move |e| {
            let changed = match e {
                watcher::Event::Apply(m) | watcher::Event::InitApply(m) => {
                    let key = (m.namespace(), m.name_any());
                    known.insert(key.clone()).then_some(key)
                }
                watcher::Event::Delete(m) => {
                    let key = (m.namespace(), m.name_any());
                    known.remove(&key);
                    Some(key)
                }
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            let refs = changed
                .map(|(ns, name)| named(ns, name, false))
                .unwrap_or_default();
            futures::stream::iter(refs)
        });
    // Taking the lead: every Receiver again, so that the status is this leader's to write.
    let gained = futures::stream::unfold(ctx.leading.clone(), |mut rx| async move {
        rx.changed().await.ok()?;
        let leading = *rx.borrow_and_update();
        Some((leading, rx))
    })
    .filter(|leading| std::future::ready(*leading))
    .map(|_| ());
    let controller = controller
        .reconcile_on(secret_changes)
        .reconcile_on(gitsync_changes)
        .reconcile_all_on(gained);
    super::run("receiver", controller, reconcile, error_policy, ctx, || {
        readiness.webhooks_synced()
    })
    .await;
}
