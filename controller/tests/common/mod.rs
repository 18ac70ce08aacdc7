//! Helpers shared by the agent's end-to-end tests that run against the real control plane.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

/// Applies `deploy/crds.yaml` and waits until every CRD is Established.
pub async fn apply_crds(client: &kube::Client) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds.yaml"))
        .expect("deploy/crds.yaml");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc).expect("crd");
        let name = crd.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply("gitseal-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply crd");
        let cond = kube::runtime::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(api.clone(), &name, cond),
        )
        .await
        .expect("established in time")
        .expect("established");
    }
}

/// Polls `f` every 250 ms until it returns a value; fails the test after 90 s.
pub async fn wait_for<T, F: Fn() -> Fut, Fut: Future<Output = Option<T>>>(what: &str, f: F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1: the whole response, status line first.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// `gitseal-agent run` as a child process on free loopback ports, its log in `dir/agent.log`;
/// killed when dropped (printing the end of its log when the test failed).
pub struct AgentProcess {
    child: std::process::Child,
    pub log_path: std::path::PathBuf,
    pub health_port: u16,
    pub metrics_port: u16,
}

impl AgentProcess {
    /// The agent's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).expect("agent log")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("agent").is_none()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("agent log (last lines, newest first):\n{}", tail.join("\n"));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Starts the agent for one test: keys in `agent_ns`, GitSyncs and SealedSecrets of
/// `watch_ns` only, debug logs, git cache in `dir/cache`; `extra` are more `run` flags.
pub fn spawn_agent(
    kubeconfig: &std::path::Path,
    agent_ns: &str,
    watch_ns: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> AgentProcess {
    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (health_port, metrics_port) = (free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gitseal-agent"))
        .args([
            "run",
            "--namespace",
            agent_ns,
            "--watch-namespace",
            watch_ns,
        ])
        .arg("--health-addr")
        .arg(format!("127.0.0.1:{health_port}"))
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("GITSEAL_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent starts");
    AgentProcess {
        child,
        log_path,
        health_port,
        metrics_port,
    }
}

/// Runs git in `dir` with a throwaway identity; fails the test when git does.
#[allow(
    dead_code,
    reason = "each test binary uses its own subset of these helpers"
)]
pub fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
}

/// Installs `key` as the active sealing key `sealing-key-1` of the agent namespace `ns`.
#[allow(
    dead_code,
    reason = "each test binary uses its own subset of these helpers"
)]
pub async fn add_sealing_key(client: &kube::Client, ns: &str, key: &gitseal::SecretKey) {
    use secrecy::ExposeSecret;
    let keys: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let identity = key.to_identity_file("2026-11-26T00:00:00Z");
    keys.patch(
        "sealing-key-1",
        &PatchParams::apply("gitseal-test"),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sealing-key-1", "labels": {"gitseal.dev/sealing-key": "active"}},
            "stringData": {"identity": identity.expose_secret()}
        })),
    )
    .await
    .expect("key secret");
}
