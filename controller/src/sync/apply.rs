//! Applying objects with server-side apply (field manager `gitseal-agent`), staged (CRDs and
//! Namespaces first, CRDs waited for until Established) and with bounded parallelism; only
//! objects whose desired hash or live fingerprint changed are sent again (see [`super::drift`]).
//! Pruning is [`super::prune`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use gitseal_api::InventoryEntry;
use gitseal_api::names::{AGENT_FIELD_MANAGER, SYNC_NAME_LABEL, SYNC_NAMESPACE_LABEL};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{GroupVersionKind, ObjectMeta};
use kube::discovery::{ApiCapabilities, ApiResource, Scope as ApiScope};

use super::drift::{Applied, KindKey, fingerprint, hash_of, managed_keys};
use super::object::{Object, ObjectId, set_label};
use crate::kube_error::{is_transient, kube_message};

/// Why an apply or prune failed. Messages name objects, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The API server does not serve the object's group, version or kind: no CRD defines it
    /// (yet). Another source may install it, so a later pass may succeed as is.
    #[error(
        "{object} ({source_file}): no CRD for {kind} ({api_version}) in the cluster — install it first or add dependsOn naming the GitSync that installs it"
    )]
    NoCrd {
        object: String,
        source_file: String,
        kind: String,
        api_version: String,
    },
    #[error("{object} ({source_file}): discovering its kind failed: {message}")]
    UnknownKind {
        object: String,
        source_file: String,
        message: String,
        transient: bool,
    },
    #[error("{object} ({source_file}): apply failed: {message}")]
    Apply {
        object: String,
        source_file: String,
        message: String,
        /// The server failed or was not reached: retrying may succeed as is.
        transient: bool,
    },
    #[error("{what} did not finish within the timeout ({after:?})")]
    Timeout { what: String, after: Duration },
    #[error("CustomResourceDefinition {0} did not become Established in time")]
    CrdNotEstablished(String),
    #[error(
        "refusing to prune all {0} objects: the path rendered to nothing (set allowEmpty to allow it)"
    )]
    EmptyRefused(usize),
    #[error("prune of {object} failed: {message}")]
    Prune {
        object: String,
        message: String,
        transient: bool,
    },
    #[error("listing {kind} failed: {message}")]
    List {
        kind: String,
        message: String,
        transient: bool,
    },
    #[error("reading {object} failed: {message}")]
    Read {
        object: String,
        message: String,
        transient: bool,
    },
}

impl ApplyError {
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::NoCrd { .. } => "no_crd",
            ApplyError::UnknownKind { .. } => "unknown_kind",
            ApplyError::Apply { .. } => "apply",
            ApplyError::Timeout { .. } => "timeout",
            ApplyError::CrdNotEstablished(_) => "crd_not_established",
            ApplyError::EmptyRefused(_) => "empty_refused",
            ApplyError::Prune { .. } => "prune",
            ApplyError::List { .. } => "list",
            ApplyError::Read { .. } => "read",
        }
    }

    /// Whether the same pass may succeed later as is (server errors, timeouts, connection
    /// failures), as opposed to needing a change.
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Apply { transient, .. }
            | ApplyError::Prune { transient, .. }
            | ApplyError::List { transient, .. }
            | ApplyError::Read { transient, .. }
            | ApplyError::UnknownKind { transient, .. } => *transient,
            ApplyError::Timeout { .. }
            | ApplyError::CrdNotEstablished(_)
            | ApplyError::NoCrd { .. } => true,
            ApplyError::EmptyRefused(_) => false,
        }
    }
}

fn no_crd(o: &Object) -> ApplyError {
    ApplyError::NoCrd {
        object: o.describe(),
        source_file: o.source.clone(),
        kind: o.kind().to_owned(),
        api_version: o.api_version().to_owned(),
    }
}

/// A kind as discovery describes it; shared by every object of the kind (a Deployment's
/// capabilities, with its subresources, are a few hundred bytes: not to be copied per object).
type Resource = Arc<(ApiResource, ApiCapabilities)>;

