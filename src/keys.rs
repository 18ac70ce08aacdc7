//! age X25519 keys: public keys (recipients) with their key ids, private keys, identity
//! files and the keyring used to open values.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::scope::printable;

/// A short, public identifier of a key pair: the first four bytes of
/// SHA-256(`"gitseal.dev/kid/v1:" || recipient`), shown as eight hex digits.
///
/// It is a hint written next to each recipient stanza so that the opener picks the right
/// identity without trial decryption. It is not a security boundary: age still
/// authenticates everything, and two keys sharing an id only cost one more attempt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 4]);

impl KeyId {
    fn of(recipient: &age::x25519::Recipient) -> Self {
        let mut h = Sha256::new();
        h.update(b"gitseal.dev/kid/v1:");
        h.update(recipient.to_string().as_bytes());
        let digest = h.finalize();
        KeyId([digest[0], digest[1], digest[2], digest[3]])
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 8 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(());
        }
        let mut out = [0u8; 4];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(KeyId(out))
    }
}

/// A public key (`age1…`) that values can be sealed to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    recipient: age::x25519::Recipient,
    id: KeyId,
}

/// A string that is not a valid `age1…` X25519 recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid recipient `{shown}`: {why}")]
pub struct InvalidRecipient {
    shown: String,
    why: &'static str,
}

impl FromStr for PublicKey {
    type Err = InvalidRecipient;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let why = if s.starts_with("AGE-SECRET-KEY-") {
            // Never echo a private key back.
            return Err(InvalidRecipient {
                shown: "AGE-SECRET-KEY-…".into(),
                why: "this is a private key; pass its public key (`gitseal keys public -i FILE`)",
            });
        } else if s.starts_with("ssh-") {
            "SSH keys are not supported; use an age X25519 key (age1…)"
        } else if !s.starts_with("age1") {
            "expected an age X25519 public key starting with `age1`"
        } else if s.starts_with("age1") && s.len() != 62 {
            "an age X25519 public key is 62 characters long (truncated or a plugin key?)"
        } else {
            "not a valid age X25519 public key (bad checksum or characters)"
        };
        match s.parse::<age::x25519::Recipient>() {
            Ok(recipient) => Ok(PublicKey::from_recipient(recipient)),
            Err(_) => Err(InvalidRecipient {
                shown: printable(s),
                why,
            }),
        }
    }
}

impl PublicKey {
    fn from_recipient(recipient: age::x25519::Recipient) -> Self {
        let id = KeyId::of(&recipient);
        PublicKey { recipient, id }
    }
    pub fn id(&self) -> KeyId {
        self.id
    }
    pub(crate) fn recipient(&self) -> &age::x25519::Recipient {
        &self.recipient
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.recipient, f)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.id, self.recipient)
    }
}

/// A private key. It never prints: `Debug` shows its key id only. The secret scalar is
/// zeroized when the last copy is dropped.
#[derive(Clone)]
pub struct SecretKey {
    identity: crate::x25519::Identity,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} [redacted])", self.public.id)
    }
}

impl SecretKey {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self::from_identity(crate::x25519::Identity::generate())
    }

    fn from_identity(identity: crate::x25519::Identity) -> Self {
        let recipient = identity
            .recipient_string()
            .parse::<age::x25519::Recipient>()
            .expect("an X25519 public key encodes to a valid age recipient");
        let public = PublicKey::from_recipient(recipient);
        SecretKey { identity, public }
    }

    /// Parses one `AGE-SECRET-KEY-1…` string. The error never contains the input.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        crate::x25519::Identity::parse(s.trim())
            .map(Self::from_identity)
            .ok_or("not a valid age X25519 private key (AGE-SECRET-KEY-1…)")
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }
    pub fn id(&self) -> KeyId {
        self.public.id
    }

    /// The `AGE-SECRET-KEY-1…` string.
    pub fn to_secret_string(&self) -> SecretString {
        SecretString::from(self.identity.to_secret_string().as_str())
    }

    /// The text of an identity file in age's own layout, readable by `age -d -i`.
    /// `created` is an RFC 3339 time stamp.
    pub fn to_identity_file(&self, created: &str) -> SecretString {
        let s = format!(
            "# created: {created}\n# public key: {}\n{}\n",
            self.public,
            self.identity.to_secret_string().as_str()
        );
        SecretString::from(s)
    }

    pub(crate) fn identity(&self) -> &crate::x25519::Identity {
        &self.identity
    }
}

