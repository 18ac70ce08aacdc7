//! Kustomize stays inside the source's checkout: before `kustomize build` runs, every
//! kustomization reachable from the rendered folder is read, and every field that names a
//! file, a folder or a URL is resolved lexically against the folder of its kustomization.
//!
//! kustomize's own load restrictor (`LoadRestrictionsRootOnly`) keeps *files* inside the folder
//! of the kustomization that names them, but every base, resource folder, component or
//! generator folder becomes a root of its own, wherever it is: `resources: [../../other]`
//! reaches another source's cached clone beside this one, and a URL is fetched from the
//! network. So a path that leaves the checkout, an absolute path, and a remote reference
//! (unless the admin and the GitSync allow remote bases) refuse the whole render, naming the
//! kustomization file, the field and the rule. The checkout holds no symbolic links (git
//! writes them as files), so the lexical path is the real one.
//!
//! What is read: `resources`, `bases`, `components`, `crds`, `configurations`,
//! `patchesStrategicMerge` (entries that are paths), `patches[].path`,
//! `patchesJson6902[].path`, `replacements[].path`, `openapi.path`, the `files`, `envs` and
//! `env` of `configMapGenerator` and `secretGenerator`, and `generators`, `transformers` and
//! `validators` (folders are followed, plugin configuration files and inline configurations
//! are read for their `path`, `paths`, `files`, `envs` and `env`). `helmCharts`,
//! `helmChartInflationGenerator` and `helmGlobals` are refused: the agent never runs helm.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use serde_yaml::Value;

use super::{KUSTOMIZATION_FILES, RemoteBases, RenderError};

/// Most kustomizations followed from one rendered folder.
const MAX_KUSTOMIZATIONS: usize = 1000;
/// Largest kustomization or plugin configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

const LEAVES: &str =
    "leaves the source's checkout (kustomize may read only the repository's own files)";
const ABSOLUTE: &str =
    "absolute path (kustomize may read only the repository's own files, named relatively)";
const FILE_URL: &str = "file:// URL (it reads the agent's own file system)";
const HELM: &str = "Helm charts are not rendered (the agent never runs helm)";

/// Checks every kustomization reachable from `start` (a folder with a kustomization, below
/// `root`, both canonical).
pub(super) fn check(root: &Path, start: &Path, remote: RemoteBases) -> Result<(), RenderError> {
    let mut scan = Scan {
        root,
        remote,
        queue: VecDeque::from([start.to_path_buf()]),
        seen: BTreeSet::new(),
    };
    while let Some(dir) = scan.queue.pop_front() {
        if !scan.seen.insert(dir.clone()) {
            continue;
        }
        if scan.seen.len() > MAX_KUSTOMIZATIONS {
            return Err(RenderError::Invalid {
                file: scan.rel(&dir),
                document: 0,
                problem: format!("more than {MAX_KUSTOMIZATIONS} kustomizations to follow"),
            });
        }
        let Some(file) = KUSTOMIZATION_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.is_file())
        else {
            // Not a kustomization: kustomize says so itself.
            continue;
        };
        let Some(doc) = scan.read(&file)? else {
            continue;
        };
        scan.kustomization(&dir, &file, &doc)?;
    }
    Ok(())
}

struct Scan<'a> {
    root: &'a Path,
    remote: RemoteBases,
    queue: VecDeque<PathBuf>,
    seen: BTreeSet<PathBuf>,
}

/// What a path field names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// A file or a folder with a kustomization (resources, bases, components).
    Target,
    /// A file or a folder, or inline YAML (generators, transformers, validators).
    Plugin,
    /// A file (patches, generator files, crds, ...).
    File,
}

