//! Output of the operator commands (`get`, `reconcile`, `diff`, `version`): kubectl-style
//! tables for people, YAML or JSON for scripts. Every string that came from the cluster is made
//! printable before it reaches a terminal (a commit message or a repository's file names end
//! up in conditions, and whoever writes them is not the person reading).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::args::TableFormat;

/// Columns separated by three spaces, as kubectl prints them; cells made printable.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        let mut out = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count()) + 3;
                out.push_str(c);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    for r in &cells {
        out.push_str(&line(r));
    }
    out
}

/// A table cell: one line, control characters escaped; `-` when empty.
fn cell(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    one_line(&s.replace(['\n', '\r'], " "))
}

/// A string from a repository or the cluster, safe for one terminal line: control
/// characters (escapes, newlines, bells) escaped, nothing cut.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value shown in a diff: one line, at most `max` characters (`…` when cut).
pub fn clipped(s: &str, max: usize) -> String {
    let mut out = one_line(s);
    if out.chars().count() > max {
        out = out.chars().take(max).collect();
        out.push('…');
    }
    out
}

/// `value` as YAML or JSON (`TableFormat::Table` is the caller's business).
pub fn structured<T: Serialize>(value: &T, format: TableFormat) -> anyhow::Result<String> {
    Ok(match format {
        TableFormat::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        _ => serde_yaml::to_string(value)?,
    })
}

/// A duration as kubectl shows ages: `45s`, `3m`, `5h`, `12d`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// The age of an object from its creation time (`-` when unknown).
pub fn age(created: Option<&Time>) -> String {
    let Some(Time(t)) = created else {
        return "-".into();
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    match now.duration_since(*t).try_into() {
        Ok(d) => short_duration(d),
        Err(_) => "0s".into(),
    }
}

/// `value` with what a reader never needs (and scripts should not depend on) removed:
/// managedFields.
pub fn without_managed_fields(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(m) = value
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        m.remove("managedFields");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_cells_are_printable() {
        let t = render(
            &["NAME", "READY", "MESSAGE"],
            &[
                vec!["a".into(), "True".into(), "applied\n\u{1b}[31mred".into()],
                vec!["longer-name".into(), String::new(), "x".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME          READY   MESSAGE\n\
             a             True    applied \\u{1b}[31mred\n\
             longer-name   -       x\n"
        );
        assert!(!t.contains('\u{1b}'));
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(short_duration(Duration::from_secs(59)), "59s");
        assert_eq!(short_duration(Duration::from_secs(600)), "10m");
        assert_eq!(short_duration(Duration::from_secs(5 * 3600)), "5h");
        assert_eq!(short_duration(Duration::from_secs(3 * 86_400)), "3d");
    }
}
