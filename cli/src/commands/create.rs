//! `gitseal create`: a Secret built in memory from literals, files and env files, sealed
//! straight away. No plaintext file is ever written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use gitseal::manifest::{Secret, render};
use gitseal::scope::{printable, validate_key};
use gitseal::sealing::{SealTarget, seal_secret};
use secrecy::SecretSlice;

use crate::args::CreateArgs;
use crate::io::{read_input, read_text, recipients_for, shown};
use crate::usage;

pub fn run(args: CreateArgs) -> Result<()> {
    let mut data: BTreeMap<String, SecretSlice<u8>> = BTreeMap::new();
    let mut add = |key: String, value: Vec<u8>, from: String| -> Result<()> {
        validate_key(&key).map_err(|e| usage(format!("{from}: {e}")))?;
        if data.insert(key.clone(), SecretSlice::from(value)).is_some() {
            return Err(usage(format!(
                "{from}: key {} is given more than once",
                printable(&key)
            )));
        }
        Ok(())
    };
    // Standard input can be read once: by one --from-file KEY=- or one --from-env-file -.
    let stdin_users = args
        .files
        .iter()
        .filter(|f| f.split_once('=').map_or(f.as_str(), |(_, p)| p) == "-")
        .count()
        + args
            .env_files
            .iter()
            .filter(|f| *f == Path::new("-"))
            .count();
    if stdin_users > 1 {
        return Err(usage(
            "standard input (`-`) can feed only one --from-file KEY=- or --from-env-file -"
                .to_owned(),
        ));
    }
    for lit in &args.literals {
        let Some((k, v)) = lit.split_once('=') else {
            return Err(usage(
                "--from-literal: expected KEY=VALUE (the value is not shown)".to_owned(),
            ));
        };
        add(k.to_owned(), v.as_bytes().to_vec(), "--from-literal".into())?;
    }
    for spec in &args.files {
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) => (k.to_owned(), Path::new(p)),
            None if spec == "-" => {
                return Err(usage(
                    "--from-file -: name the key the value is for: --from-file KEY=-".to_owned(),
                ));
            }
            None => {
                let p = Path::new(spec.as_str());
                let Some(name) = p.file_name() else {
                    return Err(usage(format!(
                        "--from-file {}: not a file path",
                        printable(spec)
                    )));
                };
                (name.to_string_lossy().into_owned(), p)
            }
        };
        let bytes = read_input(path)?;
        add(key, bytes.to_vec(), format!("--from-file {}", shown(path)))?;
    }
    for file in &args.env_files {
        let name = shown(file);
        let text = read_text(file)?;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                bail!(
                    "{name}, line {}: expected KEY=VALUE (the line is not shown)",
                    n + 1
                );
            };
            add(
                k.trim_end().to_owned(),
                v.as_bytes().to_vec(),
                format!("{name}, line {}", n + 1),
            )?;
        }
    }
    if data.is_empty() {
        return Err(usage(
            "nothing to seal: give --from-literal, --from-file or --from-env-file".to_owned(),
        ));
    }
    let secret = Secret {
        name: Some(args.name.clone()),
        namespace: args.namespace.clone(),
        type_: Some(args.type_.clone().unwrap_or_else(|| "Opaque".to_owned())),
        data,
        ..Default::default()
    };
    let recipients = recipients_for(&args.recipients, args.write.as_deref())?;
    let target = SealTarget {
        scope: Some(args.scope.into()),
        name: None,
        namespace: None,
    };
    let sealed = seal_secret(&secret, &recipients, &target).map_err(|e| {
        let flag = match e.field.as_str() {
            "metadata.name" => "NAME",
            "metadata.namespace" => "--namespace",
            other => other,
        };
        usage(format!(
            "{flag}: {}",
            e.problem.replace("add it or pass ", "pass ")
        ))
    })?;
    crate::io::emit(
        args.write.as_deref(),
        render([&sealed.to_value()], args.format.into()).as_bytes(),
    )
}
