//! `KafkaBus`: the `Bus` port on Kafka.
//!
//! One idempotent producer per process (acks=all, bounded in flight). Each record
//! goes to the partition `partition_for(key, partitions)`, the same mapping as the
//! in-process bus, so the single-writer-per-entity rule does not depend on the
//! adapter. Partition counts come from cached metadata, refreshed after
//! `metadata_max_age_ms` (or on demand) so a grown topic is picked up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bowchat_bus::{partition_for, Bus, BusError, Consumer, Record};
use bytes::Bytes;
use parking_lot::RwLock;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tracing::debug;

use crate::config::KafkaConfig;
use crate::consumer::KafkaConsumer;
use crate::transport;

/// See the module docs.
pub struct KafkaBus {
    config: KafkaConfig,
    producer: FutureProducer,
    /// Broker-side topic name -> (partitions, when fetched).
    partitions: RwLock<HashMap<String, (u32, Instant)>>,
    pub(crate) dead_lettered: AtomicU64,
}

impl KafkaBus {
    /// Creates the producer; no broker round trip happens yet.
    pub fn new(config: KafkaConfig) -> Result<Self, BusError> {
        config
            .validate()
            .map_err(|e| BusError::Transport(e.to_string()))?;
        let producer: FutureProducer = config.producer_config().create().map_err(transport)?;
        Ok(Self {
            config,
            producer,
            partitions: RwLock::new(HashMap::new()),
            dead_lettered: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Records sent to a dead-letter topic by this process.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Reads the partition count of `topic` (logical name) from the brokers and
    /// caches it. An unknown topic is `BusError::UnknownTopic`.
    pub async fn refresh_partitions(&self, topic: &str) -> Result<u32, BusError> {
        let full = self.config.topic_name(topic);
        let count = fetch_partition_count(
            self.producer.clone(),
            full.clone(),
            self.config.admin_timeout(),
        )
        .await
        .map_err(|e| match e {
            BusError::UnknownTopic(_) => BusError::UnknownTopic(topic.to_string()),
            other => other,
        })?;
        self.partitions
            .write()
            .insert(full, (count, Instant::now()));
        Ok(count)
    }

    /// Cached partition count, refreshed when older than `metadata_max_age_ms`.
    async fn partition_count(&self, topic: &str) -> Result<u32, BusError> {
        let full = self.config.topic_name(topic);
        if let Some((count, at)) = self.partitions.read().get(&full) {
            if at.elapsed() < self.config.metadata_max_age() {
                return Ok(*count);
            }
        }
        self.refresh_partitions(topic).await
    }

    /// A group member on `topic` with the concrete type (seek, timed poll, assignment).
    pub async fn consumer(&self, topic: &str, group: &str) -> Result<KafkaConsumer, BusError> {
        // Subscribing to a missing topic would wait silently; fail like publish does.
        self.refresh_partitions(topic).await?;
        KafkaConsumer::new(&self.config, topic, group)
    }

    /// Enqueues one record; the returned future resolves on the broker's ack.
    /// Waits (asynchronously) while the local queue is full, so records are
    /// enqueued in call order and per-partition order holds.
    pub(crate) async fn enqueue(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<DeliveryFuture, BusError> {
        self.enqueue_pinned(topic, key, None, payload, headers)
            .await
    }

    /// [`KafkaBus::enqueue`] with the key mapped over the first `pinned`
    /// partitions (see [`Bus::publish_pinned`]), or over all of them.
    pub(crate) async fn enqueue_pinned(
        &self,
        topic: &str,
        key: &str,
        pinned: Option<u32>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<DeliveryFuture, BusError> {
        let current = self.partition_count(topic).await?;
        let partitions = pinned.map_or(current, |p| p.clamp(1, current));
        let partition = partition_for(key, partitions) as i32;
        let full = self.config.topic_name(topic);
        let mut record = FutureRecord::to(&full)
            .partition(partition)
            .key(key)
            .payload(payload);
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(self.delivery_error(topic, e)),
            }
        }
    }

    /// Waits for the broker's acknowledgement of one enqueued record.
    pub(crate) async fn acknowledged(
        &self,
        topic: &str,
        delivery: DeliveryFuture,
    ) -> Result<(i32, i64), BusError> {
        match delivery.await {
            Ok(Ok(d)) => Ok((d.partition, d.offset)),
            Ok(Err((e, _))) => Err(self.delivery_error(topic, e)),
            Err(_) => Err(BusError::Closed),
        }
    }

    fn delivery_error(&self, topic: &str, e: KafkaError) -> BusError {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                BusError::UnknownTopic(topic.to_string())
            }
            Some(RDKafkaErrorCode::UnknownPartition) => {
                // The cached count is wrong (topic recreated smaller); refetch next time.
                self.partitions
                    .write()
                    .remove(&self.config.topic_name(topic));
                BusError::Transport(format!("{topic}: {e}"))
            }
            _ => BusError::Transport(format!("{topic}: {e}")),
        }
    }

    /// Waits until every enqueued record is acknowledged (before shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.producer.flush(timeout).map_err(transport)
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError> {
        let delivery = self.enqueue(topic, key, &payload, None).await?;
        let (partition, offset) = self.acknowledged(topic, delivery).await?;
        debug!(topic, partition, offset, "published");
        Ok(())
    }

    async fn publish_pinned(
        &self,
        topic: &str,
        key: &str,
        partitions: u32,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let delivery = self
            .enqueue_pinned(topic, key, Some(partitions), &payload, None)
            .await?;
        let (partition, offset) = self.acknowledged(topic, delivery).await?;
        debug!(topic, partition, offset, pinned = partitions, "published");
        Ok(())
    }

    /// Enqueues all records first (in order) and then waits for all acks, so a
    /// batch costs about one round trip instead of one per record.
    async fn publish_all(
        &self,
        topic: &str,
        records: Vec<(String, Bytes)>,
    ) -> Result<(), BusError> {
        let mut pending = Vec::with_capacity(records.len());
        for (key, payload) in &records {
            pending.push(self.enqueue(topic, key, payload, None).await?);
        }
        let mut first_error = None;
        for delivery in pending {
            if let Err(e) = self.acknowledged(topic, delivery).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// With the error, original position and attempts in headers.
    async fn dead_letter(
        &self,
        record: &Record,
        error: &str,
        attempts: u32,
    ) -> Result<(), BusError> {
        KafkaBus::dead_letter(self, record, error, attempts).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError> {
        Ok(Box::new(self.consumer(topic, group).await?))
    }

    /// From the cache; a topic not yet seen is looked up (blocking, bounded by
    /// `admin_timeout_ms`) because the port's method is synchronous.
    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        let full = self.config.topic_name(topic);
        if let Some((count, _)) = self.partitions.read().get(&full) {
            return Ok(*count);
        }
        let count = partition_count_blocking(&self.producer, &full, self.config.admin_timeout())
            .map_err(|e| match e {
                BusError::UnknownTopic(_) => BusError::UnknownTopic(topic.to_string()),
                other => other,
            })?;
        self.partitions
            .write()
            .insert(full, (count, Instant::now()));
        Ok(count)
    }
}

async fn fetch_partition_count(
    producer: FutureProducer,
    full: String,
    timeout: Duration,
) -> Result<u32, BusError> {
    tokio::task::spawn_blocking(move || partition_count_blocking(&producer, &full, timeout))
        .await
        .map_err(|e| BusError::Transport(e.to_string()))?
}

fn partition_count_blocking(
    producer: &FutureProducer,
    full: &str,
    timeout: Duration,
) -> Result<u32, BusError> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(full), timeout)
        .map_err(transport)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == full)
        .ok_or_else(|| BusError::UnknownTopic(full.to_string()))?;
    if !topic.partitions().is_empty() {
        // A leader election in progress still lists every partition.
        return Ok(topic.partitions().len() as u32);
    }
    match topic.error().map(RDKafkaErrorCode::from) {
        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
            Err(BusError::UnknownTopic(full.to_string()))
        }
        Some(code) => Err(BusError::Transport(format!("{full}: {code}"))),
    }
}
