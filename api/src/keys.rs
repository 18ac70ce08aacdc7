//! What the agent publishes about its sealing keys, as the CLI reads it: the entries of the
//! public keys ConfigMap and of the key usage ConfigMap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::{ACTIVE, PUBLIC_KEYS_JSON};

/// A published public key (one entry of `keys.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyInfo {
    /// Key id (8 hex digits).
    pub id: String,
    /// `age1…`
    pub public_key: String,
    /// RFC 3339.
    pub created: String,
    /// `active` or `retired`.
    pub state: String,
    /// The Secret holding the private key.
    pub secret: String,
}

impl PublicKeyInfo {
    pub fn is_active(&self) -> bool {
        self.state == ACTIVE
    }
}

/// The newest active key of a list sorted oldest first: the one to seal with.
pub fn newest_active(keys: &[PublicKeyInfo]) -> Option<&PublicKeyInfo> {
    keys.iter().rev().find(|k| k.is_active())
}

/// Reads `keys.json` from the public keys ConfigMap's data (no entry: no keys).
pub fn read_public_keys(
    data: Option<&BTreeMap<String, String>>,
) -> Result<Vec<PublicKeyInfo>, serde_json::Error> {
    data.and_then(|d| d.get(PUBLIC_KEYS_JSON))
        .map(|t| serde_json::from_str(t))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Which objects need one key now, and when it was last needed (one value of the key usage
/// ConfigMap, keyed by key id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageEntry {
    /// `YYYY-MM-DD` (UTC) of the last time an object needed this key.
    pub last_used: String,
    pub objects: Vec<ObjectRef>,
}

/// An object that needs a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `gitsync:NAMESPACE/NAME` or `sealedsecret:NAMESPACE/NAME`.
    pub source: String,
    /// `namespace/name` of the SealedSecret.
    pub object: String,
}

/// Reads the key usage ConfigMap's data: key id → entry. Entries that do not parse are
/// skipped.
pub fn read_usage(data: BTreeMap<String, String>) -> BTreeMap<String, UsageEntry> {
    data.into_iter()
        .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
        .collect()
}
