//! In-process bus for embedded mode: the partition and group semantics of the
//! Kafka adapter without a broker.
//!
//! Each (topic, group) has one bounded queue that keeps publish order, so order
//! per partition holds. A group has one member at a time: a second `subscribe`
//! to the same group takes the partitions over and the first member is fenced,
//! as after a Kafka rebalance. Nothing is kept across restarts; the roles make
//! their effects durable in the store before they emit facts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{partition_for, Bus, BusError, Consumer, Record};

struct Group {
    tx: mpsc::Sender<Record>,
    generation: Arc<AtomicU64>,
}

struct Topic {
    partitions: u32,
    next_offset: Vec<AtomicU64>,
    groups: Mutex<HashMap<String, Group>>,
}

/// See the module docs.
pub struct InProcessBus {
    topics: HashMap<String, Topic>,
    queue_capacity: usize,
}

impl InProcessBus {
    /// `topics`: (name, partitions). `queue_capacity` bounds each group's queue:
    /// a publisher waits when a consumer falls that far behind.
    pub fn new(topics: &[(&str, u32)], queue_capacity: usize) -> Self {
        let topics = topics
            .iter()
            .map(|(name, partitions)| {
                let partitions = (*partitions).max(1);
                let topic = Topic {
                    partitions,
                    next_offset: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
                    groups: Mutex::new(HashMap::new()),
                };
                (name.to_string(), topic)
            })
            .collect();
        Self {
            topics,
            queue_capacity: queue_capacity.max(1),
        }
    }

    /// Records published but not yet polled, per (topic, consumer group): the
    /// in-process counterpart of a Kafka consumer group's lag.
    pub fn lag(&self) -> Vec<(String, String, usize)> {
        let mut lag = Vec::new();
        for (name, topic) in &self.topics {
            for (group, g) in topic.groups.lock().iter() {
                let queued = g.tx.max_capacity() - g.tx.capacity();
                lag.push((name.clone(), group.clone(), queued));
            }
        }
        lag.sort();
        lag
    }

    fn topic(&self, name: &str) -> Result<&Topic, BusError> {
        self.topics
            .get(name)
            .ok_or_else(|| BusError::UnknownTopic(name.to_string()))
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, topic_name: &str, key: &str, payload: Bytes) -> Result<(), BusError> {
        let partitions = self.topic(topic_name)?.partitions;
        self.publish_pinned(topic_name, key, partitions, payload)
            .await
    }

    async fn publish_pinned(
        &self,
        topic_name: &str,
        key: &str,
        partitions: u32,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let topic = self.topic(topic_name)?;
        let partition = partition_for(key, partitions.clamp(1, topic.partitions));
        let record = Record {
            topic: topic_name.to_string(),
            partition,
            offset: topic.next_offset[partition as usize].fetch_add(1, Ordering::Relaxed),
            key: key.to_string(),
            payload,
        };
        let senders: Vec<mpsc::Sender<Record>> =
            topic.groups.lock().values().map(|g| g.tx.clone()).collect();
        for tx in senders {
            // A group whose member is gone just misses records, like a Kafka
            // group with no live member would until it rejoins.
            let _ = tx.send(record.clone()).await;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        topic_name: &str,
        group: &str,
    ) -> Result<Box<dyn Consumer>, BusError> {
        let topic = self.topic(topic_name)?;
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let mut groups = topic.groups.lock();
        let generation = match groups.get(group) {
            Some(existing) => {
                existing.generation.fetch_add(1, Ordering::SeqCst);
                Arc::new(AtomicU64::new(0))
            }
            None => Arc::new(AtomicU64::new(0)),
        };
        groups.insert(
            group.to_string(),
            Group {
                tx,
                generation: generation.clone(),
            },
        );
        Ok(Box::new(InProcessConsumer {
            rx,
            generation,
            my_generation: 0,
        }))
    }

    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        Ok(self.topic(topic)?.partitions)
    }
}

struct InProcessConsumer {
    rx: mpsc::Receiver<Record>,
    generation: Arc<AtomicU64>,
    my_generation: u64,
}

impl InProcessConsumer {
    fn check_owner(&self) -> Result<(), BusError> {
        if self.generation.load(Ordering::SeqCst) != self.my_generation {
            return Err(BusError::Fenced);
        }
        Ok(())
    }
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn poll(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        self.check_owner()?;
        let first = match self.rx.recv().await {
            Some(record) => record,
            None => return Err(BusError::Fenced),
        };
        let mut batch = Vec::with_capacity(max.clamp(1, 1024));
        batch.push(first);
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    async fn commit(&mut self, _records: &[Record]) -> Result<(), BusError> {
        self.check_owner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_group_sees_every_record_in_partition_order() {
        let bus = InProcessBus::new(&[("t", 4)], 16);
        let mut a = bus.subscribe("t", "a").await.unwrap();
        let mut b = bus.subscribe("t", "b").await.unwrap();
        for i in 0..10 {
            bus.publish("t", "k1", Bytes::from(format!("{i}")))
                .await
                .unwrap();
        }
        for consumer in [&mut a, &mut b] {
            let mut seen = Vec::new();
            while seen.len() < 10 {
                for r in consumer.poll(100).await.unwrap() {
                    seen.push(String::from_utf8(r.payload.to_vec()).unwrap());
                }
            }
            let want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
            assert_eq!(seen, want);
        }
    }

    #[tokio::test]
    async fn a_second_member_fences_the_first() {
        let bus = InProcessBus::new(&[("t", 1)], 16);
        let mut first = bus.subscribe("t", "g").await.unwrap();
        let _second = bus.subscribe("t", "g").await.unwrap();
        assert!(matches!(first.commit(&[]).await, Err(BusError::Fenced)));
    }

    #[tokio::test]
    async fn lag_counts_records_not_yet_polled() {
        let bus = InProcessBus::new(&[("t", 2)], 16);
        let mut consumer = bus.subscribe("t", "g").await.unwrap();
        assert_eq!(bus.lag(), vec![("t".into(), "g".into(), 0)]);
        for key in ["a", "b", "c"] {
            bus.publish("t", key, Bytes::new()).await.unwrap();
        }
        assert_eq!(bus.lag(), vec![("t".into(), "g".into(), 3)]);
        assert_eq!(consumer.poll(2).await.unwrap().len(), 2);
        assert_eq!(bus.lag(), vec![("t".into(), "g".into(), 1)]);
    }

    #[test]
    fn partitioning_is_stable() {
        assert_eq!(
            partition_for("auction-42", 8),
            partition_for("auction-42", 8)
        );
        assert!(partition_for("x", 3) < 3);
    }

    #[tokio::test]
    async fn unknown_topic_is_an_error() {
        let bus = InProcessBus::new(&[("t", 1)], 1);
        assert!(matches!(
            bus.publish("nope", "k", Bytes::new()).await,
            Err(BusError::UnknownTopic(_))
        ));
    }
}
