//! Flag conventions shared by every command (kubectl's habits): input files positional or
//! `-f`, `-w/--write` a file, `-o` an output format, `-n` the namespace.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

#[test]
fn input_files_are_positional_or_dash_f() {
    let env = Env::new();
    let public = env.key("id.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    let by_flag = env
        .run(&["seal", "-f", "s.yaml", "-r", &public])
        .ok()
        .stdout;
    let by_pos = env.run(&["seal", "s.yaml", "-r", &public]).ok().stdout;
    assert_eq!(
        keys_of(&one_doc(&by_flag), "spec.encryptedData"),
        keys_of(&one_doc(&by_pos), "spec.encryptedData")
    );
    env.run(&["seal", "s.yaml", "-f", "s.yaml", "-r", &public])
        .fails(2);
    env.write("db.yaml", &by_pos);
    let a = env.run(&["unseal", "-i", "id.key", "db.yaml"]).ok().stdout;
    let b = env
        .run(&["unseal", "-i", "id.key", "-f", "db.yaml"])
        .ok()
        .stdout;
    assert_eq!(a, b);
    assert_eq!(data_value(&one_doc(&a), "password"), CANARY);
    // Paths: positional, -f, or both.
    env.run(&["check", "-f", "db.yaml"]).ok();
    env.run(&["check", "db.yaml", "-f", "db.yaml"]).ok();
    env.run(&["reseal", "-i", "id.key", "-r", &public, "-f", "db.yaml"])
        .ok();
    env.run(&["check"]).fails(2);
    env.run(&["reseal", "-i", "id.key", "-r", &public]).fails(2);
    env.run(&["import", "-r", &public]).fails(2);
}

#[test]
fn unseal_writes_plaintext_0600_and_never_over_a_file() {
    let env = Env::new();
    let public = env.key("id.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "s.yaml", "-r", &public, "-w", "db.yaml"])
        .ok();
    env.run(&["unseal", "-i", "id.key", "db.yaml", "-w", "plain.yaml"])
        .ok()
        .hides(CANARY);
    let mode = std::fs::metadata(env.path("plain.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        data_value(&one_doc(&env.read("plain.yaml")), "password"),
        CANARY
    );
    env.write("other.yaml", "keep me\n");
    env.run(&["unseal", "-i", "id.key", "db.yaml", "-w", "other.yaml"])
        .fails(1)
        .stderr_has(&["other.yaml already exists", "--force"]);
    assert_eq!(env.read("other.yaml"), "keep me\n");
    env.run(&[
        "unseal",
        "-i",
        "id.key",
        "db.yaml",
        "-w",
        "other.yaml",
        "--force",
    ])
    .ok();
    assert!(env.read("other.yaml").contains("kind: Secret"));
    env.run(&["unseal", "-i", "id.key", "db.yaml", "--force"])
        .fails(2);
}
