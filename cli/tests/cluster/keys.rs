//! Cluster sealing keys: generated and published, sealed to with `keys fetch`, rotated,
//! retired (refused while in use), backed up, lost and restored without a restart.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gitseal::SecretKey;
use gitseal_api::GitSync;
use gitseal_testenv::e2e::{AgentTest, commit_file, git, http_get, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use secrecy::ExposeSecret;

use super::{
    CANARY, Cli, active_ids, head, header_ids, ok, published, ready_at, stderr,
    this_binary_as_agent, wait_applied,
};

#[tokio::test]
async fn keys_generated_published_rotated_retired_backed_up_restored() {
    let t = AgentTest::new("keys").await;
    let (client, agent_ns, app_ns) = (t.client.clone(), t.agent_ns.clone(), t.app_ns.clone());
    let work = &t.work;
    let cli = Cli::for_test(&t);

    // The agent, with no key at all.
    let mut agent = t.start_agent(this_binary_as_agent, &["--key-renewal", "0"]);
    let health_port = agent.health_port;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    let key_secrets: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);

    // 1. A key is generated and published: ConfigMap, /v1/keys, `keys fetch`.
    let cm = wait_for("public keys ConfigMap", || async {
        let cm = cms.get_opt("gitseal-public-keys").await.ok()??;
        (active_ids(&cm).len() == 1).then_some(cm)
    })
    .await;
    let key1 = active_ids(&cm)[0].clone();
    // Its Secret is named after why it was made (the first key), and published with it.
    let secret1 = published(&cm)
        .iter()
        .find(|k| k["id"] == key1.as_str())
        .and_then(|k| k["secret"].as_str())
        .expect("published secret name")
        .to_owned();
    assert_eq!(secret1, "gitseal-key-initial");
    let s1 = key_secrets.get(&secret1).await.expect("key Secret");
    assert_eq!(
        s1.metadata.labels.as_ref().expect("labels")["gitseal.dev/sealing-key"],
        "active"
    );
    assert!(
        s1.metadata.annotations.as_ref().expect("annotations")["gitseal.dev/created"]
            .ends_with('Z')
    );
    let pub1 = published(&cm)[0]["publicKey"]
        .as_str()
        .expect("publicKey")
        .to_owned();
    let served = wait_for("/v1/keys", || async {
        let r = http_get(health_port, "/v1/keys");
        r.contains(&pub1).then_some(r)
    })
    .await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(!served.contains("AGE-SECRET-KEY"));
    ok(&cli.keys("fetch", &["-w", "k1.txt"]), "keys fetch");
    let k1_file = std::fs::read_to_string(work.path().join("k1.txt")).expect("k1.txt");
    assert!(k1_file.contains(&pub1), "{k1_file}");
    assert_eq!(
        ok(&cli.keys("fetch", &[]), "keys fetch")
            .trim_end()
            .lines()
            .last(),
        Some(pub1.as_str())
    );

    // 2. Seal with the fetched key; a GitSync opens it; usage records key 1.
    let repo = work.path().join("repo");
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    let secret_yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {app_ns}}}\nstringData: {{password: {CANARY}}}\n"
    );
    std::fs::write(work.path().join("db-secret.yaml"), &secret_yaml).expect("write");
    ok(
        &cli.raw(&[
            "seal",
            "-f",
            "db-secret.yaml",
            "-R",
            "k1.txt",
            "-w",
            "repo/apps/db.yaml",
        ]),
        "seal",
    );
    let sealed1 = std::fs::read_to_string(repo.join("apps/db.yaml")).expect("sealed");
    assert_eq!(header_ids(&sealed1), vec![key1.clone()]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    t.apply_gitsync(&repo).await;
    let syncs: Api<GitSync> = Api::namespaced(client.clone(), &app_ns);
    wait_applied(&syncs, &head(&repo)).await;
    let app_secrets: Api<Secret> = Api::namespaced(client.clone(), &app_ns);
    let db = app_secrets.get("db").await.expect("db");
    assert_eq!(db.data.expect("data")["password"].0, CANARY.as_bytes());
    let usage_of = |id: String| {
        let cms = cms.clone();
        async move {
            let cm = cms.get_opt("gitseal-key-usage").await.ok()??;
            let text = cm.data?.get(&id)?.clone();
            serde_json::from_str::<serde_json::Value>(&text).ok()
        }
    };
    let object = format!("{app_ns}/db");
    wait_for("usage of key 1", || async {
        let u = usage_of(key1.clone()).await?;
        (u["objects"][0]["object"] == object.as_str()).then_some(())
    })
    .await;
    // Unchanged repository: the usage ConfigMap is not written again.
    let rv = cms
        .get("gitseal-key-usage")
        .await
        .expect("usage")
        .metadata
        .resource_version;
    let pub_rv = cms
        .get("gitseal-public-keys")
        .await
        .expect("public")
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cms.get("gitseal-key-usage")
            .await
            .expect("usage")
            .metadata
            .resource_version,
        rv,
        "usage rewritten by a no-op pass"
    );
    assert_eq!(
        cms.get("gitseal-public-keys")
            .await
            .expect("pub")
            .metadata
            .resource_version,
        pub_rv,
        "public keys rewritten without a change"
    );

    // 3. Rotate: key 2 seals, key 1 still opens.
    let out = cli.keys("rotate", &[]);
    let pub2 = ok(&out, "keys rotate").trim().to_owned();
    assert!(pub2.starts_with("age1") && pub2 != pub1, "{pub2}");
    let cm = cms.get("gitseal-public-keys").await.expect("cm");
    let active = active_ids(&cm);
    assert_eq!(active.len(), 2, "{active:?}");
    let key2 = active.iter().find(|k| **k != key1).expect("key 2").clone();
    ok(&cli.keys("fetch", &["-w", "k2.txt"]), "keys fetch");
    let k2_file = std::fs::read_to_string(work.path().join("k2.txt")).expect("k2");
    assert!(k2_file.contains(&pub2) && !k2_file.contains(&pub1));
    commit_file(
        &repo,
        "apps/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {app_ns}}}\ndata: {{a: b}}\n"
        ),
        "after rotation",
    );
    wait_applied(&syncs, &head(&repo)).await;
    std::fs::write(
        work.path().join("other.yaml"),
        secret_yaml.replace("name: db", "name: other"),
    )
    .expect("write");
    ok(
        &cli.raw(&[
            "seal",
            "-f",
            "other.yaml",
            "-R",
            "k2.txt",
            "-w",
            "other-sealed.yaml",
        ]),
        "seal",
    );
    let other = std::fs::read_to_string(work.path().join("other-sealed.yaml")).expect("sealed");
    assert_eq!(header_ids(&other), vec![key2.clone()]);

    // 4. Retiring key 1 is refused while the repository needs it.
    let out = cli.keys("retire", &[&key1]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("still needed") && stderr(&out).contains(&object),
        "{}",
        stderr(&out)
    );

    // 5. Backups: only with a recipient or --plaintext, always 0600.
    let out = cli.keys("backup", &["-w", "nothing.age"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!work.path().join("nothing.age").exists());
    let backup_key = SecretKey::generate();
    let id_path = work.path().join("backup-id.txt");
    std::fs::write(
        &id_path,
        backup_key
            .to_identity_file("2026-11-26T00:00:00Z")
            .expose_secret(),
    )
    .expect("write");
    std::fs::set_permissions(&id_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let backup_pub = backup_key.public().to_string();
    ok(
        &cli.keys("backup", &["-r", &backup_pub, "-w", "keys.age"]),
        "keys backup",
    );
    ok(
        &cli.keys("backup", &["--plaintext", "-w", "keys.txt"]),
        "keys backup --plaintext",
    );
    let out = cli.keys("backup", &["-r", &backup_pub, "-w", "keys.age"]);
    assert_eq!(out.status.code(), Some(1), "no silent overwrite");
    for f in ["keys.age", "keys.txt"] {
        let mode = std::fs::metadata(work.path().join(f))
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let enc = std::fs::read(work.path().join("keys.age")).expect("read");
    assert!(enc.starts_with(b"age-encryption.org/v1"));
    assert!(!enc.windows(14).any(|w| w == b"AGE-SECRET-KEY"));
    let plain = std::fs::read_to_string(work.path().join("keys.txt")).expect("read");
    assert_eq!(plain.matches("AGE-SECRET-KEY-1").count(), 2);

    // 6. Offline reseal of the repository to key 2 (the plaintext backup is an identity
    //    file), applied; then key 1 is no longer needed and retires.
    ok(
        &cli.raw(&["reseal", "-i", "keys.txt", "-R", "k2.txt", "repo/apps"]),
        "reseal",
    );
    let sealed2 = std::fs::read_to_string(repo.join("apps/db.yaml")).expect("sealed");
    assert_eq!(header_ids(&sealed2), vec![key2.clone()]);
    git(&repo, &["commit", "-q", "-am", "resealed to key 2"]);
    wait_applied(&syncs, &head(&repo)).await;
    wait_for("key 1 unused", || async {
        let u = usage_of(key1.clone()).await?;
        u["objects"].as_array()?.is_empty().then_some(())
    })
    .await;
    ok(&cli.keys("retire", &[&key1]), "keys retire");
    let s1 = key_secrets.get(&secret1).await.expect("key 1");
    assert_eq!(
        s1.metadata.labels.as_ref().expect("labels")["gitseal.dev/sealing-key"],
        "retired"
    );
    wait_for("key 1 shown retired", || async {
        let cm = cms.get("gitseal-public-keys").await.ok()?;
        (active_ids(&cm) == vec![key2.clone()]).then_some(())
    })
    .await;
    let listed = ok(&cli.keys("list", &[]), "keys list");
    assert!(
        listed.contains(&key1) && listed.contains("retired"),
        "{listed}"
    );
    assert!(
        listed.contains(&key2) && listed.contains(&object),
        "{listed}"
    );
    // The same as JSON, for scripts.
    let json = ok(&cli.keys("list", &["-o", "json"]), "keys list -o json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("keys list -o json is JSON");
    let by_id = |id: &str| {
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing from {json}"))
    };
    assert_eq!(by_id(&key1)["state"], "retired");
    assert_eq!(by_id(&key2)["state"], "sealing");
    assert!(
        by_id(&key2)["publicKey"]
            .as_str()
            .expect("publicKey")
            .starts_with("age1")
    );
    assert!(
        by_id(&key2)["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .any(|o| o["object"] == object.as_str()),
        "{json}"
    );
    assert_eq!(v["usageReadable"], true);

    // 7. Every key Secret lost: the agent makes a new key, and the repository stops
    //    opening; the encrypted backup restores the keys and it opens again, no restart.
    key_secrets
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("gitseal.dev/sealing-key"),
        )
        .await
        .expect("delete keys");
    // A new commit makes the agent open the SealedSecret again (an unchanged commit is
    // not decrypted again).
    std::fs::write(
        repo.join("apps/cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {app_ns}}}\ndata: {{a: c}}\n"),
    )
    .expect("write");
    git(&repo, &["commit", "-q", "-am", "after key loss"]);
    wait_for("GitSync failing without keys", || async {
        let gs = syncs.get("apps").await.ok()?;
        (!ready_at(&gs)?.0).then_some(())
    })
    .await;
    let id_arg = id_path.display().to_string();
    ok(
        &cli.keys("restore", &["-i", &id_arg, "-f", "keys.age"]),
        "keys restore",
    );
    wait_applied(&syncs, &head(&repo)).await;
    assert!(agent.running(), "the agent kept running");
    let cm = cms.get("gitseal-public-keys").await.expect("cm");
    let active = active_ids(&cm);
    // Restored as backed up (key 1 was still active then), beside the key made meanwhile.
    assert!(
        active.contains(&key2) && active.contains(&key1) && active.len() == 3,
        "{active:?}"
    );
    let out = cli.keys("restore", &["-f", "keys.age"]);
    assert_eq!(out.status.code(), Some(1), "encrypted backup needs -i");

    // 8. Nothing secret in the agent's logs.
    let metrics = http_get(agent.metrics_port, "/metrics");
    assert!(
        metrics.contains("gitseal_sealing_keys"),
        "key count exported:\n{metrics}"
    );
    let logs = agent.logs();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, CANARY);
    for bad in ["AGE-SECRET-KEY", CANARY, &b64] {
        assert!(!logs.contains(bad), "{bad} in the agent log");
    }
    assert!(logs.contains("new active sealing key"), "{logs}");
}
