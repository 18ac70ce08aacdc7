//! Push webhooks (`Receiver`) end to end: `gitseal-agent run --webhook-addr` as a process,
//! running as its ServiceAccount with exactly `deploy/rbac.yaml`'s rights, against the real
//! control plane; a GitSync whose interval is an hour, so only a push starts its passes.
//!
//! Covered: a signed GitHub push starts a pass that applies the new commit; a bad signature,
//! a replay, an oversized body (declared or streamed), an unknown path, a deleted Receiver
//! and a burst past the rate limit are each refused with their status and an empty body, and
//! none starts a pass; GitLab and generic (signed timestamp) proofs; and what a Receiver's
//! creator cannot reach: a Secret of another namespace, a Secret that did not opt in, a
//! GitSync of another namespace. The token appears in no log, status or Event. With two
//! replicas, a push reaching the standby starts a pass too (a Service spreads pushes over
//! both), and still does after the leader dies.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use gitseal_agent::serve::webhook::verify::sign;
use gitseal_api::names::RECONCILE_REQUESTED_ANNOTATION;
use gitseal_api::{GitSync, Receiver};
use gitseal_testenv::rbac::AgentRbac;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{AgentProcess, AgentSetup, AgentTest, TestRepo, agent_binary, free_port, wait_for};

const TOKEN: &str = "wh-token-3f1c9a7e5b2d4068";
const MANAGER: &str = "gitseal-test";

/// One HTTP/1.1 request on 127.0.0.1: the status code and the body of the answer.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    exchange(port, head.as_bytes(), body)
}

fn exchange(port: u16, head: &[u8], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(head).expect("send head");
    // The server may answer (and close) before the whole body is sent: that is the point of
    // some tests.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (code, body)
}

/// A GitHub push event signed with `token`.
fn github(port: u16, path: &str, token: &str, delivery: &str, event: &str) -> (u16, String) {
    let body = br#"{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}"#;
    let sig = sign(token.as_bytes(), &[body]);
    post(
        port,
        path,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &sig),
        ],
        body,
    )
}

struct Env {
    t: AgentTest,
    agent: AgentProcess,
    port: u16,
    repo: TestRepo,
}

impl Env {
    /// The agent (least privilege, webhook endpoint on, bodies up to 4 KiB), a repository
    /// with one ConfigMap, and the GitSync `apps` applied once.
    async fn start(name: &str) -> Env {
        let t = AgentTest::new(name).await;
        let repo = TestRepo::new();
        repo.write("apps/cm.yaml", &cm_yaml("1"));
        repo.commit("one");
        let kubeconfig = t.agent_kubeconfig(AgentRbac::Deployed).await;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let agent = t.start_agent_with(
            agent_binary,
            &kubeconfig,
            &t.app_ns.clone(),
            &[
                "--allow-local-sources",
                "--webhook-addr",
                &addr,
                "--webhook-max-body",
                "4096",
            ],
        );
        let env = Env {
            t,
            agent,
            port,
            repo,
        };
        let gitsyncs: Api<GitSync> = Api::namespaced(env.t.client.clone(), &env.t.app_ns);
        gitsyncs
            .patch(
                "apps",
                &PatchParams::apply(MANAGER),
                &Patch::Apply(json!({
                    "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
                    "metadata": {"name": "apps"},
                    "spec": {"url": env.repo.file_url(), "ref": {"branch": "main"},
                             "path": "apps", "interval": "1h", "prune": true,
                             "targetNamespace": env.t.app_ns}
                })),
            )
            .await
            .expect("gitsync");
        env.wait_cm("1").await;
        env
    }

    async fn wait_cm(&self, value: &str) {
        let cms: Api<ConfigMap> = Api::namespaced(self.t.client.clone(), &self.t.app_ns);
        wait_for(&format!("ConfigMap cm = {value}"), || {
            let cms = cms.clone();
            async move {
                let cm = cms.get_opt("cm").await.ok().flatten()?;
                (cm.data?.get("v")? == value).then_some(())
            }
        })
        .await;
    }

