//! Hostile sealed values (issue 9): shapes no SealedSecret made by gitseal ever has and an
//! attacker can always write, generated here (never committed as big files). `unseal`,
//! `reseal` and `check` must each refuse them with a message naming the file, document,
//! key and limit, without panicking or writing anything, within 1 s of CPU and 200 MiB of
//! peak RSS — measured from the kernel's accounting of the gitseal child process
//! (getrusage(RUSAGE_CHILDREN)), not from wall time.
//!
//! RUSAGE_CHILDREN covers every child this test process has waited for, so every child is
//! run under one lock: the CPU of a run is the difference across it, and the peak RSS (a
//! maximum over all children so far) bounds every run measured. (Hostile manifests are in
//! `hostile.rs`, a separate test binary, hence a separate process with its own accounting.)

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use support::*;

/// The issue's acceptance bounds for one CLI run on hostile input.
const MAX_CPU: Duration = Duration::from_secs(1);
const MAX_RSS_KIB: i64 = 200 * 1024;

static CHILDREN: Mutex<()> = Mutex::new(());

fn children_cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let t = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    t(u.user_time()) + t(u.system_time())
}

/// Runs gitseal under the lock; returns the run and its CPU time, and asserts both bounds.
fn measured(env: &Env, args: &[&str]) -> Run {
    let _only_child = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let before = children_cpu();
    let run = env.run(args);
    let cpu = children_cpu() - before;
    let rss_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    eprintln!("gitseal {args:?}: {cpu:?} CPU, peak RSS of any child so far {rss_kib} KiB");
    assert!(cpu <= MAX_CPU, "gitseal {args:?} used {cpu:?} of CPU");
    assert!(
        rss_kib <= MAX_RSS_KIB,
        "gitseal {args:?}: a child reached {rss_kib} KiB"
    );
    run
}

/// A folder with an identity `a.key` (its key id returned) and nothing else.
fn setup() -> (Env, String, String) {
    let _only_child = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let run = env.run(&["keys", "generate", "-w", "a.key"]).ok();
    let id = run
        .stderr
        .split("key id ")
        .nth(1)
        .unwrap()
        .trim_end_matches(|c: char| c == ')' || c.is_whitespace())
        .to_owned();
    (env, run.stdout.trim().to_owned(), id)
}

/// A SealedSecret `db` in `prod` (strict) with the given values.
fn sealed_secret(values: &[(String, Vec<u8>)]) -> String {
    let mut s = String::from(
        "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: prod\nspec:\n  encryptedData:\n",
    );
    for (k, v) in values {
        s.push_str(&format!("    {k}: {}\n", b64(v)));
    }
    s
}

/// An age header of `n` X25519-shaped stanzas, every one labelled with `id`, for
/// `prod/db/password` (strict).
fn many_stanzas(n: usize, id: &str) -> Vec<u8> {
    gitseal::manifest::hostile::many_stanzas(n, id, "strict prod db password")
}

/// One stanza whose body is ~1 MB of base64 lines: few stanzas, a huge header.
fn huge_header() -> Vec<u8> {
    gitseal::manifest::hostile::huge_header()
}

/// Runs unseal, reseal and check on `hostile.yaml` and asserts each refuses it naming
/// everything in `expect`, within the bounds, leaving the folder as it was.
fn refused_everywhere(env: &Env, public: &str, expect: &[&str]) {
    let before = env.snapshot();
    let unseal = measured(env, &["unseal", "-i", "a.key", "-f", "hostile.yaml"]).fails(1);
    let reseal = measured(
        env,
        &["reseal", "-i", "a.key", "-r", public, "hostile.yaml"],
    )
    .fails(1);
    let check = measured(env, &["check", "hostile.yaml"]).fails(1);
    for run in [&unseal, &reseal, &check] {
        let all = format!("{}{}", run.stdout, run.stderr);
        for part in expect {
            assert!(
                all.contains(part),
                "gitseal {:?} lacks {part:?}:\n{all}",
                run.args
            );
        }
    }
    assert!(unseal.stdout.is_empty(), "unseal printed a Secret");
    assert_eq!(env.snapshot(), before, "a refused run changed the folder");
}

