//! Refresh-token records and families in Redis; users and signing keys stay
//! in an inner `AuthRepository`.
//!
//! Keys: `<prefix>rt:<token hash>` is a hash (family, user, created, expires,
//! rotated, revoked, successor) and `<prefix>rf:<family>` the set of a
//! family's token hashes. `<prefix>revoked` is a sorted set of revoked
//! families scored by revocation time (the deny list gateways poll), trimmed
//! to the last day. A record lives for its own lifetime (`expires_at - created_at`,
//! measured from its insertion, so the callers' clocks and Redis's need not
//! agree) plus `grace`; a family set lives as long as its longest record.
//! After that an expired token is simply unknown, which the auth service
//! treats like an expired one.

use std::time::Duration;

use async_trait::async_trait;
use bowchat_auth::moderation::{AuditEntry, BlockChange, BlockOutcome};
use bowchat_auth::ports::{AuthRepoError, AuthRepository, RefreshRecord, User};
use bowchat_auth::StoredSigningKey;
use bowchat_model::{Millis, UserId};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

/// Shared by insert and rotate: writes the record in KEYS[a] with ARGV[a..],
/// adds it to the family set KEYS[a+1] and stretches the set's TTL.
const INSERT_FN: &str = r#"
local function insert(key, fam, a)
  redis.call('HSET', key, 'family', ARGV[a], 'user', ARGV[a+1], 'created', ARGV[a+2], 'expires', ARGV[a+3])
  if ARGV[a+5] ~= '' then redis.call('HSET', key, 'rotated', ARGV[a+5]) end
  if ARGV[a+6] ~= '' then redis.call('HSET', key, 'revoked', ARGV[a+6]) end
  if ARGV[a+8] ~= '' then redis.call('HSET', key, 'successor', ARGV[a+8]) end
  local ttl = tonumber(ARGV[a+4])
  redis.call('PEXPIRE', key, ttl)
  redis.call('SADD', fam, ARGV[a+7])
  if redis.call('PTTL', fam) < ttl then redis.call('PEXPIRE', fam, ttl) end
end
"#;

/// KEYS: record, family set. Returns 0 when the hash is taken.
const INSERT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
insert(KEYS[1], KEYS[2], 1)
return 1
"#;

/// KEYS: old record, new record, new family set; ARGV[1] = now, ARGV[2] = the
/// sealed successor, then the new record. 1: rotated; 0: old unknown,
/// rotated or revoked; -1: new hash taken.
const ROTATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'rotated') == 1 or redis.call('HEXISTS', KEYS[1], 'revoked') == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'rotated', ARGV[1], 'successor', ARGV[2])
insert(KEYS[2], KEYS[3], 3)
return 1
"#;

/// KEYS: family set, revoked families; ARGV: now, record key prefix, family.
/// Members whose record expired are dropped from the set on the way; the
/// family enters the deny list with its first revocation time.
const REVOKE_FAMILY: &str = r#"
redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[1]) - 86400000))
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. h
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSETNX', key, 'revoked', ARGV[1])
  else
    redis.call('SREM', KEYS[1], h)
  end
end
return 1
"#;

/// KEYS: record; ARGV: now.
const REVOKE_TOKEN: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSETNX', KEYS[1], 'revoked', ARGV[1]) end
return 1
"#;

/// See the module docs.
pub struct RedisRefreshStore<A> {
    inner: A,
    conn: ConnectionManager,
    prefix: String,
    grace: Duration,
    insert: Script,
    rotate: Script,
    revoke_family: Script,
    revoke_token: Script,
}

fn unavailable(e: redis::RedisError) -> AuthRepoError {
    AuthRepoError::Unavailable(e.to_string())
}

fn opt(v: Option<Millis>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl<A: AuthRepository> RedisRefreshStore<A> {
    /// `grace`: how long a record outlives its expiry (a little, so a token
    /// used right at its expiry is still recognised).
    pub fn new(inner: A, conn: ConnectionManager, key_prefix: &str, grace: Duration) -> Self {
        Self {
            inner,
            conn,
            prefix: key_prefix.to_string(),
            grace,
            insert: Script::new(&format!("{INSERT_FN}{INSERT}")),
            rotate: Script::new(&format!("{INSERT_FN}{ROTATE}")),
            revoke_family: Script::new(REVOKE_FAMILY),
            revoke_token: Script::new(REVOKE_TOKEN),
        }
    }

    fn token_key(&self, hash: &str) -> String {
        format!("{}rt:{hash}", self.prefix)
    }

    fn family_key(&self, family: &str) -> String {
        format!("{}rf:{family}", self.prefix)
    }

    fn revoked_key(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// The record's TTL in Redis, in milliseconds (at least 1).
    fn ttl_ms(&self, r: &RefreshRecord) -> i64 {
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        (r.expires_at - r.created_at)
            .max(0)
            .saturating_add(grace)
            .max(1)
    }

    /// ARGV of `insert` for `r` (9 values).
    fn record_args(&self, r: &RefreshRecord) -> Vec<String> {
        vec![
            r.family.clone(),
            r.user_id.to_string(),
            r.created_at.to_string(),
            r.expires_at.to_string(),
            self.ttl_ms(r).to_string(),
            opt(r.rotated_at),
            opt(r.revoked_at),
            r.token_hash.clone(),
            r.successor.clone().unwrap_or_default(),
        ]
    }
}

fn field<T: std::str::FromStr>(
    map: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, AuthRepoError> {
    map.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| AuthRepoError::Corrupt(format!("refresh record field {name}: {v:?}")))
        })
        .transpose()
}

