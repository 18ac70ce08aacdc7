//! Bad input, table-driven. Every case runs the real binary in its own folder and must:
//! exit with the expected code (1 bad input / wrong key / scope mismatch, 2 usage), print
//! a message naming the file (or `<stdin>`), document and field where they apply, never
//! panic, never print the canary secret (or other forbidden strings), print nothing on
//! stdout, and leave the folder exactly as it was: no output file, no `.gitseal-*`
//! temporary file, no input rewritten.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

use gitseal::manifest::hostile;
use support::*;

/// Keys and a SealedSecret made once, copied into every case's folder.
struct Fixture {
    a_public: String,
    a_identity: String,
    a_private: String,
    a_id: String,
    b_public: String,
    b_identity: String,
    b_private: String,
    b_id: String,
    /// `db` in `prod`, strict, keys `password` (the canary) and `username`, sealed to A.
    sealed: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let env = Env::new();
        let key = |name: &str| {
            let run = env.run(&["keys", "generate", "-w", name]).ok();
            let id = run
                .stderr
                .split("key id ")
                .nth(1)
                .unwrap()
                .trim_end_matches(|c: char| c == ')' || c.is_whitespace())
                .to_owned();
            let identity = env.read(name);
            let private = identity
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                .unwrap()
                .to_owned();
            (run.stdout.trim().to_owned(), identity, private, id)
        };
        let (a_public, a_identity, a_private, a_id) = key("a.key");
        let (b_public, b_identity, b_private, b_id) = key("b.key");
        env.write("s.yaml", secret_yaml("db", "prod"));
        let sealed = env
            .run(&["seal", "-f", "s.yaml", "-r", &a_public])
            .ok()
            .stdout;
        Fixture {
            a_public,
            a_identity,
            a_private,
            a_id,
            b_public,
            b_identity,
            b_private,
            b_id,
            sealed,
        }
    })
}

/// The public halves of the test keys published in docs/FORMAT.md.
const FORMAT_MD_KEY_A: &str = "age14p8w5r8pckh4dx2arvp9nk68c57dj7kvd3jjg75ml05swdx6p5zqe2hja0";
const FORMAT_MD_KEY_B: &str = "age1uft73tvnpxj420uzr93nrvgz0r6u3yv5lj3rqvwe6tmput2eaq4qyaly0p";

struct Case {
    name: &'static str,
    files: Vec<(String, Vec<u8>, u32)>,
    args: Vec<String>,
    stdin: Vec<u8>,
    code: i32,
    expect: Vec<String>,
    forbid: Vec<String>,
}

fn case(name: &'static str) -> Case {
    let f = fixture();
    Case {
        name,
        files: vec![
            ("a.key".into(), f.a_identity.clone().into_bytes(), 0o600),
            ("b.key".into(), f.b_identity.clone().into_bytes(), 0o600),
            ("sealed.yaml".into(), f.sealed.clone().into_bytes(), 0o644),
        ],
        args: Vec::new(),
        stdin: Vec::new(),
        code: 1,
        expect: Vec::new(),
        // Private keys never appear in any message, not even in part.
        forbid: vec![f.a_private[16..].to_owned(), f.b_private[16..].to_owned()],
    }
}

impl Case {
    fn file(mut self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files.retain(|(n, ..)| n != name);
        self.files
            .push((name.to_owned(), contents.as_ref().to_vec(), 0o644));
        self
    }
    fn file_mode(mut self, name: &str, contents: impl AsRef<[u8]>, mode: u32) -> Self {
        self = self.file(name, contents);
        self.files.last_mut().unwrap().2 = mode;
        self
    }
    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    fn stdin(mut self, s: impl AsRef<[u8]>) -> Self {
        self.stdin = s.as_ref().to_vec();
        self
    }
    fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
    fn expect(mut self, parts: &[&str]) -> Self {
        self.expect.extend(parts.iter().map(|s| (*s).to_owned()));
        self
    }
    fn forbid(mut self, s: &str) -> Self {
        self.forbid.push(s.to_owned());
        self
    }

    /// Runs the case; returns what went wrong, if anything.
    fn check(&self) -> Vec<String> {
        let env = Env::new();
        for (name, contents, mode) in &self.files {
            env.write_mode(name, contents, *mode);
        }
        let before = env.snapshot();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let run = env.run_stdin(&args, &self.stdin);
        let mut problems = Vec::new();
        if run.code != Some(self.code) {
            problems.push(format!("exit {:?}, expected {}", run.code, self.code));
        }
        if run.stderr.contains("panicked") || run.stdout.contains("panicked") {
            problems.push("panicked".into());
        }
        if !run.stderr.starts_with("error:") {
            problems.push("stderr does not start with `error:`".into());
        }
        for e in &self.expect {
            if !run.stderr.contains(e.as_str()) {
                problems.push(format!("stderr lacks {e:?}"));
            }
        }
        for secret in std::iter::once(CANARY).chain(self.forbid.iter().map(String::as_str)) {
            if run.stdout.contains(secret) || run.stderr.contains(secret) {
                problems.push(format!("output shows {secret:?}"));
            }
        }
        if !run.stdout.is_empty() {
            problems.push("stdout is not empty".into());
        }
        let after = env.snapshot();
        if after != before {
            let changed: Vec<_> = after
                .iter()
                .filter(|(p, c)| before.get(*p) != Some(*c))
                .map(|(p, _)| p.display().to_string())
                .collect();
            problems.push(format!("the folder changed: {changed:?}"));
        }
        if !problems.is_empty() {
            problems.push(format!("stderr was:\n{}", run.stderr));
        }
        problems
    }
}

