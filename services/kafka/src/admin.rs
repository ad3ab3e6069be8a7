//! `KafkaAdmin`: creates the bus topics, grows partitions, reports consumer lag.
//!
//! Topics are only ever created here (brokers run with auto creation off).
//! Partitions only grow: Kafka cannot shrink a topic, and a shrink request is
//! an error rather than a silent no-op. Growing changes `partition_for`'s
//! mapping, so per-key order holds only for records published after all
//! producers saw the new count; grow while the roles are idle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bowchat_bus::topics;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tracing::info;

use crate::config::KafkaConfig;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("topic {topic} has {current} partitions; Kafka cannot shrink it to {requested}")]
    Shrink {
        topic: String,
        current: u32,
        requested: u32,
    },
    #[error("kafka admin: {0}")]
    Kafka(String),
}

fn kafka(e: impl std::fmt::Display) -> AdminError {
    AdminError::Kafka(e.to_string())
}

/// Lag of one partition for one group: how many records it has not committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub group: String,
    /// Logical topic name.
    pub topic: String,
    pub partition: u32,
    /// The group's committed next offset; `None` when it never committed.
    pub committed: Option<u64>,
    pub low_watermark: u64,
    pub high_watermark: u64,
    /// `high - committed`; without a commit, `high - low` (the group starts at the
    /// earliest retained record).
    pub lag: u64,
}

impl PartitionLag {
    fn new(
        group: &str,
        topic: &str,
        partition: u32,
        committed: Option<u64>,
        low: u64,
        high: u64,
    ) -> Self {
        let from = committed.unwrap_or(low).max(low);
        Self {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            committed,
            low_watermark: low,
            high_watermark: high,
            lag: high.saturating_sub(from),
        }
    }
}

/// What `ensure_topics` did per topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Created { topic: String, partitions: u32 },
    Existed { topic: String, partitions: u32 },
}

/// See the module docs.
pub struct KafkaAdmin {
    config: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
    /// For metadata, watermarks and committed offsets.
    probe: Arc<BaseConsumer>,
}

impl KafkaAdmin {
    pub fn new(config: KafkaConfig) -> Result<Self, AdminError> {
        config.validate().map_err(kafka)?;
        let admin = config.admin_config().create().map_err(kafka)?;
        let probe = Arc::new(config.admin_config().create().map_err(kafka)?);
        Ok(Self {
            config,
            admin,
            probe,
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.config.admin_timeout()))
            .operation_timeout(Some(self.config.admin_timeout()))
    }

