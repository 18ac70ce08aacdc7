//! SealedSecrets made by the test itself, sealed with the library as the CLI would.

use gitseal::SecretKey;
use gitseal::sealing::{SealTarget, seal_secret};
use secrecy::SecretSlice;

/// The Secret `ns/name` holding `password: value`, ready to be sealed.
pub fn password_secret(ns: &str, name: &str, value: &str) -> gitseal::manifest::Secret {
    let mut s = gitseal::manifest::Secret {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    s.data.insert(
        "password".into(),
        SecretSlice::from(value.as_bytes().to_vec()),
    );
    s
}

/// A SealedSecret manifest (YAML) of [`password_secret`] `ns/name`, sealed to `key`.
pub fn sealed_yaml(key: &SecretKey, ns: &str, name: &str, value: &str) -> String {
    let s = password_secret(ns, name, value);
    let sealed = seal_secret(&s, &[key.public().clone()], &SealTarget::default()).expect("seal");
    gitseal::manifest::render([&sealed.to_value()], gitseal::manifest::OutputFormat::Yaml)
}
