//! Partitions and lag scaling against the real Kafka broker and API server,
//! each test on topics with a prefix of its own.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bowchat_operator::crd::Auction;
use bowchat_operator::metrics::Metrics;
use bowchat_operator::platform::{Platform as Client, PlatformConfig};
use bowchat_operator::reconcile::{self, Context, ReconcileConfig};
use bowchat_operator::scaler::{Scaler, ScalerConfig};
use bowchat_operator::scaling::Reason;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::kafka::{admin, catch_up, deployment, lag, produce, replicas};
use support::{eventually, install_crd, kubectl, Namespace, Platform};

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
    produce(&prefix, 25, 3).await;
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!((d.replicas, d.reason), (3, Reason::LagUp));
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 3);

    // 80 more: the lag asks for 11, the maximum is 5 and the partitions 3.
    produce(&prefix, 80, 3).await;
    let d = scaler.pass().await.unwrap()[&key];
    assert_eq!(d.replicas, 3, "never above the partition count: {d:?}");
    assert_eq!(replicas(&deployments, "bowchat-auction").await, 3);

    // `kubectl wait` sees the capped pass.
    let (ok, out, err) = kubectl(
        &[
            "-n",
            &ns.name,
            "wait",
            "--for=condition=ScalingLimited",
            "--timeout=30s",
            "auction/clock",
        ],
        None,
    );
    assert!(ok, "kubectl wait ScalingLimited: {out} {err}");
    let s = auctions.get("clock").await.unwrap().status.unwrap();
    let limited = s
        .conditions
        .iter()
        .find(|c| c.type_ == "ScalingLimited")
        .unwrap();
    assert_eq!(
        (limited.status.as_str(), limited.reason.as_str()),
        ("True", "PartitionCap")
    );
    let capacity = s.capacity.expect("status.capacity");
    assert_eq!(
        (
            capacity.desired_replicas,
            capacity.recommended_replicas,
            capacity.lag,
            capacity.partitions,
            capacity.reason.as_str()
        ),
        (3, 3, Some(105), Some(3), "PartitionCap")
    );
    assert!(capacity.last_scale_time.is_some());

    // The group catches up (commits the end of every partition).
    catch_up(&prefix, &group, 3);
    assert_eq!(lag(&kafka, &group).await, 0);

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
    let rendered = metrics.render();
    assert!(
        rendered.contains("bowchat_operator_scale_changes_total 2"),
        "{rendered}"
    );
    assert!(
        rendered.contains("bowchat_operator_scaler_errors_total 0"),
        "{rendered}"
    );
    let last_success: f64 = rendered
        .lines()
        .find_map(|l| l.strip_prefix("bowchat_operator_scaler_last_success_timestamp_seconds "))
        .expect("the last-success gauge")
        .parse()
        .unwrap();
    assert!(last_success > 1.6e9, "{rendered}");

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
