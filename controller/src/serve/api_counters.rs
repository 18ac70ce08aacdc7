//! Counts the API requests the agent sends, split into reads and writes, so that "a no-op
//! pass writes nothing" is a measured fact (metrics and tests read these counters). Leader
//! election traffic (the Lease, read or renewed every second or two) is counted apart, so
//! that reads and writes are the work the agent does. A pass run with a [`counted_client`] also
//! gets its own count (passes of different GitSyncs run at the same time, so the difference
//! of the totals would mix them). Every request also carries the agent's User-Agent,
//! `gitseal-agent/VERSION`, so API server audit logs name it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::client::ClientBuilder;

#[derive(Debug, Default)]
pub struct ApiCounters {
    reads: AtomicU64,
    writes: AtomicU64,
    lease: AtomicU64,
}

impl ApiCounters {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    /// Requests for leader election (the Lease).
    pub fn lease(&self) -> u64 {
        self.lease.load(Ordering::Relaxed)
    }
    fn count(&self, method: &http::Method, path: &str) {
        if path.starts_with("/apis/coordination.k8s.io/") {
            self.lease.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let c = match *method {
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => &self.reads,
            _ => &self.writes,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A client for one pass: its requests go through `base` (same connections, same totals)
/// and are also counted in `counters`.
pub fn counted_client(base: &kube::Client, counters: Arc<ApiCounters>) -> kube::Client {
    let ns = base.default_namespace().to_owned();
    kube::Client::new(
        ThroughClient {
            base: base.clone(),
            counters,
        },
        ns,
    )
}

/// Sends each request through another client, counting it.
#[derive(Clone)]
struct ThroughClient {
    base: kube::Client,
    counters: Arc<ApiCounters>,
}

impl tower::Service<http::Request<kube::client::Body>> for ThroughClient {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        self.counters.count(req.method(), req.uri().path());
        let base = self.base.clone();
        Box::pin(async move { base.send(req).await })
    }
}

/// The User-Agent of the agent's requests.
pub fn user_agent() -> String {
    format!("gitseal-agent/{}", crate::VERSION)
}

/// A client whose every request is counted and carries the agent's User-Agent.
pub fn counting_client(
    mut config: kube::Config,
    counters: Arc<ApiCounters>,
) -> Result<kube::Client, kube::Error> {
    if let Ok(ua) = http::HeaderValue::from_str(&user_agent()) {
        config
            .headers
            .retain(|(name, _)| name != http::header::USER_AGENT);
        config.headers.push((http::header::USER_AGENT, ua));
    }
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        counters.count(req.method(), req.uri().path());
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}
