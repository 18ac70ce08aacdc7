//! One GitSync of 20,000 objects (real agent process, real control plane) converges, and its
//! GitSync object stays small (under 100 KB): the inventory lives in `GitSyncInventory`
//! shards, status keeps a count and a digest.
//!
//! Slow (a minute or more): its own test binary, run beside the others by scripts/test.sh.

mod support;

use std::time::{Duration, Instant};

use gitseal_api::{GitSync, GitSyncInventory};
use gitseal_testenv::e2e::commit_file;
use kube::api::{Api, ListParams};
use support::{AgentTest, agent_binary, apply_gitsync, configmaps_yaml, git, ready_condition};

const OBJECTS: usize = 20_000;

#[tokio::test]
async fn twenty_thousand_objects_converge_and_the_gitsync_stays_small() {
    let t = AgentTest::new("scale").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.work.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    // Ten files of 2,000 objects each (one manifest may hold at most 10,000 documents).
    for f in 0..10 {
        std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
        std::fs::write(
            repo.join(format!("apps/cms-{f}.yaml")),
            configmaps_yaml(&ns, &format!("cm{f}"), OBJECTS / 10, "1"),
        )
        .expect("write");
    }
    commit_file(&repo, "apps/README.md", "20,000 ConfigMaps\n", "many");
    let _agent = t.start_agent(agent_binary, &[]);
    let start = Instant::now();
    apply_gitsync(
        &client,
        &ns,
        "apps",
        serde_json::json!({"url": format!("file://{}", repo.display()), "path": "apps",
                           "interval": "10m", "timeout": "10m", "prune": true}),
    )
    .await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    let gs = loop {
        if let Ok(gs) = syncs.get("apps").await {
            match ready_condition(&gs) {
                Some((true, _, _)) => break gs,
                Some((false, reason, msg))
                    if reason != "Progressing"
                        && gs.status.as_ref().is_some_and(|s| s.last_error.is_some()) =>
                {
                    panic!("failed: {reason}: {msg}")
                }
                _ => {}
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "not converged in 15 min"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let converged = start.elapsed();
    let bytes = serde_json::to_vec(&gs).expect("json").len();
    let summary = gs
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .expect("summary");
    let shards: Api<GitSyncInventory> = Api::namespaced(client.clone(), &ns);
    let shards = shards
        .list(&ListParams::default().labels("gitseal.dev/inventory-of=apps"))
        .await
        .expect("shards")
        .items;
    let recorded: usize = shards
        .iter()
        .flat_map(|s| s.spec.groups.iter())
        .map(|g| g.names.len())
        .sum();
    let shard_bytes: Vec<usize> = shards
        .iter()
        .map(|s| serde_json::to_vec(s).expect("json").len())
        .collect();
    eprintln!(
        "scale: {OBJECTS} objects converged in {:.1} s; GitSync object {bytes} bytes; {} shard(s) of {shard_bytes:?} bytes",
        converged.as_secs_f64(),
        shards.len()
    );
    assert_eq!(summary.objects, OBJECTS);
    assert_eq!(recorded, OBJECTS);
    assert!(bytes < 100_000, "GitSync object is {bytes} bytes");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    let live = cms
        .list_metadata(&ListParams::default().labels("gitseal.dev/sync-name=apps"))
        .await
        .expect("list")
        .items
        .len();
    assert_eq!(live, OBJECTS);
}
