//! Sealing and opening one value: an age v1 file to any number of X25519 recipients, with
//! one extra `gitseal` stanza that carries the key ids and the scope binding.
//!
//! The extra stanza is covered by age's header MAC, so changing the binding or the key ids
//! breaks the file; stock `age -d` skips it as an unknown stanza type. The byte layout is
//! documented in `docs/FORMAT.md`.

use std::collections::HashSet;
use std::io::Write;
use std::iter;

use age::EncryptError;
use age_core::format::{FileKey, Stanza};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keys::{KeyId, Keyring, PublicKey};
use crate::scope::Binding;

/// The tag of the stanza that carries key ids and binding.
pub const STANZA_TAG: &str = "gitseal";
const X25519_TAG: &str = crate::x25519::TAG;
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// `--- <43 characters of base64>\n`
const MAC_LINE_BYTES: usize = 4 + 43 + 1;

/// Largest value gitseal seals or opens: Kubernetes refuses Secrets over 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest ciphertext gitseal reads (a full-size value plus a generous header).
pub const MAX_CIPHERTEXT_BYTES: usize = MAX_VALUE_BYTES + 64 * 1024;

/// Most stanzas in one sealed value's header: one per recipient, the `gitseal` stanza and
/// age's grease stanza. Sealing refuses more than `MAX_STANZAS - 2` recipients, so no
/// value gitseal made comes near it; a header with thousands of stanzas is hostile.
pub const MAX_STANZAS: usize = 64;
/// Most bytes in one sealed value's header (magic line to MAC line). 62 recipients take
/// about 7.5 KB (98 bytes per X25519 stanza, a `gitseal` stanza of at most ~1.2 KB, the
/// grease stanza under 300 bytes).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most X25519 unwraps (one Diffie-Hellman each) tried on one value. A value names each
/// recipient once, so an honest value needs one, or two when key ids collide; a value
/// that names the opener's key ids again and again gets no more than this.
pub const MAX_UNWRAP_ATTEMPTS: usize = 4;
/// Most recipients of one value (see [`MAX_STANZAS`]).
pub const MAX_RECIPIENTS: usize = MAX_STANZAS - 2;

