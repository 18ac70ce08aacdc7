//! `gitseal-agent run`: starts the sealing keys controller, the GitSync, SealedSecret and
//! ResealRequest controllers and the HTTP endpoints (with `--webhook-addr`, the Receiver
//! controller and the push webhook endpoint too), sharing one client, one key store and one
//! key usage record.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result};

use crate::args::RunArgs;
use crate::controllers::gitsync::SourcePolicy;
use crate::controllers::sealing_keys::KeyManager;
use crate::controllers::{gitsync, receiver, reseal_request, sealed_secret};
use crate::keys::{KeyStore, KeyUsage};
use crate::serve::api_counters::{ApiCounters, counting_client};
use crate::serve::http::{HttpState, serve};
use crate::serve::metrics::Metrics;
use crate::serve::webhook::{self, WebhookState, hooks::Hooks};

/// `gitseal-agent run`: every controller, the key manager and the HTTP endpoints, until a
/// shutdown signal.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let cache_dir = super::sync::cache_dir(args.cache_dir.as_deref())?;
    let escrow =
        reseal_request::escrow_recipients(&args.escrow_recipients, &args.escrow_recipient_files)
            .map_err(anyhow::Error::msg)?;
    if let Some(sa) = &args.default_service_account {
        gitseal::scope::validate_name(sa).context("--default-service-account")?;
    }
    let counters = Arc::new(ApiCounters::default());
    let config = kube::Config::infer()
        .await
        .context("no cluster configuration (KUBECONFIG or in-cluster)")?;
    let client = counting_client(config.clone(), counters.clone())?;
    let metrics = Arc::new(Metrics::new(counters.clone()));
    let ready = Arc::new(AtomicBool::new(false));
    let key_store = KeyStore::new();
    let key_usage = KeyUsage::new(key_store.clone());
    let key_manager = KeyManager::new(
        client.clone(),
        args.namespace.clone(),
        Some(args.key_renewal).filter(|d| !d.is_zero()),
        key_store.clone(),
        metrics.ignored_key_secrets.clone(),
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
    let reseal_ctx = Arc::new(
        reseal_request::Context::new(
            client.clone(),
            args.namespace.clone(),
            key_store.clone(),
            escrow,
        )
        .with_metrics(metrics.clone()),
    );
    let sealed_ctx = Arc::new(
        sealed_secret::Context::new(client.clone(), args.namespace.clone())
            .with_keys(key_store.clone(), key_usage.clone())
            .with_metrics(metrics.clone()),
    );
    // Push webhooks: the Receiver controller fills the table of paths the endpoint answers,
    // and its cache tells the endpoint which Receivers still exist.
    let webhooks = args.webhook_addr.map(|addr| {
        let hooks = Hooks::default();
        let controller = receiver::controller(&client, args.watch_namespace.as_deref());
        let store = controller.store();
        let state = WebhookState::new(hooks.clone(), client.clone(), store.clone())
            .with_metrics(metrics.clone())
            .with_max_body(args.webhook_max_body);
        let ctx = Arc::new(receiver::Context {
            client: client.clone(),
            hooks,
            receivers: store,
        });
        (addr, state, controller, ctx)
    });
    let (webhook_srv, receivers) = match webhooks {
        Some((addr, state, controller, ctx)) => {
            (Some(webhook::serve(addr, state)), Some((controller, ctx)))
        }
        None => (None, None),
    };
    let webhook_srv = async {
        match webhook_srv {
            Some(srv) => srv.await,
            None => std::future::pending::<std::io::Result<()>>().await,
        }
    };
    let receivers = async {
        if let Some((controller, ctx)) = receivers {
            receiver::run(controller, ctx, args.watch_namespace.as_deref()).await;
        }
    };
    let ctx = Arc::new(
        gitsync::Context::new(
            client,
            metrics,
            args.namespace.clone(),
            cache_dir,
            args.concurrency,
        )
        .with_policy(SourcePolicy {
            allow_local_sources: args.allow_local_sources,
            allow_remote_bases: args.allow_remote_bases,
            limits: args.limits.manifest_limits(),
        })
        .with_impersonation(config, counters, args.default_service_account.clone())
        .with_keys(key_store, key_usage),
    );
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::select! {
        r = health => r.context("health endpoint")?,
        r = metrics_srv => r.context("metrics endpoint")?,
        r = webhook_srv => r.context("webhook endpoint")?,
        () = key_manager.run() => {}
        // Both controllers stop on the same shutdown signal.
        _ = async {
            tokio::join!(
                gitsync::run(ctx, args.watch_namespace.as_deref()),
                sealed_secret::run(sealed_ctx, args.watch_namespace.as_deref()),
                reseal_request::run(reseal_ctx),
                receivers,
            )
        } => {}
    }
    Ok(ExitCode::SUCCESS)
}
