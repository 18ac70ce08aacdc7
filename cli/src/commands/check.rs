//! `gitseal check`: the repository lint, for pre-commit hooks and pull-request CI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use gitseal::import::{Neighbour, neighbour_of};
use gitseal::manifest::{Document, ManifestError, SealedSecret, parse_documents};
use gitseal::rules::Rules;
use gitseal::sealing::binding_of;
use gitseal::{KeyId, inspect};
use serde_yaml::Value;

use crate::args::{CheckArgs, CheckFormat};
use crate::commands::manifest_files;
use crate::io::{emit, find_rules, read_text, relative_to, shown};

type RulesCache = HashMap<PathBuf, Option<(PathBuf, Rules)>>;

/// Returns whether the repository is clean. Errors (a path that cannot be read, output
/// that cannot be written) are the caller's exit code 3; findings are exit code 1.
pub fn run(args: CheckArgs) -> Result<bool> {
    let files = manifest_files(&args.paths)?;
    let mut findings = Findings::default();
    let mut rules_cache = RulesCache::new();
    let mut sealed_count = 0;
    // First line of each document, per file, to point SARIF results at a line.
    let mut doc_lines: HashMap<String, Vec<usize>> = HashMap::new();
    for file in &files {
        let name = shown(file);
        let text = match read_text(file) {
            Ok(t) => t,
            Err(e) => {
                findings.push_file(Kind::Unreadable, file, format!("{e:#}"));
                continue;
            }
        };
        doc_lines.insert(name.clone(), document_lines(&text));
        let docs = match parse_documents(&name, &text) {
            Ok(d) => d,
            Err(e) => {
                findings.push(Kind::Malformed, e);
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
    let out = match args.output {
        CheckFormat::Text => {
            let mut s = String::new();
            for f in &findings.0 {
                s.push_str(&f.message);
                s.push('\n');
            }
            s
        }
        CheckFormat::Json => {
            let v = serde_json::json!({
                "checkedFiles": files.len(),
                "sealedSecrets": sealed_count,
                "findings": findings.0.iter().map(Finding::to_json).collect::<Vec<_>>(),
            });
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        CheckFormat::Sarif => format!(
            "{}\n",
            serde_json::to_string_pretty(&sarif(&findings.0, &doc_lines))?
        ),
    };
    emit(None, out.as_bytes())?;
    eprintln!(
        "checked {} file(s), {sealed_count} SealedSecret(s): {} finding(s)",
        files.len(),
        findings.0.len()
    );
    Ok(findings.0.is_empty())
}

/// What a finding is about: a stable id (SARIF rule id, JSON `rule`) and its summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plaintext,
    Malformed,
    Bitnami,
    Sops,
    Recipients,
    PublishedKey,
    Scope,
    Uncovered,
    Rules,
    Unreadable,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Plaintext,
        Kind::Malformed,
        Kind::Bitnami,
        Kind::Sops,
        Kind::Recipients,
        Kind::PublishedKey,
        Kind::Scope,
        Kind::Uncovered,
        Kind::Rules,
        Kind::Unreadable,
    ];

    fn id(self) -> &'static str {
        match self {
            Kind::Plaintext => "plaintext-secret",
            Kind::Malformed => "malformed-manifest",
            Kind::Bitnami => "bitnami-sealed-secret",
            Kind::Sops => "sops-file",
            Kind::Recipients => "recipients-mismatch",
            Kind::PublishedKey => "published-key",
            Kind::Scope => "scope-mismatch",
            Kind::Uncovered => "no-rule",
            Kind::Rules => "rules-file",
            Kind::Unreadable => "unreadable-file",
        }
    }

    fn summary(self) -> &'static str {
        match self {
            Kind::Plaintext => "A plaintext Secret with data is committed",
            Kind::Malformed => "A manifest or SealedSecret that cannot be read",
            Kind::Bitnami => "A Bitnami SealedSecret: convert it with gitseal import",
            Kind::Sops => "A SOPS-encrypted file: convert it with gitseal import",
            Kind::Recipients => "A value sealed to other keys than the .gitseal.yaml rules want",
            Kind::PublishedKey => {
                "A value sealed to a key anyone can open (published test key) or no one can (placeholder)"
            }
            Kind::Scope => "A value sealed for another place than its manifest says",
            Kind::Uncovered => "A SealedSecret that no .gitseal.yaml rule covers",
            Kind::Rules => "A .gitseal.yaml that cannot be used",
            Kind::Unreadable => "A file that cannot be read as text",
        }
    }
}

