//! The agent's end-to-end tests against the real control plane: the shared helpers of
//! `gitseal_testenv::e2e`, the agent binary of this package, and a sealing key installed by
//! hand.

use std::process::Command;

use kube::api::{Api, Patch, PatchParams};

pub use gitseal_testenv::e2e::{AgentProcess, AgentSetup, AgentTest, http_get, wait_for};

/// The command that runs this package's `gitseal-agent` with `args` (for
/// [`AgentTest::start_agent`] and [`AgentProcess::start`]).
pub fn agent_binary(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitseal-agent"));
    cmd.args(args);
    cmd
}

/// Installs `key` as the active sealing key `sealing-key-1` of the agent namespace `ns`.
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
