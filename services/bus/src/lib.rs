//! The message bus port and its in-process adapter.
//!
//! Commands flow to the roles on inbound topics and facts flow back on outbound
//! topics (see docs/architecture.md). Records are keyed; the key picks the
//! partition, and all records of one partition reach one consumer of a group in
//! order. Every consumer group sees every record of its topic.

mod in_process;
pub mod outbox;

pub use in_process::InProcessBus;

use async_trait::async_trait;
use bytes::Bytes;

/// Topic names. Inbound topics carry commands, outbound topics carry facts that
/// are already durable.
pub mod topics {
    pub const AUCTION_BID: &str = "auction-bid";
    pub const AUCTION_EVENT: &str = "auction-event";
    pub const CHAT_MESSAGE: &str = "chat-message";
    pub const CHAT_EVENT: &str = "chat-event";
    pub const ALL: [&str; 4] = [AUCTION_BID, AUCTION_EVENT, CHAT_MESSAGE, CHAT_EVENT];

    /// The dead-letter topic of `topic`.
    pub fn dead_letter(topic: &str) -> String {
        format!("{topic}.DLT")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub key: String,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("the bus is shut down")]
    Closed,
    #[error("this consumer lost its partitions to another member of the group")]
    Fenced,
    #[error("bus transport error: {0}")]
    Transport(String),
}

/// The producer side and the entry to consumer groups.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Returns once the bus has accepted the record (for Kafka: acks=all).
    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError>;

    /// Like [`Bus::publish`], but the key is mapped over the first `partitions`
    /// partitions only (at most the topic's count). An entity pinned to the
    /// count its topic had when it was created keeps its partition when the
    /// topic grows, so its commands never split over two partitions.
    async fn publish_pinned(
        &self,
        topic: &str,
        key: &str,
        partitions: u32,
        payload: Bytes,
    ) -> Result<(), BusError>;

    /// Publish several records; returns once all are accepted. Order is kept per key.
    async fn publish_all(
        &self,
        topic: &str,
        records: Vec<(String, Bytes)>,
    ) -> Result<(), BusError> {
        for (key, payload) in records {
            self.publish(topic, &key, payload).await?;
        }
        Ok(())
    }

    /// Sends `record`, which failed `attempts` times with `error`, to its topic's
    /// dead-letter topic. Adapters that carry headers (Kafka) attach the error and
    /// the original position; this default publishes key and payload only.
    async fn dead_letter(
        &self,
        record: &Record,
        error: &str,
        attempts: u32,
    ) -> Result<(), BusError> {
        let _ = (error, attempts);
        self.publish(
            &topics::dead_letter(&record.topic),
            &record.key,
            record.payload.clone(),
        )
        .await
    }

    /// Join consumer `group` on `topic`.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError>;

    /// Number of partitions of `topic`.
    fn partitions(&self, topic: &str) -> Result<u32, BusError>;
}

/// One member of a consumer group.
#[async_trait]
pub trait Consumer: Send {
    /// Waits for at least one record, then returns up to `max` without waiting more.
    async fn poll(&mut self, max: usize) -> Result<Vec<Record>, BusError>;

    /// Marks `records` processed: a restarted group resumes after them.
    async fn commit(&mut self, records: &[Record]) -> Result<(), BusError>;
}

/// The partition of `key` among `partitions` (FNV-1a, stable across processes).
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}
