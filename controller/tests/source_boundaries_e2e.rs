//! The source-side trust boundaries of `gitseal-agent` (issue 8), each against the real
//! control plane with real git servers on loopback, the agent as a process:
//!
//! - rendering reads only the source's own checkout: kustomize bases, resources and files that
//!   lead into another source's cached clone or to host files are refused before kustomize
//!   runs, naming the kustomization file and field; remote bases are refused unless both the
//!   agent (`--allow-remote-bases`) and the GitSync (`spec.allowRemoteBases`) allow them;
//!   plain YAML never follows a symbolic link;
//! - `file://` URLs and local paths need `--allow-local-sources`;
//! - credentials go only to the origin of the GitSync URL: a redirect elsewhere is refused;
//! - a Secret is sent as git credentials only when it opted in (label, optional hosts);
//! - the git cache must be private, and git never runs a program a cache's config names.
//!
//! Every refusal is in the GitSync's status and a Warning Event, and no secret is anywhere.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::{
    AgentProcess, AgentSetup, AgentTest, HttpAuth, HttpGitServer, TestRepo, agent_binary, git,
    ready_condition,
};

const CANARY: &str = "CANARY-boundary-3f9a1";
const MANAGER: &str = "gitseal-test";
/// How long a GitSync may take to show the expected state.
const SETTLE: Duration = Duration::from_secs(90);

/// `gitseal-agent run` watching the test's app namespace with admin credentials, with exactly
/// the `extra` flags (unlike [`AgentTest::start_agent`], which allows local sources).
fn start_agent(t: &AgentTest, extra: &[&str]) -> AgentProcess {
    let setup = AgentSetup {
        kubeconfig: t.cp.kubeconfig_path(),
        agent_namespace: &t.agent_ns,
        watch_namespace: &t.app_ns,
        dir: t.work.path(),
    };
    AgentProcess::start(agent_binary, setup, extra)
}

/// Applies the GitSync `name` with `spec` (a pass every second, branch main).
async fn apply_gitsync(t: &AgentTest, name: &str, mut spec: Value) {
    spec["interval"] = json!("1s");
    spec["ref"] = json!({"branch": "main"});
    support::apply_gitsync(&t.client, &t.app_ns, name, spec).await;
}

fn stalled(gs: &GitSync) -> bool {
    gs.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    })
}

