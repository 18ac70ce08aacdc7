//! `gitseal-agent run`: the HTTP endpoints, the sealing keys (read on every replica), leader
//! election, with `--webhook-addr` the push webhook endpoint and the Receiver controller that
//! routes it (on every replica: a push reaching the standby starts a pass too; only the
//! leader writes Receiver status), and — on the leader only — the GitSync, SealedSecret and
//! ResealRequest controllers and the key manager's writes. Each leadership starts them afresh
//! (no memory of an earlier leadership is trusted) and losing the lease stops them at once.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use tokio::sync::watch;

use crate::args::RunArgs;
use crate::controllers::gitsync::SourcePolicy;
use crate::controllers::sealing_keys::KeyManager;
use crate::controllers::{gitsync, receiver, reseal_request, sealed_secret};
use crate::keys::{KeyStore, KeyUsage};
use crate::leader::{Elector, LeaseConfig, default_identity};
use crate::serve::api_counters::{ApiCounters, counting_client};
use crate::serve::http::{HttpState, Readiness, serve};
use crate::serve::metrics::Metrics;
use crate::serve::webhook::{self, WebhookState, hooks::Hooks};

/// How many controllers a leadership runs (for `/readyz`).
const CONTROLLERS: usize = 3;

/// `gitseal-agent run`: until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let cache_dir = super::sync::cache_dir(args.cache_dir.as_deref())?;
    let escrow =
        reseal_request::escrow_recipients(&args.escrow_recipients, &args.escrow_recipient_files)
            .map_err(anyhow::Error::msg)?;
    if let Some(sa) = &args.default_service_account {
        gitseal::scope::validate_name(sa).context("--default-service-account")?;
    }
    let lease = LeaseConfig {
        duration: args.lease_duration,
        renew_deadline: args.lease_renew_deadline,
        ..LeaseConfig::new(
            args.namespace.clone(),
            args.leader_identity
                .clone()
                .unwrap_or_else(default_identity),
        )
    };
    if args.leader_identity.as_deref() == Some("") {
        return Err(anyhow!(
            "--leader-identity: must not be empty (it names this replica in the Lease)"
        ));
    }
    lease.check().map_err(|e| {
        anyhow!(
            "--lease-duration {:?} / --lease-renew-deadline {:?}: {e}",
            args.lease_duration,
            args.lease_renew_deadline
        )
    })?;
    let counters = Arc::new(ApiCounters::default());
    let config = kube::Config::infer()
        .await
        .context("no cluster configuration (KUBECONFIG or in-cluster)")?;
    let client = counting_client(config.clone(), counters.clone())?;
    let metrics = Arc::new(Metrics::new(counters.clone()));
    let readiness = Arc::new(Readiness::default());
    let key_store = KeyStore::new();
    let (leading_tx, leading) = watch::channel(false);
    let mut elector = Elector::new(
        client.clone(),
        lease,
        readiness.clone(),
        metrics.leader_election_errors.clone(),
    );
    let key_manager = KeyManager::new(
        client.clone(),
        args.namespace.clone(),
        Some(args.key_renewal).filter(|d| !d.is_zero()),
        key_store.clone(),
        metrics.ignored_key_secrets.clone(),
        leading.clone(),
        readiness.clone(),
    );
    let state = HttpState {
        metrics: metrics.clone(),
        ready: readiness.clone(),
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
    let parts = Parts {
        args: &args,
        cache_dir: &cache_dir,
        client: &client,
        config: &config,
        counters: &counters,
        metrics: &metrics,
        key_store: &key_store,
        escrow: &escrow,
        readiness: &readiness,
    };
    let webhooks = webhooks(&args, &client, &metrics, &readiness, leading.clone());
    let leader_work = lead(parts, leading);
    let outcome = tokio::select! {
        r = health => r.context("health endpoint"),
        r = metrics_srv => r.context("metrics endpoint"),
        r = webhooks => r.context("webhook endpoint"),
        () = key_manager.run() => Ok(()),
        () = elector.run(&leading_tx) => Ok(()),
        () = leader_work => Ok(()),
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    // Everything above is dropped: the controllers stopped. Let a standby take over now.
    elector.release().await;
    outcome.map(|()| ExitCode::SUCCESS)
}

/// With `--webhook-addr`, on every replica: the push webhook endpoint and the Receiver
/// controller that fills its table of paths (its cache tells the endpoint which Receivers
/// still exist). Never returns without it.
async fn webhooks(
    args: &RunArgs,
    client: &kube::Client,
    metrics: &Arc<Metrics>,
    readiness: &Readiness,
    leading: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let Some(addr) = args.webhook_addr else {
        return std::future::pending().await;
    };
    readiness.set_webhooks_pending();
    let hooks = Hooks::default();
    let controller = receiver::controller(
        client,
        args.watch_namespace.as_deref(),
        args.reconcile_concurrency,
    );
    let store = controller.store();
    let state = WebhookState::new(hooks.clone(), client.clone(), store.clone())
        .with_metrics(metrics.clone())
        .with_max_body(args.webhook_max_body);
    let ctx = Arc::new(receiver::Context {
        client: client.clone(),
        hooks,
        receivers: store,
        leading,
    });
    let receivers = receiver::run(controller, ctx, args.watch_namespace.as_deref(), readiness);
    tokio::select! {
        r = webhook::serve(addr, state) => r,
        () = receivers => Ok(()),
    }
}

/// What every leadership's controllers share.
struct Parts<'a> {
    args: &'a RunArgs,
    cache_dir: &'a std::path::Path,
    client: &'a kube::Client,
    /// The agent's own configuration and request counters, to impersonate a GitSync's
    /// ServiceAccount with.
    config: &'a kube::Config,
    counters: &'a Arc<ApiCounters>,
    metrics: &'a Arc<Metrics>,
    key_store: &'a KeyStore,
    escrow: &'a [gitseal::PublicKey],
    readiness: &'a Arc<Readiness>,
}

