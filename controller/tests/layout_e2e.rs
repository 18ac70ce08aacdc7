//! Sources as users lay them out (real agent process, real control plane): Flux's bootstrap
//! layout — a plain folder whose subfolders hold kustomizations — renders each such subfolder
//! with Kustomize beside the plain files, SealedSecrets inside them included; a subfolder
//! whose kustomization reaches outside the checkout is refused as at the top.

mod support;

use gitseal::SecretKey;
use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use support::{
    AgentTest, add_sealing_key, agent_binary, apply_gitsync, file_gitsync_spec, git,
    ready_condition, sealed_yaml, wait_for, wait_ready,
};

const CANARY: &str = "CANARY-layout-91d3e";

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: x}}\n")
}

fn write(repo: &std::path::Path, file: &str, text: &str) {
    let p = repo.join(file);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[tokio::test]
async fn flux_bootstrap_layout_renders_each_kustomization_folder() {
    let t = AgentTest::new("layout").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let key = SecretKey::generate();
    add_sealing_key(&client, &t.agent_ns, &key).await;

    // clusters/dev as `flux bootstrap` lays it out: plain files beside folders that are
    // Kustomize overlays (one reaching a base elsewhere in the repository).
    let repo = t.init_repo();
    write(&repo, "clusters/dev/plain.yaml", &cm("plain"));
    write(
        &repo,
        "clusters/dev/infrastructure/kustomization.yaml",
        "namePrefix: infra-\nresources: [cm.yaml, ../../../base]\n",
    );
    write(&repo, "clusters/dev/infrastructure/cm.yaml", &cm("one"));
    write(&repo, "base/kustomization.yaml", "resources: [cm.yaml]\n");
    write(&repo, "base/cm.yaml", &cm("base"));
    write(
        &repo,
        "clusters/dev/apps/db.yaml",
        &sealed_yaml(&key, &ns, "db", CANARY),
    );
    write(
        &repo,
        "clusters/dev/apps/kustomization.yaml",
        "resources: [db.yaml, cm.yaml]\n",
    );
    write(&repo, "clusters/dev/apps/cm.yaml", &cm("app"));
    // A patch file only its kustomization reads: never applied on its own.
    write(
        &repo,
        "clusters/dev/apps/patch.yaml",
        "- op: add\n  path: /data/w\n  value: y\n",
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "bootstrap layout"]);

    let _agent = t.start_agent(agent_binary, &[]);
    apply_gitsync(
        &client,
        &ns,
        "cluster",
        file_gitsync_spec(&repo, "clusters/dev", true),
    )
    .await;
    let gs = wait_ready(&client, &ns, "cluster", None).await;
    assert_eq!(
        gs.status
            .as_ref()
            .and_then(|s| s.inventory.as_ref())
            .map(|i| i.objects),
        Some(5)
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for name in ["plain", "infra-one", "infra-base", "app"] {
        assert!(
            cms.get_opt(name).await.expect("get").is_some(),
            "ConfigMap {name} applied"
        );
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let db = secrets.get("db").await.expect("db");
    assert_eq!(db.data.expect("data")["password"].0, CANARY.as_bytes());

    // A subfolder's kustomization that reaches outside the checkout: the pass is refused
    // naming that file, and nothing is pruned.
    write(
        &repo,
        "clusters/dev/escape/kustomization.yaml",
        "resources: [../../../../outside.yaml]\n",
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "escape"]);
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    let (_, reason, message) = wait_for("the render refused", || async {
        let gs = syncs.get("cluster").await.ok()?;
        ready_condition(&gs).filter(|(ok, _, _)| !ok)
    })
    .await;
    assert_eq!(reason, "RenderRefused", "{message}");
    assert!(
        message.contains("clusters/dev/escape/kustomization.yaml")
            && message.contains("leaves the source's checkout"),
        "{message}"
    );
    assert!(cms.get_opt("infra-one").await.expect("get").is_some());
    assert!(!message.contains(CANARY));
}
