//! Rendering a folder of the checkout into objects: Kustomize when the folder has a
//! kustomization, else every `*.yaml|*.yml|*.json` below it (multi-document).
//!
//!
//! Rendering reads only the source's own checkout: every kustomization reachable from the
//! folder is checked before kustomize runs ([`confine`]: nothing outside the checkout, no
//! remote base unless [`RemoteBases`] allows it), and kustomize runs sandboxed ([`sandbox`]).
//! Plain files are read from the folder itself, never through a symbolic link (git checks
//! links out as files holding the link text).
//!
//! A repository is written by whoever may push to it, so a render is bounded: every file is
//! pre-scanned against the [`ManifestLimits`] (bytes, documents, nesting, nodes with aliases
//! expanded) before it is parsed, the whole pass against its totals ([`PassBudget`]), and
//! `kustomize build` output is read up to what is left of the bytes per pass. Reading and
//! parsing run on tokio's blocking pool and everything under the pass timeout, so a hostile
//! source never holds up the runtime that answers `/healthz` and the other sources.

mod confine;
mod sandbox;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gitseal::ManifestError;
use gitseal::manifest::{ManifestLimits, PassBudget};
use tokio::io::AsyncReadExt;
use zeroize::{Zeroize, Zeroizing};

use super::object::{Object, ObjectId};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// Most of kustomize's standard error kept for the message (the rest is read and dropped).
const MAX_STDERR_BYTES: usize = 64 * 1024;

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
    #[error("rendering {path} took longer than the timeout of {after:?}")]
    Timeout { path: String, after: Duration },
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
            RenderError::Timeout { .. } => "render_timeout",
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

/// Renders `path` (relative to the checkout `root`) within `limits` and `timeout`; kustomize
/// may fetch remote bases only as `remote` allows.
pub async fn render(
    root: &Path,
    path: &str,
    remote: RemoteBases,
    timeout: Duration,
    limits: &ManifestLimits,
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
    let timed_out = || RenderError::Timeout {
        path: shown.to_owned(),
        after: timeout,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut budget = PassBudget::new(*limits);
    if has_kustomization(&dir) {
        let objects = kustomize_dir(&root, &dir, remote, deadline, &mut budget)
            .await
            .map_err(|e| e.unwrap_or_else(timed_out))?;
        return checked(objects, deadline)
            .await
            .map_err(|e| e.unwrap_or_else(timed_out));
    }
    // A plain folder. Subfolders with a kustomization are built with Kustomize (Flux's
    // bootstrap layout: `clusters/prod/{flux-system,infrastructure,apps}`); every other
    // manifest file is read as it is.
    let entries = {
        let dir = dir.clone();
        tokio::time::timeout_at(deadline, blocking(move || entries(&dir)))
            .await
            .map_err(|_| timed_out())??
    };
    let mut objects = Vec::new();
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Entry::File(f) => files.push(f),
            Entry::Kustomize(sub) => {
                // The files before it first, so objects keep path order.
                let before = std::mem::take(&mut files);
                let step = plain(&root, before, &mut budget, deadline).await;
                objects.extend(step.map_err(|e| e.unwrap_or_else(timed_out))?);
                let step = kustomize_dir(&root, &sub, remote, deadline, &mut budget).await;
                objects.extend(step.map_err(|e| e.unwrap_or_else(timed_out))?);
            }
        }
    }
    objects.extend(
        plain(&root, files, &mut budget, deadline)
            .await
            .map_err(|e| e.unwrap_or_else(timed_out))?,
    );
    checked(objects, deadline)
        .await
        .map_err(|e| e.unwrap_or_else(timed_out))
}

/// An error of a render step, or `None`: the step ran past the render's deadline.
type Step<T> = Result<T, Option<RenderError>>;

fn has_kustomization(dir: &Path) -> bool {
    dir.is_dir() && KUSTOMIZATION_FILES.iter().any(|f| dir.join(f).is_file())
}

