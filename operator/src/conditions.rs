//! Status conditions: setting one (its transition time moves only when its
//! status does), which writer owns which, and the top-level `Ready` derived
//! from the others. Pure, so the rules are unit-tested.

use chrono::{DateTime, Utc};

use crate::crd::{AuctionStatus, Condition};

/// A condition's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    True,
    False,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::True => "True",
            State::False => "False",
            State::Unknown => "Unknown",
        }
    }
}

impl From<bool> for State {
    fn from(ok: bool) -> Self {
        if ok {
            State::True
        } else {
            State::False
        }
    }
}

pub const REGISTERED: &str = "Registered";
pub const SYNCED: &str = "Synced";
pub const PARTITIONS_READY: &str = "PartitionsReady";
pub const READY: &str = "Ready";
pub const SCALING_ACTIVE: &str = "ScalingActive";
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// The conditions the reconciler writes; the scaler writes the others.
pub const RECONCILER: [&str; 4] = [REGISTERED, SYNCED, PARTITIONS_READY, READY];
pub const SCALER: [&str; 2] = [SCALING_ACTIVE, SCALING_LIMITED];

/// One condition as it should be now.
#[derive(Debug, Clone, Copy)]
pub struct Set<'a> {
    pub type_: &'a str,
    pub state: State,
    pub reason: &'a str,
    pub message: &'a str,
}

/// Sets one condition in `conditions`.
pub fn set(
    conditions: &mut Vec<Condition>,
    new: Set<'_>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let value = new.state.as_str();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if c.status != value {
            c.last_transition_time = now;
        }
        c.status = value.into();
        c.reason = new.reason.into();
        c.message = new.message.into();
        c.observed_generation = generation;
        return;
    }
    conditions.push(Condition {
        type_: new.type_.into(),
        status: value.into(),
        reason: new.reason.into(),
        message: new.message.into(),
        observed_generation: generation,
        last_transition_time: now,
    });
}

pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is(conditions: &[Condition], type_: &str, state: State) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == state.as_str())
}

/// `Ready`: registered and mirrored, with no condition saying partitions or
/// scaling are wrong. Reason and message name the first that is not.
pub fn ready(conditions: &[Condition]) -> (State, &'static str, String) {
    if !is(conditions, REGISTERED, State::True) {
        return (
            State::False,
            "NotRegistered",
            "not registered with the platform".into(),
        );
    }
    if !is(conditions, SYNCED, State::True) {
        return (
            State::False,
            "NotSynced",
            "status does not mirror the platform".into(),
        );
    }
    for (type_, reason) in [
        (PARTITIONS_READY, "PartitionsNotReady"),
        (SCALING_ACTIVE, "ScalingInactive"),
    ] {
        if let Some(c) = get(conditions, type_).filter(|c| c.status == "False") {
            return (
                State::False,
                reason,
                format!("{type_}: {}: {}", c.reason, c.message),
            );
        }
    }
    (
        State::True,
        "Ready",
        "registered, mirrored, partitions and scaling in order".into(),
    )
}

/// The part of `status` the reconciler owns (what it applies): everything
/// but `capacity`, and only its own conditions.
pub fn reconciler_part(status: &AuctionStatus) -> AuctionStatus {
    let mut part = status.clone();
    part.capacity = None;
    part.conditions
        .retain(|c| RECONCILER.contains(&c.type_.as_str()));
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn cond(type_: &'static str, state: State, reason: &'static str) -> Set<'static> {
        Set {
            type_,
            state,
            reason,
            message: "m",
        }
    }

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let mut c = Vec::new();
        set(&mut c, cond(SYNCED, State::True, "Polled"), Some(1), at(1));
        set(&mut c, cond(SYNCED, State::True, "Polled"), Some(2), at(2));
        assert_eq!(c[0].last_transition_time, at(1));
        set(&mut c, cond(SYNCED, State::Unknown, "X"), Some(2), at(3));
        assert_eq!(
            (c[0].status.as_str(), c[0].last_transition_time),
            ("Unknown", at(3))
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn ready_needs_registration_and_sync_and_no_false_partitions_or_scaling() {
        let mut c = Vec::new();
        assert_eq!(ready(&c).1, "NotRegistered");
        set(
            &mut c,
            cond(REGISTERED, State::True, "Registered"),
            None,
            at(0),
        );
        set(&mut c, cond(SYNCED, State::True, "Polled"), None, at(0));
        assert_eq!(ready(&c).0, State::True);
        // Kafka unknown is not a failure of the auction.
        set(
            &mut c,
            cond(PARTITIONS_READY, State::Unknown, "KafkaUnavailable"),
            None,
            at(0),
        );
        assert_eq!(ready(&c).0, State::True);
        set(
            &mut c,
            cond(SCALING_ACTIVE, State::False, "SharedConsumerGroup"),
            None,
            at(0),
        );
        let (state, reason, message) = ready(&c);
        assert_eq!((state, reason), (State::False, "ScalingInactive"));
        assert!(message.contains("SharedConsumerGroup"), "{message}");
    }

    #[test]
    fn the_reconciler_part_leaves_the_scaler_fields_out() {
        let mut s = AuctionStatus {
            capacity: Some(Default::default()),
            ..Default::default()
        };
        set(
            &mut s.conditions,
            cond(SCALING_LIMITED, State::True, "PartitionCap"),
            None,
            at(0),
        );
        set(
            &mut s.conditions,
            cond(READY, State::True, "Ready"),
            None,
            at(0),
        );
        let part = reconciler_part(&s);
        assert!(part.capacity.is_none());
        assert_eq!(part.conditions.len(), 1);
        assert_eq!(part.conditions[0].type_, READY);
    }
}
