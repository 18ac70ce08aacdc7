//! Scope binding and tampering, through the CLI: moved values fail with "scope mismatch",
//! values moved within what their scope allows still open, and damaged ciphertexts fail
//! cleanly.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

/// A folder with key `a.key` and `sealed.yaml`, sealed with `--scope scope`.
fn sealed(scope: &str) -> Env {
    let env = Env::new();
    let a = env.key("a.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&[
        "seal",
        "-f",
        "s.yaml",
        "-r",
        &a,
        "--scope",
        scope,
        "-w",
        "sealed.yaml",
    ])
    .ok();
    env
}

fn unseal(env: &Env, text: &str) -> Run {
    env.write("edited.yaml", text);
    env.run(&["unseal", "-i", "a.key", "-f", "edited.yaml"])
}

#[track_caller]
fn mismatch(env: &Env, text: &str, field: &str) {
    unseal(env, text)
        .fails(1)
        .stderr_has(&["edited.yaml", "document 1", field, "scope mismatch"])
        .hides(CANARY);
}

#[track_caller]
fn still_opens(env: &Env, text: &str) -> serde_yaml::Value {
    let secret = one_doc(&unseal(env, text).ok().stdout);
    assert_eq!(data_value(&secret, "password"), CANARY);
    secret
}

#[test]
fn strict_namespace_or_name_edited_is_a_scope_mismatch() {
    let env = sealed("strict");
    let text = env.read("sealed.yaml");
    still_opens(&env, &text);
    mismatch(
        &env,
        &text.replace("namespace: prod", "namespace: staging"),
        "spec.encryptedData.",
    );
    mismatch(
        &env,
        &text.replace("name: db", "name: db2"),
        "spec.encryptedData.",
    );
    // Loosening the scope annotation does not help either.
    mismatch(
        &env,
        &text.replace("gitseal.dev/scope: strict", "gitseal.dev/scope: cluster"),
        "spec.encryptedData.",
    );
}

#[test]
fn a_value_moved_to_another_key_is_a_scope_mismatch() {
    for scope in ["strict", "namespace", "cluster"] {
        let env = sealed(scope);
        let mut v = one_doc(&env.read("sealed.yaml"));
        let ed = v
            .get_mut("spec")
            .unwrap()
            .get_mut("encryptedData")
            .unwrap()
            .as_mapping_mut()
            .unwrap();
        let pw = ed.get("password").unwrap().clone();
        ed.insert("username".into(), pw);
        mismatch(
            &env,
            &serde_yaml::to_string(&v).unwrap(),
            "spec.encryptedData.username",
        );
    }
}

#[test]
fn namespace_scope_may_be_renamed_but_not_moved() {
    let env = sealed("namespace");
    let text = env.read("sealed.yaml");
    let secret = still_opens(&env, &text.replace("name: db", "name: renamed"));
    assert_eq!(get_str(&secret, "metadata.name"), "renamed");
    mismatch(
        &env,
        &text.replace("namespace: prod", "namespace: dev"),
        "spec.encryptedData.",
    );
}

#[test]
fn cluster_scope_may_move_anywhere() {
    let env = sealed("cluster");
    let text = env.read("sealed.yaml");
    let secret = still_opens(
        &env,
        &text
            .replace("namespace: prod", "namespace: elsewhere")
            .replace("name: db", "name: copy"),
    );
    assert_eq!(get_str(&secret, "metadata.namespace"), "elsewhere");
    assert_eq!(get_str(&secret, "metadata.name"), "copy");
}

#[test]
fn a_flipped_byte_anywhere_fails_cleanly() {
    let env = sealed("strict");
    let text = env.read("sealed.yaml");
    let len = unb64(
        get(&one_doc(&text), "spec.encryptedData.password")
            .as_str()
            .unwrap(),
    )
    .len();
    // A sample of positions across header, MAC, nonce and payload, plus the last byte.
    let mut positions: Vec<usize> = (0..len).step_by(13).collect();
    positions.push(len - 1);
    for i in positions {
        let bad = edit_ciphertext(&text, "password", |ct| ct[i] ^= 0x01);
        let run = unseal(&env, &bad)
            .fails(1)
            .stderr_has(&["edited.yaml", "spec.encryptedData.password"])
            .hides(CANARY);
        assert!(
            ["altered", "not a gitseal ciphertext", "no key in the ring"]
                .iter()
                .any(|m| run.stderr.contains(m)),
            "flip at {i}: unclear message: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "flip at {i}: output on failure");
    }
    // A flip in the payload is the opaque authentication failure.
    let bad = edit_ciphertext(&text, "password", |ct| ct[len - 1] ^= 0x80);
    unseal(&env, &bad)
        .fails(1)
        .stderr_has(&["altered, truncated or corrupted"]);
}

#[test]
fn a_truncated_or_extended_ciphertext_fails_cleanly() {
    let env = sealed("strict");
    let text = env.read("sealed.yaml");
    let len = unb64(
        get(&one_doc(&text), "spec.encryptedData.password")
            .as_str()
            .unwrap(),
    )
    .len();
    for keep in [0, 1, 10, 30, len / 2, len - 17, len - 1] {
        let bad = edit_ciphertext(&text, "password", |ct| ct.truncate(keep));
        let run = unseal(&env, &bad)
            .fails(1)
            .stderr_has(&["edited.yaml", "spec.encryptedData.password"])
            .hides(CANARY);
        assert!(
            run.stderr.contains("altered") || run.stderr.contains("not a gitseal ciphertext"),
            "truncated to {keep}: {}",
            run.stderr
        );
    }
    let bad = edit_ciphertext(&text, "password", |ct| ct.extend_from_slice(b"trailing"));
    unseal(&env, &bad).fails(1).hides(CANARY);
}
