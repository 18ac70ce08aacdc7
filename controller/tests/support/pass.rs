//! Passes run in the test process (`run_pass`), without the agent's controllers.

use std::time::Duration;

use gitseal_agent::sync::git::GitSource;
use gitseal_agent::sync::pass::SyncSpec;
use gitseal_agent::sync::render::RemoteBases;
use gitseal_agent::sync::tenancy::Tenancy;

/// A pass named `ns/name` of `source`'s `apps` folder, as the agent's own (`ns` is its
/// namespace): pruning, no plaintext Secrets, default limits, `timeout` for the whole pass.
pub fn apps_spec(ns: &str, name: &str, source: GitSource, timeout: Duration) -> SyncSpec {
    SyncSpec {
        namespace: ns.into(),
        name: name.into(),
        source,
        path: "apps".into(),
        timeout,
        prune: true,
        allow_empty: false,
        allow_plaintext: false,
        target_namespace: None,
        remote_bases: RemoteBases::default(),
        limits: Default::default(),
        tenancy: Tenancy::agent(ns),
    }
}
