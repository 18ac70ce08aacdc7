//! The repository key rules file, `.gitseal.yaml`: which public keys seal which paths,
//! plus escrow keys added to every seal. `keys.example` at the repository root is the
//! annotated example.

use std::collections::HashSet;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::keys::PublicKey;
use crate::manifest::{ManifestLimits, scan};

/// The file name gitseal looks for, from the sealed file's folder up to the filesystem root.
pub const RULES_FILE: &str = ".gitseal.yaml";

/// Limits on a rules file, checked before it is parsed: it holds a few globs and keys, and
/// `gitseal check` reads it from whoever committed it.
pub const RULES_LIMITS: ManifestLimits = ManifestLimits {
    file_bytes: 1 << 20,
    file_nodes: 100_000,
    depth: 16,
    ..ManifestLimits::DEFAULT
};

/// Why a rules file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {problem}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct RulesError {
    pub file: String,
    pub field: Option<String>,
    pub problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    escrow: Vec<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
    /// A recipients file (one `age1…` per line, `#` comments), relative to the rules
    /// file's folder: what `gitseal keys fetch -w FILE` writes, so a key rotation flows in
    /// without editing the rules.
    #[serde(default, rename = "recipientsFile")]
    recipients_file: Option<String>,
}

/// Largest recipients file read.
pub const MAX_RECIPIENTS_FILE_BYTES: usize = 64 * 1024;

/// Parses a recipients file: one `age1…` public key per line, blank lines and `#` comments
/// (also after a key) ignored. Errors give the line number and the reason, never the line.
pub fn parse_recipients_file(text: &str) -> Result<Vec<PublicKey>, String> {
    if text.len() > MAX_RECIPIENTS_FILE_BYTES {
        return Err(format!(
            "is larger than {} KiB; a recipients file holds a few public keys",
            MAX_RECIPIENTS_FILE_BYTES / 1024
        ));
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.split('#').next().unwrap_or_default().trim();
        if t.is_empty() {
            continue;
        }
        let why = if t.starts_with("AGE-SECRET-KEY-") {
            "is a private key; a recipients file holds public keys only (remove it and rotate that key)"
        } else {
            "is not an age X25519 public key (age1…)"
        };
        keys.push(
            t.parse::<PublicKey>()
                .map_err(|_| format!("line {} {why}", n + 1))?,
        );
    }
    if keys.is_empty() {
        return Err("holds no public keys".to_owned());
    }
    Ok(keys)
}

/// One rule: a glob over paths relative to the rules file's folder, and its recipients.
#[derive(Debug, Clone)]
pub struct Rule {
    pub path: String,
    pub name: Option<String>,
    /// The listed recipients followed by those of `recipients_file`.
    pub recipients: Vec<PublicKey>,
    /// The `recipientsFile` the rule names, as written (relative to the rules folder).
    pub recipients_file: Option<String>,
    /// How many of `recipients` are listed in the rules file itself (the rest come from
    /// `recipients_file`).
    listed: usize,
    matcher: GlobMatcher,
}

/// A parsed `.gitseal.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub escrow: Vec<PublicKey>,
    pub rules: Vec<Rule>,
}

impl Rules {
    /// Parses the text of a rules file; `file` names it in errors. A rule with a
    /// `recipientsFile` is refused: use [`Rules::parse_with`], which can read it.
    pub fn parse(file: &str, text: &str) -> Result<Rules, RulesError> {
        Self::parse_with(file, text, |_| {
            Err("cannot be read here (no folder to read it from)".to_owned())
        })
    }

