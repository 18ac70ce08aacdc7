//! Who a pass acts for, and what it may write.
//!
//! A GitSync is written by whoever may create one in its namespace, and its repository by
//! whoever may push to it; neither is trusted with the agent's own rights. So, as Flux users
//! know it, but by default:
//!
//! - a GitSync that names a ServiceAccount (`spec.serviceAccountName`, or the agent's
//!   `--default-service-account` for GitSyncs outside its namespace) runs its pass as that
//!   ServiceAccount of its own namespace: applies, prunes and reads of live objects are sent
//!   impersonating it, so Kubernetes RBAC decides what it may change ([`Actor::ServiceAccount`]);
//! - without one, a GitSync outside the agent's namespace may write only namespaced objects of
//!   its own namespace ([`Actor::OwnNamespace`]), checked here on everything the pass would
//!   apply before anything is;
//! - the agent's namespace is the platform admin's: a GitSync there without a ServiceAccount,
//!   and `gitseal-agent sync`, act with the agent's rights ([`Actor::Agent`]).
//!
//! Whatever the actor, two rules always hold: nothing from outside the agent's namespace
//! writes into it, and nothing writes a Secret labelled as a sealing key (nor changes one that
//! is), so no repository can plant a key that `keys fetch` would publish.

use gitseal_api::names::SEALING_KEY_LABEL;
use kube::api::{Api, ObjectMeta};
use serde_json::Value;

use super::object::{Object, ObjectId};
use crate::kube_error::{is_transient, kube_message};

/// Who a pass acts as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The agent itself: a GitSync in the agent's namespace naming no ServiceAccount, or
    /// `gitseal-agent sync` (run by an operator).
    Agent,
    /// The agent, confined to the source's own namespace: a GitSync outside the agent's
    /// namespace that names no ServiceAccount (and no `--default-service-account`).
    OwnNamespace,
    /// This ServiceAccount of the source's namespace, impersonated.
    ServiceAccount(String),
}

/// The tenancy of one source: the agent's namespace and who the pass acts as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenancy {
    /// The agent's own namespace (sealing keys live there).
    pub agent_namespace: String,
    pub actor: Actor,
}

/// A rule that refuses an object; its id is part of every refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `spec.targetNamespace` names another namespace than the GitSync's own.
    TargetNamespace,
    /// A namespaced object in another namespace than the GitSync's own.
    OwnNamespace,
    /// A cluster-scoped object.
    ClusterScoped,
    /// An object in the agent's namespace from a GitSync outside it.
    AgentNamespace,
    /// A Secret labelled as a sealing key, or one that would change such a Secret.
    SealingKey,
}

impl Rule {
    /// The rule's id, as status, Events and the docs name it.
    pub fn id(self) -> &'static str {
        match self {
            Rule::TargetNamespace => "target-namespace",
            Rule::OwnNamespace => "own-namespace",
            Rule::ClusterScoped => "cluster-scoped",
            Rule::AgentNamespace => "agent-namespace",
            Rule::SealingKey => "sealing-key",
        }
    }
}

/// Why a pass was refused before anything was applied: the GitSync, the first object refused
/// and the rule, never a value.
#[derive(Debug, thiserror::Error)]
#[error("GitSync {gitsync} may not write {object}: rule {}: {why}{more}", rule.id())]
pub struct Refused {
    pub gitsync: String,
    /// The object and where it came from (or the spec field).
    pub object: String,
    pub rule: Rule,
    pub why: String,
    /// `(and N more objects refused)` when more than one was.
    pub more: String,
}

impl Refused {
    /// Fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        "tenancy"
    }
}

/// The source a check is about: its namespace and name.
pub type Source<'a> = (&'a str, &'a str);

impl Tenancy {
    /// The agent acting for a source in its own namespace (`gitseal-agent sync`, tests).
    pub fn agent(agent_namespace: &str) -> Tenancy {
        Tenancy {
            agent_namespace: agent_namespace.to_owned(),
            actor: Actor::Agent,
        }
    }

    /// The user to impersonate for a source in `namespace`, if any.
    pub fn impersonate(&self, namespace: &str) -> Option<String> {
        match &self.actor {
            Actor::ServiceAccount(sa) => Some(format!("system:serviceaccount:{namespace}:{sa}")),
            _ => None,
        }
    }

