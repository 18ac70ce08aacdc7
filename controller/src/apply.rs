//! Applying objects with server-side apply, staged and with bounded parallelism; drift
//! detection that re-applies only what changed on either side; pruning with every safety
//! rule.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{GroupVersionKind, ObjectMeta};
use kube::discovery::{ApiCapabilities, ApiResource, Scope as ApiScope};
use sha2::{Digest, Sha256};

use crate::crd::InventoryEntry;
use crate::object::{Object, ObjectId};

pub const FIELD_MANAGER: &str = "gitseal-agent";
pub const PRUNE_ANNOTATION: &str = "gitseal.dev/prune";
pub const SYNC_NAME_LABEL: &str = "gitseal.dev/sync-name";
pub const SYNC_NAMESPACE_LABEL: &str = "gitseal.dev/sync-namespace";

/// Why an apply or prune failed. Messages name objects, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("{object} ({source_file}): unknown kind: {message}")]
    UnknownKind {
        object: String,
        source_file: String,
        message: String,
    },
    #[error("{object} ({source_file}): apply failed: {message}")]
    Apply {
        object: String,
        source_file: String,
        message: String,
    },
    #[error("CustomResourceDefinition {0} did not become Established in time")]
    CrdNotEstablished(String),
    #[error(
        "refusing to prune all {0} objects: the path rendered to nothing (set allowEmpty to allow it)"
    )]
    EmptyRefused(usize),
    #[error("prune of {object} failed: {message}")]
    Prune { object: String, message: String },
    #[error("listing {kind} failed: {message}")]
    List { kind: String, message: String },
}

impl ApplyError {
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::UnknownKind { .. } => "unknown_kind",
            ApplyError::Apply { .. } => "apply",
            ApplyError::CrdNotEstablished(_) => "crd_not_established",
            ApplyError::EmptyRefused(_) => "empty_refused",
            ApplyError::Prune { .. } => "prune",
            ApplyError::List { .. } => "list",
        }
    }
}

/// Message of a kube error without request bodies (which could hold a Secret).
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => {
            let s = other.to_string();
            s.chars().take(300).collect()
        }
    }
}

/// What the agent remembers of one object it applied: the hash of what it sent and the
/// fingerprint of what the server answered with. Kept in memory only (a hash of a Secret
/// must not be published).
#[derive(Clone, PartialEq, Eq)]
struct Applied {
    hash: [u8; 32],
    fingerprint: String,
    /// The labels and annotations the agent sets on it (part of the fingerprint).
    managed: Vec<(&'static str, String)>,
    /// Discovery key of its kind, to list it again.
    kind: KindKey,
}

/// (group, version, kind): how discovery results are cached.
type KindKey = (String, String, String);

/// The label and annotation keys an object sets.
fn managed_keys(desired: &Object) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for field in ["labels", "annotations"] {
        if let Some(m) = desired
            .value
            .pointer(&format!("/metadata/{field}"))
            .and_then(serde_json::Value::as_object)
        {
            out.extend(m.keys().map(|k| (field, k.clone())));
        }
    }
    out
}

/// What identifies "the live object is still as the agent left it", from metadata alone
/// (so one metadata LIST per kind answers it).
///
/// Objects with a `generation` (Deployments, CRs, …) change it on every spec change but not
/// when a controller writes their status, so their fingerprint is the generation plus the
/// values of the labels and annotations the agent sets; a busy Deployment whose status moves
/// every second is not re-applied for it. Objects without a generation (ConfigMaps, Secrets,
/// Services) have no status churn worth the name: their resourceVersion is the fingerprint.
fn fingerprint(meta: &ObjectMeta, managed: &[(&'static str, String)]) -> String {
    let Some(generation) = meta.generation else {
        return format!(
            "rv:{}",
            meta.resource_version.as_deref().unwrap_or_default()
        );
    };
    let mut h = Sha256::new();
    for (field, key) in managed {
        let live = if *field == "labels" {
            &meta.labels
        } else {
            &meta.annotations
        };
        h.update(field.as_bytes());
        h.update(key.as_bytes());
        h.update([0]);
        if let Some(v) = live.as_ref().and_then(|l| l.get(key)) {
            h.update(v.as_bytes());
        }
        h.update([0]);
    }
    let digest = h.finalize();
    format!(
        "gen:{generation}:{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

/// Per-source memory between passes: discovery results and what was applied.
#[derive(Default)]
pub struct ApplyMemory {
    resources: HashMap<KindKey, (ApiResource, ApiCapabilities)>,
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
    pub inventory: Vec<InventoryEntry>,
}

pub struct Applier<'a> {
    pub client: &'a kube::Client,
    pub memory: &'a mut ApplyMemory,
    pub concurrency: usize,
    pub timeout: Duration,
    /// (GitSync namespace, name): written as labels on every object.
    pub owner: (&'a str, &'a str),
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Applier({}/{})", self.owner.0, self.owner.1)
    }
}

fn hash_of(o: &Object) -> [u8; 32] {
    // serde_json maps are sorted, so the serialisation is canonical.
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&o.value).unwrap_or_default());
    Sha256::digest(&bytes[..]).into()
}

