//! A GitSync's inventory as `GitSyncInventory` shards in its namespace, named
//! `<gitsync>-<n>`, labelled `gitseal.dev/inventory-of=<gitsync>` and owned by the GitSync (so
//! the garbage collector removes them if the GitSync goes without the agent's finalizer).
//!
//! An object's shard is a hash of its id modulo the shard count, a power of two chosen so
//! that no shard holds much more than [`SHARD_BYTES`]. Reading lists every labelled shard
//! and takes the union, whatever the count was. Writing keeps that union a superset of every
//! object that may exist at each step:
//! - more shards: the new (higher) shards are written first, then the old ones, which only
//!   lose the objects that moved up;
//! - fewer shards: the lower shards are written first, then the higher ones deleted.
//!
//! Only shards whose content changed are written, each with the `resourceVersion` it was
//! read with, so a second writer (a leader that has not noticed it lost the lease) gets a
//! conflict instead of overwriting.

use std::collections::{BTreeMap, BTreeSet};

use gitseal_api::names::INVENTORY_OF_LABEL;
use gitseal_api::{
    GitSync, GitSyncInventory, GitSyncInventorySpec, InventoryEntry, InventoryGroup,
};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::{InventoryError, InventoryStore};
use crate::sync::object::ObjectId;

/// About how many bytes of names one shard holds at most.
pub const SHARD_BYTES: usize = 512 * 1024;

/// The inventory shards of one GitSync, as last read or written.
#[derive(Debug)]
pub struct ShardStore {
    api: Api<GitSyncInventory>,
    gitsync: String,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    /// Shard number → (resourceVersion, entries, sorted).
    shards: BTreeMap<u32, (String, Vec<InventoryEntry>)>,
}

fn shard_name(gitsync: &str, n: u32) -> String {
    let base = if gitsync.len() <= 240 {
        gitsync.to_owned()
    } else {
        let h = Sha256::digest(gitsync.as_bytes());
        format!(
            "inventory-{}",
            h.iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    format!("{base}-{n}")
}

fn shard_of(id: &str, count: u32) -> u32 {
    let h = Sha256::digest(id.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % count.max(1)
}

/// Shards needed for `entries`: a power of two.
fn shard_count(entries: &[InventoryEntry]) -> u32 {
    let bytes: usize = entries.iter().map(|e| e.id.len() + 4).sum();
    let needed = bytes.div_ceil(SHARD_BYTES).max(1);
    u32::try_from(needed.next_power_of_two()).unwrap_or(u32::MAX)
}

/// Entries of one shard as groups of names.
fn to_groups(entries: &[InventoryEntry]) -> Vec<InventoryGroup> {
    let mut groups: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for e in entries {
        let Some(id) = ObjectId::from_inventory_id(&e.id) else {
            continue;
        };
        groups
            .entry((e.v.clone(), id.kind, id.namespace.unwrap_or_default()))
            .or_default()
            .push(id.name);
    }
    groups
        .into_iter()
        .map(|((api_version, kind, namespace), names)| InventoryGroup {
            api_version,
            kind,
            namespace,
            names,
        })
        .collect()
}

fn from_groups(groups: &[InventoryGroup]) -> Vec<InventoryEntry> {
    let mut out = Vec::new();
    for g in groups {
        let group = g.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        for name in &g.names {
            let id = ObjectId {
                group: group.to_owned(),
                kind: g.kind.clone(),
                namespace: (!g.namespace.is_empty()).then(|| g.namespace.clone()),
                name: name.clone(),
            };
            out.push(InventoryEntry {
                id: id.inventory_id(),
                v: g.api_version.clone(),
            });
        }
    }
    out.sort();
    out
}

impl ShardStore {
    /// Reads the inventory of `gs` (one LIST): the store and the recorded entries.
    pub async fn load(
        client: &kube::Client,
        gs: &GitSync,
    ) -> Result<(ShardStore, Vec<InventoryEntry>), InventoryError> {
        let ns = gs.namespace().unwrap_or_default();
        let gitsync = gs.name_any();
        let api: Api<GitSyncInventory> = Api::namespaced(client.clone(), &ns);
        let list = api
            .list(&ListParams::default().labels(&format!("{INVENTORY_OF_LABEL}={gitsync}")))
            .await
            .map_err(|e| InventoryError::api(format!("of {ns}/{gitsync}: listing"), &e))?;
        let mut shards = BTreeMap::new();
        let mut all = BTreeSet::new();
        for s in list.items {
            // A shard of an older GitSync of the same name (deleted without the agent) is
            // not this one's: its owner differs.
            let owned = s
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.iter().any(|o| Some(&o.uid) == gs.metadata.uid.as_ref()));
            if s.spec.gitsync != gitsync || !owned {
                continue;
            }
            let entries = from_groups(&s.spec.groups);
            all.extend(entries.iter().cloned());
            shards.insert(
                s.spec.shard,
                (
                    s.metadata.resource_version.clone().unwrap_or_default(),
                    entries,
                ),
            );
        }
        let store = ShardStore {
            api,
            gitsync,
            owner: gs.controller_owner_ref(&()),
            shards,
        };
        Ok((store, all.into_iter().collect()))
    }

    /// Shards currently written.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    async fn write(&mut self, n: u32, entries: Vec<InventoryEntry>) -> Result<(), InventoryError> {
        let name = shard_name(&self.gitsync, n);
        let mut obj = GitSyncInventory::new(
            &name,
            GitSyncInventorySpec {
                gitsync: self.gitsync.clone(),
                shard: n,
                groups: to_groups(&entries),
            },
        );
        obj.metadata = ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(INVENTORY_OF_LABEL.to_owned(), self.gitsync.clone())].into()),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..Default::default()
        };
        let what = || format!("shard {name}");
        let written = match self.shards.get(&n) {
            Some((rv, _)) => {
                obj.metadata.resource_version = Some(rv.clone());
                self.api.replace(&name, &PostParams::default(), &obj).await
            }
            None => self.api.create(&PostParams::default(), &obj).await,
        }
        .map_err(|e| InventoryError::api(what(), &e))?;
        self.shards.insert(
            n,
            (
                written.metadata.resource_version.unwrap_or_default(),
                entries,
            ),
        );
        Ok(())
    }

    async fn remove(&mut self, n: u32) -> Result<(), InventoryError> {
        let name = shard_name(&self.gitsync, n);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(InventoryError::api(format!("shard {name}"), &e)),
        }
        self.shards.remove(&n);
        Ok(())
    }

    /// Deletes every shard (the GitSync is going away).
    pub async fn delete_all(&mut self) -> Result<(), InventoryError> {
        let all: Vec<u32> = self.shards.keys().copied().collect();
        for n in all {
            self.remove(n).await?;
        }
        Ok(())
    }
}

