//! MongoDB adapter of the chat history for cluster mode.
//!
//! [`MongoChatHistory`] keeps message documents in one `messages` collection;
//! [`SplitChatRepository`] puts it together with an inner `ChatRepository`
//! (PostgreSQL in a cluster) that keeps rooms, members, read markers and each
//! room's `last_seq`, and implements the whole `ChatRepository` port. The
//! inner store's `last_seq` decides which messages exist: see `split` for the
//! commit order and why retries neither lose nor duplicate a message.

mod history;
mod split;

pub use history::{MongoChatHistory, MESSAGES};
pub use split::SplitChatRepository;

use serde::{Deserialize, Serialize};

/// Connection settings (serde, unknown keys are errors, every key optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string; pool size, timeouts and TLS go in its options.
    pub url: String,
    /// Database holding the `messages` collection.
    pub database: String,
}

impl Default for MongoConfig {
    fn default() -> Self {
        Self {
            url: "mongodb://127.0.0.1:27017/".into(),
            database: "bowchat".into(),
        }
    }
}

/// Why a MongoDB operation failed, before it is mapped to the port's error.
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    #[error("mongodb: {0}")]
    Driver(#[from] mongodb::error::Error),
    #[error("stored message is corrupt: {0}")]
    Corrupt(String),
}
