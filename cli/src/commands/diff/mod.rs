//! `gitseal diff gitsync NAME --path DIR`: what a pass of the GitSync would change if its
//! path held what the local folder holds.
//!
//! The folder is rendered the way the agent renders it (the agent's own code: Kustomize or
//! plain files, the same limits, remote bases never fetched), namespaces settled by the
//! GitSync's `targetNamespace`, the GitSync's labels added; then each object is sent as a
//! server-side apply **dry-run** under the agent's field manager, and the answer compared field
//! by field with the live object (read with the caller's own credentials). Nothing is
//! written. The dry-run acts as the GitSync's passes do: as its ServiceAccount (impersonated)
//! when it names one and the caller may impersonate it, so what that ServiceAccount may not
//! write shows as refused; as the caller otherwise, which the report says.
//!
//! Secrets: values are never printed ([`fields`] reports changed paths only). A SealedSecret
//! cannot be opened here, so its Secret is compared in shape (keys added or removed, type,
//! labels, annotations) with the live values standing in for the sealed ones; its values'
//! binding (scope) is checked against where it would be applied, and its key ids against the
//! cluster's published keys: the two ways a pass fails to open it.

mod fields;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use base64::Engine;
use gitseal::manifest::ManifestLimits;
use gitseal::sealing::binding_of;
use gitseal_agent::controllers::gitsync::{TenancyPolicy, tenancy};
use gitseal_agent::sync::inventory::shards::ShardStore;
use gitseal_agent::sync::object::{Object, ObjectId, crd_scopes, set_label, zeroize_json};
use gitseal_agent::sync::open::{has_data, parse_sealed, secret_value, settle_namespace};
use gitseal_agent::sync::render::{RemoteBases, render};
use gitseal_agent::sync::tenancy::{Actor, Tenancy};
use gitseal_api::GitSync;
use gitseal_api::names::{AGENT_FIELD_MANAGER, SYNC_NAME_LABEL, SYNC_NAMESPACE_LABEL};
use kube::api::{Api, GetParams, Patch, PatchParams};
use kube::core::{GroupVersionKind, Request};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde::Serialize;
use serde_json::{Map, Value};

use self::fields::{Change, Op, changes, normalize};
use crate::args::{DiffArgs, TableFormat};
use crate::cluster::{
    api_error, client, impersonating_client, kind_missing, may_impersonate, namespace_or_default,
    not_installed, published_keys,
};
use crate::io::shown;
use crate::table::{clipped, one_line as line, structured};

/// What one render may take (the agent's default `--timeout`).
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    /// Not in the cluster: a pass would create it.
    Create,
    /// A pass would change these fields.
    Change,
    Unchanged,
    /// A pass would fail on it (it does not open, the API server rejects it, its kind is
    /// unknown).
    Refused,
    /// In the GitSync's inventory, gone from the folder: a pass with `prune` deletes it.
    Prune,
}

/// One rendered object and what a pass would do with it.
#[derive(Debug, Serialize)]
struct ObjectDiff {
    /// `Kind namespace/name` (group-qualified for other groups).
    object: String,
    /// File and document it came from.
    source: String,
    action: Action,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<Change>,
    /// Why it is refused, or a note (sealed values not compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    gitsync: String,
    path: String,
    objects: Vec<ObjectDiff>,
    /// Why no object is listed as pruned although the GitSync prunes.
    #[serde(skip_serializing_if = "Option::is_none")]
    prune_note: Option<String>,
}

