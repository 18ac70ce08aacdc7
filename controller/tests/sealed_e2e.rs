//! The SealedSecret controller of `gitseal-agent run`, as a real process against the real
//! control plane: SealedSecrets applied directly (as kubectl or Argo CD would) become Secrets
//! they own; changes, deleted Secrets and deleted SealedSecrets are followed; Secrets it does
//! not own are left alone unless annotated; copies fail on their scope; an unchanged
//! SealedSecret reconciled again writes nothing; and a canary value appears nowhere it must not.

mod support;

use support::{
    AgentProcess, AgentSetup, AgentTest, add_sealing_key, agent_binary, events_v1_json, http_get,
    password_secret, wait_agent_ready, wait_for,
};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gitseal::sealing::{SealTarget, seal_secret};
use gitseal::{Scope, SecretKey};
use gitseal_api::SealedSecret;
use gitseal_testenv::rbac::AgentRbac;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use secrecy::SecretSlice;
use serde_json::{Value, json};

const CANARY: &str = "CANARY-sealed-8d1f3";
const TEST_MANAGER: &str = "gitseal-test";

/// One agent watching one fresh namespace, with its own fresh key namespace.
struct Env {
    client: kube::Client,
    app_ns: String,
    key: SecretKey,
    // Dropped before the test's work folder, so a failing test still shows the agent's log.
    agent: AgentProcess,
    _test: AgentTest,
}

async fn start(prefix: &str) -> Env {
    start_with(prefix, false).await
}

/// `least_privilege`: the agent runs as a ServiceAccount holding only deploy/rbac.yaml's rules.
async fn start_with(prefix: &str, least_privilege: bool) -> Env {
    let t = AgentTest::new(prefix).await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());

    let key = SecretKey::generate();
    add_sealing_key(&client, &agent_ns, &key).await;

    let kubeconfig = if least_privilege {
        t.agent_kubeconfig(AgentRbac::OwnNeedsOnly).await
    } else {
        t.cp.kubeconfig_path().to_owned()
    };
    let setup = AgentSetup {
        kubeconfig: &kubeconfig,
        agent_namespace: &agent_ns,
        watch_namespace: &app_ns,
        dir: t.work.path(),
    };
    let agent = AgentProcess::start(agent_binary, setup, &[]);
    wait_agent_ready(&agent).await;
    Env {
        client,
        app_ns,
        key,
        agent,
        _test: t,
    }
}

