//! What a SealedSecret object opens to, and whether its Secret already is that: the desired
//! Secret (template, owner reference, label), the comparison with the live Secret (only the
//! fields this agent owns count), and the one write that makes it so — or the refusal to
//! touch a Secret it does not own.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::manifest::Document;
use gitseal::{Keyring, OpenError};
use gitseal_api::SealedSecret;
use gitseal_api::names::{
    AGENT_FIELD_MANAGER, MANAGED_ANNOTATION, SEALED_SECRET_LABEL, SEALING_KEY_LABEL,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Map, Value, json};

use crate::kube_error::kube_message;
use crate::sync::object::zeroize_json;
use crate::sync::tenancy::has_sealing_key_label;

/// Why a SealedSecret could not be turned into its Secret: a condition reason and a message
/// that never holds secret bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) reason: &'static str,
    pub(super) message: String,
    /// Only a change of the SealedSecret can fix it (kstatus `Stalled`).
    pub(super) stalled: bool,
    /// An API call failed: retried with the error policy.
    pub(super) transient: bool,
}

impl Failure {
    pub(super) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            stalled: false,
            transient: false,
        }
    }
    fn stalled(mut self) -> Self {
        self.stalled = true;
        self
    }
    pub(super) fn api(what: &str, e: &kube::Error) -> Self {
        Failure {
            reason: "ApiError",
            message: format!("{what}: {}", kube_message(e)),
            stalled: false,
            transient: true,
        }
    }
}

/// What happened to the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Unchanged,
    Created,
    Updated,
    /// Deleted and created again: its type changed, or it is immutable and its content did.
    Recreated,
    /// An existing Secret annotated `gitseal.dev/managed: "true"` became this SealedSecret's;
    /// the annotation now holds its uid, so no other SealedSecret can take it over.
    TakenOver,
}

