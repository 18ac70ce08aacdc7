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
use kube::runtime::controller::{Action, Controller};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::serve::http::Readiness;

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
/// `controller = name`. `readiness` hears when its cache has synced.
pub async fn run<K, Ctx, Fut>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action,
    ctx: Arc<Ctx>,
    readiness: &Readiness,
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
            readiness.controller_synced();
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