/// Waits until the GitSync `name` has had a pass on its current generation and `pred` holds
/// for it; panics with its last status otherwise.
async fn wait_gitsync(
    t: &AgentTest,
    name: &str,
    what: &str,
    pred: impl Fn(&GitSync) -> bool,
) -> GitSync {
    let api: Api<GitSync> = Api::namespaced(t.client.clone(), &t.app_ns);
    let start = Instant::now();
    loop {
        let gs = api.get_opt(name).await.expect("get gitsync");
        if let Some(gs) = &gs
            && gs.status.as_ref().and_then(|s| s.observed_generation) == gs.metadata.generation
            && ready_condition(gs).is_some()
            && pred(gs)
        {
            return gs.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "GitSync {name}: timed out waiting for {what}; last status: {:?}",
            gs.and_then(|g| g.status)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `name` is Ready.
async fn wait_ready(t: &AgentTest, name: &str) -> GitSync {
    wait_gitsync(t, name, "Ready", |gs| {
        ready_condition(gs).is_some_and(|(ok, _, _)| ok)
    })
    .await
}

/// Waits until the last pass of `name` failed with a message holding every needle; returns
/// the message.
async fn wait_refused(t: &AgentTest, name: &str, needles: &[&str]) -> String {
    let gs = wait_gitsync(t, name, &format!("an error naming {needles:?}"), |gs| {
        ready_condition(gs)
            .is_some_and(|(ok, _, msg)| !ok && needles.iter().all(|n| msg.contains(n)))
    })
    .await;
    let (_, _, msg) = ready_condition(&gs).expect("ready condition");
    assert_eq!(
        gs.status.as_ref().and_then(|s| s.last_error.as_deref()),
        Some(msg.as_str()),
        "lastError carries the message"
    );
    msg
}

/// Waits for a Warning Event on the GitSync `name` whose message holds every needle.
async fn wait_warning(t: &AgentTest, name: &str, needles: &[&str]) -> Event {
    let events: Api<Event> = Api::namespaced(t.client.clone(), &t.app_ns);
    let start = Instant::now();
    loop {
        let list = events.list(&ListParams::default()).await.expect("events");
        let hit = list.items.iter().find(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.involved_object.name.as_deref() == Some(name)
                && e.involved_object.kind.as_deref() == Some("GitSync")
                && e.message
                    .as_deref()
                    .is_some_and(|m| needles.iter().all(|n| m.contains(n)))
        });
        if let Some(e) = hit {
            return e.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "no Warning Event on GitSync {name} naming {needles:?}; events: {:?}",
            list.items
                .iter()
                .map(|e| (e.reason.clone(), e.message.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Neither the canary nor its base64 form is in any status, Event or the agent's log.
async fn assert_no_canary(t: &AgentTest, agent: &AgentProcess) {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    let syncs: Api<GitSync> = Api::namespaced(t.client.clone(), &t.app_ns);
    let statuses: Vec<_> = syncs
        .list(&ListParams::default())
        .await
        .expect("gitsyncs")
        .items
        .into_iter()
        .map(|g| g.status)
        .collect();
    let events: Api<Event> = Api::namespaced(t.client.clone(), &t.app_ns);
    let events = events.list(&ListParams::default()).await.expect("events");
    for (what, text) in [
        ("status", serde_json::to_string(&statuses).expect("json")),
        (
            "events",
            serde_json::to_string(&events.items).expect("json"),
        ),
        ("agent log", agent.logs()),
    ] {
        assert!(
            !text.contains(CANARY) && !text.contains(&b64),
            "the secret is in the {what}"
        );
    }
}

fn configmap(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{value: {value}}}\n"
    )
}

async fn configmap_exists(t: &AgentTest, name: &str) -> bool {
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.app_ns);
    cms.get_opt(name).await.expect("get configmap").is_some()
}

/// The label naming the GitSync that applied a ConfigMap.
async fn applied_by(t: &AgentTest, name: &str) -> Option<String> {
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.app_ns);
    let cm = cms.get_opt(name).await.expect("get configmap")?;
    cm.metadata
        .labels
        .and_then(|l| l.get("gitseal.dev/sync-name").cloned())
}

/// The objects in the GitSync's inventory (its `GitSyncInventory` shards), as `kind ns/name`.
async fn inventory_ids(t: &AgentTest, gs: &GitSync) -> Vec<String> {
    use kube::ResourceExt;
    let shards: Api<gitseal_api::GitSyncInventory> =
        Api::namespaced(t.client.clone(), &gs.namespace().unwrap_or_default());
    let list = shards
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("gitseal.dev/inventory-of={}", gs.name_any())),
        )
        .await
        .expect("inventory shards");
    list.items
        .iter()
        .flat_map(|s| s.spec.groups.iter())
        .flat_map(|g| {
            g.names
                .iter()
                .map(move |n| format!("{} {}/{n}", g.kind, g.namespace))
        })
        .collect()
}

/// Render: another source's cached clone and host files are out of reach of a kustomization
/// at any depth; the refusal names the kustomization file, the field and the rule.
#[tokio::test]
async fn kustomizations_stay_inside_their_own_checkout() {
    let t = AgentTest::new("confine").await;
    let ns = t.app_ns.clone();
    let victim = TestRepo::named("victim");
    victim.write("apps/kustomization.yaml", "resources: [cm.yaml]\n");
    victim.write("apps/cm.yaml", &configmap(&ns, "victim-data", CANARY));
    victim.commit("the victim's objects");
    let tenant = TestRepo::named("tenant");
    tenant.write("apps/kustomization.yaml", "resources: [cm.yaml, base]\n");
    tenant.write("apps/cm.yaml", &configmap(&ns, "tenant-settings", "a"));
    tenant.write("apps/base/kustomization.yaml", "resources: [cm.yaml]\n");
    tenant.write("apps/base/cm.yaml", &configmap(&ns, "tenant-base", "b"));
    tenant.commit("the tenant's objects");
    let victim_server = HttpGitServer::start(victim.root(), HttpAuth::None);
    let tenant_server = HttpGitServer::start(tenant.root(), HttpAuth::None);
    let agent = start_agent(&t, &[]);
    apply_gitsync(
        &t,
        "victim",
        json!({"url": victim_server.url(victim.path()), "path": "apps"}),
    )
    .await;
    apply_gitsync(
        &t,
        "tenant",
        json!({"url": tenant_server.url(tenant.path()), "path": "apps"}),
    )
    .await;
    wait_ready(&t, "victim").await;
    wait_ready(&t, "tenant").await;
    assert!(configmap_exists(&t, "tenant-base").await);

    // Where the victim's checkout lives in the agent's cache: <cache>/<key>.trees/<commit>.
    let cache = t.work.path().join("cache");
    let key = std::fs::read_dir(&cache)
        .expect("cache folder")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".trees"))
        .flat_map(|trees| {
            let name = trees.file_name().to_string_lossy().into_owned();
            std::fs::read_dir(trees.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(move |c| {
                    (
                        format!("{name}/{}", c.file_name().to_string_lossy()),
                        c.path(),
                    )
                })
        })
        .find(|(_, dir)| {
            std::fs::read_to_string(dir.join("apps/cm.yaml"))
                .is_ok_and(|s| s.contains("victim-data"))
        })
        .map(|(key, _)| key)
        .expect("the victim's checkout in the cache");

    // From <cache>/<tenant key>.trees/<commit>/apps/base, four levels up is the cache folder.
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "apps/base/kustomization.yaml",
            format!("resources: [cm.yaml, ../../../../{key}/apps]\n"),
            "resources[1]",
            "leaves the source's checkout",
        ),
        (
            "apps/base/kustomization.yaml",
            format!(
                "resources: [cm.yaml]\nconfigMapGenerator:\n- name: stolen\n  files: [token=../../../../{key}/apps/cm.yaml]\n"
            ),
            "configMapGenerator[0].files[0]",
            "leaves the source's checkout",
        ),
        (
            "apps/kustomization.yaml",
            "resources: [cm.yaml, base]\npatches:\n- path: /etc/hostname\n".to_owned(),
            "patches[0].path",
            "absolute path",
        ),
        (
            "apps/kustomization.yaml",
            "resources: [cm.yaml, base]\ncomponents: [../..]\n".to_owned(),
            "components[0]",
            "leaves the source's checkout",
        ),
    ];
    for (file, text, field, rule) in cases {
        tenant.write("apps/kustomization.yaml", "resources: [cm.yaml, base]\n");
        tenant.write("apps/base/kustomization.yaml", "resources: [cm.yaml]\n");
        tenant.write(file, &text);
        let commit = tenant.commit(&format!("reach out through {field}"));
        let gs = wait_gitsync(&t, "tenant", &format!("a pass of {commit}"), |gs| {
            gs.status
                .as_ref()
                .and_then(|s| s.last_attempted_revision.as_deref())
                .is_some_and(|r| r.ends_with(&commit))
        })
        .await;
        let (ok, reason, msg) = ready_condition(&gs).expect("ready");
        assert!(
            !ok,
            "{file} with {field} leading out of the checkout was rendered: {msg}; inventory {:?}",
            inventory_ids(&t, &gs).await
        );
        for needle in [file, field, rule] {
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
        assert_eq!(reason, "RenderRefused", "{msg}");
        assert!(stalled(&gs), "a refusal needs a change: Stalled");
        wait_warning(&t, "tenant", &[file, field, rule]).await;
        let inventory = inventory_ids(&t, &gs).await;
        assert!(
            !inventory.iter().any(|i| i.contains("victim-data")),
            "{inventory:?}"
        );
    }
    assert_eq!(
        applied_by(&t, "victim-data").await.as_deref(),
        Some("victim"),
        "the victim's object was applied by the tenant"
    );
    assert!(!configmap_exists(&t, "stolen").await);
    assert_no_canary(&t, &agent).await;
}