/// Compares, prints; `Ok(true)` when nothing differs.
pub async fn run(args: DiffArgs) -> Result<bool> {
    let client = client(&args.cluster).await?;
    let ns = namespace_or_default(&client, args.namespace.as_deref());
    let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), &ns);
    let gs = match gitsyncs.get_opt(&args.name).await {
        Ok(Some(gs)) => gs,
        Ok(None) => {
            return Err(anyhow!(
                "GitSync {} not found in namespace {ns}; list them with `gitseal get gitsyncs -n {ns}`",
                args.name
            ));
        }
        Err(e) if kind_missing(&e) => return Err(not_installed("GitSync")),
        Err(e) => return Err(api_error(e, "reading the GitSync", &ns)),
    };
    let objects = render_local(&args.path, &gs).await?;
    let policy = TenancyPolicy {
        agent_namespace: args.cluster.agent_namespace.clone(),
        default_service_account: args.default_service_account.clone(),
    };
    let tenancy =
        tenancy(&gs, &ns, &policy).map_err(|e| anyhow!("GitSync {ns}/{}: {e}", args.name))?;
    let (dry, acting_as, acting) = match (&tenancy.actor, tenancy.impersonate(&ns)) {
        (Actor::ServiceAccount(sa), Some(user)) if may_impersonate(&client, &ns, sa).await => (
            impersonating_client(&args.cluster, &user).await?,
            Some(format!("ServiceAccount {ns}/{sa}")),
            format!("; dry-run as ServiceAccount {ns}/{sa}, as its passes act"),
        ),
        (Actor::ServiceAccount(sa), _) => (
            client.clone(),
            None,
            format!(
                "; its passes act as ServiceAccount {ns}/{sa}, this dry-run as you (you may not impersonate it)"
            ),
        ),
        _ => (client.clone(), None, String::new()),
    };
    let mut differ = Differ {
        client: client.clone(),
        dry,
        acting_as,
        tenancy,
        resources: HashMap::new(),
        new_namespaces: BTreeSet::new(),
        cluster_keys: cluster_keys(&client, &args.cluster.agent_namespace).await,
    };
    let crd_scopes = crd_scopes(&objects);
    let mut report = Report {
        gitsync: format!("{ns}/{}{acting}", args.name),
        path: shown(&args.path),
        objects: Vec::new(),
        prune_note: None,
    };
    // CRDs and Namespaces first, as a pass applies them.
    let mut objects = objects;
    objects.sort_by_key(Object::stage);
    for mut o in objects {
        let diff = differ.object(&mut o, &gs, &ns, &crd_scopes).await?;
        if o.is_namespace() && diff.action == Action::Create {
            differ.new_namespaces.insert(o.name().to_owned());
        }
        report.objects.push(diff);
    }
    if gs.spec.prune {
        prune_preview(&client, &gs, &mut report).await;
    }
    print(&report, args.output)?;
    Ok(report.objects.iter().all(|o| o.action == Action::Unchanged))
}

/// What a pass would prune: objects of the GitSync's inventory (its `GitSyncInventory`
/// objects, which need `list` on them) that the folder no longer holds.
async fn prune_preview(client: &kube::Client, gs: &GitSync, report: &mut Report) {
    if report.objects.iter().any(|o| o.action == Action::Refused) {
        report.prune_note = Some("none: a pass that fails prunes nothing".into());
        return;
    }
    let entries = match ShardStore::load(client, gs).await {
        Ok((_, entries)) => entries,
        Err(e) => {
            report.prune_note = Some(format!("not shown: {e}"));
            return;
        }
    };
    if report.objects.is_empty() && !entries.is_empty() && !gs.spec.allow_empty {
        report.objects.push(ObjectDiff {
            object: format!("GitSync {}", report.gitsync),
            source: "spec.path".into(),
            action: Action::Refused,
            changes: Vec::new(),
            note: Some(format!(
                "the folder renders to nothing: a pass refuses to prune all {} objects it applied (set allowEmpty to allow it)",
                entries.len()
            )),
        });
        report.prune_note = Some("none: a pass that fails prunes nothing".into());
        return;
    }
    let rendered: BTreeSet<&str> = report.objects.iter().map(|o| o.object.as_str()).collect();
    let gone: Vec<ObjectDiff> = entries
        .iter()
        .filter_map(|e| ObjectId::from_inventory_id(&e.id))
        .map(|id| id.to_string())
        .filter(|object| !rendered.contains(object.as_str()))
        .map(|object| ObjectDiff {
            object,
            source: "inventory".into(),
            action: Action::Prune,
            changes: Vec::new(),
            note: Some(
                "gone from the folder (kept if annotated gitseal.dev/prune: disabled)".into(),
            ),
        })
        .collect();
    report.objects.extend(gone);
}