/// Why a value could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("no recipients: give at least one public key")]
    NoRecipients,
    #[error("value is {0} bytes; Kubernetes Secrets hold at most 1 MiB")]
    TooLarge(usize),
    #[error("{0} recipients; one value can be sealed to at most {MAX_RECIPIENTS}")]
    TooManyRecipients(usize),
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
    /// The header breaks one of the limits above; nothing was decrypted.
    #[error(
        "the age header has more than {limit} {what}, gitseal's limit: no sealed value comes near it, so the input is corrupted or hostile; refused before parsing further"
    )]
    Limit { what: &'static str, limit: usize },
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

/// What the `gitseal` stanza says: recipient key ids and the binding.
type StanzaContent = (Vec<KeyId>, Binding);

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
    if unique.len() > MAX_RECIPIENTS {
        return Err(SealError::TooManyRecipients(unique.len()));
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
///
/// This is also the pre-scan [`open`] starts with: it reads at most [`MAX_HEADER_BYTES`]
/// and [`MAX_STANZAS`] stanzas, each once, so its cost is linear and bounded whatever the
/// input. (age's own header reader parses the header again from the start after every
/// line it reads: quadratic in the number of lines, 20 s of CPU for a 1 MB header of 9,000
/// stanzas. gitseal never hands it a header.)
pub fn inspect(ciphertext: &[u8]) -> Result<Header, OpenError> {
    scan(ciphertext).map(|s| s.header)
}

/// A sealed value taken apart, nothing decrypted yet.
struct Scanned<'a> {
    header: Header,
    /// The X25519 stanzas, in order (the i-th belongs to `header.key_ids[i]`).
    x25519: Vec<age_core::format::AgeStanza<'a>>,
    /// The bytes the header MAC covers: everything up to and including `---`.
    mac_input: &'a [u8],
    mac: [u8; 32],
    /// The 16-byte nonce and the STREAM chunks.
    payload: &'a [u8],
}

fn scan(ciphertext: &[u8]) -> Result<Scanned<'_>, OpenError> {
    if ciphertext.len() > MAX_CIPHERTEXT_BYTES {
        return Err(OpenError::TooLarge);
    }
    let window = &ciphertext[..ciphertext.len().min(MAX_HEADER_BYTES)];
    let truncated = window.len() < ciphertext.len();
    let too_long = OpenError::Limit {
        what: "bytes",
        limit: MAX_HEADER_BYTES,
    };
    let mut input = window
        .strip_prefix(AGE_MAGIC)
        .ok_or(OpenError::Malformed("not an age v1 file"))?;
    let mut found = None;
    let mut x25519 = Vec::new();
    let mut stanzas = 0usize;
    while !input.starts_with(b"---") {
        if stanzas == MAX_STANZAS {
            return Err(OpenError::Limit {
                what: "stanzas",
                limit: MAX_STANZAS,
            });
        }
        let (rest, stanza) = match age_core::format::read::age_stanza(input) {
            Ok(ok) => ok,
            Err(e) if e.is_incomplete() && truncated => return Err(too_long),
            Err(_) => {
                return Err(OpenError::Malformed(
                    "the age header is truncated or invalid",
                ));
            }
        };
        input = rest;
        stanzas += 1;
        match stanza.tag {
            STANZA_TAG if found.is_some() => {
                return Err(OpenError::Malformed("more than one gitseal stanza"));
            }
            STANZA_TAG => {
                let args: Vec<String> = stanza.args.iter().map(|a| (*a).to_owned()).collect();
                found = Some(parse_stanza_args(&args)?);
            }
            X25519_TAG => x25519.push(stanza),
            _ => {}
        }
    }
    // The MAC line: "--- " + 43 characters of base64 + newline, inside the window too.
    if input.len() < MAC_LINE_BYTES && truncated {
        return Err(too_long);
    }
    let mac_at = window.len() - input.len();
    let mac = match input.get(..MAC_LINE_BYTES) {
        Some([b'-', b'-', b'-', b' ', encoded @ .., b'\n']) => decode_mac(encoded),
        _ => None,
    }
    .ok_or(OpenError::Malformed("the age header's MAC line is invalid"))?;
    if stanzas == 0 {
        return Err(OpenError::Malformed("the age header has no stanza"));
    }
    let (key_ids, binding) = found.ok_or(OpenError::Malformed(
        "no gitseal stanza (sealed by plain age, not by gitseal)",
    ))?;
    if key_ids.len() != x25519.len() {
        return Err(OpenError::Malformed(
            "the key ids do not match the recipient stanzas",
        ));
    }
    Ok(Scanned {
        header: Header { key_ids, binding },
        x25519,
        mac_input: &ciphertext[..mac_at + 3],
        mac,
        payload: &ciphertext[mac_at + MAC_LINE_BYTES..],
    })
}

/// The 32-byte MAC from its 43 characters of canonical unpadded base64.
fn decode_mac(encoded: &[u8]) -> Option<[u8; 32]> {
    use base64::Engine;
    let mut buf = [0u8; 33];
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode_slice(encoded, &mut buf) {
        Ok(32) => buf[..32].try_into().ok(),
        _ => None,
    }
}

/// `HKDF-SHA-256(ikm = file key, salt, info = label)`, 32 bytes.
fn hkdf(salt: &[u8], label: &[u8], file_key: &FileKey) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(Some(salt), file_key.expose_secret())
        .expand(label, &mut out[..])
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    out
}