/// A Secret manifest around `body` (the lines after metadata).
fn secret_with(meta: &str, body: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {meta}\n{body}")
}

fn cases() -> Vec<Case> {
    let f = fixture();
    let a = f.a_public.as_str();
    let b = f.b_public.as_str();
    let ok_secret = secret_yaml("db", "prod");
    let seal_in = |ext: &str| -> Vec<String> {
        vec![
            "seal".into(),
            "-f".into(),
            format!("in.{ext}"),
            "-r".into(),
            a.into(),
            "-w".into(),
            "out.yaml".into(),
        ]
    };
    let seal_yaml: Vec<String> = seal_in("yaml");
    let sy: Vec<&str> = seal_yaml.iter().map(String::as_str).collect();
    let seal_json: Vec<String> = seal_in("json");
    let sj: Vec<&str> = seal_json.iter().map(String::as_str).collect();
    let pw = format!("password: {CANARY}");
    let sealed_with = |from: &str, to: &str| f.sealed.replacen(from, to, 1);
    let big = {
        let mut s = ok_secret.clone();
        s.push_str(&format!("# {}\n", "x".repeat(8 * 1024 * 1024 + 16)));
        s
    };

    vec![
        // --- manifests ---
        case("malformed YAML")
            .file("in.yaml", format!("apiVersion: v1\nkind: Secret\nstringData: {{{pw}\n"))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "not valid YAML"]),
        case("malformed YAML in the second document")
            .file("in.yaml", format!("{ok_secret}---\nstringData: [{CANARY}\n"))
            .args(&sy)
            .expect(&["in.yaml", "document 2", "not valid YAML"]),
        case("malformed JSON")
            .file(
                "in.json",
                format!(r#"{{"apiVersion":"v1","kind":"Secret","stringData":{{"password":"{CANARY}""#),
            )
            .args(&sj)
            .expect(&["in.json", "document 1", "not valid YAML or JSON"]),
        case("wrong kind (ConfigMap)")
            .file(
                "in.yaml",
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: p}}\ndata: {{{pw}}}\n"),
            )
            .args(&sy)
            .expect(&["in.yaml", "document 1", "field `kind`", "ConfigMap"]),
        case("wrong apiVersion")
            .file("in.yaml", ok_secret.replace("apiVersion: v1", "apiVersion: v2"))
            .args(&sy)
            .expect(&["in.yaml", "field `apiVersion`", "v2/Secret"]),
        case("wrong kind in the second document")
            .file(
                "in.yaml",
                format!("{ok_secret}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n"),
            )
            .args(&sy)
            .expect(&["in.yaml", "document 2", "field `kind`"]),
        case("missing name, no --name")
            .file("in.yaml", secret_with("{namespace: prod}", &format!("stringData: {{{pw}}}\n")))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "field `metadata.name`", "--name"]),
        case("missing namespace (strict)")
            .file("in.yaml", secret_with("{name: db}", &format!("stringData: {{{pw}}}\n")))
            .args(&sy)
            .expect(&["in.yaml", "field `metadata.namespace`", "strict", "--namespace"]),
        case("missing namespace (namespace scope)")
            .file("in.yaml", secret_with("{name: db}", &format!("stringData: {{{pw}}}\n")))
            .args(&[&sy[..], &["--scope", "namespace"]].concat())
            .expect(&["in.yaml", "field `metadata.namespace`", "namespace"]),
        case("invalid name characters")
            .file("in.yaml", secret_with("{name: Db_1, namespace: prod}", &format!("stringData: {{{pw}}}\n")))
            .args(&sy)
            .expect(&["in.yaml", "field `metadata.name`", "invalid name `Db_1`"]),
        case("invalid namespace characters")
            .file("in.yaml", secret_with("{name: db, namespace: Prod.1}", &format!("stringData: {{{pw}}}\n")))
            .args(&sy)
            .expect(&["in.yaml", "field `metadata.namespace`", "invalid namespace"]),
        case("bad base64 in data")
            .file(
                "in.yaml",
                secret_with("{name: db, namespace: prod}", &format!("data:\n  ok: YWRtaW4=\n  password: '%{CANARY}'\n")),
            )
            .args(&sy)
            .expect(&["in.yaml", "field `data.password`", "base64"]),
        case("non-string stringData value")
            .file(
                "in.yaml",
                secret_with("{name: db, namespace: prod}", &format!("stringData:\n  {pw}\n  port: 5432\n")),
            )
            .args(&sy)
            .expect(&["in.yaml", "field `stringData.port`", "must be a string"]),
        case("invalid data key")
            .file(
                "in.yaml",
                secret_with("{name: db, namespace: prod}", &format!("stringData:\n  'pass word': {CANARY}\n")),
            )
            .args(&sy)
            .expect(&["in.yaml", "field `stringData.pass word`", "invalid key"]),
        case("immutable not a boolean")
            .file("in.yaml", format!("{ok_secret}immutable: 'yes'\n"))
            .args(&sy)
            .expect(&["in.yaml", "field `immutable`"]),
        case("Secret without data")
            .file("in.yaml", secret_with("{name: db, namespace: prod}", "type: Opaque\n"))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "no `data` or `stringData`"]),
        case("misspelt stringData")
            .file("in.yaml", secret_with("{name: db, namespace: prod}", &format!("stringdata: {{{pw}}}\n")))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "nothing to seal"]),
        case("unknown scope annotation on the Secret")
            .file(
                "in.yaml",
                secret_with(
                    "{name: db, namespace: prod, annotations: {gitseal.dev/scope: galaxy}}",
                    &format!("stringData: {{{pw}}}\n"),
                ),
            )
            .args(&sy)
            .expect(&["in.yaml", "metadata.annotations.gitseal.dev/scope", "unknown scope `galaxy`"]),
        case("bad item in a kind: List")
            .file(
                "in.yaml",
                format!(
                    "apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: Secret, metadata: {{name: a, namespace: p}}, stringData: {{{pw}}}}}\n- {{apiVersion: v1, kind: Secret, metadata: {{name: b, namespace: p}}, data: {{k: 1}}}}\n"
                ),
            )
            .args(&sy)
            .expect(&["in.yaml", "document 1", "field `items[1].data.k`"]),
        case("empty input file")
            .file("in.yaml", "")
            .args(&sy)
            .expect(&["in.yaml", "empty"]),
        case("empty standard input")
            .args(&["seal", "-r", a, "-w", "out.yaml"])
            .expect(&["<stdin>", "empty"]),
        case("comments only")
            .file("in.yaml", "# nothing here\n---\n# nor here\n")
            .args(&sy)
            .expect(&["in.yaml", "empty"]),
        case("input is a YAML list")
            .file("in.yaml", format!("- {CANARY}\n- two\n"))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "mapping"]),
        case("input is a YAML scalar, from stdin")
            .args(&["seal", "-r", a, "-w", "out.yaml"])
            .stdin(format!("{CANARY}\n"))
            .expect(&["<stdin>", "document 1", "mapping"]),
        case("oversized input (> 8 MiB)")
            .file("in.yaml", &big)
            .args(&sy)
            .expect(&["in.yaml", "8 MiB", "(limit: bytes per file)"]),
        case("oversized standard input")
            .args(&["seal", "-r", a, "-w", "out.yaml"])
            .stdin(&big)
            .expect(&["<stdin>", "8 MiB"]),
        case("non-UTF-8 input")
            .file("in.yaml", [ok_secret.as_bytes(), b"# \xff\xfe\n"].concat())
            .args(&sy)
            .expect(&["in.yaml", "not UTF-8"]),
        case("input file missing")
            .args(&["seal", "-f", "nope.yaml", "-r", a, "-w", "out.yaml"])
            .expect(&["nope.yaml", "cannot open"]),
        case("input is a folder")
            .file("dir/x", "")
            .args(&["seal", "-f", "dir", "-r", a, "-w", "out.yaml"])
            .expect(&["dir", "cannot read"]),
        case("-n disagrees with metadata.namespace")
            .file("in.yaml", &ok_secret)
            .args(&[&sy[..], &["-n", "staging"]].concat())
            .expect(&["in.yaml", "field `metadata.namespace`", "--namespace says staging"]),
        case("-w onto a folder")
            .file("in.yaml", &ok_secret)
            .file("outdir/keep", "")
            .args(&["seal", "-f", "in.yaml", "-r", a, "-w", "outdir"])
            .expect(&["outdir", "cannot write"]),
        case("sealing a SealedSecret again")
            .args(&["seal", "-f", "sealed.yaml", "-r", a, "-w", "out.yaml"])
            .expect(&["sealed.yaml", "document 1", "field `kind`", "SealedSecret"]),
        case("-w onto the input, failing, leaves the input alone")
            .file("in.yaml", format!("{ok_secret}---\nstringData: [{CANARY}\n"))
            .args(&["seal", "-f", "in.yaml", "-r", a, "-w", "in.yaml"])
            .expect(&["in.yaml", "document 2"]),
        // --- hostile manifests (limits checked before parsing; tests/hostile.rs measures them) ---
        case("alias bomb (35 KB: k aliases to a k-element anchor)")
            .file("in.yaml", hostile::alias_bomb(5_000))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "once aliases are expanded", "(limit: nodes per file)"]),
        case("a tag before a comma in a flow sequence (made the old pre-scan parser panic)")
            .file("in.yaml", "[!t,\n")
            .args(&sy)
            .expect(&["in.yaml", "document 1"]),
        case("a quoted key before a block scalar indicator (made the old pre-scan parser panic)")
            .file("in.yaml", "a: ''|\n 0\n")
            .args(&sy)
            .expect(&["in.yaml", "document 1"]),
        case("flow sequences nested 100,000 deep")
            .file("in.yaml", hostile::nested_sequences(100_000))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "(limit: YAML nesting depth)"]),
        case("JSON arrays nested 100,000 deep")
            .file("in.json", hostile::nested_sequences(100_000))
            .args(&sj)
            .expect(&["in.json", "document 1", "(limit: YAML nesting depth)"]),
        case("250,000 empty documents")
            .file("in.yaml", hostile::many_empty_documents(250_000))
            .args(&sy)
            .expect(&["in.yaml", "document 10001", "(limit: documents per file)"]),
        case("a flat list of 600,000 scalars")
            .file("in.yaml", hostile::wide_list(600_000))
            .args(&sy)
            .expect(&["in.yaml", "document 1", "(limit: nodes per file)"]),
        case("unseal: flow mappings nested 60,000 deep")
            .file("bad.yaml", hostile::nested_mappings(60_000))
            .args(&["unseal", "-i", "a.key", "-f", "bad.yaml"])
            .expect(&["bad.yaml", "document 1", "(limit: YAML nesting depth)"]),
        case("reseal: alias bomb")
            .file("bad.yaml", hostile::alias_bomb(5_000))
            .args(&["reseal", "-i", "a.key", "-r", b, "bad.yaml"])
            .expect(&["bad.yaml", "(limit: nodes per file)", "1 file(s) could not be resealed"]),
        case("--merge-into an alias bomb")
            .file("in.yaml", &ok_secret)
            .file("bomb.yaml", hostile::alias_bomb(5_000))
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "bomb.yaml"])
            .expect(&["bomb.yaml", "document 1", "(limit: nodes per file)"]),
        case(".gitseal.yaml that is an alias bomb")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", hostile::alias_bomb(2_000))
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "(limit: nodes per file)"]),
        // --- recipients ---
        case("invalid recipient -r")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", "age1notakey", "-w", "out.yaml"])
            .expect(&["--recipient #1", "invalid recipient", "62 characters"]),
        case("second -r invalid")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", a, "-r", "ssh-ed25519 AAAA", "-w", "out.yaml"])
            .expect(&["--recipient #2", "SSH keys are not supported"]),
        case("private key passed as -r")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", &f.a_private, "-w", "out.yaml"])
            .expect(&["--recipient #1", "private key", "gitseal keys public"]),
        case("recipients file with a bad line")
            .file("in.yaml", &ok_secret)
            .file("recips.txt", format!("# team keys\n{a}\n\nnot-a-key\n"))
            .args(&["seal", "-f", "in.yaml", "-R", "recips.txt", "-w", "out.yaml"])
            .expect(&["recipients file recips.txt", "line 4"]),
        case("recipients file holding a private key")
            .file("in.yaml", &ok_secret)
            .file("recips.txt", &f.a_identity)
            .args(&["seal", "-f", "in.yaml", "-R", "recips.txt", "-w", "out.yaml"])
            .expect(&["recips.txt", "line 3", "private key"]),
        case("empty recipients file")
            .file("in.yaml", &ok_secret)
            .file("recips.txt", "# nobody yet\n\n")
            .args(&["seal", "-f", "in.yaml", "-R", "recips.txt", "-w", "out.yaml"])
            .expect(&["recips.txt", "no public keys"]),
        case("recipients file missing")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-R", "nobody.txt", "-w", "out.yaml"])
            .expect(&["nobody.txt", "cannot open"]),
        case("no recipients and no .gitseal.yaml")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&["no recipients", "out.yaml", "-r AGE1", ".gitseal.yaml"]),
        case("no recipients, stdin to stdout")
            .args(&["seal"])
            .stdin(&ok_secret)
            .expect(&["no recipients", "-r AGE1"]),
        case(".gitseal.yaml with a bad key")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", "rules:\n  - path: '**'\n    recipients: [age1bad]\n")
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "rules[0].recipients[0]", "invalid recipient"]),
        case(".gitseal.yaml with a private key")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", format!("escrow: ['{}']\nrules:\n  - path: '**'\n    recipients: [{a}]\n", f.a_private))
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "escrow[0]", "private key"]),
        // --- recipients whose private key is public, placeholders (issue 8 item 7) ---
        case("-r a published test key (docs/FORMAT.md)")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", a, "-r", FORMAT_MD_KEY_A, "-w", "out.yaml"])
            .expect(&["--recipient #2", FORMAT_MD_KEY_A, "test key A of docs/FORMAT.md", "published", "gitseal keys fetch"]),
        case("recipients file holding a published test key")
            .file("in.yaml", &ok_secret)
            .file("recips.txt", format!("{a}\n{FORMAT_MD_KEY_B}\n"))
            .args(&["seal", "-f", "in.yaml", "-R", "recips.txt", "-w", "out.yaml"])
            .expect(&["recips.txt", "line 2", "test key B of docs/FORMAT.md", "published"]),
        case(".gitseal.yaml with a published test key as escrow")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", format!("escrow: [{FORMAT_MD_KEY_B}]\nrules:\n  - path: '**'\n    recipients: [{a}]\n"))
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "escrow[0]", "published"]),
        case(".gitseal.yaml whose recipientsFile holds a published test key")
            .file("in.yaml", &ok_secret)
            .file("keys.pub", format!("{a}\n{FORMAT_MD_KEY_A}\n"))
            .file(".gitseal.yaml", "rules:\n  - path: '**'\n    recipientsFile: keys.pub\n")
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "rules[0].recipientsFile (keys.pub)", "test key A", "published"]),
        case("keys.example copied as .gitseal.yaml")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", include_str!("../../keys.example"))
            .args(&["seal", "-f", "in.yaml", "-w", "clusters/production/db.yaml"])
            .expect(&[".gitseal.yaml", "escrow[0]", "placeholder `escrow` from keys.example", "gitseal keys fetch"]),
        case("create -r a published test key")
            .args(&["create", "db", "-n", "prod", "-r", FORMAT_MD_KEY_A, "--from-literal", "k=v", "-w", "out.yaml"])
            .expect(&["--recipient #1", "published"]),
        case("reseal -r a published test key")
            .args(&["reseal", "-i", "a.key", "-r", FORMAT_MD_KEY_A, "sealed.yaml"])
            .expect(&["--recipient #1", "published"]),
        case("keys backup -r a published test key")
            .args(&["keys", "backup", "-r", FORMAT_MD_KEY_A, "-w", "backup.age", "--kubeconfig", "nowhere.kubeconfig"])
            .expect(&["--recipient #1", "published"]),
        case(".gitseal.yaml with an unknown field")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", format!("rules:\n  - path: '**'\n    recipients: [{a}]\n    recipient: [{b}]\n"))
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "unknown field `recipient`"]),
        case(".gitseal.yaml with no matching rule")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", format!("rules:\n  - path: 'clusters/**'\n    recipients: [{a}]\n"))
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "no rule", "out.yaml"]),
        case(".gitseal.yaml that is empty")
            .file("in.yaml", &ok_secret)
            .file(".gitseal.yaml", "")
            .args(&["seal", "-f", "in.yaml", "-w", "out.yaml"])
            .expect(&[".gitseal.yaml", "empty"]),
        // --- identities and unseal ---
        case("unseal with the wrong identity")
            .args(&["unseal", "-i", "b.key", "-f", "sealed.yaml"])
            .expect(&[
                "sealed.yaml",
                "document 1",
                "spec.encryptedData.",
                "no key in the ring opens this value",
                &f.a_id,
                &f.b_id,
            ]),
        case("identity file with mode 0644")
            .file_mode("loose.key", &f.a_identity, 0o644)
            .args(&["unseal", "-i", "loose.key", "-f", "sealed.yaml"])
            .expect(&["loose.key", "0644", "chmod 600"]),
        case("identity file holding a public key")
            .file_mode("pub.key", format!("{a}\n"), 0o600)
            .args(&["unseal", "-i", "pub.key", "-f", "sealed.yaml"])
            .expect(&["identity file pub.key", "line 1", "public key"])
            .forbid(a),
        case("identity file with garbage")
            .file_mode("junk.key", format!("# mine\n{CANARY}\n"), 0o600)
            .args(&["unseal", "-i", "junk.key", "-f", "sealed.yaml"])
            .expect(&["identity file junk.key", "line 2", "not a valid age X25519 private key"]),
        case("identity file with a damaged key")
            .file_mode("bad.key", f.a_identity.replace(&f.a_private[20..30], "qqqqqqqqqq"), 0o600)
            .args(&["unseal", "-i", "bad.key", "-f", "sealed.yaml"])
            .expect(&["identity file bad.key", "line 3"])
            .forbid(&f.a_private[30..]),
        case("identity file with no key")
            .file_mode("empty.key", "# created: never\n", 0o600)
            .args(&["unseal", "-i", "empty.key", "-f", "sealed.yaml"])
            .expect(&["identity file empty.key", "no private key found"]),
        case("identity file missing")
            .args(&["unseal", "-i", "missing.key", "-f", "sealed.yaml"])
            .expect(&["identity file missing.key", "cannot open"]),
        case("identity is not a regular file")
            .file("keys/x", "")
            .args(&["unseal", "-i", "keys", "-f", "sealed.yaml"])
            .expect(&["identity file keys", "not a regular file"]),
        case("unseal: bad base64 in encryptedData")
            .file("bad.yaml", sealed_with("password: ", "password: '%%not*base64' # "))
            .args(&["unseal", "-i", "a.key", "-f", "bad.yaml"])
            .expect(&["bad.yaml", "document 1", "field `spec.encryptedData.password`", "base64"]),
        case("unseal: unsupported apiVersion")
            .file("bad.yaml", sealed_with("gitseal.dev/v1alpha1", "gitseal.dev/v2"))
            .args(&["unseal", "-i", "a.key", "-f", "bad.yaml"])
            .expect(&["bad.yaml", "document 1", "field `apiVersion`", "gitseal.dev/v2"]),
        case("unseal: foreign SealedSecret (bitnami)")
            .file("bad.yaml", sealed_with("gitseal.dev/v1alpha1", "bitnami.com/v1alpha1"))
            .args(&["unseal", "-i", "a.key", "-f", "bad.yaml"])
            .expect(&["bad.yaml", "field `kind`", "Bitnami Sealed Secrets", "gitseal import --bitnami-key"]),
        case("unseal: a plain Secret")
            .file("in.yaml", &ok_secret)
            .args(&["unseal", "-i", "a.key", "-f", "in.yaml"])
            .expect(&["in.yaml", "document 1", "field `kind`", "SealedSecret"]),
        case("unseal: no encryptedData")
            .file("bad.yaml", "apiVersion: gitseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec: {}\n")
            .args(&["unseal", "-i", "a.key", "-f", "bad.yaml"])
            .expect(&["bad.yaml", "field `spec.encryptedData`", "required"]),
        case("unseal: empty standard input")
            .args(&["unseal", "-i", "a.key"])
            .expect(&["<stdin>", "empty"]),
        case("unseal: value moved to another key")
            .file("bad.yaml", sealed_with("  encryptedData:\n    password:", "  encryptedData:\n    password2:"))
            .args(&["unseal", "-i", "a.key", "-f", "bad.yaml"])
            .expect(&["bad.yaml", "spec.encryptedData.password2", "scope mismatch"]),
        case("reseal with the wrong identity")
            .args(&["reseal", "-i", "b.key", "-r", b, "sealed.yaml"])
            .expect(&["sealed.yaml", "document 1", "no key in the ring", "nothing was written"]),
        case("reseal: malformed file")
            .file("bad.yaml", sealed_with("gitseal.dev/v1alpha1", "gitseal.dev/v2"))
            .args(&["reseal", "-i", "a.key", "-r", b, "bad.yaml"])
            .expect(&["bad.yaml", "apiVersion", "1 file(s) could not be resealed"]),
        // --- flags ---
        case("--raw without --key")
            .args(&["seal", "--raw", "-n", "prod", "--name", "db", "-r", a, "-w", "out.txt"])
            .stdin(CANARY)
            .code(2)
            .expect(&["--key"]),
        case("--raw without --name in strict scope")
            .args(&["seal", "--raw", "-n", "prod", "--key", "k", "-r", a, "-w", "out.txt"])
            .stdin(CANARY)
            .code(2)
            .expect(&["--raw", "needs a name"]),
        case("--raw with --merge-into")
            .args(&["seal", "--raw", "--key", "k", "--merge-into", "sealed.yaml", "-r", a])
            .stdin(CANARY)
            .code(2)
            .expect(&["--raw", "--merge-into"]),
        case("--raw with -o json")
            .args(&["seal", "--raw", "--key", "k", "--scope", "cluster", "-o", "json", "-r", a])
            .stdin(CANARY)
            .code(2)
            .expect(&["--raw", "--output"]),
        case("--raw value over 1 MiB")
            .args(&["seal", "--raw", "--key", "k", "--scope", "cluster", "-r", a, "-w", "out.txt"])
            .stdin(vec![b'x'; 1024 * 1024 + 1])
            .expect(&["<stdin>", "1 MiB"]),
        case("--key without --raw")
            .file("in.yaml", &ok_secret)
            .args(&[&sy[..], &["--key", "k"]].concat())
            .code(2)
            .expect(&["--raw"]),
        case("--key invalid")
            .args(&["seal", "--raw", "--key", "bad key", "--scope", "cluster", "-r", a])
            .stdin(CANARY)
            .code(2)
            .expect(&["--key", "invalid key"]),
        case("--name with a multi-document input")
            .file("in.yaml", format!("{ok_secret}---\n{}", secret_yaml("two", "prod")))
            .args(&[&sy[..], &["--name", "one"]].concat())
            .code(2)
            .expect(&["--name", "in.yaml", "2 documents"]),
        case("--name invalid")
            .file("in.yaml", &ok_secret)
            .args(&[&sy[..], &["--name", "Bad_Name"]].concat())
            .code(2)
            .expect(&["--name", "invalid name `Bad_Name`"]),
        case("-n invalid")
            .file("in.yaml", &ok_secret)
            .args(&[&sy[..], &["-n", "prod/x"]].concat())
            .code(2)
            .expect(&["--namespace", "invalid namespace"]),
        case("--scope bogus")
            .file("in.yaml", &ok_secret)
            .args(&[&sy[..], &["--scope", "bogus"]].concat())
            .code(2)
            .expect(&["--scope", "bogus", "strict, namespace, cluster"]),
        case("-o xml")
            .file("in.yaml", &ok_secret)
            .args(&[&sy[..], &["-o", "xml"]].concat())
            .code(2)
            .expect(&["xml", "yaml, json"]),
        case("--merge-into with -w")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "sealed.yaml", "-w", "out.yaml"])
            .code(2)
            .expect(&["--merge-into", "--write"]),
        case("--merge-into with --name")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "sealed.yaml", "--name", "x"])
            .code(2)
            .expect(&["--merge-into", "--name"]),
        case("--merge-into a file with two SealedSecrets")
            .file("in.yaml", &ok_secret)
            .file("double.yaml", format!("{}---\n{}", f.sealed, f.sealed))
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "double.yaml"])
            .expect(&["double.yaml", "exactly one SealedSecret", "found 2"]),
        case("--merge-into a file with no SealedSecret")
            .file("in.yaml", &ok_secret)
            .file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "cm.yaml"])
            .expect(&["cm.yaml", "found 0"]),
        case("--merge-into with a mismatching name")
            .file("in.yaml", secret_yaml("other", "prod"))
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "sealed.yaml"])
            .expect(&["in.yaml", "document 1", "field `metadata.name`", "sealed.yaml", "db"]),
        case("--merge-into with a mismatching namespace")
            .file("in.yaml", secret_yaml("db", "dev"))
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "sealed.yaml"])
            .expect(&["in.yaml", "field `metadata.namespace`", "prod"]),
        case("--merge-into with two input Secrets")
            .file("in.yaml", format!("{ok_secret}---\n{ok_secret}"))
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "sealed.yaml"])
            .expect(&["in.yaml", "exactly one Secret", "2 documents"]),
        case("--merge-into with an empty Secret")
            .file("in.yaml", secret_with("{name: db}", "data: {}\n"))
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "sealed.yaml"])
            .expect(&["in.yaml", "document 1", "nothing to seal"]),
        case("--merge-into a missing file")
            .file("in.yaml", &ok_secret)
            .args(&["seal", "-f", "in.yaml", "-r", a, "--merge-into", "gone.yaml"])
            .expect(&["gone.yaml", "cannot open"]),
        case("unseal without -i")
            .args(&["unseal", "-f", "sealed.yaml"])
            .code(2)
            .expect(&["--identity"]),
        case("reseal without a path")
            .args(&["reseal", "-i", "a.key"])
            .code(2)
            .expect(&["<PATH>"]),
        case("unknown subcommand")
            .args(&["encrypt"])
            .code(2)
            .expect(&["encrypt"]),
        // --- create ---
        case("create with no data flags")
            .args(&["create", "db", "-n", "prod", "-r", a, "-w", "out.yaml"])
            .code(2)
            .expect(&["nothing to seal", "--from-literal"]),
        case("create --from-literal without =")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-literal", CANARY, "-w", "out.yaml"])
            .code(2)
            .expect(&["--from-literal", "KEY=VALUE"]),
        case("create with a duplicate key")
            .args(&[
                "create", "db", "-n", "prod", "-r", a, "--from-literal", &pw.replace(": ", "="),
                "--from-literal", "password=again", "-w", "out.yaml",
            ])
            .code(2)
            .expect(&["key password", "more than once"]),
        case("create with a duplicate key across flags")
            .file("password", CANARY)
            .args(&[
                "create", "db", "-n", "prod", "-r", a, "--from-literal", "password=x",
                "--from-file", "password", "-w", "out.yaml",
            ])
            .code(2)
            .expect(&["--from-file password", "more than once"]),
        case("create with an invalid literal key")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-literal", &format!("a b={CANARY}"), "-w", "out.yaml"])
            .code(2)
            .expect(&["--from-literal", "invalid key"]),
        case("create --from-file missing")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-file", "k=nowhere.pem", "-w", "out.yaml"])
            .expect(&["nowhere.pem", "cannot open"]),
        case("create with an env line without =")
            .file("app.env", format!("OK=1\n{CANARY}\n"))
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-env-file", "app.env", "-w", "out.yaml"])
            .expect(&["app.env", "line 2", "KEY=VALUE"]),
        case("create --from-file - without a key")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-file", "-", "-w", "out.yaml"])
            .stdin(CANARY)
            .code(2)
            .expect(&["--from-file -", "KEY=-"]),
        case("create reading standard input twice")
            .args(&[
                "create", "db", "-n", "prod", "-r", a, "--from-file", "a=-", "--from-env-file", "-",
                "-w", "out.yaml",
            ])
            .stdin(format!("K={CANARY}\n"))
            .code(2)
            .expect(&["standard input", "only one"]),
        case("create --from-env-file - with a line without =")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-env-file", "-", "-w", "out.yaml"])
            .stdin(format!("OK=1\n{CANARY}\n"))
            .expect(&["<stdin>", "line 2", "KEY=VALUE"]),
        case("create --from-file KEY=- with an invalid key")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-file", "a b=-", "-w", "out.yaml"])
            .stdin(CANARY)
            .code(2)
            .expect(&["--from-file <stdin>", "invalid key"]),
        case("create --from-file KEY=- with input over 8 MiB")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-file", "big=-", "-w", "out.yaml"])
            .stdin(vec![b'x'; 8 * 1024 * 1024 + 1])
            .expect(&["<stdin>", "larger than 8 MiB"]),
        case("create with a non-UTF-8 env file")
            .file("app.env", b"OK=\xff\xfe\n")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-env-file", "app.env", "-w", "out.yaml"])
            .expect(&["app.env", "not UTF-8"]),
        case("create without a namespace")
            .args(&["create", "db", "-r", a, "--from-literal", &format!("k={CANARY}"), "-w", "out.yaml"])
            .code(2)
            .expect(&["--namespace", "required"]),
        case("create with an invalid NAME")
            .args(&["create", "DB", "-n", "prod", "-r", a, "--from-literal", "k=v", "-w", "out.yaml"])
            .code(2)
            .expect(&["<NAME>", "invalid name `DB`"]),
        case("create --scope bogus")
            .args(&["create", "db", "-n", "prod", "-r", a, "--from-literal", "k=v", "--scope", "wide"])
            .code(2)
            .expect(&["--scope", "wide"]),
        // --- keys ---
        case("keys generate -w onto an existing file")
            .file_mode("id.key", &f.a_identity, 0o600)
            .args(&["keys", "generate", "-w", "id.key"])
            .expect(&["id.key", "already exists", "--force"]),
        case("keys generate --force without -w")
            .args(&["keys", "generate", "--force"])
            .code(2)
            .expect(&["--write"]),
        case("keys generate -w into a missing folder")
            .args(&["keys", "generate", "-w", "nowhere/id.key"])
            .expect(&["nowhere/id.key"]),
        case("keys public of a file without keys")
            .file("pub.txt", format!("{a}\n"))
            .args(&["keys", "public", "-i", "pub.txt"])
            .expect(&["pub.txt", "line 1", "public key"]),
    ]
}

