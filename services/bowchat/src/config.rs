//! Configuration: typed structs with defaults that work with no file at all,
//! overridden by a TOML file, then by `BOWCHAT_*` environment variables
//! (nested keys joined by `__`, e.g. `BOWCHAT_GATEWAY__MAX_FRAME_BYTES=32768`),
//! then by command-line flags.

use std::path::{Path, PathBuf};

use bowchat_gateway::GatewayConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP/WebSocket listener.
    pub listen: String,
    /// Directory of the embedded database (`bowchat.db`).
    pub data_dir: PathBuf,
    /// This process's name on the bus; results are routed back to it. Random if unset.
    pub node_id: Option<String>,
    /// After one of the process's roles stopped, how long it stays up
    /// answering `/readyz` with 503 before it exits with an error.
    pub role_exit_delay_ms: u64,
    pub log: LogConfig,
    pub gateway: GatewayConfig,
    pub auth: AuthConfig,
    pub auction: AuctionConfig,
    pub chat: ChatConfig,
    pub bus: BusConfig,
    pub outbox: OutboxConfig,
    pub store: StoreConfig,
    pub chat_history: ChatHistoryConfig,
    pub ephemeral: EphemeralConfig,
    pub sqlite: SqliteConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            node_id: None,
            role_exit_delay_ms: 3000,
            log: LogConfig::default(),
            gateway: GatewayConfig::default(),
            auth: AuthConfig::default(),
            auction: AuctionConfig::default(),
            chat: ChatConfig::default(),
            bus: BusConfig::default(),
            outbox: OutboxConfig::default(),
            store: StoreConfig::default(),
            chat_history: ChatHistoryConfig::default(),
            ephemeral: EphemeralConfig::default(),
            sqlite: SqliteConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (default) or `text`.
    pub format: String,
    /// A tracing filter such as `info` or `bowchat=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "json".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub leeway_secs: u64,
    pub password_min_len: usize,
    pub password_max_len: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// A rotated refresh token presented again within this many seconds gets
    /// the successor the first use got (two tabs refreshing at once); later
    /// reuse revokes the family. 0 turns the grace off.
    pub refresh_reuse_grace_secs: u64,
    /// How often each process reads the sessions other processes ended
    /// (logout, revoked families) into its deny list; a revocation made by
    /// this process applies at once.
    pub revocation_poll_ms: u64,
    /// Key-encryption key: base64 of 32 bytes (`openssl rand -base64 32`).
    /// Seals the private access-token signing keys in the database
    /// (AES-256-GCM); every process sharing a database needs the same one.
    /// Unset: read from `<data_dir>/signing-kek`, created there (mode 0600)
    /// if missing — fine for embedded mode, not for processes on several
    /// hosts. Prefer the environment (`BOWCHAT_AUTH__KEY_ENCRYPTION_KEY`,
    /// from a Kubernetes Secret) over a file.
    pub key_encryption_key: Option<String>,
    /// Rotate the access-token signing key automatically once the newest is
    /// this old (seconds); 0: only with `bowchat admin keys rotate`.
    pub signing_key_rotate_after_secs: u64,
    /// A new signing key signs only once it is this old (ms); until then it
    /// is published in the JWKS and loaded by every process (which read keys
    /// every `revocation_poll_ms`), so tokens it signs verify everywhere.
    pub signing_key_activation_ms: u64,
    /// Login and registration throttling (`[auth.throttle.account|ip|register]`).
    pub throttle: bowchat_auth::ThrottleConfig,
    /// Social login providers and the flow's limits (`[auth.social]`).
    pub social: bowchat_social::SocialConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let tokens = bowchat_auth::TokenConfig::default();
        let policy = bowchat_auth::PasswordPolicy::default();
        Self {
            issuer: tokens.issuer,
            audience: tokens.audience,
            access_ttl_secs: tokens.access_ttl_secs,
            refresh_ttl_secs: tokens.refresh_ttl_secs,
            leeway_secs: tokens.leeway_secs,
            password_min_len: policy.min_len,
            password_max_len: policy.max_len,
            argon2_memory_kib: policy.memory_kib,
            argon2_iterations: policy.iterations,
            argon2_parallelism: policy.parallelism,
            refresh_reuse_grace_secs: tokens.refresh_reuse_grace_secs,
            revocation_poll_ms: 1_000,
            key_encryption_key: None,
            signing_key_rotate_after_secs: 30 * 24 * 3600,
            signing_key_activation_ms: 120_000,
            throttle: bowchat_auth::ThrottleConfig::default(),
            social: bowchat_social::SocialConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Most commands stored in one transaction.
    pub max_batch: usize,
    /// Retries of a failing commit before the batch is answered UNAVAILABLE.
    pub commit_retries: u32,
}

