//! Deleting a GitSync (real agent processes, real control plane): with `prune: true` its
//! objects go (never those marked `gitseal.dev/prune: disabled`), with `prune: false` they
//! stay and an Event says so; either way its inventory goes and nothing of it is remembered —
//! also when it was deleted while no agent ran.

mod support;

use gitseal_api::GitSync;
use gitseal_api::names::{SYNC_NAME_LABEL, SYNC_NAMESPACE_LABEL};
use gitseal_testenv::e2e::commit_file;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use support::{
    AgentTest, agent_binary, apply_gitsync, configmaps_yaml, file_gitsync_spec, managed_configmaps,
    wait_for, wait_ready,
};

async fn gone(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<GitSync> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("GitSync {name} gone"), || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

async fn shards(client: &kube::Client, ns: &str, name: &str) -> usize {
    let api: Api<gitseal_api::GitSyncInventory> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("gitseal.dev/inventory-of={name}")))
        .await
        .expect("list inventories")
        .items
        .len()
}

async fn event_note(client: &kube::Client, ns: &str, reason: &str, name: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("Event {reason} about {name}"), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.involved_object.name.as_deref() == Some(name)
            })
            .and_then(|e| e.message)
    })
    .await
}

async fn delete(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<GitSync> = Api::namespaced(client.clone(), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
}

#[tokio::test]
async fn deleting_a_gitsync_prunes_or_orphans_and_forgets_it() {
    let t = AgentTest::new("delete").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    std::fs::create_dir_all(repo.join("pruned")).expect("mkdir");
    std::fs::write(
        repo.join("pruned/keep.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: p-keep, namespace: {ns}, annotations: {{gitseal.dev/prune: disabled}}}}\ndata: {{a: b}}\n"),
    )
    .expect("write");
    commit_file(
        &repo,
        "pruned/cms.yaml",
        &configmaps_yaml(&ns, "p", 3, "1"),
        "pruned",
    );
    commit_file(
        &repo,
        "orphaned/cms.yaml",
        &configmaps_yaml(&ns, "o", 3, "1"),
        "orphaned",
    );
    commit_file(
        &repo,
        "later/cms.yaml",
        &configmaps_yaml(&ns, "l", 3, "1"),
        "later",
    );
    let mut agent = t.start_agent(agent_binary, &[]);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    // prune: true — its objects go, except the one marked prune: disabled.
    apply_gitsync(
        &client,
        &ns,
        "pruned",
        file_gitsync_spec(&repo, "pruned", true),
    )
    .await;
    let gs = wait_ready(&client, &ns, "pruned", None).await;
    assert!(
        gs.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"gitseal.dev/gitsync".to_owned())
    );
    assert_eq!(managed_configmaps(&client, &ns, "pruned").await.len(), 4);
    assert_eq!(shards(&client, &ns, "pruned").await, 1);
    delete(&client, &ns, "pruned").await;
    gone(&client, &ns, "pruned").await;
    assert_eq!(managed_configmaps(&client, &ns, "pruned").await, ["p-keep"]);
    assert!(cms.get_opt("p-keep").await.expect("get").is_some());
    assert_eq!(
        shards(&client, &ns, "pruned").await,
        0,
        "inventory left behind"
    );
    let note = event_note(&client, &ns, "Pruned", "pruned").await;
    assert!(note.contains("3 object(s) pruned"), "{note}");

    // prune: false — its objects stay, an Event says so, the inventory goes.
    apply_gitsync(
        &client,
        &ns,
        "orphaned",
        file_gitsync_spec(&repo, "orphaned", false),
    )
    .await;
    wait_ready(&client, &ns, "orphaned", None).await;
    delete(&client, &ns, "orphaned").await;
    gone(&client, &ns, "orphaned").await;
    assert_eq!(
        managed_configmaps(&client, &ns, "orphaned").await.len(),
        3,
        "objects kept"
    );
    assert_eq!(
        shards(&client, &ns, "orphaned").await,
        0,
        "inventory left behind"
    );
    let note = event_note(&client, &ns, "Orphaned", "orphaned").await;
    assert!(note.contains("3 object(s) are left in place"), "{note}");

    // Recreated under the same name with prune: true and a path with one of the three: the
    // new GitSync knows nothing of the old one, so it prunes nothing it did not apply.
    commit_file(
        &repo,
        "orphaned-again/cm.yaml",
        &configmaps_yaml(&ns, "o", 1, "1"),
        "one",
    );
    apply_gitsync(
        &client,
        &ns,
        "orphaned",
        file_gitsync_spec(&repo, "orphaned-again", true),
    )
    .await;
    let gs = wait_ready(&client, &ns, "orphaned", None).await;
    assert_eq!(
        gs.status.and_then(|s| s.inventory).map(|i| i.objects),
        Some(1)
    );
    assert_eq!(
        managed_configmaps(&client, &ns, "orphaned").await.len(),
        3,
        "old objects pruned by a new GitSync"
    );

    // Deleted while no agent runs: it waits (finalizer), and the next agent finishes the job.
    apply_gitsync(
        &client,
        &ns,
        "later",
        file_gitsync_spec(&repo, "later", true),
    )
    .await;
    wait_ready(&client, &ns, "later", None).await;
    agent.kill();
    delete(&client, &ns, "later").await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let waiting = syncs.get("later").await.expect("still there");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(managed_configmaps(&client, &ns, "later").await.len(), 3);
    let _agent = t.start_agent(agent_binary, &[]);
    gone(&client, &ns, "later").await;
    assert!(
        managed_configmaps(&client, &ns, "later").await.is_empty(),
        "not pruned after restart"
    );
    assert_eq!(shards(&client, &ns, "later").await, 0);
}

