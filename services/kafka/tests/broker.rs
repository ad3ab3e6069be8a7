//! The Kafka adapter against the real broker of `scripts/testenv up kafka`.
//! Every test works in its own topics (a unique topic prefix) and deletes them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bowchat_bus::{partition_for, topics, Bus, BusError, Consumer, Record};
use bowchat_kafka::{
    replay_dead_letters, AdminError, Ensured, KafkaAdmin, KafkaBus, KafkaConfig, KafkaConsumer,
    StoredOffsets,
};
use bowchat_testenv::TestEnv;
use bytes::Bytes;

const WAIT: Duration = Duration::from_secs(30);

struct Env {
    admin: KafkaAdmin,
    bus: KafkaBus,
    created: Vec<String>,
}

impl Env {
    /// `topics`: (logical name, partitions), created before the bus exists.
    async fn new(topics: &[(&str, u32)]) -> Self {
        let config = KafkaConfig {
            bootstrap: TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka"),
            client_id: "bowchat-kafka-test".into(),
            topic_prefix: format!("t{}.", uuid::Uuid::new_v4().simple()),
            // The broker's smallest allowed session: a leaver is noticed fast.
            session_timeout_ms: 6_000,
            metadata_max_age_ms: 500,
            ..KafkaConfig::default()
        };
        let admin = KafkaAdmin::new(config.clone()).expect("admin");
        for (name, partitions) in topics {
            admin
                .ensure_topics(&[name], *partitions, 1)
                .await
                .expect("create topic");
        }
        let bus = KafkaBus::new(config).expect("bus");
        Self {
            admin,
            bus,
            created: topics.iter().map(|(n, _)| n.to_string()).collect(),
        }
    }

    async fn consumer(&self, topic: &str, group: &str) -> KafkaConsumer {
        self.bus.consumer(topic, group).await.expect("subscribe")
    }

    async fn cleanup(self) {
        let names: Vec<&str> = self.created.iter().map(String::as_str).collect();
        let _ = self.admin.delete_topics(&names).await;
    }
}