    /// Parses the text of a rules file, reading each `recipientsFile` through `read` (given
    /// the path as written; it returns the file's text or why not). The core reads no
    /// files itself: the caller decides where a path may lead.
    pub fn parse_with(
        file: &str,
        text: &str,
        mut read: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<Rules, RulesError> {
        let err = |field: Option<String>, problem: String| RulesError {
            file: file.to_owned(),
            field,
            problem,
        };
        scan(file, text, &RULES_LIMITS).map_err(|e| err(None, e.problem))?;
        let raw: RawRules = match serde_yaml::from_str::<Option<RawRules>>(text) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(err(None, "is empty; it needs a `rules` list".into())),
            Err(e) => return Err(err(None, e.to_string())),
        };
        let keys = |list: &[String], field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    r.parse::<PublicKey>()
                        .map_err(|e| err(Some(format!("{field}[{i}]")), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let escrow = keys(&raw.escrow, "escrow")?;
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let glob = GlobBuilder::new(r.path.trim_start_matches("./"))
                .literal_separator(true)
                .build()
                .map_err(|e| err(Some(format!("rules[{i}].path")), e.kind().to_string()))?;
            let mut recipients = keys(&r.recipients, &format!("rules[{i}].recipients"))?;
            let listed = recipients.len();
            if let Some(path) = &r.recipients_file {
                let field = Some(format!("rules[{i}].recipientsFile"));
                let shown = crate::scope::printable(path);
                let text =
                    read(path).map_err(|why| err(field.clone(), format!("{shown}: {why}")))?;
                let from_file = parse_recipients_file(&text)
                    .map_err(|why| err(field.clone(), format!("{shown}: {why}")))?;
                for k in from_file {
                    if !recipients.contains(&k) {
                        recipients.push(k);
                    }
                }
            }
            if recipients.is_empty() {
                return Err(err(
                    Some(format!("rules[{i}].recipients")),
                    "needs at least one age1… public key (or a recipientsFile)".into(),
                ));
            }
            rules.push(Rule {
                path: r.path.clone(),
                name: r.name.clone(),
                recipients,
                recipients_file: r.recipients_file.clone(),
                listed,
                matcher: glob.compile_matcher(),
            });
        }
        if rules.is_empty() {
            return Err(err(
                Some("rules".into()),
                "needs at least one rule (path + recipients)".into(),
            ));
        }
        Ok(Rules { escrow, rules })
    }

    /// The first rule whose glob matches `path` (relative to the rules file's folder,
    /// `/`-separated).
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        let path = path.trim_start_matches("./");
        self.rules.iter().find(|r| r.matcher.is_match(path))
    }

    /// Recipients for `path`: the matching rule's keys, then the escrow keys, without
    /// repeats. `None` when no rule matches.
    pub fn recipients_for(&self, path: &str) -> Option<Vec<PublicKey>> {
        self.rule_for(path).map(|r| self.with_escrow(&r.recipients))
    }

    /// `keys` followed by the escrow keys, without repeats.
    pub fn with_escrow(&self, keys: &[PublicKey]) -> Vec<PublicKey> {
        let mut seen = HashSet::new();
        keys.iter()
            .chain(&self.escrow)
            .filter(|k| seen.insert((*k).clone()))
            .cloned()
            .collect()
    }

