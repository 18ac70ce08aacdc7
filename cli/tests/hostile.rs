//! Hostile manifests (issue 9): each known shape, through every command that reads manifests,
//! must fail with a message naming the file, the document and the limit, without a panic and
//! without writing anything, within 1 s of CPU and 200 MiB of peak memory. The bounds are read
//! from the kernel's accounting of the child (getrusage of reaped children), not from a clock.
//!
//! One test function on purpose: CPU time is the difference of RUSAGE_CHILDREN around each run,
//! exact only while no other test of this binary runs children at the same time.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use gitseal::manifest::hostile;
use nix::sys::resource::{UsageWho, getrusage};
use support::*;

const MAX_CPU: Duration = Duration::from_secs(1);
const MAX_RSS_KIB: i64 = 200 * 1024;

/// CPU time (user + system) and the peak RSS (KiB) of every child reaped so far.
fn children_usage() -> (Duration, i64) {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    (micros(u.user_time()) + micros(u.system_time()), u.max_rss())
}

/// The folder's files and a hash of each (not the contents: see [`Shape::text`]).
fn digest(env: &Env) -> Vec<(std::path::PathBuf, u64)> {
    use std::hash::{Hash, Hasher};
    env.snapshot()
        .into_iter()
        .map(|(path, contents)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            contents.hash(&mut h);
            (path, h.finish())
        })
        .collect()
}

struct Shape {
    name: &'static str,
    /// Made only when its turn comes: the test process stays small, because a child's peak
    /// RSS counts the pages it shares with its parent between fork and exec.
    text: Box<dyn Fn() -> String>,
    /// What the message must hold besides the file name.
    expect: &'static [&'static str],
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "alias bomb, 35 KB",
            text: Box::new(|| hostile::alias_bomb(5_000)),
            expect: &[
                "document 1",
                "once aliases are expanded",
                "(limit: nodes per file)",
            ],
        },
        Shape {
            name: "alias bomb, 60 KB",
            text: Box::new(|| hostile::alias_bomb(8_600)),
            expect: &[
                "document 1",
                "once aliases are expanded",
                "(limit: nodes per file)",
            ],
        },
        Shape {
            name: "flow sequences 100,000 deep",
            text: Box::new(|| hostile::nested_sequences(100_000)),
            expect: &[
                "document 1",
                "(limit: YAML nesting depth)",
                "line 1 column 101",
            ],
        },
        Shape {
            name: "flow mappings 60,000 deep",
            text: Box::new(|| hostile::nested_mappings(60_000)),
            expect: &["document 1", "(limit: YAML nesting depth)"],
        },
        Shape {
            name: "block sequences 50,000 deep",
            text: Box::new(|| hostile::nested_block_sequences(50_000)),
            expect: &["document 1", "(limit: YAML nesting depth)"],
        },
        Shape {
            name: "250,000 documents in 16 MB",
            text: Box::new(|| hostile::many_documents(250_000)),
            expect: &["8 MiB", "(limit: bytes per file)"],
        },
        Shape {
            name: "250,000 empty documents in 1.7 MB",
            text: Box::new(|| hostile::many_empty_documents(250_000)),
            expect: &["document 10001", "(limit: documents per file)"],
        },
        Shape {
            name: "a flat list of 1,000,000 scalars",
            text: Box::new(|| hostile::wide_list(1_000_000)),
            expect: &["document 1", "(limit: nodes per file)"],
        },
    ]
}

#[test]
fn hostile_manifests_fail_fast_in_every_command() {
    let env = Env::new();
    let public = env.key("a.key");
    env.write("ok.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "ok.yaml", "-r", &public, "-w", "sealed.yaml"])
        .ok();
    let commands: Vec<(&str, Vec<&str>)> = vec![
        (
            "seal",
            vec!["seal", "-f", "in.yaml", "-r", &public, "-w", "out.yaml"],
        ),
        (
            "seal --merge-into",
            vec![
                "seal",
                "-f",
                "ok.yaml",
                "-r",
                &public,
                "--merge-into",
                "in.yaml",
            ],
        ),
        ("unseal", vec!["unseal", "-i", "a.key", "-f", "in.yaml"]),
        // Refused before any editor would start (none is set).
        ("edit", vec!["edit", "-i", "a.key", "in.yaml"]),
        (
            "reseal",
            vec!["reseal", "-i", "a.key", "-r", &public, "in.yaml"],
        ),
        ("check", vec!["check", "in.yaml"]),
        (
            "import",
            vec!["import", "-i", "a.key", "-r", &public, "in.yaml"],
        ),
    ];
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for shape in shapes() {
        // The comment makes `import` look inside (it skips files naming neither SOPS nor Bitnami).
        env.write("in.yaml", (shape.text)() + "# ENC[ bitnami.com\n");
        let before = digest(&env);
        for (command, args) in &commands {
            let (cpu0, _) = children_usage();
            let run = env.run(args);
            let (cpu1, max_rss) = children_usage();
            let cpu = cpu1 - cpu0;
            report.push(format!(
                "{:<36} {:<18} {:>5} ms CPU, peak RSS so far {:>6} KiB",
                shape.name,
                command,
                cpu.as_millis(),
                max_rss
            ));
            let out = format!("{}{}", run.stderr, run.stdout);
            let mut problems = Vec::new();
            if run.code != Some(1) {
                problems.push(format!("exit {:?}, expected 1", run.code));
            }
            if out.contains("panicked") {
                problems.push("panicked".to_owned());
            }
            for part in std::iter::once(&"in.yaml").chain(shape.expect) {
                if !out.contains(part) {
                    problems.push(format!("output lacks {part:?}"));
                }
            }
            if cpu > MAX_CPU {
                problems.push(format!("{} ms of CPU", cpu.as_millis()));
            }
            if max_rss > MAX_RSS_KIB {
                problems.push(format!("peak RSS {max_rss} KiB"));
            }
            if digest(&env) != before {
                problems.push("the folder changed".to_owned());
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} / gitseal {command}: {}\n  output: {}",
                    shape.name,
                    problems.join("; "),
                    out.chars().take(600).collect::<String>()
                ));
            }
        }
    }
    // Shown with --nocapture: the figures behind the assertion.
    println!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} hostile run(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A hostile `.gitseal.yaml` is refused before it is parsed too.
    env.write(".gitseal.yaml", hostile::alias_bomb(2_000));
    let (cpu0, _) = children_usage();
    let run = env.run(&["seal", "-f", "ok.yaml", "-w", "out.yaml"]);
    let (cpu1, max_rss) = children_usage();
    let run = run.fails(1).stderr_has(&[
        ".gitseal.yaml",
        "once aliases are expanded",
        "(limit: nodes per file)",
    ]);
    assert!(cpu1 - cpu0 <= MAX_CPU && max_rss <= MAX_RSS_KIB, "{run:?}");
    assert!(!env.exists("out.yaml"));
}
