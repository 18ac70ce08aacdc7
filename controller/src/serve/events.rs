//! Kubernetes Events: one recorder for the agent, one way to publish. Callers publish only
//! when something changed; a failure to publish is logged, never fatal, and publishing
//! gives up after 5 s.
//!
//! Why not kube's `Recorder`: it folds every Event with the same object, type, reason and
//! action into one series that keeps the *first* note, so after a few passes `kubectl get
//! events` showed the revision of the first one. Here the note is part of what makes two
//! Events the same: an identical note within [`SERIES_TTL`] counts as a repeat (a series,
//! as client-go's correlator does), a new note is a new Event, so the message shown is
//! always the current one.

use std::collections::HashMap;
use std::time::Duration;

use gitseal_api::names::EVENT_REPORTER;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::Mutex;

use crate::kube_error::kube_message;

/// How long an Event stays the one a repeat of its note counts on (kube's and client-go's
/// figure).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// The API server refuses longer notes (1 kB).
const MAX_NOTE_BYTES: usize = 1024;

/// What makes two Events the same: the object, type, reason, action and note.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

#[derive(Debug, Clone)]
struct Seen {
    event: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// The agent's Event recorder (reporting controller `gitseal-agent`, instance = the pod).
pub struct Recorder {
    client: kube::Client,
    instance: String,
    seen: Mutex<HashMap<Key, Seen>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({})", self.instance)
    }
}

/// The agent's recorder.
pub fn event_recorder(client: &kube::Client) -> Recorder {
    Recorder {
        client: client.clone(),
        instance: std::env::var("POD_NAME").unwrap_or_else(|_| EVENT_REPORTER.to_owned()),
        seen: Mutex::new(HashMap::new()),
    }
}

/// `note` cut to at most [`MAX_NOTE_BYTES`] bytes, at a character boundary.
fn cut(note: &str) -> String {
    let mut end = note.len().min(MAX_NOTE_BYTES);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_owned()
}

/// Publishes an Event about `object`: a repeat of the same note within [`SERIES_TTL`]
/// counts on the Event already there; any other note is a new Event.
pub async fn publish(
    recorder: &Recorder,
    object: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    // Bounded: an API server that does not answer must not hold up a pass's report.
    match tokio::time::timeout(
        Duration::from_secs(5),
        recorder.publish(object, warning, reason, action, note),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %kube_message(&e), "could not publish event"),
        Err(_) => tracing::warn!("could not publish event: no answer in time"),
    }
}

impl Recorder {
    async fn publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = cut(note);
        let now = Timestamp::now();
        let key = Key {
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.clone(),
        };
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let mut seen = self.seen.lock().await;
        let ttl = jiff_span(SERIES_TTL);
        seen.retain(|_, s| now < s.last + ttl);
        if let Some(s) = seen.get_mut(&key) {
            s.count += 1;
            s.last = now;
            let patch = serde_json::json!({
                "series": EventSeries { count: s.count, last_observed_time: MicroTime(now) }
            });
            let (name, ns) = (s.event.clone(), s.namespace.clone());
            drop(seen);
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
            return api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ());
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or(EVENT_REPORTER),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(object.clone()),
            note: Some(note),
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            reporting_controller: Some(EVENT_REPORTER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        seen.insert(
            key,
            Seen {
                event: name,
                namespace,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

fn jiff_span(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or(k8s_openapi::jiff::SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(600); // 1,200 bytes
        let c = cut(&long);
        assert!(c.len() <= MAX_NOTE_BYTES && c.len() >= MAX_NOTE_BYTES - 1);
        assert!(c.chars().all(|ch| ch == 'é'));
    }
}
