//! Partitions and lag scaling against the real Kafka broker and API server,
//! each test on topics with a prefix of its own.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bowchat_kafka::{KafkaAdmin, KafkaConfig};
use bowchat_operator::crd::Auction;
use bowchat_operator::metrics::Metrics;
use bowchat_operator::platform::{Platform as Client, PlatformConfig};
use bowchat_operator::reconcile::{self, Context, ReconcileConfig};
use bowchat_operator::scaler::{Scaler, ScalerConfig};
use bowchat_operator::scaling::Reason;
use bowchat_testenv::TestEnv;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use support::{eventually, install_crd, Namespace, Platform};

fn bootstrap() -> String {
    TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka")
}

/// An admin on a fresh prefix with `auction-bid` of `partitions`.
async fn admin(partitions: u32) -> (Arc<KafkaAdmin>, String) {
    let prefix = format!("op{}.", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let admin = KafkaAdmin::new(KafkaConfig {
        bootstrap: bootstrap(),
        topic_prefix: prefix.clone(),
        ..KafkaConfig::default()
    })
    .unwrap();
    admin
        .ensure_topics(&["auction-bid"], partitions, 1)
        .await
        .unwrap();
    (Arc::new(admin), prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_grow_to_the_spec_and_never_shrink() {
    install_crd();
    let ns = Namespace::create("partitions");
    let (kafka, _prefix) = admin(2).await;
    let platform = Platform::start();
    platform.user("operator", "operator service secret").await;
    let client = support::client().await;
    let ctx = Arc::new(Context::new(
        client.clone(),
        Client::new(PlatformConfig {
            url: platform.url(),
            email: "operator@test.bowchat".into(),
            password: "operator service secret".into(),
        }),
        Some(kafka.clone()),
        ReconcileConfig {
            poll: Duration::from_millis(300),
            ..ReconcileConfig::default()
        },
        Arc::new(Metrics::default()),
    ));
    let controller = tokio::spawn(reconcile::run(ctx, Some(ns.name.clone())));
    let api: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let auction: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "metadata": {"name": "rug"},
        "spec": {"title": "Rug", "startingPrice": 100, "durationSeconds": 600, "capacity": {"partitions": 6}}
    }))
    .unwrap();
    api.create(&Default::default(), &auction).await.unwrap();
    let s = eventually(30, "partitions grown", || async {
        api.get("rug")
            .await
            .ok()?
            .status
            .filter(|s| s.partitions == Some(6))
    })
    .await;
    assert_eq!(kafka.partitions("auction-bid").await.unwrap(), 6);
    assert!(s
        .conditions
        .iter()
        .any(|c| c.type_ == "PartitionsReady" && c.status == "True"));

    // Asking for fewer leaves the topic as it is and is not an error.
    api.patch(
        "rug",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"capacity": {"partitions": 3}}})),
    )
    .await
    .unwrap();
    let generation = api.get("rug").await.unwrap().metadata.generation;
    let s = eventually(20, "new generation observed", || async {
        api.get("rug")
            .await
            .ok()?
            .status
            .filter(|s| s.observed_generation == generation)
    })
    .await;
    assert_eq!(s.partitions, Some(6));
    assert_eq!(
        kafka.partitions("auction-bid").await.unwrap(),
        6,
        "never shrunk"
    );
    controller.abort();
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "auction", "image": "bowchat:test"}]}}}
    }))
    .unwrap()
}

