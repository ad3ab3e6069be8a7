//! The lag scaler: every interval it lists the `Auction`s, groups the
//! Deployments they name by consumer group (`targets`), reads each group's
//! lag on `auction-bid`, asks `scaling::decide` for the first Deployment of
//! each group, applies the answer to its scale subresource and reports the
//! decision in every Auction's `status.capacity` and conditions.
//!
//! Kafka being down does not stop it: without lag the minimum and the
//! pre-scale still apply (nothing is scaled down), and `ScalingActive=False`
//! says why. A new leader resumes each Deployment's cooldown from
//! `status.capacity.lastScaleTime`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::conditions::{self, State};
use crate::crd::{Auction, CapacityStatus};
use crate::metrics::Metrics;
use crate::reconcile::Error;
use crate::scaling::{decide, Decision, Observation, Reason, ScalerState};
use crate::targets::{by_group, merge, Key, Target};
use bowchat_kafka::KafkaAdmin;

#[derive(Debug, Clone)]
pub struct ScalerConfig {
    pub interval: Duration,
    /// Logical bid topic.
    pub bid_topic: String,
    /// The auction role's consumer group, for Auctions that name none.
    pub group: String,
    /// Only these namespaces (None: all).
    pub namespace: Option<String>,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            bid_topic: "auction-bid".into(),
            group: "auction-role".into(),
            namespace: None,
        }
    }
}

/// The field manager the operator writes `spec.replicas` with.
pub const FIELD_MANAGER: &str = "bowchat-operator";

/// The field manager of the scaler's part of an Auction's status
/// (`capacity`, `ScalingActive`, `ScalingLimited`); the reconciler applies
/// the rest as `bowchat-operator`.
pub const STATUS_MANAGER: &str = "bowchat-operator-scaler";

/// Sets the Deployment's replicas by server-side apply on its scale
/// subresource, so the operator owns `spec.replicas` (the chart leaves it
/// out, and `helm upgrade` keeps what the operator set).
pub async fn apply_replicas(
    deployments: &Api<Deployment>,
    name: &str,
    replicas: u32,
) -> Result<(), kube::Error> {
    let scale = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    deployments
        .patch_scale(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&scale),
        )
        .await
        .map(|_| ())
}

