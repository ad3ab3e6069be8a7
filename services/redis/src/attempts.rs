//! Login and registration attempts counted in Redis, so every gateway of a
//! cluster enforces one throttle (`bowchat_auth::throttle`): one hash per key
//! (`<prefix>th:<key>`: attempts in a row, blocked-until), counted and
//! checked in one Lua script on the server's clock.

use async_trait::async_trait;
use bowchat_auth::throttle::{AttemptStore, AttemptStoreError, Hit, ThrottleRule};
use redis::aio::ConnectionManager;
use redis::Script;

/// KEYS: counter; ARGV: free attempts, backoff base ms, backoff max ms, keep
/// ms. Returns -1 when the attempt is counted, else the ms still blocked.
/// Mirrors `ThrottleRule::block_ms`.
const HIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'n', 'until')
local n = tonumber(b[1]) or 0
local blocked = tonumber(b[2]) or 0
if blocked > now then return blocked - now end
n = n + 1
local block = 0
if n >= free then block = math.min(max, base * 2 ^ math.min(n - free, 40)) end
redis.call('HSET', KEYS[1], 'n', n, 'until', math.floor(now + block))
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[4]), math.floor(block)))
return -1
"#;

/// KEYS: counter. One attempt fewer, never below zero.
const FORGIVE: &str = r#"
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
if n ~= nil and n > 0 then redis.call('HSET', KEYS[1], 'n', n - 1) end
return 1
"#;

/// See the module docs.
pub struct RedisAttempts {
    conn: ConnectionManager,
    prefix: String,
    hit: Script,
    forgive: Script,
}

impl RedisAttempts {
    pub fn new(conn: ConnectionManager, key_prefix: &str) -> Self {
        Self {
            conn,
            prefix: key_prefix.to_string(),
            hit: Script::new(HIT),
            forgive: Script::new(FORGIVE),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}th:{key}", self.prefix)
    }
}

fn unavailable(e: redis::RedisError) -> AttemptStoreError {
    AttemptStoreError(e.to_string())
}

#[async_trait]
impl AttemptStore for RedisAttempts {
    async fn hit(&self, key: &str, rule: &ThrottleRule) -> Result<Hit, AttemptStoreError> {
        let left: i64 = self
            .hit
            .key(self.key(key))
            .arg(rule.free_attempts)
            .arg(rule.backoff_base_ms)
            .arg(rule.backoff_max_ms)
            .arg(rule.keep_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(if left < 0 {
            Hit::Allowed
        } else {
            Hit::Blocked {
                retry_after_ms: u64::try_from(left).unwrap_or(1).max(1),
            }
        })
    }

    async fn clear(&self, key: &str) -> Result<(), AttemptStoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn forgive(&self, key: &str) -> Result<(), AttemptStoreError> {
        let _: i64 = self
            .forgive
            .key(self.key(key))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