impl Scan<'_> {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }

    /// The first YAML document of a kustomization or plugin configuration file; `None` when
    /// it is not a mapping (kustomize reports that itself).
    fn read(&self, file: &Path) -> Result<Option<Value>, RenderError> {
        use std::io::Read as _;
        let name = self.rel(file);
        let io = |error| RenderError::Io {
            file: name.clone(),
            error,
        };
        let f = std::fs::File::open(file).map_err(io)?;
        if f.metadata().map_err(io)?.len() > MAX_CONFIG_BYTES {
            return Err(RenderError::Invalid {
                file: name,
                document: 0,
                problem: format!("larger than {} KiB", MAX_CONFIG_BYTES >> 10),
            });
        }
        let mut text = String::new();
        f.take(MAX_CONFIG_BYTES)
            .read_to_string(&mut text)
            .map_err(io)?;
        let docs = gitseal::manifest::parse_documents(&name, &text)?;
        Ok(docs
            .into_iter()
            .next()
            .map(|d| d.value.clone())
            .filter(Value::is_mapping))
    }

    fn kustomization(&mut self, dir: &Path, file: &Path, doc: &Value) -> Result<(), RenderError> {
        let at = Location {
            file: self.rel(file),
            dir: dir.to_path_buf(),
        };
        for key in ["helmCharts", "helmChartInflationGenerator", "helmGlobals"] {
            if doc.get(key).is_some() {
                return Err(at.refuse(key, "", HELM));
            }
        }
        for (key, names) in [
            ("resources", Names::Target),
            ("bases", Names::Target),
            ("components", Names::Target),
            ("crds", Names::File),
            ("configurations", Names::File),
            ("generators", Names::Plugin),
            ("transformers", Names::Plugin),
            ("validators", Names::Plugin),
        ] {
            for (i, v) in strings(doc.get(key)) {
                self.path(&at, &format!("{key}[{i}]"), v, names)?;
            }
        }
        for (i, v) in strings(doc.get("patchesStrategicMerge")) {
            // An entry is a file, or an inline patch.
            if !v.contains('\n') && !v.trim_start().starts_with('{') {
                self.path(&at, &format!("patchesStrategicMerge[{i}]"), v, Names::File)?;
            }
        }
        for key in ["patches", "patchesJson6902", "replacements"] {
            for (i, item) in items(doc.get(key)) {
                if let Some(v) = item.get("path").and_then(Value::as_str) {
                    self.path(&at, &format!("{key}[{i}].path"), v, Names::File)?;
                }
            }
        }
        if let Some(v) = doc
            .get("openapi")
            .and_then(|o| o.get("path"))
            .and_then(Value::as_str)
        {
            self.path(&at, "openapi.path", v, Names::File)?;
        }
        for key in ["configMapGenerator", "secretGenerator"] {
            for (i, item) in items(doc.get(key)) {
                self.generator_files(&at, &format!("{key}[{i}]"), item)?;
            }
        }
        Ok(())
    }

    /// `files` (`[key=]path`), `envs` and `env` of a generator or plugin configuration.
    fn generator_files(
        &mut self,
        at: &Location,
        field: &str,
        item: &Value,
    ) -> Result<(), RenderError> {
        for (j, v) in strings(item.get("files")) {
            let path = v.split_once('=').map_or(v, |(_, p)| p);
            self.path(at, &format!("{field}.files[{j}]"), path, Names::File)?;
        }
        for (j, v) in strings(item.get("envs")) {
            self.path(at, &format!("{field}.envs[{j}]"), v, Names::File)?;
        }
        if let Some(v) = item.get("env").and_then(Value::as_str) {
            self.path(at, &format!("{field}.env"), v, Names::File)?;
        }
        Ok(())
    }

    /// A plugin configuration (a builtin generator or transformer, a file or inline): its
    /// path fields, wherever they are.
    fn plugin_config(
        &mut self,
        at: &Location,
        field: &str,
        config: &Value,
    ) -> Result<(), RenderError> {
        if let Some(kind) = config.get("kind").and_then(Value::as_str)
            && kind.starts_with("HelmChart")
        {
            return Err(at.refuse(&format!("{field}.kind"), kind, HELM));
        }
        match config {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let Some(k) = k.as_str() else { continue };
                    let here = format!("{field}.{k}");
                    match (k, v) {
                        ("path", Value::String(p)) => self.path(at, &here, p, Names::File)?,
                        ("paths", _) => {
                            for (j, p) in strings(Some(v)) {
                                self.path(at, &format!("{here}[{j}]"), p, Names::File)?;
                            }
                        }
                        ("files" | "envs" | "env", _) => {}
                        _ => self.plugin_config(at, &here, v)?,
                    }
                }
                self.generator_files(at, field, config)
            }
            Value::Sequence(s) => {
                for (j, v) in s.iter().enumerate() {
                    self.plugin_config(at, &format!("{field}[{j}]"), v)?;
                }
                Ok(())
            }
            Value::Tagged(t) => self.plugin_config(at, field, &t.value),
            _ => Ok(()),
        }
    }

    /// One path field: refused when remote (unless allowed), absolute or leading out of the
    /// checkout; a folder it names is followed, a plugin configuration file read.
    fn path(
        &mut self,
        at: &Location,
        field: &str,
        value: &str,
        names: Names,
    ) -> Result<(), RenderError> {
        if names == Names::Plugin && value.contains('\n') {
            // Inline plugin configuration.
            let docs = gitseal::manifest::parse_documents(&at.file, value)?;
            for d in docs {
                self.plugin_config(at, field, &d.value)?;
            }
            return Ok(());
        }
        let value = value.trim();
        if let Some(rule) = self.remote_rule(value) {
            return match rule {
                None => Ok(()),
                Some(rule) => Err(at.refuse(field, value, &rule)),
            };
        }
        if value.starts_with('/') {
            return Err(at.refuse(field, value, ABSOLUTE));
        }
        let Some(target) = lexical_join(&at.dir, value).filter(|t| t.starts_with(self.root)) else {
            return Err(at.refuse(field, value, LEAVES));
        };
        match names {
            _ if target.is_dir() && names != Names::File => self.queue.push_back(target),
            Names::Plugin if target.is_file() => {
                if let Some(config) = self.read(&target)? {
                    // kustomize resolves a configuration's paths from its kustomization.
                    let file_at = Location {
                        file: self.rel(&target),
                        dir: at.dir.clone(),
                    };
                    self.plugin_config(&file_at, "", &config)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `None` for a local path; `Some(None)` for a remote reference that is allowed;
    /// `Some(Some(rule))` for one that is refused.
    fn remote_rule(&self, value: &str) -> Option<Option<String>> {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("file:") {
            return Some(Some(FILE_URL.into()));
        }
        if !looks_remote(&lower) {
            return None;
        }
        if self.remote.allowed() {
            return Some(None);
        }
        Some(Some(self.remote.refusal()))
    }
}

/// Where a field was found: the kustomization (or configuration) file shown in messages, and
/// the folder its paths are relative to.
struct Location {
    file: String,
    dir: PathBuf,
}

impl Location {
    fn refuse(&self, field: &str, value: &str, rule: &str) -> RenderError {
        let field = field.trim_start_matches('.');
        RenderError::Refused {
            file: self.file.clone(),
            field: if field.is_empty() {
                "(inline)".into()
            } else {
                field.to_owned()
            },
            value: if value.is_empty() {
                String::new()
            } else {
                format!(" `{}`", shown(value))
            },
            rule: rule.to_owned(),
        }
    }
}

/// The repository's text, made safe for a message: control characters escaped, bounded.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_debug).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The string entries of a list field, with their index (other entries are kustomize's to
/// refuse).
fn strings(v: Option<&Value>) -> impl Iterator<Item = (usize, &str)> {
    v.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_str().map(|s| (i, s)))
}

fn items(v: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    v.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
}

/// Whether kustomize would take `s` (lowercased) for a remote reference rather than a local
/// path: a URL, a git address (`git@host:`, `git::`, `gh:`), a hosting site's name, a
/// go-getter query (`?ref=`), or kustomize's `//` between repository and folder.
pub(super) fn looks_remote(s: &str) -> bool {
    if s.contains("://") || s.starts_with("git::") || s.starts_with("gh:") {
        return true;
    }
    // scp-like `user@host:path`.
    if let Some(colon) = s.find(':')
        && s[..colon].contains('@')
        && !s[..colon].contains('/')
    {
        return true;
    }
    if ["github.com", "gitlab.com", "bitbucket.org", "dev.azure.com"]
        .iter()
        .any(|h| s.starts_with(h))
    {
        return true;
    }
    if ["?ref=", "?version=", "?submodules=", "?timeout=", "&ref="]
        .iter()
        .any(|q| s.contains(q))
    {
        return true;
    }
    s.contains("//")
}

/// `base` joined with the relative path `rel`, `.` and `..` resolved without touching the
/// file system; `None` when `..` climbs above the file system root.
fn lexical_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("checkout");
        for (f, text) in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        std::fs::create_dir_all(&root).expect("mkdir");
        let root = root.canonicalize().expect("canonical");
        (d, root)
    }

    fn run(files: &[(&str, &str)], remote: RemoteBases) -> Result<(), String> {
        let (_d, root) = tree(files);
        check(&root, &root.join("app"), remote).map_err(|e| e.to_string())
    }

    const REFUSED: RemoteBases = RemoteBases {
        agent: false,
        gitsync: Some(false),
    };

    #[test]
    fn paths_inside_the_checkout_pass() {
        let ok = run(
            &[
                (
                    "app/kustomization.yaml",
                    "resources: [cm.yaml, ../base, ./sub/../cm.yaml]\ncomponents: [../comp]\n\
                     patches: [{path: p.yaml}, {patch: 'x: y'}]\n\
                     patchesStrategicMerge: [p.yaml, \"apiVersion: v1\\nkind: X\\n\"]\n\
                     configMapGenerator: [{name: c, files: [k=cm.yaml, cm.yaml], envs: [e.env]}]\n\
                     transformers: [t.yaml, \"apiVersion: builtin\\nkind: PatchTransformer\\nmetadata: {name: t}\\npath: p.yaml\\n\"]\n\
                     commonAnnotations: {docs: 'https://example.com/x?ref=main'}\n",
                ),
                ("base/kustomization.yaml", "resources: [d.yaml]\n"),
                ("comp/kustomization.yaml", "kind: Component\n"),
                (
                    "app/t.yaml",
                    "apiVersion: builtin\nkind: LabelTransformer\nmetadata: {name: l}\n",
                ),
            ],
            REFUSED,
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn escapes_absolute_paths_and_urls_are_refused_with_file_and_field() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("app/kustomization.yaml", "resources: [ok.yaml, ../../x]\n")],
                "app/kustomization.yaml: resources[1] `../../x`: leaves the source's checkout",
            ),
            (
                &[
                    ("app/kustomization.yaml", "bases: [../base]\n"),
                    (
                        "base/kustomization.yaml",
                        "resources: [../../elsewhere/app]\n",
                    ),
                ],
                "base/kustomization.yaml: resources[0] `../../elsewhere/app`: leaves",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "patches: [{path: /etc/hostname}]\n",
                )],
                "app/kustomization.yaml: patches[0].path `/etc/hostname`: absolute path",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "secretGenerator: [{name: s, files: [key=../../../etc/shadow]}]\n",
                )],
                "secretGenerator[0].files[0] `../../../etc/shadow`: leaves",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "configMapGenerator: [{name: c, env: ../../e}]\n",
                )],
                "configMapGenerator[0].env `../../e`: leaves",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "transformers: [\"apiVersion: builtin\\nkind: PatchTransformer\\nmetadata: {name: t}\\npath: ../../x.yaml\\n\"]\n",
                )],
                "transformers[0].path `../../x.yaml`: leaves",
            ),
            (
                &[
                    ("app/kustomization.yaml", "generators: [gen.yaml]\n"),
                    (
                        "app/gen.yaml",
                        "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: g}\nfiles: [../../../x]\n",
                    ),
                ],
                "app/gen.yaml: files[0] `../../../x`: leaves",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "resources: [https://github.com/o/r//app?ref=v1]\n",
                )],
                "resources[0] `https://github.com/o/r//app?ref=v1`: remote resource refused",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "resources: [github.com/o/r/app?ref=v1]\n",
                )],
                "remote resource refused",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "components: [git@github.com:o/r.git//c]\n",
                )],
                "components[0]",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "resources: [file:///srv/git/other]\n",
                )],
                "file:// URL",
            ),
            (
                &[(
                    "app/kustomization.yaml",
                    "helmCharts: [{name: x, repo: https://h}]\n",
                )],
                "app/kustomization.yaml: helmCharts: Helm charts are not rendered",
            ),
            (
                &[("app/kustomization.yaml", "crds: [../../crd.yaml]\n")],
                "crds[0]",
            ),
            (
                &[("app/kustomization.yaml", "openapi: {path: /schema.json}\n")],
                "openapi.path",
            ),
        ];
        for (files, want) in cases {
            let e = run(files, REFUSED).expect_err(want);
            assert!(e.contains(want), "{e}\n  wants: {want}");
        }
    }

    #[test]
    fn remote_bases_need_the_agent_and_the_gitsync() {
        let files: &[(&str, &str)] = &[(
            "app/kustomization.yaml",
            "resources: [https://h/o/r//app?ref=v1]\n",
        )];
        let refusal = |agent, gitsync| run(files, RemoteBases { agent, gitsync }).err();
        assert!(refusal(false, Some(false)).is_some_and(
            |e| e.contains("spec.allowRemoteBases") && e.contains("--allow-remote-bases")
        ));
        assert!(refusal(false, Some(true)).is_some_and(|e| e.contains("this agent")));
        assert!(
            refusal(true, Some(false)).is_some_and(|e| e.contains("spec.allowRemoteBases: true"))
        );
        assert!(refusal(false, None).is_some_and(|e| e.contains("sync")));
        assert_eq!(refusal(true, Some(true)), None);
        assert_eq!(refusal(true, None), None);
        // Allowed remote bases do not open file:// or local escapes.
        let all = RemoteBases {
            agent: true,
            gitsync: Some(true),
        };
        assert!(
            run(
                &[("app/kustomization.yaml", "resources: [file:///x]\n")],
                all
            )
            .is_err()
        );
        assert!(run(&[("app/kustomization.yaml", "resources: [../../x]\n")], all).is_err());
    }

    #[test]
    fn cycles_end() {
        let ok = run(
            &[
                ("app/kustomization.yaml", "resources: [../b]\n"),
                ("b/kustomization.yaml", "resources: [../app]\n"),
            ],
            REFUSED,
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn remote_looking_references() {
        for s in [
            "https://github.com/o/r",
            "http://127.0.0.1:1/r//x?ref=main",
            "ssh://git@h/r",
            "git@github.com:o/r",
            "git::https://h/r",
            "gh:o/r",
            "github.com/o/r/x",
            "x?ref=v1",
            "h.example/r//x",
        ] {
            assert!(looks_remote(s), "{s}");
        }
        for s in ["base", "../base", "./a/b.yaml", "a@b.yaml", "dir/x:y.yaml"] {
            assert!(!looks_remote(s), "{s}");
        }
    }
}
