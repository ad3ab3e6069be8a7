//! Dead letters: records that keep failing go to `<topic>.DLT` with the reason
//! in headers, and an admin command can put them back on their topic.
//!
//! Headers (all UTF-8 text): `bowchat-error`, `bowchat-original-topic` (logical
//! name), `bowchat-original-partition`, `bowchat-original-offset`,
//! `bowchat-attempts`. The key and payload are the original record's.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bowchat_bus::{topics, BusError, Record};
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::producer::KafkaBus;
use crate::transport;

pub const HEADER_ERROR: &str = "bowchat-error";
pub const HEADER_TOPIC: &str = "bowchat-original-topic";
pub const HEADER_PARTITION: &str = "bowchat-original-partition";
pub const HEADER_OFFSET: &str = "bowchat-original-offset";
pub const HEADER_ATTEMPTS: &str = "bowchat-attempts";

/// What a dead-letter record says about its original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub key: String,
    pub error: String,
    pub original_topic: String,
    pub original_partition: u32,
    pub original_offset: u64,
    pub attempts: u32,
}

impl DeadLetter {
    /// The dead letter of `record` that failed `attempts` times with `error`.
    pub fn of(record: &Record, error: &str, attempts: u32) -> Self {
        Self {
            key: record.key.clone(),
            error: error.to_string(),
            original_topic: record.topic.clone(),
            original_partition: record.partition,
            original_offset: record.offset,
            attempts,
        }
    }

    pub fn headers(&self) -> OwnedHeaders {
        let values = [
            (HEADER_ERROR, self.error.clone()),
            (HEADER_TOPIC, self.original_topic.clone()),
            (HEADER_PARTITION, self.original_partition.to_string()),
            (HEADER_OFFSET, self.original_offset.to_string()),
            (HEADER_ATTEMPTS, self.attempts.to_string()),
        ];
        values.iter().fold(
            OwnedHeaders::new_with_capacity(values.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                })
            },
        )
    }

    /// Reads the headers back; `None` when one is missing or malformed.
    pub fn from_headers(key: &str, headers: &impl Headers) -> Option<Self> {
        let mut values: HashMap<&str, String> = HashMap::new();
        for h in headers.iter() {
            if let Some(v) = h.value {
                values.insert(h.key, String::from_utf8_lossy(v).into_owned());
            }
        }
        Some(Self {
            key: key.to_string(),
            error: values.remove(HEADER_ERROR)?,
            original_topic: values.remove(HEADER_TOPIC)?,
            original_partition: values.get(HEADER_PARTITION)?.parse().ok()?,
            original_offset: values.get(HEADER_OFFSET)?.parse().ok()?,
            attempts: values.get(HEADER_ATTEMPTS)?.parse().ok()?,
        })
    }
}

impl KafkaBus {
    /// Publishes `record` to `<topic>.DLT` with `error` and `attempts` in headers;
    /// returns once the broker acknowledged it.
    pub async fn dead_letter(
        &self,
        record: &Record,
        error: &str,
        attempts: u32,
    ) -> Result<(), BusError> {
        let letter = DeadLetter::of(record, error, attempts);
        let dlt = topics::dead_letter(&record.topic);
        let delivery = self
            .enqueue(&dlt, &record.key, &record.payload, Some(letter.headers()))
            .await?;
        self.acknowledged(&dlt, delivery).await?;
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        warn!(topic = %record.topic, partition = record.partition, offset = record.offset, attempts, error, "record dead-lettered");
        Ok(())
    }
}

/// What one replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Every record put back, in DLT order per partition.
    pub replayed: Vec<DeadLetter>,
    /// DLT records without readable headers; republished to `topic` as they are.
    pub without_headers: usize,
}

