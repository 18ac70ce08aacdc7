//! The custom resources: `GitSync` (one git source, its pass settings and status) and
//! `SealedSecret` (the sealed manifest, for objects applied by other tools). The CRD YAML is
//! generated from these types by `gitseal-agent crds`, never written by hand.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "gitseal.dev";
pub const VERSION: &str = "v1alpha1";

/// A git repository (one ref, one path) that the agent keeps applied to the cluster.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "GitSync",
    namespaced,
    status = "GitSyncStatus",
    shortname = "gs",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncSpec {
    /// Repository URL: `https://…`, `ssh://…`, `git@host:path` or `file://…`.
    pub url: String,
    /// What to check out; the default branch `main` when empty.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<GitRefSpec>,
    /// Folder inside the repository to render (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between passes, e.g. `1m`, `30s`, `1h` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Limit for the fetch and for each apply stage (default `2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Credentials in this namespace: `username`+`password` or `bearerToken` for https;
    /// `identity` + `known_hosts` for ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Namespace for namespaced objects that do not set one (and override for those that do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
}

/// One of branch, tag or commit.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitRefSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A full 40-hex commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

/// What the last passes did. Conditions follow kstatus: `Ready`, `Reconciling`, `Stalled`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `<branch>@sha1:<commit>` of the last pass that applied everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Revision of the last pass, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Objects applied by the last successful pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// Why the last pass failed (never holds secret values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64"},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string"},
                "message": {"type": "string"}
            }
        }
    })
}

/// The objects a pass applied, as `namespace_name_group_kind` ids with their version.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Inventory {
    pub entries: Vec<InventoryEntry>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct InventoryEntry {
    /// `<namespace>_<name>_<group>_<kind>` (empty namespace for cluster objects, empty
    /// group for the core group), as Flux writes it.
    pub id: String,
    /// API version the object was applied with.
    pub v: String,
}

/// A Secret sealed with gitseal (see docs/FORMAT.md). The agent opens it into a Secret of
/// the same name that it owns.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "SealedSecret",
    namespaced,
    status = "SealedSecretStatus",
    doc = "A Secret sealed with gitseal. gitseal-agent opens it into a Secret of the same name and namespace, owned by this object (deleting it deletes the Secret). An existing Secret it does not own is refused (Ready False, reason SecretExists) unless that Secret is annotated gitseal.dev/managed: \"true\". The annotation gitseal.dev/scope (strict, namespace, cluster) must match how the values were sealed.",
    shortname = "gss",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// One age ciphertext (base64) per Secret key.
    pub encrypted_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A request to re-encrypt SealedSecret values inside the agent, so that plaintext never
/// leaves it (`gitseal reseal --cluster`). Whoever may create these in the agent's namespace
/// may re-seal; the answer holds ciphertexts only.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "ResealRequest",
    namespaced,
    status = "ResealRequestStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ResealRequestSpec {
    /// The SealedSecrets to re-seal.
    pub items: Vec<ResealItem>,
    /// Public keys (age1…) to seal to; empty means the agent's newest active key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResealItem {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `strict` (default), `namespace` or `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// One age ciphertext (base64) per key.
    pub encrypted_data: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResealRequestStatus {
    /// New ciphertexts, one entry per item, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<BTreeMap<String, String>>,
    /// Why the request failed (never holds secret values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The CRDs as one YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [GitSync::crd(), SealedSecret::crd(), ResealRequest::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_are_generated() {
        let y = crds_yaml().unwrap();
        assert!(y.contains("name: gitsyncs.gitseal.dev"));
        assert!(y.contains("name: sealedsecrets.gitseal.dev"));
        assert!(y.contains("x-kubernetes-list-map-keys"));
    }

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