/// Render: a remote base is fetched only when the agent's admin allows remote bases
/// (`--allow-remote-bases`) and the GitSync asks for them (`spec.allowRemoteBases`); until then
/// the remote server sees no request at all.
#[tokio::test]
async fn remote_bases_need_the_agent_flag_and_the_gitsync_field() {
    let t = AgentTest::new("remote-bases").await;
    let ns = t.app_ns.clone();
    let remote = TestRepo::named("remote");
    remote.write("base/kustomization.yaml", "resources: [cm.yaml]\n");
    remote.write("base/cm.yaml", &configmap(&ns, "remote-cm", "r"));
    remote.commit("a base");
    let remote_server = HttpGitServer::start(remote.root(), HttpAuth::None);
    let tenant = TestRepo::named("tenant");
    let remote_url = format!("{}//base?ref=main", remote_server.url(remote.path()));
    tenant.write(
        "apps/kustomization.yaml",
        &format!("resources:\n- cm.yaml\n- {remote_url}\n"),
    );
    tenant.write("apps/cm.yaml", &configmap(&ns, "tenant-cm", "t"));
    tenant.commit("a remote base");
    let tenant_server = HttpGitServer::start(tenant.root(), HttpAuth::None);
    let url = tenant_server.url(tenant.path());

    let agent = start_agent(&t, &[]);
    apply_gitsync(&t, "tenant", json!({"url": url, "path": "apps"})).await;
    let gs = wait_gitsync(&t, "tenant", "a pass", |_| true).await;
    assert!(
        remote_server.requests().is_empty(),
        "the remote base was fetched: {:?}; status {:?}",
        remote_server.requests(),
        gs.status
    );
    let msg = wait_refused(
        &t,
        "tenant",
        &[
            "apps/kustomization.yaml",
            "resources[1]",
            "remote",
            "--allow-remote-bases",
            "spec.allowRemoteBases",
        ],
    )
    .await;
    assert!(msg.contains("127.0.0.1"), "names the URL: {msg}");
    wait_warning(&t, "tenant", &["resources[1]", "remote"]).await;

    // The GitSync alone cannot allow it: a tenant writes its own GitSync.
    apply_gitsync(
        &t,
        "tenant",
        json!({"url": url, "path": "apps", "allowRemoteBases": true}),
    )
    .await;
    wait_refused(&t, "tenant", &["resources[1]", "this agent"]).await;
    assert!(remote_server.requests().is_empty());
    assert!(!configmap_exists(&t, "remote-cm").await);
    drop(agent);

    // The agent's flag alone does not either.
    let agent = start_agent(&t, &["--allow-remote-bases"]);
    apply_gitsync(&t, "tenant", json!({"url": url, "path": "apps"})).await;
    wait_refused(
        &t,
        "tenant",
        &["resources[1]", "spec.allowRemoteBases: true"],
    )
    .await;
    assert!(remote_server.requests().is_empty());

    // Both: rendered.
    apply_gitsync(
        &t,
        "tenant",
        json!({"url": url, "path": "apps", "allowRemoteBases": true}),
    )
    .await;
    wait_ready(&t, "tenant").await;
    assert!(configmap_exists(&t, "remote-cm").await);
    assert!(!remote_server.requests().is_empty());
    drop(agent);
}

