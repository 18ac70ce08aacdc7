//! The X25519 age identity, built directly on `x25519-dalek`, HKDF-SHA-256 and
//! ChaCha20-Poly1305 (<https://c2sp.org/age#x25519-recipient-stanza>).
//!
//! The age crate's own `x25519::Identity` keeps only the secret scalar and recomputes the
//! public key (a fixed-base scalar multiplication, about a third of a Diffie-Hellman) every
//! time it unwraps a stanza, because the public key is part of the HKDF salt. This one
//! computes it once, when the key is loaded, so unwrapping a stanza costs one DH plus
//! hashing. The bytes on the wire are the same: stock `age` opens what this opens.

use std::fmt;

use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// The stanza tag of X25519 recipients.
pub(crate) const TAG: &str = "X25519";
const KEY_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
/// The ephemeral share: 32 bytes, 43 characters of unpadded base64.
const SHARE_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
/// The wrapped file key: 16 bytes plus the Poly1305 tag.
const WRAPPED_BYTES: usize = FILE_KEY_BYTES + TAG_BYTES;

const SECRET_HRP: &str = "AGE-SECRET-KEY-";
const PUBLIC_HRP: &str = "age";

/// The age bech32 variant: BIP-173's checksum without its 90-character limit.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Bech32Long {}
impl bech32::Checksum for Bech32Long {
    type MidstateRepr = u32;
    const CODE_LENGTH: usize = usize::MAX;
    const CHECKSUM_LENGTH: usize = bech32::Bech32::CHECKSUM_LENGTH;
    const GENERATOR_SH: [u32; 5] = bech32::Bech32::GENERATOR_SH;
    const TARGET_RESIDUE: u32 = bech32::Bech32::TARGET_RESIDUE;
}

/// Decodes `s` as bech32 with the human-readable part `hrp` into exactly 32 bytes. The
/// bytes are zeroized if anything goes wrong after decoding.
fn bech32_32(s: &str, hrp: &str) -> Option<Zeroizing<[u8; 32]>> {
    let parsed = bech32::primitives::decode::CheckedHrpstring::new::<Bech32Long>(s).ok()?;
    if parsed.hrp() != bech32::Hrp::parse_unchecked(hrp) {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let mut n = 0;
    for b in parsed.byte_iter() {
        *out.get_mut(n)? = b;
        n += 1;
    }
    (n == 32).then_some(out)
}

fn bech32_encode(hrp: &str, bytes: &[u8; 32]) -> String {
    bech32::encode_lower::<Bech32Long>(bech32::Hrp::parse_unchecked(hrp), bytes).unwrap_or_default()
}

/// The `age1…` string of a public key.
pub(crate) fn recipient_string(public: &[u8; 32]) -> String {
    bech32_encode(PUBLIC_HRP, public)
}

/// An X25519 identity: the secret scalar and, computed once, its public key.
///
/// The secret is zeroized on drop (x25519-dalek's `StaticSecret`); `Debug` prints
/// nothing secret.
#[derive(Clone)]
pub(crate) struct Identity {
    secret: x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("x25519::Identity([redacted])")
    }
}

impl Identity {
    /// A fresh random key from the operating system's generator.
    pub(crate) fn generate() -> Self {
        Self::from_secret(x25519_dalek::StaticSecret::random())
    }

    fn from_secret(secret: x25519_dalek::StaticSecret) -> Self {
        let public = x25519_dalek::PublicKey::from(&secret);
        Identity { secret, public }
    }

