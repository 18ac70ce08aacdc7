//! `gitseal-agent sync` keeps its inventory between runs in sharded ConfigMaps of the agent's
//! namespace (real agent processes, real control plane, a git repository on disk): an
//! inventory larger than one ConfigMap may hold is split, a later run prunes from it and
//! drops the shards it no longer needs, the single ConfigMap of earlier versions is read and
//! then removed, and an unreadable shard stops the run before anything is applied or pruned.

mod support;

use std::collections::BTreeSet;

use gitseal_api::names::{INVENTORY_OF_LABEL, SYNC_NAME_LABEL, SYNC_NAMESPACE_LABEL};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use support::{AgentTest, TestRepo, agent_binary, configmaps_yaml};

const SOURCE: &str = "bulk";
/// Long names: 2,400 of them are more than one shard's 512 KiB of ids.
const OBJECTS: usize = 2_400;

/// Object names of 200-odd characters.
fn prefix() -> String {
    "c".repeat(200)
}

fn name(i: usize) -> String {
    format!("{}-{i}", prefix())
}

fn configmaps(ns: &str, count: usize) -> String {
    configmaps_yaml(ns, &prefix(), count, "1")
}

/// One `sync --once --prune` of `url` as source `bulk`.
fn sync(t: &AgentTest, url: &str) -> std::process::Output {
    let cache = t.work.path().join("cache").display().to_string();
    let args: Vec<String> = [
        "sync",
        "--url",
        url,
        "--path",
        "apps",
        "--once",
        "--prune",
        "--name",
        SOURCE,
        "--namespace",
        &t.agent_ns,
        "--cache-dir",
        &cache,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    agent_binary(&args)
        .env("KUBECONFIG", t.cp.kubeconfig_path())
        .output()
        .expect("run gitseal-agent sync")
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The inventory shards of source `bulk`: (name, shard number, names recorded, bytes).
async fn shards(t: &AgentTest) -> Vec<(String, u32, BTreeSet<String>, usize)> {
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.agent_ns);
    let list = cms
        .list(&ListParams::default().labels(&format!("{INVENTORY_OF_LABEL}={SOURCE}")))
        .await
        .expect("list shards");
    let mut out: Vec<_> = list
        .items
        .into_iter()
        .map(|cm| {
            let data = cm.data.unwrap_or_default();
            let bytes = data.iter().map(|(k, v)| k.len() + v.len()).sum();
            let groups: Vec<gitseal_api::InventoryGroup> =
                serde_json::from_str(&data["groups.json"]).expect("groups");
            let names = groups.into_iter().flat_map(|g| g.names).collect();
            let n = data["shard"].parse().expect("shard number");
            (cm.metadata.name.unwrap_or_default(), n, names, bytes)
        })
        .collect();
    out.sort_by_key(|s| s.1);
    out
}

async fn live(t: &AgentTest) -> BTreeSet<String> {
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.app_ns);
    cms.list_metadata(&ListParams::default().labels(&format!("{SYNC_NAME_LABEL}={SOURCE}")))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect()
}

#[tokio::test]
async fn sync_inventory_is_sharded_pruned_from_migrated_and_checked() {
    let t = AgentTest::new("syncinv").await;
    let (client, app_ns, agent_ns) = (t.client.clone(), t.app_ns.clone(), t.agent_ns.clone());
    let agent_cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    let app_cms: Api<ConfigMap> = Api::namespaced(client.clone(), &app_ns);

    // What an earlier version left: one ConfigMap recording `stale`, which it applied.
    let stale: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stale", "labels": {
            SYNC_NAMESPACE_LABEL: agent_ns, SYNC_NAME_LABEL: SOURCE}},
        "data": {"a": "b"},
    }))
    .expect("stale");
    app_cms
        .create(&PostParams::default(), &stale)
        .await
        .expect("create stale");
    let legacy = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("gitseal-inventory-{SOURCE}")},
        "data": {"inventory.json": serde_json::json!([
            {"id": format!("{app_ns}_stale__ConfigMap"), "v": "v1"}]).to_string()},
    });
    agent_cms
        .patch(
            &format!("gitseal-inventory-{SOURCE}"),
            &PatchParams::apply("gitseal-test"),
            &Patch::Apply(&legacy),
        )
        .await
        .expect("legacy inventory");

    let repo = TestRepo::named("bulk");
    repo.write("apps/cms.yaml", &configmaps(&app_ns, OBJECTS));
    repo.commit("many long names");
    let url = repo.file_url();

    // 1. Everything applied; the inventory split over shards, each far below 1 MiB; the
    //    legacy record read (its object pruned) and then removed.
    assert_ok(&sync(&t, &url));
    let all: BTreeSet<String> = (0..OBJECTS).map(name).collect();
    assert_eq!(live(&t).await, all);
    assert!(app_cms.get_opt("stale").await.expect("get").is_none());
    assert!(
        agent_cms
            .get_opt(&format!("gitseal-inventory-{SOURCE}"))
            .await
            .expect("get")
            .is_none(),
        "the legacy inventory ConfigMap is still there"
    );
    let s = shards(&t).await;
    let sizes: Vec<usize> = s.iter().map(|s| s.3).collect();
    eprintln!("sync inventory: {OBJECTS} objects in shards of {sizes:?} bytes");
    assert!(
        s.len() >= 2,
        "one shard for {OBJECTS} long names: {sizes:?}"
    );
    assert!(sizes.iter().all(|b| *b < 900 * 1024), "{sizes:?}");
    let recorded: BTreeSet<String> = s.iter().flat_map(|s| s.2.iter().cloned()).collect();
    assert!(all.iter().all(|n| recorded.contains(n)));
    assert_eq!(s[0].0, format!("gitseal-inventory-{SOURCE}-0"));

    // 2. Most objects leave git: pruned, and the inventory shrinks to one shard.
    repo.write("apps/cms.yaml", &configmaps(&app_ns, 100));
    repo.commit("fewer");
    assert_ok(&sync(&t, &url));
    let kept: BTreeSet<String> = (0..100).map(name).collect();
    assert_eq!(live(&t).await, kept);
    let s = shards(&t).await;
    assert_eq!(
        s.len(),
        1,
        "{:?}",
        s.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    assert_eq!(s[0].2, kept);

    // 3. An unreadable shard: the run fails naming it, and applies and prunes nothing.
    let mut bad = agent_cms
        .get(&format!("gitseal-inventory-{SOURCE}-0"))
        .await
        .expect("shard 0");
    bad.data
        .get_or_insert_with(Default::default)
        .insert("groups.json".into(), "{not an inventory".into());
    agent_cms
        .replace(
            &bad.metadata.name.clone().unwrap_or_default(),
            &PostParams::default(),
            &bad,
        )
        .await
        .expect("spoil shard");
    repo.write("apps/cms.yaml", &configmaps(&app_ns, 10));
    repo.commit("even fewer");
    let out = sync(&t, &url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a spoiled inventory was accepted");
    assert!(
        stderr.contains(&format!("gitseal-inventory-{SOURCE}-0")) && stderr.contains("groups.json"),
        "{stderr}"
    );
    assert_eq!(
        live(&t).await,
        kept,
        "a run with an unreadable inventory changed objects"
    );
}
