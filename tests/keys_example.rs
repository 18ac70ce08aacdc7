//! `keys.example` is the documented example of `.gitseal.yaml`: it must stay valid, route
//! as its comments say, and hold only placeholder recipients — keys nobody can open with,
//! each named in its comment — so that copying it verbatim seals nothing until real keys
//! are filled in.

use gitseal::keys::{PLACEHOLDER_LABELS, UnusableRecipient, placeholder};
use gitseal::{PublicKey, Rules};

const TEXT: &str = include_str!("../keys.example");

#[test]
fn keys_example_parses_and_routes() {
    let rules = Rules::parse("keys.example", TEXT).expect("keys.example is a valid rules file");
    assert_eq!(rules.escrow.len(), 1);
    let prod = rules
        .recipients_for("clusters/production/app/db.sealed.yaml")
        .expect("production rule");
    assert_eq!(prod.len(), 3, "two cluster keys plus escrow");
    let dev = rules
        .recipients_for("apps/base/db.yaml")
        .expect("catch-all rule");
    assert_eq!(dev.len(), 2);
    assert_eq!(
        rules
            .rule_for("clusters/staging/x.yaml")
            .and_then(|r| r.name.as_deref()),
        Some("staging")
    );
}

/// Every `age1…` key in the file, with the placeholder label its comment names.
fn keys_with_labels() -> Vec<(PublicKey, String)> {
    TEXT.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let key = l.split_whitespace().find(|w| w.starts_with("age1"))?;
            let label = l.split('`').nth(1).unwrap_or_default().to_owned();
            Some((key.parse().expect("a valid age1… key"), label))
        })
        .collect()
}

#[test]
fn keys_example_holds_only_placeholders() {
    let keys = keys_with_labels();
    assert_eq!(keys.len(), 5, "escrow + 4 rule keys");
    for (key, label) in &keys {
        assert!(
            PLACEHOLDER_LABELS.contains(&label.as_str()),
            "{key}: its comment must name its placeholder label"
        );
        assert_eq!(
            key,
            &placeholder(label),
            "{key} is not placeholder `{label}`"
        );
    }
    // So a newcomer who copies it as .gitseal.yaml is refused with a message that says
    // what to do, for every key, naming the field.
    let rules = Rules::parse("keys.example", TEXT).unwrap();
    let problems = rules.unusable_recipients("keys.example");
    assert_eq!(problems.len(), keys.len());
    for p in &problems {
        let msg = p.to_string();
        assert!(
            msg.contains("keys.example")
                && msg.contains("placeholder")
                && msg.contains("gitseal keys fetch"),
            "{msg}"
        );
    }
    assert!(
        problems
            .iter()
            .any(|p| p.field.as_deref() == Some("rules[0].recipients[1]"))
    );
    for (key, _) in &keys {
        assert!(matches!(
            key.check_usable(),
            Err(UnusableRecipient::Placeholder { .. })
        ));
    }
}
