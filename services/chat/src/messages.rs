//! Commands on `chat-message` and facts on `chat-event`, as JSON records keyed
//! by room id (so one room is always handled by one chat role, in order).

use bowchat_model::{Millis, Origin, RoomId, UserId};
use serde::{Deserialize, Serialize};

/// Result codes of rejected commands.
pub mod codes {
    pub const ROOM_NOT_FOUND: &str = "ROOM_NOT_FOUND";
    pub const NOT_A_MEMBER: &str = "NOT_A_MEMBER";
    pub const EMPTY_MESSAGE: &str = "EMPTY_MESSAGE";
    pub const MESSAGE_TOO_LONG: &str = "MESSAGE_TOO_LONG";
    pub const INVALID_CLIENT_MSG_ID: &str = "INVALID_CLIENT_MSG_ID";
    /// Storage failed; the command changed nothing and may be retried as is.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
}

/// What a user wants done in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ChatAction {
    /// Post a message. `client_msg_id` makes retries idempotent per sender and room.
    Send { client_msg_id: String, body: String },
    /// Move the sender's read marker forward to `seq` (never backwards).
    Read { seq: i64 },
    /// Join a public (auction) room.
    Join,
}

impl ChatAction {
    pub fn name(&self) -> &'static str {
        match self {
            ChatAction::Send { .. } => "send",
            ChatAction::Read { .. } => "read",
            ChatAction::Join => "join",
        }
    }
}

/// A command for the chat role, published on `chat-message` keyed by `room_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatCommand {
    pub room_id: RoomId,
    pub user_id: UserId,
    /// Where the result goes.
    pub origin: Origin,
    #[serde(flatten)]
    pub action: ChatAction,
}

/// A stored, sequenced message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub room_id: RoomId,
    /// Gapless per room, starting at 1.
    pub seq: i64,
    pub sender: UserId,
    pub body: String,
    pub client_msg_id: String,
    pub created_at: Millis,
}

/// Facts on `chat-event`, keyed by room id; emitted only once durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "fact",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ChatFact {
    /// Broadcast to the room's members.
    Message { message: ChatMessage },
    /// The answer to one command, routed to its sender only.
    Result {
        origin: Origin,
        room_id: RoomId,
        user_id: UserId,
        accepted: bool,
        /// Stable error code when rejected.
        code: Option<String>,
        message: Option<String>,
        /// Send: the message's seq. Read: the marker after the command.
        seq: Option<i64>,
        /// True when this answers a retry of a message already stored.
        duplicate: bool,
    },
    /// A member's read marker moved forward.
    Read {
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    },
    /// A user joined the room (explicitly or by writing in a public room).
    Joined { room_id: RoomId, user_id: UserId },
}

impl ChatFact {
    /// The record key: the room.
    pub fn room_id(&self) -> RoomId {
        match self {
            ChatFact::Message { message } => message.room_id,
            ChatFact::Result { room_id, .. }
            | ChatFact::Read { room_id, .. }
            | ChatFact::Joined { room_id, .. } => *room_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_wire_format() {
        let cmd = ChatCommand {
            room_id: 7,
            user_id: 3,
            origin: Origin {
                gateway: "g1".into(),
                conn: 9,
                request_id: "r1".into(),
            },
            action: ChatAction::Send {
                client_msg_id: "c1".into(),
                body: "hi".into(),
            },
        };
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "roomId": 7, "userId": 3,
                "origin": {"gateway": "g1", "conn": 9, "requestId": "r1"},
                "action": "send", "clientMsgId": "c1", "body": "hi"
            })
        );
        assert_eq!(serde_json::from_value::<ChatCommand>(json).unwrap(), cmd);
        let join: ChatCommand = serde_json::from_str(
            r#"{"roomId":1,"userId":2,"origin":{"gateway":"g","conn":0,"requestId":"x"},"action":"join"}"#,
        )
        .unwrap();
        assert_eq!(join.action, ChatAction::Join);
    }

    #[test]
    fn fact_round_trips() {
        let fact = ChatFact::Read {
            room_id: 1,
            user_id: 2,
            seq: 3,
        };
        let json = serde_json::to_value(&fact).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"fact": "read", "roomId": 1, "userId": 2, "seq": 3})
        );
        assert_eq!(serde_json::from_value::<ChatFact>(json).unwrap(), fact);
        assert_eq!(fact.room_id(), 1);
    }
}