impl Env {
    fn sealed(&self) -> Api<SealedSecret> {
        Api::namespaced(self.client.clone(), &self.app_ns)
    }
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.app_ns)
    }

    /// A SealedSecret manifest for `name` holding `password`, sealed for `sealed_ns` with
    /// `scope`, placed in this namespace.
    fn manifest(&self, name: &str, sealed_ns: &str, scope: Scope, password: &str) -> Value {
        let mut s = gitseal::Secret {
            name: Some(name.into()),
            namespace: Some(sealed_ns.into()),
            type_: Some("gitseal.dev/test".into()),
            labels: BTreeMap::from([("app".into(), "db".into())]),
            annotations: BTreeMap::from([("team".into(), "storage".into())]),
            ..Default::default()
        };
        s.data.insert(
            "password".into(),
            SecretSlice::from(password.as_bytes().to_vec()),
        );
        s.data
            .insert("username".into(), SecretSlice::from(b"admin".to_vec()));
        let target = SealTarget {
            scope: Some(scope),
            ..Default::default()
        };
        let sealed = seal_secret(&s, &[self.key.public().clone()], &target).expect("seal");
        let mut v = serde_json::to_value(sealed.to_value()).expect("json");
        v["metadata"]["namespace"] = json!(self.app_ns);
        v
    }

    async fn apply(&self, manifest: &Value) -> SealedSecret {
        let name = manifest["metadata"]["name"].as_str().expect("name");
        self.sealed()
            .patch(
                name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(manifest),
            )
            .await
            .expect("apply SealedSecret")
    }

    async fn wait_ready(&self, name: &str, status: &str, reason: &str) -> SealedSecret {
        wait_for(
            &format!("{name} Ready={status} reason {reason}"),
            || async {
                let ss = self.sealed().get(name).await.ok()?;
                let c = ready(&ss)?;
                (c.status == status
                    && c.reason == reason
                    && ss.status.as_ref()?.observed_generation == ss.metadata.generation)
                    .then_some(ss)
            },
        )
        .await
    }

    async fn events(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.app_ns);
        let list = api.list(&ListParams::default()).await.expect("events");
        list.items
            .into_iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("SealedSecret")
                    && e.involved_object.name.as_deref() == Some(name)
            })
            .collect()
    }

    async fn wait_event(&self, name: &str, type_: &str, reason: &str) -> Event {
        wait_for(&format!("{type_} event {reason} on {name}"), || async {
            self.events(name)
                .await
                .into_iter()
                .find(|e| e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason))
        })
        .await
    }

    fn logs(&self) -> String {
        self.agent.logs()
    }

    fn api_writes(&self) -> u64 {
        let metrics = http_get(self.agent.metrics_port, "/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("gitseal_api_writes_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no gitseal_api_writes_total in:\n{metrics}"))
    }

    /// Waits until the agent made no write for two seconds; returns its write count.
    async fn settled_writes(&self) -> u64 {
        let mut last = self.api_writes();
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = self.api_writes();
            if now == last {
                return now;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "agent never settles"
            );
            last = now;
        }
    }

    /// The secret value is nowhere in the agent's logs, this namespace's Events (both APIs)
    /// or any SealedSecret status.
    async fn assert_no_leak(&self) {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
        let core: Api<Event> = Api::namespaced(self.client.clone(), &self.app_ns);
        let core =
            serde_json::to_string(&core.list(&ListParams::default()).await.expect("ev").items)
                .expect("json");
        let new = events_v1_json(&self.client, &self.app_ns).await;
        let statuses: Vec<_> = self
            .sealed()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|s| s.status)
            .collect();
        let logs = self.logs();
        assert!(
            logs.contains("sealedsecret reconciled"),
            "agent logs:\n{logs}"
        );
        for (what, text) in [
            ("status", serde_json::to_string(&statuses).expect("json")),
            ("events", core),
            ("events.k8s.io", new),
            ("logs", logs),
        ] {
            assert!(
                !text.contains(CANARY) && !text.contains(&b64),
                "canary found in {what}"
            );
        }
    }
}

fn ready(ss: &SealedSecret) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    ss.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn value(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data.as_ref()?.get(key).map(|v| v.0.clone())
}

