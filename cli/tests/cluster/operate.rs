//! The operator commands against the real control plane and a running agent: `gitseal get`
//! (table, YAML, JSON, all namespaces, hostile messages), `gitseal diff` (created, changed,
//! unchanged, refused; Secret values never shown; nothing written) and `gitseal version`
//! (client; the running agent's published version, else the agent's Deployment), each with the
//! bad input it must refuse.

use std::process::Output;

use gitseal_api::GitSync;
use gitseal_testenv::e2e::{AgentTest, DEPLOY_DIR, commit_file, git, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;

use super::{Cli, head, ok, ready_at, stderr, this_binary_as_agent, wait_applied};

const PLAIN_CANARY: &str = "CANARY-plain-51c0e";
const SEALED_CANARY: &str = "CANARY-sealed-8a2d4";
const TOKEN_CANARY: &str = "CANARY-token-3f9b7";

impl Cli {
    /// `gitseal ARGS --kubeconfig …` (the admin).
    fn kube(&self, args: &[&str]) -> Output {
        let kc = self.kubeconfig.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", &kc]);
        self.raw(&all)
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn secret_yaml(ns: &str, name: &str, pairs: &[(&str, &str)]) -> String {
    let data: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData: {{{}}}\n",
        data.join(", ")
    )
}

/// Applies GitSync `name` of the app namespace with `spec`, server-side as `manager` (forced).
async fn apply_gitsync(t: &AgentTest, manager: &str, name: &str, spec: serde_json::Value) {
    Api::<DynamicObject>::namespaced_with(
        t.client.clone(),
        &t.app_ns,
        &ApiResource::erase::<GitSync>(&()),
    )
    .patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": name}, "spec": spec,
        })),
    )
    .await
    .unwrap_or_else(|e| panic!("GitSync {name}: {e}"));
}

