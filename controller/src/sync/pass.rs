//! One reconciliation pass of one source: fetch, render, decrypt, record the inventory,
//! apply, prune, record the inventory again (see [`super::inventory`] for why that order is
//! crash-safe). Each step completes or the pass stops before anything is deleted, and every
//! step that talks to the API server runs under the source's timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use gitseal::Keyring;
use gitseal::manifest::ManifestLimits;
use gitseal_api::InventoryEntry;

use super::apply::{Applier, ApplyError, ApplyMemory, ApplyReport};
use super::git::{Checkout, GitError, GitSource};
use super::inventory::{InventoryError, InventoryStore, union};
use super::object::{Object, crd_scopes, known_cluster_scoped};
use super::open::{DecryptError, open_all, redacted, settle_namespace};
use super::prune::{prune, refuse_empty};
use super::render::{RemoteBases, RenderError, render};
use super::tenancy::{Actor, LiveCheckError, Refused, Tenancy};
use crate::controllers::backoff::{Backoff, Retry, fingerprint};
use crate::keys::usage::Use;

/// Everything one source's pass needs to know.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    /// Namespace and name of the source (labels on every applied object).
    pub namespace: String,
    pub name: String,
    pub source: GitSource,
    pub path: String,
    pub timeout: Duration,
    pub prune: bool,
    pub allow_empty: bool,
    pub allow_plaintext: bool,
    pub target_namespace: Option<String>,
    /// Whether kustomize may fetch remote bases.
    pub remote_bases: RemoteBases,
    /// What a render may read (the agent's flags; the defaults otherwise).
    pub limits: ManifestLimits,
    /// Who the pass acts as, and so what it may write.
    pub tenancy: Tenancy,
}

/// What a source remembers between passes.
#[derive(Debug, Default)]
pub struct SyncState {
    pub memory: ApplyMemory,
    /// Every object this source may have applied, as recorded in its inventory store:
    /// what the last successful pass applied, plus what a failed or interrupted pass may
    /// have applied and no later pass pruned yet.
    pub inventory: Vec<InventoryEntry>,
    pub last_applied_revision: Option<String>,
    /// The pass-shaping parts of the spec the last successful pass ran with.
    pub last_spec: Option<String>,
    /// The fingerprint (revision, spec, keys) of the pass under way, once known.
    pub tried: Option<u64>,
    /// Objects the last pass left to another GitSync: while there are any, every pass renders
    /// and looks again (the other may have let go).
    pub conflicts: usize,
    /// The key ids each SealedSecret of the last successful pass needs (from its decrypt
    /// stage; a pass that decrypts nothing keeps them).
    pub key_uses: Vec<Use>,
    /// Failures in a row that only a change can fix (a new revision, spec or sealing key):
    /// while its backoff lasts, a pass of the same revision stops after the fetch.
    pub retry: Retry,
}

/// The parts of a spec that change what a revision renders to.
fn spec_key(spec: &SyncSpec) -> String {
    format!(
        "{}\0{}\0{:?}\0{}\0{:?}\0{:?}",
        spec.source.url,
        spec.path,
        spec.target_namespace,
        spec.allow_plaintext,
        spec.remote_bases,
        spec.tenancy
    )
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassError {
    #[error("fetch: {0}")]
    Fetch(GitError),
    #[error("render: {0}")]
    Render(RenderError),
    #[error("decrypt: {0}")]
    Decrypt(DecryptError),
    #[error("apply: {0}")]
    Apply(ApplyError),
    /// Not an attempt: this revision failed before with the same spec and keys, and its
    /// backoff is not over.
    #[error(
        "revision {revision} failed before with the same spec and keys; next attempt in {wait:?} unless one of them changes"
    )]
    Held { revision: String, wait: Duration },
    #[error("refused: {0}")]
    Refused(Refused),
    #[error("{0}")]
    Inventory(InventoryError),
}

