//! `gitseal keys fetch` (the key to seal with, as a recipients file) and `gitseal keys list`
//! (every key: id, state, age, last use, the objects that need it).

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use gitseal_api::keys::newest_active;
use gitseal_api::names::{PUBLIC_KEYS_CONFIGMAP, USAGE_CONFIGMAP};

use crate::args::ClusterArgs;
use crate::cluster::{client, public_keys, usage};
use crate::io::{shown, write_atomic};

pub async fn fetch(c: &ClusterArgs, output: Option<&Path>) -> Result<()> {
    let client = client(c).await?;
    let (_, keys) = public_keys(&client, &c.namespace).await?;
    let Some(newest) = newest_active(&keys) else {
        bail!(
            "namespace {}: no active sealing key published yet; is gitseal-agent running?",
            c.namespace
        );
    };
    // Checked, so a damaged ConfigMap never ends up in a recipients file.
    let pk: gitseal::PublicKey = newest
        .public_key
        .parse()
        .with_context(|| format!("ConfigMap {PUBLIC_KEYS_CONFIGMAP}"))?;
    let text = format!(
        "# gitseal: sealing key of namespace {} (key id {}, created {})\n{pk}\n",
        c.namespace,
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
        Some(d) => {
            let secs = d.as_secs();
            match secs {
                0..120 => format!("{secs}s"),
                120..7200 => format!("{}m", secs / 60),
                7200..172_800 => format!("{}h", secs / 3600),
                _ => format!("{}d", secs / 86_400),
            }
        }
        None => "?".into(),
    }
}

pub async fn list(c: &ClusterArgs) -> Result<()> {
    let client = client(c).await?;
    let (_, keys) = public_keys(&client, &c.namespace).await?;
    let usage = usage(&client, &c.namespace).await;
    let newest = newest_active(&keys).map(|k| k.id.clone());
    println!(
        "{:<9} {:<8} {:<21} {:>5}  {:<10} OBJECTS",
        "ID", "STATE", "CREATED", "AGE", "LAST USED"
    );
    for k in &keys {
        let u = usage.as_ref().and_then(|u| u.get(&k.id));
        let state = if Some(&k.id) == newest.as_ref() {
            "sealing"
        } else {
            k.state.as_str()
        };
        let last = match (&usage, u) {
            (None, _) => "unknown",
            (Some(_), None) => "never",
            (Some(_), Some(u)) => u.last_used.as_str(),
        };
        let objects = u
            .map(|u| {
                u.objects
                    .iter()
                    .map(|o| format!("{} ({})", o.object, o.source))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "{:<9} {:<8} {:<21} {:>5}  {:<10} {}",
            k.id,
            state,
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
