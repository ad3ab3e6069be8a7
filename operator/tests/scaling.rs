//! The scaler against the real API server and Kafka: it keeps working when
//! Kafka is down, releases capacity after the last close, holds the partition
//! cap per consumer group, and a new leader keeps the last one's cooldown.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bowchat_operator::crd::{Auction, AuctionStatus};
use bowchat_operator::metrics::Metrics;
use bowchat_operator::scaler::{Scaler, ScalerConfig};
use bowchat_operator::scaling::Reason;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use support::kafka::{admin, catch_up, dead_admin, deployment, lag, produce, replicas};
use support::{install_crd, Namespace};

fn auction(name: &str, capacity: serde_json::Value) -> Auction {
    serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "metadata": {"name": name},
        "spec": {"title": name, "startingPrice": 100, "capacity": capacity}
    }))
    .unwrap()
}

fn scaler(
    client: &Client,
    kafka: Arc<bowchat_kafka::KafkaAdmin>,
    ns: &str,
    group: &str,
    metrics: Arc<Metrics>,
) -> Scaler {
    Scaler::new(
        client.clone(),
        kafka,
        ScalerConfig {
            group: group.to_string(),
            namespace: Some(ns.to_string()),
            ..ScalerConfig::default()
        },
        metrics,
    )
}

async fn status(api: &Api<Auction>, name: &str) -> AuctionStatus {
    api.get(name).await.unwrap().status.unwrap_or_default()
}

fn condition<'a>(s: &'a AuctionStatus, type_: &str) -> (&'a str, &'a str) {
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:?}", s.conditions));
    (c.status.as_str(), c.reason.as_str())
}

fn metric(metrics: &Metrics, name: &str) -> f64 {
    let rendered = metrics.render();
    rendered
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing: {rendered}"))
        .parse()
        .unwrap()
}

/// With the admin on a closed port the scaler still brings the Deployment to
/// the minimum and pre-scales before a close, and says why in status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_down_the_minimum_and_the_pre_scale_still_apply() {
    install_crd();
    let ns = Namespace::create("kafkadown");
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&Default::default(), &deployment("bowchat-auction", 0))
        .await
        .unwrap();
    let auctions: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let capacity = json!({"minReplicas": 2, "maxReplicas": 4, "preScaleLeadSeconds": 60, "preScaleReplicas": 3});
    auctions
        .create(&Default::default(), &auction("kite", capacity))
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let mut scaler = scaler(
        &client,
        dead_admin(1_000),
        &ns.name,
        "auction-role",
        metrics.clone(),
    );
    let key = (ns.name.clone(), "bowchat-auction".to_string());

    let d = scaler
        .pass()
        .await
        .expect("a pass without Kafka is not an error")[&key];
    assert_eq!((d.replicas, d.reason), (2, Reason::LagUp), "the minimum");
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 2);
    let errors = metric(&metrics, "bowchat_operator_scaler_errors_total");
    assert!(errors >= 2.0, "partitions and lag failed: {errors}");
    assert_eq!(
        metric(
            &metrics,
            "bowchat_operator_scaler_last_success_timestamp_seconds"
        ),
        0.0
    );
    let s = status(&auctions, "kite").await;
    assert_eq!(
        condition(&s, "ScalingActive"),
        ("False", "KafkaUnavailable")
    );
    let capacity = s.capacity.unwrap();
    assert_eq!(
        (capacity.desired_replicas, capacity.lag, capacity.partitions),
        (2, None, None)
    );

    // The platform's close, 30 s away, is inside the 60 s lead: pre-scale.
    let close = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
    auctions
        .patch_status(
            "kite",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"endsAt": close}})),
        )
        .await
        .unwrap();
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!((d.replicas, d.reason), (3, Reason::PreScale));
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 3);
    assert!(
        metric(&metrics, "bowchat_operator_scaler_errors_total") > errors,
        "the error count moves"
    );
}

/// After the last auction of a Deployment closes, it returns to the minimum
/// once the cooldown since the last change has passed (not before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_released_after_the_last_close() {
    install_crd();
    let ns = Namespace::create("release");
    let (kafka, prefix) = admin(4).await;
    let group = format!("{prefix}auction-role");
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&Default::default(), &deployment("bowchat-auction", 1))
        .await
        .unwrap();
    let auctions: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let capacity = json!({"minReplicas": 1, "maxReplicas": 4, "preScaleLeadSeconds": 600,
        "cooldownSeconds": 3, "stabilizationSeconds": 0});
    auctions
        .create(&Default::default(), &auction("vase", capacity))
        .await
        .unwrap();
    let close = (chrono::Utc::now() + chrono::Duration::seconds(300)).to_rfc3339();
    auctions
        .patch_status(
            "vase",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Open", "endsAt": close}})),
        )
        .await
        .unwrap();
    let mut scaler = scaler(
        &client,
        kafka.clone(),
        &ns.name,
        &group,
        Arc::new(Metrics::default()),
    );
    let key = (ns.name.clone(), "bowchat-auction".to_string());
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!(
        (d.replicas, d.reason),
        (4, Reason::PreScale),
        "pre-scaled to maxReplicas"
    );

    // The auction closes (the reconciler mirrors the platform's phase).
    auctions
        .patch_status(
            "vase",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Closed"}})),
        )
        .await
        .unwrap();
    let released = loop {
        let d = scaler.pass().await.unwrap()[&key];
        if d.replicas < 4 {
            break d;
        }
        assert_eq!(d.reason, Reason::CoolingDown, "{d:?}");
        assert_eq!(replicas(&deployments, "bowchat-auction").await, 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!((released.replicas, released.reason), (1, Reason::LagDown));
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 1);
    let last = scaler.last_change(&key).expect("a change was made");
    let capacity = status(&auctions, "vase").await.capacity.unwrap();
    assert_eq!(
        capacity.last_scale_time.map(|t| t.timestamp_millis()),
        Some(last)
    );
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}

