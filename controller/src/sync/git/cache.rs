//! The cache folder: private to the agent's user, or refused.
//!
//! Everything below it (clones, their config, work trees, lock files) is trusted only because
//! nobody else can write there. Another local user who could would plant a clone whose config
//! runs programs as the agent (`core.fsmonitor`, hooks, filter drivers, `uploadpack`), or swap
//! a folder for a link to one of theirs. So the folder is created 0700, and an existing one
//! must be a real folder (not a link) owned by this process's user that nobody else can write
//! to. One the agent owns that others may only read (made by an older version with the default
//! umask) is narrowed to 0700: nobody else could have written to it.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::error::{GitError, io};

/// `dir` made absolute, created 0700 when missing, checked when present: see the module
/// documentation.
pub fn private_cache_dir(dir: &Path) -> Result<PathBuf, GitError> {
    let dir = std::path::absolute(dir).map_err(io("cache folder"))?;
    let shown = dir.display().to_string();
    if std::fs::symlink_metadata(&dir).is_err() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("cache folder {shown}")))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            // Made meanwhile by someone else: checked below like any existing folder.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(format!("cache folder {shown}"))(e)),
        }
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(io(format!("cache folder {shown}")))?;
    let refuse = |why: String| {
        Err(GitError::UnsafeCache {
            dir: shown.clone(),
            why,
        })
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("is not a folder".into());
    }
    if meta.uid() != me {
        return refuse(format!(
            "is owned by uid {}, not by the agent's user (uid {me})",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    let writers = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("its group and other users"),
        (true, false) => Some("its group"),
        (false, true) => Some("other users"),
        (false, false) => None,
    };
    if let Some(writers) = writers {
        return refuse(format!("is writable by {writers} (mode {mode:o})"));
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("making cache folder {shown} private")))?;
    }
    Ok(dir)
}

/// The default cache folder of this user: `$XDG_CACHE_HOME/gitseal-agent`, else
/// `$HOME/.cache/gitseal-agent`; `None` when neither is set to an absolute path.
pub fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("gitseal-agent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_narrowed_or_refused() {
        let base = tempfile::tempdir().expect("tempdir");
        let fresh = base.path().join("a/b/cache");
        let got = private_cache_dir(&fresh).expect("created");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").mode() & 0o777;
        assert_eq!(mode(&got), 0o700);

        let readable = base.path().join("readable");
        std::fs::create_dir(&readable).expect("mkdir");
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_cache_dir(&readable).expect("narrowed");
        assert_eq!(mode(&readable), 0o700);

        for (m, why) in [
            (0o777, "its group and other users"),
            (0o770, "its group"),
            (0o703, "other users"),
        ] {
            let d = base.path().join(format!("m{m:o}"));
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(m)).expect("chmod");
            let e = private_cache_dir(&d).expect_err("refused").to_string();
            assert!(
                e.contains(why) && e.contains(&d.display().to_string()),
                "{e}"
            );
            assert_eq!(mode(&d), m, "left as it was");
        }

        let link = base.path().join("link");
        std::os::unix::fs::symlink(&got, &link).expect("symlink");
        let e = private_cache_dir(&link).expect_err("refused").to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let file = base.path().join("file");
        std::fs::write(&file, "").expect("write");
        assert!(private_cache_dir(&file).is_err());
    }
}