/// Per-source memory between passes: discovery results and what was applied.
#[derive(Default)]
pub struct ApplyMemory {
    resources: HashMap<KindKey, Resource>,
    applied: HashMap<ObjectId, Applied>,
}

impl std::fmt::Debug for ApplyMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyMemory")
            .field("kinds", &self.resources.len())
            .field("objects", &self.applied.len())
            .finish()
    }
}

/// What one apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: Vec<ObjectId>,
    pub unchanged: usize,
    pub pruned: Vec<ObjectId>,
    /// What this source renders: its inventory. Objects in conflict stay in it (so the
    /// record does not change pass after pass); pruning never touches them while another
    /// GitSync's labels are on them.
    pub inventory: Vec<InventoryEntry>,
    /// Objects not applied because another GitSync manages them.
    pub conflicts: Vec<Conflict>,
}

/// An object this source renders that another GitSync manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub object: ObjectId,
    /// `namespace/name` of the GitSync that manages it.
    pub owner: String,
}

/// Objects per page of a drift check's LIST: the answer for 10,000 objects is never held
/// whole.
const LIST_PAGE: u32 = 500;

/// A metadata LIST answer, as much as a drift check reads of it.
#[derive(serde::Deserialize)]
struct LeanList {
    #[serde(default)]
    metadata: LeanListMeta,
    /// `null` when nothing matches.
    #[serde(default)]
    items: Option<Vec<LeanItem>>,
}

#[derive(serde::Deserialize, Default)]
struct LeanListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(serde::Deserialize)]
struct LeanItem {
    metadata: LeanMeta,
}

/// The metadata fields [`fingerprint`] and the drift check read; serde skips the rest.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl LeanMeta {
    fn into_meta(self) -> ObjectMeta {
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            resource_version: self.resource_version,
            generation: self.generation,
            labels: self.labels,
            annotations: self.annotations,
            ..Default::default()
        }
    }
}

pub struct Applier<'a> {
    pub client: &'a kube::Client,
    pub memory: &'a mut ApplyMemory,
    pub concurrency: usize,
    pub timeout: Duration,
    /// (GitSync namespace, name): written as labels on every object.
    pub owner: (&'a str, &'a str),
    /// List live objects namespace by namespace rather than cluster-wide: the pass acts as
    /// a ServiceAccount, whose RBAC usually grants reads in some namespaces only.
    pub list_per_namespace: bool,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Applier({}/{})", self.owner.0, self.owner.1)
    }
}

