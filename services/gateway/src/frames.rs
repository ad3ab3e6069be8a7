//! The WebSocket JSON protocol (docs/protocol.md): client frames in, server frames out.

use bowchat_auction::engine::{Outcome, Phase, PriceStep};
use bowchat_auction::AuctionView;
use bowchat_chat::messages::ChatMessage;
use bowchat_model::{AuctionId, Millis, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// Frame types a client may send.
pub const CLIENT_TYPES: [&str; 10] = [
    "AUTH",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "AUCTION_BID",
    "AUCTION_MAX_BID",
    "CHAT_SEND",
    "CHAT_READ",
    "TYPING",
    "PING",
    "PRESENCE",
];

#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum ClientFrame {
    /// In-band re-authentication with a fresh access token.
    Auth {
        token: String,
        request_id: Option<String>,
    },
    /// Watch an auction or a room; with `since`, first replay what came after it.
    Subscribe {
        auction_id: Option<AuctionId>,
        room_id: Option<RoomId>,
        since: Option<i64>,
        request_id: Option<String>,
    },
    Unsubscribe {
        auction_id: Option<AuctionId>,
        room_id: Option<RoomId>,
        request_id: Option<String>,
    },
    AuctionBid {
        request_id: String,
        auction_id: AuctionId,
        amount: Number,
        currency: Option<String>,
    },
    AuctionMaxBid {
        request_id: String,
        auction_id: AuctionId,
        max: Number,
        currency: Option<String>,
    },
    ChatSend {
        room_id: RoomId,
        client_msg_id: String,
        body: String,
        request_id: Option<String>,
    },
    ChatRead {
        room_id: RoomId,
        seq: i64,
        request_id: Option<String>,
    },
    Typing {
        room_id: RoomId,
        request_id: Option<String>,
    },
    Ping {
        request_id: Option<String>,
    },
    /// Who is online in a room.
    Presence {
        room_id: RoomId,
        request_id: Option<String>,
    },
}

impl ClientFrame {
    /// The request id the client gave, if any (echoed in errors).
    pub fn request_id(&self) -> Option<String> {
        match self {
            ClientFrame::AuctionBid { request_id, .. }
            | ClientFrame::AuctionMaxBid { request_id, .. } => Some(request_id.clone()),
            ClientFrame::Auth { request_id, .. }
            | ClientFrame::Subscribe { request_id, .. }
            | ClientFrame::Unsubscribe { request_id, .. }
            | ClientFrame::ChatSend { request_id, .. }
            | ClientFrame::ChatRead { request_id, .. }
            | ClientFrame::Typing { request_id, .. }
            | ClientFrame::Ping { request_id }
            | ClientFrame::Presence { request_id, .. } => request_id.clone(),
        }
    }

    /// The frame type, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Auth { .. } => "AUTH",
            ClientFrame::Subscribe { .. } => "SUBSCRIBE",
            ClientFrame::Unsubscribe { .. } => "UNSUBSCRIBE",
            ClientFrame::AuctionBid { .. } => "AUCTION_BID",
            ClientFrame::AuctionMaxBid { .. } => "AUCTION_MAX_BID",
            ClientFrame::ChatSend { .. } => "CHAT_SEND",
            ClientFrame::ChatRead { .. } => "CHAT_READ",
            ClientFrame::Typing { .. } => "TYPING",
            ClientFrame::Ping { .. } => "PING",
            ClientFrame::Presence { .. } => "PRESENCE",
        }
    }
}

/// Why a client frame could not be read, before any processing.
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    pub request_id: Option<String>,
}

/// Parses a text frame, telling malformed JSON, unknown types and bad fields apart.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    // Most frames are well formed: read them straight into their type, and
    // build the generic value only to explain a frame that is not.
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        return Ok(frame);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError {
        code: "MALFORMED_JSON",
        message: format!("frame is not valid JSON: {e}"),
        request_id: None,
    })?;
    let request_id = value
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = match value.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => {
            return Err(FrameError {
                code: "INVALID_FRAME",
                message: "a frame is a JSON object with a string field \"type\"".into(),
                request_id,
            })
        }
    };
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(FrameError {
            code: "UNKNOWN_TYPE",
            message: format!("unknown frame type {kind:?}"),
            request_id,
        });
    }
    serde_json::from_value(value).map_err(|e| FrameError {
        code: "INVALID_FRAME",
        message: format!("invalid {kind} frame: {e}"),
        request_id,
    })
}

/// A money amount from JSON: a positive integer of minor units that fits the engine's range.
pub fn amount(number: &Number) -> Option<i64> {
    number
        .as_i64()
        .filter(|a| *a > 0 && *a <= bowchat_model::MAX_AMOUNT)
}

