//! Which sealing key opens which object, and when it was last needed: the ConfigMap
//! `gitseal-key-usage` in the agent namespace, so that a person can see whether a key is
//! still in use before retiring it (`gitseal keys list`, `gitseal keys retire`).
//!
//! Each data key is a key id; its value is JSON `{"lastUsed": "YYYY-MM-DD", "objects":
//! [{"source": …, "object": "ns/name"}]}` ([`gitseal_api::UsageEntry`]). The objects are those
//! that need the key now (the newest active key a value is sealed to); the date is a day, so
//! the ConfigMap is written only when what is in use changes, or once a day at most while it
//! does not. Past [`gitseal_api::keys::USAGE_LISTED_PER_KEY`] objects per key, the entry lists
//! that many and says how many there are (`count`), so the ConfigMap stays small however many
//! SealedSecrets there are. A new leader reads back only the listed objects: until every
//! source has recorded again (each GitSync's first pass, the SealedSecret controller's first
//! round) a count may be lower than the truth, never zero while an object needs the key.
//!
//! What is recorded comes from where values are opened: the decrypt stage of a GitSync pass
//! ([`crate::sync::open`]) and the SealedSecret controller, each giving a [`Use`] per object.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use gitseal::KeyId;
use gitseal_api::names::{KEYS_FIELD_MANAGER, USAGE_CONFIGMAP};
use gitseal_api::{ObjectRef, UsageEntry};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Mutex;

use super::store::KeyStore;
use crate::kube_error::kube_message;

/// One sealed object and the key ids of each of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// `namespace/name` of the SealedSecret (where its Secret lives).
    pub object: String,
    /// For each value, the key ids in its header.
    pub values: Vec<Vec<KeyId>>,
}

impl Use {
    /// The key ids of every value of a SealedSecret, read from their headers without any key.
    /// Values whose header is not readable are skipped (opening them fails anyway).
    pub fn of(sealed: &gitseal::SealedSecret) -> Use {
        let ns = sealed.namespace.as_deref().unwrap_or("default");
        let values = sealed
            .encrypted_data
            .values()
            .filter_map(|ct| gitseal::inspect(ct).ok())
            .map(|h| h.key_ids)
            .collect();
        Use {
            object: format!("{ns}/{}", sealed.name),
            values,
        }
    }
}

/// Records key usage and writes the ConfigMap when what it says changes. Cloning is cheap;
/// every clone shares one state, so the GitSync and SealedSecret controllers write one
/// ConfigMap together.
///
/// Recording is cheap and never waits for the API: the ConfigMap is written behind, by one
/// writer at a time that writes the latest state and then again if more changed meanwhile.
/// A thousand SealedSecrets reconciled at once cost a few writes of the whole map, not a
/// thousand growing ones in a row.
#[derive(Debug, Clone)]
pub struct KeyUsage {
    keys: KeyStore,
    state: Arc<Mutex<UsageState>>,
}

/// What the agent remembers of usage between calls.
#[derive(Debug, Default)]
pub struct UsageState {
    loaded: bool,
    /// source → object → key ids it needs.
    by_source: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    last_used: BTreeMap<String, String>,
    /// The ConfigMap data as last read or written.
    written: BTreeMap<String, String>,
    /// Something changed since the data was last computed for a write.
    dirty: bool,
    /// A writer task is running (it picks up whatever is dirty before it stops).
    writing: bool,
}

fn today() -> String {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    now.chars().take(10).collect()
}

/// Time the writer waits before each write, so that the records of a burst share it.
const COALESCE: Duration = Duration::from_millis(200);

impl UsageState {
    fn load(&mut self, data: BTreeMap<String, String>) {
        for (id, e) in gitseal_api::keys::read_usage(data.clone()) {
            self.last_used.insert(id.clone(), e.last_used);
            for o in e.objects {
                self.by_source
                    .entry(o.source)
                    .or_default()
                    .entry(o.object)
                    .or_default()
                    .insert(id.clone());
            }
        }
        self.written = data;
        self.loaded = true;
    }

