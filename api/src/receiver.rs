//! `Receiver`: a push webhook (GitHub, GitLab or generic HMAC-SHA256) that starts a pass of one
//! GitSync of its own namespace, as Flux's `Receiver` does for its sources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::LocalObjectReference;
use crate::conditions::{WithConditions, conditions_schema};

/// A webhook that starts a pass of one GitSync of this namespace when the git host reports a
/// push. The agent serves it on its webhook address (`--webhook-addr`) at the path in
/// `status.webhookPath`; a request must carry the provider's proof of the token held in the
/// Secret `secretRef` names (key `token`, at least 16 bytes; the Secret must be labelled
/// gitseal.dev/receiver-token: "true"). The request only starts a pass: what is fetched is the
/// GitSync's own URL and ref, never anything the request names.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "gitseal.dev",
    version = "v1alpha1",
    kind = "Receiver",
    namespaced,
    status = "ReceiverStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".status.webhookPath"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// How requests prove they know the token: `github` (`X-Hub-Signature-256`, HMAC-SHA256
    /// of the body), `gitlab` (`X-Gitlab-Token`, the token itself) or `generic`
    /// (`X-Signature: sha256=<hex HMAC-SHA256 of the body>`; with
    /// `X-Signature-Timestamp: <unix seconds>` the HMAC covers `<timestamp>.<body>` and the
    /// request is accepted within five minutes of that time, once).
    #[serde(rename = "type")]
    pub type_: ReceiverType,
    /// The GitSync of this namespace whose pass a push starts.
    pub git_sync_ref: LocalObjectReference,
    /// A Secret of this namespace, labelled gitseal.dev/receiver-token: "true", whose key
    /// `token` holds the webhook secret (at least 16 bytes).
    pub secret_ref: LocalObjectReference,
}

/// Which git host's webhook format a Receiver accepts.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverType {
    Github,
    Gitlab,
    Generic,
}

impl ReceiverType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverType::Github => "github",
            ReceiverType::Gitlab => "gitlab",
            ReceiverType::Generic => "generic",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the git host must send its requests, on the agent's webhook address:
    /// `/hook/<sha256 of the namespace, name and token>` (a new token gives a new path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
}

impl WithConditions for ReceiverStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_reads_flux_like_yaml() {
        let s: ReceiverSpec = serde_yaml::from_str(
            "type: github\ngitSyncRef: {name: apps}\nsecretRef: {name: webhook-token}\n",
        )
        .unwrap();
        assert_eq!(s.type_, ReceiverType::Github);
        assert_eq!(s.git_sync_ref.name, "apps");
        assert!(
            serde_yaml::from_str::<ReceiverSpec>(
                "type: bitbucket\ngitSyncRef: {name: a}\nsecretRef: {name: b}\n"
            )
            .is_err()
        );
    }
}