/// age's payload: ChaCha20-Poly1305 STREAM in 64 KiB chunks, nonce = 11-byte big-endian
/// counter ‖ last-chunk flag. Decrypted in place into a buffer of exactly the plaintext's
/// size, so no reallocation leaves an unzeroized copy behind.
fn decrypt_payload(payload: &[u8], file_key: &FileKey) -> Result<SecretSlice<u8>, OpenError> {
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    const NONCE_BYTES: usize = 16;
    const CHUNK: usize = 64 * 1024;
    const TAG: usize = 16;
    let (nonce, chunks) = payload
        .split_at_checked(NONCE_BYTES)
        .ok_or(OpenError::Tampered)?;
    // At least one chunk (an empty value is one chunk of just a tag).
    if chunks.is_empty() {
        return Err(OpenError::Tampered);
    }
    // Every chunk, the last included, holds at least its tag; only then are the sizes
    // below right. (The payload is not covered by the header MAC: whoever seals a value
    // to the opener's public key chooses its bytes, so this is checked, not assumed.)
    if matches!(chunks.len() % (CHUNK + TAG), 1..TAG) {
        return Err(OpenError::Tampered);
    }
    let n_chunks = chunks.len().div_ceil(CHUNK + TAG);
    let len = chunks
        .len()
        .checked_sub(n_chunks * TAG)
        .ok_or(OpenError::Tampered)?;
    let key = hkdf(nonce, b"payload", file_key);
    let aead = ChaCha20Poly1305::new((&*key).into());
    let mut out = Zeroizing::new(vec![0u8; len]);
    let mut at = 0;
    for (i, chunk) in chunks.chunks(CHUNK + TAG).enumerate() {
        let last = i + 1 == n_chunks;
        let (ct, tag) = chunk
            .split_at_checked(chunk.len().saturating_sub(TAG))
            .filter(|(_, tag)| tag.len() == TAG)
            .ok_or(OpenError::Tampered)?;
        // Only the first chunk may be empty, and only when it is the last.
        if ct.is_empty() && i > 0 {
            return Err(OpenError::Tampered);
        }
        let mut nonce = [0u8; 12];
        nonce[..11].copy_from_slice(&(i as u128).to_be_bytes()[5..]);
        nonce[11] = u8::from(last);
        let dst = out.get_mut(at..at + ct.len()).ok_or(OpenError::Tampered)?;
        dst.copy_from_slice(ct);
        aead.decrypt_in_place_detached(&nonce.into(), b"", dst, tag.into())
            .map_err(|_| OpenError::Tampered)?;
        at += ct.len();
    }
    let value: Box<[u8]> = std::mem::take(&mut *out).into_boxed_slice();
    Ok(SecretSlice::from(value))
}

