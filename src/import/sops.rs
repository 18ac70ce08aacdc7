//! SOPS-encrypted YAML/JSON manifests with age recipients.
//!
//! The format, as sops (v3) writes it: the file's top-level `sops` mapping (in the first
//! document) holds the 32-byte data key encrypted to each age recipient (`sops.age[].enc`, an
//! armored age file), the rules that chose which values were encrypted, `lastmodified` and
//! `mac`. Each encrypted leaf is `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`: AES-256-GCM
//! with the data key, a 32-byte IV and the leaf's path (mapping keys joined by `:`, plus a
//! final `:`) as associated data. The MAC is SHA-512 over the plaintext leaves in file order
//! (all of them, or with `mac_only_encrypted` a fixed prefix then only the encrypted ones),
//! as upper-case hex, itself encrypted like a value with `lastmodified` as associated data.
//!
//! A file is opened only if its MAC verifies: a value swapped, dropped, added or decrypted
//! to something else makes the whole file fail.

use std::io::Read;

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::Keyring;
use crate::manifest::{Document, ManifestError, ManifestLimits, scan, yaml_error};
use crate::scope::printable;

/// The metadata key sops adds to the first document.
pub const METADATA_KEY: &str = "sops";
/// The bytes sops feeds the MAC first when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];
/// Largest armored age file accepted for one encrypted data key.
const MAX_ENC_BYTES: usize = 16 * 1024;
/// Most age recipients read from the metadata.
const MAX_RECIPIENTS: usize = 256;

type Aes256Gcm32 = AesGcm<Aes256, U32>;

/// Whether a document carries SOPS metadata (a top-level `sops` mapping with a MAC or a
/// modification time).
pub fn has_metadata(v: &Value) -> bool {
    matches!(v.get(METADATA_KEY), Some(Value::Mapping(m))
        if m.contains_key("mac") || m.contains_key("lastmodified"))
}

/// Whether any document of a file carries SOPS metadata.
pub fn is_sops_file(raw: &[Document]) -> bool {
    raw.iter().any(|d| has_metadata(&d.value))
}

/// The documents of a YAML/JSON text as they are, without expanding `kind: List` (SOPS
/// walks and authenticates whole documents), within the default manifest limits.
pub fn parse_raw(source: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    scan(source, text, &ManifestLimits::DEFAULT)?;
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = Value::deserialize(de).map_err(|e| ManifestError {
            file: source.to_owned(),
            document: index,
            field: None,
            problem: format!("not valid YAML or JSON: {}", yaml_error(&e)),
        })?;
        if value.is_null() {
            continue;
        }
        docs.push(Document {
            source: source.to_owned(),
            index,
            prefix: String::new(),
            value,
        });
    }
    Ok(docs)
}

/// Which leaves sops encrypted, from the metadata's rules.
enum Rules {
    /// Suffix and regex rules on the path's keys, as sops decides.
    Keys {
        unencrypted_suffix: Option<String>,
        encrypted_suffix: Option<String>,
        unencrypted_regex: Option<regex::Regex>,
        encrypted_regex: Option<regex::Regex>,
    },
    /// Comment rules depend on YAML comments, which the parser drops: a leaf counts as
    /// encrypted when it holds a SOPS ciphertext. Sound because the MAC covers every leaf.
    Ciphertexts,
}

impl Rules {
    fn encrypted(&self, path: &[String], leaf: &Value) -> bool {
        match self {
            Rules::Ciphertexts => leaf
                .as_str()
                .is_some_and(|s| s.starts_with(super::SOPS_VALUE_PREFIX)),
            Rules::Keys {
                unencrypted_suffix,
                encrypted_suffix,
                unencrypted_regex,
                encrypted_regex,
            } => {
                let mut enc = true;
                if let Some(s) = unencrypted_suffix
                    && path.iter().any(|p| p.ends_with(s.as_str()))
                {
                    enc = false;
                }
                if let Some(s) = encrypted_suffix {
                    enc = path.iter().any(|p| p.ends_with(s.as_str()));
                }
                if let Some(r) = unencrypted_regex
                    && path.iter().any(|p| r.is_match(p))
                {
                    enc = false;
                }
                if let Some(r) = encrypted_regex {
                    enc = path.iter().any(|p| r.is_match(p));
                }
                enc
            }
        }
    }
}

