//! The agent's controllers, one per kind of object it answers: `GitSync` sources
//! ([`gitsync`]), `SealedSecret` objects ([`sealed_secret`]), `ResealRequest`s
//! ([`reseal_request`]), push webhook `Receiver`s ([`receiver`]) and the sealing key Secrets
//! ([`sealing_keys`]).

pub mod backoff;
pub mod gitsync;
pub mod receiver;
pub mod reseal_request;
pub mod sealed_secret;
pub mod sealing_keys;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::{StreamExt, TryFuture};
use gitseal_api::names::AGENT_FIELD_MANAGER;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `Api` for the objects of one namespace, or of all namespaces.
pub fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// kubectl's client-side apply annotation: a second copy of the whole object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A controller for the objects `api` lists, whose cache holds only what reconciles read:
/// `managedFields` and kubectl's last-applied annotation are dropped as objects arrive (for
/// a SealedSecret applied with `kubectl apply` that halves what each cached object costs).
/// At most `concurrency` reconciles run at once, so a thousand objects created together
/// queue instead of holding a thousand requests, responses and decrypted values in flight.
pub fn lean_controller<K>(api: Api<K>, wc: watcher::Config, concurrency: u16) -> Controller<K>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Debug + Unpin + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let objects = watcher(api, wc)
        .default_backoff()
        .modify(lean)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, reader)
        .with_config(controller::Config::default().concurrency(concurrency))
}

/// Drops what no reconcile reads from a cached object.
pub fn lean<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Writes the status of the object `name` with server-side apply (field manager
/// `gitseal-agent`, forced): the agent owns the status of the objects it answers.
pub async fn apply_status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
}

/// Runs a controller until the future is dropped (the agent stops leading, or shuts down);
/// reconcile errors are retried by the error policy and logged at debug level, labelled
/// `controller = name`. `synced` is called once its cache has synced.
pub async fn run<K, Ctx, Fut>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action,
    ctx: Arc<Ctx>,
    synced: impl FnOnce(),
) where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Debug + Unpin + Eq + Hash + Clone,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    let store = controller.store();
    let synced = async {
        if store.wait_until_ready().await.is_ok() {
            tracing::debug!(controller = name, "cache synced");
            synced();
        }
        std::future::pending::<()>().await
    };
    let run = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(controller = name, error = %e, "reconcile error");
            }
        });
    tokio::select! {
        () = run => {}
        () = synced => {}
    }
}
