//! One GitSync of 20,000 ConfigMaps and 1,000 SealedSecrets (real agent process, real control
//! plane) converges, and what it writes about itself stays small: the GitSync object under
//! 100 KB (the inventory lives in `GitSyncInventory` shards, status keeps a count and a
//! digest), the key usage ConfigMap under 32 KB (it lists the first 100 objects per key and
//! counts the rest).
//!
//! Slow (a minute or more): its own test binary, run beside the others by scripts/test.sh.

mod support;

use std::time::{Duration, Instant};

use gitseal_api::{GitSync, GitSyncInventory};
use gitseal_testenv::e2e::commit_file;
use kube::api::{Api, ListParams};
use support::{
    AgentTest, add_sealing_key, agent_binary, apply_gitsync, configmaps_yaml, password_secret,
    ready_condition, wait_for,
};

const OBJECTS: usize = 20_000;
const SEALED: usize = 1_000;

#[tokio::test]
async fn twenty_thousand_objects_converge_and_the_gitsync_stays_small() {
    let t = AgentTest::new("scale").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    // Ten files of 2,000 objects each (one manifest may hold at most 10,000 documents).
    for f in 0..10 {
        std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
        std::fs::write(
            repo.join(format!("apps/cms-{f}.yaml")),
            configmaps_yaml(&ns, &format!("cm{f}"), OBJECTS / 10, "1"),
        )
        .expect("write");
    }
    let key = gitseal::SecretKey::generate();
    add_sealing_key(&client, &t.agent_ns, &key).await;
    let sealed: Vec<serde_yaml::Value> = (0..SEALED)
        .map(|i| {
            let s = password_secret(&ns, &format!("db-{i:04}"), &format!("pw-{i}"));
            gitseal::sealing::seal_secret(
                &s,
                &[key.public().clone()],
                &gitseal::sealing::SealTarget::default(),
            )
            .expect("seal")
            .to_value()
        })
        .collect();
    std::fs::write(
        repo.join("apps/sealed.yaml"),
        gitseal::manifest::render(&sealed, gitseal::manifest::OutputFormat::Yaml),
    )
    .expect("write");
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
    assert_eq!(summary.objects, OBJECTS + SEALED);
    assert_eq!(recorded, OBJECTS + SEALED);
    assert!(bytes < 100_000, "GitSync object is {bytes} bytes");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    let live = cms
        .list_metadata(&ListParams::default().labels("gitseal.dev/sync-name=apps"))
        .await
        .expect("list")
        .items
        .len();
    assert_eq!(live, OBJECTS);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let opened = secrets
        .list_metadata(&ListParams::default().labels("gitseal.dev/sync-name=apps"))
        .await
        .expect("list")
        .items
        .len();
    assert_eq!(opened, SEALED);
    // Key usage: every SealedSecret counted, the first 100 listed, the ConfigMap small.
    let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &t.agent_ns);
    let id = key.id().to_string();
    let (entry, bytes) = wait_for("the key usage of the pass", || async {
        let data = cms.get_opt("gitseal-key-usage").await.ok()??.data?;
        let bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        let e: gitseal_api::UsageEntry = serde_json::from_str(data.get(&id)?).ok()?;
        (e.total() == SEALED).then_some((e, bytes))
    })
    .await;
    eprintln!("scale: key usage ConfigMap data {bytes} bytes for {SEALED} SealedSecrets");
    assert_eq!(entry.objects.len(), gitseal_api::keys::USAGE_LISTED_PER_KEY);
    assert_eq!(entry.objects[0].object, format!("{ns}/db-0000"));
    assert!(
        bytes < 32 * 1024,
        "key usage ConfigMap data is {bytes} bytes"
    );
}
