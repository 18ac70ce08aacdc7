//! `gitseal import` against the real peer tools: ciphertexts made by kubeseal v0.40 (offline,
//! `--cert` with an RSA key made here by openssl) for all three scopes, and files encrypted
//! by sops v3 to an age key. Both are built from the Go module proxy by `scripts/peers.sh`
//! (cached); a test fails, never skips, when they cannot be built.
//!
//! What is proved: every scope and both key-file forms open and land as gitseal
//! SealedSecrets that unseal to the original values with the right gitseal scope; a wrong
//! key, a moved or corrupted value, a tampered SOPS file and unknown formats are refused
//! with the file, document and field named, nothing written and no secret printed; a tree
//! converts all at once or not at all (or file by file with --keep-going); no plaintext is
//! left in any file.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use support::*;

/// The folder holding `sops` and `kubeseal`, built once per test binary.
fn peers() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/peers.sh");
        let out = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/peers.sh failed: the import interop tests need sops and kubeseal built from the Go module proxy"
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Runs a peer tool (or openssl) in the test folder; panics with its stderr on failure.
fn tool(env: &Env, program: &str, args: &[&str], stdin: &[u8], envs: &[(&str, &str)]) -> String {
    use std::io::Write;
    let path = match program {
        "sops" | "kubeseal" => peers().join(program),
        other => PathBuf::from(other),
    };
    let mut child = Command::new(&path)
        .current_dir(env.dir.path())
        .args(args)
        .envs(envs.iter().copied())
        // sops asks GitHub for its latest version: there is no network here.
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Sealed Secrets controller key made by openssl: PKCS#8 and PKCS#1 PEM, its
/// certificate, and the key Secret list `kubectl get secret -o yaml` would print.
struct ControllerKey {
    pkcs8: String,
    pkcs1: String,
    cert: String,
    secret_list: String,
}

fn controller_key(env: &Env, name: &str) -> ControllerKey {
    let key = format!("{name}.pem");
    tool(
        env,
        "openssl",
        &[
            "req",
            "-x509",
            "-nodes",
            "-newkey",
            "rsa:4096",
            "-keyout",
            &key,
            "-out",
            "cert.tmp",
            "-subj",
            "/CN=sealed-secret/O=sealed-secret",
            "-days",
            "30",
        ],
        b"",
        &[],
    );
    let pkcs1 = tool(
        env,
        "openssl",
        &["rsa", "-in", &key, "-traditional"],
        b"",
        &[],
    );
    let pkcs8 = env.read(&key);
    let cert = env.read("cert.tmp");
    std::fs::remove_file(env.path(&key)).unwrap();
    std::fs::remove_file(env.path("cert.tmp")).unwrap();
    let secret_list = format!(
        "apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n    tls.crt: {}\n    tls.key: {}\n  kind: Secret\n  metadata:\n    creationTimestamp: \"2026-11-01T10:00:00Z\"\n    generateName: sealed-secrets-key\n    labels:\n      sealedsecrets.bitnami.com/sealed-secrets-key: active\n    name: sealed-secrets-keyx7k2p\n    namespace: kube-system\n    resourceVersion: \"812\"\n    uid: 4f0c1d7e-2b1a-4c55-9a53-8d6f3b2e1a90\n  type: kubernetes.io/tls\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
        b64(cert.as_bytes()),
        b64(pkcs1.as_bytes())
    );
    assert!(
        pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{pkcs1}"
    );
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"), "{pkcs8}");
    ControllerKey {
        pkcs8,
        pkcs1,
        cert,
        secret_list,
    }
}

/// A Secret with the canary, a binary value, labels, annotations and a type.
fn rich_secret(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{app: shop}}\n  annotations: {{team: payments}}\ntype: kubernetes.io/basic-auth\ndata:\n  blob: {}\nstringData:\n  username: admin\n  password: {CANARY}\n",
        b64(&[0, 159, 146, 150, 255])
    )
}

fn kubeseal(env: &Env, cert: &str, scope: &str, secret: &str) -> String {
    env.write("cert.pem", cert);
    tool(
        env,
        "kubeseal",
        &["--cert", "cert.pem", "--scope", scope, "-o", "yaml"],
        secret.as_bytes(),
        &[],
    )
}

