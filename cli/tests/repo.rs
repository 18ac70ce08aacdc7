//! Repository features: recipients from `.gitseal.yaml` rules (path globs, first match,
//! escrow keys) and the `check` lint.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

/// Keys P (prod), S (staging and the rest of clusters/), E (escrow) and a rules file.
fn repo() -> (Env, [String; 3]) {
    let env = Env::new();
    let p = env.key("p.key");
    let s = env.key("s.key");
    let e = env.key("e.key");
    env.write(
        ".gitseal.yaml",
        format!(
            "# who can open what\nescrow:\n  - {e}\nrules:\n  - path: 'clusters/prod/**'\n    name: prod\n    recipients: [{p}]\n  - path: 'clusters/**'\n    recipients: [{s}]\n"
        ),
    );
    env.write("in.yaml", secret_yaml("db", "prod"));
    (env, [p, s, e])
}

fn opens(env: &Env, key: &str, file: &str) -> bool {
    let run = env.run(&["unseal", "-i", key, "-f", file]).no_panic();
    if run.code == Some(0) {
        let secret = one_doc(&run.stdout);
        assert_eq!(data_value(&secret, "password"), CANARY);
        true
    } else {
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains("no key in the ring opens this value"),
            "{}",
            run.stderr
        );
        false
    }
}

#[test]
fn rules_choose_recipients_by_path_first_match_wins_escrow_added() {
    let (env, _) = repo();
    std::fs::create_dir_all(env.path("clusters/prod/app")).unwrap();
    std::fs::create_dir_all(env.path("clusters/dev")).unwrap();

    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/prod/app/db.yaml"])
        .ok();
    // The first rule wins even though the second matches too.
    assert!(opens(&env, "p.key", "clusters/prod/app/db.yaml"));
    assert!(!opens(&env, "s.key", "clusters/prod/app/db.yaml"));
    // The escrow key alone opens everything.
    assert!(opens(&env, "e.key", "clusters/prod/app/db.yaml"));

    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/dev/db.yaml"])
        .ok();
    assert!(!opens(&env, "p.key", "clusters/dev/db.yaml"));
    assert!(opens(&env, "s.key", "clusters/dev/db.yaml"));
    assert!(opens(&env, "e.key", "clusters/dev/db.yaml"));

    // Rules are found from the target's folder upwards, whatever the working directory.
    let dev = env.path("clusters/dev");
    env.run_in(
        &dev,
        &["seal", "-f", "../../in.yaml", "-w", "again.yaml"],
        None,
    )
    .ok();
    assert!(opens(&env, "s.key", "clusters/dev/again.yaml"));
    assert!(!opens(&env, "p.key", "clusters/dev/again.yaml"));

    // `create -w` and `--merge-into` use the rules too.
    env.run(&[
        "create",
        "api",
        "-n",
        "prod",
        "--from-literal",
        "password=x",
        "-w",
        "clusters/prod/api.yaml",
    ])
    .ok();
    assert!(
        env.run(&["unseal", "-i", "p.key", "-f", "clusters/prod/api.yaml"])
            .code
            == Some(0)
    );
    assert!(
        env.run(&["unseal", "-i", "s.key", "-f", "clusters/prod/api.yaml"])
            .code
            == Some(1)
    );
}

#[test]
fn rules_glob_does_not_cross_folders() {
    let (env, _) = repo();
    // `clusters/**` matches below clusters/ only; a top-level file has no rule.
    env.run(&["seal", "-f", "in.yaml", "-w", "top.yaml"])
        .fails(1)
        .stderr_has(&[".gitseal.yaml", "top.yaml", "no rule"])
        .hides(CANARY);
    assert!(!env.exists("top.yaml"));
}

#[test]
fn explicit_recipients_still_get_the_escrow_keys() {
    let (env, [_, s, _]) = repo();
    std::fs::create_dir(env.path("apps")).unwrap();
    env.run(&["seal", "-f", "in.yaml", "-r", &s, "-w", "apps/db.yaml"])
        .ok();
    assert!(opens(&env, "s.key", "apps/db.yaml"));
    assert!(opens(&env, "e.key", "apps/db.yaml"));
    assert!(!opens(&env, "p.key", "apps/db.yaml"));
}