// The inner message is part of ours; no `source` chain, so it is not printed twice.
macro_rules! from_inner {
    ($($variant:ident($inner:ty)),*) => {$(
        impl From<$inner> for PassError {
            fn from(e: $inner) -> Self {
                PassError::$variant(e)
            }
        }
    )*};
}
from_inner!(
    Fetch(GitError),
    Render(RenderError),
    Decrypt(DecryptError),
    Apply(ApplyError),
    Refused(Refused),
    Inventory(InventoryError)
);

impl From<LiveCheckError> for PassError {
    fn from(e: LiveCheckError) -> Self {
        match e {
            LiveCheckError::Refused(r) => PassError::Refused(r),
            LiveCheckError::Read {
                object,
                message,
                transient,
            } => PassError::Apply(ApplyError::Read {
                object,
                message,
                transient,
            }),
        }
    }
}

impl PassError {
    /// Fixed label for metrics and the status reason.
    pub fn kind(&self) -> &'static str {
        match self {
            PassError::Fetch(e) => e.kind(),
            PassError::Render(e) => e.kind(),
            PassError::Decrypt(e) => e.kind(),
            PassError::Apply(e) => e.kind(),
            PassError::Held { .. } => "held",
            PassError::Refused(e) => e.kind(),
            PassError::Inventory(_) => "inventory",
        }
    }
    /// Whether the same pass may succeed later without any change (the source or the API
    /// server was unreachable, slow or failing): Ready=False without Stalled, retried with
    /// backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            PassError::Fetch(e) => !e.is_refusal(),
            PassError::Apply(e) => e.is_transient(),
            PassError::Inventory(e) => e.is_transient(),
            PassError::Render(_)
            | PassError::Decrypt(_)
            | PassError::Held { .. }
            | PassError::Refused(_) => false,
        }
    }
    /// Whether the GitSync is stuck until something changes (kstatus `Stalled`): everything
    /// that is not transient.
    pub fn stalls(&self) -> bool {
        !self.is_transient()
    }
    /// Whether only a change (of the revision, the spec or the sealing keys) can fix it: the
    /// same revision is then tried again only after a backoff.
    pub fn backs_off(&self) -> bool {
        self.stalls() && !matches!(self, PassError::Held { .. })
    }
    /// The condition reason (kstatus style, CamelCase).
    pub fn reason(&self) -> &'static str {
        match self {
            PassError::Fetch(e) if e.is_refusal() => "SourceRefused",
            PassError::Fetch(_) => "FetchFailed",
            PassError::Render(RenderError::Refused { .. }) => "RenderRefused",
            PassError::Render(_) => "RenderFailed",
            PassError::Decrypt(_) => "DecryptFailed",
            PassError::Apply(ApplyError::EmptyRefused(_)) => "PruneRefused",
            PassError::Apply(ApplyError::Prune { .. }) => "PruneFailed",
            PassError::Apply(ApplyError::Timeout { .. }) => "Timeout",
            PassError::Apply(ApplyError::NoCrd { .. }) => "CRDNotFound",
            PassError::Apply(_) => "ApplyFailed",
            PassError::Held { .. } => "BackingOff",
            PassError::Refused(_) => "TenancyRefused",
            PassError::Inventory(_) => "InventoryFailed",
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassOutcome {
    pub revision: String,
    pub report: ApplyReport,
    pub duration: Duration,
}

impl PassOutcome {
    /// Whether the pass changed anything in the cluster.
    pub fn changed(&self) -> bool {
        !self.report.applied.is_empty() || !self.report.pruned.is_empty()
    }
}

/// Fetches and renders, without a cluster. Returns the revision and the objects with
/// settled namespaces (kind scopes from `namespaced`).
async fn fetch_render(
    spec: &SyncSpec,
    cache_dir: &Path,
) -> Result<(Checkout, Vec<Object>), PassError> {
    let checkout = spec.source.fetch(cache_dir).await?;
    let objects = render(
        &checkout.dir,
        &spec.path,
        spec.remote_bases,
        spec.timeout,
        &spec.limits,
    )
    .await?;
    Ok((checkout, objects))
}

/// Runs `f` under the pass timeout; a timeout is an error naming `what`.
async fn within<T, E: Into<PassError>>(
    after: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, PassError> {
    match tokio::time::timeout(after, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(PassError::Apply(ApplyError::Timeout {
            what: what.to_owned(),
            after,
        })),
    }
}

/// Runs one pass against the cluster, recording the inventory in `store`. On error the
/// state keeps what may have been applied, so nothing is pruned by a failed pass and a later
/// pass prunes what it left. A failure only a change can fix holds back later passes of the
/// same revision, spec and keys ([`PassError::Held`]) for a backoff that doubles with each
/// such failure ([`Backoff::PERMANENT`]).
pub async fn run_pass(
    client: &kube::Client,
    spec: &SyncSpec,
    state: &mut SyncState,
    ring: &Keyring,
    cache_dir: &Path,
    concurrency: usize,
    store: &mut impl InventoryStore,
) -> Result<PassOutcome, (Option<String>, PassError)> {
    state.tried = None;
    let result = attempt(client, spec, state, ring, cache_dir, concurrency, store).await;
    match (&result, state.tried.take()) {
        (Ok(_), _) => state.retry.succeeded(),
        (Err((_, e)), Some(fp)) if e.backs_off() => {
            state.retry.failed(fp, Backoff::PERMANENT);
        }
        _ => {}
    }
    result
}

/// One pass; `state.tried` gets the fingerprint of what it depends on once the revision is
/// known.
async fn attempt(
    client: &kube::Client,
    spec: &SyncSpec,
    state: &mut SyncState,
    ring: &Keyring,
    cache_dir: &Path,
    concurrency: usize,
    store: &mut impl InventoryStore,
) -> Result<PassOutcome, (Option<String>, PassError)> {
    let start = Instant::now();
    let timeout = spec.timeout;
    let checkout = spec
        .source
        .fetch(cache_dir)
        .await
        .map_err(|e| (None, e.into()))?;
    let revision = checkout.revision.clone();
    let fail = |e: PassError| (Some(revision.clone()), e);
    let key = spec_key(spec);
    let keys: Vec<_> = ring.keys().map(|k| k.id()).collect();
    let fp = fingerprint((
        &revision,
        &key,
        spec.timeout,
        spec.prune,
        spec.allow_empty,
        &keys,
    ));
    if let Some(wait) = state.retry.waiting(fp) {
        return Err(fail(PassError::Held {
            revision: revision.clone(),
            wait,
        }));
    }
    state.tried = Some(fp);
    let mut applier = Applier {
        client,
        memory: &mut state.memory,
        concurrency,
        timeout,
        owner: (&spec.namespace, &spec.name),
        list_per_namespace: matches!(spec.tenancy.actor, Actor::ServiceAccount(_)),
    };
    // Same commit, same spec, and every object as it was left: nothing else to do — no
    // render, no decryption, no writes.
    if state.last_applied_revision.as_deref() == Some(revision.as_str())
        && state.last_spec.as_deref() == Some(key.as_str())
        && state.conflicts == 0
        && within(timeout, "the drift check", applier.nothing_drifted())
            .await
            .map_err(fail)?
    {
        let unchanged = applier.remembered();
        return Ok(PassOutcome {
            revision,
            report: ApplyReport {
                unchanged,
                inventory: state.inventory.clone(),
                ..Default::default()
            },
            duration: start.elapsed(),
        });
    }
    let mut objects = render(
        &checkout.dir,
        &spec.path,
        spec.remote_bases,
        spec.timeout,
        &spec.limits,
    )
    .await
    .map_err(|e| fail(e.into()))?;
    // Kinds defined by CRDs of this same pass are not known yet: treat them by the CRD's
    // own scope.
    let crd_scopes = crd_scopes(&objects);
    let fallback = spec.tenancy.fallback_namespace(&spec.namespace);
    let settle = async {
        for o in &mut objects {
            let key = (o.group_version().0.to_owned(), o.kind().to_owned());
            // SealedSecrets become Secrets and are never applied as such: no discovery needed.
            let namespaced = match crd_scopes.get(&key) {
                _ if o.is_sealed_secret() => true,
                Some(n) => *n,
                None => applier.is_namespaced(o).await?,
            };
            settle_namespace(o, namespaced, spec.target_namespace.as_deref(), fallback);
        }
        Ok::<(), ApplyError>(())
    };
    within(timeout, "discovery", settle).await.map_err(fail)?;
    let (objects, key_uses) = open_off_runtime(objects, ring, spec.allow_plaintext)
        .await
        .map_err(|e| fail(e.into()))?;
    // Who may write what, on exactly what would be applied, before anything is.
    let source = (spec.namespace.as_str(), spec.name.as_str());
    spec.tenancy
        .check(source, spec.target_namespace.as_deref(), &objects)
        .map_err(|e| fail(e.into()))?;
    within(
        timeout,
        "reading live Secrets of the agent's namespace",
        spec.tenancy.check_live_keys(client, source, &objects),
    )
    .await
    .map_err(fail)?;
    if spec.prune {
        refuse_empty(objects.len(), &state.inventory, spec.allow_empty)
            .map_err(|e| fail(e.into()))?;
    }
    // Record every object this pass may create before creating any.
    let recorded = union(&state.inventory, &Applier::entries(&objects));
    if recorded != state.inventory {
        within(timeout, "recording the inventory", store.save(&recorded))
            .await
            .map_err(fail)?;
        state.inventory = recorded.clone();
    }
    let mut report = applier
        .apply_all(objects)
        .await
        .map_err(|e| fail(e.into()))?;
    if spec.prune {
        report.pruned = within(
            timeout,
            "prune",
            prune(
                client,
                applier.owner,
                &spec.tenancy,
                &recorded,
                &report.inventory,
            ),
        )
        .await
        .map_err(fail)?;
    }
    if report.inventory != state.inventory {
        within(
            timeout,
            "recording the inventory",
            store.save(&report.inventory),
        )
        .await
        .map_err(fail)?;
        state.inventory = report.inventory.clone();
    }
    state.key_uses = key_uses;
    state.conflicts = report.conflicts.len();
    state.last_applied_revision = Some(revision.clone());
    state.last_spec = Some(key);
    Ok(PassOutcome {
        revision,
        report,
        duration: start.elapsed(),
    })
}

/// The decrypt stage on tokio's blocking pool: opening values is CPU work (spread over
/// rayon's pool by [`open_all`]), and the runtime's threads keep serving other passes,
/// watches and HTTP meanwhile.
async fn open_off_runtime(
    objects: Vec<Object>,
    ring: &Keyring,
    allow_plaintext: bool,
) -> Result<(Vec<Object>, Vec<Use>), DecryptError> {
    let ring = ring.clone();
    tokio::task::spawn_blocking(move || open_all(objects, &ring, allow_plaintext))
        .await
        .unwrap_or_else(|e| Err(DecryptError::Task(e.to_string())))
}

/// `--plan`: fetch, render and decrypt without a cluster, and describe what a pass would
/// apply, Secret values redacted.
pub async fn plan(
    spec: &SyncSpec,
    ring: &Keyring,
    cache_dir: &Path,
) -> Result<(String, Vec<serde_json::Value>), PassError> {
    let (checkout, mut objects) = fetch_render(spec, cache_dir).await?;
    let fallback = spec.tenancy.fallback_namespace(&spec.namespace);
    for o in &mut objects {
        let namespaced = !known_cluster_scoped(o.group_version().0, o.kind());
        settle_namespace(o, namespaced, spec.target_namespace.as_deref(), fallback);
    }
    let (objects, _) = open_off_runtime(objects, ring, spec.allow_plaintext).await?;
    spec.tenancy.check(
        (&spec.namespace, &spec.name),
        spec.target_namespace.as_deref(),
        &objects,
    )?;
    let values = objects.iter().map(redacted).collect();
    Ok((checkout.revision, values))
}
