//! End-to-end passes against the real control plane (tests/testenv) with real git
//! repositories (file://): create, update, drift correction, prune rules, safety stops, and
//! the zero-write no-op pass.

mod support;

use std::sync::Arc;
use std::time::Duration;

use gitseal::{Keyring, SecretKey};
use gitseal_agent::serve::api_counters::{ApiCounters, counting_client};
use gitseal_agent::sync::git::{GitAuth, GitRef, GitSource};
use gitseal_agent::sync::inventory::Memory;
use gitseal_agent::sync::pass::{PassError, SyncSpec, SyncState, run_pass};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use support::{TestRepo, apps_spec, sealed_yaml};

const CANARY: &str = "CANARY-e2e-7d1f";

fn deployment(ns: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: nginx:1.27}}]\n"
    )
}

fn configmap(ns: &str, name: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}{extra_meta}}}\ndata: {{a: b}}\n"
    )
}

struct Harness {
    client: kube::Client,
    counters: Arc<ApiCounters>,
    cache: tempfile::TempDir,
    spec: SyncSpec,
    state: SyncState,
    ring: Keyring,
}

impl Harness {
    async fn new(repo: &TestRepo, owner_ns: &str, key: &SecretKey) -> Harness {
        let cp = gitseal_testenv::shared().await;
        let counters = Arc::new(ApiCounters::default());
        let client = counting_client(cp.config(), counters.clone()).expect("client");
        Harness {
            client,
            counters,
            cache: tempfile::tempdir().expect("tempdir"),
            // The harness is the agent, its source in the "agent's namespace".
            spec: apps_spec(
                owner_ns,
                "e2e",
                GitSource {
                    url: repo.file_url(),
                    reference: GitRef::Branch("main".into()),
                    auth: GitAuth::None,
                    timeout: Duration::from_secs(60),
                    allow_local: true,
                },
                Duration::from_secs(60),
            ),
            state: SyncState::default(),
            ring: Keyring::from_iter([key.clone()]),
        }
    }
    async fn pass(&mut self) -> Result<gitseal_agent::sync::pass::PassOutcome, PassError> {
        run_pass(
            &self.client,
            &self.spec,
            &mut self.state,
            &self.ring,
            self.cache.path(),
            4,
            &mut Memory,
        )
        .await
        .map_err(|(_, e)| e)
    }
}

