//! Redis behind the gateway's ephemeral ports (`ephemeral.kind = "redis"`):
//! presence and the connection registry with per-gateway liveness, the
//! per-user token bucket shared by every gateway, and room signals (typing,
//! presence changes) over Redis pub/sub.
//!
//! Why pub/sub for signals: typing and presence are ephemeral and must never
//! be stored; pub/sub delivers to the gateways connected at that moment and
//! keeps nothing, while a Kafka topic would write every keystroke hint to
//! disk and keep it for the retention period. Redis is already in the path
//! of every presence change, so no further service is involved. A gateway
//! that is briefly disconnected from Redis misses signals sent meanwhile,
//! which for hints is the right trade.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bowchat_gateway::{Ephemeral, EphemeralError, PresenceDirectory, SignalBus, UserRateLimit};
use bowchat_model::{RoomId, UserId};
use bowchat_redis::{
    ConnectionRegistry, Presence, RateLimit, RedisBroadcast, RedisError, RedisPresence,
    RedisRateLimiter,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, RwLock};
use tracing::{info, warn};

use crate::adapters::RedisHandle;

fn unavailable(e: RedisError) -> EphemeralError {
    EphemeralError(e.to_string())
}

/// The Redis side of one gateway process.
pub struct RedisGateway {
    pub ephemeral: Ephemeral,
    presence: Arc<SharedPresence>,
}

impl RedisGateway {
    /// Starts this gateway's liveness (and its heartbeat task) and
    /// subscribes nothing yet: the gateway subscribes to signals at start.
    pub async fn start(
        redis: &RedisHandle,
        node_id: &str,
        ttl: Duration,
        rate_per_sec: f64,
        rate_burst: f64,
    ) -> anyhow::Result<RedisGateway> {
        let presence = Arc::new(SharedPresence::start(redis, node_id, ttl).await?);
        tokio::spawn(heartbeat(presence.clone(), ttl / 3));
        let rate = RedisRateLimiter::new(
            redis.conn.clone(),
            &redis.config.key_prefix,
            rate_per_sec,
            rate_burst,
        );
        let signals = RedisBroadcast::new(&redis.config, redis.conn.clone())?;
        Ok(RedisGateway {
            ephemeral: Ephemeral {
                presence: Some(presence.clone()),
                rate: Some(Arc::new(SharedRate(rate))),
                signals: Some(Arc::new(SharedSignals(signals))),
            },
            presence,
        })
    }

    /// Ends this gateway's liveness at once (clean shutdown), so its users go
    /// offline everywhere without waiting for the TTL.
    pub async fn shutdown(&self) {
        if let Err(e) = self.presence.current.read().await.shutdown().await {
            warn!(error = %e, "presence shutdown failed; entries expire with the TTL");
        }
    }
}

/// Presence of this gateway in Redis, plus a copy of what it entered.
///
/// When the liveness key lapsed (a pause longer than the TTL, or a Redis
/// restart), other gateways may have deleted some of this gateway's entries
/// and not others, so counting on would be wrong. The gateway then ends the
/// old identity, takes a new one (a new generation suffix) and enters every
/// open connection again from its copy. Enters and leaves hold the read side
/// of `current` across their Redis call and the copy's update, the switch
/// holds the write side, so no change falls between old and new identity.
struct SharedPresence {
    redis: RedisHandle,
    node_id: String,
    ttl: Duration,
    current: RwLock<RedisPresence>,
    rooms: Mutex<HashMap<(RoomId, UserId), usize>>,
    users: Mutex<HashMap<UserId, usize>>,
}

fn gateway_id(node_id: &str) -> String {
    // New for each identity: a revived id would revive stale entries.
    format!(
        "{node_id}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn add<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, usize>>, key: K) {
    *map.lock().entry(key).or_insert(0) += 1;
}

fn remove<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, usize>>, key: K) {
    let mut map = map.lock();
    if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
        }
    }
}

