//! Main flows of the CLI, run as real processes: keys, seal (files, stdin, multi-document,
//! JSON, List, -w, scopes, --name, -n, --raw, --merge-into), create, unseal, reseal,
//! completion.

#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use support::*;

#[test]
fn keys_generate_writes_0600_prints_public_and_never_overwrites() {
    let env = Env::new();
    let run = env.run(&["keys", "generate", "-w", "id.key"]).ok();
    let public = run.stdout.trim().to_owned();
    assert!(public.starts_with("age1") && public.len() == 62, "{public}");
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "only the public key on stdout"
    );
    let mode = fs::metadata(env.path("id.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "identity file mode {mode:o}");
    let text = env.read("id.key");
    assert!(text.contains(&format!("# public key: {public}")), "{text}");
    assert!(text.contains("# created: "), "{text}");
    assert!(text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")));
    assert!(!run.stdout.contains("AGE-SECRET-KEY"));

    // A second generate onto the same file is refused and leaves it untouched.
    env.run(&["keys", "generate", "-w", "id.key"])
        .fails(1)
        .stderr_has(&["id.key", "already exists", "--force"]);
    assert_eq!(env.read("id.key"), text);
    assert!(env.stray_temp_files().is_empty());

    // --force replaces it with a new key, still 0600.
    let forced = env
        .run(&["keys", "generate", "-w", "id.key", "--force"])
        .ok();
    assert_ne!(forced.stdout.trim(), public);
    assert_ne!(env.read("id.key"), text);
    let mode = fs::metadata(env.path("id.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn keys_generate_to_stdout_and_keys_public() {
    let env = Env::new();
    let run = env.run(&["keys", "generate"]).ok();
    assert!(run.stdout.contains("AGE-SECRET-KEY-1"), "{}", run.stdout);
    let public = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Public key: "))
        .unwrap()
        .to_owned();
    env.write_mode("k.key", &run.stdout, 0o600);
    env.run(&["keys", "public", "-i", "k.key"])
        .ok()
        .stdout_has(&[&public]);
    // From standard input, too.
    let from_stdin = env.run_stdin(&["keys", "public"], &run.stdout).ok();
    assert_eq!(from_stdin.stdout.trim(), public);
    // Two keys in one file: two public keys, in order.
    let other = env.run(&["keys", "generate"]).ok().stdout;
    env.write_mode("two.key", format!("{}{}", run.stdout, other), 0o600);
    let both = env.run(&["keys", "public", "-i", "two.key"]).ok();
    assert_eq!(both.stdout.lines().count(), 2);
    assert_eq!(both.stdout.lines().next(), Some(public.as_str()));
}

#[test]
fn seal_from_file_and_stdin_round_trip() {
    let env = Env::new();
    let a = env.key("a.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    let from_file = env
        .run(&["seal", "-f", "s.yaml", "-r", &a])
        .ok()
        .hides(CANARY);
    let sealed = one_doc(&from_file.stdout);
    assert_eq!(get_str(&sealed, "apiVersion"), "gitseal.dev/v1alpha1");
    assert_eq!(get_str(&sealed, "kind"), "SealedSecret");
    assert_eq!(get_str(&sealed, "metadata.name"), "db");
    assert_eq!(get_str(&sealed, "metadata.namespace"), "prod");
    assert_eq!(scope_of(&sealed), "strict");
    assert_eq!(
        keys_of(&sealed, "spec.encryptedData"),
        ["password", "username"]
    );
    assert_eq!(get_str(&sealed, "spec.template.type"), "Opaque");

    let from_stdin = env
        .run_stdin(&["seal", "-r", &a], secret_yaml("db", "prod"))
        .ok()
        .hides(CANARY);
    // Fresh randomness each time, same shape.
    assert_ne!(from_stdin.stdout, from_file.stdout);
    for out in [&from_file.stdout, &from_stdin.stdout] {
        env.write("sealed.yaml", out);
        let secret = one_doc(
            &env.run(&["unseal", "-i", "a.key", "-f", "sealed.yaml"])
                .ok()
                .stdout,
        );
        assert_eq!(get_str(&secret, "kind"), "Secret");
        assert_eq!(get_str(&secret, "metadata.namespace"), "prod");
        assert_eq!(data_value(&secret, "password"), CANARY);
        assert_eq!(data_value(&secret, "username"), "admin");
    }
    // unseal reads standard input too.
    let secret = one_doc(
        &env.run_stdin(&["unseal", "-i", "a.key"], &from_stdin.stdout)
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "password"), CANARY);
}

#[test]
fn seal_drops_server_fields_and_last_applied() {
    let env = Env::new();
    let a = env.key("a.key");
    let input = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  uid: 1234\n  \
         resourceVersion: '99'\n  labels: {{app: web}}\n  annotations:\n    \
         kubectl.kubernetes.io/last-applied-configuration: '{{\"stringData\":{{\"password\":\"{CANARY}\"}}}}'\n    \
         team: core\nstringData:\n  password: {CANARY}\n"
    );
    let out = env.run_stdin(&["seal", "-r", &a], input).ok().hides(CANARY);
    assert!(!out.stdout.contains("last-applied"), "{}", out.stdout);
    assert!(!out.stdout.contains("resourceVersion") && !out.stdout.contains("uid"));
    let sealed = one_doc(&out.stdout);
    assert_eq!(get_str(&sealed, "spec.template.metadata.labels.app"), "web");
    assert_eq!(
        get_str(&sealed, "spec.template.metadata.annotations.team"),
        "core"
    );
}

#[test]
fn seal_multi_document_keeps_order() {
    let env = Env::new();
    let a = env.key("a.key");
    let input = format!(
        "{}---\n# a comment-only document is skipped\n---\n{}",
        secret_yaml("one", "prod"),
        secret_yaml("two", "dev")
    );
    env.write("in.yaml", input);
    let out = env.run(&["seal", "-f", "in.yaml", "-r", &a]).ok();
    let d = docs(&out.stdout);
    assert_eq!(d.len(), 2, "{}", out.stdout);
    assert_eq!(get_str(&d[0], "metadata.name"), "one");
    assert_eq!(get_str(&d[1], "metadata.namespace"), "dev");
    env.write("sealed.yaml", &out.stdout);
    let secrets = docs(
        &env.run(&["unseal", "-i", "a.key", "-f", "sealed.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(secrets.len(), 2);
    assert_eq!(get_str(&secrets[1], "metadata.name"), "two");
    assert_eq!(data_value(&secrets[1], "password"), CANARY);
}

#[test]
fn seal_json_in_json_out() {
    let env = Env::new();
    let a = env.key("a.key");
    env.write(
        "s.json",
        format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"api","namespace":"web"}},"data":{{"token":"{}"}}}}"#,
            b64(CANARY.as_bytes())
        ),
    );
    let out = env
        .run(&["seal", "-f", "s.json", "-r", &a, "-o", "json"])
        .ok()
        .hides(CANARY);
    assert!(out.stdout.trim_start().starts_with('{'), "{}", out.stdout);
    assert!(
        out.stdout.contains(r#""kind": "SealedSecret""#),
        "{}",
        out.stdout
    );
    let sealed: serde_yaml::Value = serde_yaml::from_str(&out.stdout).unwrap();
    assert_eq!(get_str(&sealed, "metadata.name"), "api");
    assert_eq!(keys_of(&sealed, "spec.encryptedData"), ["token"]);
    // JSON in, unsealed back to JSON.
    env.write("sealed.json", &out.stdout);
    let un = env
        .run(&["unseal", "-i", "a.key", "-f", "sealed.json", "-o", "json"])
        .ok();
    assert!(un.stdout.trim_start().starts_with('{'));
    let secret: serde_yaml::Value = serde_yaml::from_str(&un.stdout).unwrap();
    assert_eq!(data_value(&secret, "token"), CANARY);
}

#[test]
fn seal_kind_list_and_json_list_output() {
    let env = Env::new();
    let a = env.key("a.key");
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n\
         - {{apiVersion: v1, kind: Secret, metadata: {{name: a, namespace: x}}, stringData: {{k: {CANARY}}}}}\n\
         - {{apiVersion: v1, kind: Secret, metadata: {{name: b, namespace: y}}, stringData: {{k: v}}}}\n"
    );
    env.write("list.yaml", &list);
    let out = env.run(&["seal", "-f", "list.yaml", "-r", &a]).ok();
    let d = docs(&out.stdout);
    assert_eq!(d.len(), 2);
    assert_eq!(get_str(&d[0], "metadata.name"), "a");
    assert_eq!(get_str(&d[1], "metadata.name"), "b");
    // Several documents as JSON come out as a v1 List.
    let json = env
        .run(&["seal", "-f", "list.yaml", "-r", &a, "-o", "json"])
        .ok();
    let v: serde_yaml::Value = serde_yaml::from_str(&json.stdout).unwrap();
    assert_eq!(get_str(&v, "kind"), "List");
    let items = get(&v, "items").as_sequence().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(get_str(&items[1], "kind"), "SealedSecret");
}

#[test]
fn seal_write_flag_writes_atomically_and_prints_nothing() {
    let env = Env::new();
    let a = env.key("a.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    let run = env
        .run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "out/sealed.yaml"])
        .fails(1); // the folder does not exist
    assert!(run.stderr.contains("out/sealed.yaml"), "{}", run.stderr);
    fs::create_dir(env.path("out")).unwrap();
    let run = env
        .run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "out/sealed.yaml"])
        .ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let written = env.read("out/sealed.yaml");
    assert!(!written.contains(CANARY));
    assert_eq!(get_str(&one_doc(&written), "kind"), "SealedSecret");
    let mode = fs::metadata(env.path("out/sealed.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
    assert!(env.stray_temp_files().is_empty());
    // Overwriting in place (-f and -w the same file) keeps the file's mode.
    fs::set_permissions(env.path("s.yaml"), fs::Permissions::from_mode(0o640)).unwrap();
    env.run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "s.yaml"])
        .ok();
    assert_eq!(
        get_str(&one_doc(&env.read("s.yaml")), "kind"),
        "SealedSecret"
    );
    let mode = fs::metadata(env.path("s.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn seal_scope_name_and_namespace_flags() {
    let env = Env::new();
    let a = env.key("a.key");
    let no_ns = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: {CANARY}}}\n"
    );
    for scope in ["namespace", "cluster", "strict"] {
        let out = env
            .run_stdin(
                &[
                    "seal", "-r", &a, "--scope", scope, "-n", "prod", "--name", "renamed",
                ],
                &no_ns,
            )
            .ok();
        let s = one_doc(&out.stdout);
        assert_eq!(scope_of(&s), scope);
        assert_eq!(get_str(&s, "metadata.name"), "renamed");
        assert_eq!(get_str(&s, "metadata.namespace"), "prod");
        env.write("s.yaml", &out.stdout);
        let secret = one_doc(
            &env.run(&["unseal", "-i", "a.key", "-f", "s.yaml"])
                .ok()
                .stdout,
        );
        assert_eq!(get_str(&secret, "metadata.name"), "renamed");
        assert_eq!(data_value(&secret, "password"), CANARY);
    }
    // Cluster scope needs no namespace at all.
    let out = env
        .run_stdin(&["seal", "-r", &a, "--scope", "cluster"], &no_ns)
        .ok();
    let s = one_doc(&out.stdout);
    assert!(s.get("metadata").unwrap().get("namespace").is_none());
    // The Secret's own scope annotation is honoured without --scope.
    let annotated = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: p\n  annotations: {gitseal.dev/scope: namespace}\nstringData: {k: v}\n";
    let s = one_doc(&env.run_stdin(&["seal", "-r", &a], annotated).ok().stdout);
    assert_eq!(scope_of(&s), "namespace");
}

