//! Leader election on a `coordination.k8s.io/v1` Lease in the agent namespace, so that of
//! several replicas exactly one runs the controllers, the key manager's writes and
//! re-sealing.
//!
//! Why not a crate: `kube-leader-election` targets kube 4, and `kube-lease-manager` (kube 5)
//! never tells its holder that it lost the lease while the API server is unreachable (its
//! renewal errors are retried in the background and the leader flag stays `true`), which
//! would let a partitioned leader keep writing after a standby took over. This is the
//! client-go algorithm, which has that property, in one small file:
//!
//! - A standby reads the Lease every `retry` period. The holder's lease counts as expired
//!   `leaseDurationSeconds` after this process last *saw the record change* (its own clock
//!   only, so clock skew between nodes does not matter). Then it takes the Lease with a
//!   `replace` carrying the `resourceVersion` it read: of two standbys racing, one gets 409.
//! - The leader renews every `renew` period. It stops leading, on its own clock, when no
//!   renewal succeeded for `renew_deadline` (< the lease duration), so it has stepped down
//!   before any standby may take over, even when it cannot reach the API server at all.
//! - On shutdown the leader releases the Lease (empty holder), so a standby takes over at
//!   its next read instead of waiting for expiry.
//!
//! With the defaults (lease 8 s, renew deadline 6 s, renew every 2 s, read every 1 s) a
//! standby takes over at most about 10 s after the leader died: up to 1 s until it saw the
//! last renewal, 8 s of lease, up to 1 s until its next read.
//!
//! Every round trip's outcome also says whether the API server is reachable, which
//! `/readyz` reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use crate::kube_error::kube_message;
use crate::serve::http::Readiness;

/// Name of the Lease in the agent namespace.
pub const LEASE_NAME: &str = "gitseal-agent";

/// How the election runs.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity in `holderIdentity` (the pod name in a cluster).
    pub identity: String,
    /// How long a lease stays valid after its last renewal.
    pub duration: Duration,
    /// The leader stops leading when no renewal succeeded for this long.
    pub renew_deadline: Duration,
    /// Time between renewals by the leader.
    pub renew: Duration,
    /// Time between reads by a standby.
    pub retry: Duration,
}

impl LeaseConfig {
    /// Defaults for `namespace` and `identity` (see the module documentation).
    pub fn new(namespace: String, identity: String) -> LeaseConfig {
        LeaseConfig {
            namespace,
            name: LEASE_NAME.to_owned(),
            identity,
            duration: Duration::from_secs(8),
            renew_deadline: Duration::from_secs(6),
            renew: Duration::from_secs(2),
            retry: Duration::from_secs(1),
        }
    }

    /// Refuses timings under which a leader could still be leading when a standby takes over.
    pub fn check(&self) -> Result<(), String> {
        if self.renew_deadline >= self.duration {
            return Err("the renew deadline must be shorter than the lease duration".into());
        }
        if self.renew >= self.renew_deadline || self.retry.is_zero() || self.renew.is_zero() {
            return Err(
                "renew and retry periods must be non-zero and shorter than the renew deadline"
                    .into(),
            );
        }
        if self.duration.as_secs() == 0 || self.identity.is_empty() {
            return Err(
                "the lease duration must be at least 1 s and the identity non-empty".into(),
            );
        }
        Ok(())
    }
}

/// The identity of this replica: `POD_NAME` in a cluster, else host name and process id.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "gitseal-agent".into());
    format!("{host}-{}", std::process::id())
}

/// What a standby remembers of the Lease record it last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    transitions: Option<i32>,
}

/// Runs the election; see the module documentation.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    readiness: Arc<Readiness>,
    observed: Option<(Record, Instant)>,
    /// When the last successful renewal (or acquisition) was sent, while leading.
    renewed: Option<Instant>,
    /// Counts rounds whose Lease request failed or timed out (a metric).
    errors: Counter,
}

