//! Sealing and opening one value: an age v1 file to any number of X25519 recipients, with
//! one extra `gitseal` stanza that carries the key ids and the scope binding.
//!
//! The extra stanza is covered by age's header MAC, so changing the binding or the key ids
//! breaks the file; stock `age -d` skips it as an unknown stanza type. The byte layout is
//! documented in `docs/FORMAT.md`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::iter;

use age::{DecryptError, EncryptError};
use age_core::format::{FileKey, Stanza};
use secrecy::SecretSlice;
use zeroize::Zeroizing;

use crate::keys::{KeyId, Keyring, PublicKey};
use crate::scope::Binding;

/// The tag of the stanza that carries key ids and binding.
pub const STANZA_TAG: &str = "gitseal";
const X25519_TAG: &str = crate::x25519::TAG;
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Largest value gitseal seals or opens: Kubernetes refuses Secrets over 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest ciphertext gitseal reads (a full-size value plus a generous header).
pub const MAX_CIPHERTEXT_BYTES: usize = MAX_VALUE_BYTES + 64 * 1024;

/// Why a value could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("no recipients: give at least one public key")]
    NoRecipients,
    #[error("value is {0} bytes; Kubernetes Secrets hold at most 1 MiB")]
    TooLarge(usize),
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// Why a value could not be opened. Every cryptographic failure is the same opaque
/// [`OpenError::Tampered`]; the other variants only describe public header fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("not a gitseal ciphertext: {0}")]
    Malformed(&'static str),
    #[error("ciphertext is larger than {MAX_CIPHERTEXT_BYTES} bytes")]
    TooLarge,
    #[error(
        "no key in the ring opens this value: it is sealed to key id(s) {}; the ring holds {}",
        list_ids(sealed_to),
        if ring.is_empty() { "no keys".to_owned() } else { list_ids(ring) }
    )]
    NoMatchingKey {
        sealed_to: Vec<KeyId>,
        ring: Vec<KeyId>,
    },
    #[error(
        "scope mismatch: the value was sealed for {sealed_for}, not for {expected}; seal it again for its new place"
    )]
    ScopeMismatch {
        sealed_for: Box<Binding>,
        expected: Box<Binding>,
    },
    #[error("the value failed authentication: it was altered, truncated or corrupted")]
    Tampered,
}

fn list_ids(ids: &[KeyId]) -> String {
    ids.iter()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The public part of a sealed value's header, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Key ids of the recipients, in stanza order.
    pub key_ids: Vec<KeyId>,
    /// The place the value was sealed for.
    pub binding: Binding,
}

/// The `gitseal` stanza as an age "recipient": it wraps nothing, it only adds the stanza.
struct GitsealStanza(Vec<String>);

impl age::Recipient for GitsealStanza {
    fn wrap_file_key(
        &self,
        _file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let stanza = Stanza {
            tag: STANZA_TAG.to_owned(),
            args: self.0.clone(),
            body: Vec::new(),
        };
        Ok((vec![stanza], HashSet::new()))
    }
}

fn stanza_args(key_ids: &[KeyId], binding: &Binding) -> Vec<String> {
    let ids = key_ids
        .iter()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(",");
    iter::once(ids).chain(binding.to_args()).collect()
}

fn parse_stanza_args(args: &[String]) -> Result<StanzaContent, OpenError> {
    let (ids, rest) = args
        .split_first()
        .ok_or(OpenError::Malformed("empty gitseal stanza"))?;
    let ids = ids
        .split(',')
        .map(|s| s.parse::<KeyId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|()| OpenError::Malformed("bad key id in the gitseal stanza"))?;
    let binding =
        Binding::from_args(rest).ok_or(OpenError::Malformed("bad scope in the gitseal stanza"))?;
    Ok((ids, binding))
}

/// Seals `plaintext` to every recipient at once, bound to `binding`. Duplicated recipients
/// are sealed to once.
pub fn seal(
    plaintext: &[u8],
    recipients: &[PublicKey],
    binding: &Binding,
) -> Result<Vec<u8>, SealError> {
    if plaintext.len() > MAX_VALUE_BYTES {
        return Err(SealError::TooLarge(plaintext.len()));
    }
    let mut seen = HashSet::new();
    let unique: Vec<&PublicKey> = recipients.iter().filter(|r| seen.insert(*r)).collect();
    if unique.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let ids: Vec<KeyId> = unique.iter().map(|r| r.id()).collect();
    let extra = GitsealStanza(stanza_args(&ids, binding));
    let all = unique
        .iter()
        .map(|r| r.recipient() as &dyn age::Recipient)
        .chain(iter::once(&extra as &dyn age::Recipient));
    let encryptor =
        age::Encryptor::with_recipients(all).map_err(|e| SealError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 256 + 100 * unique.len());
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| SealError::Encrypt(e.to_string()))?;
    writer
        .write_all(plaintext)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| SealError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// Reads the public header of a sealed value without opening it.
