//! Faults a black-box test switches on to see how the process copes with
//! them. Only debug builds read `BOWCHAT_DEBUG_FAULT`; a release build has no
//! fault to switch on.
//!
//! `BOWCHAT_DEBUG_FAULT=panic-in-<role>-role` (auction or chat): that role
//! panics when its consumer hands it the first record.
//!
//! `BOWCHAT_DEBUG_FAULT=lose-facts-in-<role>-role`: the role's first publish
//! of facts fails, as it does when the broker stays away longer than the
//! producer's delivery timeout (the batch is already stored).
//!
//! `BOWCHAT_DEBUG_FAULT=die-before-publish-in-<role>-role`: the process
//! aborts at the role's first publish of facts, after that batch's commit,
//! as a SIGKILL at that moment would end it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bowchat_bus::{Bus, BusError, Consumer, Record};
use bytes::Bytes;

/// `consumer`, or a consumer that panics on its first record when the fault
/// for `role` is switched on.
pub fn consumer(role: &str, consumer: Box<dyn Consumer>) -> Box<dyn Consumer> {
    if switched_on(&format!("panic-in-{role}-role")) {
        tracing::warn!(
            role,
            "fault switched on: the role panics on its first record"
        );
        return Box::new(PanicOnRecord(consumer));
    }
    consumer
}

struct PanicOnRecord(Box<dyn Consumer>);

#[async_trait]
impl Consumer for PanicOnRecord {
    async fn poll(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        let records = self.0.poll(max).await?;
        panic!(
            "fault injected by BOWCHAT_DEBUG_FAULT ({} records)",
            records.len()
        );
    }

    async fn commit(&mut self, records: &[Record]) -> Result<(), BusError> {
        self.0.commit(records).await
    }
}

fn switched_on(fault: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("BOWCHAT_DEBUG_FAULT").ok().as_deref() == Some(fault)
}

/// What the role's bus does at its first publish of facts.
#[derive(Clone, Copy)]
enum FactFault {
    Lose,
    Die,
}

/// `bus`, or a bus whose first publish of facts (a `publish_all` to
/// `fact_topic`) fails or ends the process, when that fault is on for `role`.
pub fn role_bus(role: &str, fact_topic: &'static str, bus: Arc<dyn Bus>) -> Arc<dyn Bus> {
    let fault = if switched_on(&format!("lose-facts-in-{role}-role")) {
        FactFault::Lose
    } else if switched_on(&format!("die-before-publish-in-{role}-role")) {
        FactFault::Die
    } else {
        return bus;
    };
    tracing::warn!(
        role,
        "fault switched on: the role's first publish of facts fails"
    );
    Arc::new(FaultyFacts {
        inner: bus,
        fact_topic,
        fault,
        struck: AtomicBool::new(false),
    })
}

struct FaultyFacts {
    inner: Arc<dyn Bus>,
    fact_topic: &'static str,
    fault: FactFault,
    struck: AtomicBool,
}

#[async_trait]
impl Bus for FaultyFacts {
    async fn publish(&self, topic: &str, key: &str, payload: Bytes) -> Result<(), BusError> {
        self.inner.publish(topic, key, payload).await
    }

    async fn publish_pinned(
        &self,
        topic: &str,
        key: &str,
        partitions: u32,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.inner
            .publish_pinned(topic, key, partitions, payload)
            .await
    }

    async fn publish_all(
        &self,
        topic: &str,
        records: Vec<(String, Bytes)>,
    ) -> Result<(), BusError> {
        if topic == self.fact_topic && !self.struck.swap(true, Ordering::SeqCst) {
            match self.fault {
                FactFault::Lose => {
                    tracing::warn!(topic, "fault injected: facts not published");
                    return Err(BusError::Transport(
                        "fault injected by BOWCHAT_DEBUG_FAULT: delivery timed out".into(),
                    ));
                }
                FactFault::Die => {
                    tracing::warn!(topic, "fault injected: the process dies before publishing");
                    std::process::abort();
                }
            }
        }
        self.inner.publish_all(topic, records).await
    }

    async fn dead_letter(
        &self,
        record: &Record,
        error: &str,
        attempts: u32,
    ) -> Result<(), BusError> {
        self.inner.dead_letter(record, error, attempts).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.subscribe(topic, group).await
    }

    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        self.inner.partitions(topic)
    }
}
