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
//! only the transports `https`, `http`, `ssh`, `git` and `file` allowed. Symlinks are checked
//! out as plain files holding the link text (`core.symlinks=false`), so a repository cannot
//! point the renderer at files outside its work tree.
//!
//! Credentials never appear on a command line, in a URL stored in the clone's config, in an
//! error message or in a log:
//! - https token / basic auth: an `Authorization` header in `http.<url>.extraHeader`, passed
//!   through the environment (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`) and
//!   scoped to the source URL, so a redirect to another host does not receive it. A password
//!   written into an https URL is moved into that header and removed from the URL.
//! - ssh: the deploy key is the only secret that touches disk: a 0600 file in a private 0700
//!   temporary folder, written right before each network command and deleted right after it.
//!   ssh runs with `-F /dev/null` (no user or system config), `BatchMode=yes`,
//!   `IdentitiesOnly=yes`, no agent, `StrictHostKeyChecking=yes` and `UserKnownHostsFile` set
//!   to the given known_hosts only: an unknown or changed host key stops the fetch before
//!   anything is sent.
//! - git's stderr is scrubbed (known secret values, URL user info, `Authorization` lines) and
//!   truncated before it enters an error.
//!
//! Cache layout: `<cache_dir>/<key>/git` (the repository, no work tree inside) and
//! `<cache_dir>/<key>/tree` (the checked-out files, nothing else), where `<key>` hashes the
//! URL (credentials removed) and the ref, so two sources on different branches of one
//! repository never share a work tree. A lock file `<cache_dir>/<key>.lock` serialises fetches
//! of the same key; the returned work tree stays as it is until the next fetch of the same
//! URL and ref.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Which revision of the repository to check out.
///
/// Text syntax (`GitRef::from_str`, used by `--ref`):
/// - `main`, `refs/heads/main`, `branch:main` → a branch;
/// - `tag:v1.0`, `refs/tags/v1.0` → a tag (annotated tags are peeled to their commit);
/// - a full 40-hex (or 64-hex) object name, or `commit:<hex>` → a commit, which need not be
///   the tip of any branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    Commit(String),
}

/// Credentials for the source.
#[derive(Debug, Clone)]
pub enum GitAuth {
    None,
    /// HTTP basic auth (https/http).
    Basic {
        username: String,
        password: SecretString,
    },
    /// HTTP bearer token (`Authorization: Bearer …`).
    Token(SecretString),
    /// An ssh deploy key (OpenSSH private key text, not passphrase-protected) and the
    /// known_hosts lines the server's host key must match.
    Ssh {
        identity: SecretString,
        known_hosts: String,
    },
}

/// One git source: where, which revision, how to authenticate, and how long any single git
/// command may take.
#[derive(Clone)]
pub struct GitSource {
    /// `https://…`, `http://…`, `ssh://…`, `git@host:path`, `git://…`, `file://…` or a local path.
    pub url: String,
    pub reference: GitRef,
    pub auth: GitAuth,
    pub timeout: Duration,
}

impl fmt::Debug for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &redact_url(&self.url))
            .field("reference", &self.reference)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The result of a fetch: the work tree and the commit it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The work tree (only the repository's files; the git folder lives beside it).
    pub dir: PathBuf,
    /// Full object name of the checked-out commit (lowercase hex).
    pub commit: String,
    /// Flux-style revision: `main@sha1:<hex>`, `v1.0@sha1:<hex>`, or `sha1:<hex>` for a commit ref.
    pub revision: String,
}