#[test]
fn rules_need_an_output_path_when_sealing_stdin_to_stdout() {
    let (env, _) = repo();
    env.run_stdin(&["seal"], secret_yaml("db", "prod"))
        .fails(1)
        .stderr_has(&["-w OUT", "-r AGE1"])
        .hides(CANARY);
}

#[test]
fn check_clean_repo_passes() {
    let (env, _) = repo();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    std::fs::create_dir_all(env.path("clusters/dev")).unwrap();
    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/prod/db.yaml"])
        .ok();
    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/dev/db.yaml"])
        .ok();
    std::fs::remove_file(env.path("in.yaml")).unwrap();
    // Other manifests and a Secret without data are fine.
    env.write(
        "clusters/dev/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
    );
    env.write(
        "clusters/dev/empty-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: dev}\ntype: kubernetes.io/service-account-token\n",
    );
    // Hidden folders (.git) are not walked.
    env.write(".git/leak.yaml", secret_yaml("x", "y"));
    let run = env.run(&["check", "."]).ok();
    assert!(run.stdout.trim().is_empty(), "{}", run.stdout);
    run.stderr_has(&["2 SealedSecret(s)", "0 finding(s)"]);
}

/// Runs `check .` expecting findings; returns stdout (the findings).
fn findings(env: &Env) -> String {
    let run = env.run(&["check", "."]).fails(1).hides(CANARY);
    assert!(!run.stdout.trim().is_empty(), "no findings printed");
    run.stdout
}

#[test]
fn check_flags_a_plaintext_secret() {
    let (env, _) = repo();
    std::fs::remove_file(env.path("in.yaml")).unwrap();
    env.write("clusters/dev/leak.yaml", secret_yaml("db", "dev"));
    let out = findings(&env);
    assert!(out.contains("clusters/dev/leak.yaml"), "{out}");
    assert!(out.contains("plaintext Secret db"), "{out}");
    assert!(out.contains("document 1"), "{out}");
    // JSON files are checked too, and the second document is named.
    std::fs::remove_file(env.path("clusters/dev/leak.yaml")).unwrap();
    env.write(
        "clusters/dev/leak.json",
        format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c"}}}},{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"j"}},"stringData":{{"k":"{CANARY}"}}}}]}}"#
        ),
    );
    let out = findings(&env);
    assert!(
        out.contains("leak.json") && out.contains("items[1]"),
        "{out}"
    );
}

#[test]
fn check_flags_a_malformed_sealed_secret() {
    let (env, _) = repo();
    std::fs::remove_file(env.path("in.yaml")).unwrap();
    env.write(
        "clusters/dev/broken.yaml",
        "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: dev}\nspec:\n  encryptedData:\n    password: '%%%not-base64'\n",
    );
    let out = findings(&env);
    assert!(
        out.contains("clusters/dev/broken.yaml") && out.contains("spec.encryptedData.password"),
        "{out}"
    );
    // A value that is base64 but not an age file, and a SealedSecret without spec.
    env.write(
        "clusters/dev/broken.yaml",
        format!(
            "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: db, namespace: dev}}\nspec:\n  encryptedData:\n    password: {}\n---\napiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: x, namespace: dev}}\n",
            b64(b"hello")
        ),
    );
    let out = findings(&env);
    assert!(
        out.contains("document 1") && out.contains("not an age v1 file"),
        "{out}"
    );
    assert!(
        out.contains("document 2") && out.contains("`spec`"),
        "{out}"
    );
    // Unparseable YAML is a finding, not a crash.
    env.write("clusters/dev/broken.yaml", "a: [\n");
    let out = findings(&env);
    assert!(
        out.contains("broken.yaml") && out.contains("not valid YAML"),
        "{out}"
    );
}

