//! Files: bounded reads, recipients and rules discovery, and atomic writes (output appears
//! only after a complete, successful write). Private key files (identities, imported keys)
//! are read by the core (`gitseal::read_identity_files`, `gitseal::read_private_file`),
//! which checks their mode.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gitseal::PublicKey as Pk;
use gitseal::keys::PublicKey;
use gitseal::rules::{RULES_FILE, Rules};
use gitseal::scope::printable;
use zeroize::Zeroizing;

use crate::args::RecipientArgs;

/// Largest manifest or value file read: the core's limit on a manifest file (Kubernetes
/// objects are at most ~1.5 MiB), checked before the file is read.
pub const MAX_INPUT_BYTES: u64 = gitseal::manifest::MAX_FILE_BYTES as u64;

/// How a path is shown in messages.
pub fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        printable(&path.to_string_lossy())
    }
}

/// Reads a whole file (or standard input for `-`), refusing inputs over the limit. The
/// buffer is zeroized when dropped: it may hold plaintext.
pub fn read_input(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    let name = shown(path);
    let too_large = || {
        anyhow::anyhow!(
            "{name}: input is larger than {} MiB (limit: bytes per file); Kubernetes objects are far smaller — is this the right file?",
            MAX_INPUT_BYTES / 1024 / 1024
        )
    };
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
        // A regular file too large is refused before any of it is read.
        if file
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() > MAX_INPUT_BYTES)
        {
            return Err(too_large());
        }
        Box::new(file)
    };
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("{name}: cannot read"))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    Ok(buf)
}

/// Reads input as UTF-8 text.
pub fn read_text(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = read_input(path)?;
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Zeroizing::new(s.to_owned())),
        Err(e) => bail!(
            "{}: not UTF-8 text (invalid byte at offset {}); manifests are YAML or JSON",
            shown(path),
            e.valid_up_to()
        ),
    }
}

/// Parses one recipient and refuses keys whose private half is published (the test keys
/// of docs/FORMAT.md) and the placeholders of keys.example.
pub fn usable(text: &str) -> Result<PublicKey> {
    let key = text.parse::<Pk>()?;
    key.check_usable()?;
    Ok(key)
}

/// Parses `-r` keys and `-R` files. Empty when neither was given.
pub fn explicit_recipients(args: &RecipientArgs) -> Result<Vec<PublicKey>> {
    let mut out = Vec::new();
    for (i, r) in args.recipients.iter().enumerate() {
        out.push(usable(r).with_context(|| format!("--recipient #{}", i + 1))?);
    }
    for file in &args.recipient_files {
        let name = shown(file);
        let text = read_text(file).with_context(|| format!("recipients file {name}"))?;
        let before = out.len();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            out.push(usable(t).with_context(|| format!("recipients file {name}, line {}", n + 1))?);
        }
        if out.len() == before {
            bail!("recipients file {name}: holds no public keys");
        }
    }
    Ok(out)
}

/// The nearest `.gitseal.yaml` at or above `dir`, parsed, with its folder.
pub fn find_rules(dir: &Path) -> Result<Option<(PathBuf, Rules)>> {
    let start = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let abs = absolute(start);
    for d in abs.ancestors() {
        let candidate = d.join(RULES_FILE);
        if candidate.is_file() {
            let name = shown(&candidate);
            let text = read_text(&candidate)?;
            let rules = Rules::parse_with(&name, &text, |rel| read_recipients_file(d, rel))?;
            if let Some(first) = rules.unusable_recipients(&name).into_iter().next() {
                return Err(first.into());
            }
            return Ok(Some((d.to_path_buf(), rules)));
        }
    }
    Ok(None)
}

/// Reads a rule's `recipientsFile`: a relative path inside the rules file's folder (no
/// `..`, no symbolic link out of it), a regular file of at most 64 KiB. The rules file is
/// committed by whoever can push; this keeps it from pointing `check` in CI at other files.
fn read_recipients_file(base: &Path, rel: &str) -> std::result::Result<String, String> {
    use std::path::Component;
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(
            "must be a relative path below the folder of .gitseal.yaml (no `..`)".to_owned(),
        );
    }
    let full = base.join(p);
    let canon = fs::canonicalize(&full).map_err(|e| format!("cannot open: {}", e.kind()))?;
    let base = fs::canonicalize(base).map_err(|e| format!("cannot open: {}", e.kind()))?;
    if !canon.starts_with(&base) {
        return Err("leads outside the folder of .gitseal.yaml (a symbolic link?)".to_owned());
    }
    let meta = fs::metadata(&canon).map_err(|e| format!("cannot open: {}", e.kind()))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if meta.len() > gitseal::rules::MAX_RECIPIENTS_FILE_BYTES as u64 {
        return Err("is larger than 64 KiB; a recipients file holds a few public keys".to_owned());
    }
    let bytes = fs::read(&canon).map_err(|e| format!("cannot read: {}", e.kind()))?;
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())
}

/// A path as the user would type it from the current folder (relative when below it).
pub fn near(path: &Path) -> String {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|c| fs::canonicalize(c).ok());
    match cwd.as_deref().and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => shown(rel),
        _ => shown(path),
    }
}

