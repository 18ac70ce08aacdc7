//! kstatus conditions of every status the agent writes: their schema, building them, and
//! deciding whether a new status differs from the live one (transition times aside), so status
//! is written only on change. kstatus-compatible, so `kubectl wait --for=condition=Ready` works.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The object is what its spec asks for.
pub const READY: &str = "Ready";
/// Only a change of the object can fix what failed.
pub const STALLED: &str = "Stalled";

/// The OpenAPI schema of a `conditions` list (a map keyed by `type`).
pub(crate) fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64"},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string"},
                "message": {"type": "string"}
            }
        }
    })
}

/// A condition stamped now; the message is cut to 1,000 characters.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.chars().take(1000).collect(),
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

/// A status with kstatus conditions.
pub trait WithConditions: Clone + PartialEq {
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

/// Gives conditions whose status did not change their old transition time, then says
/// whether `new` equals `old` apart from transition times (nothing to write).
pub fn settle<S: WithConditions>(new: &mut S, old: &S) -> bool {
    let mut old = old.clone();
    for c in new.conditions_mut().iter_mut() {
        if let Some(o) = old
            .conditions_mut()
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
    let strip = |s: &mut S| {
        for c in s.conditions_mut() {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
    };
    let mut a = new.clone();
    strip(&mut a);
    strip(&mut old);
    a == old
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GitSyncStatus;

    #[test]
    fn unchanged_status_keeps_its_time_and_is_not_written() {
        let mut old = GitSyncStatus::default();
        old.conditions
            .push(condition("Ready", true, "Ok", "m", Some(1)));
        old.conditions[0].last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let mut new = GitSyncStatus::default();
        new.conditions
            .push(condition("Ready", true, "Ok", "m", Some(1)));
        assert!(settle(&mut new, &old));
        assert_eq!(new, old);
        let mut changed = GitSyncStatus::default();
        changed
            .conditions
            .push(condition("Ready", false, "Bad", "m", Some(1)));
        assert!(!settle(&mut changed, &old));
    }
}