pub fn inspect(ciphertext: &[u8]) -> Result<Header, OpenError> {
    if ciphertext.len() > MAX_CIPHERTEXT_BYTES {
        return Err(OpenError::TooLarge);
    }
    let mut input = ciphertext
        .strip_prefix(AGE_MAGIC)
        .ok_or(OpenError::Malformed("not an age v1 file"))?;
    let mut found = None;
    let mut x25519 = 0usize;
    while !input.starts_with(b"---") {
        let (rest, stanza) = age_core::format::read::age_stanza(input)
            .map_err(|_| OpenError::Malformed("the age header is truncated or invalid"))?;
        input = rest;
        match stanza.tag {
            STANZA_TAG if found.is_some() => {
                return Err(OpenError::Malformed("more than one gitseal stanza"));
            }
            STANZA_TAG => {
                let args: Vec<String> = stanza.args.iter().map(|a| (*a).to_owned()).collect();
                found = Some(parse_stanza_args(&args)?);
            }
            X25519_TAG => x25519 += 1,
            _ => {}
        }
    }
    let (key_ids, binding) = found.ok_or(OpenError::Malformed(
        "no gitseal stanza (sealed by plain age, not by gitseal)",
    ))?;
    if key_ids.len() != x25519 {
        return Err(OpenError::Malformed(
            "the key ids do not match the recipient stanzas",
        ));
    }
    Ok(Header { key_ids, binding })
}

/// What the `gitseal` stanza says: recipient key ids and the binding.
type StanzaContent = (Vec<KeyId>, Binding);

/// An age identity over the whole keyring that reads the `gitseal` stanza, unwraps only the
/// X25519 stanzas whose key id the ring holds, and remembers what the stanza said so the
/// caller can tell a scope mismatch (after age has verified the header MAC) from the rest.
struct RingIdentity<'a> {
    ring: &'a Keyring,
    seen: std::cell::RefCell<Option<Result<StanzaContent, OpenError>>>,
}

impl age::Identity for RingIdentity<'_> {
    fn unwrap_stanza(&self, _stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        // Only called through unwrap_stanzas, which needs the whole header.
        None
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        let mut ours = stanzas.iter().filter(|s| s.tag == STANZA_TAG);
        let parsed = match (ours.next(), ours.next()) {
            (Some(s), None) => parse_stanza_args(&s.args),
            (None, _) => Err(OpenError::Malformed(
                "no gitseal stanza (sealed by plain age, not by gitseal)",
            )),
            (Some(_), Some(_)) => Err(OpenError::Malformed("more than one gitseal stanza")),
        };
        let (ids, _) = match &parsed {
            Ok(p) => p,
            Err(_) => {
                *self.seen.borrow_mut() = Some(parsed);
                return Some(Err(DecryptError::InvalidHeader));
            }
        };
        let x25519: Vec<&Stanza> = stanzas.iter().filter(|s| s.tag == X25519_TAG).collect();
        if x25519.len() != ids.len() {
            *self.seen.borrow_mut() = Some(Err(OpenError::Malformed(
                "the key ids do not match the recipient stanzas",
            )));
            return Some(Err(DecryptError::InvalidHeader));
        }
        let mut result = None;
        'outer: for (stanza, id) in x25519.iter().zip(ids) {
            for key in self.ring.with_id(*id) {
                if let Some(r) = key.identity().unwrap(stanza) {
                    result = Some(r);
                    break 'outer;
                }
            }
        }
        *self.seen.borrow_mut() = Some(parsed);
        result
    }
}

