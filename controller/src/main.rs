//! `gitseal-agent`: keeps a cluster equal to a git repository, SealedSecrets included.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use gitseal::Keyring;
use gitseal_agent::counting::{ApiCounters, counting_client};
use gitseal_agent::git::{GitAuth, GitRef, GitSource};
use gitseal_agent::http::{HttpState, serve};
use gitseal_agent::metrics::Metrics;
use gitseal_agent::pass::{SyncSpec, SyncState, plan, run_pass};
use gitseal_agent::{crd, inventory, keys, runner, sealed};

#[derive(Debug, Parser)]
#[command(
    name = "gitseal-agent",
    version,
    about = "Keeps a cluster equal to a git repository, SealedSecrets included"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch GitSync objects (keep each source applied) and SealedSecret objects (unseal each).
    Run(RunArgs),
    /// One source from flags: for bootstrap, CI and the quick start.
    Sync(SyncArgs),
    /// Print the CRDs (generated from the Rust types).
    Crds,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The agent's namespace: sealing keys live here.
    #[arg(long, env = "GITSEAL_NAMESPACE", default_value = "gitseal-system")]
    namespace: String,
    /// Address for /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Address for /healthz and /readyz (may equal --metrics-addr).
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// Folder for git clones, reused between passes.
    #[arg(long, default_value = "/tmp/gitseal-agent")]
    cache_dir: PathBuf,
    /// Objects applied at once within a stage.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Only watch GitSyncs and SealedSecrets in this namespace (default: all namespaces).
    #[arg(long)]
    watch_namespace: Option<String>,
    /// A new active sealing key when the newest is older than this; `0` = never.
    #[arg(long, default_value = "720h", value_parser = humantime::parse_duration)]
    key_renewal: Duration,
}

#[derive(Debug, Args)]
struct SyncArgs {
    /// Repository URL (https, ssh, file, or a local path).
    #[arg(long)]
    url: String,
    /// Branch to follow (`main`, `branch:NAME`); `tag:NAME` for a tag; a 40-hex id for a commit.
    #[arg(long = "ref", default_value = "main")]
    git_ref: GitRef,
    /// Folder in the repository to render.
    #[arg(long, default_value = "")]
    path: String,
    /// Identity file(s) to open SealedSecrets with (besides the cluster's sealing keys).
    #[arg(long = "identity", value_name = "FILE")]
    identities: Vec<PathBuf>,
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
    /// Time between passes.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Limit for the fetch, render and each apply stage.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Delete objects applied before and gone from git.
    #[arg(long)]
    prune: bool,
    /// Allow an empty render to prune everything applied before.
    #[arg(long, requires = "prune")]
    allow_empty: bool,
    /// Allow plaintext Secrets with data in the repository.
    #[arg(long)]
    allow_plaintext_secrets: bool,
    /// Print what would be applied (Secret values redacted) without a cluster.
    #[arg(long, conflicts_with_all = ["prune", "once"])]
    plan: bool,
    /// Namespace for namespaced objects (overrides theirs).
    #[arg(long)]
    target_namespace: Option<String>,
    /// Name of this source (labels, inventory ConfigMap).
    #[arg(long, default_value = "sync")]
    name: String,
    /// The agent's namespace: sealing keys and the inventory live here.
    #[arg(long, env = "GITSEAL_NAMESPACE", default_value = "gitseal-system")]
    namespace: String,
    /// Folder for the git clone, reused between passes.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITSEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn read_identities(paths: &[PathBuf]) -> Result<Keyring> {
    use std::os::unix::fs::PermissionsExt;
    let mut ring = Keyring::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).with_context(|| format!("identity file {}", p.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "identity file {}: readable by others (mode {:04o}); run `chmod 600 {}`",
                p.display(),
                meta.permissions().mode() & 0o777,
                p.display()
            );
        }
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(p).with_context(|| format!("identity file {}", p.display()))?,
        );
        for k in gitseal::keys::read_identity_file(&bytes[..])
            .with_context(|| format!("identity file {}", p.display()))?
        {
            ring.add(k);
        }
    }
    Ok(ring)
}