async fn replicas(api: &Api<Deployment>, name: &str) -> u32 {
    api.get(name).await.unwrap().spec.unwrap().replicas.unwrap() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_scales_up_within_bounds_and_down_after_cooldown() {
    install_crd();
    let ns = Namespace::create("scaling");
    let (kafka, prefix) = admin(3).await;
    // A group of its own: commits from outside a group that has members are refused.
    let group = format!("{prefix}auction-role");
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&Default::default(), &deployment("bowchat-auction", 1))
        .await
        .unwrap();
    let auctions: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let auction: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "metadata": {"name": "clock"},
        "spec": {"title": "Clock", "startingPrice": 100, "capacity": {
            "minReplicas": 1, "maxReplicas": 5, "lagPerReplica": 10, "preScaleLeadSeconds": 0,
            "cooldownSeconds": 3, "stabilizationSeconds": 1}}
    }))
    .unwrap();
    auctions
        .create(&Default::default(), &auction)
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let mut scaler = Scaler::new(
        client.clone(),
        kafka.clone(),
        ScalerConfig {
            group: group.clone(),
            namespace: Some(ns.name.clone()),
            ..ScalerConfig::default()
        },
        metrics.clone(),
    );
    let key = (ns.name.clone(), "bowchat-auction".to_string());

    // No lag: the minimum.
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!(d.replicas, 1);

    // 25 records nobody consumed: ceil(25/10) = 3 replicas, within max 5 and 3 partitions.
    let topic = format!("{prefix}auction-bid");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    for i in 0..25 {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("k{i}"))
                    .payload("bid")
                    .partition(i % 3),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!((d.replicas, d.reason), (3, Reason::LagUp));
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 3);

    // 80 more: the lag asks for 10, the maximum is 5 and the partitions 3.
    for i in 0..80 {
        producer
            .send(
                FutureRecord::<str, str>::to(&topic)
                    .payload("bid")
                    .partition(i % 3),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!(d.replicas, 3, "never above the partition count: {d:?}");
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 3);

    // The group catches up (commits the end of every partition).
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group.as_str())
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        let (_, high) = committer
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .unwrap();
        tpl.add_partition_offset(&topic, p, Offset::Offset(high))
            .unwrap();
    }
    committer.commit(&tpl, CommitMode::Sync).unwrap();
    let lag: u64 = kafka
        .consumer_lag(&group, "auction-bid")
        .await
        .unwrap()
        .iter()
        .map(|p| p.lag)
        .sum();
    assert_eq!(lag, 0);

    // Inside the cooldown it holds; after it, it falls to the minimum.
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!((d.replicas, d.reason), (3, Reason::CoolingDown));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let fell = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = scaler.pass().await.unwrap()[&key];
        if d.replicas == 1 {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scale-down 15 s after the lag drained: {d:?}"
        );
    };
    assert_eq!(fell.reason, Reason::LagDown);
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 1);
    assert!(
        metrics
            .render()
            .contains("bowchat_operator_scale_changes_total 2"),
        "{}",
        metrics.render()
    );

    // A close within the lead time scales up ahead of it, with no lag at all.
    // The terms (endsAt) are immutable: the close comes from the platform, as
    // the reconciler mirrors it into status.
    let close = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
    auctions
        .patch(
            "clock",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
            "capacity": {"preScaleLeadSeconds": 60, "preScaleReplicas": 2}}})),
        )
        .await
        .unwrap();
    auctions
        .patch_status(
            "clock",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"endsAt": close}})),
        )
        .await
        .unwrap();
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!((d.replicas, d.reason), (2, Reason::PreScale));
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 2);
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}

/// Only auction-role replicas open and close auctions: with `minReplicas: 0`,
/// no lag and no pre-scale, a live auction still gets one replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_auction_is_never_left_without_a_replica() {
    install_crd();
    let ns = Namespace::create("scalezero");
    let (kafka, prefix) = admin(2).await;
    let group = format!("{prefix}auction-role");
    let client = support::client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&Default::default(), &deployment("bowchat-auction", 0))
        .await
        .unwrap();
    let auctions: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let auction: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "metadata": {"name": "lamp"},
        "spec": {"title": "Lamp", "startingPrice": 100, "capacity": {
            "minReplicas": 0, "maxReplicas": 3, "lagPerReplica": 10, "preScaleLeadSeconds": 0,
            "cooldownSeconds": 1, "stabilizationSeconds": 1}}
    }))
    .unwrap();
    auctions
        .create(&Default::default(), &auction)
        .await
        .unwrap();
    let mut scaler = Scaler::new(
        client.clone(),
        kafka.clone(),
        ScalerConfig {
            group,
            namespace: Some(ns.name.clone()),
            ..ScalerConfig::default()
        },
        Arc::new(Metrics::default()),
    );
    let key = (ns.name.clone(), "bowchat-auction".to_string());
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!(d.replicas, 1, "{d:?}");
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 1);
    // Passes later, past the cooldown, keep it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!(d.replicas, 1, "{d:?}");
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 1);
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}
