//! Presence (who is online in a room) and the connection registry (which
//! gateways hold a user's connections), shared by all gateways.
//!
//! Liveness is per gateway: `<prefix>gw:<gateway>` exists while the gateway
//! heartbeats (TTL `ttl`). Per scope (a room, or `all` for the registry) and
//! user, `<prefix>pr:<scope>:<user>` is a hash gateway -> open connections,
//! and `<prefix>pr:<scope>` the set of users with such a hash. A user is
//! online in a scope while some gateway with a live key counts a connection,
//! so a dead gateway's users go offline once its key expires. Entries of
//! dead gateways are deleted by the scripts whenever they meet them.
//!
//! A gateway id must be new for each process start (node id plus a random
//! suffix): a restarted process with the old id would revive stale entries.

use std::time::Duration;

use async_trait::async_trait;
use bowchat_model::{RoomId, UserId};
use redis::aio::ConnectionManager;
use redis::Script;

use crate::RedisError;

/// Identifies one gateway process.
pub type GatewayId = String;

/// Who is online in which room, over all gateways.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// One more connection of `user` in `room` on this gateway; true when
    /// the user was not online in the room before (announce it).
    async fn enter(&self, room: RoomId, user: UserId) -> Result<bool, RedisError>;
    /// One connection fewer; true when the user is now offline in the room.
    async fn leave(&self, room: RoomId, user: UserId) -> Result<bool, RedisError>;
    /// Users online in `room`, ascending.
    async fn online_in_room(&self, room: RoomId) -> Result<Vec<UserId>, RedisError>;
    /// Keeps this gateway's entries alive; call well within the TTL. False
    /// when the liveness key had expired: other gateways may have deleted
    /// this gateway's entries, so it must enter its connections again.
    async fn heartbeat(&self) -> Result<bool, RedisError>;
}

/// Which gateways hold connections of a user (to route to them).
#[async_trait]
pub trait ConnectionRegistry: Send + Sync + 'static {
    /// A connection of `user` opened on this gateway; true when it is the
    /// user's first anywhere.
    async fn register(&self, user: UserId) -> Result<bool, RedisError>;
    /// A connection closed; true when the user has none left anywhere.
    async fn unregister(&self, user: UserId) -> Result<bool, RedisError>;
    /// Live gateways with a connection of `user`, sorted.
    async fn gateways_of(&self, user: UserId) -> Result<Vec<GatewayId>, RedisError>;
}

/// Shared by the scripts: whether KEYS[1] (a user's hash) has a live
/// gateway with connections; deletes the fields of dead gateways.
const LIVE_FN: &str = r#"
local function live(key, gw_prefix)
  local out = {}
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local g = fields[i]
    if redis.call('EXISTS', gw_prefix .. g) == 0 or tonumber(fields[i + 1]) <= 0 then
      redis.call('HDEL', key, g)
    else
      table.insert(out, g)
    end
  end
  return out
end
"#;

/// KEYS: user hash, scope set; ARGV: gateway, gateway key prefix, user.
const ENTER: &str = r#"
local before = #live(KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[3])
if before == 0 then return 1 end
return 0
"#;

/// KEYS: user hash, scope set; ARGV: gateway, gateway key prefix, user.
const LEAVE: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if #live(KEYS[1], ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  return 1
end
return 0
"#;

/// KEYS: scope set; ARGV: gateway key prefix, user hash key prefix.
const ONLINE: &str = r#"
local out = {}
for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. u
  if #live(key, ARGV[1]) > 0 then
    table.insert(out, u)
  else
    redis.call('DEL', key)
    redis.call('SREM', KEYS[1], u)
  end
end
return out
"#;

/// KEYS: user hash; ARGV: gateway key prefix.
const GATEWAYS: &str = r#"
return live(KEYS[1], ARGV[1])
"#;

/// Presence and connection registry of one gateway (see the module docs).
pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    gateway: GatewayId,
    ttl: Duration,
    enter: Script,
    leave: Script,
    online: Script,
    gateways: Script,
}

fn parse_users(raw: Vec<String>) -> Result<Vec<UserId>, RedisError> {
    let mut users = raw
        .iter()
        .map(|u| {
            u.parse()
                .map_err(|_| RedisError::Reply(format!("user id {u:?}")))
        })
        .collect::<Result<Vec<UserId>, _>>()?;
    users.sort_unstable();
    Ok(users)
}

