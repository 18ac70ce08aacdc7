//! What happens when a GitSync is deleted. Every GitSync carries the finalizer
//! `gitseal.dev/gitsync`, so the agent sees the deletion even if it was not running then:
//! - `prune: true`: every object in its inventory is deleted, with the rules of a pass
//!   (only objects still labelled as this GitSync's, never `gitseal.dev/prune: disabled`,
//!   workloads before Namespaces and CRDs) and as the same actor: a GitSync that names a
//!   ServiceAccount prunes impersonating it, one that names none outside the agent's
//!   namespace prunes only in its own namespace (see [`crate::sync::tenancy`]), so an
//!   inventory can never make the finalizer delete what a pass could not. When that
//!   ServiceAccount no longer exists (its namespace is being deleted, say) nothing can be
//!   pruned on its behalf: the objects stay and a Warning Event says so;
//! - `prune: false`: its objects stay (orphaned) and an Event says how many.
//!
//! Then its inventory shards and its key usage records are removed and the finalizer with
//! them: nothing of it remains, in the cluster or in the agent's memory.

use std::time::Duration;

use gitseal_api::GitSync;
use gitseal_api::names::GITSYNC_FINALIZER;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::{Context, Error, event, source, within};
use crate::sync::inventory::shards::ShardStore;
use crate::sync::prune::prune;
use crate::sync::tenancy::{Actor, Tenancy};

fn has_finalizer(gs: &GitSync) -> bool {
    gs.finalizers().iter().any(|f| f == GITSYNC_FINALIZER)
}

/// Sets the finalizer list to `finalizers`, if the object is still at the version read.
async fn set_finalizers(
    ctx: &Context,
    gs: &GitSync,
    finalizers: Vec<String>,
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<GitSync> =
        Api::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    let patch = json!({"metadata": {
        "resourceVersion": gs.resource_version(),
        "finalizers": finalizers,
    }});
    within(
        timeout,
        "finalizer",
        api.patch(
            &gs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ),
    )
    .await?;
    Ok(())
}

/// Adds the finalizer when it is missing (the first reconcile of each GitSync).
pub(super) async fn ensure_finalizer(
    gs: &GitSync,
    ctx: &Context,
    timeout: Duration,
) -> Result<(), Error> {
    if has_finalizer(gs) {
        return Ok(());
    }
    let mut finalizers = gs.finalizers().to_vec();
    finalizers.push(GITSYNC_FINALIZER.to_owned());
    set_finalizers(ctx, gs, finalizers, timeout).await
}

/// Prunes or orphans the objects of a deleted GitSync, removes its inventory and usage
/// records, then its finalizer.
pub(super) async fn finalize(
    gs: &GitSync,
    ctx: &Context,
    timeout: Duration,
) -> Result<Action, Error> {
    if !has_finalizer(gs) {
        return Ok(Action::await_change());
    }
    let ns = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let (mut store, entries) = tokio::time::timeout(timeout, ShardStore::load(&ctx.client, gs))
        .await
        .map_err(|_| {
            Error::Kube(format!(
                "{ns}/{name}: reading the inventory: no answer within {timeout:?}"
            ))
        })?
        .map_err(|e| Error::Kube(format!("{ns}/{name}: {e}")))?;
    let acting = if gs.spec.prune {
        acting_for_prune(gs, ctx, &ns, timeout).await?
    } else {
        None
    };
    if let Some((tenancy, client)) = acting {
        let pruned = match tokio::time::timeout(
            timeout,
            prune(&client, (&ns, &name), &tenancy, &entries, &[]),
        )
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                let msg = format!("deletion: {e}; retrying");
                event(ctx, gs, true, "PruneFailed", &msg).await;
                return Err(Error::Kube(msg));
            }
            Err(_) => {
                return Err(Error::Kube(format!(
                    "deletion of {ns}/{name}: prune did not finish within {timeout:?}"
                )));
            }
        };
        let kept = entries.len() - pruned.len();
        let note = format!(
            "GitSync deleted with prune: true: {} object(s) pruned{}",
            pruned.len(),
            if kept > 0 {
                format!(
                    ", {kept} left (already gone, marked gitseal.dev/prune: disabled, or no longer labelled as this GitSync's)"
                )
            } else {
                String::new()
            }
        );
        tracing::info!(gitsync = %format!("{ns}/{name}"), pruned = pruned.len(), kept, "GitSync deleted: objects pruned");
        event(ctx, gs, false, "Pruned", &note).await;
    } else if gs.spec.prune {
        let note = format!(
            "GitSync deleted with prune: true, but its ServiceAccount {} no longer exists, so nothing can be pruned on its behalf: its {} object(s) are left in place (orphaned)",
            gs.spec
                .service_account_name
                .as_deref()
                .or(ctx.tenancy.default_service_account.as_deref())
                .unwrap_or_default(),
            entries.len()
        );
        tracing::warn!(gitsync = %format!("{ns}/{name}"), orphaned = entries.len(), "GitSync deleted: its ServiceAccount is gone, objects orphaned");
        event(ctx, gs, true, "Orphaned", &note).await;
    } else {
        let note = format!(
            "GitSync deleted with prune: false: its {} object(s) are left in place (orphaned)",
            entries.len()
        );
        tracing::info!(gitsync = %format!("{ns}/{name}"), orphaned = entries.len(), "GitSync deleted: objects orphaned");
        event(ctx, gs, false, "Orphaned", &note).await;
    }
    within(timeout, "inventory", async {
        store
            .delete_all()
            .await
            .map_err(|e| kube::Error::Service(e.to_string().into()))
    })
    .await?;
    if let Some((_, usage)) = &ctx.keys {
        usage
            .record_pass(&ctx.client, &ctx.namespace, (&ns, &name), &[])
            .await;
    }
    let finalizers: Vec<String> = gs
        .finalizers()
        .iter()
        .filter(|f| *f != GITSYNC_FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, gs, finalizers, timeout).await?;
    Ok(Action::await_change())
}

/// Who prunes the objects of a GitSync being deleted, and with which client: the actor of
/// its passes ([`source::tenancy`]). `None` when that is a ServiceAccount that no longer
/// exists. An invalid `spec.serviceAccountName` is an error (retried; fix it, or remove the
/// finalizer to leave the objects), never a prune with the agent's own rights.
async fn acting_for_prune(
    gs: &GitSync,
    ctx: &Context,
    ns: &str,
    timeout: Duration,
) -> Result<Option<(Tenancy, kube::Client)>, Error> {
    let name = gs.name_any();
    let tenancy = match source::tenancy(gs, ns, &ctx.tenancy) {
        Ok(t) => t,
        Err(msg) => {
            let note = format!("deletion: cannot tell who prunes: {msg}; retrying");
            event(ctx, gs, true, "PruneFailed", &note).await;
            return Err(Error::Kube(format!("deletion of {ns}/{name}: {msg}")));
        }
    };
    if let Actor::ServiceAccount(sa) = &tenancy.actor {
        let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
        let found = within(
            timeout,
            "the GitSync's ServiceAccount",
            api.get_metadata_opt(sa),
        )
        .await?;
        if found.is_none() {
            return Ok(None);
        }
    }
    let client = match ctx.pass_client(&tenancy, ns).await {
        Ok(c) => c,
        Err(msg) => return Err(Error::Kube(format!("deletion of {ns}/{name}: {msg}"))),
    };
    Ok(Some((tenancy, client)))
}
