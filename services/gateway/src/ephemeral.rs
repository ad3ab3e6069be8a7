//! Ephemeral state a gateway shares with the other gateways of a cluster:
//! who is online in which room, the per-user command rate, and room signals
//! (presence changes, typing) that every gateway delivers to its own sockets.
//!
//! The gateway only knows the small traits here. Embedded mode uses the
//! in-process implementations of this module (one gateway: local state is
//! all there is); cluster mode gets adapters (Redis) from the binary. None of
//! this is ever stored: losing it costs a presence list or a typing hint,
//! never a message or a bid.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bowchat_model::{RoomId, UserId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::limits::RateLimiter;

/// An ephemeral backend did not answer (the caller decides what that means).
#[derive(Debug, Clone, thiserror::Error)]
#[error("ephemeral state unavailable: {0}")]
pub struct EphemeralError(pub String);

/// Who is online in which room, over every gateway, counted per connection.
#[async_trait]
pub trait PresenceDirectory: Send + Sync + 'static {
    /// One more watching connection of `user` in `room`; true when the user
    /// was not online in the room anywhere before (this gateway announces it).
    async fn enter(&self, room: RoomId, user: UserId) -> Result<bool, EphemeralError>;
    /// One watching connection fewer; true when the user is now offline in
    /// the room everywhere (this gateway announces it).
    async fn leave(&self, room: RoomId, user: UserId) -> Result<bool, EphemeralError>;
    /// Users online in `room`, ascending.
    async fn online_in_room(&self, room: RoomId) -> Result<Vec<UserId>, EphemeralError>;
    /// A WebSocket of `user` opened (the connection registry).
    async fn connected(&self, user: UserId) -> Result<(), EphemeralError>;
    /// A WebSocket of `user` closed.
    async fn disconnected(&self, user: UserId) -> Result<(), EphemeralError>;
    /// Whether `user` has an open WebSocket on any gateway.
    async fn is_connected(&self, user: UserId) -> Result<bool, EphemeralError>;
}

/// The per-user command rate (one token bucket per user, all connections
/// and REST calls of the user together).
#[async_trait]
pub trait UserRateLimit: Send + Sync + 'static {
    /// Takes one token; false when the user is over the limit.
    async fn allow(&self, user: UserId) -> Result<bool, EphemeralError>;
}

/// Carries room signals to the other gateways: at most once, in no
/// particular order across senders, never stored. Payloads are opaque bytes
/// (the gateway encodes [`RoomSignal`] itself).
#[async_trait]
pub trait SignalBus: Send + Sync + 'static {
    async fn publish(&self, payload: Vec<u8>) -> Result<(), EphemeralError>;
    /// Every payload published by any gateway (this one's included) from now
    /// on; called once, before the gateway accepts traffic.
    async fn subscribe(&self) -> Result<mpsc::Receiver<Vec<u8>>, EphemeralError>;
}

/// What one gateway tells the others about a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSignal {
    /// The sending gateway; it has already delivered to its own sockets.
    pub gateway: String,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub kind: SignalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignalKind {
    Typing,
    Online,
    Offline,
}

/// The ephemeral backends of one gateway; `None` means in-process.
#[derive(Clone, Default)]
pub struct Ephemeral {
    pub presence: Option<Arc<dyn PresenceDirectory>>,
    pub rate: Option<Arc<dyn UserRateLimit>>,
    pub signals: Option<Arc<dyn SignalBus>>,
}

/// Presence of one process: counts of watching connections per room and
/// user, and of open connections per user.
#[derive(Default)]
pub struct LocalPresence {
    rooms: Mutex<HashMap<(RoomId, UserId), usize>>,
    users: Mutex<HashMap<UserId, usize>>,
}

fn increment<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, usize>>, key: K) -> bool {
    let mut map = map.lock();
    let count = map.entry(key).or_insert(0);
    *count += 1;
    *count == 1
}

fn decrement<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, usize>>, key: K) -> bool {
    let mut map = map.lock();
    match map.get_mut(&key) {
        Some(count) if *count > 1 => {
            *count -= 1;
            false
        }
        Some(_) => {
            map.remove(&key);
            true
        }
        None => false,
    }
}

#[async_trait]
impl PresenceDirectory for LocalPresence {
    async fn enter(&self, room: RoomId, user: UserId) -> Result<bool, EphemeralError> {
        Ok(increment(&self.rooms, (room, user)))
    }

    async fn leave(&self, room: RoomId, user: UserId) -> Result<bool, EphemeralError> {
        Ok(decrement(&self.rooms, (room, user)))
    }

    async fn online_in_room(&self, room: RoomId) -> Result<Vec<UserId>, EphemeralError> {
        let mut users: Vec<UserId> = self
            .rooms
            .lock()
            .keys()
            .filter(|(r, _)| *r == room)
            .map(|(_, u)| *u)
            .collect();
        users.sort_unstable();
        Ok(users)
    }

    async fn connected(&self, user: UserId) -> Result<(), EphemeralError> {
        increment(&self.users, user);
        Ok(())
    }

    async fn disconnected(&self, user: UserId) -> Result<(), EphemeralError> {
        decrement(&self.users, user);
        Ok(())
    }

    async fn is_connected(&self, user: UserId) -> Result<bool, EphemeralError> {
        Ok(self.users.lock().contains_key(&user))
    }
}

#[async_trait]
impl UserRateLimit for RateLimiter {
    async fn allow(&self, user: UserId) -> Result<bool, EphemeralError> {
        Ok(RateLimiter::allow(self, user))
    }
}

/// One gateway: there is nobody to signal.
pub struct NoSignals;

#[async_trait]
impl SignalBus for NoSignals {
    async fn publish(&self, _payload: Vec<u8>) -> Result<(), EphemeralError> {
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Vec<u8>>, EphemeralError> {
        // The sender is dropped at once: the delivery task ends immediately.
        Ok(mpsc::channel(1).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_presence_counts_connections() {
        let p = LocalPresence::default();
        assert!(p.enter(1, 7).await.unwrap());
        assert!(!p.enter(1, 7).await.unwrap(), "second connection");
        assert!(p.enter(1, 3).await.unwrap());
        assert_eq!(p.online_in_room(1).await.unwrap(), vec![3, 7]);
        assert!(!p.leave(1, 7).await.unwrap());
        assert!(p.leave(1, 7).await.unwrap(), "last connection");
        assert!(!p.leave(1, 7).await.unwrap(), "no connection left");
        assert_eq!(p.online_in_room(1).await.unwrap(), vec![3]);
        p.connected(5).await.unwrap();
        assert!(p.is_connected(5).await.unwrap());
        p.disconnected(5).await.unwrap();
        assert!(!p.is_connected(5).await.unwrap());
    }

    #[test]
    fn signals_round_trip_as_json() {
        let s = RoomSignal {
            gateway: "g".into(),
            room_id: 4,
            user_id: 9,
            kind: SignalKind::Offline,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"gateway":"g","roomId":4,"userId":9,"kind":"offline"}"#
        );
        assert_eq!(serde_json::from_str::<RoomSignal>(&text).unwrap(), s);
    }
}
