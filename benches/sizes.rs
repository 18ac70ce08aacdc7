//! Ciphertext sizes (not a timing benchmark): bytes of one sealed value, over many seals
//! because age adds a random "grease" stanza to every file.
//!
//! Run: `cargo bench --bench sizes`

use gitseal::{Binding, Scope, SecretKey, seal};

fn main() {
    let binding = Binding::new(
        Scope::Strict,
        Some("production"),
        Some("database-creds"),
        "password",
    )
    .expect("valid binding");
    let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
    println!("| value | recipients | min | mean | max | base64 in manifest (mean) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (len, n) in [(12, 1), (64, 1), (64, 3), (1024, 1)] {
        let pubs: Vec<_> = keys[..n].iter().map(|k| k.public().clone()).collect();
        let value = vec![0x42u8; len];
        let sizes: Vec<usize> = (0..2000)
            .map(|_| seal(&value, &pubs, &binding).expect("seal").len())
            .collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        let min = sizes.iter().min().copied().unwrap_or_default();
        let max = sizes.iter().max().copied().unwrap_or_default();
        println!(
            "| {len} B | {n} | {min} | {mean:.0} | {max} | {:.0} |",
            (mean / 3.0).ceil() * 4.0
        );
    }
}
