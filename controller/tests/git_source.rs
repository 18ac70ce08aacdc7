//! `GitSource::fetch` against real git servers on loopback (tests/support): file://, plain
//! paths, git://, smart HTTP with basic/bearer auth, and ssh with a checked host key.

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use gitseal_agent::sync::git::{Checkout, GitAuth, GitError, GitRef, GitSource};
use secrecy::SecretString;
use support::{GitDaemon, HttpAuth, HttpGitServer, SshGitServer, TestRepo};

const CANARY: &str = "CANARY-git-5e0b9c";

fn source(url: &str, reference: GitRef, auth: GitAuth) -> GitSource {
    GitSource {
        url: url.to_owned(),
        reference,
        auth,
        timeout: Duration::from_secs(60),
        allow_local: true,
    }
}

fn main_branch() -> GitRef {
    GitRef::Branch("main".into())
}

fn read(c: &Checkout, file: &str) -> String {
    std::fs::read_to_string(c.dir.join(file))
        .unwrap_or_else(|e| panic!("{file} in {}: {e}", c.dir.display()))
}

async fn fetch_ok(src: &GitSource, cache: &Path) -> Checkout {
    match src.fetch(cache).await {
        Ok(c) => c,
        Err(e) => panic!("fetch {}: {e} ({})", src.display_url(), e.kind()),
    }
}

async fn fetch_err(src: &GitSource, cache: &Path) -> GitError {
    match src.fetch(cache).await {
        Ok(c) => panic!("fetch {} succeeded: {c:?}", src.display_url()),
        Err(e) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(CANARY), "credential in error: {text}");
            e
        }
    }
}

/// Nothing below the cache (clone config, refs, logs) holds a credential.
fn assert_no_canary_below(dir: &Path) {
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry) {
            let hit = bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes());
            assert!(!hit, "credential written to {}", entry.display());
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out
}

/// First fetch, then a new commit (one file changed, one removed, one added) picked up by a
/// second fetch into the same cached clone.
async fn branch_then_update(repo: &TestRepo, src: &GitSource) {
    let cache = tempfile::tempdir().expect("tempdir");
    let first = fetch_ok(src, cache.path()).await;
    assert_eq!(first.commit, repo.head());
    assert_eq!(first.revision, format!("main@sha1:{}", repo.head()));
    assert_eq!(read(&first, "app/config.yaml"), "v: 1\n");
    assert!(
        !first.dir.join(".git").exists(),
        "work tree holds only the repository's files"
    );

    let git_dir = src.cache_path(cache.path()).join("git");
    std::fs::write(git_dir.join("gitseal-test-marker"), "kept").expect("marker");
    let inode = std::fs::metadata(&git_dir).expect("git dir").ino();
    std::fs::write(first.dir.join("stray.txt"), "left by someone").expect("stray");

    repo.write("app/config.yaml", "v: 2\n");
    repo.remove("old.yaml");
    repo.write("new.yaml", "n: 1\n");
    let second_sha = repo.commit("second");
    let second = fetch_ok(src, cache.path()).await;
    assert_eq!(second.commit, second_sha);
    // Each commit has its own snapshot (see `each_checkout_is_an_immutable_snapshot…`).
    assert_ne!(second.dir, first.dir);
    assert_eq!(read(&second, "app/config.yaml"), "v: 2\n");
    assert_eq!(read(&second, "new.yaml"), "n: 1\n");
    assert!(!second.dir.join("old.yaml").exists());
    assert!(
        !second.dir.join("stray.txt").exists(),
        "untracked files of another checkout are not carried over"
    );
    assert!(
        git_dir.join("gitseal-test-marker").exists(),
        "cached clone reused"
    );
    assert_eq!(
        std::fs::metadata(&git_dir).expect("git dir").ino(),
        inode,
        "cached clone reused"
    );

    // Unchanged: same commit again, same snapshot.
    let again = fetch_ok(src, cache.path()).await;
    assert_eq!(again.commit, second_sha);
    assert_eq!(again.dir, second.dir);
}

fn sample_repo() -> TestRepo {
    let (repo, _) = TestRepo::with_files(&[("app/config.yaml", "v: 1\n"), ("old.yaml", "o: 1\n")]);
    repo
}

