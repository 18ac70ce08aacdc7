//! Counts the API requests the agent sends, split into reads and writes, so that "a no-op
//! pass writes nothing" is a measured fact (metrics and tests read these counters).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::client::ClientBuilder;

#[derive(Debug, Default)]
pub struct ApiCounters {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl ApiCounters {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    fn count(&self, method: &http::Method) {
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
        counters.count(req.method());
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}
