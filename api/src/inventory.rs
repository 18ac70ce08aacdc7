//! `GitSyncInventory`: where the agent records, in a GitSync's own namespace, every object
//! that GitSync may have applied, so that pruning and deletion find them after any crash.
//! One GitSync's record is split into shards (objects of about 512 KiB each at most), so a
//! GitSync can hold 50,000 objects while its own object stays small; its status keeps only
//! a count and a digest.
//!
//! Written only by the agent (tenants get no RBAC on this kind); read by the agent and by
//! people (`kubectl get gitsyncinventories`).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One shard of the objects a GitSync may have applied.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "GitSyncInventory",
    namespaced,
    shortname = "gsinv",
    printcolumn = r#"{"name":"GitSync","type":"string","jsonPath":".spec.gitsync"}"#,
    printcolumn = r#"{"name":"Shard","type":"integer","jsonPath":".spec.shard"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncInventorySpec {
    /// The GitSync (same namespace) whose objects these are.
    pub gitsync: String,
    /// This shard's number; objects are spread over the shards by a hash of their id.
    pub shard: u32,
    /// The objects, grouped by API version, kind and namespace.
    #[serde(default)]
    pub groups: Vec<InventoryGroup>,
}

/// Objects of one API version, kind and namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryGroup {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub names: Vec<String>,
}