#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "type",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum ServerFrame {
    Welcome {
        conn_id: u64,
        user_id: UserId,
        expires_at: i64,
        heartbeat_secs: u64,
    },
    AuthOk {
        request_id: Option<String>,
        user_id: UserId,
        expires_at: i64,
    },
    Subscribed {
        request_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        auction_id: Option<AuctionId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
        /// The last sequence at subscription time (price steps or messages).
        seq: i64,
        /// True when more than `maxReplay` items were missed; page the rest over REST.
        truncated: bool,
    },
    Unsubscribed {
        request_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        auction_id: Option<AuctionId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
    },
    BidResult {
        request_id: String,
        auction_id: AuctionId,
        accepted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        leading: bool,
        price: Option<i64>,
        minimum: Option<i64>,
        duplicate: bool,
    },
    AuctionUpdate {
        auction: AuctionView,
        steps: Vec<PriceStep>,
    },
    AuctionExtended {
        auction_id: AuctionId,
        ends_at: Millis,
    },
    AuctionClosed {
        auction: AuctionView,
        phase: Phase,
        outcome: Option<Outcome>,
        winner_id: Option<UserId>,
        price: Option<i64>,
        room_id: Option<RoomId>,
    },
    Outbid {
        auction_id: AuctionId,
        price: i64,
    },
    ChatMessage {
        message: ChatMessage,
    },
    ChatResult {
        request_id: Option<String>,
        room_id: RoomId,
        accepted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        seq: Option<i64>,
        duplicate: bool,
    },
    ChatRead {
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    },
    Typing {
        room_id: RoomId,
        user_id: UserId,
    },
    Presence {
        room_id: RoomId,
        user_id: UserId,
        online: bool,
    },
    PresenceList {
        request_id: Option<String>,
        room_id: RoomId,
        user_ids: Vec<UserId>,
    },
    Pong {
        request_id: Option<String>,
        server_time: Millis,
    },
    Error {
        code: String,
        message: String,
        request_id: Option<String>,
    },
}

impl ServerFrame {
    pub fn error(code: &str, message: impl Into<String>, request_id: Option<String>) -> Self {
        ServerFrame::Error {
            code: code.to_string(),
            message: message.into(),
            request_id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Welcome { .. } => "WELCOME",
            ServerFrame::AuthOk { .. } => "AUTH_OK",
            ServerFrame::Subscribed { .. } => "SUBSCRIBED",
            ServerFrame::Unsubscribed { .. } => "UNSUBSCRIBED",
            ServerFrame::BidResult { .. } => "BID_RESULT",
            ServerFrame::AuctionUpdate { .. } => "AUCTION_UPDATE",
            ServerFrame::AuctionExtended { .. } => "AUCTION_EXTENDED",
            ServerFrame::AuctionClosed { .. } => "AUCTION_CLOSED",
            ServerFrame::Outbid { .. } => "OUTBID",
            ServerFrame::ChatMessage { .. } => "CHAT_MESSAGE",
            ServerFrame::ChatResult { .. } => "CHAT_RESULT",
            ServerFrame::ChatRead { .. } => "CHAT_READ",
            ServerFrame::Typing { .. } => "TYPING",
            ServerFrame::Presence { .. } => "PRESENCE",
            ServerFrame::PresenceList { .. } => "PRESENCE_LIST",
            ServerFrame::Pong { .. } => "PONG",
            ServerFrame::Error { .. } => "ERROR",
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"ERROR","code":"INTERNAL"}"#.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_malformed_unknown_and_invalid_apart() {
        assert_eq!(parse("{nope").err().unwrap().code, "MALFORMED_JSON");
        assert_eq!(
            parse(r#"{"type":"FLY"}"#).err().unwrap().code,
            "UNKNOWN_TYPE"
        );
        let e = parse(r#"{"type":"AUCTION_BID","requestId":"r1"}"#)
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_FRAME");
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert!(matches!(
            parse(r#"{"type":"PING"}"#),
            Ok(ClientFrame::Ping { .. })
        ));
    }

    #[test]
    fn amounts_must_be_positive_integers_in_range() {
        let parsed = |s: &str| amount(&serde_json::from_str::<Number>(s).unwrap());
        assert_eq!(parsed("100"), Some(100));
        assert_eq!(parsed("-5"), None);
        assert_eq!(parsed("0"), None);
        assert_eq!(parsed("1.5"), None);
        assert_eq!(parsed("99999999999999999999999"), None);
        assert_eq!(parsed("9223372036854775807"), None);
    }
}
