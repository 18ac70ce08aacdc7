//! `gitseal version [--client]`: this binary's version and the cluster's agent's.
//!
//! The agent's version is read from its Deployment (`gitseal-agent` in the agent namespace,
//! as `deploy/` and the Helm chart name it), the way `flux version` reads its controllers: the
//! tag of the agent container's image, or, for an image pinned by digest alone, the
//! Deployment's `app.kubernetes.io/version` label. The output says which, and how many
//! replicas run that spec (pods of an older spec may still be rolling out). Needs `get` on
//! Deployments in the agent namespace.

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde::Serialize;

use crate::args::{TableFormat, VersionArgs};
use crate::cluster::{api_error, client};
use crate::table::{render, structured};

/// The agent's Deployment, as `deploy/deployment.yaml` and the chart name it.
const AGENT_DEPLOYMENT: &str = "gitseal-agent";
/// Its container that runs the agent.
const AGENT_CONTAINER: &str = "agent";
const VERSION_LABEL: &str = "app.kubernetes.io/version";

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
    /// `None` when neither the image nor the label says.
    version: Option<String>,
    /// Where `version` comes from: `image tag` or `label app.kubernetes.io/version`.
    from: Option<&'static str>,
    deployment: String,
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
    let api: Api<Deployment> = Api::namespaced(client, ns);
    let Some(d) = api
        .get_opt(AGENT_DEPLOYMENT)
        .await
        .map_err(|e| api_error(e, &format!("reading Deployment {AGENT_DEPLOYMENT}"), ns))?
    else {
        bail!(
            "no Deployment {AGENT_DEPLOYMENT} in namespace {ns}: is gitseal-agent installed there? Pass --agent-namespace if it runs elsewhere (an agent run outside the cluster has no version to read)"
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
        deployment: format!("{ns}/{AGENT_DEPLOYMENT}"),
        image,
        replicas: d.spec.and_then(|s| s.replicas).unwrap_or(1),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
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
        rows.push(vec![
            "agent".to_owned(),
            a.version.clone().unwrap_or_else(|| "unknown".into()),
            format!(
                "Deployment {} ({}: {}; {}/{} replicas updated, {} ready)",
                a.deployment,
                a.from.unwrap_or("no tag, no version label"),
                a.image,
                a.updated_replicas,
                a.replicas,
                a.ready_replicas
            ),
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