    /// The four bus topics and their dead-letter topics, with the configured
    /// partition count and replication factor.
    pub async fn ensure_bus_topics(&self) -> Result<Vec<Ensured>, AdminError> {
        let mut names: Vec<String> = Vec::new();
        for t in topics::ALL {
            names.push(t.to_string());
            names.push(topics::dead_letter(t));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.ensure_topics(&names, self.config.partitions, self.config.replication)
            .await
    }

    /// Creates each missing topic (logical names); existing ones are left as they are.
    pub async fn ensure_topics(
        &self,
        names: &[&str],
        partitions: u32,
        replication: u16,
    ) -> Result<Vec<Ensured>, AdminError> {
        let full: Vec<String> = names.iter().map(|n| self.config.topic_name(n)).collect();
        let new: Vec<NewTopic<'_>> = full
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    partitions as i32,
                    TopicReplication::Fixed(i32::from(replication)),
                )
            })
            .collect();
        let results = self
            .admin
            .create_topics(new.iter(), &self.options())
            .await
            .map_err(kafka)?;
        let mut ensured = Vec::with_capacity(names.len());
        for (name, result) in names.iter().zip(results) {
            match result {
                Ok(_) => {
                    info!(topic = name, partitions, replication, "topic created");
                    ensured.push(Ensured::Created {
                        topic: name.to_string(),
                        partitions,
                    });
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    ensured.push(Ensured::Existed {
                        topic: name.to_string(),
                        partitions: self.partitions(name).await?,
                    });
                }
                Err((topic, code)) => {
                    return Err(AdminError::Kafka(format!("create {topic}: {code}")))
                }
            }
        }
        self.wait_ready(&full, 1).await?;
        Ok(ensured)
    }

    /// Waits until every topic lists at least `partitions` partitions, each with
    /// a leader, so a caller can use them at once (brokers learn of new topics
    /// and partitions asynchronously).
    async fn wait_ready(&self, full: &[String], partitions: usize) -> Result<(), AdminError> {
        let deadline = tokio::time::Instant::now() + self.config.admin_timeout();
        for name in full {
            loop {
                let probe = self.probe.clone();
                let lookup = name.clone();
                let timeout = self.config.admin_timeout();
                let metadata = blocking(move || probe.fetch_metadata(Some(&lookup), timeout))
                    .await?
                    .map_err(kafka)?;
                let ready = metadata.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() >= partitions
                        && t.partitions()
                            .iter()
                            .all(|p| p.leader() >= 0 && p.error().is_none())
                });
                if ready {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(AdminError::Kafka(format!(
                        "{name}: no leader after creation"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Partition count of `topic` (logical name), fresh from the brokers.
    pub async fn partitions(&self, topic: &str) -> Result<u32, AdminError> {
        let full = self.config.topic_name(topic);
        let timeout = self.config.admin_timeout();
        let probe = self.probe.clone();
        let lookup = full.clone();
        let metadata = blocking(move || probe.fetch_metadata(Some(&lookup), timeout))
            .await?
            .map_err(kafka)?;
        match metadata.topics().iter().find(|t| t.name() == full) {
            Some(t) if !t.partitions().is_empty() => Ok(t.partitions().len() as u32),
            _ => Err(AdminError::UnknownTopic(topic.to_string())),
        }
    }

    /// Grows `topic` to `partitions`; equal is a no-op, fewer is `AdminError::Shrink`.
    /// Returns the count before.
    pub async fn grow_partitions(&self, topic: &str, partitions: u32) -> Result<u32, AdminError> {
        let current = self.partitions(topic).await?;
        if partitions < current {
            return Err(AdminError::Shrink {
                topic: topic.to_string(),
                current,
                requested: partitions,
            });
        }
        if partitions == current {
            return Ok(current);
        }
        let full = self.config.topic_name(topic);
        let request = NewPartitions::new(&full, partitions as usize);
        let results = self
            .admin
            .create_partitions([&request], &self.options())
            .await
            .map_err(kafka)?;
        for result in results {
            result.map_err(|(t, code)| AdminError::Kafka(format!("grow {t}: {code}")))?;
        }
        self.wait_ready(std::slice::from_ref(&full), partitions as usize)
            .await?;
        info!(topic, from = current, to = partitions, "partitions grown");
        Ok(current)
    }

    /// Lag of `group` on every partition of `topic` (logical name).
    pub async fn consumer_lag(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<PartitionLag>, AdminError> {
        let partitions = self.partitions(topic).await?;
        let full = self.config.topic_name(topic);
        let timeout = self.config.admin_timeout();
        // Committed offsets are read by a consumer carrying the group id; it
        // never subscribes, so it does not join or disturb the group.
        let reader: BaseConsumer = self
            .config
            .group_reader_config(group)
            .create()
            .map_err(kafka)?;
        let probe = self.probe.clone();
        let (group, topic) = (group.to_string(), topic.to_string());
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions as i32 {
                tpl.add_partition(&full, p);
            }
            let committed = reader.committed_offsets(tpl, timeout).map_err(kafka)?;
            let committed: HashMap<i32, Option<u64>> = committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => (e.partition(), Some(o as u64)),
                    _ => (e.partition(), None),
                })
                .collect();
            (0..partitions as i32)
                .map(|p| {
                    let (low, high) = probe.fetch_watermarks(&full, p, timeout).map_err(kafka)?;
                    Ok(PartitionLag::new(
                        &group,
                        &topic,
                        p as u32,
                        committed.get(&p).copied().flatten(),
                        low.max(0) as u64,
                        high.max(0) as u64,
                    ))
                })
                .collect()
        })
        .await?
    }

    /// Deletes topics (logical names); for tests and tear-down scripts.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<(), AdminError> {
        let full: Vec<String> = names.iter().map(|n| self.config.topic_name(n)).collect();
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let results = self
            .admin
            .delete_topics(&full, &self.options())
            .await
            .map_err(kafka)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => return Err(AdminError::Kafka(format!("delete {t}: {code}"))),
            }
        }
        Ok(())
    }

    pub fn admin_timeout(&self) -> Duration {
        self.config.admin_timeout()
    }
}

/// librdkafka's metadata and offset calls block; keep them off the async
/// scheduler's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(f).await.map_err(kafka)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_high_minus_committed() {
        let l = PartitionLag::new("g", "t", 0, Some(7), 0, 10);
        assert_eq!(l.lag, 3);
        let never = PartitionLag::new("g", "t", 1, None, 2, 10);
        assert_eq!(never.lag, 8);
        // A commit below the retained range counts from the low watermark.
        let old = PartitionLag::new("g", "t", 2, Some(1), 5, 10);
        assert_eq!(old.lag, 5);
    }
}
