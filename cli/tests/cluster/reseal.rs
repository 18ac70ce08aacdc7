//! `gitseal reseal --cluster`, with the agent running as its ServiceAccount under
//! `deploy/rbac.yaml`: the agent re-seals only to its own newest key and the escrow keys of its
//! configuration — a request naming recipients is refused, and no request can move a value to
//! another binding; plaintext never leaves it; a value it cannot open fails clearly and leaves
//! the file as it was; RBAC refuses whom it must.

use std::collections::BTreeMap;

use gitseal_api::{ResealItem, ResealRequest, ResealRequestSpec, ResealRequestStatus};
use gitseal_testenv::e2e::{AgentTest, wait_for};
use gitseal_testenv::rbac::AgentRbac;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use super::{CANARY, Cli, active_ids, header_ids, ok, stderr, this_binary_as_agent};

/// Creates a ResealRequest as the admin, waits for the agent's answer, deletes it.
async fn ask(api: &Api<ResealRequest>, spec: ResealRequestSpec) -> ResealRequestStatus {
    let rr = ResealRequest {
        metadata: ObjectMeta {
            generate_name: Some("raw-".into()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    let name = api
        .create(&PostParams::default(), &rr)
        .await
        .expect("create ResealRequest")
        .name_any();
    let status = wait_for("the agent's answer", || async {
        let s = api.get(&name).await.ok()?.status?;
        (!s.results.is_empty() || s.error.is_some()).then_some(s)
    })
    .await;
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    status
}

/// The `encryptedData` of the SealedSecret in `file`, base64 as in the manifest.
fn encrypted_data(file: &std::path::Path) -> BTreeMap<String, String> {
    let v: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(file).expect("read")).expect("yaml");
    v["spec"]["encryptedData"]
        .as_mapping()
        .expect("encryptedData")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("key").to_owned(),
                v.as_str().expect("b64").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn reseal_through_the_cluster_never_moves_plaintext() {
    let t = AgentTest::new("reseal").await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let (cp, work) = (t.cp, &t.work);
    let cli = Cli::for_test(&t);

    // The escrow key is the administrator's: only the agent's flags name it.
    ok(
        &cli.raw(&["keys", "generate", "-w", "escrow.key"]),
        "generate",
    );
    let escrow = ok(&cli.raw(&["keys", "public", "-i", "escrow.key"]), "public");
    let escrow = escrow.trim();
    let kubeconfig = t.agent_kubeconfig(AgentRbac::Deployed).await;
    let agent = t.start_agent_with(
        this_binary_as_agent,
        &kubeconfig,
        &app_ns,
        &["--key-renewal", "0", "--escrow-recipient", escrow],
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    wait_for("the agent's key", || async {
        let cm = cms.get_opt("gitseal-public-keys").await.ok()??;
        (!active_ids(&cm).is_empty()).then_some(())
    })
    .await;

    // A SealedSecret sealed to the cluster's key, and a key of the requester's own.
    ok(&cli.keys("fetch", &["-w", "cluster.pub"]), "keys fetch");
    std::fs::write(
        work.path().join("secret.yaml"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {app_ns}}}\nstringData: {{password: {CANARY}, username: admin}}\n"),
    )
    .expect("write");
    ok(
        &cli.raw(&[
            "seal",
            "-f",
            "secret.yaml",
            "-R",
            "cluster.pub",
            "-w",
            "db.yaml",
        ]),
        "seal",
    );
    ok(
        &cli.raw(&["keys", "generate", "-w", "mine.key"]),
        "generate",
    );
    let mine = ok(&cli.raw(&["keys", "public", "-i", "mine.key"]), "public");
    let mine = mine.trim();
    let data = encrypted_data(&work.path().join("db.yaml"));
    let requests: Api<ResealRequest> = Api::namespaced(client.clone(), &agent_ns);
    let item =
        |namespace: &str, name: &str, scope: &str, data: BTreeMap<String, String>| ResealItem {
            name: name.into(),
            namespace: Some(namespace.into()),
            scope: Some(scope.into()),
            encrypted_data: data,
        };

    // A request naming its own recipient is refused, with nothing in the answer.
    let answer = ask(
        &requests,
        ResealRequestSpec {
            items: vec![item(&app_ns, "db", "strict", data.clone())],
            recipients: vec![mine.to_owned()],
        },
    )
    .await;
    assert!(answer.results.is_empty(), "answered: {answer:?}");
    let error = answer.error.expect("an error");
    assert!(
        error.contains("spec.recipients is refused") && error.contains("--escrow-recipient"),
        "{error}"
    );

    // The CLI does not even ask: --cluster with -r/-R is a usage error.
    let kc = cp.kubeconfig_path().display().to_string();
    let reseal = |kubeconfig: &str, extra: &[&str]| {
        let mut args = vec![
            "reseal",
            "--cluster",
            "--kubeconfig",
            kubeconfig,
            "--agent-namespace",
            &agent_ns,
        ];
        args.extend_from_slice(extra);
        args.push("db.yaml");
        cli.raw(&args)
    };
    let out = reseal(&kc, &["-r", mine]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--recipient"), "{}", stderr(&out));

    // No request moves a value: another namespace, another name, another scope, another
    // key each fail on the binding, with no ciphertext in the answer.
    let password = BTreeMap::from([("password".to_owned(), data["password"].clone())]);
    let moved_key = BTreeMap::from([("username".to_owned(), data["password"].clone())]);
    for (what, it) in [
        (
            "another namespace",
            item("elsewhere", "db", "strict", password.clone()),
        ),
        (
            "another name",
            item(&app_ns, "other", "strict", password.clone()),
        ),
        (
            "scope cluster",
            item(&app_ns, "db", "cluster", password.clone()),
        ),
        (
            "scope namespace",
            item(&app_ns, "db", "namespace", password.clone()),
        ),
        ("another key", item(&app_ns, "db", "strict", moved_key)),
    ] {
        let answer = ask(
            &requests,
            ResealRequestSpec {
                items: vec![it],
                recipients: Vec::new(),
            },
        )
        .await;
        assert!(answer.results.is_empty(), "{what}: answered {answer:?}");
        let error = answer.error.unwrap_or_default();
        assert!(error.contains("scope mismatch"), "{what}: {error}");
    }

    // Re-sealed by the agent: to its key and the escrow key, nothing else; the binding is
    // the one the value was sealed with.
    let before = header_ids(&std::fs::read_to_string(work.path().join("db.yaml")).expect("read"));
    let out = reseal(&kc, &[]);
    ok(&out, "reseal --cluster");
    let resealed = std::fs::read_to_string(work.path().join("db.yaml")).expect("read");
    let mut ids = header_ids(&resealed);
    ids.sort();
    ids.dedup();
    let escrow_id = escrow
        .parse::<gitseal::PublicKey>()
        .expect("escrow key")
        .id()
        .to_string();
    let mut want = vec![before[0].clone(), escrow_id];
    want.sort();
    assert_eq!(
        ids, want,
        "sealed to the cluster key and the escrow key only"
    );
    for (key, b64) in encrypted_data(&work.path().join("db.yaml")) {
        let ct =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("b64");
        let h = gitseal::inspect(&ct).expect("header");
        assert_eq!(h.binding.namespace(), Some(app_ns.as_str()));
        assert_eq!(h.binding.name(), Some("db"));
        assert_eq!(h.binding.key(), key);
    }
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    let opened = ok(
        &cli.raw(&["unseal", "-i", "escrow.key", "-f", "db.yaml"]),
        "unseal with the escrow key",
    );
    assert!(opened.contains(&b64));
    let out = cli.raw(&["unseal", "-i", "mine.key", "-f", "db.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the requester's key opens nothing"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CANARY));

    // A value the agent cannot open: a clear error, the file untouched.
    ok(
        &cli.raw(&["seal", "-f", "secret.yaml", "-r", mine, "-w", "db.yaml"]),
        "seal to my key",
    );
    let before = std::fs::read(work.path().join("db.yaml")).expect("read");
    let out = reseal(&kc, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no key in the ring"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(work.path().join("db.yaml")).expect("read"),
        before
    );

    // Someone RBAC does not allow gets a 403, not an answer.
    let nobody = cp.unprivileged_kubeconfig_path().display().to_string();
    let out = reseal(&nobody, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).to_lowercase().contains("forbidden") || stderr(&out).contains("403"),
        "{}",
        stderr(&out)
    );

    // No ResealRequest is left behind, and nothing secret reached the agent's log.
    assert!(
        requests
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let logs = agent.logs();
    assert!(logs.contains("reseal request answered"), "{logs}");
    assert!(!logs.contains(CANARY) && !logs.contains(&b64));
    assert!(
        !logs.contains("(403)") && !logs.contains("forbidden"),
        "the agent's own requests were forbidden:\n{logs}"
    );
}