impl Elector {
    /// `errors` counts the rounds whose request on the Lease failed or timed out.
    pub fn new(
        client: kube::Client,
        config: LeaseConfig,
        readiness: Arc<Readiness>,
        errors: Counter,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            readiness,
            observed: None,
            renewed: None,
            errors,
        }
    }

    fn leading_until(&self) -> Option<Instant> {
        self.renewed.map(|t| t + self.config.renew_deadline)
    }

    /// Publishes `true` on `leading` while this replica holds the lease, `false` otherwise,
    /// until the future is dropped.
    pub async fn run(&mut self, leading: &watch::Sender<bool>) {
        let request_timeout = self.config.renew.max(Duration::from_secs(2));
        loop {
            let started = Instant::now();
            // A leader gives each request only the time left before its deadline.
            let budget = match self.leading_until() {
                Some(until) => until
                    .saturating_duration_since(started)
                    .min(request_timeout),
                None => request_timeout,
            };
            let outcome = tokio::time::timeout(budget, self.try_acquire_or_renew()).await;
            let holds = match outcome {
                Ok(Ok(holds)) => {
                    self.readiness.set_api_reachable(true);
                    holds
                }
                Ok(Err(e)) => {
                    self.errors.inc();
                    self.readiness.set_api_reachable(false);
                    tracing::warn!(error = %kube_message(&e), "leader election: the Lease could not be read or written");
                    false
                }
                Err(_) => {
                    self.errors.inc();
                    self.readiness.set_api_reachable(false);
                    tracing::warn!(after = ?budget, "leader election: the API server did not answer in time");
                    false
                }
            };
            if holds {
                self.renewed = Some(started);
            } else if let Some(until) = self.leading_until()
                && (Instant::now() >= until || self.lost_to_another())
            {
                self.renewed = None;
            }
            let is_leader = self.renewed.is_some();
            leading.send_if_modified(|v| {
                let changed = *v != is_leader;
                if changed {
                    if is_leader {
                        tracing::info!(identity = %self.config.identity, lease = %self.config.name, "leading");
                    } else {
                        tracing::warn!(identity = %self.config.identity, lease = %self.config.name, "not leading any more: controllers stop");
                    }
                }
                *v = is_leader;
                changed
            });
            let pause = if is_leader {
                self.config.renew
            } else {
                self.config.retry
            };
            // A leader whose renewals keep failing must notice its deadline on time.
            let wake = match self.leading_until() {
                Some(until) => (Instant::now() + pause).min(until),
                None => Instant::now() + pause,
            };
            tokio::time::sleep_until(wake.into()).await;
        }
    }

    /// Whether the last read showed another holder (someone took the lease).
    fn lost_to_another(&self) -> bool {
        self.observed.as_ref().is_some_and(|(r, _)| {
            r.holder
                .as_deref()
                .is_some_and(|h| h != self.config.identity)
        })
    }

    /// One round trip: read the Lease and take or renew it when allowed. `Ok(true)` when
    /// this replica holds it now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions,
        };
        let seen_at = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record.clone(), at));
                at
            }
        };
        let mine = record.holder.as_deref() == Some(self.config.identity.as_str());
        if !mine && record.holder.is_some() {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.duration, Duration::from_secs);
            if seen_at.elapsed() < duration {
                return Ok(false);
            }
        }
        let mut next = lease;
        next.spec = Some(self.spec(now, Some(&spec)));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                let s = written.spec.unwrap_or_default();
                self.observed = Some((
                    Record {
                        holder: s.holder_identity,
                        renew_time: s.renew_time.map(|t| t.0.to_string()),
                        transitions: s.lease_transitions,
                    },
                    Instant::now(),
                ));
                Ok(true)
            }
            // Someone else wrote it since our read: the next read tells who holds it.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The spec that makes this replica the holder, renewed at `now`.
    fn spec(&self, now: Timestamp, old: Option<&LeaseSpec>) -> LeaseSpec {
        let mine = old.and_then(|o| o.holder_identity.as_deref()) == Some(&self.config.identity);
        let transitions = old.and_then(|o| o.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs().min(i32::MAX as u64) as i32),
            acquire_time: match old {
                Some(o) if mine => o.acquire_time.clone(),
                _ => Some(MicroTime(now)),
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if mine || old.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..Default::default()
        }
    }

    /// Gives the lease up if this replica holds it, so a standby need not wait for expiry.
    pub async fn release(&mut self) {
        if self.renewed.take().is_none() {
            return;
        }
        let release = async {
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(&self.config.identity) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(Duration::from_secs(2), release).await {
            Ok(Ok(())) => tracing::info!(lease = %self.config.name, "lease released"),
            Ok(Err(e)) => tracing::warn!(error = %kube_message(&e), "could not release the lease"),
            Err(_) => tracing::warn!("could not release the lease: no answer in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_timings_are_refused() {
        let ok = LeaseConfig::new("ns".into(), "me".into());
        assert!(ok.check().is_ok());
        let mut c = ok.clone();
        c.renew_deadline = c.duration;
        assert!(c.check().is_err());
        let mut c = ok.clone();
        c.renew = c.renew_deadline;
        assert!(c.check().is_err());
        let mut c = ok;
        c.identity.clear();
        assert!(c.check().is_err());
    }
}
