//! `gitseal edit` end to end, driving a scripted `$EDITOR` (a small shell script that edits
//! the plaintext copy in a chosen way, or fails, or hangs until interrupted).
//!
//! What is proved: unchanged keys keep their ciphertexts byte for byte and the file's other
//! lines do not move; changed and added keys are sealed again and open to the new values;
//! removed keys go; invalid results and failing editors are refused with the file untouched;
//! the private folder (0700, file 0600, on the runtime dir) is gone afterwards, also after
//! SIGINT; no plaintext is left in any file.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A repository folder with a key, a SealedSecret `db.yaml` (keys password = canary,
/// username, port), a private runtime folder and an editor script.
struct Edit {
    env: Env,
    public: String,
    run_dir: PathBuf,
}

impl Edit {
    fn new() -> Self {
        let env = Env::new();
        let public = env.key("id.key");
        env.write(
            "in.yaml",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  labels: {{app: shop}}\ntype: Opaque\nstringData:\n  password: {CANARY}\n  username: admin\n  port: '5432'\n"
            ),
        );
        env.run(&["seal", "-f", "in.yaml", "-r", &public, "-w", "db.yaml"])
            .ok();
        fs::remove_file(env.path("in.yaml")).unwrap();
        let run_dir = env.path("run");
        fs::create_dir(&run_dir).unwrap();
        fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
        Edit {
            env,
            public,
            run_dir,
        }
    }

    /// Writes the editor script: `body` runs with the plaintext copy as "$1". Before it,
    /// the script records the copy's path and the modes of the copy and its folder.
    fn editor(&self, body: &str) -> PathBuf {
        let log = self.env.path("editor.log");
        let script = format!(
            "#!/bin/sh\nset -e\necho \"$1\" > '{log}'\nstat -c '%a' \"$(dirname \"$1\")\" \"$1\" >> '{log}'\n{body}\n",
            log = log.display()
        );
        self.env.write_mode("editor.sh", script, 0o755)
    }

    fn command(&self, editor: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitseal"));
        cmd.current_dir(self.env.dir.path())
            .args(["edit", "db.yaml", "-i", "id.key", "-r", &self.public])
            .args(extra)
            .env("EDITOR", editor)
            .env_remove("VISUAL")
            .env("XDG_RUNTIME_DIR", &self.run_dir)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, body: &str) -> Run {
        let editor = self.editor(body);
        let out = self.command(&editor, &[]).output().unwrap();
        Run {
            args: vec!["edit".into(), "db.yaml".into()],
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stdout_bytes: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The editor's record: (path of the plaintext copy, folder mode, file mode).
    fn editor_saw(&self) -> (PathBuf, String, String) {
        let log = self.env.read("editor.log");
        let mut lines = log.lines();
        (
            PathBuf::from(lines.next().unwrap()),
            lines.next().unwrap().to_owned(),
            lines.next().unwrap().to_owned(),
        )
    }

    /// The private folder is gone, the runtime folder is empty, and no file anywhere in
    /// the test folder holds plaintext (the canary, the edited values, or their base64).
    fn assert_clean(&self, plaintexts: &[&str]) {
        let (copy, dir_mode, file_mode) = self.editor_saw();
        assert!(
            copy.starts_with(&self.run_dir),
            "{} is not in the runtime folder",
            copy.display()
        );
        assert_eq!((dir_mode.as_str(), file_mode.as_str()), ("700", "600"));
        assert!(
            !copy.exists() && !copy.parent().unwrap().exists(),
            "{} is left behind",
            copy.display()
        );
        assert_eq!(
            fs::read_dir(&self.run_dir).unwrap().count(),
            0,
            "the runtime folder is not empty"
        );
        for (path, bytes) in self.env.snapshot() {
            if path == Path::new("editor.sh") {
                continue; // the script that types the new values
            }
            let text = String::from_utf8_lossy(&bytes);
            for p in std::iter::once(CANARY).chain(plaintexts.iter().copied()) {
                assert!(
                    !text.contains(p) && !text.contains(&b64(p.as_bytes())),
                    "{} holds plaintext {p:?}",
                    path.display()
                );
            }
        }
        assert!(self.env.stray_temp_files().is_empty());
    }

    /// `gitseal edit` in a process group of its own, its editor started and waiting (30 s).
    fn start_with_a_waiting_editor(&self) -> std::process::Child {
        let started = self.env.path("started");
        let editor = self.editor(&format!("touch '{}'\nsleep 30", started.display()));
        let child = self.command(&editor, &[]).process_group(0).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !started.exists() {
            assert!(Instant::now() < deadline, "the editor never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn unseal(&self) -> serde_yaml::Value {
        one_doc(
            &self
                .env
                .run(&["unseal", "-i", "id.key", "-f", "db.yaml"])
                .ok()
                .stdout,
        )
    }
}

fn ciphertexts(text: &str) -> std::collections::BTreeMap<String, String> {
    let v = one_doc(text);
    get(&v, "spec.encryptedData")
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn only_changed_keys_are_sealed_again_and_the_rest_stays_byte_for_byte() {
    let e = Edit::new();
    let before = e.env.read("db.yaml");
    let run = e
        .run(
            "sed -i -e 's/^  password: .*/  password: new-password-1/' -e '/^  port:/d' \"$1\"\n\
             printf '  token: fresh-token-2\\n' >> \"$1\"",
        )
        .ok()
        .hides(CANARY)
        .hides("new-password-1");
    assert!(
        run.stderr
            .contains("resealed password, token; removed port"),
        "{}",
        run.stderr
    );
    let after = e.env.read("db.yaml");
    let (old, new) = (ciphertexts(&before), ciphertexts(&after));
    assert_eq!(
        old["username"], new["username"],
        "unchanged key re-encrypted"
    );
    assert_ne!(old["password"], new["password"]);
    assert!(!new.contains_key("port") && new.contains_key("token"));
    // Lines other than the changed keys' are identical, in the same order.
    let keep = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                !["    password:", "    port:", "    token:"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(keep(&before), keep(&after));
    let secret = e.unseal();
    assert_eq!(data_value(&secret, "password"), "new-password-1");
    assert_eq!(data_value(&secret, "username"), "admin");
    assert_eq!(data_value(&secret, "token"), "fresh-token-2");
    assert_eq!(get_str(&secret, "metadata.labels.app"), "shop");
    e.assert_clean(&["new-password-1", "fresh-token-2"]);
}

#[test]
fn an_unchanged_file_changes_nothing() {
    let e = Edit::new();
    let before = e.env.read("db.yaml");
    e.run("true").ok().stderr_has(&["no changes"]);
    assert_eq!(e.env.read("db.yaml"), before);
    // Touching the copy (same content) is no change either.
    e.run("touch \"$1\"").ok().stderr_has(&["no changes"]);
    assert_eq!(e.env.read("db.yaml"), before);
    e.assert_clean(&[]);
}

#[test]
fn renaming_reseals_every_key_for_the_new_binding() {
    let e = Edit::new();
    let before = ciphertexts(&e.env.read("db.yaml"));
    e.run("sed -i 's/^  name: db$/  name: db-v2/' \"$1\"").ok();
    let after = ciphertexts(&e.env.read("db.yaml"));
    for (k, ct) in &before {
        assert_ne!(&after[k], ct, "{k} still carries the old binding");
    }
    let secret = e.unseal();
    assert_eq!(get_str(&secret, "metadata.name"), "db-v2");
    assert_eq!(data_value(&secret, "password"), CANARY);
    e.assert_clean(&[]);
}

#[test]
fn invalid_results_and_failing_editors_are_refused_with_the_file_untouched() {
    let cases: &[(&str, &[&str])] = &[
        (
            "printf 'stringData: [\\n' >> \"$1\"",
            &[
                "db.yaml (edited): document 1",
                "not valid YAML",
                "db.yaml is unchanged",
            ],
        ),
        (
            "printf '  bad key: x\\n' >> \"$1\"",
            &[
                "db.yaml (edited): document 1, field `stringData.bad key`",
                "invalid key",
            ],
        ),
        (
            "printf 'data:\\n  blob: \"not*base64\"\\n' >> \"$1\"",
            &["field `data.blob`", "not valid base64"],
        ),
        (
            "sed -i '/^  password:/d; /^  username:/d; /^  port:/d' \"$1\"",
            &["db.yaml (edited)", "no values left"],
        ),
        (
            "sed -i 's/^  namespace: prod$//' \"$1\"",
            &["field `metadata.namespace`", "required for scope strict"],
        ),
        (
            "sed -i 's/gitseal.dev\\/scope: strict/gitseal.dev\\/scope: galaxy/' \"$1\"",
            &["unknown scope `galaxy`"],
        ),
        (
            "printf -- '---\\napiVersion: v1\\nkind: Secret\\nmetadata: {name: x, namespace: y}\\nstringData: {a: b}\\n' >> \"$1\"",
            &["holds 2 document(s)", "1 SealedSecret(s)"],
        ),
        (
            "exit 3",
            &["the editor", "exited with", "nothing was changed"],
        ),
        (
            "rm \"$1\"",
            &["plaintext copy is gone", "nothing was changed"],
        ),
    ];
    for (body, expect) in cases {
        let e = Edit::new();
        let before = e.env.read("db.yaml");
        e.run(body).fails(1).hides(CANARY).stderr_has(expect);
        assert_eq!(
            e.env.read("db.yaml"),
            before,
            "editor `{body}` changed the file"
        );
        e.assert_clean(&[]);
    }
}

#[test]
fn sigint_while_the_editor_runs_removes_the_plaintext_copy() {
    let e = Edit::new();
    let before = e.env.read("db.yaml");
    let mut child = e.start_with_a_waiting_editor();
    // As a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    let pgid = format!("-{}", child.id());
    let kill = Command::new("kill")
        .args(["-INT", "--", &pgid])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "gitseal did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains(CANARY));
    assert_eq!(e.env.read("db.yaml"), before);
    e.assert_clean(&[]);
}

#[test]
fn the_copy_a_killed_edit_left_is_removed_by_the_next_edit() {
    let e = Edit::new();
    let before = e.env.read("db.yaml");
    let mut child = e.start_with_a_waiting_editor();
    // SIGKILL: no handler runs, the plaintext copy stays.
    let pgid = format!("-{}", child.id());
    assert!(
        Command::new("kill")
            .args(["-KILL", "--", &pgid])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap();
    let (copy, _, _) = e.editor_saw();
    assert!(
        copy.exists(),
        "nothing left to clean up: {}",
        copy.display()
    );
    assert_eq!(e.env.read("db.yaml"), before);
    // A folder of a process that still runs (this test's), and one not named by a process:
    // neither is touched.
    let alive = e
        .run_dir
        .join(format!("gitseal-edit-{}-keep", std::process::id()));
    let unnamed = e.run_dir.join("gitseal-edit-abc123");
    for d in [&alive, &unnamed] {
        fs::create_dir(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
    }

    let run = e.run("true");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("removed") && run.stderr.contains("was killed"),
        "{}",
        run.stderr
    );
    assert!(!copy.exists() && !copy.parent().unwrap().exists());
    assert!(alive.exists() && unnamed.exists());
    fs::remove_dir(&alive).unwrap();
    fs::remove_dir(&unnamed).unwrap();
    e.assert_clean(&[]);
}

#[test]
fn a_wrong_identity_or_missing_rule_stops_before_any_plaintext_is_written() {
    let e = Edit::new();
    e.env.key("other.key");
    let editor = e.editor("touch \"$1.opened\"");
    let out = e
        .command(&editor, &[])
        .args(["-i", "other.key"])
        .output()
        .unwrap();
    // Both keys given: it opens (the ring has the right one). Now only the wrong one:
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitseal"));
    let out = cmd
        .current_dir(e.env.dir.path())
        .args(["edit", "db.yaml", "-i", "other.key", "-r", &e.public])
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", &e.run_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("db.yaml: document 1, field `spec.encryptedData."),
        "{stderr}"
    );
    assert!(
        stderr.contains("no key in the ring opens this value"),
        "{stderr}"
    );
    // No recipients (no -r, no rules): refused before the editor.
    fs::remove_file(e.env.path("editor.log")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .current_dir(e.env.dir.path())
        .args(["edit", "db.yaml", "-i", "id.key"])
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", &e.run_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no recipients"), "{stderr}");
    assert!(!e.env.exists("editor.log"), "the editor ran");
    assert_eq!(fs::read_dir(&e.run_dir).unwrap().count(), 0);
    // Not a SealedSecret file.
    e.env.write("plain.yaml", secret_yaml("x", "y"));
    let out = Command::new(env!("CARGO_BIN_EXE_gitseal"))
        .current_dir(e.env.dir.path())
        .args(["edit", "plain.yaml", "-i", "id.key", "-r", &e.public])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("plain.yaml: holds no gitseal SealedSecret"),
        "{stderr}"
    );
    assert!(!stderr.contains(CANARY));
}
