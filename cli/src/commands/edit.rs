//! `gitseal edit FILE`: the `sops FILE` habit. The SealedSecrets of FILE are opened with an
//! identity and shown as Secrets in `$VISUAL`/`$EDITOR`; on save, only the keys whose value
//! (or binding) changed are sealed again, and every other ciphertext is kept byte for byte,
//! so the git diff shows exactly what changed.
//!
//! The plaintext lives in one file inside a private directory (0700, file 0600) on tmpfs
//! where there is one (`$XDG_RUNTIME_DIR`, else `/dev/shm`), which is overwritten and
//! removed on every way out: success, refusal, editor failure, and SIGINT/SIGTERM/SIGHUP.
//! A `gitseal edit` killed outright (SIGKILL, a crash, power loss on a disk-backed folder)
//! cannot clean up: its folder is named after its process id, and the next `gitseal edit`
//! of the same user scrubs and removes every such folder whose process is gone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gitseal::manifest::{Document, SealedSecret, Secret, SensitiveValue, parse_documents, render};
use gitseal::sealing::{binding_of, merge, unseal};
use gitseal::{OutputFormat, Scope};
use secrecy::{ExposeSecret, SecretSlice};
use serde_yaml::{Mapping, Value};
use zeroize::Zeroizing;

use crate::args::EditArgs;
use crate::commands::render_file;
use crate::io::{MAX_INPUT_BYTES, emit, read_text, recipients_for, shown};

/// The process was asked to stop (exit 128 + signal, after cleaning up).
#[derive(Debug)]
pub struct Interrupted(pub i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted (signal {}); the file is unchanged and the plaintext copy is removed",
            self.0
        )
    }
}

impl std::error::Error for Interrupted {}

/// The private folder holding the plaintext while the editor runs. Dropping it overwrites
/// every file in it with zeros, then removes the folder (editors leave swap and backup
/// files beside the file they edit: those go too).
struct PrivateDir {
    dir: Option<tempfile::TempDir>,
}

/// The private folders' names: this, the process id, `-`, random characters.
const PRIVATE_PREFIX: &str = "gitseal-edit-";

impl PrivateDir {
    fn new() -> Result<Self> {
        let base = private_base();
        remove_stale(&base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PRIVATE_PREFIX}{}-", std::process::id()))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .with_context(|| format!("cannot create a private folder in {}", shown(&base)))?;
        let mode = fs::metadata(dir.path())?.permissions().mode() & 0o777;
        if mode != 0o700 {
            bail!(
                "the private folder {} has mode {mode:04o}, not 0700; refusing to put plaintext there",
                shown(dir.path())
            );
        }
        Ok(PrivateDir { dir: Some(dir) })
    }

    fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        scrub(dir.path());
        let _ = dir.close();
    }
}

/// Overwrites the regular files below `dir` with zeros (best effort: on tmpfs this is the
/// only copy, and unlinking alone would leave the pages unzeroed).
fn scrub(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            scrub(&e.path());
        } else if ft.is_file()
            && let Ok(meta) = e.metadata()
            && let Ok(mut f) = fs::OpenOptions::new().write(true).open(e.path())
        {
            let zeros = vec![0u8; 64 * 1024];
            let mut left = meta.len();
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                if f.write_all(&zeros[..n]).is_err() {
                    break;
                }
                left -= n as u64;
            }
            let _ = f.sync_all();
        }
    }
}

/// Scrubs and removes the private folders in `base` that a `gitseal edit` of this user left
/// when it was killed: named with a process id that no longer runs, owned by this user, mode
/// 0700. Says so on standard error (paths only). Best effort: what cannot be read is left.
fn remove_stale(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let uid = current_uid();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PRIVATE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // Not a link, ours, private, and its process gone (a reused id keeps it: safe side).
        let ours = fs::symlink_metadata(e.path())
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o777 == 0o700);
        if !ours || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        scrub(&e.path());
        if fs::remove_dir_all(e.path()).is_ok() {
            eprintln!(
                "removed {}: the plaintext copy of a `gitseal edit` that was killed (process {pid})",
                shown(&e.path())
            );
        }
    }
}

