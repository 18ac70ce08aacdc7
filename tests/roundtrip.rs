//! Property tests: any value, any valid binding, any number of recipients round-trips, and
//! the manifest model round-trips through YAML and JSON.

use std::collections::BTreeMap;

use gitseal::manifest::{OutputFormat, SealedSecret, Template, parse_documents, render};
use gitseal::{Binding, Keyring, Scope, SecretKey, inspect, open, seal};
use proptest::prelude::*;
use secrecy::ExposeSecret;

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Strict),
        Just(Scope::Namespace),
        Just(Scope::Cluster)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_open_round_trip(
        value in proptest::collection::vec(any::<u8>(), 0..2048),
        scope in scope(),
        ns in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
        name in "[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?",
        key in "[-._a-zA-Z0-9]{1,40}",
        n in 1usize..4,
    ) {
        prop_assume!(key != "." && key != "..");
        prop_assume!(!name.contains("..") && !name.contains(".-") && !name.contains("-."));
        let b = Binding::new(scope, Some(&ns), Some(&name), &key).unwrap();
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
        let pubs: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
        let ct = seal(&value, &pubs, &b).unwrap();
        prop_assert_eq!(inspect(&ct).unwrap().binding, b.clone());
        let last = Keyring::from_iter([keys[n - 1].clone()]);
        let opened = open(&ct, &last, &b).unwrap();
        prop_assert_eq!(opened.expose_secret(), &value[..]);
    }

    #[test]
    fn sealed_manifest_round_trip(
        keys in proptest::collection::btree_map("[-._a-zA-Z0-9]{1,20}", proptest::collection::vec(any::<u8>(), 1..64), 0..5),
        labels in proptest::collection::btree_map("[a-z]{1,10}", "[ -~]{0,20}", 0..3),
        json in any::<bool>(),
        scope in scope(),
    ) {
        let encrypted_data: BTreeMap<String, Vec<u8>> =
            keys.into_iter().filter(|(k, _)| k != "." && k != "..").collect();
        let s = SealedSecret {
            name: "db".into(),
            namespace: Some("prod".into()),
            scope,
            labels: labels.clone(),
            annotations: BTreeMap::new(),
            encrypted_data,
            template: Template { type_: Some("Opaque".into()), immutable: Some(true), labels, annotations: BTreeMap::new() },
        };
        let fmt = if json { OutputFormat::Json } else { OutputFormat::Yaml };
        let text = render([&s.to_value()], fmt);
        let docs = parse_documents("t", &text).unwrap();
        prop_assert_eq!(SealedSecret::from_document(&docs[0]).unwrap(), s);
    }
}
