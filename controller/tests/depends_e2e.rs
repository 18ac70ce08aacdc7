//! `dependsOn` between GitSyncs, and kinds without a CRD (real agent process watching every
//! namespace, real control plane of this test binary's own): a tenant's GitSync waits for the
//! platform's GitSync that installs its CRDs, says so in its Ready condition and an Event
//! (without the platform GitSync's message), and applies once that one is Ready; a GitSync
//! without dependsOn fails with "no CRD for …" and succeeds by itself once the CRD exists;
//! naming another tenant's GitSync, a cycle, and malformed references are refused.

mod support;

use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use support::{
    AgentProcess, AgentSetup, AgentTest, agent_binary, apply_gitsync, git, ready_condition,
    wait_for, wait_ready,
};

/// In the platform repository's failing file name: must not reach the tenant's status.
const PLATFORM_SECRET: &str = "platform-internal-7e21";

fn crd(kind: &str, plural: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.example.com}}
spec:
  group: example.com
  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
",
        singular = kind.to_lowercase()
    )
}

fn write(repo: &std::path::Path, file: &str, text: &str) {
    let p = repo.join(file);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn commit(repo: &std::path::Path, msg: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", msg]);
}

async fn condition_of(
    api: &Api<GitSync>,
    name: &str,
    what: &str,
    ok: impl Fn(&(bool, String, String)) -> bool,
) -> (bool, String, String) {
    wait_for(what, || async {
        let gs = api.get(name).await.ok()?;
        ready_condition(&gs).filter(|c| ok(c))
    })
    .await
}

#[tokio::test]
async fn depends_on_waits_for_the_platform_and_missing_crds_are_named() {
    let t = AgentTest::new("depends").await;
    let (client, platform, app) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    // The platform's path fails for now (a broken file whose name must stay the platform's).
    write(
        &repo,
        &format!("infra/{PLATFORM_SECRET}.yaml"),
        "kind: [unclosed\n",
    );
    write(
        &repo,
        "apps/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n",
    );
    write(
        &repo,
        "apps/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-settings}\ndata: {a: b}\n",
    );
    write(
        &repo,
        "eager/gadget.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n",
    );
    commit(&repo, "first");
    // Every namespace: the platform's GitSyncs live in the agent's namespace.
    let _agent = AgentProcess::start(
        agent_binary,
        AgentSetup {
            kubeconfig: t.cp.kubeconfig_path(),
            agent_namespace: &platform,
            watch_namespace: "",
            dir: t.work.path(),
        },
        &["--allow-local-sources"],
    );
    let url = format!("file://{}", repo.display());
    let spec = |path: &str, deps: serde_json::Value| {
        serde_json::json!({"url": url, "path": path, "interval": "1h", "prune": true,
                           "dependsOn": deps})
    };
    let tenant: Api<GitSync> = Api::namespaced(client.clone(), &app);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &app);

    // 1. The tenant's GitSync names the platform's, which does not exist yet: it waits.
    apply_gitsync(
        &client,
        &app,
        "apps",
        spec(
            "apps",
            serde_json::json!([{"name": "infra", "namespace": platform}]),
        ),
    )
    .await;
    // Without dependsOn: the kind has no CRD, named, with what to do.
    apply_gitsync(&client, &app, "eager", spec("eager", serde_json::json!([]))).await;
    let (_, reason, message) = condition_of(&tenant, "apps", "apps waits", |c| {
        c.1 == "DependencyNotReady"
    })
    .await;
    assert_eq!(reason, "DependencyNotReady");
    assert_eq!(
        message,
        format!("waiting for GitSync {platform}/infra (dependsOn): not found")
    );
    let (_, reason, message) = condition_of(&tenant, "eager", "eager fails", |c| !c.0).await;
    assert_eq!(reason, "CRDNotFound", "{message}");
    assert!(
        message.contains(
            "Gadget.example.com g (eager/gadget.yaml): no CRD for Gadget (example.com/v1) in the cluster — install it first or add dependsOn naming the GitSync that installs it"
        ),
        "{message}"
    );
    assert!(cms.get_opt("app-settings").await.expect("get").is_none());

    // 2. The platform's GitSync exists and fails: the tenant learns the reason, not the message.
    apply_gitsync(
        &client,
        &platform,
        "infra",
        spec("infra", serde_json::json!([])),
    )
    .await;
    let platform_api: Api<GitSync> = Api::namespaced(client.clone(), &platform);
    let (_, _, infra_message) = condition_of(&platform_api, "infra", "infra fails", |c| {
        !c.0 && !c.1.is_empty()
    })
    .await;
    assert!(infra_message.contains(PLATFORM_SECRET), "{infra_message}");
    let (_, _, message) = condition_of(&tenant, "apps", "apps waits for a failing infra", |c| {
        c.2.contains("not Ready")
    })
    .await;
    assert!(
        message.starts_with(&format!(
            "waiting for GitSync {platform}/infra (dependsOn): not Ready ("
        )),
        "{message}"
    );
    assert!(!message.contains(PLATFORM_SECRET), "{message}");
    assert!(cms.get_opt("app-settings").await.expect("get").is_none());

    // 3. The platform installs the CRDs: the tenant applies, the eager one too (by itself).
    std::fs::remove_file(repo.join(format!("infra/{PLATFORM_SECRET}.yaml"))).expect("rm");
    write(&repo, "infra/widgets.yaml", &crd("Widget", "widgets"));
    write(&repo, "infra/gadgets.yaml", &crd("Gadget", "gadgets"));
    commit(&repo, "crds");
    // The platform's interval is an hour: ask for its pass.
    platform_api
        .patch(
            "infra",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "reconcile.gitseal.dev/requestedAt": "now"}}})),
        )
        .await
        .expect("request");
    wait_ready(&client, &platform, "infra", None).await;
    wait_ready(&client, &app, "apps", None).await;
    assert!(cms.get_opt("app-settings").await.expect("get").is_some());
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &app,
        &ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "example.com",
            "v1",
            "Widget",
        )),
    );
    assert_eq!(
        widgets.get("w").await.expect("widget").data["spec"]["size"],
        3
    );
    wait_ready(&client, &app, "eager", None).await;
    // The wait was reported as an Event on the tenant's GitSync.
    let events: Api<Event> = Api::namespaced(client.clone(), &app);
    let evs = events.list(&ListParams::default()).await.expect("events");
    assert!(
        evs.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("DependencyNotReady")
                && e.involved_object.name.as_deref() == Some("apps")),
        "no DependencyNotReady Event"
    );

    // 4. Refused: another tenant's GitSync, and a cycle (InvalidSpec, Stalled).
    apply_gitsync(
        &client,
        &app,
        "nosy",
        spec(
            "apps",
            serde_json::json!([{"name": "db", "namespace": "another-tenant"}]),
        ),
    )
    .await;
    let (_, reason, message) = condition_of(&tenant, "nosy", "nosy refused", |c| !c.0).await;
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains(&format!(
            "spec.dependsOn[0]: GitSync another-tenant/db is in another namespace; a GitSync may depend on GitSyncs of its own namespace {app} and of the agent's namespace {platform}"
        )),
        "{message}"
    );
    apply_gitsync(
        &client,
        &app,
        "c1",
        spec("apps", serde_json::json!([{"name": "c2"}])),
    )
    .await;
    apply_gitsync(
        &client,
        &app,
        "c2",
        spec("apps", serde_json::json!([{"name": "c1"}])),
    )
    .await;
    let (_, reason, message) =
        condition_of(&tenant, "c1", "a cycle", |c| c.1 == "InvalidSpec").await;
    assert_eq!(reason, "InvalidSpec");
    assert_eq!(
        message,
        format!("spec.dependsOn: a cycle: {app}/c1 → {app}/c2 → {app}/c1")
    );
    let gs = tenant.get("c1").await.expect("c1");
    assert!(
        gs.status
            .expect("status")
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );

    // 5. Malformed references: refused by the API server, naming the field.
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &app, &ApiResource::erase::<GitSync>(&()));
    let many: Vec<serde_json::Value> = (0..33)
        .map(|i| serde_json::json!({"name": format!("d{i}")}))
        .collect();
    for (deps, field) in [
        (
            serde_json::json!([{"name": "x", "namespace": "Not_A_Namespace"}]),
            "spec.dependsOn[0].namespace",
        ),
        (serde_json::json!([{"name": ""}]), "spec.dependsOn[0].name"),
        (
            serde_json::json!([{"namespace": "x"}]),
            "spec.dependsOn[0].name",
        ),
        (serde_json::Value::Array(many), "spec.dependsOn"),
    ] {
        let err = raw
            .patch(
                "malformed",
                &PatchParams::apply("gitseal-test"),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
                    "metadata": {"name": "malformed"},
                    "spec": {"url": url, "dependsOn": deps}
                })),
            )
            .await
            .expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains(field), "{field}: {msg}");
    }
}
