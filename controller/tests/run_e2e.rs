//! `gitseal-agent run` as a real process against the real control plane: a GitSync becomes
//! Ready with its objects applied and its SealedSecret opened, and a canary secret value
//! appears nowhere it must not (logs, Events, status, files the agent wrote). Later passes
//! over an unchanged repository write nothing.

mod support;

use support::{
    AgentTest, add_sealing_key, agent_binary, events_v1_json, git, http_get, ready_condition,
    sealed_yaml, wait_for,
};

use std::path::Path;
use std::time::Duration;

use gitseal::SecretKey;
use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::api::{Api, ListParams};

const CANARY: &str = "CANARY-run-4c2e9";

fn contains(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(entry.display().to_string());
        }
    }
    hits
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn gitsync_becomes_ready_and_never_leaks() {
    let t = AgentTest::new("run").await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let work = &t.work;

    // The cluster's sealing key, as the agent finds it.
    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;

    // The repository: a ConfigMap and a SealedSecret for the app namespace.
    let repo = t.init_repo();
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    std::fs::write(
        repo.join("apps/db.yaml"),
        sealed_yaml(&key, &app_ns, "db", CANARY),
    )
    .expect("write");
    std::fs::write(
        repo.join("apps/cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {app_ns}}}\ndata: {{a: b}}\n"),
    )
    .expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);

    // The agent, as a process, verbose logs captured.
    let mut agent = t.start_agent(agent_binary, &[]);
    let cache = work.path().join("cache");
    let (health_port, metrics_port) = (agent.health_port, agent.metrics_port);

    t.apply_gitsync(&repo).await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &app_ns);

    let gs = wait_for("GitSync Ready", || async {
        let gs = syncs.get("apps").await.ok()?;
        (ready_condition(&gs).map(|c| c.0) == Some(true)).then_some(gs)
    })
    .await;
    let status = gs.status.clone().expect("status");
    assert!(
        status
            .last_applied_revision
            .as_deref()
            .is_some_and(|r| r.starts_with("main@sha1:"))
    );
    assert_eq!(status.observed_generation, gs.metadata.generation);
    assert_eq!(status.inventory.as_ref().map(|i| i.objects), Some(2));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &app_ns);
    let secret = secrets.get("db").await.expect("secret");
    assert_eq!(secret.data.expect("data")["password"].0, CANARY.as_bytes());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &app_ns);
    let cm = cms.get("settings").await.expect("configmap");

    // Several passes later (interval 1s) nothing was written again.
    let gs_rv = gs.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let gs2 = syncs.get("apps").await.expect("gitsync");
    assert_eq!(
        gs2.metadata.resource_version, gs_rv,
        "status rewritten by a no-op pass"
    );
    assert_eq!(
        cms.get("settings")
            .await
            .expect("cm")
            .metadata
            .resource_version,
        cm.metadata.resource_version
    );

    // A decryption failure shows in status and in an Event, without the value.
    let other = SecretKey::generate();
    std::fs::write(
        repo.join("apps/db.yaml"),
        sealed_yaml(&other, &app_ns, "db", CANARY),
    )
    .expect("write");
    git(&repo, &["commit", "-q", "-am", "wrong key"]);
    let gs = wait_for("GitSync not Ready", || async {
        let gs = syncs.get("apps").await.ok()?;
        (ready_condition(&gs).map(|c| c.0) == Some(false)).then_some(gs)
    })
    .await;
    let status = gs.status.clone().expect("status");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no key in the ring")),
        "{status:?}"
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );
    assert!(
        secrets.get_opt("db").await.expect("get").is_some(),
        "nothing deleted on failure"
    );

    // The canary is nowhere: status, Events, logs, the agent's files.
    let events: Api<Event> = Api::namespaced(client.clone(), &app_ns);
    let evs = wait_for("a warning Event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning"))
            .then_some(list)
    })
    .await;
    let all_events = serde_json::to_string(&evs.items).expect("json");
    let new_events = events_v1_json(&client, &app_ns).await;
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    for (what, text) in [
        ("status", serde_json::to_string(&gs.status).expect("json")),
        ("events", all_events),
        ("events.k8s.io", new_events),
        ("logs", agent.logs()),
    ] {
        assert!(
            !text.contains(CANARY) && !text.contains(&b64),
            "canary found in {what}"
        );
    }
    assert!(
        contains(&cache, CANARY.as_bytes()).is_empty(),
        "canary in a file the agent wrote"
    );
    assert!(
        contains(&cache, b64.as_bytes()).is_empty(),
        "canary in a file the agent wrote"
    );
    let logs = agent.logs();
    assert!(
        logs.contains("pass done"),
        "the agent logged its passes:\n{logs}"
    );

    // Health and metrics endpoints.
    assert!(http_get(health_port, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(health_port, "/readyz").starts_with("HTTP/1.1 200"));
    let metrics = http_get(metrics_port, "/metrics");
    for name in [
        "gitseal_passes_total{result=\"ok\"}",
        "gitseal_api_writes_total",
        "gitseal_objects_applied_total",
        "result=\"no_matching_key\"",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(!metrics.contains(CANARY));
    assert!(agent.running(), "the agent is still up");
}
