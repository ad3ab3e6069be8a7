//! Chat: rooms, membership, per-room gapless sequencing, read markers and the chat role.
//!
//! `messages` holds the records on the bus (commands on `chat-message`, facts on
//! `chat-event`), `ports` the storage port the SQLite adapter implements, and
//! `role` the single writer that sequences and stores messages in batches.
//! Typing and presence are ephemeral and handled by the gateway alone.

pub mod messages;
mod metrics;
pub mod ports;
pub mod role;

pub use messages::codes;
pub use role::{ChatRole, ChatRoleConfig};

#[cfg(test)]
mod fake_repo;
#[cfg(test)]
mod role_tests;
