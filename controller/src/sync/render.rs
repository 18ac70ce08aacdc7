//! Rendering a folder of the checkout into objects: Kustomize when the folder has a
//! kustomization, else every `*.yaml|*.yml|*.json` below it (multi-document).
//!
//! Rendering reads only the source's own checkout: every kustomization reachable from the
//! folder is checked before kustomize runs ([`confine`]: nothing outside the checkout, no
//! remote base unless [`RemoteBases`] allows it), and kustomize runs sandboxed ([`sandbox`]).
//! Plain files are read from the folder itself, never through a symbolic link (git checks
//! links out as files holding the link text).

mod confine;
mod sandbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gitseal::manifest::parse_documents;

use super::object::{Object, ObjectId};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// Largest manifest file read (a repository of manifests has no business holding more).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a path could not be rendered. Messages name the file and document, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    #[error("path {0}: not found in the repository")]
    PathNotFound(String),
    #[error("path {0}: leaves the repository")]
    PathEscapes(String),
    #[error("{file}: document {document}: {problem}")]
    Invalid {
        file: String,
        document: usize,
        problem: String,
    },
    #[error("{0}")]
    Manifest(gitseal::ManifestError),
    #[error("duplicate object {id}: in {first} and in {second}")]
    Duplicate {
        id: String,
        first: String,
        second: String,
    },
    /// A kustomization names something outside the source's checkout, or remote.
    #[error("{file}: {field}{value}: {rule}")]
    Refused {
        file: String,
        field: String,
        /// Empty, or `` ` `the value` ` `` with a leading space.
        value: String,
        rule: String,
    },
    #[error("kustomize build {dir} failed: {stderr}")]
    Kustomize { dir: String, stderr: String },
    #[error("kustomize build {0} timed out")]
    KustomizeTimeout(String),
    #[error("no kustomize: install `kustomize` or `kubectl` (kubectl kustomize)")]
    NoKustomize,
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
}

// Messages carry the inner error's text; no `source` chain, so it is not printed twice.
impl From<gitseal::ManifestError> for RenderError {
    fn from(e: gitseal::ManifestError) -> Self {
        RenderError::Manifest(e)
    }
}

impl RenderError {
    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RenderError::PathNotFound(_) | RenderError::PathEscapes(_) => "path",
            RenderError::Invalid { .. } | RenderError::Manifest(_) => "invalid_manifest",
            RenderError::Duplicate { .. } => "duplicate",
            RenderError::Refused { .. } => "render_refused",
            RenderError::Kustomize { .. }
            | RenderError::KustomizeTimeout(_)
            | RenderError::NoKustomize => "kustomize",
            RenderError::Io { .. } => "io",
        }
    }
}

/// Whether kustomize may fetch remote bases and resources (URLs): only when the agent's admin
/// allows them (`--allow-remote-bases`) and, under `run`, the GitSync asks for them
/// (`spec.allowRemoteBases`; a tenant writes its own GitSync, so the field alone is no
/// boundary). `gitsync: None` is `sync`, whose flags are the operator's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RemoteBases {
    pub agent: bool,
    pub gitsync: Option<bool>,
}

impl RemoteBases {
    pub fn allowed(&self) -> bool {
        self.agent && self.gitsync.unwrap_or(true)
    }

    /// Why a remote reference is refused, and what would allow it.
    fn refusal(&self) -> String {
        let what = "remote resource refused (kustomize would fetch it from the network)";
        match (self.agent, self.gitsync) {
            (false, None) => format!("{what}: run `gitseal-agent sync` with --allow-remote-bases"),
            (false, Some(false)) => format!(
                "{what}: remote bases need `spec.allowRemoteBases: true` on the GitSync and the agent started with --allow-remote-bases by its admin"
            ),
            (false, Some(true)) => format!(
                "{what}: the GitSync sets spec.allowRemoteBases, but this agent was not started with --allow-remote-bases (its admin's decision)"
            ),
            (true, _) => format!("{what}: the GitSync does not set `spec.allowRemoteBases: true`"),
        }
    }
}

