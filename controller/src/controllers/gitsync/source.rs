//! From a `GitSync` object to what a pass needs ([`SyncSpec`]): durations parsed, the ref
//! checked, and the credentials named by `secretRef` read at pass time (rotated credentials
//! apply on the next pass).

use std::time::Duration;

use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use secrecy::SecretString;

use gitseal_api::names::{GIT_CREDENTIALS_HOSTS_ANNOTATION, GIT_CREDENTIALS_LABEL};
use zeroize::Zeroize as _;

use crate::kube_error::kube_message;
use crate::sync::git::{GitAuth, GitRef, GitSource, host_and_port, split_host_port};
use crate::sync::pass::SyncSpec;
use crate::sync::render::RemoteBases;

use super::{SourcePolicy, TenancyPolicy};
use crate::sync::tenancy::{Actor, Tenancy};

fn duration(s: Option<&str>, default: Duration, field: &str) -> Result<Duration, String> {
    match s {
        None | Some("") => Ok(default),
        Some(s) => humantime::parse_duration(s).map_err(|e| format!("spec.{field} `{s}`: {e}")),
    }
}

/// The credentials named by `secretRef`, read at pass time (rotated credentials apply on
/// the next pass). Whoever writes a GitSync names the Secret and the URL, so a Secret is used
/// only when it says it is git credentials (label) for this URL's host (optional annotation):
/// otherwise any Secret of the namespace could be posted to any server.
async fn auth(client: &kube::Client, ns: &str, gs: &GitSync) -> Result<GitAuth, String> {
    let Some(r) = &gs.spec.secret_ref else {
        return Ok(GitAuth::None);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut s = api
        .get(&r.name)
        .await
        .map_err(|e| format!("secretRef {}: {}", r.name, kube_message(&e)))?;
    if let Err(why) = opted_in(&s, ns, &gs.spec.url) {
        if let Some(data) = s.data.as_mut() {
            data.values_mut().for_each(|v| v.0.zeroize());
        }
        return Err(format!("secretRef {}: {why}", r.name));
    }
    let mut data = s.data.take().unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| SecretString::from(String::from_utf8_lossy(&v.0).into_owned()))
    };
    let auth = if let Some(identity) = text("identity") {
        match data.get("known_hosts") {
            Some(v) => GitAuth::Ssh {
                identity,
                known_hosts: String::from_utf8_lossy(&v.0).into_owned(),
            },
            None => Err(format!(
                "secretRef {}: ssh `identity` needs `known_hosts`",
                r.name
            ))?,
        }
    } else if let Some(token) = text("bearerToken") {
        GitAuth::Token(token)
    } else if let (Some(u), Some(password)) = (text("username"), text("password")) {
        use secrecy::ExposeSecret;
        GitAuth::Basic {
            username: u.expose_secret().to_owned(),
            password,
        }
    } else {
        data.values_mut().for_each(|v| v.0.zeroize());
        return Err(format!(
            "secretRef {}: expected `username`+`password`, `bearerToken`, or `identity`+`known_hosts`",
            r.name
        ));
    };
    data.values_mut().for_each(|v| v.0.zeroize());
    Ok(auth)
}