#[test]
fn thousands_of_recipient_stanzas_are_refused_in_linear_time() {
    let (env, public, id) = setup();
    // The reported shape: 9,000 stanzas, about 1 MB, every one naming the opener's key id.
    let ct = many_stanzas(9000, &id);
    assert!(ct.len() > 900_000, "{}", ct.len());
    env.write("hostile.yaml", sealed_secret(&[("password".into(), ct)]));
    refused_everywhere(
        &env,
        &public,
        &[
            "hostile.yaml",
            "document 1",
            "spec.encryptedData.password",
            "more than 64 stanzas",
        ],
    );
}

#[test]
fn a_megabyte_header_is_refused() {
    let (env, public, _) = setup();
    env.write(
        "hostile.yaml",
        sealed_secret(&[("password".into(), huge_header())]),
    );
    refused_everywhere(
        &env,
        &public,
        &[
            "hostile.yaml",
            "document 1",
            "spec.encryptedData.password",
            "more than 16384 bytes",
        ],
    );
}

#[test]
fn a_sealed_secret_with_too_many_values_is_refused() {
    let (env, public, id) = setup();
    // Each value small but well-formed enough to reach the opener if nothing stopped it.
    let ct = many_stanzas(1, &id);
    let values: Vec<(String, Vec<u8>)> = (0..5000).map(|i| (format!("k{i}"), ct.clone())).collect();
    env.write("hostile.yaml", sealed_secret(&values));
    refused_everywhere(
        &env,
        &public,
        &[
            "hostile.yaml",
            "document 1",
            "spec.encryptedData",
            "holds 5000 values",
            "limit of 4096",
        ],
    );
}

/// Under the limits but hostile: a value naming the opener's key id on every one of 62
/// stanzas costs at most a few unwraps, and fails as "no key opens it".
#[test]
fn a_value_naming_our_key_id_on_every_stanza_fails_cheaply() {
    let (env, public, id) = setup();
    env.write(
        "hostile.yaml",
        sealed_secret(&[("password".into(), many_stanzas(62, &id))]),
    );
    let before = env.snapshot();
    measured(&env, &["unseal", "-i", "a.key", "-f", "hostile.yaml"])
        .fails(1)
        .stderr_has(&[
            "hostile.yaml",
            "spec.encryptedData.password",
            "no key in the ring opens this value",
        ]);
    measured(
        &env,
        &["reseal", "-i", "a.key", "-r", &public, "hostile.yaml"],
    )
    .fails(1)
    .stderr_has(&["hostile.yaml", "spec.encryptedData.password"]);
    assert_eq!(env.snapshot(), before);
}

/// The payload is not covered by the header MAC: anyone who can seal to the opener's public
/// key can send a valid header followed by any payload, here one whose last chunk is
/// shorter than its 16-byte tag. It must fail as tampering, not panic.
#[test]
fn a_payload_cut_inside_its_last_tag_fails_cleanly() {
    let (env, public, _) = setup();
    // Two chunks: 64 KiB and 4,464 bytes (+ 16-byte tags).
    env.write("big.bin", vec![b'x'; 70_000]);
    let sealed = {
        let _only_child = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        env.run(&[
            "create",
            "db",
            "-n",
            "prod",
            "-r",
            &public,
            "--from-file",
            "password=big.bin",
        ])
        .ok()
        .stdout
    };
    for keep in [1usize, 5, 15] {
        let cut = edit_ciphertext(&sealed, "password", |ct| {
            let last_chunk = 70_000 - 64 * 1024 + 16;
            ct.truncate(ct.len() - last_chunk + keep);
        });
        env.write("cut.yaml", &cut);
        measured(&env, &["unseal", "-i", "a.key", "-f", "cut.yaml"])
            .fails(1)
            .stderr_has(&[
                "cut.yaml",
                "spec.encryptedData.password",
                "altered, truncated or corrupted",
            ]);
    }
}
