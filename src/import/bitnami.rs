//! Bitnami Sealed Secrets: the controller's RSA key files and its hybrid value format.
//!
//! A value is `len (u16, big endian) || RSA-OAEP-SHA256(session key, label) ||
//! AES-256-GCM(session key, nonce = 12 zero bytes, plaintext)`, with a fresh 32-byte
//! session key per value. The OAEP label binds the scope: `namespace/name` (strict),
//! `namespace` (namespace-wide) or empty (cluster-wide); the scope is read from the
//! `sealedsecrets.bitnami.com/{cluster,namespace}-wide: "true"` annotations.
//!
//! Key files are what the controller keeps: PEM private keys (PKCS#1 `RSA PRIVATE KEY` or
//! PKCS#8 `PRIVATE KEY`, certificates alongside are skipped) or the key Secrets as
//! `kubectl get secret -o yaml|json` prints them (`data."tls.key"`, one Secret or a List).

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::{Digest, Sha256};
use rsa::traits::PublicKeyParts;
use secrecy::SecretSlice;
use serde_yaml::Value;
use zeroize::Zeroizing;

use crate::format::MAX_CIPHERTEXT_BYTES;
use crate::manifest::{
    Document, ManifestError, Secret, StringMap, data_key, mapping_field, parse_documents,
    read_meta, str_field, string_map,
};
use crate::scope::{Scope, printable};

/// The API group of Bitnami's SealedSecret.
pub const API_GROUP: &str = "bitnami.com";
/// Annotation marking a cluster-wide SealedSecret.
pub const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Annotation marking a namespace-wide SealedSecret.
pub const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// Largest number of private keys read from key files: a controller keeps one per renewal
/// period (30 days by default), so a few hundred covers decades.
pub const MAX_KEYS: usize = 1024;
/// RSA moduli accepted, in bits. The controller makes 4096-bit keys.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 16384;
const SESSION_KEY_BYTES: usize = 32;

/// Whether `doc` is a Bitnami SealedSecret (any `bitnami.com/*` version).
pub fn is_bitnami(doc: &Document) -> bool {
    doc.kind() == Some("SealedSecret")
        && doc
            .api_version()
            .is_some_and(|v| v.split('/').next() == Some(API_GROUP))
}

/// One controller private key. Never printed: `Debug` shows its fingerprint only.
pub struct RsaKey {
    key: PrivateKey,
    fingerprint: String,
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaKey({} [redacted])", self.fingerprint)
    }
}

impl RsaKey {
    fn new(key: PrivateKey) -> Self {
        // A short public fingerprint to name keys in messages: SHA-256 of the modulus.
        let digest = Sha256::digest(key.n_bytes());
        let fingerprint = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        RsaKey { key, fingerprint }
    }

    /// Eight bytes of SHA-256 of the public modulus, in hex: public, for messages.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The controller keys able to open Bitnami SealedSecrets.
#[derive(Debug, Default)]
pub struct RsaKeyring {
    keys: Vec<RsaKey>,
}

/// Why a key file could not be read. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {problem}", location.as_ref().map(|l| format!(", {l}")).unwrap_or_default())]
pub struct KeyFileError {
    pub file: String,
    /// `PEM block 2`, `document 1, field `data.tls.key``, …
    pub location: Option<String>,
    pub problem: String,
}

impl RsaKeyring {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(RsaKey::fingerprint)
    }

    /// Adds every private key of a key file (PEM, or key Secrets in YAML/JSON); returns how
    /// many. `file` names the file in errors. Keys already in the ring are not added twice.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<usize, KeyFileError> {
        let err = |location: Option<String>, problem: &str| KeyFileError {
            file: file.to_owned(),
            location,
            problem: problem.to_owned(),
        };
        let keys = if text.trim_start().starts_with("-----BEGIN") {
            pem_keys(text).map_err(|(block, why)| err(Some(format!("PEM block {block}")), why))?
        } else {
            secret_keys(file, text)?
        };
        if keys.is_empty() {
            return Err(err(
                None,
                "holds no RSA private key (expected PEM `RSA PRIVATE KEY` / `PRIVATE KEY` blocks, or the controller's key Secrets: kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml)",
            ));
        }
        let mut added = 0;
        for k in keys {
            if self.keys.iter().any(|have| have.key == k.key) {
                continue;
            }
            if self.keys.len() >= MAX_KEYS {
                return Err(err(None, "more than 1024 private keys in all; refusing"));
            }
            self.keys.push(k);
            added += 1;
        }
        Ok(added)
    }
}