/// Opens one value with the keys of `ring`, checking that it was sealed for `expected`.
///
/// Only the keys whose id the value names are tried, so the cost does not grow with the
/// number of keys in the ring.
pub fn open(
    ciphertext: &[u8],
    ring: &Keyring,
    expected: &Binding,
) -> Result<SecretSlice<u8>, OpenError> {
    if ciphertext.len() > MAX_CIPHERTEXT_BYTES {
        return Err(OpenError::TooLarge);
    }
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| match e {
        DecryptError::Io(_) => OpenError::Malformed("the age header is truncated"),
        DecryptError::UnknownFormat => OpenError::Malformed("not an age v1 file"),
        _ => OpenError::Malformed("the age header is invalid"),
    })?;
    let identity = RingIdentity {
        ring,
        seen: std::cell::RefCell::new(None),
    };
    let decrypted = decryptor.decrypt(iter::once(&identity as &dyn age::Identity));
    let seen = identity.seen.into_inner();
    let mut reader = match (decrypted, seen) {
        (_, Some(Err(e))) => return Err(e),
        (Ok(reader), Some(Ok((_, sealed_for)))) => {
            // The header MAC has been verified, so the binding is authentic.
            if &sealed_for != expected {
                return Err(OpenError::ScopeMismatch {
                    sealed_for: Box::new(sealed_for),
                    expected: Box::new(expected.clone()),
                });
            }
            reader
        }
        (Err(DecryptError::NoMatchingKeys), Some(Ok((ids, _)))) => {
            return Err(OpenError::NoMatchingKey {
                sealed_to: ids,
                ring: ring.keys().map(|k| k.id()).collect(),
            });
        }
        (Err(DecryptError::InvalidHeader), _) => {
            return Err(OpenError::Malformed("the age header is invalid"));
        }
        (Err(_), _) | (Ok(_), None) => return Err(OpenError::Tampered),
    };
    // Age's STREAM payload is at most the ciphertext size; reserve it all so the buffer
    // never reallocates (a reallocation would leave an unzeroized copy behind).
    let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .read_to_end(&mut buf)
        .map_err(|_| OpenError::Tampered)?;
    let value: Box<[u8]> = std::mem::take(&mut *buf).into_boxed_slice();
    Ok(SecretSlice::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use crate::scope::Scope;
    use secrecy::ExposeSecret;

    fn strict(ns: &str, name: &str, key: &str) -> Binding {
        Binding::new(Scope::Strict, Some(ns), Some(name), key).unwrap()
    }

    #[test]
    fn round_trip_many_recipients() {
        let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(|k| k.public().clone()).collect();
        let b = strict("prod", "db", "password");
        let ct = seal(b"hunter2", &pubs, &b).unwrap();
        for k in &keys {
            let ring = Keyring::from_iter([k.clone()]);
            let pt = open(&ct, &ring, &b).unwrap();
            assert_eq!(pt.expose_secret(), b"hunter2");
        }
        let h = inspect(&ct).unwrap();
        assert_eq!(h.binding, b);
        assert_eq!(h.key_ids, pubs.iter().map(|p| p.id()).collect::<Vec<_>>());
    }

    #[test]
    fn moved_value_is_a_scope_mismatch() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let ct = seal(b"v", &[k.public().clone()], &strict("prod", "db", "pw")).unwrap();
        for other in [
            strict("dev", "db", "pw"),
            strict("prod", "db2", "pw"),
            strict("prod", "db", "pw2"),
        ] {
            let e = open(&ct, &ring, &other).unwrap_err();
            assert!(matches!(e, OpenError::ScopeMismatch { .. }), "{e}");
            assert!(e.to_string().contains("scope mismatch"));
        }
        let ns = Binding::new(Scope::Namespace, Some("prod"), None, "pw").unwrap();
        let ct = seal(b"v", &[k.public().clone()], &ns).unwrap();
        let renamed = Binding::new(Scope::Namespace, Some("prod"), Some("other"), "pw").unwrap();
        assert!(open(&ct, &ring, &renamed).is_ok());
    }

    #[test]
    fn wrong_key_names_ids() {
        let k = SecretKey::generate();
        let other = SecretKey::generate();
        let b = strict("a", "b", "c");
        let ct = seal(b"v", &[k.public().clone()], &b).unwrap();
        let e = open(&ct, &Keyring::from_iter([other.clone()]), &b).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&k.id().to_string()) && msg.contains(&other.id().to_string()));
    }

    #[test]
    fn tampering_and_truncation_fail_cleanly() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let b = strict("a", "b", "c");
        let ct = seal(&[7u8; 100], &[k.public().clone()], &b).unwrap();
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, &ring, &b).is_err(), "flip at {i} accepted");
        }
        for n in 0..ct.len() {
            assert!(
                open(&ct[..n], &ring, &b).is_err(),
                "truncation at {n} accepted"
            );
        }
    }

    #[test]
    fn edited_binding_breaks_the_mac() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let ct = seal(b"v", &[k.public().clone()], &strict("prod", "db", "pw")).unwrap();
        let text = ct.clone();
        let pos = text
            .windows(4)
            .position(|w| w == b"prod")
            .expect("binding is in the header");
        let mut edited = text.clone();
        edited[pos..pos + 4].copy_from_slice(b"test");
        let e = open(&edited, &ring, &strict("test", "db", "pw")).unwrap_err();
        assert!(matches!(e, OpenError::Tampered), "{e}");
    }
}