/// Asserts that `file` is a gitseal SealedSecret opening with `identity` to the rich
/// secret's values, with the given gitseal scope.
fn assert_imported(env: &Env, file: &str, identity: &str, scope: &str) {
    let sealed = one_doc(&env.read(file));
    assert_eq!(get_str(&sealed, "apiVersion"), "gitseal.dev/v1alpha1");
    assert_eq!(scope_of(&sealed), scope);
    let ann = get(&sealed, "metadata.annotations").as_mapping().unwrap();
    assert!(
        ann.keys().all(|k| !k
            .as_str()
            .unwrap()
            .starts_with("sealedsecrets.bitnami.com/")),
        "Bitnami scope annotations must not be carried over: {ann:?}"
    );
    let run = env.run(&["unseal", "-i", identity, "-f", file]).ok();
    let secret = one_doc(&run.stdout);
    assert_eq!(data_value(&secret, "password"), CANARY);
    assert_eq!(data_value(&secret, "username"), "admin");
    assert_eq!(
        unb64(get_str(&secret, "data.blob")),
        vec![0, 159, 146, 150, 255]
    );
    assert_eq!(get_str(&secret, "type"), "kubernetes.io/basic-auth");
    assert_eq!(get_str(&secret, "metadata.labels.app"), "shop");
    assert_eq!(get_str(&secret, "metadata.annotations.team"), "payments");
}

/// No file in the folder holds the canary (or its base64).
fn assert_no_plaintext(env: &Env) {
    for (path, bytes) in env.snapshot() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(CANARY) && !text.contains(&b64(CANARY.as_bytes())),
            "{} holds plaintext",
            path.display()
        );
    }
    assert!(
        env.stray_temp_files().is_empty(),
        "{:?}",
        env.stray_temp_files()
    );
}

#[test]
fn bitnami_all_three_scopes_with_pem_and_key_secret_files() {
    let env = Env::new();
    let public = env.key("age.key");
    let ck = controller_key(&env, "ctl");
    env.write_mode("pkcs8.pem", &ck.pkcs8, 0o600);
    env.write_mode("pkcs1.pem", format!("{}{}", ck.cert, ck.pkcs1), 0o600);
    env.write_mode("keys.yaml", &ck.secret_list, 0o600);
    for (bitnami, ours, keyfile) in [
        ("strict", "strict", "pkcs8.pem"),
        ("namespace-wide", "namespace", "pkcs1.pem"),
        ("cluster-wide", "cluster", "keys.yaml"),
    ] {
        let file = format!("apps/{bitnami}.yaml");
        env.write(
            &file,
            kubeseal(&env, &ck.cert, bitnami, &rich_secret("db", "prod")),
        );
        assert!(env.read(&file).contains("bitnami.com/v1alpha1"));
        let run = env
            .run(&["import", "--bitnami-key", keyfile, "-r", &public, &file])
            .ok()
            .hides(CANARY);
        assert!(
            run.stderr
                .contains(&format!("converted {file}: 1 Bitnami SealedSecret(s)")),
            "{}",
            run.stderr
        );
        assert_imported(&env, &file, "age.key", ours);
    }
    // Scope semantics carried over: the cluster-wide value opens under another name and
    // namespace, the strict one does not.
    let moved = env
        .read("apps/cluster-wide.yaml")
        .replace("name: db", "name: other")
        .replace("namespace: prod", "namespace: dev");
    env.write("moved.yaml", moved);
    env.run(&["unseal", "-i", "age.key", "-f", "moved.yaml"])
        .ok();
    let moved = env
        .read("apps/strict.yaml")
        .replace("name: db", "name: other");
    env.write("moved.yaml", moved);
    env.run(&["unseal", "-i", "age.key", "-f", "moved.yaml"])
        .fails(1)
        .stderr_has(&["scope mismatch"]);
    assert_no_plaintext(&env);
}

