//! The auction role's replica decision: a pure function of the policy, what
//! was observed and the little history it keeps, so it can be property-tested
//! without a cluster.
//!
//! Rules, in order: the lag recommendation is `ceil(lag / lagPerReplica)`
//! within `[min, max]`, and at least 1 while an auction is live (only
//! auction-role replicas open and close auctions, so with `minReplicas: 0`,
//! no lag and no pre-scale nothing would ever close it); within the lead time
//! before a known close it is at
//! least the pre-scale count; nothing is ever above the partition count (a
//! replica without a partition has nothing to consume). A higher
//! recommendation applies at once (lag hurts bidders now). A lower one
//! applies only after the cooldown since the last change, and then only down
//! to the highest recommendation of the stabilisation window, so a brief dip
//! in lag does not flap the Deployment.

use std::collections::VecDeque;

/// Merged capacity policy of the auctions that share one Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub lag_per_replica: u64,
    pub pre_scale_lead_ms: i64,
    pub pre_scale_replicas: u32,
    pub cooldown_ms: i64,
    pub stabilization_ms: i64,
}

/// What the scaler saw on one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Milliseconds since the epoch.
    pub now: i64,
    /// Total lag of the auction role's group on `auction-bid`.
    pub lag: u64,
    pub partitions: u32,
    /// The Deployment's replicas now.
    pub current: u32,
    /// The earliest closing time of a live auction, if any.
    pub next_close: Option<i64>,
    /// Whether an auction of this Deployment is scheduled or open.
    pub live: bool,
}

/// Why the decision is what it is (for events and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unchanged,
    LagUp,
    PreScale,
    LagDown,
    PartitionCap,
    CoolingDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub replicas: u32,
    /// The recommendation before cooldown and stabilisation.
    pub recommended: u32,
    pub reason: Reason,
}

/// History the decision needs between passes, one per Deployment.
#[derive(Debug, Clone, Default)]
pub struct ScalerState {
    recommendations: VecDeque<(i64, u32)>,
    last_change: Option<i64>,
}

impl ScalerState {
    pub fn last_change(&self) -> Option<i64> {
        self.last_change
    }
}

/// The most replicas allowed: the maximum, and never more than the partitions.
fn cap(policy: &Policy, obs: &Observation) -> u32 {
    policy.max_replicas.max(1).min(obs.partitions.max(1))
}

/// The recommendation without history: lag, bounds, pre-scale, partition cap.
pub fn recommend(policy: &Policy, obs: &Observation) -> (u32, Reason) {
    let cap = cap(policy, obs);
    let per = policy.lag_per_replica.max(1);
    let by_lag = obs.lag.div_ceil(per).min(u64::from(u32::MAX)) as u32;
    let mut wanted = by_lag.clamp(
        policy.min_replicas,
        policy.max_replicas.max(policy.min_replicas),
    );
    if obs.live {
        wanted = wanted.max(1);
    }
    let mut reason = Reason::LagUp;
    if let Some(close) = obs.next_close {
        if obs.now < close
            && obs.now >= close - policy.pre_scale_lead_ms
            && policy.pre_scale_replicas > wanted
        {
            wanted = policy.pre_scale_replicas;
            reason = Reason::PreScale;
        }
    }
    if wanted > cap {
        (cap, Reason::PartitionCap)
    } else {
        (wanted, reason)
    }
}