    /// Replaces what `source` needs; whether that changed anything.
    fn set(&mut self, source: &str, needs: BTreeMap<String, BTreeSet<String>>, day: &str) -> bool {
        let mut changed = false;
        for id in needs.values().flatten() {
            if self.last_used.get(id).map(String::as_str) != Some(day) {
                self.last_used.insert(id.clone(), day.to_owned());
                changed = true;
            }
        }
        if needs.is_empty() {
            changed |= self.by_source.remove(source).is_some();
        } else if self.by_source.get(source) != Some(&needs) {
            self.by_source.insert(source.to_owned(), needs);
            changed = true;
        }
        changed
    }

    fn data(&self) -> BTreeMap<String, String> {
        let mut objects: BTreeMap<&str, Vec<ObjectRef>> = BTreeMap::new();
        for (source, objs) in &self.by_source {
            for (object, ids) in objs {
                for id in ids {
                    objects.entry(id).or_default().push(ObjectRef {
                        source: source.clone(),
                        object: object.clone(),
                    });
                }
            }
        }
        self.last_used
            .iter()
            .map(|(id, last)| {
                let entry = UsageEntry::new(
                    last.clone(),
                    objects.remove(id.as_str()).unwrap_or_default(),
                );
                let text = serde_json::to_string(&entry).unwrap_or_default();
                (id.clone(), text)
            })
            .collect()
    }
}

impl KeyUsage {
    pub fn new(keys: KeyStore) -> Self {
        KeyUsage {
            keys,
            state: Arc::default(),
        }
    }

    /// Records what `source` needs now (replacing what it needed before; no uses = none).
    /// When that changes what the usage ConfigMap in `namespace` says, a writer writes it
    /// behind (failures are logged and retried with the next change). Errs only when the
    /// ConfigMap could not be read the first time.
    pub async fn record(
        &self,
        client: &kube::Client,
        namespace: &str,
        source: &str,
        uses: &[Use],
    ) -> Result<(), kube::Error> {
        let snap = self.keys.snapshot();
        let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for u in uses {
            let ids: BTreeSet<String> = u
                .values
                .iter()
                .filter_map(|v| snap.opener(v))
                .map(|id| id.to_string())
                .collect();
            if !ids.is_empty() {
                needs.entry(u.object.clone()).or_default().extend(ids);
            }
        }
        let mut state = self.state.lock().await;
        if !state.loaded {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let data = api
                .get_opt(USAGE_CONFIGMAP)
                .await?
                .and_then(|cm| cm.data)
                .unwrap_or_default();
            state.load(data);
        }
        if state.set(source, needs, &today()) {
            state.dirty = true;
        }
        if state.dirty && !state.writing {
            state.writing = true;
            let writer = Writer {
                state: Arc::downgrade(&self.state),
                client: client.clone(),
                namespace: namespace.to_owned(),
            };
            tokio::spawn(writer.run());
        }
        Ok(())
    }

    /// After a successful GitSync pass: which keys the SealedSecrets it applied need (as its
    /// decrypt stage found them). Failures are logged, never fatal to the pass.
    pub async fn record_pass(
        &self,
        client: &kube::Client,
        namespace: &str,
        gitsync: (&str, &str),
        uses: &[Use],
    ) {
        let source = format!("gitsync:{}/{}", gitsync.0, gitsync.1);
        if let Err(e) = self.record(client, namespace, &source, uses).await {
            tracing::warn!(source, error = %kube_message(&e), "key usage: could not record");
        }
    }
}

/// Writes the usage ConfigMap behind [`KeyUsage::record`] until nothing more changed. It
/// stops, unwritten, once every [`KeyUsage`] is gone (the controllers stopped: this replica
/// no longer leads, and the next leader reads the ConfigMap afresh).
struct Writer {
    state: Weak<Mutex<UsageState>>,
    client: kube::Client,
    namespace: String,
}

