//! From a `GitSync` object to what a pass needs ([`SyncSpec`]): durations parsed, the ref
//! checked, and the credentials named by `secretRef` read at pass time (rotated credentials
//! apply on the next pass).

use std::time::{Duration, Instant};

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
pub fn tenancy(gs: &GitSync, ns: &str, policy: &TenancyPolicy) -> Result<Tenancy, String> {
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

/// The pass timeout of `gs` (`spec.timeout`, default 2 min; an invalid value is reported by
/// [`sync_spec`], meanwhile the default bounds the calls around it).
pub fn timeout(gs: &GitSync) -> Duration {
    duration(
        gs.spec.timeout.as_deref(),
        Duration::from_secs(120),
        "timeout",
    )
    .unwrap_or(Duration::from_secs(120))
}

/// When a GitSync's next pass is due, and what it last answered, so that a reconcile woken
/// by anything else (our own status write, a label change) runs no pass.
#[derive(Debug, Default)]
pub struct Due {
    /// No pass has run yet in this leadership.
    started: bool,
    at: Option<Instant>,
    generation: Option<i64>,
    requested: Option<String>,
    api_back: u64,
    failures: u32,
    /// When a request last cleared the failure backoff.
    bypassed: Option<Instant>,
}

/// How often requests may clear the failure backoff of a GitSync: the first delay of that
/// backoff ([`crate::controllers::backoff::Backoff::PERMANENT`]), so however many requests
/// come (a webhook replayed under new delivery ids, several Receivers), a revision that
/// fails for good is attempted at most once per 5 s, and each request within 5 s.
pub const REQUEST_SPACING: Duration = crate::controllers::backoff::Backoff::PERMANENT.first;

/// First retry after a transient failure; doubled per failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Due {
    /// `None` when a pass is due now; else how long until it is.
    pub fn not_yet(
        &self,
        generation: Option<i64>,
        requested: Option<&str>,
        api_back: u64,
    ) -> Option<Duration> {
        if !self.started
            || generation != self.generation
            || requested != self.requested.as_deref()
            || api_back != self.api_back
        {
            return None;
        }
        let wait = self.at?.saturating_duration_since(Instant::now());
        (!wait.is_zero()).then_some(wait)
    }

    /// Whether `requested` (the `reconcile.gitseal.dev/requestedAt` annotation) is a new
    /// request since the last pass of this leadership: someone (a push webhook, `kubectl
    /// annotate`) asked for an attempt now, which no backoff holds back.
    pub fn newly_requested(&self, requested: Option<&str>) -> bool {
        self.started && requested.is_some() && requested != self.requested.as_deref()
    }

    /// A new request may clear the failure backoff now (`Ok`), or only after the returned
    /// wait: requests are honoured at most once per [`REQUEST_SPACING`].
    pub fn admit_request(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(at) = self.bypassed {
            let next = at + REQUEST_SPACING;
            if now < next {
                return Err(next - now);
            }
        }
        self.bypassed = Some(now);
        Ok(())
    }

    fn answered(&mut self, generation: Option<i64>, requested: Option<String>, api_back: u64) {
        self.started = true;
        self.generation = generation;
        self.requested = requested;
        self.api_back = api_back;
    }

    /// A pass ended (successfully, or with a failure only a change can fix): the next one
    /// after `interval`.
    pub fn done(
        &mut self,
        generation: Option<i64>,
        requested: Option<String>,
        api_back: u64,
        interval: Duration,
    ) {
        self.answered(generation, requested, api_back);
        self.failures = 0;
        self.at = Some(Instant::now() + interval);
    }

    /// A pass failed in a way that may pass as is later: the next one after a backoff,
    /// which it returns.
    pub fn failed(
        &mut self,
        generation: Option<i64>,
        requested: Option<String>,
        api_back: u64,
    ) -> Duration {
        self.answered(generation, requested, api_back);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        self.at = Some(Instant::now() + wait);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_reasons_start_a_pass_early() {
        let mut due = Due::default();
        assert_eq!(due.not_yet(Some(1), None, 0), None, "first pass");
        due.done(Some(1), None, 0, Duration::from_secs(60));
        assert!(due.not_yet(Some(1), None, 0).is_some(), "a status write");
        assert_eq!(due.not_yet(Some(2), None, 0), None, "spec changed");
        assert_eq!(due.not_yet(Some(1), Some("now"), 0), None, "requested");
        assert_eq!(due.not_yet(Some(1), None, 1), None, "API server back");
        due.done(Some(1), Some("now".into()), 0, Duration::ZERO);
        assert_eq!(
            due.not_yet(Some(1), Some("now"), 0),
            None,
            "interval passed"
        );
    }

    #[test]
    fn a_new_request_is_told_apart_from_one_already_answered() {
        let mut due = Due::default();
        assert!(
            !due.newly_requested(Some("a")),
            "no pass yet: nothing to bypass"
        );
        due.done(Some(1), Some("a".into()), 0, Duration::from_secs(60));
        assert!(!due.newly_requested(Some("a")), "answered already");
        assert!(!due.newly_requested(None), "annotation removed");
        assert!(due.newly_requested(Some("b")), "a new value");
        due.failed(Some(1), Some("b".into()), 0);
        assert!(!due.newly_requested(Some("b")), "answered by a failed pass");
    }

    #[test]
    fn requests_clear_the_backoff_at_most_once_per_spacing() {
        let mut due = Due::default();
        let t0 = Instant::now();
        assert_eq!(due.admit_request(t0), Ok(()));
        let wait = due.admit_request(t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, REQUEST_SPACING - Duration::from_secs(1));
        assert_eq!(due.admit_request(t0 + REQUEST_SPACING), Ok(()));
    }

    #[test]
    fn transient_failures_back_off_exponentially_up_to_a_minute() {
        let mut due = Due::default();
        let waits: Vec<u64> = (0..9)
            .map(|_| due.failed(None, None, 0).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        due.done(None, None, 0, Duration::from_secs(5));
        assert_eq!(due.failed(None, None, 0).as_secs(), 1, "reset by a success");
    }
}
