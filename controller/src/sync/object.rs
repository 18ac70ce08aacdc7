//! A rendered manifest and its identity.

use std::fmt;

use serde_json::Value;
use zeroize::Zeroize;

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

/// One manifest to apply. It may be a decrypted Secret, so `Debug` shows only its identity
/// and its strings are overwritten when it is dropped.
pub struct Object {
    /// The file (or `kustomize build <dir>`) it came from.
    pub source: String,
    /// 1-based document number in that source.
    pub document: usize,
    pub value: Value,
    /// True for Secrets produced from a SealedSecret.
    pub decrypted: bool,
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

impl Drop for Object {
    fn drop(&mut self) {
        zeroize_json(&mut self.value);
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

impl Object {
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    /// (group, version) of `apiVersion`.
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version()),
        }
    }
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    pub fn set_namespace(&mut self, ns: Option<&str>) {
        if let Some(meta) = self
            .value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
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
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }
    pub fn set_label(&mut self, key: &str, value: &str) {
        if let Some(meta) = self
            .value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
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