impl Writer {
    async fn run(self) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        loop {
            tokio::time::sleep(COALESCE).await;
            let Some(state) = self.state.upgrade() else {
                return;
            };
            let data = {
                let mut s = state.lock().await;
                if !s.dirty {
                    s.writing = false;
                    return;
                }
                s.dirty = false;
                let data = s.data();
                if data == s.written {
                    continue;
                }
                data
            };
            let body = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": USAGE_CONFIGMAP, "namespace": self.namespace},
                "data": data,
            });
            let written = api
                .patch(
                    USAGE_CONFIGMAP,
                    &PatchParams::apply(KEYS_FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await;
            let mut s = state.lock().await;
            match written {
                Ok(_) => {
                    tracing::info!(keys = data.len(), "key usage updated");
                    s.written = data;
                }
                Err(e) => {
                    // Tried again with the next change (a pass or a reconcile records again).
                    tracing::warn!(error = %kube_message(&e), "key usage: could not write");
                    s.dirty = true;
                    s.writing = false;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_and_is_stable() {
        let mut s = UsageState::default();
        s.by_source.entry("gitsync:a/b".into()).or_default().insert(
            "app/db".into(),
            ["0a0b0c0d".to_string()].into_iter().collect(),
        );
        s.last_used.insert("0a0b0c0d".into(), "2026-11-26".into());
        s.last_used.insert("11111111".into(), "2026-10-01".into());
        let data = s.data();
        let mut t = UsageState::default();
        t.load(data.clone());
        assert_eq!(t.data(), data);
        let e: UsageEntry = serde_json::from_str(&data["11111111"]).unwrap();
        assert!(e.objects.is_empty());
    }

    #[test]
    fn many_objects_are_counted_and_only_the_first_listed() {
        let mut s = UsageState::default();
        let objects: BTreeMap<String, BTreeSet<String>> = (0..20_000)
            .map(|i| {
                (
                    format!("app-{i:05}/db"),
                    ["0a0b0c0d".to_string()].into_iter().collect(),
                )
            })
            .collect();
        assert!(s.set("gitsync:a/b", objects, "2026-11-27"));
        let data = s.data();
        let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size < 16 * 1024, "{size} bytes");
        let e: UsageEntry = serde_json::from_str(&data["0a0b0c0d"]).unwrap();
        assert_eq!(e.total(), 20_000);
        assert_eq!(e.objects.len(), gitseal_api::keys::USAGE_LISTED_PER_KEY);
        assert_eq!(e.unlisted(), 20_000 - e.objects.len());
        assert_eq!(e.objects[0].object, "app-00000/db");
        // Read back by a new leader: the listed objects still need the key.
        let mut t = UsageState::default();
        t.load(data);
        let again: UsageEntry = serde_json::from_str(&t.data()["0a0b0c0d"]).unwrap();
        assert_eq!(again.objects, e.objects);
        assert!(again.total() > 0);
        // A few objects: listed, no count written.
        let mut few = UsageState::default();
        few.set(
            "gitsync:a/b",
            [("app/db".to_string(), ["0a0b0c0d".to_string()].into())].into(),
            "2026-11-27",
        );
        assert!(!few.data()["0a0b0c0d"].contains("count"));
    }

    #[test]
    fn set_says_whether_anything_changed() {
        let mut s = UsageState::default();
        let needs = |ids: &[&str]| -> BTreeMap<String, BTreeSet<String>> {
            let mut m = BTreeMap::new();
            m.insert(
                "app/db".to_string(),
                ids.iter().map(|i| i.to_string()).collect(),
            );
            m
        };
        assert!(s.set("sealedsecret:app/db", needs(&["0a0b0c0d"]), "2026-11-26"));
        // The same again, the same day: nothing to write.
        assert!(!s.set("sealedsecret:app/db", needs(&["0a0b0c0d"]), "2026-11-26"));
        // Another day: the date moves.
        assert!(s.set("sealedsecret:app/db", needs(&["0a0b0c0d"]), "2026-11-27"));
        // Another key.
        assert!(s.set("sealedsecret:app/db", needs(&["11111111"]), "2026-11-27"));
        // Nothing needed any more, then again nothing.
        assert!(s.set("sealedsecret:app/db", BTreeMap::new(), "2026-11-27"));
        assert!(!s.set("sealedsecret:app/db", BTreeMap::new(), "2026-11-27"));
        assert_eq!(s.last_used.len(), 2);
    }
}