#[tokio::test]
async fn full_lifecycle_of_a_source() {
    let cp = gitseal_testenv::shared().await;
    let ns = cp.namespace("e2e-life").await;
    let key = SecretKey::generate();
    let repo = TestRepo::new();
    repo.write("apps/deploy.yaml", &deployment(&ns, 1));
    repo.write("apps/cm.yaml", &configmap(&ns, "settings", ""));
    repo.write(
        "apps/keep.yaml",
        &configmap(&ns, "keep", ", annotations: {gitseal.dev/prune: disabled}"),
    );
    repo.write("apps/db.sealed.yaml", &sealed_yaml(&key, &ns, "db", CANARY));
    repo.write("elsewhere/ignored.yaml", &configmap(&ns, "ignored", ""));
    repo.commit("first");
    let mut h = Harness::new(&repo, &ns, &key).await;

    // First pass creates everything, the Secret decrypted.
    let out = h.pass().await.expect("first pass");
    assert_eq!(out.report.applied.len(), 4, "{:?}", out.report);
    assert!(out.revision.starts_with("main@sha1:"), "{}", out.revision);
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &ns);
    let s = secrets.get("db").await.expect("secret created");
    assert_eq!(s.data.expect("data")["password"].0, CANARY.as_bytes());
    let s = secrets.get("db").await.expect("secret");
    let labels = s.metadata.labels.expect("labels");
    assert_eq!(
        labels.get("gitseal.dev/sync-name").map(String::as_str),
        Some("e2e")
    );
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), &ns);
    assert!(
        cms.get_opt("ignored").await.expect("get").is_none(),
        "outside path"
    );

    // A pass over an unchanged repo and untouched cluster writes nothing.
    let (r0, w0) = (h.counters.reads(), h.counters.writes());
    let out = h.pass().await.expect("no-op pass");
    assert_eq!(out.report.applied.len(), 0, "{:?}", out.report);
    assert_eq!(out.report.unchanged, 4);
    assert_eq!(h.counters.writes() - w0, 0, "a no-op pass must not write");
    // One LIST per kind (Deployment, ConfigMap, Secret): reads ≤ kinds + constant.
    let reads = h.counters.reads() - r0;
    assert!(reads <= 3 + 2, "reads: {reads}");

    // A commit that changes replicas is applied.
    repo.write("apps/deploy.yaml", &deployment(&ns, 2));
    repo.commit("scale");
    let out = h.pass().await.expect("pass 3");
    assert_eq!(out.report.applied.len(), 1, "{:?}", out.report);
    let deps: Api<Deployment> = Api::namespaced(h.client.clone(), &ns);
    let replicas = |d: Deployment| d.spec.and_then(|s| s.replicas);
    assert_eq!(replicas(deps.get("web").await.expect("get")), Some(2));

    // A hand edit of a managed field is put back.
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
    )
    .await
    .expect("hand edit");
    let out = h.pass().await.expect("pass 4");
    assert_eq!(
        out.report.applied.len(),
        1,
        "only the drifted object: {:?}",
        out.report
    );
    assert_eq!(replicas(deps.get("web").await.expect("get")), Some(2));

    // A controller writing status (as the Deployment controller does all day) is not drift.
    deps.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"replicas": 2, "readyReplicas": 1}})),
    )
    .await
    .expect("status write");
    let w0 = h.counters.writes();
    let out = h.pass().await.expect("status churn pass");
    assert_eq!(out.report.applied.len(), 0, "{:?}", out.report);
    assert_eq!(h.counters.writes() - w0, 0);

    // Removing one of the agent's labels by hand is drift, and is put back.
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(serde_json::json!([
                {"op": "remove", "path": "/metadata/labels/gitseal.dev~1sync-name"}
            ]))
            .expect("patch"),
        ),
    )
    .await
    .expect("label edit");
    let out = h.pass().await.expect("label drift pass");
    assert_eq!(out.report.applied.len(), 1, "{:?}", out.report);

    // Files removed from git are pruned, except objects marked prune: disabled.
    repo.remove("apps/cm.yaml");
    repo.remove("apps/keep.yaml");
    repo.commit("remove");
    let out = h.pass().await.expect("pass 5");
    assert_eq!(out.report.pruned.len(), 1, "{:?}", out.report);
    assert!(cms.get_opt("settings").await.expect("get").is_none());
    assert!(cms.get_opt("keep").await.expect("get").is_some());

    // A decryption error stops the pass before anything is deleted.
    let other = SecretKey::generate();
    repo.write(
        "apps/db.sealed.yaml",
        &sealed_yaml(&other, &ns, "db", CANARY),
    );
    repo.remove("apps/deploy.yaml");
    repo.commit("bad seal");
    let e = h.pass().await.expect_err("cannot open");
    assert_eq!(e.kind(), "no_matching_key");
    assert!(!e.to_string().contains(CANARY));
    assert!(
        deps.get_opt("web").await.expect("get").is_some(),
        "nothing pruned"
    );

    // A render error deletes nothing either.
    repo.write("apps/db.sealed.yaml", &sealed_yaml(&key, &ns, "db", CANARY));
    repo.write(
        "apps/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n",
    );
    repo.commit("broken");
    let e = h.pass().await.expect_err("render error");
    assert!(
        e.to_string().contains("apps/broken.yaml: document 1"),
        "{e}"
    );
    // Only a change can fix it: the same revision is not rendered again before its backoff
    // is over (a new commit, spec or key is tried at once, as below).
    let e = h.pass().await.expect_err("held back");
    assert_eq!(e.kind(), "held", "{e}");
    assert!(
        deps.get_opt("web").await.expect("get").is_some(),
        "nothing pruned"
    );

    // A path that renders to nothing does not prune everything.
    for f in ["apps/db.sealed.yaml", "apps/broken.yaml"] {
        repo.remove(f);
    }
    repo.write("apps/README.md", "nothing to apply\n");
    repo.commit("empty");
    let e = h.pass().await.expect_err("empty refused");
    assert_eq!(e.kind(), "empty_refused");
    assert!(secrets.get_opt("db").await.expect("get").is_some());
    h.spec.allow_empty = true;
    let out = h.pass().await.expect("allowed");
    assert_eq!(out.report.pruned.len(), 2, "{:?}", out.report);
    assert!(secrets.get_opt("db").await.expect("get").is_none());
}

#[tokio::test]
async fn plaintext_secret_and_scope_mismatch_stall() {
    let cp = gitseal_testenv::shared().await;
    let ns = cp.namespace("e2e-stall").await;
    let key = SecretKey::generate();
    let repo = TestRepo::new();
    repo.write(
        "apps/plain.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: p, namespace: {ns}}}\nstringData: {{a: {CANARY}}}\n"
        ),
    );
    repo.commit("plain");
    let mut h = Harness::new(&repo, &ns, &key).await;
    let e = h.pass().await.expect_err("plaintext refused");
    assert_eq!(e.kind(), "plaintext_secret");
    assert!(!e.to_string().contains(CANARY));
    h.spec.allow_plaintext = true;
    h.pass().await.expect("allowed when asked");

    // A SealedSecret sealed for another namespace fails with a scope error.
    repo.remove("apps/plain.yaml");
    repo.write(
        "apps/db.yaml",
        &sealed_yaml(&key, "somewhere-else", "db", CANARY),
    );
    repo.commit("moved");
    h.spec.target_namespace = Some(ns.clone());
    let e = h.pass().await.expect_err("scope");
    assert_eq!(e.kind(), "scope_mismatch");
    assert!(e.to_string().contains("scope mismatch"), "{e}");
}