impl Default for RoleConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            commit_retries: 3,
        }
    }
}

/// The chat role's batching, and the limits of chat moderation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Most commands stored in one transaction.
    pub max_batch: usize,
    /// Retries of a failing commit before the batch is answered UNAVAILABLE.
    pub commit_retries: u32,
    /// Longest reason of a message report (`POST
    /// /api/rooms/{id}/messages/{seq}/report`), in characters.
    pub max_report_chars: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        let role = RoleConfig::default();
        Self {
            max_batch: role.max_batch,
            commit_retries: role.commit_retries,
            max_report_chars: 500,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuctionConfig {
    /// Most commands stored in one transaction.
    pub max_batch: usize,
    /// Retries of a failing commit before the batch is answered UNAVAILABLE.
    pub commit_retries: u32,
    /// A retried bid gets its first answer for at least this long (seconds);
    /// accepted bids' answers are kept as long as their auction.
    pub idempotency_window_secs: u64,
    /// How often refused answers older than the window are deleted (seconds).
    pub results_sweep_interval_secs: u64,
}

impl Default for AuctionConfig {
    fn default() -> Self {
        let role = RoleConfig::default();
        Self {
            max_batch: role.max_batch,
            commit_retries: role.commit_retries,
            idempotency_window_secs: 24 * 3600,
            results_sweep_interval_secs: 60,
        }
    }
}

/// The fact outbox's relay (`bowchat_bus::outbox`): what a role stored but
/// could not publish (the broker was away longer than its delivery timeout,
/// or the process died between commit and publish) is published again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// How often each role process's relay looks (milliseconds).
    pub relay_interval_ms: u64,
    /// Facts still unpublished this long after their commit are published
    /// again (milliseconds); keep it above the usual publish time, or
    /// gateways see (and drop) more duplicates.
    pub relay_after_ms: u64,
    /// Outbox entries (one per batch) read per look.
    pub relay_batch: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            relay_interval_ms: 1000,
            relay_after_ms: 10_000,
            relay_batch: 256,
        }
    }
}

impl OutboxConfig {
    pub fn relay(&self) -> bowchat_bus::outbox::RelayConfig {
        bowchat_bus::outbox::RelayConfig {
            interval: std::time::Duration::from_millis(self.relay_interval_ms.max(10)),
            relay_after: std::time::Duration::from_millis(self.relay_after_ms),
            max_entries: self.relay_batch.max(1),
        }
    }
}

/// Which message bus carries commands and facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusKind {
    /// Queues inside this process (embedded mode: one process runs every role).
    InProcess,
    /// Kafka (`bus.kafka`): gateways and workers in separate processes.
    Kafka,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `in-process` (default) or `kafka`.
    pub kind: BusKind,
    /// Partitions per topic of the in-process bus.
    pub partitions: u32,
    /// Records queued per consumer group before publishers wait (in-process bus).
    pub queue_capacity: usize,
    /// How often Kafka consumer lag is read for `/metrics`; 0 turns it off.
    pub lag_interval_ms: u64,
    /// The Kafka adapter's settings (used when `kind = "kafka"`).
    pub kafka: bowchat_kafka::KafkaConfig,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            kind: BusKind::InProcess,
            partitions: 8,
            queue_capacity: 65_536,
            lag_interval_ms: 5_000,
            kafka: bowchat_kafka::KafkaConfig::default(),
        }
    }
}