/// Why a fetch failed. URLs in messages never carry credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The URL or ref cannot be used as given.
    #[error("invalid git source: {0}")]
    Invalid(String),
    #[error(
        "{url}: unreachable ({reason}); check the URL and that the server is reachable from the agent"
    )]
    Unreachable { url: String, reason: String },
    #[error("{url}: authentication failed; check the credentials named by the source's secretRef")]
    AuthFailed { url: String },
    #[error(
        "{url}: the server's host key does not match known_hosts (possible man-in-the-middle, or the key was rotated); verify the key and update known_hosts"
    )]
    HostKeyMismatch { url: String },
    #[error(
        "{url}: no known_hosts entry for this host (strict host key checking); add the server's key line, e.g. from `ssh-keyscan -p PORT HOST`, after verifying it"
    )]
    UnknownHostKey { url: String },
    #[error("{url}: {reference} not found")]
    RefNotFound { url: String, reference: String },
    #[error("{url}: git {command} did not finish within {}; raise the source's timeout if the repository is large", humantime_secs(*after))]
    Timeout {
        url: String,
        command: &'static str,
        after: Duration,
    },
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("{url}: git {command} failed: {stderr}")]
    Git {
        url: String,
        command: &'static str,
        stderr: String,
    },
}

impl GitError {
    /// A fixed, bounded label for metrics and status reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            GitError::Invalid(_) => "invalid",
            GitError::Unreachable { .. } => "unreachable",
            GitError::AuthFailed { .. } => "auth",
            GitError::HostKeyMismatch { .. } | GitError::UnknownHostKey { .. } => "host_key",
            GitError::RefNotFound { .. } => "ref_not_found",
            GitError::Timeout { .. } => "timeout",
            GitError::Io { .. } => "io",
            GitError::Git { .. } => "git",
        }
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> GitError {
    let context = context.into();
    move |error| GitError::Io { context, error }
}

// ---------------------------------------------------------------------------------------------
// Refs

impl GitRef {
    /// What the error messages call it: `branch main`, `tag v1.0`, `commit 1a2b…`.
    pub fn describe(&self) -> String {
        match self {
            GitRef::Branch(b) => format!("branch {b}"),
            GitRef::Tag(t) => format!("tag {t}"),
            GitRef::Commit(c) => format!("commit {c}"),
        }
    }

    /// Flux-style revision string for a commit fetched through this ref.
    pub fn revision(&self, commit: &str) -> String {
        let algo = if commit.len() == 64 { "sha256" } else { "sha1" };
        match self {
            GitRef::Branch(name) | GitRef::Tag(name) => format!("{name}@{algo}:{commit}"),
            GitRef::Commit(_) => format!("{algo}:{commit}"),
        }
    }

    /// Checks the name (git's ref-name rules, and never option-like), normalises a commit to
    /// lowercase.
    pub fn validated(&self) -> Result<GitRef, GitError> {
        match self {
            GitRef::Branch(b) => check_ref_name(b, "branch").map(|()| self.clone()),
            GitRef::Tag(t) => check_ref_name(t, "tag").map(|()| self.clone()),
            GitRef::Commit(c) => {
                if is_object_name(c) {
                    Ok(GitRef::Commit(c.to_ascii_lowercase()))
                } else {
                    Err(GitError::Invalid(format!(
                        "commit `{}`: expected a full 40-hex object name (abbreviated names cannot be fetched)",
                        printable(c)
                    )))
                }
            }
        }
    }

    fn cache_key(&self) -> String {
        match self {
            GitRef::Branch(b) => format!("refs/heads/{b}"),
            GitRef::Tag(t) => format!("refs/tags/{t}"),
            GitRef::Commit(c) => c.clone(),
        }
    }
}

impl fmt::Display for GitRef {
    /// The text syntax `from_str` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitRef::Branch(b) if is_object_name(b) || b.contains(':') => write!(f, "branch:{b}"),
            GitRef::Branch(b) => f.write_str(b),
            GitRef::Tag(t) => write!(f, "tag:{t}"),
            GitRef::Commit(c) => f.write_str(c),
        }
    }
}

impl FromStr for GitRef {
    type Err = GitError;
    fn from_str(s: &str) -> Result<GitRef, GitError> {
        let r = if let Some(t) = s
            .strip_prefix("tag:")
            .or_else(|| s.strip_prefix("refs/tags/"))
        {
            GitRef::Tag(t.to_owned())
        } else if let Some(c) = s.strip_prefix("commit:") {
            GitRef::Commit(c.to_owned())
        } else if let Some(b) = s
            .strip_prefix("branch:")
            .or_else(|| s.strip_prefix("refs/heads/"))
        {
            GitRef::Branch(b.to_owned())
        } else if is_object_name(s) {
            GitRef::Commit(s.to_owned())
        } else {
            GitRef::Branch(s.to_owned())
        };
        r.validated()
    }
}