#[tokio::test]
async fn get_and_diff_against_a_running_agent() {
    let t = AgentTest::new("operate").await;
    let (client, app_ns, agent_ns) = (t.client.clone(), t.app_ns.clone(), t.agent_ns.clone());
    let cli = Cli::for_test(&t);
    let _agent = t.start_agent(this_binary_as_agent, &["--key-renewal", "0"]);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &app_ns);

    // A repository: a ConfigMap and a Secret sealed with the cluster's key.
    wait_for("the agent's key", || async {
        let out = cli.keys("fetch", &["-w", "cluster.txt"]);
        out.status.success().then_some(())
    })
    .await;
    let repo = t.work.path().join("repo");
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        t.work.path().join("db.yaml"),
        secret_yaml(&app_ns, "db", &[("password", SEALED_CANARY)]),
    )
    .expect("write");
    ok(
        &cli.raw(&[
            "seal",
            "-f",
            "db.yaml",
            "-R",
            "cluster.txt",
            "-w",
            "repo/apps/db.yaml",
        ]),
        "seal",
    );
    commit_file(
        &repo,
        "apps/cfg.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {app_ns}}}\ndata: {{color: blue}}\n"
        ),
        "first",
    );
    t.apply_gitsync(&repo).await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &app_ns);
    let rev = head(&repo);
    wait_applied(&syncs, &rev).await;

    // A second GitSync whose message holds terminal escapes (its path is a tenant's text).
    apply_gitsync(
        &t,
        "gitseal-test",
        "hostile",
        serde_json::json!({"url": format!("file://{}", repo.display()),
                           "path": "nope\u{1b}[2J\u{7}", "interval": "1h"}),
    )
    .await;
    wait_for("GitSync hostile not Ready", || async {
        let (ready, _) = ready_at(&syncs.get("hostile").await.ok()?)?;
        (!ready).then_some(())
    })
    .await;

    // 1. get gitsyncs: a table like `flux get`.
    let out = cli.kube(&["get", "gitsyncs", "-n", &app_ns]);
    let table = ok(&out, "get gitsyncs");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "REVISION", "SUSPENDED", "AGE", "MESSAGE"],
        "{table}"
    );
    let apps: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(apps[0], "apps", "{table}");
    assert_eq!(apps[1], "True");
    assert_eq!(apps[2], format!("main@sha1:{rev}"));
    assert_eq!(apps[3], "False");
    assert!(
        lines[2].starts_with("hostile") && lines[2].contains("False"),
        "{table}"
    );
    assert!(
        !out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07),
        "control characters reached the terminal: {table}"
    );
    assert!(table.contains("\\u{1b}[2J"), "{table}");

    // By name, as YAML: the object itself, without managedFields.
    let out = cli.kube(&["get", "gs", "apps", "-n", &app_ns, "-o", "yaml"]);
    let doc: serde_yaml::Value = serde_yaml::from_str(&ok(&out, "get -o yaml")).expect("yaml");
    assert_eq!(doc["kind"], "GitSync");
    assert_eq!(doc["metadata"]["name"], "apps");
    assert!(doc["metadata"].get("managedFields").is_none());
    assert_eq!(
        doc["status"]["lastAppliedRevision"].as_str(),
        Some(format!("main@sha1:{rev}").as_str())
    );
    // Every namespace, as JSON: a List, each item with its namespace.
    let out = cli.kube(&["get", "gitsyncs", "-A", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&ok(&out, "get -A")).expect("json");
    assert_eq!(list["kind"], "List");
    let names: Vec<(String, String)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                i["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        names.contains(&(app_ns.clone(), "apps".into())),
        "{names:?}"
    );
    let out = cli.kube(&["get", "gitsyncs", "-A"]);
    let table = ok(&out, "get -A");
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&app_ns) && l.contains(" apps ")),
        "{table}"
    );

    // get sealedsecrets: one that opens, one sealed to a key the cluster does not have.
    let sealed_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &app_ns,
        &ApiResource::erase::<gitseal_api::SealedSecret>(&()),
    );
    std::fs::write(
        t.work.path().join("direct.yaml"),
        secret_yaml(&app_ns, "direct", &[("a", SEALED_CANARY), ("b", "x")]),
    )
    .expect("write");
    let direct = ok(
        &cli.raw(&["seal", "-f", "direct.yaml", "-R", "cluster.txt"]),
        "seal",
    );
    let stranger = gitseal::SecretKey::generate().public().to_string();
    let alien = ok(
        &cli.raw(&[
            "seal",
            "-f",
            "direct.yaml",
            "-r",
            &stranger,
            "--name",
            "alien",
        ]),
        "seal",
    );
    for (name, text) in [("direct", direct), ("alien", alien)] {
        let v: serde_json::Value = serde_yaml::from_str(&text).expect("sealed yaml");
        sealed_api
            .patch(name, &PatchParams::apply("gitseal-test"), &Patch::Apply(v))
            .await
            .expect("sealedsecret");
    }
    let table = wait_for("SealedSecrets answered", || async {
        let t = stdout(&cli.kube(&["get", "sealedsecrets", "-n", &app_ns]));
        let row = |n: &str| t.lines().find(|l| l.starts_with(n)).map(str::to_owned);
        let (d, a) = (row("direct ")?, row("alien ")?);
        (d.contains(" True ") && a.contains(" False ")).then_some(t)
    })
    .await;
    let direct_row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("direct "))
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(&direct_row[..3], ["direct", "True", "2"], "{table}");
    assert!(!table.contains(SEALED_CANARY));

    // Bad input.
    let out = cli.kube(&["get", "gitsyncs", "-n", "Not_A_Namespace"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--namespace"), "{}", stderr(&out));
    let out = cli.kube(&["get", "pods"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = cli.kube(&["get", "gitsyncs", "-A", "-n", &app_ns]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = cli.kube(&["get", "gitsync", "missing", "-n", &app_ns]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!("GitSync missing not found in namespace {app_ns}")),
        "{}",
        stderr(&out)
    );
    let unpriv = t.cp.unprivileged_kubeconfig_path().display().to_string();
    let out = cli.raw(&["get", "gitsyncs", "-n", &app_ns, "--kubeconfig", &unpriv]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("forbidden") && stderr(&out).contains("ask a cluster admin"),
        "{}",
        stderr(&out)
    );
    let out = cli.raw(&["get", "gitsyncs", "--kubeconfig", "no-such-kubeconfig"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("no-such-kubeconfig"),
        "{}",
        stderr(&out)
    );
    let out = cli.kube(&["get", "gitsyncs", "-n", "gitseal-empty-ns"]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("No resources found in gitseal-empty-ns namespace."));

    // 2. diff: the checkout as committed equals the cluster.
    let apps = repo.join("apps").display().to_string();
    let diff = |extra: &[&str]| {
        let mut args = vec![
            "diff",
            "gitsync",
            "apps",
            "-n",
            &app_ns,
            "--path",
            &apps,
            "--agent-namespace",
            &agent_ns,
        ];
        args.extend_from_slice(extra);
        cli.kube(&args)
    };
    let out = diff(&[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("0 to create, 0 to change, 2 unchanged, 0 a pass would fail on"),
        "{}",
        stderr(&out)
    );

    // Local edits: a changed ConfigMap, a new one, a new sealed key, a Secret sealed for
    // another namespace, a plaintext Secret, an object of a kind the cluster does not have.
    std::fs::write(
        repo.join("apps/cfg.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {app_ns}}}\ndata: {{color: green}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: added, namespace: {app_ns}}}\ndata: {{k: v}}\n"
        ),
    )
    .expect("write");
    std::fs::write(
        t.work.path().join("token.yaml"),
        secret_yaml(&app_ns, "db", &[("token", TOKEN_CANARY)]),
    )
    .expect("write");
    ok(
        &cli.raw(&[
            "seal",
            "-f",
            "token.yaml",
            "-R",
            "cluster.txt",
            "--merge-into",
            "repo/apps/db.yaml",
        ]),
        "seal --merge-into",
    );
    std::fs::write(
        t.work.path().join("moved.yaml"),
        secret_yaml("elsewhere", "moved", &[("pw", SEALED_CANARY)]),
    )
    .expect("write");
    let moved = ok(
        &cli.raw(&["seal", "-f", "moved.yaml", "-R", "cluster.txt"]),
        "seal",
    )
    .replace("namespace: elsewhere", &format!("namespace: {app_ns}"));
    std::fs::write(repo.join("apps/moved.yaml"), moved).expect("write");
    std::fs::write(
        repo.join("apps/plain.yaml"),
        secret_yaml(&app_ns, "plain", &[("pw", PLAIN_CANARY)]),
    )
    .expect("write");
    std::fs::write(
        repo.join("apps/other-ns.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: o, namespace: someone-else}\ndata: {k: v}\n",
    )
    .expect("write");
    std::fs::write(
        repo.join("apps/widget.yaml"),
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w, namespace: {app_ns}}}\n"
        ),
    )
    .expect("write");
    let out = diff(&[]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(code(&out), 1, "{text}{err}");
    for canary in [PLAIN_CANARY, SEALED_CANARY, TOKEN_CANARY] {
        assert!(!text.contains(canary) && !err.contains(canary), "{canary}");
    }
    assert!(
        text.contains(&format!("ConfigMap {app_ns}/cfg (apps/cfg.yaml#1): would change\n  ~ data.color: \"blue\" -> \"green\"\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ConfigMap {app_ns}/added (apps/cfg.yaml#2): would be created"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Secret {app_ns}/db (apps/db.yaml#1): would change: from a SealedSecret: its values are sealed and not compared\n  + data.token: \"<redacted>\"\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Secret {app_ns}/moved (apps/moved.yaml#1): a pass would fail: spec.encryptedData.pw: sealed for")),
        "{text}"
    );
    assert!(text.contains("scope mismatch"), "{text}");
    assert!(
        text.contains(&format!(
            "Secret {app_ns}/plain (apps/plain.yaml#1): a pass would fail: plaintext Secret"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Widget.example.com {app_ns}/w (apps/widget.yaml#1): a pass would fail: no CRD for Widget (example.com/v1) in the cluster — install it first or add dependsOn")),
        "{text}"
    );
    // Tenancy: a GitSync outside the agent's namespace without a ServiceAccount writes only
    // its own namespace.
    assert!(
        text.contains("ConfigMap someone-else/o (apps/other-ns.yaml#1): a pass would fail: rule own-namespace: a GitSync outside"),
        "{text}"
    );
    assert!(
        err.contains("1 to create, 2 to change, 0 unchanged, 4 a pass would fail on"),
        "{err}"
    );
    // The same as JSON, for scripts.
    let out = diff(&["-o", "json"]);
    assert_eq!(code(&out), 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let action_of = |object: &str| {
        report["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["object"] == object)
            .map(|o| o["action"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        action_of(&format!("ConfigMap {app_ns}/cfg")).as_deref(),
        Some("change")
    );
    assert_eq!(
        action_of(&format!("ConfigMap {app_ns}/added")).as_deref(),
        Some("create")
    );
    assert_eq!(
        action_of(&format!("Secret {app_ns}/db")).as_deref(),
        Some("change")
    );
    assert_eq!(
        action_of(&format!("Secret {app_ns}/plain")).as_deref(),
        Some("refused")
    );
    assert!(!stdout(&out).contains(TOKEN_CANARY) && !stdout(&out).contains(PLAIN_CANARY));
    // Nothing was written.
    let cfg = cms.get("cfg").await.expect("cfg");
    assert_eq!(cfg.data.expect("data")["color"], "blue");
    assert!(cms.get_opt("added").await.expect("get").is_none());

    // Bad input: exit 3 (could not compare) naming what, 2 for usage.
    std::fs::write(repo.join("apps/broken.yaml"), "kind: [unclosed\n").expect("write");
    let out = diff(&[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("broken.yaml"), "{}", stderr(&out));
    std::fs::remove_file(repo.join("apps/broken.yaml")).expect("rm");
    // The folder is rendered as the agent renders it: no remote base is ever fetched, nothing
    // outside the checkout is read.
    commit_file(
        &repo,
        "remote/kustomization.yaml",
        "resources:\n- https://example.invalid/x.yaml\n",
        "remote",
    );
    commit_file(
        &repo,
        "outside/kustomization.yaml",
        "resources:\n- ../../db.yaml\n",
        "outside",
    );
    for (dir, says) in [
        ("remote", "remote resource refused"),
        ("outside", "leaves the source's checkout"),
    ] {
        let p = repo.join(dir).display().to_string();
        let out = cli.kube(&["diff", "gitsync", "apps", "-n", &app_ns, "--path", &p]);
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{dir}: {}", stderr(&out));
        assert!(!stderr(&out).contains(SEALED_CANARY));
    }
    let out = cli.kube(&[
        "diff",
        "gitsync",
        "apps",
        "-n",
        &app_ns,
        "--path",
        "no-such-dir",
    ]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
    let out = cli.kube(&["diff", "gitsync", "nope", "-n", &app_ns, "--path", &apps]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains(&format!("GitSync nope not found in namespace {app_ns}")),
        "{}",
        stderr(&out)
    );
    let out = cli.kube(&["diff", "gitsync", "apps", "-n", &app_ns]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = cli.raw(&[
        "diff",
        "gitsync",
        "apps",
        "-n",
        &app_ns,
        "--path",
        &apps,
        "--kubeconfig",
        &unpriv,
    ]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));

    // Pruning (the GitSync prunes): back to the committed folder without cfg.yaml, the
    // ConfigMap would be pruned; a folder that renders to nothing is a pass that fails.
    // (The commits above took the local edits along: back to the first commit's apps/.)
    std::fs::remove_dir_all(repo.join("apps")).expect("rm apps");
    git(&repo, &["checkout", "-q", &rev, "--", "apps"]);
    std::fs::remove_file(repo.join("apps/cfg.yaml")).expect("rm");
    let out = diff(&[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "ConfigMap {app_ns}/cfg (inventory): would be pruned: gone from the folder"
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out)
            .contains("0 to create, 0 to change, 1 unchanged, 0 a pass would fail on, 1 to prune"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(repo.join("apps/db.yaml")).expect("rm");
    let out = diff(&[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a pass would fail: the folder renders to nothing: a pass refuses to prune all 2 objects it applied"),
        "{}",
        stdout(&out)
    );
    assert!(
        cms.get_opt("cfg").await.expect("get").is_some(),
        "nothing pruned"
    );
}

#[tokio::test]
async fn version_of_client_and_running_agent() {
    let t = AgentTest::new("version").await;
    let cli = Cli::for_test(&t);
    let ns = t.agent_ns.clone();
    let client_version = env!("CARGO_PKG_VERSION");

    let out = cli.raw(&["version", "--client"]);
    assert!(ok(&out, "version --client").contains(&format!("client      {client_version}")));
    let out = cli.raw(&["version", "--client", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out, "json")).expect("json");
    assert_eq!(v["client"]["version"], client_version);
    assert!(v.get("agent").is_none());

    // No agent has run and no Deployment: the client's version still, then a clear error.
    let out = cli.kube(&["version", "--agent-namespace", &ns]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains(client_version));
    assert!(
        stderr(&out).contains(&format!(
            "no running agent has published its version: no ConfigMap {ns}/gitseal-public-keys, and there is no Deployment gitseal-agent in namespace {ns}"
        )),
        "{}",
        stderr(&out)
    );

    // deploy/deployment.yaml, as installed (no nodes here: nothing runs it).
    let text =
        std::fs::read_to_string(format!("{DEPLOY_DIR}/deployment.yaml")).expect("deployment.yaml");
    let mut d: Deployment = serde_yaml::from_str(&text).expect("deployment");
    d.metadata.namespace = Some(ns.clone());
    let image = d
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0]
        .image
        .clone()
        .expect("image");
    let deployments: Api<Deployment> = Api::namespaced(t.client.clone(), &ns);
    let apply = |d: Deployment| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch(
                    "gitseal-agent",
                    &PatchParams::apply("gitseal-test").force(),
                    &Patch::Apply(d),
                )
                .await
                .expect("apply deployment");
        }
    };
    apply(d.clone()).await;
    let tag = image.rsplit(':').next().expect("tag").to_owned();
    let out = cli.kube(&["version", "--agent-namespace", &ns]);
    let table = ok(&out, "version");
    let agent_row = table
        .lines()
        .find(|l| l.starts_with("agent"))
        .expect("agent row");
    assert!(
        agent_row.contains(&format!(" {tag} "))
            && agent_row.contains(&format!(
                "Deployment {ns}/gitseal-agent (image tag: {image};"
            ))
            && agent_row.contains("no running agent has published its version"),
        "{table}"
    );
    let out = cli.kube(&["version", "--agent-namespace", &ns, "-o", "yaml"]);
    let v: serde_yaml::Value = serde_yaml::from_str(&ok(&out, "yaml")).expect("yaml");
    assert_eq!(v["agent"]["version"].as_str(), Some(tag.as_str()));
    assert_eq!(v["agent"]["from"], "image tag");
    assert_eq!(
        v["agent"]["deployment"]["image"].as_str(),
        Some(image.as_str())
    );
    assert_eq!(v["agent"]["deployment"]["readyReplicas"], 0);

    // Pinned by digest alone: the version label says, and the output says so.
    let pinned = format!(
        "{}@sha256:{}",
        image.rsplit_once(':').expect("tag").0,
        "0".repeat(64)
    );
    let mut d2 = d.clone();
    d2.spec
        .as_mut()
        .expect("spec")
        .template
        .spec
        .as_mut()
        .expect("pod")
        .containers[0]
        .image = Some(pinned.clone());
    d2.metadata
        .labels
        .get_or_insert_default()
        .insert("app.kubernetes.io/version".into(), "9.9.9".into());
    apply(d2).await;
    let out = cli.kube(&["version", "--agent-namespace", &ns, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out, "json")).expect("json");
    assert_eq!(v["agent"]["version"], "9.9.9");
    assert_eq!(v["agent"]["from"], "label app.kubernetes.io/version");
    assert_eq!(
        v["agent"]["deployment"]["image"].as_str(),
        Some(pinned.as_str())
    );

    // Bad input: a user who may read neither the ConfigMap nor the Deployment.
    let unpriv = t.cp.unprivileged_kubeconfig_path().display().to_string();
    let out = cli.raw(&["version", "--agent-namespace", &ns, "--kubeconfig", &unpriv]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));

    // A running agent: the version it publishes (the one of its binary), not the
    // Deployment's 9.9.9, to every authenticated user with the RBAC of deploy/rbac.yaml.
    apply_public_keys_reader(&t).await;
    let mut agent = t.start_agent(this_binary_as_agent, &["--key-renewal", "0"]);
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    let published = wait_for(
        "the agent's version on the public-keys ConfigMap",
        || async {
            cms.get_opt("gitseal-public-keys")
                .await
                .ok()
                .flatten()
                .and_then(|cm| cm.metadata.annotations)
                .and_then(|a| a.get("gitseal.dev/agent-version").cloned())
        },
    )
    .await;
    assert_eq!(published, gitseal_agent::VERSION);
    for kubeconfig in [None, Some(unpriv.as_str())] {
        let mut a = vec!["version", "--agent-namespace", &ns];
        if let Some(k) = kubeconfig {
            a.extend(["--kubeconfig", k]);
        }
        let out = match kubeconfig {
            Some(_) => cli.raw(&a),
            None => cli.kube(&a),
        };
        let table = ok(&out, "version of the running agent");
        let agent_row = table
            .lines()
            .find(|l| l.starts_with("agent"))
            .expect("agent row");
        assert!(
            agent_row.contains(&format!(" {} ", gitseal_agent::VERSION))
                && agent_row.contains(&format!(
                    "running agent (ConfigMap {ns}/gitseal-public-keys, annotation gitseal.dev/agent-version"
                ))
                && !agent_row.contains("9.9.9"),
            "{table}"
        );
        a.extend(["-o", "json"]);
        let out = match kubeconfig {
            Some(_) => cli.raw(&a),
            None => cli.kube(&a),
        };
        let v: serde_json::Value = serde_json::from_str(&ok(&out, "json")).expect("json");
        assert_eq!(v["agent"]["version"], gitseal_agent::VERSION);
        assert_eq!(v["agent"]["from"], "annotation gitseal.dev/agent-version");
        assert_eq!(v["agent"]["configMap"], format!("{ns}/gitseal-public-keys"));
        assert!(v["agent"].get("deployment").is_none(), "{v}");
    }
    // A forged value (whoever may edit the ConfigMap): the leader writes its own back.
    let forge = |value: serde_json::Value| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "gitseal-public-keys",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "metadata": {"annotations": {"gitseal.dev/agent-version": value}}
                })),
            )
            .await
            .expect("patch annotation");
        }
    };
    forge(serde_json::json!("0.0.1-forged")).await;
    wait_for("the leader to restore its version", || async {
        let cm = cms.get_opt("gitseal-public-keys").await.ok().flatten()?;
        let v = cm
            .metadata
            .annotations?
            .get("gitseal.dev/agent-version")?
            .clone();
        (v == gitseal_agent::VERSION).then_some(())
    })
    .await;
    // No agent any more and the annotation gone (or never written by an older agent): the
    // Deployment, saying why.
    agent.kill();
    forge(serde_json::Value::Null).await;
    let out = cli.kube(&["version", "--agent-namespace", &ns, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out, "json")).expect("json");
    assert_eq!(v["agent"]["version"], "9.9.9");
    assert_eq!(
        v["agent"]["fallbackReason"],
        format!(
            "no running agent has published its version: ConfigMap {ns}/gitseal-public-keys has no annotation gitseal.dev/agent-version"
        )
    );
    // A value with terminal escapes is shown escaped, on one line.
    forge(serde_json::json!("1.0\u{1b}[2J\nx")).await;
    let out = cli.kube(&["version", "--agent-namespace", &ns]);
    let table = ok(&out, "version with a forged annotation");
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert_eq!(table.lines().count(), 3, "{table:?}");
    let out = cli.raw(&["version", "--agent-namespace", "Bad_NS"]);
    assert_eq!(code(&out), 2);
    let out = cli.raw(&["version", "-o", "xml"]);
    assert_eq!(code(&out), 2);
}

/// The Role and RoleBinding of `deploy/rbac.yaml` that let every authenticated user read the
/// public-keys ConfigMap, in the test's agent namespace.
async fn apply_public_keys_reader(t: &AgentTest) {
    let text = std::fs::read_to_string(format!("{DEPLOY_DIR}/rbac.yaml")).expect("rbac.yaml");
    let mut applied = 0;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let Ok(mut obj) = <DynamicObject as serde::Deserialize>::deserialize(doc) else {
            continue;
        };
        let kind = obj
            .types
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        if obj.metadata.name.as_deref() != Some("gitseal-public-keys-reader")
            || !(kind == "Role" || kind == "RoleBinding")
        {
            continue;
        }
        obj.metadata.namespace = Some(t.agent_ns.clone());
        let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            &kind,
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &t.agent_ns, &ar);
        api.patch(
            "gitseal-public-keys-reader",
            &PatchParams::apply("gitseal-test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .expect("apply the public keys reader RBAC");
        applied += 1;
    }
    assert_eq!(applied, 2, "the Role and RoleBinding in deploy/rbac.yaml");
}

#[tokio::test]
async fn reconcile_asks_for_a_pass_and_waits_for_it() {
    let t = AgentTest::new("reconcile").await;
    let (client, app_ns) = (t.client.clone(), t.app_ns.clone());
    let cli = Cli::for_test(&t);
    let _agent = t.start_agent(this_binary_as_agent, &["--key-renewal", "0"]);
    let repo = t.work.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    commit_file(
        &repo,
        "apps/cfg.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n",
        "first",
    );
    // A pass an hour: only the request starts the next one.
    t.apply_gitsync(&repo).await;
    apply_gitsync(
        &t,
        "gitseal-test-interval",
        "apps",
        serde_json::json!({"interval": "1h"}),
    )
    .await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &app_ns);
    let first = head(&repo);
    wait_applied(&syncs, &first).await;

    // A new commit: applied when asked, and --wait returns once that pass is reported.
    commit_file(
        &repo,
        "apps/cfg.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: c}\n",
        "second",
    );
    let second = head(&repo);
    let out = cli.kube(&["reconcile", "gitsync", "apps", "-n", &app_ns, "--wait"]);
    let table = ok(&out, "reconcile --wait");
    assert!(
        stderr(&out).contains(&format!(
            "asked for a pass of GitSync {app_ns}/apps (reconcile.gitseal.dev/requestedAt="
        )),
        "{}",
        stderr(&out)
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..3],
        ["apps", "True", &format!("main@sha1:{second}")],
        "{table}"
    );
    let gs = syncs.get("apps").await.expect("gitsync");
    let asked =
        gs.metadata.annotations.as_ref().expect("annotations")["reconcile.gitseal.dev/requestedAt"]
            .clone();
    assert_eq!(
        gs.status
            .as_ref()
            .expect("status")
            .last_handled_reconcile_at
            .as_deref(),
        Some(asked.as_str())
    );
    // Without --wait it only asks; -o json prints the status after waiting.
    let out = cli.kube(&["reconcile", "gs", "apps", "-n", &app_ns]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let out = cli.kube(&[
        "reconcile",
        "gitsync",
        "apps",
        "-n",
        &app_ns,
        "--wait",
        "-o",
        "json",
    ]);
    let status: serde_json::Value = serde_json::from_str(&ok(&out, "-o json")).expect("json");
    assert_eq!(
        status["lastAppliedRevision"].as_str(),
        Some(format!("main@sha1:{second}").as_str())
    );
    assert!(status["lastHandledReconcileAt"].is_string());

    // A pass that fails: exit 1 with the Ready message.
    std::fs::write(repo.join("apps/bad.yaml"), "kind: [unclosed\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "broken"]);
    let out = cli.kube(&["reconcile", "gitsync", "apps", "-n", &app_ns, "--wait"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the pass of GitSync {app_ns}/apps failed"))
            && stderr(&out).contains("apps/bad.yaml"),
        "{}",
        stderr(&out)
    );

    // A GitSync whose spec is refused answers the request too: exit 1 with the refusal.
    apply_gitsync(
        &t,
        "gitseal-test",
        "refused",
        serde_json::json!({"url": "https://example.invalid/r.git", "serviceAccountName": "Not_A_Name"}),
    )
    .await;
    let out = cli.kube(&["reconcile", "gitsync", "refused", "-n", &app_ns, "--wait"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the pass of GitSync {app_ns}/refused failed"))
            && stderr(&out).contains("spec.serviceAccountName")
            && stderr(&out).contains("InvalidSpec"),
        "{}",
        stderr(&out)
    );

    // Bad input.
    let out = cli.kube(&["reconcile", "gitsync", "missing", "-n", &app_ns, "--wait"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains(&format!("GitSync missing not found in namespace {app_ns}")));
    let out = cli.kube(&["reconcile", "gitsync", "Bad_Name", "-n", &app_ns]);
    assert_eq!(code(&out), 2);
    let out = cli.kube(&[
        "reconcile",
        "gitsync",
        "apps",
        "-n",
        &app_ns,
        "--timeout",
        "5s",
    ]);
    assert_eq!(code(&out), 2, "--timeout needs --wait: {}", stderr(&out));
    let out = cli.kube(&["reconcile", "sealedsecret", "x"]);
    assert_eq!(code(&out), 2);
    // A GitSync no agent answers (this one watches only the app namespace): the wait ends.
    let idle: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &t.agent_ns,
        &ApiResource::erase::<GitSync>(&()),
    );
    idle.patch(
        "idle",
        &PatchParams::apply("gitseal-test"),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
            "metadata": {"name": "idle"}, "spec": {"url": "https://example.invalid/r.git"}
        })),
    )
    .await
    .expect("idle gitsync");
    let out = cli.kube(&[
        "reconcile",
        "gitsync",
        "idle",
        "-n",
        &t.agent_ns,
        "--wait",
        "--timeout",
        "2s",
    ]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("answered the request within 2s"),
        "{}",
        stderr(&out)
    );
    // Suspended: refused, nothing asked.
    apply_gitsync(
        &t,
        "gitseal-test-interval",
        "apps",
        serde_json::json!({"interval": "1h", "suspend": true}),
    )
    .await;
    let before = syncs.get("apps").await.expect("gs").metadata.annotations;
    let out = cli.kube(&["reconcile", "gitsync", "apps", "-n", &app_ns, "--wait"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is suspended"), "{}", stderr(&out));
    assert_eq!(
        syncs.get("apps").await.expect("gs").metadata.annotations,
        before
    );
    // RBAC: without `patch` on gitsyncs, forbidden.
    let unpriv = t.cp.unprivileged_kubeconfig_path().display().to_string();
    let out = cli.raw(&[
        "reconcile",
        "gitsync",
        "apps",
        "-n",
        &app_ns,
        "--kubeconfig",
        &unpriv,
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
}

/// Applies `manifest` (one object, as JSON) with the admin client, server-side.
async fn apply_json(t: &AgentTest, manifest: serde_json::Value) {
    let ar = match manifest["kind"].as_str() {
        Some("ServiceAccount") => {
            ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&())
        }
        Some("Role") => ApiResource::erase::<k8s_openapi::api::rbac::v1::Role>(&()),
        Some("RoleBinding") => ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&()),
        other => panic!("no resource for {other:?}"),
    };
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    Api::<DynamicObject>::namespaced_with(t.client.clone(), &t.app_ns, &ar)
        .patch(
            &name,
            &PatchParams::apply("gitseal-test"),
            &Patch::Apply(manifest),
        )
        .await
        .expect("apply");
}

/// `gitseal diff` of a GitSync that names a ServiceAccount sends its dry-runs as that
/// ServiceAccount when the caller may impersonate it, so what the ServiceAccount may not write
/// shows as refused (as a pass would fail); a caller who may not impersonate gets a dry-run as
/// themselves, and the report says so.
#[tokio::test]
async fn diff_dry_runs_as_the_gitsyncs_service_account() {
    let t = AgentTest::new("diffsa").await;
    let (app_ns, agent_ns) = (t.app_ns.clone(), t.agent_ns.clone());
    let cli = Cli::for_test(&t);
    let rule = |resources: &[&str], verbs: &[&str]| serde_json::json!({"apiGroups": [""], "resources": resources, "verbs": verbs});
    // The ServiceAccount may write ConfigMaps only.
    apply_json(
        &t,
        serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "deployer"}}),
    )
    .await;
    apply_json(
        &t,
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "deployer"},
        "rules": [rule(&["configmaps"], &["get", "list", "create", "patch"])]}),
    )
    .await;
    apply_json(
        &t,
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding", "metadata": {"name": "deployer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": app_ns}]}),
    )
    .await;
    // A user who may read the GitSync and write both kinds, but not impersonate.
    apply_json(
        &t,
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reviewer"},
        "rules": [rule(&["configmaps", "services"], &["get", "list", "create", "patch"]),
                  {"apiGroups": ["gitseal.dev"], "resources": ["gitsyncs"], "verbs": ["get"]}]}),
    )
    .await;
    apply_json(
        &t,
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding", "metadata": {"name": "reviewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reviewer"},
        "subjects": [{"kind": "User", "name": "gitseal-unprivileged",
                      "apiGroup": "rbac.authorization.k8s.io"}]}),
    )
    .await;
    apply_gitsync(
        &t,
        "gitseal-test",
        "tenant",
        serde_json::json!({"url": "https://example.invalid/r.git", "path": "apps",
                         "serviceAccountName": "deployer"}),
    )
    .await;
    let dir = t.work.path().join("apps");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("all.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {app_ns}}}\ndata: {{a: b}}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {app_ns}}}\n\
             spec: {{ports: [{{port: 80}}], selector: {{app: web}}}}\n"
        ),
    )
    .expect("write");
    let path = dir.display().to_string();
    let args = [
        "diff",
        "gitsync",
        "tenant",
        "-n",
        &app_ns,
        "--path",
        &path,
        "--agent-namespace",
        &agent_ns,
        "-o",
        "json",
    ];
    let report = |out: &Output| -> serde_json::Value {
        serde_json::from_str(&stdout(out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
    };
    // A diff that found differences, acting as its report says.
    let differs = |out: &Output, acting: &str| -> serde_json::Value {
        assert_eq!(code(out), 1, "{}", stderr(out));
        let r = report(out);
        assert!(
            r["gitsync"].as_str().unwrap_or_default().contains(acting),
            "{r}"
        );
        r
    };
    let action = |r: &serde_json::Value, object: &str| -> (String, String) {
        let o = r["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["object"] == object)
            .unwrap_or_else(|| panic!("{object} not in {r}"));
        (
            o["action"].as_str().unwrap_or_default().to_owned(),
            o["note"].as_str().unwrap_or_default().to_owned(),
        )
    };

    // The admin may impersonate: the Service is refused as a pass would refuse it.
    let r = differs(
        &cli.kube(&args),
        &format!("dry-run as ServiceAccount {app_ns}/deployer"),
    );
    assert_eq!(
        action(&r, &format!("ConfigMap {app_ns}/cfg")).0,
        "create",
        "{r}"
    );
    let (act, note) = action(&r, &format!("Service {app_ns}/web"));
    assert_eq!(act, "refused", "{r}");
    assert!(
        note.contains(&format!(
            "ServiceAccount {app_ns}/deployer may not apply it"
        )) && note.contains("forbidden"),
        "{note}"
    );

    // A reviewer who may not impersonate: a dry-run as themselves, said in the report.
    let unpriv = t.cp.unprivileged_kubeconfig_path().display().to_string();
    let mut as_reviewer: Vec<&str> = args.to_vec();
    as_reviewer.extend(["--kubeconfig", &unpriv]);
    let r = differs(
        &cli.raw(&as_reviewer),
        "this dry-run as you (you may not impersonate it)",
    );
    assert_eq!(
        action(&r, &format!("Service {app_ns}/web")).0,
        "create",
        "{r}"
    );
    // Nothing was written by either.
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &app_ns);
    assert!(cms.get_opt("cfg").await.expect("get").is_none());
}
