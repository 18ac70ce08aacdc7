//! `gitseal version [--client]`: this binary's version and the version of the agent that runs.
//!
//! The running agent's version comes from the annotation `gitseal.dev/agent-version` that the
//! leading agent writes on the public-keys ConfigMap (`gitseal-public-keys` in the agent
//! namespace): every authenticated user may read that ConfigMap (`deploy/rbac.yaml`), so no
//! new RBAC is needed, and it says what runs, not what should. Whoever may edit that ConfigMap
//! could forge it until the leader's next write of it (docs/SECURITY.md).
//!
//! When no agent has written it (none runs yet, or one older than the annotation), the version
//! is read from the agent's Deployment (`gitseal-agent`, as `deploy/` and the Helm chart name
//! it), the way `flux version` reads its controllers: the tag of the agent container's image,
//! or, for an image pinned by digest alone, the Deployment's `app.kubernetes.io/version`
//! label; with how many replicas run that spec. The output says which source it used. The
//! Deployment needs `get` on Deployments in the agent namespace.

use anyhow::{Result, bail};
use gitseal_api::names::{AGENT_VERSION_ANNOTATION, PUBLIC_KEYS_CONFIGMAP};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde::Serialize;

use crate::args::{TableFormat, VersionArgs};
use crate::cluster::{api_error, client};
use crate::table::{clipped, render, structured};

/// The agent's Deployment, as `deploy/deployment.yaml` and the chart name it.
const AGENT_DEPLOYMENT: &str = "gitseal-agent";
/// Its container that runs the agent.
const AGENT_CONTAINER: &str = "agent";
const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// A version read from the cluster is shown cut to this many characters (it is whatever
/// whoever could edit the ConfigMap wrote).
const MAX_VERSION: usize = 64;
/// `from` of a version the running agent published.
const FROM_ANNOTATION: &str = "annotation gitseal.dev/agent-version";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client: Client,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<Agent>,
}