/// Key pairs whose private half is published, so that anything sealed to them is as good
/// as plaintext: the test vectors of `docs/FORMAT.md` (checked against that file by
/// `tests/format_vectors.rs`) and the age crate's own test key. Each entry is the private
/// key and where it is published; the public keys are derived from them, so this list
/// cannot drift from the keys it names.
///
/// The library still seals to them (the format vectors are made that way); the CLI's
/// `seal`, `create`, `reseal` and `keys backup`, and the rules file reader, refuse them,
/// and `check` flags values sealed to them.
const PUBLISHED_PRIVATE_KEYS: &[(&str, &str)] = &[
    (
        "AGE-SECRET-KEY-1R7CYF2HZHW2WDJE8GCEDVA645TTCSUCCWHKRR9KLRCCFDKQDZA2ST9VR0W",
        "test key A of docs/FORMAT.md",
    ),
    (
        "AGE-SECRET-KEY-1HCR7WU2KU4FH8ZEGF3ZT9SU629VSY7RYW9E4QV9R25QJNSDP43ZSPVATND",
        "test key B of docs/FORMAT.md",
    ),
    (
        "AGE-SECRET-KEY-1GQ9778VQXMMJVE8SK7J6VT8UJ4HDQAJUVSFCWCM02D8GEWQ72PVQ2Y5J33",
        "the age crate's test key (in its source code)",
    ),
];

/// The public halves of [`PUBLISHED_PRIVATE_KEYS`], with where each private half is.
fn published_keys() -> &'static [(PublicKey, &'static str)] {
    static KEYS: std::sync::OnceLock<Vec<(PublicKey, &'static str)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        PUBLISHED_PRIVATE_KEYS
            .iter()
            .filter_map(|(sk, where_)| Some((SecretKey::parse(sk).ok()?.public().clone(), *where_)))
            .collect()
    })
}

/// The labels of the placeholder recipients used in documentation (`keys.example`).
pub const PLACEHOLDER_LABELS: &[&str] = &["escrow", "prod-eu-1", "prod-us-1", "staging", "dev"];

/// A placeholder recipient for documentation: the public key whose 32 bytes are
/// SHA-256(`"gitseal.dev/placeholder/v1:"` ‖ `label`). Any 32 bytes are a valid X25519
/// public key, and nobody knows a private key for a hash output, so this looks like a real
/// `age1…` key but nothing sealed to it can ever be opened (and gitseal refuses to try).
pub fn placeholder(label: &str) -> PublicKey {
    let mut h = Sha256::new();
    h.update(b"gitseal.dev/placeholder/v1:");
    h.update(label.as_bytes());
    let bytes: [u8; 32] = h.finalize().into();
    crate::x25519::recipient_string(&bytes)
        .parse()
        .expect("any 32 bytes are an X25519 public key")
}

fn placeholders() -> &'static [(PublicKey, &'static str)] {
    static KEYS: std::sync::OnceLock<Vec<(PublicKey, &'static str)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        PLACEHOLDER_LABELS
            .iter()
            .map(|l| (placeholder(l), *l))
            .collect()
    })
}

/// A recipient that must not be sealed to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnusableRecipient {
    /// Its private key is published: sealing to it protects nothing.
    #[error(
        "{key} is {where_}: its private key is published, so anyone could open what is sealed to it; \
         seal to your cluster's key instead (`gitseal keys fetch`, or `gitseal keys generate` for a key of your own)"
    )]
    Published { key: String, where_: &'static str },
    /// A documentation placeholder: nobody could ever open what is sealed to it.
    #[error(
        "{key} is the placeholder `{label}` from keys.example: nobody holds its private key, so nothing sealed to it \
         could ever be opened; replace it with your cluster's key (`gitseal keys fetch`)"
    )]
    Placeholder { key: String, label: &'static str },
}

impl PublicKey {
    /// Refuses a key whose private half is published, or a documentation placeholder.
    pub fn check_usable(&self) -> Result<(), UnusableRecipient> {
        if let Some((_, where_)) = published_keys().iter().find(|(k, _)| k == self) {
            return Err(UnusableRecipient::Published {
                key: self.to_string(),
                where_,
            });
        }
        if let Some((_, label)) = placeholders().iter().find(|(k, _)| k == self) {
            return Err(UnusableRecipient::Placeholder {
                key: self.to_string(),
                label,
            });
        }
        Ok(())
    }
}

impl KeyId {
    /// Where the private key of the published key with this id is published, if one has
    /// it. A key id is a hint (4 bytes): this names a likely match, not a proven one.
    pub fn published_as(&self) -> Option<&'static str> {
        published_keys()
            .iter()
            .find(|(k, _)| k.id() == *self)
            .map(|(_, where_)| *where_)
    }

    /// The label of the `keys.example` placeholder with this id, if one has it.
    pub fn placeholder_as(&self) -> Option<&'static str> {
        placeholders()
            .iter()
            .find(|(k, _)| k.id() == *self)
            .map(|(_, label)| *label)
    }
}

