//! Checks the test vectors published in docs/FORMAT.md against the implementation.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::{Binding, Keyring, OpenError, Scope, SecretKey, inspect, open};
use secrecy::ExposeSecret;

const FORMAT_MD: &str = include_str!("../docs/FORMAT.md");

/// The `key: value` lines of every fenced block with the given info string.
fn blocks(info: &str) -> Vec<HashMap<String, String>> {
    let fence = format!("```{info}\n");
    FORMAT_MD
        .split(&fence)
        .skip(1)
        .map(|rest| {
            rest.split("```")
                .next()
                .expect("fenced block is closed")
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect()
        })
        .collect()
}

fn binding(spec: &str) -> Binding {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    match parts[..] {
        ["strict", ns, name, key] => Binding::new(Scope::Strict, Some(ns), Some(name), key),
        ["namespace", ns, key] => Binding::new(Scope::Namespace, Some(ns), None, key),
        ["cluster", key] => Binding::new(Scope::Cluster, None, None, key),
        _ => panic!("bad binding {spec}"),
    }
    .expect("valid binding")
}

#[test]
fn vectors_open_exactly_as_documented() {
    let keys = &blocks("vector-keys")[0];
    let key = |n: &str| SecretKey::parse(&keys[n]).unwrap();
    for n in ["A", "B"] {
        let k = key(n);
        assert_eq!(k.public().to_string(), keys[&format!("{n}-recipient")]);
        assert_eq!(k.id().to_string(), keys[&format!("{n}-id")]);
    }
    let vectors = blocks("vector");
    assert!(vectors.len() >= 4, "FORMAT.md lost its vectors");
    for v in vectors {
        let ct = B64.decode(&v["ciphertext"]).unwrap();
        let expected = B64.decode(&v["plaintext"]).unwrap();
        let b = binding(&v["binding"]);
        let holders: Vec<&str> = v["identities"].split_whitespace().collect();

        let header = inspect(&ct).unwrap();
        assert_eq!(header.binding, b);
        let ids: Vec<String> = holders
            .iter()
            .map(|h| keys[&format!("{h}-id")].clone())
            .collect();
        assert_eq!(
            header
                .key_ids
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>(),
            ids
        );

        for name in ["A", "B"] {
            let ring = Keyring::from_iter([key(name)]);
            let got = open(&ct, &ring, &b);
            if holders.contains(&name) {
                assert_eq!(got.unwrap().expose_secret(), &expected[..]);
            } else {
                assert!(matches!(got, Err(OpenError::NoMatchingKey { .. })));
            }
        }
        let ring: Keyring = holders.iter().map(|h| key(h)).collect();
        let elsewhere = binding(&v["binding"].replacen(b.key(), "otherkey", 1));
        assert!(matches!(
            open(&ct, &ring, &elsewhere),
            Err(OpenError::ScopeMismatch { .. })
        ));
        for i in (0..ct.len()).step_by(7) {
            let mut bad = ct.clone();
            bad[i] ^= 0x80;
            assert!(
                open(&bad, &ring, &b).is_err(),
                "flip at byte {i} was accepted"
            );
        }
    }
}

#[test]
fn plain_age_files_are_refused() {
    let k = SecretKey::generate();
    // A file made by the age crate alone, without the gitseal stanza.
    let recipient: age::x25519::Recipient = k.public().to_string().parse().unwrap();
    let ct = age::encrypt(&recipient, b"x").unwrap();
    let ring = Keyring::from_iter([k]);
    let b = binding("cluster token");
    let e = open(&ct, &ring, &b).unwrap_err();
    assert!(e.to_string().contains("not by gitseal"), "{e}");
}