#[test]
fn seal_raw_value_opens_inside_a_manifest() {
    let env = Env::new();
    let a = env.key("a.key");
    let out = env
        .run_stdin(
            &[
                "seal", "--raw", "-n", "prod", "--name", "db", "--key", "password", "-r", &a,
            ],
            CANARY,
        )
        .ok()
        .hides(CANARY);
    let line = out.stdout.trim();
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(unb64(line).starts_with(b"age-encryption.org/v1\n"));
    env.write(
        "s.yaml",
        format!(
            "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {{name: db, namespace: prod}}\n\
             spec:\n  encryptedData:\n    password: {line}\n"
        ),
    );
    let secret = one_doc(
        &env.run(&["unseal", "-i", "a.key", "-f", "s.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "password"), CANARY);
    // Bound to its key: under another key name it does not open.
    env.write("t.yaml", env.read("s.yaml").replace("password:", "other:"));
    env.run(&["unseal", "-i", "a.key", "-f", "t.yaml"])
        .fails(1)
        .stderr_has(&["scope mismatch"]);
    // Cluster scope needs only --key; -w writes the line to a file.
    env.run_stdin(
        &[
            "seal", "--raw", "--scope", "cluster", "--key", "k", "-r", &a, "-w", "raw.txt",
        ],
        "v",
    )
    .ok();
    assert!(unb64(&env.read("raw.txt")).starts_with(b"age-encryption.org/v1\n"));
}

#[test]
fn seal_merge_into_adds_keeps_and_replaces() {
    let env = Env::new();
    let a = env.key("a.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "sealed.yaml"])
        .ok();
    let before = one_doc(&env.read("sealed.yaml"));
    let old_user = get_str(&before, "spec.encryptedData.username").to_owned();
    let old_pw = get_str(&before, "spec.encryptedData.password").to_owned();

    // Add a key: the others keep their exact ciphertexts.
    let add = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {apikey: new-key}\n";
    let run = env
        .run_stdin(&["seal", "--merge-into", "sealed.yaml", "-r", &a], add)
        .ok();
    assert!(run.stdout.is_empty());
    let after = one_doc(&env.read("sealed.yaml"));
    assert_eq!(
        keys_of(&after, "spec.encryptedData"),
        ["apikey", "password", "username"]
    );
    assert_eq!(get_str(&after, "spec.encryptedData.username"), old_user);
    assert_eq!(get_str(&after, "spec.encryptedData.password"), old_pw);

    // Replace one: new ciphertext, new value; the rest untouched.
    let replace = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {password: rotated}\n";
    env.run_stdin(&["seal", "--merge-into", "sealed.yaml", "-r", &a], replace)
        .ok();
    let after = one_doc(&env.read("sealed.yaml"));
    assert_ne!(get_str(&after, "spec.encryptedData.password"), old_pw);
    assert_eq!(get_str(&after, "spec.encryptedData.username"), old_user);
    let secret = one_doc(
        &env.run(&["unseal", "-i", "a.key", "-f", "sealed.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "password"), "rotated");
    assert_eq!(data_value(&secret, "apikey"), "new-key");
    assert_eq!(data_value(&secret, "username"), "admin");
    assert!(env.stray_temp_files().is_empty());
}

#[test]
fn seal_merge_into_keeps_other_documents_of_the_file() {
    let env = Env::new();
    let a = env.key("a.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    let sealed = env.run(&["seal", "-f", "s.yaml", "-r", &a]).ok().stdout;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n";
    env.write("bundle.yaml", format!("{cm}---\n{sealed}"));
    env.run_stdin(
        &["seal", "--merge-into", "bundle.yaml", "-r", &a],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {extra: x}\n",
    )
    .ok();
    let d = docs(&env.read("bundle.yaml"));
    assert_eq!(d.len(), 2);
    assert_eq!(get_str(&d[0], "kind"), "ConfigMap");
    assert_eq!(get_str(&d[0], "data.mode"), "fast");
    assert_eq!(
        keys_of(&d[1], "spec.encryptedData"),
        ["extra", "password", "username"]
    );
}

#[test]
fn create_from_literals_files_and_env_files() {
    let env = Env::new();
    let a = env.key("a.key");
    env.write("certs/tls.crt", "CERT-BYTES\n");
    env.write("ca.pem", "CA-BYTES");
    env.write(
        "app.env",
        "# comment\n\nDB_HOST=db.local\nDB_PASS=p=ss=word\n  INDENTED=yes\n",
    );
    let out = env
        .run(&[
            "create",
            "web",
            "-n",
            "prod",
            "-r",
            &a,
            "--from-literal",
            &format!("password={CANARY}"),
            "--from-literal",
            "empty=",
            "--from-file",
            "certs/tls.crt",
            "--from-file",
            "ca.crt=ca.pem",
            "--from-env-file",
            "app.env",
            "--type",
            "kubernetes.io/tls",
        ])
        .ok()
        .hides(CANARY);
    let sealed = one_doc(&out.stdout);
    assert_eq!(get_str(&sealed, "metadata.name"), "web");
    assert_eq!(get_str(&sealed, "metadata.namespace"), "prod");
    assert_eq!(get_str(&sealed, "spec.template.type"), "kubernetes.io/tls");
    assert_eq!(
        keys_of(&sealed, "spec.encryptedData"),
        [
            "DB_HOST", "DB_PASS", "INDENTED", "ca.crt", "empty", "password", "tls.crt"
        ]
    );
    env.write("sealed.yaml", &out.stdout);
    let secret = one_doc(
        &env.run(&["unseal", "-i", "a.key", "-f", "sealed.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(get_str(&secret, "type"), "kubernetes.io/tls");
    assert_eq!(data_value(&secret, "password"), CANARY);
    assert_eq!(data_value(&secret, "empty"), "");
    assert_eq!(data_value(&secret, "tls.crt"), "CERT-BYTES\n");
    assert_eq!(data_value(&secret, "ca.crt"), "CA-BYTES");
    assert_eq!(data_value(&secret, "DB_HOST"), "db.local");
    assert_eq!(data_value(&secret, "DB_PASS"), "p=ss=word");
    assert_eq!(data_value(&secret, "INDENTED"), "yes");
}

/// Values that never appear in the process arguments: one from standard input with
/// --from-file KEY=-, or a whole env file from standard input; `--help` warns about
/// --from-literal.
#[test]
fn create_reads_values_from_standard_input() {
    let env = Env::new();
    let a = env.key("a.key");
    let binary = format!("{CANARY}\n\0\u{1}tail");
    let out = env
        .run_stdin(
            &[
                "create",
                "db",
                "-n",
                "prod",
                "-r",
                &a,
                "--from-file",
                "password=-",
                "--from-literal",
                "user=app",
            ],
            &binary,
        )
        .ok()
        .hides(CANARY);
    env.write("one.yaml", &out.stdout);
    let secret = one_doc(
        &env.run(&["unseal", "-i", "a.key", "-f", "one.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(
        data_value(&secret, "password"),
        binary,
        "stdin is taken byte for byte"
    );
    assert_eq!(data_value(&secret, "user"), "app");

    let out = env
        .run_stdin(
            &[
                "create",
                "db",
                "-n",
                "prod",
                "-r",
                &a,
                "--from-env-file",
                "-",
            ],
            format!("# from a vault\nDB_PASS={CANARY}\nDB_USER=app\n"),
        )
        .ok()
        .hides(CANARY);
    env.write("env.yaml", &out.stdout);
    let secret = one_doc(
        &env.run(&["unseal", "-i", "a.key", "-f", "env.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(keys_of(&secret, "data"), ["DB_PASS", "DB_USER"]);
    assert_eq!(data_value(&secret, "DB_PASS"), CANARY);

    let help = env.run(&["create", "--help"]).ok().stdout;
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [
        "visible to every local user in the process list",
        "use --from-file KEY=- (standard input)",
    ] {
        assert!(help.contains(part), "create --help lacks {part:?}:\n{help}");
    }
}

#[test]
fn create_defaults_to_opaque_and_writes_with_w() {
    let env = Env::new();
    let a = env.key("a.key");
    let run = env
        .run(&[
            "create",
            "db",
            "-n",
            "prod",
            "-r",
            &a,
            "--from-literal",
            "k=v",
            "-w",
            "db.yaml",
            "--scope",
            "namespace",
        ])
        .ok();
    assert!(run.stdout.is_empty());
    let sealed = one_doc(&env.read("db.yaml"));
    assert_eq!(get_str(&sealed, "spec.template.type"), "Opaque");
    assert_eq!(scope_of(&sealed), "namespace");
    let json = env
        .run(&[
            "create",
            "db",
            "-n",
            "prod",
            "-r",
            &a,
            "--from-literal",
            "k=v",
            "-o",
            "json",
        ])
        .ok();
    assert!(json.stdout.trim_start().starts_with('{'));
}

#[test]
fn unseal_with_several_identity_files() {
    let env = Env::new();
    let a = env.key("a.key");
    let b = env.key("b.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "s.yaml", "-r", &b, "-w", "sealed.yaml"])
        .ok();
    env.run(&["unseal", "-i", "a.key", "-f", "sealed.yaml"])
        .fails(1)
        .hides(CANARY);
    let secret = one_doc(
        &env.run(&["unseal", "-i", "a.key", "-i", "b.key", "-f", "sealed.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "password"), CANARY);
    let _ = a;
}

#[test]
fn reseal_moves_to_new_recipients_and_is_idempotent() {
    let env = Env::new();
    let a = env.key("a.key");
    let b = env.key("b.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "apps/sealed.yaml"])
        .fails(1);
    fs::create_dir(env.path("apps")).unwrap();
    env.run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "apps/sealed.yaml"])
        .ok();
    env.write(
        "apps/notes.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: n}\n",
    );
    let notes = env.read("apps/notes.yaml");

    // Dry run: says what it would do, writes nothing.
    let before = env.read("apps/sealed.yaml");
    env.run(&["reseal", "-i", "a.key", "-r", &b, "--dry-run", "apps"])
        .ok()
        .stderr_has(&["would reseal", "sealed.yaml"]);
    assert_eq!(env.read("apps/sealed.yaml"), before);

    env.run(&["reseal", "-i", "a.key", "-r", &b, "apps"])
        .ok()
        .stderr_has(&["resealed", "sealed.yaml"]);
    assert_eq!(
        env.read("apps/notes.yaml"),
        notes,
        "other manifests untouched"
    );
    assert!(env.stray_temp_files().is_empty());
    let secret = one_doc(
        &env.run(&["unseal", "-i", "b.key", "-f", "apps/sealed.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "password"), CANARY);
    env.run(&["unseal", "-i", "a.key", "-f", "apps/sealed.yaml"])
        .fails(1)
        .stderr_has(&["apps/sealed.yaml", "no key in the ring opens this value"]);

    // A second reseal to the same recipients changes nothing, not even the mtime.
    let resealed = env.read("apps/sealed.yaml");
    let past = SystemTime::now() - Duration::from_secs(3600 * 24);
    fs::File::options()
        .write(true)
        .open(env.path("apps/sealed.yaml"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    env.run(&["reseal", "-i", "b.key", "-r", &b, "apps/sealed.yaml"])
        .ok()
        .stderr_has(&["resealed 0 file(s)"]);
    assert_eq!(env.read("apps/sealed.yaml"), resealed);
    let mtime = fs::metadata(env.path("apps/sealed.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, past, "a no-op reseal rewrote the file");
}

#[test]
fn reseal_with_the_wrong_identity_fails_and_writes_nothing() {
    let env = Env::new();
    let a = env.key("a.key");
    let b = env.key("b.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&["seal", "-f", "s.yaml", "-r", &a, "-w", "sealed.yaml"])
        .ok();
    let before = env.read("sealed.yaml");
    env.run(&["reseal", "-i", "b.key", "-r", &b, "sealed.yaml"])
        .fails(1)
        .stderr_has(&["sealed.yaml", "document 1", "spec.encryptedData."])
        .hides(CANARY);
    assert_eq!(env.read("sealed.yaml"), before);
    assert!(env.stray_temp_files().is_empty());
}

#[test]
fn completion_bash() {
    let env = Env::new();
    let out = env.run(&["completion", "bash"]).ok();
    assert!(out.stdout.contains("_gitseal()"), "{}", out.stdout);
    assert!(out.stdout.contains("complete -F _gitseal"));
    for word in [
        "seal",
        "unseal",
        "reseal",
        "--merge-into",
        "--from-env-file",
    ] {
        assert!(out.stdout.contains(word), "completion lacks {word}");
    }
    env.run(&["completion", "tcsh"]).fails(2);
}

#[test]
fn version_and_help() {
    let env = Env::new();
    env.run(&["--version"])
        .ok()
        .stdout_has(&["gitseal", env!("CARGO_PKG_VERSION")]);
    env.run(&["seal", "--help"])
        .ok()
        .stdout_has(&["--merge-into", "--raw", "--scope"]);
    env.run(&[]).fails(2);
}

#[test]
fn merge_into_and_reseal_keep_a_json_file_json() {
    let env = Env::new();
    let a = env.key("a.key");
    let b = env.key("b.key");
    env.write("s.yaml", secret_yaml("db", "prod"));
    env.run(&[
        "seal", "-f", "s.yaml", "-r", &a, "-o", "json", "-w", "db.json",
    ])
    .ok();
    env.run_stdin(
        &["seal", "--merge-into", "db.json", "-r", &a],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {extra: x}\n",
    )
    .ok();
    assert!(
        env.read("db.json").starts_with('{'),
        "{}",
        env.read("db.json")
    );
    env.run(&["reseal", "-i", "a.key", "-r", &b, "db.json"])
        .ok();
    let text = env.read("db.json");
    assert!(text.starts_with('{'), "{text}");
    let sealed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        keys_of(&sealed, "spec.encryptedData"),
        ["extra", "password", "username"]
    );
    let secret = one_doc(
        &env.run(&["unseal", "-i", "b.key", "-f", "db.json"])
            .ok()
            .stdout,
    );
    assert_eq!(data_value(&secret, "extra"), "x");
    assert_eq!(data_value(&secret, "password"), CANARY);
}
