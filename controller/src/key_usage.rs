//! Which sealing key opens which object, and when it was last needed: the ConfigMap
//! `gitseal-key-usage` in the agent namespace, so that a person can see whether a key is
//! still in use before retiring it (`gitseal keys list`, `gitseal keys retire`).
//!
//! Each data key is a key id; its value is JSON `{"lastUsed": "YYYY-MM-DD", "objects":
//! [{"source": …, "object": "ns/name"}]}`. The objects are those that need the key now (the
//! newest active key a value is sealed to); the date is a day, so the ConfigMap is written
//! only when what is in use changes, or once a day at most while it does not.
//!
//! Callers: the GitSync pass ([`KeyStore::record_pass`]) and the SealedSecret controller
//! ([`KeyStore::record_usage`] with source `sealedsecret`, [`uses_of`] to read an object).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::KeyId;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{KeyStore, USAGE_CONFIGMAP};
use crate::pass::SyncSpec;

const FIELD_MANAGER: &str = "gitseal-agent-keys";

/// One sealed object and the key ids of each of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// `namespace/name` of the SealedSecret (where its Secret lives).
    pub object: String,
    /// For each value, the key ids in its header.
    pub values: Vec<Vec<KeyId>>,
}

/// Reads the key ids of every value of a SealedSecret object (JSON form), without any key.
/// Values that are not readable are skipped (opening them fails anyway).
pub fn uses_of(object: String, sealed: &Value) -> Use {
    let values = sealed
        .pointer("/spec/encryptedData")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_str())
        .filter_map(|b| B64.decode(b.trim()).ok())
        .filter_map(|ct| gitseal::inspect(&ct).ok())
        .map(|h| h.key_ids)
        .collect();
    Use { object, values }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageEntry {
    /// `YYYY-MM-DD` (UTC) of the last time an object needed this key.
    pub last_used: String,
    pub objects: Vec<ObjectRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `gitsync:NAMESPACE/NAME` or `sealedsecret`.
    pub source: String,
    pub object: String,
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
    /// GitSync source → (revision, uses) of its last rendered revision.
    passes: HashMap<String, (String, Vec<Use>)>,
}

fn today() -> String {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    now.chars().take(10).collect()
}

impl UsageState {
    fn load(&mut self, data: BTreeMap<String, String>) {
        for (id, text) in &data {
            if let Ok(e) = serde_json::from_str::<UsageEntry>(text) {
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
        }
        self.written = data;
        self.loaded = true;
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
                let entry = UsageEntry {
                    last_used: last.clone(),
                    objects: objects.remove(id.as_str()).unwrap_or_default(),
                };
                let text = serde_json::to_string(&entry).unwrap_or_default();
                (id.clone(), text)
            })
            .collect()
    }
}

impl KeyStore {
    /// Records what `source` needs now (replacing what it needed before; no uses = none)
    /// and writes the usage ConfigMap in `namespace` when that changed what it says.
    pub async fn record_usage(
        &self,
        client: &kube::Client,
        namespace: &str,
        source: &str,
        uses: &[Use],
    ) -> Result<(), kube::Error> {
        let snap = self.snapshot();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let mut state = self.usage().lock().await;
        if !state.loaded {
            let data = api
                .get_opt(USAGE_CONFIGMAP)
                .await?
                .and_then(|cm| cm.data)
                .unwrap_or_default();
            state.load(data);
        }
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
        let day = today();
        for id in needs.values().flatten() {
            state.last_used.insert(id.clone(), day.clone());
        }
        if needs.is_empty() {
            state.by_source.remove(source);
        } else {
            state.by_source.insert(source.to_owned(), needs);
        }
        let data = state.data();
        if data == state.written {
            return Ok(());
        }
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": USAGE_CONFIGMAP, "namespace": namespace},
            "data": data,
        });
        api.patch(
            USAGE_CONFIGMAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
        tracing::info!(source, "key usage updated");
        state.written = data;
        Ok(())
    }

    /// After a successful GitSync pass: which keys the SealedSecrets of `revision` need.
    /// The rendered tree is read again only when the revision changed; failures are
    /// logged, never fatal to the pass.
    pub async fn record_pass(
        &self,
        client: &kube::Client,
        namespace: &str,
        spec: &SyncSpec,
        cache_dir: &Path,
        revision: &str,
    ) {
        let source = format!("gitsync:{}/{}", spec.namespace, spec.name);
        let cached = {
            let state = self.usage().lock().await;
            state
                .passes
                .get(&source)
                .filter(|(r, _)| r == revision)
                .map(|(_, u)| u.clone())
        };
        let uses = match cached {
            Some(u) => u,
            None => match scan(spec, cache_dir).await {
                Ok(u) => {
                    let mut state = self.usage().lock().await;
                    state
                        .passes
                        .insert(source.clone(), (revision.to_owned(), u.clone()));
                    u
                }
                Err(e) => {
                    tracing::warn!(source, error = %e, "key usage: could not read the rendered tree");
                    return;
                }
            },
        };
        if let Err(e) = self.record_usage(client, namespace, &source, &uses).await {
            tracing::warn!(source, error = %crate::apply::kube_message(&e), "key usage: could not record");
        }
    }
}

/// Renders the source's checked-out tree again and reads the SealedSecrets' headers.
async fn scan(spec: &SyncSpec, cache_dir: &Path) -> Result<Vec<Use>, String> {
    let cache_dir = std::path::absolute(cache_dir).map_err(|e| e.to_string())?;
    let tree = spec.source.cache_path(&cache_dir).join("tree");
    let objects = crate::render::render(&tree, &spec.path, spec.timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok(objects
        .iter()
        .filter(|o| o.is_sealed_secret())
        .map(|o| {
            let ns = spec
                .target_namespace
                .as_deref()
                .or(o.namespace())
                .unwrap_or("default");
            uses_of(format!("{ns}/{}", o.name()), &o.value)
        })
        .collect())
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
}
