//! Smoke test of the `kafka` testenv component: a real Kafka broker creates a
//! topic on request (and only then), takes records, and hands them to a consumer
//! group that commits its offsets.

use std::time::Duration;

use bowchat_testenv::TestEnv;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const RECORDS: usize = 20;
const PARTITIONS: i32 = 3;
const TIMEOUT: Duration = Duration::from_secs(30);

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

#[tokio::test]
async fn topic_produce_consume_in_a_group_and_commit() {
    let bootstrap = TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("smoke-{run}");
    let group = format!("smoke-group-{run}");

    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));

    // auto.create.topics.enable=false: even a client that asks the broker to
    // create unknown topics on a metadata request gets none.
    let probe: StreamConsumer = config(&bootstrap)
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap();
    let metadata = probe
        .fetch_metadata(Some(&topic), TIMEOUT)
        .expect("metadata from the broker");
    assert!(
        metadata
            .topics()
            .iter()
            .all(|t| t.error().is_some() || t.partitions().is_empty()),
        "the broker created {topic} on a metadata request"
    );

    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &options,
        )
        .await
        .expect("create_topics request");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = config(&bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..RECORDS {
        let key = format!("auction-{}", i % 5);
        let payload = format!("bid-{i}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                TIMEOUT,
            )
            .await
            .map_err(|(err, _)| err)
            .expect("acknowledged produce");
    }

    let consumer: StreamConsumer = config(&bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();

    let mut seen = Vec::new();
    while seen.len() < RECORDS {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .expect("a record within the timeout")
            .expect("a record, not an error");
        let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        seen.push(payload);
    }
    seen.sort_by_key(|p| p.trim_start_matches("bid-").parse::<usize>().unwrap());
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("bid-{i}")).collect();
    assert_eq!(seen, expected);

    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("offsets committed");

    // The group's committed offsets add up to every record produced.
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition(&topic, p);
    }
    let committed = consumer.committed_offsets(partitions, TIMEOUT).unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(total, RECORDS as i64, "{committed:?}");

    drop(consumer);
    let deleted = admin.delete_topics(&[&topic], &options).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
}