    /// Parses an `AGE-SECRET-KEY-1…` string (either case, as age does).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let bytes = bech32_32(s, SECRET_HRP)?;
        Some(Self::from_secret(x25519_dalek::StaticSecret::from(*bytes)))
    }

    /// The `AGE-SECRET-KEY-1…` string. The caller keeps it secret.
    pub(crate) fn to_secret_string(&self) -> Zeroizing<String> {
        let bytes = Zeroizing::new(self.secret.to_bytes());
        let mut lower = Zeroizing::new(bech32_encode(SECRET_HRP, &bytes));
        let upper = Zeroizing::new(lower.to_uppercase());
        lower.zeroize();
        upper
    }

    /// The public key as an `age1…` string.
    pub(crate) fn recipient_string(&self) -> String {
        recipient_string(self.public.as_bytes())
    }

    /// Unwraps the file key from one `X25519` stanza. `None` when the stanza is not for
    /// this key (or is not an X25519 stanza at all), an error when it is malformed.
    pub(crate) fn unwrap(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        if stanza.tag != TAG {
            return None;
        }
        self.unwrap_parts(&stanza.args, &stanza.body)
    }

    /// [`Self::unwrap`] over the arguments and decoded body of an X25519 stanza.
    pub(crate) fn unwrap_parts(
        &self,
        args: &[impl AsRef<str>],
        body: &[u8],
    ) -> Option<Result<FileKey, age::DecryptError>> {
        // The stanza must be canonical: one argument of exactly 32 bytes, a 32-byte body.
        let [share] = args else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        let share = share.as_ref();
        let mut epk = [0u8; SHARE_BYTES + 1];
        match STANDARD_NO_PAD.decode_slice(share, &mut epk) {
            Ok(SHARE_BYTES) => {}
            _ => return Some(Err(age::DecryptError::InvalidHeader)),
        }
        let Ok(wrapped) = <&[u8; WRAPPED_BYTES]>::try_from(body) else {
            return Some(Err(age::DecryptError::InvalidHeader));
        };
        let mut epk_bytes = [0u8; SHARE_BYTES];
        epk_bytes.copy_from_slice(&epk[..SHARE_BYTES]);
        let epk = x25519_dalek::PublicKey::from(epk_bytes);

        let shared = self.secret.diffie_hellman(&epk);
        // A low-order share gives the all-zero secret: refuse it, as age does.
        if !shared.was_contributory() {
            return Some(Err(age::DecryptError::InvalidHeader));
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(epk.as_bytes());
        salt[32..].copy_from_slice(self.public.as_bytes());
        let mut wrap_key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes())
            .expand(KEY_LABEL, &mut wrap_key[..])
            .ok()?;

        // ChaCha20-Poly1305 with a zero nonce, decrypted in place on the stack so no
        // unzeroized copy of the file key is left behind. A failure means the stanza is
        // for another key: not an error, the caller may try another stanza.
        let (ct, tag) = wrapped.split_at(FILE_KEY_BYTES);
        let cipher = ChaCha20Poly1305::new((&*wrap_key).into());
        FileKey::try_init_with_mut(|file_key| {
            file_key.copy_from_slice(ct);
            cipher.decrypt_in_place_detached(&[0u8; 12].into(), b"", file_key, tag.into())
        })
        .ok()
        .map(Ok)
    }
}

impl age::Identity for Identity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap(stanza)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn same_keys_as_the_age_crate() {
        for _ in 0..32 {
            let ours = Identity::generate();
            let text = ours.to_secret_string();
            let theirs: age::x25519::Identity = text.parse().unwrap();
            assert_eq!(theirs.to_string().expose_secret(), &*text);
            assert_eq!(theirs.to_public().to_string(), ours.recipient_string());
            let back = Identity::parse(&text.to_lowercase()).unwrap();
            assert_eq!(back.recipient_string(), ours.recipient_string());
        }
    }

    #[test]
    fn refuses_what_is_not_a_secret_key() {
        let k = Identity::generate();
        let pk = k.recipient_string();
        assert!(
            Identity::parse(&pk).is_none(),
            "a public key is not an identity"
        );
        let mut s = k.to_secret_string().to_string();
        s.pop();
        assert!(Identity::parse(&s).is_none(), "bad checksum");
        assert!(Identity::parse("AGE-SECRET-KEY-1").is_none());
        assert!(Identity::parse("").is_none());
    }

    #[test]
    fn unwraps_what_age_wraps_and_nothing_else() {
        let ours = Identity::generate();
        let recipient: age::x25519::Recipient = ours.recipient_string().parse().unwrap();
        let file_key = FileKey::new(Box::new([7; 16]));
        let (stanzas, _) = age::Recipient::wrap_file_key(&recipient, &file_key).unwrap();
        let copy = |s: &Stanza| Stanza {
            tag: s.tag.clone(),
            args: s.args.clone(),
            body: s.body.clone(),
        };
        let got = ours.unwrap(&stanzas[0]).unwrap().unwrap();
        assert_eq!(got.expose_secret(), file_key.expose_secret());

        let other = Identity::generate();
        assert!(other.unwrap(&stanzas[0]).is_none(), "another key's stanza");

        let mut bad = copy(&stanzas[0]);
        bad.body.pop();
        assert!(matches!(ours.unwrap(&bad), Some(Err(_))), "short body");
        let mut bad = copy(&stanzas[0]);
        bad.args.push("x".into());
        assert!(matches!(ours.unwrap(&bad), Some(Err(_))), "two arguments");
        let mut bad = copy(&stanzas[0]);
        bad.args[0] = STANDARD_NO_PAD.encode([0u8; 32]);
        assert!(matches!(ours.unwrap(&bad), Some(Err(_))), "low-order share");
        let mut bad = copy(&stanzas[0]);
        bad.args[0].push('A');
        assert!(matches!(ours.unwrap(&bad), Some(Err(_))), "long share");
        let mut bad = copy(&stanzas[0]);
        bad.tag = "scrypt".into();
        assert!(
            ours.unwrap(&bad).is_none(),
            "other stanza types are skipped"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let k = Identity::generate();
        let shown = format!("{k:?}");
        assert!(!shown.contains(&*k.to_secret_string()));
        assert!(!shown.contains("AGE-SECRET-KEY"));
    }
}