#[tokio::test]
async fn sealed_secret_lifecycle() {
    let env = start("sealed-life").await;
    let v1 = format!("{CANARY}-one");
    let ss = env
        .apply(&env.manifest("db", &env.app_ns, Scope::Strict, &v1))
        .await;
    let uid = ss.uid().expect("uid");

    // Opened into a Secret it owns, shaped by the template; Ready; a Normal event.
    let ss = env.wait_ready("db", "True", "Unsealed").await;
    let secret = env.secrets().get("db").await.expect("secret");
    assert_eq!(value(&secret, "password"), Some(v1.as_bytes().to_vec()));
    assert_eq!(value(&secret, "username"), Some(b"admin".to_vec()));
    assert_eq!(secret.type_.as_deref(), Some("gitseal.dev/test"));
    assert_eq!(secret.labels().get("app").map(String::as_str), Some("db"));
    assert_eq!(
        secret.annotations().get("team").map(String::as_str),
        Some("storage")
    );
    let owners = secret.owner_references();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].uid, uid);
    assert_eq!(owners[0].kind, "SealedSecret");
    assert_eq!(owners[0].api_version, "gitseal.dev/v1alpha1");
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(owners[0].block_owner_deletion, Some(true));
    assert_eq!(
        ss.status.as_ref().and_then(|s| s.observed_generation),
        ss.metadata.generation
    );
    let ev = env.wait_event("db", "Normal", "Unsealed").await;
    assert!(ev.message.as_deref().is_some_and(|m| m.contains("created")));

    // Reconciled again with nothing to change: zero writes. A label on the SealedSecret
    // (metadata: no new generation) makes the agent reconcile it again.
    let writes = env.settled_writes().await;
    let secret_rv = env
        .secrets()
        .get("db")
        .await
        .expect("get")
        .resource_version();
    let events_before = env.events("db").await.len();
    let reconciled = || env.logs().matches("sealedsecret reconciled").count();
    let before = reconciled();
    let mut touched = env.manifest("db", &env.app_ns, Scope::Strict, &v1);
    // The same ciphertexts as applied (a new seal would differ): only a label is added.
    touched["spec"] = serde_json::to_value(&ss.spec).expect("spec");
    touched["metadata"]["labels"] = json!({"touched": "yes"});
    let touched_rv = env.apply(&touched).await.resource_version();
    wait_for("a reconcile after the label", || async {
        (reconciled() > before).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        env.api_writes(),
        writes,
        "the agent wrote on a no-op reconcile"
    );
    assert_eq!(
        env.sealed()
            .get("db")
            .await
            .expect("get")
            .resource_version(),
        touched_rv,
        "SealedSecret status rewritten"
    );
    assert_eq!(
        env.secrets()
            .get("db")
            .await
            .expect("get")
            .resource_version(),
        secret_rv,
        "Secret rewritten"
    );
    assert_eq!(env.events("db").await.len(), events_before, "new events");

    // A new value updates the Secret and the observed generation.
    let v2 = format!("{CANARY}-two");
    let ss = env
        .apply(&env.manifest("db", &env.app_ns, Scope::Strict, &v2))
        .await;
    let generation = ss.metadata.generation;
    wait_for("the Secret updated", || async {
        let s = env.secrets().get("db").await.ok()?;
        (value(&s, "password")? == v2.as_bytes()).then_some(())
    })
    .await;
    let ss = env.wait_ready("db", "True", "Unsealed").await;
    assert_eq!(
        ss.status.as_ref().and_then(|s| s.observed_generation),
        generation
    );
    wait_for("a Normal event saying the Secret was updated", || async {
        env.events("db").await.into_iter().find(|e| {
            e.type_.as_deref() == Some("Normal")
                && e.message.as_deref().is_some_and(|m| m.contains("updated"))
        })
    })
    .await;

    // A deleted Secret comes back.
    let old_uid = env.secrets().get("db").await.expect("get").uid();
    env.secrets()
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete secret");
    let back = wait_for("the Secret recreated", || async {
        let s = env.secrets().get_opt("db").await.ok()??;
        (s.uid() != old_uid).then_some(s)
    })
    .await;
    assert_eq!(value(&back, "password"), Some(v2.as_bytes().to_vec()));
    assert_eq!(back.owner_references()[0].uid, uid);

    // Deleting the SealedSecret removes its Secret (garbage collection).
    env.sealed()
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete sealed");
    wait_for("the Secret garbage-collected", || async {
        env.secrets()
            .get_opt("db")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    env.assert_no_leak().await;
    let mut env = env;
    assert!(
        env.agent.running(),
        "the agent is still up after the whole lifecycle"
    );
}

#[tokio::test]
async fn unowned_secrets_and_moved_copies_are_refused() {
    let env = start("sealed-refuse").await;

    // An existing Secret that no SealedSecret owns is not taken over.
    let original = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "taken"},
        "stringData": {"password": "original"}
    });
    env.secrets()
        .patch(
            "taken",
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&original),
        )
        .await
        .expect("unmanaged secret");
    let v = format!("{CANARY}-taken");
    env.apply(&env.manifest("taken", &env.app_ns, Scope::Strict, &v))
        .await;
    let ss = env.wait_ready("taken", "False", "SecretExists").await;
    let msg = &ready(&ss).expect("ready").message;
    assert!(msg.contains("gitseal.dev/managed"), "{msg}");
    env.wait_event("taken", "Warning", "SecretExists").await;
    let s = env.secrets().get("taken").await.expect("get");
    assert_eq!(value(&s, "password"), Some(b"original".to_vec()));
    assert!(s.owner_references().is_empty());
    assert!(value(&s, "username").is_none());

    // Annotated gitseal.dev/managed=true, it is taken over.
    env.secrets()
        .patch(
            "taken",
            &PatchParams::apply("someone"),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "taken", "annotations": {"gitseal.dev/managed": "true"}}
            })),
        )
        .await
        .expect("annotate");
    let s = wait_for("the Secret taken over", || async {
        let s = env.secrets().get("taken").await.ok()?;
        (value(&s, "password")? == v.as_bytes()).then_some(s)
    })
    .await;
    assert_eq!(s.owner_references()[0].uid, ss.uid().expect("uid"));
    assert_eq!(s.type_.as_deref(), Some("gitseal.dev/test"));
    env.wait_ready("taken", "True", "Unsealed").await;

    // A SealedSecret sealed for another namespace and copied here fails on its scope.
    env.apply(&env.manifest("moved", "elsewhere", Scope::Strict, CANARY))
        .await;
    let ss = env.wait_ready("moved", "False", "ScopeMismatch").await;
    let msg = &ready(&ss).expect("ready").message;
    assert!(
        msg.contains("scope mismatch") && msg.contains("elsewhere"),
        "{msg}"
    );
    let status = ss.status.as_ref().expect("status");
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );
    env.wait_event("moved", "Warning", "ScopeMismatch").await;
    assert!(env.secrets().get_opt("moved").await.expect("get").is_none());

    // Scope `cluster` (read from the gitseal.dev/scope annotation) opens anywhere.
    env.apply(&env.manifest("anywhere", "elsewhere", Scope::Cluster, CANARY))
        .await;
    env.wait_ready("anywhere", "True", "Unsealed").await;
    let s = env.secrets().get("anywhere").await.expect("get");
    assert_eq!(value(&s, "password"), Some(CANARY.as_bytes().to_vec()));

    // A failure reconciled again writes nothing more (no new event, same status).
    let writes = env.settled_writes().await;
    let rv = env
        .sealed()
        .get("moved")
        .await
        .expect("get")
        .resource_version();
    let events = env.events("moved").await.len();
    tokio::time::sleep(Duration::from_secs(17)).await; // longer than the retry interval
    assert_eq!(env.api_writes(), writes, "writes while retrying a failure");
    assert_eq!(
        env.sealed()
            .get("moved")
            .await
            .expect("get")
            .resource_version(),
        rv
    );
    assert_eq!(env.events("moved").await.len(), events);

    env.assert_no_leak().await;
}

