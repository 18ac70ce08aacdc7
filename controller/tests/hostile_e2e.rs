//! Hostile input for the agent (issue 9), against the real control plane with the agent as a
//! real process: repositories (GitSync passes), SealedSecret objects and ResealRequests
//! built to exhaust it, each generated here (no big committed files). Each must fail with a
//! clear error in status, within 1 s of the agent's CPU (utime + stime from
//! /proc/<pid>/stat, measured from the moment it is given the input until the end of a
//! retry window) and 200 MiB (VmHWM from /proc/<pid>/status), without panicking, without
//! applying or pruning anything from a failed pass, and retried with a backoff — counted as
//! attempts in the window, not timed — while `/healthz` answers within 1 s throughout (a
//! probe thread asks every 100 ms).
//!
//! `cargo test -p gitseal-agent --test hostile_e2e -- --nocapture` prints the figures.

mod support;

use support::{
    AgentProcess, AgentTest, add_sealing_key, agent_binary, git, http_get, wait_agent_ready,
    wait_for,
};

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::SecretKey;
use gitseal::manifest::hostile;
use gitseal_api::{GitSync, ResealRequest, SealedSecret};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// The bounds for one hostile input.
const MAX_CPU: Duration = Duration::from_secs(1);
const MAX_HWM_KIB: u64 = 200 * 1024;
/// How long retries are watched after the error shows: the first retry of a failure only a
/// change can fix comes 5 s later, the next 10 s after that. Every second (the GitSyncs'
/// interval) would make 8 attempts.
const WINDOW: Duration = Duration::from_secs(8);
/// Attempts allowed in the failure's first moments plus [`WINDOW`].
const MAX_ATTEMPTS: usize = 2;
/// The slowest `/healthz` answer allowed.
const MAX_HEALTH: Duration = Duration::from_secs(1);

/// The agent's CPU time so far (user + system), from /proc/<pid>/stat.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command, which is in parentheses and may hold spaces: state is
    // field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("CLK_TCK")
    })
}

/// The agent's peak resident set so far (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Asks `/healthz` every 100 ms from a thread until finished; records the slowest answer
/// and every failure (no answer within 2 s, or not 200).
struct HealthProbe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, usize, Vec<String>)>,
}

impl HealthProbe {
    fn start(port: u16) -> HealthProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut slowest, mut asked, mut failures) = (Duration::ZERO, 0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let start = Instant::now();
                let answer = healthz(port);
                let took = start.elapsed();
                slowest = slowest.max(took);
                asked += 1;
                match answer {
                    Ok(a) if a.starts_with("HTTP/1.1 200") => {}
                    Ok(a) => failures.push(format!(
                        "after {took:?}: {}",
                        a.lines().next().unwrap_or("")
                    )),
                    Err(e) => failures.push(format!("after {took:?}: {e}")),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (slowest, asked, failures)
        });
        HealthProbe { stop, thread }
    }

    /// Stops the probe and asserts every answer came in time.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (slowest, asked, failures) = self.thread.join().expect("probe");
        eprintln!("/healthz: {asked} probes, slowest {slowest:?}");
        assert!(failures.is_empty(), "/healthz failed: {failures:?}");
        assert!(slowest <= MAX_HEALTH, "/healthz took {slowest:?}");
    }
}

fn healthz(port: u16) -> std::io::Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The sum of the counter `name` over its results, `ok` left out.
fn failures_counted(metrics_port: u16, name: &str) -> usize {
    let text = http_get(metrics_port, "/metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && !l.contains("result=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// What one hostile input cost the agent.
struct Cost {
    pid: u32,
    cpu: Duration,
}

impl Cost {
    fn start(agent: &AgentProcess) -> Cost {
        Cost {
            pid: agent.pid(),
            cpu: cpu(agent.pid()),
        }
    }

    /// Prints and checks the CPU used since [`Cost::start`] and the peak RSS so far.
    fn check(self, shape: &str, attempts: usize) {
        let used = cpu(self.pid) - self.cpu;
        let hwm = peak_rss_kib(self.pid);
        eprintln!(
            "{shape}: agent CPU {:.2} s, peak RSS {} MiB, {attempts} attempt(s) in the failure's first {:?}",
            used.as_secs_f64(),
            hwm / 1024,
            WINDOW
        );
        assert!(used <= MAX_CPU, "{shape}: the agent used {used:?} of CPU");
        assert!(hwm <= MAX_HWM_KIB, "{shape}: the agent reached {hwm} KiB");
        assert!(
            (1..=MAX_ATTEMPTS).contains(&attempts),
            "{shape}: {attempts} attempts; retries are not backed off"
        );
    }
}

async fn start_agent(t: &AgentTest, extra: &[&str]) -> AgentProcess {
    let agent = t.start_agent(agent_binary, extra);
    wait_agent_ready(&agent).await;
    agent
}

// ---------------------------------------------------------------------------------------
// GitSync passes

/// A ConfigMap manifest.
fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
}

/// A ConfigMap whose one value is `bytes` long: many bytes, few nodes.
fn big_config_map(name: &str, bytes: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  v: {}\n",
        "x".repeat(bytes)
    )
}