/// The Secret a SealedSecret opens to, as a server-side apply body. Its `data` holds
/// plaintext (base64): overwritten on drop, and never printed.
pub(super) struct Desired {
    body: Value,
    /// Plaintext values by key, for comparing with the live Secret.
    pub(super) data: BTreeMap<String, SecretSlice<u8>>,
    type_: String,
    immutable: Option<bool>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Desired {
    /// Keeps (or sets) `gitseal.dev/managed: <uid>` on the Secret: the takeover is bound to
    /// this SealedSecret.
    fn bind(&mut self, uid: &str) {
        self.annotations
            .insert(MANAGED_ANNOTATION.to_owned(), uid.to_owned());
        self.body["metadata"]["annotations"] = json!(self.annotations);
    }
}

impl Drop for Desired {
    fn drop(&mut self) {
        zeroize_json(&mut self.body);
    }
}

/// The CR as the core model's SealedSecret; the scope comes from its `gitseal.dev/scope`
/// annotation and the binding is checked against its own namespace and name.
pub(super) fn to_core(ss: &SealedSecret) -> Result<gitseal::SealedSecret, Failure> {
    let spec = serde_json::to_value(&ss.spec)
        .map_err(|e| Failure::new("InvalidSpec", format!("spec: {e}")).stalled())?;
    let value = json!({
        "apiVersion": gitseal::manifest::API_VERSION,
        "kind": gitseal::manifest::KIND,
        "metadata": {
            "name": ss.metadata.name,
            "namespace": ss.metadata.namespace,
            "labels": ss.metadata.labels.clone().unwrap_or_default(),
            "annotations": ss.metadata.annotations.clone().unwrap_or_default(),
        },
        "spec": spec,
    });
    let value = serde_yaml::to_value(&value)
        .map_err(|e| Failure::new("InvalidSpec", format!("spec: {e}")).stalled())?;
    let doc = Document {
        source: "SealedSecret".into(),
        index: 1,
        prefix: String::new(),
        value,
    };
    gitseal::SealedSecret::from_document(&doc).map_err(|e| {
        let message = match e.field {
            Some(f) => format!("{f}: {}", e.problem),
            None => e.problem,
        };
        Failure::new("InvalidSpec", message).stalled()
    })
}

/// Refuses a template that sets what only the agent may set on the Secret it produces: the
/// takeover annotation, and the sealing-key label (a Secret carrying it in the agent's
/// namespace would be taken for one of its keys; none carries it anywhere else either).
pub(super) fn check_template(core: &gitseal::SealedSecret) -> Result<(), Failure> {
    if core.template.labels.contains_key(SEALING_KEY_LABEL) {
        return Err(Failure::new(
            "InvalidSpec",
            format!(
                "spec.template.metadata.labels: {SEALING_KEY_LABEL} marks the agent's sealing keys; no SealedSecret may produce a Secret carrying it (rule sealing-key)"
            ),
        )
        .stalled());
    }
    if core.template.annotations.contains_key(MANAGED_ANNOTATION) {
        return Err(Failure::new(
            "InvalidSpec",
            format!(
                "spec.template.metadata.annotations: {MANAGED_ANNOTATION} is set by gitseal-agent when it takes a Secret over; a template may not set it"
            ),
        )
        .stalled());
    }
    Ok(())
}

/// Opens every value, checking the scope against the SealedSecret's own namespace and name.
pub(super) fn open(
    core: &gitseal::SealedSecret,
    ring: &Keyring,
) -> Result<gitseal::Secret, Failure> {
    gitseal::sealing::unseal(core, ring, None).map_err(|e| {
        let message = e.to_string();
        match e.error {
            OpenError::ScopeMismatch { .. } => Failure::new("ScopeMismatch", message).stalled(),
            // A key may be restored or added later: retried, not stalled.
            OpenError::NoMatchingKey { .. } => Failure::new("NoMatchingKey", message),
            _ => Failure::new("DecryptFailed", message).stalled(),
        }
    })
}

pub(super) fn desired(ss: &SealedSecret, secret: gitseal::Secret, uid: &str) -> Desired {
    let name = ss.name_any();
    let mut labels = secret.labels.clone();
    labels.insert(SEALED_SECRET_LABEL.into(), "true".into());
    let annotations = secret.annotations.clone();
    let type_ = secret.type_.clone().unwrap_or_else(|| "Opaque".into());
    let mut data = Map::new();
    for (k, v) in &secret.data {
        data.insert(k.clone(), Value::String(B64.encode(v.expose_secret())));
    }
    let mut metadata = json!({
        "name": name,
        "namespace": ss.namespace(),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": SealedSecret::api_version(&()),
            "kind": SealedSecret::kind(&()),
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": type_,
        "data": Value::Object(data),
    });
    if let Some(i) = secret.immutable {
        body["immutable"] = Value::Bool(i);
    }
    let gitseal::Secret {
        data, immutable, ..
    } = secret;
    Desired {
        body,
        data,
        type_,
        immutable,
        labels,
        annotations,
    }
}

/// Keys under `path` (e.g. `["f:metadata", "f:labels"]`) in the fields this agent applied.
fn owned_keys(live: &Secret, path: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in live.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(AGENT_FIELD_MANAGER)
            || entry.operation.as_deref() != Some("Apply")
        {
            continue;
        }
        let Some(fields) = &entry.fields_v1 else {
            continue;
        };
        let node = path.iter().try_fold(&fields.0, |v, p| v.get(*p));
        if let Some(Value::Object(m)) = node {
            out.extend(
                m.keys()
                    .filter_map(|k| k.strip_prefix("f:"))
                    .map(str::to_owned),
            );
        }
    }
    out
}

/// Whether the live map holds every wanted entry, and this agent owns no key it no longer
/// wants (a key someone else added is theirs, and left alone).
fn map_matches(
    live: Option<&BTreeMap<String, String>>,
    want: &BTreeMap<String, String>,
    owned: &BTreeSet<String>,
) -> bool {
    let empty = BTreeMap::new();
    let live = live.unwrap_or(&empty);
    want.iter().all(|(k, v)| live.get(k) == Some(v)) && owned.iter().all(|k| want.contains_key(k))
}

