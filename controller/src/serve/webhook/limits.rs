//! What bounds the webhook endpoint's work: token buckets (requests of any kind, and proven
//! requests per Receiver) and the memory of requests already accepted (replays).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// A token bucket: `burst` requests at once, `per_sec` more each second.
#[derive(Debug)]
pub struct Bucket {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        Bucket {
            burst: f64::from(burst),
            per_sec,
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests already accepted, by the key that recognises them, until their time (unix
/// seconds) runs out; at most `cap` at once (the oldest is forgotten first).
#[derive(Debug)]
pub struct Seen {
    cap: usize,
    until: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
}

impl Seen {
    pub fn new(cap: usize) -> Self {
        Seen {
            cap,
            until: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `key` was seen (and is still remembered) at `now`; if not, remembers it
    /// until `until`.
    pub fn replayed(&mut self, key: &str, until: u64, now: u64) -> bool {
        self.until.retain(|_, t| *t > now);
        self.order.retain(|(t, _)| *t > now);
        if self.until.contains_key(key) {
            return true;
        }
        while self.order.len() >= self.cap {
            if let Some((_, old)) = self.order.pop_front() {
                self.until.remove(&old);
            }
        }
        self.until.insert(key.to_owned(), until);
        self.order.push_back((until, key.to_owned()));
        false
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_burst_then_its_rate() {
        let mut b = Bucket::new(3, 2.0);
        let t0 = b.last;
        assert!((0..3).all(|_| b.take_at(t0)));
        assert!(!b.take_at(t0));
        assert!(b.take_at(t0 + Duration::from_millis(500)));
        assert!(!b.take_at(t0 + Duration::from_millis(500)));
        // Idle time fills it up to the burst, never beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take_at(later)));
        assert!(!b.take_at(later));
    }

    #[test]
    fn seen_remembers_until_its_time_and_within_its_cap() {
        let mut s = Seen::new(2);
        assert!(!s.replayed("a", 100, 10));
        assert!(s.replayed("a", 100, 20));
        assert!(!s.replayed("b", 100, 20));
        // Full: the oldest goes.
        assert!(!s.replayed("c", 100, 20));
        assert_eq!(s.len(), 2);
        assert!(!s.replayed("a", 100, 20));
        // Past its time, a key is new again.
        assert!(!s.replayed("c", 300, 150));
        assert!(s.replayed("c", 300, 160));
    }
}
