//! What the scaler scales: the Deployments named by `Auction`s, grouped by
//! the consumer group they read `auction-bid` in, and the merged capacity
//! policy of each. Pure, so grouping and merging are unit-tested.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::crd::Auction;
use crate::scaling::Policy;

/// (namespace, Deployment name)
pub type Key = (String, String);

/// The Auctions that name one Deployment.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub key: Key,
    /// The Kafka consumer group the Deployment's replicas consume in.
    pub group: String,
    /// Oldest first.
    pub auctions: Vec<&'a Auction>,
}

impl Target<'_> {
    /// Whether one of its auctions still needs capacity.
    pub fn live(&self) -> bool {
        self.auctions.iter().any(|a| live(a))
    }
}

/// Whether an auction still needs capacity (not closed, cancelled, failed
/// or being deleted).
pub fn live(a: &Auction) -> bool {
    a.metadata.deletion_timestamp.is_none()
        && !matches!(
            a.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Closed" | "Cancelled" | "Failed")
        )
}

/// The Deployments named by `auctions` (closed ones too: their capacity is
/// released after the cooldown), grouped by consumer group. Within a group
/// the first target is the one whose oldest Auction is oldest (then by
/// namespace and name): it is scaled; the others share its partitions and are
/// not. A Deployment's group is the one its oldest Auction names, else
/// `default_group`.
pub fn by_group<'a>(
    auctions: &'a [Auction],
    default_group: &str,
) -> BTreeMap<String, Vec<Target<'a>>> {
    let mut sorted: Vec<&Auction> = auctions.iter().collect();
    sorted.sort_by(|a, b| {
        (
            a.creation_timestamp().map(|t| t.0),
            a.namespace(),
            a.name_any(),
        )
            .cmp(&(
                b.creation_timestamp().map(|t| t.0),
                b.namespace(),
                b.name_any(),
            ))
    });
    // Deployments in the order their first Auction appeared.
    let mut order: Vec<Key> = Vec::new();
    let mut targets: BTreeMap<Key, Target<'a>> = BTreeMap::new();
    for a in sorted {
        let key = (
            a.namespace().unwrap_or_default(),
            a.spec.capacity.deployment.clone(),
        );
        let target = targets.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Target {
                key,
                group: a
                    .spec
                    .capacity
                    .consumer_group
                    .clone()
                    .unwrap_or_else(|| default_group.to_string()),
                auctions: Vec::new(),
            }
        });
        target.auctions.push(a);
    }
    let mut groups: BTreeMap<String, Vec<Target<'a>>> = BTreeMap::new();
    for key in order {
        let target = targets
            .remove(&key)
            .expect("every ordered key has a target");
        groups.entry(target.group.clone()).or_default().push(target);
    }
    groups
}

/// The policies of a Deployment's auctions, merged so that none of the live
/// ones is under-served: the highest bounds, the smallest lag per replica,
/// the longest cooldown and window, and the earliest close. With none live
/// (all closed) the floor is the lowest `minReplicas` of them all, and there
/// is no close to pre-scale for.
pub fn merge(auctions: &[&Auction], now: i64) -> (Policy, Option<i64>) {
    let live_ones: Vec<&Auction> = auctions.iter().copied().filter(|a| live(a)).collect();
    let idle = live_ones.is_empty();
    let chosen = if idle { auctions.to_vec() } else { live_ones };
    let mut policy: Option<Policy> = None;
    let mut next_close: Option<i64> = None;
    for a in chosen {
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
                min_replicas: if idle {
                    q.min_replicas.min(p.min_replicas)
                } else {
                    q.min_replicas.max(p.min_replicas)
                },
                max_replicas: q.max_replicas.max(p.max_replicas),
                lag_per_replica: q.lag_per_replica.min(p.lag_per_replica),
                pre_scale_lead_ms: q.pre_scale_lead_ms.max(p.pre_scale_lead_ms),
                pre_scale_replicas: q.pre_scale_replicas.max(p.pre_scale_replicas),
                cooldown_ms: q.cooldown_ms.max(p.cooldown_ms),
                stabilization_ms: q.stabilization_ms.max(p.stabilization_ms),
            },
        });
        if idle {
            continue;
        }
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

/// Seconds as milliseconds, saturating: the API server bounds these fields
/// (a week), but an object stored before that bound must not overflow here.
pub fn millis(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auction(
        ns: &str,
        name: &str,
        created: &str,
        capacity: serde_json::Value,
        phase: &str,
    ) -> Auction {
        serde_json::from_value(json!({
            "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"title": name, "startingPrice": 1, "capacity": capacity},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn seconds_become_milliseconds_without_overflow() {
        assert_eq!(millis(0), 0);
        assert_eq!(millis(604_800), 604_800_000);
        assert_eq!(millis(u64::MAX), i64::MAX);
        assert_eq!(millis(u64::MAX / 1000), i64::MAX);
    }

    #[test]
    fn deployments_are_grouped_by_consumer_group_oldest_first() {
        let all = [
            auction(
                "b",
                "late",
                "2024-01-03T00:00:00Z",
                json!({"deployment": "dep-b"}),
                "Open",
            ),
            auction(
                "a",
                "early",
                "2024-01-01T00:00:00Z",
                json!({"deployment": "dep-a"}),
                "Open",
            ),
            auction(
                "a",
                "again",
                "2024-01-02T00:00:00Z",
                json!({"deployment": "dep-a"}),
                "Closed",
            ),
            auction(
                "c",
                "own",
                "2024-01-01T00:00:00Z",
                json!({"deployment": "dep-c", "consumerGroup": "other"}),
                "Open",
            ),
        ];
        let groups = by_group(&all, "auction-role");
        let shared: Vec<&Key> = groups["auction-role"].iter().map(|t| &t.key).collect();
        assert_eq!(
            shared,
            [
                &("a".to_string(), "dep-a".to_string()),
                &("b".to_string(), "dep-b".to_string())
            ]
        );
        assert_eq!(groups["auction-role"][0].auctions.len(), 2);
        assert_eq!(groups["other"].len(), 1);
    }

    #[test]
    fn closed_auctions_release_to_the_lowest_minimum_without_pre_scale() {
        let open = auction(
            "a",
            "o",
            "2024-01-01T00:00:00Z",
            json!({"minReplicas": 1, "maxReplicas": 4}),
            "Open",
        );
        let closed = auction(
            "a",
            "c",
            "2024-01-01T00:00:00Z",
            json!({"minReplicas": 3, "maxReplicas": 4}),
            "Closed",
        );
        let (p, _) = merge(&[&open, &closed], 0);
        assert_eq!(
            p.min_replicas, 1,
            "the closed one's policy no longer counts"
        );
        let mut closed2 = closed.clone();
        closed2.spec.capacity.min_replicas = 2;
        let (p, close) = merge(&[&closed, &closed2], 0);
        assert_eq!((p.min_replicas, close), (2, None));
    }
}