struct Metadata {
    mac: String,
    lastmodified: String,
    /// (recipient, armored age file of the data key)
    age: Vec<(String, String)>,
    rules: Rules,
    mac_only_encrypted: bool,
}

fn meta_str<'a>(
    doc: &Document,
    m: &'a Mapping,
    key: &str,
) -> Result<Option<&'a str>, ManifestError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(doc.error(format!("{METADATA_KEY}.{key}"), "must be a string")),
    }
}

fn age_entries(
    doc: &Document,
    list: Option<&Value>,
    field: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), ManifestError> {
    let items = match list {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Sequence(s)) => s,
        Some(_) => return Err(doc.error(field, "must be a list")),
    };
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let recipient = item
            .get("recipient")
            .and_then(Value::as_str)
            .ok_or_else(|| doc.error(format!("{f}.recipient"), "must be a string"))?;
        let enc = item
            .get("enc")
            .and_then(Value::as_str)
            .ok_or_else(|| doc.error(format!("{f}.enc"), "must be a string"))?;
        if enc.len() > MAX_ENC_BYTES {
            return Err(doc.error(format!("{f}.enc"), "is too large for an encrypted data key"));
        }
        if out.len() >= MAX_RECIPIENTS {
            return Err(doc.error(field, "lists too many recipients"));
        }
        out.push((recipient.trim().to_owned(), enc.to_owned()));
    }
    Ok(())
}

fn read_metadata(doc: &Document) -> Result<Metadata, ManifestError> {
    let Some(Value::Mapping(m)) = doc.value.get(METADATA_KEY) else {
        return Err(doc.error(METADATA_KEY, "must be a mapping (SOPS metadata)"));
    };
    let mac = meta_str(doc, m, "mac")?
        .ok_or_else(|| doc.error("sops.mac", "is missing: the file cannot be authenticated"))?
        .to_owned();
    let lastmodified = meta_str(doc, m, "lastmodified")?
        .ok_or_else(|| doc.error("sops.lastmodified", "is missing"))?
        .to_owned();
    let mut age = Vec::new();
    age_entries(doc, m.get("age"), "sops.age", &mut age)?;
    match m.get("key_groups") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(groups)) => {
            let threshold = m
                .get("shamir_threshold")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if groups.len() > 1 && threshold != 1 {
                return Err(doc.error(
                    "sops.key_groups",
                    "Shamir secret sharing across key groups is not supported; decrypt with sops and re-encrypt to one group of age keys",
                ));
            }
            for (g, group) in groups.iter().enumerate() {
                age_entries(
                    doc,
                    group.get("age"),
                    &format!("sops.key_groups[{g}].age"),
                    &mut age,
                )?;
            }
        }
        Some(_) => return Err(doc.error("sops.key_groups", "must be a list")),
    }
    let regex = |key: &str| -> Result<Option<regex::Regex>, ManifestError> {
        meta_str(doc, m, key)?
            .map(|r| {
                regex::Regex::new(r).map_err(|_| {
                    doc.error(
                        format!("{METADATA_KEY}.{key}"),
                        "is a regular expression gitseal cannot read",
                    )
                })
            })
            .transpose()
    };
    let mac_only_encrypted = match m.get("mac_only_encrypted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(doc.error("sops.mac_only_encrypted", "must be true or false"));
        }
    };
    let comment_rules = meta_str(doc, m, "encrypted_comment_regex")?.is_some()
        || meta_str(doc, m, "unencrypted_comment_regex")?.is_some();
    let rules = if comment_rules {
        if mac_only_encrypted {
            return Err(doc.error(
                "sops.mac_only_encrypted",
                "together with comment regexes is not supported; decrypt with sops and re-encrypt without one of them",
            ));
        }
        Rules::Ciphertexts
    } else {
        Rules::Keys {
            unencrypted_suffix: meta_str(doc, m, "unencrypted_suffix")?.map(str::to_owned),
            encrypted_suffix: meta_str(doc, m, "encrypted_suffix")?.map(str::to_owned),
            unencrypted_regex: regex("unencrypted_regex")?,
            encrypted_regex: regex("encrypted_regex")?,
        }
    };
    Ok(Metadata {
        mac,
        lastmodified,
        age,
        rules,
        mac_only_encrypted,
    })
}