/// Private keys of the PEM blocks in `text`. Certificates are skipped (a key Secret's
/// `tls.crt` often travels in the same file). Errors are (1-based block, why).
fn pem_keys(text: &str) -> Result<Vec<RsaKey>, (usize, &'static str)> {
    let mut keys = Vec::new();
    let mut rest = text;
    let mut block = 0;
    while let Some(start) = rest.find("-----BEGIN ") {
        block += 1;
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            return Err((block, "malformed PEM header"));
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            return Err((block, "PEM block without its END line (truncated?)"));
        };
        let pem = Zeroizing::new(rest[start..start + end + end_marker.len()].to_owned());
        rest = &rest[start + end + end_marker.len()..];
        let key = match label {
            "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_pem(&pem)
                .map_err(|_| (block, "not a valid PKCS#1 RSA private key"))?,
            "PRIVATE KEY" => PrivateKey::from_pkcs8_pem(&pem).map_err(|_| {
                (
                    block,
                    "not a valid PKCS#8 RSA private key (is it an EC key?)",
                )
            })?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err((
                    block,
                    "the private key is passphrase-protected; decrypt it first (openssl pkey -in KEY -out KEY.pem)",
                ));
            }
            "CERTIFICATE" => continue,
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err((
                    block,
                    "this is a public key; importing needs the controller's private key",
                ));
            }
            _ => return Err((block, "not an RSA private key or certificate")),
        };
        let bits = key.size() * 8;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err((block, "RSA key size outside 2048..16384 bits"));
        }
        keys.push(RsaKey::new(key));
    }
    Ok(keys)
}

/// Private keys of the controller's key Secrets (`data."tls.key"`), as kubectl prints them.
fn secret_keys(file: &str, text: &str) -> Result<Vec<RsaKey>, KeyFileError> {
    let from_manifest = |e: ManifestError| KeyFileError {
        file: file.to_owned(),
        location: Some(match &e.field {
            Some(f) => format!("document {}, field `{f}`", e.document),
            None => format!("document {}", e.document),
        }),
        problem: e.problem,
    };
    let docs = parse_documents(file, text).map_err(from_manifest)?;
    let mut keys = Vec::new();
    for doc in &docs {
        if !doc.is_secret() {
            return Err(from_manifest(doc.error(
                "kind",
                format!(
                    "expected the controller's key Secret (v1 Secret with tls.key), found {}",
                    printable(doc.kind().unwrap_or("no kind"))
                ),
            )));
        }
        let encoded = doc
            .value
            .get("data")
            .and_then(|d| d.get("tls.key"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                from_manifest(doc.error(
                    "data.tls.key",
                    "is missing: a Sealed Secrets key Secret holds tls.crt and tls.key",
                ))
            })?;
        let compact: Zeroizing<String> = Zeroizing::new(
            encoded
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect(),
        );
        let pem = Zeroizing::new(
            B64.decode(compact.as_bytes())
                .map_err(|_| from_manifest(doc.error("data.tls.key", "is not valid base64")))?,
        );
        let pem = std::str::from_utf8(&pem)
            .map_err(|_| from_manifest(doc.error("data.tls.key", "is not a PEM text")))?;
        let found = pem_keys(pem).map_err(|(block, why)| {
            from_manifest(doc.error("data.tls.key", format!("PEM block {block}: {why}")))
        })?;
        if found.is_empty() {
            return Err(from_manifest(
                doc.error("data.tls.key", "holds no private key"),
            ));
        }
        keys.extend(found);
    }
    Ok(keys)
}

/// Why one value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("not a Sealed Secrets ciphertext: {0}")]
    Malformed(&'static str),
    #[error(
        "no --bitnami-key opens this value ({tried} key(s) tried): the keys belong to another controller, or the value was sealed for another {scope_binding}"
    )]
    NoKey {
        tried: usize,
        scope_binding: &'static str,
    },
    #[error(
        "sealed with a {bits}-bit key, and no --bitnami-key has that size: the keys belong to another controller"
    )]
    NoKeyOfSize { bits: usize },
    #[error("the value failed authentication: it was altered, truncated or corrupted")]
    Tampered,
}

