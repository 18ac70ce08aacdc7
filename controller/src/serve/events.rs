//! Kubernetes Events: one recorder for the agent, one way to publish. Callers publish only
//! when something changed; a failure to publish is logged, never fatal, and publishing
//! gives up after 5 s.

use gitseal_api::names::EVENT_REPORTER;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::kube_error::kube_message;

/// The agent's Event recorder (reporting controller `gitseal-agent`, instance = the pod).
pub fn event_recorder(client: &kube::Client) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: EVENT_REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    )
}

/// Publishes an Event about `object`; the note is cut to 1,000 characters. The Recorder
/// folds an Event with the same type, reason and action into a series that keeps the first
/// note, so each kind of change needs its own action.
pub async fn publish(
    recorder: &Recorder,
    object: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    // Bounded: an API server that does not answer must not hold up a pass's report.
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        recorder.publish(&ev, object),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %kube_message(&e), "could not publish event"),
        Err(_) => tracing::warn!("could not publish event: no answer in time"),
    }
}