/// A ConfigMap carrying a flat list of `n` scalars: many nodes, few bytes.
fn wide_config_map(name: &str, n: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\nextra: {}",
        hostile::wide_list(n)
    )
}

/// One hostile commit: the files it writes, the GitSyncs that must fail, and what their
/// error must say.
struct Shape {
    name: &'static str,
    files: Vec<(String, String)>,
    sources: &'static [&'static str],
    expect: Vec<&'static str>,
}

fn shapes() -> Vec<Shape> {
    let kustomization = "resources: [fresh.yaml, big-0.yaml, big-1.yaml, big-2.yaml]\n";
    let mut kustomize_files = vec![(
        "apps/kustomization.yaml".to_owned(),
        kustomization.to_owned(),
    )];
    for i in 0..3 {
        kustomize_files.push((
            format!("apps/big-{i}.yaml"),
            big_config_map(&format!("big-{i}"), 400_000),
        ));
    }
    vec![
        Shape {
            name: "alias bomb (5,000 aliases to a 5,000-element anchor, 35 KB)",
            files: vec![("apps/bomb.yaml".into(), hostile::alias_bomb(5_000))],
            sources: &["apps"],
            expect: vec![
                "apps/bomb.yaml",
                "document 1",
                "once aliases are expanded (limit: nodes per pass)",
            ],
        },
        Shape {
            name: "flow sequences nested 100,000 deep, in two GitSyncs",
            files: vec![
                ("apps/deep.yaml".into(), hostile::nested_sequences(100_000)),
                ("twin/deep.yaml".into(), hostile::nested_sequences(100_000)),
            ],
            sources: &["apps", "twin"],
            expect: vec!["/deep.yaml", "document 1", "(limit: YAML nesting depth)"],
        },
        Shape {
            name: "flow mappings nested 60,000 deep, in two GitSyncs",
            files: vec![
                ("apps/deep.yaml".into(), hostile::nested_mappings(60_000)),
                ("twin/deep.yaml".into(), hostile::nested_mappings(60_000)),
            ],
            sources: &["apps", "twin"],
            expect: vec!["/deep.yaml", "document 1", "(limit: YAML nesting depth)"],
        },
        Shape {
            name: "block sequences nested 50,000 deep",
            files: vec![(
                "apps/deep.yaml".into(),
                hostile::nested_block_sequences(50_000),
            )],
            sources: &["apps"],
            expect: vec![
                "apps/deep.yaml",
                "document 1",
                "(limit: YAML nesting depth)",
            ],
        },
        Shape {
            name: "250,000 documents in 16 MB",
            files: vec![("apps/many.yaml".into(), hostile::many_documents(250_000))],
            sources: &["apps"],
            expect: vec!["apps/many.yaml", "(limit: bytes per file)"],
        },
        Shape {
            name: "3 files of 400 KB (1 MiB per pass)",
            files: (0..3)
                .map(|i| {
                    (
                        format!("apps/big-{i}.yaml"),
                        big_config_map(&format!("big-{i}"), 400_000),
                    )
                })
                .collect(),
            sources: &["apps"],
            expect: vec!["apps/big-2.yaml", "(limit: bytes per pass)"],
        },
        Shape {
            name: "4 files of 300 documents (1,000 per pass)",
            files: (0..4)
                .map(|i| (format!("apps/docs-{i}.yaml"), hostile::many_documents(300)))
                .collect(),
            sources: &["apps"],
            expect: vec!["apps/docs-3.yaml", "(limit: documents per pass)"],
        },
        Shape {
            name: "3 files of 40,000 nodes (100,000 per pass)",
            files: (0..3)
                .map(|i| {
                    (
                        format!("apps/wide-{i}.yaml"),
                        wide_config_map(&format!("wide-{i}"), 40_000),
                    )
                })
                .collect(),
            sources: &["apps"],
            expect: vec!["apps/wide-2.yaml", "(limit: nodes per pass)"],
        },
        Shape {
            name: "kustomize build output of 1.2 MB (1 MiB per pass)",
            files: kustomize_files,
            sources: &["apps"],
            expect: vec![
                "kustomize build apps",
                "over the limit of 1 MiB",
                "(limit: bytes per pass)",
            ],
        },
    ]
}

