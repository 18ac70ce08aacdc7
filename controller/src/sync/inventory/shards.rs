//! An inventory kept in shards: a GitSync's as `GitSyncInventory` objects in its namespace
//! ([`ShardStore`]), named `<gitsync>-<n>`, labelled `gitseal.dev/inventory-of=<gitsync>` and
//! owned by the GitSync (so the garbage collector removes them if the GitSync goes without the
//! agent's finalizer); `gitseal-agent sync`'s as ConfigMaps ([`super::configmap`]). Where the
//! shards are kept is a [`ShardBackend`]; how they are written is [`Sharded`].
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
use std::future::Future;

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

/// Where the shards of one inventory are kept.
pub trait ShardBackend: Send {
    /// Writes shard `n` (replacing the one read or written at `version`, or creating it when
    /// there is none); its new version.
    fn write(
        &mut self,
        n: u32,
        version: Option<&str>,
        entries: &[InventoryEntry],
    ) -> impl Future<Output = Result<String, InventoryError>> + Send;
    /// Deletes shard `n` (gone already is fine).
    fn remove(&mut self, n: u32) -> impl Future<Output = Result<(), InventoryError>> + Send;
    /// After a whole save: drops what an older layout left (nothing by default).
    fn saved(&mut self) -> impl Future<Output = Result<(), InventoryError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// The shards of one inventory, as last read or written.
#[derive(Debug)]
pub struct Sharded<B> {
    backend: B,
    /// Shard number → (resourceVersion, entries, sorted).
    shards: BTreeMap<u32, (String, Vec<InventoryEntry>)>,
}

/// Where a GitSync's inventory is kept: `GitSyncInventory` objects of its namespace.
#[derive(Debug)]
pub struct Inventories {
    api: Api<GitSyncInventory>,
    gitsync: String,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
}

/// A GitSync's inventory.
pub type ShardStore = Sharded<Inventories>;

/// The name of shard `n` of `base` (`base` itself hashed when too long for a name).
pub(super) fn shard_name(base: &str, n: u32) -> String {
    let base = if base.len() <= 240 {
        base.to_owned()
    } else {
        format!("inventory-{}", short_hash(base))
    };
    format!("{base}-{n}")
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of the `gitseal.dev/inventory-of` label for a source `name`: the name, or a
/// hash of it when it is longer than a label value may be (the shard's content names the
/// source in full, and readers check that).
pub(super) fn inventory_of(name: &str) -> String {
    if name.len() <= 63 {
        name.to_owned()
    } else {
        format!("h-{}", short_hash(name))
    }
}

pub(super) fn shard_of(id: &str, count: u32) -> u32 {
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
pub(super) fn to_groups(entries: &[InventoryEntry]) -> Vec<InventoryGroup> {
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

pub(super) fn from_groups(groups: &[InventoryGroup]) -> Vec<InventoryEntry> {
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

impl<B> Sharded<B> {
    /// A store over `backend` holding `shards` (number → (version, entries)) as read.
    pub(super) fn new(backend: B, shards: BTreeMap<u32, (String, Vec<InventoryEntry>)>) -> Self {
        Sharded { backend, shards }
    }

    /// Shards currently written.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Every entry of every shard, sorted, without duplicates.
    pub(super) fn entries(&self) -> Vec<InventoryEntry> {
        let all: BTreeSet<&InventoryEntry> = self.shards.values().flat_map(|(_, e)| e).collect();
        all.into_iter().cloned().collect()
    }
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
        let of = inventory_of(&gitsync);
        let list = api
            .list(&ListParams::default().labels(&format!("{INVENTORY_OF_LABEL}={of}")))
            .await
            .map_err(|e| InventoryError::api(format!("of {ns}/{gitsync}: listing"), &e))?;
        let mut shards = BTreeMap::new();
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
            shards.insert(
                s.spec.shard,
                (
                    s.metadata.resource_version.clone().unwrap_or_default(),
                    entries,
                ),
            );
        }
        let backend = Inventories {
            api,
            gitsync,
            owner: gs.controller_owner_ref(&()),
        };
        let store = Sharded::new(backend, shards);
        let entries = store.entries();
        Ok((store, entries))
    }
}

impl ShardBackend for Inventories {
    async fn write(
        &mut self,
        n: u32,
        version: Option<&str>,
        entries: &[InventoryEntry],
    ) -> Result<String, InventoryError> {
        let name = shard_name(&self.gitsync, n);
        let mut obj = GitSyncInventory::new(
            &name,
            GitSyncInventorySpec {
                gitsync: self.gitsync.clone(),
                shard: n,
                groups: to_groups(entries),
            },
        );
        obj.metadata = ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(INVENTORY_OF_LABEL.to_owned(), inventory_of(&self.gitsync))].into()),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..Default::default()
        };
        let what = || format!("shard {name}");
        let written = match version {
            Some(rv) => {
                obj.metadata.resource_version = Some(rv.to_owned());
                self.api.replace(&name, &PostParams::default(), &obj).await
            }
            None => self.api.create(&PostParams::default(), &obj).await,
        }
        .map_err(|e| InventoryError::api(what(), &e))?;
        Ok(written.metadata.resource_version.unwrap_or_default())
    }

    async fn remove(&mut self, n: u32) -> Result<(), InventoryError> {
        let name = shard_name(&self.gitsync, n);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(InventoryError::api(format!("shard {name}"), &e)),
        }
    }
}

impl<B: ShardBackend> Sharded<B> {
    async fn write(&mut self, n: u32, entries: Vec<InventoryEntry>) -> Result<(), InventoryError> {
        let version = self.shards.get(&n).map(|(rv, _)| rv.clone());
        let rv = self.backend.write(n, version.as_deref(), &entries).await?;
        self.shards.insert(n, (rv, entries));
        Ok(())
    }

    async fn remove(&mut self, n: u32) -> Result<(), InventoryError> {
        self.backend.remove(n).await?;
        self.shards.remove(&n);
        Ok(())
    }

    /// Deletes every shard (the source is going away).
    pub async fn delete_all(&mut self) -> Result<(), InventoryError> {
        let all: Vec<u32> = self.shards.keys().copied().collect();
        for n in all {
            self.remove(n).await?;
        }
        Ok(())
    }
}

impl<B: ShardBackend> InventoryStore for Sharded<B> {
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
        self.backend.saved().await
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
        assert_eq!(inventory_of("apps"), "apps");
        let label = inventory_of(&long);
        assert!(label.len() <= 63 && label.starts_with("h-"), "{label}");
    }
}