impl InventoryStore for ShardStore {
    async fn save(&mut self, entries: &[InventoryEntry]) -> Result<(), InventoryError> {
        let count = shard_count(entries);
        let mut wanted: BTreeMap<u32, Vec<InventoryEntry>> =
            (0..count).map(|n| (n, Vec::new())).collect();
        for e in entries {
            wanted
                .entry(shard_of(&e.id, count))
                .or_default()
                .push(e.clone());
        }
        let old_count = self.shards.keys().next_back().map_or(0, |n| n + 1);
        let mut order: Vec<u32> = wanted.keys().copied().collect();
        if count > old_count {
            // Objects only move to higher shards: write those first.
            order.reverse();
        }
        for n in order {
            let content = wanted.remove(&n).unwrap_or_default();
            let (exists, same) = match self.shards.get(&n) {
                Some((_, old)) => (true, *old == content),
                None => (false, false),
            };
            // Empty shards are not created (an empty inventory writes nothing).
            let needed = exists || !content.is_empty();
            if needed && !same {
                self.write(n, content).await?;
            }
        }
        let extra: Vec<u32> = self
            .shards
            .keys()
            .copied()
            .filter(|n| *n >= count)
            .collect();
        for n in extra {
            self.remove(n).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ns: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            id: format!("{ns}_{name}__ConfigMap"),
            v: "v1".into(),
        }
    }

    #[test]
    fn groups_round_trip() {
        let mut entries = vec![
            e("a", "x"),
            e("a", "y"),
            e("b", "x"),
            InventoryEntry {
                id: "_dev__Namespace".into(),
                v: "v1".into(),
            },
            InventoryEntry {
                id: "dev_web_apps_Deployment".into(),
                v: "apps/v1".into(),
            },
        ];
        entries.sort();
        let groups = to_groups(&entries);
        assert_eq!(groups.len(), 4);
        assert_eq!(from_groups(&groups), entries);
    }

    #[test]
    fn shard_count_grows_in_powers_of_two_and_moves_objects_up_only() {
        let small: Vec<_> = (0..100).map(|i| e("ns", &format!("cm-{i}"))).collect();
        assert_eq!(shard_count(&small), 1);
        let big: Vec<_> = (0..50_000)
            .map(|i| {
                e(
                    "a-rather-long-namespace-name",
                    &format!("a-rather-long-object-name-{i:08}"),
                )
            })
            .collect();
        let n = shard_count(&big);
        assert!(n.is_power_of_two() && n > 1, "{n}");
        for x in &big[..1000] {
            let low = shard_of(&x.id, n / 2);
            let high = shard_of(&x.id, n);
            assert!(high == low || high == low + n / 2);
        }
    }

    #[test]
    fn long_gitsync_names_give_valid_shard_names() {
        let long = "a".repeat(253);
        let name = shard_name(&long, 7);
        assert!(name.len() <= 253 && name.ends_with("-7"));
        assert_eq!(shard_name("apps", 0), "apps-0");
    }
}
