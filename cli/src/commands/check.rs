//! `gitseal check`: the repository lint, for pre-commit hooks and pull-request CI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use gitseal::import::{Neighbour, neighbour_of};
use gitseal::manifest::{Document, SealedSecret, parse_documents};
use gitseal::rules::Rules;
use gitseal::sealing::binding_of;
use gitseal::{KeyId, inspect};
use serde_yaml::Value;

use crate::args::CheckArgs;
use crate::commands::manifest_files;
use crate::io::{find_rules, read_text, relative_to, shown};

type RulesCache = HashMap<PathBuf, Option<(PathBuf, Rules)>>;

/// Returns whether the repository is clean.
pub fn run(args: CheckArgs) -> Result<bool> {
    let files = manifest_files(&args.paths)?;
    let mut findings = Vec::new();
    let mut rules_cache = RulesCache::new();
    let mut sealed_count = 0;
    for file in &files {
        let name = shown(file);
        let text = match read_text(file) {
            Ok(t) => t,
            Err(e) => {
                findings.push(format!("{e:#}"));
                continue;
            }
        };
        let docs = match parse_documents(&name, &text) {
            Ok(d) => d,
            Err(e) => {
                findings.push(e.to_string());
                continue;
            }
        };
        let mut sops_named = false;
        for doc in &docs {
            if let Some(n) = neighbour_of(doc) {
                // One finding per SOPS file (its documents share one metadata block).
                if n == Neighbour::Sops && std::mem::replace(&mut sops_named, true) {
                    continue;
                }
                check_neighbour(doc, n, &name, &mut findings);
            } else if doc.is_secret() {
                check_plain_secret(doc, &name, &mut findings);
            } else if doc.is_sealed_secret() {
                sealed_count += 1;
                let rules = rules_for(file, &mut rules_cache, &mut findings);
                check_sealed(doc, file, rules, &mut findings);
            }
        }
    }
    for f in &findings {
        println!("{f}");
    }
    eprintln!(
        "checked {} file(s), {sealed_count} SealedSecret(s): {} finding(s)",
        files.len(),
        findings.len()
    );
    Ok(findings.is_empty())
}

fn non_empty(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(gitseal::scope::printable))
            .collect(),
        _ => Vec::new(),
    }
}

/// A manifest sealed by another tool: the agent cannot open it, and it is not plaintext.
fn check_neighbour(doc: &Document, n: Neighbour, name: &str, findings: &mut Vec<String>) {
    let field = match n {
        Neighbour::Bitnami => "kind".to_owned(),
        Neighbour::Sops if gitseal::import::sops::has_metadata(&doc.value) => "sops".to_owned(),
        Neighbour::Sops => gitseal::import::sops_values_in(&doc.value).unwrap_or_default(),
    };
    findings.push(
        doc.error(
            field,
            format!(
                "this is {}, which gitseal's agent cannot open; convert it: {}",
                n.describe(),
                n.import_command(name)
            ),
        )
        .to_string(),
    );
}

fn check_plain_secret(doc: &Document, name: &str, findings: &mut Vec<String>) {
    let mut keys = non_empty(doc.value.get("data"));
    keys.extend(non_empty(doc.value.get("stringData")));
    if !keys.is_empty() {
        let field = if doc
            .value
            .get("data")
            .is_some_and(|d| !non_empty(Some(d)).is_empty())
        {
            "data"
        } else {
            "stringData"
        };
        findings.push(
            doc.error(
                field,
                format!(
                    "plaintext Secret {} with data (keys: {}) is committed; seal it: gitseal seal -f {name} -w {name}",
                    doc.name().map(gitseal::scope::printable).unwrap_or_else(|| "(unnamed)".into()),
                    keys.join(", ")
                ),
            )
            .to_string(),
        );
    }
}

fn rules_for<'c>(
    file: &Path,
    cache: &'c mut RulesCache,
    findings: &mut Vec<String>,
) -> Option<&'c (PathBuf, Rules)> {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    cache
        .entry(dir)
        .or_insert_with_key(|dir| match find_rules(dir) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{e:#}");
                if !findings.contains(&msg) {
                    findings.push(msg);
                }
                None
            }
        })
        .as_ref()
}

fn ids(list: &[KeyId]) -> String {
    list.iter()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_sealed(
    doc: &Document,
    file: &Path,
    rules: Option<&(PathBuf, Rules)>,
    findings: &mut Vec<String>,
) {
    let sealed = match SealedSecret::from_document(doc) {
        Ok(s) => s,
        Err(e) => {
            findings.push(e.to_string());
            return;
        }
    };
    if sealed.encrypted_data.is_empty() {
        findings.push(doc.error("spec.encryptedData", "is empty").to_string());
    }
    // Where the wanted keys come from, for the advice: the rule's recipients file.
    let keys_file = rules.and_then(|(base, rules)| {
        let rel = relative_to(base, file).unwrap_or_default();
        rules
            .rule_for(&rel)
            .and_then(|r| r.recipients_file.as_deref())
            .map(|f| crate::io::near(&base.join(f)))
    });
    let wanted: Option<Vec<KeyId>> = rules.map(|(base, rules)| {
        let rel = relative_to(base, file).unwrap_or_default();
        let mut w: Vec<KeyId> = rules
            .recipients_for(&rel)
            .unwrap_or_default()
            .iter()
            .map(|k| k.id())
            .collect();
        w.sort();
        w.dedup();
        w
    });
    if wanted.as_ref().is_some_and(Vec::is_empty) {
        findings.push(
            doc.error(
                "",
                format!(
                    "no rule in {} covers this file; add one so reviewers know who can open it",
                    rules
                        .map(|(b, _)| shown(&b.join(gitseal::rules::RULES_FILE)))
                        .unwrap_or_default()
                ),
            )
            .to_string(),
        );
    }
    for (key, ct) in &sealed.encrypted_data {
        let field = format!("spec.encryptedData.{key}");
        let expected = match binding_of(&sealed, key) {
            Ok(b) => b,
            Err(e) => {
                findings.push(doc.error(&field, e.problem).to_string());
                continue;
            }
        };
        let header = match inspect(ct) {
            Ok(h) => h,
            Err(e) => {
                findings.push(doc.error(&field, e.to_string()).to_string());
                continue;
            }
        };
        if header.binding != expected {
            findings.push(
                doc.error(
                    &field,
                    format!(
                        "scope does not match the manifest: sealed for {}, the manifest says {}",
                        header.binding, expected
                    ),
                )
                .to_string(),
            );
        }
        if let Some(want) = wanted.as_ref().filter(|w| !w.is_empty()) {
            let mut have = header.key_ids.clone();
            have.sort();
            have.dedup();
            if &have != want {
                let fix = match &keys_file {
                    // The wanted keys follow the cluster through a recipients file: either
                    // the cluster rotated (re-encrypt the value) or the file is stale.
                    Some(kf) => format!(
                        "the rule takes its keys from {kf}: re-encrypt to them with gitseal reseal -i IDENTITY {f} (or gitseal reseal --cluster {f}); if {kf} is out of date, refresh it first: gitseal keys fetch -o {kf}",
                        f = shown(file)
                    ),
                    None => format!("run gitseal reseal -i IDENTITY {}", shown(file)),
                };
                findings.push(
                    doc.error(
                        &field,
                        format!(
                            "sealed to key id(s) {} but the rules want {}; {fix}",
                            ids(&have),
                            ids(want),
                        ),
                    )
                    .to_string(),
                );
            }
        }
    }
}
