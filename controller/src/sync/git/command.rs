//! The sandboxed git command: every git process of a fetch starts from an empty environment
//! plus an allow-list, a private `HOME`, no system or global config, no prompts, only the
//! allowed transports, config forced through the environment so that no config names a
//! program git runs, credentials passed through the environment (never the command line), a
//! timeout that kills the whole process group, and stderr scrubbed before it is kept. The
//! clone's own config is rewritten before every fetch.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::error::{GitError, classify, io, scrub};
use super::reference::GitRef;
use super::remote::{GitAuth, Remote, Transport};
use super::{Checkout, GitSource, TreeLease};

/// Runs git commands for one fetch.
pub(super) struct Git {
    git_dir: PathBuf,
    /// Scratch work tree of the checkout in progress.
    tree: PathBuf,
    /// `<commit>/`: one finished, immutable checkout per commit (beside the clone, so that
    /// starting the clone over leaves the snapshots in use alone).
    trees: PathBuf,
    url: String,
    display: String,
    timeout: Duration,
    env: Vec<(OsString, OsString)>,
    /// Environment entries holding secrets (the auth header).
    secret_env: Vec<(String, Zeroizing<String>)>,
    /// Values scrubbed from any stderr.
    secrets: Vec<Zeroizing<String>>,
    /// Where the deploy key is written for the length of one network command.
    identity: Option<(PathBuf, SecretString)>,
    /// http(s): where git writes the curl trace of a fetch (headers only), read when the
    /// fetch stopped at a redirect.
    trace: Option<PathBuf>,
}

/// Why a fetch stopped: an error, or a redirect (its `Location`) for the caller to decide on.
pub(super) enum Stop {
    Failed(GitError),
    Redirected(String),
}

impl From<GitError> for Stop {
    fn from(e: GitError) -> Self {
        Stop::Failed(e)
    }
}