/// Why a SOPS value did not decrypt.
enum ValueProblem {
    Malformed(&'static str),
    Tampered,
}

/// Decrypts one `ENC[AES256_GCM,…]` value.
fn decrypt_value(
    s: &str,
    key: &[u8; 32],
    aad: &str,
) -> Result<(Zeroizing<Vec<u8>>, String), ValueProblem> {
    let inner = s
        .strip_prefix(super::SOPS_VALUE_PREFIX)
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(ValueProblem::Malformed(
            "not a SOPS value (ENC[AES256_GCM,…])",
        ))?;
    let mut parts = inner.split(',');
    let mut field = |name: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .ok_or(ValueProblem::Malformed(
                "a SOPS value needs data, iv, tag and type",
            ))
    };
    let (data, iv, tag, type_) = (
        field("data:")?,
        field("iv:")?,
        field("tag:")?,
        field("type:")?,
    );
    let b64 = |x: &str| {
        B64.decode(x)
            .map_err(|_| ValueProblem::Malformed("a part of the SOPS value is not base64"))
    };
    let (mut data, iv, tag) = (b64(data)?, b64(iv)?, b64(tag)?);
    if iv.len() != 32 || tag.len() != 16 {
        return Err(ValueProblem::Malformed(
            "a SOPS value has a 32-byte IV and a 16-byte tag",
        ));
    }
    data.extend_from_slice(&tag);
    let cipher = Aes256Gcm32::new(GenericArray::from_slice(key));
    let plain = cipher
        .decrypt(
            GenericArray::from_slice(&iv),
            Payload {
                msg: &data,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ValueProblem::Tampered)?;
    Ok((plain, type_.to_owned()))
}

/// A decrypted leaf, typed as sops types it.
fn typed(plain: &[u8], type_: &str) -> Result<Value, &'static str> {
    let text = || std::str::from_utf8(plain).map_err(|_| "decrypted to invalid UTF-8");
    Ok(match type_ {
        "str" | "bytes" | "time" => Value::String(text()?.to_owned()),
        "int" => Value::Number(
            text()?
                .parse::<i64>()
                .map_err(|_| "decrypted int is not a number")?
                .into(),
        ),
        "float" => Value::Number(
            text()?
                .parse::<f64>()
                .map_err(|_| "decrypted float is not a number")?
                .into(),
        ),
        // Go's strconv.ParseBool.
        "bool" => Value::Bool(match text()? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err("decrypted bool is not true or false"),
        }),
        _ => return Err("unknown SOPS value type"),
    })
}

/// The bytes sops feeds the MAC for a leaf (Go's ToBytes).
fn mac_bytes(v: &Value) -> Option<Zeroizing<Vec<u8>>> {
    Some(Zeroizing::new(match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string().into_bytes(),
            (_, Some(u), _) => u.to_string().into_bytes(),
            // Go: strconv.FormatFloat(f, 'f', -1, 64): shortest, never an exponent.
            (_, _, Some(f)) => format!("{f}").into_bytes(),
            _ => return None,
        },
        _ => return None,
    }))
}

struct Walker<'a> {
    key: &'a [u8; 32],
    rules: &'a Rules,
    mac_only_encrypted: bool,
    hash: Sha512,
}

