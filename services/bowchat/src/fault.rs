//! Faults a black-box test switches on to see how the process copes with
//! them. Only debug builds read `BOWCHAT_DEBUG_FAULT`; a release build has no
//! fault to switch on.
//!
//! `BOWCHAT_DEBUG_FAULT=panic-in-<role>-role` (auction or chat): that role
//! panics when its consumer hands it the first record.

use async_trait::async_trait;
use bowchat_bus::{BusError, Consumer, Record};

/// `consumer`, or a consumer that panics on its first record when the fault
/// for `role` is switched on.
pub fn consumer(role: &str, consumer: Box<dyn Consumer>) -> Box<dyn Consumer> {
    if cfg!(debug_assertions)
        && std::env::var("BOWCHAT_DEBUG_FAULT").ok().as_deref()
            == Some(format!("panic-in-{role}-role").as_str())
    {
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
