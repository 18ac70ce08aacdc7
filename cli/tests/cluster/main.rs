//! The CLI's cluster commands end to end (`gitseal keys fetch | list | rotate | retire |
//! backup | restore`, `gitseal reseal --cluster`), against the real control plane with the
//! agent as a process and `gitseal` as a process: generation and publication, sealing with
//! fetched keys, rotation, offline reseal, retire refused while in use, backup, loss of
//! every key Secret and restore without a restart, re-sealing through the agent (and a 403 for
//! whom RBAC does not allow). Nothing secret in the agent's logs.
//!
//! The agent process: cargo gives an integration test the path of its own package's binaries
//! only (`CARGO_BIN_EXE_gitseal`), never another package's. So this test binary links the
//! agent's library and starts *itself* again as the agent: [`gitseal_agent_main`] runs the
//! agent's `main` (the same function the `gitseal-agent` binary runs) with the arguments
//! passed in [`AGENT_ARGS`]. No cargo call inside a test, and `cargo test -p gitseal-cli`
//! alone builds everything it needs.
//!
//! [`keys`]: the key lifecycle; [`reseal`]: `gitseal reseal --cluster`; [`operate`]: `gitseal
//! get | diff | reconcile | version`.

mod keys;
mod operate;
mod reseal;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};

use clap::Parser;
use gitseal_api::GitSync;
use gitseal_testenv::e2e::AgentTest;
use k8s_openapi::api::core::v1::ConfigMap;

const CANARY: &str = "CANARY-keys-7d1f0";

/// In the environment of this test binary started as the agent: its arguments (JSON list).
const AGENT_ARGS: &str = "GITSEAL_TEST_AGENT_ARGS";

/// Not a test: the agent process the tests below start (this binary run again with
/// [`AGENT_ARGS`] set). Without that variable it does nothing.
#[test]
#[ignore = "the agent's entry point for the tests in this file, not a test"]
fn gitseal_agent_main() {
    let Ok(args) = std::env::var(AGENT_ARGS) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).expect("agent arguments");
    let cli = gitseal_agent::args::Cli::parse_from(
        std::iter::once("gitseal-agent".to_owned()).chain(args),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(gitseal_agent::commands::main(cli));
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}

/// The command that runs this test binary as the agent with `args` (for
/// [`AgentTest::start_agent`]).
fn this_binary_as_agent(args: &[String]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "gitseal_agent_main",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(AGENT_ARGS, serde_json::to_string(args).expect("json"));
    cmd
}

/// The `gitseal` binary of this package.
fn cli_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gitseal"))
}

struct Cli {
    bin: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
    dir: PathBuf,
}

impl Cli {
    /// `gitseal` as the admin, for the agent of `t`, run in `t`'s work folder.
    fn for_test(t: &AgentTest) -> Cli {
        Cli {
            bin: cli_bin(),
            kubeconfig: t.cp.kubeconfig_path().to_owned(),
            namespace: t.agent_ns.clone(),
            dir: t.work.path().to_owned(),
        }
    }

    fn raw(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("gitseal runs")
    }
    /// `gitseal keys SUB --kubeconfig … --agent-namespace … ARGS`.
    fn keys(&self, sub: &str, args: &[&str]) -> Output {
        let kc = self.kubeconfig.display().to_string();
        let mut all = vec![
            "keys",
            sub,
            "--kubeconfig",
            &kc,
            "--agent-namespace",
            &self.namespace,
        ];
        all.extend_from_slice(args);
        self.raw(&all)
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn published(cm: &ConfigMap) -> Vec<serde_json::Value> {
    cm.data
        .as_ref()
        .and_then(|d| d.get("keys.json"))
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

fn active_ids(cm: &ConfigMap) -> Vec<String> {
    published(cm)
        .iter()
        .filter(|k| k["state"] == "active")
        .map(|k| k["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ready_at(gs: &GitSync) -> Option<(bool, String)> {
    let st = gs.status.as_ref()?;
    let c = st.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((
        c.status == "True",
        st.last_applied_revision.clone().unwrap_or_default(),
    ))
}

/// Waits until GitSync `apps` of `syncs` is Ready with commit `rev` applied.
async fn wait_applied(syncs: &kube::Api<GitSync>, rev: &str) {
    gitseal_testenv::e2e::wait_for(&format!("GitSync apps Ready at {rev}"), || async {
        let (ready, at) = ready_at(&syncs.get("apps").await.ok()?)?;
        (ready && at.ends_with(rev)).then_some(())
    })
    .await;
}

fn head(repo: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn header_ids(sealed_yaml: &str) -> Vec<String> {
    let v: serde_yaml::Value = serde_yaml::from_str(sealed_yaml).expect("yaml");
    let data = v["spec"]["encryptedData"]
        .as_mapping()
        .expect("encryptedData");
    let mut ids = Vec::new();
    for (_, b) in data {
        let ct = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            b.as_str().expect("b64"),
        )
        .expect("b64");
        ids.extend(
            gitseal::inspect(&ct)
                .expect("header")
                .key_ids
                .iter()
                .map(|k| k.to_string()),
        );
    }
    ids
}
