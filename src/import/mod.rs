//! The neighbours: manifests sealed by other tools that users move to gitseal from.
//!
//! - [`bitnami`]: Bitnami Sealed Secrets (`bitnami.com/v1alpha1` SealedSecret), opened with
//!   the controller's RSA private keys.
//! - [`sops`]: SOPS-encrypted manifests with age recipients, opened with an age identity and
//!   checked against their MAC.
//!
//! Both open into memory only; the caller seals the result again with gitseal. Recognising
//! them ([`neighbour_of`]) needs no key, so `check` and `seal` can name them.

pub mod bitnami;
pub mod sops;

use serde_yaml::Value;

use crate::manifest::Document;

/// A manifest sealed by another tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbour {
    /// A Bitnami Sealed Secrets `SealedSecret`.
    Bitnami,
    /// A SOPS-encrypted document (top-level `sops` metadata, or `ENC[…]` values).
    Sops,
}

impl Neighbour {
    /// What the user sees: "a Bitnami SealedSecret", "a SOPS-encrypted file".
    pub fn describe(self) -> &'static str {
        match self {
            Neighbour::Bitnami => "a Bitnami Sealed Secrets SealedSecret",
            Neighbour::Sops => "a SOPS-encrypted file",
        }
    }

    /// The command that converts `file`, with placeholders for the keys.
    pub fn import_command(self, file: &str) -> String {
        match self {
            Neighbour::Bitnami => {
                format!("gitseal import --bitnami-key SEALED_SECRETS_KEY.yaml {file}")
            }
            Neighbour::Sops => format!("gitseal import -i AGE_IDENTITY {file}"),
        }
    }
}

/// The prefix of every value SOPS encrypts.
pub const SOPS_VALUE_PREFIX: &str = "ENC[AES256_GCM,";

/// Which neighbour's format `doc` is in, if any. Cheap: looks at the kind and the top-level
/// keys only (and, for SOPS documents after the first of a file, at `data` values).
pub fn neighbour_of(doc: &Document) -> Option<Neighbour> {
    if bitnami::is_bitnami(doc) {
        return Some(Neighbour::Bitnami);
    }
    if sops::has_metadata(&doc.value) || sops_values_in(&doc.value).is_some() {
        return Some(Neighbour::Sops);
    }
    None
}

/// The first `data` / `stringData` key whose value is a SOPS ciphertext (`ENC[…]`), e.g. in
/// a document whose `sops` metadata was stripped or that follows the metadata document.
pub fn sops_values_in(value: &Value) -> Option<String> {
    for field in ["data", "stringData"] {
        if let Some(Value::Mapping(m)) = value.get(field) {
            for (k, v) in m {
                if v.as_str().is_some_and(|s| s.starts_with(SOPS_VALUE_PREFIX)) {
                    let key = k.as_str().map(crate::scope::printable).unwrap_or_default();
                    return Some(format!("{field}.{key}"));
                }
            }
        }
    }
    None
}
