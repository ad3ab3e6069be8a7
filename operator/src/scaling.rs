//! The auction role's replica decision: a pure function of the policy, what
//! was observed and the little history it keeps, so it can be property-tested
//! without a cluster. docs/operator.md has the rules in a table, next to
//! KEDA's.
//!
//! Rules, in order: the lag recommendation is `ceil(lag / lagPerReplica)`
//! within `[min, max]`, and at least 1 while an auction is live and no other
//! Deployment of the consumer group runs (only auction-role replicas open and
//! close auctions, so with `minReplicas: 0`, no lag and no pre-scale nothing
//! would ever close it); within the lead time before a known close it is at
//! least the pre-scale count; nothing is ever above the partitions left to
//! this Deployment (the topic's count less the replicas of the group's other
//! Deployments: a consumer without a partition has nothing to consume). A
//! higher recommendation applies at once (lag hurts bidders now). A lower one
//! applies only after the cooldown since the last change, and then only down
//! to the highest recommendation of the stabilisation window, so a brief dip
//! in lag does not flap the Deployment. When the lag cannot be read the
//! minimum and the pre-scale still apply, but nothing is scaled down.

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
    /// Total lag of the Deployment's consumer group on `auction-bid`; `None`
    /// when Kafka could not be read.
    pub lag: Option<u64>,
    /// Partitions of `auction-bid`; `None` when never read (no partition cap
    /// then; a count read earlier is still a lower bound, partitions only grow).
    pub partitions: Option<u32>,
    /// Replicas of the other Deployments of the same consumer group: they hold
    /// partitions this Deployment cannot have.
    pub shared: u32,
    /// The Deployment's replicas now.
    pub current: u32,
    /// The earliest closing time of a live auction, if any.
    pub next_close: Option<i64>,
    /// Whether an auction of this Deployment is scheduled or open.
    pub live: bool,
}

/// Why the decision is what it is (status, events and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unchanged,
    LagUp,
    PreScale,
    LagDown,
    PartitionCap,
    MaxReplicas,
    CoolingDown,
    /// Kafka could not be read: nothing is scaled down.
    LagUnknown,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unchanged => "Unchanged",
            Reason::LagUp => "LagUp",
            Reason::PreScale => "PreScale",
            Reason::LagDown => "LagDown",
            Reason::PartitionCap => "PartitionCap",
            Reason::MaxReplicas => "MaxReplicas",
            Reason::CoolingDown => "CoolingDown",
            Reason::LagUnknown => "LagUnknown",
        }
    }
}

/// Which bound held the recommendation down (the `ScalingLimited` condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The partitions left to this Deployment.
    PartitionCap,
    MaxReplicas,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PartitionCap => "PartitionCap",
            Limit::MaxReplicas => "MaxReplicas",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub replicas: u32,
    /// The recommendation before cooldown and stabilisation.
    pub recommended: u32,
    pub reason: Reason,
    /// Set when the lag or the pre-scale asked for more than a bound allows.
    pub limited: Option<Limit>,
}

/// History the decision needs between passes, one per Deployment.
#[derive(Debug, Clone, Default)]
pub struct ScalerState {
    recommendations: VecDeque<(i64, u32)>,
    last_change: Option<i64>,
}

impl ScalerState {
    /// The history a new leader rebuilds from `status.capacity`: the last
    /// change (so its cooldown holds) and what it set then (so the window does).
    pub fn resume(last_change: Option<i64>, replicas: u32) -> Self {
        Self {
            recommendations: last_change.map(|at| (at, replicas)).into_iter().collect(),
            last_change,
        }
    }

    pub fn last_change(&self) -> Option<i64> {
        self.last_change
    }
}

/// The most replicas allowed and the bound that sets it.
fn cap(policy: &Policy, obs: &Observation) -> (u32, Limit) {
    let max = policy.max_replicas.max(1);
    match obs.partitions {
        Some(p) if p.saturating_sub(obs.shared) < max => {
            (p.saturating_sub(obs.shared), Limit::PartitionCap)
        }
        _ => (max, Limit::MaxReplicas),
    }
}

