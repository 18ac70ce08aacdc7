//! `gitseal keys rotate` (ask the agent for a new active key, wait for it) and `gitseal keys
//! retire` (stop a key from opening anything; refused while something still needs it).
//!
//! Rotation has no endpoint of its own: the request is an annotation on the public keys
//! ConfigMap, so whoever RBAC lets patch that one object may rotate.

use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::{KeyId, SecretKey};
use gitseal_api::SealedSecret;
use gitseal_api::keys::{newest_active, read_public_keys};
use gitseal_api::names::{
    ACTIVE, CLI_FIELD_MANAGER, PUBLIC_KEYS_CONFIGMAP, RETIRED, ROTATE_DONE_ANNOTATION,
    ROTATE_REQUESTED_ANNOTATION, SEALING_KEY_LABEL, USAGE_CONFIGMAP,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use crate::args::ClusterArgs;
use crate::cluster::{api_error, client, public_keys, published_keys, usage};

pub async fn rotate(c: &ClusterArgs, timeout: Duration) -> Result<()> {
    let client = client(c).await?;
    let (_, before) = public_keys(&client, &c.agent_namespace).await?;
    let request = format!(
        "{}/{:08x}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        rand_u32()
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &c.agent_namespace);
    api.patch(
        PUBLIC_KEYS_CONFIGMAP,
        &PatchParams {
            field_manager: Some(CLI_FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_REQUESTED_ANNOTATION: request}}})),
    )
    .await
    .map_err(|e| api_error(e, "requesting a rotation", &c.agent_namespace))?;
    // The agent answers by publishing a new key with the request's value in rotate-done.
    let answered = {
        let request = request.clone();
        move |cm: Option<&ConfigMap>| {
            cm.is_some_and(|cm| {
                let done = cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ROTATE_DONE_ANNOTATION));
                done == Some(&request)
                    && read_public_keys(cm.data.as_ref())
                        .is_ok_and(|keys| newest_active(&keys).is_some())
            })
        }
    };
    let waited = tokio::time::timeout(
        timeout,
        await_condition(api, PUBLIC_KEYS_CONFIGMAP, answered),
    )
    .await;
    let cm = match waited {
        Ok(Ok(Some(cm))) => cm,
        Ok(Err(e)) => bail!(
            "waiting for the agent's answer in namespace {}: {e}",
            c.agent_namespace
        ),
        Ok(Ok(None)) | Err(_) => bail!(
            "the agent in namespace {} did not answer the rotation request within {}; is it running? (kubectl -n {} logs deploy/gitseal-agent)",
            c.agent_namespace,
            humantime::format_duration(timeout),
            c.agent_namespace
        ),
    };
    let keys = published_keys(&cm)?;
    let Some(k) = newest_active(&keys) else {
        bail!("ConfigMap {PUBLIC_KEYS_CONFIGMAP}: no active key after the rotation");
    };
    let old = newest_active(&before)
        .map(|k| k.id.as_str())
        .unwrap_or("none");
    eprintln!(
        "new sealing key {} (was {old}); older keys still open what they sealed. Run `gitseal keys fetch -w FILE` and `gitseal reseal` to move values to it",
        k.id
    );
    println!("{}", k.public_key);
    Ok(())
}

/// A little randomness for request ids, from a fresh key (no extra dependency).
fn rand_u32() -> u32 {
    let id = SecretKey::generate().id().to_string();
    u32::from_str_radix(&id, 16).unwrap_or(0)
}

/// SealedSecret objects in the cluster that only `id` (of the active keys) opens.
async fn sealed_objects_needing(
    client: &kube::Client,
    id: KeyId,
    active: &[KeyId],
) -> Result<Vec<String>> {
    let api: Api<SealedSecret> = Api::all(client.clone());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        // No SealedSecret CRD: nothing to check.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(api_error(e, "listing SealedSecrets", "(all)")),
    };
    let mut out = Vec::new();
    for o in list.items {
        let needs = o.spec.encrypted_data.values().any(|b| {
            B64.decode(b.trim())
                .ok()
                .and_then(|ct| gitseal::inspect(&ct).ok())
                .is_some_and(|h| {
                    h.key_ids.contains(&id)
                        && !h.key_ids.iter().any(|k| *k != id && active.contains(k))
                })
        });
        if needs {
            out.push(format!(
                "{}/{}",
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

pub async fn retire(c: &ClusterArgs, id: KeyId, force: bool) -> Result<()> {
    let client = client(c).await?;
    let ns = &c.agent_namespace;
    let (_, keys) = public_keys(&client, ns).await?;
    let wanted = id.to_string();
    let Some(key) = keys.iter().find(|k| k.id == wanted) else {
        let known: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        bail!(
            "no sealing key {wanted} in namespace {ns} (known: {}); see `gitseal keys list`",
            known.join(", ")
        );
    };
    if !key.is_active() {
        eprintln!("key {wanted} is already retired");
        return Ok(());
    }
    if !force {
        let mut users: Vec<String> = Vec::new();
        match usage(&client, ns).await {
            Some(u) => {
                if let Some(e) = u.get(&wanted) {
                    users.extend(
                        e.objects
                            .iter()
                            .map(|o| format!("{} ({})", o.object, o.source)),
                    );
                    if e.unlisted() > 0 {
                        users.push(format!(
                            "{} more objects (the key usage lists the first {})",
                            e.unlisted(),
                            e.objects.len()
                        ));
                    }
                }
            }
            None => bail!(
                "cannot read the key usage (ConfigMap {USAGE_CONFIGMAP} in {ns}); retiring blind needs --force"
            ),
        }
        let active: Vec<KeyId> = keys
            .iter()
            .filter(|k| k.is_active())
            .filter_map(|k| k.id.parse().ok())
            .collect();
        for o in sealed_objects_needing(&client, id, &active).await? {
            users.push(format!("{o} (SealedSecret object)"));
        }
        if !users.is_empty() {
            users.sort();
            users.dedup();
            // A readable message however many there are.
            const SHOWN: usize = 20;
            if users.len() > SHOWN {
                let more = users.len() - SHOWN;
                users.truncate(SHOWN);
                users.push(format!("and {more} more"));
            }
            bail!(
                "key {wanted} is still needed by: {}; seal those again to the current key (`gitseal keys fetch -w cluster.txt && gitseal reseal -i … -R cluster.txt PATH`), let the agent apply them, then retry; or pass --force (they stop opening)",
                users.join(", ")
            );
        }
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.patch(
        &key.secret,
        &PatchParams {
            field_manager: Some(CLI_FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"metadata": {"labels": {SEALING_KEY_LABEL: RETIRED}}})),
    )
    .await
    .map_err(|e| api_error(e, &format!("relabelling Secret {}", key.secret), ns))?;
    eprintln!(
        "retired key {wanted} (Secret {}); it no longer opens anything. To undo: kubectl -n {ns} label secret {} {SEALING_KEY_LABEL}={ACTIVE} --overwrite",
        key.secret, key.secret
    );
    Ok(())
}