/// What the scaler reports on every Auction of one Deployment.
struct Report {
    capacity: CapacityStatus,
    active: (State, &'static str, String),
    limited: (State, &'static str, String),
}

pub struct Scaler {
    client: Client,
    kafka: Arc<KafkaAdmin>,
    config: ScalerConfig,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    states: HashMap<Key, ScalerState>,
    /// The partition count last read (a lower bound: partitions only grow).
    partitions: Option<u32>,
}

impl Scaler {
    pub fn new(
        client: Client,
        kafka: Arc<KafkaAdmin>,
        config: ScalerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            kafka,
            config,
            metrics,
            states: HashMap::new(),
            partitions: None,
        }
    }

    /// When this scaler last changed (or resumed the change of) a Deployment.
    pub fn last_change(&self, key: &Key) -> Option<i64> {
        self.states.get(key).and_then(ScalerState::last_change)
    }

    pub async fn run(mut self) {
        loop {
            if let Err(e) = self.pass().await {
                warn!(error = %e, "scaler pass failed");
            }
            tokio::time::sleep(self.config.interval).await;
        }
    }

    /// One pass over all targets; returns what was decided for each
    /// Deployment it scaled (the first of each consumer group).
    pub async fn pass(&mut self) -> Result<BTreeMap<Key, Decision>, Error> {
        let api: Api<Auction> = match &self.config.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let auctions = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                self.metrics.scaler_error();
                return Err(e.into());
            }
        };
        let groups = by_group(&auctions, &self.config.group);
        let mut complete = true;
        let topic = self.config.bid_topic.clone();
        if !groups.is_empty() {
            match self.kafka.partitions(&topic).await {
                Ok(p) => self.partitions = Some(p.max(self.partitions.unwrap_or(0))),
                Err(e) => {
                    complete = false;
                    self.metrics.scaler_error();
                    warn!(error = %e, topic, "partition count not read; using the last one seen");
                }
            }
        }
        let now = Utc::now();
        let mut decided = BTreeMap::new();
        for (group, targets) in groups {
            let lag = match self.kafka.consumer_lag(&group, &topic).await {
                Ok(parts) => Some(parts.iter().map(|p| p.lag).sum::<u64>()),
                Err(e) => {
                    complete = false;
                    self.metrics.scaler_error();
                    warn!(error = %e, group, "lag not read: minimum and pre-scale only");
                    None
                }
            };
            if let (Some(lag), Some(p)) = (lag, self.partitions) {
                self.metrics.observe_lag(lag, p);
            }
            match self
                .scale_group(&group, &targets, lag, now, &mut decided)
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    complete = false;
                    self.metrics.scaler_error();
                    warn!(error = %e, group, "scaling a consumer group failed");
                }
            }
        }
        if complete {
            self.metrics.scaler_succeeded(now);
        }
        Ok(decided)
    }

    async fn scale_group(
        &mut self,
        group: &str,
        targets: &[Target<'_>],
        lag: Option<u64>,
        now: DateTime<Utc>,
        decided: &mut BTreeMap<Key, Decision>,
    ) -> Result<(), Error> {
        let mut current: Vec<Option<u32>> = Vec::with_capacity(targets.len());
        for t in targets {
            let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &t.key.0);
            current.push(
                deployments
                    .get_opt(&t.key.1)
                    .await?
                    .map(|d| d.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32),
            );
        }
        // The first Deployment that exists is scaled; the others share its partitions.
        let primary = current.iter().position(Option::is_some);
        let live = targets.iter().any(Target::live);
        for (i, (t, cur)) in targets.iter().zip(&current).enumerate() {
            let (ns, name) = &t.key;
            let Some(cur) = *cur else {
                warn!(namespace = %ns, deployment = %name, "auction role Deployment not found");
                let report = Report {
                    capacity: CapacityStatus {
                        reason: "DeploymentNotFound".into(),
                        lag,
                        partitions: self.partitions,
                        ..CapacityStatus::default()
                    },
                    active: (
                        State::False,
                        "DeploymentNotFound",
                        format!("Deployment {ns}/{name} not found"),
                    ),
                    limited: not_scaled(),
                };
                self.report(t, report).await?;
                continue;
            };
            if Some(i) != primary {
                let (pns, pname) = &targets[primary.expect("a primary when one exists")].key;
                let message = format!(
                    "consumer group {group} is scaled through Deployment {pns}/{pname}; \
                     {ns}/{name} shares its partitions and is not scaled"
                );
                let last = t
                    .auctions
                    .iter()
                    .filter_map(|a| a.status.as_ref()?.capacity.as_ref()?.last_scale_time)
                    .max();
                let report = Report {
                    capacity: CapacityStatus {
                        desired_replicas: cur,
                        recommended_replicas: cur,
                        lag,
                        partitions: self.partitions,
                        reason: "SharedConsumerGroup".into(),
                        last_scale_time: last,
                    },
                    active: (State::False, "SharedConsumerGroup", message),
                    limited: not_scaled(),
                };
                self.report(t, report).await?;
                continue;
            }
            let shared: u32 = current
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, c)| *c)
                .sum();
            let (policy, next_close) = merge(&t.auctions, now.timestamp_millis());
            let obs = Observation {
                now: now.timestamp_millis(),
                lag,
                partitions: self.partitions,
                shared,
                current: cur,
                next_close,
                live,
            };
            let state = self
                .states
                .entry(t.key.clone())
                .or_insert_with(|| resume(&t.auctions));
            let decision = decide(&policy, &obs, state);
            let last_change = state.last_change();
            if decision.replicas != cur {
                let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                apply_replicas(&deployments, name, decision.replicas).await?;
                self.metrics.scaled(decision.replicas);
                info!(namespace = %ns, deployment = %name, group, from = cur, to = decision.replicas, ?lag, partitions = ?self.partitions, shared, reason = decision.reason.as_str(), "scaled");
            } else if decision.reason == Reason::CoolingDown {
                info!(namespace = %ns, deployment = %name, replicas = cur, recommended = decision.recommended, "cooling down");
            }
            self.metrics.desired(decision.replicas);
            decided.insert(t.key.clone(), decision);
            let report = self.report_for(group, &decision, lag, last_change, shared, &policy);
            self.report(t, report).await?;
        }
        Ok(())
    }

    fn report_for(
        &self,
        group: &str,
        d: &Decision,
        lag: Option<u64>,
        last_change: Option<i64>,
        shared: u32,
        policy: &crate::scaling::Policy,
    ) -> Report {
        let active = match lag {
            Some(lag) => (
                State::True,
                "LagRead",
                format!("replicas follow the lag of consumer group {group} ({lag} records)"),
            ),
            None => (
                State::False,
                "KafkaUnavailable",
                format!(
                    "the lag of consumer group {group} could not be read: the minimum and the \
                     pre-scale still apply, nothing is scaled down"
                ),
            ),
        };
        let limited = match d.limited {
            Some(limit) => (
                State::True,
                limit.as_str(),
                match limit {
                    crate::scaling::Limit::PartitionCap => format!(
                        "wanted more than the {} partitions left to this Deployment ({:?} in all, {shared} held by other Deployments of the group)",
                        self.partitions.unwrap_or(0).saturating_sub(shared),
                        self.partitions
                    ),
                    crate::scaling::Limit::MaxReplicas => {
                        format!("wanted more than maxReplicas {}", policy.max_replicas)
                    }
                },
            ),
            None => (State::False, "WithinBounds", "the recommendation is within the bounds".into()),
        };
        Report {
            capacity: CapacityStatus {
                desired_replicas: d.replicas,
                recommended_replicas: d.recommended,
                lag,
                partitions: self.partitions,
                reason: d.reason.as_str().into(),
                last_scale_time: last_change.and_then(DateTime::from_timestamp_millis),
            },
            active,
            limited,
        }
    }

    /// Applies the scaler's part of the status on every Auction of the
    /// target that does not show it already; a Warning event when
    /// `ScalingActive` turns False for a new reason.
    async fn report(&self, target: &Target<'_>, report: Report) -> Result<(), Error> {
        let api: Api<Auction> = Api::namespaced(self.client.clone(), &target.key.0);
        for auction in &target.auctions {
            let old = auction.status.clone().unwrap_or_default();
            let mut mine: Vec<_> = old
                .conditions
                .iter()
                .filter(|c| conditions::SCALER.contains(&c.type_.as_str()))
                .cloned()
                .collect();
            let before = mine.clone();
            let generation = auction.metadata.generation;
            let (state, reason, message) = &report.active;
            let set = |conds: &mut Vec<_>, type_, state, reason, message: &str| {
                conditions::set(
                    conds,
                    conditions::Set {
                        type_,
                        state,
                        reason,
                        message,
                    },
                    generation,
                    Utc::now(),
                )
            };
            set(
                &mut mine,
                conditions::SCALING_ACTIVE,
                *state,
                reason,
                message,
            );
            let (l_state, l_reason, l_message) = &report.limited;
            set(
                &mut mine,
                conditions::SCALING_LIMITED,
                *l_state,
                l_reason,
                l_message,
            );
            let was = conditions::get(&before, conditions::SCALING_ACTIVE);
            if *state == State::False && was.is_none_or(|c| c.reason != *reason) {
                self.event(auction, reason, message.clone()).await;
            }
            if before == mine && old.capacity.as_ref() == Some(&report.capacity) {
                continue;
            }
            let patch = json!({
                "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction",
                "status": {"capacity": report.capacity, "conditions": mine},
            });
            api.patch_status(
                &auction.name_any(),
                &PatchParams::apply(STATUS_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        }
        Ok(())
    }

    async fn event(&self, auction: &Auction, reason: &str, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Scale".into(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &auction.object_ref(&()))
            .await
        {
            warn!(error = %e, "event not published");
        }
    }
}

fn not_scaled() -> (State, &'static str, String) {
    (
        State::False,
        "NotScaled",
        "the scaler does not scale this Deployment".into(),
    )
}

/// A Deployment's history as the last leader left it in status: the latest
/// `lastScaleTime` of its Auctions and the replicas set then.
fn resume(auctions: &[&Auction]) -> ScalerState {
    let last = auctions
        .iter()
        .filter_map(|a| a.status.as_ref()?.capacity.as_ref())
        .filter_map(|c| Some((c.last_scale_time?, c.desired_replicas)))
        .max();
    match last {
        Some((at, replicas)) => ScalerState::resume(Some(at.timestamp_millis()), replicas),
        None => ScalerState::default(),
    }
}