/// The recommendation without history: lag, bounds, pre-scale, partition cap.
pub fn recommend(policy: &Policy, obs: &Observation) -> (u32, Reason, Option<Limit>) {
    let (cap, bound) = cap(policy, obs);
    let per = policy.lag_per_replica.max(1);
    let by_lag = obs
        .lag
        .map_or(0, |lag| lag.div_ceil(per).min(u64::from(u32::MAX)) as u32);
    let upper = policy.max_replicas.max(policy.min_replicas);
    let mut limited = (by_lag > upper).then_some(Limit::MaxReplicas);
    let mut wanted = by_lag.clamp(policy.min_replicas, upper);
    // Another Deployment of the group already runs auction-role replicas.
    if obs.live && obs.shared == 0 {
        wanted = wanted.max(1);
    }
    let mut reason = if limited.is_some() {
        Reason::MaxReplicas
    } else {
        Reason::LagUp
    };
    if let Some(close) = obs.next_close {
        if obs.now < close
            && obs.now >= close.saturating_sub(policy.pre_scale_lead_ms)
            && policy.pre_scale_replicas > wanted
        {
            wanted = policy.pre_scale_replicas;
            reason = Reason::PreScale;
        }
    }
    if wanted > cap {
        limited = Some(bound);
        let reason = match bound {
            Limit::PartitionCap => Reason::PartitionCap,
            Limit::MaxReplicas => Reason::MaxReplicas,
        };
        (cap, reason, limited)
    } else {
        (wanted, reason, limited)
    }
}

