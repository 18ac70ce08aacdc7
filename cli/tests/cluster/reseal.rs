//! `gitseal reseal --cluster`: the agent re-seals, plaintext never leaves it; a value it
//! cannot open fails clearly and leaves the file as it was; RBAC refuses whom it must.

use gitseal_api::ResealRequest;
use gitseal_testenv::e2e::{AgentTest, wait_for};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use super::{CANARY, Cli, active_ids, ok, stderr, this_binary_as_agent};

#[tokio::test]
async fn reseal_through_the_cluster_never_moves_plaintext() {
    let t = AgentTest::new("reseal").await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let (cp, work) = (t.cp, &t.work);
    let cli = Cli::for_test(&t);
    let _agent = t.start_agent(this_binary_as_agent, &["--key-renewal", "0"]);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    wait_for("the agent's key", || async {
        let cm = cms.get_opt("gitseal-public-keys").await.ok()??;
        (!active_ids(&cm).is_empty()).then_some(())
    })
    .await;

    // A SealedSecret sealed to the cluster's key, and an offline key to move it to.
    ok(&cli.keys("fetch", &["-w", "cluster.pub"]), "keys fetch");
    std::fs::write(
        work.path().join("secret.yaml"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {app_ns}}}\nstringData: {{password: {CANARY}}}\n"),
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
    ok(&cli.raw(&["keys", "generate", "-w", "k2.key"]), "generate");
    let k2 = ok(&cli.raw(&["keys", "public", "-i", "k2.key"]), "public");
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

    // Re-sealed by the agent to the offline key: it opens with that key and no other.
    let out = reseal(&kc, &["-r", k2.trim()]);
    ok(&out, "reseal --cluster");
    let opened = ok(
        &cli.raw(&["unseal", "-i", "k2.key", "-f", "db.yaml"]),
        "unseal k2",
    );
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    assert!(opened.contains(&b64));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CANARY));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(CANARY));

    // The agent cannot open it any more: a clear error, the file untouched.
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
    let out = reseal(&nobody, &["-r", k2.trim()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).to_lowercase().contains("forbidden") || stderr(&out).contains("403"),
        "{}",
        stderr(&out)
    );

    // No ResealRequest is left behind.
    let left: Api<ResealRequest> = Api::namespaced(client.clone(), &agent_ns);
    assert!(
        left.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}
