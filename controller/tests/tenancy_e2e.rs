//! Tenancy, end to end: the agent runs as its ServiceAccount with exactly `deploy/rbac.yaml`
//! against the real control plane, and GitSyncs follow real repositories served by `git
//! daemon` on loopback.
//!
//! - a GitSync outside the agent's namespace that names no ServiceAccount writes only
//!   namespaced objects of its own namespace: another namespace, `kube-system`, a
//!   ClusterRoleBinding (even once the admin extended the reconciler role to allow it), the
//!   agent's namespace, a sealing-key-shaped Secret and a target namespace elsewhere are each
//!   refused before anything is applied, naming the GitSync, the object and the rule;
//! - a GitSync that names a ServiceAccount is applied, read and pruned as that ServiceAccount:
//!   exactly what its RBAC allows, the default one of `--default-service-account` likewise;
//!   its deletion prunes as that ServiceAccount too (and nothing once it is gone);
//! - the key manager ignores key Secrets planted through the agent (log and metric), and
//!   neither a GitSync in the agent's namespace nor a SealedSecret can write a key Secret.

mod support;

use std::time::Duration;

use gitseal::SecretKey;
use gitseal::sealing::{SealTarget, seal_secret};
use gitseal_api::GitSync;
use gitseal_testenv::rbac::{AgentRbac, RECONCILER_LABEL};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use secrecy::SecretSlice;
use serde_json::{Value, json};
use sha2::Digest as _;
use support::{
    AgentTest, GitDaemon, TestRepo, add_sealing_key, agent_binary, apply_gitsync, http_get,
    ready_condition, wait_for,
};

const CANARY: &str = "CANARY-tenancy-51c0";
const MANAGER: &str = "gitseal-test";

fn configmap(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{a: b}}\n"
        ),
        None => {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
        }
    }
}

/// A SealedSecret manifest for `ns/name` sealed to `key`, its template labelled `labels`.
fn sealed(key: &SecretKey, ns: &str, name: &str, labels: &[(&str, &str)]) -> String {
    let mut s = gitseal::manifest::Secret {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    for (k, v) in labels {
        s.labels.insert((*k).into(), (*v).into());
    }
    s.data.insert(
        "identity".into(),
        SecretSlice::from(CANARY.as_bytes().to_vec()),
    );
    let sealed = seal_secret(&s, &[key.public().clone()], &SealTarget::default()).expect("seal");
    gitseal::manifest::render([&sealed.to_value()], gitseal::manifest::OutputFormat::Yaml)
}

/// Waits until the GitSync `ns/name` is not Ready with a message holding every `parts`.
async fn wait_failed(client: &kube::Client, ns: &str, name: &str, parts: &[&str]) -> String {
    let api: Api<GitSync> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("GitSync {ns}/{name} failing with {parts:?}"),
        || async {
            let gs = api.get(name).await.ok()?;
            let (ok, _, msg) = ready_condition(&gs)?;
            (!ok && parts.iter().all(|p| msg.contains(p))).then_some(msg)
        },
    )
    .await
}

async fn wait_ready(client: &kube::Client, ns: &str, name: &str, revision: &str) {
    let api: Api<GitSync> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("GitSync {ns}/{name} Ready at {revision}"),
        || async {
            let gs = api.get(name).await.ok()?;
            let (ok, _, _) = ready_condition(&gs)?;
            let applied = gs.status?.last_applied_revision?;
            (ok && applied.ends_with(revision)).then_some(())
        },
    )
    .await;
}

/// A Warning Event on the GitSync `ns/name` with this reason whose message holds `part`.
async fn wait_event(client: &kube::Client, ns: &str, name: &str, reason: &str, part: &str) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("a {reason} Event on {ns}/{name}"), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.contains(part))
            })
            .map(|_| ())
    })
    .await;
}

async fn exists<K>(client: &kube::Client, ns: Option<&str>, name: &str) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::api::DynamicObject;
    let ar = kube::discovery::ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.get_opt(name).await.expect("get").is_some()
}

/// Applies an RBAC object (or any object) as the admin.
async fn admin_apply(client: &kube::Client, obj: Value) {
    use kube::api::DynamicObject;
    use kube::core::GroupVersionKind;
    let (g, v) = match obj["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .split_once('/')
    {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), "v1".to_owned()),
    };
    let kind = obj["kind"].as_str().expect("kind");
    let ar = kube::discovery::ApiResource::from_gvk(&GroupVersionKind::gvk(&g, &v, kind));
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
}