/// Render: plain YAML never follows a symbolic link (git checks links out as files holding
/// the link text), and `spec.path` cannot leave the checkout.
#[tokio::test]
async fn plain_files_never_follow_links_out_of_the_checkout() {
    let t = AgentTest::new("links").await;
    let ns = t.app_ns.clone();
    let outside = t.work.path().join("outside");
    std::fs::create_dir_all(outside.join("dir")).expect("mkdir");
    std::fs::write(outside.join("cm.yaml"), configmap(&ns, "outside-cm", "o")).expect("write");
    std::fs::write(
        outside.join("dir/kustomization.yaml"),
        "resources: [../cm.yaml]\n",
    )
    .expect("write");
    let repo = TestRepo::named("links");
    repo.write("apps/cm.yaml", &configmap(&ns, "inside-cm", "i"));
    std::os::unix::fs::symlink(outside.join("cm.yaml"), repo.path().join("apps/link.yaml"))
        .expect("symlink");
    repo.write("kust/kustomization.yaml", "resources: [linked]\n");
    std::os::unix::fs::symlink(outside.join("dir"), repo.path().join("kust/linked"))
        .expect("symlink");
    repo.commit("links to files outside");
    assert_eq!(
        repo.git(&["ls-files", "-s", "apps/link.yaml"])
            .split_whitespace()
            .next(),
        Some("120000"),
        "committed as a symbolic link"
    );
    let server = HttpGitServer::start(repo.root(), HttpAuth::None);
    let url = server.url(repo.path());
    let _agent = start_agent(&t, &[]);
    apply_gitsync(&t, "plain", json!({"url": url, "path": "apps"})).await;
    apply_gitsync(&t, "kust", json!({"url": url, "path": "kust"})).await;
    apply_gitsync(&t, "up", json!({"url": url, "path": "../.."})).await;
    wait_refused(&t, "plain", &["apps/link.yaml"]).await;
    wait_refused(&t, "kust", &["kust"]).await;
    wait_refused(&t, "up", &["leaves the repository"]).await;
    assert!(!configmap_exists(&t, "outside-cm").await);
}

