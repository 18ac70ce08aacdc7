//! gitseal core: age X25519 keys, the sealed-value format, the Secret / SealedSecret
//! manifest model, the repository key rules and imports from other tools. Pure logic over
//! `Read`/`Write` (the one kind of file it reads itself is a private key file, to check its
//! mode in one place): no terminal, no network, no process environment.

pub mod format;
pub mod identity_file;
pub mod import;
pub mod key_backup;
pub mod keys;
pub mod manifest;
pub mod rules;
pub mod scope;
pub mod sealing;
mod x25519;

pub use format::{Header, OpenError, SealError, inspect, open, seal};
pub use identity_file::{
    PrivateFileError, read_identity_files, read_identity_path, read_private_file,
};
pub use keys::{KeyId, Keyring, PublicKey, SecretKey};
pub use manifest::{Document, ManifestError, OutputFormat, SealedSecret, Secret};
pub use rules::Rules;
pub use scope::{Binding, Scope};
