//! The `Auction` custom resource (`bowchat.io/v1alpha1`, namespaced): what a
//! cluster user writes (the auction's terms and its capacity policy) and what
//! the operator reports back in `status`. The CRD YAML in `manifests/crd.yaml`
//! and the Helm chart's `crds/` are generated from these types.

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An auction on the platform and the capacity it needs.
// Several `printcolumn(...)` lists repeat `type_ =`; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, KubeSchema)]
#[kube(
    group = "bowchat.io",
    version = "v1alpha1",
    kind = "Auction",
    namespaced,
    status = "AuctionStatus",
    shortname = "auc",
    category = "bowchat",
    doc = "A BowChat auction: its terms, its capacity policy, and its live state",
    printcolumn(name = "Title", type_ = "string", json_path = ".spec.title"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Price", type_ = "integer", json_path = ".status.price"),
    printcolumn(name = "Bids", type_ = "integer", json_path = ".status.bidCount"),
    printcolumn(
        name = "Winner",
        type_ = "integer",
        json_path = ".status.winnerId",
        priority = "1"
    ),
    printcolumn(
        name = "Auction-ID",
        type_ = "integer",
        json_path = ".status.auctionId",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!(has(self.endsAt) && has(self.durationSeconds))")
        .message("give endsAt or durationSeconds, not both"),
    validation = terms_immutable()
)]
#[serde(rename_all = "camelCase")]
pub struct AuctionSpec {
    /// Shown to bidders; 1 to 200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 10000))]
    pub description: String,
    /// Who sells, as a label for people reading the resource; on the platform the
    /// seller is the operator's service user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller: Option<String>,
    /// ISO 4217 code.
    #[serde(default = "default_currency")]
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
    /// In minor units (cents).
    #[schemars(range(min = 0))]
    pub starting_price: i64,
    /// Fixed bid increment in minor units.
    #[serde(default = "default_increment")]
    #[schemars(range(min = 1))]
    pub increment: i64,
    /// Hidden minimum for a sale, in minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub reserve_price: Option<i64>,
    /// Price that ends the auction at once, in minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub buy_now_price: Option<i64>,
    /// Default: when the operator registers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// The closing time; give this or `durationSeconds` (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31536000))]
    pub duration_seconds: Option<i64>,
    /// What deleting the resource does to a running auction.
    #[serde(default)]
    pub on_delete: OnDelete,
    #[serde(default)]
    pub capacity: CapacitySpec,
}

/// The auction's terms: what bidders agreed to. The platform never changes
/// them after registration, so the API server refuses an edit instead of the
/// spec silently disagreeing with the auction. `capacity`, `onDelete` and
/// `seller` (a label) may change.
pub const TERMS: [&str; 10] = [
    "title",
    "description",
    "currency",
    "startingPrice",
    "increment",
    "reservePrice",
    "buyNowPrice",
    "startsAt",
    "endsAt",
    "durationSeconds",
];

/// `self == oldSelf` for the terms only (optional ones may be absent on
/// both sides, and adding or removing one is a change too).
fn terms_immutable() -> kube::core::Rule {
    let rule = TERMS
        .iter()
        .map(|f| format!("(has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f}))"))
        .collect::<Vec<_>>()
        .join(" && ");
    kube::core::Rule::new(rule).message(
        "the auction's terms are immutable after creation: only capacity, onDelete and seller may change",
    )
}

fn default_currency() -> String {
    "USD".into()
}

fn default_increment() -> i64 {
    100
}

/// What the finalizer does with the platform's auction.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
pub enum OnDelete {
    /// Cancel it unless it already closed (bidders are told).
    #[default]
    Cancel,
    /// Leave it running on the platform; only the resource goes.
    Keep,
}