#[test]
fn check_flags_recipients_that_do_not_match_the_rules() {
    let (env, _) = repo();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    // Build the mismatching file by sealing for dev and moving it under prod.
    std::fs::create_dir_all(env.path("clusters/dev")).unwrap();
    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/dev/db.yaml"])
        .ok();
    std::fs::rename(
        env.path("clusters/dev/db.yaml"),
        env.path("clusters/prod/db.yaml"),
    )
    .unwrap();
    std::fs::remove_file(env.path("in.yaml")).unwrap();
    let out = findings(&env);
    assert!(out.contains("clusters/prod/db.yaml"), "{out}");
    assert!(out.contains("but the rules want"), "{out}");
    assert!(out.contains("gitseal reseal"), "{out}");
    // Resealing with the rules fixes it.
    env.run(&["reseal", "-i", "s.key", "clusters"]).ok();
    env.run(&["check", "."]).ok();
}

#[test]
fn check_flags_a_copied_and_renamed_sealed_secret() {
    let (env, _) = repo();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/prod/db.yaml"])
        .ok();
    std::fs::remove_file(env.path("in.yaml")).unwrap();
    env.run(&["check", "."]).ok();
    let copy = env
        .read("clusters/prod/db.yaml")
        .replace("name: db", "name: db-copy");
    assert!(copy.contains("db-copy"));
    env.write("clusters/prod/db-copy.yaml", copy);
    let out = findings(&env);
    assert!(out.contains("clusters/prod/db-copy.yaml"), "{out}");
    assert!(out.contains("scope does not match"), "{out}");
    assert!(
        !out.contains("clusters/prod/db.yaml"),
        "the original is fine: {out}"
    );
}

#[test]
fn check_flags_a_broken_rules_file_and_uncovered_files() {
    let (env, [p, ..]) = repo();
    std::fs::remove_file(env.path("in.yaml")).unwrap();
    env.run_stdin(
        &["seal", "-r", &p, "-w", "top.yaml"],
        secret_yaml("db", "prod"),
    )
    .ok();
    // top.yaml is outside every rule.
    let out = findings(&env);
    assert!(out.contains("top.yaml") && out.contains("no rule"), "{out}");
    // A rules file that does not parse is reported by name.
    env.write(
        ".gitseal.yaml",
        "rules:\n  - path: a\n    recipients: [age1nope]\n",
    );
    let out = findings(&env);
    assert!(
        out.contains(".gitseal.yaml") && out.contains("rules[0].recipients[0]"),
        "{out}"
    );
}

#[test]
fn check_of_a_missing_path_fails() {
    let env = Env::new();
    // Could not check (3) is not the same as findings (1), nor a usage error (2).
    env.run(&["check", "nowhere"])
        .fails(3)
        .stderr_has(&["nowhere"]);
    env.run(&["check"]).fails(2);
    env.run(&["check", "-o", "xml", "."]).fails(2);
}

/// A repository with one finding of each of three kinds, in a second document, a JSON
/// file and a plain Secret.
fn repo_with_findings() -> Env {
    let (env, [p, ..]) = repo();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    env.run(&[
        "seal",
        "-f",
        "in.yaml",
        "-r",
        &p,
        "-w",
        "clusters/prod/db.yaml",
    ])
    .ok();
    let good = env.read("clusters/prod/db.yaml");
    env.write(
        "clusters/prod/two.yaml",
        format!("{good}---\n{}", good.replace("name: db", "name: moved")),
    );
    env.write("clusters/prod/plain.json", r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"p","namespace":"prod"},"data":{"k":"dg=="}}"#);
    env
}

