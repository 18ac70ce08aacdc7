//! Fetching a git source with the git CLI: one cached clone per source, a shallow fetch of
//! the ref on every pass, and a checkout of the fetched commit into a work tree.
//!
//! Why the CLI: it speaks every transport and protocol version, honours proxies, and is what
//! git servers are tested against. It runs as a subprocess (`tokio::process`, arguments as a
//! list, never a shell string of ours), with a timeout per command and the child killed when
//! the timeout fires.
//!
//! Isolation: every git command starts from an empty environment plus an allow-list (`PATH`,
//! proxy and CA variables), `HOME` pointing at a private temporary folder, no system or global
//! git config, no terminal prompts, no askpass, `LC_ALL=C` (stable messages to classify), and
//! only the source's own transport allowed (an https source cannot be steered to `file://`,
//! `ext::` or ssh). Symlinks are checked out as plain files holding the link text
//! (`core.symlinks=false`), so a repository cannot point the renderer at files outside its
//! work tree.
//!
//! Local sources (`file://` URLs and paths) read the agent's own file system: other sources'
//! clones, mounted tokens. Whoever may write a GitSync must not reach them, so they are
//! refused unless the source says local sources are allowed ([`GitSource::allow_local`]:
//! `run --allow-local-sources`, and `sync`, whose URL is the operator's own).
//!
//! Credentials never appear on a command line, in a URL stored in the clone's config, in an
//! error message or in a log:
//! - https token / basic auth: an `Authorization` header in `http.<url>.extraHeader`, passed
//!   through the environment (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`) and
//!   scoped to the source URL. A password written into an https URL is moved into that header
//!   and removed from the URL. git never follows a redirect (it would re-target the whole
//!   fetch, header included): a redirect on the same origin starts the fetch over from the
//!   new URL, one to another origin is refused (`redirect.rs`).
//! - ssh: the deploy key is the only secret that touches disk: a 0600 file in a private 0700
//!   temporary folder, written right before each network command and deleted right after it.
//!   ssh runs with `-F /dev/null` (no user or system config), `BatchMode=yes`,
//!   `IdentitiesOnly=yes`, no agent, `StrictHostKeyChecking=yes` and `UserKnownHostsFile` set
//!   to the given known_hosts only: an unknown or changed host key stops the fetch before
//!   anything is sent.
//! - git's stderr is scrubbed (known secret values, URL user info, `Authorization` lines) and
//!   truncated before it enters an error.
//!
//! The cache folder must be private to the agent's user ([`private_cache_dir`], checked on
//! every fetch): a clone's config names programs git runs, so a clone another local user can
//! write to runs their code as the agent. Defence in depth besides: config forced through the
//! environment disables every such program (`core.fsmonitor`, hooks, `uploadpack`, the
//! alternate refs command, askpass and credential helpers, filter drivers by defining none),
//! and the clone's config is rewritten from scratch before each fetch.
//!
//! Cache layout: `<cache_dir>/<key>/git` (the repository, no work tree inside),
//! `<cache_dir>/<key>/tree` (scratch: a checkout in progress) and
//! `<cache_dir>/<key>.trees/<commit>` (one finished checkout per commit, nothing else), where
//! `<key>` hashes the URL (credentials removed) and the ref, so two sources on different
//! branches of one repository never share a work tree. A lock file `<cache_dir>/<key>.lock`
//! serialises fetches of the same key. A returned snapshot never changes and stays until no
//! [`Checkout`] holds it (a shared lock on `<commit>.lock`); a later fetch removes the others.

mod cache;
mod command;
mod error;
mod redirect;
mod reference;
mod remote;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use cache::{default_cache_dir, private_cache_dir};
pub use error::GitError;
pub use reference::GitRef;
pub use remote::{
    GitAuth, Remote, Transport, host_and_port, parse_remote, redact_url, split_host_port,
};

use command::{Git, Stop};
use error::io;
use redirect::{MAX_REDIRECTS, follow};
use remote::check_auth;

/// One git source: where, which revision, how to authenticate, and how long any single git
/// command may take.
#[derive(Clone)]
pub struct GitSource {
    /// `https://…`, `http://…`, `ssh://…`, `git@host:path`, `git://…`, `file://…` or a local path.
    pub url: String,
    pub reference: GitRef,
    pub auth: GitAuth,
    pub timeout: Duration,
    /// Whether `file://` URLs and local paths may be fetched (the `file` transport).
    pub allow_local: bool,
}

impl fmt::Debug for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &redact_url(&self.url))
            .field("reference", &self.reference)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("allow_local", &self.allow_local)
            .finish()
    }
}

/// The result of a fetch: the work tree and the commit it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The commit's snapshot (only the repository's files; the git folder lives elsewhere).
    /// It does not change, and is not removed while this value (or a clone) lives.
    pub dir: PathBuf,
    /// Full object name of the checked-out commit (lowercase hex).
    pub commit: String,
    /// Flux-style revision: `main@sha1:<hex>`, `v1.0@sha1:<hex>`, or `sha1:<hex>` for a commit ref.
    pub revision: String,
    pub(crate) lease: TreeLease,
}

