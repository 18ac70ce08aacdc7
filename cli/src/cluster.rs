//! The cluster, as the CLI's cluster commands see it (`gitseal keys fetch | list | rotate |
//! retire | backup | restore`, `gitseal reseal --cluster`, `gitseal get | reconcile | diff |
//! version`): a client built with the caller's own credentials (kubeconfig, like kubectl), so
//! Kubernetes RBAC decides who may do what, and what the agent publishes there.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use gitseal_api::PublicKeyInfo;
use gitseal_api::keys::{UsageEntry, read_public_keys, read_usage};
use gitseal_api::names::{PUBLIC_KEYS_CONFIGMAP, USAGE_CONFIGMAP};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::args::{ClusterArgs, KubeArgs};
use crate::io::shown;

/// A runtime for one command's API calls (the CLI is otherwise synchronous).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A client for the cluster named by `--kubeconfig` / `--context`, else found like kubectl.
pub async fn client(c: &ClusterArgs) -> Result<kube::Client> {
    kube_client(&c.kube).await
}

/// A client for the cluster named by `--kubeconfig` / `--context`, else found like kubectl.
pub async fn kube_client(c: &KubeArgs) -> Result<kube::Client> {
    kube::Client::try_from(kube_config(c).await?).context("cannot build a Kubernetes client")
}

/// Like [`client`], impersonating `user` (`Impersonate-User`; no groups: the API server
/// adds a ServiceAccount's own).
pub async fn impersonating_client(c: &ClusterArgs, user: &str) -> Result<kube::Client> {
    let mut config = kube_config(&c.kube).await?;
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = None;
    kube::Client::try_from(config).context("cannot build a Kubernetes client")
}

/// Whether the caller may impersonate ServiceAccount `namespace/name` (a
/// SelfSubjectAccessReview; false when the review itself fails).
pub async fn may_impersonate(client: &kube::Client, namespace: &str, name: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("impersonate".into()),
                resource: Some("serviceaccounts".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    api.create(&kube::api::PostParams::default(), &review)
        .await
        .ok()
        .and_then(|r| r.status)
        .is_some_and(|s| s.allowed)
}

async fn kube_config(c: &KubeArgs) -> Result<kube::Config> {
    let config = if c.kubeconfig.is_none() && c.context.is_none() {
        kube::Config::infer().await.context(
            "no cluster configuration: set KUBECONFIG, pass --kubeconfig, or run in a cluster",
        )?
    } else {
        let opts = KubeConfigOptions {
            context: c.context.clone(),
            ..Default::default()
        };
        match &c.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .with_context(|| format!("kubeconfig {}", shown(path)))?;
                kube::Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .with_context(|| format!("kubeconfig {}", shown(path)))?
            }
            None => kube::Config::from_kubeconfig(&opts)
                .await
                .context("kubeconfig")?,
        }
    };
    Ok(with_user_agent(config))
}

/// The User-Agent of the CLI's requests: `gitseal/VERSION`, so API server audit logs tell
/// gitseal from kubectl.
pub fn user_agent() -> String {
    format!("gitseal/{}", env!("CARGO_PKG_VERSION"))
}

fn with_user_agent(mut config: kube::Config) -> kube::Config {
    if let Ok(ua) = http::HeaderValue::from_str(&user_agent()) {
        config
            .headers
            .retain(|(name, _)| name != http::header::USER_AGENT);
        config.headers.push((http::header::USER_AGENT, ua));
    }
    config
}

/// An API error worded for the person at the terminal: what was attempted, where, and for a
/// refusal, whom to ask.
pub fn api_error(e: kube::Error, what: &str, ns: &str) -> anyhow::Error {
    match &e {
        kube::Error::Api(s) if s.code == 403 => anyhow::anyhow!(
            "{what} in namespace {ns}: forbidden ({}); ask a cluster admin for access",
            s.message
        ),
        kube::Error::Api(s) => anyhow::anyhow!("{what} in namespace {ns}: {}", s.message),
        _ => anyhow::anyhow!("{what} in namespace {ns}: {e}"),
    }
}

/// `-n`, else the namespace of the kubeconfig context, else `default` (kubectl's rule).
pub fn namespace_or_default(client: &kube::Client, given: Option<&str>) -> String {
    given.map_or_else(|| client.default_namespace().to_owned(), str::to_owned)
}

/// A list or get of a gitseal kind that the API server does not know: the CRDs are not
/// installed.
pub fn kind_missing(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 && s.details.is_none())
}

/// The error for a gitseal kind whose CRD is not installed.
pub fn not_installed(kind: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the cluster has no {kind} kind ({}/{}): gitseal's CRDs are not installed; install them with `kubectl apply --server-side -k deploy/` or `helm install gitseal charts/gitseal -n gitseal-system --create-namespace`",
        gitseal_api::names::GROUP,
        gitseal_api::names::VERSION,
    )
}

/// The public keys ConfigMap and the keys it lists (oldest first).
pub async fn public_keys(
    client: &kube::Client,
    ns: &str,
) -> Result<(ConfigMap, Vec<PublicKeyInfo>)> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api
        .get_opt(PUBLIC_KEYS_CONFIGMAP)
        .await
        .map_err(|e| api_error(e, "reading the public keys", ns))?
        .with_context(|| {
            format!(
                "no published keys in namespace {ns} (ConfigMap {PUBLIC_KEYS_CONFIGMAP}); is gitseal-agent running there? Pass --agent-namespace if it runs elsewhere"
            )
        })?;
    let keys = published_keys(&cm)?;
    Ok((cm, keys))
}

/// The keys the public keys ConfigMap lists (oldest first).
pub fn published_keys(cm: &ConfigMap) -> Result<Vec<PublicKeyInfo>> {
    read_public_keys(cm.data.as_ref())
        .with_context(|| format!("ConfigMap {PUBLIC_KEYS_CONFIGMAP}: unreadable keys.json"))
}

/// Which objects need which key (`None` when the usage ConfigMap cannot be read).
pub async fn usage(client: &kube::Client, ns: &str) -> Option<BTreeMap<String, UsageEntry>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api.get_opt(USAGE_CONFIGMAP).await.ok()?;
    Some(read_usage(cm.and_then(|c| c.data).unwrap_or_default()))
}
