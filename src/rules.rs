//! The repository key rules file, `.gitseal.yaml`: which public keys seal which paths,
//! plus escrow keys added to every seal. `keys.example` at the repository root is the
//! annotated example.

use std::collections::HashSet;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::keys::PublicKey;

/// The file name gitseal looks for, from the sealed file's folder up to the filesystem root.
pub const RULES_FILE: &str = ".gitseal.yaml";

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
    recipients: Vec<String>,
}

/// One rule: a glob over paths relative to the rules file's folder, and its recipients.
#[derive(Debug, Clone)]
pub struct Rule {
    pub path: String,
    pub name: Option<String>,
    pub recipients: Vec<PublicKey>,
    matcher: GlobMatcher,
}

/// A parsed `.gitseal.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub escrow: Vec<PublicKey>,
    pub rules: Vec<Rule>,
}

impl Rules {
    /// Parses the text of a rules file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Rules, RulesError> {
        let err = |field: Option<String>, problem: String| RulesError {
            file: file.to_owned(),
            field,
            problem,
        };
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
            let recipients = keys(&r.recipients, &format!("rules[{i}].recipients"))?;
            if recipients.is_empty() {
                return Err(err(
                    Some(format!("rules[{i}].recipients")),
                    "needs at least one age1… public key".into(),
                ));
            }
            rules.push(Rule {
                path: r.path.clone(),
                name: r.name.clone(),
                recipients,
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
}
