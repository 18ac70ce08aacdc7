//! `gitseal-agent sync`: one source from flags, for bootstrap, CI and the quick start. Its
//! inventory lives in a ConfigMap between runs; `--plan` prints what a pass would apply
//! (Secret values redacted) without a cluster.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::args::SyncArgs;
use crate::keys::store::load_ring;
use crate::serve::api_counters::{ApiCounters, counting_client};
use crate::sync::git::{GitAuth, GitSource, default_cache_dir, private_cache_dir};
use crate::sync::inventory;
use crate::sync::pass::{PassError, SyncSpec, SyncState, plan, run_pass};
use crate::sync::render::RemoteBases;
use crate::sync::tenancy::Tenancy;

/// The cache folder to use, private to this user (created, or checked and refused): `given`,
/// else this user's default. Shared by `run`.
pub(super) fn cache_dir(given: Option<&std::path::Path>) -> Result<std::path::PathBuf> {
    let dir = match given {
        Some(d) => d.to_owned(),
        None => default_cache_dir().context(
            "no --cache-dir, and neither $XDG_CACHE_HOME nor $HOME names a folder for the default",
        )?,
    };
    Ok(private_cache_dir(&dir)?)
}

/// `gitseal-agent sync`: one source from flags; `--plan` needs no cluster.
pub async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let cache_dir = cache_dir(args.cache_dir.as_deref())?;
    let spec = SyncSpec {
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        source: GitSource {
            url: args.url.clone(),
            reference: args.git_ref.clone(),
            auth: GitAuth::None,
            timeout: args.timeout,
            // The operator's own URL, on the operator's own machine.
            allow_local: true,
        },
        path: args.path.clone(),
        timeout: args.timeout,
        prune: args.prune,
        allow_empty: args.allow_empty,
        allow_plaintext: args.allow_plaintext_secrets,
        target_namespace: args.target_namespace.clone(),
        remote_bases: RemoteBases {
            agent: args.allow_remote_bases,
            gitsync: None,
        },
        limits: args.limits.manifest_limits(),
        // The operator's own source: the agent's rights, never a sealing key Secret.
        tenancy: Tenancy::agent(&args.namespace),
    };
    let mut ring = gitseal::read_identity_files(&args.identities)?;
    if args.plan {
        let (revision, objects) = plan(&spec, &ring, &cache_dir).await?;
        let docs: Vec<serde_yaml::Value> = objects
            .iter()
            .filter_map(|v| serde_yaml::to_value(v).ok())
            .collect();
        print!(
            "{}",
            gitseal::manifest::render(&docs, gitseal::manifest::OutputFormat::Yaml)
        );
        eprintln!(
            "plan for {revision}: {} object(s); Secret values redacted; nothing applied",
            docs.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let counters = Arc::new(ApiCounters::default());
    let config = kube::Config::infer()
        .await
        .context("no cluster configuration (KUBECONFIG or in-cluster)")?;
    let client = counting_client(config, counters.clone())?;
    if let Ok(cluster_ring) = load_ring(&client, &args.namespace).await {
        for k in cluster_ring.keys() {
            ring.add(k.clone());
        }
    }
    // Unreadable, the run stops: starting from nothing would forget what the record says
    // was applied, and nothing of it would ever be pruned.
    let (mut store, recorded) =
        inventory::configmap::ConfigMapStore::load(&client, &args.namespace, &args.name)
            .await
            .context("reading the inventory of earlier runs")?;
    let mut state = SyncState {
        inventory: recorded,
        ..Default::default()
    };
    loop {
        let (r0, w0) = (counters.reads(), counters.writes());
        match run_pass(
            &client,
            &spec,
            &mut state,
            &ring,
            &cache_dir,
            args.concurrency,
            &mut store,
        )
        .await
        {
            Ok(outcome) => {
                tracing::info!(
                    revision = %outcome.revision,
                    applied = outcome.report.applied.len(),
                    unchanged = outcome.report.unchanged,
                    pruned = outcome.report.pruned.len(),
                    api_reads = counters.reads() - r0,
                    api_writes = counters.writes() - w0,
                    millis = outcome.duration.as_millis() as u64,
                    "pass done"
                );
            }
            Err((_, e @ PassError::Held { .. })) => {
                tracing::debug!(error = %e, "pass held back");
            }
            Err((_, e)) => {
                tracing::error!(error = %e, kind = e.kind(), "pass failed; nothing was pruned");
                if args.once {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(args.interval).await;
    }
}