/// Nothing secret in the agent's log, or in the Events and GitSync statuses of `ns`.
async fn assert_no_leak(client: &kube::Client, ns: &str, logs: &str) {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let events =
        serde_json::to_string(&events.list(&ListParams::default()).await.expect("ev").items)
            .expect("json");
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), ns);
    let statuses: Vec<_> = syncs
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|g| g.status)
        .collect();
    let statuses = serde_json::to_string(&statuses).expect("json");
    for (what, text) in [("logs", logs), ("events", &events), ("status", &statuses)] {
        assert!(
            !text.contains(CANARY) && !text.contains(&b64),
            "canary in {what}"
        );
    }
}

#[tokio::test]
async fn a_gitsync_without_a_service_account_writes_only_its_own_namespace() {
    let t = AgentTest::new("tenant-own").await;
    let (client, agent_ns, tenant) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let other = t.cp.namespace("tenant-own-other").await;
    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;
    // The admin extended the reconciler role with RBAC, as deploy/rbac.yaml invites.
    admin_apply(
        &client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("rbac-{agent_ns}"),
                         "labels": {RECONCILER_LABEL: t.reconciler_label_value()}},
            "rules": [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterrolebindings"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                 "verbs": ["bind"]}
            ]
        }),
    )
    .await;
    let kubeconfig = t.agent_kubeconfig(AgentRbac::Deployed).await;
    let repo = TestRepo::new();
    repo.write("apps/own.yaml", &configmap(Some(&tenant), "own"));
    repo.write("apps/other.yaml", &configmap(Some(&other), "other"));
    let rev = repo.commit("another namespace");
    let daemon = GitDaemon::start(repo.root());
    let agent = t.start_agent_with(agent_binary, &kubeconfig, &tenant, &[]);
    let spec = json!({"url": daemon.url(repo.path()), "ref": {"branch": "main"},
                      "path": "apps", "interval": "1s", "prune": true});
    apply_gitsync(&client, &tenant, "apps", spec.clone()).await;

    // Another namespace: refused, naming the GitSync, the object, its file and the rule, in
    // status and in an Event; nothing applied, not even the object of its own namespace.
    let gitsync = format!("GitSync {tenant}/apps");
    let object = format!("ConfigMap {other}/other (apps/other.yaml #1)");
    let msg = wait_failed(
        &client,
        &tenant,
        "apps",
        &[&gitsync, &object, "rule own-namespace"],
    )
    .await;
    assert!(msg.contains("spec.serviceAccountName"), "{msg}");
    wait_event(&client, &tenant, "apps", "TenancyRefused", &object).await;
    let status: Api<GitSync> = Api::namespaced(client.clone(), &tenant);
    let gs = status.get("apps").await.expect("gitsync");
    assert!(
        gs.status
            .as_ref()
            .and_then(|s| s.last_attempted_revision.as_deref())
            .is_some_and(|r| r.ends_with(&rev))
    );
    assert!(!exists::<ConfigMap>(&client, Some(&other), "other").await);
    assert!(!exists::<ConfigMap>(&client, Some(&tenant), "own").await);

    // kube-system, likewise.
    repo.remove("apps/other.yaml");
    repo.write(
        "apps/system.yaml",
        &configmap(Some("kube-system"), "planted"),
    );
    repo.commit("kube-system");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &["ConfigMap kube-system/planted", "rule own-namespace"],
    )
    .await;
    assert!(!exists::<ConfigMap>(&client, Some("kube-system"), "planted").await);

    // A ClusterRoleBinding to cluster-admin, which the agent's extended role would allow.
    repo.remove("apps/system.yaml");
    let crb = format!("tenant-admin-{tenant}");
    repo.write(
        "apps/crb.yaml",
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {crb}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: tenant}}]\n"
        ),
    );
    repo.commit("cluster-admin for me");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &[
            &format!("ClusterRoleBinding.rbac.authorization.k8s.io {crb}"),
            "rule cluster-scoped",
        ],
    )
    .await;
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    assert!(!exists::<ClusterRoleBinding>(&client, None, &crb).await);

    // A SealedSecret for the agent's namespace (sealed to the cluster's key: it opens there).
    repo.remove("apps/crb.yaml");
    repo.write(
        "apps/planted.yaml",
        &sealed(&key, &agent_ns, "planted", &[]),
    );
    repo.commit("into the agent namespace");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &[
            &format!("Secret {agent_ns}/planted"),
            "rule agent-namespace",
        ],
    )
    .await;
    assert!(!exists::<Secret>(&client, Some(&agent_ns), "planted").await);

    // A SealedSecret of its own namespace whose template makes a sealing key.
    repo.remove("apps/planted.yaml");
    repo.write(
        "apps/key.yaml",
        &sealed(
            &key,
            &tenant,
            "key",
            &[("gitseal.dev/sealing-key", "active")],
        ),
    );
    repo.commit("a key of my own");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &[&format!("Secret {tenant}/key"), "rule sealing-key"],
    )
    .await;
    assert!(!exists::<Secret>(&client, Some(&tenant), "key").await);

    // Its own namespace only: applied; a manifest naming no namespace lands in it too.
    repo.remove("apps/key.yaml");
    repo.write("apps/plain.yaml", &configmap(None, "plain"));
    let rev = repo.commit("own namespace only");
    wait_ready(&client, &tenant, "apps", &rev).await;
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "own").await);
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "plain").await);

    // A target namespace elsewhere is refused before anything is applied into it.
    let mut moved = spec.clone();
    moved["targetNamespace"] = json!(other);
    apply_gitsync(&client, &tenant, "apps", moved).await;
    wait_failed(
        &client,
        &tenant,
        "apps",
        &[
            &format!("spec.targetNamespace {other}"),
            "rule target-namespace",
        ],
    )
    .await;
    assert!(!exists::<ConfigMap>(&client, Some(&other), "own").await);

    let logs = agent.logs();
    assert!(logs.contains("pass failed"), "{logs}");
    assert_no_leak(&client, &tenant, &logs).await;
}

