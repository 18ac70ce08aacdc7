//! Prometheus metrics. Labels are bounded: fixed strings per result or error kind, never
//! messages; the per-GitSync series ([`per_object`]) name their GitSync and are removed when
//! it is gone. Every metric the Grafana dashboard (`deploy/grafana/gitseal.json`) queries is
//! one of these (a test checks it against a live agent's `/metrics`).

mod per_object;

pub use per_object::{PassRecord, SourceMetrics};

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::api_counters::ApiCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, `noop`, or the error kind.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// Per-GitSync series.
    pub sources: SourceMetrics,
    pub passes: Family<ResultLabel, Counter>,
    /// SealedSecret objects opened (or refused), by result: attempts, not reconciles held
    /// back by a backoff.
    pub unseals: Family<ResultLabel, Counter>,
    /// ResealRequests answered, by result.
    pub reseals: Family<ResultLabel, Counter>,
    pub pass_seconds: Histogram,
    pub applied: Counter,
    pub pruned: Counter,
    pub managed_objects: Gauge,
    pub sealing_keys: Gauge,
    /// Push webhook requests by result (`triggered`, `unauthorized`, …).
    pub webhook_requests: Family<ResultLabel, Counter>,
    /// Secrets labelled as sealing keys that the key manager ignores as untrusted.
    pub ignored_key_secrets: Gauge,
    api_reads: Counter,
    api_writes: Counter,
    api_lease: Counter,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// Leader election rounds whose Lease request failed or timed out.
    pub leader_election_errors: Counter,
    pub counters: Arc<ApiCounters>,
}

impl Metrics {
    pub fn new(counters: Arc<ApiCounters>) -> Self {
        let mut registry = Registry::with_prefix("gitseal");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: crate::VERSION.to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the agent's version in the label",
            build_info,
        );
        let sources = SourceMetrics::register(&mut registry);
        let passes = Family::<ResultLabel, Counter>::default();
        registry.register("passes", "Reconciliation passes by result", passes.clone());
        let unseals = Family::<ResultLabel, Counter>::default();
        registry.register(
            "unseals",
            "Attempts to open a SealedSecret object into its Secret, by result",
            unseals.clone(),
        );
        let reseals = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reseal_answers",
            "ResealRequests answered, by result",
            reseals.clone(),
        );
        let pass_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "pass_duration_seconds",
            "Duration of passes",
            pass_seconds.clone(),
        );
        let applied = Counter::default();
        registry.register(
            "objects_applied",
            "Objects applied (created or changed)",
            applied.clone(),
        );
        let pruned = Counter::default();
        registry.register(
            "objects_pruned",
            "Objects deleted by pruning",
            pruned.clone(),
        );
        let managed_objects = Gauge::default();
        registry.register(
            "managed_objects",
            "Objects in the inventories",
            managed_objects.clone(),
        );
        let sealing_keys = Gauge::default();
        registry.register(
            "sealing_keys",
            "Private keys in the agent's keyring",
            sealing_keys.clone(),
        );
        let webhook_requests = Family::<ResultLabel, Counter>::default();
        registry.register(
            "webhook_requests",
            "Push webhook requests by result",
            webhook_requests.clone(),
        );
        // Zero from the start, so that a rate() and the dashboard's panels have a series
        // before the first request or answer (the other results appear when they happen).
        for (family, result) in [(&reseals, "ok"), (&webhook_requests, "triggered")] {
            family
                .get_or_create(&ResultLabel {
                    result: result.to_owned(),
                })
                .inc_by(0);
        }
        let ignored_key_secrets = Gauge::default();
        registry.register(
            "sealing_key_secrets_ignored",
            "Secrets labelled as sealing keys that the agent ignores: written by the agent for a GitSync or a SealedSecret, not by itself or `gitseal keys restore`",
            ignored_key_secrets.clone(),
        );
        let api_reads = Counter::default();
        registry.register(
            "api_reads",
            "Read requests sent to the API server",
            api_reads.clone(),
        );
        let api_writes = Counter::default();
        registry.register(
            "api_writes",
            "Write requests sent to the API server",
            api_writes.clone(),
        );
        let api_lease = Counter::default();
        registry.register(
            "api_lease_requests",
            "Leader election requests (the Lease) sent to the API server",
            api_lease.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let leader_election_errors = Counter::default();
        registry.register(
            "leader_election_errors",
            "Leader election rounds whose request on the Lease failed or timed out (a leader that cannot renew for the renew deadline stops leading)",
            leader_election_errors.clone(),
        );
        Metrics {
            registry,
            sources,
            passes,
            unseals,
            reseals,
            pass_seconds,
            applied,
            pruned,
            managed_objects,
            sealing_keys,
            webhook_requests,
            ignored_key_secrets,
            api_reads,
            api_writes,
            api_lease,
            leader,
            leader_election_errors,
            counters,
        }
    }

    pub fn pass(&self, result: &str) {
        count(&self.passes, result);
    }

    /// One attempt to open a SealedSecret object (`result`: `ok` or a condition reason).
    pub fn unseal(&self, result: &str) {
        count(&self.unseals, result);
    }

    /// One ResealRequest answered (`result`: `ok` or the error kind).
    pub fn reseal(&self, result: &str) {
        count(&self.reseals, result);
    }

    /// Counts one push webhook request.
    pub fn webhook(&self, result: &str) {
        self.webhook_requests
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        // Bring the request counters up to date from the client layer.
        let sync = |c: &Counter, total: u64| {
            let have = c.get();
            if total > have {
                c.inc_by(total - have);
            }
        };
        sync(&self.api_reads, self.counters.reads());
        sync(&self.api_writes, self.counters.writes());
        sync(&self.api_lease, self.counters.lease());
        self.sources.prune();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn count(family: &Family<ResultLabel, Counter>, result: &str) {
    family
        .get_or_create(&ResultLabel {
            result: result.to_owned(),
        })
        .inc();
}