/// Opens one value sealed with `label`.
pub fn open_value(
    ct: &[u8],
    label: &[u8],
    ring: &RsaKeyring,
    scope: Scope,
) -> Result<Zeroizing<Vec<u8>>, ValueError> {
    if ct.len() > MAX_CIPHERTEXT_BYTES {
        return Err(ValueError::Malformed("larger than any Secret value"));
    }
    let [hi, lo, rest @ ..] = ct else {
        return Err(ValueError::Malformed("too short"));
    };
    let rsa_len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if rest.len() < rsa_len + 16 {
        return Err(ValueError::Malformed("truncated"));
    }
    let (rsa_ct, aes_ct) = rest.split_at(rsa_len);
    let mut tried = 0;
    for k in ring.keys.iter().filter(|k| k.key.size() == rsa_len) {
        tried += 1;
        let oaep = rsa::Oaep::<Sha256>::new_with_label(label.to_vec());
        let Ok(session) = k.key.decrypt(oaep, rsa_ct).map(Zeroizing::new) else {
            continue;
        };
        // OAEP opened, so this is the right key and label: from here on, any failure
        // means the value was altered.
        if session.len() != SESSION_KEY_BYTES {
            return Err(ValueError::Tampered);
        }
        let cipher = Aes256Gcm::new_from_slice(&session).map_err(|_| ValueError::Tampered)?;
        return cipher
            .decrypt(
                aes_gcm::aead::generic_array::GenericArray::from_slice(&[0u8; 12]),
                aes_ct,
            )
            .map(Zeroizing::new)
            .map_err(|_| ValueError::Tampered);
    }
    if tried == 0 && !ring.is_empty() {
        return Err(ValueError::NoKeyOfSize { bits: rsa_len * 8 });
    }
    Err(ValueError::NoKey {
        tried,
        scope_binding: match scope {
            Scope::Strict => "namespace/name (strict scope)",
            Scope::Namespace => "namespace (namespace-wide scope)",
            Scope::Cluster => "cluster (cluster-wide scope)",
        },
    })
}

/// The OAEP label kubeseal binds a value to.
pub fn label(scope: Scope, namespace: &str, name: &str) -> Vec<u8> {
    match scope {
        Scope::Strict => format!("{namespace}/{name}").into_bytes(),
        Scope::Namespace => namespace.as_bytes().to_vec(),
        Scope::Cluster => Vec::new(),
    }
}

/// A Bitnami SealedSecret opened in memory: the Secret it produces, its scope, and the
/// SealedSecret object's own labels and annotations (without Bitnami's scope annotations).
#[derive(Debug)]
pub struct Opened {
    pub secret: Secret,
    pub scope: Scope,
    pub labels: StringMap,
    pub annotations: StringMap,
}

fn scope_from(annotations: &mut StringMap) -> Scope {
    let cluster = annotations.remove(CLUSTER_WIDE).as_deref() == Some("true");
    let namespace = annotations.remove(NAMESPACE_WIDE).as_deref() == Some("true");
    // As the controller decides: cluster-wide wins over namespace-wide.
    if cluster {
        Scope::Cluster
    } else if namespace {
        Scope::Namespace
    } else {
        Scope::Strict
    }
}