/// Opens one value with the keys of `ring`, checking that it was sealed for `expected`.
///
/// The header is pre-scanned within the limits above; then only the keys whose id the
/// value names are tried (at most [`MAX_UNWRAP_ATTEMPTS`] unwraps), so the cost does not
/// grow with the number of keys in the ring: one X25519 operation, three HKDFs, the header
/// HMAC and ChaCha20-Poly1305 over the value, with the opener's public key computed once
/// when the key was loaded. This is age v1 decryption (<https://c2sp.org/age>), done here
/// over the bytes in memory rather than through the age crate's streaming reader.
pub fn open(
    ciphertext: &[u8],
    ring: &Keyring,
    expected: &Binding,
) -> Result<SecretSlice<u8>, OpenError> {
    let scanned = scan(ciphertext)?;
    let mut file_key = None;
    let mut attempts = 0;
    'outer: for (stanza, id) in scanned.x25519.iter().zip(&scanned.header.key_ids) {
        for key in ring.with_id(*id) {
            if attempts == MAX_UNWRAP_ATTEMPTS {
                break 'outer;
            }
            attempts += 1;
            match key.identity().unwrap_parts(&stanza.args, &stanza.body()) {
                Some(Ok(k)) => {
                    file_key = Some(k);
                    break 'outer;
                }
                Some(Err(_)) => {
                    return Err(OpenError::Malformed("an X25519 stanza is invalid"));
                }
                None => {}
            }
        }
    }
    let Some(file_key) = file_key else {
        return Err(OpenError::NoMatchingKey {
            sealed_to: scanned.header.key_ids,
            ring: ring.keys().map(|k| k.id()).collect(),
        });
    };
    // The header MAC: HMAC-SHA-256 keyed by HKDF(file key, "header") over the header up
    // to `---`. It covers the gitseal stanza, so only after it is the binding authentic.
    let mac_key = hkdf(&[], b"header", &file_key);
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&mac_key[..])
        .expect("HMAC takes a key of any length");
    hmac::Mac::update(&mut mac, scanned.mac_input);
    hmac::Mac::verify_slice(mac, &scanned.mac).map_err(|_| OpenError::Tampered)?;
    if &scanned.header.binding != expected {
        return Err(OpenError::ScopeMismatch {
            sealed_for: Box::new(scanned.header.binding),
            expected: Box::new(expected.clone()),
        });
    }
    decrypt_payload(scanned.payload, &file_key)
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

    /// A header of `n` X25519-shaped stanzas (random shares and bodies) then a gitseal
    /// stanza naming `id` for each, a MAC line and a payload: what an attacker can write
    /// without any key.
    fn hostile_header(n: usize, id: KeyId) -> Vec<u8> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let mut out = AGE_MAGIC.to_vec();
        for i in 0..n {
            let share = b64.encode([(i % 251) as u8 + 1; 32]);
            let body = b64.encode([7u8; 32]);
            out.extend_from_slice(format!("-> X25519 {share}\n{body}\n").as_bytes());
        }
        let ids = vec![id.to_string(); n].join(",");
        out.extend_from_slice(format!("-> gitseal {ids} cluster pw\n\n").as_bytes());
        out.extend_from_slice(format!("--- {}\n", b64.encode([0u8; 32])).as_bytes());
        out.extend_from_slice(&[0u8; 40]);
        out
    }

    #[test]
    fn limits_are_checked_before_age_parses() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let b = Binding::new(Scope::Cluster, None, None, "pw").unwrap();

        // Thousands of stanzas: refused at the 65th, in the pre-scan.
        let ct = hostile_header(9000, k.id());
        assert!(
            ct.len() < MAX_CIPHERTEXT_BYTES,
            "the shape must reach the stanza check"
        );
        for e in [inspect(&ct).unwrap_err(), open(&ct, &ring, &b).unwrap_err()] {
            assert!(
                matches!(
                    e,
                    OpenError::Limit {
                        what: "stanzas",
                        limit: MAX_STANZAS
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("64 stanzas"), "{e}");
        }
        // Few stanzas but a header past MAX_HEADER_BYTES (one huge grease-like body).
        let mut big = AGE_MAGIC.to_vec();
        big.extend_from_slice(b"-> x-grease\n");
        for _ in 0..(2 * MAX_HEADER_BYTES / 64) {
            big.extend_from_slice(&[b'A'; 64]);
            big.push(b'\n');
        }
        big.extend_from_slice(b"AA\n--- ");
        let e = open(&big, &ring, &b).unwrap_err();
        assert!(matches!(e, OpenError::Limit { what: "bytes", .. }), "{e}");
        // The same shape cut short is merely malformed, not over the limit.
        let e = inspect(&big[..1000]).unwrap_err();
        assert!(matches!(e, OpenError::Malformed(_)), "{e}");
    }

    #[test]
    fn the_most_recipients_allowed_still_open() {
        let keys: Vec<SecretKey> = (0..MAX_RECIPIENTS).map(|_| SecretKey::generate()).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(|k| k.public().clone()).collect();
        let b = strict("prod", "a-long-name-for-a-secret", "a.long.key.name");
        let ct = seal(b"v", &pubs, &b).unwrap();
        let last = Keyring::from_iter([keys[MAX_RECIPIENTS - 1].clone()]);
        assert_eq!(open(&ct, &last, &b).unwrap().expose_secret(), b"v");
        let mut more = pubs.clone();
        more.push(SecretKey::generate().public().clone());
        assert!(matches!(
            seal(b"v", &more, &b),
            Err(SealError::TooManyRecipients(n)) if n == MAX_RECIPIENTS + 1
        ));
    }

    /// A value that names the opener's key id on many stanzas gets at most
    /// MAX_UNWRAP_ATTEMPTS Diffie-Hellman operations: a stanza past them is not tried.
    #[test]
    fn unwrap_attempts_are_capped() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let b = Binding::new(Scope::Cluster, None, None, "pw").unwrap();
        let with_decoys = |decoys: usize| {
            let others: Vec<SecretKey> = (0..decoys).map(|_| SecretKey::generate()).collect();
            let ids = vec![k.id(); decoys + 1];
            let stanza = GitsealStanza(stanza_args(&ids, &b));
            let recipients = others
                .iter()
                .map(|o| o.public().recipient() as &dyn age::Recipient)
                .chain([k.public().recipient() as &dyn age::Recipient, &stanza]);
            let enc = age::Encryptor::with_recipients(recipients).unwrap();
            let mut out = Vec::new();
            let mut w = enc.wrap_output(&mut out).unwrap();
            w.write_all(b"v").unwrap();
            w.finish().unwrap();
            out
        };
        let ct = with_decoys(MAX_UNWRAP_ATTEMPTS - 1);
        assert_eq!(open(&ct, &ring, &b).unwrap().expose_secret(), b"v");
        let ct = with_decoys(MAX_UNWRAP_ATTEMPTS);
        assert!(matches!(
            open(&ct, &ring, &b),
            Err(OpenError::NoMatchingKey { .. })
        ));
    }

    /// gitseal's own age v1 opener and the age crate's reader (with the same identity)
    /// agree on every size around the 64 KiB chunk boundaries, and on truncations and bit
    /// flips of a multi-chunk value.
    #[test]
    fn open_agrees_with_the_age_crate() {
        let k = SecretKey::generate();
        let ring = Keyring::from_iter([k.clone()]);
        let b = strict("prod", "db", "pw");
        let age_open = |ct: &[u8]| -> Option<Vec<u8>> {
            let d = age::Decryptor::new_buffered(ct).ok()?;
            let mut r = d
                .decrypt(std::iter::once(k.identity() as &dyn age::Identity))
                .ok()?;
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut out).ok()?;
            Some(out)
        };
        const C: usize = 64 * 1024;
        for len in [
            0,
            1,
            100,
            C - 1,
            C,
            C + 1,
            2 * C,
            2 * C + 7,
            MAX_VALUE_BYTES,
        ] {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ct = seal(&value, &[k.public().clone()], &b).unwrap();
            assert_eq!(
                open(&ct, &ring, &b).unwrap().expose_secret(),
                &value[..],
                "{len}"
            );
            assert_eq!(age_open(&ct).as_deref(), Some(&value[..]), "{len}");
        }
        let value = vec![9u8; 2 * C + 5];
        let ct = seal(&value, &[k.public().clone()], &b).unwrap();
        let payload = ct.len() - (2 * C + 5 + 3 * 16);
        let mut cuts: Vec<usize> = (payload - 20..ct.len()).step_by(997).collect();
        cuts.extend([payload + C + 16, payload + 2 * (C + 16), ct.len() - 1]);
        // The last chunk cut to fewer bytes than its tag, the header (and MAC) intact: what
        // anyone who can seal to the opener can send.
        cuts.extend((1..16).map(|n| payload + 2 * (C + 16) + n));
        for n in cuts {
            assert!(open(&ct[..n], &ring, &b).is_err(), "cut at {n}");
            assert!(age_open(&ct[..n]).is_none(), "age accepts the cut at {n}");
        }
        // A value of exactly one full chunk (its last chunk is full): flips anywhere refused.
        let ct = seal(&vec![1u8; C], &[k.public().clone()], &b).unwrap();
        assert!(open(&ct, &ring, &b).is_ok());
        for i in (0..ct.len()).step_by(4099) {
            let mut bad = ct.clone();
            bad[i] ^= 0x20;
            assert!(open(&bad, &ring, &b).is_err(), "flip at {i}");
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