#[derive(Debug, Serialize)]
struct Client {
    version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Agent {
    /// `None` when neither the annotation, the image nor the label says.
    version: Option<String>,
    /// Where `version` comes from: `annotation gitseal.dev/agent-version` (the running
    /// agent), `image tag` or `label app.kubernetes.io/version` (the Deployment).
    from: Option<&'static str>,
    /// The ConfigMap the running agent's version was read from, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_map: Option<String>,
    /// Why the Deployment was read instead, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment: Option<DeploymentInfo>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentInfo {
    name: String,
    image: String,
    replicas: i32,
    updated_replicas: i32,
    ready_replicas: i32,
}

pub async fn run(args: VersionArgs) -> Result<()> {
    let client_version = Client {
        version: env!("CARGO_PKG_VERSION"),
    };
    if args.client {
        let v = Versions {
            client: client_version,
            agent: None,
        };
        return print(&v, args.output);
    }
    // The client's version is shown even when the agent's cannot be read.
    let agent = agent(&args).await;
    let v = Versions {
        client: client_version,
        agent: agent.as_ref().ok().cloned(),
    };
    print(&v, args.output)?;
    agent.map(|_| ())
}

async fn agent(args: &VersionArgs) -> Result<Agent> {
    let ns = &args.cluster.agent_namespace;
    let client = client(&args.cluster).await?;
    let cm_name = format!("{ns}/{PUBLIC_KEYS_CONFIGMAP}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    // Absent or unreadable: say why, and read the Deployment instead.
    let reason = match cms.get_opt(PUBLIC_KEYS_CONFIGMAP).await {
        Ok(Some(cm)) => match cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(AGENT_VERSION_ANNOTATION))
        {
            Some(v) => {
                return Ok(Agent {
                    version: Some(clipped(v, MAX_VERSION)),
                    from: Some(FROM_ANNOTATION),
                    config_map: Some(cm_name),
                    fallback_reason: None,
                    deployment: None,
                });
            }
            None => format!(
                "no running agent has published its version: ConfigMap {cm_name} has no annotation {AGENT_VERSION_ANNOTATION}"
            ),
        },
        Ok(None) => format!("no running agent has published its version: no ConfigMap {cm_name}"),
        Err(kube::Error::Api(s)) if s.code == 403 => format!(
            "ConfigMap {cm_name} is not readable to you (forbidden), so the running agent's version is unknown"
        ),
        Err(e) => {
            return Err(api_error(
                e,
                &format!("reading ConfigMap {PUBLIC_KEYS_CONFIGMAP}"),
                ns,
            ));
        }
    };
    let api: Api<Deployment> = Api::namespaced(client, ns);
    let Some(d) = api.get_opt(AGENT_DEPLOYMENT).await.map_err(|e| {
        api_error(
            e,
            &format!("{reason}; reading Deployment {AGENT_DEPLOYMENT}"),
            ns,
        )
    })?
    else {
        bail!(
            "{reason}, and there is no Deployment {AGENT_DEPLOYMENT} in namespace {ns}: is gitseal-agent installed and running there? Pass --agent-namespace if it runs elsewhere"
        );
    };
    let containers = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    let image = containers
        .iter()
        .find(|c| c.name == AGENT_CONTAINER)
        .or(containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let label = d
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(VERSION_LABEL))
        .cloned();
    let (version, from) = match (image_tag(&image), label) {
        (Some(tag), _) => (Some(tag.to_owned()), Some("image tag")),
        (None, Some(l)) => (Some(l), Some("label app.kubernetes.io/version")),
        (None, None) => (None, None),
    };
    let status = d.status.unwrap_or_default();
    Ok(Agent {
        version,
        from,
        config_map: None,
        fallback_reason: Some(reason),
        deployment: Some(DeploymentInfo {
            name: format!("{ns}/{AGENT_DEPLOYMENT}"),
            image,
            replicas: d.spec.and_then(|s| s.replicas).unwrap_or(1),
            updated_replicas: status.updated_replicas.unwrap_or(0),
            ready_replicas: status.ready_replicas.unwrap_or(0),
        }),
    })
}

/// The tag of an image reference (`repo:tag`, `repo:tag@sha256:…`), not a registry's port.
fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

fn print(v: &Versions, format: TableFormat) -> Result<()> {
    if format != TableFormat::Table {
        print!("{}", structured(v, format)?);
        return Ok(());
    }
    let mut rows = vec![vec![
        "client".to_owned(),
        v.client.version.to_owned(),
        "this gitseal binary".to_owned(),
    ]];
    if let Some(a) = &v.agent {
        let from = match (&a.config_map, &a.deployment) {
            (Some(cm), _) => format!(
                "running agent (ConfigMap {cm}, annotation {AGENT_VERSION_ANNOTATION}, written by the leader)"
            ),
            (None, Some(d)) => format!(
                "Deployment {} ({}: {}; {}/{} replicas updated, {} ready) — {}",
                d.name,
                a.from.unwrap_or("no tag, no version label"),
                d.image,
                d.updated_replicas,
                d.replicas,
                d.ready_replicas,
                a.fallback_reason.as_deref().unwrap_or_default(),
            ),
            (None, None) => String::new(),
        };
        rows.push(vec![
            "agent".to_owned(),
            a.version.clone().unwrap_or_else(|| "unknown".into()),
            from,
        ]);
    }
    print!("{}", render(&["COMPONENT", "VERSION", "FROM"], &rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn tags_of_image_references() {
        assert_eq!(
            image_tag("ghcr.io/gitseal/gitseal-agent:0.1.0"),
            Some("0.1.0")
        );
        assert_eq!(image_tag("registry:5000/gitseal-agent:1.2"), Some("1.2"));
        assert_eq!(image_tag("registry:5000/gitseal-agent"), None);
        assert_eq!(
            image_tag("ghcr.io/gitseal/gitseal-agent:0.2.0@sha256:abcd"),
            Some("0.2.0")
        );
        assert_eq!(image_tag("ghcr.io/gitseal/gitseal-agent@sha256:abcd"), None);
        assert_eq!(image_tag(""), None);
    }
}