/// Which database holds users, auctions, bids, rooms and chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// One SQLite file under `data_dir` (embedded mode).
    Sqlite,
    /// A PostgreSQL server shared by every process (`store.postgres`).
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    pub kind: StoreKind,
    /// Connection settings used when `kind = "postgres"`.
    pub postgres: bowchat_postgres::PgConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            postgres: bowchat_postgres::PgConfig::default(),
        }
    }
}

/// Where chat message bodies live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChatHistoryKind {
    /// In the store (`store.kind`) with rooms and members.
    Store,
    /// In MongoDB (`chat_history.mongodb`); rooms, members, read markers and
    /// each room's last sequence stay in the store.
    Mongodb,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatHistoryConfig {
    /// `store` (default) or `mongodb`.
    pub kind: ChatHistoryKind,
    /// Connection settings used when `kind = "mongodb"`.
    pub mongodb: bowchat_mongo::MongoConfig,
}

impl Default for ChatHistoryConfig {
    fn default() -> Self {
        Self {
            kind: ChatHistoryKind::Store,
            mongodb: bowchat_mongo::MongoConfig::default(),
        }
    }
}

/// Where state lives whose loss costs a re-login or a presence hint, never
/// business data: refresh tokens, per-user rate limits, presence, typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EphemeralKind {
    /// Refresh tokens in the store; rate limits, presence and typing per process.
    Local,
    /// All of it in Redis (`ephemeral.redis`), shared by every gateway.
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EphemeralConfig {
    /// `local` (default) or `redis`.
    pub kind: EphemeralKind,
    /// Connection settings used when `kind = "redis"`.
    pub redis: bowchat_redis::RedisConfig,
    /// A gateway that stops heartbeating for this long loses its users'
    /// presence (Redis only; it heartbeats every third of it).
    pub presence_ttl_ms: u64,
    /// How long a refresh record outlives its expiry in Redis, so a token
    /// used right at its end is reported expired rather than unknown.
    pub refresh_grace_secs: u64,
}

impl Default for EphemeralConfig {
    fn default() -> Self {
        Self {
            kind: EphemeralKind::Local,
            redis: bowchat_redis::RedisConfig::default(),
            presence_ttl_ms: 15_000,
            refresh_grace_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    pub readers: u32,
    /// fsync on every commit (survives power loss); false survives process crashes only.
    pub synchronous_full: bool,
    /// Page cache per connection (MiB).
    pub cache_mib: u32,
    /// How much of the file is read through a memory map (MiB; 0 turns it off).
    pub mmap_mib: u32,
    /// WAL pages (4 KiB each) after which a commit checkpoints the WAL into the file.
    pub wal_autocheckpoint_pages: u32,
    /// Bid answers held in memory that start a merge into the results file
    /// (`<database>-results`); also the most one merge copies.
    pub results_merge_rows: u32,
    /// The longest a bid answer waits in memory for a merge (milliseconds).
    pub results_merge_interval_ms: u64,
    /// Merged rows of the results log each batch commit deletes at most.
    pub results_prune_rows: u32,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            readers: 4,
            synchronous_full: true,
            cache_mib: 64,
            mmap_mib: 256,
            wal_autocheckpoint_pages: 16384,
            results_merge_rows: 32768,
            results_merge_interval_ms: 1000,
            results_prune_rows: 4096,
        }
    }
}