fn is_object_name(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// git's `check-ref-format` rules, plus: never starts with `-` (no option injection).
fn check_ref_name(name: &str, what: &str) -> Result<(), GitError> {
    let bad = |why: &str| {
        Err(GitError::Invalid(format!(
            "{what} `{}`: {why}",
            printable(name)
        )))
    };
    if name.is_empty() {
        return bad("empty name");
    }
    if name.starts_with('-') {
        return bad("must not start with `-`");
    }
    if name
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b))
    {
        return bad("contains a space, control character or one of ~^:?*[\\");
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") || name == "@" {
        return bad("contains `..`, `@{` or `//`, or is `@`");
    }
    if name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with('.')
        || name.ends_with(".lock")
    {
        return bad("starts or ends with `/`, ends with `.` or `.lock`");
    }
    if name.split('/').any(|c| c.starts_with('.')) {
        return bad("a path component starts with `.`");
    }
    Ok(())
}

/// User-supplied text made safe for a message: control characters escaped, length bounded.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(120).flat_map(char::escape_debug).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// URLs

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Ssh,
    Git,
    File,
}

/// A URL split into what git is given and the credentials taken out of it.
struct Remote {
    transport: Transport,
    /// Given to git and stored in the clone's config: no password, no http user info.
    url: String,
    /// For messages.
    display: String,
    /// `user:password@` found in an http(s) URL.
    basic: Option<(String, SecretString)>,
}