#[test]
fn check_json_and_sarif_name_file_document_field_and_rule() {
    let env = repo_with_findings();
    let text = env.run(&["check", "."]).fails(1).hides(CANARY);
    let json = env
        .run(&["check", "-o", "json", "."])
        .fails(1)
        .hides(CANARY);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(
        findings.len(),
        text.stdout.lines().count(),
        "{}",
        json.stdout
    );
    assert_eq!(v["sealedSecrets"], 3);
    let moved = findings
        .iter()
        .find(|f| f["file"] == "./clusters/prod/two.yaml")
        .unwrap_or_else(|| panic!("{}", json.stdout));
    assert_eq!(moved["rule"], "scope-mismatch");
    assert_eq!(moved["document"], 2);
    assert!(
        moved["field"]
            .as_str()
            .unwrap()
            .starts_with("spec.encryptedData.")
    );
    assert!(
        moved["message"]
            .as_str()
            .unwrap()
            .starts_with("scope does not match")
    );
    let plain = findings
        .iter()
        .find(|f| f["rule"] == "plaintext-secret")
        .unwrap();
    assert_eq!(plain["file"], "./clusters/prod/plain.json");

    let sarif = env
        .run(&["check", "-o", "sarif", "."])
        .fails(1)
        .hides(CANARY);
    let s: serde_json::Value = serde_json::from_str(&sarif.stdout).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "gitseal");
    let rule_ids: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    for r in results {
        assert!(rule_ids.contains(&r["ruleId"].as_str().unwrap()), "{r}");
        assert_eq!(r["level"], "error");
    }
    let moved = results
        .iter()
        .find(|r| r["ruleId"] == "scope-mismatch")
        .unwrap();
    let loc = &moved["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "clusters/prod/two.yaml");
    // The second document starts after the first one's lines and the `---`.
    let first_doc_lines = env.read("clusters/prod/db.yaml").lines().count() as u64;
    assert_eq!(loc["region"]["startLine"], first_doc_lines + 2);
    // A clean repository: an empty result list and exit 0.
    let clean = Env::new();
    clean.write(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    let out = clean.run(&["check", "-o", "sarif", "."]).ok();
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["runs"][0]["results"].as_array().unwrap().len(), 0);
}

/// A rules file whose production keys come from `clusters/prod.pub`, written in the layout
/// `gitseal keys fetch -w clusters/prod.pub` uses.
fn repo_with_keys_file() -> (Env, String, String) {
    let env = Env::new();
    let old = env.key("old.key");
    let staging = env.key("s.key");
    env.write(
        "clusters/prod.pub",
        format!("# gitseal: sealing key of namespace gitseal-system (key id 00000000, created 2026-11-01T00:00:00Z)\n{old}\n"),
    );
    env.write(
        ".gitseal.yaml",
        format!(
            "rules:\n  - path: 'clusters/prod/**'\n    name: prod\n    recipientsFile: clusters/prod.pub\n  - path: 'clusters/**'\n    recipients: [{staging}]\n"
        ),
    );
    env.write("in.yaml", secret_yaml("db", "prod"));
    (env, old, staging)
}

#[test]
fn recipients_files_follow_a_key_rotation_through_reseal_and_check() {
    let (env, _old, _) = repo_with_keys_file();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/prod/db.yaml"])
        .ok();
    assert!(opens(&env, "old.key", "clusters/prod/db.yaml"));
    assert!(!opens(&env, "s.key", "clusters/prod/db.yaml"));
    env.run(&["check", "clusters"]).ok();

    // The cluster rotates; `keys fetch` rewrites the recipients file. The rules did not
    // change, yet check now names the file, the re-encryption and the refresh.
    let new = env.key("new.key");
    env.write("clusters/prod.pub", format!("# rotated\n{new}\n"));
    let run = env.run(&["check", "clusters"]).fails(1).hides(CANARY);
    for part in [
        "clusters/prod/db.yaml: document 1, field `spec.encryptedData.",
        "the rule takes its keys from clusters/prod.pub",
        "gitseal reseal -i IDENTITY clusters/prod/db.yaml",
        "gitseal reseal --cluster clusters/prod/db.yaml",
        "gitseal keys fetch -w clusters/prod.pub",
    ] {
        assert!(run.stdout.contains(part), "lacks {part:?}:\n{}", run.stdout);
    }
    env.run(&["reseal", "-i", "old.key", "clusters"]).ok();
    assert!(opens(&env, "new.key", "clusters/prod/db.yaml"));
    assert!(!opens(&env, "old.key", "clusters/prod/db.yaml"));
    env.run(&["check", "clusters"]).ok();
}