/// Republishes the records of `<topic>.DLT` to their original topic (the header,
/// else `topic`) with the same key and payload. Reads up to the end the DLT had
/// when the replay started, so records that fail again and come back to the DLT
/// are left for the next replay instead of looping. Progress is committed in
/// consumer group `group` (default `bowchat-dlt-replay`), so a second replay
/// does not repeat the first.
pub async fn replay_dead_letters(
    bus: &KafkaBus,
    topic: &str,
    group: Option<&str>,
) -> Result<ReplayReport, BusError> {
    let config = bus.config().clone();
    let dlt = topics::dead_letter(topic);
    let full_dlt = config.topic_name(&dlt);
    let partitions = bus.refresh_partitions(&dlt).await?;
    let group = group.unwrap_or("bowchat-dlt-replay").to_string();
    let timeout = config.admin_timeout();

    // Manual assignment (no group membership, so no rebalance wait); offsets
    // still commit to `group`.
    let mut consumer_config = config.consumer_config(&group);
    consumer_config.set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = consumer_config.create().map_err(transport)?;
    let (consumer, ends) = tokio::task::spawn_blocking(move || {
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            let (_, high) = consumer
                .fetch_watermarks(&full_dlt, p, timeout)
                .map_err(transport)?;
            ends.insert(p, high);
            tpl.add_partition_offset(&full_dlt, p, Offset::Stored)
                .map_err(transport)?;
        }
        let committed = consumer
            .committed_offsets(tpl.clone(), timeout)
            .map_err(transport)?;
        for e in committed.elements() {
            if let Offset::Offset(at) = e.offset() {
                if at >= ends[&e.partition()] {
                    ends.remove(&e.partition());
                }
            }
        }
        consumer.assign(&tpl).map_err(transport)?;
        Ok::<_, BusError>((Arc::new(consumer), ends))
    })
    .await
    .map_err(|e| BusError::Transport(e.to_string()))??;

    let mut report = ReplayReport::default();
    let mut remaining = ends;
    // Drop empty partitions (high watermark 0 or already consumed).
    remaining.retain(|_, high| *high > 0);
    while !remaining.is_empty() {
        let message = tokio::time::timeout(
            Duration::from_millis(config.delivery_timeout_ms),
            consumer.recv(),
        )
        .await
        .map_err(|_| BusError::Transport(format!("{dlt}: replay stalled")))?
        .map_err(transport)?;
        let partition = message.partition();
        let offset = message.offset();
        let Some(end) = remaining.get(&partition).copied() else {
            continue;
        };
        if offset >= end {
            remaining.remove(&partition);
            continue;
        }
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let payload = message.payload().unwrap_or_default().to_vec();
        let letter = message
            .headers()
            .and_then(|h| DeadLetter::from_headers(&key, h));
        let target = letter
            .as_ref()
            .map(|l| l.original_topic.clone())
            .unwrap_or_else(|| topic.to_string());
        drop(message);
        let delivery = bus.enqueue(&target, &key, &payload, None).await?;
        bus.acknowledged(&target, delivery).await?;
        match letter {
            Some(l) => report.replayed.push(l),
            None => report.without_headers += 1,
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &config.topic_name(&dlt),
            partition,
            Offset::Offset(offset + 1),
        )
        .map_err(transport)?;
        let committer = consumer.clone();
        tokio::task::spawn_blocking(move || committer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| BusError::Transport(e.to_string()))?
            .map_err(transport)?;
        if offset + 1 >= end {
            remaining.remove(&partition);
        }
    }
    info!(
        topic,
        replayed = report.replayed.len(),
        without_headers = report.without_headers,
        "dead letters replayed"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn headers_round_trip() {
        let record = Record {
            topic: "auction-bid".into(),
            partition: 3,
            offset: 41,
            key: "auction-7".into(),
            payload: Bytes::from_static(b"{}"),
        };
        let letter = DeadLetter::of(&record, "unreadable: expected value", 4);
        let back = DeadLetter::from_headers("auction-7", &letter.headers()).unwrap();
        assert_eq!(back, letter);
        assert_eq!(back.original_offset, 41);
    }

    #[test]
    fn missing_header_is_none() {
        let headers = OwnedHeaders::new().insert(Header {
            key: HEADER_ERROR,
            value: Some("x"),
        });
        assert_eq!(DeadLetter::from_headers("k", &headers), None);
    }
}
