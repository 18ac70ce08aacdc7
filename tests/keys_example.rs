//! `keys.example` is the documented example of `.gitseal.yaml`: it must stay valid.

use gitseal::Rules;

#[test]
fn keys_example_parses_and_routes() {
    let text = include_str!("../keys.example");
    let rules = Rules::parse("keys.example", text).expect("keys.example is a valid rules file");
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
