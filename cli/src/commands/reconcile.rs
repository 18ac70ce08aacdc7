//! `gitseal reconcile gitsync NAME [--wait]`: asks the agent for a pass now by setting the
//! GitSync's `reconcile.gitseal.dev/requestedAt` annotation to the current time (a merge
//! patch of that annotation alone: `patch` on gitsyncs), as a Receiver's webhook does. With
//! `--wait`, waits until the agent reports the pass that answered this very request
//! (`status.lastHandledReconcileAt` equal to the value set) and fails when it did not succeed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use gitseal_api::GitSync;
use gitseal_api::names::{CLI_FIELD_MANAGER, RECONCILE_REQUESTED_ANNOTATION};
use kube::api::{Api, Patch, PatchParams};

use crate::args::{ReconcileArgs, TableFormat};
use crate::cluster::{api_error, kind_missing, kube_client, namespace_or_default, not_installed};
use crate::table::{render, structured};

/// How often `--wait` looks at the GitSync.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(args: ReconcileArgs) -> Result<()> {
    let client = kube_client(&args.kube).await?;
    let ns = namespace_or_default(&client, args.namespace.as_deref());
    let api: Api<GitSync> = Api::namespaced(client, &ns);
    let name = &args.name;
    let gs = match api.get_opt(name).await {
        Ok(Some(gs)) => gs,
        Ok(None) => bail!(
            "GitSync {name} not found in namespace {ns}; list them with `gitseal get gitsyncs -n {ns}`"
        ),
        Err(e) if kind_missing(&e) => return Err(not_installed("GitSync")),
        Err(e) => return Err(api_error(e, &format!("reading GitSync {name}"), &ns)),
    };
    if gs.spec.suspend {
        bail!(
            "GitSync {ns}/{name} is suspended: the agent runs no pass for it; resume it first (kubectl -n {ns} patch gitsync {name} --type merge -p '{{\"spec\":{{\"suspend\":false}}}}')"
        );
    }
    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({
        "metadata": {"annotations": {RECONCILE_REQUESTED_ANNOTATION: at}}
    });
    let params = PatchParams {
        field_manager: Some(CLI_FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(e, &format!("asking for a pass of GitSync {name}"), &ns))?;
    eprintln!("asked for a pass of GitSync {ns}/{name} ({RECONCILE_REQUESTED_ANNOTATION}={at})");
    if !args.wait {
        return Ok(());
    }
    let started = Instant::now();
    let gs = loop {
        let gs = api
            .get(name)
            .await
            .map_err(|e| api_error(e, &format!("reading GitSync {name}"), &ns))?;
        if handled(&gs) == Some(at.as_str()) {
            break gs;
        }
        if started.elapsed() >= args.timeout {
            bail!(
                "no pass of GitSync {ns}/{name} answered the request within {}: is gitseal-agent running (kubectl -n gitseal-system get pods), and does it watch namespace {ns}?",
                humantime::format_duration(args.timeout)
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let status = gs.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    match args.output {
        TableFormat::Table => print!(
            "{}",
            render(
                &["NAME", "READY", "REVISION", "MESSAGE"],
                &[vec![
                    name.clone(),
                    ready.map(|c| c.status.clone()).unwrap_or_default(),
                    status.last_applied_revision.clone().unwrap_or_default(),
                    ready.map(|c| c.message.clone()).unwrap_or_default(),
                ]]
            )
        ),
        format => print!("{}", structured(&status, format)?),
    }
    match ready {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(anyhow!(
            "the pass of GitSync {ns}/{name} failed: {} ({})",
            gitseal::scope::printable(&c.message),
            c.reason
        )),
        None => Err(anyhow!(
            "the pass of GitSync {ns}/{name} left no Ready condition"
        )),
    }
}

/// The request the last pass answered (`status.lastHandledReconcileAt`).
fn handled(gs: &GitSync) -> Option<&str> {
    gs.status.as_ref()?.last_handled_reconcile_at.as_deref()
}
