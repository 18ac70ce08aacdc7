//! Git repositories built with the git CLI.

pub use gitseal_testenv::e2e::git;
use std::path::{Path, PathBuf};

/// A non-bare repository on branch `main`, at `<root>/<name>` in its own temporary folder.
/// Servers are started on [`TestRepo::root`] and address it as `<name>`.
#[derive(Debug)]
pub struct TestRepo {
    root: tempfile::TempDir,
    path: PathBuf,
}

impl TestRepo {
    /// An empty repository named `repo`.
    pub fn new() -> TestRepo {
        TestRepo::named("repo")
    }

    pub fn named(name: &str) -> TestRepo {
        let root = tempfile::Builder::new()
            .prefix("gitseal-repo-")
            .tempdir()
            .expect("tempdir");
        let path = root.path().join(name);
        std::fs::create_dir_all(&path).expect("mkdir");
        git(&path, &["init", "-q", "-b", "main"]);
        TestRepo { root, path }
    }

    /// An empty repository with `files` committed on `main`; returns it and the commit.
    pub fn with_files(files: &[(&str, &str)]) -> (TestRepo, String) {
        let r = TestRepo::new();
        for (f, text) in files {
            r.write(f, text);
        }
        let sha = r.commit("initial");
        (r, sha)
    }

    /// The work tree (also what `git` servers and `file://` serve).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder holding the repository: the base path to start servers on.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `file://` URL of the repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    pub fn write(&self, file: &str, text: &str) {
        let p = self.path.join(file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.path.join(file)).expect("rm");
    }

    /// Commits everything in the work tree (even nothing); returns the new HEAD.
    pub fn commit(&self, msg: &str) -> String {
        git(&self.path, &["add", "-A"]);
        git(&self.path, &["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    /// An annotated tag at HEAD.
    pub fn tag(&self, name: &str) {
        git(&self.path, &["tag", "-a", "-m", name, name]);
    }

    /// A lightweight tag at HEAD.
    pub fn lightweight_tag(&self, name: &str) {
        git(&self.path, &["tag", name]);
    }

    /// Switches to `branch`, creating it at HEAD when missing.
    pub fn switch(&self, branch: &str) {
        if git(&self.path, &["branch", "--list", branch]).is_empty() {
            git(&self.path, &["switch", "-q", "-c", branch]);
        } else {
            git(&self.path, &["switch", "-q", branch]);
        }
    }

    pub fn head(&self) -> String {
        git(&self.path, &["rev-parse", "HEAD"])
    }

    /// Sets a config value in the served repository (e.g. `uploadpack.allowAnySHA1InWant`).
    pub fn config(&self, key: &str, value: &str) {
        git(&self.path, &["config", key, value]);
    }

    /// Any git command in the repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path, args)
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        TestRepo::new()
    }
}