async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("gitseal-agent-cache"));
    let spec = SyncSpec {
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        source: GitSource {
            url: args.url.clone(),
            reference: args.git_ref.clone(),
            auth: GitAuth::None,
            timeout: args.timeout,
        },
        path: args.path.clone(),
        timeout: args.timeout,
        prune: args.prune,
        allow_empty: args.allow_empty,
        allow_plaintext: args.allow_plaintext_secrets,
        target_namespace: args.target_namespace.clone(),
    };
    let mut ring = read_identities(&args.identities)?;
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
    if let Ok(cluster_ring) = keys::load_ring(&client, &args.namespace).await {
        for k in cluster_ring.keys() {
            ring.add(k.clone());
        }
    }
    let mut state = SyncState {
        inventory: inventory::load(&client, &args.namespace, &args.name)
            .await
            .unwrap_or_default(),
        ..Default::default()
    };
    loop {
        let (r0, w0) = (counters.reads(), counters.writes());
        let before = state.inventory.clone();
        match run_pass(
            &client,
            &spec,
            &mut state,
            &ring,
            &cache_dir,
            args.concurrency,
        )
        .await
        {
            Ok(outcome) => {
                if state.inventory != before
                    && let Err(e) =
                        inventory::save(&client, &args.namespace, &args.name, &state.inventory)
                            .await
                {
                    // The pass itself succeeded; only pruning in a later run depends on this.
                    tracing::warn!(
                        namespace = %args.namespace,
                        error = %gitseal_agent::apply::kube_message(&e),
                        "inventory not saved; a later `sync` cannot prune what this one applied (does the namespace exist?)"
                    );
                }
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

async fn run(args: RunArgs) -> Result<ExitCode> {
    let counters = Arc::new(ApiCounters::default());
    let config = kube::Config::infer()
        .await
        .context("no cluster configuration (KUBECONFIG or in-cluster)")?;
    let client = counting_client(config, counters.clone())?;
    let metrics = Arc::new(Metrics::new(counters));
    let ready = Arc::new(AtomicBool::new(false));
    let key_store = keys::KeyStore::new();
    let key_manager = gitseal_agent::key_manager::KeyManager::new(
        client.clone(),
        args.namespace.clone(),
        Some(args.key_renewal).filter(|d| !d.is_zero()),
        key_store.clone(),
    );
    let state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        keys: Some(key_store.clone()),
    };
    let health = serve(args.health_addr, state.clone());
    let metrics_srv = async {
        if args.metrics_addr == args.health_addr {
            std::future::pending::<std::io::Result<()>>().await
        } else {
            serve(args.metrics_addr, state.clone()).await
        }
    };
    let reseal_ctx = Arc::new(gitseal_agent::reseal::Context {
        client: client.clone(),
        namespace: args.namespace.clone(),
        keys: key_store.clone(),
    });
    let sealed_ctx = Arc::new(
        sealed::Context::new(client.clone(), args.namespace.clone()).with_keys(key_store.clone()),
    );
    let ctx = Arc::new(
        runner::Context::new(
            client,
            metrics,
            args.namespace.clone(),
            args.cache_dir.clone(),
            args.concurrency,
        )
        .with_keys(key_store),
    );
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::select! {
        r = health => r.context("health endpoint")?,
        r = metrics_srv => r.context("metrics endpoint")?,
        () = key_manager.run() => {}
        // Both controllers stop on the same shutdown signal.
        _ = async {
            tokio::join!(
                runner::run(ctx, args.watch_namespace.as_deref()),
                sealed::run(sealed_ctx, args.watch_namespace.as_deref()),
                gitseal_agent::reseal::run(reseal_ctx),
            )
        } => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let result = match cli.command {
        Command::Crds => match crd::crds_yaml() {
            Ok(y) => {
                print!("{y}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.into()),
        },
        Command::Sync(args) => sync(args).await,
        Command::Run(args) => run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
