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

pub fn run(args: ResealArgs) -> Result<()> {
    let ring = read_identities(&args.identities)?;
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
            let recipients = recipients_for(&args.recipients, Some(file))?;
            let mut n = 0;
            for doc in docs.iter_mut().filter(|d| d.is_sealed_secret()) {
                let mut sealed = SealedSecret::from_document(doc)?;
                let did = reseal(&mut sealed, &ring, &recipients).map_err(|e| {
                    doc.error(format!("spec.encryptedData.{}", e.key), e.error.to_string())
                })?;
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
