//! What the agent publishes about its sealing keys, as the CLI reads it: the entries of the
//! public keys ConfigMap and of the key usage ConfigMap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names::{
    ACTIVE, AGENT_FIELD_MANAGER, PUBLIC_KEYS_JSON, SEALED_SECRET_LABEL, SYNC_NAME_LABEL,
    SYNC_NAMESPACE_LABEL,
};

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
    /// The objects that need it, in order; at most [`USAGE_LISTED_PER_KEY`] of them.
    pub objects: Vec<ObjectRef>,
    /// How many objects need it, when that is more than `objects` lists (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// Objects listed per key in the usage ConfigMap: enough to see which sources still need a
/// key, while the ConfigMap stays far below the 1 MiB a ConfigMap may hold (an object is
/// listed in ~70 bytes, so listing all of them would not fit past ~15,000).
pub const USAGE_LISTED_PER_KEY: usize = 100;

impl UsageEntry {
    /// The entry for `objects` (sorted) needing a key last used on `last_used`: the first
    /// [`USAGE_LISTED_PER_KEY`] of them listed, and their number when there are more.
    pub fn new(last_used: String, mut objects: Vec<ObjectRef>) -> Self {
        let count = (objects.len() > USAGE_LISTED_PER_KEY).then_some(objects.len());
        objects.truncate(USAGE_LISTED_PER_KEY);
        UsageEntry {
            last_used,
            objects,
            count,
        }
    }

    /// How many objects need the key (listed or not).
    pub fn total(&self) -> usize {
        self.count.unwrap_or(0).max(self.objects.len())
    }

    /// How many objects need the key and are not listed.
    pub fn unlisted(&self) -> usize {
        self.total() - self.objects.len()
    }
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

/// Why a Secret labelled as a sealing key must not be used as one, if so.
///
/// The agent creates its keys under the field manager `gitseal-agent-keys`, and `gitseal keys
/// restore` writes them under `gitseal-cli`. Everything the agent writes on someone else's
/// behalf — what a GitSync pass applies, the Secret a SealedSecret opens to — it writes by
/// server-side apply under the field manager `gitseal-agent`, which the API server records in
/// `managedFields` (an apply request cannot set `managedFields` itself), with the labels naming
/// the GitSync or the SealedSecret, and, for a SealedSecret, an owner. Only a principal that may
/// write Secrets in the agent's namespace (an admin) could remove those marks. So a key Secret
/// that carries any of them was planted through the agent, and the agent and `gitseal keys
/// backup` ignore it.
pub fn untrusted_key_secret(meta: &ObjectMeta) -> Option<&'static str> {
    let applied_by_agent = meta
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(AGENT_FIELD_MANAGER));
    if applied_by_agent {
        return Some(
            "written by gitseal-agent for a GitSync or a SealedSecret (field manager gitseal-agent)",
        );
    }
    if meta
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return Some("it has an owner (the Secrets the agent opens from SealedSecrets do)");
    }
    let labels = meta.labels.as_ref();
    if [SYNC_NAME_LABEL, SYNC_NAMESPACE_LABEL, SEALED_SECRET_LABEL]
        .iter()
        .any(|l| labels.is_some_and(|m| m.contains_key(*l)))
    {
        return Some("it carries the labels of a GitSync's or a SealedSecret's objects");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};

    fn managed(manager: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            ..Default::default()
        }
    }

    #[test]
    fn keys_planted_through_the_agent_are_untrusted() {
        let mut meta = ObjectMeta {
            managed_fields: Some(vec![managed("gitseal-agent-keys")]),
            ..Default::default()
        };
        assert_eq!(untrusted_key_secret(&meta), None);
        meta.managed_fields = Some(vec![managed("gitseal-cli"), managed("kubectl-label")]);
        assert_eq!(untrusted_key_secret(&meta), None);
        meta.managed_fields = Some(vec![managed("gitseal-cli"), managed("gitseal-agent")]);
        assert!(untrusted_key_secret(&meta).is_some());
        meta.managed_fields = None;
        meta.owner_references = Some(vec![OwnerReference::default()]);
        assert!(untrusted_key_secret(&meta).is_some());
        meta.owner_references = None;
        meta.labels = Some([(SYNC_NAME_LABEL.to_owned(), "apps".to_owned())].into());
        assert!(untrusted_key_secret(&meta).is_some());
    }
}
