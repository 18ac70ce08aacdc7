//! Metrics per GitSync. A GitSync's series carry its
//! namespace and name (as Flux's `gotk_reconcile_*` do): bounded by the GitSyncs that exist,
//! because the series of a GitSync are removed once it is gone from the controller's cache.
//! Results and failure reasons are fixed strings, never messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use gitseal_api::GitSync;
use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SourceLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceResultLabels {
    pub namespace: String,
    pub name: String,
    /// `ok`, `noop`, `suspended`, or the error kind.
    pub result: String,
}

fn pass_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 8))
}

/// One pass of one GitSync, as the metrics record it.
#[derive(Debug, Clone, Copy)]
pub struct PassRecord<'a> {
    pub result: &'a str,
    pub seconds: f64,
    pub ready: bool,
    /// Objects in its inventory after the pass.
    pub objects: usize,
    /// Unix time of the pass, when it applied everything.
    pub applied_at: Option<f64>,
    /// Objects the pass did not apply because another GitSync manages them, when it applied
    /// (a pass that applied nothing leaves the last figure).
    pub conflicts: Option<usize>,
}

/// Per-GitSync series.
#[derive(Debug)]
pub struct SourceMetrics {
    passes: Family<SourceResultLabels, Counter>,
    duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    ready: Family<SourceLabels, Gauge>,
    objects: Family<SourceLabels, Gauge>,
    last_applied: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    conflicts: Family<SourceLabels, Gauge>,
    /// Each GitSync with series, and the results it has counted (to remove them later).
    known: Mutex<BTreeMap<SourceLabels, BTreeSet<String>>>,
    /// The GitSync controller's cache, once it has synced: which GitSyncs still exist.
    store: Arc<Mutex<Option<Store<GitSync>>>>,
}

impl SourceMetrics {
    pub(super) fn register(registry: &mut Registry) -> SourceMetrics {
        let m = SourceMetrics {
            passes: Family::default(),
            duration: Family::new_with_constructor(pass_histogram),
            ready: Family::default(),
            objects: Family::default(),
            last_applied: Family::default(),
            conflicts: Family::default(),
            known: Mutex::new(BTreeMap::new()),
            store: Arc::new(Mutex::new(None)),
        };
        registry.register(
            "gitsync_passes",
            "Passes of each GitSync by result (ok, noop, suspended, or the error kind)",
            m.passes.clone(),
        );
        registry.register(
            "gitsync_pass_duration_seconds",
            "Duration of each GitSync's passes",
            m.duration.clone(),
        );
        registry.register(
            "gitsync_ready",
            "1 when the GitSync's last pass applied its revision, else 0",
            m.ready.clone(),
        );
        registry.register(
            "gitsync_managed_objects",
            "Objects in the GitSync's inventory",
            m.objects.clone(),
        );
        registry.register(
            "gitsync_last_applied_timestamp_seconds",
            "Unix time of the GitSync's last pass that applied everything",
            m.last_applied.clone(),
        );
        registry.register(
            "gitsync_conflicts",
            "Objects the GitSync's last applying pass did not apply because another GitSync manages them",
            m.conflicts.clone(),
        );
        m
    }

    /// Records one pass of `namespace/name`.
    pub fn pass(&self, namespace: &str, name: &str, p: PassRecord<'_>) {
        let source = SourceLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.passes
            .get_or_create(&SourceResultLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                result: p.result.to_owned(),
            })
            .inc();
        self.duration.get_or_create(&source).observe(p.seconds);
        self.ready.get_or_create(&source).set(i64::from(p.ready));
        self.objects
            .get_or_create(&source)
            .set(i64::try_from(p.objects).unwrap_or(i64::MAX));
        if let Some(t) = p.applied_at {
            self.last_applied.get_or_create(&source).set(t);
        }
        if let Some(n) = p.conflicts {
            self.conflicts
                .get_or_create(&source)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Ok(mut known) = self.known.lock() {
            known.entry(source).or_default().insert(p.result.to_owned());
        }
    }

    /// Removes every series of `namespace/name`.
    pub fn forget(&self, namespace: &str, name: &str) {
        let source = SourceLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let results = self
            .known
            .lock()
            .ok()
            .and_then(|mut k| k.remove(&source))
            .unwrap_or_default();
        for result in results {
            self.passes.remove(&SourceResultLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                result,
            });
        }
        self.duration.remove(&source);
        self.ready.remove(&source);
        self.objects.remove(&source);
        self.last_applied.remove(&source);
        self.conflicts.remove(&source);
    }

    /// From now on, series of GitSyncs missing from `store` are removed (once it has
    /// synced; until then it may be empty for no reason).
    pub fn follow(&self, store: Store<GitSync>) {
        let slot = self.store.clone();
        tokio::spawn(async move {
            // Polled again each second: the store's readiness wakes only its last waiter,
            // and the controller waits on it too.
            loop {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    store.wait_until_ready(),
                )
                .await
                {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return, // the controller stopped
                    Err(_) => {}
                }
            }
            if let Ok(mut s) = slot.lock() {
                *s = Some(store);
            }
        });
    }

    /// Removes the series of GitSyncs that no longer exist.
    pub(super) fn prune(&self) {
        let Some(store) = self.store.lock().ok().and_then(|s| s.clone()) else {
            return;
        };
        let known: Vec<SourceLabels> = self
            .known
            .lock()
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default();
        for s in known {
            if store
                .get(&ObjectRef::new(&s.name).within(&s.namespace))
                .is_none()
            {
                self.forget(&s.namespace, &s.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_gitsync_leaves_no_series() {
        let mut registry = Registry::with_prefix("gitseal");
        let m = SourceMetrics::register(&mut registry);
        let rec = |result| PassRecord {
            result,
            seconds: 0.2,
            ready: result == "ok",
            objects: 3,
            applied_at: Some(1.0),
            conflicts: (result == "ok").then_some(2),
        };
        m.pass("apps", "one", rec("ok"));
        m.pass("apps", "one", rec("unreachable"));
        m.pass("apps", "two", rec("ok"));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains(
            r#"gitseal_gitsync_passes_total{namespace="apps",name="one",result="unreachable"} 1"#
        ));
        // A failed pass leaves the figure of the last applying one.
        assert!(
            out.contains(r#"gitseal_gitsync_conflicts{namespace="apps",name="one"} 2"#),
            "{out}"
        );
        m.forget("apps", "one");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(!out.contains(r#"name="one""#), "{out}");
        assert!(out.contains(r#"gitseal_gitsync_ready{namespace="apps",name="two"} 1"#));
    }
}
