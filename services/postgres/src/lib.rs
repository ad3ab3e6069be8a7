//! PostgreSQL adapters of the storage ports, for cluster mode.
//!
//! Every node shares one database, so unlike the SQLite adapters (one writer
//! connection) these rely on the database for concurrency: unique constraints
//! with `ON CONFLICT` make creation idempotent under races, compare-and-set
//! updates guard sequences, and the auction batch fences a consumer that lost
//! its partition (see [`PgAuctionRepository`]). Queries are built at run time
//! (`sqlx::query`), so building needs no database.

mod auction_repo;
mod auth_repo;
mod chat_repo;
mod moderation_repo;
mod outbox;
mod social_repo;

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use auction_repo::{is_fenced, PgAuctionRepository, FENCED};
pub use auth_repo::PgAuthRepository;
pub use chat_repo::PgChatRepository;
pub use outbox::PgOutbox;
pub use social_repo::PgSocialRepository;

#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    #[error("invalid PostgreSQL url: {0}")]
    Url(sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("cannot migrate the PostgreSQL schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connection settings (the `postgres` section of the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database[?sslmode=...]`.
    pub url: String,
    /// Pool size per process.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free pooled connection.
    pub acquire_timeout_ms: u64,
    /// Server-side `statement_timeout` of every connection; 0 disables it.
    pub statement_timeout_ms: u64,
    /// Reported in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            url: "postgres://bowchat@127.0.0.1:5432/bowchat".into(),
            max_connections: 16,
            min_connections: 0,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            application_name: "bowchat".into(),
        }
    }
}

/// A migrated PostgreSQL database behind a connection pool. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects and applies the embedded migrations. Safe to call from several
    /// processes at once: sqlx serialises migrations with an advisory lock, and
    /// applied migrations are skipped.
    pub async fn connect(config: &PgConfig) -> Result<PgStore, PgStoreError> {
        let mut options = PgConnectOptions::from_str(&config.url)
            .map_err(PgStoreError::Url)?
            .application_name(&config.application_name);
        if config.statement_timeout_ms > 0 {
            options =
                options.options([("statement_timeout", config.statement_timeout_ms.to_string())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections.min(config.max_connections))
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms.max(1)))
            .connect_with(options)
            .await
            .map_err(PgStoreError::Connect)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The pool, for metrics and for tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// True when a trivial query succeeds (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn auctions(&self, consumer_group: &str) -> PgAuctionRepository {
        PgAuctionRepository::new(self.clone(), consumer_group)
    }

    pub fn auth(&self) -> PgAuthRepository {
        PgAuthRepository::new(self.clone())
    }

    pub fn chat(&self) -> PgChatRepository {
        PgChatRepository::new(self.clone())
    }

    pub fn social(&self) -> PgSocialRepository {
        PgSocialRepository::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_defaults_and_refuses_unknown_keys() {
        let config: PgConfig =
            serde_json::from_str(r#"{"url":"postgres://u@127.0.0.1:1/x","max_connections":4}"#)
                .unwrap();
        assert_eq!(config.max_connections, 4);
        assert_eq!(config.statement_timeout_ms, 30_000);
        assert!(serde_json::from_str::<PgConfig>(r#"{"nope":1}"#).is_err());
    }
}
