//! A real Kubernetes control plane for integration tests: etcd, kube-apiserver and
//! kube-controller-manager built from the pinned Go modules in `tests/controlplane/`, listening on
//! 127.0.0.1 only.
//!
//! One control plane is started per test binary, on first use, and shared by all its tests:
//!
//! ```no_run
//! # async fn demo() {
//! let cp = gitseal_testenv::shared().await;
//! let client = cp.client(); // admin (system:masters)
//! let ns = cp.namespace("my-test").await; // a fresh namespace for this test
//! # let _ = (client, ns);
//! # }
//! ```
//!
//! The binaries are built by `tests/controlplane/build.sh` when missing (the first build takes
//! many minutes). Set `GITSEAL_CONTROLPLANE_BIN_DIR` to use binaries built elsewhere, and
//! `GITSEAL_CONTROLPLANE_TIMEOUT` (seconds, default 180) to change how long to wait for readiness.
//!
//! [`e2e`] holds what end-to-end tests need besides the control plane (the CRDs installed, the
//! agent as a process, waiting, HTTP, git), shared by the agent's and the CLI's tests;
//! [`peers::peer_tool`] the Go tools built by `scripts/peers.sh` (helm, kustomize, …).
//!
//! Cleanup does not depend on this process exiting cleanly: the `gitseal-controlplane` launcher
//! holds the read end of a pipe whose write end lives in this process until it exits. When the test
//! process ends for any reason (success, panic, SIGKILL) the kernel closes the pipe, and the
//! launcher kills etcd and the Kubernetes components and removes its temporary directory.

pub mod e2e;
pub mod peers;
pub mod rbac;

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use tokio::sync::OnceCell;

/// The Kubernetes release the control plane is built from (see `tests/controlplane/go.mod`).
pub const KUBERNETES_VERSION: &str = "v1.36.3";

/// Field manager used by this crate's server-side applies.
pub const FIELD_MANAGER: &str = "gitseal-testenv";

/// First token of the launcher's ready line on stdout; JSON follows.
const READY_PREFIX: &str = "GITSEAL_CONTROLPLANE_READY ";

/// How many lines of launcher output to keep for error messages.
const LOG_LINES: usize = 200;

const DEFAULT_TIMEOUT_SECS: u64 = 180;

/// Why the control plane could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `tests/controlplane/build.sh` failed or printed nothing.
    #[error(
        "building the control plane with {script} failed ({status}); run it by hand to see why \
         (it needs Go >= 1.26 and the Go module proxy)"
    )]
    Build { script: PathBuf, status: String },
    /// The launcher could not be spawned.
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The launcher exited or timed out before it reported readiness.
    #[error(
        "the control plane did not become ready: {reason}\n--- launcher output (last lines) ---\n{logs}"
    )]
    NotReady { reason: String, logs: String },
    /// The launcher's ready line could not be understood.
    #[error("unexpected ready line from the launcher: {0}")]
    ReadyLine(#[source] serde_json::Error),
    /// A kubeconfig written by the launcher could not be loaded.
    #[error("cannot load kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    /// A Kubernetes API call made by the harness failed.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Blocking work of the harness could not be run.
    #[error("harness task failed: {0}")]
    Task(String),
}

/// What the launcher reports once everything is ready.
#[derive(Debug, Deserialize)]
struct ReadyInfo {
    server: String,
    kubeconfig: PathBuf,
    unprivileged_kubeconfig: PathBuf,
    ca_file: PathBuf,
    /// The API server's audit log (JSON lines, Metadata level); absent from launchers built
    /// before it was added.
    #[serde(default)]
    audit_log: Option<PathBuf>,
    dir: PathBuf,
}

/// A running control plane. Obtain the shared one with [`shared`].
pub struct ControlPlane {
    info: ReadyInfo,
    admin: Config,
    unprivileged: Config,
    logs: Arc<Mutex<VecDeque<String>>>,
    launcher: Mutex<Child>,
    // Never closed while this process lives: its end of file tells the launcher to clean up.
    _lifeline: ChildStdin,
    namespaces: AtomicU64,
}

impl fmt::Debug for ControlPlane {
    // Configs hold bearer tokens: show only where things are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.info.server)
            .field("kubeconfig", &self.info.kubeconfig)
            .field("dir", &self.info.dir)
            .finish_non_exhaustive()
    }
}

static SHARED: OnceCell<Result<ControlPlane, Error>> = OnceCell::const_new();

/// The control plane of this test binary, started on first call.
///
/// # Panics
/// If it cannot be built or started; the message includes the tail of the launcher's output.
/// Later calls panic with the same error instead of trying again.
pub async fn shared() -> &'static ControlPlane {
    match try_shared().await {
        Ok(cp) => cp,
        Err(err) => panic!("gitseal-testenv: {err}"),
    }
}

/// Like [`shared`], returning the start-up error instead of panicking.
pub async fn try_shared() -> Result<&'static ControlPlane, &'static Error> {
    SHARED
        .get_or_init(|| async {
            // Starting blocks (build, process I/O); keep it off the async worker threads.
            let launched = tokio::task::spawn_blocking(launch)
                .await
                .unwrap_or_else(|err| Err(Error::Task(err.to_string())))?;
            ControlPlane::connect(launched).await
        })
        .await
        .as_ref()
}

