//! `deploy/` is what users install: its CRDs are exactly what `gitseal-agent crds` generates,
//! and the whole kustomization is accepted by the real API server (server-side dry-run;
//! the Namespace and CRDs are applied for real first, as a real install would).

use std::process::Command;

use gitseal_agent::sync::object::Object;
use gitseal_agent::sync::render::parse;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;

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
    let client = cp.client();
    let mut staged: Vec<&Object> = objects.iter().collect();
    staged.sort_by_key(|o| o.stage());
    for o in staged {
        let (g, v) = o.group_version();
        let (ar, caps) =
            kube::discovery::pinned_kind(&client, &GroupVersionKind::gvk(g, v, o.kind()))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", o.describe()));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(client.clone(), o.namespace().expect("namespace"), &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let mut params = PatchParams::apply("gitseal-deploy-test").force();
        if o.stage() > 0 {
            params = params.dry_run();
        }
        api.patch(o.name(), &params, &Patch::Apply(&o.value()))
            .await
            .unwrap_or_else(|e| panic!("{} rejected: {e}", o.describe()));
        if o.is_crd() {
            use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                kube::runtime::wait::await_condition(
                    crds,
                    o.name(),
                    kube::runtime::conditions::is_crd_established(),
                ),
            )
            .await
            .expect("established in time")
            .expect("established");
        }
    }
}