/// Why an identity file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityFileError {
    #[error("line {line}: {why}")]
    BadLine { line: usize, why: &'static str },
    #[error("no private key found (expected lines starting with AGE-SECRET-KEY-1)")]
    Empty,
    #[error("could not read: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads an identity file in age's format: one `AGE-SECRET-KEY-1…` per line, `#` comments
/// and blank lines ignored. Lines are never echoed in errors.
pub fn read_identity_file(input: impl BufRead) -> Result<Vec<SecretKey>, IdentityFileError> {
    let mut keys = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = zeroize::Zeroizing::new(line?);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let why = if t.starts_with("AGE-PLUGIN-") {
            "plugin identities are not supported; use an X25519 key"
        } else if t.starts_with("-----BEGIN") {
            "SSH or PEM keys are not supported; use an age X25519 key"
        } else if t.starts_with("age1") {
            "this is a public key; an identity file holds AGE-SECRET-KEY-1… private keys"
        } else {
            "not a valid age X25519 private key (AGE-SECRET-KEY-1…)"
        };
        let key =
            SecretKey::parse(t).map_err(|_| IdentityFileError::BadLine { line: i + 1, why })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(IdentityFileError::Empty);
    }
    Ok(keys)
}

/// The private keys able to open values, indexed by key id so that opening a value costs
/// the same whatever the number of keys.
#[derive(Default, Clone)]
pub struct Keyring {
    keys: Vec<SecretKey>,
    by_id: HashMap<KeyId, Vec<usize>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.id()))
            .finish()
    }
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a key already in the ring is not added twice.
    pub fn add(&mut self, key: SecretKey) {
        let slot = self.by_id.entry(key.id()).or_default();
        if slot.iter().any(|&i| self.keys[i].public == key.public) {
            return;
        }
        slot.push(self.keys.len());
        self.keys.push(key);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn keys(&self) -> impl Iterator<Item = &SecretKey> {
        self.keys.iter()
    }

    pub(crate) fn with_id(&self, id: KeyId) -> impl Iterator<Item = &SecretKey> {
        self.by_id
            .get(&id)
            .into_iter()
            .flatten()
            .map(|&i| &self.keys[i])
    }
}

impl FromIterator<SecretKey> for Keyring {
    fn from_iter<T: IntoIterator<Item = SecretKey>>(iter: T) -> Self {
        let mut ring = Keyring::new();
        for k in iter {
            ring.add(k);
        }
        ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn identity_file_round_trip() {
        let key = SecretKey::generate();
        let text = key.to_identity_file("2026-11-26T00:00:00Z");
        let keys = read_identity_file(text.expose_secret().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].public(), key.public());
    }

    #[test]
    fn debug_never_prints_the_private_key() {
        let key = SecretKey::generate();
        let secret = key.to_secret_string();
        let shown = format!("{key:?} {:?}", Keyring::from_iter([key.clone()]));
        assert!(!shown.contains(secret.expose_secret()));
        assert!(!shown.contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn bad_identity_lines_are_not_echoed() {
        let err = read_identity_file("# c\nAGE-SECRET-KEY-1NOPE\n".as_bytes()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(!msg.contains("NOPE"), "{msg}");
        assert!(matches!(
            read_identity_file("# only comments\n".as_bytes()),
            Err(IdentityFileError::Empty)
        ));
    }

    #[test]
    fn published_keys_and_placeholders_are_refused() {
        assert_eq!(published_keys().len(), PUBLISHED_PRIVATE_KEYS.len());
        for (k, where_) in published_keys() {
            let e = k.check_usable().unwrap_err();
            assert!(matches!(e, UnusableRecipient::Published { .. }));
            let e = e.to_string();
            assert!(e.contains(&k.to_string()) && e.contains(where_), "{e}");
            assert_eq!(k.id().published_as(), Some(*where_));
        }
        for label in PLACEHOLDER_LABELS {
            let k = placeholder(label);
            let e = k.check_usable().unwrap_err();
            assert!(matches!(e, UnusableRecipient::Placeholder { .. }));
            assert!(e.to_string().contains(label), "{e}");
            assert_eq!(k.id().placeholder_as(), Some(*label));
        }
        let fresh = SecretKey::generate();
        assert!(fresh.public().check_usable().is_ok());
        assert_eq!(fresh.id().published_as(), None);
    }

    #[test]
    fn recipient_errors_explain() {
        let e = "age1xyz".parse::<PublicKey>().unwrap_err().to_string();
        assert!(e.contains("62 characters"), "{e}");
        let k = SecretKey::generate();
        let e = k
            .to_secret_string()
            .expose_secret()
            .parse::<PublicKey>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("private key") && !e.contains("AGE-SECRET-KEY-1"),
            "{e}"
        );
        let id = k.id();
        assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
    }
}