impl Config {
    /// Settings that parse but cannot work, found before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.chat.max_report_chars == 0 {
            return Err("chat.max_report_chars must be at least 1".into());
        }
        let (sqlite, auction) = (&self.sqlite, &self.auction);
        for (name, value) in [
            (
                "sqlite.results_merge_rows",
                u64::from(sqlite.results_merge_rows),
            ),
            (
                "sqlite.results_merge_interval_ms",
                sqlite.results_merge_interval_ms,
            ),
            (
                "sqlite.results_prune_rows",
                u64::from(sqlite.results_prune_rows),
            ),
            (
                "auction.idempotency_window_secs",
                auction.idempotency_window_secs,
            ),
            (
                "auction.results_sweep_interval_secs",
                auction.results_sweep_interval_secs,
            ),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.auth.revocation_poll_ms < 100 {
            return Err("auth.revocation_poll_ms must be at least 100".into());
        }
        if let Some(kek) = &self.auth.key_encryption_key {
            bowchat_auth::Kek::from_base64(kek)
                .map_err(|e| format!("auth.key_encryption_key: {e}"))?;
        }
        for (name, rule) in [
            ("account", &self.auth.throttle.account),
            ("ip", &self.auth.throttle.ip),
            ("register", &self.auth.throttle.register),
        ] {
            if rule.free_attempts > 0 && rule.backoff_base_ms == 0 {
                return Err(format!(
                    "auth.throttle.{name}.backoff_base_ms must be at least 1 (or free_attempts 0 to turn the rule off)"
                ));
            }
            if rule.backoff_max_ms < rule.backoff_base_ms {
                return Err(format!(
                    "auth.throttle.{name}.backoff_max_ms must not be below backoff_base_ms"
                ));
            }
        }
        if self.bus.kind == BusKind::Kafka {
            self.bus
                .kafka
                .validate()
                .map_err(|e| format!("bus.kafka: {e}"))?;
        }
        if self.store.kind == StoreKind::Postgres {
            let url = &self.store.postgres.url;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(format!(
                    "store.postgres.url must start with postgres:// (got {url:?})"
                ));
            }
            if self.store.postgres.max_connections == 0 {
                return Err("store.postgres.max_connections must be at least 1".into());
            }
        }
        if self.chat_history.kind == ChatHistoryKind::Mongodb {
            let url = &self.chat_history.mongodb.url;
            if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
                return Err(format!(
                    "chat_history.mongodb.url must start with mongodb:// (got {url:?})"
                ));
            }
            if self.chat_history.mongodb.database.is_empty() {
                return Err("chat_history.mongodb.database must not be empty".into());
            }
        }
        if self.ephemeral.kind == EphemeralKind::Redis {
            let url = &self.ephemeral.redis.url;
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(format!(
                    "ephemeral.redis.url must start with redis:// (got {url:?})"
                ));
            }
            if self.ephemeral.presence_ttl_ms < 1_000 {
                return Err("ephemeral.presence_ttl_ms must be at least 1000".into());
            }
        }
        Ok(())
    }

    /// A copy safe to print: provider client secrets and the passwords in
    /// the PostgreSQL, MongoDB and Redis URLs are masked.
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        config.store.postgres.url = redact_url_password(&config.store.postgres.url);
        config.chat_history.mongodb.url = redact_url_password(&config.chat_history.mongodb.url);
        config.ephemeral.redis.url = redact_url_password(&config.ephemeral.redis.url);
        if config.auth.key_encryption_key.is_some() {
            config.auth.key_encryption_key = Some("<redacted>".into());
        }
        for provider in config.auth.social.providers.values_mut() {
            if !provider.client_secret.is_empty() {
                provider.client_secret = "<redacted>".into();
            }
        }
        config
    }

    /// Defaults, then `file` (if given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment
            // BOWCHAT_CONFIG names the file (a flag's variable) and
            // BOWCHAT_DEBUG_FAULT is read by `fault`; neither is a setting.
            .merge(
                Env::prefixed("BOWCHAT_")
                    .ignore(&["CONFIG", "DEBUG_FAULT"])
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("bowchat.db")
    }
}