#[test]
fn recipients_files_that_lead_elsewhere_or_hold_secrets_are_refused() {
    let (env, _, _) = repo_with_keys_file();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.pub"), format!("{CANARY}\n")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("x.pub"), env.path("clusters/link.pub"))
        .unwrap();
    let private = env.read("old.key");
    let private_line = private
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned();
    env.write("clusters/leak.pub", &private);
    env.write("clusters/junk.pub", format!("{CANARY}\n"));
    let abs = outside.path().join("x.pub").display().to_string();
    for (file, expect) in [
        ("../x.pub", "no `..`"),
        (abs.as_str(), "no `..`"),
        ("clusters/link.pub", "leads outside the folder"),
        ("clusters/none.pub", "cannot open"),
        ("clusters/leak.pub", "line 3 is a private key"),
        (
            "clusters/junk.pub",
            "line 1 is not an age X25519 public key",
        ),
        ("clusters", "not a regular file"),
    ] {
        env.write(
            ".gitseal.yaml",
            format!("rules:\n  - path: '**'\n    recipientsFile: '{file}'\n"),
        );
        let run = env
            .run(&["seal", "-f", "in.yaml", "-w", "clusters/prod/db.yaml"])
            .fails(1)
            .hides(CANARY)
            .hides(&private_line[16..])
            .stderr_has(&[".gitseal.yaml, field `rules[0].recipientsFile`", expect]);
        assert!(!env.exists("clusters/prod/db.yaml"), "{}", run.stderr);
        // check reports it as a finding, never echoing the file.
        env.write("clusters/prod/x.yaml", "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: x, namespace: prod}\nspec: {encryptedData: {}}\n");
        env.run(&["check", "clusters"])
            .fails(1)
            .hides(CANARY)
            .hides(&private_line[16..])
            .stdout_has(&["rules[0].recipientsFile", expect]);
        std::fs::remove_file(env.path("clusters/prod/x.yaml")).unwrap();
    }
}

#[test]
fn raw_values_and_stdout_use_the_rules_of_the_for_path() {
    let (env, _, _) = repo_with_keys_file();
    let out = env
        .run_stdin(
            &[
                "seal",
                "--raw",
                "-n",
                "prod",
                "--name",
                "db",
                "--key",
                "password",
                "--for",
                "clusters/prod/db.yaml",
            ],
            CANARY,
        )
        .ok()
        .hides(CANARY);
    let ct = out.stdout.trim().to_owned();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    env.run(&["seal", "-f", "in.yaml", "-w", "clusters/prod/db.yaml"])
        .ok();
    let merged = edit_ciphertext(&env.read("clusters/prod/db.yaml"), "password", |c| {
        *c = unb64(&ct)
    });
    env.write("clusters/prod/db.yaml", merged);
    assert!(opens(&env, "old.key", "clusters/prod/db.yaml"));
    // Without --for (and without -w) the rules cannot be matched.
    env.run_stdin(
        &[
            "seal", "--raw", "-n", "prod", "--name", "db", "--key", "password",
        ],
        CANARY,
    )
    .fails(1)
    .stderr_has(&["--for PATH"]);
    // A whole Secret to standard output, recipients by --for.
    let out = env
        .run(&["seal", "-f", "in.yaml", "--for", "clusters/staging/db.yaml"])
        .ok();
    env.write("clusters/staging/db.yaml", &out.stdout);
    assert!(opens(&env, "s.key", "clusters/staging/db.yaml"));
    assert!(!opens(&env, "old.key", "clusters/staging/db.yaml"));
}

