//! The inventory: every object a source may have applied, recorded durably *before* a pass
//! applies anything, so that a pass killed at any point is followed by one that prunes what
//! it left behind.
//!
//! The rule, for a recorded set `R` and a new render `N`:
//! 1. before applying, record `R ∪ N` (nothing is written when `N ⊆ R`);
//! 2. apply `N`; prune `(R ∪ N) \ N` (only objects still labelled as this source's);
//! 3. record `N`.
//!
//! A crash before 3 leaves `R ∪ N` recorded; the next pass prunes from that. A crash in the
//! middle of a write of several shards (see [`shards`]) leaves a set that still holds every
//! object that may exist, because shards only grow before step 2 and only shrink after it.
//!
//! Where it is kept: [`shards`] for GitSyncs (`GitSyncInventory` objects in the GitSync's
//! namespace), [`configmap`] for `gitseal-agent sync`, or nowhere ([`Memory`]).

pub mod configmap;
pub mod shards;

use std::collections::BTreeSet;
use std::future::Future;

use gitseal_api::{InventoryEntry, InventorySummary};
use sha2::{Digest, Sha256};

/// Why the inventory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    #[error("inventory {what}: {message}")]
    Api {
        what: String,
        message: String,
        /// A server error, timeout or connection failure: worth retrying as is.
        transient: bool,
    },
    #[error("inventory {what}: changed by someone else since it was read")]
    Conflict { what: String },
}

impl InventoryError {
    pub(crate) fn api(what: impl Into<String>, e: &kube::Error) -> InventoryError {
        if let kube::Error::Api(s) = e
            && s.code == 409
        {
            return InventoryError::Conflict { what: what.into() };
        }
        InventoryError::Api {
            what: what.into(),
            message: crate::kube_error::kube_message(e),
            transient: crate::kube_error::is_transient(e),
        }
    }
    pub fn is_transient(&self) -> bool {
        match self {
            InventoryError::Api { transient, .. } => *transient,
            InventoryError::Conflict { .. } => true,
        }
    }
}

/// Where a source's inventory is recorded.
pub trait InventoryStore: Send {
    /// Records `entries` (sorted, no duplicates) as the whole inventory.
    fn save(
        &mut self,
        entries: &[InventoryEntry],
    ) -> impl Future<Output = Result<(), InventoryError>> + Send;
}

/// An inventory kept in memory only: for tests of passes and for `--plan`.
#[derive(Debug, Default)]
pub struct Memory;

impl InventoryStore for Memory {
    async fn save(&mut self, _entries: &[InventoryEntry]) -> Result<(), InventoryError> {
        Ok(())
    }
}

/// `a ∪ b`, sorted, without duplicate ids (the version in `b` wins).
pub fn union(a: &[InventoryEntry], b: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let ids: BTreeSet<&str> = b.iter().map(|e| e.id.as_str()).collect();
    let mut out: Vec<InventoryEntry> = a
        .iter()
        .filter(|e| !ids.contains(e.id.as_str()))
        .chain(b.iter())
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What status shows of an inventory of `shards` shards.
pub fn summary(entries: &[InventoryEntry], shards: usize) -> InventorySummary {
    let mut h = Sha256::new();
    let mut ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let d = h.finalize();
    InventorySummary {
        objects: entries.len(),
        shards,
        digest: format!(
            "sha256:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, v: &str) -> InventoryEntry {
        InventoryEntry {
            id: id.into(),
            v: v.into(),
        }
    }

    #[test]
    fn union_keeps_one_entry_per_id_and_the_newer_version() {
        let a = [
            e("ns_a__ConfigMap", "v1"),
            e("ns_d_apps_Deployment", "apps/v1beta1"),
        ];
        let b = [
            e("ns_d_apps_Deployment", "apps/v1"),
            e("ns_b__ConfigMap", "v1"),
        ];
        let u = union(&a, &b);
        assert_eq!(
            u,
            vec![
                e("ns_a__ConfigMap", "v1"),
                e("ns_b__ConfigMap", "v1"),
                e("ns_d_apps_Deployment", "apps/v1"),
            ]
        );
    }

    #[test]
    fn digest_depends_on_the_ids_only_and_not_their_order() {
        let a = [e("x", "v1"), e("y", "v1")];
        let b = [e("y", "v1"), e("x", "v1")];
        assert_eq!(summary(&a, 1).digest, summary(&b, 1).digest);
        assert_ne!(summary(&a, 1).digest, summary(&a[..1], 1).digest);
        assert!(summary(&a, 1).digest.starts_with("sha256:"));
    }
}
