//! From a `GitSync` object to what a pass needs ([`SyncSpec`]): durations parsed, the ref
//! checked, and the credentials named by `secretRef` read at pass time (rotated credentials
//! apply on the next pass).

use std::time::Duration;

use gitseal_api::GitSync;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use secrecy::SecretString;

use crate::kube_error::kube_message;
use crate::sync::git::{GitAuth, GitRef, GitSource};
use crate::sync::pass::SyncSpec;

use super::SourcePolicy;

fn duration(s: Option<&str>, default: Duration, field: &str) -> Result<Duration, String> {
    match s {
        None | Some("") => Ok(default),
        Some(s) => humantime::parse_duration(s).map_err(|e| format!("spec.{field} `{s}`: {e}")),
    }
}

/// The credentials named by `secretRef`, read at pass time (rotated credentials apply on
/// the next pass).
async fn auth(client: &kube::Client, ns: &str, gs: &GitSync) -> Result<GitAuth, String> {
    let Some(r) = &gs.spec.secret_ref else {
        return Ok(GitAuth::None);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = api
        .get(&r.name)
        .await
        .map_err(|e| format!("secretRef {}: {}", r.name, kube_message(&e)))?;
    let mut data = s.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| SecretString::from(String::from_utf8_lossy(&v.0).into_owned()))
    };
    let auth = if let Some(identity) = text("identity") {
        let known_hosts = data
            .get("known_hosts")
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| format!("secretRef {}: ssh `identity` needs `known_hosts`", r.name))?;
        GitAuth::Ssh {
            identity,
            known_hosts,
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
        return Err(format!(
            "secretRef {}: expected `username`+`password`, `bearerToken`, or `identity`+`known_hosts`",
            r.name
        ));
    };
    use zeroize::Zeroize;
    data.values_mut().for_each(|v| v.0.zeroize());
    Ok(auth)
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

/// The pass settings of `gs` and its interval; an error is the message for its status.
pub async fn sync_spec(
    client: &kube::Client,
    gs: &GitSync,
    policy: &SourcePolicy,
) -> Result<(SyncSpec, Duration), String> {
    let ns = gs.namespace().unwrap_or_default();
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
        },
        interval,
    ))
}