/// `path` made absolute, its existing part canonical and the part not created yet (a
/// `--for` or `-w` path in a new folder) appended as written.
pub fn absolute(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut tail = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(mut out) = fs::canonicalize(cur) {
            out.extend(tail.iter().rev());
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_owned());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// `path` relative to `base`, `/`-separated; the path is made absolute first.
pub fn relative_to(base: &Path, path: &Path) -> Option<String> {
    let full = absolute(path);
    let rel = full.strip_prefix(base).ok()?;
    Some(
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// Recipients for a file at `target`: `-r`/`-R` when given, else the rules of the nearest
/// `.gitseal.yaml`; escrow keys from that file are added either way.
pub fn recipients_for(args: &RecipientArgs, target: Option<&Path>) -> Result<Vec<PublicKey>> {
    let explicit = explicit_recipients(args)?;
    let dir = target
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let rules = find_rules(&dir)?;
    if !explicit.is_empty() {
        return Ok(match rules {
            Some((_, r)) => r.with_escrow(&explicit),
            None => explicit,
        });
    }
    let Some((base, rules)) = rules else {
        match target {
            Some(t) => bail!(
                "no recipients for {}: pass -r AGE1… (or -R FILE), or add a {RULES_FILE} in its folder or above (see keys.example)",
                shown(t)
            ),
            None => bail!(
                "no recipients: pass -r AGE1… (or -R FILE), or add a {RULES_FILE} to the repository (see keys.example)"
            ),
        }
    };
    let Some(target) = target else {
        bail!(
            "no recipients: {RULES_FILE} rules match on the output path; pass -w OUT, --for PATH (where it will be committed) or -r AGE1…"
        );
    };
    let rel = relative_to(&base, target).unwrap_or_default();
    rules.recipients_for(&rel).with_context(|| {
        format!(
            "no rule in {} matches {}; add one or pass -r AGE1…",
            shown(&base.join(RULES_FILE)),
            printable(&rel)
        )
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder, renamed into
/// place only once everything is written. An existing file keeps its mode; a new one
/// gets 0644 (the content is public ciphertext).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = shown(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    let mut tmp = tempfile::Builder::new()
        .prefix(".gitseal-")
        .tempfile_in(dir)
        .with_context(|| format!("{name}: cannot create a temporary file beside it"))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("{name}: cannot write"))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
        .with_context(|| format!("{name}: cannot set permissions"))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("{name}: cannot write"))?;
    Ok(())
}

/// Writes several files all or nothing, as far as a filesystem allows: every new content
/// goes to a temporary file beside its target first, and only when all of them are
/// written are they renamed into place. A failure before the renames leaves every target
/// untouched (the temporary files are removed).
pub fn write_all_atomic(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let name = shown(path);
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mode = fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o644);
        let mut tmp = tempfile::Builder::new()
            .prefix(".gitseal-")
            .tempfile_in(dir)
            .with_context(|| format!("{name}: cannot create a temporary file beside it"))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("{name}: cannot write"))?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .with_context(|| format!("{name}: cannot set permissions"))?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        tmp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("{}: cannot write", shown(path)))?;
    }
    Ok(())
}

/// Writes a private key file: mode 0600 from the first byte, never replacing an existing
/// file unless `force`.
pub fn write_private(path: &Path, text: &[u8], force: bool) -> Result<()> {
    let name = shown(path);
    if !force && fs::symlink_metadata(path).is_ok() {
        bail!(
            "{name} already exists; refusing to overwrite it (it may hold private keys or plaintext; pass --force to replace it)"
        );
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates files 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".gitseal-key-")
        .tempfile_in(dir)
        .with_context(|| format!("{name}: cannot create a file in its folder"))?;
    tmp.write_all(text)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("{name}: cannot write"))?;
    if force {
        tmp.persist(path).map_err(|e| e.error)
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)
    }
    .with_context(|| format!("{name}: cannot write"))?;
    Ok(())
}

/// The regular file standard output is redirected to (`> FILE`), if any: found through
/// /proc/self/fd/1 and checked to be the same file (device and inode).
pub fn stdout_file() -> Option<PathBuf> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let path = fs::read_link("/proc/self/fd/1").ok()?;
    let named = fs::metadata(&path).ok()?;
    (named.dev() == meta.dev() && named.ino() == meta.ino()).then_some(path)
}

/// After a failed command: a `> FILE` redirection leaves an empty FILE behind, made by the
/// shell before gitseal ran. Remove it when it is still empty and was created for this run
/// (modified no earlier than shortly before the process started); otherwise say why it is
/// there. Returns the note to print.
pub fn after_failed_redirect(started: std::time::SystemTime) -> Option<String> {
    use std::os::fd::AsFd;
    let path = stdout_file()?;
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    if meta.len() != 0 {
        return None;
    }
    let name = near(&path);
    let fresh = meta
        .modified()
        .ok()
        .is_some_and(|m| m + std::time::Duration::from_secs(5) >= started);
    if fresh && fs::remove_file(&path).is_ok() {
        Some(format!(
            "note: removed the empty {name} that the shell's redirection created; nothing was written (gitseal -w FILE writes a file only on success)"
        ))
    } else {
        Some(format!(
            "note: {name} is empty: the shell's redirection created or opened it before gitseal ran; nothing was written to it"
        ))
    }
}

/// Writes output to a file (atomically) or to standard output.
pub fn emit(out: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match out {
        Some(path) => write_atomic(path, bytes),
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .context("cannot write to standard output")
        }
    }
}
