//! The reconciler against the real API server and the real platform binary:
//! an Auction is registered (once, keyed on its uid), its status follows live
//! bids to a winner, and deleting it cancels the platform's auction.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bowchat_operator::crd::Auction;
use bowchat_operator::metrics::Metrics;
use bowchat_operator::platform::{Platform as Client, PlatformConfig};
use bowchat_operator::reconcile::{self, Context, ReconcileConfig};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{eventually, install_crd, Namespace, Platform};

const PASSWORD: &str = "operator service secret";

async fn status_of(api: &Api<Auction>, name: &str) -> Option<bowchat_operator::crd::AuctionStatus> {
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|a| a.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_mirrors_bids_and_cancels_on_delete() {
    install_crd();
    let ns = Namespace::create("reconcile");
    let platform = Platform::start();
    let (operator_id, _) = platform.user("operator", PASSWORD).await;
    let (alice, alice_token) = platform.user("alice", "alice password 1").await;
    let (bob, bob_token) = platform.user("bob", "bob password 22").await;

    let client = support::client().await;
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        Client::new(PlatformConfig {
            url: platform.url(),
            email: "operator@test.bowchat".into(),
            password: PASSWORD.into(),
        }),
        None,
        ReconcileConfig {
            poll: Duration::from_millis(300),
            ..ReconcileConfig::default()
        },
        metrics.clone(),
    ));
    let controller = tokio::spawn(reconcile::run(ctx, Some(ns.name.clone())));

    let api: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let auction: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction",
        "metadata": {"name": "lamp"},
        "spec": {"title": "Brass lamp", "startingPrice": 100, "increment": 10,
                 "buyNowPrice": 1000, "durationSeconds": 600}
    }))
    .unwrap();
    let started = std::time::Instant::now();
    let created = api
        .create(&Default::default(), &auction)
        .await
        .expect("create Auction");
    let status = eventually(20, "registered and open", || async {
        status_of(&api, "lamp")
            .await
            .filter(|s| s.phase.as_deref() == Some("Open"))
    })
    .await;
    println!("registered and Open after {:?}", started.elapsed());
    let id = status.auction_id.expect("auction id");
    assert_eq!(status.observed_generation, created.metadata.generation);
    let registered = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Registered")
        .expect("Registered");
    assert_eq!(registered.status, "True");
    assert!(status
        .conditions
        .iter()
        .any(|c| c.type_ == "Synced" && c.status == "True"));

    let (code, view) = platform
        .get(&format!("/api/auctions/{id}"), &alice_token)
        .await;
    assert_eq!(code, 200);
    assert_eq!(view["title"], "Brass lamp");
    assert_eq!(
        view["sellerId"], operator_id,
        "the operator's service user is the seller"
    );

    // The finalizer is in place before anything reaches the platform.
    let stored = api.get("lamp").await.unwrap();
    assert_eq!(
        stored.metadata.finalizers,
        Some(vec![reconcile::FINALIZER.to_string()])
    );

    // Idempotent on the uid: forgetting the id in status re-registers to the same auction.
    api.patch_status(
        "lamp",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"auctionId": null}})),
    )
    .await
    .unwrap();
    let again = eventually(20, "re-registered", || async {
        status_of(&api, "lamp").await.and_then(|s| s.auction_id)
    })
    .await;
    assert_eq!(again, id, "the same platform auction, not a second one");
    let (_, list) = platform.get("/api/auctions?limit=50", &alice_token).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "one auction on the platform: {list}"
    );

    // Live bids show up in status.
    let (code, body) = platform
        .post(
            &format!("/api/auctions/{id}/bids"),
            Some(&alice_token),
            json!({"amount": 100}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = platform
        .post(
            &format!("/api/auctions/{id}/bids"),
            Some(&bob_token),
            json!({"amount": 150}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let bid_at = std::time::Instant::now();
    let s = eventually(10, "status follows bids", || async {
        status_of(&api, "lamp").await.filter(|s| s.bid_count == 2)
    })
    .await;
    println!("status followed 2 bids after {:?}", bid_at.elapsed());
    assert_eq!(
        (s.price, s.leader_id, s.winner_id),
        (Some(150), Some(bob), None)
    );

    // A buy-now bid closes it with a winner.
    let (code, body) = platform
        .post(
            &format!("/api/auctions/{id}/bids"),
            Some(&alice_token),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let s = eventually(10, "closed with a winner", || async {
        status_of(&api, "lamp")
            .await
            .filter(|s| s.phase.as_deref() == Some("Closed"))
    })
    .await;
    assert_eq!(
        (s.winner_id, s.price, s.outcome.as_deref()),
        (Some(alice), Some(1000), Some("Sold"))
    );

    // Events were recorded for the resource.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "Registered"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "PhaseChanged"), "{reasons:?}");

    // A second auction, deleted while open: the finalizer cancels it on the platform.
    let second: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction",
        "metadata": {"name": "chair"},
        "spec": {"title": "Oak chair", "startingPrice": 100, "durationSeconds": 600}
    }))
    .unwrap();
    api.create(&Default::default(), &second).await.unwrap();
    let chair = eventually(20, "chair registered", || async {
        status_of(&api, "chair").await.and_then(|s| s.auction_id)
    })
    .await;
    api.delete("chair", &DeleteParams::default()).await.unwrap();
    eventually(20, "chair deleted after its finalizer", || async {
        api.get_opt("chair").await.unwrap().is_none().then_some(())
    })
    .await;
    let (_, view) = platform
        .get(&format!("/api/auctions/{chair}"), &alice_token)
        .await;
    assert_eq!(view["phase"], "cancelled", "{view}");
    assert!(
        metrics
            .render()
            .contains("bowchat_operator_registrations_total 3"),
        "{}",
        metrics.render()
    );

    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_platform_refuses_is_reported_not_retried_hot() {
    install_crd();
    let ns = Namespace::create("refused");
    let platform = Platform::start();
    platform.user("operator", PASSWORD).await;
    let client = support::client().await;
    let ctx = Arc::new(Context::new(
        client.clone(),
        Client::new(PlatformConfig {
            url: platform.url(),
            email: "operator@test.bowchat".into(),
            password: PASSWORD.into(),
        }),
        None,
        ReconcileConfig {
            poll: Duration::from_millis(300),
            ..ReconcileConfig::default()
        },
        Arc::new(Metrics::default()),
    ));
    let controller = tokio::spawn(reconcile::run(ctx, Some(ns.name.clone())));
    let api: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    // Valid for the schema, but it ended in the past: the platform refuses it.
    let past: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction",
        "metadata": {"name": "late"},
        "spec": {"title": "Too late", "startingPrice": 100, "endsAt": "2020-01-01T00:00:00Z"}
    }))
    .unwrap();
    api.create(&Default::default(), &past).await.unwrap();
    let s = eventually(20, "refusal in status", || async {
        status_of(&api, "late")
            .await
            .filter(|s| s.phase.as_deref() == Some("Failed"))
    })
    .await;
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Registered")
        .unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Refused"));
    assert!(c.message.contains("INVALID_TERMS"), "{}", c.message);
    controller.abort();
}

