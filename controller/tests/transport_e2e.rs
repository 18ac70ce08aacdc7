//! Agent passes into the real control plane over every git transport on loopback: git
//! daemon, smart HTTP with a bearer token, ssh with a checked host key. A source that cannot
//! be reached, or refuses the credentials, fails the pass with a clear kind and leaves the
//! cluster as it is.

mod support;

use std::path::Path;
use std::time::Duration;

use gitseal::{Keyring, SecretKey};
use gitseal_agent::sync::git::{GitAuth, GitRef, GitSource};
use gitseal_agent::sync::inventory::Memory;
use gitseal_agent::sync::pass::{PassError, PassOutcome, SyncSpec, SyncState, run_pass};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use secrecy::SecretString;
use support::{GitDaemon, HttpAuth, HttpGitServer, SshGitServer, TestRepo, apps_spec};

fn repo_for(ns: &str) -> TestRepo {
    let (repo, _) = TestRepo::with_files(&[(
        "apps/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{v: '1'}}\n"
        ),
    )]);
    repo
}

fn spec(ns: &str, url: String, auth: GitAuth) -> SyncSpec {
    let source = GitSource {
        url,
        reference: GitRef::Branch("main".into()),
        auth,
        timeout: Duration::from_secs(30),
        allow_local: false,
    };
    apps_spec(ns, "transport", source, Duration::from_secs(30))
}

/// One pass of `spec` (concurrency 4, inventory in memory), its git cache
/// in `cache`.
async fn pass(
    client: &kube::Client,
    spec: &SyncSpec,
    state: &mut SyncState,
    ring: &Keyring,
    cache: &Path,
) -> Result<PassOutcome, (Option<String>, PassError)> {
    run_pass(client, spec, state, ring, cache, 4, &mut Memory).await
}

/// Two passes: the first applies the ConfigMap; after a commit the second updates it.
async fn two_passes(ns: &str, repo: &TestRepo, mut spec: SyncSpec) -> (SyncSpec, SyncState) {
    let cp = gitseal_testenv::shared().await;
    let client = cp.client();
    let cache = tempfile::tempdir().expect("tempdir");
    let ring = Keyring::from_iter([SecretKey::generate()]);
    let mut state = SyncState::default();
    let out = pass(&client, &spec, &mut state, &ring, cache.path())
        .await
        .map_err(|(_, e)| e)
        .expect("first pass");
    assert_eq!(out.report.applied.len(), 1);
    repo.write(
        "apps/cm.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{v: '2'}}\n"),
    );
    let sha = repo.commit("v2");
    let out = pass(&client, &spec, &mut state, &ring, cache.path())
        .await
        .map_err(|(_, e)| e)
        .expect("second pass");
    assert_eq!(out.revision, format!("main@sha1:{sha}"));
    let cms: Api<ConfigMap> = Api::namespaced(client, ns);
    let cm = cms.get("settings").await.expect("configmap");
    assert_eq!(cm.data.expect("data")["v"], "2");
    spec.timeout = Duration::from_secs(10);
    (spec, state)
}

/// A pass of `spec` (after [`two_passes`]) with a fresh cache and no keys that must fail:
/// its revision and error.
async fn failing_pass(
    spec: &SyncSpec,
    state: &mut SyncState,
    why: &str,
) -> (Option<String>, PassError) {
    let cache = tempfile::tempdir().expect("tempdir");
    let client = gitseal_testenv::shared().await.client();
    pass(&client, spec, state, &Keyring::new(), cache.path())
        .await
        .expect_err(why)
}

#[tokio::test]
async fn git_daemon_source() {
    let ns = gitseal_testenv::shared()
        .await
        .namespace("git-daemon")
        .await;
    let repo = repo_for(&ns);
    let daemon = GitDaemon::start(repo.root());
    two_passes(
        &ns,
        &repo,
        spec(&ns, daemon.url(repo.path()), GitAuth::None),
    )
    .await;
}

#[tokio::test]
async fn smart_http_source_with_token() {
    let ns = gitseal_testenv::shared().await.namespace("git-http").await;
    let repo = repo_for(&ns);
    let server = HttpGitServer::start(repo.root(), HttpAuth::Bearer("t0ken-e2e".into()));
    let good = GitAuth::Token(SecretString::from("t0ken-e2e".to_owned()));
    let (mut spec, mut state) =
        two_passes(&ns, &repo, spec(&ns, server.url(repo.path()), good)).await;

    // A wrong token fails the pass as an auth error; the cluster keeps its objects.
    spec.source.auth = GitAuth::Token(SecretString::from("wrong-token".to_owned()));
    let (_, e) = failing_pass(&spec, &mut state, "wrong token").await;
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(!e.to_string().contains("wrong-token"), "{e}");
    let client = gitseal_testenv::shared().await.client();
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    assert!(cms.get_opt("settings").await.expect("get").is_some());
}

#[tokio::test]
async fn ssh_source_with_checked_host_key() {
    let ns = gitseal_testenv::shared().await.namespace("git-ssh").await;
    let repo = repo_for(&ns);
    let server = SshGitServer::start();
    let auth = GitAuth::Ssh {
        identity: SecretString::from(server.client_identity()),
        known_hosts: server.known_hosts(),
    };
    let (mut spec, mut state) =
        two_passes(&ns, &repo, spec(&ns, server.url(repo.path()), auth)).await;

    // The wrong host key refuses to connect.
    spec.source.auth = GitAuth::Ssh {
        identity: SecretString::from(server.client_identity()),
        known_hosts: server.wrong_known_hosts(),
    };
    let (_, e) = failing_pass(&spec, &mut state, "host key").await;
    assert_eq!(e.kind(), "host_key", "{e}");
}

#[tokio::test]
async fn unreachable_source_keeps_the_cluster() {
    let ns = gitseal_testenv::shared().await.namespace("git-down").await;
    let repo = repo_for(&ns);
    let daemon = GitDaemon::start(repo.root());
    let url = daemon.url(repo.path());
    let (spec, mut state) = two_passes(&ns, &repo, spec(&ns, url, GitAuth::None)).await;
    drop(daemon);
    let (revision, e) = failing_pass(&spec, &mut state, "server is gone").await;
    let client = gitseal_testenv::shared().await.client();
    assert_eq!(e.kind(), "unreachable", "{e}");
    assert!(revision.is_none());
    assert!(e.to_string().contains("127.0.0.1"), "names the server: {e}");
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    assert!(
        cms.get_opt("settings").await.expect("get").is_some(),
        "cluster kept as it is"
    );
    assert!(
        !state.inventory.is_empty(),
        "the last good inventory is kept"
    );
}
