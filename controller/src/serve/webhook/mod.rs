//! The push webhook endpoint (`--webhook-addr`): `POST /hook/<id>` from a git host starts a
//! pass of the GitSync its Receiver names, by setting that GitSync's
//! `reconcile.gitseal.dev/requestedAt` annotation. Nothing in the request is used but its
//! proof of the token and its event: the pass fetches the GitSync's own URL and ref.
//!
//! In order, each step before any costlier one:
//! 1. every request takes a token from one bucket for the whole endpoint (else 429) and a
//!    slot among [`MAX_IN_FLIGHT`] requests being read (else 429);
//! 2. the path must be a Receiver's (else 404);
//! 3. the body is read up to the size limit, within [`READ_TIMEOUT`] (else 413 / 408);
//! 4. the proof is checked in constant time (else 401, with no detail: nothing says whether
//!    the signature, the header or the timestamp was wrong);
//! 5. the Receiver must still exist as it was (else 404), and its own bucket of proven
//!    requests must have a token (else 429);
//! 6. a request seen before (same delivery id, or same signed timestamp and signature) is
//!    refused (409);
//! 7. a push sets the annotation (202); a ping or another event is answered, nothing starts
//!    (200).
//!
//! Every answer has an empty body. Logs name the Receiver and the result, never a header
//! value or the body.

pub mod hooks;
pub mod limits;
pub mod verify;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gitseal_api::names::{RECEIVER_FIELD_MANAGER, RECONCILE_REQUESTED_ANNOTATION};
use gitseal_api::{GitSync, Receiver};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::Semaphore;

use self::hooks::Hooks;
use self::limits::Bucket;
use self::verify::{Event, verify};
use super::metrics::Metrics;
use crate::kube_error::kube_message;

/// Largest body read by default (`--webhook-max-body`); GitHub's push events are far
/// smaller (it lists at most 20 commits).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Requests of any kind the endpoint takes at once, and per second after that.
pub const ENDPOINT_BURST: u32 = 100;
pub const ENDPOINT_PER_SEC: f64 = 50.0;
/// Requests being read or checked at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// Time a sender has to send its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint shares.
#[derive(Clone)]
pub struct WebhookState {
    pub hooks: Hooks,
    pub client: kube::Client,
    /// The Receivers as the API server has them (the Receiver controller's cache): a path is
    /// answered only while its Receiver exists with the same uid.
    pub receivers: Store<Receiver>,
    pub metrics: Option<Arc<Metrics>>,
    pub max_body: usize,
    endpoint: Arc<Mutex<Bucket>>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookState({} hooks)", self.hooks.len())
    }
}