fn run_all(cases: &[Case]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|c| {
            let p = c.check();
            (!p.is_empty()).then(|| {
                format!(
                    "case `{}` (gitseal {:?}):\n  {}",
                    c.name,
                    c.args,
                    p.join("\n  ")
                )
            })
        })
        .collect()
}

#[test]
fn bad_input_cases() {
    let cases: Vec<Case> = cases().into_iter().chain(import_cases()).collect();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
    }
    // Two threads (the machine is shared); each case is independent anyway.
    let (left, right) = cases.split_at(cases.len() / 2);
    let failures: Vec<String> = std::thread::scope(|s| {
        let h = s.spawn(|| run_all(left));
        let mut out = run_all(right);
        out.extend(h.join().unwrap());
        out
    });
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Values written with a YAML core tag (`!!int`, `!!float`, `!!bool`, `!!null`) that does not
/// fit them make serde_yaml report `invalid value: string "<the value>"`; the core's
/// `parse_documents` must not pass that text on, or `seal`, `unseal` and `check` would print
/// the secret.
#[test]
fn yaml_type_errors_do_not_echo_values() {
    let env = Env::new();
    let a = env.key("a.key");
    for tag in ["!!int", "!!float", "!!bool", "!!null"] {
        let input = secret_with(
            "{name: db, namespace: prod}",
            &format!("stringData: {{password: {tag} {CANARY}}}\n"),
        );
        env.run_stdin(&["seal", "-r", &a], &input)
            .fails(1)
            .stderr_has(&["<stdin>", "document 1"])
            .hides(CANARY);
        env.write("leak.yaml", &input);
        env.run(&["check", "leak.yaml"]).fails(1).hides(CANARY);
    }
}