/// `kustomize build` of `dir` (checked by [`confine`] first), parsed within `budget`.
async fn kustomize_dir(
    root: &Path,
    dir: &Path,
    remote: RemoteBases,
    deadline: tokio::time::Instant,
    budget: &mut PassBudget,
) -> Step<Vec<Object>> {
    let rel_dir = relative(root, dir);
    let confined = {
        let (root, dir) = (root.to_owned(), dir.to_owned());
        blocking(move || confine::check(&root, &dir, remote))
    };
    tokio::time::timeout_at(deadline, confined)
        .await
        .map_err(|_| None)??;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let max_bytes = budget.limits().pass_bytes.saturating_sub(budget.bytes());
    let text = kustomize(dir, &rel_dir, remote.allowed(), left, max_bytes).await?;
    let source = format!("kustomize build {rel_dir}");
    let mut b = budget.clone();
    let parse = blocking(move || {
        let docs = b.parse_stream(&source, &text)?;
        Ok((objects(&docs)?, b))
    });
    let (objects, b) = tokio::time::timeout_at(deadline, parse)
        .await
        .map_err(|_| None)??;
    *budget = b;
    Ok(objects)
}

/// Manifest files read and parsed within `budget`, off the runtime; the blocking task
/// cannot be cancelled, so past the deadline it stops before its next file.
async fn plain(
    root: &Path,
    files: Vec<PathBuf>,
    budget: &mut PassBudget,
    deadline: tokio::time::Instant,
) -> Step<Vec<Object>> {
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (stop, root, mut b) = (stop.clone(), root.to_owned(), budget.clone());
        blocking(move || {
            let mut out = Vec::new();
            for file in files {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = relative(&root, &file);
                let text = read_manifest(&file, &name, &b)?;
                let docs = b.parse_file(&name, &text)?;
                out.extend(objects(&docs)?);
            }
            Ok((out, b))
        })
    };
    match tokio::time::timeout_at(deadline, task).await {
        Ok(r) => {
            let (objects, b) = r?;
            *budget = b;
            Ok(objects)
        }
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            Err(None)
        }
    }
}

/// The render's objects, once checked for duplicates.
async fn checked(objects: Vec<Object>, deadline: tokio::time::Instant) -> Step<Vec<Object>> {
    let task = blocking(move || {
        check_objects(&objects)?;
        Ok(objects)
    });
    tokio::time::timeout_at(deadline, task)
        .await
        .map_err(|_| None)?
        .map_err(Some)
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RenderError> + Send + 'static,
) -> Result<T, RenderError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(RenderError::Io {
            file: "render".into(),
            error: std::io::Error::other(format!("render task failed: {e}")),
        })
    })
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// What a plain folder holds: manifest files, and subfolders with a kustomization (not
/// descended into).
#[derive(Debug)]
enum Entry {
    File(PathBuf),
    Kustomize(PathBuf),
}

impl Entry {
    fn path(&self) -> &Path {
        match self {
            Entry::File(p) | Entry::Kustomize(p) => p,
        }
    }
}