#[test]
fn bitnami_wrong_key_moved_value_and_corruption_are_refused() {
    let env = Env::new();
    let public = env.key("age.key");
    let ck = controller_key(&env, "ctl");
    let other = controller_key(&env, "other");
    env.write_mode("right.pem", &ck.pkcs8, 0o600);
    env.write_mode("wrong.pem", &other.pkcs8, 0o600);
    let sealed = kubeseal(&env, &ck.cert, "strict", &rich_secret("db", "prod"));

    let refused = |file: &str, content: &str, key: &str, expect: &[&str]| {
        env.write(file, content);
        let before = env.snapshot();
        env.run(&["import", "--bitnami-key", key, "-r", &public, file])
            .fails(1)
            .hides(CANARY)
            .stderr_has(expect)
            .stderr_has(&["nothing was written"]);
        assert_eq!(env.snapshot(), before, "{file} must be left as it was");
    };
    refused(
        "wrong-key.yaml",
        &sealed,
        "wrong.pem",
        &[
            "wrong-key.yaml: document",
            "field `spec.encryptedData.",
            "no --bitnami-key opens this value",
        ],
    );
    // Strict scope: the label is namespace/name, so a renamed copy does not open.
    refused(
        "renamed.yaml",
        &sealed.replacen("name: db", "name: db2", 1),
        "right.pem",
        &[
            "renamed.yaml",
            "no --bitnami-key opens this value",
            "namespace/name (strict scope)",
        ],
    );
    // Flip the last byte (the AES-GCM tag): OAEP opens, GCM refuses.
    let flip_last = |s: &str, key: &str| {
        let doc = one_doc(s);
        let ct = get_str(&doc, &format!("spec.encryptedData.{key}")).to_owned();
        let mut bytes = unb64(&ct);
        *bytes.last_mut().unwrap() ^= 1;
        s.replace(&ct, &b64(&bytes))
    };
    refused(
        "corrupt.yaml",
        &flip_last(&sealed, "password"),
        "right.pem",
        &[
            "corrupt.yaml",
            "field `spec.encryptedData.password`",
            "failed authentication",
        ],
    );
    let doc = one_doc(&sealed);
    let ct = get_str(&doc, "spec.encryptedData.username").to_owned();
    refused(
        "truncated.yaml",
        &sealed.replace(&ct, &b64(&unb64(&ct)[..40])),
        "right.pem",
        &[
            "truncated.yaml",
            "field `spec.encryptedData.username`",
            "truncated",
        ],
    );
    refused(
        "notb64.yaml",
        &sealed.replace(&ct, "not*base64"),
        "right.pem",
        &[
            "notb64.yaml",
            "field `spec.encryptedData.username`",
            "not valid base64",
        ],
    );
    refused(
        "v1beta1.yaml",
        &sealed.replace("bitnami.com/v1alpha1", "bitnami.com/v1beta9"),
        "right.pem",
        &["v1beta1.yaml", "field `apiVersion`", "unsupported version"],
    );
    refused(
        "legacy.yaml",
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec:\n  data: AAAA\n",
        "right.pem",
        &["legacy.yaml", "field `spec.data`", "pre-v0.6"],
    );
    refused(
        "templated.yaml",
        &sealed.replace("    type: kubernetes.io/basic-auth", "    type: kubernetes.io/basic-auth\n    data:\n      url: 'postgres://{{ .username }}@db'"),
        "right.pem",
        &["templated.yaml", "field `spec.template.data.url`", "templated values are not supported"],
    );
    // No key given at all.
    env.write("plain-run.yaml", &sealed);
    env.run(&["import", "-r", &public, "plain-run.yaml"])
        .fails(1)
        .stderr_has(&["plain-run.yaml", "--bitnami-key"]);
    // A key file readable by others is refused like an identity file.
    env.write_mode("loose.pem", &ck.pkcs8, 0o644);
    env.run(&[
        "import",
        "--bitnami-key",
        "loose.pem",
        "-r",
        &public,
        "plain-run.yaml",
    ])
    .fails(1)
    .stderr_has(&["Bitnami key file loose.pem", "chmod 600"])
    .hides(&ck.pkcs8[40..80]);
    // A certificate alone is not a key.
    env.write_mode("cert-only.pem", &ck.cert, 0o600);
    env.run(&[
        "import",
        "--bitnami-key",
        "cert-only.pem",
        "-r",
        &public,
        "plain-run.yaml",
    ])
    .fails(1)
    .stderr_has(&["cert-only.pem", "holds no RSA private key"]);
    assert_no_plaintext(&env);
}

fn sops_encrypt(env: &Env, recipient: &str, file: &str, extra: &[&str]) -> String {
    let mut args = vec!["--encrypt"];
    args.extend_from_slice(extra);
    args.push(file);
    tool(
        env,
        "sops",
        &args,
        b"",
        &[("SOPS_AGE_RECIPIENTS", recipient)],
    )
}