/// A control plane of the caller's own, not shared with the other tests of the binary: for
/// tests that stop or break it (e.g. freeze the API server). Dropping it stops it.
///
/// # Errors
/// When it cannot be built or started.
pub async fn private() -> Result<ControlPlane, Error> {
    let launched = tokio::task::spawn_blocking(launch)
        .await
        .unwrap_or_else(|err| Err(Error::Task(err.to_string())))?;
    ControlPlane::connect(launched).await
}

/// A launcher that reported readiness.
struct Launched {
    info: ReadyInfo,
    launcher: Child,
    lifeline: ChildStdin,
    logs: Arc<Mutex<VecDeque<String>>>,
}

/// Builds if needed, spawns the launcher and waits for its ready line.
fn launch() -> Result<Launched, Error> {
    let bin_dir = match std::env::var_os("GITSEAL_CONTROLPLANE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build()?,
    };
    let timeout = std::env::var("GITSEAL_CONTROLPLANE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMEOUT_SECS);

    let launcher_path = bin_dir.join("gitseal-controlplane");
    let mut launcher = Command::new(&launcher_path)
        .arg("-bin-dir")
        .arg(&bin_dir)
        .arg("-timeout")
        .arg(format!("{timeout}s"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            path: launcher_path.clone(),
            source,
        })?;

    let logs = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
    let (lifeline, stdout, stderr) = match (
        launcher.stdin.take(),
        launcher.stdout.take(),
        launcher.stderr.take(),
    ) {
        (Some(i), Some(o), Some(e)) => (i, o, e),
        _ => return Err(Error::Task("launcher pipes missing".into())),
    };
    // Drain stderr for the whole run (a full pipe would block the launcher), keeping a tail.
    let stderr_thread = {
        let logs = Arc::clone(&logs);
        std::thread::spawn(move || collect_lines(stderr, &logs))
    };
    // Wait for the ready line on stdout, then keep draining it.
    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    {
        let logs = Arc::clone(&logs);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix(READY_PREFIX) {
                    let _ = ready_tx.send(json.to_owned());
                    break;
                }
                push_line(&logs, line);
            }
            drop(ready_tx);
            for line in lines.map_while(Result::ok) {
                push_line(&logs, line);
            }
        });
    }

    // The launcher enforces `timeout` itself and then explains; allow it time to do so.
    let json = match ready_rx.recv_timeout(Duration::from_secs(timeout.saturating_add(30))) {
        Ok(json) => json,
        Err(err) => {
            let reason = if matches!(err, mpsc::RecvTimeoutError::Timeout) {
                let _ = launcher.kill();
                format!("no ready line after {}s", timeout.saturating_add(30))
            } else {
                match launcher.wait() {
                    Ok(status) => format!("the launcher exited ({status})"),
                    Err(err) => format!("the launcher exited (wait failed: {err})"),
                }
            };
            let _ = launcher.wait();
            let _ = stderr_thread.join();
            return Err(Error::NotReady {
                reason,
                logs: tail(&logs),
            });
        }
    };
    let info: ReadyInfo = serde_json::from_str(&json).map_err(Error::ReadyLine)?;
    Ok(Launched {
        info,
        launcher,
        lifeline,
        logs,
    })
}

impl ControlPlane {
    async fn connect(launched: Launched) -> Result<Self, Error> {
        let Launched {
            info,
            launcher,
            lifeline,
            logs,
        } = launched;
        // A Config is plain data (no connection, no runtime), so it can outlive this runtime.
        let admin = load_config(&info.kubeconfig).await?;
        let unprivileged = load_config(&info.unprivileged_kubeconfig).await?;
        Ok(Self {
            info,
            admin,
            unprivileged,
            logs,
            launcher: Mutex::new(launcher),
            _lifeline: lifeline,
            namespaces: AtomicU64::new(0),
        })
    }

    /// A client authenticated as an admin (group `system:masters`).
    ///
    /// A new client per call, on the caller's runtime (every `#[tokio::test]` has its own).
    ///
    /// # Panics
    /// Outside a Tokio runtime, or if the client cannot be built from the kubeconfig.
    pub fn client(&self) -> Client {
        make_client(&self.admin, &self.info.kubeconfig)
    }

    /// A client authenticated as `gitseal-unprivileged`, a user with no RBAC bindings: anything
    /// beyond discovery and self-review is forbidden (403).
    ///
    /// # Panics
    /// As [`ControlPlane::client`].
    pub fn unprivileged_client(&self) -> Client {
        make_client(&self.unprivileged, &self.info.unprivileged_kubeconfig)
    }