/// `gitseal import` inputs that need no peer tool: key files, SOPS metadata, paths. (The
/// ciphertexts of the real kubeseal and sops are in `import_interop.rs`.)
fn import_cases() -> Vec<Case> {
    let f = fixture();
    let a = f.a_public.as_str();
    let enc = |data: &str| {
        format!(
            "ENC[AES256_GCM,data:{data},iv:{},tag:{},type:str]",
            b64(&[7u8; 32]),
            b64(&[9u8; 16])
        )
    };
    let sops_file = |meta: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: prod}}\ndata:\n  pw: {}\nsops:\n{meta}  lastmodified: '2026-11-27T00:00:00Z'\n  mac: {}\n  version: 3.13.3\n",
            enc("AAAA"),
            enc("BBBB")
        )
    };
    let age_entry = format!(
        "  age:\n    - recipient: {a}\n      enc: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n        bm90IGFnZQ==\n        -----END AGE ENCRYPTED FILE-----\n"
    );
    let import_sops = ["import", "-i", "a.key", "-r", a, "in.yaml"];
    let import_bitnami = ["import", "--bitnami-key", "k.pem", "-r", a, "sealed.yaml"];
    let bitnami = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec:\n  encryptedData: {pw: AgA=}\n";
    vec![
        case("import: SOPS data key that is not an age file")
            .file("in.yaml", sops_file(&age_entry))
            .args(&import_sops)
            .expect(&["in.yaml: document 1, field `sops.age[0].enc`", "not an age-encrypted data key"]),
        case("import: SOPS file with PGP keys only")
            .file("in.yaml", sops_file("  pgp:\n    - fp: ABCDEF\n      enc: x\n"))
            .args(&import_sops)
            .expect(&["in.yaml: document 1, field `sops`", "no age recipients"]),
        case("import: SOPS Shamir key groups")
            .file("in.yaml", sops_file(&format!("  shamir_threshold: 2\n  key_groups:\n    - age: []\n    - age: []\n{age_entry}")))
            .args(&import_sops)
            .expect(&["field `sops.key_groups`", "Shamir"]),
        case("import: SOPS metadata in the second document")
            .file("in.yaml", format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: a, namespace: p}}\n---\n{}", sops_file(&age_entry)))
            .args(&import_sops)
            .expect(&["in.yaml: document 1", "first document", "document 2"]),
        case("import: SOPS mac not a string")
            .file("in.yaml", sops_file(&age_entry).replace(&format!("mac: {}", enc("BBBB")), "mac: 5"))
            .args(&import_sops)
            .expect(&["field `sops.mac`", "must be a string"]),
        case("import: SOPS file without -i")
            .file("in.yaml", sops_file(&age_entry))
            .args(&["import", "-r", a, "in.yaml"])
            .expect(&["in.yaml", "SOPS-encrypted", "-i FILE"]),
        case("import: Bitnami key file holding a public key")
            .file_mode("k.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 0o600)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["Bitnami key file k.pem, PEM block 1", "public key"]),
        case("import: Bitnami key file passphrase-protected")
            .file_mode("k.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", 0o600)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["k.pem, PEM block 1", "passphrase-protected"]),
        case("import: Bitnami key file with a broken PEM block")
            .file_mode("k.pem", format!("-----BEGIN RSA PRIVATE KEY-----\n{CANARY}\n-----END RSA PRIVATE KEY-----\n"), 0o600)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["k.pem, PEM block 1", "not a valid PKCS#1"]),
        case("import: Bitnami key file truncated")
            .file_mode("k.pem", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n", 0o600)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["k.pem, PEM block 1", "truncated"]),
        case("import: Bitnami key Secret without tls.key")
            .file_mode("k.pem", "apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ndata: {tls.crt: eA==}\n", 0o600)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["k.pem, document 1, field `data.tls.key`", "tls.key"]),
        case("import: Bitnami key file that is neither PEM nor a Secret")
            .file_mode("k.pem", format!("{CANARY}\n"), 0o600)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["Bitnami key file k.pem", "document 1"]),
        case("import: Bitnami key file readable by others")
            .file_mode("k.pem", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", 0o644)
            .file("sealed.yaml", bitnami)
            .args(&import_bitnami)
            .expect(&["Bitnami key file k.pem", "chmod 600"]),
        case("import: `-` beside another path")
            .args(&["import", "-r", a, "-", "sealed.yaml"])
            .code(2)
            .expect(&["`-`", "other paths"]),
        case("import: alias bomb")
            .file("in.yaml", hostile::alias_bomb(5_000) + "# ENC[AES256_GCM,\n")
            .args(&import_sops)
            .expect(&["in.yaml", "document 1", "(limit: nodes per file)"]),
        case("import: missing path")
            .args(&["import", "-r", a, "nope"])
            .expect(&["nope", "cannot open"]),
        case("import: standard input with nothing to import")
            .args(&["import", "-r", a, "-"])
            .stdin(secret_yaml("db", "prod"))
            .expect(&["<stdin>", "no Bitnami SealedSecret", "to import"]),
        case("import: a Bitnami file that is not valid YAML")
            .file_mode("k.pem", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", 0o600)
            .file("sealed.yaml", format!("{bitnami}  template: [\n"))
            .args(&["import", "-r", a, "sealed.yaml"])
            .expect(&["sealed.yaml", "not valid YAML"]),
    ]
}
