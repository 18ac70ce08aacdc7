//! The container image's runtime contract, tested without a container engine: the agent's
//! end-to-end flow (a GitSync over ssh with a checked host key, a Kustomize overlay, a
//! SealedSecret opened in memory) passes with `PATH` holding only the programs the image
//! ships. That folder is made by `deploy/image/link-runtime-binaries` from
//! `deploy/image/runtime-binaries`, the same script and list the Dockerfile uses for the
//! image's own PATH, and the agent runs with an otherwise empty environment, as in the
//! image. A program the agent needs and the list lacks fails this test.
//!
//! The Dockerfile itself cannot be built here (no container engine, no base images), so its
//! contract with the rest of the repository is checked as text: it reads the same list,
//! links the same way, runs as the user `deploy/` runs it as, and builds the kustomize
//! version the tests use.

mod support;

use support::{
    AgentTest, SshGitServer, TestRepo, add_sealing_key, agent_binary, password_secret,
    ready_condition, wait_for,
};

use std::path::{Path, PathBuf};
use std::process::Command;

use gitseal::SecretKey;
use gitseal::sealing::{SealTarget, seal_secret};
use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const CANARY: &str = "CANARY-image-51d0e";

fn image_file(name: &str) -> PathBuf {
    Path::new(ROOT).join("deploy/image").join(name)
}

/// The programs `runtime-binaries` lists (the `-` entries name packages only).
fn listed_programs() -> Vec<String> {
    let text = std::fs::read_to_string(image_file("runtime-binaries")).expect("runtime-binaries");
    let mut out: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| *p != "-")
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// Runs the link script into `dir` with `path` as its PATH.
fn link(dir: &Path, path: &str) -> std::process::Output {
    Command::new(image_file("link-runtime-binaries"))
        .arg(dir)
        .env_clear()
        .env("PATH", path)
        .output()
        .expect("link-runtime-binaries runs")
}

/// PATH for the link script: the agent just built, kustomize from scripts/peers.sh (the
/// version the image builds), then this machine's programs (git, ssh).
fn host_path() -> String {
    let agent = PathBuf::from(env!("CARGO_BIN_EXE_gitseal-agent"));
    let kustomize = gitseal_testenv::peers::peer_tool("kustomize");
    let host = std::env::var("PATH").unwrap_or_default();
    format!(
        "{}:{}:{host}",
        agent.parent().expect("bin dir").display(),
        kustomize.parent().expect("peers dir").display()
    )
}

#[test]
fn link_script_makes_exactly_the_list_and_names_what_is_missing() {
    let work = tempfile::tempdir().expect("tempdir");
    let bin = work.path().join("bin");
    let out = link(&bin, &host_path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut made: Vec<String> = std::fs::read_dir(&bin)
        .expect("bin")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, listed_programs());
    // Each is a link to a program that runs.
    for p in &made {
        let target = std::fs::read_link(bin.join(p)).expect("a link");
        assert!(
            target.is_absolute() && target.is_file(),
            "{p} -> {}",
            target.display()
        );
    }

    // Not run twice into the same folder (an image layer would hide what was there).
    let again = link(&bin, &host_path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A PATH without kustomize: refused, naming it, and nothing claims success.
    let no_kustomize = std::env::var("PATH").unwrap_or_default();
    let missing = link(&work.path().join("bin2"), &no_kustomize);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("kustomize") && err.contains("not on PATH"),
        "{err}"
    );

    // --packages prints the Debian packages of the list, which the Dockerfile installs.
    let pk = Command::new(image_file("link-runtime-binaries"))
        .arg("--packages")
        .output()
        .expect("runs");
    let packages = String::from_utf8_lossy(&pk.stdout);
    let packages: Vec<&str> = packages.lines().collect();
    assert_eq!(packages, ["git", "openssh-client", "ca-certificates"]);
}