/// Runs `sh -c SCRIPT` in the folder with `$GITSEAL` set to the binary.
fn shell(env: &Env, script: &str) -> Run {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(env.dir.path())
        .env("GITSEAL", env!("CARGO_BIN_EXE_gitseal"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        args: vec![script.to_owned()],
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stdout_bytes: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_redirect_picks_the_rules_and_a_failed_one_leaves_no_empty_file() {
    let (env, _) = repo();
    std::fs::create_dir_all(env.path("clusters/prod")).unwrap();
    // `> FILE` counts as the output path for the rules, like -w.
    shell(&env, "\"$GITSEAL\" seal -f in.yaml > clusters/prod/db.yaml").ok();
    assert!(opens(&env, "p.key", "clusters/prod/db.yaml"));
    assert!(!opens(&env, "s.key", "clusters/prod/db.yaml"));
    // A failure behind `> FILE` removes the empty file the shell made, and says so.
    shell(
        &env,
        "\"$GITSEAL\" seal -f missing.yaml > clusters/prod/x.yaml",
    )
    .fails(1)
    .stderr_has(&["missing.yaml", "removed the empty clusters/prod/x.yaml"]);
    assert!(!env.exists("clusters/prod/x.yaml"));
    // An empty file that was there before (`>>`) is kept, with the reason.
    env.write("old.yaml", "");
    let old = std::fs::File::options()
        .write(true)
        .open(env.path("old.yaml"))
        .unwrap();
    old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    shell(&env, "\"$GITSEAL\" seal -f missing.yaml >> old.yaml")
        .fails(1)
        .stderr_has(&["old.yaml is empty", "nothing was written"]);
    assert!(env.exists("old.yaml"));
}

#[test]
fn seal_reading_a_terminal_says_what_it_waits_for() {
    let env = Env::new();
    let public = env.key("id.key");
    // `script` gives gitseal a pseudo-terminal as standard input; Ctrl-D ends it.
    let run = shell(
        &env,
        &format!(
            "(sleep 1; printf '\\004') | script -qec '\"$GITSEAL\" seal -r {public} -n x' /dev/null"
        ),
    );
    assert!(
        run.stdout.contains("reading the input from the terminal") && run.stdout.contains("Ctrl-D"),
        "{run:?}"
    );
    // Not on a pipe.
    env.run_stdin(&["seal", "-r", &public], secret_yaml("db", "prod"))
        .ok()
        .no_panic();
    let piped = env.run_stdin(&["seal", "-r", &public], "");
    assert!(!piped.stderr.contains("terminal"), "{}", piped.stderr);
}

/// The first test vector of docs/FORMAT.md: sealed to test key A, whose private key is
/// printed in that file (strict, production/database-creds, key password).
fn format_md_vector_1() -> String {
    let text = include_str!("../../docs/FORMAT.md");
    text.split("```vector\n")
        .nth(1)
        .and_then(|v| v.lines().find_map(|l| l.strip_prefix("ciphertext: ")))
        .unwrap()
        .to_owned()
}

#[test]
fn check_flags_values_sealed_to_a_published_key_and_rules_naming_one() {
    let env = Env::new();
    let ours = env.key("ours.key");
    env.write(
        ".gitseal.yaml",
        format!("rules:\n  - path: '**'\n    recipients: [{ours}]\n"),
    );
    // Someone sealed a value with the documentation's test key and committed it.
    env.write(
        "apps/db.yaml",
        format!(
            "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: database-creds, namespace: production}}\nspec:\n  encryptedData:\n    password: {}\n",
            format_md_vector_1()
        ),
    );
    let out = findings(&env);
    assert!(
        out.contains("apps/db.yaml")
            && out.contains("spec.encryptedData.password")
            && out.contains("test key A of docs/FORMAT.md")
            && out.contains("private key is published")
            && out.contains("treat it as leaked"),
        "{out}"
    );
    // A rules file that names a published key (here B as escrow) is refused by name, so
    // nothing more gets sealed to it.
    env.write(
        ".gitseal.yaml",
        format!(
            "escrow: [age1uft73tvnpxj420uzr93nrvgz0r6u3yv5lj3rqvwe6tmput2eaq4qyaly0p]\nrules:\n  - path: '**'\n    recipients: [{ours}]\n"
        ),
    );
    let out = findings(&env);
    assert!(
        out.contains(".gitseal.yaml") && out.contains("escrow[0]") && out.contains("test key B"),
        "{out}"
    );
    env.write("in.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "in.yaml", "-w", "apps/new.yaml"])
        .fails(1)
        .stderr_has(&[".gitseal.yaml", "escrow[0]", "published"]);
    assert!(!env.exists("apps/new.yaml"));
}