    /// Every key that must not be sealed to (published private key, documentation
    /// placeholder), as errors naming the field of `file` that holds it. The CLI refuses a
    /// rules file with any; `keys.example` consists of placeholders on purpose.
    pub fn unusable_recipients(&self, file: &str) -> Vec<RulesError> {
        let escrow = self
            .escrow
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("escrow[{i}]"), k));
        let rules = self.rules.iter().enumerate().flat_map(|(i, r)| {
            r.recipients.iter().enumerate().map(move |(j, k)| {
                let field = match &r.recipients_file {
                    Some(file) if j >= r.listed => {
                        format!(
                            "rules[{i}].recipientsFile ({})",
                            crate::scope::printable(file)
                        )
                    }
                    _ => format!("rules[{i}].recipients[{j}]"),
                };
                (field, k)
            })
        });
        escrow
            .chain(rules)
            .filter_map(|(field, k)| {
                k.check_usable().err().map(|e| RulesError {
                    file: file.to_owned(),
                    field: Some(field),
                    problem: e.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    #[test]
    fn first_match_wins_and_escrow_is_added() {
        let (p, s, e) = (
            SecretKey::generate(),
            SecretKey::generate(),
            SecretKey::generate(),
        );
        let text = format!(
            "escrow: [{e}]\nrules:\n  - path: 'clusters/prod/**'\n    recipients: [{p}]\n  - path: 'clusters/*/**'\n    name: others\n    recipients: [{s}, {e}]\n",
            p = p.public(),
            s = s.public(),
            e = e.public()
        );
        let rules = Rules::parse(".gitseal.yaml", &text).unwrap();
        let got = rules
            .recipients_for("clusters/prod/app/secret.yaml")
            .unwrap();
        assert_eq!(got, vec![p.public().clone(), e.public().clone()]);
        let got = rules.recipients_for("./clusters/dev/a.yaml").unwrap();
        assert_eq!(got, vec![s.public().clone(), e.public().clone()]);
        assert!(rules.recipients_for("apps/a.yaml").is_none());
        assert!(rules.recipients_for("clusters/x.yaml").is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let e = Rules::parse(
            "r.yaml",
            "rules:\n  - path: a/**\n    recipients: [age1nope]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("r.yaml, field `rules[0].recipients[0]`: invalid recipient"),
            "{e}"
        );
        let e = Rules::parse("r.yaml", "rulez: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `rulez`"), "{e}");
        let e = Rules::parse("r.yaml", "rules:\n  - path: 'a/[**'\n    recipients: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rules[0].path"), "{e}");
        assert!(Rules::parse("r.yaml", "").is_err());
    }

    #[test]
    fn recipients_files_add_keys_and_name_lines_not_content() {
        let (p, q) = (SecretKey::generate(), SecretKey::generate());
        let text = format!(
            "rules:\n  - path: 'prod/**'\n    recipientsFile: clusters/prod.pub\n  - path: '**'\n    recipients: [{}]\n    recipientsFile: clusters/dev.pub\n",
            p.public()
        );
        let files = |path: &str| -> Result<String, String> {
            match path {
                "clusters/prod.pub" => Ok(format!(
                    "# gitseal: sealing key\n{}  # current\n",
                    q.public()
                )),
                "clusters/dev.pub" => Ok(format!("{}\n", p.public())),
                _ => Err("not found".into()),
            }
        };
        let rules = Rules::parse_with("r.yaml", &text, files).unwrap();
        assert_eq!(
            rules.recipients_for("prod/a.yaml").unwrap(),
            vec![q.public().clone()]
        );
        assert_eq!(
            rules.recipients_for("dev/a.yaml").unwrap(),
            vec![p.public().clone()]
        );
        assert_eq!(
            rules.rules[0].recipients_file.as_deref(),
            Some("clusters/prod.pub")
        );
        let e = Rules::parse_with("r.yaml", &text, |_| Ok("CANARY-line\n".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "r.yaml, field `rules[0].recipientsFile`: clusters/prod.pub: line 1 is not an age X25519 public key (age1…)"
        );
        let e = Rules::parse("r.yaml", &text).unwrap_err().to_string();
        assert!(e.contains("rules[0].recipientsFile"), "{e}");
        let e = Rules::parse_with("r.yaml", &text, |_| Ok("# none\n".into()))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("holds no public keys"), "{e}");
    }

    #[test]
    fn hostile_rules_files_are_refused_before_parsing() {
        let k = 2_000;
        let bomb = format!(
            "escrow: &a [{}]\nrules: [{}]\n",
            vec!["x"; k].join(", "),
            vec!["*a"; k].join(", ")
        );
        let e = Rules::parse("r.yaml", &bomb).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "r.yaml: more than 100000 YAML nodes in the file once aliases are expanded"
            ),
            "{e}"
        );
        let deep = format!("rules: {}{}\n", "[".repeat(20), "]".repeat(20));
        let e = Rules::parse("r.yaml", &deep).unwrap_err().to_string();
        assert!(e.contains("nested more than 16 levels deep"), "{e}");
    }
}