/// Opens a Bitnami SealedSecret. `default_namespace` stands in for a missing
/// `metadata.namespace` (kubeseal seals for the namespace of the current kubectl context
/// when the Secret names none). Errors name the document and field, never a value.
pub fn open(
    doc: &Document,
    ring: &RsaKeyring,
    default_namespace: Option<&str>,
) -> Result<Opened, ManifestError> {
    if !is_bitnami(doc) {
        return Err(crate::manifest::wrong_kind(
            doc,
            "bitnami.com/v1alpha1",
            "SealedSecret",
        ));
    }
    if doc.api_version() != Some("bitnami.com/v1alpha1") {
        return Err(doc.error(
            "apiVersion",
            format!(
                "unsupported version {}; gitseal imports bitnami.com/v1alpha1",
                printable(doc.api_version().unwrap_or_default())
            ),
        ));
    }
    let mut meta = read_meta(doc)?;
    let name = meta
        .name
        .take()
        .ok_or_else(|| doc.error("metadata.name", "is required"))?;
    let scope = scope_from(&mut meta.annotations);
    let namespace = meta
        .namespace
        .take()
        .or(default_namespace.map(str::to_owned));
    if namespace.is_none() && scope != Scope::Cluster {
        return Err(doc.error(
            "metadata.namespace",
            format!(
                "is missing, and scope {scope} binds every value to it; pass --namespace with the namespace it was sealed for"
            ),
        ));
    }
    let spec = match doc.value.get("spec") {
        Some(s @ Value::Mapping(_)) => s,
        None | Some(Value::Null) => return Err(doc.error("spec", "is required")),
        Some(_) => return Err(doc.error("spec", "must be a mapping")),
    };
    if !matches!(spec.get("data"), None | Some(Value::Null)) {
        return Err(doc.error(
            "spec.data",
            "is the pre-v0.6 whole-Secret format, which gitseal does not read; re-seal it with a current kubeseal first (kubeseal --re-encrypt)",
        ));
    }
    let Some(encrypted) = mapping_field(doc, spec, "spec.", "encryptedData")? else {
        return Err(doc.error("spec.encryptedData", "is required"));
    };
    // The template: type, immutable, labels and annotations of the produced Secret.
    let template = match spec.get("template") {
        None | Some(Value::Null) => Value::Null,
        Some(t @ Value::Mapping(_)) => t.clone(),
        Some(_) => return Err(doc.error("spec.template", "must be a mapping")),
    };
    let tmeta = mapping_field(doc, &template, "spec.template.", "metadata")?
        .map(|m| Value::Mapping(m.clone()))
        .unwrap_or(Value::Null);
    let type_ = str_field(doc, &template, "spec.template.", "type")?.map(str::to_owned);
    let immutable = match template.get("immutable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(doc.error("spec.template.immutable", "must be true or false")),
    };
    let labels = string_map(
        doc,
        mapping_field(doc, &tmeta, "spec.template.metadata.", "labels")?,
        "spec.template.metadata.labels",
    )?;
    let mut annotations = string_map(
        doc,
        mapping_field(doc, &tmeta, "spec.template.metadata.", "annotations")?,
        "spec.template.metadata.annotations",
    )?;
    scope_from(&mut annotations);
    // spec.template.data: `null` drops a key from the Secret; anything else is a Go
    // template over the plaintext, which gitseal does not evaluate.
    let mut dropped = Vec::new();
    for (k, v) in mapping_field(doc, &template, "spec.template.", "data")?
        .into_iter()
        .flatten()
    {
        let key = data_key(doc, "spec.template.data", k)?;
        if !v.is_null() {
            return Err(doc.error(
                format!("spec.template.data.{key}"),
                "templated values are not supported by gitseal; unseal with kubeseal --recovery-unseal, render the value and seal the result with gitseal",
            ));
        }
        dropped.push(key);
    }
    let ns = namespace.as_deref().unwrap_or_default();
    let label = label(scope, ns, &name);
    let mut data = std::collections::BTreeMap::new();
    for (k, v) in encrypted {
        let key = data_key(doc, "spec.encryptedData", k)?;
        let field = format!("spec.encryptedData.{key}");
        let s = v
            .as_str()
            .ok_or_else(|| doc.error(&field, "must be a base64 string"))?;
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if compact.len() > MAX_CIPHERTEXT_BYTES * 4 / 3 + 4 {
            return Err(doc.error(&field, "is larger than any Secret value"));
        }
        let ct = B64
            .decode(compact.as_bytes())
            .map_err(|_| doc.error(&field, "is not valid base64"))?;
        let value =
            open_value(&ct, &label, ring, scope).map_err(|e| doc.error(&field, e.to_string()))?;
        if !dropped.contains(&key) {
            data.insert(key, SecretSlice::from(value.to_vec()));
        }
    }
    Ok(Opened {
        secret: Secret {
            name: Some(name),
            namespace,
            type_,
            immutable,
            labels,
            annotations,
            data,
        },
        scope,
        labels: meta.labels,
        annotations: meta.annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_scope() {
        assert_eq!(label(Scope::Strict, "prod", "db"), b"prod/db");
        assert_eq!(label(Scope::Namespace, "prod", "db"), b"prod");
        assert!(label(Scope::Cluster, "prod", "db").is_empty());
    }

    #[test]
    fn malformed_values_are_named() {
        let ring = RsaKeyring::new();
        assert_eq!(
            open_value(&[1], b"", &ring, Scope::Strict),
            Err(ValueError::Malformed("too short"))
        );
        assert_eq!(
            open_value(&[2, 0, 1, 2, 3], b"", &ring, Scope::Strict),
            Err(ValueError::Malformed("truncated"))
        );
    }

    #[test]
    fn key_files_without_keys_are_refused_without_echo() {
        let mut ring = RsaKeyring::new();
        let e = ring
            .add_file(
                "k.pem",
                "-----BEGIN RSA PRIVATE KEY-----\nQ0FOQVJZ\n-----END RSA PRIVATE KEY-----\n",
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("k.pem, PEM block 1: not a valid PKCS#1"),
            "{e}"
        );
        assert!(!e.contains("Q0FOQVJZ"), "{e}");
        let e = ring
            .add_file(
                "k.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ndata: {tls.crt: eA==}\n",
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("document 1, field `data.tls.key`"), "{e}");
        let e = ring
            .add_file(
                "k.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\n",
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected the controller's key Secret"), "{e}");
    }
}
