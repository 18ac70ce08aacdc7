//! What each fuzz target runs, as plain functions of arbitrary bytes. The cargo-fuzz crate in
//! `fuzz/` (nightly, libFuzzer) calls them, one target each; `tests/replay.rs` calls them on
//! every file of `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` on stable, so CI keeps
//! every input the fuzzer ever kept, and every crash it found, passing without nightly.
//!
//! A target must return for any input; a panic, including a failed `assert!` on an invariant
//! below, is a finding.

#![allow(clippy::unwrap_used)] // A panic is exactly how a target reports a finding.

use std::sync::OnceLock;

use gitseal::key_backup as backup;
use gitseal::manifest::{OutputFormat, SealedSecret, Secret, parse_documents, render};
use gitseal::rules::Rules;
use gitseal::{Binding, Keyring, OpenError, Scope, SecretKey, inspect, open};
use gitseal_agent::sync::git::{GitRef, Transport, parse_remote, redact_url};
use secrecy::ExposeSecret;

/// What a target is: a function of the fuzzer's bytes.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` calls it.
pub const TARGETS: &[(&str, Target)] = &[
    ("sealed_inspect", sealed_inspect),
    ("sealed_open", sealed_open),
    ("manifest", manifest),
    ("rules", rules),
    ("key_backup", key_backup),
    ("git_ref", git_ref),
    ("git_url", git_url),
];

/// Test key A of docs/FORMAT.md (published on purpose): the corpus seeds are its vectors, so
/// the fuzzer starts from values this key opens.
const TEST_KEY: &str = "AGE-SECRET-KEY-1R7CYF2HZHW2WDJE8GCEDVA645TTCSUCCWHKRR9KLRCCFDKQDZA2ST9VR0W";

fn test_ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::from_iter([SecretKey::parse(TEST_KEY).unwrap()]))
}

/// The sealed-value header reader: `inspect` must return, and what it reads must print.
pub fn sealed_inspect(data: &[u8]) {
    if let Ok(header) = inspect(data) {
        assert!(!header.key_ids.is_empty(), "a header without recipients");
        let _ = header.binding.to_string();
    }
}

/// Opening with a fixed key, at the binding the header names (so a value the fuzzer keeps
/// intact opens all the way). `inspect` and `open` must agree: whatever opens has a header
/// `inspect` reads, and a value opened at its own binding is never a scope mismatch.
pub fn sealed_open(data: &[u8]) {
    let header = inspect(data);
    let binding = match &header {
        Ok(h) => h.binding.clone(),
        Err(_) => Binding::new(Scope::Cluster, None, None, "k").unwrap(),
    };
    match open(data, test_ring(), &binding) {
        Ok(_) => assert!(
            header.is_ok(),
            "open succeeded where inspect failed: {header:?}"
        ),
        Err(OpenError::ScopeMismatch { .. }) => assert!(
            header.is_err(),
            "a value opened at the binding inspect read is a scope mismatch"
        ),
        Err(_) => {}
    }
}

/// The manifest reader (YAML and JSON, multi-document, `kind: List`), the Secret and
/// SealedSecret models, and the writer: a SealedSecret read back from gitseal's own YAML or
/// JSON output keeps its name, place, scope, metadata and ciphertexts, and writing it again
/// changes nothing (the first write only spells out defaults, such as `type: Opaque`).
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = parse_documents("fuzz.yaml", text) else {
        return;
    };
    for doc in &docs {
        let _ = (doc.name(), doc.namespace(), format!("{doc:?}"));
        if let Ok(secret) = Secret::from_document(doc) {
            let _ = secret.to_value();
        }
        if let Ok(sealed) = SealedSecret::from_document(doc) {
            for format in [OutputFormat::Yaml, OutputFormat::Json] {
                let once = write_and_read(&sealed, format);
                let kept = |s: &SealedSecret| {
                    (
                        s.name.clone(),
                        s.namespace.clone(),
                        s.scope,
                        s.labels.clone(),
                        s.annotations.clone(),
                        s.encrypted_data.clone(),
                    )
                };
                assert_eq!(kept(&once), kept(&sealed), "{format:?} round trip");
                assert_eq!(
                    write_and_read(&once, format),
                    once,
                    "{format:?} fixed point"
                );
            }
        }
    }
}

fn write_and_read(sealed: &SealedSecret, format: OutputFormat) -> SealedSecret {
    let out = render([&sealed.to_value()], format);
    let back = parse_documents("out", &out).unwrap();
    assert_eq!(back.len(), 1, "{format:?} output is one document");
    SealedSecret::from_document(&back[0]).unwrap()
}

/// `.gitseal.yaml`: rules, escrow keys, `recipientsFile` (any `*.pub` path reads a fixed
/// recipients file, anything else is missing), and glob matching on a few paths.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let read = |path: &str| {
        if path.ends_with(".pub") {
            Ok(
                "# cluster\nage14p8w5r8pckh4dx2arvp9nk68c57dj7kvd3jjg75ml05swdx6p5zqe2hja0\n"
                    .to_owned(),
            )
        } else {
            Err("not found".to_owned())
        }
    };
    if let Ok(rules) = Rules::parse_with(".gitseal.yaml", text, read) {
        for path in [
            "db.yaml",
            "clusters/prod/db.sealed.yaml",
            "./a/b/c.json",
            "",
        ] {
            if let Some(keys) = rules.recipients_for(path) {
                assert!(!keys.is_empty(), "a matching rule without recipients");
            }
        }
    }
}

/// The key-backup reader (`gitseal keys restore`, after age decryption): what it reads, written
/// again, reads back the same.
pub fn key_backup(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = backup::read(text, &["active", "retired"]) else {
        return;
    };
    let again = backup::read(&backup::write("", &keys), &["active", "retired"]).unwrap();
    let fields = |k: &backup::BackedUpKey| {
        (
            k.secret.clone(),
            k.state.clone(),
            k.created.clone(),
            k.identity.expose_secret().to_owned(),
        )
    };
    assert_eq!(
        again.iter().map(fields).collect::<Vec<_>>(),
        keys.iter().map(fields).collect::<Vec<_>>()
    );
}

/// `--ref` and `spec.ref` text: what parses prints as text that parses to the same ref.
pub fn git_ref(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<GitRef>() {
        let shown = r.to_string();
        assert_eq!(shown.parse::<GitRef>().ok(), Some(r.clone()), "{shown:?}");
        let _ = (r.describe(), r.revision(&"0".repeat(40)));
    }
}

/// The authority of a `scheme://authority/…` URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(&rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())])
}

/// Source URLs: what git is given and what messages show never carry an http user name or
/// any password, and messages hold no control characters.
pub fn git_url(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact_url(url);
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    let Ok(remote) = parse_remote(url) else {
        return;
    };
    assert!(!remote.display.chars().any(char::is_control), "{remote:?}");
    if let Some(a) = authority(&remote.url) {
        match remote.transport {
            Transport::Http | Transport::Git => assert!(!a.contains('@'), "{remote:?}"),
            Transport::Ssh => assert!(
                a.rsplit_once('@')
                    .is_none_or(|(user, _)| !user.contains(':')),
                "{remote:?}"
            ),
            Transport::File => {}
        }
    }
}
