//! Kafka and Deployment helpers of the scaling tests: topics on a prefix of
//! their own, records nobody consumed, a group that catches up, and an admin
//! pointed at a closed loopback port.

use std::sync::Arc;
use std::time::Duration;

use bowchat_kafka::{KafkaAdmin, KafkaConfig};
use bowchat_testenv::TestEnv;
use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

pub fn bootstrap() -> String {
    TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka")
}

/// An admin on a fresh prefix with `auction-bid` of `partitions`; returns the
/// prefix too (the group `{prefix}auction-role` is the test's own).
pub async fn admin(partitions: u32) -> (Arc<KafkaAdmin>, String) {
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

/// An admin whose broker is a loopback port nothing listens on (bound, then
/// closed): every call fails after `timeout_ms`.
pub fn dead_admin(timeout_ms: u64) -> Arc<KafkaAdmin> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Arc::new(
        KafkaAdmin::new(KafkaConfig {
            bootstrap: format!("127.0.0.1:{port}"),
            admin_timeout_ms: timeout_ms,
            ..KafkaConfig::default()
        })
        .unwrap(),
    )
}

/// `n` records on `{prefix}auction-bid`, spread over `partitions`.
pub async fn produce(prefix: &str, n: usize, partitions: i32) {
    let topic = format!("{prefix}auction-bid");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let sends = (0..n).map(|i| {
        producer.send(
            FutureRecord::<str, str>::to(&topic)
                .payload("bid")
                .partition(i as i32 % partitions),
            Duration::from_secs(10),
        )
    });
    try_join_all(sends).await.map_err(|(e, _)| e).unwrap();
}

/// `group` commits the end of every partition: its lag becomes 0.
pub fn catch_up(prefix: &str, group: &str, partitions: i32) {
    let topic = format!("{prefix}auction-bid");
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = committer
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .unwrap();
        tpl.add_partition_offset(&topic, p, Offset::Offset(high))
            .unwrap();
    }
    committer.commit(&tpl, CommitMode::Sync).unwrap();
}

pub async fn lag(kafka: &KafkaAdmin, group: &str) -> u64 {
    kafka
        .consumer_lag(group, "auction-bid")
        .await
        .unwrap()
        .iter()
        .map(|p| p.lag)
        .sum()
}

/// An auction-role Deployment (no kubelet runs, so no Pod ever starts).
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "auction", "image": "bowchat:test"}]}}}
    }))
    .unwrap()
}

pub async fn replicas(api: &Api<Deployment>, name: &str) -> u32 {
    api.get(name).await.unwrap().spec.unwrap().replicas.unwrap() as u32
}