/// `file://` URLs and local paths read the agent's own file system (other sources' clones,
/// mounted service account tokens): `run` refuses them unless started with
/// `--allow-local-sources`.
#[tokio::test]
async fn local_sources_need_the_agent_flag() {
    let t = AgentTest::new("local").await;
    let ns = t.app_ns.clone();
    // One object per GitSync: an object two GitSyncs render is applied by one only.
    let (repo, _) = TestRepo::with_files(&[
        ("apps/cm.yaml", &configmap(&ns, "local-cm", "l")),
        ("apps-path/cm.yaml", &configmap(&ns, "local-cm-path", "l")),
    ]);
    let agent = start_agent(&t, &[]);
    apply_gitsync(
        &t,
        "fileurl",
        json!({"url": repo.file_url(), "path": "apps"}),
    )
    .await;
    apply_gitsync(
        &t,
        "path",
        json!({"url": repo.path().display().to_string(), "path": "apps-path"}),
    )
    .await;
    for name in ["fileurl", "path"] {
        let gs = wait_gitsync(&t, name, "a pass", |_| true).await;
        let (ok, _, msg) = ready_condition(&gs).expect("ready");
        assert!(!ok, "GitSync {name} with a local source was synced: {msg}");
        assert!(!configmap_exists(&t, "local-cm").await);
        assert!(!configmap_exists(&t, "local-cm-path").await);
        let msg = wait_refused(&t, name, &["--allow-local-sources"]).await;
        let gs = wait_gitsync(&t, name, "Stalled", stalled).await;
        assert_eq!(
            ready_condition(&gs).expect("ready").1,
            "SourceRefused",
            "{msg}"
        );
        wait_warning(&t, name, &["--allow-local-sources"]).await;
    }
    drop(agent);
    let _agent = start_agent(&t, &["--allow-local-sources"]);
    wait_ready(&t, "fileurl").await;
    wait_ready(&t, "path").await;
    assert!(configmap_exists(&t, "local-cm").await);
    assert!(configmap_exists(&t, "local-cm-path").await);
}