impl SharedPresence {
    async fn start(redis: &RedisHandle, node_id: &str, ttl: Duration) -> anyhow::Result<Self> {
        let presence = RedisPresence::start(
            redis.conn.clone(),
            &redis.config.key_prefix,
            gateway_id(node_id),
            ttl,
        )
        .await?;
        info!(gateway = %presence.gateway(), "presence live in Redis");
        Ok(Self {
            redis: redis.clone(),
            node_id: node_id.to_string(),
            ttl,
            current: RwLock::new(presence),
            rooms: Mutex::default(),
            users: Mutex::default(),
        })
    }

    /// Takes a new identity and enters every open connection again.
    async fn renew(&self) -> Result<(), RedisError> {
        let mut current = self.current.write().await;
        let fresh = RedisPresence::start(
            self.redis.conn.clone(),
            &self.redis.config.key_prefix,
            gateway_id(&self.node_id),
            self.ttl,
        )
        .await?;
        // The lapsed heartbeat set the old key again: drop it so the old
        // identity's leftovers count as dead.
        current.shutdown().await?;
        let rooms: Vec<((RoomId, UserId), usize)> =
            self.rooms.lock().iter().map(|(k, n)| (*k, *n)).collect();
        let users: Vec<(UserId, usize)> = self.users.lock().iter().map(|(k, n)| (*k, *n)).collect();
        for ((room, user), n) in rooms {
            for _ in 0..n {
                fresh.enter(room, user).await?;
            }
        }
        for (user, n) in users {
            for _ in 0..n {
                fresh.register(user).await?;
            }
        }
        warn!(
            old = %current.gateway(),
            new = %fresh.gateway(),
            "presence liveness had lapsed; entered every connection again"
        );
        *current = fresh;
        Ok(())
    }
}

async fn heartbeat(presence: Arc<SharedPresence>, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let alive = presence.current.read().await.heartbeat().await;
        match alive {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = presence.renew().await {
                    warn!(error = %e, "presence renewal failed; retrying at the next beat");
                }
            }
            Err(e) => warn!(error = %e, "presence heartbeat failed"),
        }
    }
}

#[async_trait]
impl PresenceDirectory for SharedPresence {
    async fn enter(&self, room: RoomId, user: UserId) -> Result<bool, EphemeralError> {
        let current = self.current.read().await;
        let first = current.enter(room, user).await.map_err(unavailable)?;
        add(&self.rooms, (room, user));
        Ok(first)
    }

    async fn leave(&self, room: RoomId, user: UserId) -> Result<bool, EphemeralError> {
        let current = self.current.read().await;
        // Forgotten here even if Redis fails, so a renewal does not bring
        // back a connection that is gone.
        remove(&self.rooms, (room, user));
        current.leave(room, user).await.map_err(unavailable)
    }

    async fn online_in_room(&self, room: RoomId) -> Result<Vec<UserId>, EphemeralError> {
        let current = self.current.read().await;
        current.online_in_room(room).await.map_err(unavailable)
    }

    async fn connected(&self, user: UserId) -> Result<(), EphemeralError> {
        let current = self.current.read().await;
        current.register(user).await.map_err(unavailable)?;
        add(&self.users, user);
        Ok(())
    }

    async fn disconnected(&self, user: UserId) -> Result<(), EphemeralError> {
        let current = self.current.read().await;
        remove(&self.users, user);
        current.unregister(user).await.map_err(unavailable)?;
        Ok(())
    }

    async fn is_connected(&self, user: UserId) -> Result<bool, EphemeralError> {
        let current = self.current.read().await;
        let gateways = current.gateways_of(user).await.map_err(unavailable)?;
        Ok(!gateways.is_empty())
    }
}

struct SharedRate(RedisRateLimiter);

#[async_trait]
impl UserRateLimit for SharedRate {
    async fn allow(&self, user: UserId) -> Result<bool, EphemeralError> {
        self.0.allow(user).await.map_err(unavailable)
    }
}

struct SharedSignals(RedisBroadcast);

#[async_trait]
impl SignalBus for SharedSignals {
    async fn publish(&self, payload: Vec<u8>) -> Result<(), EphemeralError> {
        self.0.publish(&payload).await.map_err(unavailable)?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Vec<u8>>, EphemeralError> {
        self.0.subscribe().await.map_err(unavailable)
    }
}
