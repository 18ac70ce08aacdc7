//! The agent's sealing keys: Secrets in its namespace labelled `gitseal.dev/sealing-key`
//! (`active` or `retired`), each holding one age identity under `identity`.
//!
//! Only `active` keys open values: a key stays able to decrypt until it is deliberately
//! retired. [`KeyStore`] is the always-current view the controllers read; the sealing keys
//! controller ([`crate::controllers::sealing_keys`]) keeps it current from a watch on the key
//! Secrets.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gitseal::{KeyId, Keyring, SecretKey};
use gitseal_api::PublicKeyInfo;
use gitseal_api::names::{ACTIVE, CREATED_ANNOTATION, IDENTITY_KEY, RETIRED, SEALING_KEY_LABEL};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use zeroize::Zeroize;

/// Loads every active sealing key of `namespace` with one list call. A key Secret that
/// cannot be read is skipped with a warning naming it (never its content), so one bad
/// Secret cannot stop all passes.
pub async fn load_ring(client: &kube::Client, namespace: &str) -> Result<Keyring, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("{SEALING_KEY_LABEL}={ACTIVE}")))
        .await?;
    let mut ring = Keyring::new();
    for mut s in list.items {
        match untrusted(&s) {
            Some(why) => tracing::warn!(
                secret = %s.metadata.name.as_deref().unwrap_or_default(),
                why,
                "sealing key Secret ignored: not written by the agent or `gitseal keys restore`"
            ),
            None => {
                if let Some(k) = read_key_secret(&s) {
                    k.keys.into_iter().for_each(|k| ring.add(k));
                }
            }
        }
        zeroize_secret(&mut s);
    }
    Ok(ring)
}

/// Why a Secret labelled as a sealing key is not one the agent trusts (it was planted
/// through the agent: see [`gitseal_api::keys::untrusted_key_secret`]), if so.
pub fn untrusted(s: &Secret) -> Option<&'static str> {
    gitseal_api::keys::untrusted_key_secret(&s.metadata)
}

/// Overwrites the data of a Secret object that is about to be dropped.
pub fn zeroize_secret(s: &mut Secret) {
    if let Some(d) = s.data.as_mut() {
        d.values_mut().for_each(|v| v.0.zeroize());
    }
}

/// One key Secret, read.
#[derive(Clone)]
pub struct KeySecret {
    pub name: String,
    pub active: bool,
    pub created: Timestamp,
    pub keys: Vec<SecretKey>,
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<KeyId> = self.keys.iter().map(SecretKey::id).collect();
        write!(f, "KeySecret({} {:?} [redacted])", self.name, ids)
    }
}

/// Reads a key Secret; `None` (with a warning naming the Secret) when it holds no
/// readable identity.
pub fn read_key_secret(s: &Secret) -> Option<KeySecret> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let label = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SEALING_KEY_LABEL));
    let active = label.map(String::as_str) == Some(ACTIVE);
    let created = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_ANNOTATION))
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let Some(bytes) = s.data.as_ref().and_then(|d| d.get(IDENTITY_KEY)) else {
        tracing::warn!(secret = %name, "sealing key Secret has no `identity` key; skipped");
        return None;
    };
    match gitseal::keys::read_identity_file(&bytes.0[..]) {
        Ok(keys) => Some(KeySecret {
            name,
            active,
            created,
            keys,
        }),
        Err(e) => {
            tracing::warn!(secret = %name, error = %e, "sealing key Secret unreadable; skipped");
            None
        }
    }
}

/// One consistent view of the keys.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Active keys only: what opens values.
    pub ring: Keyring,
    /// Every key, active and retired, oldest first.
    pub public: Vec<PublicKeyInfo>,
    /// Creation time of each active key.
    pub created: HashMap<KeyId, Timestamp>,
}

