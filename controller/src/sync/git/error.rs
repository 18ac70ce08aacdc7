//! Why a fetch failed, in words safe to show: git's stderr scrubbed of credentials and mapped
//! to a variant with a fixed label for metrics and status reasons.

use std::time::Duration;

use zeroize::Zeroizing;

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
    /// The cache folder is not private to the agent's user.
    #[error(
        "cache folder {dir} {why}: it must be private to the agent's user (a folder it owns, mode 0700), or another local user could plant a clone whose config runs programs as the agent; remove it, or give --cache-dir a folder of the agent's own"
    )]
    UnsafeCache { dir: String, why: String },
    /// An http(s) source redirected to another origin.
    #[error(
        "{from} redirected the fetch to {to}: redirects to another origin are refused, so that credentials and requests go only to the origin (scheme, host and port) the source URL names; if {to} is the repository's home, use its URL there"
    )]
    RedirectRefused { from: String, to: String },
    /// A `file://` URL or local path while local sources are not allowed.
    #[error(
        "{url}: file:// URLs and local paths are refused: they read the agent's own file system (other sources' clones, its service account token); a cluster admin may start the agent with --allow-local-sources (tests, local quick starts)"
    )]
    LocalSourceRefused { url: String },
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
            GitError::LocalSourceRefused { .. } => "local_source_refused",
            GitError::RedirectRefused { .. } => "redirect_refused",
            GitError::UnsafeCache { .. } => "unsafe_cache",
            GitError::Git { .. } => "git",
        }
    }

    /// A rule refused the source: retrying cannot help until its spec or the agent's flags
    /// change.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            GitError::LocalSourceRefused { .. } | GitError::RedirectRefused { .. }
        )
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> GitError {
    let context = context.into();
    move |error| GitError::Io { context, error }
}

/// User-supplied text made safe for a message: control characters escaped, length bounded.
pub(super) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(120).flat_map(char::escape_debug).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

fn refused_sha(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("not our ref")
        || s.contains("unadvertised object")
        || s.contains("couldn't find remote ref")
        || s.contains("no such remote ref")
}

/// Maps a failed fetch's (already scrubbed) stderr to an error variant.
/// `reference` is what the message calls the ref (`branch main`).
pub(super) fn classify(stderr: &str, url: &str, reference: &str) -> GitError {
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
            reference: reference.to_owned(),
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
pub(super) fn scrub(stderr: &str, secrets: &[Zeroizing<String>]) -> String {
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
        let r = "branch main";
        let k = |s: &str| classify(s, "u", r).kind();
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
                r
            ),
            GitError::HostKeyMismatch { .. }
        ));
        assert_eq!(
            k("fatal: remote error: access denied or repository not exported: /nope"),
            "unreachable"
        );
        assert_eq!(k("fatal: something else entirely"), "git");
    }
}