/// The URL with credentials removed, for messages and logs: http(s) and git URLs lose their
/// whole user info (a token is often written as the user name), ssh URLs keep the user name
/// and lose any password.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // scp-like `user@host:path` and local paths carry no secret.
        return printable(url);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        None => authority.to_owned(),
        Some((userinfo, host)) => {
            let ssh = matches!(
                scheme.to_ascii_lowercase().as_str(),
                "ssh" | "git+ssh" | "ssh+git"
            );
            match userinfo.split_once(':') {
                _ if !ssh => host.to_owned(),
                Some((user, _)) => format!("{user}@{host}"),
                None => format!("{userinfo}@{host}"),
            }
        }
    };
    printable(&format!("{scheme}://{host}{tail}"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_remote(url: &str) -> Result<Remote, GitError> {
    let invalid = |why: &str| {
        Err(GitError::Invalid(format!(
            "url `{}`: {why}",
            redact_url(url)
        )))
    };
    if url.is_empty() {
        return invalid("empty");
    }
    if url.starts_with('-') || url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return invalid("must not start with `-` or contain control characters");
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" => Transport::Http,
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "git" => Transport::Git,
            "file" => Transport::File,
            _ => return invalid("unsupported scheme (use https, http, ssh, git or file)"),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let mut basic = None;
        let url = match (transport, authority.rsplit_once('@')) {
            (Transport::Http, Some((userinfo, host))) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                basic = Some((
                    percent_decode(user),
                    SecretString::from(percent_decode(pass)),
                ));
                format!("{scheme}://{host}{tail}")
            }
            (_, Some((_, _))) => redact_url(url),
            (_, None) => url.to_owned(),
        };
        return Ok(Remote {
            transport,
            display: redact_url(&url),
            url,
            basic,
        });
    }
    // `<helper>::<address>` runs a remote helper (`ext::` runs any command): never.
    if let Some((helper, _)) = url.split_once("::")
        && !helper.is_empty()
        && helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return invalid("remote helper syntax `<transport>::<address>` is not supported");
    }
    // git's rule: a colon before the first slash makes it scp-like `[user@]host:path`.
    let colon = url.find(':');
    let slash = url.find('/');
    if let Some(c) = colon
        && slash.is_none_or(|s| c < s)
    {
        if c == 0 {
            return invalid("missing host before `:`");
        }
        return Ok(Remote {
            transport: Transport::Ssh,
            url: url.to_owned(),
            display: printable(url),
            basic: None,
        });
    }
    // A local path; made absolute because git runs inside the cache folder.
    let path = std::path::absolute(url)
        .map_err(io(format!("local repository path {}", printable(url))))?;
    let path = path.to_string_lossy().into_owned();
    Ok(Remote {
        transport: Transport::File,
        display: printable(&path),
        url: path,
        basic: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Fetch

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
        let remote = parse_remote(&self.url)?;
        check_auth(&remote, &self.auth)?;
        let cache_dir = std::path::absolute(cache_dir).map_err(io("cache folder"))?;
        tokio::fs::create_dir_all(&cache_dir)
            .await
            .map_err(io(format!("cache folder {}", cache_dir.display())))?;
        let root = self.cache_path(&cache_dir);
        let _lock = self.lock(&root, &remote).await?;

        let private = tempfile::Builder::new()
            .prefix("gitseal-git-")
            .tempdir()
            .map_err(io("private temporary folder"))?;
        let git = Git::new(self, &remote, &root, private.path())?;
        let reused = root.join("git").join("HEAD").exists();
        match git.fetch_checkout(&reference, reused).await {
            // A clone left broken (e.g. killed mid-command by a timeout): start over once.
            Err(GitError::Git { .. }) if reused => {
                tokio::fs::remove_dir_all(&root)
                    .await
                    .map_err(io(format!("removing broken cache {}", root.display())))?;
                git.fetch_checkout(&reference, false).await
            }
            other => other,
        }
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

fn check_auth(remote: &Remote, auth: &GitAuth) -> Result<(), GitError> {
    match (auth, remote.transport) {
        (GitAuth::Basic { .. } | GitAuth::Token(_), Transport::Http) => Ok(()),
        (GitAuth::Ssh { .. }, Transport::Ssh) => Ok(()),
        (GitAuth::None, _) => Ok(()),
        (GitAuth::Basic { .. } | GitAuth::Token(_), _) => Err(GitError::Invalid(format!(
            "{}: a token or username/password applies to https URLs only",
            remote.display
        ))),
        (GitAuth::Ssh { .. }, _) => Err(GitError::Invalid(format!(
            "{}: an ssh identity applies to ssh URLs (ssh://… or git@host:path) only",
            remote.display
        ))),
    }
}

/// Runs git commands for one fetch.
struct Git {
    git_dir: PathBuf,
    tree: PathBuf,
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
}

impl Git {
    fn new(src: &GitSource, remote: &Remote, root: &Path, private: &Path) -> Result<Git, GitError> {
        use base64::Engine as _;
        let home = private.join("home");
        std::fs::create_dir(&home).map_err(io("private HOME"))?;
        let mut config: Vec<(String, String)> = vec![("protocol.allow".into(), "never".into())];
        for p in ["https", "http", "ssh", "git", "file"] {
            config.push((format!("protocol.{p}.allow"), "always".into()));
        }
        for (k, v) in [
            ("core.symlinks", "false"),
            ("core.hooksPath", "/dev/null"),
            ("core.askPass", ""),
            ("credential.helper", ""),
            ("advice.detachedHead", "false"),
            ("gc.autoDetach", "false"),
            ("maintenance.autoDetach", "false"),
            ("fetch.recurseSubmodules", "false"),
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
            url: remote.url.clone(),
            display: remote.display.clone(),
            timeout: src.timeout,
            env,
            secret_env,
            secrets,
            identity,
        })
    }

    async fn fetch_checkout(&self, reference: &GitRef, reused: bool) -> Result<Checkout, GitError> {
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
        self.run("config", &["config", "remote.origin.url", &self.url], false)
            .await?;

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
                        Err(GitError::RefNotFound { .. }) => {
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
        self.run(
            "checkout",
            &["checkout", "--quiet", "--force", "--detach", &commit],
            true,
        )
        .await?;
        self.run("clean", &["clean", "--quiet", "-ffdx"], true)
            .await?;
        Ok(Checkout {
            dir: self.tree.clone(),
            revision: reference.revision(&commit),
            commit,
        })
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

    async fn fetch(&self, args: &[&str], reference: &GitRef) -> Result<(), GitError> {
        let mut all = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--force",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
        ];
        all.extend_from_slice(args);
        let _key = match &self.identity {
            Some((path, key)) => Some(KeyFile::write(path, key)?),
            None => None,
        };
        match self.run("fetch", &all, false).await {
            Err(GitError::Git { stderr, .. }) => Err(classify(&stderr, &self.display, reference)),
            other => other.map(|_| ()),
        }
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
                    kill_group(pid).await;
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

/// Best effort: SIGKILL to a process group, through `kill(1)` (no unsafe code here).
async fn kill_group(pid: u32) {
    let _ = tokio::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
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

fn refused_sha(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("not our ref")
        || s.contains("unadvertised object")
        || s.contains("couldn't find remote ref")
        || s.contains("no such remote ref")
}

/// Maps a failed fetch's (already scrubbed) stderr to an error variant.
fn classify(stderr: &str, url: &str, reference: &GitRef) -> GitError {
    let s = stderr.to_ascii_lowercase();
    let url = url.to_owned();
    let has = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    if has(&[
        "remote host identification has changed",
        "host key for",
        "key mismatch",
    ]) && has(&["changed", "mismatch"])
    {
        return GitError::HostKeyMismatch { url };
    }
    if has(&["host key is known", "host key verification failed"]) {
        return GitError::UnknownHostKey { url };
    }
    // git daemon says "access denied or repository not exported" for a missing repository.
    if has(&["repository not exported", "no such repository"]) {
        return GitError::Unreachable {
            url,
            reason: "no git repository at this URL".into(),
        };
    }
    if has(&[
        "authentication failed",
        "terminal prompts disabled",
        "could not read username",
        "could not read password",
        "permission denied (publickey",
        "permission denied, please try again",
        "returned error: 401",
        "returned error: 403",
        "access denied",
        "http basic: access denied",
    ]) {
        return GitError::AuthFailed { url };
    }
    let unreachable = [
        ("connection refused", "connection refused"),
        ("couldn't connect to server", "connection refused"),
        ("could not resolve host", "could not resolve host"),
        ("could not resolve hostname", "could not resolve host"),
        ("name or service not known", "could not resolve host"),
        (
            "temporary failure in name resolution",
            "could not resolve host",
        ),
        ("connection timed out", "connection timed out"),
        ("operation timed out", "connection timed out"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network is unreachable"),
        ("connection reset", "connection reset"),
        (
            "does not appear to be a git repository",
            "no git repository at this URL",
        ),
        ("repository not exported", "no git repository at this URL"),
        ("not found", "no git repository at this URL"),
        ("ssl certificate problem", "TLS certificate not trusted"),
        ("unable to access", "cannot access the server"),
    ];
    if has(&["couldn't find remote ref", "no such remote ref"]) || refused_sha(&s) {
        return GitError::RefNotFound {
            url,
            reference: reference.describe(),
        };
    }
    for (needle, reason) in unreachable {
        if s.contains(needle) {
            return GitError::Unreachable {
                url,
                reason: reason.to_owned(),
            };
        }
    }
    GitError::Git {
        url,
        command: "fetch",
        stderr: stderr.to_owned(),
    }
}

/// git's stderr made safe for an error: known secrets and URL user info removed,
/// `Authorization` lines dropped, control characters escaped, the last lines kept.
fn scrub(stderr: &str, secrets: &[Zeroizing<String>]) -> String {
    let mut text = stderr.to_owned();
    for s in secrets {
        if !s.is_empty() {
            text = text.replace(s.as_str(), "[REDACTED]");
        }
    }
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().contains("authorization"))
        .map(redact_urls_in)
        .map(|l| l.chars().filter(|c| !c.is_control()).collect())
        .collect();
    let tail = &lines[lines.len().saturating_sub(6)..];
    let mut out = tail.join("; ");
    if out.chars().count() > 600 {
        out = out.chars().take(600).collect::<String>() + "…";
    }
    if out.is_empty() {
        "(no message)".into()
    } else {
        out
    }
}

/// Removes user info from every `scheme://user@host` in a line of text.
fn redact_urls_in(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn ref_syntax() {
        let p = |s: &str| s.parse::<GitRef>();
        assert_eq!(p("main").ok(), Some(GitRef::Branch("main".into())));
        assert_eq!(
            p("refs/heads/feature/x").ok(),
            Some(GitRef::Branch("feature/x".into()))
        );
        assert_eq!(p("tag:v1.0").ok(), Some(GitRef::Tag("v1.0".into())));
        assert_eq!(p("refs/tags/v1.0").ok(), Some(GitRef::Tag("v1.0".into())));
        assert_eq!(p(SHA).ok(), Some(GitRef::Commit(SHA.into())));
        assert_eq!(
            p(&SHA.to_uppercase()).ok(),
            Some(GitRef::Commit(SHA.into()))
        );
        assert_eq!(
            p(&format!("commit:{SHA}")).ok(),
            Some(GitRef::Commit(SHA.into()))
        );
        assert_eq!(
            p(&format!("branch:{SHA}")).ok(),
            Some(GitRef::Branch(SHA.into()))
        );
        for bad in [
            "",
            "-x",
            "a b",
            "a..b",
            "a:b",
            "x.lock",
            "a/",
            "/a",
            "a//b",
            ".hidden",
            "a/.b",
            "@",
            "a@{1}",
            "commit:abc",
            "tag:",
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
        for r in [
            GitRef::Branch("main".into()),
            GitRef::Branch(SHA.into()),
            GitRef::Tag("v1".into()),
            GitRef::Commit(SHA.into()),
        ] {
            assert_eq!(r.to_string().parse::<GitRef>().ok(), Some(r));
        }
    }

    #[test]
    fn ref_error_text_is_printable() {
        let e = "bad\u{1b}[31mname"
            .parse::<GitRef>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains('\u{1b}'), "{e}");
        assert_eq!(
            "a b".parse::<GitRef>().err().map(|e| e.kind()),
            Some("invalid")
        );
    }

    #[test]
    fn revisions() {
        assert_eq!(
            GitRef::Branch("main".into()).revision(SHA),
            format!("main@sha1:{SHA}")
        );
        assert_eq!(
            GitRef::Tag("v1.0".into()).revision(SHA),
            format!("v1.0@sha1:{SHA}")
        );
        assert_eq!(
            GitRef::Commit(SHA.into()).revision(SHA),
            format!("sha1:{SHA}")
        );
        let long = "a".repeat(64);
        assert_eq!(
            GitRef::Commit(long.clone()).revision(&long),
            format!("sha256:{long}")
        );
    }

    #[test]
    fn url_redaction() {
        assert_eq!(
            redact_url("https://user:tok@example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            redact_url("https://tok@example.com/a.git"),
            "https://example.com/a.git"
        );
        assert_eq!(
            redact_url("https://example.com/a@b.git"),
            "https://example.com/a@b.git"
        );
        assert_eq!(
            redact_url("ssh://git:pw@example.com:22/a.git"),
            "ssh://git@example.com:22/a.git"
        );
        assert_eq!(
            redact_url("ssh://git@example.com/a.git"),
            "ssh://git@example.com/a.git"
        );
        assert_eq!(
            redact_url("git@example.com:org/a.git"),
            "git@example.com:org/a.git"
        );
        assert_eq!(redact_url("/srv/git/a"), "/srv/git/a");
    }

    #[test]
    fn remotes() -> Result<(), GitError> {
        let r = parse_remote("https://u:p%40ss@example.com/a.git")?;
        assert_eq!(
            (r.transport, r.url.as_str()),
            (Transport::Http, "https://example.com/a.git")
        );
        let (u, p) = r.basic.expect("basic from url");
        assert_eq!((u.as_str(), p.expose_secret()), ("u", "p@ss"));
        assert_eq!(
            parse_remote("git@github.com:o/r.git")?.transport,
            Transport::Ssh
        );
        assert_eq!(
            parse_remote("ssh://git@h:2222/r")?.transport,
            Transport::Ssh
        );
        assert_eq!(parse_remote("git://h/r")?.transport, Transport::Git);
        assert_eq!(parse_remote("file:///srv/r")?.transport, Transport::File);
        let local = parse_remote("rel/repo")?;
        assert_eq!(local.transport, Transport::File);
        assert!(Path::new(&local.url).is_absolute());
        for bad in [
            "",
            "-oProxyCommand=x",
            "ext::sh -c x",
            "ftp://h/r",
            ":r",
            "https://h/\nx",
        ] {
            assert!(
                matches!(parse_remote(bad), Err(GitError::Invalid(_))),
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn auth_must_fit_transport() {
        let src = |url: &str, auth| GitSource {
            url: url.into(),
            reference: GitRef::Branch("main".into()),
            auth,
            timeout: Duration::from_secs(5),
        };
        let token = GitAuth::Token(SecretString::from("t"));
        let ssh = GitAuth::Ssh {
            identity: SecretString::from("k"),
            known_hosts: String::new(),
        };
        let check = |s: GitSource| parse_remote(&s.url).and_then(|r| check_auth(&r, &s.auth));
        assert!(check(src("https://h/r", token.clone())).is_ok());
        assert!(check(src("ssh://h/r", token)).is_err());
        assert!(check(src("git@h:r", ssh.clone())).is_ok());
        assert!(check(src("https://h/r", ssh)).is_err());
    }

    #[test]
    fn stderr_is_scrubbed() {
        let secrets = vec![Zeroizing::new("CANARY123".to_owned())];
        let raw = "fatal: unable to access 'https://bob:CANARY123@h/r/': The requested URL returned error: 401\n\
                   > Authorization: Bearer CANARY123\nremote: echo CANARY123\n\x1b[31mred";
        let s = scrub(raw, &secrets);
        assert!(
            !s.contains("CANARY123") && !s.contains("bob") && !s.contains('\x1b'),
            "{s}"
        );
        assert!(s.contains("https://h/r/"), "{s}");
        assert_eq!(scrub("", &secrets), "(no message)");
        assert!(scrub(&"x".repeat(5000), &secrets).chars().count() <= 601);
    }

    #[test]
    fn classification() {
        let r = GitRef::Branch("main".into());
        let k = |s: &str| classify(s, "u", &r).kind();
        assert_eq!(
            k("fatal: couldn't find remote ref refs/heads/nope"),
            "ref_not_found"
        );
        assert_eq!(
            k(
                "fatal: unable to access 'http://127.0.0.1:1/r/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server"
            ),
            "unreachable"
        );
        assert_eq!(
            k(
                "ssh: connect to host 127.0.0.1 port 1: Connection refused\nfatal: Could not read from remote repository."
            ),
            "unreachable"
        );
        assert_eq!(
            k("fatal: could not read Username for 'http://h': terminal prompts disabled"),
            "auth"
        );
        assert_eq!(
            k(
                "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository."
            ),
            "auth"
        );
        assert_eq!(
            k(
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed."
            ),
            "host_key"
        );
        assert!(matches!(
            classify(
                "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
                "u",
                &r
            ),
            GitError::HostKeyMismatch { .. }
        ));
        assert_eq!(
            k("fatal: remote error: access denied or repository not exported: /nope"),
            "unreachable"
        );
        assert_eq!(k("fatal: something else entirely"), "git");
    }

    #[test]
    fn cache_key_ignores_credentials_and_separates_refs() {
        let src = |url: &str, r: &str| GitSource {
            url: url.into(),
            reference: GitRef::Branch(r.into()),
            auth: GitAuth::None,
            timeout: Duration::from_secs(1),
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
        };
        assert!(!format!("{s:?}").contains("CANARY"));
    }
}