impl WebhookState {
    pub fn new(hooks: Hooks, client: kube::Client, receivers: Store<Receiver>) -> Self {
        WebhookState {
            hooks,
            client,
            receivers,
            metrics: None,
            max_body: DEFAULT_MAX_BODY,
            endpoint: Arc::new(Mutex::new(Bucket::new(ENDPOINT_BURST, ENDPOINT_PER_SEC))),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

/// The answer to one request, and its label in `gitseal_webhook_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A push: the pass was asked for.
    Triggered,
    /// A ping or another event: proven, nothing started.
    Ignored,
    NotFound,
    TooLarge,
    Timeout,
    Unauthorized,
    RateLimited,
    Replayed,
    /// The GitSync could not be annotated (the API server failed).
    Failed,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Triggered => "triggered",
            Outcome::Ignored => "ignored",
            Outcome::NotFound => "not_found",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
            Outcome::Unauthorized => "unauthorized",
            Outcome::RateLimited => "rate_limited",
            Outcome::Replayed => "replayed",
            Outcome::Failed => "failed",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Outcome::Triggered => StatusCode::ACCEPTED,
            Outcome::Ignored => StatusCode::OK,
            Outcome::NotFound => StatusCode::NOT_FOUND,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Timeout => StatusCode::REQUEST_TIMEOUT,
            Outcome::Unauthorized => StatusCode::UNAUTHORIZED,
            Outcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Replayed => StatusCode::CONFLICT,
            Outcome::Failed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let mut r = self.status().into_response();
        if self == Outcome::RateLimited {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn take(bucket: &Mutex<Bucket>) -> bool {
    bucket.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Answers one request (see the module's steps).
pub async fn answer(s: &WebhookState, id: &str, headers: &HeaderMap, body: Body) -> Outcome {
    if !take(&s.endpoint) {
        return Outcome::RateLimited;
    }
    let Ok(_slot) = s.in_flight.clone().try_acquire_owned() else {
        return Outcome::RateLimited;
    };
    let Some(hook) = s.hooks.get(id) else {
        return Outcome::NotFound;
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body as u64) {
        return Outcome::TooLarge;
    }
    let bytes =
        match tokio::time::timeout(READ_TIMEOUT, axum::body::to_bytes(body, s.max_body)).await {
            Err(_) => return Outcome::Timeout,
            Ok(Err(_)) => return Outcome::TooLarge,
            Ok(Ok(b)) => b,
        };
    let now = unix_now();
    let Ok(proven) = verify(
        hook.kind,
        secrecy::ExposeSecret::expose_secret(&hook.token),
        headers,
        &bytes,
        now,
    ) else {
        return Outcome::Unauthorized;
    };
    let live = s
        .receivers
        .get(&ObjectRef::new(&hook.name).within(&hook.namespace));
    if live.is_none_or(|r| r.metadata.uid.as_deref() != Some(hook.uid.as_str())) {
        s.hooks.remove(&hook.namespace, &hook.name);
        return Outcome::NotFound;
    }
    if !take(&hook.bucket) {
        return Outcome::RateLimited;
    }
    if let Some((key, until)) = &proven.replay {
        let mut seen = hook.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.replayed(key, *until, now) {
            return Outcome::Replayed;
        }
    }
    if proven.event != Event::Push {
        return Outcome::Ignored;
    }
    match request_pass(&s.client, &hook.namespace, &hook.git_sync).await {
        Ok(()) => Outcome::Triggered,
        Err(kube::Error::Api(e)) if e.code == 404 => Outcome::NotFound,
        Err(e) => {
            tracing::warn!(
                receiver = %format!("{}/{}", hook.namespace, hook.name),
                gitsync = %hook.git_sync,
                error = %kube_message(&e),
                "webhook: could not ask for a pass"
            );
            Outcome::Failed
        }
    }
}

/// Asks for a pass of the GitSync `namespace/name` now: a new value of its
/// `reconcile.gitseal.dev/requestedAt` annotation (metadata only is sent and read back).
pub async fn request_pass(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = serde_json::json!({
        "metadata": {"annotations": {RECONCILE_REQUESTED_ANNOTATION: at}}
    });
    let params = PatchParams {
        field_manager: Some(RECEIVER_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_metadata(name, &params, &Patch::Merge(&body))
        .await
        .map(|_| ())
}

async fn hook(
    State(s): State<WebhookState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Outcome {
    let outcome = answer(&s, &id, &headers, body).await;
    if let Some(m) = &s.metrics {
        m.webhook(outcome.label());
    }
    match outcome {
        Outcome::Triggered | Outcome::Ignored => {
            if let Some(h) = s.hooks.get(&id) {
                tracing::info!(
                    receiver = %format!("{}/{}", h.namespace, h.name),
                    gitsync = %h.git_sync,
                    result = outcome.label(),
                    "webhook"
                );
            }
        }
        _ => tracing::debug!(result = outcome.label(), "webhook refused"),
    }
    outcome
}

pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/hook/{id}", post(hook))
        .with_state(state)
}

/// Serves the webhook endpoint until the process ends.
pub async fn serve(addr: SocketAddr, state: WebhookState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving push webhooks on /hook/<id>");
    axum::serve(listener, router(state)).await
}