/// Where the private folder goes: tmpfs when there is one the user owns.
fn private_base() -> PathBuf {
    let owned_private = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).is_ok_and(|m| {
            m.is_dir() && m.permissions().mode() & 0o077 == 0 && m.uid() == current_uid()
        })
    };
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && owned_private(&run)
    {
        return run;
    }
    let shm = Path::new("/dev/shm");
    if fs::metadata(shm).is_ok_and(|m| m.is_dir()) {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file we just made is us; /proc/self is owned by our uid.
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Signals that stop the edit: SIGINT, SIGTERM, SIGHUP. The number of the last one seen.
fn watch_signals() -> Result<Arc<AtomicUsize>> {
    let seen = Arc::new(AtomicUsize::new(0));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register_usize(sig, Arc::clone(&seen), sig as usize)
            .context("cannot install a signal handler")?;
    }
    Ok(seen)
}

fn interrupted(seen: &AtomicUsize) -> Result<()> {
    match seen.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Interrupted(sig as i32).into()),
    }
}

/// Runs `$VISUAL` / `$EDITOR` (through `sh -c`, so "code --wait" works) on `file` and
/// waits; a stop signal kills the editor.
fn run_editor(file: &Path, seen: &AtomicUsize) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    let mut child: Child = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg("editor")
        .arg(file)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start the editor `{}`",
                gitseal::scope::printable(&editor)
            )
        })?;
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for the editor")? {
            interrupted(seen)?;
            if !status.success() {
                bail!(
                    "the editor `{}` exited with {status}; nothing was changed",
                    gitseal::scope::printable(&editor)
                );
            }
            return Ok(());
        }
        if seen.load(Ordering::SeqCst) != 0 {
            let _ = child.kill();
            let _ = child.wait();
            return interrupted(seen);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Secret as the user edits it: UTF-8 values under `stringData` (readable), anything
/// else base64 under `data`; the scope as its annotation.
fn editable(secret: &Secret, scope: Scope) -> SensitiveValue {
    let mut meta = Mapping::new();
    if let Some(n) = &secret.name {
        meta.insert("name".into(), n.as_str().into());
    }
    if let Some(ns) = &secret.namespace {
        meta.insert("namespace".into(), ns.as_str().into());
    }
    if !secret.labels.is_empty() {
        meta.insert("labels".into(), string_map(&secret.labels));
    }
    let mut ann = secret.annotations.clone();
    ann.insert(Scope::ANNOTATION.to_owned(), scope.to_string());
    meta.insert("annotations".into(), string_map(&ann));
    let mut m = Mapping::new();
    m.insert("apiVersion".into(), "v1".into());
    m.insert("kind".into(), "Secret".into());
    m.insert("metadata".into(), Value::Mapping(meta));
    m.insert(
        "type".into(),
        secret.type_.as_deref().unwrap_or("Opaque").into(),
    );
    if let Some(i) = secret.immutable {
        m.insert("immutable".into(), i.into());
    }
    let (mut text, mut binary) = (Mapping::new(), Mapping::new());
    for (k, v) in &secret.data {
        let bytes = v.expose_secret();
        match std::str::from_utf8(bytes) {
            Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
                text.insert(k.as_str().into(), s.into());
            }
            _ => {
                use base64::Engine;
                binary.insert(
                    k.as_str().into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(bytes)
                        .into(),
                );
            }
        }
    }
    if !binary.is_empty() {
        m.insert("data".into(), Value::Mapping(binary));
    }
    m.insert("stringData".into(), Value::Mapping(text));
    SensitiveValue(Value::Mapping(m))
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Mapping(
        m.iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
            .collect(),
    )
}

