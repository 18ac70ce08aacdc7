//! Counts the API requests the agent sends, split into reads and writes, so that "a no-op
//! pass writes nothing" is a measured fact (metrics and tests read these counters). Leader
//! election traffic (the Lease, read or renewed every second or two) is counted apart, so
//! that reads and writes are the work the agent does.

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

/// A client whose every request is counted.
pub fn counting_client(
    config: kube::Config,
    counters: Arc<ApiCounters>,
) -> Result<kube::Client, kube::Error> {
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        counters.count(req.method(), req.uri().path());
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}
