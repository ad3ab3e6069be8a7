//! Redis adapters for cluster mode: refresh-token records and families
//! ([`RedisRefreshStore`]), login and registration attempts
//! ([`RedisAttempts`]), per-user command rate ([`RedisRateLimiter`]),
//! presence and the connection registry ([`RedisPresence`]), and a pub/sub
//! broadcast for ephemeral signals ([`RedisBroadcast`]).
//!
//! Every multi-key change runs in one Lua script, so it is atomic on the
//! server. Scripts also touch keys they derive from their arguments, so they
//! need one Redis server (or a primary with replicas), not Redis Cluster.
//! All keys start with [`RedisConfig::key_prefix`].

mod attempts;
mod presence;
mod rate;
mod refresh;
mod signals;

pub use attempts::RedisAttempts;
pub use presence::{ConnectionRegistry, GatewayId, Presence, RedisPresence};
pub use rate::{RateLimit, RedisRateLimiter};
pub use refresh::RedisRefreshStore;
pub use signals::RedisBroadcast;

/// The connection type [`connect`] returns, for callers that hold one.
pub use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// Connection settings (serde, unknown keys are errors, every key optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`; `rediss://` for TLS.
    pub url: String,
    /// Prepended to every key, so several deployments can share a server.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            key_prefix: "bowchat:".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

/// A connection that reconnects by itself after a server restart; clone it
/// freely (clones share one multiplexed connection).
pub async fn connect(config: &RedisConfig) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(config.url.as_str())?;
    Ok(ConnectionManager::new(client).await?)
}

/// Whether the server answers `PING` (for readiness checks).
pub async fn ping(conn: &ConnectionManager) -> bool {
    let reply: Result<String, _> = redis::cmd("PING").query_async(&mut conn.clone()).await;
    matches!(reply.as_deref(), Ok("PONG"))
}