/// Renders `path` (relative to the checkout `root`); kustomize may fetch remote bases only
/// as `remote` allows.
pub async fn render(
    root: &Path,
    path: &str,
    remote: RemoteBases,
    timeout: Duration,
) -> Result<Vec<Object>, RenderError> {
    let shown = if path.is_empty() { "." } else { path };
    let root = root.canonicalize().map_err(|e| RenderError::Io {
        file: root.display().to_string(),
        error: e,
    })?;
    let dir = root
        .join(path.trim_start_matches('/'))
        .canonicalize()
        .map_err(|_| RenderError::PathNotFound(shown.to_owned()))?;
    if !dir.starts_with(&root) {
        return Err(RenderError::PathEscapes(shown.to_owned()));
    }
    let rel = |p: &Path| {
        p.strip_prefix(&root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let objects = if dir.is_dir() && KUSTOMIZATION_FILES.iter().any(|f| dir.join(f).is_file()) {
        confine::check(&root, &dir, remote)?;
        kustomize(&dir, &rel(&dir), remote.allowed(), timeout).await?
    } else {
        plain(&dir, &rel)?
    };
    check_objects(&objects)?;
    Ok(objects)
}

fn plain(dir: &Path, rel: &dyn Fn(&Path) -> String) -> Result<Vec<Object>, RenderError> {
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_path_buf());
    } else {
        collect(dir, &mut files)?;
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = rel(&file);
        let meta = std::fs::metadata(&file).map_err(|e| RenderError::Io {
            file: name.clone(),
            error: e,
        })?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(RenderError::Invalid {
                file: name,
                document: 0,
                problem: format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
            });
        }
        let text = std::fs::read_to_string(&file).map_err(|e| RenderError::Io {
            file: name.clone(),
            error: e,
        })?;
        out.extend(parse(&name, &text)?);
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), RenderError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RenderError::Io {
        file: dir.display().to_string(),
        error: e,
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| RenderError::Io {
            file: dir.display().to_string(),
            error: e,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue; // .git, .github, .gitseal.yaml
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| RenderError::Io {
            file: name.to_string(),
            error: e,
        })?;
        if ft.is_dir() {
            collect(&path, out)?;
        } else if ft.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one file or kustomize output into objects.
pub fn parse(source: &str, text: &str) -> Result<Vec<Object>, RenderError> {
    let docs = parse_documents(source, text)?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in &docs {
        let value = serde_json::to_value(&doc.value).map_err(|e| RenderError::Invalid {
            file: source.to_owned(),
            document: doc.index,
            problem: format!("cannot be represented as JSON: {e}"),
        })?;
        let obj = Object {
            source: source.to_owned(),
            document: doc.index,
            value,
            decrypted: false,
        };
        for (field, ok) in [
            ("apiVersion", !obj.api_version().is_empty()),
            ("kind", !obj.kind().is_empty()),
            ("metadata.name", !obj.name().is_empty()),
        ] {
            if !ok {
                return Err(doc.error(field, "is required").into());
            }
        }
        out.push(obj);
    }
    Ok(out)
}

fn check_objects(objects: &[Object]) -> Result<(), RenderError> {
    let mut seen: HashMap<ObjectId, &Object> = HashMap::new();
    for o in objects {
        if let Some(first) = seen.insert(o.id(), o) {
            return Err(RenderError::Duplicate {
                id: o.describe(),
                first: format!("{} document {}", first.source, first.document),
                second: format!("{} document {}", o.source, o.document),
            });
        }
    }
    Ok(())
}

async fn kustomize(
    dir: &Path,
    shown: &str,
    remote_bases: bool,
    timeout: Duration,
) -> Result<Vec<Object>, RenderError> {
    let sandbox::Kustomize { mut cmd, private } = sandbox::kustomize(dir, remote_bases)?;
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().map_err(|e| RenderError::Io {
        file: shown.to_owned(),
        error: e,
    })?;
    let mut group = sandbox::GroupGuard(child.id());
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| RenderError::KustomizeTimeout(shown.to_owned()))?
        .map_err(|e| RenderError::Io {
            file: shown.to_owned(),
            error: e,
        })?;
    // Reaped: its process group is gone (or, with remote bases, goes when git does).
    if output.status.success() {
        group.0 = None;
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let root = dir.to_string_lossy();
        let stderr: String = stderr
            .replace(root.as_ref(), ".")
            .replace(private.path().to_string_lossy().as_ref(), "<private>")
            .chars()
            .take(2000)
            .collect();
        return Err(RenderError::Kustomize {
            dir: shown.to_owned(),
            stderr: stderr.trim().to_owned(),
        });
    }
    let text = String::from_utf8(output.stdout).map_err(|_| RenderError::Kustomize {
        dir: shown.to_owned(),
        stderr: "output is not UTF-8".into(),
    })?;
    let text = zeroize::Zeroizing::new(text);
    parse(&format!("kustomize build {shown}"), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_name_the_file() {
        let e = parse(
            "a/b.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            e,
            "a/b.yaml: document 1, field `metadata.name`: is required"
        );
    }

    /// Past the pre-scan (called directly here), kustomize still reaches nothing: a remote
    /// base is neither fetched over http (every proxy is a closed port) nor cloned (no git on
    /// its PATH), and a file outside its root is refused by the load restrictor.
    #[tokio::test]
    async fn kustomize_itself_runs_without_network_git_or_outside_files() {
        let d = tempfile::tempdir().unwrap();
        let write = |f: &str, text: &str| {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "remote/kustomization.yaml",
            "resources:\n- https://example.invalid/o/r//x?ref=main\n",
        );
        write("secret.txt", "CANARY-sandbox");
        write(
            "outside/kustomization.yaml",
            "configMapGenerator:\n- name: x\n  files: [../secret.txt]\n",
        );
        let timeout = Duration::from_secs(60);
        let e = kustomize(&d.path().join("remote"), "remote", false, timeout)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("127.0.0.1:1") && e.contains("no 'git' program"),
            "{e}"
        );
        let e = kustomize(&d.path().join("outside"), "outside", false, timeout)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not in or below"), "{e}");
        assert!(!e.contains("CANARY-sandbox"), "{e}");
    }

    #[tokio::test]
    async fn plain_folder_and_duplicates() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("apps/.hidden")).unwrap();
        std::fs::write(d.path().join("apps/a.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: x}\n").unwrap();
        std::fs::write(d.path().join("apps/.hidden/c.yaml"), "nope: [").unwrap();
        std::fs::write(d.path().join("apps/readme.md"), "nope").unwrap();
        let objs = render(
            d.path(),
            "apps",
            RemoteBases::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(objs.len(), 2);
        std::fs::write(
            d.path().join("apps/z.json"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"x"}}"#,
        )
        .unwrap();
        let e = render(
            d.path(),
            "apps",
            RemoteBases::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate object ConfigMap x/a: in apps/a.yaml document 1 and in apps/z.json document 1"), "{e}");
        let e = render(
            d.path(),
            "../",
            RemoteBases::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RenderError::PathEscapes(_)), "{e}");
        let e = render(
            d.path(),
            "nope",
            RemoteBases::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RenderError::PathNotFound(_)), "{e}");
    }
}