/// One pass: the replicas to set now. Updates `state`.
pub fn decide(policy: &Policy, obs: &Observation, state: &mut ScalerState) -> Decision {
    let (recommended, why, limited) = recommend(policy, obs);
    // A recommendation made blind (no lag) says nothing about the demand.
    if obs.lag.is_some() {
        state.recommendations.push_back((obs.now, recommended));
    }
    while state
        .recommendations
        .front()
        .is_some_and(|(at, _)| *at < obs.now.saturating_sub(policy.stabilization_ms))
    {
        state.recommendations.pop_front();
    }
    let (cap, bound) = cap(policy, obs);
    let hold = |reason| Decision {
        replicas: obs.current,
        recommended,
        reason,
        limited,
    };
    let decision = if obs.current > cap {
        // Above the partitions or the maximum: never allowed, so no cooldown.
        Decision {
            replicas: recommended.min(cap),
            recommended,
            reason: match bound {
                Limit::PartitionCap => Reason::PartitionCap,
                Limit::MaxReplicas => Reason::MaxReplicas,
            },
            limited: Some(bound),
        }
    } else if recommended > obs.current {
        Decision {
            replicas: recommended,
            recommended,
            reason: why,
            limited,
        }
    } else if recommended < obs.current {
        let cooled = state
            .last_change
            .is_none_or(|at| obs.now.saturating_sub(at) >= policy.cooldown_ms);
        let stable = state
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(recommended)
            .max(recommended);
        if obs.lag.is_none() {
            hold(Reason::LagUnknown)
        } else if cooled && stable < obs.current {
            Decision {
                replicas: stable,
                recommended,
                reason: Reason::LagDown,
                limited,
            }
        } else {
            hold(Reason::CoolingDown)
        }
    } else {
        hold(if obs.lag.is_none() {
            Reason::LagUnknown
        } else if limited.is_some() {
            why
        } else {
            Reason::Unchanged
        })
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
            lag: Some(lag),
            partitions: Some(4),
            shared: 0,
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
        assert_eq!(
            (d.replicas, d.reason, d.limited),
            (4, Reason::PartitionCap, Some(Limit::PartitionCap))
        );
        let mut o = obs(0, 10_000, 1);
        o.partitions = Some(16);
        let d = decide(&policy(), &o, &mut ScalerState::default());
        assert_eq!(
            (d.replicas, d.reason, d.limited),
            (6, Reason::MaxReplicas, Some(Limit::MaxReplicas))
        );
    }

    #[test]
    fn the_partitions_are_shared_with_the_other_deployments_of_the_group() {
        let mut o = obs(0, 1_000, 1);
        o.partitions = Some(3);
        o.shared = 1;
        let d = decide(&policy(), &o, &mut ScalerState::default());
        assert_eq!((d.replicas, d.limited), (2, Some(Limit::PartitionCap)));
        // The others hold every partition: a live auction is served by them.
        o.shared = 3;
        o.current = 0;
        assert_eq!(
            decide(&policy(), &o, &mut ScalerState::default()).replicas,
            0
        );
    }

    #[test]
    fn pre_scales_before_a_known_close() {
        let mut o = obs(0, 0, 1);
        o.partitions = Some(8);
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
    fn without_lag_the_minimum_and_the_pre_scale_apply_but_nothing_scales_down() {
        let mut p = policy();
        p.min_replicas = 2;
        let mut o = obs(0, 0, 0);
        o.lag = None;
        let d = decide(&p, &o, &mut ScalerState::default());
        assert_eq!((d.replicas, d.reason), (2, Reason::LagUp));
        o.next_close = Some(30_000);
        o.partitions = None;
        let d = decide(&p, &o, &mut ScalerState::default());
        assert_eq!((d.replicas, d.reason), (5, Reason::PreScale));
        o.next_close = None;
        o.current = 5;
        o.now = 1_000_000;
        let d = decide(&p, &o, &mut ScalerState::default());
        assert_eq!((d.replicas, d.reason), (5, Reason::LagUnknown));
    }

    #[test]
    fn capacity_is_released_after_the_last_close_once_cooled_down() {
        let p = policy();
        let mut s = ScalerState::default();
        let mut o = obs(0, 0, 1);
        o.next_close = Some(50_000);
        o.partitions = Some(8);
        assert_eq!(decide(&p, &o, &mut s).replicas, 5, "pre-scaled");
        // Sold early (buy-now) at 20 s: nothing is live, but the cooldown from 0 holds.
        o.live = false;
        o.next_close = None;
        o.current = 5;
        o.now = 20_000;
        assert_eq!(decide(&p, &o, &mut s).replicas, 5);
        o.now = 45_000;
        let d = decide(&p, &o, &mut s);
        assert_eq!((d.replicas, d.reason), (1, Reason::LagDown));
    }

    #[test]
    fn a_resumed_state_keeps_the_cooldown_of_the_last_leader() {
        let mut p = policy();
        p.cooldown_ms = 300_000;
        let mut s = ScalerState::resume(Some(0), 3);
        let d = decide(&p, &obs(5_000, 0, 3), &mut s);
        assert_eq!((d.replicas, d.reason), (3, Reason::CoolingDown));
        let d = decide(&p, &obs(300_000, 0, 3), &mut s);
        assert_eq!((d.replicas, d.reason), (1, Reason::LagDown));
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
            steps in proptest::collection::vec((0i64..20_000, proptest::option::weighted(0.9, 0u64..5_000)), 1..30),
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
                let o = Observation { now, lag, partitions: Some(partitions), shared: 0, current, next_close: Some(100_000), live };
                let d = decide(&p, &o, &mut s);
                // A live auction always has a replica to open and close it.
                prop_assert!(!live || d.replicas >= 1, "{d:?} with a live auction");
                // Never above the partition count nor the maximum.
                prop_assert!(d.replicas <= partitions);
                prop_assert!(d.replicas <= p.max_replicas.max(1));
                // Enough replicas for the lag (and at least the minimum) right away,
                // unless the Deployment was above the caps and is being brought down.
                let cap = p.max_replicas.max(1).min(partitions);
                let need = (lag.unwrap_or(0).div_ceil(per).min(u64::from(u32::MAX)) as u32)
                    .clamp(p.min_replicas, p.max_replicas.max(p.min_replicas))
                    .max(u32::from(live))
                    .min(cap);
                prop_assert!(d.replicas >= need || current > cap, "{d:?} below {need}");
                // A scale-down within the cooldown of a change happens only to respect the caps,
                // and never while the lag is unknown.
                if d.replicas < current && current <= cap {
                    prop_assert!(lag.is_some(), "{d:?} scaled down blind");
                    prop_assert!(last_change.is_none_or(|at| now - at >= cooldown));
                }
                if d.replicas != current { last_change = Some(now); }
                current = d.replicas;
            }
        }

        /// One simulated hour of lag as a sine wave, a pass every 15 s: at most
        /// one scale-down per cooldown (plus one), never above the cap, and a
        /// Deployment that starts above the cap is brought to it at once.
        #[test]
        fn a_sine_wave_of_lag_does_not_flap(
            amplitude in 0u64..20_000, period_s in 60i64..3_600, phase in 0.0f64..6.3,
            cooldown_s in 15i64..900, window_s in 0i64..300, partitions in 1u32..12,
            max in 1u32..12, min in 0u32..3, start_above in 0u32..5,
        ) {
            let p = Policy { min_replicas: min.min(max), max_replicas: max, lag_per_replica: 500,
                pre_scale_lead_ms: 0, pre_scale_replicas: max, cooldown_ms: cooldown_s * 1000,
                stabilization_ms: window_s * 1000 };
            let cap = max.min(partitions);
            let mut current = cap + start_above;
            let mut s = ScalerState::default();
            let mut downs = 0i64;
            for step in 0..=240i64 {
                let t = step * 15;
                let wave = (std::f64::consts::TAU * t as f64 / period_s as f64 + phase).sin();
                let lag = (amplitude as f64 * (1.0 + wave) / 2.0) as u64;
                let o = Observation { now: t * 1000, lag: Some(lag), partitions: Some(partitions),
                    shared: 0, current, next_close: None, live: true };
                let d = decide(&p, &o, &mut s);
                prop_assert!(d.replicas <= cap, "{d:?} above the cap {cap} at {t} s");
                if step == 0 && start_above > 0 {
                    prop_assert!(matches!(d.reason, Reason::PartitionCap | Reason::MaxReplicas), "{d:?}");
                }
                if d.replicas < current {
                    downs += 1;
                }
                current = d.replicas;
            }
            prop_assert!(downs <= 1 + 3600 / cooldown_s, "{downs} scale-downs with a {cooldown_s} s cooldown");
        }
    }
}