#[tokio::test]
async fn least_privilege_agent_recreates_immutable_secrets() {
    // Only deploy/rbac.yaml's rules: create, update (patch), delete and recreate all work.
    let env = start_with("sealed-rbac", true).await;
    let frozen = |password: &str| {
        let mut m = env.manifest("frozen", &env.app_ns, Scope::Strict, password);
        m["spec"]["template"]["immutable"] = json!(true);
        m
    };
    let v1 = format!("{CANARY}-frozen-1");
    env.apply(&frozen(&v1)).await;
    env.wait_ready("frozen", "True", "Unsealed").await;
    let s = env.secrets().get("frozen").await.expect("get");
    assert_eq!(s.immutable, Some(true));
    assert_eq!(value(&s, "password"), Some(v1.as_bytes().to_vec()));

    // An immutable Secret cannot be updated: the agent deletes and recreates it.
    let v2 = format!("{CANARY}-frozen-2");
    env.apply(&frozen(&v2)).await;
    let back = wait_for("the immutable Secret recreated", || async {
        let n = env.secrets().get_opt("frozen").await.ok()??;
        (n.uid() != s.uid() && value(&n, "password")? == v2.as_bytes()).then_some(n)
    })
    .await;
    assert_eq!(back.immutable, Some(true));
    env.wait_ready("frozen", "True", "Unsealed").await;
    wait_for("a Normal event saying the Secret was recreated", || async {
        env.events("frozen").await.into_iter().find(|e| {
            e.type_.as_deref() == Some("Normal")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("recreated"))
        })
    })
    .await;

    // A deleted Secret comes back under the same least privilege.
    env.secrets()
        .delete("frozen", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the Secret recreated after deletion", || async {
        let n = env.secrets().get_opt("frozen").await.ok()??;
        (n.uid() != back.uid()).then_some(())
    })
    .await;
    let logs = env.logs();
    assert!(
        !logs.contains("(403)") && !logs.contains("forbidden"),
        "forbidden requests:\n{logs}"
    );
    env.assert_no_leak().await;
}