impl Applier<'_> {
    async fn resource(&mut self, o: &Object) -> Result<Resource, ApplyError> {
        let (g, v) = o.group_version();
        let key = (g.to_owned(), v.to_owned(), o.kind().to_owned());
        if let Some(r) = self.memory.resources.get(&key) {
            return Ok(r.clone());
        }
        let gvk = GroupVersionKind::gvk(g, v, o.kind());
        let r = kube::discovery::pinned_kind(self.client, &gvk)
            .await
            .map_err(|e| match &e {
                // The group/version is not served (404), or it is and lacks the kind.
                kube::Error::Api(s) if s.code == 404 => no_crd(o),
                kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(_)) => no_crd(o),
                _ => ApplyError::UnknownKind {
                    object: o.describe(),
                    source_file: o.source.clone(),
                    message: kube_message(&e),
                    transient: is_transient(&e),
                },
            })?;
        let r = Arc::new(r);
        self.memory.resources.insert(key, r.clone());
        Ok(r)
    }

    /// Whether a kind is namespaced, from discovery.
    pub async fn is_namespaced(&mut self, o: &Object) -> Result<bool, ApplyError> {
        Ok(matches!(
            self.resource(o).await?.1.scope,
            ApiScope::Namespaced
        ))
    }

    fn selector(&self) -> String {
        format!(
            "{SYNC_NAMESPACE_LABEL}={},{SYNC_NAME_LABEL}={}",
            self.owner.0, self.owner.1
        )
    }

    /// Live metadata of this source's objects of one kind: one LIST call, or one per
    /// namespace in `namespaces` when listing per namespace.
    async fn live_versions(
        &self,
        ar: &ApiResource,
        namespaced: bool,
        namespaces: &BTreeSet<String>,
    ) -> Result<HashMap<(Option<String>, String), ObjectMeta>, ApplyError> {
        let apis: Vec<Api<DynamicObject>> = if self.list_per_namespace && namespaced {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(self.client.clone(), ns, ar))
                .collect()
        } else {
            vec![Api::all_with(self.client.clone(), ar)]
        };
        let mut out = HashMap::new();
        let selector = self.selector();
        for api in apis {
            let mut token: Option<String> = None;
            loop {
                let mut params = ListParams::default().labels(&selector).limit(LIST_PAGE);
                if let Some(t) = &token {
                    params = params.continue_token(t);
                }
                let page = self
                    .lean_list(&api, &params)
                    .await
                    .map_err(|e| ApplyError::List {
                        kind: ar.kind.clone(),
                        message: kube_message(&e),
                        transient: is_transient(&e),
                    })?;
                out.extend(page.items.into_iter().flatten().map(|i| {
                    let m = i.metadata;
                    let key = (m.namespace.clone(), m.name.clone().unwrap_or_default());
                    (key, m.into_meta())
                }));
                token = page.metadata.continue_.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One page of a metadata LIST, parsed for what a drift check reads only: the
    /// `managedFields` of each object (most of the answer) are skipped unparsed.
    async fn lean_list(
        &self,
        api: &Api<DynamicObject>,
        params: &ListParams,
    ) -> Result<LeanList, kube::Error> {
        let request = kube::core::Request::new(api.resource_url())
            .list_metadata(params)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<LeanList>(request).await
    }

    /// Whether every object applied before is still as the agent left it, from one metadata
    /// LIST per kind and nothing else (no render, no decryption). False when nothing is
    /// remembered yet.
    pub async fn nothing_drifted(&self) -> Result<bool, ApplyError> {
        if self.memory.applied.is_empty() {
            return Ok(false);
        }
        let mut by_kind: HashMap<&KindKey, Vec<(&ObjectId, &Applied)>> = HashMap::new();
        for (id, a) in &self.memory.applied {
            by_kind.entry(&a.kind).or_default().push((id, a));
        }
        for (kind, objects) in by_kind {
            let Some((ar, caps)) = self.memory.resources.get(kind).map(|r| &**r) else {
                return Ok(false);
            };
            let namespaces = objects
                .iter()
                .filter_map(|(id, _)| id.namespace.clone())
                .collect();
            let namespaced = matches!(caps.scope, ApiScope::Namespaced);
            let live = self.live_versions(ar, namespaced, &namespaces).await?;
            for (id, a) in objects {
                let same = live
                    .get(&(id.namespace.clone(), id.name.clone()))
                    .is_some_and(|meta| fingerprint(meta, &a.managed) == a.fingerprint);
                if !same {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Number of objects remembered from earlier passes.
    pub fn remembered(&self) -> usize {
        self.memory.applied.len()
    }

    /// The inventory entries of `objects` (what the pass will apply), sorted.
    pub fn entries(objects: &[Object]) -> Vec<InventoryEntry> {
        let mut out: Vec<InventoryEntry> = objects
            .iter()
            .map(|o| InventoryEntry {
                id: o.id().inventory_id(),
                v: o.api_version().to_owned(),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Applies every object, stage by stage, each stage under the pass timeout. Objects
    /// another GitSync manages are left alone and reported. On error, what the stages applied so far stays remembered (the next pass does
    /// not send it again).
    ///
    /// The labels naming this source are set on each object just before it is sent (and
    /// counted in its hash), so they cost memory only for the objects in flight.
    pub async fn apply_all(&mut self, objects: Vec<Object>) -> Result<ApplyReport, ApplyError> {
        let mut report = ApplyReport::default();
        let mut stages: BTreeMap<usize, Vec<Object>> = BTreeMap::new();
        let mut current = HashSet::new();
        report.inventory = Self::entries(&objects);
        for o in objects {
            current.insert(o.id());
            stages.entry(o.stage()).or_default().push(o);
        }
        for (stage, objs) in stages {
            let timeout = self.timeout;
            tokio::time::timeout(timeout, self.apply_stage(objs, &mut report, stage))
                .await
                .map_err(|_| ApplyError::Timeout {
                    what: format!("apply stage {stage}"),
                    after: timeout,
                })??;
        }
        let conflicted: HashSet<String> = report
            .conflicts
            .iter()
            .map(|c| c.object.inventory_id())
            .collect();
        self.memory
            .applied
            .retain(|id, _| current.contains(id) && !conflicted.contains(&id.inventory_id()));
        Ok(report)
    }

    /// Objects of `ar` that carry another GitSync's labels (two LISTs, selected by label on
    /// the server; two per namespace in `namespaces` when listing per namespace, as the
    /// pass's ServiceAccount, where a namespace it may not list is skipped): `(namespace,
    /// name)` → that GitSync's `namespace/name`.
    async fn foreign(
        &self,
        ar: &ApiResource,
        namespaced: bool,
        namespaces: &BTreeSet<String>,
    ) -> Result<HashMap<(Option<String>, String), String>, ApplyError> {
        let (ns, name) = self.owner;
        let apis: Vec<Api<DynamicObject>> = if self.list_per_namespace && namespaced {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(self.client.clone(), ns, ar))
                .collect()
        } else {
            vec![Api::all_with(self.client.clone(), ar)]
        };
        let mut out = HashMap::new();
        let selectors = [
            format!("{SYNC_NAMESPACE_LABEL}!={ns},{SYNC_NAME_LABEL}"),
            format!("{SYNC_NAMESPACE_LABEL}={ns},{SYNC_NAME_LABEL}!={name}"),
        ];
        let queries: Vec<(&Api<DynamicObject>, &String)> = apis
            .iter()
            .flat_map(|a| selectors.iter().map(move |s| (a, s)))
            .collect();
        for (api, selector) in queries {
            let list = match api
                .list_metadata(&ListParams::default().labels(selector))
                .await
            {
                Ok(list) => list,
                // The pass's ServiceAccount may not list this kind here: it cannot see whose
                // objects these are, and its own RBAC decides the apply that follows.
                Err(kube::Error::Api(e)) if e.code == 403 && self.list_per_namespace => continue,
                Err(e) => {
                    return Err(ApplyError::List {
                        kind: ar.kind.clone(),
                        message: kube_message(&e),
                        transient: is_transient(&e),
                    });
                }
            };
            for m in list.items {
                let labels = m.metadata.labels.clone().unwrap_or_default();
                let owner = format!(
                    "{}/{}",
                    labels.get(SYNC_NAMESPACE_LABEL).map_or("", String::as_str),
                    labels.get(SYNC_NAME_LABEL).map_or("", String::as_str)
                );
                out.insert(
                    (
                        m.metadata.namespace.clone(),
                        m.metadata.name.unwrap_or_default(),
                    ),
                    owner,
                );
            }
        }
        Ok(out)
    }

    /// Whether the GitSync `owner` (`namespace/name`) still exists: objects of a deleted
    /// GitSync (orphaned with `prune: false`) may be taken over. Read as the pass's actor: a
    /// ServiceAccount that may not read that GitSync does not learn whether it exists, and
    /// takes nothing over (the object counts as managed).
    async fn owner_exists(&self, owner: &str) -> Result<bool, ApplyError> {
        let Some((ns, name)) = owner.split_once('/') else {
            return Ok(false);
        };
        if ns.is_empty() || name.is_empty() {
            return Ok(false);
        }
        let api: Api<gitseal_api::GitSync> = Api::namespaced(self.client.clone(), ns);
        match api.get_metadata_opt(name).await {
            Ok(m) => Ok(m.is_some()),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(true),
            Err(e) => Err(ApplyError::List {
                kind: "GitSync".into(),
                message: kube_message(&e),
                transient: is_transient(&e),
            }),
        }
    }

    async fn apply_stage(
        &mut self,
        objs: Vec<Object>,
        report: &mut ApplyReport,
        stage: usize,
    ) -> Result<(), ApplyError> {
        // Resolve kinds (cached) and read live versions: one LIST per kind that the
        // agent has applied before.
        let mut resolved = Vec::with_capacity(objs.len());
        for o in objs {
            let r = self.resource(&o).await?;
            resolved.push((o, r));
        }
        let mut remembered: HashMap<&str, (&ApiResource, bool, BTreeSet<String>)> = HashMap::new();
        for (o, r) in &resolved {
            let (ar, caps) = &**r;
            let id = o.id();
            if self.memory.applied.contains_key(&id) {
                let namespaced = matches!(caps.scope, ApiScope::Namespaced);
                let entry = remembered
                    .entry(ar.kind.as_str())
                    .or_insert_with(|| (ar, namespaced, BTreeSet::new()));
                entry.2.extend(id.namespace);
            }
        }
        let mut live: HashMap<String, HashMap<(Option<String>, String), ObjectMeta>> =
            HashMap::new();
        for (kind, (ar, namespaced, namespaces)) in remembered {
            let versions = self.live_versions(ar, namespaced, &namespaces).await?;
            live.insert(kind.to_owned(), versions);
        }
        let mut todo = Vec::new();
        for (o, r) in resolved {
            let id = o.id();
            let hash = hash_of(&o, self.owner);
            let unchanged = self.memory.applied.get(&id).is_some_and(|a| {
                a.hash == hash
                    && live
                        .get(&r.0.kind)
                        .and_then(|m| m.get(&(id.namespace.clone(), id.name.clone())))
                        .is_some_and(|meta| fingerprint(meta, &a.managed) == a.fingerprint)
            });
            if unchanged {
                report.unchanged += 1;
            } else {
                todo.push((o, r, hash));
            }
        }
        // Objects about to be written that another GitSync manages are not applied.
        let mut kinds: HashMap<String, (ApiResource, bool, BTreeSet<String>)> = HashMap::new();
        for (o, r, _) in &todo {
            let (ar, caps) = &**r;
            let namespaced = matches!(caps.scope, ApiScope::Namespaced);
            let entry = kinds
                .entry(ar.kind.clone())
                .or_insert_with(|| (ar.clone(), namespaced, BTreeSet::new()));
            entry.2.extend(o.namespace().map(str::to_owned));
        }
        let mut foreign: HashMap<String, HashMap<(Option<String>, String), String>> =
            HashMap::new();
        for (kind, (ar, namespaced, namespaces)) in kinds {
            let f = self.foreign(&ar, namespaced, &namespaces).await?;
            foreign.insert(kind, f);
        }
        let mut exists: HashMap<String, bool> = HashMap::new();
        let mut mine = Vec::with_capacity(todo.len());
        for (o, r, hash) in todo {
            let owner = foreign
                .get(&r.0.kind)
                .and_then(|f| f.get(&(o.namespace().map(str::to_owned), o.name().to_owned())));
            if let Some(owner) = owner {
                let alive = match exists.get(owner) {
                    Some(a) => *a,
                    None => {
                        let a = self.owner_exists(owner).await?;
                        exists.insert(owner.clone(), a);
                        a
                    }
                };
                if alive {
                    report.conflicts.push(Conflict {
                        object: o.id(),
                        owner: owner.clone(),
                    });
                    continue;
                }
            }
            mine.push((o, r, hash));
        }
        let client = self.client.clone();
        let (owner_ns, owner_name) = self.owner;
        let mut results = stream::iter(mine)
            .map(|(o, r, hash)| {
                let client = client.clone();
                async move {
                    let (ar, caps) = &*r;
                    // Parsed for the time it is in flight only.
                    let mut body = o.value();
                    set_label(&mut body, SYNC_NAMESPACE_LABEL, owner_ns);
                    set_label(&mut body, SYNC_NAME_LABEL, owner_name);
                    let api: Api<DynamicObject> = match caps.scope {
                        ApiScope::Namespaced => Api::namespaced_with(
                            client.clone(),
                            o.namespace().unwrap_or("default"),
                            ar,
                        ),
                        ApiScope::Cluster => Api::all_with(client.clone(), ar),
                    };
                    let params = PatchParams::apply(AGENT_FIELD_MANAGER).force();
                    // The answer is the whole object (a Secret's values too): only the
                    // metadata the fingerprint needs is parsed out of it.
                    let live = kube::core::Request::new(api.resource_url())
                        .patch(o.name(), &params, &Patch::Apply(&body))
                        .map_err(kube::Error::BuildRequest);
                    let live = match live {
                        Ok(request) => client.request::<LeanItem>(request).await,
                        Err(e) => Err(e),
                    }
                    .map_err(|e| ApplyError::Apply {
                        object: o.describe(),
                        source_file: o.source.clone(),
                        message: kube_message(&e),
                        transient: is_transient(&e),
                    })?;
                    let crd = o.is_crd().then(|| o.name().to_owned());
                    let managed = managed_keys(&body);
                    drop(body);
                    let (g, v) = o.group_version();
                    Ok::<_, ApplyError>((
                        o.id(),
                        Applied {
                            hash,
                            fingerprint: fingerprint(&live.metadata.into_meta(), &managed),
                            managed,
                            kind: (g.to_owned(), v.to_owned(), o.kind().to_owned()),
                        },
                        crd,
                    ))
                }
            })
            .buffer_unordered(self.concurrency.max(1));
        // Each success is remembered as it comes, so a stage stopped by an error or its
        // timeout keeps what it applied.
        let mut crds = Vec::new();
        let mut failed: Option<ApplyError> = None;
        let mut failures = 0usize;
        while let Some(r) = results.next().await {
            match r {
                Ok((id, applied, crd)) => {
                    report.applied.push(id.clone());
                    self.memory.applied.insert(id, applied);
                    crds.extend(crd);
                }
                Err(e) => {
                    failures += 1;
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            if failures > 1 {
                tracing::warn!(
                    failures,
                    "apply stage {stage}: several objects failed; the first is reported"
                );
            }
            return Err(e);
        }
        if stage == 0 && !crds.is_empty() {
            self.wait_established(&crds).await?;
        }
        Ok(())
    }

    async fn wait_established(&self, crds: &[String]) -> Result<(), ApplyError> {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in crds {
            let cond = kube::runtime::conditions::is_crd_established();
            tokio::time::timeout(
                self.timeout,
                kube::runtime::wait::await_condition(api.clone(), name, cond),
            )
            .await
            .map_err(|_| ApplyError::CrdNotEstablished(name.clone()))?
            .map_err(|_| ApplyError::CrdNotEstablished(name.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lean_list_reads_pages_empty_lists_and_skips_managed_fields() {
        let empty: LeanList =
            serde_json::from_str(r#"{"kind":"PartialObjectMetadataList","metadata":{"resourceVersion":"7"},"items":null}"#)
                .unwrap();
        assert!(empty.items.is_none() && empty.metadata.continue_.is_none());
        let page: LeanList = serde_json::from_str(
            r#"{"metadata":{"continue":"abc","remainingItemCount":3},"items":[{"metadata":{
                "name":"cm","namespace":"app","resourceVersion":"42","generation":2,
                "labels":{"a":"b"},"annotations":null,
                "managedFields":[{"manager":"gitseal-agent","fieldsV1":{"f:data":{"f:x":{}}}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(page.metadata.continue_.as_deref(), Some("abc"));
        let meta = page.items.unwrap().remove(0).metadata.into_meta();
        assert_eq!(meta.name.as_deref(), Some("cm"));
        assert_eq!(meta.namespace.as_deref(), Some("app"));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert_eq!(meta.generation, Some(2));
        assert_eq!(meta.labels.unwrap()["a"], "b");
        assert!(meta.annotations.is_none() && meta.managed_fields.is_none());
    }
}
