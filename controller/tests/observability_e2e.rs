//! What an operator sees of a running agent, against the real control plane with the agent
//! as a process running as its own ServiceAccount (the RBAC of `deploy/`):
//!
//! - Events whose message is current: three passes over three commits leave three Events,
//!   the newest naming the third revision (kube's recorder used to fold them into the first);
//! - `/metrics`: `gitseal_build_info`, the per-GitSync series (removed once the GitSync is
//!   deleted), the SealedSecret controller's opened and failed-by-reason counts
//!   (`gitseal_unseals_total`), and every
//!   metric the Grafana dashboard (`deploy/grafana/gitseal.json`) queries;
//! - logs at `--log-level info` hold no debug lines and no colour codes, and each `pass done`
//!   line carries the pass's own API reads and writes (0 writes once nothing changes);
//! - the API server's audit log: every request of the agent's ServiceAccount carries the
//!   User-Agent `gitseal-agent/VERSION`.

mod support;

use support::{AgentTest, add_sealing_key, agent_binary, git, http_get, sealed_yaml, wait_for};

use std::collections::BTreeSet;
use std::time::Duration;

use gitseal::SecretKey;
use gitseal_api::GitSync;
use gitseal_testenv::rbac::AgentRbac;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/gitseal.json"
);

/// The value of the sample `name{…}` whose labels include every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labelset, value) = if let Some(r) = rest.strip_prefix('{') {
            let (l, v) = r.split_once('}')?;
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            return None;
        };
        labels
            .iter()
            .all(|(k, v)| labelset.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Metric names (`gitseal_…`) in the expressions of the dashboard's panels and variables.
fn dashboard_metrics() -> BTreeSet<String> {
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("dashboard"))
            .expect("JSON");
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    for v in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = v["definition"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    let mut names = BTreeSet::new();
    for e in exprs {
        let bytes = e.as_bytes();
        let mut i = 0;
        while let Some(at) = e[i..].find("gitseal_") {
            let start = i + at;
            let end = e[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(e.len(), |n| start + n);
            // Not part of a longer identifier.
            if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_')
            {
                names.insert(e[start..end].to_owned());
            }
            i = end;
        }
    }
    names
}

#[tokio::test]
async fn events_metrics_logs_and_user_agent() {
    let t = AgentTest::new("obs").await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;
    let kubeconfig = t.agent_kubeconfig(AgentRbac::Deployed).await;

    let repo = t.init_repo();
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    std::fs::write(
        repo.join("apps/db.yaml"),
        sealed_yaml(&key, &app_ns, "db", "obs-value"),
    )
    .expect("write");
    let commit = |n: u32| {
        std::fs::write(
            repo.join("apps/cm.yaml"),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {app_ns}}}\ndata: {{pass: \"{n}\"}}\n"
            ),
        )
        .expect("write");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", &format!("pass {n}")]);
        git(&repo, &["rev-parse", "HEAD"])
    };

    let agent = t.start_agent_with(
        agent_binary,
        &kubeconfig,
        &app_ns,
        &["--allow-local-sources", "--log-level", "info"],
    );
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &app_ns);
    let mut heads = Vec::new();
    for n in 1..=3 {
        let head = commit(n);
        if n == 1 {
            t.apply_gitsync(&repo).await;
        }
        wait_for(&format!("pass {n} applied"), || async {
            let gs = syncs.get("apps").await.ok()?;
            let rev = gs.status?.last_applied_revision?;
            rev.ends_with(&head).then_some(())
        })
        .await;
        heads.push(head);
    }

    // `kubectl get events`: one Event per pass, each naming its revision, the newest the
    // third.
    let events: Api<Event> = Api::namespaced(client.clone(), &app_ns);
    let mut ours: Vec<Event> = wait_for("three ReconciliationSucceeded Events", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let ours: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some("apps")
                    && e.reason.as_deref() == Some("ReconciliationSucceeded")
            })
            .collect();
        (ours.len() >= 3).then_some(ours)
    })
    .await;
    let when = |e: &Event| {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
            .expect("a time")
    };
    ours.sort_by_key(when);
    let messages: Vec<String> = ours
        .iter()
        .map(|e| e.message.clone().unwrap_or_default())
        .collect();
    for head in &heads {
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains(head.as_str()))
                .count(),
            1,
            "one Event names {head}: {messages:?}"
        );
    }
    assert!(
        messages.last().is_some_and(|m| m.contains(&heads[2])),
        "the newest Event names the third revision: {messages:?}"
    );

    // SealedSecrets applied directly: one opens, one is sealed to a key the agent lacks.
    let ss_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &app_ns,
        &kube::discovery::ApiResource::erase::<gitseal_api::SealedSecret>(&()),
    );
    for (name, k) in [("direct", &key), ("stranger", &SecretKey::generate())] {
        let doc: serde_json::Value =
            serde_yaml::from_str(&sealed_yaml(k, &app_ns, name, "v")).expect("yaml");
        ss_api
            .patch(
                name,
                &PatchParams::apply("gitseal-test"),
                &Patch::Apply(doc),
            )
            .await
            .expect("sealedsecret");
    }

    // /metrics.
    let metrics = wait_for("SealedSecret counts in /metrics", || async {
        let m = http_get(agent.metrics_port, "/metrics");
        (sample(&m, "gitseal_unseals_total", &[("result", "ok")]).is_some_and(|v| v >= 1.0)
            && sample(&m, "gitseal_unseals_total", &[("result", "NoMatchingKey")])
                .is_some_and(|v| v >= 1.0))
        .then_some(m)
    })
    .await;
    let this = [("namespace", app_ns.as_str()), ("name", "apps")];
    assert_eq!(
        sample(&metrics, "gitseal_build_info", &[("version", VERSION)]),
        Some(1.0),
        "{metrics}"
    );
    let ok = [this[0], this[1], ("result", "ok")];
    assert!(sample(&metrics, "gitseal_gitsync_passes_total", &ok).is_some_and(|v| v >= 3.0));
    assert_eq!(sample(&metrics, "gitseal_gitsync_ready", &this), Some(1.0));
    assert_eq!(
        sample(&metrics, "gitseal_gitsync_managed_objects", &this),
        Some(2.0)
    );
    assert!(
        sample(
            &metrics,
            "gitseal_gitsync_last_applied_timestamp_seconds",
            &this
        )
        .is_some_and(|v| v > 1.7e9)
    );
    assert!(
        sample(
            &metrics,
            "gitseal_gitsync_pass_duration_seconds_count",
            &this
        )
        .is_some_and(|v| v >= 3.0)
    );
    // Every metric the dashboard queries is there.
    let names = dashboard_metrics();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(name.as_str()) && l[name.len()..].starts_with(['{', ' '])),
            "the dashboard queries {name}, which /metrics does not have:\n{metrics}"
        );
    }
    // The panels added with leader election, conflicts and dependsOn, push webhooks and
    // re-sealing are among them (the last two counters exist, at zero, from the start).
    for name in [
        "gitseal_webhook_requests_total",
        "gitseal_reseal_answers_total",
        "gitseal_leader",
        "gitseal_api_lease_requests_total",
        "gitseal_leader_election_errors_total",
        "gitseal_gitsync_conflicts",
        "gitseal_sealing_key_secrets_ignored",
    ] {
        assert!(names.contains(name), "the dashboard does not plot {name}");
    }

    // Logs: info and above, plain text, each pass with its own request counts; a no-op pass
    // (interval 1 s) writes nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logs = agent.logs();
    assert!(!logs.contains('\u{1b}'), "colour codes in a log file");
    assert!(!logs.contains(" DEBUG "), "debug lines at --log-level info");
    let passes: Vec<&str> = logs.lines().filter(|l| l.contains("pass done")).collect();
    assert!(passes.len() >= 4, "{logs}");
    for l in &passes {
        assert!(l.contains("api_reads=") && l.contains("api_writes="), "{l}");
    }
    assert!(
        passes.iter().any(|l| !l.contains("api_writes=0")),
        "the first pass wrote"
    );
    assert!(
        passes.last().is_some_and(|l| l.contains("api_writes=0")),
        "an unchanged pass writes nothing: {passes:?}"
    );

    // User-Agent on every request the agent sent (watches included).
    let user = format!("system:serviceaccount:{agent_ns}:gitseal-agent");
    let audited: Vec<serde_json::Value> =
        t.cp.audit_events()
            .into_iter()
            .filter(|e| e["user"]["username"] == user.as_str())
            .collect();
    assert!(audited.len() >= 20, "{} requests audited", audited.len());
    let agents_ua = format!("gitseal-agent/{VERSION}");
    let others: Vec<String> = audited
        .iter()
        .filter(|e| e["userAgent"] != agents_ua.as_str())
        .map(|e| format!("{} {} {}", e["verb"], e["requestURI"], e["userAgent"]))
        .collect();
    assert!(
        others.is_empty(),
        "requests without {agents_ua}: {others:?}"
    );
    assert!(audited.iter().any(|e| e["verb"] == "watch"));

    // A deleted GitSync's series go.
    syncs
        .delete("apps", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the deleted GitSync's series gone", || async {
        let m = http_get(agent.metrics_port, "/metrics");
        (!m.contains(&format!("namespace=\"{app_ns}\",name=\"apps\""))).then_some(())
    })
    .await;
}
