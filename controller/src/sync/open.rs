//! The decrypt stage: rendered objects turned into what is applied — namespaces settled,
//! SealedSecrets opened into Secrets in memory (scope checked against the final name and
//! namespace), plaintext Secrets refused unless allowed — and, for each SealedSecret, the key
//! ids its values are sealed to (what key usage records).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::manifest::{Document, SealedSecret};
use gitseal::{Keyring, OpenError};
use gitseal_api::names::PRUNE_ANNOTATION;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::object::{Object, zeroize_json};
use crate::keys::usage::Use;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    #[error("{file}: document {document}: {object}: {message}")]
    Invalid {
        file: String,
        document: usize,
        object: String,
        message: String,
    },
    #[error("{file}: document {document}: {object}, key {key}: {error}")]
    Open {
        file: String,
        document: usize,
        object: String,
        key: String,
        error: Box<OpenError>,
    },
    #[error(
        "{file}: document {document}: plaintext {object} with data found in git; seal it (gitseal seal) or set allowPlaintextSecrets"
    )]
    Plaintext {
        file: String,
        document: usize,
        object: String,
    },
    #[error("the decrypt task failed: {0}")]
    Task(String),
}

impl DecryptError {
    pub fn kind(&self) -> &'static str {
        match self {
            DecryptError::Invalid { .. } => "invalid_sealed_secret",
            DecryptError::Open { error, .. } => match **error {
                OpenError::ScopeMismatch { .. } => "scope_mismatch",
                OpenError::NoMatchingKey { .. } => "no_matching_key",
                _ => "decrypt",
            },
            DecryptError::Plaintext { .. } => "plaintext_secret",
            DecryptError::Task(_) => "decrypt",
        }
    }
}

/// Settles each object's namespace: `target` overrides, `fallback` fills in (`default`, or
/// the GitSync's own namespace outside the agent's); cluster-scoped objects lose any
/// namespace.
pub fn settle_namespace(o: &mut Object, namespaced: bool, target: Option<&str>, fallback: &str) {
    if namespaced {
        let ns = target.or(o.namespace()).unwrap_or(fallback).to_owned();
        o.set_namespace(Some(&ns));
    } else {
        o.set_namespace(None);
    }
}

/// Whether a Secret object holds any value (`data` or `stringData`).
pub fn has_data(o: &Object) -> bool {
    let v = o.value();
    ["data", "stringData"].iter().any(|f| {
        v.get(*f)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    })
}

/// Replaces every SealedSecret by the Secret it opens to; checks plain Secrets. Objects
/// must have their final namespace already. Also returns the key ids of each SealedSecret.
///
/// Cheap checks come first, in render order (a plaintext Secret, a SealedSecret that does
/// not parse): nothing is decrypted when one fails. Then every value of every SealedSecret
/// is opened at once, spread over the cores ([`gitseal::sealing::unseal_many`]); CPU work,
/// so call it off the async runtime. The error reported is that of the first SealedSecret
/// (in render order) that does not open.
pub fn open_all(
    objects: Vec<Object>,
    ring: &Keyring,
    allow_plaintext: bool,
) -> Result<(Vec<Object>, Vec<Use>), DecryptError> {
    let mut sealed = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if o.is_secret() && !o.decrypted && has_data(o) && !allow_plaintext {
            return Err(DecryptError::Plaintext {
                file: o.source.clone(),
                document: o.document,
                object: o.describe(),
            });
        }
        if o.is_sealed_secret() {
            sealed.push((i, parse_sealed(o)?));
        }
    }
    let results = gitseal::sealing::unseal_many(sealed.iter().map(|(_, s)| (s, None)), ring);
    let mut opened = sealed.iter().zip(results).peekable();
    let mut uses = Vec::with_capacity(sealed.len());
    let mut out = Vec::with_capacity(objects.len());
    for (i, o) in objects.into_iter().enumerate() {
        let Some(((_, sealed), result)) = opened.next_if(|((at, _), _)| *at == i) else {
            out.push(o);
            continue;
        };
        let secret = result.map_err(|e| DecryptError::Open {
            file: o.source.clone(),
            document: o.document,
            object: o.describe(),
            key: e.key,
            error: Box::new(e.error),
        })?;
        out.push(secret_object(&o, sealed, secret));
        uses.push(Use::of(sealed));
    }
    Ok((out, uses))
}

/// The core model of a SealedSecret object, bound to the namespace it has now (its final
/// one: the binding is checked against where the Secret will really live).
pub fn parse_sealed(o: &Object) -> Result<SealedSecret, DecryptError> {
    let invalid = |message: String| DecryptError::Invalid {
        file: o.source.clone(),
        document: o.document,
        object: o.describe(),
        message,
    };
    let value: serde_yaml::Value =
        serde_json::from_str(o.json()).map_err(|e| invalid(e.to_string()))?;
    let doc = Document {
        source: o.source.clone(),
        index: o.document,
        prefix: String::new(),
        value,
    };
    let mut sealed = SealedSecret::from_document(&doc).map_err(|e| invalid(e.problem))?;
    sealed.namespace = o.namespace().map(str::to_owned);
    Ok(sealed)
}

