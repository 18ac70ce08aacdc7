//! Seal and open one value: 1 and 3 recipients; opening with 1 and with 12 keys in the ring
//! (flat in ring size). The floors are measured in the same run: opening costs at least one
//! X25519 Diffie-Hellman (target: open ≤ 1.2 × that DH), sealing at least one ephemeral key
//! generation (a fixed-base multiplication) plus one DH per recipient. The age crate's own
//! X25519 identity opening the same value is measured beside ours, for comparison.
//!
//! Times are the CPU time of the benchmarking thread (CLOCK_THREAD_CPUTIME_ID), not wall
//! time: on a shared machine, other processes' load then changes neither side of a ratio.
//!
//! Run: `cargo bench --bench seal_open -- --warm-up-time 1 --measurement-time 4`

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use gitseal::{Binding, Keyring, Scope, SecretKey, open, seal};
use secrecy::ExposeSecret;
use std::hint::black_box;

/// CPU time consumed by the calling thread.
struct ThreadCpu;

fn thread_cpu_now() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("CLOCK_THREAD_CPUTIME_ID is available on Linux");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, shown like wall time.
        WALL.formatter()
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let binding = Binding::new(
        Scope::Strict,
        Some("production"),
        Some("database-creds"),
        "password",
    )
    .expect("valid binding");
    let value = [0x42u8; 64];
    let keys: Vec<SecretKey> = (0..12).map(|_| SecretKey::generate()).collect();
    let one = [keys[0].public().clone()];
    let three: Vec<_> = keys[..3].iter().map(|k| k.public().clone()).collect();

    c.bench_function("seal 64 B, 1 recipient", |b| {
        b.iter(|| seal(black_box(&value), &one, &binding))
    });
    c.bench_function("seal 64 B, 3 recipients", |b| {
        b.iter(|| seal(black_box(&value), &three, &binding))
    });

    // The value is sealed to the 12th key, so a ring that tried keys in order would pay
    // for all of them.
    let last = [keys[11].public().clone()];
    let ct = seal(&value, &last, &binding).expect("seal");
    let ring1 = Keyring::from_iter([keys[11].clone()]);
    let ring12: Keyring = keys.iter().cloned().collect();
    c.bench_function("open 64 B, ring of 1", |b| {
        b.iter(|| open(black_box(&ct), &ring1, &binding))
    });
    c.bench_function("open 64 B, ring of 12", |b| {
        b.iter(|| open(black_box(&ct), &ring12, &binding))
    });
    let ct3 = seal(&value, &three, &binding).expect("seal");
    let ring_third = Keyring::from_iter([keys[2].clone()]);
    c.bench_function("open 64 B sealed to 3, third key", |b| {
        b.iter(|| open(black_box(&ct3), &ring_third, &binding))
    });

    let secret = x25519_dalek::StaticSecret::random_from_rng(rand_core::OsRng);
    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(
        rand_core::OsRng,
    ));
    c.bench_function("x25519 DH alone (floor)", |b| {
        b.iter(|| secret.diffie_hellman(black_box(&peer)))
    });
    c.bench_function("x25519 ephemeral key + DH (seal floor)", |b| {
        b.iter(|| {
            let eph = x25519_dalek::EphemeralSecret::random_from_rng(rand_core::OsRng);
            let share = x25519_dalek::PublicKey::from(&eph);
            (share, eph.diffie_hellman(black_box(&peer)))
        })
    });

    // The same value opened by the age crate's stock identity (it re-derives its public
    // key for every stanza it unwraps); it skips the gitseal stanza.
    let stock: age::x25519::Identity = keys[11]
        .to_secret_string()
        .expose_secret()
        .parse()
        .expect("age parses our key");
    c.bench_function("open 64 B, age crate's x25519 identity", |b| {
        b.iter(|| age::decrypt(&stock, black_box(&ct)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