/// Whether the live Secret already is what the SealedSecret opens to.
fn up_to_date(live: &Secret, want: &Desired, uid: &str) -> bool {
    let owner = live
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true));
    let empty = BTreeMap::new();
    let live_data = live.data.as_ref().unwrap_or(&empty);
    let data = want.data.iter().all(|(k, v)| {
        live_data
            .get(k)
            .is_some_and(|l| l.0.as_slice() == v.expose_secret())
    }) && owned_keys(live, &["f:data"])
        .iter()
        .all(|k| want.data.contains_key(k));
    let immutable = match want.immutable {
        Some(i) => live.immutable.unwrap_or(false) == i,
        None => !owned_keys(live, &[]).contains("immutable"),
    };
    owner
        && data
        && immutable
        && live.type_.as_deref().unwrap_or("Opaque") == want.type_
        && map_matches(
            live.metadata.labels.as_ref(),
            &want.labels,
            &owned_keys(live, &["f:metadata", "f:labels"]),
        )
        && map_matches(
            live.metadata.annotations.as_ref(),
            &want.annotations,
            &owned_keys(live, &["f:metadata", "f:annotations"]),
        )
}

/// Refuses a Secret `name` that exists and that this SealedSecret (`uid`) neither owns nor may
/// take over ([`may_take_over`]): checked before anything is opened, and again before the write.
pub(super) fn refuse_unowned(live: Option<&Secret>, uid: &str, name: &str) -> Result<(), Failure> {
    let Some(live) = live else {
        return Ok(());
    };
    let owned = live
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid);
    if !owned {
        may_take_over(live, uid, name)?;
    }
    Ok(())
}

/// Whether this SealedSecret (`uid`) may write an existing Secret it does not own yet: only
/// when the Secret is annotated `gitseal.dev/managed: "true"` (the first SealedSecret to come
/// takes it over, once) or already bound to this uid, and no other controller owns it.
fn may_take_over(live: &Secret, uid: &str, name: &str) -> Result<bool, Failure> {
    let other_owner = live
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| format!(" (it is controlled by {} {})", r.kind, r.name));
    let annotation = live
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MANAGED_ANNOTATION))
        .map(String::as_str);
    let refused = |why: String| Err(Failure::new("SecretExists", why));
    match (annotation, other_owner) {
        (_, Some(owner)) => refused(format!(
            "Secret {name} already exists and is not owned by this SealedSecret{owner}; delete it, or remove that owner first"
        )),
        (Some("true"), None) => Ok(true),
        (Some(v), None) if v == uid => Ok(false),
        (Some(other), None) => refused(format!(
            "Secret {name} already exists and was taken over by another SealedSecret (uid {}): its {MANAGED_ANNOTATION} annotation is bound to that one; to hand it to this SealedSecret, set {MANAGED_ANNOTATION}=true on the Secret again",
            gitseal::scope::printable(other)
        )),
        (None, None) => refused(format!(
            "Secret {name} already exists and is not owned by this SealedSecret; delete it, or annotate it {MANAGED_ANNOTATION}=true to let gitseal-agent take it over (once, by the first SealedSecret of this name)"
        )),
    }
}