/// The Secret object a SealedSecret object opened to (its values base64 in `data`,
/// overwritten when the object is dropped).
fn secret_object(o: &Object, sealed: &SealedSecret, secret: gitseal::Secret) -> Object {
    let mut data = Map::new();
    for (k, v) in &secret.data {
        data.insert(k.clone(), Value::String(B64.encode(v.expose_secret())));
    }
    Object::new(
        o.source.clone(),
        o.document,
        secret_value(o, sealed, data),
        true,
    )
}

/// The Secret a SealedSecret object becomes, with `data` (base64 values) as its data: name
/// and namespace of the SealedSecret, type, labels, annotations and immutability of its
/// template, its prune annotation. (`gitseal diff` builds the same shape without opening
/// anything.)
pub fn secret_value(o: &Object, sealed: &SealedSecret, data: Map<String, Value>) -> Value {
    let t = &sealed.template;
    let mut metadata = json!({ "name": sealed.name, "namespace": sealed.namespace });
    if !t.labels.is_empty() {
        metadata["labels"] = json!(t.labels);
    }
    if !t.annotations.is_empty() {
        metadata["annotations"] = json!(t.annotations);
    }
    // Carry the SealedSecret's prune annotation over to the Secret that replaces it.
    if let Some(p) = o.annotation(PRUNE_ANNOTATION) {
        metadata["annotations"][PRUNE_ANNOTATION] = Value::String(p);
    }
    let mut value = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": t.type_.as_deref().unwrap_or("Opaque"),
        "data": Value::Object(data),
    });
    if let Some(i) = t.immutable {
        value["immutable"] = Value::Bool(i);
    }
    value
}

/// A copy of the object safe to print: Secret values replaced by a marker.
pub fn redacted(o: &Object) -> Value {
    let mut v = std::mem::take(&mut *o.value());
    if o.is_secret() {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for val in m.values_mut() {
                    zeroize_json(val);
                    *val = Value::String("<redacted>".into());
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitseal::sealing::{SealTarget, seal_secret};
    use gitseal::{SecretKey, manifest::Secret};
    use secrecy::SecretSlice;

    fn sealed_object(key: &SecretKey, ns: &str) -> Object {
        let mut s = Secret {
            name: Some("db".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        };
        s.data
            .insert("pw".into(), SecretSlice::from(b"CANARY-42".to_vec()));
        let sealed = seal_secret(&s, &[key.public().clone()], &SealTarget::default()).unwrap();
        let value = serde_json::to_value(sealed.to_value()).unwrap();
        Object::new("a.yaml", 1, value, false)
    }

    #[test]
    fn opens_and_checks_final_namespace() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let (out, uses) = open_all(vec![sealed_object(&k, "prod")], &ring, false).unwrap();
        assert_eq!(out[0].value()["data"]["pw"], B64.encode("CANARY-42"));
        assert_eq!(uses[0].object, "prod/db");
        assert_eq!(uses[0].values, vec![vec![k.id()]]);
        let red = redacted(&out[0]).to_string();
        assert!(!red.contains(&B64.encode("CANARY-42")));
        assert!(!format!("{:?}", out[0]).contains("CANARY"));

        let mut moved = sealed_object(&k, "prod");
        settle_namespace(&mut moved, true, Some("staging"), "default");
        let e = open_all(vec![moved], &ring, false).unwrap_err();
        assert_eq!(e.kind(), "scope_mismatch");
        assert!(e.to_string().contains("a.yaml: document 1"), "{e}");
    }

    #[test]
    fn opens_many_in_render_order_and_reports_the_first_failure() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let plain = |n: usize| {
            Object::new(
                "p.yaml",
                n,
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":format!("cm-{n}"),"namespace":"prod"}}),
                false,
            )
        };
        let named = |name: &str, document: usize| {
            let mut o = sealed_object(&k, "prod");
            o.edit(|v| v["metadata"]["name"] = json!(name));
            o.document = document;
            o
        };
        // Sealed as `db`: opening it under another name fails its scope.
        let objects = vec![plain(1), sealed_object(&k, "prod"), plain(3), plain(4)];
        let (out, uses) = open_all(objects, &ring, false).unwrap();
        let kinds: Vec<&str> = out.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["ConfigMap", "Secret", "ConfigMap", "ConfigMap"]);
        assert_eq!(out[2].name(), "cm-3");
        assert_eq!(uses.len(), 1);

        let mut many: Vec<Object> = (0..40)
            .map(|i| {
                if i % 3 == 0 {
                    let mut o = sealed_object(&k, "prod");
                    o.document = i;
                    o
                } else {
                    plain(i)
                }
            })
            .collect();
        many.insert(20, named("moved-a", 100));
        many.insert(30, named("moved-b", 101));
        let e = open_all(many, &ring, false).unwrap_err();
        assert_eq!(e.kind(), "scope_mismatch");
        assert!(e.to_string().contains("document 100"), "{e}");
    }

    #[test]
    fn plaintext_secrets_stall_unless_allowed() {
        let o = || {
            Object::new(
                "s.yaml",
                2,
                json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","namespace":"y"},"stringData":{"a":"b"}}),
                false,
            )
        };
        assert_eq!(
            open_all(vec![o()], &Keyring::new(), false)
                .unwrap_err()
                .kind(),
            "plaintext_secret"
        );
        assert_eq!(
            open_all(vec![o()], &Keyring::new(), true).unwrap().0.len(),
            1
        );
    }
}