/// Whether the Secret `s` opted in as git credentials for `url`: labelled
/// [`GIT_CREDENTIALS_LABEL`]` = "true"`, and, when it lists hosts in
/// [`GIT_CREDENTIALS_HOSTS_ANNOTATION`], `url`'s host among them.
fn opted_in(s: &Secret, ns: &str, url: &str) -> Result<(), String> {
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let labelled = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(GIT_CREDENTIALS_LABEL))
        .is_some_and(|v| v == "true");
    if !labelled {
        return Err(format!(
            "Secret {ns}/{name} is not labelled {GIT_CREDENTIALS_LABEL}=true, so it is never sent anywhere; if it holds credentials for this repository, label it (kubectl label secret -n {ns} {name} {GIT_CREDENTIALS_LABEL}=true) and, to bind it to its server, list the hosts in the annotation {GIT_CREDENTIALS_HOSTS_ANNOTATION}"
        ));
    }
    let Some(hosts) = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GIT_CREDENTIALS_HOSTS_ANNOTATION))
    else {
        return Ok(());
    };
    let Some((host, port)) = host_and_port(url) else {
        return Err(format!(
            "Secret {ns}/{name} may be sent only to the hosts in {GIT_CREDENTIALS_HOSTS_ANNOTATION}, and spec.url names none"
        ));
    };
    let allowed = hosts
        .split([',', ' ', '\n', '\t'])
        .filter(|h| !h.is_empty())
        .filter_map(split_host_port)
        .any(|(h, p)| h.eq_ignore_ascii_case(&host) && p.is_none_or(|p| p == port));
    if allowed {
        Ok(())
    } else {
        let shown: String = hosts
            .chars()
            .take(200)
            .flat_map(char::escape_debug)
            .collect();
        Err(format!(
            "Secret {ns}/{name} may be sent only to `{shown}` ({GIT_CREDENTIALS_HOSTS_ANNOTATION}), and spec.url names {host}:{port}"
        ))
    }
}

fn git_ref(gs: &GitSync) -> Result<GitRef, String> {
    let r = gs.spec.git_ref.clone().unwrap_or_default();
    match (r.branch, r.tag, r.commit) {
        (None, None, None) => Ok(GitRef::Branch("main".into())),
        (Some(b), None, None) => Ok(GitRef::Branch(b)),
        (None, Some(t), None) => Ok(GitRef::Tag(t)),
        (None, None, Some(c)) => Ok(GitRef::Commit(c)),
        _ => Err("spec.ref: give exactly one of branch, tag, commit".into()),
    }
}

/// Who the passes of `gs` (in namespace `ns`) act as: the ServiceAccount it names, else the
/// agent's default one (outside the agent's namespace), else the agent confined to `ns`
/// (outside the agent's namespace) or the agent itself (inside it).
fn tenancy(gs: &GitSync, ns: &str, policy: &TenancyPolicy) -> Result<Tenancy, String> {
    let named = gs
        .spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty());
    if let Some(sa) = named {
        gitseal::scope::validate_name(sa).map_err(|e| format!("spec.serviceAccountName: {e}"))?;
    }
    let outside = ns != policy.agent_namespace;
    let sa = named.or(policy
        .default_service_account
        .as_deref()
        .filter(|_| outside));
    let actor = match sa {
        Some(sa) => Actor::ServiceAccount(sa.to_owned()),
        None if outside => Actor::OwnNamespace,
        None => Actor::Agent,
    };
    Ok(Tenancy {
        agent_namespace: policy.agent_namespace.clone(),
        actor,
    })
}

/// The pass settings of `gs` and its interval; an error is the message for its status.
pub async fn sync_spec(
    client: &kube::Client,
    gs: &GitSync,
    policy: &SourcePolicy,
    tenancy_policy: &TenancyPolicy,
) -> Result<(SyncSpec, Duration), String> {
    let ns = gs.namespace().unwrap_or_default();
    let tenancy = tenancy(gs, &ns, tenancy_policy)?;
    let interval = duration(
        gs.spec.interval.as_deref(),
        Duration::from_secs(60),
        "interval",
    )?;
    let timeout = duration(
        gs.spec.timeout.as_deref(),
        Duration::from_secs(120),
        "timeout",
    )?;
    let source = GitSource {
        url: gs.spec.url.clone(),
        reference: git_ref(gs)?,
        auth: auth(client, &ns, gs).await?,
        timeout,
        allow_local: policy.allow_local_sources,
    };
    Ok((
        SyncSpec {
            namespace: ns,
            name: gs.name_any(),
            source,
            path: gs.spec.path.clone().unwrap_or_default(),
            timeout,
            prune: gs.spec.prune,
            allow_empty: gs.spec.allow_empty,
            allow_plaintext: gs.spec.allow_plaintext_secrets,
            target_namespace: gs.spec.target_namespace.clone(),
            remote_bases: RemoteBases {
                agent: policy.allow_remote_bases,
                gitsync: Some(gs.spec.allow_remote_bases),
            },
            limits: policy.limits,
            tenancy,
        },
        interval,
    ))
}
