//! The source-side trust boundaries of `gitseal-agent` (issue 8), each against the real
//! control plane with real git servers on loopback, the agent as a process:
//!
//! - `file://` URLs and local paths need `--allow-local-sources`.
//!
//! Every refusal is in the GitSync's status and a Warning Event.

mod support;

use std::time::{Duration, Instant};

use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use support::{AgentProcess, AgentSetup, AgentTest, TestRepo, agent_binary};

const MANAGER: &str = "gitseal-test";
/// How long a GitSync may take to show the expected state.
const SETTLE: Duration = Duration::from_secs(90);

/// `gitseal-agent run` watching the test's app namespace with admin credentials, with exactly
/// the `extra` flags (unlike [`AgentTest::start_agent`], which allows local sources).
fn start_agent(t: &AgentTest, extra: &[&str]) -> AgentProcess {
    let setup = AgentSetup {
        kubeconfig: t.cp.kubeconfig_path(),
        agent_namespace: &t.agent_ns,
        watch_namespace: &t.app_ns,
        dir: t.work.path(),
    };
    AgentProcess::start(agent_binary, setup, extra)
}

fn gitsync_api(t: &AgentTest) -> Api<DynamicObject> {
    Api::namespaced_with(
        t.client.clone(),
        &t.app_ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("gitseal.dev", "v1alpha1", "GitSync")),
    )
}

/// Applies the GitSync `name` with `spec` (a pass every second, branch main).
async fn apply_gitsync(t: &AgentTest, name: &str, mut spec: Value) {
    spec["interval"] = json!("1s");
    spec["ref"] = json!({"branch": "main"});
    gitsync_api(t)
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": name}, "spec": spec,
            })),
        )
        .await
        .expect("gitsync");
}

fn ready_condition(gs: &GitSync) -> Option<(bool, String, String)> {
    let c = gs
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status == "True", c.reason.clone(), c.message.clone()))
}

fn stalled(gs: &GitSync) -> bool {
    gs.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    })
}

/// Waits until the GitSync `name` has had a pass on its current generation and `pred` holds
/// for it; panics with its last status otherwise.
async fn wait_gitsync(
    t: &AgentTest,
    name: &str,
    what: &str,
    pred: impl Fn(&GitSync) -> bool,
) -> GitSync {
    let api: Api<GitSync> = Api::namespaced(t.client.clone(), &t.app_ns);
    let start = Instant::now();
    loop {
        let gs = api.get_opt(name).await.expect("get gitsync");
        if let Some(gs) = &gs
            && gs.status.as_ref().and_then(|s| s.observed_generation) == gs.metadata.generation
            && ready_condition(gs).is_some()
            && pred(gs)
        {
            return gs.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "GitSync {name}: timed out waiting for {what}; last status: {:?}",
            gs.and_then(|g| g.status)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `name` is Ready.
async fn wait_ready(t: &AgentTest, name: &str) -> GitSync {
    wait_gitsync(t, name, "Ready", |gs| {
        ready_condition(gs).is_some_and(|(ok, _, _)| ok)
    })
    .await
}

/// Waits until the last pass of `name` failed with a message holding every needle; returns
/// the message.
async fn wait_refused(t: &AgentTest, name: &str, needles: &[&str]) -> String {
    let gs = wait_gitsync(t, name, &format!("an error naming {needles:?}"), |gs| {
        ready_condition(gs)
            .is_some_and(|(ok, _, msg)| !ok && needles.iter().all(|n| msg.contains(n)))
    })
    .await;
    let (_, _, msg) = ready_condition(&gs).expect("ready condition");
    assert_eq!(
        gs.status.as_ref().and_then(|s| s.last_error.as_deref()),
        Some(msg.as_str()),
        "lastError carries the message"
    );
    msg
}

/// Waits for a Warning Event on the GitSync `name` whose message holds every needle.
async fn wait_warning(t: &AgentTest, name: &str, needles: &[&str]) -> Event {
    let events: Api<Event> = Api::namespaced(t.client.clone(), &t.app_ns);
    let start = Instant::now();
    loop {
        let list = events.list(&ListParams::default()).await.expect("events");
        let hit = list.items.iter().find(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.involved_object.name.as_deref() == Some(name)
                && e.involved_object.kind.as_deref() == Some("GitSync")
                && e.message
                    .as_deref()
                    .is_some_and(|m| needles.iter().all(|n| m.contains(n)))
        });
        if let Some(e) = hit {
            return e.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "no Warning Event on GitSync {name} naming {needles:?}; events: {:?}",
            list.items
                .iter()
                .map(|e| (e.reason.clone(), e.message.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn configmap(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{value: {value}}}\n"
    )
}

async fn configmap_exists(t: &AgentTest, name: &str) -> bool {
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.app_ns);
    cms.get_opt(name).await.expect("get configmap").is_some()
}

/// `file://` URLs and local paths read the agent's own file system (other sources' clones,
/// mounted service account tokens): `run` refuses them unless started with
/// `--allow-local-sources`.
#[tokio::test]
async fn local_sources_need_the_agent_flag() {
    let t = AgentTest::new("local").await;
    let ns = t.app_ns.clone();
    let (repo, _) = TestRepo::with_files(&[("apps/cm.yaml", &configmap(&ns, "local-cm", "l"))]);
    let agent = start_agent(&t, &[]);
    apply_gitsync(
        &t,
        "fileurl",
        json!({"url": repo.file_url(), "path": "apps"}),
    )
    .await;
    apply_gitsync(
        &t,
        "path",
        json!({"url": repo.path().display().to_string(), "path": "apps"}),
    )
    .await;
    for name in ["fileurl", "path"] {
        let gs = wait_gitsync(&t, name, "a pass", |_| true).await;
        let (ok, _, msg) = ready_condition(&gs).expect("ready");
        assert!(!ok, "GitSync {name} with a local source was synced: {msg}");
        assert!(!configmap_exists(&t, "local-cm").await);
        let msg = wait_refused(&t, name, &["--allow-local-sources"]).await;
        let gs = wait_gitsync(&t, name, "Stalled", stalled).await;
        assert_eq!(
            ready_condition(&gs).expect("ready").1,
            "SourceRefused",
            "{msg}"
        );
        wait_warning(&t, name, &["--allow-local-sources"]).await;
    }
    drop(agent);
    let _agent = start_agent(&t, &["--allow-local-sources"]);
    wait_ready(&t, "fileurl").await;
    wait_ready(&t, "path").await;
    assert!(configmap_exists(&t, "local-cm").await);
}
