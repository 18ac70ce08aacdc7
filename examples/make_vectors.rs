//! Prints fresh test vectors for docs/FORMAT.md (`cargo run --example make_vectors`).
//! The vectors in the document are checked by `tests/format_vectors.rs`; this program only
//! makes new ones, for when the format gains a case.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::{Binding, Keyring, Scope, SecretKey, open, seal};
use secrecy::ExposeSecret;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = SecretKey::generate();
    let b = SecretKey::generate();
    println!("identity A: {}", a.to_secret_string().expose_secret());
    println!("recipient A: {} (key id {})", a.public(), a.id());
    println!("identity B: {}", b.to_secret_string().expose_secret());
    println!("recipient B: {} (key id {})", b.public(), b.id());
    let cases: [(&str, &[u8], Binding, Vec<&SecretKey>); 4] = [
        (
            "strict, one recipient",
            b"hunter2",
            Binding::new(
                Scope::Strict,
                Some("production"),
                Some("database-creds"),
                "password",
            )?,
            vec![&a],
        ),
        (
            "namespace, two recipients",
            b"admin",
            Binding::new(Scope::Namespace, Some("staging"), None, "username")?,
            vec![&a, &b],
        ),
        (
            "cluster, empty value",
            b"",
            Binding::new(Scope::Cluster, None, None, "token")?,
            vec![&b],
        ),
        (
            "strict, 64-byte value",
            &[0x42; 64],
            Binding::new(Scope::Strict, Some("prod"), Some("api"), "key")?,
            vec![&a],
        ),
    ];
    for (what, value, binding, keys) in cases {
        let pubs: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
        let ct = seal(value, &pubs, &binding)?;
        let ring: Keyring = keys.iter().map(|k| (*k).clone()).collect();
        assert_eq!(open(&ct, &ring, &binding)?.expose_secret(), value);
        println!("\n# {what} ({} bytes)", ct.len());
        println!("binding: {}", binding);
        println!("plaintext: {}", B64.encode(value));
        println!("ciphertext: {}", B64.encode(&ct));
    }
    Ok(())
}