#[test]
fn dockerfile_uses_the_list_and_the_deployed_user() {
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    for needle in [
        "COPY deploy/image/runtime-binaries deploy/image/link-runtime-binaries /usr/local/share/gitseal/",
        "$(/usr/local/share/gitseal/link-runtime-binaries --packages)",
        "/usr/local/share/gitseal/link-runtime-binaries /usr/local/gitseal/bin",
        "ENV PATH=/usr/local/gitseal/bin",
        "USER 65532:65532",
        "cargo build --release --locked -p gitseal-agent",
    ] {
        assert!(
            dockerfile.contains(needle),
            "the Dockerfile lacks `{needle}`"
        );
    }
    // The kustomize the image builds is the one these tests run.
    let peers =
        std::fs::read_to_string(Path::new(ROOT).join("scripts/peers.sh")).expect("peers.sh");
    let version = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} not found"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        version(&dockerfile, "ARG KUSTOMIZE_VERSION="),
        version(&peers, "KUSTOMIZE_VERSION="),
        "the Dockerfile and scripts/peers.sh build different kustomize versions"
    );
    // The image's user is the one deploy/ (and the chart) run the pod as.
    let deployment =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/deployment.yaml")).expect("deploy");
    assert!(deployment.contains("runAsUser: 65532") && deployment.contains("runAsGroup: 65532"));
    assert!(deployment.contains("readOnlyRootFilesystem: true"));
    // Release builds are stripped.
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("Cargo.toml");
    let release = cargo
        .split("[profile.release]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("[profile.release]");
    assert!(release.contains("strip = true"), "{release}");
}

#[tokio::test]
async fn agent_flow_passes_with_only_the_image_programs_on_path() {
    let t = AgentTest::new("image").await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;

    // PATH as in the image.
    let bin = t.work.path().join("image-bin");
    let out = link(&bin, &host_path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Kustomize overlay holding a ConfigMap and a SealedSecret, served over ssh.
    let repo = TestRepo::new();
    // Sealed for its final name: the overlay's prefix renames it.
    let s = password_secret(&app_ns, "image-db", CANARY);
    let mut sealed =
        seal_secret(&s, &[key.public().clone()], &SealTarget::default()).expect("seal");
    sealed.name = "db".into();
    repo.write(
        "apps/db.yaml",
        &gitseal::manifest::render([&sealed.to_value()], gitseal::manifest::OutputFormat::Yaml),
    );
    repo.write(
        "apps/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    );
    repo.write(
        "apps/kustomization.yaml",
        &format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             namespace: {app_ns}\nnamePrefix: image-\nresources: [cm.yaml, db.yaml]\n"
        ),
    );
    repo.commit("first");
    let server = SshGitServer::start();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &app_ns);
    secrets
        .patch(
            "git-ssh",
            &PatchParams::apply("gitseal-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "git-ssh", "labels": {"gitseal.dev/git-credentials": "true"}},
                "stringData": {"identity": server.client_identity(), "known_hosts": server.known_hosts()}
            })),
        )
        .await
        .expect("credentials");
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &app_ns);
    syncs
        .patch(
            "apps",
            &PatchParams::apply("gitseal-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": "apps"},
                "spec": {"url": server.url(repo.path()), "ref": {"branch": "main"},
                         "path": "apps", "interval": "1s", "prune": true,
                         "secretRef": {"name": "git-ssh"}}
            })),
        )
        .await
        .expect("gitsync");

    // The agent with the image's environment: PATH and nothing else of this machine's.
    let image_path = bin.clone();
    let agent = t.start_agent(
        |args| {
            let mut cmd = agent_binary(args);
            cmd.env_clear().env("PATH", &image_path);
            cmd
        },
        &[],
    );

    let gs = wait_for("GitSync Ready with only the image's programs", || async {
        let gs = syncs.get("apps").await.ok()?;
        (ready_condition(&gs).map(|c| c.0) == Some(true)).then_some(gs)
    })
    .await;
    let status = gs.status.expect("status");
    assert!(
        status
            .last_applied_revision
            .as_deref()
            .is_some_and(|r| r.starts_with("main@sha1:")),
        "{status:?}"
    );
    // Kustomize ran (the prefix), and the SealedSecret was opened.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &app_ns);
    assert!(cms.get_opt("image-settings").await.expect("get").is_some());
    let secret = secrets.get("image-db").await.expect("secret");
    assert_eq!(secret.data.expect("data")["password"].0, CANARY.as_bytes());
    let logs = agent.logs();
    assert!(!logs.contains(CANARY));
    assert!(
        !logs.contains('\u{1b}'),
        "colour escape codes in a log that is not a terminal"
    );
}