/// Polls until `n` records arrived (panics after `WAIT`).
async fn collect(consumer: &mut KafkaConsumer, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records within {WAIT:?}",
            got.len()
        );
        got.extend(
            consumer
                .poll_timeout(n - got.len(), Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    got
}

fn payload(key: &str, i: usize) -> Bytes {
    Bytes::from(format!("{key}:{i}"))
}

fn seq_of(record: &Record) -> usize {
    let text = std::str::from_utf8(&record.payload).unwrap();
    text.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[tokio::test]
async fn publish_and_consume_keep_per_key_order_across_partitions() {
    let env = Env::new(&[("orders", 4)]).await;
    let keys: Vec<String> = (0..12).map(|i| format!("auction-{i}")).collect();
    let per_key = 40;
    let started = Instant::now();
    for i in 0..per_key {
        // Half as single publishes, half as batches: both paths keep order.
        if i % 2 == 0 {
            for k in &keys {
                env.bus.publish("orders", k, payload(k, i)).await.unwrap();
            }
        } else {
            let batch = keys.iter().map(|k| (k.clone(), payload(k, i))).collect();
            env.bus.publish_all("orders", batch).await.unwrap();
        }
    }
    println!(
        "published {} records in {:?}",
        keys.len() * per_key,
        started.elapsed()
    );
    assert_eq!(env.bus.partitions("orders").unwrap(), 4);

    let mut consumer = env.consumer("orders", "order-readers").await;
    let records = collect(&mut consumer, keys.len() * per_key).await;
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut partitions_used = BTreeSet::new();
    for r in &records {
        assert_eq!(r.topic, "orders", "records carry the logical topic name");
        assert_eq!(
            r.partition,
            partition_for(&r.key, 4),
            "same mapping as in-process"
        );
        partitions_used.insert(r.partition);
        by_key.entry(r.key.clone()).or_default().push(seq_of(r));
    }
    assert!(partitions_used.len() > 1, "keys spread over partitions");
    for k in &keys {
        assert_eq!(by_key[k], (0..per_key).collect::<Vec<_>>(), "order of {k}");
    }
    drop(consumer);
    env.cleanup().await;
}

#[tokio::test]
async fn a_new_member_resumes_after_the_committed_records() {
    let env = Env::new(&[("cmds", 2)]).await;
    for i in 0..20 {
        let key = format!("room-{}", i % 5);
        env.bus
            .publish("cmds", &key, payload(&key, i))
            .await
            .unwrap();
    }
    let mut first = env.consumer("cmds", "writers").await;
    let all = collect(&mut first, 20).await;
    // Commit a per-partition prefix: the first 8 records as polled.
    let (done, rest) = all.split_at(8);
    first.commit(done).await.expect("commit");
    drop(first);

    // Through the port, as the roles use it: poll waits for a record, then
    // returns at most `max` without waiting for more.
    let mut second: Box<dyn Consumer> = env.bus.subscribe("cmds", "writers").await.unwrap();
    let mut resumed = Vec::new();
    while resumed.len() < rest.len() {
        let batch = tokio::time::timeout(WAIT, second.poll(3))
            .await
            .expect("records within the wait")
            .unwrap();
        assert!((1..=3).contains(&batch.len()), "batch of {}", batch.len());
        resumed.extend(batch);
    }
    let want: BTreeSet<(u32, u64)> = rest.iter().map(|r| (r.partition, r.offset)).collect();
    let got: BTreeSet<(u32, u64)> = resumed.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(got, want, "exactly the uncommitted records come again");
    // Nothing more is pending.
    let extra = tokio::time::timeout(Duration::from_millis(1500), second.poll(10)).await;
    assert!(extra.is_err(), "committed records came back: {extra:?}");
    drop(second);
    env.cleanup().await;
}

#[tokio::test]
async fn two_members_split_partitions_and_the_leavers_commit_is_fenced() {
    let env = Env::new(&[("bids", 4)]).await;
    let keys: Vec<String> = (0..16).map(|i| format!("auction-{i}")).collect();
    let batch: Vec<(String, Bytes)> = keys.iter().map(|k| (k.clone(), payload(k, 0))).collect();
    env.bus.publish_all("bids", batch).await.unwrap();
    let total = keys.len();
    let spread: BTreeSet<u32> = keys.iter().map(|k| partition_for(k, 4)).collect();
    assert_eq!(spread.len(), 4, "the test keys cover every partition");

    let mut a = env.consumer("bids", "auction-role").await;
    let held = collect(&mut a, total).await;
    assert_eq!(a.assignment(), vec![0, 1, 2, 3]);

    let mut b = env.consumer("bids", "auction-role").await;
    let started = Instant::now();
    let (a_after, b_records) = tokio::join!(
        async {
            // A keeps polling (that is when librdkafka runs its rebalance) until
            // it lost partitions; nothing it gets may belong to a lost partition.
            while a.assignment().len() == 4 {
                assert!(started.elapsed() < WAIT, "A never lost a partition");
                let batch = a
                    .poll_timeout(100, Duration::from_millis(200))
                    .await
                    .unwrap();
                let owned = a.assignment();
                assert!(batch.iter().all(|r| owned.contains(&r.partition)));
            }
            a.assignment()
        },
        async {
            let mut got = Vec::new();
            while b.assignment().is_empty() || got.is_empty() {
                assert!(started.elapsed() < WAIT, "B never got partitions");
                got.extend(
                    b.poll_timeout(100, Duration::from_millis(200))
                        .await
                        .unwrap(),
                );
            }
            got
        }
    );
    println!("rebalance to two members took {:?}", started.elapsed());
    let b_owned = b.assignment();
    assert!(
        !a_after.is_empty() && !b_owned.is_empty(),
        "both members own partitions"
    );
    assert!(
        a_after.iter().all(|p| !b_owned.contains(p)),
        "no partition owned twice"
    );
    // B starts where nobody committed: the records A held for B's partitions.
    assert!(b_records.iter().all(|r| b_owned.contains(&r.partition)));

    // A's batch spans partitions it lost: committing it is refused.
    assert!(matches!(a.commit(&held).await, Err(BusError::Fenced)));
    // Its own partitions still commit.
    let kept: Vec<Record> = held
        .iter()
        .filter(|r| a_after.contains(&r.partition))
        .cloned()
        .collect();
    a.commit(&kept).await.expect("commit of owned partitions");

    // A leaves; B takes over all partitions and reads what A never committed.
    drop(a);
    let started = Instant::now();
    let mut b_seen: BTreeSet<(u32, u64)> =
        b_records.iter().map(|r| (r.partition, r.offset)).collect();
    while b.assignment().len() < 4 {
        assert!(
            started.elapsed() < WAIT,
            "B never got the leaver's partitions"
        );
        for r in b
            .poll_timeout(100, Duration::from_millis(200))
            .await
            .unwrap()
        {
            b_seen.insert((r.partition, r.offset));
        }
    }
    println!("takeover after leave took {:?}", started.elapsed());
    let lost_by_a: BTreeSet<(u32, u64)> = held
        .iter()
        .filter(|r| !a_after.contains(&r.partition))
        .map(|r| (r.partition, r.offset))
        .collect();
    assert!(
        lost_by_a.is_subset(&b_seen),
        "B processed A's uncommitted records"
    );
    // A committed its own partitions, so B does not see those again.
    let rest = b
        .poll_timeout(100, Duration::from_millis(1500))
        .await
        .unwrap();
    assert!(
        rest.iter().all(|r| !a_after.contains(&r.partition)),
        "records A committed came again: {rest:?}"
    );
    drop(b);
    env.cleanup().await;
}

#[tokio::test]
async fn partitions_grow_and_never_shrink() {
    let env = Env::new(&[("rooms", 2)]).await;
    assert_eq!(env.bus.partitions("rooms").unwrap(), 2);
    match env.admin.grow_partitions("rooms", 1).await {
        Err(AdminError::Shrink {
            current: 2,
            requested: 1,
            ..
        }) => {}
        other => panic!("shrink must fail, got {other:?}"),
    }
    assert_eq!(env.admin.grow_partitions("rooms", 2).await.unwrap(), 2);
    assert_eq!(env.admin.grow_partitions("rooms", 6).await.unwrap(), 2);
    assert_eq!(env.admin.partitions("rooms").await.unwrap(), 6);

    // The bus sees the new count once its cached metadata is older than
    // `metadata_max_age_ms` (500 ms here) and routes to the new partitions.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let key = (0..100)
        .map(|i| format!("room-{i}"))
        .find(|k| partition_for(k, 6) >= 2)
        .unwrap();
    env.bus
        .publish("rooms", &key, payload(&key, 0))
        .await
        .unwrap();
    assert_eq!(env.bus.partitions("rooms").unwrap(), 6);
    let mut consumer = env.consumer("rooms", "readers").await;
    let got = collect(&mut consumer, 1).await;
    assert_eq!(got[0].partition, partition_for(&key, 6));
    assert!(got[0].partition >= 2, "landed in a grown partition");
    drop(consumer);
    env.cleanup().await;
}

#[tokio::test]
async fn lag_is_produced_minus_committed() {
    let env = Env::new(&[("events", 3)]).await;
    let mut produced: BTreeMap<u32, u64> = BTreeMap::new();
    for i in 0..30 {
        let key = format!("k{i}");
        *produced.entry(partition_for(&key, 3)).or_default() += 1;
        env.bus
            .publish("events", &key, payload(&key, i))
            .await
            .unwrap();
    }
    let mut consumer = env.consumer("events", "lagging").await;
    let all = collect(&mut consumer, 30).await;
    consumer.commit(&all[..11]).await.unwrap();
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &all[..11] {
        let next = committed.entry(r.partition).or_default();
        *next = (*next).max(r.offset + 1);
    }

    let lag = env.admin.consumer_lag("lagging", "events").await.unwrap();
    assert_eq!(lag.len(), 3);
    for l in &lag {
        let produced = produced.get(&l.partition).copied().unwrap_or(0);
        assert_eq!(l.high_watermark, produced);
        assert_eq!(l.committed, committed.get(&l.partition).copied());
        let done = committed.get(&l.partition).copied().unwrap_or(0);
        assert_eq!(l.lag, produced - done, "partition {}", l.partition);
    }
    assert_eq!(lag.iter().map(|l| l.lag).sum::<u64>(), 19);

    let idle = env
        .admin
        .consumer_lag("never-read", "events")
        .await
        .unwrap();
    assert_eq!(idle.iter().map(|l| l.lag).sum::<u64>(), 30);
    assert!(idle.iter().all(|l| l.committed.is_none()));
    drop(consumer);
    env.cleanup().await;
}

#[tokio::test]
async fn dead_letters_carry_headers_and_replay_to_the_original_topic() {
    let dlt = topics::dead_letter("chat-message");
    let env = Env::new(&[("chat-message", 2), (dlt.as_str(), 2)]).await;
    env.bus
        .publish("chat-message", "room-9", Bytes::from_static(b"poison"))
        .await
        .unwrap();
    env.bus
        .publish("chat-message", "room-9", Bytes::from_static(b"fine"))
        .await
        .unwrap();
    let mut consumer = env.consumer("chat-message", "chat-role").await;
    let records = collect(&mut consumer, 2).await;
    let poison = records
        .iter()
        .find(|r| &r.payload[..] == b"poison")
        .unwrap();
    env.bus
        .dead_letter(poison, "unreadable: expected value", 3)
        .await
        .unwrap();
    assert_eq!(env.bus.dead_lettered_total(), 1);
    // The partition moves on past the poison record.
    consumer.commit(&records).await.unwrap();

    let report = replay_dead_letters(&env.bus, "chat-message", Some("dlt-admin"))
        .await
        .unwrap();
    assert_eq!(report.without_headers, 0);
    assert_eq!(report.replayed.len(), 1);
    let letter = &report.replayed[0];
    assert_eq!(letter.key, "room-9");
    assert_eq!(letter.error, "unreadable: expected value");
    assert_eq!(letter.original_topic, "chat-message");
    assert_eq!(letter.original_partition, poison.partition);
    assert_eq!(letter.original_offset, poison.offset);
    assert_eq!(letter.attempts, 3);

    // The replayed record is back on its topic, after the committed ones.
    let again = collect(&mut consumer, 1).await;
    assert_eq!(&again[0].payload[..], b"poison");
    assert_eq!(again[0].key, "room-9");
    assert!(again[0].offset > poison.offset);

    // A second replay has nothing left to do.
    let second = replay_dead_letters(&env.bus, "chat-message", Some("dlt-admin"))
        .await
        .unwrap();
    assert!(second.replayed.is_empty());
    drop(consumer);
    env.cleanup().await;
}

#[tokio::test]
async fn a_missing_topic_is_a_clear_error_and_is_not_created() {
    let env = Env::new(&[]).await;
    let started = Instant::now();
    match env.bus.publish("no-such-topic", "k", Bytes::new()).await {
        Err(BusError::UnknownTopic(t)) => assert_eq!(t, "no-such-topic"),
        other => panic!("expected UnknownTopic, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        env.bus.subscribe("no-such-topic", "g").await.err(),
        Some(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        env.bus.partitions("no-such-topic"),
        Err(BusError::UnknownTopic(_))
    ));
    assert!(matches!(
        env.admin.partitions("no-such-topic").await,
        Err(AdminError::UnknownTopic(_))
    ));

    // The bus topics are created with their dead-letter topics, once.
    let first = env.admin.ensure_bus_topics().await.unwrap();
    assert_eq!(first.len(), 8);
    assert!(first
        .iter()
        .all(|e| matches!(e, Ensured::Created { partitions: 12, .. })));
    let second = env.admin.ensure_bus_topics().await.unwrap();
    assert!(second
        .iter()
        .all(|e| matches!(e, Ensured::Existed { partitions: 12, .. })));
    assert_eq!(env.bus.partitions("auction-bid.DLT").unwrap(), 12);
    let mut all: Vec<String> = topics::ALL.iter().map(|t| t.to_string()).collect();
    all.extend(topics::ALL.iter().map(|t| topics::dead_letter(t)));
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    env.admin.delete_topics(&names).await.unwrap();
    env.cleanup().await;
}

/// Stands in for the auction role's offsets table (the store, not a server).
struct Table(HashMap<u32, u64>);

#[async_trait]
impl StoredOffsets for Table {
    async fn next_offsets(
        &self,
        topic: &str,
        partitions: &[u32],
    ) -> Result<Vec<(u32, u64)>, String> {
        assert_eq!(topic, "auction-bid");
        Ok(partitions
            .iter()
            .filter_map(|p| self.0.get(p).map(|o| (*p, *o)))
            .collect())
    }
}

#[tokio::test]
async fn assignment_resumes_from_stored_offsets_not_the_group_commit() {
    let env = Env::new(&[("auction-bid", 1)]).await;
    for i in 0..10 {
        env.bus
            .publish("auction-bid", "auction-1", payload("auction-1", i))
            .await
            .unwrap();
    }
    // The group committed 2, but the store says 6 were applied.
    let mut c = env.consumer("auction-bid", "auction-role").await;
    let first = collect(&mut c, 2).await;
    c.commit(&first).await.unwrap();
    drop(c);

    let table = Arc::new(Table(HashMap::from([(0, 6)])));
    let mut c = env
        .consumer("auction-bid", "auction-role")
        .await
        .with_stored_offsets(table);
    let rest = collect(&mut c, 4).await;
    let offsets: Vec<u64> = rest.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    drop(c);
    env.cleanup().await;
}

#[tokio::test]
async fn a_poll_dropped_by_select_loses_nothing() {
    let env = Env::new(&[("ticks", 3)]).await;
    let batch: Vec<(String, Bytes)> = (0..60)
        .map(|i| {
            let key = format!("auction-{}", i % 7);
            let value = payload(&key, i);
            (key, value)
        })
        .collect();
    env.bus.publish_all("ticks", batch).await.unwrap();
    // As the auction role does: poll races a timer, and the timer often wins.
    let mut consumer: Box<dyn Consumer> = env.bus.subscribe("ticks", "timers").await.unwrap();
    let started = Instant::now();
    let mut seen: Vec<(u32, u64)> = Vec::new();
    let mut timer_wins = 0;
    while seen.len() < 60 {
        assert!(started.elapsed() < WAIT, "only {} of 60", seen.len());
        tokio::select! {
            polled = consumer.poll(4) => {
                seen.extend(polled.unwrap().iter().map(|r| (r.partition, r.offset)));
            }
            _ = tokio::time::sleep(Duration::from_millis(1)) => timer_wins += 1,
        }
    }
    let unique: BTreeSet<(u32, u64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 60, "no record twice, none lost");
    println!("{timer_wins} polls were dropped by the timer");
    drop(consumer);
    env.cleanup().await;
}
