//! Two agent processes of the same namespace (as a 2-replica Deployment, or a rolling
//! update with surge), against the real control plane: exactly one leads; on an empty
//! cluster exactly one first key is made; a rotation makes exactly one key, also when the
//! leader is killed right after the request; the standby writes nothing (so no write is
//! done twice); and after SIGKILL of the leader the standby takes over and applies the next
//! commit, within 15 s of the kill.
//!
//! Slow (about a minute): its own test binary, run beside the others by scripts/test.sh.

mod support;

use std::time::{Duration, Instant};

use gitseal_testenv::e2e::commit_file;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use support::{
    AgentProcess, AgentTest, agent_binary, apply_gitsync, configmaps_yaml, file_gitsync_spec, git,
    labelled_names, wait_for, wait_ready,
};

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases
        .get_opt("gitseal-agent")
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

async fn key_secrets(client: &kube::Client, ns: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    labelled_names(&secrets, "gitseal.dev/sealing-key").await
}

async fn request_rotation(client: &kube::Client, ns: &str, value: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.patch(
        "gitseal-public-keys",
        &PatchParams::apply("gitseal-cli"),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "gitseal-public-keys",
                         "annotations": {"gitseal.dev/rotate-requested": value}},
        })),
    )
    .await
    .expect("rotation request");
}

async fn rotation_done(client: &kube::Client, ns: &str, value: &str) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("rotation {value} done"), || async {
        let cm = cms.get_opt("gitseal-public-keys").await.ok()??;
        (cm.metadata.annotations?.get("gitseal.dev/rotate-done")? == value).then_some(())
    })
    .await;
}

fn writes(agent: &AgentProcess) -> f64 {
    agent
        .metric("gitseal_api_writes_total")
        .expect("writes metric")
}

#[tokio::test]
async fn two_replicas_one_leader_one_key_and_failover() {
    let t = AgentTest::new("ha").await;
    let (client, agent_ns, ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    commit_file(
        &repo,
        "apps/cms.yaml",
        &configmaps_yaml(&ns, "cm", 20, "1"),
        "first",
    );

    // Both start at once on a cluster with no key at all.
    let renewal = ["--key-renewal", "0"];
    let mut a = t.start_named_agent("agent-a", agent_binary, &renewal);
    let mut b = t.start_named_agent("agent-b", agent_binary, &renewal);
    let leader = wait_for("a leader", || holder(&client, &agent_ns)).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    wait_for("the first key published", || async {
        let cm = cms.get_opt("gitseal-public-keys").await.ok()??;
        cm.data?
            .get("keys.json")
            .filter(|k| k.contains("active"))
            .map(|_| ())
    })
    .await;
    assert_eq!(
        key_secrets(&client, &agent_ns).await,
        ["gitseal-key-initial"],
        "exactly one first key"
    );

    apply_gitsync(&client, &ns, "apps", file_gitsync_spec(&repo, "apps", true)).await;
    wait_ready(&client, &ns, "apps", None).await;

    // A rotation makes exactly one key.
    request_rotation(&client, &agent_ns, "r1").await;
    rotation_done(&client, &agent_ns, "r1").await;
    assert_eq!(
        key_secrets(&client, &agent_ns).await.len(),
        2,
        "one rotation, one key"
    );

    // The standby wrote nothing: every write was done once, by the leader.
    let (leading, standby) = if leader == "agent-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(standby.metric("gitseal_leader"), Some(0.0));
    assert_eq!(leading.metric("gitseal_leader"), Some(1.0));
    assert_eq!(writes(standby), 0.0, "the standby wrote");
    assert!(writes(leading) > 0.0);
    assert_eq!(
        standby.readyz(),
        Some(200),
        "a standby is ready (it serves /v1/keys)"
    );

    // Rotation requested, then the leader killed at once: still exactly one key for it.
    request_rotation(&client, &agent_ns, "r2").await;
    let killed_at = Instant::now();
    leading.kill();
    let new_leader = wait_for("the standby takes over", || async {
        holder(&client, &agent_ns).await.filter(|h| *h != leader)
    })
    .await;
    let takeover = killed_at.elapsed();
    rotation_done(&client, &agent_ns, "r2").await;
    assert_eq!(
        key_secrets(&client, &agent_ns).await.len(),
        3,
        "one rotation, one key, across a leader change"
    );

    // The new leader runs the controllers: the next commit is applied.
    commit_file(
        &repo,
        "apps/more.yaml",
        &configmaps_yaml(&ns, "more", 1, "1"),
        "more",
    );
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    wait_ready(&client, &ns, "apps", Some(&commit)).await;
    let applied = killed_at.elapsed();
    eprintln!(
        "failover: {new_leader} holds the lease {:.1} s after SIGKILL of {leader}; next commit applied after {:.1} s",
        takeover.as_secs_f64(),
        applied.as_secs_f64()
    );
    // The lease timings (8 s, read every 1 s) bound the takeover at about 10 s.
    assert!(
        takeover < Duration::from_secs(15),
        "takeover took {takeover:?}"
    );
    assert_eq!(standby.metric("gitseal_leader"), Some(1.0));

    // Someone else writes the Lease (as a leader that lost touch with this one would): the
    // leader stops leading at its next renewal, and takes the lease again only once it expired.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &agent_ns);
    let taken = wait_for("the lease taken by hand", || async {
        let mut lease = leases.get("gitseal-agent").await.ok()?;
        let spec = lease.spec.as_mut()?;
        spec.holder_identity = Some("intruder".into());
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        leases
            .replace("gitseal-agent", &Default::default(), &lease)
            .await
            .ok()
            .map(|_| Instant::now())
    })
    .await;
    wait_for("the leader steps down", || async {
        (standby.metric("gitseal_leader") == Some(0.0)).then_some(())
    })
    .await;
    let stepped_down = taken.elapsed();
    wait_for("the lease back after it expired", || async {
        holder(&client, &agent_ns)
            .await
            .filter(|h| *h == new_leader)
    })
    .await;
    let back = taken.elapsed();
    eprintln!(
        "lease taken by hand: leader stepped down after {:.1} s, took it back after {:.1} s",
        stepped_down.as_secs_f64(),
        back.as_secs_f64()
    );
    assert!(
        back >= Duration::from_secs(7),
        "took the lease back before it expired ({back:?})"
    );
}