/// Credentials go only to the origin (scheme, host, port) the GitSync names: a server that
/// redirects elsewhere gets the pass refused, naming both origins, and the other origin
/// receives nothing. A redirect on the same origin (a moved repository) is followed.
#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let t = AgentTest::new("redirect").await;
    let ns = t.app_ns.clone();
    let (repo, _) =
        TestRepo::with_files(&[("apps/cm.yaml", &configmap(&ns, "redirected-cm", "x"))]);
    let elsewhere = HttpGitServer::start(repo.root(), HttpAuth::None);
    let origin = HttpGitServer::start_redirecting(
        repo.root(),
        HttpAuth::Bearer(CANARY.into()),
        "/",
        &elsewhere.origin(),
    );
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.app_ns);
    secrets
        .patch(
            "git-token",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "git-token",
                             "labels": {"gitseal.dev/git-credentials": "true"}},
                "stringData": {"bearerToken": CANARY},
            })),
        )
        .await
        .expect("secret");
    let agent = start_agent(&t, &[]);
    apply_gitsync(
        &t,
        "moved",
        json!({"url": origin.url(repo.path()), "path": "apps", "secretRef": {"name": "git-token"}}),
    )
    .await;
    let gs = wait_gitsync(&t, "moved", "a pass", |_| true).await;
    let leaked: Vec<_> = elsewhere
        .requests()
        .into_iter()
        .filter(|r| r.authorization.is_some())
        .collect();
    assert!(
        leaked.is_empty(),
        "the other origin received credentials: {leaked:?}; status {:?}",
        gs.status
    );
    assert!(
        origin
            .requests()
            .iter()
            .any(|r| r.authorization.as_deref() == Some(&format!("Bearer {CANARY}"))),
        "the GitSync's own origin gets the token"
    );
    let from = format!("http://127.0.0.1:{}", origin.port());
    let to = format!("http://127.0.0.1:{}", elsewhere.port());
    let msg = wait_refused(&t, "moved", &["redirect", &from, &to]).await;
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert!(!configmap_exists(&t, "redirected-cm").await);
    let gs = wait_gitsync(&t, "moved", "Stalled", stalled).await;
    assert_eq!(
        ready_condition(&gs).expect("ready").1,
        "SourceRefused",
        "{msg}"
    );
    wait_warning(&t, "moved", &["redirect", &from, &to]).await;

    // The same origin, a moved path: followed, with the token.
    let same = HttpGitServer::start_redirecting(
        repo.root(),
        HttpAuth::Bearer(CANARY.into()),
        "/old/",
        "/",
    );
    let url = format!("http://127.0.0.1:{}/old/repo", same.port());
    apply_gitsync(
        &t,
        "same",
        json!({"url": url, "path": "apps", "secretRef": {"name": "git-token"}}),
    )
    .await;
    wait_ready(&t, "same").await;
    assert!(configmap_exists(&t, "redirected-cm").await);
    assert!(
        same.requests()
            .iter()
            .any(|r| r.status == 302 && r.uri.starts_with("/old/")),
        "{:?}",
        same.requests()
    );
    assert_no_canary(&t, &agent).await;
}

