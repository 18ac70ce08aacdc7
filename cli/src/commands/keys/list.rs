//! `gitseal keys fetch` (the key to seal with, as a recipients file) and `gitseal keys list`
//! (every key: id, state, age, last use, the objects that need it).

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use gitseal_api::keys::newest_active;
use gitseal_api::names::{PUBLIC_KEYS_CONFIGMAP, USAGE_CONFIGMAP};

use crate::args::{ClusterArgs, ListFormat};
use crate::cluster::{client, public_keys, usage};
use crate::io::{shown, write_atomic};
use crate::table::short_duration;

pub async fn fetch(c: &ClusterArgs, output: Option<&Path>) -> Result<()> {
    let client = client(c).await?;
    let (_, keys) = public_keys(&client, &c.agent_namespace).await?;
    let Some(newest) = newest_active(&keys) else {
        bail!(
            "namespace {}: no active sealing key published yet; is gitseal-agent running?",
            c.agent_namespace
        );
    };
    // Checked, so a damaged ConfigMap never ends up in a recipients file.
    let pk: gitseal::PublicKey = newest
        .public_key
        .parse()
        .with_context(|| format!("ConfigMap {PUBLIC_KEYS_CONFIGMAP}"))?;
    let text = format!(
        "# gitseal: sealing key of namespace {} (key id {}, created {})\n{pk}\n",
        c.agent_namespace,
        pk.id(),
        newest.created
    );
    match output {
        Some(path) => {
            write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {} (key id {})", shown(path), pk.id());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn age_of(created: &str) -> String {
    match humantime::parse_rfc3339_weak(created.trim_end_matches('Z'))
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
    {
        Some(d) => short_duration(d),
        None => "?".into(),
    }
}

pub async fn list(c: &ClusterArgs, format: ListFormat) -> Result<()> {
    let client = client(c).await?;
    let (_, keys) = public_keys(&client, &c.agent_namespace).await?;
    let usage = usage(&client, &c.agent_namespace).await;
    let newest = newest_active(&keys).map(|k| k.id.clone());
    let state_of = |k: &gitseal_api::keys::PublicKeyInfo| -> String {
        if Some(&k.id) == newest.as_ref() {
            "sealing".to_owned()
        } else {
            k.state.clone()
        }
    };
    if let ListFormat::Json = format {
        // For scripts: every field, usage as recorded (null when not readable).
        let items: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                let u = usage.as_ref().and_then(|u| u.get(&k.id));
                serde_json::json!({
                    "id": k.id,
                    "state": state_of(k),
                    "created": k.created,
                    "publicKey": k.public_key,
                    "lastUsed": u.map(|u| u.last_used.clone()),
                    "objects": u.map(|u| u.objects.iter().map(|o| serde_json::json!({
                        "object": o.object,
                        "source": o.source,
                    })).collect::<Vec<_>>()),
                    // All that need the key; `objects` lists the first ones only.
                    "objectCount": u.map(|u| u.total()),
                })
            })
            .collect();
        let v = serde_json::json!({
            "agentNamespace": c.agent_namespace,
            "usageReadable": usage.is_some(),
            "keys": items,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<9} {:<8} {:<21} {:>5}  {:<10} OBJECTS",
        "ID", "STATE", "CREATED", "AGE", "LAST USED"
    );
    for k in &keys {
        let u = usage.as_ref().and_then(|u| u.get(&k.id));
        let last = match (&usage, u) {
            (None, _) => "unknown",
            (Some(_), None) => "never",
            (Some(_), Some(u)) => u.last_used.as_str(),
        };
        let objects = u
            .map(|u| {
                let mut listed: Vec<String> = u
                    .objects
                    .iter()
                    .map(|o| format!("{} ({})", o.object, o.source))
                    .collect();
                if u.unlisted() > 0 {
                    listed.push(format!("and {} more", u.unlisted()));
                }
                listed.join(", ")
            })
            .unwrap_or_default();
        println!(
            "{:<9} {:<8} {:<21} {:>5}  {:<10} {}",
            k.id,
            state_of(k),
            k.created,
            age_of(&k.created),
            last,
            if objects.is_empty() { "-" } else { &objects }
        );
    }
    if usage.is_none() {
        eprintln!("(key usage not readable: no access to ConfigMap {USAGE_CONFIGMAP})");
    }
    Ok(())
}