    async fn cm(&self) -> String {
        let cms: Api<ConfigMap> = Api::namespaced(self.t.client.clone(), &self.t.app_ns);
        cms.get("cm").await.expect("cm").data.expect("data")["v"].clone()
    }

    /// The GitSync's pass request annotation.
    async fn requested(&self) -> Option<String> {
        let gitsyncs: Api<GitSync> = Api::namespaced(self.t.client.clone(), &self.t.app_ns);
        gitsyncs
            .get("apps")
            .await
            .expect("gitsync")
            .annotations()
            .get(RECONCILE_REQUESTED_ANNOTATION)
            .cloned()
    }

    async fn secret(&self, ns: &str, name: &str, token: &str, opted_in: bool) {
        let secrets: Api<Secret> = Api::namespaced(self.t.client.clone(), ns);
        let mut meta = json!({"name": name});
        if opted_in {
            meta["labels"] = json!({"gitseal.dev/receiver-token": "true"});
        }
        secrets
            .patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": meta,
                    "stringData": {"token": token}
                })),
            )
            .await
            .expect("secret");
    }

    async fn receiver(&self, name: &str, kind: &str, gitsync: &str, secret: &str) {
        let api: Api<Receiver> = Api::namespaced(self.t.client.clone(), &self.t.app_ns);
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "gitseal.dev/v1alpha1", "kind": "Receiver",
                "metadata": {"name": name},
                "spec": {"type": kind, "gitSyncRef": {"name": gitsync}, "secretRef": {"name": secret}}
            })),
        )
        .await
        .expect("receiver");
    }

    /// Waits for the Receiver's Ready condition to have `reason`; its status.
    async fn receiver_status(&self, name: &str, reason: &str) -> gitseal_api::ReceiverStatus {
        let api: Api<Receiver> = Api::namespaced(self.t.client.clone(), &self.t.app_ns);
        wait_for(&format!("Receiver {name} Ready reason {reason}"), || {
            let api = api.clone();
            async move {
                let st = api.get(name).await.ok()?.status?;
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == reason)
                    .then_some(st)
            }
        })
        .await
    }

    async fn path_of(&self, name: &str) -> String {
        let st = self.receiver_status(name, "Receiving").await;
        st.webhook_path.expect("webhookPath")
    }

    /// Commits a new value of the ConfigMap; the commit.
    fn commit_cm(&self, value: &str) -> String {
        self.repo.write("apps/cm.yaml", &cm_yaml(value));
        self.repo.commit(value)
    }

    /// Waits until the GitSync reports `sha` applied, and a little longer: the status write
    /// itself may wake one more pass (of the same commit), which must be over before a test
    /// commits again and asserts that nothing applies it.
    async fn wait_applied(&self, sha: &str) {
        let gitsyncs: Api<GitSync> = Api::namespaced(self.t.client.clone(), &self.t.app_ns);
        wait_for(&format!("GitSync applied {sha}"), || {
            let gitsyncs = gitsyncs.clone();
            async move {
                let rev = gitsyncs
                    .get("apps")
                    .await
                    .ok()?
                    .status?
                    .last_applied_revision?;
                rev.ends_with(sha).then_some(())
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn cm_yaml(v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata: {{v: '{v}'}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_push_starts_a_pass_and_bad_requests_start_none() {
    let env = Env::start("recv-gh").await;
    let app_ns = env.t.app_ns.clone();
    env.secret(&app_ns, "hook-token", TOKEN, true).await;
    env.receiver("push", "github", "apps", "hook-token").await;
    let path = env.path_of("push").await;
    assert!(
        path.starts_with("/hook/") && path.len() == "/hook/".len() + 64,
        "{path}"
    );

    // Valid: the new commit is applied without waiting for the hour-long interval.
    let two = env.commit_cm("2");
    let (code, body) = github(env.port, &path, TOKEN, "d-1", "push");
    assert_eq!((code, body.as_str()), (202, ""));
    env.wait_cm("2").await;
    env.wait_applied(&two).await;
    let requested = env.requested().await.expect("pass requested");

    // Replayed: the same delivery again.
    let (code, body) = github(env.port, &path, TOKEN, "d-1", "push");
    assert_eq!((code, body.as_str()), (409, ""));

    // Invalid signatures: another token; a signature of another body; none at all.
    // Committed, so that any pass would apply it: none may.
    env.commit_cm("3");
    let (code, body) = github(env.port, &path, "another-token-0123456789", "d-2", "push");
    assert_eq!((code, body.as_str()), (401, ""));
    let sig = sign(TOKEN.as_bytes(), &[b"{}"]);
    let (code, body) = post(
        env.port,
        &path,
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-3"),
            ("X-Hub-Signature-256", &sig),
        ],
        b"{\"ref\":\"refs/heads/main\"}",
    );
    assert_eq!((code, body.as_str()), (401, ""));
    let (code, _) = post(env.port, &path, &[("X-GitHub-Event", "push")], b"{}");
    assert_eq!(code, 401);

    // Oversized: declared, and streamed without a length (chunked).
    let big = vec![b'x'; 5000];
    let sig = sign(TOKEN.as_bytes(), &[&big]);
    let (code, body) = post(
        env.port,
        &path,
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-4"),
            ("X-Hub-Signature-256", &sig),
        ],
        &big,
    );
    assert_eq!((code, body.as_str()), (413, ""));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: d-5\r\nX-Hub-Signature-256: {sig}\r\n\r\n"
    );
    let mut chunked = Vec::new();
    for chunk in big.chunks(1000) {
        chunked.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend(chunk);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let (code, _) = exchange(env.port, head.as_bytes(), &chunked);
    assert_eq!(code, 413);

    // Unknown: a path no Receiver has, and a GET.
    let unknown = format!("/hook/{}", "ab".repeat(32));
    let (code, body) = github(env.port, &unknown, TOKEN, "d-6", "push");
    assert_eq!((code, body.as_str()), (404, ""));
    let (code, _) = exchange(
        env.port,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
        b"",
    );
    assert_eq!(code, 405);

    // None of those started a pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.requested().await.as_deref(), Some(requested.as_str()));
    assert_eq!(env.cm().await, "2");

    // Rate limit: a burst of proven pings past the Receiver's bucket.
    let mut answered = Vec::new();
    for i in 0..30 {
        answered.push(github(env.port, &path, TOKEN, &format!("ping-{i}"), "ping").0);
    }
    let ok = answered.iter().filter(|c| **c == 200).count();
    let limited = answered.iter().filter(|c| **c == 429).count();
    assert_eq!(ok + limited, 30, "{answered:?}");
    assert!(ok >= 5 && limited >= 1, "{answered:?}");

    // A deleted Receiver's path stops answering.
    let receivers: Api<Receiver> = Api::namespaced(env.t.client.clone(), &app_ns);
    receivers
        .delete("push", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("deleted receiver refused", || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (code, _) = github(env.port, &path, TOKEN, &format!("d-{}", rand_id()), "push");
        (code == 404).then_some(())
    })
    .await;
    assert_eq!(env.cm().await, "2");

    no_token_anywhere(&env, &[TOKEN]).await;
}

fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_and_generic_proofs() {
    let env = Env::start("recv-gl").await;
    let app_ns = env.t.app_ns.clone();
    let (gl_token, gen_token) = ("gl-token-0123456789abcdef", "gen-token-0123456789abcdef");
    env.secret(&app_ns, "gl-token", gl_token, true).await;
    env.secret(&app_ns, "gen-token", gen_token, true).await;
    env.receiver("gl", "gitlab", "apps", "gl-token").await;
    env.receiver("gen", "generic", "apps", "gen-token").await;
    let (gl, generic) = (env.path_of("gl").await, env.path_of("gen").await);

    env.commit_cm("2");
    let push = |token: &str, key: &str| {
        post(
            env.port,
            &gl,
            &[
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Token", token),
                ("Idempotency-Key", key),
            ],
            b"{\"object_kind\":\"push\"}",
        )
    };
    assert_eq!(push("gl-token-0123456789abcdeX", "k-0").0, 401);
    assert_eq!(push(gen_token, "k-0").0, 401);
    assert_eq!(push(gl_token, "k-1").0, 202);
    env.wait_cm("2").await;
    assert_eq!(push(gl_token, "k-1").0, 409);

    env.commit_cm("3");
    let body = b"{\"source\":\"ci\"}";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = |ts: u64| {
        let ts = ts.to_string();
        let sig = sign(gen_token.as_bytes(), &[ts.as_bytes(), b".", body]);
        post(
            env.port,
            &generic,
            &[("X-Signature", &sig), ("X-Signature-Timestamp", &ts)],
            body,
        )
        .0
    };
    assert_eq!(signed(now - 3600), 401, "outside the time window");
    assert_eq!(signed(now), 202);
    env.wait_cm("3").await;
    assert_eq!(signed(now), 409, "the same signed request again");
    // Without a timestamp: the body's HMAC alone (Flux's generic-hmac form).
    env.commit_cm("4");
    let sig = sign(gen_token.as_bytes(), &[body]);
    assert_eq!(
        post(env.port, &generic, &[("X-Signature", &sig)], body).0,
        202
    );
    env.wait_cm("4").await;
    let wrong = sign(gl_token.as_bytes(), &[body]);
    assert_eq!(
        post(env.port, &generic, &[("X-Signature", &wrong)], body).0,
        401
    );

    no_token_anywhere(&env, &[gl_token, gen_token]).await;
}

/// What the creator of a Receiver in one namespace can point the agent at: only Secrets of
/// that namespace that opted in, only GitSyncs of that namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_reaches_only_its_own_namespace() {
    let env = Env::start("recv-ns").await;
    let app_ns = env.t.app_ns.clone();
    let other = env.t.cp.namespace("recv-ns-other").await;

    // A Secret of another namespace (even opted in) is not found from here.
    env.secret(&other, "elsewhere-token", TOKEN, true).await;
    env.receiver("r-other-secret", "github", "apps", "elsewhere-token")
        .await;
    let st = env
        .receiver_status("r-other-secret", "SecretNotFound")
        .await;
    assert!(st.webhook_path.is_none());
    assert!(st.conditions.iter().any(|c| c.type_ == "Stalled"));

    // A Secret of this namespace that did not opt in is not used, and is not read into
    // anything the Receiver's creator can see.
    env.secret(&app_ns, "db-password", "hunter2-hunter2-hunter2", false)
        .await;
    env.receiver("r-not-opted-in", "github", "apps", "db-password")
        .await;
    let st = env
        .receiver_status("r-not-opted-in", "SecretNotOptedIn")
        .await;
    assert!(st.webhook_path.is_none());
    // Opting in later makes it usable (the label change is watched).
    let secrets: Api<Secret> = Api::namespaced(env.t.client.clone(), &app_ns);
    secrets
        .patch(
            "db-password",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"gitseal.dev/receiver-token": "true"}}})),
        )
        .await
        .expect("label");
    env.path_of("r-not-opted-in").await;

    env.secret(&app_ns, "short-token", "0123456789", true).await;
    env.receiver("r-short", "github", "apps", "short-token")
        .await;
    env.receiver_status("r-short", "TokenTooShort").await;

    // A GitSync of another namespace: this Receiver's pushes never touch it.
    let gitsyncs: Api<GitSync> = Api::namespaced(env.t.client.clone(), &other);
    gitsyncs
        .patch(
            "theirs",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(json!({
                "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": "theirs"},
                "spec": {"url": "https://example.invalid/repo.git", "suspend": true}
            })),
        )
        .await
        .expect("gitsync");
    env.secret(&app_ns, "hook-token", TOKEN, true).await;
    env.receiver("r-theirs", "github", "theirs", "hook-token")
        .await;
    let st = env.receiver_status("r-theirs", "GitSyncNotFound").await;
    let path = st.webhook_path.expect("routed, waiting for the GitSync");
    let (code, _) = github(env.port, &path, TOKEN, "d-1", "push");
    assert_eq!(code, 404);
    let theirs = gitsyncs.get("theirs").await.expect("theirs");
    assert!(
        !theirs
            .annotations()
            .contains_key(RECONCILE_REQUESTED_ANNOTATION)
    );

    no_token_anywhere(&env, &[TOKEN, "hunter2-hunter2-hunter2"]).await;
}

