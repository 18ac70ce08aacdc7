//! `gitseal unseal`: break-glass opening of SealedSecrets with a private key.

use anyhow::{Result, bail};
use gitseal::manifest::{SealedSecret, parse_documents, render};
use gitseal::sealing::unseal_many;
use zeroize::Zeroizing;

use crate::args::UnsealArgs;
use crate::io::{emit, read_text, shown, write_private};

pub fn run(args: UnsealArgs) -> Result<()> {
    let ring = gitseal::read_identity_files(&args.identities)?;
    let source = shown(&args.file);
    let text = read_text(&args.file)?;
    let docs = parse_documents(&source, &text)?;
    if docs.is_empty() {
        bail!("{source}: no SealedSecret found (the input is empty)");
    }
    let sealed = docs
        .iter()
        .map(SealedSecret::from_document)
        .collect::<Result<Vec<_>, _>>()?;
    // Every value of every document is opened in parallel; the first failure in document
    // order is the one reported.
    let opened = unseal_many(sealed.iter().map(|s| (s, None)), &ring);
    let mut secrets = Vec::with_capacity(docs.len());
    for (doc, secret) in docs.iter().zip(opened) {
        let secret = secret
            .map_err(|e| doc.error(format!("spec.encryptedData.{}", e.key), e.error.to_string()))?;
        secrets.push(secret.to_value());
    }
    let out = Zeroizing::new(render(secrets.iter().map(|s| &s.0), args.format.into()));
    match &args.write {
        // Plaintext: 0600 from the first byte, never over an existing file unless --force.
        Some(path) => write_private(path, out.as_bytes(), args.force),
        None => emit(None, out.as_bytes()),
    }
}