/// One finding: where (file, document, field) and the message shown in text output.
#[derive(Debug)]
struct Finding {
    kind: Kind,
    file: String,
    document: Option<usize>,
    field: Option<String>,
    /// The whole line as printed (location included).
    message: String,
    /// The message without the location.
    problem: String,
}

impl Finding {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rule": self.kind.id(),
            "file": self.file,
            "document": self.document,
            "field": self.field,
            "message": self.problem,
        })
    }
}

#[derive(Debug, Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, kind: Kind, e: ManifestError) {
        self.0.push(Finding {
            kind,
            message: e.to_string(),
            file: e.file,
            document: Some(e.document),
            field: e.field,
            problem: e.problem,
        });
    }

    fn push_file(&mut self, kind: Kind, file: &Path, message: String) {
        let file = shown(file);
        let problem = message
            .strip_prefix(&format!("{file}: "))
            .unwrap_or(&message)
            .to_owned();
        self.0.push(Finding {
            kind,
            file,
            document: None,
            field: None,
            message,
            problem,
        });
    }
}

/// The first line (1-based) of each YAML document of `text`, in order.
fn document_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            if content {
                starts.push(i + 2);
                content = false;
            } else if let Some(last) = starts.last_mut() {
                *last = i + 2;
            }
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            content = true;
        }
    }
    starts
}

/// Findings as SARIF 2.1.0, for code-scanning uploads in pull-request CI.
fn sarif(findings: &[Finding], doc_lines: &HashMap<String, Vec<usize>>) -> serde_json::Value {
    let rules: Vec<_> = Kind::ALL
        .iter()
        .map(|k| {
            serde_json::json!({
                "id": k.id(),
                "shortDescription": {"text": k.summary()},
                "defaultConfiguration": {"level": "error"},
            })
        })
        .collect();
    let results: Vec<_> = findings
        .iter()
        .map(|f| {
            let mut location = serde_json::json!({
                "physicalLocation": {"artifactLocation": {"uri": f.file.trim_start_matches("./")}}
            });
            let line = f
                .document
                .and_then(|d| doc_lines.get(&f.file).and_then(|l| l.get(d - 1)).copied());
            if let Some(line) = line {
                location["physicalLocation"]["region"] = serde_json::json!({"startLine": line});
            }
            if let Some(field) = &f.field {
                location["logicalLocations"] =
                    serde_json::json!([{"fullyQualifiedName": field, "kind": "member"}]);
            }
            let text = match (&f.field, f.document) {
                (Some(field), Some(d)) => format!("document {d}, field `{field}`: {}", f.problem),
                (None, Some(d)) => format!("document {d}: {}", f.problem),
                _ => f.problem.clone(),
            };
            serde_json::json!({
                "ruleId": f.kind.id(),
                "level": "error",
                "message": {"text": text},
                "locations": [location],
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gitseal",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/gitseal/gitseal",
                "rules": rules,
            }},
            "results": results,
        }],
    })
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
fn check_neighbour(doc: &Document, n: Neighbour, name: &str, findings: &mut Findings) {
    let field = match n {
        Neighbour::Bitnami => "kind".to_owned(),
        Neighbour::Sops if gitseal::import::sops::has_metadata(&doc.value) => "sops".to_owned(),
        Neighbour::Sops => gitseal::import::sops_values_in(&doc.value).unwrap_or_default(),
    };
    let kind = match n {
        Neighbour::Bitnami => Kind::Bitnami,
        Neighbour::Sops => Kind::Sops,
    };
    findings.push(
        kind,
        doc.error(
            field,
            format!(
                "this is {}, which gitseal's agent cannot open; convert it: {}",
                n.describe(),
                n.import_command(name)
            ),
        ),
    );
}

