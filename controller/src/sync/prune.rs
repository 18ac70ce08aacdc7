//! Pruning: deleting what a source applied before and is gone from git. Every safety rule is
//! here: only after everything else in the pass succeeded (the pass calls this last); never
//! everything at once unless `allowEmpty`; only objects still labelled as this source's; never
//! objects annotated `gitseal.dev/prune: disabled`; never what the source's tenancy would not
//! let it write (another namespace, the agent's namespace, a sealing key Secret: left in place
//! and logged), nor what its actor may not read (it cannot be told to be the source's own);
//! workloads before Namespaces and CRDs. The client is the pass's, so a pass that
//! impersonates a ServiceAccount prunes as that ServiceAccount too.

use std::collections::HashSet;

use gitseal_api::InventoryEntry;
use gitseal_api::names::{PRUNE_ANNOTATION, SYNC_NAME_LABEL, SYNC_NAMESPACE_LABEL};
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope as ApiScope;

use super::apply::ApplyError;
use super::object::ObjectId;
use super::tenancy::{Rule, Tenancy, has_sealing_key_label};
use crate::kube_error::{is_transient, kube_message};

/// Refuses a pass that rendered nothing when pruning would then delete everything applied
/// before, unless `allow_empty`. Checked before anything is applied.
pub fn refuse_empty(
    rendered: usize,
    previous: &[InventoryEntry],
    allow_empty: bool,
) -> Result<(), ApplyError> {
    if rendered == 0 && !previous.is_empty() && !allow_empty {
        return Err(ApplyError::EmptyRefused(previous.len()));
    }
    Ok(())
}

/// Deletes the objects of `previous` that are not in `current` (both inventories of the
/// source `owner` = (namespace, name)) and returns those deleted.
pub async fn prune(
    client: &kube::Client,
    owner: (&str, &str),
    tenancy: &Tenancy,
    previous: &[InventoryEntry],
    current: &[InventoryEntry],
) -> Result<Vec<ObjectId>, ApplyError> {
    let current: HashSet<ObjectId> = current
        .iter()
        .filter_map(|e| ObjectId::from_inventory_id(&e.id))
        .collect();
    let mut pruned = Vec::new();
    let mut gone: Vec<(ObjectId, String)> = previous
        .iter()
        .filter_map(|e| ObjectId::from_inventory_id(&e.id).map(|id| (id, e.v.clone())))
        .filter(|(id, _)| !current.contains(id))
        .collect();
    // Reverse stage order: workloads first, then Namespaces and CRDs.
    gone.sort_by_key(|(id, _)| {
        let stage0 = (id.kind == "Namespace" && id.group.is_empty())
            || (id.kind == "CustomResourceDefinition" && id.group == "apiextensions.k8s.io");
        (stage0, id.kind == "CustomResourceDefinition")
    });
    for (id, version) in gone {
        if let Err(rule) = tenancy.may_prune(owner.0, &id) {
            tracing::warn!(gitsync = %format!("{}/{}", owner.0, owner.1), object = %id, rule = rule.id(), "not pruned: the GitSync may not write it");
            continue;
        }
        let (g, v) = version.split_once('/').unwrap_or(("", version.as_str()));
        let gvk = GroupVersionKind::gvk(g, v, &id.kind);
        let (ar, caps) = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(r) => r,
            // The kind itself is gone (its CRD was removed): nothing left to delete.
            Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(_))) => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            // Anything else (the API server unreachable, failing) is no answer: the entry
            // stays for the next pass rather than being dropped unpruned.
            Err(e) => {
                return Err(ApplyError::Prune {
                    object: id.to_string(),
                    message: kube_message(&e),
                    transient: is_transient(&e),
                });
            }
        };
        let api: Api<DynamicObject> = match (caps.scope, &id.namespace) {
            (ApiScope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let live = match api.get_metadata_opt(&id.name).await {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            // Its actor may not even read it, so cannot tell whether it is its own (an entry
            // recorded before an apply that was then refused, say): left in place.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::warn!(gitsync = %format!("{}/{}", owner.0, owner.1), object = %id, "not pruned: the GitSync's actor may not read it");
                continue;
            }
            Err(e) => {
                return Err(ApplyError::Prune {
                    object: id.to_string(),
                    message: kube_message(&e),
                    transient: is_transient(&e),
                });
            }
        };
        let key = has_sealing_key_label(&live.metadata);
        let labels = live.metadata.labels.unwrap_or_default();
        let ours = labels.get(SYNC_NAME_LABEL).map(String::as_str) == Some(owner.1)
            && labels.get(SYNC_NAMESPACE_LABEL).map(String::as_str) == Some(owner.0);
        let disabled = live
            .metadata
            .annotations
            .unwrap_or_default()
            .get(PRUNE_ANNOTATION)
            .is_some_and(|v| v == "disabled");
        if !ours || disabled {
            continue;
        }
        if key {
            tracing::warn!(gitsync = %format!("{}/{}", owner.0, owner.1), object = %id, rule = Rule::SealingKey.id(), "not pruned: a sealing key Secret");
            continue;
        }
        match api.delete(&id.name, &DeleteParams::background()).await {
            Ok(_) => pruned.push(id),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(ApplyError::Prune {
                    object: id.to_string(),
                    message: kube_message(&e),
                    transient: is_transient(&e),
                });
            }
        }
    }
    Ok(pruned)
}