impl Applier<'_> {
    async fn resource(&mut self, o: &Object) -> Result<(ApiResource, ApiCapabilities), ApplyError> {
        let (g, v) = o.group_version();
        let key = (g.to_owned(), v.to_owned(), o.kind().to_owned());
        if let Some(r) = self.memory.resources.get(&key) {
            return Ok(r.clone());
        }
        let gvk = GroupVersionKind::gvk(g, v, o.kind());
        let r = kube::discovery::pinned_kind(self.client, &gvk)
            .await
            .map_err(|e| ApplyError::UnknownKind {
                object: o.describe(),
                source_file: o.source.clone(),
                message: kube_message(&e),
            })?;
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

    /// Live metadata of this source's objects of one kind: one LIST call.
    async fn live_versions(
        &self,
        ar: &ApiResource,
    ) -> Result<HashMap<(Option<String>, String), ObjectMeta>, ApplyError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), ar);
        let list = api
            .list_metadata(&ListParams::default().labels(&self.selector()))
            .await
            .map_err(|e| ApplyError::List {
                kind: ar.kind.clone(),
                message: kube_message(&e),
            })?;
        Ok(list
            .items
            .into_iter()
            .map(|m| {
                let key = (
                    m.metadata.namespace.clone(),
                    m.metadata.name.clone().unwrap_or_default(),
                );
                (key, m.metadata)
            })
            .collect())
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
            let Some((ar, _)) = self.memory.resources.get(kind) else {
                return Ok(false);
            };
            let live = self.live_versions(ar).await?;
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

    /// Applies every object, stage by stage, and prunes what left the inventory.
    pub async fn apply_all(
        &mut self,
        mut objects: Vec<Object>,
        previous: &[InventoryEntry],
        prune: bool,
        allow_empty: bool,
    ) -> Result<ApplyReport, ApplyError> {
        if prune && objects.is_empty() && !previous.is_empty() && !allow_empty {
            return Err(ApplyError::EmptyRefused(previous.len()));
        }
        let (owner_ns, owner_name) = self.owner;
        for o in &mut objects {
            o.set_label(SYNC_NAMESPACE_LABEL, owner_ns);
            o.set_label(SYNC_NAME_LABEL, owner_name);
        }
        let mut report = ApplyReport::default();
        let mut stages: BTreeMap<usize, Vec<Object>> = BTreeMap::new();
        for o in objects {
            stages.entry(o.stage()).or_default().push(o);
        }
        let mut current = HashSet::new();
        for (stage, objs) in stages {
            for o in &objs {
                current.insert(o.id());
                let (g, v) = o.group_version();
                report.inventory.push(InventoryEntry {
                    id: o.id().inventory_id(),
                    v: if g.is_empty() {
                        v.to_owned()
                    } else {
                        format!("{g}/{v}")
                    },
                });
            }
            self.apply_stage(objs, &mut report, stage).await?;
        }
        report.inventory.sort();
        self.memory.applied.retain(|id, _| current.contains(id));
        if prune {
            self.prune(previous, &current, &mut report).await?;
        }
        Ok(report)
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
        let mut live: HashMap<String, HashMap<(Option<String>, String), ObjectMeta>> =
            HashMap::new();
        for (o, (ar, _)) in &resolved {
            if !live.contains_key(&ar.kind) && self.memory.applied.contains_key(&o.id()) {
                let versions = self.live_versions(ar).await?;
                live.insert(ar.kind.clone(), versions);
            }
        }
        let mut todo = Vec::new();
        for (o, r) in resolved {
            let id = o.id();
            let hash = hash_of(&o);
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
        let client = self.client.clone();
        let results: Vec<(ObjectId, Applied, Option<String>)> = stream::iter(todo)
            .map(|(o, (ar, caps), hash)| {
                let client = client.clone();
                async move {
                    let api: Api<DynamicObject> = match caps.scope {
                        ApiScope::Namespaced => {
                            Api::namespaced_with(client, o.namespace().unwrap_or("default"), &ar)
                        }
                        ApiScope::Cluster => Api::all_with(client, &ar),
                    };
                    let params = PatchParams::apply(FIELD_MANAGER).force();
                    let live = api
                        .patch(o.name(), &params, &Patch::Apply(&o.value))
                        .await
                        .map_err(|e| ApplyError::Apply {
                            object: o.describe(),
                            source_file: o.source.clone(),
                            message: kube_message(&e),
                        })?;
                    let crd = o.is_crd().then(|| o.name().to_owned());
                    let managed = managed_keys(&o);
                    let (g, v) = o.group_version();
                    Ok::<_, ApplyError>((
                        o.id(),
                        Applied {
                            hash,
                            fingerprint: fingerprint(&live.metadata, &managed),
                            managed,
                            kind: (g.to_owned(), v.to_owned(), o.kind().to_owned()),
                        },
                        crd,
                    ))
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect()
            .await?;
        let mut crds = Vec::new();
        for (id, applied, crd) in results {
            report.applied.push(id.clone());
            self.memory.applied.insert(id, applied);
            crds.extend(crd);
        }
        if stage == 0 && !crds.is_empty() {
            self.wait_established(&crds).await?;
            // New kinds may now exist; forget negative lookups (none are cached) and keep
            // positive ones.
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

    async fn prune(
        &mut self,
        previous: &[InventoryEntry],
        current: &HashSet<ObjectId>,
        report: &mut ApplyReport,
    ) -> Result<(), ApplyError> {
        let mut gone: Vec<(ObjectId, String)> = previous
            .iter()
            .filter_map(|e| ObjectId::from_inventory_id(&e.id).map(|id| (id, e.v.clone())))
            .filter(|(id, _)| !current.contains(id))
            .collect();
        // Reverse stage order: workloads first, then Namespaces and CRDs.
        gone.sort_by_key(|(id, _)| {
            let stage0 = (id.kind == "Namespace" && id.group.is_empty())
                || (id.kind == "CustomResourceDefinition" && id.group == "apiextensions.k8s.io");
            (stage0, id.kind == "CustomResourceDefinition")
        });
        for (id, version) in gone {
            let (g, v) = version.split_once('/').unwrap_or(("", version.as_str()));
            let gvk = GroupVersionKind::gvk(g, v, &id.kind);
            let (ar, caps) = match kube::discovery::pinned_kind(self.client, &gvk).await {
                Ok(r) => r,
                // The kind itself is gone (its CRD was removed): nothing left to delete.
                Err(_) => continue,
            };
            let api: Api<DynamicObject> = match (caps.scope, &id.namespace) {
                (ApiScope::Namespaced, Some(ns)) => {
                    Api::namespaced_with(self.client.clone(), ns, &ar)
                }
                _ => Api::all_with(self.client.clone(), &ar),
            };
            let live = match api.get_metadata_opt(&id.name).await {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    return Err(ApplyError::Prune {
                        object: id.to_string(),
                        message: kube_message(&e),
                    });
                }
            };
            let labels = live.metadata.labels.unwrap_or_default();
            let ours = labels.get(SYNC_NAME_LABEL).map(String::as_str) == Some(self.owner.1)
                && labels.get(SYNC_NAMESPACE_LABEL).map(String::as_str) == Some(self.owner.0);
            let disabled = live
                .metadata
                .annotations
                .unwrap_or_default()
                .get(PRUNE_ANNOTATION)
                .is_some_and(|v| v == "disabled");
            if !ours || disabled {
                continue;
            }
            match api.delete(&id.name, &DeleteParams::background()).await {
                Ok(_) => report.pruned.push(id),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(ApplyError::Prune {
                        object: id.to_string(),
                        message: kube_message(&e),
                    });
                }
            }
        }
        Ok(())
    }
}