/// Whoever can write a GitSync's inventory (only the agent, unless an admin grants more)
/// cannot make it delete what is not the GitSync's: an object added to the inventory by hand
/// survives the GitSync's deletion with `prune: true`, because it does not carry its labels.
#[tokio::test]
async fn a_tampered_inventory_prunes_nothing_that_is_not_the_gitsyncs() {
    let t = AgentTest::new("tamper").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    commit_file(
        &repo,
        "apps/cms.yaml",
        &configmaps_yaml(&ns, "own", 2, "1"),
        "two",
    );
    let _agent = t.start_agent(agent_binary, &[]);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(
        &Default::default(),
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "victim"}, "data": {"a": "b"}
        }))
        .expect("configmap"),
    )
    .await
    .expect("victim");
    // In another namespace, an object that even carries the GitSync's labels (someone who
    // may write there put them on): a GitSync that names no ServiceAccount acts in its own
    // namespace only, so its deletion must not prune it either.
    let elsewhere = t.cp.namespace("tamper-elsewhere").await;
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), &elsewhere);
    other
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "labelled", "labels": {
                    SYNC_NAMESPACE_LABEL: ns, SYNC_NAME_LABEL: "apps"}},
                "data": {"a": "b"}
            }))
            .expect("configmap"),
        )
        .await
        .expect("labelled victim");
    apply_gitsync(&client, &ns, "apps", file_gitsync_spec(&repo, "apps", true)).await;
    wait_ready(&client, &ns, "apps", None).await;
    let shards: Api<gitseal_api::GitSyncInventory> = Api::namespaced(client.clone(), &ns);
    let mut shard = shards.get("apps-0").await.expect("shard");
    shard.spec.groups.push(gitseal_api::InventoryGroup {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: ns.clone(),
        names: vec!["victim".into()],
    });
    shard.spec.groups.push(gitseal_api::InventoryGroup {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: elsewhere.clone(),
        names: vec!["labelled".into()],
    });
    shards
        .replace("apps-0", &Default::default(), &shard)
        .await
        .expect("tamper");
    delete(&client, &ns, "apps").await;
    gone(&client, &ns, "apps").await;
    assert!(managed_configmaps(&client, &ns, "apps").await.is_empty());
    assert!(
        cms.get_opt("victim").await.expect("get").is_some(),
        "an object not labelled as the GitSync's was deleted"
    );
    assert!(
        other.get_opt("labelled").await.expect("get").is_some(),
        "the finalizer pruned in another namespace, which the GitSync's passes may not write"
    );
}

/// Removing the finalizer by hand (as someone who wants the GitSync gone without a prune
/// would) orphans its objects, and its inventory shards go with it: they are owned by the
/// GitSync, so the garbage collector deletes them.
#[tokio::test]
async fn removing_the_finalizer_by_hand_orphans_and_the_inventory_goes() {
    let t = AgentTest::new("unfinalized").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    commit_file(
        &repo,
        "apps/cms.yaml",
        &configmaps_yaml(&ns, "kept", 3, "1"),
        "three",
    );
    let mut agent = t.start_agent(agent_binary, &[]);
    apply_gitsync(&client, &ns, "apps", file_gitsync_spec(&repo, "apps", true)).await;
    wait_ready(&client, &ns, "apps", None).await;
    assert_eq!(shards(&client, &ns, "apps").await, 1);
    // No agent to put the finalizer back meanwhile.
    agent.kill();
    let api: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove the finalizer");
    delete(&client, &ns, "apps").await;
    gone(&client, &ns, "apps").await;
    wait_for("the inventory shards collected", || async {
        (shards(&client, &ns, "apps").await == 0).then_some(())
    })
    .await;
    assert_eq!(
        managed_configmaps(&client, &ns, "apps").await.len(),
        3,
        "objects of a GitSync whose finalizer was removed were deleted"
    );
}