const HEADER: &str = "# gitseal edit: change, add or remove values, then save and quit.\n\
# Unchanged values keep their ciphertexts; an empty or unchanged file changes nothing.\n\
# This plaintext copy is deleted when the editor exits.\n";

/// What changed in one SealedSecret.
#[derive(Default)]
struct Changes {
    resealed: Vec<String>,
    removed: Vec<String>,
    metadata: bool,
}

pub fn run(args: EditArgs) -> Result<()> {
    let seen = watch_signals()?;
    let ring = gitseal::read_identity_files(&args.identities)?;
    let file = &args.file;
    let name = shown(file);
    let text = read_text(file)?;
    let mut docs = parse_documents(&name, &text)?;
    let positions: Vec<usize> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_sealed_secret())
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        bail!("{name}: holds no gitseal SealedSecret to edit");
    }
    let mut sealed = Vec::with_capacity(positions.len());
    let mut opened = Vec::with_capacity(positions.len());
    for &p in &positions {
        let s = SealedSecret::from_document(&docs[p])?;
        let secret = unseal(&s, &ring, None).map_err(|e| {
            docs[p].error(format!("spec.encryptedData.{}", e.key), e.error.to_string())
        })?;
        opened.push(secret);
        sealed.push(s);
    }
    // Recipients first: a missing rule should stop us before any plaintext is written.
    let recipients = recipients_for(&args.recipients, Some(file))?;

    let shown_values: Vec<SensitiveValue> = opened
        .iter()
        .zip(&sealed)
        .map(|(secret, s)| editable(secret, s.scope))
        .collect();
    let rendered = Zeroizing::new(render(
        shown_values.iter().map(|v| &v.0),
        OutputFormat::Yaml,
    ));
    drop(shown_values);
    let mut original = Zeroizing::new(String::with_capacity(HEADER.len() + rendered.len()));
    original.push_str(HEADER);
    original.push_str(&rendered);
    drop(rendered);

    let stem = file
        .file_stem()
        .map(|s| gitseal::scope::printable(&s.to_string_lossy()))
        .unwrap_or_else(|| "secret".to_owned());
    let private = PrivateDir::new()?;
    let plain_path = private.path().join(format!("{stem}.secret.yaml"));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(&plain_path)
            .context("cannot create the plaintext copy in the private folder")?;
        f.write_all(original.as_bytes())
            .context("cannot write the plaintext copy")?;
    }
    run_editor(&plain_path, &seen)?;
    let edited = read_edited(&plain_path)?;
    drop(private);
    interrupted(&seen)?;

    if edited.as_str() == original.as_str() || edited.trim().is_empty() {
        eprintln!("{name}: no changes");
        return Ok(());
    }
    let edited_name = format!("{name} (edited)");
    let new_docs =
        parse_documents(&edited_name, &edited).map_err(|e| anyhow!("{e}\n{name} is unchanged"))?;
    if new_docs.len() != sealed.len() {
        bail!(
            "{edited_name}: holds {} document(s) but {name} has {} SealedSecret(s); edit values in place, do not add or remove Secrets. {name} is unchanged",
            new_docs.len(),
            sealed.len()
        );
    }
    let mut report = Vec::new();
    for ((doc, old), (secret_before, &pos)) in new_docs
        .iter()
        .zip(sealed.iter_mut())
        .zip(opened.iter().zip(&positions))
    {
        let changes = apply_edit(doc, old, secret_before, &recipients)
            .map_err(|e| anyhow!("{e:#}\n{name} is unchanged"))?;
        if !changes.resealed.is_empty() || !changes.removed.is_empty() || changes.metadata {
            let mut parts = Vec::new();
            if !changes.resealed.is_empty() {
                parts.push(format!("resealed {}", changes.resealed.join(", ")));
            }
            if !changes.removed.is_empty() {
                parts.push(format!("removed {}", changes.removed.join(", ")));
            }
            if changes.metadata {
                parts.push("metadata changed".to_owned());
            }
            report.push(format!("{} {}", shown_name(old), parts.join("; ")));
        }
        docs[pos].value = old.to_value();
    }
    interrupted(&seen)?;
    if report.is_empty() {
        eprintln!("{name}: no changes");
        return Ok(());
    }
    emit(
        Some(file),
        render_file(file, docs.iter().map(|d| &d.value)).as_bytes(),
    )?;
    for line in report {
        eprintln!("{name}: {line}");
    }
    Ok(())
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