/// How the auction role is sized while this auction is live.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.minReplicas <= self.maxReplicas")
        .message("minReplicas must not be above maxReplicas"),
    validation = Rule::new("!has(self.preScaleReplicas) || self.preScaleReplicas <= self.maxReplicas")
        .message("preScaleReplicas must not be above maxReplicas")
)]
#[serde(rename_all = "camelCase", default = "CapacitySpec::default")]
pub struct CapacitySpec {
    /// The auction role's Deployment (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub deployment: String,
    /// The Deployment's Kafka consumer group on `auction-bid` (default: the
    /// operator's `--auction-group`). The partition cap holds per group.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub consumer_group: Option<String>,
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: u32,
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: u32,
    /// Unconsumed `auction-bid` records one replica is expected to keep up with.
    #[schemars(range(min = 1))]
    pub lag_per_replica: u64,
    /// `auction-bid` partitions wanted; grown when above the current count, never shrunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: Option<u32>,
    /// Scale to `preScaleReplicas` this long before the closing time.
    #[schemars(range(min = 0, max = 604800))]
    pub pre_scale_lead_seconds: u64,
    /// Replicas ahead of the close (default `maxReplicas`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub pre_scale_replicas: Option<u32>,
    /// No scale-down sooner than this after the last change.
    #[schemars(range(min = 0, max = 604800))]
    pub cooldown_seconds: u64,
    /// A scale-down uses the highest recommendation of this window.
    #[schemars(range(min = 0, max = 604800))]
    pub stabilization_seconds: u64,
}

impl Default for CapacitySpec {
    fn default() -> Self {
        Self {
            deployment: "bowchat-auction".into(),
            consumer_group: None,
            min_replicas: 1,
            max_replicas: 4,
            lag_per_replica: 1000,
            partitions: None,
            pre_scale_lead_seconds: 120,
            pre_scale_replicas: None,
            cooldown_seconds: 300,
            stabilization_seconds: 60,
        }
    }
}

/// The live state, written by the operator only: the reconciler (field
/// manager `bowchat-operator`) owns the auction's fields and the conditions
/// `Registered`, `Synced`, `PartitionsReady` and `Ready`; the scaler
/// (`bowchat-operator-scaler`) owns `capacity`, `ScalingActive` and
/// `ScalingLimited`. Both write by server-side apply, and `conditions` is a
/// list map keyed by `type`, so neither removes the other's.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuctionStatus {
    /// The platform's auction id once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auction_id: Option<i64>,
    /// `Pending` until registered, then the platform's phase:
    /// `Scheduled`, `Open`, `Closed` or `Cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    #[serde(default)]
    pub bid_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// `auction-bid` partition count last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The scaler's last decision for this auction's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
    /// `Registered`, `Synced` (status matches the platform), `PartitionsReady`,
    /// `ScalingActive`, `ScalingLimited` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// What the scaler decided for the Deployment and why (`status.capacity`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityStatus {
    /// The replicas the scaler set (or kept).
    pub desired_replicas: u32,
    /// What the lag, bounds, pre-scale and partition cap ask, before the
    /// cooldown and the stabilisation window.
    pub recommended_replicas: u32,
    /// The consumer group's lag on `auction-bid`; absent when Kafka could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// `auction-bid` partitions the cap used; absent when never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// `LagUp`, `LagDown`, `PreScale`, `PartitionCap`, `MaxReplicas`,
    /// `CoolingDown`, `LagUnknown` or `Unchanged`; `SharedConsumerGroup` or
    /// `DeploymentNotFound` when the scaler does not scale the Deployment.
    pub reason: String,
    /// When the scaler last changed the Deployment's replicas; a new leader
    /// resumes the cooldown from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<DateTime<Utc>>,
}

/// A status condition in the shape Kubernetes tools expect
/// (`kubectl wait --for=condition=Registered`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Registered`, `Synced`, `PartitionsReady`, `ScalingActive`,
    /// `ScalingLimited` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Auction {
    /// The platform's idempotency key: the resource's uid, so a re-created
    /// resource with the same name is a new auction and a retried create is not.
    pub fn external_id(&self) -> Option<String> {
        self.metadata.uid.as_ref().map(|uid| format!("k8s:{uid}"))
    }
}

/// The CRD as YAML (what `bowchat-operator crd` prints and `manifests/crd.yaml` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(Auction::crd()).expect("a CRD serializes");
    format!(
        "# Generated by `bowchat-operator crd` from operator/src/crd.rs; do not edit.\n{}",
        serde_yaml_ng::to_string(&sorted_keys(crd)).expect("a CRD serializes")
    )
}

/// The same value with every object's keys in sorted order. Whether
/// serde_json keeps insertion order depends on the features other crates of
/// the build turn on (`preserve_order`), so without this the generated YAML
/// (and the drift test) would depend on what else was compiled.
fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted_keys).collect())
        }
        other => other,
    }
}
