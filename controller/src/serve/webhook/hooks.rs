//! The webhook paths the agent answers, each one Receiver's: filled by the Receiver
//! controller ([`crate::controllers::receiver`]), read by the endpoint. A path is
//! `/hook/<id>`, the id a SHA-256 of the Receiver's namespace, name and token, so it names
//! nothing and changes with the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use gitseal_api::ReceiverType;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::limits::{Bucket, Seen};
use super::verify::hex;

/// Proven requests one Receiver may send at once, and per second after that.
pub const RECEIVER_BURST: u32 = 10;
pub const RECEIVER_PER_SEC: f64 = 1.0;
/// Accepted requests one Receiver remembers (to refuse replays).
pub const RECEIVER_SEEN: usize = 4096;

/// One Receiver, as the endpoint needs it.
pub struct Hook {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub kind: ReceiverType,
    /// The GitSync of the same namespace whose pass a push starts.
    pub git_sync: String,
    pub token: SecretSlice<u8>,
    pub bucket: Mutex<Bucket>,
    pub seen: Mutex<Seen>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Hook({}/{} {} -> GitSync {}, token redacted)",
            self.namespace,
            self.name,
            self.kind.as_str(),
            self.git_sync
        )
    }
}

impl Hook {
    pub fn new(
        namespace: String,
        name: String,
        uid: String,
        kind: ReceiverType,
        git_sync: String,
        token: SecretSlice<u8>,
    ) -> Self {
        Hook {
            namespace,
            name,
            uid,
            kind,
            git_sync,
            token,
            bucket: Mutex::new(Bucket::new(RECEIVER_BURST, RECEIVER_PER_SEC)),
            seen: Mutex::new(Seen::new(RECEIVER_SEEN)),
        }
    }

    /// The id of its path.
    pub fn id(&self) -> String {
        path_id(&self.namespace, &self.name, self.token.expose_secret())
    }

    /// Whether `other` routes the same way (then the old one, with its rate and replay
    /// memory, stays).
    fn same_as(&self, other: &Hook) -> bool {
        self.uid == other.uid
            && self.kind == other.kind
            && self.git_sync == other.git_sync
            && self.token.expose_secret() == other.token.expose_secret()
    }
}

/// `sha256("gitseal.dev/receiver" 0 namespace 0 name 0 token)`, hex.
pub fn path_id(namespace: &str, name: &str, token: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        b"gitseal.dev/receiver".as_slice(),
        namespace.as_bytes(),
        name.as_bytes(),
    ] {
        h.update(part);
        h.update([0]);
    }
    h.update(token);
    hex(&h.finalize())
}

/// Every Receiver's path. Cloning is cheap; clones share one table.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    inner: Arc<RwLock<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Arc<Hook>>,
    /// (namespace, name) → id.
    by_receiver: HashMap<(String, String), String>,
}

impl Hooks {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes `hook`'s path to it (replacing what its Receiver had); returns the path id.
    pub fn set(&self, hook: Hook) -> String {
        let id = hook.id();
        let key = (hook.namespace.clone(), hook.name.clone());
        let mut t = self.write();
        if let Some(old) = t.by_receiver.get(&key).cloned() {
            if old == id && t.by_id.get(&id).is_some_and(|h| h.same_as(&hook)) {
                return id;
            }
            t.by_id.remove(&old);
        }
        t.by_id.insert(id.clone(), Arc::new(hook));
        t.by_receiver.insert(key, id.clone());
        id
    }

    /// Stops answering for the Receiver `namespace/name`.
    pub fn remove(&self, namespace: &str, name: &str) {
        let mut t = self.write();
        if let Some(id) = t
            .by_receiver
            .remove(&(namespace.to_owned(), name.to_owned()))
        {
            t.by_id.remove(&id);
        }
    }

    /// Keeps only the Receivers for which `keep(namespace, name, uid)` holds.
    pub fn retain(&self, keep: impl Fn(&str, &str, &str) -> bool) {
        let mut t = self.write();
        let gone: Vec<(String, String)> = t
            .by_id
            .values()
            .filter(|h| !keep(&h.namespace, &h.name, &h.uid))
            .map(|h| (h.namespace.clone(), h.name.clone()))
            .collect();
        for key in gone {
            if let Some(id) = t.by_receiver.remove(&key) {
                t.by_id.remove(&id);
            }
        }
    }

    /// The Receiver of path id `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Hook>> {
        self.read().by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, token: &str) -> Hook {
        Hook::new(
            "ns".into(),
            name.into(),
            format!("uid-{name}"),
            ReceiverType::Github,
            "apps".into(),
            SecretSlice::from(token.as_bytes().to_vec()),
        )
    }

    #[test]
    fn paths_follow_the_token_and_keep_their_limits() {
        let hooks = Hooks::default();
        let id = hooks.set(hook("r", "token-one-0123456"));
        assert_eq!(id.len(), 64);
        assert_ne!(id, path_id("ns", "r2", b"token-one-0123456"));
        assert_ne!(id, path_id("other", "r", b"token-one-0123456"));
        // The same Receiver set again keeps its bucket (and so its rate).
        let first = hooks.get(&id).unwrap();
        assert!(first.bucket.lock().unwrap().take());
        assert_eq!(hooks.set(hook("r", "token-one-0123456")), id);
        assert!(Arc::ptr_eq(&first, &hooks.get(&id).unwrap()));
        // A new token: a new path, and the old one is gone.
        let id2 = hooks.set(hook("r", "token-two-0123456"));
        assert_ne!(id, id2);
        assert!(hooks.get(&id).is_none() && hooks.get(&id2).is_some());
        hooks.set(hook("s", "token-three-01234"));
        assert_eq!(hooks.len(), 2);
        hooks.retain(|_, name, _| name == "s");
        assert!(hooks.get(&id2).is_none());
        hooks.remove("ns", "s");
        assert!(hooks.is_empty());
        assert!(!format!("{:?}", hook("r", "token-one-0123456")).contains("token-one"));
    }
}
