//! The message bus on Kafka (cluster mode): the `bowchat_bus::Bus` port with
//! an idempotent producer ([`KafkaBus`]), group consumers that commit only what
//! the caller says and refuse commits after losing a partition
//! ([`KafkaConsumer`]), dead-letter topics with replay ([`replay_dead_letters`]),
//! and topic administration and lag ([`KafkaAdmin`]). Settings: [`KafkaConfig`];
//! operations: docs/operations.md.

mod admin;
mod config;
mod consumer;
mod dead_letter;
mod producer;

pub use admin::{AdminError, Ensured, KafkaAdmin, PartitionLag};
pub use config::{ConfigError, KafkaConfig, OffsetReset};
pub use consumer::{GroupContext, KafkaConsumer, StoredOffsets};
pub use dead_letter::{
    replay_dead_letters, DeadLetter, ReplayReport, HEADER_ATTEMPTS, HEADER_ERROR, HEADER_OFFSET,
    HEADER_PARTITION, HEADER_TOPIC,
};
pub use producer::KafkaBus;

use bowchat_bus::BusError;

/// A librdkafka failure without a more specific meaning for the port.
pub(crate) fn transport(e: impl std::fmt::Display) -> BusError {
    BusError::Transport(e.to_string())
}