/// Runs the controllers for as long as this replica leads, again on each new leadership.
async fn lead(parts: Parts<'_>, mut leading: watch::Receiver<bool>) {
    let Parts {
        args,
        cache_dir,
        client,
        config,
        counters,
        metrics,
        key_store,
        escrow,
        readiness,
    } = parts;
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        metrics.leader.set(1);
        readiness.set_leading(CONTROLLERS);
        tracing::info!("leading: starting the controllers");
        let key_usage = KeyUsage::new(key_store.clone());
        let reseal_ctx = Arc::new(
            reseal_request::Context::new(
                client.clone(),
                args.namespace.clone(),
                key_store.clone(),
                escrow.to_vec(),
            )
            .with_metrics(metrics.clone()),
        );
        let sealed_ctx = Arc::new(
            sealed_secret::Context::new(client.clone(), args.namespace.clone())
                .with_keys(key_store.clone(), key_usage.clone())
                .with_metrics(metrics.clone()),
        );
        let ctx = Arc::new(
            gitsync::Context::new(
                client.clone(),
                metrics.clone(),
                args.namespace.clone(),
                cache_dir.to_owned(),
                args.concurrency,
            )
            .with_policy(SourcePolicy {
                allow_local_sources: args.allow_local_sources,
                allow_remote_bases: args.allow_remote_bases,
                limits: args.limits.manifest_limits(),
            })
            .with_impersonation(
                config.clone(),
                counters.clone(),
                args.default_service_account.clone(),
            )
            .with_keys(key_store.clone(), key_usage),
        );
        let watch_ns = args.watch_namespace.as_deref();
        let controllers = async {
            tokio::join!(
                gitsync::run(ctx, watch_ns, readiness),
                sealed_secret::run(sealed_ctx, watch_ns, args.reconcile_concurrency, readiness),
                reseal_request::run(reseal_ctx, args.reconcile_concurrency, readiness),
            )
        };
        tokio::select! {
            _ = controllers => {}
            _ = leading.wait_for(|l| !*l) => {}
        }
        // Dropping the controllers cancels every pass and request in flight.
        metrics.leader.set(0);
        readiness.set_leading(0);
        tracing::info!("controllers stopped");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
