//! The sealing keys controller: watches the key Secrets (so new, restored or relabelled keys
//! count at once, without a restart), generates a key when no active one exists, renews it
//! on a period and on request, publishes the public keys, and keeps the [`KeyStore`] current.
//!
//! It trusts only key Secrets it created or that `gitseal keys restore` wrote: one that the
//! agent itself wrote for a GitSync or a SealedSecret (see
//! [`gitseal_api::keys::untrusted_key_secret`]) is ignored — it opens nothing and is not
//! published — with a warning in the log and the gauge `gitseal_sealing_key_secrets_ignored`.
//!
//! Rotation on request has no endpoint of its own: whoever may patch the
//! `gitseal-public-keys` ConfigMap in the agent namespace sets the annotation
//! `gitseal.dev/rotate-requested` to a new value (`gitseal keys rotate` does), and the agent
//! answers with a new active key and `gitseal.dev/rotate-done` set to that value. RBAC on
//! that one object is the authorisation.
//!
//! Every replica of the agent runs the watches and keeps its [`KeyStore`] current (a standby
//! serves `/v1/keys` too); only the leader ([`crate::leader`]) writes. A new key's Secret has
//! a name derived from why it is made — `gitseal-key-initial`, `gitseal-key-after-<id of
//! the key it succeeds>` (also the newest key still published when every key Secret was
//! lost), `gitseal-key-rotation-<hash of the request>` — and is created
//! with a plain create: whoever comes second (a new leader repeating the work of one that
//! died, a stale cache) gets "already exists" and uses that key, so one reason can never
//! produce two keys.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use gitseal::SecretKey;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus_client::metrics::gauge::Gauge;
use secrecy::ExposeSecret;
use serde_json::json;

use gitseal_api::names::{
    ACTIVE, AGENT_VERSION_ANNOTATION, CREATED_ANNOTATION, IDENTITY_KEY, KEYS_FIELD_MANAGER,
    PUBLIC_KEYS_CONFIGMAP, PUBLIC_KEYS_JSON, RECIPIENTS_TXT, ROTATE_DONE_ANNOTATION,
    ROTATE_REQUESTED_ANNOTATION, SEALING_KEY_LABEL,
};

use crate::keys::store::{
    KeySecret, KeyStore, Snapshot, read_key_secret, untrusted, zeroize_secret,
};
use crate::kube_error::kube_message;
use crate::serve::http::Readiness;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::watch;

/// Owns the sealing keys of one namespace.
pub struct KeyManager {
    client: kube::Client,
    namespace: String,
    /// A new active key when the newest is older than this; `None` = never.
    renewal: Option<Duration>,
    store: KeyStore,
    /// How many labelled key Secrets are ignored as untrusted now (a metric).
    ignored: Gauge,
    /// `true` while this replica leads: only then does it write.
    leading: watch::Receiver<bool>,
    readiness: Arc<Readiness>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyManager({})", self.namespace)
    }
}

fn annotation<'a>(cm: Option<&'a ConfigMap>, key: &str) -> Option<&'a str> {
    cm?.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

impl KeyManager {
    pub fn new(
        client: kube::Client,
        namespace: String,
        renewal: Option<Duration>,
        store: KeyStore,
        ignored: Gauge,
        leading: watch::Receiver<bool>,
        readiness: Arc<Readiness>,
    ) -> Self {
        KeyManager {
            client,
            namespace,
            renewal,
            store,
            ignored,
            leading,
            readiness,
        }
    }