/// `secretRef` sends a Secret only when it opted in as git credentials (label), and only to
/// the hosts it names (annotation), so a GitSync cannot post a database password to any URL.
#[tokio::test]
async fn secret_ref_needs_a_secret_that_opted_in() {
    let t = AgentTest::new("optin").await;
    let ns = t.app_ns.clone();
    let (repo, _) = TestRepo::with_files(&[("apps/cm.yaml", &configmap(&ns, "optin-cm", "y"))]);
    let server = HttpGitServer::start(
        repo.root(),
        HttpAuth::Basic {
            username: "app".into(),
            password: CANARY.into(),
        },
    );
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), &t.app_ns);
    let put = |labels: Value, annotations: Value| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    "db-creds",
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "db-creds", "labels": labels,
                                     "annotations": annotations},
                        "stringData": {"username": "app", "password": CANARY},
                    })),
                )
                .await
                .expect("secret");
        }
    };
    put(json!({}), json!({})).await;
    let agent = start_agent(&t, &[]);
    apply_gitsync(
        &t,
        "creds",
        json!({"url": server.url(repo.path()), "path": "apps", "secretRef": {"name": "db-creds"}}),
    )
    .await;
    let gs = wait_gitsync(&t, "creds", "a pass", |_| true).await;
    let sent = |server: &HttpGitServer| {
        server
            .requests()
            .into_iter()
            .filter(|r| r.authorization.is_some())
            .count()
    };
    assert_eq!(
        sent(&server),
        0,
        "a Secret that never opted in was sent: {:?}; status {:?}",
        server.requests(),
        gs.status
    );
    wait_refused(&t, "creds", &["db-creds", "gitseal.dev/git-credentials"]).await;
    wait_warning(&t, "creds", &["db-creds", "gitseal.dev/git-credentials"]).await;
    assert!(!configmap_exists(&t, "optin-cm").await);

    // Opted in, for another host only.
    put(
        json!({"gitseal.dev/git-credentials": "true"}),
        json!({"gitseal.dev/git-credentials-hosts": "git.example.com, github.com"}),
    )
    .await;
    wait_refused(&t, "creds", &["db-creds", "git.example.com", "127.0.0.1"]).await;
    assert_eq!(sent(&server), 0, "{:?}", server.requests());

    // Opted in for this host: used.
    put(
        json!({"gitseal.dev/git-credentials": "true"}),
        json!({"gitseal.dev/git-credentials-hosts": "git.example.com, 127.0.0.1"}),
    )
    .await;
    wait_ready(&t, "creds").await;
    assert!(configmap_exists(&t, "optin-cm").await);
    assert!(sent(&server) > 0);
    assert_no_canary(&t, &agent).await;
}