/// Two Deployments in one consumer group: together they stay within the
/// partitions, and the second is reported, not scaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partition_cap_holds_per_consumer_group() {
    install_crd();
    let ns = Namespace::create("shared");
    let (kafka, prefix) = admin(3).await;
    let group = format!("{prefix}auction-role");
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let auctions: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    for (dep, name) in [("dep-a", "a-lamp"), ("dep-b", "b-rug")] {
        deployments
            .create(&Default::default(), &deployment(dep, 1))
            .await
            .unwrap();
        let capacity = json!({"deployment": dep, "minReplicas": 1, "maxReplicas": 10,
            "lagPerReplica": 10, "preScaleLeadSeconds": 0});
        auctions
            .create(&Default::default(), &auction(name, capacity))
            .await
            .unwrap();
    }
    produce(&prefix, 1000, 3).await;
    assert_eq!(lag(&kafka, &group).await, 1000);
    let mut scaler = scaler(
        &client,
        kafka.clone(),
        &ns.name,
        &group,
        Arc::new(Metrics::default()),
    );
    let decided = scaler.pass().await.unwrap();
    let a = replicas(&deployments, "dep-a").await;
    let b = replicas(&deployments, "dep-b").await;
    assert!(a + b <= 3, "dep-a {a} + dep-b {b} above 3 partitions");
    assert_eq!((a, b), (2, 1));
    let d = decided[&(ns.name.clone(), "dep-a".to_string())];
    assert_eq!(d.reason, Reason::PartitionCap);
    assert!(!decided.contains_key(&(ns.name.clone(), "dep-b".to_string())));

    let s = status(&auctions, "b-rug").await;
    assert_eq!(
        condition(&s, "ScalingActive"),
        ("False", "SharedConsumerGroup")
    );
    let s = status(&auctions, "a-lamp").await;
    assert_eq!(condition(&s, "ScalingActive"), ("True", "LagRead"));
    assert_eq!(condition(&s, "ScalingLimited"), ("True", "PartitionCap"));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warned = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("SharedConsumerGroup")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("b-rug")
        });
    assert!(warned, "a Warning event on the second target");

    // A second pass changes nothing: still within the partitions.
    scaler.pass().await.unwrap();
    assert_eq!(
        (
            replicas(&deployments, "dep-a").await,
            replicas(&deployments, "dep-b").await
        ),
        (2, 1)
    );
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}

/// A new leader (a fresh scaler) right after a 1 → 3 scale-up, with the lag
/// gone, keeps 3: it resumes the cooldown from `status.capacity.lastScaleTime`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_keeps_the_cooldown_of_the_last() {
    install_crd();
    let ns = Namespace::create("failover");
    let (kafka, prefix) = admin(3).await;
    let group = format!("{prefix}auction-role");
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&Default::default(), &deployment("bowchat-auction", 1))
        .await
        .unwrap();
    let auctions: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let capacity = json!({"minReplicas": 1, "maxReplicas": 5, "lagPerReplica": 10,
        "preScaleLeadSeconds": 0, "cooldownSeconds": 300, "stabilizationSeconds": 0});
    auctions
        .create(&Default::default(), &auction("clock", capacity))
        .await
        .unwrap();
    let key = (ns.name.clone(), "bowchat-auction".to_string());
    produce(&prefix, 25, 3).await;
    let mut first = scaler(
        &client,
        kafka.clone(),
        &ns.name,
        &group,
        Arc::new(Metrics::default()),
    );
    let d = first.pass().await.unwrap()[&key];
    assert_eq!((d.replicas, d.reason), (3, Reason::LagUp));
    let scaled_at = std::time::Instant::now();
    drop(first);

    catch_up(&prefix, &group, 3);
    assert_eq!(lag(&kafka, &group).await, 0);
    let mut second = scaler(
        &client,
        kafka.clone(),
        &ns.name,
        &group,
        Arc::new(Metrics::default()),
    );
    let d = second.pass().await.unwrap()[&key];
    assert!(
        scaled_at.elapsed() < Duration::from_secs(300),
        "still inside the cooldown"
    );
    assert_eq!(
        (d.replicas, d.recommended, d.reason),
        (3, 1, Reason::CoolingDown)
    );
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 3);
    let capacity = status(&auctions, "clock").await.capacity.unwrap();
    assert_eq!(
        (capacity.desired_replicas, capacity.reason.as_str()),
        (3, "CoolingDown")
    );
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}