/// A shared lock on a snapshot: while any is held, no fetch removes the snapshot.
#[derive(Clone)]
pub(crate) struct TreeLease {
    /// Held, never read: the shared lock lasts as long as the file is open.
    _lock: std::sync::Arc<std::fs::File>,
}

impl TreeLease {
    fn take(trees: &Path, commit: &str) -> Result<TreeLease, GitError> {
        let path = trees.join(format!("{commit}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("lock file {}", path.display())))?;
        file.lock_shared()
            .map_err(io(format!("lock file {}", path.display())))?;
        Ok(TreeLease {
            _lock: std::sync::Arc::new(file),
        })
    }
}

impl fmt::Debug for TreeLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TreeLease")
    }
}

// Two checkouts of the same commit are equal whoever holds the lease.
impl PartialEq for TreeLease {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TreeLease {}

impl GitSource {
    /// The URL without credentials, for logs.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The folder this source's clone lives in below `cache_dir`.
    pub fn cache_path(&self, cache_dir: &Path) -> PathBuf {
        let remote_url = parse_remote(&self.url)
            .map(|r| r.url)
            .unwrap_or_else(|_| redact_url(&self.url));
        let mut h = Sha256::new();
        h.update(remote_url.as_bytes());
        h.update(b"\n");
        h.update(self.reference.cache_key().as_bytes());
        let digest = h.finalize();
        let key: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        cache_dir.join(key)
    }

    /// Fetches the ref into the cached clone below `cache_dir` (created on the first fetch,
    /// reused after) and checks its commit out into the work tree.
    pub async fn fetch(&self, cache_dir: &Path) -> Result<Checkout, GitError> {
        let reference = self.reference.validated()?;
        let mut remote = parse_remote(&self.url)?;
        if remote.transport == Transport::File && !self.allow_local {
            return Err(GitError::LocalSourceRefused {
                url: remote.display,
            });
        }
        check_auth(&remote, &self.auth)?;
        let cache_dir = private_cache_dir(cache_dir)?;
        let root = self.cache_path(&cache_dir);
        let _lock = self.lock(&root, &remote).await?;

        let private = tempfile::Builder::new()
            .prefix("gitseal-git-")
            .tempdir()
            .map_err(io("private temporary folder"))?;
        // A redirect on the same origin starts over from the new URL; see `redirect.rs`.
        for _ in 0..=MAX_REDIRECTS {
            let git = Git::new(self, &remote, &root, private.path())?;
            let reused = root.join("git").join("HEAD").exists();
            let result = match git.fetch_checkout(&reference, reused).await {
                // A clone left broken (e.g. killed mid-command by a timeout): start over once.
                Err(Stop::Failed(GitError::Git { .. })) if reused => {
                    tokio::fs::remove_dir_all(&root)
                        .await
                        .map_err(io(format!("removing broken cache {}", root.display())))?;
                    git.fetch_checkout(&reference, false).await
                }
                other => other,
            };
            match result {
                Ok(checkout) => return Ok(checkout),
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Redirected(location)) => {
                    remote.url = follow(&remote.url, &location)?;
                    remote.display = redact_url(&remote.url);
                }
            }
        }
        Err(GitError::Unreachable {
            url: redact_url(&self.url),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// An exclusive lock on `<root>.lock`, held for the whole fetch.
    async fn lock(&self, root: &Path, remote: &Remote) -> Result<std::fs::File, GitError> {
        let path = root.with_extension("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("lock file {}", path.display())))?;
        let wait = tokio::task::spawn_blocking(move || file.lock().map(|()| file));
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Ok(Ok(file))) => Ok(file),
            Ok(Ok(Err(e))) => Err(io(format!("lock file {}", path.display()))(e)),
            Ok(Err(e)) => Err(io(format!("lock file {}", path.display()))(
                std::io::Error::other(e),
            )),
            Err(_) => Err(GitError::Timeout {
                url: remote.display.clone(),
                command: "lock",
                after: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn cache_key_ignores_credentials_and_separates_refs() {
        let src = |url: &str, r: &str| GitSource {
            url: url.into(),
            reference: GitRef::Branch(r.into()),
            auth: GitAuth::None,
            timeout: Duration::from_secs(1),
            allow_local: false,
        };
        let base = Path::new("/c");
        assert_eq!(
            src("https://a:b@h/r", "main").cache_path(base),
            src("https://h/r", "main").cache_path(base)
        );
        assert_ne!(
            src("https://h/r", "main").cache_path(base),
            src("https://h/r", "dev").cache_path(base)
        );
        assert_ne!(
            src("https://h/r", "main").cache_path(base),
            src("https://h/r2", "main").cache_path(base)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let s = GitSource {
            url: "https://u:CANARY@h/r".into(),
            reference: GitRef::Branch("main".into()),
            auth: GitAuth::Token(SecretString::from("CANARY")),
            timeout: Duration::from_secs(1),
            allow_local: false,
        };
        assert!(!format!("{s:?}").contains("CANARY"));
    }
}