/// `scheme://user:secret@host` -> `scheme://user:<redacted>@host`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_kinds_parse_and_unknown_kinds_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bowchat.toml");
        std::fs::write(
            &path,
            "[store]\nkind = \"postgres\"\n[store.postgres]\nurl = \"postgres://u:pw@127.0.0.1:1/db\"\n\
             [bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap = \"127.0.0.1:1\"\nconsumer_concurrency = 2\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.store.kind, StoreKind::Postgres);
        assert_eq!(config.bus.kind, BusKind::Kafka);
        assert_eq!(config.bus.kafka.consumer_concurrency, 2);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.redacted().store.postgres.url,
            "postgres://u:<redacted>@127.0.0.1:1/db"
        );
        std::fs::write(&path, "[bus]\nkind = \"rabbit\"\n").unwrap();
        let error = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("rabbit"), "{error}");
        std::fs::write(
            &path,
            "[bus]\nkind = \"kafka\"\n[bus.kafka]\nmax_in_flight = 9\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert!(config.validate().unwrap_err().contains("max_in_flight"));
        std::fs::write(
            &path,
            "[auth]\nrefresh_reuse_grace_secs = 3\n[auth.throttle.ip]\nfree_attempts = 7\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.auth.refresh_reuse_grace_secs, 3);
        assert_eq!(config.auth.throttle.ip.free_attempts, 7);
        assert_eq!(
            config.auth.throttle.account.free_attempts, 5,
            "default kept"
        );
        assert_eq!(config.validate(), Ok(()));
        std::fs::write(&path, "[auth.throttle.account]\nbackoff_max_ms = 1\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert!(config.validate().unwrap_err().contains("backoff_max_ms"));
        std::fs::write(&path, "[sqlite]\nresults_merge_rows = 0\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(
            config.validate(),
            Err("sqlite.results_merge_rows must be at least 1".into())
        );
    }

    #[test]
    fn defaults_are_embedded_mode() {
        let config = Config::default();
        assert_eq!(config.store.kind, StoreKind::Sqlite);
        assert_eq!(config.bus.kind, BusKind::InProcess);
        assert_eq!(config.chat_history.kind, ChatHistoryKind::Store);
        assert_eq!(config.ephemeral.kind, EphemeralKind::Local);
    }

    #[test]
    fn document_stores_parse_validate_and_redact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bowchat.toml");
        std::fs::write(
            &path,
            "[chat_history]\nkind = \"mongodb\"\n[chat_history.mongodb]\n\
             url = \"mongodb://u:pw@127.0.0.1:1/\"\ndatabase = \"chat\"\n\
             [ephemeral]\nkind = \"redis\"\npresence_ttl_ms = 3000\n\
             [ephemeral.redis]\nurl = \"redis://:pw@127.0.0.1:2/\"\nkey_prefix = \"x:\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.chat_history.kind, ChatHistoryKind::Mongodb);
        assert_eq!(config.chat_history.mongodb.database, "chat");
        assert_eq!(config.ephemeral.kind, EphemeralKind::Redis);
        assert_eq!(config.ephemeral.redis.key_prefix, "x:");
        assert_eq!(config.ephemeral.presence_ttl_ms, 3000);
        assert_eq!(config.validate(), Ok(()));
        let redacted = config.redacted();
        assert_eq!(
            redacted.chat_history.mongodb.url,
            "mongodb://u:<redacted>@127.0.0.1:1/"
        );
        assert_eq!(
            redacted.ephemeral.redis.url,
            "redis://:<redacted>@127.0.0.1:2/"
        );
        std::fs::write(&path, "[ephemeral]\nkind = \"memcached\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "[chat_history.mongodb]\nhost = \"x\"\n").unwrap();
        assert!(
            Config::load(Some(&path)).is_err(),
            "unknown keys are errors"
        );
        std::fs::write(
            &path,
            "[chat_history]\nkind = \"mongodb\"\n[chat_history.mongodb]\nurl = \"http://x\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert!(config.validate().unwrap_err().contains("mongodb://"));
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.database_path(), PathBuf::from("data/bowchat.db"));
    }

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bowchat.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[gateway]\nmax_frame_bytes = 2048\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.gateway.max_frame_bytes, 2048);
        std::fs::write(&path, "[gateway]\nmax_frame_byte = 2048\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
