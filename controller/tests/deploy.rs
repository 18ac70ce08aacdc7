//! `deploy/` is what users install: its CRDs are exactly what `gitseal-agent crds` generates,
//! and the whole kustomization is accepted by the real API server (server-side dry-run;
//! the Namespace and CRDs are applied for real first, as a real install would).

mod support;

use std::process::Command;

use gitseal_agent::sync::object::Object;
use gitseal_agent::sync::render::parse;
use support::apply_as_install;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

#[test]
fn crds_yaml_is_generated() {
    let committed =
        std::fs::read_to_string(format!("{DEPLOY}/crds.yaml")).expect("deploy/crds.yaml");
    let generated = gitseal_api::crds_yaml().expect("generate");
    assert!(
        committed == generated,
        "deploy/crds.yaml is stale: run `cargo run -p gitseal-agent -- crds > deploy/crds.yaml`"
    );
}

#[tokio::test]
async fn deploy_applies_with_server_side_dry_run() {
    let out = Command::new("kubectl")
        .args(["kustomize", DEPLOY])
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = parse(
        "kubectl kustomize deploy",
        &String::from_utf8_lossy(&out.stdout),
    )
    .expect("parse");
    let kinds: Vec<&str> = objects.iter().map(Object::kind).collect();
    for k in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&k), "deploy/ lacks a {k}");
    }

    let cp = gitseal_testenv::shared().await;
    apply_as_install(&cp.client(), &objects, "gitseal-deploy-test").await;
}
