//! Leader election on a real Lease, and the metrics endpoint over HTTP.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bowchat_operator::leader::{try_acquire, LeaseConfig};
use bowchat_operator::metrics::{serve, Metrics};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::Namespace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let ns = Namespace::create("lease");
    let client = support::client().await;
    let api: Api<Lease> = Api::namespaced(client, &ns.name);
    let config = |identity: &str| LeaseConfig {
        namespace: ns.name.clone(),
        name: "bowchat-operator".into(),
        identity: identity.into(),
        duration: Duration::from_secs(2),
    };
    let (a, b) = (config("a"), config("b"));
    assert!(
        try_acquire(&api, &a).await.unwrap(),
        "first candidate takes the free Lease"
    );
    assert!(
        !try_acquire(&api, &b).await.unwrap(),
        "second is refused while it is held"
    );
    assert!(try_acquire(&api, &a).await.unwrap(), "the holder renews");
    assert!(!try_acquire(&api, &b).await.unwrap());
    let lease = api.get("bowchat-operator").await.unwrap().spec.unwrap();
    assert_eq!(
        (lease.holder_identity.as_deref(), lease.lease_transitions),
        (Some("a"), Some(0))
    );

    // `a` stops renewing; after the duration `b` takes over and `a` is out.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert!(
        try_acquire(&api, &b).await.unwrap(),
        "takeover after expiry"
    );
    assert!(
        !try_acquire(&api, &a).await.unwrap(),
        "the old holder does not get it back"
    );
    let lease = api.get("bowchat-operator").await.unwrap().spec.unwrap();
    assert_eq!(
        (lease.holder_identity.as_deref(), lease.lease_transitions),
        (Some("b"), Some(1))
    );
}

#[tokio::test]
async fn metrics_are_served() {
    let metrics = Arc::new(Metrics::default());
    metrics.registered();
    metrics.scaled(3);
    metrics.observe_lag(42, 6);
    let addr = serve(metrics, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "bowchat_operator_registrations_total 1",
        "bowchat_operator_scale_changes_total 1",
        "bowchat_operator_desired_replicas 3",
        "bowchat_operator_auction_bid_lag 42",
        "bowchat_operator_auction_bid_partitions 6",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