/// The local folder rendered as the agent renders the GitSync's path: relative to the
/// repository it is in (the nearest folder above holding `.git`), so that Kustomize bases
/// elsewhere in the checkout resolve, and nothing outside it is read.
async fn render_local(dir: &Path, gs: &GitSync) -> Result<Vec<Object>> {
    let abs = dir
        .canonicalize()
        .with_context(|| format!("{}: cannot open", shown(dir)))?;
    if !abs.is_dir() {
        return Err(anyhow!(
            "{}: not a folder; give the folder your GitSync's spec.path names",
            shown(dir)
        ));
    }
    let root: PathBuf = abs
        .ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&abs)
        .to_owned();
    let rel = abs
        .strip_prefix(&root)
        .unwrap_or(Path::new(""))
        .to_string_lossy()
        .into_owned();
    // Remote bases are never fetched here, whatever the GitSync allows.
    let remote = RemoteBases {
        agent: false,
        gitsync: Some(gs.spec.allow_remote_bases),
    };
    render(
        &root,
        &rel,
        remote,
        RENDER_TIMEOUT,
        &ManifestLimits::default(),
    )
    .await
    .with_context(|| format!("rendering {} as gitseal-agent would", shown(dir)))
}

/// The ids of the keys that open values in this cluster (active and not retired), as the
/// agent publishes them; `None` when they cannot be read (then keys are not checked).
async fn cluster_keys(client: &kube::Client, agent_ns: &str) -> Option<BTreeSet<String>> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), agent_ns);
    let cm = api
        .get_opt(gitseal_api::names::PUBLIC_KEYS_CONFIGMAP)
        .await
        .ok()??;
    let keys = published_keys(&cm).ok()?;
    Some(
        keys.into_iter()
            .filter(|k| k.state == gitseal_api::names::ACTIVE)
            .map(|k| k.id)
            .collect(),
    )
}

const NEW_NAMESPACE: &str = "in a namespace this render creates: not dry-run";

struct Differ {
    /// The caller's: discovery and live objects.
    client: kube::Client,
    /// Who the dry-runs are sent as: the GitSync's ServiceAccount (impersonated) or the
    /// caller.
    dry: kube::Client,
    /// `ServiceAccount NS/NAME` when `dry` impersonates it.
    acting_as: Option<String>,
    /// Who the GitSync's passes act as, and what they may write.
    tenancy: Tenancy,
    /// Namespaces of this render that the cluster does not have yet.
    new_namespaces: BTreeSet<String>,
    resources: HashMap<(String, String, String), Option<(ApiResource, ApiCapabilities)>>,
    cluster_keys: Option<BTreeSet<String>>,
}

/// A diff of `o` that says only `action` (and why).
fn only(o: &Object, action: Action, note: impl Into<String>) -> ObjectDiff {
    ObjectDiff {
        object: describe(o),
        source: format!("{}#{}", o.source, o.document),
        action,
        changes: Vec::new(),
        note: Some(note.into()),
    }
}

fn describe(o: &Object) -> String {
    let (group, _) = o.group_version();
    let kind = if group.is_empty() {
        o.kind().to_owned()
    } else {
        format!("{}.{group}", o.kind())
    };
    match o.namespace() {
        Some(ns) => format!("{kind} {ns}/{}", o.name()),
        None => format!("{kind} {}", o.name()),
    }
}

impl Differ {
    /// The tenancy rule a pass would refuse `o` by (the GitSync's `targetNamespace`
    /// included), as the pass words it.
    fn refusal(&self, o: &Object, gs: &GitSync, gs_ns: &str) -> Option<String> {
        let name = gs.metadata.name.as_deref().unwrap_or_default();
        self.tenancy
            .check(
                (gs_ns, name),
                gs.spec.target_namespace.as_deref(),
                std::slice::from_ref(o),
            )
            .err()
            .map(|r| format!("rule {}: {}", r.rule.id(), r.why))
    }

