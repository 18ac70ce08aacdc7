//! What an end-to-end test of gitseal needs besides the control plane, shared by the agent's
//! and the CLI's tests: the CRDs installed from `deploy/crds.yaml`, the agent as a process on
//! free loopback ports, waiting for a state, a plain HTTP GET, and git run with a throwaway
//! identity.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

use crate::ControlPlane;

/// The repository's `deploy/` folder.
pub const DEPLOY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");

/// How long [`wait_for`] waits.
const WAIT: Duration = Duration::from_secs(90);

/// Applies `deploy/crds.yaml` and waits until every CRD is Established.
///
/// # Panics
/// When the file cannot be read or a CRD is not Established within 30 s.
pub async fn apply_crds(client: &kube::Client) {
    let text =
        std::fs::read_to_string(format!("{DEPLOY_DIR}/crds.yaml")).expect("deploy/crds.yaml");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc).expect("crd");
        let name = crd.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply("gitseal-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply crd");
        let cond = kube::runtime::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(api.clone(), &name, cond),
        )
        .await
        .expect("established in time")
        .expect("established");
    }
}

/// Polls `f` every 250 ms until it returns a value.
///
/// # Panics
/// After 90 s, naming `what`.
pub async fn wait_for<T, F: Fn() -> Fut, Fut: Future<Output = Option<T>>>(what: &str, f: F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1: the whole response, status line first.
///
/// # Panics
/// When the port does not answer.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Runs git in `dir` with a fixed identity and no user or system config; returns trimmed
/// stdout.
///
/// # Panics
/// When git fails, with its stderr.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=gitseal-test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgSign=false",
            "-c",
            "tag.gpgSign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `text` to `file` (parents created) in the repository at `repo` and commits
/// everything with `message`.
///
/// # Panics
/// When the file cannot be written or git fails.
pub fn commit_file(repo: &Path, file: &str, text: &str, message: &str) {
    let path = repo.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

/// One end-to-end test's place in the shared control plane: the CRDs installed, a fresh
/// namespace for the agent's keys (`<name>-agent`) and one for the objects it answers
/// (`<name>-app`), and a work folder.
pub struct AgentTest {
    pub cp: &'static ControlPlane,
    /// Admin client.
    pub client: kube::Client,
    pub agent_ns: String,
    pub app_ns: String,
    pub work: tempfile::TempDir,
}

impl std::fmt::Debug for AgentTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTest")
            .field("agent_ns", &self.agent_ns)
            .field("app_ns", &self.app_ns)
            .field("work", &self.work.path())
            .finish_non_exhaustive()
    }
}

impl AgentTest {
    /// # Panics
    /// When the control plane cannot be started or the CRDs applied.
    pub async fn new(name: &str) -> AgentTest {
        AgentTest::on(crate::shared().await, name).await
    }

    /// Like [`AgentTest::new`], on a given control plane (e.g. a [`crate::private`] one,
    /// leaked to be `'static`).
    ///
    /// # Panics
    /// When the CRDs cannot be applied.
    pub async fn on(cp: &'static ControlPlane, name: &str) -> AgentTest {
        let client = cp.client();
        apply_crds(&client).await;
        let agent_ns = cp.namespace(&format!("{name}-agent")).await;
        let app_ns = cp.namespace(&format!("{name}-app")).await;
        let work = tempfile::tempdir().expect("tempdir");
        AgentTest {
            cp,
            client,
            agent_ns,
            app_ns,
            work,
        }
    }

    /// Creates an empty git repository on branch `main` at `<work>/repo`; returns its path.
    ///
    /// # Panics
    /// When the folder cannot be made or git fails.
    pub fn init_repo(&self) -> PathBuf {
        let repo = self.work.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        repo
    }

    /// Starts the agent with the admin kubeconfig, keys in the agent namespace, answering the
    /// app namespace only, its log and git cache in the work folder (see
    /// [`AgentProcess::start`] for `agent`), and `--allow-local-sources`: the GitSyncs of
    /// [`AgentTest::apply_gitsync`] name `file://` repositories. Tests of the refusal start
    /// the agent with [`AgentProcess::start`].
    pub fn start_agent(
        &self,
        agent: impl FnOnce(&[String]) -> Command,
        extra: &[&str],
    ) -> AgentProcess {
        let setup = AgentSetup {
            kubeconfig: self.cp.kubeconfig_path(),
            agent_namespace: &self.agent_ns,
            watch_namespace: &self.app_ns,
            dir: self.work.path(),
        };
        let mut flags = vec!["--allow-local-sources"];
        flags.extend_from_slice(extra);
        AgentProcess::start(agent, setup, &flags)
    }

