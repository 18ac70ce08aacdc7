//! `gitseal seal`: Secret manifests in, SealedSecrets out; or one raw value.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use gitseal::manifest::{Document, SealedSecret, Secret, parse_documents, render};
use gitseal::sealing::{SealTarget, merge, seal_secret};
use gitseal::{Binding, Scope};

use crate::args::SealArgs;
use crate::commands::render_file;
use crate::io::{emit, read_input, read_text, recipients_for, shown, stdout_file};
use crate::usage;

pub fn run(args: SealArgs) -> Result<()> {
    if args.raw {
        return raw(&args);
    }
    if let Some(into) = &args.merge_into {
        return merge_into(&args, into);
    }
    let source = shown(&args.file);
    stdin_hint(&args.file);
    let text = read_text(&args.file)?;
    let docs = parse_documents(&source, &text)?;
    if docs.is_empty() {
        bail!("{source}: no Secret found (the input is empty)");
    }
    if docs.len() > 1 && args.name.is_some() {
        return Err(usage(format!(
            "--name names one SealedSecret, but {source} holds {} documents",
            docs.len()
        )));
    }
    let from_file = (args.file != Path::new("-")).then_some(args.file.as_path());
    // Rules match on where the result goes: --for, -w, a `> FILE` redirection, else the
    // input file.
    let redirected = if args.write.is_none() {
        stdout_file()
    } else {
        None
    };
    let recipients = recipients_for(
        &args.recipients,
        args.for_path
            .as_deref()
            .or(args.write.as_deref())
            .or(redirected.as_deref())
            .or(from_file),
    )?;
    let target = SealTarget {
        scope: args.scope.map(Into::into),
        name: args.name.as_deref(),
        namespace: args.namespace.as_deref(),
    };
    let mut out = Vec::with_capacity(docs.len());
    for doc in &docs {
        let secret = read_secret(doc)?;
        let sealed = seal_secret(&secret, &recipients, &target)
            .map_err(|e| doc.error(e.field, e.problem))?;
        out.push(sealed.to_value());
    }
    emit(
        args.write.as_deref(),
        render(&out, args.format.into()).as_bytes(),
    )
}

/// Reading standard input from a terminal looks like a hang: say what is expected.
fn stdin_hint(file: &Path) {
    use std::io::IsTerminal;
    if file == Path::new("-") && std::io::stdin().is_terminal() {
        eprintln!(
            "gitseal: reading the input from the terminal; type or paste it, then press Ctrl-D (or pass -f FILE)"
        );
    }
}

/// A Secret with at least one key: an empty one (often a misspelt `stringData`) would
/// seal to a SealedSecret that opens to nothing and that `check` flags.
fn read_secret(doc: &Document) -> Result<Secret> {
    let secret = Secret::from_document(doc)?;
    if secret.data.is_empty() {
        return Err(doc
            .error(
                "",
                "the Secret has no `data` or `stringData` keys; nothing to seal (is a field name misspelt?)",
            )
            .into());
    }
    Ok(secret)
}

fn raw(args: &SealArgs) -> Result<()> {
    let key = args.key.as_deref().unwrap_or_default();
    let scope: Scope = args.scope.map(Into::into).unwrap_or_default();
    let binding = Binding::new(scope, args.namespace.as_deref(), args.name.as_deref(), key)
        .map_err(|e| {
            usage(format!(
                "--raw: {e} (give --namespace, --name and --key as the scope needs)"
            ))
        })?;
    stdin_hint(&args.file);
    let value = read_input(&args.file)?;
    let redirected = if args.write.is_none() {
        stdout_file()
    } else {
        None
    };
    let recipients = recipients_for(
        &args.recipients,
        args.for_path
            .as_deref()
            .or(args.write.as_deref())
            .or(redirected.as_deref()),
    )?;
    let ct = gitseal::seal(&value, &recipients, &binding)
        .with_context(|| format!("{}: cannot seal", shown(&args.file)))?;
    let mut line = base64::engine::general_purpose::STANDARD.encode(ct);
    line.push('\n');
    emit(args.write.as_deref(), line.as_bytes())
}

fn merge_into(args: &SealArgs, into: &Path) -> Result<()> {
    let into_name = shown(into);
    let sealed_text = read_text(into)?;
    let mut docs = parse_documents(&into_name, &sealed_text)?;
    let positions: Vec<usize> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_sealed_secret())
        .map(|(i, _)| i)
        .collect();
    let [pos] = positions[..] else {
        bail!(
            "{into_name}: --merge-into needs exactly one SealedSecret in the file, found {}",
            positions.len()
        );
    };
    let mut sealed = SealedSecret::from_document(&docs[pos])?;

    let source = shown(&args.file);
    let text = read_text(&args.file)?;
    let inputs = parse_documents(&source, &text)?;
    let [doc] = &inputs[..] else {
        bail!(
            "{source}: --merge-into takes exactly one Secret, found {} documents",
            inputs.len()
        );
    };
    let secret = read_secret(doc)?;
    if let Some(n) = secret.name.as_deref().filter(|n| *n != sealed.name) {
        return Err(doc
            .error(
                "metadata.name",
                format!(
                    "is {n} but {into_name} seals {}; they must match",
                    sealed.name
                ),
            )
            .into());
    }
    if let (Some(a), Some(b)) = (secret.namespace.as_deref(), sealed.namespace.as_deref())
        && a != b
    {
        return Err(doc
            .error(
                "metadata.namespace",
                format!("is {a} but {into_name} is in {b}; they must match"),
            )
            .into());
    }
    let recipients = recipients_for(&args.recipients, Some(into))?;
    merge(&mut sealed, &secret.data, &recipients).map_err(|e| doc.error(e.field, e.problem))?;
    docs[pos].value = sealed.to_value();
    emit(
        Some(into),
        render_file(into, docs.iter().map(|d| &d.value)).as_bytes(),
    )
}
