//! One module per subcommand.

pub mod check;
pub mod create;
pub mod diff;
pub mod edit;
pub mod get;
pub mod import;
pub mod keys;
pub mod reconcile;
pub mod reseal;
pub mod seal;
pub mod unseal;
pub mod version;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gitseal::manifest::{OutputFormat, render};

use crate::args::Format;
use crate::io::shown;

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Yaml => OutputFormat::Yaml,
            Format::Json => OutputFormat::Json,
        }
    }
}

/// The format a file should be written back in, from its extension.
pub fn format_of(path: &Path) -> OutputFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => OutputFormat::Json,
        _ => OutputFormat::Yaml,
    }
}

/// Writes documents back to a file in its own format.
pub fn render_file<'a>(
    path: &Path,
    values: impl IntoIterator<Item = &'a serde_yaml::Value>,
) -> String {
    render(values, format_of(path))
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Manifest files below `paths`: files named explicitly, and `*.yaml|*.yml|*.json` in
/// folders (hidden folders such as `.git` skipped), in a stable order.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}: cannot open", shown(p)))?;
        if meta.is_file() {
            out.push(p.clone());
            continue;
        }
        let walker = walkdir::WalkDir::new(p)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || !e.file_name().to_string_lossy().starts_with('.')
                    || e.file_type().is_file()
            });
        for entry in walker {
            let entry = entry.with_context(|| format!("{}: cannot list", shown(p)))?;
            if entry.file_type().is_file()
                && is_manifest(entry.path())
                && entry.file_name() != gitseal::rules::RULES_FILE
            {
                out.push(entry.into_path());
            }
        }
    }
    Ok(out)
}
