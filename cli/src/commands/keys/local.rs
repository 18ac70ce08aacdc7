//! `gitseal keys generate` (a new identity file, 0600, never overwritten) and `gitseal keys
//! public` (the public keys of an identity file).

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use gitseal::keys::read_identity_file;
use secrecy::ExposeSecret;

use crate::io::{read_input, shown, write_private};

pub fn generate(output: Option<PathBuf>, force: bool) -> Result<()> {
    let key = gitseal::SecretKey::generate();
    let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let text = key.to_identity_file(&created);
    match output {
        Some(path) => {
            write_private(&path, text.expose_secret().as_bytes(), force)?;
            eprintln!("wrote identity {} (key id {})", shown(&path), key.id());
            println!("{}", key.public());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.expose_secret().as_bytes())
                .context("cannot write to standard output")?;
            eprintln!("Public key: {}", key.public());
        }
    }
    Ok(())
}

pub fn public(identity: Option<PathBuf>) -> Result<()> {
    let path = identity.unwrap_or_else(|| "-".into());
    let bytes = read_input(&path)?;
    let keys = read_identity_file(&bytes[..])
        .with_context(|| format!("identity file {}", shown(&path)))?;
    for k in keys {
        println!("{}", k.public());
    }
    Ok(())
}
