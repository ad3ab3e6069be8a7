//! The lag scaler: every interval it lists the live `Auction`s, merges the
//! capacity policies of those that share a Deployment, reads the auction
//! role's lag on `auction-bid`, asks `scaling::decide` and patches the
//! Deployment's scale subresource when the answer differs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::crd::Auction;
use crate::metrics::Metrics;
use crate::reconcile::Error;
use crate::scaling::{decide, Decision, Observation, Policy, Reason, ScalerState};
use bowchat_kafka::KafkaAdmin;

#[derive(Debug, Clone)]
pub struct ScalerConfig {
    pub interval: Duration,
    /// Logical bid topic and the auction role's consumer group.
    pub bid_topic: String,
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

pub struct Scaler {
    client: Client,
    kafka: Arc<KafkaAdmin>,
    config: ScalerConfig,
    metrics: Arc<Metrics>,
    states: HashMap<(String, String), ScalerState>,
}

/// The policies of several auctions on one Deployment, merged so that none of
/// them is under-served: the highest bounds, the smallest lag per replica,
/// the longest cooldown and window, and the earliest close.
pub fn merge(auctions: &[&Auction], now: i64) -> (Policy, Option<i64>) {
    let mut policy: Option<Policy> = None;
    let mut next_close: Option<i64> = None;
    for a in auctions {
        let c = &a.spec.capacity;
        let p = Policy {
            min_replicas: c.min_replicas,
            max_replicas: c.max_replicas,
            lag_per_replica: c.lag_per_replica,
            pre_scale_lead_ms: millis(c.pre_scale_lead_seconds),
            pre_scale_replicas: c.pre_scale_replicas.unwrap_or(c.max_replicas),
            cooldown_ms: millis(c.cooldown_seconds),
            stabilization_ms: millis(c.stabilization_seconds),
        };
        policy = Some(match policy {
            None => p,
            Some(q) => Policy {
                min_replicas: q.min_replicas.max(p.min_replicas),
                max_replicas: q.max_replicas.max(p.max_replicas),
                lag_per_replica: q.lag_per_replica.min(p.lag_per_replica),
                pre_scale_lead_ms: q.pre_scale_lead_ms.max(p.pre_scale_lead_ms),
                pre_scale_replicas: q.pre_scale_replicas.max(p.pre_scale_replicas),
                cooldown_ms: q.cooldown_ms.max(p.cooldown_ms),
                stabilization_ms: q.stabilization_ms.max(p.stabilization_ms),
            },
        });
        let close = a
            .status
            .as_ref()
            .and_then(|s| s.ends_at)
            .or(a.spec.ends_at)
            .map(|t| t.timestamp_millis())
            .filter(|t| *t > now);
        next_close = match (next_close, close) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
    }
    (policy.expect("at least one auction"), next_close)
}

/// The field manager the operator writes `spec.replicas` with.
pub const FIELD_MANAGER: &str = "bowchat-operator";

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

/// Seconds as milliseconds, saturating: the API server bounds these fields
/// (a week), but an object stored before that bound must not overflow here.
fn millis(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Whether an auction still needs capacity (not closed, cancelled or failed).
fn live(a: &Auction) -> bool {
    a.metadata.deletion_timestamp.is_none()
        && !matches!(
            a.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Closed" | "Cancelled" | "Failed")
        )
}

impl Scaler {
    pub fn new(
        client: Client,
        kafka: Arc<KafkaAdmin>,
        config: ScalerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            kafka,
            config,
            metrics,
            states: HashMap::new(),
        }
    }

    pub async fn run(mut self) {
        loop {
            if let Err(e) = self.pass().await {
                warn!(error = %e, "scaler pass failed");
            }
            tokio::time::sleep(self.config.interval).await;
        }
    }

    /// One pass over all targets; returns what was decided per (namespace, deployment).
    pub async fn pass(&mut self) -> Result<BTreeMap<(String, String), Decision>, Error> {
        let api: Api<Auction> = match &self.config.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let auctions = api.list(&ListParams::default()).await?.items;
        let mut targets: BTreeMap<(String, String), Vec<&Auction>> = BTreeMap::new();
        for a in auctions.iter().filter(|a| live(a)) {
            let key = (
                a.namespace().unwrap_or_default(),
                a.spec.capacity.deployment.clone(),
            );
            targets.entry(key).or_default().push(a);
        }
        let lag: u64 = self
            .kafka
            .consumer_lag(&self.config.group, &self.config.bid_topic)
            .await?
            .iter()
            .map(|p| p.lag)
            .sum();
        let partitions = self.kafka.partitions(&self.config.bid_topic).await?;
        self.metrics.observe_lag(lag, partitions);
        let now = chrono::Utc::now().timestamp_millis();
        let mut decided = BTreeMap::new();
        for ((ns, name), group) in targets {
            let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
            let Some(deployment) = deployments.get_opt(&name).await? else {
                warn!(namespace = %ns, deployment = %name, "auction role Deployment not found");
                continue;
            };
            let current = deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1)
                .max(0) as u32;
            let (policy, next_close) = merge(&group, now);
            // Every target has a live auction: the others are filtered out.
            let obs = Observation {
                now,
                lag,
                partitions,
                current,
                next_close,
                live: true,
            };
            let state = self.states.entry((ns.clone(), name.clone())).or_default();
            let decision = decide(&policy, &obs, state);
            if decision.replicas != current {
                apply_replicas(&deployments, &name, decision.replicas).await?;
                self.metrics.scaled(decision.replicas);
                info!(namespace = %ns, deployment = %name, from = current, to = decision.replicas, lag, partitions, reason = ?decision.reason, "scaled");
            } else if decision.reason == Reason::CoolingDown {
                info!(namespace = %ns, deployment = %name, replicas = current, recommended = decision.recommended, "cooling down");
            }
            self.metrics.desired(decision.replicas);
            decided.insert((ns, name), decision);
        }
        Ok(decided)
    }
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn seconds_become_milliseconds_without_overflow() {
        assert_eq!(millis(0), 0);
        assert_eq!(millis(604_800), 604_800_000);
        assert_eq!(millis(u64::MAX), i64::MAX);
        assert_eq!(millis(u64::MAX / 1000), i64::MAX);
    }
}