fn read_edited(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(fs::read(path).context(
        "the plaintext copy is gone (did the editor save elsewhere?); nothing was changed",
    )?);
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("the edited file is larger than 8 MiB; nothing was changed");
    }
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Zeroizing::new(s.to_owned())),
        Err(_) => bail!("the edited file is not UTF-8 text; nothing was changed"),
    }
}

/// Applies one edited Secret to its SealedSecret: metadata and template from the Secret,
/// ciphertexts kept for keys whose value and binding did not change, new ciphertexts for
/// the others, removed keys dropped.
fn apply_edit(
    doc: &Document,
    sealed: &mut SealedSecret,
    before: &Secret,
    recipients: &[gitseal::PublicKey],
) -> Result<Changes> {
    let mut secret = Secret::from_document(doc)?;
    let scope = match secret.annotations.remove(Scope::ANNOTATION) {
        None => Scope::Strict,
        Some(s) => s.parse().map_err(|e: gitseal::scope::UnknownScope| {
            doc.error(
                format!("metadata.annotations.{}", Scope::ANNOTATION),
                e.to_string(),
            )
        })?,
    };
    let name = secret
        .name
        .clone()
        .ok_or_else(|| doc.error("metadata.name", "is required"))?;
    if scope != Scope::Cluster && secret.namespace.is_none() {
        return Err(doc
            .error(
                "metadata.namespace",
                format!("is required for scope {scope}"),
            )
            .into());
    }
    if secret.data.is_empty() {
        return Err(doc
            .error(
                "",
                "has no values left; a SealedSecret needs at least one (delete the file instead)",
            )
            .into());
    }
    let mut next = SealedSecret {
        name,
        namespace: secret.namespace.clone(),
        scope,
        labels: sealed.labels.clone(),
        annotations: sealed.annotations.clone(),
        encrypted_data: BTreeMap::new(),
        template: gitseal::manifest::Template {
            type_: secret.type_.clone(),
            immutable: secret.immutable,
            labels: std::mem::take(&mut secret.labels),
            annotations: std::mem::take(&mut secret.annotations),
        },
    };
    let mut changes = Changes {
        metadata: next.name != sealed.name
            || next.namespace != sealed.namespace
            || next.scope != sealed.scope
            || next.template != sealed.template,
        ..Default::default()
    };
    let mut to_seal: BTreeMap<String, SecretSlice<u8>> = BTreeMap::new();
    for (key, value) in std::mem::take(&mut secret.data) {
        let same_binding = binding_of(&next, &key).ok() == binding_of(sealed, &key).ok();
        let same_value = before
            .data
            .get(&key)
            .is_some_and(|old| old.expose_secret() == value.expose_secret());
        match sealed.encrypted_data.get(&key) {
            Some(ct) if same_binding && same_value => {
                next.encrypted_data.insert(key, ct.clone());
            }
            _ => {
                changes.resealed.push(key.clone());
                to_seal.insert(key, value);
            }
        }
    }
    changes.removed = sealed
        .encrypted_data
        .keys()
        .filter(|k| !next.encrypted_data.contains_key(*k) && !to_seal.contains_key(*k))
        .cloned()
        .collect();
    merge(&mut next, &to_seal, recipients).map_err(|e| doc.error(e.field, e.problem))?;
    *sealed = next;
    Ok(changes)
}

fn shown_name(s: &SealedSecret) -> String {
    match &s.namespace {
        Some(ns) => format!("{ns}/{}:", s.name),
        None => format!("{}:", s.name),
    }
}
