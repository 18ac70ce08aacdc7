//! A rendered manifest and its identity.

use std::fmt;

use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

/// Identity of an object in the cluster: group, kind, namespace, name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// Flux-style inventory id: `<namespace>_<name>_<group>_<kind>`.
    pub fn inventory_id(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.namespace.as_deref().unwrap_or_default(),
            self.name,
            self.group,
            self.kind
        )
    }

    /// Parses [`ObjectId::inventory_id`]. Names and namespaces never hold `_`; groups
    /// never do either.
    pub fn from_inventory_id(id: &str) -> Option<ObjectId> {
        let mut parts = id.splitn(4, '_');
        let ns = parts.next()?;
        let name = parts.next()?;
        let group = parts.next()?;
        let kind = parts.next()?;
        if name.is_empty() || kind.is_empty() {
            return None;
        }
        Some(ObjectId {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: (!ns.is_empty()).then(|| ns.to_owned()),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// One manifest to apply, kept as compact JSON text from render to apply: a rendered object
/// costs its text and a few header strings, not a tree of maps (a `serde_json::Value` of a
/// small Deployment is a dozen B-tree nodes of half a kilobyte each — 10,000 objects held as
/// values were most of the agent's peak memory). The text is canonical (serde_json's maps
/// are sorted), so it is also what the drift hash covers. It may be a decrypted Secret: `Debug`
/// shows only its identity, and the text and every parsed copy are overwritten when dropped.
pub struct Object {
    /// The file (or `kustomize build <dir>`) it came from.
    pub source: String,
    /// 1-based document number in that source.
    pub document: usize,
    /// True for Secrets produced from a SealedSecret.
    pub decrypted: bool,
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
    json: Zeroizing<String>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Object({} from {} #{})",
            self.describe(),
            self.source,
            self.document
        )
    }
}

pub fn zeroize_json(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(zeroize_json),
        Value::Object(m) => m.values_mut().for_each(zeroize_json),
        _ => {}
    }
}

/// A parsed copy of an [`Object`], overwritten when dropped (it may hold a Secret's values).
#[derive(serde::Serialize)]
#[serde(transparent)]
pub struct Parsed(Value);

impl std::ops::Deref for Parsed {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

impl std::ops::DerefMut for Parsed {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.0
    }
}

impl Drop for Parsed {
    fn drop(&mut self) {
        zeroize_json(&mut self.0);
    }
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Parsed(..)")
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Object {
    /// The object `value` (overwritten once turned into text) from document `document` of
    /// `source`.
    pub fn new(source: impl Into<String>, document: usize, value: Value, decrypted: bool) -> Self {
        let value = Parsed(value);
        let mut o = Object {
            source: source.into(),
            document,
            decrypted,
            api_version: String::new(),
            kind: String::new(),
            name: String::new(),
            namespace: None,
            json: Zeroizing::new(String::new()),
        };
        o.store(&value);
        o
    }

    fn store(&mut self, value: &Value) {
        self.api_version = str_at(value, "/apiVersion").to_owned();
        self.kind = str_at(value, "/kind").to_owned();
        self.name = str_at(value, "/metadata/name").to_owned();
        self.namespace = Some(str_at(value, "/metadata/namespace"))
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        // Serialising a `Value` cannot fail (its keys are strings); `Display` is that
        // serialisation, compact.
        self.json = Zeroizing::new(value.to_string());
    }

    /// The object as compact, canonical JSON.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// A parsed copy of the object.
    pub fn value(&self) -> Parsed {
        // The text is `Value` serialised by `store`: it always parses back.
        Parsed(serde_json::from_str(&self.json).unwrap_or(Value::Null))
    }

    /// Changes the object through a parsed copy.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        let mut v = self.value();
        f(&mut v);
        self.store(&v);
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// (group, version) of `apiVersion`.
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version()),
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    /// Sets (or with `None` removes) `metadata.namespace`; nothing to do when it is already
    /// so.
    pub fn set_namespace(&mut self, ns: Option<&str>) {
        if self.namespace() == ns {
            return;
        }
        self.edit(|v| set_namespace(v, ns));
    }
    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<String> {
        self.value()
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
    pub fn id(&self) -> ObjectId {
        ObjectId {
            group: self.group_version().0.to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
    pub fn describe(&self) -> String {
        self.id().to_string()
    }
    pub fn is_crd(&self) -> bool {
        self.kind() == "CustomResourceDefinition"
            && self.group_version().0 == "apiextensions.k8s.io"
    }
    pub fn is_namespace(&self) -> bool {
        self.kind() == "Namespace" && self.api_version() == "v1"
    }
    pub fn is_secret(&self) -> bool {
        self.kind() == "Secret" && self.api_version() == "v1"
    }
    pub fn is_sealed_secret(&self) -> bool {
        self.kind() == "SealedSecret" && self.group_version().0 == gitseal_api::names::GROUP
    }
    /// Apply stage: CRDs and Namespaces first, then everything else.
    pub fn stage(&self) -> usize {
        if self.is_crd() || self.is_namespace() {
            0
        } else {
            1
        }
    }
}

/// Kinds defined by the CRDs among `objects`, by (group, kind): namespaced or not (a pass's
/// own CRDs are not known to discovery before they are applied).
pub fn crd_scopes(objects: &[Object]) -> std::collections::HashMap<(String, String), bool> {
    objects
        .iter()
        .filter(|o| o.is_crd())
        .filter_map(|o| {
            let v = o.value();
            let group = v.pointer("/spec/group")?.as_str()?.to_owned();
            let kind = v.pointer("/spec/names/kind")?.as_str()?.to_owned();
            let namespaced = v.pointer("/spec/scope")?.as_str()? == "Namespaced";
            Some(((group, kind), namespaced))
        })
        .collect()
}

/// Sets (or with `None` removes) `metadata.namespace` of an object's value.
pub fn set_namespace(v: &mut Value, ns: Option<&str>) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        match ns {
            Some(ns) => {
                meta.insert("namespace".into(), Value::String(ns.to_owned()));
            }
            None => {
                meta.remove("namespace");
            }
        }
    }
}

/// Sets label `key` of an object's value (the agent's own labels, just before it is sent).
pub fn set_label(v: &mut Value, key: &str, value: &str) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if !labels.is_object() {
            *labels = Value::Object(Default::default());
        }
        if let Some(l) = labels.as_object_mut() {
            l.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Kinds known to be cluster-scoped, for `--plan` without a cluster (with a cluster the
/// API's discovery says).
pub fn known_cluster_scoped(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Namespace" | "Node" | "PersistentVolume")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | (
                "rbac.authorization.k8s.io",
                "ClusterRole" | "ClusterRoleBinding"
            )
            | (
                "storage.k8s.io",
                "StorageClass" | "CSIDriver" | "VolumeAttachment"
            )
            | ("scheduling.k8s.io", "PriorityClass")
            | ("networking.k8s.io", "IngressClass")
            | ("node.k8s.io", "RuntimeClass")
            | ("apiregistration.k8s.io", "APIService")
            | (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_ids_round_trip() {
        for id in [
            ObjectId {
                group: "apps".into(),
                kind: "Deployment".into(),
                namespace: Some("dev".into()),
                name: "web".into(),
            },
            ObjectId {
                group: "".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: "dev".into(),
            },
        ] {
            assert_eq!(ObjectId::from_inventory_id(&id.inventory_id()), Some(id));
        }
        assert_eq!(ObjectId::from_inventory_id("a_b"), None);
    }
}