    /// Where a namespaced object that names no namespace goes: the source's own namespace
    /// outside the agent's (so a tenant's manifests need not name it), else `default`.
    pub fn fallback_namespace<'a>(&self, namespace: &'a str) -> &'a str {
        if namespace == self.agent_namespace {
            "default"
        } else {
            namespace
        }
    }

    /// The namespace rule an object in `ns` (`None`: cluster-scoped) breaks, if any.
    fn namespace_rule(&self, source_ns: &str, ns: Option<&str>) -> Option<Rule> {
        if ns == Some(self.agent_namespace.as_str()) && source_ns != self.agent_namespace {
            return Some(Rule::AgentNamespace);
        }
        if self.actor != Actor::OwnNamespace {
            return None;
        }
        match ns {
            None => Some(Rule::ClusterScoped),
            Some(ns) if ns != source_ns => Some(Rule::OwnNamespace),
            Some(_) => None,
        }
    }

    fn why(&self, rule: Rule, source_ns: &str) -> String {
        let agent_ns = &self.agent_namespace;
        match rule {
            Rule::TargetNamespace | Rule::OwnNamespace | Rule::ClusterScoped => format!(
                "a GitSync outside {agent_ns} that names no ServiceAccount writes only namespaced objects of its own namespace {source_ns}; name a ServiceAccount of {source_ns} whose RBAC allows this (spec.serviceAccountName)"
            ),
            Rule::AgentNamespace => {
                format!("only GitSyncs in the agent's namespace {agent_ns} may write there")
            }
            Rule::SealingKey => format!(
                "Secrets labelled {SEALING_KEY_LABEL} are the agent's sealing keys; only the agent and `gitseal keys restore` write them"
            ),
        }
    }

    /// Checks everything a pass would apply (SealedSecrets already opened, namespaces
    /// settled), and the target namespace, before anything is applied.
    pub fn check(
        &self,
        source: Source<'_>,
        target_namespace: Option<&str>,
        objects: &[Object],
    ) -> Result<(), Refused> {
        let (source_ns, source_name) = source;
        let refused = |object: String, rule: Rule, more: usize| Refused {
            gitsync: format!("{source_ns}/{source_name}"),
            object,
            rule,
            why: self.why(rule, source_ns),
            more: if more > 0 {
                format!(" (and {more} more object(s) refused)")
            } else {
                String::new()
            },
        };
        if let Some(t) = target_namespace
            && let Some(rule) = self.namespace_rule(source_ns, Some(t))
        {
            let rule = if rule == Rule::OwnNamespace {
                Rule::TargetNamespace
            } else {
                rule
            };
            return Err(refused(format!("spec.targetNamespace {t}"), rule, 0));
        }
        let mut found = objects.iter().filter_map(|o| {
            let rule = self
                .namespace_rule(source_ns, o.namespace())
                .or_else(|| is_sealing_key(o).then_some(Rule::SealingKey))?;
            Some((o, rule))
        });
        match found.next() {
            None => Ok(()),
            Some((o, rule)) => {
                let more = found.count();
                Err(refused(
                    format!("{} ({} #{})", o.describe(), o.source, o.document),
                    rule,
                    more,
                ))
            }
        }
    }

    /// Refuses a Secret the pass would write into the agent's namespace when the live one of
    /// that name is a sealing key: applying it would change the key. One metadata GET per such
    /// Secret (only GitSyncs in the agent's namespace get here).
    pub async fn check_live_keys(
        &self,
        client: &kube::Client,
        source: Source<'_>,
        objects: &[Object],
    ) -> Result<(), LiveCheckError> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), &self.agent_namespace);
        for o in objects
            .iter()
            .filter(|o| o.is_secret() && o.namespace() == Some(self.agent_namespace.as_str()))
        {
            let live = api
                .get_metadata_opt(o.name())
                .await
                .map_err(|e| LiveCheckError::Read {
                    object: o.describe(),
                    message: kube_message(&e),
                    transient: is_transient(&e),
                })?;
            if live.is_some_and(|m| has_sealing_key_label(&m.metadata)) {
                let (source_ns, source_name) = source;
                return Err(LiveCheckError::Refused(Refused {
                    gitsync: format!("{source_ns}/{source_name}"),
                    object: format!("{} ({} #{})", o.describe(), o.source, o.document),
                    rule: Rule::SealingKey,
                    why: format!(
                        "the live Secret of that name is a sealing key; {}",
                        self.why(Rule::SealingKey, source_ns)
                    ),
                    more: String::new(),
                }));
            }
        }
        Ok(())
    }

    /// Whether a pass of `source_ns` may delete `id` (pruning): the namespace rules, checked
    /// again on what the inventory says. The sealing-key rule is checked on the live object
    /// by the prune itself ([`has_sealing_key_label`]).
    pub fn may_prune(&self, source_ns: &str, id: &ObjectId) -> Result<(), Rule> {
        match self.namespace_rule(source_ns, id.namespace.as_deref()) {
            Some(rule) => Err(rule),
            None => Ok(()),
        }
    }
}

/// Why the live check could not pass.
#[derive(Debug, thiserror::Error)]
pub enum LiveCheckError {
    #[error("{0}")]
    Refused(Refused),
    #[error("reading {object} failed: {message}")]
    Read {
        object: String,
        message: String,
        /// The server failed or was not reached: retrying may succeed as is.
        transient: bool,
    },
}

/// Whether an object is a Secret labelled as a sealing key.
fn is_sealing_key(o: &Object) -> bool {
    o.is_secret()
        && o.value()
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_some_and(|l| l.contains_key(SEALING_KEY_LABEL))
}

