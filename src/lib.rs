//! gitseal core: age X25519 keys, the sealed-value format, the Secret / SealedSecret
//! manifest model and the repository key rules. Pure logic over `Read`/`Write`: no
//! terminal, no network, no process environment.

pub mod format;
pub mod import;
pub mod keys;
pub mod manifest;
pub mod rules;
pub mod scope;
pub mod sealing;
mod x25519;

pub use format::{Header, OpenError, SealError, inspect, open, seal};
pub use keys::{KeyId, Keyring, PublicKey, SecretKey};
pub use manifest::{Document, ManifestError, OutputFormat, SealedSecret, Secret};
pub use rules::Rules;
pub use scope::{Binding, Scope};
