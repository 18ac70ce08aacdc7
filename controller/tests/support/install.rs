//! Installing rendered manifests (the chart's output, `deploy/`) as a user would.

use gitseal_agent::sync::object::Object;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;

/// Applies `objects` as an install would, as field manager `manager`: Namespaces and CRDs
/// for real (waiting until each CRD is Established), everything else as a server-side
/// dry-run; panics naming the first object the API server rejects.
pub async fn apply_as_install(client: &kube::Client, objects: &[Object], manager: &str) {
    let mut staged: Vec<&Object> = objects.iter().collect();
    staged.sort_by_key(|o| o.stage());
    for o in staged {
        let (g, v) = o.group_version();
        let (ar, caps) =
            kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(g, v, o.kind()))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", o.describe()));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(client.clone(), o.namespace().expect("namespace"), &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let mut params = PatchParams::apply(manager).force();
        if o.stage() > 0 {
            params = params.dry_run();
        }
        api.patch(o.name(), &params, &Patch::Apply(&o.value()))
            .await
            .unwrap_or_else(|e| panic!("{} rejected: {e}", o.describe()));
        if o.is_crd() {
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
