//! Where `gitseal-agent sync` keeps its inventory between runs, so that `--once` runs in CI
//! prune what left git: ConfigMaps in the agent's namespace, sharded like a GitSync's
//! inventory ([`super::shards`]). Shard `n` of source `NAME` is the ConfigMap
//! `gitseal-inventory-NAME-n`, labelled `gitseal.dev/inventory-of`, holding the source's name
//! (`of`), its number (`shard`) and its entries as groups of names (`groups.json`, the format
//! of a `GitSyncInventory`'s groups). A ConfigMap holds at most 1 MiB, so one ConfigMap of
//! every id stopped `sync` past ~18,000 objects; a shard holds about
//! [`super::shards::SHARD_BYTES`] of names.
//!
//! Earlier versions kept one ConfigMap `gitseal-inventory-NAME` with a flat list
//! (`inventory.json`): it is read as part of the inventory, and deleted after the first save
//! in shards (so the record is never smaller than what may exist).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use gitseal_api::names::{
    AGENT_FIELD_MANAGER, INVENTORY_CONFIGMAP_PREFIX, INVENTORY_KEY, INVENTORY_OF_LABEL,
};
use gitseal_api::{InventoryEntry, InventoryGroup};

use super::InventoryError;
use super::shards::{ShardBackend, Sharded, from_groups, inventory_of, shard_name, to_groups};

/// Data keys of a shard ConfigMap.
const OF_KEY: &str = "of";
const SHARD_KEY: &str = "shard";
const GROUPS_KEY: &str = "groups.json";

/// The ConfigMap earlier versions kept the whole inventory of `sync_name` in.
pub fn legacy_name(sync_name: &str) -> String {
    format!("{INVENTORY_CONFIGMAP_PREFIX}{sync_name}")
}

/// The ConfigMaps of one `sync` source's inventory.
#[derive(Debug)]
pub struct ConfigMaps {
    api: Api<ConfigMap>,
    name: String,
    /// The legacy ConfigMap exists (and is deleted after the next save).
    legacy: bool,
}

/// `gitseal-agent sync`'s inventory store.
pub type ConfigMapStore = Sharded<ConfigMaps>;

fn unreadable(what: &str, problem: &str) -> InventoryError {
    InventoryError::Api {
        what: format!("ConfigMap {what}"),
        message: format!(
            "{problem}; delete it if it is not gitseal's (the next run then prunes nothing it recorded)"
        ),
        transient: false,
    }
}

impl ConfigMapStore {
    /// Reads the inventory of source `sync_name` from `namespace` (one LIST and one GET): the
    /// store and the recorded entries.
    pub async fn load(
        client: &kube::Client,
        namespace: &str,
        sync_name: &str,
    ) -> Result<(ConfigMapStore, Vec<InventoryEntry>), InventoryError> {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let what = || format!("of {namespace}/{sync_name}");
        let of = inventory_of(sync_name);
        let list = api
            .list(&ListParams::default().labels(&format!("{INVENTORY_OF_LABEL}={of}")))
            .await
            .map_err(|e| InventoryError::api(format!("{}: listing", what()), &e))?;
        let mut shards = BTreeMap::new();
        for cm in list.items {
            let cm_name = cm.metadata.name.clone().unwrap_or_default();
            let data = cm.data.unwrap_or_default();
            // The label of a long name is a hash: the content names the source.
            if data.get(OF_KEY).map(String::as_str) != Some(sync_name) {
                continue;
            }
            let n: u32 = data
                .get(SHARD_KEY)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| unreadable(&cm_name, "`shard` is not a shard number"))?;
            let groups: Vec<InventoryGroup> = data
                .get(GROUPS_KEY)
                .and_then(|g| serde_json::from_str(g).ok())
                .ok_or_else(|| unreadable(&cm_name, "`groups.json` is not an inventory"))?;
            let rv = cm.metadata.resource_version.unwrap_or_default();
            shards.insert(n, (rv, from_groups(&groups)));
        }
        let legacy_cm = api
            .get_opt(&legacy_name(sync_name))
            .await
            .map_err(|e| InventoryError::api(what(), &e))?
            // Another source's shard may carry that name: only an unlabelled one is legacy.
            .filter(|cm| {
                cm.metadata
                    .labels
                    .as_ref()
                    .is_none_or(|l| !l.contains_key(INVENTORY_OF_LABEL))
            });
        let legacy_entries: Option<Vec<InventoryEntry>> = match &legacy_cm {
            None => None,
            Some(cm) => Some(
                cm.data
                    .as_ref()
                    .and_then(|d| d.get(INVENTORY_KEY))
                    .map(|s| serde_json::from_str(s))
                    .transpose()
                    .map_err(|_| {
                        unreadable(
                            &legacy_name(sync_name),
                            "`inventory.json` is not an inventory",
                        )
                    })?
                    .unwrap_or_default(),
            ),
        };
        let backend = ConfigMaps {
            api,
            name: sync_name.to_owned(),
            legacy: legacy_cm.is_some(),
        };
        let store = Sharded::new(backend, shards);
        let entries = super::union(&store.entries(), &legacy_entries.unwrap_or_default());
        Ok((store, entries))
    }
}

