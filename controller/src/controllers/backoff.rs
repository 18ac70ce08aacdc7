//! When to try again after a failure: one exponential backoff that every controller shares.
//!
//! A failure that only a change can fix (a manifest over a limit, no matching key, a
//! malformed value, a scope mismatch) is reported once and then retried rarely: after
//! [`Backoff::PERMANENT`]'s first delay, doubled on every further failure, up to its cap —
//! not every few seconds. What the attempt depended on is summed up in a *fingerprint*
//! (the object's generation, the source revision, the sealing keys…): when it changes, the
//! count starts again and the next attempt is not held back. Failures that may pass as they
//! are (the source or the API server unreachable, slow or failing) use
//! [`Backoff::TRANSIENT`], shorter and with a lower cap.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First delay and cap of an exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// For failures only a change of the input can fix: 5 s, 10 s, 20 s … 5 min.
    pub const PERMANENT: Backoff = Backoff {
        first: Duration::from_secs(5),
        max: Duration::from_secs(300),
    };
    /// For failures that may pass as they are: 1 s, 2 s, 4 s … 1 min.
    pub const TRANSIENT: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    /// The wait after the `failures`-th failure in a row (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// A fingerprint of what an attempt depended on (std's SipHash with fixed keys: the same
/// parts give the same fingerprint for the life of the process).
pub fn fingerprint(parts: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// One object's failures in a row since what it depends on last changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    fingerprint: u64,
    failures: u32,
    until: Option<Instant>,
}

impl Retry {
    /// How long an attempt with `fingerprint` must still wait; `None` when it may run now
    /// (nothing failed, the wait is over, or the fingerprint changed).
    pub fn waiting(&self, fingerprint: u64) -> Option<Duration> {
        self.waiting_at(fingerprint, Instant::now())
    }

    fn waiting_at(&self, fingerprint: u64, now: Instant) -> Option<Duration> {
        if self.failures == 0 || fingerprint != self.fingerprint {
            return None;
        }
        let wait = self.until?.saturating_duration_since(now);
        (!wait.is_zero()).then_some(wait)
    }

    /// Records a failure of an attempt with `fingerprint`; returns the wait before the next.
    pub fn failed(&mut self, fingerprint: u64, backoff: Backoff) -> Duration {
        self.failed_at(fingerprint, backoff, Instant::now())
    }

    fn failed_at(&mut self, fingerprint: u64, backoff: Backoff, now: Instant) -> Duration {
        if fingerprint != self.fingerprint {
            self.failures = 0;
            self.fingerprint = fingerprint;
        }
        self.failures = self.failures.saturating_add(1);
        let wait = backoff.delay(self.failures);
        self.until = Some(now + wait);
        wait
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// An attempt succeeded: the next failure waits the first delay again.
    pub fn succeeded(&mut self) {
        *self = Retry::default();
    }
}

/// The [`Retry`] of every object a controller answers, by uid. Entries go when the object
/// succeeds or is deleted, and stale ones (last failure long over) when others are added,
/// so objects deleted while failing do not pile up.
#[derive(Debug)]
pub struct Retries {
    backoff: Backoff,
    by_uid: Mutex<HashMap<String, Retry>>,
}

impl Retries {
    pub fn new(backoff: Backoff) -> Retries {
        Retries {
            backoff,
            by_uid: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Retry>> {
        self.by_uid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the object `uid` must still wait before an attempt with `fingerprint`.
    pub fn waiting(&self, uid: &str, fingerprint: u64) -> Option<Duration> {
        self.map().get(uid).and_then(|r| r.waiting(fingerprint))
    }

    /// Records a failure of `uid`; returns the wait before its next attempt.
    pub fn failed(&self, uid: &str, fingerprint: u64) -> Duration {
        let now = Instant::now();
        let mut map = self.map();
        if !map.contains_key(uid) {
            // Past twice the cap, an entry would not hold anything back any more.
            let stale = self.backoff.max.saturating_mul(2);
            map.retain(|_, r| r.until.is_some_and(|u| u + stale > now));
        }
        map.entry(uid.to_owned())
            .or_default()
            .failed_at(fingerprint, self.backoff, now)
    }

    /// `uid` succeeded or is gone.
    pub fn forget(&self, uid: &str) {
        self.map().remove(uid);
    }

    /// Objects with failures on record.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let waits: Vec<u64> = (1..=9)
            .map(|n| Backoff::PERMANENT.delay(n).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        let waits: Vec<u64> = (1..=8)
            .map(|n| Backoff::TRANSIENT.delay(n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(Backoff::PERMANENT.delay(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn a_failure_holds_back_the_same_attempt_until_its_wait_is_over() {
        let t0 = Instant::now();
        let mut r = Retry::default();
        assert_eq!(r.waiting_at(1, t0), None, "nothing failed yet");
        assert_eq!(r.failed_at(1, Backoff::PERMANENT, t0).as_secs(), 5);
        assert_eq!(
            r.waiting_at(1, t0 + Duration::from_secs(1))
                .map(|d| d.as_secs()),
            Some(4)
        );
        assert_eq!(
            r.waiting_at(1, t0 + Duration::from_secs(5)),
            None,
            "wait over"
        );
        assert_eq!(r.failed_at(1, Backoff::PERMANENT, t0).as_secs(), 10);
        assert_eq!(r.failed_at(1, Backoff::PERMANENT, t0).as_secs(), 20);
        assert_eq!(r.failures(), 3);
        // What the attempt depends on changed: no wait, and the count starts again.
        assert_eq!(r.waiting_at(2, t0), None);
        assert_eq!(r.failed_at(2, Backoff::PERMANENT, t0).as_secs(), 5);
        r.succeeded();
        assert_eq!(r.waiting_at(2, t0), None);
        assert_eq!(r.failed_at(2, Backoff::PERMANENT, t0).as_secs(), 5);
    }

    #[test]
    fn retries_are_per_object_and_forgotten() {
        let retries = Retries::new(Backoff::PERMANENT);
        let fp = fingerprint(("gen", 3_i64));
        assert_eq!(fp, fingerprint(("gen", 3_i64)), "stable");
        assert_ne!(fp, fingerprint(("gen", 4_i64)));
        assert_eq!(retries.failed("a", fp).as_secs(), 5);
        assert_eq!(retries.failed("a", fp).as_secs(), 10);
        assert!(retries.waiting("a", fp).is_some());
        assert!(retries.waiting("b", fp).is_none());
        assert!(retries.waiting("a", fingerprint(("gen", 4_i64))).is_none());
        retries.forget("a");
        assert!(retries.is_empty());
    }
}