    /// The admin kubeconfig, for tools (kubectl, the agent binary) run by a test.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.info.kubeconfig
    }

    /// The kubeconfig of the unprivileged user.
    pub fn unprivileged_kubeconfig_path(&self) -> &Path {
        &self.info.unprivileged_kubeconfig
    }

    /// The API server URL (`https://127.0.0.1:<port>`).
    pub fn server(&self) -> &str {
        &self.info.server
    }

    /// The CA certificate (PEM) that signed the API server's serving certificate.
    pub fn ca_file(&self) -> &Path {
        &self.info.ca_file
    }

    /// Every request the API server has audited so far (Metadata level: who, what, the
    /// User-Agent, never bodies), oldest first, as JSON `audit.k8s.io/v1` Events; the API
    /// server writes each before it answers.
    ///
    /// # Panics
    /// When the launcher predates audit logging (run `tests/controlplane/build.sh`) or the log
    /// cannot be read.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let path = self
            .info
            .audit_log
            .as_ref()
            .expect("this control plane launcher writes no audit log: rebuild it with tests/controlplane/build.sh");
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("audit log {}: {e}", path.display()));
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The admin [`kube::Config`], for tests that need to adjust it before building a client.
    pub fn config(&self) -> Config {
        self.admin.clone()
    }

    /// Creates a fresh namespace named `<prefix>-<n>` (the prefix made a valid DNS label) with
    /// server-side apply, and returns its name. The namespace is left behind: the whole control
    /// plane is thrown away when the test binary exits.
    ///
    /// # Panics
    /// If the namespace cannot be created.
    pub async fn namespace(&self, prefix: &str) -> String {
        match self.try_namespace(prefix).await {
            Ok(name) => name,
            Err(err) => panic!("gitseal-testenv: {err}\n{}", self.logs_tail()),
        }
    }

    /// Like [`ControlPlane::namespace`], returning the error instead of panicking.
    pub async fn try_namespace(&self, prefix: &str) -> Result<String, Error> {
        let n = self.namespaces.fetch_add(1, Ordering::Relaxed);
        let name = namespace_name(prefix, n);
        let api: Api<Namespace> = Api::all(self.client());
        let ns = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { "gitseal.dev/test": "true" } },
        });
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&ns),
        )
        .await
        .map_err(|source| Error::Kube {
            what: format!("creating namespace {name}"),
            source,
        })?;
        Ok(name)
    }

    /// The process id of one component (`kube-apiserver`, `etcd`, `kube-controller-manager`),
    /// for tests that signal it (SIGSTOP/SIGCONT to freeze the API server). Only meaningful
    /// for a [`private`] control plane: the shared one is used by other tests at once.
    pub fn component_pid(&self, component: &str) -> Option<u32> {
        let launcher = self.launcher.lock().ok()?.id();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(launcher) && comm == component {
                return Some(pid);
            }
        }
        None
    }

    /// The last lines the launcher printed, and whether it is still running; for failure messages.
    pub fn logs_tail(&self) -> String {
        let state = match self.launcher.lock() {
            Ok(mut child) => match child.try_wait() {
                Ok(None) => "running".to_owned(),
                Ok(Some(status)) => format!("exited ({status})"),
                Err(err) => format!("unknown ({err})"),
            },
            Err(_) => "unknown".to_owned(),
        };
        format!(
            "--- gitseal-controlplane ({state}), logs in {}/logs ---\n{}",
            self.info.dir.display(),
            tail(&self.logs)
        )
    }
}

/// Runs build.sh (a no-op when the binaries are cached) and returns the directory it prints.
fn build() -> Result<PathBuf, Error> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../controlplane/build.sh");
    // stderr is inherited so that a long first build shows its progress.
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| Error::Spawn {
            path: script.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(dir) if output.status.success() && !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(Error::Build {
            script,
            status: output.status.to_string(),
        }),
    }
}

async fn load_config(path: &Path) -> Result<Config, Error> {
    let err = |message: String| Error::Kubeconfig {
        path: path.to_owned(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))
}

fn make_client(config: &Config, path: &Path) -> Client {
    match Client::try_from(config.clone()) {
        Ok(client) => client,
        Err(err) => panic!(
            "gitseal-testenv: cannot build a client from {}: {err}",
            path.display()
        ),
    }
}

/// `<prefix>-<n>` as a DNS label: lowercase alphanumerics and '-', at most 63 characters.
fn namespace_name(prefix: &str, n: u64) -> String {
    let mut base: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let suffix = format!("-{n}");
    base.truncate(63 - suffix.len());
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "test" } else { base };
    format!("{base}{suffix}")
}

fn collect_lines(from: impl Read, logs: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(from).lines().map_while(Result::ok) {
        push_line(logs, line);
    }
}

fn push_line(logs: &Mutex<VecDeque<String>>, line: String) {
    if let Ok(mut logs) = logs.lock() {
        if logs.len() == LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(line);
    }
}

fn tail(logs: &Mutex<VecDeque<String>>) -> String {
    match logs.lock() {
        Ok(logs) => logs.iter().map(|l| format!("{l}\n")).collect(),
        Err(_) => String::from("(log buffer unavailable)\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_name;

    #[test]
    fn namespace_names_are_dns_labels() {
        assert_eq!(namespace_name("My_Test", 3), "my-test-3");
        assert_eq!(namespace_name("--", 0), "test-0");
        let long = namespace_name(&"a".repeat(100), 12345);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-12345"));
    }
}