/// Makes the Secret what the SealedSecret opens to, writing only when it differs.
pub(super) async fn decide_and_write(
    api: &Api<Secret>,
    live: Option<&Secret>,
    want: &mut Desired,
    uid: &str,
    name: &str,
) -> Result<Change, Failure> {
    let mut change = Change::Created;
    let mut precondition = None;
    if let Some(live) = live {
        if has_sealing_key_label(&live.metadata) {
            return Err(Failure::new(
                "SecretExists",
                format!(
                    "Secret {name} is a sealing key Secret (labelled {SEALING_KEY_LABEL}); no SealedSecret may write it (rule sealing-key)"
                ),
            )
            .stalled());
        }
        let owned = live
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid);
        let take_over = !owned && may_take_over(live, uid, name)?;
        let bound = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MANAGED_ANNOTATION))
            .is_some_and(|v| v == uid);
        if take_over || bound {
            want.bind(uid);
        }
        if !take_over && up_to_date(live, want, uid) {
            return Ok(Change::Unchanged);
        }
        change = if take_over {
            Change::TakenOver
        } else {
            Change::Updated
        };
        // The type of a Secret never changes, nor does anything in an immutable one. Both
        // writes happen only if the Secret is still as read (annotated "true" for a
        // takeover): the delete has preconditions, the apply a resourceVersion.
        if live.type_.as_deref().unwrap_or("Opaque") != want.type_ || live.immutable == Some(true) {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: live.metadata.uid.clone(),
                    resource_version: live.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            api.delete(name, &dp)
                .await
                .map_err(|e| Failure::api(&format!("deleting Secret {name} to recreate it"), &e))?;
            if !take_over {
                change = Change::Recreated;
            }
        } else if take_over {
            precondition = live.metadata.resource_version.clone();
        }
    }
    let mut body = want.body.clone();
    if let Some(rv) = precondition {
        body["metadata"]["resourceVersion"] = json!(rv);
    }
    let result = api
        .patch(
            name,
            &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await;
    zeroize_json(&mut body);
    result.map_err(|e| Failure::api(&format!("applying Secret {name}"), &e))?;
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitseal::SecretKey;
    use gitseal::sealing::{SealTarget, seal_secret};
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, OwnerReference,
    };

    const CANARY: &str = "CANARY-unit-77";

    fn cr(key: &SecretKey, ns: &str, sealed_ns: &str) -> SealedSecret {
        let mut s = gitseal::Secret {
            name: Some("db".into()),
            namespace: Some(sealed_ns.into()),
            ..Default::default()
        };
        s.data
            .insert("pw".into(), SecretSlice::from(CANARY.as_bytes().to_vec()));
        let sealed = seal_secret(&s, &[key.public().clone()], &SealTarget::default()).unwrap();
        let mut v: Value = serde_json::to_value(sealed.to_value()).unwrap();
        v["metadata"]["namespace"] = json!(ns);
        v["metadata"]["uid"] = json!("u-1");
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn opens_in_place_and_refuses_a_copy() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let ss = cr(&k, "prod", "prod");
        let want = desired(&ss, open(&to_core(&ss).unwrap(), &ring).unwrap(), "u-1");
        assert_eq!(want.body["data"]["pw"], B64.encode(CANARY));
        assert_eq!(
            want.body["metadata"]["ownerReferences"][0]["controller"],
            true
        );
        assert_eq!(want.body["metadata"]["labels"][SEALED_SECRET_LABEL], "true");

        let copy = cr(&k, "staging", "prod");
        let f = open(&to_core(&copy).unwrap(), &ring).unwrap_err();
        assert_eq!(f.reason, "ScopeMismatch");
        assert!(f.message.contains("scope mismatch") && !f.message.contains(CANARY));

        let f = open(&to_core(&ss).unwrap(), &Keyring::new()).unwrap_err();
        assert_eq!(f.reason, "NoMatchingKey");
        assert!(!f.stalled);
    }

    #[test]
    fn bad_scope_annotation_is_invalid_spec() {
        let k = SecretKey::generate();
        let mut ss = cr(&k, "prod", "prod");
        ss.metadata.annotations = Some(BTreeMap::from([(
            gitseal::Scope::ANNOTATION.to_owned(),
            "galaxy".to_owned(),
        )]));
        let f = to_core(&ss).unwrap_err();
        assert_eq!(f.reason, "InvalidSpec");
        assert!(f.message.contains("gitseal.dev/scope"), "{}", f.message);
    }

    #[test]
    fn up_to_date_compares_data_owner_and_owned_fields() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let ss = cr(&k, "prod", "prod");
        let want = desired(&ss, open(&to_core(&ss).unwrap(), &ring).unwrap(), "u-1");
        let mut live = Secret {
            data: Some(BTreeMap::from([(
                "pw".to_owned(),
                ByteString(CANARY.as_bytes().to_vec()),
            )])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        live.metadata.labels = Some(BTreeMap::from([(
            SEALED_SECRET_LABEL.to_owned(),
            "true".to_owned(),
        )]));
        assert!(!up_to_date(&live, &want, "u-1"), "no ownerReference");
        live.metadata.owner_references = Some(vec![OwnerReference {
            uid: "u-1".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert!(up_to_date(&live, &want, "u-1"));
        // A key someone else added is left alone; one this agent applied before is removed.
        if let Some(d) = live.data.as_mut() {
            d.insert("extra".into(), ByteString(b"x".to_vec()));
        }
        assert!(up_to_date(&live, &want, "u-1"));
        live.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(AGENT_FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(json!({"f:data": {"f:pw": {}, "f:extra": {}}}))),
            ..Default::default()
        }]);
        assert!(!up_to_date(&live, &want, "u-1"));
        if let Some(d) = live.data.as_mut() {
            d.remove("extra");
            d.insert("pw".into(), ByteString(b"changed".to_vec()));
        }
        assert!(!up_to_date(&live, &want, "u-1"));
    }
}
