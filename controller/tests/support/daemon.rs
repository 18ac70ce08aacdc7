//! `git daemon` (git://) on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::proc::{Guard, free_port, wait_port};

/// `git --exec-path`: where git's own programs live.
pub fn exec_path() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git runs");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `git daemon --export-all` serving every repository below a base path.
#[derive(Debug)]
pub struct GitDaemon {
    port: u16,
    base: PathBuf,
    _log: tempfile::TempDir,
    _child: Guard,
}

impl GitDaemon {
    /// Serves the repositories below `base` (e.g. [`super::TestRepo::root`]).
    pub fn start(base: &Path) -> GitDaemon {
        let log_dir = tempfile::tempdir().expect("tempdir");
        let log = log_dir.path().join("daemon.log");
        let port = free_port();
        // The `git-daemon` program itself: `git daemon` would be a wrapper process, and
        // killing it would leave the server behind.
        let mut child = Command::new(exec_path().join("git-daemon"))
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--informative-errors")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("git daemon starts");
        wait_port(port, &mut child, "git daemon", &log);
        GitDaemon {
            port,
            base: base.to_owned(),
            _log: log_dir,
            _child: Guard(child),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `git://127.0.0.1:PORT/<path relative to the base>`.
    pub fn url(&self, repo: &Path) -> String {
        let rel = repo
            .strip_prefix(&self.base)
            .expect("repository below the daemon's base path");
        format!("git://127.0.0.1:{}/{}", self.port, rel.display())
    }
}
