//! kstatus conditions shared by every status the agent writes: building them, and deciding
//! whether a new status differs from the live one (transition times aside), so status is
//! written only on change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{GitSyncStatus, SealedSecretStatus};

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

impl WithConditions for GitSyncStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

impl WithConditions for SealedSecretStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
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
