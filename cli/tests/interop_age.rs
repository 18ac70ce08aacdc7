//! Interop with the Go `age` CLI (Debian package `age`): gitseal keys and values work
//! with `age`, and `age-keygen` keys work with gitseal.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use support::*;

/// Runs a Go age tool; fails the test (does not skip it) when the tool is missing.
fn go_tool(env: &Env, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(tool)
        .current_dir(env.dir.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}): the interop tests need the Go age CLI; run `apt-get install age`")
        });
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[test]
fn raw_value_sealed_by_gitseal_opens_with_age() {
    let env = Env::new();
    let public = env.key("id.key");
    let out = env
        .run_stdin(
            &[
                "seal", "--raw", "-n", "prod", "--name", "db", "--key", "password", "-r", &public,
            ],
            CANARY,
        )
        .ok();
    env.write("value.age", unb64(&out.stdout));
    let age = go_tool(&env, "age", &["-d", "-i", "id.key", "value.age"], None);
    assert!(
        age.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&age.stderr)
    );
    assert_eq!(age.stdout, CANARY.as_bytes());
}

#[test]
fn every_value_of_a_sealed_manifest_opens_with_age_for_every_recipient() {
    let env = Env::new();
    let a = env.key("a.key");
    let b = env.key("b.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    let out = env.run(&["seal", "-f", "s.yaml", "-r", &a, "-r", &b]).ok();
    let sealed = one_doc(&out.stdout);
    for (key, want) in [("password", CANARY), ("username", "admin")] {
        let ct = unb64(
            get(&sealed, "spec.encryptedData")
                .get(key)
                .unwrap()
                .as_str()
                .unwrap(),
        );
        for id in ["a.key", "b.key"] {
            let age = go_tool(&env, "age", &["-d", "-i", id], Some(&ct));
            assert!(
                age.status.success(),
                "age -d -i {id} failed on {key}: {}",
                String::from_utf8_lossy(&age.stderr)
            );
            assert_eq!(age.stdout, want.as_bytes());
        }
    }
}

#[test]
fn age_keygen_keys_work_with_gitseal() {
    let env = Env::new();
    let keygen = go_tool(&env, "age-keygen", &["-o", "go.key"], None);
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let mode = fs::metadata(env.path("go.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "age-keygen wrote mode {mode:o}");
    let public = go_tool(&env, "age-keygen", &["-y", "go.key"], None);
    assert!(public.status.success());
    let public = String::from_utf8(public.stdout).unwrap().trim().to_owned();

    // gitseal reads the same public key out of the file.
    env.run(&["keys", "public", "-i", "go.key"])
        .ok()
        .stdout_has(&[&public]);

    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "s.yaml", "-r", &public, "-w", "sealed.yaml"])
        .ok();
    let secret = one_doc(
        &env.run(&["unseal", "-i", "go.key", "-f", "sealed.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "password"), CANARY);
}

#[test]
fn a_plain_age_file_is_refused_as_not_sealed_by_gitseal() {
    let env = Env::new();
    let public = env.key("id.key");
    let age = go_tool(&env, "age", &["-r", &public], Some(CANARY.as_bytes()));
    assert!(
        age.status.success(),
        "{}",
        String::from_utf8_lossy(&age.stderr)
    );
    env.write(
        "plain.yaml",
        format!(
            "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: db, namespace: prod}}\n\
             spec:\n  encryptedData:\n    password: {}\n",
            b64(&age.stdout)
        ),
    );
    env.run(&["unseal", "-i", "id.key", "-f", "plain.yaml"])
        .fails(1)
        .stderr_has(&[
            "plain.yaml",
            "spec.encryptedData.password",
            "not a gitseal ciphertext",
            "not by gitseal",
        ])
        .hides(CANARY);
    // check reports it the same way.
    env.run(&["check", "plain.yaml"])
        .fails(1)
        .stdout_has(&["plain.yaml", "not by gitseal"]);
}