impl Walker<'_> {
    fn walk(
        &mut self,
        doc: &Document,
        v: &mut Value,
        path: &mut Vec<String>,
    ) -> Result<(), ManifestError> {
        fn shown(path: &[String]) -> String {
            path.iter()
                .map(|p| printable(p))
                .collect::<Vec<_>>()
                .join(".")
        }
        match v {
            Value::Mapping(m) => {
                for (k, child) in m.iter_mut() {
                    let Some(k) = k.as_str() else {
                        return Err(doc.error(shown(path), "SOPS files have string keys only"));
                    };
                    path.push(k.to_owned());
                    let r = self.walk(doc, child, path);
                    path.pop();
                    r?;
                }
                Ok(())
            }
            Value::Sequence(items) => {
                for child in items {
                    self.walk(doc, child, path)?;
                }
                Ok(())
            }
            Value::Null => Ok(()),
            Value::Tagged(_) => {
                Err(doc.error(shown(path), "YAML tags are not supported in SOPS files"))
            }
            leaf => {
                let field = || shown(path);
                let encrypted = self.rules.encrypted(path, leaf);
                if encrypted {
                    match leaf {
                        Value::String(s) if s.is_empty() => {}
                        Value::String(s) if !s.starts_with(super::SOPS_VALUE_PREFIX) => {
                            return Err(doc.error(
                                field(),
                                "should be encrypted by the file's own rules but is plain text: the file was altered",
                            ));
                        }
                        Value::String(s) => {
                            let aad = format!("{}:", path.join(":"));
                            let (plain, type_) = decrypt_value(s, self.key, &aad).map_err(|p| {
                                doc.error(
                                    field(),
                                    match p {
                                        ValueProblem::Malformed(m) => m,
                                        ValueProblem::Tampered => {
                                            "failed authentication: the value was altered, moved to another key, or belongs to another file"
                                        }
                                    },
                                )
                            })?;
                            let value = typed(&plain, &type_).map_err(|m| doc.error(field(), m))?;
                            *leaf = value;
                        }
                        _ => {
                            return Err(doc.error(
                                field(),
                                "should be encrypted by the file's own rules but is not: the file was altered",
                            ));
                        }
                    }
                }
                if !self.mac_only_encrypted || encrypted {
                    let bytes = mac_bytes(leaf).ok_or_else(|| {
                        doc.error(field(), "has a value type SOPS does not write")
                    })?;
                    self.hash.update(&bytes[..]);
                }
                Ok(())
            }
        }
    }
}

/// Opens the data key with the age identities in `ring`. Stanzas whose recipient is in
/// the ring are tried first, so the right one usually opens on the first try.
fn data_key(
    doc: &Document,
    meta: &Metadata,
    ring: &Keyring,
) -> Result<Zeroizing<[u8; 32]>, ManifestError> {
    if meta.age.is_empty() {
        return Err(doc.error(
            "sops",
            "has no age recipients (PGP, KMS and Vault keys are not supported); add an age key with sops updatekeys, then import",
        ));
    }
    let ours: Vec<String> = ring.keys().map(|k| k.public().to_string()).collect();
    let mut order: Vec<usize> = (0..meta.age.len()).collect();
    order.sort_by_key(|&i| !ours.contains(&meta.age[i].0));
    for i in order {
        let field = format!("sops.age[{i}].enc");
        let armored = age::armor::ArmoredReader::new(meta.age[i].1.as_bytes());
        let decryptor = age::Decryptor::new(armored)
            .map_err(|_| doc.error(&field, "is not an age-encrypted data key"))?;
        let identities = ring.keys().map(|k| k.identity() as &dyn age::Identity);
        match decryptor.decrypt(identities) {
            Ok(reader) => {
                let mut key = Zeroizing::new(Vec::new());
                reader.take(64).read_to_end(&mut key).map_err(|_| {
                    doc.error(&field, "failed authentication: the data key was altered")
                })?;
                let arr: [u8; 32] = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| doc.error(&field, "does not hold a 32-byte data key"))?;
                return Ok(Zeroizing::new(arr));
            }
            Err(age::DecryptError::NoMatchingKeys) => continue,
            Err(_) => {
                return Err(doc.error(&field, "failed authentication: the data key was altered"));
            }
        }
    }
    let to: Vec<String> = meta.age.iter().map(|(r, _)| printable(r)).collect();
    Err(doc.error(
        "sops.age",
        format!(
            "none of the given identities opens the data key: the file is encrypted to {}; the identities are {}",
            to.join(", "),
            if ours.is_empty() { "none".to_owned() } else { ours.join(", ") }
        ),
    ))
}