async fn apply_gitsync(
    client: &kube::Client,
    ns: &str,
    name: &str,
    repo: &Path,
    path: &str,
    interval: &str,
) {
    let api: Api<GitSync> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply("gitseal-test"),
        &Patch::Apply(json!({
            "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name},
            "spec": {"url": format!("file://{}", repo.display()), "ref": {"branch": "main"},
                     "path": path, "interval": interval, "prune": true, "targetNamespace": ns}
        })),
    )
    .await
    .expect("gitsync");
}

/// Waits until the GitSync `name` applied `sha`.
async fn wait_applied(syncs: &Api<GitSync>, name: &str, sha: &str) {
    wait_for(&format!("GitSync {name} applied {sha}"), || async {
        let gs = syncs.get(name).await.ok()?;
        let s = gs.status?;
        (s.last_applied_revision.as_deref()?.ends_with(sha) && s.last_error.is_none()).then_some(())
    })
    .await;
}

/// Waits until the GitSync `name` failed on `sha`; its error.
async fn wait_failed(syncs: &Api<GitSync>, name: &str, sha: &str) -> String {
    wait_for(&format!("GitSync {name} failed on {sha}"), || async {
        let gs = syncs.get(name).await.ok()?;
        let s = gs.status?;
        if !s.last_attempted_revision.as_deref()?.ends_with(sha) {
            return None;
        }
        let stalled = s
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True");
        stalled.then_some(s.last_error?)
    })
    .await
}

/// Lines of the agent's log with `message` about the object `field=ns/name`: its attempts.
fn logged(agent: &AgentProcess, message: &str, field: &str, ns: &str, name: &str) -> usize {
    strip_ansi(&agent.logs())
        .lines()
        .filter(|l| l.contains(message) && has_field(l, field, ns, name))
        .count()
}

/// Whether a log line has the field `field=ns/name` (followed by another field or the end).
fn has_field(line: &str, field: &str, ns: &str, name: &str) -> bool {
    let f = format!("{field}={ns}/{name}");
    line.contains(&format!("{f} ")) || line.ends_with(&f)
}

/// Failed passes of the GitSync `ns/name`.
fn failed_passes(agent: &AgentProcess, ns: &str, name: &str) -> usize {
    logged(agent, "pass failed", "gitsync", ns, name)
}