/// The entries below `dir` (or `dir` itself, a file), in path order.
fn entries(dir: &Path) -> Result<Vec<Entry>, RenderError> {
    let mut out = Vec::new();
    if dir.is_file() {
        out.push(Entry::File(dir.to_path_buf()));
    } else {
        collect(dir, &mut out)?;
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

/// Reads one manifest file, refusing it before reading when it is over what `budget`
/// allows (and reading no further than that if it grows meanwhile).
fn read_manifest(
    file: &Path,
    name: &str,
    budget: &PassBudget,
) -> Result<Zeroizing<String>, RenderError> {
    let io = |error| RenderError::Io {
        file: name.to_owned(),
        error,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    budget.check_size(name, len)?;
    let cap = budget.limits().file_bytes as u64 + 1;
    let mut text = Zeroizing::new(String::with_capacity(len as usize));
    f.take(cap).read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

fn collect(dir: &Path, out: &mut Vec<Entry>) -> Result<(), RenderError> {
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
        if ft.is_dir() && has_kustomization(&path) {
            out.push(Entry::Kustomize(path));
        } else if ft.is_dir() {
            collect(&path, out)?;
        } else if ft.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        {
            out.push(Entry::File(path));
        }
    }
    Ok(())
}

/// Parses one file or `kustomize build` output into objects, within the default per-file
/// limits.
pub fn parse(source: &str, text: &str) -> Result<Vec<Object>, RenderError> {
    objects(&gitseal::manifest::parse_documents(source, text)?)
}

/// Parsed documents as objects; each must have apiVersion, kind and name.
fn objects(docs: &[gitseal::Document]) -> Result<Vec<Object>, RenderError> {
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let value = serde_json::to_value(&doc.value).map_err(|e| RenderError::Invalid {
            file: doc.source.clone(),
            document: doc.index,
            problem: format!("cannot be represented as JSON: {e}"),
        })?;
        let obj = Object::new(doc.source.clone(), doc.index, value, false);
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

/// Runs `kustomize build` (or `kubectl kustomize`), sandboxed, on `dir` and returns its
/// output, read up to `max_bytes`: past that the process is killed and the render refused.
async fn kustomize(
    dir: &Path,
    shown: &str,
    remote_bases: bool,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Zeroizing<String>, RenderError> {
    let sandbox::Kustomize { mut cmd, private } = sandbox::kustomize(dir, remote_bases)?;
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let io = |error| RenderError::Io {
        file: shown.to_owned(),
        error,
    };
    let mut child = cmd.spawn().map_err(io)?;
    let mut group = sandbox::GroupGuard(child.id());
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io(std::io::Error::other("kustomize's output is not piped")));
    };
    let run = async {
        let mut out = Zeroizing::new(Vec::new());
        // Standard error is drained all along (a child blocked on a full pipe would never
        // finish), keeping its start for the message.
        let read_err = async {
            let mut err = Vec::new();
            (&mut stderr)
                .take(MAX_STDERR_BYTES as u64)
                .read_to_end(&mut err)
                .await?;
            tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await?;
            Ok::<_, std::io::Error>(err)
        };
        tokio::pin!(read_err);
        let mut stdout = stdout.take(max_bytes as u64 + 1);
        let read_out = stdout.read_to_end(&mut out);
        tokio::pin!(read_out);
        let mut err = None;
        let o = loop {
            tokio::select! {
                o = &mut read_out => break o,
                e = &mut read_err, if err.is_none() => err = Some(e),
            }
        };
        o?;
        if out.len() > max_bytes {
            return Ok((None, out, Vec::new()));
        }
        let err = match err {
            Some(e) => e?,
            None => read_err.await?,
        };
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((Some(status), out, err))
    };
    let (status, mut out, err) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| RenderError::KustomizeTimeout(shown.to_owned()))?
        .map_err(io)?;
    let Some(status) = status else {
        // Dropping the child (kill_on_drop) and the guard (its process group) ends it.
        return Err(ManifestError {
            file: format!("kustomize build {shown}"),
            document: 0,
            field: None,
            problem: format!(
                "output is over the limit of {} of manifests per pass (limit: bytes per pass); \
                 the rest was not read",
                size(max_bytes)
            ),
        }
        .into());
    };
    // Reaped: its process group is gone (or, with remote bases, goes when git does).
    if status.success() {
        group.0 = None;
    }
    if !status.success() {
        let stderr = String::from_utf8_lossy(&err);
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
    let text = String::from_utf8(std::mem::take(&mut *out)).map_err(|e| {
        e.into_bytes().zeroize();
        RenderError::Kustomize {
            dir: shown.to_owned(),
            stderr: "output is not UTF-8".into(),
        }
    })?;
    Ok(Zeroizing::new(text))
}

fn size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `render` with no remote bases allowed and the default limits.
    async fn render_local(
        root: &Path,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<Object>, RenderError> {
        render(
            root,
            path,
            RemoteBases::default(),
            timeout,
            &ManifestLimits::DEFAULT,
        )
        .await
    }

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
        let e = kustomize(&d.path().join("remote"), "remote", false, timeout, 1 << 20)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("127.0.0.1:1") && e.contains("no 'git' program"),
            "{e}"
        );
        let e = kustomize(
            &d.path().join("outside"),
            "outside",
            false,
            timeout,
            1 << 20,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not in or below"), "{e}");
        assert!(!e.contains("CANARY-sandbox"), "{e}");
    }

    /// A render that does not finish within its timeout fails naming the path and the
    /// timeout: here 1 ms for 9,000 documents, which take far longer to parse.
    #[tokio::test]
    async fn a_render_past_its_timeout_fails() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("apps")).unwrap();
        std::fs::write(
            d.path().join("apps/a.yaml"),
            gitseal::manifest::hostile::many_documents(9_000),
        )
        .unwrap();
        let e = render(
            d.path(),
            "apps",
            RemoteBases::default(),
            Duration::from_millis(1),
            &ManifestLimits::DEFAULT,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RenderError::Timeout { .. }), "{e}");
        assert_eq!(e.kind(), "render_timeout");
        assert!(
            e.to_string().contains("rendering apps took longer than"),
            "{e}"
        );
    }

    /// Flux's bootstrap layout: a plain folder whose subfolders hold kustomizations. Each such
    /// subfolder is built with Kustomize (not read as files), the rest read as they are, in
    /// path order; a remote base in one of them is refused as at the top.
    #[tokio::test]
    async fn plain_folder_with_kustomization_subfolders() {
        let d = tempfile::tempdir().unwrap();
        let write = |f: &str, text: &str| {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let cm = |name: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: x}}\n")
        };
        write("clusters/dev/a.yaml", &cm("a"));
        write(
            "clusters/dev/infra/kustomization.yaml",
            "namePrefix: infra-\nresources: [cm.yaml, ../../../base]\n",
        );
        write("clusters/dev/infra/cm.yaml", &cm("one"));
        write("base/kustomization.yaml", "resources: [cm.yaml]\n");
        write("base/cm.yaml", &cm("base"));
        // Not a manifest of its own: only kustomize reads it.
        write("clusters/dev/infra/patch.yaml", "op: replace\n");
        write("clusters/dev/m/z.yaml", &cm("z"));
        write(
            "clusters/dev/m/apps/kustomization.yml",
            "resources: [cm.yaml]\n",
        );
        write("clusters/dev/m/apps/cm.yaml", &cm("app"));
        let objs = render_local(d.path(), "clusters/dev", Duration::from_secs(60))
            .await
            .unwrap();
        let got: Vec<(String, String)> = objs
            .iter()
            .map(|o| (o.name().to_owned(), o.source.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "clusters/dev/a.yaml"),
                ("infra-base", "kustomize build clusters/dev/infra"),
                ("infra-one", "kustomize build clusters/dev/infra"),
                ("app", "kustomize build clusters/dev/m/apps"),
                ("z", "clusters/dev/m/z.yaml"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        // The same object from two places is a duplicate, naming both.
        write("clusters/dev/dup.yaml", &cm("infra-one"));
        let e = render_local(d.path(), "clusters/dev", Duration::from_secs(60))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duplicate object ConfigMap x/infra-one: in clusters/dev/dup.yaml document 1 and in kustomize build clusters/dev/infra"),
            "{e}"
        );
        std::fs::remove_file(d.path().join("clusters/dev/dup.yaml")).unwrap();
        write(
            "clusters/dev/remote/kustomization.yaml",
            "resources: [https://example.invalid/x.yaml]\n",
        );
        let e = render_local(d.path(), "clusters/dev", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "render_refused", "{e}");
        assert!(
            e.to_string()
                .contains("clusters/dev/remote/kustomization.yaml"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn plain_folder_and_duplicates() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("apps/.hidden")).unwrap();
        std::fs::write(d.path().join("apps/a.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: x}\n").unwrap();
        std::fs::write(d.path().join("apps/.hidden/c.yaml"), "nope: [").unwrap();
        std::fs::write(d.path().join("apps/readme.md"), "nope").unwrap();
        let objs = render_local(d.path(), "apps", Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(objs.len(), 2);
        std::fs::write(
            d.path().join("apps/z.json"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"x"}}"#,
        )
        .unwrap();
        let e = render_local(d.path(), "apps", Duration::from_secs(30))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate object ConfigMap x/a: in apps/a.yaml document 1 and in apps/z.json document 1"), "{e}");
        let e = render_local(d.path(), "../", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(e, RenderError::PathEscapes(_)), "{e}");
        let e = render_local(d.path(), "nope", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(e, RenderError::PathNotFound(_)), "{e}");
    }
}