#[test]
fn sops_files_open_with_their_mac_verified_in_every_encryption_mode() {
    let env = Env::new();
    let public = env.key("age.key");
    let other = env.key("other.key");
    env.write("plain.yaml", rich_secret("db", "prod"));
    env.write("plain.json", {
        let v: serde_yaml::Value = serde_yaml::from_str(&rich_secret("api", "prod")).unwrap();
        serde_json::to_string_pretty(&v).unwrap()
    });
    let modes: [(&str, &[&str]); 4] = [
        ("regex", &["--encrypted-regex", "^(data|stringData)$"]),
        ("whole", &[]),
        (
            "mac-only",
            &[
                "--encrypted-regex",
                "^(data|stringData)$",
                "--mac-only-encrypted",
            ],
        ),
        ("suffix", &["--unencrypted-suffix", "_plain"]),
    ];
    for (mode, flags) in modes {
        let file = format!("sops/{mode}.enc.yaml");
        // Two recipients: the right stanza is found whichever comes first.
        env.write(
            &file,
            sops_encrypt(&env, &format!("{other},{public}"), "plain.yaml", flags),
        );
        assert!(env.read(&file).contains("ENC[AES256_GCM,"));
        env.run(&["import", "-i", "age.key", "-r", &public, &file])
            .ok()
            .hides(CANARY)
            .stderr_has(&[&format!("converted {file}: SOPS file, 1 Secret(s)")]);
        assert_imported(&env, &file, "age.key", "strict");
    }
    // Standard input to standard output, as JSON: nothing is written anywhere.
    let enc = sops_encrypt(
        &env,
        &public,
        "plain.yaml",
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    let before = env.snapshot();
    let out = env
        .run_stdin(
            &["import", "-i", "age.key", "-r", &public, "-o", "json", "-"],
            &enc,
        )
        .ok()
        .hides(CANARY);
    assert_eq!(env.snapshot(), before);
    let sealed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(sealed["apiVersion"], "gitseal.dev/v1alpha1");
    assert!(
        out.stderr
            .contains("converted <stdin>: SOPS file, 1 Secret(s)"),
        "{}",
        out.stderr
    );
    env.write(
        "sops/api.enc.json",
        sops_encrypt(&env, &public, "plain.json", &[]),
    );
    env.run(&[
        "import",
        "-i",
        "age.key",
        "-r",
        &public,
        "--scope",
        "namespace",
        "sops/api.enc.json",
    ])
    .ok();
    let sealed: serde_yaml::Value = serde_yaml::from_str(&env.read("sops/api.enc.json")).unwrap();
    assert_eq!(scope_of(&sealed), "namespace");
    std::fs::remove_file(env.path("plain.yaml")).unwrap();
    std::fs::remove_file(env.path("plain.json")).unwrap();
    assert_no_plaintext(&env);
}

#[test]
fn sops_tampering_and_wrong_keys_are_refused() {
    let env = Env::new();
    let public = env.key("age.key");
    env.key("other.key");
    env.write("plain.yaml", rich_secret("db", "prod"));
    let enc = sops_encrypt(
        &env,
        &public,
        "plain.yaml",
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    std::fs::remove_file(env.path("plain.yaml")).unwrap();
    let doc = one_doc(&enc);
    let pw = get_str(&doc, "stringData.password").to_owned();
    let user = get_str(&doc, "stringData.username").to_owned();

    let refused = |file: &str, content: &str, identity: &str, expect: &[&str]| {
        env.write(file, content);
        let before = env.snapshot();
        env.run(&["import", "-i", identity, "-r", &public, file])
            .fails(1)
            .hides(CANARY)
            .stderr_has(expect);
        assert_eq!(env.snapshot(), before, "{file} must be left as it was");
    };
    // A plaintext field the MAC covers, changed: the MAC no longer matches.
    refused(
        "renamed.yaml",
        &enc.replacen("name: db", "name: evil", 1),
        "age.key",
        &[
            "renamed.yaml: document 1, field `sops.mac`",
            "does not match the content",
        ],
    );
    // Two ciphertexts swapped: each is bound to its path.
    refused(
        "swapped.yaml",
        &enc.replace(&pw, "@PW@")
            .replace(&user, &pw)
            .replace("@PW@", &user),
        "age.key",
        &[
            "swapped.yaml",
            "field `stringData.",
            "failed authentication",
        ],
    );
    // An encrypted value replaced by a plain one.
    refused(
        "plain-in.yaml",
        &enc.replace(&pw, "sneaky"),
        "age.key",
        &[
            "plain-in.yaml",
            "field `stringData.password`",
            "should be encrypted",
        ],
    );
    // The MAC itself altered.
    let mac = get_str(get(&doc, "sops"), "mac").to_owned();
    let mut bad_mac = mac.clone();
    bad_mac.replace_range(20..21, if &mac[20..21] == "A" { "B" } else { "A" });
    refused(
        "mac.yaml",
        &enc.replace(&mac, &bad_mac),
        "age.key",
        &["mac.yaml", "field `sops.mac`"],
    );
    // The MAC removed.
    refused(
        "nomac.yaml",
        &enc.replace(&format!("mac: {mac}"), "mac: \"\""),
        "age.key",
        &["nomac.yaml", "field `sops.mac`", "is missing"],
    );
    // A key that is not a recipient.
    refused(
        "wrongkey.yaml",
        &enc,
        "other.key",
        &[
            "wrongkey.yaml",
            "field `sops.age`",
            "none of the given identities",
            &public,
        ],
    );
    // No identity at all.
    env.write("noid.yaml", &enc);
    env.run(&["import", "-r", &public, "noid.yaml"])
        .fails(1)
        .stderr_has(&["noid.yaml", "SOPS-encrypted", "-i FILE"]);
    // A document cut out of its SOPS file (no metadata) cannot be opened.
    let cut = enc.split("sops:").next().unwrap().to_owned();
    refused(
        "cut.yaml",
        &cut,
        "age.key",
        &["cut.yaml", "field `data.blob`", "no `sops` metadata"],
    );
    assert_no_plaintext(&env);
}

#[test]
fn a_tree_converts_all_at_once_or_not_at_all() {
    let env = Env::new();
    let prod = env.key("prod.key");
    let dev = env.key("dev.key");
    env.write(
        ".gitseal.yaml",
        format!("rules:\n  - path: 'clusters/prod/**'\n    recipients: [{prod}]\n  - path: 'clusters/dev/**'\n    recipients: [{dev}]\n"),
    );
    let ck = controller_key(&env, "ctl");
    env.write_mode("keys.yaml", &ck.secret_list, 0o600);
    env.write("plain.yaml", rich_secret("db", "dev"));
    let sops_file = sops_encrypt(
        &env,
        &dev,
        "plain.yaml",
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    std::fs::remove_file(env.path("plain.yaml")).unwrap();
    // A Bitnami file with a Deployment beside the SealedSecret; a SOPS file; a SOPS file
    // that is not a Secret (Helm values); a file of another kind; an already gitseal one.
    let bitnami = kubeseal(&env, &ck.cert, "strict", &rich_secret("db", "prod"));
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec: {replicas: 1}\n";
    env.write("clusters/prod/db.yaml", format!("{deploy}---\n{bitnami}"));
    env.write("clusters/dev/db.enc.yaml", &sops_file);
    env.write(
        "clusters/dev/values.yaml",
        "replicas: 2\npassword: hunter2\n",
    );
    let values = sops_encrypt(&env, &dev, "clusters/dev/values.yaml", &[]);
    env.write("clusters/dev/values.enc.yaml", &values);
    std::fs::remove_file(env.path("clusters/dev/values.yaml")).unwrap();
    env.write("clusters/prod/web.yaml", deploy);
    env.write(
        "clusters/dev/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: dev}\ndata: {a: b}\n",
    );
    // And one broken Bitnami file.
    env.write(
        "clusters/prod/broken.yaml",
        bitnami.replace("name: db", "name: moved"),
    );
    let before = env.snapshot();

    let run = env
        .run(&[
            "import",
            "--bitnami-key",
            "keys.yaml",
            "-i",
            "dev.key",
            "clusters",
        ])
        .fails(1)
        .hides(CANARY)
        .stderr_has(&[
            "error: clusters/prod/broken.yaml",
            "converted clusters/prod/db.yaml: 1 Bitnami SealedSecret(s)",
            "converted clusters/dev/db.enc.yaml: SOPS file, 1 Secret(s)",
            "skipped clusters/dev/values.enc.yaml: SOPS file without a Secret",
            "nothing was written",
            "--keep-going",
        ]);
    assert!(
        run.stderr
            .contains("2 file(s) converted, 1 skipped, 1 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.snapshot(),
        before,
        "an atomic import that fails writes nothing"
    );

    env.run(&[
        "import",
        "--bitnami-key",
        "keys.yaml",
        "-i",
        "dev.key",
        "--dry-run",
        "clusters",
    ])
    .fails(1)
    .stderr_has(&[
        "would convert clusters/prod/db.yaml",
        "nothing written (--dry-run)",
    ]);
    assert_eq!(env.snapshot(), before, "--dry-run writes nothing");

    env.run(&[
        "import",
        "--bitnami-key",
        "keys.yaml",
        "-i",
        "dev.key",
        "--keep-going",
        "clusters",
    ])
    .fails(1)
    .stderr_has(&["the others were written"]);
    // Recipients came from the rules, by path.
    let prod_file = env.read("clusters/prod/db.yaml");
    let docs = docs(&prod_file);
    assert_eq!(docs.len(), 2);
    assert_eq!(get_str(&docs[0], "kind"), "Deployment");
    assert_eq!(get_str(&docs[1], "apiVersion"), "gitseal.dev/v1alpha1");
    env.write("prod-only.yaml", serde_yaml::to_string(&docs[1]).unwrap());
    env.run(&["unseal", "-i", "prod.key", "-f", "prod-only.yaml"])
        .ok();
    env.run(&["unseal", "-i", "dev.key", "-f", "clusters/dev/db.enc.yaml"])
        .ok();
    env.run(&["unseal", "-i", "prod.key", "-f", "clusters/dev/db.enc.yaml"])
        .fails(1);
    assert_eq!(
        env.read("clusters/prod/broken.yaml"),
        before[&PathBuf::from("clusters/prod/broken.yaml")]
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
    );
    assert_eq!(env.read("clusters/dev/values.enc.yaml"), values);
    assert_eq!(env.read("clusters/prod/web.yaml"), deploy);
    // The repository now checks clean except for the broken file, which check names with
    // the command to run.
    env.run(&["check", "clusters"]).fails(1).stdout_has(&[
        "clusters/prod/broken.yaml",
        "Bitnami",
        "gitseal import --bitnami-key",
    ]);
    assert_no_plaintext(&env);
}

#[test]
fn check_names_the_neighbours_and_seal_refuses_them() {
    let env = Env::new();
    let public = env.key("age.key");
    let ck = controller_key(&env, "ctl");
    env.write("plain.yaml", rich_secret("db", "prod"));
    let enc = sops_encrypt(
        &env,
        &public,
        "plain.yaml",
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    std::fs::remove_file(env.path("plain.yaml")).unwrap();
    env.write("repo/db.enc.yaml", &enc);
    env.write(
        "repo/b.yaml",
        kubeseal(&env, &ck.cert, "namespace-wide", &rich_secret("b", "prod")),
    );
    let run = env.run(&["check", "repo"]).fails(1);
    let out = run.stdout.clone();
    assert!(
        out.contains(
            "repo/b.yaml: document 1, field `kind`: this is a Bitnami Sealed Secrets SealedSecret"
        ),
        "{out}"
    );
    assert!(
        out.contains("gitseal import --bitnami-key SEALED_SECRETS_KEY.yaml repo/b.yaml"),
        "{out}"
    );
    assert!(
        out.contains("repo/db.enc.yaml: document 1, field `sops`: this is a SOPS-encrypted file"),
        "{out}"
    );
    assert!(
        out.contains("gitseal import -i AGE_IDENTITY repo/db.enc.yaml"),
        "{out}"
    );
    assert!(
        !out.contains("plaintext Secret"),
        "a SOPS file is not a plaintext Secret: {out}"
    );
    // seal refuses to seal ciphertexts as if they were values.
    env.run(&[
        "seal",
        "-f",
        "repo/db.enc.yaml",
        "-r",
        &public,
        "-w",
        "out.yaml",
    ])
    .fails(1)
    .stderr_has(&[
        "repo/db.enc.yaml: document 1, field `sops`",
        "SOPS-encrypted",
        "gitseal import",
    ]);
    env.write("stripped.yaml", enc.split("sops:").next().unwrap());
    env.run(&[
        "seal",
        "-f",
        "stripped.yaml",
        "-r",
        &public,
        "-w",
        "out.yaml",
    ])
    .fails(1)
    .stderr_has(&["stripped.yaml: document 1, field `data.blob`", "SOPS"]);
    env.run(&["seal", "-f", "repo/b.yaml", "-r", &public, "-w", "out.yaml"])
        .fails(1)
        .stderr_has(&["repo/b.yaml", "Bitnami", "gitseal import"]);
    assert!(!env.exists("out.yaml"));
}
