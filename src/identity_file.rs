//! Private key files on disk: the one place that decides whether such a file may be used.
//! A file must be a regular file that neither group nor others can read (as ssh refuses loose
//! private keys), of a sane size; its content is read into a buffer that is zeroized. Identity
//! files are then parsed with [`read_identity_file`]; other key files (`gitseal import`'s
//! Bitnami keys) by their own parsers.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::keys::{IdentityFileError, Keyring, SecretKey, read_identity_file};
use crate::scope::printable;

/// Largest private key file read (an identity is under 100 bytes; this is far above any real
/// key file).
pub const MAX_PRIVATE_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Why a private key file could not be used. `what` says which kind of file (`identity
/// file`, …); messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateFileError {
    #[error("{what} {file}: cannot open: {error}")]
    Open {
        what: String,
        file: String,
        error: std::io::Error,
    },
    #[error("{what} {file}: not a regular file")]
    NotRegular { what: String, file: String },
    #[error(
        "{what} {file}: readable by others (mode {mode:04o}); private keys must be 0600: run `chmod 600 {file}`"
    )]
    Loose {
        what: String,
        file: String,
        mode: u32,
    },
    #[error("{what} {file}: larger than {} MiB; is this the right file?", MAX_PRIVATE_FILE_BYTES >> 20)]
    TooLarge { what: String, file: String },
    #[error("{what} {file}: cannot read: {error}")]
    Read {
        what: String,
        file: String,
        error: std::io::Error,
    },
    #[error("{what} {file}: {error}")]
    Parse {
        what: String,
        file: String,
        error: IdentityFileError,
    },
}

/// Reads a file holding private keys (`what` names the kind in messages) after checking that
/// it is a regular file readable by its owner only. The buffer is zeroized when dropped.
pub fn read_private_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>, PrivateFileError> {
    let file = printable(&path.to_string_lossy());
    let what = what.to_owned();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(error) => return Err(PrivateFileError::Open { what, file, error }),
    };
    if !meta.is_file() {
        return Err(PrivateFileError::NotRegular { what, file });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Loose { what, file, mode });
    }
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(error) => return Err(PrivateFileError::Open { what, file, error }),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    if let Err(error) = f.take(MAX_PRIVATE_FILE_BYTES + 1).read_to_end(&mut bytes) {
        return Err(PrivateFileError::Read { what, file, error });
    }
    if bytes.len() as u64 > MAX_PRIVATE_FILE_BYTES {
        return Err(PrivateFileError::TooLarge { what, file });
    }
    Ok(bytes)
}

/// Reads the private keys of one identity file (checked as [`read_private_file`] does).
pub fn read_identity_path(path: &Path) -> Result<Vec<SecretKey>, PrivateFileError> {
    const WHAT: &str = "identity file";
    let bytes = read_private_file(path, WHAT)?;
    read_identity_file(&bytes[..]).map_err(|error| PrivateFileError::Parse {
        what: WHAT.to_owned(),
        file: printable(&path.to_string_lossy()),
        error,
    })
}

/// Reads every key of several identity files into one keyring.
pub fn read_identity_files<P: AsRef<Path>>(paths: &[P]) -> Result<Keyring, PrivateFileError> {
    let mut ring = Keyring::new();
    for path in paths {
        for key in read_identity_path(path.as_ref())? {
            ring.add(key);
        }
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn only_private_regular_files_are_read() {
        let d = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let text = key.to_identity_file("2026-11-26T00:00:00Z");
        let good = write(d.path(), "ok.key", text.expose_secret(), 0o600);
        let ring = read_identity_files(&[&good]).unwrap();
        assert_eq!(ring.keys().next().map(SecretKey::id), Some(key.id()));

        let loose = write(d.path(), "loose.key", text.expose_secret(), 0o644);
        let e = read_identity_path(&loose).unwrap_err().to_string();
        assert!(
            e.contains("loose.key") && e.contains("0644") && e.contains("chmod 600"),
            "{e}"
        );
        assert!(!e.contains("AGE-SECRET-KEY"), "{e}");

        let e = read_identity_path(d.path()).unwrap_err();
        assert!(matches!(e, PrivateFileError::NotRegular { .. }), "{e}");
        let e = read_identity_path(&d.path().join("missing.key")).unwrap_err();
        assert!(e.to_string().contains("missing.key: cannot open"), "{e}");

        let junk = write(
            d.path(),
            "junk.key",
            "# mine\nAGE-SECRET-KEY-1NOPE\n",
            0o600,
        );
        let e = read_identity_path(&junk).unwrap_err().to_string();
        assert!(
            e.contains("identity file") && e.contains("line 2") && !e.contains("NOPE"),
            "{e}"
        );
    }
}
