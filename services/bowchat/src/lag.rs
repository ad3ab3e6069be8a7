//! Kafka consumer lag in `/metrics`: a background task reads the committed
//! offsets and watermarks of the groups this process runs and sets
//! `bowchat_kafka_consumer_lag{group,topic,partition}`.

use std::time::Duration;

use bowchat_kafka::{KafkaAdmin, KafkaConfig};
use prometheus::{register_int_gauge_vec, IntGaugeVec};
use tracing::debug;

fn gauge() -> &'static IntGaugeVec {
    static GAUGE: std::sync::OnceLock<IntGaugeVec> = std::sync::OnceLock::new();
    GAUGE.get_or_init(|| {
        register_int_gauge_vec!(
            "bowchat_kafka_consumer_lag",
            "Records of a partition its consumer group has not committed yet",
            &["group", "topic", "partition"]
        )
        .expect("metric registers once")
    })
}

/// Starts the task; `groups` are (consumer group, logical topic) pairs.
pub fn spawn(
    config: KafkaConfig,
    groups: Vec<(String, &'static str)>,
    every: Duration,
) -> anyhow::Result<()> {
    let admin = KafkaAdmin::new(config)?;
    let gauge = gauge();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for (group, topic) in &groups {
                match admin.consumer_lag(group, topic).await {
                    Ok(lags) => {
                        for l in lags {
                            gauge
                                .with_label_values(&[&l.group, &l.topic, &l.partition.to_string()])
                                .set(l.lag as i64);
                        }
                    }
                    // A broker outage is logged by the consumers already.
                    Err(e) => debug!(group, topic, error = %e, "cannot read consumer lag"),
                }
            }
        }
    });
    Ok(())
}