impl Git {
    pub(super) fn new(
        src: &GitSource,
        remote: &Remote,
        root: &Path,
        private: &Path,
    ) -> Result<Git, GitError> {
        use base64::Engine as _;
        let home = private.join("home");
        std::fs::create_dir_all(&home).map_err(io("private HOME"))?;
        let mut config: Vec<(String, String)> = vec![("protocol.allow".into(), "never".into())];
        for p in remote.protocols() {
            config.push((format!("protocol.{p}.allow"), "always".into()));
        }
        // Command-line config (this environment) wins over the clone's own config, which is
        // rewritten before every fetch anyway: nothing git-config(1) lets a config run as a
        // program runs.
        for (k, v) in [
            ("core.symlinks", "false"),
            // A followed redirect re-targets the whole fetch, credentials included: git
            // stops at one instead, and `redirect.rs` decides.
            ("http.followRedirects", "false"),
            // Programs a config could name: fsmonitor, hooks, askpass and credential
            // helpers, the pager, the alternate refs command. (The git:// proxy is off
            // through GIT_PROXY_COMMAND; `remote.<name>.uploadpack` is multi-valued, so the
            // upload-pack a local fetch starts is given on the fetch's command line.)
            ("core.fsmonitor", "false"),
            ("core.hooksPath", "/dev/null"),
            ("core.askPass", ""),
            ("credential.helper", ""),
            ("core.pager", "cat"),
            ("core.alternateRefsCommand", "true"),
            // Filter, diff and merge drivers are named by attributes and defined only in
            // config: no attributes file beyond the repository's own, no driver defined.
            ("core.attributesFile", "/dev/null"),
            ("core.untrackedCache", "false"),
            ("advice.detachedHead", "false"),
            // No background or follow-up work after a fetch.
            ("gc.auto", "0"),
            ("gc.autoDetach", "false"),
            ("maintenance.auto", "false"),
            ("maintenance.autoDetach", "false"),
            ("fetch.recurseSubmodules", "false"),
            ("submodule.recurse", "false"),
        ] {
            config.push((k.into(), v.into()));
        }
        let mut secrets = Vec::new();
        let mut header = None;
        let basic = match (&src.auth, &remote.basic) {
            (GitAuth::Basic { username, password }, _) => {
                Some((username.clone(), password.clone()))
            }
            (GitAuth::None, Some((u, p))) => Some((u.clone(), p.clone())),
            _ => None,
        };
        if let Some((user, pass)) = basic {
            let plain = Zeroizing::new(format!("{user}:{}", pass.expose_secret()));
            let b64 =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plain.as_bytes()));
            header = Some(Zeroizing::new(format!(
                "Authorization: Basic {}",
                b64.as_str()
            )));
            if !pass.expose_secret().is_empty() {
                secrets.push(Zeroizing::new(pass.expose_secret().to_owned()));
            }
            secrets.push(b64);
        }
        if let GitAuth::Token(t) = &src.auth {
            header = Some(Zeroizing::new(format!(
                "Authorization: Bearer {}",
                t.expose_secret()
            )));
            secrets.push(Zeroizing::new(t.expose_secret().to_owned()));
        }
        let mut secret_env = Vec::new();
        let n = config.len() + usize::from(header.is_some());
        for (i, (k, v)) in config.iter().enumerate() {
            secret_env.push((format!("GIT_CONFIG_KEY_{i}"), Zeroizing::new(k.clone())));
            secret_env.push((format!("GIT_CONFIG_VALUE_{i}"), Zeroizing::new(v.clone())));
        }
        if let Some(h) = header {
            let i = config.len();
            secret_env.push((
                format!("GIT_CONFIG_KEY_{i}"),
                Zeroizing::new(format!("http.{}.extraHeader", remote.url)),
            ));
            secret_env.push((format!("GIT_CONFIG_VALUE_{i}"), h));
        }

        let mut env: Vec<(OsString, OsString)> = Vec::new();
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        env.push(("PATH".into(), path));
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
            "TMPDIR",
        ] {
            if let Some(v) = std::env::var_os(k) {
                env.push((k.into(), v));
            }
        }
        for (k, v) in [
            ("HOME", home.as_os_str().to_owned()),
            ("XDG_CONFIG_HOME", home.join(".config").into_os_string()),
            ("GIT_CONFIG_NOSYSTEM", "1".into()),
            ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT", "0".into()),
            // Set and empty: core.gitProxy from any config is ignored.
            ("GIT_PROXY_COMMAND", "".into()),
            ("GIT_ATTR_NOSYSTEM", "1".into()),
            ("GIT_NO_REPLACE_OBJECTS", "1".into()),
            ("GIT_PAGER", "cat".into()),
            ("SSH_ASKPASS_REQUIRE", "never".into()),
            ("LC_ALL", "C".into()),
            ("LANG", "C".into()),
            ("GIT_CONFIG_COUNT", n.to_string().into()),
        ] {
            env.push((k.into(), v));
        }

        let mut identity = None;
        if remote.transport == Transport::Ssh {
            let known_hosts = private.join("known_hosts");
            let lines = match &src.auth {
                GitAuth::Ssh { known_hosts, .. } => known_hosts.as_str(),
                _ => "",
            };
            std::fs::write(&known_hosts, lines).map_err(io("known_hosts file"))?;
            let connect = src.timeout.as_secs().clamp(1, 600);
            let mut cmd = format!(
                "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
                 -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
                 -o UpdateHostKeys=no -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
                 -o ForwardAgent=no -o ClearAllForwardings=yes -o ConnectTimeout={connect}",
                sh_quote(&known_hosts)
            );
            if let GitAuth::Ssh { identity: key, .. } = &src.auth {
                let key_path = private.join("identity");
                cmd.push_str(&format!(" -i {}", sh_quote(&key_path)));
                identity = Some((key_path, key.clone()));
            } else {
                cmd.push_str(" -o PubkeyAuthentication=no");
            }
            env.push(("GIT_SSH_COMMAND".into(), cmd.into()));
            env.push(("GIT_SSH_VARIANT".into(), "ssh".into()));
        }

        Ok(Git {
            git_dir: root.join("git"),
            tree: root.join("tree"),
            trees: root.with_extension("trees"),
            url: remote.url.clone(),
            display: remote.display.clone(),
            timeout: src.timeout,
            env,
            secret_env,
            secrets,
            identity,
            trace: (remote.transport == Transport::Http).then(|| private.join("curl-trace")),
        })
    }

    pub(super) async fn fetch_checkout(
        &self,
        reference: &GitRef,
        reused: bool,
    ) -> Result<Checkout, Stop> {
        if !reused {
            let root = self.git_dir.parent().unwrap_or(&self.git_dir);
            if root.exists() {
                tokio::fs::remove_dir_all(root)
                    .await
                    .map_err(io(format!("cache {}", root.display())))?;
            }
            tokio::fs::create_dir_all(&self.tree)
                .await
                .map_err(io(format!("cache {}", root.display())))?;
            let git_dir = self.git_dir.to_string_lossy().into_owned();
            self.run(
                "init",
                &["init", "--bare", "--quiet", "--template=", "--", &git_dir],
                false,
            )
            .await?;
        } else {
            self.remove_stale_locks();
        }
        self.reset_clone_config()?;

        const TARGET: &str = "refs/gitseal/target";
        let commit = match reference {
            GitRef::Branch(_) | GitRef::Tag(_) => {
                let spec = format!("+{}:{TARGET}", reference.cache_key());
                self.fetch(&["--depth=1", "origin", &spec], reference)
                    .await?;
                self.resolve(&format!("{TARGET}^{{commit}}"))
                    .await?
                    .ok_or_else(|| self.ref_not_found(reference))?
            }
            GitRef::Commit(c) => {
                // Commits never change: one already in the cache needs no network at all.
                if self.resolve(&format!("{c}^{{commit}}")).await?.is_none() {
                    let spec = format!("+{c}:{TARGET}");
                    match self.fetch(&["--depth=1", "origin", &spec], reference).await {
                        Ok(()) => {}
                        // The server refuses wants that are not ref tips: fetch everything.
                        Err(Stop::Failed(GitError::RefNotFound { .. })) => {
                            let mut args = vec![
                                "origin",
                                "+refs/heads/*:refs/remotes/origin/*",
                                "+refs/tags/*:refs/tags/*",
                            ];
                            if self
                                .run(
                                    "rev-parse",
                                    &["rev-parse", "--is-shallow-repository"],
                                    false,
                                )
                                .await?
                                .trim()
                                == "true"
                            {
                                args.insert(0, "--unshallow");
                            }
                            self.fetch(&args, reference).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.resolve(&format!("{c}^{{commit}}"))
                    .await?
                    .ok_or_else(|| self.ref_not_found(reference))?
            }
        };
        self.run(
            "update-ref",
            &["update-ref", "--no-deref", TARGET, &commit],
            false,
        )
        .await?;
        // Each commit is checked out once into the scratch tree, which then moves to its own
        // snapshot folder: complete or absent, never changed after, so a render never sees
        // another pass's half-done checkout.
        let snapshot = self.trees.join(&commit);
        if !snapshot.is_dir() {
            tokio::fs::create_dir_all(&self.tree)
                .await
                .map_err(io(format!("work tree {}", self.tree.display())))?;
            // `--force` also rewrites the files the index lists but the (new, empty) tree
            // lacks.
            self.run(
                "checkout",
                &["checkout", "--quiet", "--force", "--detach", &commit],
                true,
            )
            .await?;
            self.run("clean", &["clean", "--quiet", "-ffdx"], true)
                .await?;
            tokio::fs::create_dir_all(&self.trees)
                .await
                .map_err(io(format!("snapshots {}", self.trees.display())))?;
            tokio::fs::rename(&self.tree, &snapshot)
                .await
                .map_err(io(format!("snapshot {}", snapshot.display())))?;
        }
        let lease = TreeLease::take(&self.trees, &commit)?;
        remove_unused_snapshots(&self.trees, &commit);
        Ok(Checkout {
            dir: snapshot,
            revision: reference.revision(&commit),
            commit,
            lease,
        })
    }

    /// Rewrites the clone's config from scratch (the URL to fetch and nothing else) and
    /// removes every file in the git folder that could bring in other config, objects or
    /// attributes. The cache is private, so this only undoes what nobody should have done;
    /// it keeps a clone that once had something planted from acting on it.
    fn reset_clone_config(&self) -> Result<(), GitError> {
        for f in [
            "config.worktree",
            "commondir",
            "objects/info/alternates",
            "objects/info/http-alternates",
            "info/attributes",
        ] {
            let p = self.git_dir.join(f);
            if p.symlink_metadata().is_ok() {
                std::fs::remove_file(&p).map_err(io(format!("cache {}", p.display())))?;
            }
        }
        let quoted = self.url.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n\
             [remote \"origin\"]\n\turl = \"{quoted}\"\n"
        );
        let tmp = self.git_dir.join("config.gitseal-new");
        std::fs::write(&tmp, text).map_err(io(format!("cache {}", tmp.display())))?;
        std::fs::rename(&tmp, self.git_dir.join("config"))
            .map_err(io(format!("cache {}", self.git_dir.display())))
    }

    fn ref_not_found(&self, reference: &GitRef) -> GitError {
        GitError::RefNotFound {
            url: self.display.clone(),
            reference: reference.describe(),
        }
    }

    /// Every `*.lock` in the git folder is stale: this process holds the source's lock.
    fn remove_stale_locks(&self) {
        for f in [
            "index.lock",
            "shallow.lock",
            "HEAD.lock",
            "config.lock",
            "packed-refs.lock",
        ] {
            let _ = std::fs::remove_file(self.git_dir.join(f));
        }
        let _ = std::fs::remove_file(self.git_dir.join("refs/gitseal/target.lock"));
    }

    async fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        match self
            .run(
                "rev-parse",
                &["rev-parse", "--quiet", "--verify", "--end-of-options", rev],
                false,
            )
            .await
        {
            Ok(out) => Ok(Some(out.trim().to_ascii_lowercase())),
            Err(GitError::Git { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self, args: &[&str], reference: &GitRef) -> Result<(), Stop> {
        let mut all = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--force",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "--upload-pack=git-upload-pack",
        ];
        all.extend_from_slice(args);
        let _key = match &self.identity {
            Some((path, key)) => Some(KeyFile::write(path, key)?),
            None => None,
        };
        match self.run("fetch", &all, false).await {
            Err(GitError::Git { stderr, .. }) => match self.redirect_location() {
                Some(location) => Err(Stop::Redirected(location)),
                None => Err(classify(&stderr, &self.display, &reference.describe()).into()),
            },
            other => other.map(|_| ()).map_err(Stop::from),
        }
    }

    /// The `Location` of the redirect a failed fetch stopped at, from its curl trace (read
    /// at most 4 MiB; the file is removed).
    fn redirect_location(&self) -> Option<String> {
        use std::io::Read as _;
        let path = self.trace.as_ref()?;
        let mut text = String::new();
        let read =
            std::fs::File::open(path).and_then(|f| f.take(4 << 20).read_to_string(&mut text));
        let _ = std::fs::remove_file(path);
        read.ok()?;
        super::redirect::location_in_trace(&text)
    }

    /// Runs one git command; returns stdout. Non-zero exit → `GitError::Git` with scrubbed stderr.
    async fn run(
        &self,
        command: &'static str,
        args: &[&str],
        work_tree: bool,
    ) -> Result<String, GitError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(
                self.secret_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .arg("--git-dir")
            .arg(&self.git_dir);
        if work_tree {
            cmd.arg("--work-tree")
                .arg(&self.tree)
                .current_dir(&self.tree);
        } else if let Some(parent) = self.git_dir.parent() {
            cmd.current_dir(parent);
        }
        if command == "fetch"
            && let Some(trace) = &self.trace
        {
            let _ = std::fs::remove_file(trace);
            // Headers only; git redacts `Authorization` in traces (GIT_TRACE_REDACT).
            cmd.env("GIT_TRACE_CURL", trace)
                .env("GIT_TRACE_CURL_NO_DATA", "1")
                .env("GIT_TRACE_REDACT", "1");
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(io("running git (is the git CLI installed?)"))?;
        let pid = child.id();
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(Ok(out)) => Err(GitError::Git {
                url: self.display.clone(),
                command,
                stderr: scrub(&String::from_utf8_lossy(&out.stderr), &self.secrets),
            }),
            Ok(Err(e)) => Err(io(format!("git {command}"))(e)),
            Err(_) => {
                // The child itself died with the dropped future; its helpers (ssh,
                // git-remote-https) share its process group.
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                Err(GitError::Timeout {
                    url: self.display.clone(),
                    command,
                    after: self.timeout,
                })
            }
        }
    }
}

/// Best effort: SIGKILL to a process group. A system call, not `kill(1)`: the agent's image
/// ships no program it does not need (deploy/image/runtime-binaries).
fn kill_group(pid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The deploy key on disk: 0600, created fresh, removed when dropped.
struct KeyFile<'a>(&'a Path);

impl<'a> KeyFile<'a> {
    fn write(path: &'a Path, key: &SecretString) -> Result<KeyFile<'a>, GitError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::remove_file(path);
        let guard = KeyFile(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("ssh identity file"))?;
        let text = key.expose_secret();
        f.write_all(text.as_bytes())
            .map_err(io("ssh identity file"))?;
        // OpenSSH rejects a key without its final newline.
        if !text.ends_with('\n') {
            f.write_all(b"\n").map_err(io("ssh identity file"))?;
        }
        Ok(guard)
    }
}

impl Drop for KeyFile<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"))
}

/// Removes the snapshots of other commits that no pass holds (called under the fetch lock,
/// so no new lease on them can start meanwhile). Failures only leave a folder behind.
fn remove_unused_snapshots(trees: &std::path::Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(trees) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == keep || name.ends_with(".lock") || !e.path().is_dir() {
            continue;
        }
        let lock = trees.join(format!("{name}.lock"));
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
        else {
            continue;
        };
        // Held (shared) by a pass still reading it: leave it for a later fetch.
        if file.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(e.path());
            let _ = std::fs::remove_file(&lock);
        }
    }
}
