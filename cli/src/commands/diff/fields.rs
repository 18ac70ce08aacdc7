//! Field-by-field comparison of a live object with what a server-side apply would make of
//! it, for `gitseal diff`. Pure logic over JSON values.
//!
//! Secret values never leave this module: for a Secret, a change under `data` or
//! `stringData` (and kubectl's last-applied annotation, which holds a copy of them) is
//! reported with its path only.

use serde::Serialize;
use serde_json::{Map, Value};

/// Shown instead of a Secret's value.
pub const REDACTED: &str = "<redacted>";
/// kubectl's copy of the whole object it applied (for a Secret: its values).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Remove,
    Change,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `spec.replicas`, `metadata.labels["app.kubernetes.io/name"]`, `spec.ports[0].port`.
    pub path: String,
    pub op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// What the server sets and a reader does not compare: identity, bookkeeping and status.
pub fn normalize(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            m.remove(f);
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
}

/// The fields of `desired` that differ from `live`. With `secret`, values under `data`,
/// `stringData` and the last-applied annotation are compared but never copied out.
pub fn changes(live: &Value, desired: &Value, secret: bool) -> Vec<Change> {
    let mut out = Vec::new();
    walk(live, desired, &mut Vec::new(), secret, &mut out);
    out
}

fn hidden(path: &[String], secret: bool) -> bool {
    secret
        && match path {
            [first, ..] if first == "data" || first == "stringData" => true,
            [m, a, key, ..] => m == "metadata" && a == "annotations" && key == LAST_APPLIED,
            _ => false,
        }
}

fn shown(v: &Value, path: &[String], secret: bool) -> Option<Value> {
    Some(if hidden(path, secret) {
        Value::String(REDACTED.into())
    } else {
        v.clone()
    })
}

fn walk(
    live: &Value,
    desired: &Value,
    path: &mut Vec<String>,
    secret: bool,
    out: &mut Vec<Change>,
) {
    match (live, desired) {
        (Value::Object(a), Value::Object(b)) => objects(a, b, path, secret, out),
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                path.push(format!("[{i}]"));
                member(a.get(i), b.get(i), path, secret, out);
                path.pop();
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path: render_path(path),
            op: Op::Change,
            from: shown(a, path, secret),
            to: shown(b, path, secret),
        }),
    }
}

fn objects(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    path: &mut Vec<String>,
    secret: bool,
    out: &mut Vec<Change>,
) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        path.push(k.clone());
        member(a.get(k), b.get(k), path, secret, out);
        path.pop();
    }
}

/// One array element or map member at `path`, live and desired: compared, added or removed.
fn member(
    live: Option<&Value>,
    desired: Option<&Value>,
    path: &mut Vec<String>,
    secret: bool,
    out: &mut Vec<Change>,
) {
    match (live, desired) {
        (Some(x), Some(y)) => walk(x, y, path, secret, out),
        (Some(x), None) => out.push(Change {
            path: render_path(path),
            op: Op::Remove,
            from: shown(x, path, secret),
            to: None,
        }),
        (None, Some(y)) => out.push(Change {
            path: render_path(path),
            op: Op::Add,
            from: None,
            to: shown(y, path, secret),
        }),
        (None, None) => {}
    }
}

/// `a.b[0]["c.d/e"]`: plain segments dotted, others quoted.
fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if seg.starts_with('[') {
            out.push_str(seg);
        } else if !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        } else {
            out.push_str(&format!("[{}]", Value::String(seg.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_added_removed_and_changed_fields() {
        let live = json!({"metadata": {"name": "web", "uid": "1", "labels": {"app.kubernetes.io/name": "web"}},
                          "spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 81}]}, "status": {"x": 1}});
        let desired = json!({"metadata": {"name": "web", "uid": "1", "labels": {"app.kubernetes.io/name": "web", "tier": "front"}},
                             "spec": {"replicas": 2, "ports": [{"port": 8080}]}, "status": {"x": 2}});
        let (mut l, mut d) = (live.clone(), desired.clone());
        normalize(&mut l);
        normalize(&mut d);
        let c = changes(&l, &d, false);
        let got: Vec<(String, Op)> = c.iter().map(|c| (c.path.clone(), c.op)).collect();
        assert_eq!(
            got,
            [
                ("metadata.labels.tier".to_owned(), Op::Add),
                ("spec.ports[0].port".to_owned(), Op::Change),
                ("spec.ports[1]".to_owned(), Op::Remove),
                ("spec.replicas".to_owned(), Op::Change),
            ]
        );
        assert_eq!(c[3].from, Some(json!(1)));
        assert_eq!(c[3].to, Some(json!(2)));
        assert!(changes(&l, &l, false).is_empty());
        let odd = changes(
            &json!({}),
            &json!({"metadata": {"annotations": {"a.b/c": "x"}}}),
            false,
        );
        assert_eq!(odd[0].path, "metadata");
        let quoted = changes(
            &json!({"metadata": {"annotations": {}}}),
            &json!({"metadata": {"annotations": {"a.b/c": "x"}}}),
            false,
        );
        assert_eq!(quoted[0].path, r#"metadata.annotations["a.b/c"]"#);
    }

    #[test]
    fn secret_values_are_compared_but_never_copied() {
        let live = json!({"data": {"pw": "b2xk", "gone": "eA=="}, "metadata": {"annotations": {LAST_APPLIED: "{\"data\":{\"pw\":\"b2xk\"}}"}}});
        let desired = json!({"data": {"pw": "bmV3", "new": "eQ=="}, "metadata": {"annotations": {LAST_APPLIED: "{\"data\":{\"pw\":\"bmV3\"}}"}}, "type": "Opaque"});
        let c = changes(&live, &desired, true);
        let text = serde_json::to_string(&c).unwrap();
        for v in ["b2xk", "bmV3", "eA==", "eQ=="] {
            assert!(!text.contains(v), "{v} in {text}");
        }
        let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "data.gone",
                "data.new",
                "data.pw",
                r#"metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]"#,
                "type"
            ]
        );
        assert_eq!(c[4].to, Some(json!("Opaque")));
        // Without `secret` the same fields would be shown: the flag is what hides them.
        assert!(
            serde_json::to_string(&changes(&live, &desired, false))
                .unwrap()
                .contains("bmV3")
        );
    }
}