/// One program git would run if it read the hostile cache's config: it records that it ran.
fn marker_script(bin: &Path, markers: &Path, name: &str, then: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = bin.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$0 $*\" >> '{}'\n{then}\n",
            markers.join(name).display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A bare clone at `<cache>/<key>/git` whose config and hooks run the marker scripts: an fsmonitor,
/// hooks, a smudge filter (the repository's .gitattributes names it), an upload-pack
/// command and an alternate refs command.
fn plant_hostile_clone(cache: &Path, key: &str, work: &Path, source: &TestRepo) {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = work.join("bin");
    let markers = work.join("markers");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(&markers).expect("mkdir");
    let fsmonitor = marker_script(&bin, &markers, "fsmonitor", "exit 1");
    let smudge = marker_script(&bin, &markers, "smudge", "exec cat");
    let upload = marker_script(&bin, &markers, "uploadpack", "exec git-upload-pack \"$@\"");
    let alternates = marker_script(&bin, &markers, "alternate-refs", "exit 0");
    let hooks = work.join("hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    for hook in ["post-checkout", "reference-transaction", "pre-auto-gc"] {
        let p = marker_script(&bin, &markers, hook, "exit 0");
        std::fs::copy(&p, hooks.join(hook)).expect("hook");
        std::fs::set_permissions(hooks.join(hook), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let root = cache.join(key);
    let git_dir = root.join("git");
    std::fs::create_dir_all(root.join("tree")).expect("mkdir");
    git(
        cache,
        &["init", "-q", "--bare", &git_dir.display().to_string()],
    );
    std::fs::write(
        git_dir.join("config"),
        format!(
            "[core]\n\trepositoryformatversion = 0\n\tbare = true\n\tfsmonitor = {}\n\thooksPath = {}\n\talternateRefsCommand = {}\n[filter \"evil\"]\n\tsmudge = {}\n[remote \"origin\"]\n\turl = {}\n\tuploadpack = {}\n",
            fsmonitor.display(),
            hooks.display(),
            alternates.display(),
            smudge.display(),
            source.file_url(),
            upload.display(),
        ),
    )
    .expect("config");
    std::fs::write(
        git_dir.join("objects/info/alternates"),
        format!("{}\n", source.path().join(".git/objects").display()),
    )
    .expect("alternates");
}

fn markers(work: &Path) -> Vec<String> {
    std::fs::read_dir(work.join("markers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes `dir` and everything below it look like another local user's: owned by uid/gid
/// 65534 when the test runs as root, and writable by everyone either way.
fn hand_to_another_user(dir: &Path) -> &'static str {
    use std::os::unix::fs::PermissionsExt as _;
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        if root {
            std::os::unix::fs::lchown(&p, Some(65534), Some(65534)).expect("chown");
        }
        if p.is_dir() && !p.is_symlink() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("ls")
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    if root {
        "owned by uid 65534"
    } else {
        "writable by"
    }
}

fn sync_command(work: &Path, url: &str, extra: &[&str]) -> Command {
    let mut args = vec!["sync", "--url", url, "--path", "apps", "--plan"];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let mut cmd = agent_binary(&args);
    cmd.env("TMPDIR", work.join("tmp"))
        .env("HOME", work.join("home"))
        .env_remove("XDG_CACHE_HOME")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    cmd
}

/// A local user on the agent's host cannot get code run as the agent through its git cache:
/// a cache folder that is not private to the agent's user is refused (`sync` and `run`),
/// `sync`'s default cache is per user, and git never runs the programs a clone's config
/// names (fsmonitor, hooks, filters, upload-pack, alternate refs command).
#[tokio::test]
async fn a_hostile_git_cache_is_refused_and_never_runs_code() {
    let t = AgentTest::new("cache").await;
    let work = t.work.path();
    std::fs::create_dir_all(work.join("tmp")).expect("mkdir");
    std::fs::create_dir_all(work.join("home")).expect("mkdir");
    let source = TestRepo::named("cached");
    source.write("apps/cm.yaml", &configmap(&t.app_ns, "cached-cm", "c"));
    source.write(".gitattributes", "* filter=evil\n");
    source.commit("with attributes");
    let url = source.file_url();

    // The cache key of this source: what a first `sync` creates.
    let scratch = work.join("scratch");
    let out = sync_command(work, &url, &["--cache-dir", &scratch.display().to_string()])
        .output()
        .expect("sync");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read_dir(&scratch)
        .expect("scratch cache")
        .flatten()
        .find(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a clone");

    // Another user pre-created the old shared default, $TMPDIR/gitseal-agent-cache.
    let shared = work.join("tmp/gitseal-agent-cache");
    std::fs::create_dir_all(&shared).expect("mkdir");
    plant_hostile_clone(&shared, &key, &work.join("attacker"), &source);
    let why = hand_to_another_user(&shared);
    let out = sync_command(work, &url, &[]).output().expect("sync");
    assert!(
        markers(&work.join("attacker")).is_empty(),
        "git ran the attacker's programs: {:?}\n{}",
        markers(&work.join("attacker")),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the per-user default cache works: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        work.join("home/.cache/gitseal-agent").is_dir(),
        "sync's default cache is below $HOME/.cache"
    );

    // Named explicitly, it is refused, by `sync` and by `run`.
    let shown = shared.display().to_string();
    let out = sync_command(work, &url, &["--cache-dir", &shown])
        .output()
        .expect("sync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&shown) && stderr.contains(why),
        "names the folder and why: {stderr}"
    );
    let run_args: Vec<String> = [
        "run",
        "--namespace",
        &t.agent_ns,
        "--watch-namespace",
        &t.app_ns,
        "--health-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--cache-dir",
        &shown,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut run = agent_binary(&run_args)
        .env("KUBECONFIG", t.cp.kubeconfig_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = run.kill();
            let _ = run.wait();
            panic!("`run` with another user's cache folder kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&shown) && stderr.contains(why),
        "names the folder and why: {stderr}"
    );
    assert!(markers(&work.join("attacker")).is_empty());

    // The agent's own private cache, its clone's config rewritten behind its back: git runs
    // none of what that config names either.
    let own = work.join("own");
    std::fs::create_dir(&own).expect("mkdir");
    std::fs::set_permissions(&own, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    plant_hostile_clone(&own, &key, &work.join("planted"), &source);
    let out = sync_command(work, &url, &["--cache-dir", &own.display().to_string()])
        .output()
        .expect("sync");
    assert!(
        markers(&work.join("planted")).is_empty(),
        "git ran programs named by the clone's config: {:?}",
        markers(&work.join("planted"))
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cached-cm"),
        "the plan shows the source's objects"
    );
}
