//! A pass killed with SIGKILL at several points, then the commit reverted: the restarted
//! agent converges with nothing orphaned (every object the killed pass created and git no
//! longer has is pruned) and nothing wrongly deleted (what git still has stays). Real agent
//! processes against the real control plane.

mod support;

use std::time::{Duration, Instant};

use gitseal_api::GitSyncInventory;
use gitseal_testenv::e2e::commit_file;
use kube::api::{Api, ListParams};
use support::{
    AgentTest, agent_binary, apply_gitsync, configmaps_yaml, file_gitsync_spec, git,
    managed_configmaps, wait_ready,
};

/// Where in the pass the agent is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// As soon as the new objects are recorded in the inventory (before or right at the
    /// first apply).
    Recorded,
    /// Once this many of the new objects exist (all of them: at the end of the apply stage
    /// or just after, before the status says so).
    Created(usize),
}

const BASE: usize = 5;
const NEW: usize = 400;

async fn recorded(client: &kube::Client, ns: &str) -> usize {
    let api: Api<GitSyncInventory> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels("gitseal.dev/inventory-of=apps"))
        .await
        .map(|l| {
            l.items
                .iter()
                .flat_map(|s| s.spec.groups.iter())
                .map(|g| g.names.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn passes_killed_anywhere_then_reverted_leave_no_orphans() {
    let t = AgentTest::new("crash").await;
    let (client, ns) = (t.client.clone(), t.app_ns.clone());
    let repo = t.init_repo();
    commit_file(
        &repo,
        "apps/base.yaml",
        &configmaps_yaml(&ns, "base", BASE, "1"),
        "base",
    );
    // One object at a time, so the kill lands in the middle of the apply stage.
    let mut agent = t.start_agent(agent_binary, &["--concurrency", "1"]);
    apply_gitsync(&client, &ns, "apps", file_gitsync_spec(&repo, "apps", true)).await;
    let base_commit = git(&repo, &["rev-parse", "HEAD"]);
    wait_ready(&client, &ns, "apps", Some(&base_commit)).await;

    for (round, at) in [KillAt::Recorded, KillAt::Created(100), KillAt::Created(NEW)]
        .into_iter()
        .enumerate()
    {
        let prefix = format!("new{round}");
        commit_file(
            &repo,
            "apps/new.yaml",
            &configmaps_yaml(&ns, &prefix, NEW, "x"),
            "add",
        );
        let start = Instant::now();
        loop {
            let hit = match at {
                KillAt::Recorded => recorded(&client, &ns).await >= BASE + NEW,
                KillAt::Created(n) => {
                    managed_configmaps(&client, &ns, "apps").await.len() >= BASE + n
                }
            };
            if hit {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "round {round}: {at:?} never reached"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        agent.kill();
        let created = managed_configmaps(&client, &ns, "apps").await.len() - BASE;
        eprintln!("round {round}: killed at {at:?} with {created} of {NEW} new objects created");
        if let KillAt::Created(n) = at
            && n < NEW
        {
            assert!(
                created < NEW,
                "round {round}: the apply finished before the kill; nothing tested"
            );
        }

        // Revert, restart: the new objects must all go, the base ones stay.
        git(&repo, &["revert", "--no-edit", "HEAD"]);
        let reverted = git(&repo, &["rev-parse", "HEAD"]);
        agent = t.start_agent(agent_binary, &["--concurrency", "1"]);
        let gs = wait_ready(&client, &ns, "apps", Some(&reverted)).await;
        let left = managed_configmaps(&client, &ns, "apps").await;
        let expected: Vec<String> = {
            let mut v: Vec<String> = (0..BASE).map(|i| format!("base-{i}")).collect();
            v.sort();
            v
        };
        assert_eq!(
            left, expected,
            "round {round}: orphans left or base objects deleted"
        );
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
        let all = cms
            .list_metadata(&ListParams::default())
            .await
            .expect("list");
        let orphans: Vec<String> = all
            .items
            .iter()
            .filter_map(|m| m.metadata.name.clone())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert!(
            orphans.is_empty(),
            "round {round}: {} orphans",
            orphans.len()
        );
        let summary = gs
            .status
            .and_then(|s| s.inventory)
            .expect("inventory summary");
        assert_eq!(summary.objects, BASE, "round {round}");
        assert_eq!(recorded(&client, &ns).await, BASE, "round {round}");
    }
}
