//! Refresh-token records and families in Redis; users and signing keys stay
//! in an inner `AuthRepository`.
//!
//! Keys: `<prefix>rt:<token hash>` is a hash (family, user, created, expires,
//! rotated, revoked, successor), `<prefix>rf:<family>` the set of a family's
//! token hashes and `<prefix>user-families:<user>` the set of a user's
//! families not revoked yet (so a block can find them). `<prefix>revoked` is
//! a sorted set of revoked families scored by revocation time (the deny list
//! gateways poll), trimmed to the last day. A record lives for its own
//! lifetime (`expires_at - created_at`, measured from its insertion, so the
//! callers' clocks and Redis's need not agree) plus `grace`; a family set and
//! a user's set live as long as their longest record. After that an expired
//! token is simply unknown, which the auth service treats like an expired
//! one.
//!
//! A block (`set_blocked`) is stored by the inner repository, then revokes
//! the user's families here ([`RedisRefreshStore::revoke_user`]): the two
//! stores share no transaction, so a failure after the block is stored is
//! reported, and blocking the user again finishes the revocation.

use std::time::Duration;

use async_trait::async_trait;
use bowchat_auth::moderation::{AuditEntry, BlockChange, BlockOutcome};
use bowchat_auth::ports::{AuthRepoError, AuthRepository, RefreshRecord, User};
use bowchat_auth::StoredSigningKey;
use bowchat_model::{Millis, UserId};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

/// Shared by insert and rotate: writes the record in KEYS[a] with ARGV[a..],
/// adds it to the family set `fam` and the family to the user's set `usr`,
/// and stretches both sets' TTL to the record's.
const INSERT_FN: &str = r#"
local function insert(key, fam, usr, a)
  redis.call('HSET', key, 'family', ARGV[a], 'user', ARGV[a+1], 'created', ARGV[a+2], 'expires', ARGV[a+3])
  if ARGV[a+5] ~= '' then redis.call('HSET', key, 'rotated', ARGV[a+5]) end
  if ARGV[a+6] ~= '' then redis.call('HSET', key, 'revoked', ARGV[a+6]) end
  if ARGV[a+8] ~= '' then redis.call('HSET', key, 'successor', ARGV[a+8]) end
  local ttl = tonumber(ARGV[a+4])
  redis.call('PEXPIRE', key, ttl)
  redis.call('SADD', fam, ARGV[a+7])
  if redis.call('PTTL', fam) < ttl then redis.call('PEXPIRE', fam, ttl) end
  redis.call('SADD', usr, ARGV[a])
  if redis.call('PTTL', usr) < ttl then redis.call('PEXPIRE', usr, ttl) end
end
"#;

/// KEYS: record, family set, user's families. Returns 0 when the hash is
/// taken.
const INSERT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
insert(KEYS[1], KEYS[2], KEYS[3], 1)
return 1
"#;

/// KEYS: old record, new record, new family set, user's families; ARGV[1] =
/// now, ARGV[2] = the sealed successor, then the new record. 1: rotated; 0: old unknown,
/// rotated or revoked; -1: new hash taken.
const ROTATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'rotated') == 1 or redis.call('HEXISTS', KEYS[1], 'revoked') == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'rotated', ARGV[1], 'successor', ARGV[2])
insert(KEYS[2], KEYS[3], KEYS[4], 3)
return 1
"#;

/// KEYS: family set, revoked families; ARGV: now, record key prefix, family,
/// user's families key prefix. Members whose record expired are dropped from
/// the set on the way; the family enters the deny list with its first
/// revocation time and leaves its user's set (the user is read from a live
/// record: the family id alone does not name it).
const REVOKE_FAMILY: &str = r#"
redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[1]) - 86400000))
local user = false
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. h
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSETNX', key, 'revoked', ARGV[1])
    user = user or redis.call('HGET', key, 'user')
  else
    redis.call('SREM', KEYS[1], h)
  end
end
if user then redis.call('SREM', ARGV[4] .. user, ARGV[3]) end
return 1
"#;

/// KEYS: user's families, revoked families; ARGV: now, record key prefix,
/// family set key prefix. Revokes every family in the user's set as
/// `REVOKE_FAMILY` does (one script, so a rotation cannot slip in between
/// two families) and empties the set; returns how many families had a live
/// record. A family whose records all expired is only forgotten.
const REVOKE_USER: &str = r#"
local revoked = 0
for _, f in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fam = ARGV[3] .. f
  local live = false
  for _, h in ipairs(redis.call('SMEMBERS', fam)) do
    local key = ARGV[2] .. h
    if redis.call('EXISTS', key) == 1 then
      redis.call('HSETNX', key, 'revoked', ARGV[1])
      live = true
    else
      redis.call('SREM', fam, h)
    end
  end
  if live then
    redis.call('ZADD', KEYS[2], 'NX', ARGV[1], f)
    revoked = revoked + 1
  end
  redis.call('SREM', KEYS[1], f)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[1]) - 86400000))
return revoked
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
    revoke_user: Script,
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
            revoke_user: Script::new(REVOKE_USER),
            revoke_token: Script::new(REVOKE_TOKEN),
        }
    }

    fn token_key(&self, hash: &str) -> String {
        format!("{}rt:{hash}", self.prefix)
    }

    fn family_key(&self, family: &str) -> String {
        format!("{}rf:{family}", self.prefix)
    }

    fn user_families_prefix(&self) -> String {
        format!("{}user-families:", self.prefix)
    }

    fn user_families_key(&self, user: UserId) -> String {
        format!("{}{user}", self.user_families_prefix())
    }

    fn revoked_key(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// Revokes every refresh family of `user` kept here at `now` (they enter
    /// the deny list like any revoked family) and returns how many had a
    /// live token. Families created later are not affected.
    pub async fn revoke_user(&self, user: UserId, now: Millis) -> Result<u64, AuthRepoError> {
        self.revoke_user
            .key(self.user_families_key(user))
            .key(self.revoked_key())
            .arg(now)
            .arg(format!("{}rt:", self.prefix))
            .arg(format!("{}rf:", self.prefix))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
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

    /// The block is stored (and audited) by the inner store, then the
    /// user's families kept here are revoked, so they stay refused after an
    /// unblock like the ones the inner store revoked in its transaction.
    /// Also when the user was blocked already: a block whose revocation here
    /// failed is finished by blocking again.
    async fn set_blocked(&self, change: &BlockChange) -> Result<BlockOutcome, AuthRepoError> {
        let outcome = self.inner.set_blocked(change).await?;
        if let BlockOutcome::Changed(user) | BlockOutcome::Unchanged(user) = &outcome {
            if change.blocked {
                let revoked = self.revoke_user(user.id, change.at).await.map_err(|e| {
                    AuthRepoError::Unavailable(format!(
                        "the block of user {} is stored, but revoking their refresh tokens in Redis failed (block again to finish): {e}",
                        user.id
                    ))
                })?;
                tracing::info!(
                    user = user.id,
                    families = revoked,
                    "revoked a blocked user's refresh families in Redis"
                );
            }
        }
        Ok(outcome)
    }

    async fn blocks_since(&self, since: Millis) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
        self.inner.blocks_since(since).await
    }

    async fn moderation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthRepoError> {
        self.inner.moderation_audit(limit).await
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), AuthRepoError> {
        let mut invocation = self.insert.key(self.token_key(&record.token_hash));
        invocation
            .key(self.family_key(&record.family))
            .key(self.user_families_key(record.user_id));
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
            .key(self.user_families_key(new.user_id))
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
            .arg(self.user_families_prefix())
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
