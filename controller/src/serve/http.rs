//! The agent's HTTP endpoints: `/healthz`, `/readyz`, `/metrics` and `/v1/keys` (the
//! public sealing keys). They reveal nothing secret and change nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::metrics::Metrics;

/// What `/readyz` answers from: ready when the API server answered the last leader election
/// round trip, the sealing keys were read, the push webhook paths are known (with
/// `--webhook-addr`, on every replica), and — on the leader — every controller has synced
/// its cache. A standby is ready (it serves `/v1/keys`); nobody is ready while the API
/// server is unreachable.
#[derive(Debug, Default)]
pub struct Readiness {
    api_reachable: AtomicBool,
    /// The same, for those who wait for the API server to come back.
    reachable_tx: tokio::sync::watch::Sender<bool>,
    keys_synced: AtomicBool,
    leading: AtomicBool,
    /// Controllers of the current leadership that have not synced their caches yet.
    controllers_unsynced: AtomicUsize,
    /// The push webhook endpoint (every replica's) has not read the Receivers yet.
    webhooks_pending: AtomicBool,
}

impl Readiness {
    pub fn set_api_reachable(&self, v: bool) {
        self.api_reachable.store(v, Ordering::Relaxed);
        self.reachable_tx.send_if_modified(|old| {
            let changed = *old != v;
            *old = v;
            changed
        });
    }
    /// Changes of "the API server is reachable".
    pub fn reachable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.reachable_tx.subscribe()
    }
    pub fn set_keys_synced(&self) {
        self.keys_synced.store(true, Ordering::Relaxed);
    }
    /// A new leadership starts `controllers` controllers, none synced yet; `0` = not leading.
    pub fn set_leading(&self, controllers: usize) {
        self.controllers_unsynced
            .store(controllers, Ordering::Relaxed);
        self.leading.store(controllers > 0, Ordering::Relaxed);
    }
    /// This replica answers push webhooks: not ready until it knows their paths.
    pub fn set_webhooks_pending(&self) {
        self.webhooks_pending.store(true, Ordering::Relaxed);
    }
    /// The Receiver cache is synced: the webhook paths are known.
    pub fn webhooks_synced(&self) {
        self.webhooks_pending.store(false, Ordering::Relaxed);
    }
    /// One controller's cache is synced.
    pub fn controller_synced(&self) {
        let _ = self
            .controllers_unsynced
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.api_reachable.load(Ordering::Relaxed) {
            Some("the API server is unreachable")
        } else if !self.keys_synced.load(Ordering::Relaxed) {
            Some("the sealing keys are not read yet")
        } else if self.leading.load(Ordering::Relaxed)
            && self.controllers_unsynced.load(Ordering::Relaxed) > 0
        {
            Some("the controllers have not synced their caches yet")
        } else if self.webhooks_pending.load(Ordering::Relaxed) {
            Some("the push webhook paths are not read yet")
        } else {
            None
        }
    }
    /// Marks everything ready (for agents without leader election, e.g. tests of the
    /// endpoints).
    pub fn all_ready() -> Readiness {
        let r = Readiness::default();
        r.set_api_reachable(true);
        r.set_keys_synced();
        r
    }
}

#[derive(Debug, Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Readiness>,
    /// Serves `/v1/keys` when set.
    pub keys: Option<crate::keys::KeyStore>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                match s.ready.not_ready() {
                    None => (StatusCode::OK, "ok\n".to_owned()),
                    Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.render(),
                )
            }),
        )
        .route(
            "/v1/keys",
            get(|State(s): State<HttpState>| async move {
                let (status, body) = match &s.keys {
                    Some(keys) => {
                        let snap = keys.snapshot();
                        let body = serde_json::json!({
                            "keys": snap.public,
                            "recipients": snap.newest_active().map(|k| k.public_key.clone()).into_iter().collect::<Vec<_>>(),
                        });
                        (StatusCode::OK, body)
                    }
                    None => (
                        StatusCode::NOT_FOUND,
                        serde_json::json!({"error": "no sealing keys here"}),
                    ),
                };
                (
                    status,
                    [("content-type", "application/json")],
                    format!("{body}\n"),
                )
            }),
        )
        .with_state(state)
}

/// Serves until the process ends.
pub async fn serve(addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz, /metrics, /v1/keys");
    axum::serve(listener, router(state)).await
}
