//! Which revision to check out: the reference grammar of `--ref` and `spec.ref` (branch, tag
//! or commit), git's ref-name rules, and the Flux-style revision string of a fetched commit.

use std::fmt;
use std::str::FromStr;

use super::error::{GitError, printable};

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

    pub(super) fn cache_key(&self) -> String {
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
            // Spelled out where the bare name would read back as something else: a commit, a
            // prefixed form, or `refs/tags/…` (found by the git_ref fuzz target).
            GitRef::Branch(b) if is_object_name(b) || b.contains(':') || b.starts_with("refs/") => {
                write!(f, "branch:{b}")
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn text_form_reads_back() {
        for text in [
            "branch:refs/tags/v1",
            "branch:refs/heads/x",
            "main",
            "tag:v1",
            "refs/tags/v1",
        ] {
            let r: GitRef = text.parse().unwrap();
            assert_eq!(r.to_string().parse::<GitRef>().unwrap(), r, "{text}");
        }
        assert_eq!(
            "branch:refs/tags/v1".parse::<GitRef>().unwrap().to_string(),
            "branch:refs/tags/v1"
        );
    }

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
}