    /// Starts one of several agents of the same namespace: its own folder `work/<name>` (log,
    /// git cache), leader identity `<name>`, and `--allow-local-sources` as
    /// [`AgentTest::start_agent`].
    pub fn start_named_agent(
        &self,
        name: &str,
        agent: impl FnOnce(&[String]) -> Command,
        extra: &[&str],
    ) -> AgentProcess {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir).expect("agent folder");
        let setup = AgentSetup {
            kubeconfig: self.cp.kubeconfig_path(),
            agent_namespace: &self.agent_ns,
            watch_namespace: &self.app_ns,
            dir: &dir,
        };
        let mut args = vec!["--allow-local-sources", "--leader-identity", name];
        args.extend_from_slice(extra);
        AgentProcess::start(agent, setup, &args)
    }

    /// Applies the GitSync `apps` in the app namespace: branch `main` of the repository at
    /// `repo` (file://), path `apps`, a pass every second, pruning.
    ///
    /// # Panics
    /// When the API server refuses it.
    pub async fn apply_gitsync(&self, repo: &Path) {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.app_ns,
            &kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
                "gitseal.dev",
                "v1alpha1",
                "GitSync",
            )),
        );
        api.patch(
            "apps",
            &PatchParams::apply("gitseal-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": "apps"},
                "spec": {"url": format!("file://{}", repo.display()), "ref": {"branch": "main"},
                         "path": "apps", "interval": "1s", "prune": true}
            })),
        )
        .await
        .expect("gitsync");
    }
}

/// `gitseal-agent run` as a child process on free loopback ports, its log in `dir/agent.log`;
/// killed when dropped (printing the end of its log when the test failed).
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    pub log_path: PathBuf,
    pub health_port: u16,
    pub metrics_port: u16,
}

/// Where an agent started by [`AgentProcess::start`] keeps its keys and what it watches.
#[derive(Debug, Clone, Copy)]
pub struct AgentSetup<'a> {
    pub kubeconfig: &'a Path,
    /// The agent's namespace (sealing keys, public keys, usage).
    pub agent_namespace: &'a str,
    /// The only namespace whose GitSyncs and SealedSecrets it answers (empty: every one).
    pub watch_namespace: &'a str,
    /// Its log and git cache go here.
    pub dir: &'a Path,
}

impl AgentProcess {
    /// Starts the agent as `run`, with debug logs (unless `extra` sets `--log-level`) and
    /// `extra` flags. `agent` turns the
    /// agent's arguments into the command that runs its `main` with them: the
    /// `gitseal-agent` binary, or a test binary that runs the agent's library entry point.
    ///
    /// # Panics
    /// When the process cannot be started.
    pub fn start(
        agent: impl FnOnce(&[String]) -> Command,
        setup: AgentSetup<'_>,
        extra: &[&str],
    ) -> AgentProcess {
        let log_path = setup.dir.join("agent.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let (health_port, metrics_port) = (free_port(), free_port());
        let mut args: Vec<String> = ["run", "--namespace", setup.agent_namespace]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if !setup.watch_namespace.is_empty() {
            args.extend([
                "--watch-namespace".to_owned(),
                setup.watch_namespace.to_owned(),
            ]);
        }
        args.extend([
            "--health-addr".to_owned(),
            format!("127.0.0.1:{health_port}"),
            "--metrics-addr".to_owned(),
            format!("127.0.0.1:{metrics_port}"),
            "--cache-dir".to_owned(),
            setup.dir.join("cache").display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut cmd = agent(&args);
        if extra.contains(&"--log-level") {
            cmd.env_remove("GITSEAL_LOG");
        } else {
            cmd.env("GITSEAL_LOG", "debug");
        }
        let child = cmd
            .env("KUBECONFIG", setup.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        AgentProcess {
            child,
            log_path,
            health_port,
            metrics_port,
        }
    }

    /// The agent's log so far.
    ///
    /// # Panics
    /// When the log cannot be read.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).expect("agent log")
    }

    /// The process id (for /proc/<pid>/stat and /proc/<pid>/status, and to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A counter or gauge from its `/metrics` (the sum over its label sets); `None` when
    /// absent or when the agent does not answer.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = std::panic::catch_unwind(|| http_get(self.metrics_port, "/metrics")).ok()?;
        let mut found = None;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *found.get_or_insert(0.0) += v;
            }
        }
        found
    }

    /// The status line of `GET /readyz` (`None` when the agent does not answer).
    pub fn readyz(&self) -> Option<u16> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.health_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether the process is still running.
    ///
    /// # Panics
    /// When its state cannot be read.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("agent").is_none()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("agent log (last lines, newest first):\n{}", tail.join("\n"));
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