    async fn resource(&mut self, o: &Object) -> Result<Option<(ApiResource, ApiCapabilities)>> {
        let (g, v) = o.group_version();
        let key = (g.to_owned(), v.to_owned(), o.kind().to_owned());
        if let Some(r) = self.resources.get(&key) {
            return Ok(r.clone());
        }
        let gvk = GroupVersionKind::gvk(g, v, o.kind());
        let r = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok(r) => Some(r),
            // The group-version or the kind is not served: no CRD for it.
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(e) => return Err(anyhow!("discovering {}: {e}", describe(o))),
        };
        self.resources.insert(key, r.clone());
        Ok(r)
    }

    async fn object(
        &mut self,
        o: &mut Object,
        gs: &GitSync,
        gs_ns: &str,
        crd_scopes: &HashMap<(String, String), bool>,
    ) -> Result<ObjectDiff> {
        let target = gs.spec.target_namespace.as_deref();
        let fallback = self.tenancy.fallback_namespace(gs_ns).to_owned();
        let fallback = fallback.as_str();
        if o.is_sealed_secret() {
            settle_namespace(o, true, target, fallback);
            return self.sealed(o, gs, gs_ns).await;
        }
        if o.is_secret() && !gs.spec.allow_plaintext_secrets && has_data(o) {
            settle_namespace(o, true, target, fallback);
            return Ok(only(
                o,
                Action::Refused,
                "plaintext Secret with data found in git: seal it (gitseal seal) or set allowPlaintextSecrets",
            ));
        }
        let Some((ar, caps)) = self.resource(o).await? else {
            let (g, _) = o.group_version();
            if let Some(namespaced) = crd_scopes.get(&(g.to_owned(), o.kind().to_owned())) {
                settle_namespace(o, *namespaced, target, fallback);
                if let Some(refusal) = self.refusal(o, gs, gs_ns) {
                    return Ok(only(o, Action::Refused, refusal));
                }
                return Ok(only(
                    o,
                    Action::Create,
                    "its CRD is in this render and not in the cluster yet: not dry-run",
                ));
            }
            return Ok(only(
                o,
                Action::Refused,
                format!(
                    "no CRD for {} ({}) in the cluster — install it first or add dependsOn naming the GitSync that installs it",
                    o.kind(),
                    o.api_version()
                ),
            ));
        };
        settle_namespace(o, caps.scope == Scope::Namespaced, target, fallback);
        if let Some(refusal) = self.refusal(o, gs, gs_ns) {
            return Ok(only(o, Action::Refused, refusal));
        }
        if o.namespace()
            .is_some_and(|n| self.new_namespaces.contains(n))
        {
            return Ok(only(o, Action::Create, NEW_NAMESPACE));
        }
        label(o, gs_ns, &gs.metadata.name.clone().unwrap_or_default());
        let secret = o.is_secret();
        let (live, dry) = match self.dry_run(o, &ar).await? {
            Ok(pair) => pair,
            Err(refusal) => return Ok(only(o, Action::Refused, refusal)),
        };
        Ok(compare(o, live, dry, secret, None))
    }

    /// The live object and the server's dry-run answer to applying `o`; `Err(message)` when
    /// the API server refuses the apply (what a pass would fail on).
    async fn dry_run(
        &self,
        o: &Object,
        ar: &ApiResource,
    ) -> Result<Result<(Option<Value>, Value), String>> {
        let req = Request::new(collection_url(ar, o.namespace()));
        let ns = o.namespace().unwrap_or("(cluster)");
        let what = format!("reading {}", describe(o));
        let get = req
            .get(o.name(), &GetParams::default())
            .map_err(|e| anyhow!("{what}: {e}"))?;
        let live = match self.client.request::<Value>(get).await {
            Ok(v) => Some(v),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(api_error(e, &what, ns)),
        };
        let params = PatchParams::apply(AGENT_FIELD_MANAGER).force().dry_run();
        let patch = req
            .patch(o.name(), &params, &Patch::Apply(&o.value()))
            .map_err(|e| anyhow!("dry-run of {}: {e}", describe(o)))?;
        match self.dry.request::<Value>(patch).await {
            Ok(v) => Ok(Ok((live, v))),
            // The GitSync's ServiceAccount may not write it: a pass would fail the same way.
            Err(kube::Error::Api(s)) if s.code == 403 && self.acting_as.is_some() => {
                let who = self.acting_as.as_deref().unwrap_or_default();
                Ok(Err(format!("{who} may not apply it: {}", s.message)))
            }
            // Invalid, conflicting or otherwise refused: what a pass would fail on. (Not
            // 401/403, which are about the caller, nor server errors.)
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 404 | 409 | 422) => {
                Ok(Err(format!("the API server refuses it: {}", s.message)))
            }
            Err(e) => Err(api_error(e, &format!("dry-run of {}", describe(o)), ns)),
        }
    }

    /// A SealedSecret, as the Secret it becomes: checked (scope, keys), then compared in
    /// shape with the live values standing in for the sealed ones.
    async fn sealed(&mut self, o: &mut Object, gs: &GitSync, gs_ns: &str) -> Result<ObjectDiff> {
        let sealed = match parse_sealed(o) {
            Ok(s) => s,
            Err(e) => return Ok(only(o, Action::Refused, e.to_string())),
        };
        // Named as the Secret it becomes, like every other entry about it.
        let only = |o: &Object, action, note: String| ObjectDiff {
            object: format!(
                "Secret {}/{}",
                sealed.namespace.as_deref().unwrap_or_default(),
                sealed.name
            ),
            ..only(o, action, note)
        };
        for (key, ct) in &sealed.encrypted_data {
            let header = match gitseal::inspect(ct) {
                Ok(h) => h,
                Err(e) => {
                    return Ok(only(
                        o,
                        Action::Refused,
                        format!("spec.encryptedData.{key}: {e}"),
                    ));
                }
            };
            match binding_of(&sealed, key) {
                Ok(expected) if expected == header.binding => {}
                Ok(expected) => {
                    return Ok(only(
                        o,
                        Action::Refused,
                        format!(
                            "spec.encryptedData.{key}: sealed for {}, would be opened as {expected}: the pass fails with a scope mismatch (seal it again for where it goes, or fix targetNamespace)",
                            header.binding
                        ),
                    ));
                }
                Err(e) => return Ok(only(o, Action::Refused, e.problem)),
            }
            if let Some(ours) = &self.cluster_keys {
                let ids: Vec<String> = header.key_ids.iter().map(|k| k.to_string()).collect();
                if !ids.iter().any(|id| ours.contains(id)) {
                    return Ok(only(
                        o,
                        Action::Refused,
                        format!(
                            "spec.encryptedData.{key}: sealed to key id(s) {}, none of them an active key of this cluster's agent: the pass fails; seal it again with `gitseal keys fetch`'s key",
                            ids.join(", ")
                        ),
                    ));
                }
            }
        }
        let secret_ar = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
        // The live values stand in for the sealed ones, so only the shape is compared.
        let req = Request::new(collection_url(&secret_ar, sealed.namespace.as_deref()));
        let ns = sealed.namespace.as_deref().unwrap_or("default");
        let what = format!("reading Secret {ns}/{}", sealed.name);
        let get = req
            .get(&sealed.name, &GetParams::default())
            .map_err(|e| anyhow!("{what}: {e}"))?;
        let mut live_data = match self.client.request::<Value>(get).await {
            Ok(mut v) => {
                let d = v.get("data").cloned().unwrap_or(Value::Null);
                zeroize_json(&mut v);
                d
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Value::Null,
            Err(e) => return Err(api_error(e, &what, ns)),
        };
        let mut data = Map::new();
        for key in sealed.encrypted_data.keys() {
            let v = live_data.get(key).cloned().unwrap_or_else(|| {
                Value::String(base64::engine::general_purpose::STANDARD.encode(""))
            });
            data.insert(key.clone(), v);
        }
        zeroize_json(&mut live_data);
        let mut as_secret = Object::new(
            o.source.clone(),
            o.document,
            secret_value(o, &sealed, data),
            true,
        );
        if let Some(refusal) = self.refusal(&as_secret, gs, gs_ns) {
            return Ok(only(&as_secret, Action::Refused, refusal));
        }
        if self.new_namespaces.contains(ns) {
            return Ok(only(&as_secret, Action::Create, NEW_NAMESPACE.into()));
        }
        label(
            &mut as_secret,
            gs_ns,
            &gs.metadata.name.clone().unwrap_or_default(),
        );
        let (live, dry) = match self.dry_run(&as_secret, &secret_ar).await? {
            Ok(pair) => pair,
            Err(refusal) => return Ok(only(&as_secret, Action::Refused, refusal)),
        };
        let mut d = compare(
            &as_secret,
            live,
            dry,
            true,
            Some("from a SealedSecret: its values are sealed and not compared"),
        );
        d.source = format!("{}#{}", o.source, o.document);
        Ok(d)
    }
}