fn required<T: std::str::FromStr>(
    map: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<T, AuthRepoError> {
    field(map, name)?.ok_or_else(|| AuthRepoError::Corrupt(format!("refresh record lacks {name}")))
}

#[async_trait]
impl<A: AuthRepository> AuthRepository for RedisRefreshStore<A> {
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        now: Millis,
    ) -> Result<User, AuthRepoError> {
        self.inner
            .create_user(email, display_name, password_hash, now)
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, AuthRepoError> {
        self.inner.user_by_email(email).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, AuthRepoError> {
        self.inner.user(id).await
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, AuthRepoError> {
        self.inner.users(ids).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, AuthRepoError> {
        self.inner.signing_keys().await
    }

    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        unless_created_since: Millis,
    ) -> Result<bool, AuthRepoError> {
        self.inner.add_signing_key(key, unless_created_since).await
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> Result<(), AuthRepoError> {
        self.inner.delete_signing_keys(kids).await
    }

    /// The block lives with the user in the inner store. The families kept
    /// here are not listed by user, so they are not marked revoked: a
    /// blocked user's refresh is refused by the auth service, and the
    /// deny list of blocked users ends their access tokens.
    async fn set_blocked(&self, change: &BlockChange) -> Result<BlockOutcome, AuthRepoError> {
        self.inner.set_blocked(change).await
    }

    async fn blocks_since(&self, since: Millis) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
        self.inner.blocks_since(since).await
    }

    async fn moderation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthRepoError> {
        self.inner.moderation_audit(limit).await
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), AuthRepoError> {
        let mut invocation = self.insert.key(self.token_key(&record.token_hash));
        invocation.key(self.family_key(&record.family));
        for arg in self.record_args(record) {
            invocation.arg(arg);
        }
        let inserted: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        if inserted == 0 {
            return Err(AuthRepoError::Conflict(format!(
                "refresh token {} already stored",
                record.token_hash
            )));
        }
        Ok(())
    }

    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, AuthRepoError> {
        let map: std::collections::HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.token_key(token_hash))
            .await
            .map_err(unavailable)?;
        if map.is_empty() {
            return Ok(None);
        }
        Ok(Some(RefreshRecord {
            token_hash: token_hash.to_string(),
            family: required(&map, "family")?,
            user_id: required(&map, "user")?,
            created_at: required(&map, "created")?,
            expires_at: required(&map, "expires")?,
            rotated_at: field(&map, "rotated")?,
            revoked_at: field(&map, "revoked")?,
            successor: map.get("successor").cloned(),
        }))
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        successor: &str,
        new: &RefreshRecord,
        now: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut invocation = self.rotate.key(self.token_key(old_hash));
        invocation
            .key(self.token_key(&new.token_hash))
            .key(self.family_key(&new.family))
            .arg(now)
            .arg(successor);
        for arg in self.record_args(new) {
            invocation.arg(arg);
        }
        let outcome: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match outcome {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(AuthRepoError::Conflict(format!(
                "refresh token {} already stored",
                new.token_hash
            ))),
        }
    }

    async fn revoke_family(&self, family: &str, now: Millis) -> Result<(), AuthRepoError> {
        let _: i64 = self
            .revoke_family
            .key(self.family_key(family))
            .key(self.revoked_key())
            .arg(now)
            .arg(format!("{}rt:", self.prefix))
            .arg(family)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn revoked_families(
        &self,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>, AuthRepoError> {
        let found: Vec<(String, f64)> = self
            .conn
            .clone()
            .zrangebyscore_withscores(self.revoked_key(), since, "+inf")
            .await
            .map_err(unavailable)?;
        Ok(found
            .into_iter()
            .map(|(family, at)| (family, at as Millis))
            .collect())
    }

    async fn revoke_token(&self, token_hash: &str, now: Millis) -> Result<(), AuthRepoError> {
        let _: i64 = self
            .revoke_token
            .key(self.token_key(token_hash))
            .arg(now)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