/// Kafka down does not freeze auctions: with the admin on a closed loopback
/// port, an Auction that asks for partitions still registers, opens and
/// mirrors a bid, and says the partitions are unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_does_not_freeze_an_auction() {
    install_crd();
    let ns = Namespace::create("nokafka");
    let platform = Platform::start();
    platform.user("operator", PASSWORD).await;
    let (_, alice_token) = platform.user("alice", "alice password 1").await;
    let client = support::client().await;
    let ctx = Arc::new(Context::new(
        client.clone(),
        Client::new(PlatformConfig {
            url: platform.url(),
            email: "operator@test.bowchat".into(),
            password: PASSWORD.into(),
        }),
        Some(support::kafka::dead_admin(1_000)),
        ReconcileConfig {
            poll: Duration::from_millis(300),
            ..ReconcileConfig::default()
        },
        Arc::new(Metrics::default()),
    ));
    let controller = tokio::spawn(reconcile::run(ctx, Some(ns.name.clone())));
    let api: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let auction: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "metadata": {"name": "kite"},
        "spec": {"title": "Kite", "startingPrice": 100, "durationSeconds": 600,
                 "capacity": {"partitions": 6}}
    }))
    .unwrap();
    api.create(&Default::default(), &auction).await.unwrap();
    let s = eventually(20, "registered and open without Kafka", || async {
        status_of(&api, "kite")
            .await
            .filter(|s| s.phase.as_deref() == Some("Open"))
    })
    .await;
    let partitions = s
        .conditions
        .iter()
        .find(|c| c.type_ == "PartitionsReady")
        .expect("PartitionsReady");
    assert_eq!(
        (partitions.status.as_str(), partitions.reason.as_str()),
        ("Unknown", "KafkaUnavailable")
    );
    assert!(s
        .conditions
        .iter()
        .any(|c| c.type_ == "Registered" && c.status == "True"));
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "unknown partitions do not make the auction unready: {:?}",
        s.conditions
    );
    let id = s.auction_id.unwrap();
    let (code, body) = platform
        .post(
            &format!("/api/auctions/{id}/bids"),
            Some(&alice_token),
            json!({"amount": 100}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let bid_at = std::time::Instant::now();
    eventually(10, "bidCount mirrored within 10 s", || async {
        status_of(&api, "kite").await.filter(|s| s.bid_count == 1)
    })
    .await;
    println!("bid mirrored {:?} after it, Kafka down", bid_at.elapsed());
    controller.abort();
}
