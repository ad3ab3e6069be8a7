//! Per-user command rate shared by every gateway: one token bucket per user
//! in Redis, refilled and taken from in one Lua script.

use async_trait::async_trait;
use bowchat_model::UserId;
use redis::aio::ConnectionManager;
use redis::Script;

use crate::RedisError;

/// A per-user rate limit (the gateway's commands per user).
#[async_trait]
pub trait RateLimit: Send + Sync + 'static {
    /// Takes one token from `user`'s bucket; false when it is empty.
    async fn allow(&self, user: UserId) -> Result<bool, RedisError>;
}

/// KEYS: bucket; ARGV: rate per second, burst. The server's clock is used, so
/// gateways with skewed clocks share one consistent bucket. The key expires
/// once the bucket would be full again: a missing bucket is a full one.
const TAKE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1)
return allowed
"#;

/// Token bucket per user: `rate` tokens a second up to `burst`.
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: String,
    rate: f64,
    burst: f64,
    take: Script,
}

impl RedisRateLimiter {
    /// Like the embedded limiter, `rate` is at least 0.001/s and `burst` at least 1.
    pub fn new(conn: ConnectionManager, key_prefix: &str, rate: f64, burst: f64) -> Self {
        Self {
            conn,
            prefix: key_prefix.to_string(),
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            take: Script::new(TAKE),
        }
    }

    /// The key of `user`'s bucket.
    pub fn key(&self, user: UserId) -> String {
        format!("{}rl:{user}", self.prefix)
    }
}

#[async_trait]
impl RateLimit for RedisRateLimiter {
    async fn allow(&self, user: UserId) -> Result<bool, RedisError> {
        let allowed: i64 = self
            .take
            .key(self.key(user))
            .arg(self.rate)
            .arg(self.burst)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(allowed == 1)
    }
}