impl RedisPresence {
    /// Starts the gateway's liveness (first heartbeat); heartbeat every
    /// `ttl / 3` or so afterwards.
    pub async fn start(
        conn: ConnectionManager,
        key_prefix: &str,
        gateway: GatewayId,
        ttl: Duration,
    ) -> Result<Self, RedisError> {
        let presence = Self {
            conn,
            prefix: key_prefix.to_string(),
            gateway,
            ttl,
            enter: Script::new(&format!("{LIVE_FN}{ENTER}")),
            leave: Script::new(&format!("{LIVE_FN}{LEAVE}")),
            online: Script::new(&format!("{LIVE_FN}{ONLINE}")),
            gateways: Script::new(&format!("{LIVE_FN}{GATEWAYS}")),
        };
        presence.heartbeat_now().await?;
        Ok(presence)
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// Ends this gateway's liveness at once (clean shutdown): its users go
    /// offline without waiting for the TTL.
    pub async fn shutdown(&self) -> Result<(), RedisError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.gateway_key())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    fn gateway_prefix(&self) -> String {
        format!("{}gw:", self.prefix)
    }

    fn gateway_key(&self) -> String {
        format!("{}{}", self.gateway_prefix(), self.gateway)
    }

    fn scope_key(&self, scope: &str) -> String {
        format!("{}pr:{scope}", self.prefix)
    }

    fn user_key(&self, scope: &str, user: UserId) -> String {
        format!("{}pr:{scope}:{user}", self.prefix)
    }

    async fn heartbeat_now(&self) -> Result<bool, RedisError> {
        let ttl = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.gateway_key())
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .arg("GET")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(previous.is_some())
    }

    async fn enter_scope(&self, scope: &str, user: UserId) -> Result<bool, RedisError> {
        let first: i64 = self
            .enter
            .key(self.user_key(scope, user))
            .key(self.scope_key(scope))
            .arg(&self.gateway)
            .arg(self.gateway_prefix())
            .arg(user)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(first == 1)
    }

    async fn leave_scope(&self, scope: &str, user: UserId) -> Result<bool, RedisError> {
        let last: i64 = self
            .leave
            .key(self.user_key(scope, user))
            .key(self.scope_key(scope))
            .arg(&self.gateway)
            .arg(self.gateway_prefix())
            .arg(user)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(last == 1)
    }
}

fn room_scope(room: RoomId) -> String {
    format!("room:{room}")
}

/// The registry's scope: every connection of a user, whatever it watches.
const ALL: &str = "all";

#[async_trait]
impl Presence for RedisPresence {
    async fn enter(&self, room: RoomId, user: UserId) -> Result<bool, RedisError> {
        self.enter_scope(&room_scope(room), user).await
    }

    async fn leave(&self, room: RoomId, user: UserId) -> Result<bool, RedisError> {
        self.leave_scope(&room_scope(room), user).await
    }

    async fn online_in_room(&self, room: RoomId) -> Result<Vec<UserId>, RedisError> {
        let scope = room_scope(room);
        let raw: Vec<String> = self
            .online
            .key(self.scope_key(&scope))
            .arg(self.gateway_prefix())
            .arg(format!("{}pr:{scope}:", self.prefix))
            .invoke_async(&mut self.conn.clone())
            .await?;
        parse_users(raw)
    }

    async fn heartbeat(&self) -> Result<bool, RedisError> {
        self.heartbeat_now().await
    }
}

#[async_trait]
impl ConnectionRegistry for RedisPresence {
    async fn register(&self, user: UserId) -> Result<bool, RedisError> {
        self.enter_scope(ALL, user).await
    }

    async fn unregister(&self, user: UserId) -> Result<bool, RedisError> {
        self.leave_scope(ALL, user).await
    }

    async fn gateways_of(&self, user: UserId) -> Result<Vec<GatewayId>, RedisError> {
        let mut gateways: Vec<GatewayId> = self
            .gateways
            .key(self.user_key(ALL, user))
            .arg(self.gateway_prefix())
            .invoke_async(&mut self.conn.clone())
            .await?;
        gateways.sort();
        Ok(gateways)
    }
}