/// The GitSync's labels, as a pass sets them on every object.
fn label(o: &mut Object, gs_ns: &str, gs_name: &str) {
    o.edit(|v| {
        set_label(v, SYNC_NAMESPACE_LABEL, gs_ns);
        set_label(v, SYNC_NAME_LABEL, gs_name);
    });
}

/// `/api/v1/namespaces/NS/secrets`, `/apis/apps/v1/deployments`, …
fn collection_url(ar: &ApiResource, ns: Option<&str>) -> String {
    let base = if ar.group.is_empty() {
        format!("/api/{}", ar.version)
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    };
    match ns {
        Some(ns) => format!("{base}/namespaces/{ns}/{}", ar.plural),
        None => format!("{base}/{}", ar.plural),
    }
}

/// The live object against the dry-run answer; both overwritten afterwards.
fn compare(
    o: &Object,
    live: Option<Value>,
    mut dry: Value,
    secret: bool,
    note: Option<&str>,
) -> ObjectDiff {
    let mut d = ObjectDiff {
        object: describe(o),
        source: format!("{}#{}", o.source, o.document),
        action: Action::Create,
        changes: Vec::new(),
        note: note.map(str::to_owned),
    };
    if let Some(mut live) = live {
        normalize(&mut live);
        normalize(&mut dry);
        d.changes = changes(&live, &dry, secret);
        d.action = if d.changes.is_empty() {
            Action::Unchanged
        } else {
            Action::Change
        };
        zeroize_json(&mut live);
    }
    zeroize_json(&mut dry);
    d
}

