//! `spec.dependsOn`: a GitSync's pass runs only once every GitSync it names is Ready at its
//! current spec (infrastructure with CRDs before the apps that use them).
//!
//! Whom a GitSync may name: GitSyncs of its own namespace, and of the agent's namespace (the
//! platform's). Naming another tenant's GitSync is refused: waiting on it would tell this
//! tenant whether that one is Ready, and let it hold its passes on another's state. GitSyncs
//! in the agent's namespace (the platform admin's) may name any. For a dependency outside its
//! own namespace a GitSync learns only whether it is Ready and its reason, never its message.
//!
//! Dependencies are read from the controller's cache (no API request); one missing from it
//! (another namespace than the agent watches, or not yet seen) is read with a GET.

use std::collections::HashSet;

use gitseal_api::GitSync;
use gitseal_api::conditions::READY;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use crate::kube_error::kube_message;

/// Dependencies followed when looking for a cycle.
const MAX_WALK: usize = 256;

/// A GitSync's namespace and name.
type Key = (String, String);

/// What the dependencies of a GitSync allow.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Every dependency is Ready (or there are none): the pass may run.
    Open,
    /// Waiting for this dependency (the message for the Ready condition).
    Waiting(String),
    /// A reference the GitSync may not make, or a cycle: only a change of a spec fixes it.
    Invalid(String),
}

/// The namespace and name of each dependency of `gs` (in namespace `ns`).
fn references(gs: &GitSync, ns: &str) -> Vec<Key> {
    gs.spec
        .depends_on
        .iter()
        .map(|d| {
            (
                d.namespace.clone().unwrap_or_else(|| ns.to_owned()),
                d.name.clone(),
            )
        })
        .collect()
}

/// A reference `gs` may not make, if any (see the module documentation).
fn forbidden(gs: &GitSync, ns: &str, agent_ns: &str) -> Option<String> {
    if ns == agent_ns {
        return None;
    }
    references(gs, ns)
        .iter()
        .enumerate()
        .find(|(_, (dep_ns, _))| dep_ns != ns && dep_ns != agent_ns)
        .map(|(i, (dep_ns, name))| {
            format!(
                "spec.dependsOn[{i}]: GitSync {dep_ns}/{name} is in another namespace; a GitSync may depend on GitSyncs of its own namespace {ns} and of the agent's namespace {agent_ns}"
            )
        })
}

/// Checks the dependencies of `gs` (in namespace `ns`).
pub async fn check(ctx: &Context, gs: &GitSync, ns: &str) -> Gate {
    if gs.spec.depends_on.is_empty() {
        return Gate::Open;
    }
    if let Some(why) = forbidden(gs, ns, &ctx.tenancy.agent_namespace) {
        return Gate::Invalid(why);
    }
    let me = (ns.to_owned(), gs.name_any());
    if let Some(cycle) = cycle(ctx, &me, references(gs, ns)).await {
        return Gate::Invalid(format!("spec.dependsOn: a cycle: {cycle}"));
    }
    for (dep_ns, name) in references(gs, ns) {
        let shown = format!("GitSync {dep_ns}/{name}");
        let dep = match lookup(ctx, &dep_ns, &name).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                return Gate::Waiting(format!("waiting for {shown} (dependsOn): not found"));
            }
            Err(e) => return Gate::Waiting(format!("waiting for {shown} (dependsOn): {e}")),
        };
        if dep.metadata.deletion_timestamp.is_some() {
            return Gate::Waiting(format!(
                "waiting for {shown} (dependsOn): it is being deleted"
            ));
        }
        let status = dep.status.as_ref();
        let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        let current = status.and_then(|s| s.observed_generation) == dep.metadata.generation;
        match ready {
            Some(c) if c.status == "True" && current => {}
            Some(c) if current => {
                // The message only for a dependency of the same namespace (same tenant).
                let detail = if dep_ns == ns {
                    format!("{}: {}", c.reason, c.message)
                } else {
                    c.reason.clone()
                };
                return Gate::Waiting(format!(
                    "waiting for {shown} (dependsOn): not Ready ({detail})"
                ));
            }
            _ => {
                return Gate::Waiting(format!(
                    "waiting for {shown} (dependsOn): no pass of its current spec yet"
                ));
            }
        }
    }
    Gate::Open
}

/// A GitSync by namespace and name: from the controller's cache, else read.
async fn lookup(ctx: &Context, ns: &str, name: &str) -> Result<Option<GitSync>, String> {
    if let Some(store) = ctx.gitsyncs.get()
        && let Some(gs) = store.get(&ObjectRef::new(name).within(ns))
    {
        return Ok(Some((*gs).clone()));
    }
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), ns);
    api.get_opt(name)
        .await
        .map_err(|e| format!("cannot read it: {}", kube_message(&e)))
}

/// The first path that leads from the dependencies `start` back to `me`, shown as
/// `a → b → a`; dependencies that cannot be read end their path.
async fn cycle(ctx: &Context, me: &Key, start: Vec<Key>) -> Option<String> {
    let mut seen = HashSet::new();
    // Depth first, each entry with the path that led to it.
    let mut stack: Vec<(Key, Vec<Key>)> =
        start.into_iter().map(|d| (d, vec![me.clone()])).collect();
    while let Some((node, path)) = stack.pop() {
        if seen.len() >= MAX_WALK {
            break;
        }
        let mut path = path;
        path.push(node.clone());
        if &node == me {
            let shown: Vec<String> = path.iter().map(|(n, m)| format!("{n}/{m}")).collect();
            return Some(shown.join(" → "));
        }
        if !seen.insert(node.clone()) {
            continue;
        }
        if let Ok(Some(dep)) = lookup(ctx, &node.0, &node.1).await {
            for next in references(&dep, &node.0) {
                stack.push((next, path.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitseal_api::{DependencyReference, GitSyncSpec};

    fn gitsync(deps: &[(&str, Option<&str>)]) -> GitSync {
        let mut gs = GitSync::new(
            "apps",
            serde_json::from_value::<GitSyncSpec>(serde_json::json!({"url": "https://x/r.git"}))
                .unwrap(),
        );
        gs.spec.depends_on = deps
            .iter()
            .map(|(n, ns)| DependencyReference {
                name: (*n).into(),
                namespace: ns.map(str::to_owned),
            })
            .collect();
        gs
    }

    #[test]
    fn a_tenant_may_name_its_own_namespace_and_the_agents() {
        let gs = gitsync(&[("infra", None), ("crds", Some("gitseal-system"))]);
        assert_eq!(forbidden(&gs, "team-a", "gitseal-system"), None);
        let gs = gitsync(&[("infra", None), ("db", Some("team-b"))]);
        let why = forbidden(&gs, "team-a", "gitseal-system").unwrap();
        assert!(
            why.starts_with("spec.dependsOn[1]: GitSync team-b/db is in another namespace"),
            "{why}"
        );
        // The platform's GitSyncs may name any.
        assert_eq!(forbidden(&gs, "gitseal-system", "gitseal-system"), None);
        assert_eq!(
            references(&gs, "team-a"),
            [
                ("team-a".to_owned(), "infra".to_owned()),
                ("team-b".to_owned(), "db".to_owned())
            ]
        );
    }
}
