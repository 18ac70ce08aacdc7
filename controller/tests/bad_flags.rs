//! `gitseal-agent run` refuses bad flags before it touches a cluster: exit 1, the flag (and
//! file and line) named, nothing of a file's content echoed.

use std::process::{Command, Output, Stdio};

fn run(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gitseal-agent"))
        .arg("run")
        .args(args)
        .current_dir(dir)
        // No cluster: the flags must be refused before one is looked for.
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .output()
        .expect("gitseal-agent runs")
}

#[test]
fn bad_escrow_recipients_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let placeholder = gitseal::keys::placeholder("escrow").to_string();
    let private = gitseal::SecretKey::generate();
    let private_line = {
        use secrecy::ExposeSecret;
        private.to_secret_string().expose_secret().to_owned()
    };
    std::fs::write(dir.path().join("private.txt"), format!("{private_line}\n")).expect("write");
    std::fs::write(dir.path().join("empty.txt"), "# nothing\n").expect("write");
    std::fs::write(dir.path().join("huge.txt"), "#".repeat(70 * 1024)).expect("write");
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "not a key",
            &["--escrow-recipient", "age1nope"],
            &["--escrow-recipient #1"],
        ),
        (
            "a keys.example placeholder",
            &["--escrow-recipient", &placeholder],
            &["--escrow-recipient #1", "placeholder"],
        ),
        (
            "a missing file",
            &["--escrow-recipients-file", "missing.txt"],
            &["--escrow-recipients-file missing.txt"],
        ),
        (
            "a private key in the file",
            &["--escrow-recipients-file", "private.txt"],
            &["private.txt", "line 1", "private key"],
        ),
        (
            "a file without keys",
            &["--escrow-recipients-file", "empty.txt"],
            &["empty.txt", "no public keys"],
        ),
        (
            "a file over 64 KiB",
            &["--escrow-recipients-file", "huge.txt"],
            &["huge.txt", "64 KiB"],
        ),
    ];
    for (what, args, wanted) in cases {
        let out = run(args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        for w in *wanted {
            assert!(err.contains(w), "{what}: {w:?} missing from {err}");
        }
        assert!(
            !err.contains("AGE-SECRET-KEY"),
            "{what}: echoed a key: {err}"
        );
        assert!(
            !err.contains("no cluster configuration"),
            "{what}: looked for a cluster first: {err}"
        );
    }
}

#[test]
fn bad_limit_flags_are_usage_errors_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, expect) in [
        (&["--max-pass-bytes", "8XB"][..], "unknown unit `XB`"),
        (
            &["--max-file-bytes", "lots"][..],
            "expected a number of bytes such as 8Mi",
        ),
        (
            &["--max-file-bytes", "99999999999999999999Gi"][..],
            "expected a number of bytes",
        ),
        (&["--max-depth=-1"][..], "invalid value '-1'"),
        (
            &["--max-pass-documents", "many"][..],
            "--max-pass-documents",
        ),
        // Reconciles at once: at least one (0 would stop the controllers), at most 256.
        (&["--reconcile-concurrency", "0"][..], "not in 1..=256"),
        (&["--reconcile-concurrency", "100000"][..], "not in 1..=256"),
    ] {
        let out = run(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let flag = args[0].split('=').next().unwrap_or_default();
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_default_service_account_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in ["Not A Name", "ns:sa", "Upper"] {
        let out = run(&["--default-service-account", bad], dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(err.contains("--default-service-account"), "{bad}: {err}");
        assert!(!err.contains("no cluster configuration"), "{bad}: {err}");
    }
}

#[test]
fn unsafe_leader_election_timings_are_refused_naming_the_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, args, flag) in [
        (
            "a renew deadline as long as the lease",
            &["--lease-duration", "8s", "--lease-renew-deadline", "8s"][..],
            "--lease-duration",
        ),
        (
            "a lease shorter than a second",
            &[
                "--lease-duration",
                "500ms",
                "--lease-renew-deadline",
                "100ms",
            ][..],
            "--lease-duration",
        ),
        (
            "an empty identity",
            &["--leader-identity", ""][..],
            "--leader-identity",
        ),
    ] {
        let out = run(args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(flag), "{what}: {err}");
        assert!(
            !err.contains("no cluster configuration"),
            "{what}: looked for a cluster first: {err}"
        );
    }
}

#[test]
fn a_bad_log_level_is_refused_naming_the_levels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["--log-level", "loud"], dir.path());
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--log-level") && err.contains("error, warn, info, debug, trace"),
        "{err}"
    );
}
