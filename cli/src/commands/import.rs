//! `gitseal import`: Bitnami SealedSecrets and SOPS-encrypted Secrets converted into gitseal
//! SealedSecrets, in memory. Every file is converted before anything is written; by default
//! nothing is written unless every file converts (`--keep-going`: file by file).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use gitseal::import::bitnami::{self, RsaKeyring};
use gitseal::import::{SOPS_VALUE_PREFIX, sops};
use gitseal::manifest::{Document, Secret, parse_documents, render};
use gitseal::sealing::{SealTarget, seal_secret};
use gitseal::{Keyring, Scope};

use crate::args::ImportArgs;
use crate::commands::{manifest_files, render_file};
use crate::io::{emit, read_text, recipients_for, shown, write_all_atomic};

/// What the conversion of one file came to.
enum Outcome {
    /// New text, and what was in it.
    Converted { text: String, what: String },
    /// Left as it is, and why (only for files that are a neighbour's but not importable).
    Skipped(String),
    /// Nothing of another tool in it.
    Untouched,
}

struct Keys {
    rsa: RsaKeyring,
    age: Keyring,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let mut keys = Keys {
        rsa: RsaKeyring::new(),
        age: Keyring::new(),
    };
    for path in &args.bitnami_keys {
        let bytes = gitseal::read_private_file(path, "Bitnami key file")?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow!("Bitnami key file {}: not a PEM or YAML text", shown(path)))?;
        keys.rsa
            .add_file(&format!("Bitnami key file {}", shown(path)), text)?;
    }
    keys.age = gitseal::read_identity_files(&args.identities)?;

    if args.paths.iter().any(|p| p == Path::new("-")) {
        if args.paths.len() > 1 {
            return Err(crate::usage(
                "`-` (standard input to standard output) cannot be combined with other paths"
                    .to_owned(),
            ));
        }
        return match convert(Path::new("-"), &args, &keys)? {
            Outcome::Converted { text, what } => {
                eprintln!("converted <stdin>: {what}");
                emit(None, text.as_bytes())
            }
            Outcome::Skipped(why) => bail!("<stdin>: {why}"),
            Outcome::Untouched => {
                bail!("<stdin>: no Bitnami SealedSecret and no SOPS-encrypted Secret to import")
            }
        };
    }

    let files = manifest_files(&args.paths)?;
    let mut writes: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let (mut skipped, mut failed, mut untouched) = (0usize, 0usize, 0usize);
    let verb = if args.dry_run {
        "would convert"
    } else {
        "converted"
    };
    for file in &files {
        match convert(file, &args, &keys) {
            Ok(Outcome::Converted { text, what }) => {
                eprintln!("{verb} {}: {what}", shown(file));
                writes.push((file.clone(), text.into_bytes()));
            }
            Ok(Outcome::Skipped(why)) => {
                skipped += 1;
                eprintln!("skipped {}: {why}", shown(file));
            }
            Ok(Outcome::Untouched) => untouched += 1,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    let converted = writes.len();
    let summary = format!(
        "import: {converted} file(s) {}, {skipped} skipped, {failed} failed, {untouched} without anything to import",
        if args.dry_run {
            "to convert"
        } else {
            "converted"
        }
    );
    if args.dry_run {
        eprintln!("{summary}; nothing written (--dry-run)");
        if failed > 0 {
            bail!("{failed} file(s) could not be converted");
        }
        return Ok(());
    }
    if failed > 0 && !args.keep_going {
        eprintln!("{summary}");
        bail!(
            "{failed} file(s) could not be converted; nothing was written. Fix them, or pass --keep-going to write the files that convert"
        );
    }
    if args.keep_going {
        // Each file on its own: one that cannot be written does not stop the others.
        let mut write_failed = 0;
        for (path, bytes) in &writes {
            if let Err(e) = write_all_atomic(&[(path.clone(), bytes.clone())]) {
                write_failed += 1;
                eprintln!("error: {e:#}");
            }
        }
        eprintln!("{summary}");
        if failed + write_failed > 0 {
            bail!(
                "{} file(s) could not be converted; the others were written",
                failed + write_failed
            );
        }
        return Ok(());
    }
    write_all_atomic(&writes)?;
    eprintln!("{summary}");
    if converted == 0 && skipped == 0 {
        eprintln!("nothing to import: no Bitnami SealedSecret and no SOPS-encrypted Secret found");
    }
    Ok(())
}

/// Converts one file in memory.
fn convert(file: &Path, args: &ImportArgs, keys: &Keys) -> Result<Outcome> {
    let name = shown(file);
    let text = read_text(file)?;
    // Cheap first look, so that files of other kinds (Helm templates that are not valid
    // YAML, say) are left alone without being parsed.
    if !text.contains(SOPS_VALUE_PREFIX) && !text.contains(bitnami::API_GROUP) {
        return Ok(Outcome::Untouched);
    }
    let raw = sops::parse_raw(&name, &text)?;
    if sops::is_sops_file(&raw) {
        return convert_sops(file, raw, args, keys);
    }
    let mut docs = parse_documents(&name, &text)?;
    let count = docs.iter().filter(|d| bitnami::is_bitnami(d)).count();
    if count == 0 {
        if let Some(d) = docs
            .iter()
            .find(|d| gitseal::import::sops_values_in(&d.value).is_some())
        {
            let field = gitseal::import::sops_values_in(&d.value).unwrap_or_default();
            return Err(d
                .error(
                    field,
                    "holds a SOPS ciphertext but the file has no `sops` metadata (it was stripped or the document was cut out of its file): it cannot be opened; import the original SOPS file",
                )
                .into());
        }
        return Ok(Outcome::Untouched);
    }
    if keys.rsa.is_empty() {
        bail!(
            "{name}: holds {count} Bitnami SealedSecret(s); pass the controller's private key with --bitnami-key FILE (kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > keys.yaml; chmod 600 keys.yaml)"
        );
    }
    let recipients = recipients_for(
        &args.recipients,
        Some(file).filter(|f| *f != Path::new("-")),
    )?;
    for doc in docs.iter_mut().filter(|d| bitnami::is_bitnami(d)) {
        let opened = bitnami::open(doc, &keys.rsa, args.namespace.as_deref())?;
        let mut sealed = seal_secret(
            &opened.secret,
            &recipients,
            &SealTarget {
                scope: Some(opened.scope),
                ..Default::default()
            },
        )
        .map_err(|e| doc.error(e.field, e.problem))?;
        sealed.labels = opened.labels;
        sealed.annotations = opened.annotations;
        doc.value = sealed.to_value();
        doc.prefix.clear();
    }
    let text = output(file, args, &docs);
    Ok(Outcome::Converted {
        text,
        what: format!("{count} Bitnami SealedSecret(s)"),
    })
}

fn convert_sops(
    file: &Path,
    raw: Vec<Document>,
    args: &ImportArgs,
    keys: &Keys,
) -> Result<Outcome> {
    let name = shown(file);
    if keys.age.is_empty() {
        bail!(
            "{name}: is SOPS-encrypted; pass the age identity that opens it with -i FILE (sops keeps it in ~/.config/sops/age/keys.txt)"
        );
    }
    let docs = sops::decrypt(raw, &keys.age)?;
    let secrets = docs.iter().filter(|d| d.is_secret()).count();
    if secrets == 0 {
        let kinds: Vec<String> = docs
            .iter()
            .map(|d| {
                d.kind()
                    .map(gitseal::scope::printable)
                    .unwrap_or_else(|| "no kind".to_owned())
            })
            .collect();
        return Ok(Outcome::Skipped(format!(
            "SOPS file without a Secret ({}); gitseal seals Secrets only, so it is left as it is",
            kinds.join(", ")
        )));
    }
    if let Some(other) = docs.iter().find(|d| !d.is_secret()) {
        return Err(other
            .error(
                "kind",
                format!(
                    "is a {} in a SOPS file beside Secrets; gitseal seals Secrets only: move it to its own file first",
                    other.kind().map(gitseal::scope::printable).unwrap_or_else(|| "document without kind".to_owned())
                ),
            )
            .into());
    }
    let recipients = recipients_for(
        &args.recipients,
        Some(file).filter(|f| *f != Path::new("-")),
    )
    .with_context(|| format!("{name}: cannot choose recipients"))?;
    let target = SealTarget {
        scope: args.scope.map(Into::<Scope>::into),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(docs.len());
    for doc in &docs {
        let secret = Secret::from_document(doc)?;
        let sealed = seal_secret(&secret, &recipients, &target)
            .map_err(|e| doc.error(e.field, e.problem))?;
        out.push(Document {
            source: doc.source.clone(),
            index: doc.index,
            prefix: String::new(),
            value: sealed.to_value(),
        });
    }
    drop(docs);
    Ok(Outcome::Converted {
        text: output(file, args, &out),
        what: format!("SOPS file, {secrets} Secret(s)"),
    })
}

fn output(file: &Path, args: &ImportArgs, docs: &[Document]) -> String {
    let values = docs.iter().map(|d| &d.value);
    if file == Path::new("-") {
        render(values, args.format.into())
    } else {
        render_file(file, values)
    }
}