/// One pass: the replicas to set now. Updates `state`.
pub fn decide(policy: &Policy, obs: &Observation, state: &mut ScalerState) -> Decision {
    let (recommended, why) = recommend(policy, obs);
    state.recommendations.push_back((obs.now, recommended));
    while state
        .recommendations
        .front()
        .is_some_and(|(at, _)| *at < obs.now - policy.stabilization_ms)
    {
        state.recommendations.pop_front();
    }
    let cap = cap(policy, obs);
    let decision = if obs.current > cap {
        // Above the partition count or the maximum: never allowed, so no cooldown.
        Decision {
            replicas: recommended.min(cap),
            recommended,
            reason: Reason::PartitionCap,
        }
    } else if recommended > obs.current {
        Decision {
            replicas: recommended,
            recommended,
            reason: why,
        }
    } else if recommended < obs.current {
        let cooled = state
            .last_change
            .is_none_or(|at| obs.now - at >= policy.cooldown_ms);
        let stable = state
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(recommended);
        if cooled && stable < obs.current {
            Decision {
                replicas: stable,
                recommended,
                reason: Reason::LagDown,
            }
        } else {
            Decision {
                replicas: obs.current,
                recommended,
                reason: Reason::CoolingDown,
            }
        }
    } else {
        Decision {
            replicas: obs.current,
            recommended,
            reason: Reason::Unchanged,
        }
    };
    if decision.replicas != obs.current {
        state.last_change = Some(obs.now);
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy {
            min_replicas: 1,
            max_replicas: 6,
            lag_per_replica: 100,
            pre_scale_lead_ms: 60_000,
            pre_scale_replicas: 5,
            cooldown_ms: 30_000,
            stabilization_ms: 10_000,
        }
    }

    fn obs(now: i64, lag: u64, current: u32) -> Observation {
        Observation {
            now,
            lag,
            partitions: 4,
            current,
            next_close: None,
            live: true,
        }
    }

    #[test]
    fn a_live_auction_keeps_one_replica_even_with_min_zero() {
        let mut p = policy();
        p.min_replicas = 0;
        p.cooldown_ms = 0;
        p.stabilization_ms = 0;
        let mut s = ScalerState::default();
        let d = decide(&p, &obs(0, 0, 3), &mut s);
        assert_eq!((d.replicas, d.reason), (1, Reason::LagDown));
        let mut idle = obs(1_000, 0, 1);
        idle.live = false;
        assert_eq!(
            decide(&p, &idle, &mut s).replicas,
            0,
            "no live auction: the minimum"
        );
    }

    #[test]
    fn lag_scales_up_at_once_and_down_after_cooldown() {
        let p = policy();
        let mut s = ScalerState::default();
        assert_eq!(decide(&p, &obs(0, 0, 1), &mut s).replicas, 1);
        let up = decide(&p, &obs(1_000, 250, 1), &mut s);
        assert_eq!((up.replicas, up.reason), (3, Reason::LagUp));
        // Lag gone, but inside the cooldown: stays.
        let hold = decide(&p, &obs(20_000, 0, 3), &mut s);
        assert_eq!((hold.replicas, hold.reason), (3, Reason::CoolingDown));
        let down = decide(&p, &obs(31_000, 0, 3), &mut s);
        assert_eq!((down.replicas, down.reason), (1, Reason::LagDown));
    }

    #[test]
    fn never_above_partitions() {
        let d = decide(&policy(), &obs(0, 10_000, 1), &mut ScalerState::default());
        assert_eq!((d.replicas, d.reason), (4, Reason::PartitionCap));
    }

    #[test]
    fn pre_scales_before_a_known_close() {
        let mut o = obs(0, 0, 1);
        o.partitions = 8;
        o.next_close = Some(50_000);
        let d = decide(&policy(), &o, &mut ScalerState::default());
        assert_eq!((d.replicas, d.reason), (5, Reason::PreScale));
        o.next_close = Some(120_000);
        assert_eq!(
            decide(&policy(), &o, &mut ScalerState::default()).replicas,
            1
        );
    }

    #[test]
    fn stabilisation_keeps_the_window_high() {
        let mut p = policy();
        p.cooldown_ms = 0;
        let mut s = ScalerState::default();
        decide(&p, &obs(0, 400, 4), &mut s);
        // A dip 5 s later is inside the 10 s window of a 4-replica recommendation.
        assert_eq!(decide(&p, &obs(5_000, 0, 4), &mut s).replicas, 4);
        assert_eq!(decide(&p, &obs(16_000, 0, 4), &mut s).replicas, 1);
    }

    proptest! {
        #[test]
        fn within_bounds_and_partitions(
            min in 0u32..5, extra in 0u32..10, per in 1u64..500, partitions in 1u32..16,
            steps in proptest::collection::vec((0i64..20_000, 0u64..5_000), 1..30),
            current0 in 0u32..20, cooldown in 0i64..60_000, window in 0i64..60_000,
            live in any::<bool>(),
        ) {
            let p = Policy { min_replicas: min, max_replicas: (min + extra).max(1), lag_per_replica: per,
                pre_scale_lead_ms: 10_000, pre_scale_replicas: min + extra, cooldown_ms: cooldown, stabilization_ms: window };
            let mut s = ScalerState::default();
            let (mut now, mut current) = (0i64, current0);
            let mut last_change: Option<i64> = None;
            for (dt, lag) in steps {
                now += dt;
                let o = Observation { now, lag, partitions, current, next_close: Some(100_000), live };
                let d = decide(&p, &o, &mut s);
                // A live auction always has a replica to open and close it.
                prop_assert!(!live || d.replicas >= 1, "{d:?} with a live auction");
                // Never above the partition count nor the maximum.
                prop_assert!(d.replicas <= partitions);
                prop_assert!(d.replicas <= p.max_replicas.max(1));
                // Enough replicas for the lag (and at least the minimum) right away,
                // unless the Deployment was above the caps and is being brought down.
                let cap = p.max_replicas.max(1).min(partitions);
                let need = (lag.div_ceil(per).min(u64::from(u32::MAX)) as u32)
                    .clamp(p.min_replicas, p.max_replicas.max(p.min_replicas))
                    .max(u32::from(live))
                    .min(cap);
                prop_assert!(d.replicas >= need || current > cap, "{d:?} below {need}");
                // A scale-down within the cooldown of a change happens only to respect the caps.
                if d.replicas < current && current <= partitions.min(p.max_replicas.max(1)) {
                    prop_assert!(last_change.is_none_or(|at| now - at >= cooldown));
                }
                if d.replicas != current { last_change = Some(now); }
                current = d.replicas;
            }
        }
    }
}
