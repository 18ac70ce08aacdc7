//! Helpers shared by the CLI integration tests: a temporary folder per test, the built
//! `gitseal` binary run as a real process, and checks every run must pass.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_yaml::Value;
use tempfile::TempDir;

/// A value that must never appear in any message: it stands for a secret.
pub const CANARY: &str = "CANARY-s3cr3t-9f2b";

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns the run (for stdout).
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "gitseal {:?} failed:\n{}",
            self.args,
            self.stderr
        );
        self.no_panic()
    }

    /// Asserts the exit code, no panic, and a message on stderr.
    #[track_caller]
    pub fn fails(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "gitseal {:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "gitseal {:?}: failed without a message",
            self.args
        );
        self.no_panic()
    }

    #[track_caller]
    pub fn no_panic(self) -> Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "gitseal {:?} panicked:\n{}",
            self.args,
            self.stderr
        );
        self
    }

    /// Asserts that stderr holds every one of `parts`.
    #[track_caller]
    pub fn stderr_has(self, parts: &[&str]) -> Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "gitseal {:?}: stderr lacks {p:?}:\n{}",
                self.args,
                self.stderr
            );
        }
        self
    }

    /// Asserts that stdout holds every one of `parts`.
    #[track_caller]
    pub fn stdout_has(self, parts: &[&str]) -> Self {
        for p in parts {
            assert!(
                self.stdout.contains(p),
                "gitseal {:?}: stdout lacks {p:?}:\n{}",
                self.args,
                self.stdout
            );
        }
        self
    }

    /// Asserts that `secret` appears in neither stream.
    #[track_caller]
    pub fn hides(self, secret: &str) -> Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "gitseal {:?} leaked {secret:?}:\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A temporary working folder, the current directory of every run.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gitseal-cli-test-")
            .tempdir()
            .unwrap();
        // The CLI looks for .gitseal.yaml from the target folder up to `/`: one lying
        // around above the temp folder would change which recipients are used.
        let canon = fs::canonicalize(dir.path()).unwrap();
        for d in canon.ancestors().skip(1) {
            assert!(
                !d.join(".gitseal.yaml").exists(),
                "{} exists and would leak into the tests; remove it",
                d.join(".gitseal.yaml").display()
            );
        }
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (parents created) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, contents).unwrap();
        p
    }

    /// Writes a file with the given mode.
    pub fn write_mode(&self, rel: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let p = self.write(rel, contents);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Runs `gitseal ARGS` in the folder, with `stdin` (empty when `None`).
    pub fn run_in(&self, cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_gitseal"));
        cmd.current_dir(cwd).args(args).env_remove("RUST_BACKTRACE");
        cmd.write_stdin(stdin.unwrap_or_default().to_vec());
        let out = cmd.output().unwrap();
        Run {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stdout_bytes: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.dir.path(), args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Run {
        self.run_in(self.dir.path(), args, Some(stdin.as_ref()))
    }

    /// `gitseal keys generate -w NAME`; returns the public key.
    pub fn key(&self, name: &str) -> String {
        let run = self.run(&["keys", "generate", "-w", name]).ok();
        let public = run.stdout.trim().to_owned();
        assert!(public.starts_with("age1"), "{public}");
        public
    }

    /// Every file in the folder (recursively), with its content.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(self.dir.path()).unwrap().to_path_buf();
                    out.insert(rel, fs::read(&p).unwrap_or_default());
                }
            }
        }
        out
    }

    /// Temporary files the CLI may have left behind (`.gitseal-*`).
    pub fn stray_temp_files(&self) -> Vec<PathBuf> {
        self.snapshot()
            .into_keys()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".gitseal-"))
            })
            .collect()
    }
}

/// A Secret manifest with the canary in `stringData.password`.
pub fn secret_yaml(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n\
         type: Opaque\ndata:\n  username: YWRtaW4=\nstringData:\n  password: {CANARY}\n"
    )
}

/// Parses a YAML stream as gitseal writes it (documents split by `---` lines), or one
/// JSON object, into its documents.
pub fn docs(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" {
            let v: Value =
                serde_yaml::from_str(&cur).unwrap_or_else(|e| panic!("not YAML ({e}):\n{cur}"));
            if !v.is_null() {
                out.push(v);
            }
            cur.clear();
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out
}

/// The only document of a YAML (or JSON) text.
pub fn one_doc(text: &str) -> Value {
    let mut d = docs(text);
    assert_eq!(d.len(), 1, "expected one document:\n{text}");
    d.remove(0)
}

pub fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .unwrap_or_else(|| panic!("no field {path} (at {part}) in {v:?}"));
    }
    cur
}

pub fn get_str<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// The keys of a mapping field, sorted.
pub fn keys_of(v: &Value, path: &str) -> Vec<String> {
    let mut k: Vec<String> = get(v, path)
        .as_mapping()
        .unwrap_or_else(|| panic!("{path} is not a mapping"))
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

/// A base64 `data` value of an unsealed Secret, decoded to text.
pub fn data_value(secret: &Value, key: &str) -> String {
    let v = get(secret, "data")
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no data.{key} in the Secret"));
    let b = B64.decode(v).unwrap();
    String::from_utf8(b).unwrap()
}

/// Replaces the ciphertext of `key` in a SealedSecret text with `f(ciphertext)`.
pub fn edit_ciphertext(text: &str, key: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut v = one_doc(text);
    let ed = v
        .get_mut("spec")
        .and_then(|s| s.get_mut("encryptedData"))
        .and_then(|e| e.get_mut(key))
        .unwrap();
    let mut ct = B64.decode(ed.as_str().unwrap()).unwrap();
    f(&mut ct);
    *ed = Value::from(B64.encode(&ct));
    serde_yaml::to_string(&v).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s.trim()).unwrap()
}

/// The `gitseal.dev/scope` annotation of a SealedSecret.
pub fn scope_of(v: &Value) -> &str {
    get(v, "metadata.annotations")
        .get("gitseal.dev/scope")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no scope annotation in {v:?}"))
}