/// Decrypts a SOPS file (its raw documents, see [`parse_raw`]) in memory with the age
/// identities in `ring`, verifies its MAC, and returns the documents without the `sops`
/// metadata, `kind: List` documents expanded. Every string of the input that held a
/// ciphertext holds plaintext afterwards: callers drop the result as soon as it is sealed
/// (documents zeroize their strings when dropped).
pub fn decrypt(mut raw: Vec<Document>, ring: &Keyring) -> Result<Vec<Document>, ManifestError> {
    let Some(first) = raw.first() else {
        return Ok(Vec::new());
    };
    if !has_metadata(&first.value) {
        let where_ = raw
            .iter()
            .find(|d| has_metadata(&d.value))
            .map(|d| d.index)
            .unwrap_or_default();
        return Err(first.error(
            "",
            format!(
                "SOPS keeps its metadata in the first document, but it is in document {where_}"
            ),
        ));
    }
    let meta = read_metadata(first)?;
    let key = data_key(first, &meta, ring)?;
    let mut walker = Walker {
        key: &key,
        rules: &meta.rules,
        mac_only_encrypted: meta.mac_only_encrypted,
        hash: Sha512::new(),
    };
    if meta.mac_only_encrypted {
        walker.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    for doc in raw.iter_mut() {
        if let Value::Mapping(m) = &mut doc.value
            && let Some(mut v) = m.remove(METADATA_KEY)
        {
            crate::manifest::zeroize_value(&mut v);
        }
        let mut value = std::mem::take(&mut doc.value);
        let r = walker.walk(doc, &mut value, &mut Vec::new());
        doc.value = value;
        r?;
    }
    let computed = Zeroizing::new(
        walker
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>(),
    );
    let first = &raw[0];
    let (stored, _) = decrypt_value(&meta.mac, &key, &meta.lastmodified).map_err(|p| {
        first.error(
            "sops.mac",
            match p {
                ValueProblem::Malformed(m) => m,
                ValueProblem::Tampered => {
                    "failed authentication: the MAC or lastmodified was altered; refusing the file"
                }
            },
        )
    })?;
    if stored.as_slice() != computed.as_bytes() {
        return Err(first.error(
            "sops.mac",
            "does not match the content: the file was altered after SOPS encrypted it; refusing it",
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for mut doc in raw {
        let is_list = doc.kind().is_some_and(|k| k.ends_with("List"));
        if !is_list {
            out.push(doc);
            continue;
        }
        let items = match doc.value.get_mut("items") {
            Some(Value::Sequence(items)) => std::mem::take(items),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(doc.error("items", "must be a list")),
        };
        for (j, value) in items.into_iter().enumerate() {
            out.push(Document {
                source: doc.source.clone(),
                index: doc.index,
                prefix: format!("items[{j}]."),
                value,
            });
        }
    }
    Ok(out)
}

impl Drop for Metadata {
    fn drop(&mut self) {
        self.mac.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_decide_like_sops() {
        let keys = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let leaf = Value::from("x");
        let default = Rules::Keys {
            unencrypted_suffix: Some("_unencrypted".into()),
            encrypted_suffix: None,
            unencrypted_regex: None,
            encrypted_regex: None,
        };
        assert!(default.encrypted(&keys(&["data", "pw"]), &leaf));
        assert!(!default.encrypted(&keys(&["note_unencrypted"]), &leaf));
        let k8s = Rules::Keys {
            unencrypted_suffix: None,
            encrypted_suffix: None,
            unencrypted_regex: None,
            encrypted_regex: Some(
                regex::Regex::new("^(data|stringData)$").unwrap_or_else(|_| unreachable!()),
            ),
        };
        assert!(k8s.encrypted(&keys(&["stringData", "pw"]), &leaf));
        assert!(!k8s.encrypted(&keys(&["metadata", "name"]), &leaf));
    }

    #[test]
    fn mac_bytes_match_go() {
        let b = |v: Value| {
            String::from_utf8(mac_bytes(&v).unwrap_or_default().to_vec()).unwrap_or_default()
        };
        assert_eq!(b(Value::Bool(true)), "True");
        assert_eq!(b(Value::from(5432)), "5432");
        assert_eq!(b(Value::from(1.0)), "1");
        assert_eq!(b(Value::from(0.25)), "0.25");
        assert_eq!(b(Value::from("v")), "v");
        assert!(mac_bytes(&Value::Null).is_none());
    }

    #[test]
    fn malformed_values_are_named_not_echoed() {
        let key = [7u8; 32];
        let Err(ValueProblem::Malformed(m)) =
            decrypt_value("ENC[AES256_GCM,data:CANARY]", &key, "a:")
        else {
            panic!("expected malformed");
        };
        assert!(!m.contains("CANARY"));
        assert!(matches!(
            decrypt_value(
                &format!(
                    "ENC[AES256_GCM,data:AAAA,iv:{},tag:{},type:str]",
                    B64.encode([0u8; 32]),
                    B64.encode([0u8; 16])
                ),
                &key,
                "a:"
            ),
            Err(ValueProblem::Tampered)
        ));
    }
}