fn print(r: &Report, format: TableFormat) -> Result<()> {
    let count = |a: Action| r.objects.iter().filter(|o| o.action == a).count();
    if format != TableFormat::Table {
        print!("{}", structured(r, format)?);
    } else {
        let mut out = String::new();
        for o in r.objects.iter().filter(|o| o.action != Action::Unchanged) {
            let what = match o.action {
                Action::Create => "would be created",
                Action::Change => "would change",
                Action::Refused => "a pass would fail",
                Action::Prune => "would be pruned",
                Action::Unchanged => "unchanged",
            };
            out.push_str(&format!(
                "{} ({}): {what}",
                line(&o.object),
                line(&o.source)
            ));
            if let Some(n) = &o.note {
                out.push_str(&format!(": {}", line(n)));
            }
            out.push('\n');
            for c in &o.changes {
                let value = |v: &Option<Value>| {
                    v.as_ref()
                        .map(|v| clipped(&v.to_string(), 200))
                        .unwrap_or_default()
                };
                out.push_str(&match c.op {
                    Op::Add => format!("  + {}: {}\n", line(&c.path), value(&c.to)),
                    Op::Remove => format!("  - {}: {}\n", line(&c.path), value(&c.from)),
                    Op::Change => format!(
                        "  ~ {}: {} -> {}\n",
                        line(&c.path),
                        value(&c.from),
                        value(&c.to)
                    ),
                });
            }
        }
        print!("{out}");
    }
    let pruned = match &r.prune_note {
        Some(note) => format!("pruned: {note}"),
        None => format!("{} to prune", count(Action::Prune)),
    };
    eprintln!(
        "GitSync {} with {}: {} to create, {} to change, {} unchanged, {} a pass would fail on, {pruned} (server-side dry-run with your credentials; Secret values never shown)",
        r.gitsync,
        line(&r.path),
        count(Action::Create),
        count(Action::Change),
        count(Action::Unchanged),
        count(Action::Refused),
    );
    Ok(())
}
