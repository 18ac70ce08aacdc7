//! The API server frozen (SIGSTOP) for 60 s in the middle of a pass, on a control plane of
//! this test's own: the pass fails within its timeout, `/readyz` says not ready for the
//! whole freeze, nothing is deleted, and after SIGCONT the agent converges within 10 s.
//!
//! Slow (over a minute): its own test binary, run beside the others by scripts/test.sh.

mod support;

use std::time::{Duration, Instant};

use gitseal::SecretKey;
use gitseal_testenv::e2e::commit_file;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use support::{
    AgentTest, add_sealing_key, agent_binary, apply_gitsync, configmaps_yaml, git, signal,
    wait_ready,
};

const OBJECTS: usize = 300;
const TIMEOUT: Duration = Duration::from_secs(3);
const FREEZE: Duration = Duration::from_secs(60);

async fn with_value(cms: &Api<ConfigMap>, value: &str) -> usize {
    cms.list(&ListParams::default().labels("gitseal.dev/sync-name=apps"))
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|c| {
                    c.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some(value)
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn frozen_api_server_fails_the_pass_in_time_and_recovers() {
    let cp = Box::leak(Box::new(
        gitseal_testenv::private()
            .await
            .expect("a control plane of our own"),
    ));
    let t = AgentTest::on(cp, "freeze").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    add_sealing_key(&client, &t.agent_ns, &SecretKey::generate()).await;
    let repo = t.init_repo();
    commit_file(
        &repo,
        "apps/cms.yaml",
        &configmaps_yaml(&ns, "cm", OBJECTS, "1"),
        "v1",
    );
    let agent = t.start_agent(agent_binary, &["--concurrency", "1"]);
    apply_gitsync(
        &client,
        &ns,
        "apps",
        serde_json::json!({"url": format!("file://{}", repo.display()), "path": "apps",
                           "interval": "1s", "timeout": format!("{}s", TIMEOUT.as_secs()),
                           "prune": true}),
    )
    .await;
    wait_ready(&client, &ns, "apps", None).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert_eq!(with_value(&cms, "1").await, OBJECTS);
    let timeouts_before = agent
        .metric("gitseal_passes_total{result=\"timeout\"}")
        .unwrap_or(0.0);
    let lease_errors_before = agent
        .metric("gitseal_leader_election_errors_total")
        .expect("the leader election errors metric");

    // A pass that changes every object; freeze the API server once it is under way.
    commit_file(
        &repo,
        "apps/cms.yaml",
        &configmaps_yaml(&ns, "cm", OBJECTS, "2"),
        "v2",
    );
    let v2 = git(&repo, &["rev-parse", "HEAD"]);
    let start = Instant::now();
    while with_value(&cms, "2").await < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pass never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let apiserver = cp
        .component_pid("kube-apiserver")
        .expect("kube-apiserver pid");
    signal(apiserver, "STOP");
    let frozen = Instant::now();

    let mut not_ready_after = None;
    let mut failed_after = None;
    let mut ready_during_freeze = Vec::new();
    while frozen.elapsed() < FREEZE {
        let ready = agent.readyz();
        match (ready, not_ready_after) {
            (Some(503), None) => not_ready_after = Some(frozen.elapsed()),
            (Some(200), Some(_)) => ready_during_freeze.push(frozen.elapsed()),
            _ => {}
        }
        if failed_after.is_none()
            && agent
                .metric("gitseal_passes_total{result=\"timeout\"}")
                .unwrap_or(0.0)
                > timeouts_before
        {
            failed_after = Some(frozen.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Counted before the thaw: the rounds that could not renew the Lease.
    let lease_errors = agent
        .metric("gitseal_leader_election_errors_total")
        .expect("the leader election errors metric");
    signal(apiserver, "CONT");
    let thawed = Instant::now();
    wait_ready(&client, &ns, "apps", Some(&v2)).await;
    let converged = thawed.elapsed();
    let updated = with_value(&cms, "2").await;
    let total = cms
        .list_metadata(&ListParams::default().labels("gitseal.dev/sync-name=apps"))
        .await
        .expect("list")
        .items
        .len();
    let logs = strip_ansi(&agent.logs());
    eprintln!(
        "freeze: /readyz 503 after {not_ready_after:?}, pass failed after {failed_after:?} (timeout {TIMEOUT:?}), converged {:.1} s after SIGCONT",
        converged.as_secs_f64()
    );
    let not_ready_after = not_ready_after.expect("/readyz never said not ready during the freeze");
    assert!(
        not_ready_after < Duration::from_secs(5),
        "{not_ready_after:?}"
    );
    assert!(
        ready_during_freeze.is_empty(),
        "/readyz 200 during the freeze at {ready_during_freeze:?}"
    );
    let failed_after = failed_after.expect("the pass did not fail during the freeze");
    // The stage under way when the server froze had started before it: it fails at most
    // one timeout after the freeze (plus the time to notice here).
    assert!(
        failed_after <= TIMEOUT + Duration::from_secs(2),
        "{failed_after:?}"
    );
    assert!(
        logs.contains("transient=true"),
        "the failure was not treated as transient"
    );
    assert_eq!(total, OBJECTS, "objects were deleted");
    // Each round on the Lease timed out during the freeze (one every second or two).
    assert!(
        lease_errors - lease_errors_before >= 10.0,
        "leader election errors {lease_errors_before} -> {lease_errors}"
    );
    assert_eq!(updated, OBJECTS);
    assert!(
        converged < Duration::from_secs(10),
        "converged {converged:?} after SIGCONT"
    );
}

/// The log without its colour escapes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
