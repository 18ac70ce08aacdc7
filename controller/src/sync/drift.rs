//! Drift at no cost: what the agent remembers of each object it applied (the hash of what it
//! sent, a fingerprint of what the server answered), so that one metadata LIST per kind tells
//! whether anything changed on either side.

use kube::core::ObjectMeta;
use sha2::{Digest, Sha256};

use super::object::Object;

/// What the agent remembers of one object it applied: the hash of what it sent and the
/// fingerprint of what the server answered with. Kept in memory only (a hash of a Secret
/// must not be published).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Applied {
    pub(super) hash: [u8; 32],
    pub(super) fingerprint: String,
    /// The labels and annotations the agent sets on it (part of the fingerprint).
    pub(super) managed: Vec<(&'static str, String)>,
    /// Discovery key of its kind, to list it again.
    pub(super) kind: KindKey,
}

/// (group, version, kind): how discovery results are cached.
pub(super) type KindKey = (String, String, String);

/// The label and annotation keys an object sets.
pub(super) fn managed_keys(desired: &serde_json::Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for field in ["labels", "annotations"] {
        if let Some(m) = desired
            .pointer(&format!("/metadata/{field}"))
            .and_then(serde_json::Value::as_object)
        {
            out.extend(m.keys().map(|k| (field, k.clone())));
        }
    }
    out
}

/// What identifies "the live object is still as the agent left it", from metadata alone
/// (so one metadata LIST per kind answers it).
///
/// Objects with a `generation` (Deployments, CRs, …) change it on every spec change but not
/// when a controller writes their status, so their fingerprint is the generation plus the
/// values of the labels and annotations the agent sets; a busy Deployment whose status moves
/// every second is not re-applied for it. Objects without a generation (ConfigMaps, Secrets,
/// Services) have no status churn worth the name: their resourceVersion is the fingerprint.
pub(super) fn fingerprint(meta: &ObjectMeta, managed: &[(&'static str, String)]) -> String {
    let Some(generation) = meta.generation else {
        return format!(
            "rv:{}",
            meta.resource_version.as_deref().unwrap_or_default()
        );
    };
    let mut h = Sha256::new();
    for (field, key) in managed {
        let live = if *field == "labels" {
            &meta.labels
        } else {
            &meta.annotations
        };
        h.update(field.as_bytes());
        h.update(key.as_bytes());
        h.update([0]);
        if let Some(v) = live.as_ref().and_then(|l| l.get(key)) {
            h.update(v.as_bytes());
        }
        h.update([0]);
    }
    let digest = h.finalize();
    format!(
        "gen:{generation}:{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

/// The hash of what is sent for `o`: the object as rendered plus the labels naming its
/// source `owner` (set just before it is sent).
pub(super) fn hash_of(o: &Object, owner: (&str, &str)) -> [u8; 32] {
    // The object's text is canonical (serde_json maps are sorted).
    let mut h = Sha256::new();
    h.update(o.json().as_bytes());
    for part in [owner.0, owner.1] {
        h.update([0]);
        h.update(part.as_bytes());
    }
    h.finalize().into()
}
