//! Fire-and-forget broadcast between processes over Redis pub/sub: what one
//! publishes, every subscriber connected at that moment receives once; nothing
//! is stored, a subscriber that is disconnected misses it. That is the
//! contract of ephemeral signals such as typing and presence changes.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tracing::warn;

use crate::{RedisConfig, RedisError};

/// Payloads queued for a slow subscriber before new ones are dropped.
const QUEUE: usize = 4096;
/// Pause before re-subscribing after the pub/sub connection broke.
const RECONNECT: Duration = Duration::from_millis(500);

/// One pub/sub channel, `<prefix>signals`.
pub struct RedisBroadcast {
    client: redis::Client,
    conn: ConnectionManager,
    channel: String,
}

impl RedisBroadcast {
    /// Publishes through `conn`; subscriptions open their own connection
    /// (a subscribed connection can do nothing else).
    pub fn new(config: &RedisConfig, conn: ConnectionManager) -> Result<Self, RedisError> {
        Ok(Self {
            client: redis::Client::open(config.url.as_str())?,
            conn,
            channel: format!("{}signals", config.key_prefix),
        })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Sends `payload` to every current subscriber; returns how many got it.
    pub async fn publish(&self, payload: &[u8]) -> Result<u64, RedisError> {
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(receivers)
    }

    /// Subscribes (returning once the server confirmed it) and forwards every
    /// payload until the receiver is dropped. A broken connection is
    /// re-subscribed after a short pause; what was published meanwhile is lost.
    pub async fn subscribe(&self) -> Result<mpsc::Receiver<Vec<u8>>, RedisError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let client = self.client.clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            loop {
                {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        match tx.try_send(message.get_payload_bytes().to_vec()) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                warn!(channel, "signal subscriber too slow; signal dropped")
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                }
                if tx.is_closed() {
                    return;
                }
                warn!(channel, "pub/sub connection lost; re-subscribing");
                pubsub = loop {
                    tokio::time::sleep(RECONNECT).await;
                    if tx.is_closed() {
                        return;
                    }
                    match client.get_async_pubsub().await {
                        Ok(mut p) => match p.subscribe(&channel).await {
                            Ok(()) => break p,
                            Err(e) => warn!(channel, error = %e, "re-subscribe failed"),
                        },
                        Err(e) => warn!(channel, error = %e, "re-subscribe failed"),
                    }
                };
            }
        });
        Ok(rx)
    }
}