    /// Runs until the process ends.
    pub async fn run(mut self) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let (reader, writer) = reflector::store::<Secret>();
        let mut secret_events = reflector::reflector(
            writer,
            watcher(
                secrets,
                watcher::Config::default().labels(SEALING_KEY_LABEL),
            )
            .default_backoff(),
        )
        .boxed();
        let mut cm_events = watcher(
            cms,
            watcher::Config::default().fields(&format!("metadata.name={PUBLIC_KEYS_CONFIGMAP}")),
        )
        .default_backoff()
        .boxed();
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        let (mut secrets_synced, mut cm_synced) = (false, false);
        let mut live_cm: Option<ConfigMap> = None;
        let mut made: Vec<KeySecret> = Vec::new();
        let mut ignored: HashSet<(String, String)> = HashSet::new();
        loop {
            tokio::select! {
                Some(ev) = secret_events.next() => match ev {
                    Ok(watcher::Event::InitDone) => secrets_synced = true,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "watching sealing key Secrets"),
                },
                Some(ev) = cm_events.next() => match ev {
                    Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => live_cm = Some(cm),
                    Ok(watcher::Event::Delete(_)) => live_cm = None,
                    Ok(watcher::Event::InitDone) => cm_synced = true,
                    Ok(watcher::Event::Init) => {}
                    Err(e) => tracing::warn!(error = %e, "watching the public keys ConfigMap"),
                },
                Ok(()) = self.leading.changed() => {}
                _ = tick.tick() => {}
            }
            if secrets_synced
                && cm_synced
                && let Err(e) = self
                    .reconcile(&reader, &mut live_cm, &mut made, &mut ignored)
                    .await
            {
                tracing::warn!(error = %kube_message(&e), "sealing keys");
            }
        }
    }

    /// Brings the keys up to date with what the cluster holds: the store, a new key when
    /// one is due, the published public keys.
    async fn reconcile(
        &self,
        reader: &Store<Secret>,
        live_cm: &mut Option<ConfigMap>,
        made: &mut Vec<KeySecret>,
        ignored: &mut HashSet<(String, String)>,
    ) -> Result<(), kube::Error> {
        let state = reader.state();
        let mut now_ignored = HashSet::new();
        let mut keys: Vec<KeySecret> = Vec::new();
        for s in &state {
            match untrusted(s) {
                None => keys.extend(read_key_secret(s)),
                Some(why) => {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    let version = s.metadata.resource_version.clone().unwrap_or_default();
                    // Said once per version of the Secret, not on every tick.
                    if !ignored.contains(&(name.clone(), version.clone())) {
                        tracing::warn!(secret = %name, namespace = %self.namespace, why, "sealing key Secret ignored: not written by the agent or `gitseal keys restore`; it opens nothing and is not published");
                    }
                    now_ignored.insert((name, version));
                }
            }
        }
        *ignored = now_ignored;
        self.ignored.set(ignored.len() as i64);
        // Keys made here that the watch has not delivered yet still count.
        made.retain(|m| !keys.iter().any(|k| k.name == m.name));
        keys.extend(made.iter().cloned());
        let mut snap = Snapshot::from_secrets(&keys);
        if !*self.leading.borrow() {
            // A standby only reads.
            self.store.set(snap);
            self.readiness.set_keys_synced();
            return Ok(());
        }
        let requested = annotation(live_cm.as_ref(), ROTATE_REQUESTED_ANNOTATION);
        let mut done = annotation(live_cm.as_ref(), ROTATE_DONE_ANNOTATION).map(str::to_owned);
        let rotate = requested.is_some() && requested != done.as_deref();
        let due = match (self.renewal, newest_created(&keys)) {
            (Some(period), Some(t)) if !period.is_zero() => {
                Timestamp::now().as_second() - t.as_second() >= period.as_secs() as i64
            }
            _ => false,
        };
        let newest = |active_only: bool| {
            keys.iter()
                .filter(|k| k.active || !active_only)
                .max_by_key(|k| (k.created, k.name.clone()))
                .and_then(|k| k.keys.first())
                .map(|k| k.id().to_string())
        };
        // Each reason names its key Secret (see the module documentation).
        // After every key Secret was lost, the keys published last still say which key
        // this one follows (so its name cannot be one a backup holds).
        let newest_published = || {
            snap_published(live_cm.as_ref())
                .into_iter()
                .max_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)))
                .map(|k| k.id)
        };
        let reason = if snap.ring.is_empty() {
            Some((
                "no active key",
                match newest(false).or_else(newest_published) {
                    Some(id) => format!("gitseal-key-after-{id}"),
                    None => "gitseal-key-initial".to_owned(),
                },
            ))
        } else if let (true, Some(r)) = (rotate, requested) {
            let h = Sha256::digest(r.as_bytes());
            let h: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Some(("rotation requested", format!("gitseal-key-rotation-{h}")))
        } else if due {
            newest(true).map(|id| ("renewal period passed", format!("gitseal-key-after-{id}")))
        } else {
            None
        };
        if let Some((reason, name)) = reason {
            let ks = self.generate(name).await?;
            tracing::info!(key_id = %ks.keys.iter().map(|k| k.id().to_string()).collect::<String>(), secret = %ks.name, reason, "new active sealing key");
            if rotate {
                done = requested.map(str::to_owned);
            }
            made.push(ks.clone());
            keys.push(ks);
            snap = Snapshot::from_secrets(&keys);
        }
        self.store.set(snap.clone());
        self.readiness.set_keys_synced();
        self.publish(&snap, done, live_cm).await
    }

    /// Creates the new active key Secret `name`, or reads it when it exists already (made by
    /// an earlier leader for the same reason).
    async fn generate(&self, name: String) -> Result<KeySecret, kube::Error> {
        let key = SecretKey::generate();
        let created = Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or_else(|_| Timestamp::now());
        let created_s = created.to_string();
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(SEALING_KEY_LABEL.to_owned(), ACTIVE.to_owned())].into()),
                annotations: Some([(CREATED_ANNOTATION.to_owned(), created_s.clone())].into()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            string_data: Some(
                [(
                    IDENTITY_KEY.to_owned(),
                    key.to_identity_file(&created_s).expose_secret().to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let pp = PostParams {
            field_manager: Some(KEYS_FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let result = api.create(&pp, &secret).await;
        if let Some(d) = secret.string_data.as_mut() {
            use zeroize::Zeroize;
            d.values_mut().for_each(Zeroize::zeroize);
        }
        match result {
            Ok(mut s) => zeroize_secret(&mut s),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Used only if it is a key this agent (or `gitseal keys restore`) wrote: an
                // active sealing key Secret with no mark of having been planted through the
                // agent. Anything else of that name is never taken for a key.
                let mut existing = api.get(&name).await?;
                let active = existing
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SEALING_KEY_LABEL))
                    .is_some_and(|v| v == ACTIVE);
                let distrust = untrusted(&existing)
                    .or((!active).then_some("it is not labelled as an active sealing key"));
                let read = distrust
                    .is_none()
                    .then(|| read_key_secret(&existing))
                    .flatten();
                zeroize_secret(&mut existing);
                if let Some(why) = distrust {
                    tracing::warn!(secret = %name, namespace = %self.namespace, why, "a Secret holds the name of the key to make and is not a key the agent trusts; no key is made until it is removed");
                    return Err(kube::Error::Service(
                        format!("Secret {name} in {} holds the name of the sealing key to make, and the agent does not trust it ({why}); delete it", self.namespace).into(),
                    ));
                }
                tracing::info!(secret = %name, "the key Secret for this reason exists already; using it");
                return read.ok_or_else(|| {
                    kube::Error::Service(
                        format!("key Secret {name} exists but holds no readable identity").into(),
                    )
                });
            }
            Err(e) => return Err(e),
        }
        Ok(KeySecret {
            name,
            active: true,
            created,
            keys: vec![key],
        })
    }

    /// Writes the public keys ConfigMap when what it should say differs from what it says:
    /// the keys, the rotation answered last, and this agent's version (so `gitseal version`
    /// shows the version that runs; a pass that changes none of these writes nothing).
    async fn publish(
        &self,
        snap: &Snapshot,
        done: Option<String>,
        live_cm: &mut Option<ConfigMap>,
    ) -> Result<(), kube::Error> {
        let data = public_data(snap);
        let live_data = live_cm.as_ref().and_then(|c| c.data.clone());
        let live_done = annotation(live_cm.as_ref(), ROTATE_DONE_ANNOTATION);
        let live_version = annotation(live_cm.as_ref(), AGENT_VERSION_ANNOTATION);
        if live_data.as_ref() == Some(&data)
            && live_done == done.as_deref()
            && live_version == Some(crate::VERSION)
        {
            return Ok(());
        }
        let mut annotations = json!({ AGENT_VERSION_ANNOTATION: crate::VERSION });
        if let Some(d) = &done {
            annotations[ROTATE_DONE_ANNOTATION] = json!(d);
        }
        let metadata = json!({
            "name": PUBLIC_KEYS_CONFIGMAP,
            "namespace": self.namespace,
            "annotations": annotations,
        });
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata,
            "data": data,
        });
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let cm = api
            .patch(
                PUBLIC_KEYS_CONFIGMAP,
                &PatchParams::apply(KEYS_FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        tracing::info!(
            keys = snap.public.len(),
            agent_version = crate::VERSION,
            "public keys published"
        );
        *live_cm = Some(cm);
        Ok(())
    }
}

/// The keys the public keys ConfigMap lists.
fn snap_published(cm: Option<&ConfigMap>) -> Vec<gitseal_api::PublicKeyInfo> {
    cm.and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(PUBLIC_KEYS_JSON))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn newest_created(keys: &[KeySecret]) -> Option<Timestamp> {
    keys.iter().filter(|k| k.active).map(|k| k.created).max()
}

/// The public keys ConfigMap's data: `keys.json` (every key, active and retired) and
/// `recipients.txt` (the newest active key, the one to seal with; usable with `seal -R`).
pub fn public_data(snap: &Snapshot) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    data.insert(
        PUBLIC_KEYS_JSON.to_owned(),
        serde_json::to_string_pretty(&snap.public).unwrap_or_default(),
    );
    let mut recipients = String::from("# gitseal: the cluster's sealing key (newest active)\n");
    if let Some(k) = snap.newest_active() {
        recipients.push_str(&format!(
            "# key id {}, created {}\n{}\n",
            k.id, k.created, k.public_key
        ));
    }
    data.insert(RECIPIENTS_TXT.to_owned(), recipients);
    data
}
