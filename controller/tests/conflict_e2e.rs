//! Two GitSyncs rendering one object (real agent process, real control plane): the second
//! does not apply it, says so in its Ready condition and an Event naming both, applies the
//! rest, and nothing is written again and again. And what starts a pass: not the agent's own
//! status writes, but the `reconcile.gitseal.dev/requestedAt` annotation.

mod support;

use std::time::Duration;

use gitseal_api::GitSync;
use gitseal_testenv::e2e::commit_file;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use support::{
    AgentTest, agent_binary, apply_gitsync, file_gitsync_spec, git, ready_condition, wait_for,
    wait_ready,
};

fn cm(ns: &str, name: &str, value: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{v: \"{value}\"}}\n"
    )
}

#[tokio::test]
async fn a_shared_object_is_reported_not_fought_over() {
    let t = AgentTest::new("conflict").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    std::fs::create_dir_all(repo.join("a")).expect("mkdir");
    std::fs::write(
        repo.join("a/cms.yaml"),
        cm(&ns, "a-only", "a") + &cm(&ns, "shared", "from-a"),
    )
    .expect("write");
    commit_file(
        &repo,
        "b/cms.yaml",
        &(cm(&ns, "b-only", "b") + &cm(&ns, "shared", "from-b")),
        "both",
    );
    let agent = t.start_agent(agent_binary, &[]);
    let spec = |path: &str| file_gitsync_spec(&repo, path, true);
    apply_gitsync(&client, &ns, "a", spec("a")).await;
    wait_ready(&client, &ns, "a", None).await;
    apply_gitsync(&client, &ns, "b", spec("b")).await;

    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    let (_, reason, message) = wait_for("b reports the conflict", || async {
        let gs = syncs.get("b").await.ok()?;
        ready_condition(&gs).filter(|(ok, reason, _)| !ok && reason == "OwnershipConflict")
    })
    .await;
    assert_eq!(reason, "OwnershipConflict");
    assert!(
        message.contains(&format!(
            "ConfigMap {ns}/shared is managed by GitSync {ns}/a"
        )) && message.contains(&format!("GitSync {ns}/b")),
        "{message}"
    );
    // The metric counts the object b did not apply (a's series: 0).
    wait_for("gitseal_gitsync_conflicts of b", || async {
        (agent.metric("gitseal_gitsync_conflicts") == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(
        agent.metric(&format!(
            "gitseal_gitsync_conflicts{{namespace=\"{ns}\",name=\"b\"}}"
        )),
        Some(1.0)
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        cms.get_opt("b-only").await.expect("get").is_some(),
        "b's other objects apply"
    );
    let shared = cms.get("shared").await.expect("shared");
    assert_eq!(shared.data.as_ref().expect("data")["v"], "from-a");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let note = wait_for("the conflict Event", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("OwnershipConflict"))
            .and_then(|e| e.message)
    })
    .await;
    assert!(
        note.contains(&format!("{ns}/a")) && note.contains(&format!("{ns}/b")),
        "{note}"
    );

    // No write loop: several passes of both (interval 1 s) write nothing at all.
    let writes = || agent.metric("gitseal_api_writes_total").expect("metric");
    let passes = || agent.metric("gitseal_passes_total").expect("metric");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (w0, p0) = (writes(), passes());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (w1, p1) = (writes(), passes());
    eprintln!("conflict: {} passes, {} writes in 6 s", p1 - p0, w1 - w0);
    assert!(p1 - p0 >= 4.0, "passes did run ({p0} → {p1})");
    assert_eq!(w1, w0, "writes while nothing changed");
    assert_eq!(
        cms.get("shared")
            .await
            .expect("shared")
            .metadata
            .resource_version,
        shared.metadata.resource_version
    );

    // Once a is gone (pruning shared), b takes the object over.
    syncs
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete a");
    wait_for("b Ready", || async {
        let gs = syncs.get("b").await.ok()?;
        ready_condition(&gs).filter(|(ok, _, _)| *ok)
    })
    .await;
    let shared = cms.get("shared").await.expect("shared");
    assert_eq!(shared.data.as_ref().expect("data")["v"], "from-b");
    wait_for("no conflicts counted any more", || async {
        (agent.metric("gitseal_gitsync_conflicts") == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn status_writes_start_no_pass_and_requested_at_does() {
    let t = AgentTest::new("trigger").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    commit_file(&repo, "apps/cm.yaml", &cm(&ns, "one", "1"), "first");
    let agent = t.start_agent(agent_binary, &[]);
    apply_gitsync(
        &client,
        &ns,
        "apps",
        serde_json::json!({"url": format!("file://{}", repo.display()), "path": "apps",
                           "interval": "1h", "prune": true}),
    )
    .await;
    wait_ready(&client, &ns, "apps", None).await;
    let passes = || agent.metric("gitseal_passes_total").unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = passes();
    assert_eq!(
        before, 1.0,
        "the status write of the first pass started another one"
    );

    // A new commit is not seen before the interval…
    commit_file(&repo, "apps/cm2.yaml", &cm(&ns, "two", "2"), "second");
    let second = git(&repo, &["rev-parse", "HEAD"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(passes(), before);
    // …but asking for a pass runs one now, and status says which request it answered.
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    syncs
        .patch(
            "apps",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "reconcile.gitseal.dev/requestedAt": "2026-11-27T10:00:00Z"}}})),
        )
        .await
        .expect("annotate");
    let gs = wait_ready(&client, &ns, "apps", Some(&second)).await;
    assert_eq!(
        gs.status
            .and_then(|s| s.last_handled_reconcile_at)
            .as_deref(),
        Some("2026-11-27T10:00:00Z")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(passes(), before + 1.0, "exactly one more pass");
}
