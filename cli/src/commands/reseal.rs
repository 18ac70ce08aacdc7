//! `gitseal reseal`: offline re-encryption of SealedSecrets in place, for new recipients.

use anyhow::{Result, bail};
use gitseal::manifest::{SealedSecret, parse_documents};
use gitseal::sealing::reseal;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::ResealArgs;
use crate::commands::{manifest_files, render_file};
use crate::io::{emit, read_identities, read_text, recipients_for, shown};

/// Below this many files the progress bar is not worth drawing.
const PROGRESS_MIN_FILES: usize = 20;

/// Who opens and re-seals: this process with identity files, or the cluster's agent.
enum Resealer {
    Offline(gitseal::Keyring),
    Cluster(Box<crate::commands::cluster_keys::ClusterResealer>),
}

impl Resealer {
    fn reseal(
        &mut self,
        doc: &gitseal::manifest::Document,
        sealed: &mut SealedSecret,
        recipients: &[gitseal::PublicKey],
    ) -> Result<bool> {
        match self {
            Resealer::Offline(ring) => reseal(sealed, ring, recipients).map_err(|e| {
                doc.error(format!("spec.encryptedData.{}", e.key), e.error.to_string())
                    .into()
            }),
            Resealer::Cluster(c) => c
                .reseal(sealed, recipients)
                .map_err(|e| anyhow::anyhow!("{}: document {}: {e:#}", doc.source, doc.index)),
        }
    }
}

pub fn run(args: ResealArgs) -> Result<()> {
    let mut resealer = if args.cluster {
        Resealer::Cluster(Box::new(
            crate::commands::cluster_keys::ClusterResealer::new(&args.cluster_args)?,
        ))
    } else {
        Resealer::Offline(read_identities(&args.identities)?)
    };
    let files = manifest_files(&args.paths)?;
    let bar = if files.len() >= PROGRESS_MIN_FILES {
        let bar = ProgressBar::new(files.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let (mut changed, mut sealed_total, mut failures) = (0usize, 0usize, 0usize);
    for file in &files {
        bar.inc(1);
        let name = shown(file);
        let result = (|| -> Result<Option<usize>> {
            let text = read_text(file)?;
            let mut docs = parse_documents(&name, &text)?;
            if !docs.iter().any(|d| d.is_sealed_secret()) {
                return Ok(None);
            }
            let recipients = match recipients_for(&args.recipients, Some(file)) {
                // Through the cluster, no recipients at all means the agent's newest key.
                Err(_)
                    if args.cluster
                        && args.recipients.recipients.is_empty()
                        && args.recipients.recipient_files.is_empty()
                        && crate::io::find_rules(file.parent().unwrap_or(file))?.is_none() =>
                {
                    Vec::new()
                }
                r => r?,
            };
            let mut n = 0;
            for doc in docs.iter_mut().filter(|d| d.is_sealed_secret()) {
                let mut sealed = SealedSecret::from_document(doc)?;
                let did = resealer.reseal(doc, &mut sealed, &recipients)?;
                if did {
                    doc.value = sealed.to_value();
                    n += 1;
                }
            }
            sealed_total += docs.iter().filter(|d| d.is_sealed_secret()).count();
            if n > 0 && !args.dry_run {
                emit(
                    Some(file),
                    render_file(file, docs.iter().map(|d| &d.value)).as_bytes(),
                )?;
            }
            Ok(Some(n))
        })();
        match result {
            Ok(Some(n)) if n > 0 => {
                changed += 1;
                let verb = if args.dry_run {
                    "would reseal"
                } else {
                    "resealed"
                };
                bar.suspend(|| eprintln!("{verb} {name} ({n} SealedSecret(s))"));
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                bar.suspend(|| eprintln!("error: {e:#}"));
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{} {changed} file(s); {sealed_total} SealedSecret(s) seen in {} file(s) checked; {failures} failed",
        if args.dry_run {
            "would reseal"
        } else {
            "resealed"
        },
        files.len()
    );
    if failures > 0 {
        bail!("{failures} file(s) could not be resealed; nothing was written to them");
    }
    Ok(())
}
