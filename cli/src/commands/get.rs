//! `gitseal get gitsyncs|sealedsecrets [NAME] [-n NS | -A] [-o table|yaml|json]`: what the
//! agent reports about each object, like `flux get`: ready, the revision applied, the message
//! of the Ready condition, age. Read with the caller's own credentials (`list` on the kind).

use anyhow::Result;
use gitseal_api::{GitSync, SealedSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::{GetArgs, GetKind, TableFormat};
use crate::cluster::{api_error, kind_missing, kube_client, namespace_or_default, not_installed};
use crate::table::{age, render, structured, without_managed_fields};

pub async fn run(args: GetArgs) -> Result<()> {
    let client = kube_client(&args.kube).await?;
    let by_name = args.name.is_some();
    let ns =
        (!args.all_namespaces).then(|| namespace_or_default(&client, args.namespace.as_deref()));
    match args.kind {
        GetKind::GitSyncs => {
            let items: Vec<GitSync> = fetch(&client, ns.as_deref(), args.name.as_deref()).await?;
            show(
                &items,
                ns.as_deref(),
                by_name,
                args.output,
                gitsync_row,
                GITSYNC_HEADER,
            )
        }
        GetKind::SealedSecrets => {
            let items: Vec<SealedSecret> =
                fetch(&client, ns.as_deref(), args.name.as_deref()).await?;
            show(
                &items,
                ns.as_deref(),
                by_name,
                args.output,
                sealed_row,
                SEALED_HEADER,
            )
        }
    }
}

/// The objects of one kind: one by name, those of a namespace, or (no namespace) all.
async fn fetch<K>(client: &kube::Client, ns: Option<&str>, name: Option<&str>) -> Result<Vec<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let api: Api<K> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let shown_ns = ns.unwrap_or("(all)");
    let result = match name {
        Some(name) => api.get_opt(name).await.map(|o| {
            o.map(|o| vec![o]).ok_or_else(|| {
                anyhow::anyhow!(
                    "{kind} {name} not found in namespace {shown_ns}; list them with `gitseal get {}s -n {shown_ns}`",
                    kind.to_lowercase()
                )
            })
        }),
        None => api.list(&ListParams::default()).await.map(|l| Ok(l.items)),
    };
    match result {
        Ok(items) => items,
        Err(e) if kind_missing(&e) => Err(not_installed(&kind)),
        Err(e) => Err(api_error(e, &format!("listing {kind}s"), shown_ns)),
    }
}

fn show<K: Serialize + ResourceExt>(
    items: &[K],
    ns: Option<&str>,
    by_name: bool,
    format: TableFormat,
    row: fn(&K) -> Vec<String>,
    header: &[&str],
) -> Result<()> {
    if format != TableFormat::Table {
        let mut values: Vec<serde_json::Value> = items
            .iter()
            .map(|o| serde_json::to_value(o).map(without_managed_fields))
            .collect::<Result<_, _>>()?;
        // One object asked for by name: the object itself, as kubectl prints it.
        let doc = match values.pop() {
            Some(one) if by_name => one,
            last => {
                values.extend(last);
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values})
            }
        };
        print!("{}", structured(&doc, format)?);
        return Ok(());
    }
    if items.is_empty() {
        match ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found."),
        }
        return Ok(());
    }
    let all = ns.is_none();
    let mut head: Vec<&str> = header.to_vec();
    if all {
        head.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let mut r = row(o);
            if all {
                r.insert(0, o.namespace().unwrap_or_default());
            }
            r
        })
        .collect();
    print!("{}", render(&head, &rows));
    Ok(())
}

const GITSYNC_HEADER: &[&str] = &["NAME", "READY", "REVISION", "SUSPENDED", "AGE", "MESSAGE"];
const SEALED_HEADER: &[&str] = &["NAME", "READY", "KEYS", "AGE", "MESSAGE"];

/// Ready and its message, as of the object's current spec: a status written for an older
/// generation says the agent has not answered the change yet.
fn readiness(
    conditions: &[Condition],
    observed: Option<i64>,
    generation: Option<i64>,
) -> (String, String) {
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    match (ready, observed, generation) {
        (None, ..) => (
            "Unknown".into(),
            "waiting for the agent's first pass".into(),
        ),
        (Some(c), Some(o), Some(g)) if o < g => (
            "Unknown".into(),
            format!(
                "spec changed (generation {g}); waiting for the agent (last: {})",
                c.message
            ),
        ),
        (Some(c), ..) => (c.status.clone(), c.message.clone()),
    }
}

fn gitsync_row(gs: &GitSync) -> Vec<String> {
    let st = gs.status.clone().unwrap_or_default();
    let (ready, message) = readiness(
        &st.conditions,
        st.observed_generation,
        gs.metadata.generation,
    );
    vec![
        gs.name_any(),
        ready,
        st.last_applied_revision.unwrap_or_default(),
        if gs.spec.suspend { "True" } else { "False" }.into(),
        age(gs.metadata.creation_timestamp.as_ref()),
        message,
    ]
}

fn sealed_row(s: &SealedSecret) -> Vec<String> {
    let st = s.status.clone().unwrap_or_default();
    let (ready, message) = readiness(
        &st.conditions,
        st.observed_generation,
        s.metadata.generation,
    );
    vec![
        s.name_any(),
        ready,
        s.spec.encrypted_data.len().to_string(),
        age(s.metadata.creation_timestamp.as_ref()),
        message,
    ]
}