#[tokio::test]
async fn takeover_happens_once_by_the_first_sealed_secret_with_an_event() {
    // Under deploy/rbac.yaml's rules, as the agent is deployed.
    let env = start_with("sealed-takeover", true).await;
    let annotate = |value: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "shared", "annotations": {"gitseal.dev/managed": value}}
        })
    };
    let mut original = annotate("true");
    original["stringData"] = json!({"password": "original"});
    // The type the SealedSecrets below produce, so the takeover updates it in place.
    original["type"] = json!("gitseal.dev/test");
    env.secrets()
        .patch(
            "shared",
            &PatchParams::apply("owner"),
            &Patch::Apply(&original),
        )
        .await
        .expect("annotated secret");

    // The first SealedSecret of that name takes it over, says so on both objects, and binds
    // the annotation to its own uid.
    let first = format!("{CANARY}-first");
    let a = env
        .apply(&env.manifest("shared", &env.app_ns, Scope::Strict, &first))
        .await;
    let uid_a = a.uid().expect("uid");
    env.wait_ready("shared", "True", "Unsealed").await;
    let s = env.secrets().get("shared").await.expect("get");
    assert_eq!(value(&s, "password"), Some(first.as_bytes().to_vec()));
    assert_eq!(s.owner_references()[0].uid, uid_a);
    assert_eq!(
        s.annotations().get("gitseal.dev/managed"),
        Some(&uid_a),
        "the annotation is bound to the SealedSecret that took it over"
    );
    let ev = env.wait_event("shared", "Normal", "TookOver").await;
    let note = ev.message.unwrap_or_default();
    assert!(
        note.contains(&uid_a) && note.contains("taken over"),
        "{note}"
    );
    let on_secret = wait_for("an Event on the Secret", || async {
        let api: Api<Event> = Api::namespaced(env.client.clone(), &env.app_ns);
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.involved_object.kind.as_deref() == Some("Secret")
                && e.involved_object.name.as_deref() == Some("shared")
                && e.reason.as_deref() == Some("TakenOver")
        })
    })
    .await;
    assert!(
        on_secret
            .message
            .unwrap_or_default()
            .contains(&format!("SealedSecret {}/shared", env.app_ns))
    );

    // Its SealedSecret goes, the Secret stays (orphaned): a second SealedSecret of the same
    // name cannot take it over again.
    env.sealed()
        .delete(
            "shared",
            &DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
                ..DeleteParams::default()
            },
        )
        .await
        .expect("delete, orphaning the Secret");
    wait_for("the Secret orphaned", || async {
        let s = env.secrets().get_opt("shared").await.ok()??;
        let gone = env.sealed().get_opt("shared").await.ok()?.is_none();
        (gone && s.owner_references().is_empty()).then_some(())
    })
    .await;
    let second = format!("{CANARY}-second");
    env.apply(&env.manifest("shared", &env.app_ns, Scope::Strict, &second))
        .await;
    let b = env.wait_ready("shared", "False", "SecretExists").await;
    let msg = &ready(&b).expect("ready").message;
    assert!(
        msg.contains("taken over by another SealedSecret") && msg.contains(&uid_a),
        "{msg}"
    );
    let s = env.secrets().get("shared").await.expect("get");
    assert_eq!(value(&s, "password"), Some(first.as_bytes().to_vec()));
    assert!(s.owner_references().is_empty());

    // The Secret's owner hands it over again, explicitly: the new SealedSecret takes it.
    env.secrets()
        .patch(
            "shared",
            &PatchParams::apply("owner").force(),
            &Patch::Apply(annotate("true")),
        )
        .await
        .expect("annotate again");
    let uid_b = b.uid().expect("uid");
    wait_for("the second takeover", || async {
        let s = env.secrets().get("shared").await.ok()?;
        (value(&s, "password")? == second.as_bytes()
            && s.annotations().get("gitseal.dev/managed") == Some(&uid_b))
        .then_some(())
    })
    .await;
    env.wait_event("shared", "Normal", "TookOver").await;

    // A Secret of another type is recreated by the takeover, bound all the same.
    let mut opaque = annotate("true");
    opaque["metadata"]["name"] = json!("opaque");
    opaque["stringData"] = json!({"password": "original"});
    env.secrets()
        .patch(
            "opaque",
            &PatchParams::apply("owner"),
            &Patch::Apply(&opaque),
        )
        .await
        .expect("opaque secret");
    let c = env
        .apply(&env.manifest("opaque", &env.app_ns, Scope::Strict, &first))
        .await;
    env.wait_ready("opaque", "True", "Unsealed").await;
    let s = env.secrets().get("opaque").await.expect("get");
    assert_eq!(s.type_.as_deref(), Some("gitseal.dev/test"));
    assert_eq!(
        s.annotations().get("gitseal.dev/managed"),
        Some(&c.uid().expect("uid"))
    );
    env.wait_event("opaque", "Normal", "TookOver").await;

    // A template cannot pre-set the annotation on the Secret it produces.
    let mut m = env.manifest("preset", &env.app_ns, Scope::Strict, CANARY);
    m["spec"]["template"]["metadata"]["annotations"]["gitseal.dev/managed"] = json!("true");
    env.apply(&m).await;
    let ss = env.wait_ready("preset", "False", "InvalidSpec").await;
    let msg = &ready(&ss).expect("ready").message;
    assert!(msg.contains("gitseal.dev/managed"), "{msg}");
    assert!(
        env.secrets()
            .get_opt("preset")
            .await
            .expect("get")
            .is_none()
    );
    env.assert_no_leak().await;
}

