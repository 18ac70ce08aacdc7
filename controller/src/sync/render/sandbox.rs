//! The process `kustomize build` runs as: defence in depth behind the pre-scan of `confine`.
//!
//! - `--load-restrictor LoadRestrictionsRootOnly` (kustomize's default, named so that no
//!   default of another version loosens it), and never `--enable-helm`, plugins, exec or
//!   container functions, mounts or network for functions;
//! - an empty environment plus a private `HOME`, config and cache folders and `TMPDIR`,
//!   `KUBECONFIG=/dev/null`, and `PATH` holding only a private folder: no `git` (kustomize
//!   clones remote bases with it), no `helm`;
//! - unless remote bases are allowed, every proxy variable points at a closed port, so a
//!   remote file the pre-scan missed cannot be fetched (Go's HTTP client does not proxy
//!   loopback addresses, which stay reachable: the pre-scan is what refuses them);
//! - when remote bases are allowed, `PATH` is the agent's own (kustomize runs `git clone` and
//!   `git submodule`, a shell script), git runs without system or global config, prompts,
//!   hooks or fsmonitor, over http(s) only, and the agent's proxy and CA variables pass
//!   through;
//! - its own process group, killed whole when the render is abandoned.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::RenderError;

/// Where every proxy variable points when remote bases are refused: nothing listens on port
/// 1 (tcpmux), and only root could make something listen there.
const CLOSED_PROXY: &str = "http://127.0.0.1:1";

/// A prepared `kustomize build`: the command and the private folder it runs in (removed
/// when dropped).
pub(super) struct Kustomize {
    pub(super) cmd: Command,
    pub(super) private: tempfile::TempDir,
}

/// Finds `program` in the agent's own `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

/// The sandboxed `kustomize build dir` (or `kubectl kustomize dir`).
pub(super) fn kustomize(dir: &Path, remote_bases: bool) -> Result<Kustomize, RenderError> {
    let (program, subcommand) = match (which("kustomize"), which("kubectl")) {
        (Some(k), _) => (k, "build"),
        (None, Some(k)) => (k, "kustomize"),
        (None, None) => return Err(RenderError::NoKustomize),
    };
    let io = |what: &str| {
        let what = what.to_owned();
        move |error| RenderError::Io { file: what, error }
    };
    let private = tempfile::Builder::new()
        .prefix("gitseal-render-")
        .tempdir()
        .map_err(io("private folder for kustomize"))?;
    let home = private.path().join("home");
    let bin = private.path().join("bin");
    let tmp = private.path().join("tmp");
    for d in [&home, &bin, &tmp] {
        std::fs::create_dir(d).map_err(io("private folder for kustomize"))?;
    }
    if remote_bases && which("git").is_none() {
        return Err(RenderError::Io {
            file: "git".into(),
            error: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "remote bases are allowed but git is not installed",
            ),
        });
    }
    // Remote bases: git and the tools its scripts use (`git submodule` is a shell script).
    // Otherwise an empty private folder: no git, no helm.
    let path = if remote_bases {
        std::env::var_os("PATH").unwrap_or_default()
    } else {
        bin.into_os_string()
    };
    let mut env: Vec<(&str, OsString)> = vec![
        ("PATH", path),
        ("HOME", home.clone().into_os_string()),
        ("XDG_CONFIG_HOME", home.join(".config").into_os_string()),
        ("XDG_CACHE_HOME", home.join(".cache").into_os_string()),
        ("XDG_DATA_HOME", home.join(".local/share").into_os_string()),
        ("TMPDIR", tmp.into_os_string()),
        ("KUBECONFIG", "/dev/null".into()),
        ("LC_ALL", "C".into()),
    ];
    if remote_bases {
        for k in [
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "all_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "GIT_SSL_CAINFO",
            "GIT_SSL_CAPATH",
        ] {
            if let Some(v) = std::env::var_os(k) {
                env.push((k, v));
            }
        }
        let config = [
            ("protocol.allow", "never"),
            ("protocol.https.allow", "always"),
            ("protocol.http.allow", "always"),
            ("core.hooksPath", "/dev/null"),
            ("core.fsmonitor", "false"),
            ("core.askPass", ""),
            ("credential.helper", ""),
            ("submodule.recurse", "false"),
        ];
        env.extend([
            ("GIT_CONFIG_NOSYSTEM", "1".into()),
            ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT", "0".into()),
            ("GIT_PROXY_COMMAND", "".into()),
            ("GIT_CONFIG_COUNT", config.len().to_string().into()),
        ]);
        let mut cmd_env: Vec<(String, OsString)> = Vec::new();
        for (i, (k, v)) in config.iter().enumerate() {
            cmd_env.push((format!("GIT_CONFIG_KEY_{i}"), (*k).into()));
            cmd_env.push((format!("GIT_CONFIG_VALUE_{i}"), (*v).into()));
        }
        let mut cmd = command(&program, subcommand, dir, private.path(), &env);
        cmd.envs(cmd_env);
        return Ok(Kustomize { cmd, private });
    }
    for k in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        env.push((k, CLOSED_PROXY.into()));
    }
    env.push(("NO_PROXY", "".into()));
    env.push(("no_proxy", "".into()));
    let cmd = command(&program, subcommand, dir, private.path(), &env);
    Ok(Kustomize { cmd, private })
}

fn command(
    program: &Path,
    subcommand: &str,
    dir: &Path,
    cwd: &Path,
    env: &[(&str, OsString)],
) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(subcommand)
        .arg(dir)
        .args(["--load-restrictor", "LoadRestrictionsRootOnly"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    cmd
}

/// Kills a process group when dropped: kustomize and whatever it started (git, when remote
/// bases are allowed), on every way out of the render.
pub(super) struct GroupGuard(pub(super) Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Through kill(1): no unsafe code. A group already gone is no error worth noting.
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pid}")])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