/// A tag, a commit that is no branch tip, and a branch that does not exist.
async fn refs(repo: &TestRepo, url: &str, auth: GitAuth) {
    let cache = tempfile::tempdir().expect("tempdir");
    let old = repo.head();
    let old_text = std::fs::read_to_string(repo.path().join("app/config.yaml")).expect("config");
    repo.tag("v1.0");
    repo.write("app/config.yaml", "v: tagged-later\n");
    repo.commit("after tag");
    repo.lightweight_tag("light");

    let tag = fetch_ok(
        &source(url, GitRef::Tag("v1.0".into()), auth.clone()),
        cache.path(),
    )
    .await;
    assert_eq!(tag.commit, old, "annotated tag peeled to its commit");
    assert_eq!(tag.revision, format!("v1.0@sha1:{old}"));
    assert_eq!(read(&tag, "app/config.yaml"), old_text);

    let light = fetch_ok(
        &source(url, "tag:light".parse().expect("ref"), auth.clone()),
        cache.path(),
    )
    .await;
    assert_eq!(light.commit, repo.head());

    let commit = fetch_ok(
        &source(url, GitRef::Commit(old.clone()), auth.clone()),
        cache.path(),
    )
    .await;
    assert_eq!(commit.commit, old);
    assert_eq!(commit.revision, format!("sha1:{old}"));
    assert_eq!(read(&commit, "app/config.yaml"), old_text);

    let missing = fetch_err(
        &source(url, GitRef::Branch("no-such-branch".into()), auth.clone()),
        cache.path(),
    )
    .await;
    assert!(
        matches!(missing, GitError::RefNotFound { .. }),
        "{missing:?}"
    );
    assert_eq!(missing.kind(), "ref_not_found");
    assert!(missing.to_string().contains("no-such-branch"), "{missing}");

    let absent = "0".repeat(39) + "1";
    let e = fetch_err(
        &source(url, GitRef::Commit(absent), auth.clone()),
        cache.path(),
    )
    .await;
    assert!(matches!(e, GitError::RefNotFound { .. }), "{e:?}");

    let e = fetch_err(&source(url, GitRef::Tag("v9".into()), auth), cache.path()).await;
    assert!(matches!(e, GitError::RefNotFound { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------- file://

#[tokio::test]
async fn file_url_branch_update_and_refs() {
    let repo = sample_repo();
    branch_then_update(
        &repo,
        &source(&repo.file_url(), main_branch(), GitAuth::None),
    )
    .await;
    refs(&repo, &repo.file_url(), GitAuth::None).await;
}

#[tokio::test]
async fn plain_local_path() {
    let repo = sample_repo();
    let url = repo.path().to_string_lossy().into_owned();
    branch_then_update(&repo, &source(&url, main_branch(), GitAuth::None)).await;
}

#[tokio::test]
async fn missing_local_repository_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}/nothing-here", dir.path().display());
    let e = fetch_err(&source(&url, main_branch(), GitAuth::None), cache.path()).await;
    assert_eq!(e.kind(), "unreachable", "{e}");
}

#[tokio::test]
async fn broken_cache_is_rebuilt() {
    let repo = sample_repo();
    let cache = tempfile::tempdir().expect("tempdir");
    let src = source(&repo.file_url(), main_branch(), GitAuth::None);
    fetch_ok(&src, cache.path()).await;
    let git_dir = src.cache_path(cache.path()).join("git");
    std::fs::write(git_dir.join("HEAD"), "garbage\n").expect("break HEAD");
    std::fs::write(git_dir.join("index.lock"), "").expect("stale lock");
    let c = fetch_ok(&src, cache.path()).await;
    assert_eq!(c.commit, repo.head());
}

#[tokio::test]
async fn branches_of_one_repository_get_their_own_work_tree() {
    let repo = sample_repo();
    let main_sha = repo.head();
    repo.switch("dev");
    repo.write("app/config.yaml", "v: dev\n");
    let dev_sha = repo.commit("dev");
    let cache = tempfile::tempdir().expect("tempdir");
    let main = fetch_ok(
        &source(&repo.file_url(), main_branch(), GitAuth::None),
        cache.path(),
    )
    .await;
    let dev = fetch_ok(
        &source(
            &repo.file_url(),
            GitRef::Branch("dev".into()),
            GitAuth::None,
        ),
        cache.path(),
    )
    .await;
    assert_ne!(main.dir, dev.dir);
    assert_eq!(
        (main.commit.as_str(), dev.commit.as_str()),
        (main_sha.as_str(), dev_sha.as_str())
    );
    assert_eq!(read(&main, "app/config.yaml"), "v: 1\n");
    assert_eq!(read(&dev, "app/config.yaml"), "v: dev\n");
}

// ---------------------------------------------------------------------------------- git://

#[tokio::test]
async fn git_daemon_branch_update_and_refs() {
    let repo = sample_repo();
    let daemon = GitDaemon::start(repo.root());
    let url = daemon.url(repo.path());
    branch_then_update(&repo, &source(&url, main_branch(), GitAuth::None)).await;
    refs(&repo, &url, GitAuth::None).await;
}

#[tokio::test]
async fn git_daemon_closed_port_is_unreachable() {
    let port = support::free_port();
    let cache = tempfile::tempdir().expect("tempdir");
    let url = format!("git://127.0.0.1:{port}/repo");
    let e = fetch_err(&source(&url, main_branch(), GitAuth::None), cache.path()).await;
    assert!(matches!(e, GitError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn git_daemon_missing_repository_is_unreachable() {
    let repo = sample_repo();
    let daemon = GitDaemon::start(repo.root());
    let cache = tempfile::tempdir().expect("tempdir");
    let url = format!("git://127.0.0.1:{}/nope", daemon.port());
    let e = fetch_err(&source(&url, main_branch(), GitAuth::None), cache.path()).await;
    assert!(matches!(e, GitError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts connections (the kernel's backlog) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut src = source(
        &format!("git://127.0.0.1:{port}/repo"),
        main_branch(),
        GitAuth::None,
    );
    src.timeout = Duration::from_secs(2);
    let e = fetch_err(&src, cache.path()).await;
    assert!(matches!(e, GitError::Timeout { .. }), "{e:?}");
    assert_eq!(e.kind(), "timeout");
    drop(listener);
}

// ---------------------------------------------------------------------------------- http

#[tokio::test]
async fn http_anonymous_branch_update_and_refs() {
    let repo = sample_repo();
    let server = HttpGitServer::start(repo.root(), HttpAuth::None);
    let url = server.url(repo.path());
    branch_then_update(&repo, &source(&url, main_branch(), GitAuth::None)).await;
    refs(&repo, &url, GitAuth::None).await;
    assert!(server.requests().iter().all(|r| r.authorization.is_none()));
}

#[tokio::test]
async fn http_bearer_token() {
    let repo = sample_repo();
    let token = format!("{CANARY}-token");
    let server = HttpGitServer::start(repo.root(), HttpAuth::Bearer(token.clone()));
    let url = server.url(repo.path());
    let cache = tempfile::tempdir().expect("tempdir");

    let good = source(
        &url,
        main_branch(),
        GitAuth::Token(SecretString::from(token.clone())),
    );
    assert_eq!(fetch_ok(&good, cache.path()).await.commit, repo.head());
    let seen = server.requests();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {token}"))),
        "{seen:?}"
    );

    let wrong = source(
        &url,
        main_branch(),
        GitAuth::Token(SecretString::from(format!("{CANARY}-wrong"))),
    );
    let e = fetch_err(&wrong, cache.path()).await;
    assert!(matches!(e, GitError::AuthFailed { .. }), "{e:?}");
    assert_eq!(e.kind(), "auth");

    let none = source(&url, main_branch(), GitAuth::None);
    let e = fetch_err(&none, cache.path()).await;
    assert!(matches!(e, GitError::AuthFailed { .. }), "{e:?}");
    assert_no_canary_below(cache.path());
}

#[tokio::test]
async fn http_basic_auth_and_credentials_in_url() {
    let repo = sample_repo();
    let password = format!("{CANARY}-pw");
    let server = HttpGitServer::start(
        repo.root(),
        HttpAuth::Basic {
            username: "deploy".into(),
            password: password.clone(),
        },
    );
    let url = server.url(repo.path());
    let cache = tempfile::tempdir().expect("tempdir");

    let good = GitAuth::Basic {
        username: "deploy".into(),
        password: SecretString::from(password.clone()),
    };
    assert_eq!(
        fetch_ok(&source(&url, main_branch(), good), cache.path())
            .await
            .commit,
        repo.head()
    );

    let bad = GitAuth::Basic {
        username: "deploy".into(),
        password: SecretString::from(format!("{CANARY}-bad")),
    };
    let e = fetch_err(&source(&url, main_branch(), bad), cache.path()).await;
    assert!(matches!(e, GitError::AuthFailed { .. }), "{e:?}");

    // user:password in the URL: sent as a header, kept out of the clone's config and messages.
    let with_creds = url.replacen("http://", &format!("http://deploy:{password}@"), 1);
    let src = source(&with_creds, main_branch(), GitAuth::None);
    assert!(!format!("{src:?}").contains(CANARY));
    assert!(!src.display_url().contains(CANARY));
    assert_eq!(fetch_ok(&src, cache.path()).await.commit, repo.head());
    let wrong_in_url = url.replacen("http://", &format!("http://deploy:{CANARY}-bad@"), 1);
    let e = fetch_err(
        &source(&wrong_in_url, main_branch(), GitAuth::None),
        cache.path(),
    )
    .await;
    assert!(matches!(e, GitError::AuthFailed { .. }), "{e:?}");
    assert_no_canary_below(cache.path());
}

#[tokio::test]
async fn http_closed_port_is_unreachable_without_leaking_credentials() {
    let port = support::free_port();
    let cache = tempfile::tempdir().expect("tempdir");
    let url = format!("http://user:{CANARY}@127.0.0.1:{port}/repo");
    let auth = GitAuth::Token(SecretString::from(CANARY));
    let e = fetch_err(&source(&url, main_branch(), auth), cache.path()).await;
    assert!(matches!(e, GitError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("http://127.0.0.1:{port}/repo")),
        "{e}"
    );
}

#[tokio::test]
async fn http_missing_repository_is_unreachable() {
    let repo = sample_repo();
    let server = HttpGitServer::start(repo.root(), HttpAuth::None);
    let cache = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}/does-not-exist", server.port());
    let e = fetch_err(&source(&url, main_branch(), GitAuth::None), cache.path()).await;
    assert_eq!(e.kind(), "unreachable", "{e}");
}

// ---------------------------------------------------------------------------------- ssh

fn ssh_auth(server: &SshGitServer, known_hosts: String) -> GitAuth {
    GitAuth::Ssh {
        identity: SecretString::from(server.client_identity()),
        known_hosts,
    }
}

#[tokio::test]
async fn ssh_branch_update_and_refs() {
    let repo = sample_repo();
    let server = SshGitServer::start();
    let url = server.url(repo.path());
    let auth = ssh_auth(&server, server.known_hosts());
    branch_then_update(&repo, &source(&url, main_branch(), auth.clone())).await;
    refs(&repo, &url, auth).await;
}

#[tokio::test]
async fn ssh_host_key_is_checked_before_authenticating() {
    let repo = sample_repo();
    let server = SshGitServer::start();
    let url = server.url(repo.path());
    let cache = tempfile::tempdir().expect("tempdir");
    let attempts = |log: &str| {
        log.lines()
            .filter(|l| l.contains("publickey") || l.contains("Accepted"))
            .count()
    };

    let before = attempts(&server.log());
    let e = fetch_err(
        &source(
            &url,
            main_branch(),
            ssh_auth(&server, server.wrong_known_hosts()),
        ),
        cache.path(),
    )
    .await;
    assert!(matches!(e, GitError::HostKeyMismatch { .. }), "{e:?}");
    assert_eq!(e.kind(), "host_key");

    let e = fetch_err(
        &source(
            &url,
            main_branch(),
            ssh_auth(&server, server.other_host_known_hosts()),
        ),
        cache.path(),
    )
    .await;
    assert!(matches!(e, GitError::UnknownHostKey { .. }), "{e:?}");

    let e = fetch_err(
        &source(&url, main_branch(), ssh_auth(&server, String::new())),
        cache.path(),
    )
    .await;
    assert!(matches!(e, GitError::UnknownHostKey { .. }), "{e:?}");
    // Without a key or known_hosts at all: still refused on the host key.
    let e = fetch_err(&source(&url, main_branch(), GitAuth::None), cache.path()).await;
    assert_eq!(e.kind(), "host_key", "{e}");
    assert_eq!(
        attempts(&server.log()),
        before,
        "the client key was offered to an unverified host:\n{}",
        server.log()
    );

    // The right known_hosts with a key the server does not accept.
    let stranger = GitAuth::Ssh {
        identity: SecretString::from(server.stranger_identity()),
        known_hosts: server.known_hosts(),
    };
    let e = fetch_err(&source(&url, main_branch(), stranger), cache.path()).await;
    assert!(matches!(e, GitError::AuthFailed { .. }), "{e:?}");

    // The deploy key is gone from disk once the fetch returns.
    let ok = fetch_ok(
        &source(&url, main_branch(), ssh_auth(&server, server.known_hosts())),
        cache.path(),
    )
    .await;
    assert_eq!(ok.commit, repo.head());
    let key = server.client_identity();
    let marker = key.lines().nth(1).unwrap_or_default().to_owned();
    for f in walk(cache.path()) {
        let text = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains(&marker),
            "deploy key left in {}",
            f.display()
        );
    }
}

#[tokio::test]
async fn ssh_closed_port_is_unreachable() {
    let port = support::free_port();
    let cache = tempfile::tempdir().expect("tempdir");
    let url = format!("ssh://git@127.0.0.1:{port}/srv/repo");
    let auth = GitAuth::Ssh {
        identity: SecretString::from(format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARY}\n-----END OPENSSH PRIVATE KEY-----\n"
        )),
        known_hosts: String::new(),
    };
    let e = fetch_err(&source(&url, main_branch(), auth), cache.path()).await;
    assert!(matches!(e, GitError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn commit_refused_by_a_v0_server_falls_back_to_a_full_fetch() {
    let repo = sample_repo();
    let old = repo.head();
    repo.write("app/config.yaml", "v: 2\n");
    repo.commit("tip");
    let server = HttpGitServer::start_v0(repo.root(), HttpAuth::None);
    let url = server.url(repo.path());
    let cache = tempfile::tempdir().expect("tempdir");
    // The tip is advertised: fetched directly.
    fetch_ok(
        &source(&url, GitRef::Commit(repo.head()), GitAuth::None),
        cache.path(),
    )
    .await;
    let adverts = |s: &HttpGitServer| {
        s.requests()
            .iter()
            .filter(|r| r.uri.contains("/info/refs"))
            .count()
    };
    let before = adverts(&server);
    let c = fetch_ok(
        &source(&url, GitRef::Commit(old.clone()), GitAuth::None),
        cache.path(),
    )
    .await;
    assert_eq!(c.commit, old);
    assert_eq!(
        adverts(&server) - before,
        2,
        "refused by-commit fetch, then the full fetch"
    );
    assert_eq!(read(&c, "app/config.yaml"), "v: 1\n");
    // A fetch by ref still works on the clone afterwards.
    let b = fetch_ok(&source(&url, main_branch(), GitAuth::None), cache.path()).await;
    assert_eq!(b.commit, repo.head());
}

/// Each pass reads its own snapshot of its commit: a later fetch of the same URL and ref (a
/// second GitSync, or the next pass) never changes a snapshot someone still holds, and
/// removes the snapshots no one holds.
#[tokio::test]
async fn each_checkout_is_an_immutable_snapshot_until_released() {
    let (repo, first) = TestRepo::with_files(&[("apps/a.yaml", "one\n"), ("apps/b.yaml", "b\n")]);
    let cache = tempfile::tempdir().expect("tempdir");
    let src = source(&repo.file_url(), main_branch(), GitAuth::None);
    let held = fetch_ok(&src, cache.path()).await;
    assert_eq!(held.commit, first);

    repo.write("apps/a.yaml", "two\n");
    repo.remove("apps/b.yaml");
    let second = repo.commit("second");
    let newer = fetch_ok(&src, cache.path()).await;
    assert_eq!(newer.commit, second);
    assert_ne!(held.dir, newer.dir);
    assert_eq!(
        read(&held, "apps/a.yaml"),
        "one\n",
        "a held snapshot changed"
    );
    assert_eq!(read(&held, "apps/b.yaml"), "b\n");
    assert_eq!(read(&newer, "apps/a.yaml"), "two\n");
    assert!(!newer.dir.join("apps/b.yaml").exists());

    // The same commit again: the same snapshot, no new checkout.
    let again = fetch_ok(&src, cache.path()).await;
    assert_eq!(again.dir, newer.dir);

    // Released, the old snapshot goes at the next fetch; the held one stays.
    let old_dir = held.dir.clone();
    drop(held);
    let _ = fetch_ok(&src, cache.path()).await;
    assert!(!old_dir.exists(), "an unused snapshot was kept");
    assert_eq!(read(&newer, "apps/a.yaml"), "two\n");
}
