//! `GitSync`: one git source (URL, ref, path) that the agent keeps applied, its pass settings
//! and its status (kstatus conditions, revisions, inventory).
//!
//! The CRD rejects invalid specs itself (CEL rules and patterns, `x-kubernetes-validations`,
//! generated from the attributes below), so `kubectl apply` says what is wrong before the
//! agent ever sees the object; the agent checks the same things again for objects stored
//! before a rule existed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::conditions::{WithConditions, conditions_schema};
use schemars::JsonSchema;

/// A Go-style duration as the agent reads it: whole numbers with units, e.g. `1m`, `90s`,
/// `1h30m`. Shared by `interval` and `timeout`.
pub const DURATION_PATTERN: &str = "^([0-9]+(ns|us|ms|s|m|h))+$";

/// A git repository (one ref, one path) that the agent keeps applied to the cluster.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "GitSync",
    namespaced,
    status = "GitSyncStatus",
    doc = "A git source that gitseal-agent keeps applied to the cluster: each pass fetches the ref, renders the path (Kustomize, or plain YAML/JSON files), opens the SealedSecrets in memory and applies everything with server-side apply, pruning what left git. `kubectl wait --for=condition=Ready gitsync/NAME` waits for a pass.",
    shortname = "gs",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncSpec {
    /// Repository URL: `https://…`, `ssh://…`, `git@host:path`, `git://…`, or `file://…`
    /// (only when the agent runs with `--allow-local-sources`).
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// What to check out: one of `branch`, `tag` or `commit`; branch `main` when empty.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRefSpec>,
    /// Folder inside the repository to render (default: the root). A folder with a
    /// `kustomization.yaml` is built with Kustomize; otherwise every `*.yaml|*.yml|*.json`
    /// below it is read, except that each subfolder holding a kustomization is built with
    /// Kustomize (Flux's bootstrap layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
    /// Time between passes, e.g. `1m`, `30s`, `1h` (default `1m`; at least `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub interval: Option<String>,
    /// Limit for each stage of a pass (fetch, render, each apply stage, prune) and for every
    /// API request in it (default `2m`; at least `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub timeout: Option<String>,
    /// Delete objects that were applied before and are gone from git.
    #[serde(default)]
    pub prune: bool,
    /// Allow a pass whose path renders to nothing to prune every object it applied before.
    #[serde(default)]
    pub allow_empty: bool,
    /// Stop passes without changing anything.
    #[serde(default)]
    pub suspend: bool,
    /// Allow plain `v1/Secret` objects with data in the repository (refused by default).
    #[serde(default)]
    pub allow_plaintext_secrets: bool,
    /// Let kustomize fetch remote bases and resources (URLs, `github.com/…?ref=`, `git@…`)
    /// for this GitSync. Takes effect only when the agent runs with `--allow-remote-bases`
    /// (whoever writes a GitSync sets this field, so the agent's admin decides); refused
    /// before rendering otherwise.
    #[serde(default)]
    pub allow_remote_bases: bool,
    /// Credentials in this namespace: `username`+`password` or `bearerToken` for https;
    /// `identity` + `known_hosts` for ssh. The Secret must be labelled
    /// `gitseal.dev/git-credentials: "true"` (and may list the hosts it may be sent to in the
    /// annotation `gitseal.dev/git-credentials-hosts`); any other Secret is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Namespace for namespaced objects that do not set one (and override for those that do).
    /// Objects that set none go to the GitSync's own namespace, or to `default` for GitSyncs
    /// in the agent's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub target_namespace: Option<String>,
    /// A ServiceAccount of this GitSync's namespace: every apply, prune and read of live
    /// objects of its passes is sent impersonating it, so its RBAC decides what the
    /// repository may change. Without one (and without the agent's
    /// `--default-service-account`), a GitSync outside the agent's namespace may write only
    /// namespaced objects of its own namespace. Whatever the ServiceAccount may do, a GitSync
    /// never writes into the agent's namespace from outside it, nor a sealing key Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// GitSyncs that must be Ready (at their current spec) before a pass of this one runs:
    /// infrastructure (CRDs, namespaces, operators) before the apps that use it. Until then
    /// this GitSync is `Ready=False`, reason `DependencyNotReady`, naming the first one it
    /// waits for. A GitSync may depend on GitSyncs of its own namespace and of the agent's
    /// namespace (the platform's); only GitSyncs in the agent's namespace may name others. A
    /// cycle is refused (`InvalidSpec`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub depends_on: Vec<DependencyReference>,
}

/// A GitSync this one waits for.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct DependencyReference {
    /// Its name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace (default: this GitSync's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub namespace: Option<String>,
}

/// One of branch, tag or commit.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.branch) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.commit) ? 1 : 0) <= 1").message("give one of branch, tag or commit, not several"))]
pub struct GitRefSpec {
    /// A branch to follow: each pass applies its newest commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub branch: Option<String>,
    /// A tag (annotated or not): the commit it points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
    /// A full 40-hex commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[0-9a-f]{40}$"))]
    pub commit: Option<String>,
}

/// An object in the referring object's own namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct LocalObjectReference {
    /// The name of the object, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What the last passes did. Conditions follow kstatus: `Ready`, `Reconciling`, `Stalled`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncStatus {
    /// `Ready` (the last pass applied the spec's revision), `Stalled` (only a change to the
    /// spec or the repository can fix what failed), kstatus-style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the last pass ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `<branch>@sha1:<commit>` of the last pass that applied everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Revision of the last pass, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The objects this GitSync may have applied: how many, and a digest of their ids. The
    /// list itself is in the `GitSyncInventory` objects of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventorySummary>,
    /// The `reconcile.gitseal.dev/requestedAt` value the last pass answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Why the last pass failed (never holds secret values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What status says of the inventory.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventorySummary {
    /// Objects recorded (applied by the last pass, plus any a failed or interrupted pass may
    /// have applied and not yet pruned).
    pub objects: usize,
    /// `GitSyncInventory` shards holding them.
    pub shards: usize,
    /// `sha256:` of the sorted object ids, one per line: equal digests, equal inventories.
    pub digest: String,
}

/// One object in an inventory.
#[derive(
    Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub struct InventoryEntry {
    /// `<namespace>_<name>_<group>_<kind>` (empty namespace for cluster objects, empty
    /// group for the core group), as Flux writes it.
    pub id: String,
    /// API version the object was applied with.
    pub v: String,
}

impl WithConditions for GitSyncStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_reads_flux_like_yaml() {
        let s: GitSyncSpec = serde_yaml::from_str(
            "url: https://example.invalid/repo.git\nref: {branch: main}\npath: ./clusters/dev\nprune: true\n",
        )
        .unwrap();
        assert_eq!(s.git_ref.unwrap().branch.as_deref(), Some("main"));
        assert!(s.prune && !s.allow_empty);
    }
}