fn check_plain_secret(doc: &Document, name: &str, findings: &mut Findings) {
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
            Kind::Plaintext,
            doc.error(
                field,
                format!(
                    "plaintext Secret {} with data (keys: {}) is committed; seal it: gitseal seal -f {name} -w {name}",
                    doc.name().map(gitseal::scope::printable).unwrap_or_else(|| "(unnamed)".into()),
                    keys.join(", ")
                ),
            ),
        );
    }
}

fn rules_for<'c>(
    file: &Path,
    cache: &'c mut RulesCache,
    findings: &mut Findings,
) -> Option<&'c (PathBuf, Rules)> {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    cache
        .entry(dir)
        .or_insert_with_key(|dir| match find_rules(dir) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{e:#}");
                let file = dir.join(gitseal::rules::RULES_FILE);
                if !findings.0.iter().any(|f| f.message == msg) {
                    findings.push_file(Kind::Rules, &file, msg);
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
    findings: &mut Findings,
) {
    let sealed = match SealedSecret::from_document(doc) {
        Ok(s) => s,
        Err(e) => {
            findings.push(Kind::Malformed, e);
            return;
        }
    };
    if sealed.encrypted_data.is_empty() {
        findings.push(Kind::Malformed, doc.error("spec.encryptedData", "is empty"));
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
            Kind::Uncovered,
            doc.error(
                "",
                format!(
                    "no rule in {} covers this file; add one so reviewers know who can open it",
                    rules
                        .map(|(b, _)| shown(&b.join(gitseal::rules::RULES_FILE)))
                        .unwrap_or_default()
                ),
            ),
        );
    }
    for (key, ct) in &sealed.encrypted_data {
        let field = format!("spec.encryptedData.{key}");
        let expected = match binding_of(&sealed, key) {
            Ok(b) => b,
            Err(e) => {
                findings.push(Kind::Malformed, doc.error(&field, e.problem));
                continue;
            }
        };
        let header = match inspect(ct) {
            Ok(h) => h,
            Err(e) => {
                findings.push(Kind::Malformed, doc.error(&field, e.to_string()));
                continue;
            }
        };
        for id in &header.key_ids {
            if let Some(where_) = id.published_as() {
                findings.push(
                    Kind::PublishedKey,
                    doc.error(
                        &field,
                        format!(
                            "sealed to key id {id}, the id of {where_}, whose private key is published: anyone can open this value; \
                             treat it as leaked, change it, and seal the new value to your cluster's key"
                        ),
                    ),
                );
            } else if let Some(label) = id.placeholder_as() {
                findings.push(
                    Kind::PublishedKey,
                    doc.error(
                        &field,
                        format!(
                            "sealed to key id {id}, the placeholder `{label}` of keys.example: nobody can open this value; \
                             seal it again to your cluster's key"
                        ),
                    ),
                );
            }
        }
        if header.binding != expected {
            findings.push(
                Kind::Scope,
                doc.error(
                    &field,
                    format!(
                        "scope does not match the manifest: sealed for {}, the manifest says {}",
                        header.binding, expected
                    ),
                ),
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
                        "the rule takes its keys from {kf}: re-encrypt to them with gitseal reseal -i IDENTITY {f} (or gitseal reseal --cluster {f}); if {kf} is out of date, refresh it first: gitseal keys fetch -w {kf}",
                        f = shown(file)
                    ),
                    None => format!("run gitseal reseal -i IDENTITY {}", shown(file)),
                };
                findings.push(
                    Kind::Recipients,
                    doc.error(
                        &field,
                        format!(
                            "sealed to key id(s) {} but the rules want {}; {fix}",
                            ids(&have),
                            ids(want),
                        ),
                    ),
                );
            }
        }
    }
}