/// No token in the agent's log, in any Receiver's status, or in Events of the namespace.
async fn no_token_anywhere(env: &Env, tokens: &[&str]) {
    let log = env.agent.logs();
    let receivers: Api<Receiver> = Api::namespaced(env.t.client.clone(), &env.t.app_ns);
    let statuses = serde_json::to_string(
        &receivers
            .list(&ListParams::default())
            .await
            .expect("receivers")
            .items
            .iter()
            .map(|r| r.status.clone())
            .collect::<Vec<_>>(),
    )
    .expect("json");
    let events: Api<Event> = Api::namespaced(env.t.client.clone(), &env.t.app_ns);
    let events = serde_json::to_string(
        &events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    for t in tokens {
        assert!(!log.contains(t), "token in the agent log");
        assert!(!statuses.contains(t), "token in a Receiver status");
        assert!(!events.contains(t), "token in an Event");
    }
}

/// A second replica answers pushes as the first does: a push to the standby's endpoint starts
/// a pass (the leader's), a bad one is refused there too; when the leader dies, the standby
/// leads and its endpoint keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_the_standby_starts_a_pass_too() {
    let mut env = Env::start("recv-ha").await;
    let app_ns = env.t.app_ns.clone();
    // The first agent leads (it was alone); the second starts beside it.
    wait_for("the first agent leads", || async {
        (env.agent.metric("gitseal_leader") == Some(1.0)).then_some(())
    })
    .await;
    let kubeconfig = env.t.agent_kubeconfig(AgentRbac::Deployed).await;
    let dir = env.t.work.path().join("standby");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let standby_port = free_port();
    let addr = format!("127.0.0.1:{standby_port}");
    let standby = AgentProcess::start(
        agent_binary,
        AgentSetup {
            kubeconfig: &kubeconfig,
            agent_namespace: &env.t.agent_ns,
            watch_namespace: &app_ns,
            dir: &dir,
        },
        &[
            "--allow-local-sources",
            "--leader-identity",
            "standby",
            "--webhook-addr",
            &addr,
            "--webhook-max-body",
            "4096",
        ],
    );
    wait_for("the standby ready, not leading", || async {
        (standby.readyz() == Some(200) && standby.metric("gitseal_leader") == Some(0.0))
            .then_some(())
    })
    .await;
    env.secret(&app_ns, "hook-token", TOKEN, true).await;
    env.receiver("push", "github", "apps", "hook-token").await;
    let path = env.path_of("push").await;

    // A push to the standby: the new commit is applied (by the leader).
    let two = env.commit_cm("2");
    let (code, body) = wait_for("the standby routes the Receiver's path", || {
        let path = path.clone();
        async move {
            let (code, body) = github(standby_port, &path, TOKEN, "ha-1", "push");
            (code != 404).then_some((code, body))
        }
    })
    .await;
    assert_eq!((code, body.as_str()), (202, ""));
    env.wait_cm("2").await;
    env.wait_applied(&two).await;
    assert_eq!(standby.metric("gitseal_leader"), Some(0.0));
    // Refused there as on the leader: a bad signature.
    let (code, _) = github(
        standby_port,
        &path,
        "another-token-0123456789",
        "ha-2",
        "push",
    );
    assert_eq!(code, 401);

    // The leader stops: the standby takes over and the Receiver stays served.
    env.agent.kill();
    wait_for("the standby leads", || async {
        (standby.metric("gitseal_leader") == Some(1.0)).then_some(())
    })
    .await;
    let three = env.commit_cm("3");
    let (code, _) = github(standby_port, &path, TOKEN, "ha-3", "push");
    assert_eq!(code, 202);
    env.wait_cm("3").await;
    env.wait_applied(&three).await;
    assert!(!standby.logs().contains(TOKEN));
}