/// `text` without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn commit(repo: &Path, write: &[(String, String)], remove: &[&str], message: &str) -> String {
    for f in remove {
        let _ = std::fs::remove_file(repo.join(f));
    }
    for (f, text) in write {
        let p = repo.join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "--allow-empty", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn hostile_repositories_fail_once_cheaply_and_back_off() {
    let t = AgentTest::new("hostile-git").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    add_sealing_key(&client, &t.agent_ns, &SecretKey::generate()).await;
    let repo = t.init_repo();
    let base = [
        ("apps/keep.yaml".to_owned(), config_map("keep")),
        ("twin/keep.yaml".to_owned(), config_map("twin-keep")),
    ];
    let sha = commit(&repo, &base, &[], "base");
    let steady = t.work.path().join("steady");
    std::fs::create_dir_all(&steady).expect("mkdir");
    git(&steady, &["init", "-q", "-b", "main"]);
    let steady_sha = commit(
        &steady,
        &[("apps/steady.yaml".into(), config_map("steady"))],
        &[],
        "steady",
    );

    // Limits lowered by flag (operators may), so the pass shapes stay small.
    let agent = start_agent(
        &t,
        &[
            "--max-file-bytes",
            "512Ki",
            "--max-pass-bytes",
            "1Mi",
            "--max-pass-documents",
            "1000",
            "--max-pass-nodes",
            "100000",
        ],
    )
    .await;
    apply_gitsync(&client, &ns, "apps", &repo, "apps", "1s").await;
    apply_gitsync(&client, &ns, "twin", &repo, "twin", "1s").await;
    apply_gitsync(&client, &ns, "steady", &steady, "apps", "5s").await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    for name in ["apps", "twin"] {
        wait_applied(&syncs, name, &sha).await;
    }
    wait_applied(&syncs, "steady", &steady_sha).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let probe = HealthProbe::start(agent.health_port);
    // What the agent spends meanwhile on its own (three sources fetched and checked every
    // interval): a share of every figure below.
    let quiet = Cost::start(&agent);
    tokio::time::sleep(WINDOW + Duration::from_secs(2)).await;
    eprintln!(
        "baseline: agent CPU {:.2} s in {:?} with nothing hostile",
        (cpu(quiet.pid) - quiet.cpu).as_secs_f64(),
        WINDOW + Duration::from_secs(2)
    );
    for (i, shape) in shapes().into_iter().enumerate() {
        let before: Vec<usize> = shape
            .sources
            .iter()
            .map(|s| failed_passes(&agent, &ns, s))
            .collect();
        let cost = Cost::start(&agent);
        // The hostile commit also drops `keep` and adds `fresh`: neither may happen.
        let mut files = shape.files.clone();
        files.push(("apps/fresh.yaml".into(), config_map("fresh")));
        let bad = commit(&repo, &files, &["apps/keep.yaml"], shape.name);
        for source in shape.sources {
            let error = wait_failed(&syncs, source, &bad).await;
            for part in &shape.expect {
                assert!(
                    error.contains(part),
                    "{}: {source}: {part:?} missing from {error:?}",
                    shape.name
                );
            }
        }
        tokio::time::sleep(WINDOW).await;
        let attempts = shape
            .sources
            .iter()
            .zip(&before)
            .map(|(s, b)| failed_passes(&agent, &ns, s) - b)
            .max()
            .unwrap_or(0);
        cost.check(shape.name, attempts);
        assert!(
            cms.get_opt("keep").await.expect("get").is_some(),
            "{}: keep was pruned",
            shape.name
        );
        assert!(
            cms.get_opt("fresh").await.expect("get").is_none(),
            "{}: fresh was applied",
            shape.name
        );
        if i == 0 {
            // Asked for a pass (as a push webhook or `kubectl annotate` does) while the
            // revision is held back by its failure backoff: the backoff is cleared (logged)
            // and the very next thing the agent does with this GitSync is an attempt — one
            // more failure of the same revision, answering the request in status.
            let requested = "2026-11-27T00:00:00Z";
            syncs
                .patch(
                    "apps",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {
                        gitseal_api::names::RECONCILE_REQUESTED_ANNOTATION: requested
                    }}})),
                )
                .await
                .expect("annotate");
            let about = |l: &str| has_field(l, "gitsync", &ns, "apps");
            let next = wait_for("the requested pass", || async {
                let logs = strip_ansi(&agent.logs());
                let mut lines = logs
                    .lines()
                    .skip_while(|l| !(l.contains("pass requested") && about(l)));
                lines.next()?;
                lines
                    .find(|l| about(l) && l.contains("pass "))
                    .map(str::to_owned)
            })
            .await;
            assert!(
                next.contains("pass failed"),
                "not an attempt after a request: {next}"
            );
            wait_for("the request answered in status", || async {
                let s = syncs.get("apps").await.ok()?.status?;
                (s.last_handled_reconcile_at.as_deref() == Some(requested)
                    && s.last_attempted_revision.as_deref()?.contains(&bad))
                .then_some(())
            })
            .await;
            assert!(
                cms.get_opt("fresh").await.expect("get").is_none(),
                "fresh was applied by the requested pass"
            );
        }

        // Another source is served meanwhile.
        let marker = format!("steady-{i}");
        commit(
            &steady,
            &[(format!("apps/{marker}.yaml"), config_map(&marker))],
            &[],
            &marker,
        );
        wait_for(
            &format!("{marker} applied while a source is hostile"),
            || async { cms.get_opt(&marker).await.ok()? },
        )
        .await;

        // Back to good: both sources apply again.
        let mut undo: Vec<&str> = shape.files.iter().map(|(f, _)| f.as_str()).collect();
        undo.push("apps/fresh.yaml");
        let good = commit(&repo, &base, &undo, "undo");
        for name in ["apps", "twin"] {
            wait_applied(&syncs, name, &good).await;
        }
    }
    probe.finish();
    let logs = agent.logs();
    assert!(!logs.contains("panicked"), "the agent panicked");
}