/// A key restored after a SealedSecret failed for want of it opens that SealedSecret at once:
/// a change of the keys starts a reconcile of every SealedSecret (its reason is in the agent's
/// log), instead of waiting out the backoff of a failure only a change can fix.
#[tokio::test]
async fn a_restored_key_opens_what_failed_without_waiting_for_its_backoff() {
    use secrecy::ExposeSecret;
    let env = start("sealed-restore").await;
    let restored = SecretKey::generate();
    let s = password_secret(&env.app_ns, "later", CANARY);
    let sealed =
        seal_secret(&s, &[restored.public().clone()], &SealTarget::default()).expect("seal");
    env.apply(&serde_json::to_value(sealed.to_value()).expect("json"))
        .await;
    env.wait_ready("later", "False", "NoMatchingKey").await;
    // Two attempts: the next would come only 10 s after the second.
    let attempts = || {
        env.logs()
            .lines()
            .filter(|l| l.contains("cannot unseal") && l.contains("/later"))
            .count()
    };
    wait_for("a second attempt", || async {
        (attempts() >= 2).then_some(())
    })
    .await;

    let keys: Api<Secret> = Api::namespaced(env.client.clone(), &env._test.agent_ns);
    let identity = restored.to_identity_file("2026-11-27T00:00:00Z");
    keys.patch(
        "sealing-key-restored",
        &PatchParams::apply(TEST_MANAGER),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sealing-key-restored", "labels": {"gitseal.dev/sealing-key": "active"}},
            "stringData": {"identity": identity.expose_secret()}
        })),
    )
    .await
    .expect("restore the key");
    env.wait_ready("later", "True", "Unsealed").await;
    let secret = env.secrets().get("later").await.expect("secret");
    assert_eq!(value(&secret, "password"), Some(CANARY.as_bytes().to_vec()));
    let logs = env.logs();
    assert!(
        logs.lines().any(|l| l.contains("bulk reconcile requested")
            && l.contains("unsealed")
            && l.contains("/later")),
        "the SealedSecret was not opened by the reconcile the key change started"
    );
}
