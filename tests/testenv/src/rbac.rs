//! The agent as it is deployed: a ServiceAccount holding exactly the RBAC of
//! `deploy/rbac.yaml`, and a kubeconfig with that account's token, so end-to-end tests run the
//! agent with the rights users grant it (and no more) instead of as an admin.
//!
//! Every object of `deploy/rbac.yaml` is installed for one test's agent namespace: namespaced
//! objects move from `gitseal-system` to it, cluster-wide ones get its name as a suffix, and the
//! aggregated reconciler role selects its own label value, so tests running side by side (and an
//! admin extending one test's reconciler role) never share rights.

use std::path::PathBuf;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::e2e::{AgentProcess, AgentSetup, AgentTest, DEPLOY_DIR, wait_for};

/// The namespace `deploy/rbac.yaml` is written for.
const DEPLOY_NAMESPACE: &str = "gitseal-system";
/// The label that aggregates ClusterRoles into the reconciler role.
pub const RECONCILER_LABEL: &str = "gitseal.dev/aggregate-to-reconciler";
const MANAGER: &str = "gitseal-testenv-rbac";

/// Which parts of `deploy/rbac.yaml` the agent's ServiceAccount gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRbac {
    /// Everything, as `kubectl apply -k deploy/` grants it.
    Deployed,
    /// Only the `gitseal-agent` ClusterRole and Role: the agent's own needs, without the
    /// reconciler role that GitSync passes apply with.
    OwnNeedsOnly,
}

impl AgentTest {
    /// The label value that makes a ClusterRole part of this test's reconciler role (with
    /// the key [`RECONCILER_LABEL`]): what an admin sets to extend it.
    pub fn reconciler_label_value(&self) -> String {
        self.agent_ns.clone()
    }

    /// Installs `deploy/rbac.yaml` (as `rbac` says) for this test's agent namespace and writes
    /// a kubeconfig holding a token of its ServiceAccount `gitseal-agent`; returns its path.
    /// Waits until the aggregated reconciler role holds its rules.
    ///
    /// # Panics
    /// When the file cannot be read or the API server refuses an object.
    pub async fn agent_kubeconfig(&self, rbac: AgentRbac) -> PathBuf {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let text =
            std::fs::read_to_string(format!("{DEPLOY_DIR}/rbac.yaml")).expect("deploy/rbac.yaml");
        let ns = &self.agent_ns;
        let pp = PatchParams::apply(MANAGER).force();
        let mut reconciler = None;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(doc).expect("deploy/rbac.yaml");
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            let wanted = match rbac {
                AgentRbac::Deployed => true,
                AgentRbac::OwnNeedsOnly => {
                    name == "gitseal-agent" || name == "gitseal-public-keys-reader"
                }
            };
            if !wanted {
                continue;
            }
            let obj = self.for_this_test(doc);
            if kind == "ClusterRole" && obj.get("aggregationRule").is_some() {
                reconciler = obj["metadata"]["name"].as_str().map(str::to_owned);
            }
            let (group, version) = match obj["apiVersion"].as_str().unwrap_or("v1").split_once('/')
            {
                Some((g, v)) => (g.to_owned(), v.to_owned()),
                None => (String::new(), "v1".to_owned()),
            };
            let ar = kube::discovery::ApiResource::from_gvk(&GroupVersionKind::gvk(
                &group, &version, &kind,
            ));
            let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
                Some(n) => Api::namespaced_with(self.client.clone(), n, &ar),
                None => Api::all_with(self.client.clone(), &ar),
            };
            let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
            api.patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .unwrap_or_else(|e| panic!("deploy/rbac.yaml {kind} {name}: {e}"));
        }
        if let Some(role) = reconciler {
            use k8s_openapi::api::rbac::v1::ClusterRole;
            let roles: Api<ClusterRole> = Api::all(self.client.clone());
            wait_for("the aggregated reconciler role", || async {
                let r = roles.get(&role).await.ok()?;
                r.rules.filter(|r| !r.is_empty()).map(|_| ())
            })
            .await;
        }
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = sas
            .create_token_request("gitseal-agent", &Default::default(), &request)
            .await
            .expect("TokenRequest")
            .status
            .expect("token status")
            .token;
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": self.cp.server(), "certificate-authority": self.cp.ca_file()}}],
            "users": [{"name": "gitseal-agent", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "gitseal-agent"}}],
            "current-context": "test",
        });
        let path = self.work.path().join("agent.kubeconfig");
        std::fs::write(&path, serde_json::to_string(&kubeconfig).expect("json"))
            .expect("kubeconfig");
        path
    }

    /// Starts the agent like [`AgentTest::start_agent`], but with the credentials of
    /// `kubeconfig` (from [`AgentTest::agent_kubeconfig`]), answering the objects of
    /// `watch_namespace`.
    pub fn start_agent_with(
        &self,
        agent: impl FnOnce(&[String]) -> std::process::Command,
        kubeconfig: &std::path::Path,
        watch_namespace: &str,
        extra: &[&str],
    ) -> AgentProcess {
        let setup = AgentSetup {
            kubeconfig,
            agent_namespace: &self.agent_ns,
            watch_namespace,
            dir: self.work.path(),
        };
        AgentProcess::start(agent, setup, extra)
    }

    /// One object of `deploy/rbac.yaml` rewritten for this test (see the module docs).
    fn for_this_test(&self, mut obj: Value) -> Value {
        let ns = self.agent_ns.as_str();
        let suffixed = |name: &str| format!("{name}-{ns}");
        let meta = &mut obj["metadata"];
        if meta.get("namespace").is_some() {
            meta["namespace"] = json!(ns);
        } else if let Some(n) = meta["name"].as_str().map(&suffixed) {
            meta["name"] = json!(n);
        }
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut)
            && labels.contains_key(RECONCILER_LABEL)
        {
            labels.insert(RECONCILER_LABEL.into(), json!(ns));
        }
        if let Some(selectors) = obj
            .pointer_mut("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array_mut)
        {
            for s in selectors {
                s["matchLabels"] = json!({ RECONCILER_LABEL: ns });
            }
        }
        if obj["kind"] == "ClusterRoleBinding"
            && let Some(n) = obj["roleRef"]["name"].as_str().map(&suffixed)
        {
            obj["roleRef"]["name"] = json!(n);
        }
        if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects {
                if s["namespace"] == DEPLOY_NAMESPACE {
                    s["namespace"] = json!(ns);
                }
            }
        }
        obj
    }
}
