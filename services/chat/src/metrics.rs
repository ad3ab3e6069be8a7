//! The chat role's Prometheus metrics, registered into the registry the role is given.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use tracing::warn;

pub(crate) struct Metrics {
    pub messages: IntCounterVec,
    pub batch_size: Histogram,
    pub commit_seconds: Histogram,
    /// Batches refused because a room's sequence moved under them (another writer).
    pub conflicts: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Self {
        let messages = IntCounterVec::new(
            Opts::new(
                "bowchat_chat_messages_total",
                "Chat send commands by result (accepted, duplicate or code)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("bowchat_chat_batch_size", "Commands per chat batch").buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )
        .expect("valid metric");
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "bowchat_chat_commit_seconds",
                "Time to store one chat batch",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
        )
        .expect("valid metric");
        let conflicts = IntCounter::new(
            "bowchat_chat_sequence_conflicts_total",
            "Chat batches refused because a room's last seq was moved by another writer",
        )
        .expect("valid metric");
        let collectors: [Box<dyn prometheus::core::Collector>; 4] = [
            Box::new(messages.clone()),
            Box::new(batch_size.clone()),
            Box::new(commit_seconds.clone()),
            Box::new(conflicts.clone()),
        ];
        for collector in collectors {
            // A second role on the same registry still works; it just is not exported twice.
            if let Err(e) = registry.register(collector) {
                warn!(error = %e, "chat metrics not registered");
            }
        }
        Self {
            messages,
            batch_size,
            commit_seconds,
            conflicts,
        }
    }
}