// ---------------------------------------------------------------------------------------
// SealedSecret objects

fn sealed_secret(ns: &str, name: &str, values: &[(String, Vec<u8>)]) -> serde_json::Value {
    let data: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), json!(B64.encode(v))))
        .collect();
    json!({
        "apiVersion": "gitseal.dev/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"encryptedData": data}
    })
}

#[tokio::test]
async fn hostile_sealed_secrets_fail_once_cheaply_and_back_off() {
    let t = AgentTest::new("hostile-ss").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let key = SecretKey::generate();
    add_sealing_key(&client, &t.agent_ns, &key).await;
    let id = key.id().to_string();
    let agent = start_agent(&t, &[]).await;
    let probe = HealthProbe::start(agent.health_port);
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let binding = |name: &str, k: &str| format!("strict {ns} {name} {k}");

    // (shape, object name, its values, the Ready reason, what the message must say)
    type Values = Vec<(String, Vec<u8>)>;
    let shapes: Vec<(&str, &str, Values, &str, Vec<&str>)> = vec![
        (
            "9,000 recipient stanzas in 1 MB",
            "stanzas",
            vec![(
                "password".into(),
                hostile::many_stanzas(9_000, &id, &binding("stanzas", "password")),
            )],
            "DecryptFailed",
            vec!["password", "more than 64 stanzas"],
        ),
        (
            "a 1 MB header",
            "header",
            vec![("password".into(), hostile::huge_header())],
            "DecryptFailed",
            vec!["password", "more than 16384 bytes"],
        ),
        (
            "5,000 values",
            "values",
            (0..5_000)
                .map(|i| (format!("k{i:04}"), b"x".to_vec()))
                .collect(),
            "InvalidSpec",
            vec!["spec.encryptedData", "holds 5000 values", "limit of 4096"],
        ),
        (
            "3,000 values naming our key id",
            "ours",
            (0..3_000)
                .map(|i| {
                    let k = format!("k{i:04}");
                    let v = hostile::many_stanzas(1, &id, &binding("ours", &k));
                    (k, v)
                })
                .collect(),
            "NoMatchingKey",
            vec!["k0000", "no key in the ring opens this value"],
        ),
        (
            "a value naming our key id on 62 stanzas",
            "sixty-two",
            vec![(
                "password".into(),
                hostile::many_stanzas(62, &id, &binding("sixty-two", "password")),
            )],
            "NoMatchingKey",
            vec!["password", "no key in the ring opens this value"],
        ),
    ];
    for (shape, name, values, reason, expect) in shapes {
        let before = logged(&agent, "cannot unseal", "sealedsecret", &ns, name);
        let cost = Cost::start(&agent);
        sealed
            .patch(
                name,
                &PatchParams::apply("gitseal-test"),
                &Patch::Apply(sealed_secret(&ns, name, &values)),
            )
            .await
            .expect("apply SealedSecret");
        let message = wait_for(&format!("{shape}: Ready=False"), || async {
            let ss = sealed.get(name).await.ok()?;
            let c = ss
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            (c.status == "False").then_some((c.reason, c.message))
        })
        .await;
        assert_eq!(message.0, reason, "{shape}: {}", message.1);
        for part in &expect {
            assert!(
                message.1.contains(part),
                "{shape}: {part:?} missing from {:?}",
                message.1
            );
        }
        tokio::time::sleep(WINDOW).await;
        let attempts = logged(&agent, "cannot unseal", "sealedsecret", &ns, name) - before;
        cost.check(shape, attempts);
        assert!(
            secrets.get_opt(name).await.expect("get").is_none(),
            "{shape}: a Secret was written"
        );
        sealed
            .delete(name, &Default::default())
            .await
            .expect("delete SealedSecret");
    }
    // Every attempt was counted by result.
    assert!(failures_counted(agent.metrics_port, "gitseal_unseals_total") >= 5);
    probe.finish();
    assert!(!agent.logs().contains("panicked"), "the agent panicked");
}

