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
    ACTIVE, CREATED_ANNOTATION, IDENTITY_KEY, KEYS_FIELD_MANAGER, PUBLIC_KEYS_CONFIGMAP,
    PUBLIC_KEYS_JSON, RECIPIENTS_TXT, ROTATE_DONE_ANNOTATION, ROTATE_REQUESTED_ANNOTATION,
    SEALING_KEY_LABEL,
};

use crate::keys::store::{
    KeySecret, KeyStore, Snapshot, read_key_secret, untrusted, zeroize_secret,
};
use crate::kube_error::kube_message;

/// Owns the sealing keys of one namespace.
pub struct KeyManager {
    client: kube::Client,
    namespace: String,
    /// A new active key when the newest is older than this; `None` = never.
    renewal: Option<Duration>,
    store: KeyStore,
    /// How many labelled key Secrets are ignored as untrusted now (a metric).
    ignored: Gauge,
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
    ) -> Self {
        KeyManager {
            client,
            namespace,
            renewal,
            store,
            ignored,
        }
    }

    /// Runs until the process ends.
    pub async fn run(self) {
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
        let requested = annotation(live_cm.as_ref(), ROTATE_REQUESTED_ANNOTATION);
        let mut done = annotation(live_cm.as_ref(), ROTATE_DONE_ANNOTATION).map(str::to_owned);
        let rotate = requested.is_some() && requested != done.as_deref();
        let due = match (self.renewal, newest_created(&keys)) {
            (Some(period), Some(t)) if !period.is_zero() => {
                Timestamp::now().as_second() - t.as_second() >= period.as_secs() as i64
            }
            _ => false,
        };
        let reason = if snap.ring.is_empty() {
            Some("no active key")
        } else if rotate {
            Some("rotation requested")
        } else if due {
            Some("renewal period passed")
        } else {
            None
        };
        if let Some(reason) = reason {
            let ks = self.generate().await?;
            tracing::info!(key_id = %ks.keys.iter().map(|k| k.id().to_string()).collect::<String>(), secret = %ks.name, reason, "new active sealing key");
            if rotate {
                done = requested.map(str::to_owned);
            }
            made.push(ks.clone());
            keys.push(ks);
            snap = Snapshot::from_secrets(&keys);
        }
        self.store.set(snap.clone());
        self.publish(&snap, done, live_cm).await
    }

    /// Creates a new active key Secret.
    async fn generate(&self) -> Result<KeySecret, kube::Error> {
        let key = SecretKey::generate();
        let created = Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or_else(|_| Timestamp::now());
        let created_s = created.to_string();
        let name = format!("gitseal-key-{}", key.id());
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
        if let Ok(mut s) = result {
            zeroize_secret(&mut s);
        } else {
            result?;
        }
        Ok(KeySecret {
            name,
            active: true,
            created,
            keys: vec![key],
        })
    }

    /// Writes the public keys ConfigMap when what it should say differs from what it says.
    async fn publish(
        &self,
        snap: &Snapshot,
        done: Option<String>,
        live_cm: &mut Option<ConfigMap>,
    ) -> Result<(), kube::Error> {
        let data = public_data(snap);
        let live_data = live_cm.as_ref().and_then(|c| c.data.clone());
        let live_done = annotation(live_cm.as_ref(), ROTATE_DONE_ANNOTATION);
        if live_data.as_ref() == Some(&data) && live_done == done.as_deref() {
            return Ok(());
        }
        let mut metadata = json!({"name": PUBLIC_KEYS_CONFIGMAP, "namespace": self.namespace});
        if let Some(d) = &done {
            metadata["annotations"] = json!({ ROTATE_DONE_ANNOTATION: d });
        }
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
        tracing::info!(keys = snap.public.len(), "public keys published");
        *live_cm = Some(cm);
        Ok(())
    }
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
