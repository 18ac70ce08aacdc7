//! The agent's end-to-end tests against the real control plane: the shared helpers of
//! `gitseal_testenv::e2e`, the agent binary of this package, and a sealing key installed by
//! hand.

use std::path::Path;
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

/// Applies the GitSync `name` in `ns` with `spec` (server-side apply, field manager
/// `gitseal-test`).
pub async fn apply_gitsync(client: &kube::Client, ns: &str, name: &str, spec: serde_json::Value) {
    let api: Api<gitseal_api::GitSync> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply("gitseal-test").force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name},
            "spec": spec,
        })),
    )
    .await
    .expect("gitsync");
}

/// The spec of a GitSync following branch `main` of the repository at `repo` (`file://`,
/// so the agent needs `--allow-local-sources`): folder `path`, a pass every second.
pub fn file_gitsync_spec(repo: &Path, path: &str, prune: bool) -> serde_json::Value {
    serde_json::json!({"url": format!("file://{}", repo.display()), "path": path,
                       "interval": "1s", "prune": prune})
}

/// The GitSync's Ready condition: `(status, reason, message)`.
pub fn ready_condition(gs: &gitseal_api::GitSync) -> Option<(bool, String, String)> {
    gs.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
}

/// Waits until the GitSync `name` is Ready at a revision ending in `commit` (`None`: any).
pub async fn wait_ready(
    client: &kube::Client,
    ns: &str,
    name: &str,
    commit: Option<&str>,
) -> gitseal_api::GitSync {
    let api: Api<gitseal_api::GitSync> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("GitSync {ns}/{name} Ready at {commit:?}"),
        || async {
            let gs = api.get(name).await.ok()?;
            let ready = ready_condition(&gs)?.0;
            let at = gs.status.as_ref()?.last_applied_revision.clone()?;
            (ready
                && gs.status.as_ref()?.observed_generation == gs.metadata.generation
                && commit.is_none_or(|c| at.ends_with(c)))
            .then_some(gs)
        },
    )
    .await
}

/// Names of the ConfigMaps in `ns` labelled as applied by the GitSync `ns/name`.
pub async fn managed_configmaps(client: &kube::Client, ns: &str, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    labelled_names(
        &api,
        &format!("gitseal.dev/sync-namespace={ns},gitseal.dev/sync-name={name}"),
    )
    .await
}

/// Sorted names of the objects of `api` that match the label selector `labels`.
pub async fn labelled_names<K>(api: &Api<K>, labels: &str) -> Vec<String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list_metadata(&kube::api::ListParams::default().labels(labels))
        .await
        .unwrap_or_else(|e| panic!("list objects labelled {labels}: {e}"));
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    names.sort();
    names
}

/// `count` ConfigMaps `<prefix>-<i>` in `ns` as one multi-document YAML file, each with
/// `data: {v: <value>}`.
pub fn configmaps_yaml(ns: &str, prefix: &str, count: usize, value: &str) -> String {
    let mut out = String::new();
    for i in 0..count {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {prefix}-{i}, namespace: {ns}}}\ndata: {{v: \"{value}\"}}\n"
        ));
    }
    out
}

/// Signals the process `pid` (`STOP`, `CONT`, `KILL`) with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Waits until the agent's `/readyz` answers 200.
pub async fn wait_agent_ready(agent: &AgentProcess) {
    let health = agent.health_port;
    wait_for("the agent's /readyz", || async move {
        std::net::TcpStream::connect(("127.0.0.1", health))
            .ok()
            .map(|_| http_get(health, "/readyz"))
            .filter(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await;
}

/// Every `events.k8s.io/v1` Event of `ns` as JSON (to look for a leaked secret in).
pub async fn events_v1_json(client: &kube::Client, ns: &str) -> String {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::discovery::ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&()),
    );
    let events = api
        .list(&kube::api::ListParams::default())
        .await
        .expect("events");
    serde_json::to_string(&events.items).expect("json")
}
