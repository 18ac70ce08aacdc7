//! The agent's HTTP endpoints: `/healthz`, `/readyz`, `/metrics` and `/v1/keys` (the
//! public sealing keys). They reveal nothing secret and change nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// Serves `/v1/keys` when set.
    pub keys: Option<crate::keys::KeyStore>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
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