// ---------------------------------------------------------------------------------------
// ResealRequests

fn reseal_request(name: &str, items: serde_json::Value, recipients: &[String]) -> ResealRequest {
    serde_json::from_value(json!({
        "apiVersion": "gitseal.dev/v1alpha1", "kind": "ResealRequest",
        "metadata": {"name": name},
        "spec": {"items": items, "recipients": recipients}
    }))
    .expect("request")
}

fn item(ns: &str, name: &str, values: usize, bytes: usize) -> serde_json::Value {
    let data: serde_json::Map<String, serde_json::Value> = (0..values)
        .map(|i| (format!("k{i:04}"), json!(B64.encode(vec![b'x'; bytes]))))
        .collect();
    json!({"name": name, "namespace": ns, "encryptedData": data})
}

#[tokio::test]
async fn hostile_reseal_requests_are_refused_before_opening_and_answered_once() {
    let t = AgentTest::new("hostile-rr").await;
    let (client, agent_ns) = (t.client.clone(), t.agent_ns.clone());
    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;
    let agent = start_agent(&t, &[]).await;
    let probe = HealthProbe::start(agent.health_port);
    let requests: Api<ResealRequest> = Api::namespaced(client.clone(), &agent_ns);
    let many: Vec<String> = (0..62)
        .map(|_| SecretKey::generate().public().to_string())
        .collect();
    let ns = t.app_ns.clone();

    let shapes: Vec<(&str, ResealRequest, Vec<&str>)> = vec![
        (
            "300 items",
            reseal_request(
                "items",
                json!(
                    (0..300)
                        .map(|i| item(&ns, &format!("s{i}"), 1, 10))
                        .collect::<Vec<_>>()
                ),
                &[],
            ),
            vec!["300 items", "(limit: items per request)"],
        ),
        (
            "5,000 values",
            reseal_request("values", json!([item(&ns, "s", 5_000, 1)]), &[]),
            vec!["5000 values", "(limit: values per request)"],
        ),
        (
            "600 KB of ciphertext",
            reseal_request("bytes", json!([item(&ns, "s", 3, 200_000)]), &[]),
            vec!["bytes of ciphertext", "(limit: bytes per request)"],
        ),
        (
            "1,000 values to 62 keys the request names",
            reseal_request("recipients", json!([item(&ns, "s", 1_000, 250)]), &many),
            vec!["spec.recipients is refused"],
        ),
        (
            "3,500 values (an answer of at least 0.9 MB)",
            reseal_request("answer", json!([item(&ns, "s", 3_500, 1)]), &[]),
            vec!["the answer would be at least", "(limit: answer size"],
        ),
    ];
    for (shape, request, expect) in shapes {
        let name = request.name_any();
        let before = failures_counted(agent.metrics_port, "gitseal_reseal_answers_total");
        let cost = Cost::start(&agent);
        requests
            .create(&PostParams::default(), &request)
            .await
            .expect("create ResealRequest");
        let answered = wait_for(&format!("{shape}: answered"), || async {
            let rr = requests.get(&name).await.ok()?;
            rr.status.as_ref()?.error.as_ref()?;
            Some(rr)
        })
        .await;
        let status = answered.status.clone().expect("status");
        let error = status.error.clone().expect("error");
        assert!(
            status.results.is_empty(),
            "{shape}: results beside an error"
        );
        for part in &expect {
            assert!(
                error.contains(part),
                "{shape}: {part:?} missing from {error:?}"
            );
        }
        tokio::time::sleep(WINDOW).await;
        let answers = failures_counted(agent.metrics_port, "gitseal_reseal_answers_total") - before;
        cost.check(shape, answers);
        assert_eq!(answers, 1, "{shape}: answered {answers} times");
        assert_eq!(
            requests.get(&name).await.expect("get").resource_version(),
            answered.resource_version(),
            "{shape}: the answer was written again"
        );
    }
    probe.finish();
    assert!(!agent.logs().contains("panicked"), "the agent panicked");
}
