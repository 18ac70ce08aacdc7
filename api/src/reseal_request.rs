//! `ResealRequest`: `gitseal reseal --cluster` asks the agent to re-encrypt values, and reads
//! the new ciphertexts from its status.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most items (SealedSecrets) in one request. `gitseal reseal --cluster` sends one.
pub const MAX_RESEAL_ITEMS: usize = 256;
/// Most values in one request, all items together (as many as one SealedSecret may hold).
pub const MAX_RESEAL_VALUES: usize = 4096;
/// Most bytes of ciphertext (base64, as in the request) in one request.
pub const MAX_RESEAL_REQUEST_BYTES: usize = 512 * 1024;
/// Most bytes of an answer (its status as JSON). etcd keeps at most 1.5 MiB per object,
/// request and answer together: 512 KiB + 896 KiB leaves 128 KiB for metadata.
pub const MAX_RESEAL_ANSWER_BYTES: usize = 896 * 1024;
/// The least one value of an answer takes whatever its plaintext: the age version line (22
/// bytes), the MAC line (48), the payload nonce (16) and one chunk tag (16), 136 in base64.
/// With [`RESEAL_BYTES_PER_RECIPIENT`] it lets the agent refuse a request whose answer
/// cannot fit before it opens anything.
pub const RESEAL_BYTES_PER_VALUE: usize = 136;
/// The least an answer grows per value and recipient: an age X25519 stanza is 98 bytes
/// (`-> X25519 ` + 43 + `\n` + 43 + `\n`), 130 in base64.
pub const RESEAL_BYTES_PER_RECIPIENT: usize = 130;

/// A request to re-encrypt SealedSecret values inside the agent, so that plaintext never
/// leaves it (`gitseal reseal --cluster`). Whoever may create these in the agent's namespace
/// may re-seal; the answer holds ciphertexts only, sealed to the agent's newest active key and
/// the escrow keys of its configuration, under each value's own binding (scope, namespace,
/// name, key).
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
    /// Refused: a request that names recipients is answered with an error. The agent seals
    /// only to its own newest active key and the escrow keys its configuration names
    /// (`--escrow-recipient`), never to keys a request names (that would let anyone allowed
    /// to re-seal open any value). Kept in the schema so such a request is refused explicitly
    /// rather than having the field silently dropped by the API server.
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