#[tokio::test]
async fn passes_act_as_the_gitsyncs_service_account() {
    let t = AgentTest::new("tenant-sa").await;
    let (client, agent_ns, tenant) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let other = t.cp.namespace("tenant-sa-other").await;
    // The tenant's deployer may create and change ConfigMaps in its namespace (not delete),
    // and even ConfigMaps in the agent's namespace.
    let role = |ns: &str, verbs: &[&str]| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "deployer", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]
        })
    };
    let writer = ["get", "list", "watch", "create", "update", "patch"];
    admin_apply(
        &client,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "deployer", "namespace": tenant}}),
    )
    .await;
    for ns in [&tenant, &agent_ns] {
        admin_apply(&client, role(ns, &writer)).await;
        admin_apply(
            &client,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "deployer", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": tenant}]
            }),
        )
        .await;
    }
    let kubeconfig = t.agent_kubeconfig(AgentRbac::Deployed).await;
    let repo = TestRepo::new();
    repo.write("apps/one.yaml", &configmap(Some(&tenant), "one"));
    repo.write("apps/two.yaml", &configmap(Some(&tenant), "two"));
    repo.write("locked/three.yaml", &configmap(Some(&tenant), "three"));
    let rev = repo.commit("two configmaps");
    let daemon = GitDaemon::start(repo.root());
    // Lockdown: GitSyncs naming no ServiceAccount act as `default`, which may do nothing.
    let agent = t.start_agent_with(
        agent_binary,
        &kubeconfig,
        &tenant,
        &["--default-service-account", "default"],
    );
    let url = daemon.url(repo.path());
    apply_gitsync(
        &client,
        &tenant,
        "apps",
        json!({"url": url, "path": "apps", "interval": "1s", "prune": true,
               "serviceAccountName": "deployer"}),
    )
    .await;
    apply_gitsync(
        &client,
        &tenant,
        "locked",
        json!({"url": url, "path": "locked", "interval": "1s", "prune": true}),
    )
    .await;

    // What the deployer may do is done, as the deployer; the no-op passes after it read as
    // the deployer too (namespace by namespace), with nothing forbidden.
    wait_ready(&client, &tenant, "apps", &rev).await;
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "one").await);
    let sa = format!("system:serviceaccount:{tenant}:deployer");
    let locked = format!("system:serviceaccount:{tenant}:default");
    wait_failed(
        &client,
        &tenant,
        "locked",
        &["ConfigMap", "three", &locked, "forbidden"],
    )
    .await;
    assert!(!exists::<ConfigMap>(&client, Some(&tenant), "three").await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &tenant);
    let gs = syncs.get("apps").await.expect("gitsync");
    assert_eq!(
        ready_condition(&gs).map(|r| r.0),
        Some(true),
        "{:?}",
        gs.status
    );

    // Another namespace: the API server refuses the deployer, naming it; nothing pruned.
    repo.write("apps/other.yaml", &configmap(Some(&other), "other"));
    repo.commit("another namespace");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &[&format!("ConfigMap {other}/other"), &sa, "forbidden"],
    )
    .await;
    assert!(!exists::<ConfigMap>(&client, Some(&other), "other").await);

    // Whatever the ServiceAccount may do, the agent's namespace stays out of reach.
    repo.remove("apps/other.yaml");
    repo.write("apps/agent.yaml", &configmap(Some(&agent_ns), "planted"));
    repo.commit("the agent namespace");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &[
            &format!("ConfigMap {agent_ns}/planted"),
            "rule agent-namespace",
        ],
    )
    .await;
    assert!(!exists::<ConfigMap>(&client, Some(&agent_ns), "planted").await);

    // Pruning is the deployer's too: it may not delete, so `two` stays and the pass says so.
    repo.remove("apps/agent.yaml");
    repo.remove("apps/two.yaml");
    let rev = repo.commit("two goes");
    wait_failed(
        &client,
        &tenant,
        "apps",
        &["prune of ConfigMap", "two", &sa, "forbidden"],
    )
    .await;
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "two").await);
    let mut deleter = writer.to_vec();
    deleter.push("delete");
    admin_apply(&client, role(&tenant, &deleter)).await;
    wait_ready(&client, &tenant, "apps", &rev).await;
    assert!(!exists::<ConfigMap>(&client, Some(&tenant), "two").await);
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "one").await);

    // Deleting the GitSync prunes as the deployer as well: once it may not delete, nothing
    // goes and the deletion waits, saying why; allowed again, the deletion completes.
    admin_apply(&client, role(&tenant, &writer)).await;
    syncs
        .delete("apps", &DeleteParams::default())
        .await
        .expect("delete apps");
    wait_event(&client, &tenant, "apps", "PruneFailed", "forbidden").await;
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "one").await);
    assert!(
        exists::<GitSync>(&client, Some(&tenant), "apps").await,
        "deleted without its prune"
    );
    admin_apply(&client, role(&tenant, &deleter)).await;
    wait_for("GitSync apps gone", || async {
        (!exists::<GitSync>(&client, Some(&tenant), "apps").await).then_some(())
    })
    .await;
    assert!(!exists::<ConfigMap>(&client, Some(&tenant), "one").await);

    // A ServiceAccount that is gone (as when its namespace is deleted) prunes nothing: its
    // GitSync's objects stay, and a Warning Event says so.
    admin_apply(
        &client,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "temporary", "namespace": tenant}}),
    )
    .await;
    admin_apply(
        &client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "temporary", "namespace": tenant},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "ServiceAccount", "name": "temporary", "namespace": tenant}]
        }),
    )
    .await;
    repo.write("temporary/four.yaml", &configmap(Some(&tenant), "four"));
    let rev = repo.commit("four");
    apply_gitsync(
        &client,
        &tenant,
        "temporary",
        json!({"url": url, "path": "temporary", "interval": "1s", "prune": true,
               "serviceAccountName": "temporary"}),
    )
    .await;
    wait_ready(&client, &tenant, "temporary", &rev).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &tenant);
    accounts
        .delete("temporary", &DeleteParams::default())
        .await
        .expect("delete the ServiceAccount");
    syncs
        .delete("temporary", &DeleteParams::default())
        .await
        .expect("delete temporary");
    wait_event(
        &client,
        &tenant,
        "temporary",
        "Orphaned",
        "no longer exists",
    )
    .await;
    wait_for("GitSync temporary gone", || async {
        (!exists::<GitSync>(&client, Some(&tenant), "temporary").await).then_some(())
    })
    .await;
    assert!(exists::<ConfigMap>(&client, Some(&tenant), "four").await);

    let logs = agent.logs();
    assert_no_leak(&client, &tenant, &logs).await;
}