impl ShardBackend for ConfigMaps {
    async fn write(
        &mut self,
        n: u32,
        version: Option<&str>,
        entries: &[InventoryEntry],
    ) -> Result<String, InventoryError> {
        let name = shard_name(&legacy_name(&self.name), n);
        let groups = serde_json::to_string(&to_groups(entries)).unwrap_or_default();
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [
                        (INVENTORY_OF_LABEL.to_owned(), inventory_of(&self.name)),
                        (
                            "app.kubernetes.io/managed-by".to_owned(),
                            "gitseal-agent".to_owned(),
                        ),
                    ]
                    .into(),
                ),
                resource_version: version.map(str::to_owned),
                ..Default::default()
            },
            data: Some(
                [
                    (OF_KEY.to_owned(), self.name.clone()),
                    (SHARD_KEY.to_owned(), n.to_string()),
                    (GROUPS_KEY.to_owned(), groups),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let params = PostParams {
            field_manager: Some(AGENT_FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let not_found = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
        // Not there (deleted, or never written): created.
        let replaced = match version.filter(|v| !v.is_empty()) {
            Some(_) => match self.api.replace(&name, &params, &cm).await {
                Err(e) if not_found(&e) => None,
                other => Some(other),
            },
            None => None,
        };
        let written = match replaced {
            Some(r) => r,
            None => {
                cm.metadata.resource_version = None;
                self.api.create(&params, &cm).await
            }
        };
        match written {
            Ok(w) => Ok(w.metadata.resource_version.unwrap_or_default()),
            // Bootstrap before the agent namespace exists: the pass goes on; only pruning by
            // a later `sync` depends on this record.
            Err(e) if not_found(&e) => {
                tracing::warn!(
                    namespace = self.api.namespace().unwrap_or_default(),
                    "inventory not saved: the namespace does not exist; a later `sync` cannot prune what this one applied"
                );
                Ok(String::new())
            }
            Err(e) => Err(InventoryError::api(format!("ConfigMap {name}"), &e)),
        }
    }

    async fn remove(&mut self, n: u32) -> Result<(), InventoryError> {
        let name = shard_name(&legacy_name(&self.name), n);
        delete(&self.api, &name).await
    }

    async fn saved(&mut self) -> Result<(), InventoryError> {
        if self.legacy {
            delete(&self.api, &legacy_name(&self.name)).await?;
            self.legacy = false;
        }
        Ok(())
    }
}

async fn delete(api: &Api<ConfigMap>, name: &str) -> Result<(), InventoryError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(InventoryError::api(format!("ConfigMap {name}"), &e)),
    }
}