/// Whether live metadata carries the sealing-key label.
pub fn has_sealing_key_label(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SEALING_KEY_LABEL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, api_version: &str, ns: Option<&str>, labels: Value) -> Object {
        let mut value = json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": "x", "labels": labels},
        });
        if let Some(ns) = ns {
            value["metadata"]["namespace"] = json!(ns);
        }
        Object::new("apps/x.yaml", 1, value, false)
    }

    fn tenancy(actor: Actor) -> Tenancy {
        Tenancy {
            agent_namespace: "gitseal-system".into(),
            actor,
        }
    }

    #[test]
    fn own_namespace_only_without_a_service_account() {
        let t = tenancy(Actor::OwnNamespace);
        let src = ("team-a", "apps");
        let ok = obj("ConfigMap", "v1", Some("team-a"), json!({}));
        assert!(t.check(src, None, std::slice::from_ref(&ok)).is_ok());
        for (o, rule) in [
            (
                obj("ConfigMap", "v1", Some("team-b"), json!({})),
                "own-namespace",
            ),
            (
                obj("ConfigMap", "v1", Some("kube-system"), json!({})),
                "own-namespace",
            ),
            (
                obj(
                    "ClusterRoleBinding",
                    "rbac.authorization.k8s.io/v1",
                    None,
                    json!({}),
                ),
                "cluster-scoped",
            ),
            (
                obj("Secret", "v1", Some("gitseal-system"), json!({})),
                "agent-namespace",
            ),
            (
                obj(
                    "Secret",
                    "v1",
                    Some("team-a"),
                    json!({"gitseal.dev/sealing-key": "active"}),
                ),
                "sealing-key",
            ),
        ] {
            let e = t.check(src, None, &[ok_clone(&ok), o]).unwrap_err();
            let msg = e.to_string();
            assert_eq!(e.rule.id(), rule, "{msg}");
            assert!(
                msg.contains("GitSync team-a/apps") && msg.contains("apps/x.yaml #1"),
                "{msg}"
            );
        }
        let e = t.check(src, Some("team-b"), &[]).unwrap_err();
        assert_eq!(e.rule, Rule::TargetNamespace);
        assert!(e.to_string().contains("spec.targetNamespace team-b"));
        let two = [
            obj("ConfigMap", "v1", Some("team-b"), json!({})),
            obj("ConfigMap", "v1", Some("team-c"), json!({})),
        ];
        assert!(
            t.check(src, None, &two)
                .unwrap_err()
                .to_string()
                .contains("and 1 more")
        );
    }

    fn ok_clone(o: &Object) -> Object {
        Object::new(o.source.clone(), o.document, o.value().clone(), false)
    }

    #[test]
    fn service_accounts_and_the_agent_keep_the_always_rules() {
        for t in [
            tenancy(Actor::ServiceAccount("deployer".into())),
            tenancy(Actor::Agent),
        ] {
            let src = ("team-a", "apps");
            let elsewhere = obj("ConfigMap", "v1", Some("team-b"), json!({}));
            let cluster = obj(
                "ClusterRole",
                "rbac.authorization.k8s.io/v1",
                None,
                json!({}),
            );
            assert!(t.check(src, Some("team-b"), &[elsewhere, cluster]).is_ok());
            let agent_ns = obj("ConfigMap", "v1", Some("gitseal-system"), json!({}));
            assert_eq!(
                t.check(src, None, &[agent_ns]).unwrap_err().rule,
                Rule::AgentNamespace
            );
            let key = obj(
                "Secret",
                "v1",
                Some("team-a"),
                json!({"gitseal.dev/sealing-key": "retired"}),
            );
            assert_eq!(
                t.check(src, None, &[key]).unwrap_err().rule,
                Rule::SealingKey
            );
            // A source in the agent's namespace writes there, but never a key.
            let own = obj("ConfigMap", "v1", Some("gitseal-system"), json!({}));
            assert!(t.check(("gitseal-system", "infra"), None, &[own]).is_ok());
        }
    }

    #[test]
    fn impersonation_and_fallback_namespace() {
        let t = tenancy(Actor::ServiceAccount("deployer".into()));
        assert_eq!(
            t.impersonate("team-a").as_deref(),
            Some("system:serviceaccount:team-a:deployer")
        );
        assert_eq!(tenancy(Actor::OwnNamespace).impersonate("team-a"), None);
        assert_eq!(t.fallback_namespace("team-a"), "team-a");
        assert_eq!(t.fallback_namespace("gitseal-system"), "default");
        let prune = ObjectId {
            group: "".into(),
            kind: "ConfigMap".into(),
            namespace: Some("team-b".into()),
            name: "x".into(),
        };
        assert_eq!(
            tenancy(Actor::OwnNamespace).may_prune("team-a", &prune),
            Err(Rule::OwnNamespace)
        );
        assert_eq!(t.may_prune("team-a", &prune), Ok(()));
    }
}