#[tokio::test]
async fn sealing_keys_are_out_of_every_sources_reach() {
    let t = AgentTest::new("keys-trust").await;
    let (client, agent_ns) = (t.client.clone(), t.agent_ns.clone());
    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;
    let kubeconfig = t.agent_kubeconfig(AgentRbac::Deployed).await;
    // This agent answers the GitSyncs and SealedSecrets of its own namespace: the admin's.
    let agent = t.start_agent_with(
        agent_binary,
        &kubeconfig,
        &agent_ns,
        &["--key-renewal", "0"],
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    let published = || async {
        cms.get_opt("gitseal-public-keys")
            .await
            .ok()
            .flatten()
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("keys.json").cloned())
            .unwrap_or_default()
    };
    let key_pub = key.public().to_string();
    wait_for("the key published", || async {
        published().await.contains(&key_pub).then_some(())
    })
    .await;

    // Key Secrets planted through the agent (written by its apply field manager, as a pass
    // would; or owned, as the SealedSecret controller's Secrets are) are ignored, said in the
    // log and a metric; one restored by `gitseal keys restore` is used.
    let identity = |k: &SecretKey| {
        use secrecy::ExposeSecret;
        k.to_identity_file("2099-01-01T00:00:00Z")
            .expose_secret()
            .to_owned()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let planted = SecretKey::generate();
    let owned = SecretKey::generate();
    let restored = SecretKey::generate();
    let key_secret = |name: &str, k: &SecretKey| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": {"gitseal.dev/sealing-key": "active"},
                         "annotations": {"gitseal.dev/created": "2099-01-01T00:00:00Z"}},
            "stringData": {"identity": identity(k)}
        })
    };
    secrets
        .patch(
            "planted-key",
            &PatchParams::apply("gitseal-agent").force(),
            &Patch::Apply(key_secret("planted-key", &planted)),
        )
        .await
        .expect("planted");
    let owner = cms.get("gitseal-public-keys").await.expect("cm");
    let mut with_owner = key_secret("owned-key", &owned);
    with_owner["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "gitseal-public-keys",
        "uid": owner.metadata.uid.clone().expect("uid"),
    }]);
    secrets
        .patch(
            "owned-key",
            &PatchParams::apply("someone").force(),
            &Patch::Apply(with_owner),
        )
        .await
        .expect("owned");
    secrets
        .patch(
            "restored-key",
            &PatchParams::apply("gitseal-cli").force(),
            &Patch::Apply(key_secret("restored-key", &restored)),
        )
        .await
        .expect("restored");
    let restored_pub = restored.public().to_string();
    let keys = wait_for("the restored key published", || async {
        let p = published().await;
        p.contains(&restored_pub).then_some(p)
    })
    .await;
    for k in [&planted, &owned] {
        assert!(!keys.contains(&k.public().to_string()), "published: {keys}");
    }
    let served = http_get(agent.health_port, "/v1/keys");
    assert!(!served.contains(&planted.public().to_string()), "{served}");
    wait_for("both ignored in the log", || async {
        let logs = agent.logs();
        (logs.contains("sealing key Secret ignored")
            && logs.contains("planted-key")
            && logs.contains("owned-key"))
        .then_some(())
    })
    .await;
    let metrics = http_get(agent.metrics_port, "/metrics");
    assert!(
        metrics.contains("gitseal_sealing_key_secrets_ignored 2"),
        "{metrics}"
    );

    // New keys get names derived from why they are made (so two leaders can never make two
    // keys for one reason); a Secret planted through the agent under the name the next
    // rotation will use is not taken for that key: the rotation waits, saying why, and
    // happens once it is gone, with a key of the agent's own.
    let request = "rotate-after-plant";
    let digest = sha2::Sha256::digest(request.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let next_name = format!("gitseal-key-rotation-{hex}");
    let squatter = SecretKey::generate();
    let mut unlabelled = key_secret(&next_name, &squatter);
    unlabelled["metadata"]["labels"] = json!({});
    secrets
        .patch(
            &next_name,
            &PatchParams::apply("gitseal-agent").force(),
            &Patch::Apply(unlabelled),
        )
        .await
        .expect("squatter");
    cms.patch(
        "gitseal-public-keys",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "gitseal.dev/rotate-requested": request}}})),
    )
    .await
    .expect("request a rotation");
    wait_for("the squatter refused in the log", || async {
        let logs = agent.logs();
        logs.lines()
            .any(|l| l.contains("holds the name of the key to make") && l.contains(&next_name))
            .then_some(())
    })
    .await;
    let keys = published().await;
    assert!(
        !keys.contains(&squatter.public().to_string()),
        "the planted key was published: {keys}"
    );
    secrets
        .delete(&next_name, &Default::default())
        .await
        .expect("remove the squatter");
    let done = wait_for("the rotation done", || async {
        let cm = cms.get("gitseal-public-keys").await.ok()?;
        let done = cm.metadata.annotations?.get("gitseal.dev/rotate-done")? == request;
        done.then_some(cm.data?.get("keys.json")?.clone())
    })
    .await;
    assert!(
        !done.contains(&squatter.public().to_string()),
        "the planted key was published: {done}"
    );
    let made = secrets.get(&next_name).await.expect("the rotated key");
    assert!(
        gitseal_api::keys::untrusted_key_secret(&made.metadata).is_none(),
        "the new key is not the agent's own: {:?}",
        made.metadata.managed_fields
    );

    // The admin's own GitSync may write the agent's namespace, but never a key: neither a
    // SealedSecret whose template is labelled as one, nor a Secret of an existing key's name.
    let repo = TestRepo::new();
    repo.write(
        "infra/key.yaml",
        &sealed(
            &key,
            &agent_ns,
            "from-git",
            &[("gitseal.dev/sealing-key", "active")],
        ),
    );
    repo.commit("a sealing key from git");
    let daemon = GitDaemon::start(repo.root());
    apply_gitsync(
        &client,
        &agent_ns,
        "infra",
        json!({"url": daemon.url(repo.path()), "path": "infra", "interval": "1s",
               "allowPlaintextSecrets": true}),
    )
    .await;
    wait_failed(
        &client,
        &agent_ns,
        "infra",
        &[&format!("Secret {agent_ns}/from-git"), "rule sealing-key"],
    )
    .await;
    assert!(!exists::<Secret>(&client, Some(&agent_ns), "from-git").await);
    repo.remove("infra/key.yaml");
    repo.write(
        "infra/overwrite.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: sealing-key-1, namespace: {agent_ns}}}\nstringData: {{identity: replaced}}\n"
        ),
    );
    repo.commit("replace the key");
    wait_failed(
        &client,
        &agent_ns,
        "infra",
        &[
            &format!("Secret {agent_ns}/sealing-key-1"),
            "rule sealing-key",
            "live Secret",
        ],
    )
    .await;
    repo.remove("infra/overwrite.yaml");
    repo.write("infra/cm.yaml", &configmap(None, "infra-settings"));
    let rev = repo.commit("something allowed");
    wait_ready(&client, &agent_ns, "infra", &rev).await;
    // Namespaced objects of a GitSync in the agent's namespace that name none go to `default`.
    assert!(exists::<ConfigMap>(&client, Some("default"), "infra-settings").await);

    // A SealedSecret object whose template is labelled as a sealing key is refused.
    let s = sealed(
        &key,
        &agent_ns,
        "cr-key",
        &[("gitseal.dev/sealing-key", "active")],
    );
    let v: Value = serde_yaml::from_str(&s).expect("yaml");
    let api: Api<gitseal_api::SealedSecret> = Api::namespaced(client.clone(), &agent_ns);
    api.patch("cr-key", &PatchParams::apply(MANAGER), &Patch::Apply(&v))
        .await
        .expect("sealed secret");
    let msg = wait_for("the SealedSecret refused", || async {
        let ss = api.get("cr-key").await.ok()?;
        let c = ss
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "False" && c.reason == "InvalidSpec").then_some(c.message)
    })
    .await;
    assert!(msg.contains("rule sealing-key"), "{msg}");
    assert!(!exists::<Secret>(&client, Some(&agent_ns), "cr-key").await);
    // The sealing key is what it was.
    let live = secrets.get("sealing-key-1").await.expect("key");
    let id = live.data.expect("data")["identity"].0.clone();
    assert!(String::from_utf8_lossy(&id).starts_with("# created"));

    assert_no_leak(&client, &agent_ns, &agent.logs()).await;
}
