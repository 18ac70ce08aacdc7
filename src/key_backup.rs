//! The text of a key backup, as `gitseal keys backup` writes it (inside an age file, or in
//! the clear with `--plaintext`) and `gitseal keys restore` reads it: one block per sealing-key
//! Secret, a mark line naming the Secret, its state and creation time, then that key's identity
//! file. Lines before the first mark are comments.
//!
//! ```text
//! # gitseal-key-secret: gitseal-key-1a2b3c4d active 2026-11-26T00:00:00Z
//! # created: 2026-11-26T00:00:00Z
//! # public key: age1…
//! AGE-SECRET-KEY-1…
//! ```

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::keys::{IdentityFileError, read_identity_file};
use crate::scope::validate_name;

/// Starts each key's block; the rest of the block is its identity file.
pub const MARK: &str = "# gitseal-key-secret:";
/// Most keys one backup may restore (each is a Secret written to the cluster). A cluster
/// renewing its key every month keeps about a dozen a year.
pub const MAX_KEYS: usize = 1_000;

/// One sealing-key Secret of a backup. `Debug` shows everything but the identity.
pub struct BackedUpKey {
    /// The Secret's name.
    pub secret: String,
    /// Its sealing-key label (one of the states the reader was given).
    pub state: String,
    /// Its creation time as written (may be empty).
    pub created: String,
    /// The identity file, checked to hold at least one key.
    pub identity: SecretString,
}

impl fmt::Debug for BackedUpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackedUpKey")
            .field("secret", &self.secret)
            .field("state", &self.state)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Why a text is not a key backup. Messages never quote an identity line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("backup: a `{MARK}` line lacks the Secret name or state")]
    IncompleteMark,
    #[error("backup: bad `{MARK}` line (name or state)")]
    BadMark,
    #[error("backup: key Secret {secret}: {error}")]
    Identity {
        secret: String,
        error: IdentityFileError,
    },
    #[error("backup: more than {MAX_KEYS} keys; a cluster has far fewer")]
    TooManyKeys,
    #[error("not a gitseal key backup (no `{MARK}` lines)")]
    NotABackup,
}

/// Appends one key's block to a backup text.
pub fn write_key(out: &mut String, secret: &str, state: &str, created: &str, identity: &str) {
    out.push_str(&format!("{MARK} {secret} {state} {created}\n"));
    out.push_str(identity);
    if !identity.ends_with('\n') {
        out.push('\n');
    }
}

/// Reads a backup text. `states` are the sealing-key labels a key may carry; every block's
/// identity file must hold a key.
pub fn read(text: &str, states: &[&str]) -> Result<Vec<BackedUpKey>, BackupError> {
    // (Secret, state, created, identity text so far)
    let mut blocks: Vec<(String, String, String, Zeroizing<String>)> = Vec::new();
    for line in text.lines() {
        // CRLF files: every trailing `\r` goes, so what is read, written again, reads the
        // same (found by the key_backup fuzz target: `lines` strips only one).
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix(MARK) {
            let mut parts = rest.split_whitespace();
            let (Some(secret), Some(state)) = (parts.next(), parts.next()) else {
                return Err(BackupError::IncompleteMark);
            };
            if validate_name(secret).is_err() || !states.contains(&state) {
                return Err(BackupError::BadMark);
            }
            if blocks.len() == MAX_KEYS {
                return Err(BackupError::TooManyKeys);
            }
            blocks.push((
                secret.to_owned(),
                state.to_owned(),
                parts.next().unwrap_or_default().to_owned(),
                Zeroizing::new(String::new()),
            ));
        } else if let Some((.., identity)) = blocks.last_mut() {
            identity.push_str(line);
            identity.push('\n');
        }
    }
    if blocks.is_empty() {
        return Err(BackupError::NotABackup);
    }
    blocks
        .into_iter()
        .map(|(secret, state, created, identity)| {
            if let Err(error) = read_identity_file(identity.as_bytes()) {
                return Err(BackupError::Identity { secret, error });
            }
            Ok(BackedUpKey {
                secret,
                state,
                created,
                identity: SecretString::from(identity.as_str()),
            })
        })
        .collect()
}

/// The backup text of `keys`, as [`read`] reads it back (comments first).
pub fn write(comments: &str, keys: &[BackedUpKey]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(comments.to_owned());
    for k in keys {
        write_key(
            &mut out,
            &k.secret,
            &k.state,
            &k.created,
            k.identity.expose_secret(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    const STATES: &[&str] = &["active", "retired"];

    #[test]
    fn round_trips_and_errors_never_quote_keys() {
        let k = SecretKey::generate();
        let id = k.to_identity_file("2026-11-26T00:00:00Z");
        let mut text = "# header\n".to_owned();
        let name = format!("gitseal-key-{}", k.id());
        write_key(
            &mut text,
            &name,
            "active",
            "2026-11-26T00:00:00Z",
            id.expose_secret(),
        );
        write_key(&mut text, "old", "retired", "", id.expose_secret());
        let keys = read(&text, STATES).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].secret.as_str(), keys[0].state.as_str()),
            (name.as_str(), "active")
        );
        assert_eq!(keys[1].created, "");
        assert_eq!(*write("# header\n", &keys), text);
        assert!(!format!("{keys:?}").contains("AGE-SECRET-KEY"));

        assert!(matches!(
            read("# nothing\n", STATES),
            Err(BackupError::NotABackup)
        ));
        assert!(matches!(
            read(&format!("{MARK} x\n"), STATES),
            Err(BackupError::IncompleteMark)
        ));
        assert!(matches!(
            read(&format!("{MARK} x lost\n"), STATES),
            Err(BackupError::BadMark)
        ));
        let bad = format!("{MARK} x active\nAGE-SECRET-KEY-1NOPE\n");
        let e = read(&bad, STATES).unwrap_err().to_string();
        assert!(
            e.starts_with("backup: key Secret x: line 1") && !e.contains("NOPE"),
            "{e}"
        );
    }

    #[test]
    fn carriage_returns_do_not_pile_up() {
        let id = SecretKey::generate().to_identity_file("now");
        let text = format!("{MARK} k active\r\r\n# c\r\r\r\n{}", id.expose_secret());
        let once = read(&text, STATES).unwrap();
        let twice = read(&write("", &once), STATES).unwrap();
        assert_eq!(
            once[0].identity.expose_secret(),
            twice[0].identity.expose_secret()
        );
        assert!(!once[0].identity.expose_secret().contains('\r'));
    }

    #[test]
    fn at_most_max_keys() {
        let id = SecretKey::generate().to_identity_file("now");
        let mut text = String::new();
        for i in 0..=MAX_KEYS {
            write_key(
                &mut text,
                &format!("k{i}"),
                "active",
                "",
                id.expose_secret(),
            );
        }
        assert!(matches!(read(&text, STATES), Err(BackupError::TooManyKeys)));
    }
}
