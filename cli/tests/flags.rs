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

#[test]
fn dash_w_writes_files_dash_o_is_only_a_format_and_dash_n_only_a_namespace() {
    let env = Env::new();
    // keys generate writes with -w; -o is not a file any more.
    env.run(&["keys", "generate", "-w", "id.key"]).ok();
    env.run(&["keys", "generate", "-o", "other.key"])
        .fails(2)
        .stderr_has(&["-o"]);
    assert!(!env.exists("other.key"));
    // The agent's namespace is --agent-namespace on every cluster command; -n there is an
    // error, not the agent's namespace.
    for sub in [
        &["keys", "fetch"][..],
        &["keys", "list"],
        &["keys", "rotate"],
    ] {
        let mut args = sub.to_vec();
        args.extend(["--agent-namespace", "Not_A_Namespace"]);
        env.run(&args)
            .fails(2)
            .stderr_has(&["--agent-namespace", "invalid namespace"]);
        let mut args = sub.to_vec();
        args.extend(["-n", "gitseal-system"]);
        env.run(&args).fails(2);
    }
    env.run(&["keys", "list", "-o", "yaml"])
        .fails(2)
        .stderr_has(&["json"]);
    env.run(&[
        "reseal",
        "--cluster",
        "--agent-namespace",
        "x",
        "-n",
        "y",
        "a.yaml",
    ])
    .fails(2);
    // Every -o takes a format name, never a path.
    for args in [
        &["seal", "-o", "out.yaml"][..],
        &["unseal", "-i", "id.key", "-o", "out.yaml"],
        &["check", ".", "-o", "out.yaml"],
        &["import", ".", "-o", "out.yaml"],
        &["keys", "list", "-o", "out.yaml"],
    ] {
        env.run(args)
            .fails(2)
            .stderr_has(&["invalid value 'out.yaml'"]);
    }
    assert!(!env.exists("out.yaml"));
}

#[test]
fn completions_know_the_new_commands_and_flags() {
    let env = Env::new();
    let bash = env.run(&["completion", "bash"]).ok().stdout;
    for word in [
        "import",
        "edit",
        "--bitnami-key",
        "--keep-going",
        "--agent-namespace",
        "--for",
        "sarif",
        "--write",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = env.run(&["completion", "zsh"]).ok().stdout;
    assert!(zsh.contains("--agent-namespace") && zsh.contains("import"));
}
