//! Where `gitseal-agent sync` keeps its inventory between runs (a ConfigMap in the agent's
//! namespace), so that `--once` runs in CI prune what left git. `run` keeps it in each
//! GitSync's status instead.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use gitseal_api::InventoryEntry;
use gitseal_api::names::{AGENT_FIELD_MANAGER, INVENTORY_CONFIGMAP_PREFIX, INVENTORY_KEY};

pub fn configmap_name(sync_name: &str) -> String {
    format!("{INVENTORY_CONFIGMAP_PREFIX}{sync_name}")
}

pub async fn load(
    client: &kube::Client,
    namespace: &str,
    sync_name: &str,
) -> Result<Vec<InventoryEntry>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = api.get_opt(&configmap_name(sync_name)).await? else {
        return Ok(Vec::new());
    };
    Ok(cm
        .data
        .and_then(|d| d.get(INVENTORY_KEY).cloned())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

pub async fn save(
    client: &kube::Client,
    namespace: &str,
    sync_name: &str,
    entries: &[InventoryEntry],
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = configmap_name(sync_name);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "gitseal-agent"}},
        "data": {INVENTORY_KEY: serde_json::to_string(entries).unwrap_or_default()},
    });
    api.patch(
        &name,
        &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