impl Snapshot {
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a KeySecret>) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut seen = std::collections::HashSet::new();
        let mut all: Vec<&KeySecret> = secrets.into_iter().collect();
        // Active before retired, so a key found in both is shown active.
        all.sort_by_key(|k| (!k.active, k.created, k.name.clone()));
        for ks in all {
            for k in &ks.keys {
                if !seen.insert(k.public().to_string()) {
                    continue;
                }
                if ks.active {
                    snap.ring.add(k.clone());
                    snap.created.insert(k.id(), ks.created);
                }
                snap.public.push(PublicKeyInfo {
                    id: k.id().to_string(),
                    public_key: k.public().to_string(),
                    created: ks.created.to_string(),
                    state: if ks.active { ACTIVE } else { RETIRED }.into(),
                    secret: ks.name.clone(),
                });
            }
        }
        snap.public
            .sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        snap
    }

    /// The newest active key: the one to seal with.
    pub fn newest_active(&self) -> Option<&PublicKeyInfo> {
        gitseal_api::keys::newest_active(&self.public)
    }

    /// Of the active keys among `ids`, the newest: the key that opens a value sealed to
    /// `ids` (and that must stay while the value is not sealed again).
    pub fn opener(&self, ids: &[KeyId]) -> Option<KeyId> {
        ids.iter()
            .filter_map(|id| self.created.get(id).map(|t| (*t, *id)))
            .max()
            .map(|(_, id)| id)
    }
}

/// The shared, always-current keys. Cloning is cheap.
#[derive(Clone, Default)]
pub struct KeyStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    snapshot: RwLock<Arc<Snapshot>>,
    ready: tokio::sync::Notify,
    is_ready: std::sync::atomic::AtomicBool,
    /// Bumped whenever the set of keys that open values changes.
    opening_keys: tokio::sync::watch::Sender<u64>,
}

impl Default for StoreInner {
    fn default() -> Self {
        StoreInner {
            snapshot: RwLock::default(),
            ready: tokio::sync::Notify::new(),
            is_ready: std::sync::atomic::AtomicBool::new(false),
            opening_keys: tokio::sync::watch::channel(0).0,
        }
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyStore({:?})", self.snapshot().ring)
    }
}

impl KeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The active keys now (a clone of a few keys).
    pub fn ring(&self) -> Keyring {
        self.snapshot().ring.clone()
    }

    /// The whole current view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.inner.snapshot.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Public keys, oldest first.
    pub fn public_keys(&self) -> Vec<PublicKeyInfo> {
        self.snapshot().public.clone()
    }

    pub(crate) fn set(&self, snap: Snapshot) {
        let ids = |ring: &gitseal::Keyring| ring.keys().map(|k| k.id()).collect::<Vec<_>>();
        let new_ids = ids(&snap.ring);
        let snap = Arc::new(snap);
        let old = match self.inner.snapshot.write() {
            Ok(mut s) => std::mem::replace(&mut *s, snap),
            Err(p) => std::mem::replace(&mut *p.into_inner(), snap),
        };
        if ids(&old.ring) != new_ids {
            self.inner.opening_keys.send_modify(|n| *n += 1);
        }
        if !self
            .inner
            .is_ready
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.inner.ready.notify_waiters();
        }
    }

    /// Yields each time the keys that open values change (added, restored, retired): what
    /// could not be opened before may open now.
    pub fn changes(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let rx = self.inner.opening_keys.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }

    /// Waits until the keys were read from the cluster once.
    pub async fn ready(&self) {
        loop {
            let notified = self.inner.ready.notified();
            if self
                .inner
                .is_ready
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(name: &str, active: bool, secs: i64) -> KeySecret {
        KeySecret {
            name: name.into(),
            active,
            created: Timestamp::from_second(secs).unwrap(),
            keys: vec![SecretKey::generate()],
        }
    }

    #[test]
    fn only_active_keys_open_and_the_newest_seals() {
        let (a, b, c) = (ks("a", true, 10), ks("b", true, 20), ks("c", false, 30));
        let snap = Snapshot::from_secrets([&a, &b, &c]);
        assert_eq!(snap.ring.len(), 2);
        assert_eq!(snap.public.len(), 3);
        assert_eq!(snap.newest_active().unwrap().secret, "b");
        let ids = [a.keys[0].id(), b.keys[0].id(), c.keys[0].id()];
        assert_eq!(snap.opener(&ids), Some(b.keys[0].id()));
        assert_eq!(snap.opener(&ids[..1]), Some(a.keys[0].id()));
        assert_eq!(snap.opener(&ids[2..]), None);
        let shown = format!("{a:?} {snap:?}");
        assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
    }
}
