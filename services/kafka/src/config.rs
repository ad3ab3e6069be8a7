//! Settings of the Kafka adapter and the librdkafka client configurations
//! derived from them (one place, so producer, consumers and admin agree).

use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest retained record: commands are never skipped.
    Earliest,
    /// From the end: for a gateway's fresh broadcast group, which only needs live facts.
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Kafka settings (`kafka.*` in the configuration file). Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]` of the brokers.
    pub bootstrap: String,
    /// Client id sent to the brokers (shows in broker logs and quotas).
    pub client_id: String,
    /// Prepended to every topic name, e.g. `staging.` (records carry the name without it).
    pub topic_prefix: String,
    /// Partitions per topic when topics are created.
    pub partitions: u32,
    /// Replication factor when topics are created.
    pub replication: u16,
    /// How long the producer waits to fill a batch.
    pub linger_ms: u64,
    /// Unacknowledged requests per broker connection (1..=5 keeps idempotent order).
    pub max_in_flight: u32,
    /// Upper bound for one publish, retries included (`message.timeout.ms`).
    pub delivery_timeout_ms: u64,
    /// One request to a broker.
    pub request_timeout_ms: u64,
    /// Cached partition counts are refreshed after this long, so a grown topic is seen.
    pub metadata_max_age_ms: u64,
    /// A consumer that does not heartbeat for this long leaves the group.
    pub session_timeout_ms: u64,
    /// A consumer that does not poll for this long leaves the group.
    pub max_poll_interval_ms: u64,
    /// Metadata, commit, admin and lag calls.
    pub admin_timeout_ms: u64,
    /// Where a group without a committed offset starts.
    pub auto_offset_reset: OffsetReset,
    /// Consumers per role and process (each is one group member).
    pub consumer_concurrency: u32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            client_id: "bowchat".into(),
            topic_prefix: String::new(),
            partitions: 12,
            replication: 1,
            linger_ms: 2,
            max_in_flight: 5,
            delivery_timeout_ms: 30_000,
            request_timeout_ms: 10_000,
            metadata_max_age_ms: 30_000,
            session_timeout_ms: 10_000,
            max_poll_interval_ms: 300_000,
            admin_timeout_ms: 10_000,
            auto_offset_reset: OffsetReset::Earliest,
            consumer_concurrency: 1,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid kafka setting {field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl KafkaConfig {
    /// Rejects settings that librdkafka would refuse or that break ordering.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, reason| Err(ConfigError { field, reason });
        if self.bootstrap.trim().is_empty() {
            return fail("bootstrap", "must name at least one broker");
        }
        if self.partitions == 0 {
            return fail("partitions", "must be at least 1");
        }
        if self.replication == 0 {
            return fail("replication", "must be at least 1");
        }
        // The idempotent producer keeps order only with at most 5 in flight.
        if !(1..=5).contains(&self.max_in_flight) {
            return fail("max_in_flight", "must be between 1 and 5");
        }
        if self.consumer_concurrency == 0 {
            return fail("consumer_concurrency", "must be at least 1");
        }
        if self.delivery_timeout_ms < self.request_timeout_ms {
            return fail(
                "delivery_timeout_ms",
                "must not be below request_timeout_ms",
            );
        }
        Ok(())
    }

    /// The broker-side name of a logical topic.
    pub fn topic_name(&self, topic: &str) -> String {
        format!("{}{}", self.topic_prefix, topic)
    }

    /// The logical name of a broker-side topic (the prefix removed).
    pub fn logical_name<'a>(&self, full: &'a str) -> &'a str {
        full.strip_prefix(self.topic_prefix.as_str())
            .unwrap_or(full)
    }

    pub fn admin_timeout(&self) -> Duration {
        Duration::from_millis(self.admin_timeout_ms)
    }

    pub fn metadata_max_age(&self) -> Duration {
        Duration::from_millis(self.metadata_max_age_ms)
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", &self.client_id)
            // librdkafka re-reads metadata on this period only: without it a
            // consumer group notices a grown topic after 5 minutes, and the
            // commands of auctions pinned to the new partitions wait that long.
            .set(
                "topic.metadata.refresh.interval.ms",
                // librdkafka's own bounds for the two settings.
                self.metadata_max_age_ms.clamp(10, 3_600_000).to_string(),
            )
            .set(
                "metadata.max.age.ms",
                (self.metadata_max_age_ms.clamp(10, 3_600_000) * 3).to_string(),
            )
            // Topics are created by `KafkaAdmin` only; a typo must fail, not create.
            .set("allow.auto.create.topics", "false");
        c
    }

    /// The idempotent producer: acks from all in-sync replicas, bounded in flight.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("request.timeout.ms", self.request_timeout_ms.to_string())
            .set(
                "max.in.flight.requests.per.connection",
                self.max_in_flight.to_string(),
            )
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string());
        c
    }

    /// A group member: no auto commit (the roles commit after the effect is
    /// durable), cooperative rebalancing so kept partitions are not revoked.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", self.auto_offset_reset.as_str())
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            );
        c
    }

    /// Admin queries (librdkafka's admin client is a producer-type handle).
    pub fn admin_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("request.timeout.ms", self.request_timeout_ms.to_string());
        c
    }

    /// A consumer that reads a group's committed offsets without joining it
    /// (lag). `request.timeout.ms` is a producer setting: a consumer would warn
    /// about it at every creation, i.e. at every lag reading.
    pub fn group_reader_config(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = KafkaConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.bootstrap, "127.0.0.1:9092");
        assert_eq!(c.topic_prefix, "");
        assert_eq!(c.partitions, 12);
        assert_eq!(c.replication, 1);
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let c = KafkaConfig {
            max_in_flight: 6,
            ..KafkaConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "max_in_flight");
        let c = KafkaConfig {
            partitions: 0,
            ..KafkaConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "partitions");
    }

    #[test]
    fn prefix_is_added_and_removed() {
        let c = KafkaConfig {
            topic_prefix: "dev.".into(),
            ..KafkaConfig::default()
        };
        assert_eq!(c.topic_name("auction-bid"), "dev.auction-bid");
        assert_eq!(c.logical_name("dev.auction-bid"), "auction-bid");
        assert_eq!(c.logical_name("other"), "other");
    }

    #[test]
    fn producer_is_idempotent_and_consumer_never_auto_commits() {
        let c = KafkaConfig::default();
        let p = c.producer_config();
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("acks"), Some("all"));
        let g = c.consumer_config("g");
        assert_eq!(g.get("enable.auto.commit"), Some("false"));
        assert_eq!(g.get("group.id"), Some("g"));
        // A producer-only property in a consumer is a warning at every creation.
        assert_eq!(p.get("request.timeout.ms"), Some("10000"));
        assert_eq!(g.get("request.timeout.ms"), None);
        assert_eq!(c.group_reader_config("g").get("request.timeout.ms"), None);
    }

    #[test]
    fn unknown_keys_are_rejected_and_missing_keys_default() {
        let parsed: KafkaConfig =
            serde_json_like(r#"{"bootstrap":"b:1","auto_offset_reset":"latest"}"#).unwrap();
        assert_eq!(parsed.bootstrap, "b:1");
        assert_eq!(parsed.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(parsed.partitions, 12);
        assert!(serde_json_like::<KafkaConfig>(r#"{"bogus":1}"#).is_err());
    }

    fn serde_json_like<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(s)
    }
}
