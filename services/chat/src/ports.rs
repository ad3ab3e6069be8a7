//! What the chat domain needs from storage. Adapters live in `bowchat-store`.
//!
//! The gateway uses the read side (rooms, members, history) and room creation
//! directly; message writes, read markers and public joins go through the chat
//! role, which stores each batch with one `commit`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use bowchat_bus::outbox::OutboxEntry;
use bowchat_model::{AuctionId, Millis, PageQuery, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::messages::ChatMessage;

#[derive(Debug, thiserror::Error)]
pub enum ChatRepoError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Stored as 'group' / 'direct' / 'auction' / 'deal'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Named room with an owner and invited members.
    Group,
    /// One-to-one room; one per pair of users.
    Direct,
    /// An auction's public room: anyone may join.
    Auction,
    /// The seller-winner room of a sold auction.
    Deal,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Group => "group",
            RoomKind::Direct => "direct",
            RoomKind::Auction => "auction",
            RoomKind::Deal => "deal",
        }
    }

    /// Whether anyone may join (and so write after an implicit join).
    pub fn is_public(self) -> bool {
        self == RoomKind::Auction
    }
}

impl fmt::Display for RoomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoomKind {
    type Err = ChatRepoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "group" => Ok(RoomKind::Group),
            "direct" => Ok(RoomKind::Direct),
            "auction" => Ok(RoomKind::Auction),
            "deal" => Ok(RoomKind::Deal),
            other => Err(ChatRepoError::Corrupt(format!(
                "unknown room kind {other:?}"
            ))),
        }
    }
}

/// Stored as 'owner' / 'member'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Owner,
    Member,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::Member => "member",
        }
    }
}

impl FromStr for MemberRole {
    type Err = ChatRepoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(MemberRole::Owner),
            "member" => Ok(MemberRole::Member),
            other => Err(ChatRepoError::Corrupt(format!(
                "unknown member role {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub id: RoomId,
    pub kind: RoomKind,
    pub name: String,
    /// For auction and deal rooms.
    pub auction_id: Option<AuctionId>,
    pub created_by: UserId,
    pub created_at: Millis,
    /// Seq of the last message (0 when empty).
    pub last_seq: i64,
}

/// A room as one member sees it in their room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    #[serde(flatten)]
    pub room: Room,
    /// `last_seq - last_read_seq`, never negative.
    pub unread: i64,
    pub last_read_seq: i64,
    pub member_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: UserId,
    pub role: MemberRole,
    pub joined_at: Millis,
    pub last_read_seq: i64,
}

/// Everything one chat-role batch changed; stored atomically by `commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatBatch {
    /// Per room contiguous and ascending, starting at the room's `last_seq + 1`.
    pub messages: Vec<ChatMessage>,
    /// (room, user, seq): read markers; only ever move forward, capped at the room's last seq.
    pub reads: Vec<(RoomId, UserId, i64)>,
    /// (room, user, joined_at): new members with role 'member'; joining twice is a no-op.
    pub joins: Vec<(RoomId, UserId, Millis)>,
    /// The facts the gateways must see, stored with the batch and removed
    /// once published (`bowchat_bus::outbox`).
    pub outbox: Option<OutboxEntry>,
}

impl ChatBatch {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.reads.is_empty() && self.joins.is_empty()
    }
}

/// A member's report of one message, with the message as it was then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub room_id: RoomId,
    pub seq: i64,
    pub reporter: UserId,
    pub reason: String,
    /// The message's sender and body at report time.
    pub sender: UserId,
    pub body: String,
    pub at: Millis,
}

/// A stored report (`bowchat admin reports list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub id: i64,
    pub room_id: RoomId,
    pub seq: i64,
    pub reporter: UserId,
    pub reason: String,
    pub sender: UserId,
    pub body: String,
    pub created_at: Millis,
}

/// What [`ChatRepository::report_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Stored (and audited) now, with this id.
    Created(i64),
    /// The reporter had reported this message already: that report's id.
    Existing(i64),
}

#[async_trait]
pub trait ChatRepository: Send + Sync + 'static {
    /// Creates a group room; `creator` becomes its owner, `members` (deduplicated,
    /// the creator skipped) plain members.
    async fn create_group(
        &self,
        name: &str,
        creator: UserId,
        members: &[UserId],
        now: Millis,
    ) -> Result<Room, ChatRepoError>;

    /// The one direct room of the pair {a, b}, created on first use with both as members.
    /// `a == b` is a `Conflict`.
    async fn open_direct(&self, a: UserId, b: UserId, now: Millis) -> Result<Room, ChatRepoError>;

    async fn get_room(&self, id: RoomId) -> Result<Option<Room>, ChatRepoError>;

    /// The rooms `user` is a member of, with unread counts, by ascending room id.
    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomSummary>, ChatRepoError>;

    /// Members of `room` by join time; empty for an unknown room.
    async fn members(&self, room: RoomId) -> Result<Vec<Member>, ChatRepoError>;

    async fn member(&self, room: RoomId, user: UserId) -> Result<Option<Member>, ChatRepoError>;

    /// Adds `user` as a plain member; a no-op when already a member. `NotFound` for an unknown room.
    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        now: Millis,
    ) -> Result<(), ChatRepoError>;

    /// Removes `user` from `room`; a no-op when not a member.
    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<(), ChatRepoError>;

    /// A page of messages, ascending by seq. `page.limit` is clamped to `1..=max`
    /// (absent: `max`). `before`: the `limit` messages just before it; `after`:
    /// the first `limit` after it (both: the first `limit` strictly between);
    /// neither: the latest `limit`.
    async fn history(
        &self,
        room: RoomId,
        page: PageQuery,
        max: u32,
    ) -> Result<Vec<ChatMessage>, ChatRepoError>;

    /// Stored messages of `room` among `keys` (sender, client message id): the
    /// chat role's dedupe lookup.
    async fn find_messages(
        &self,
        room: RoomId,
        keys: &[(UserId, String)],
    ) -> Result<Vec<ChatMessage>, ChatRepoError>;

    /// `last_seq` of each existing room among `rooms` (unknown rooms are absent).
    async fn last_seqs(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, i64>, ChatRepoError>;

    /// Stores `batch` in one transaction: messages, each room's `last_seq`
    /// (a `Conflict` when a room's messages do not continue its stored sequence),
    /// joins, then read markers. Nothing is stored when it fails.
    async fn commit(&self, batch: &ChatBatch) -> Result<(), ChatRepoError>;

    /// Like [`commit`](Self::commit), but the batch's messages only advance
    /// each room's `last_seq` (with the same compare-and-set); the messages
    /// themselves are not stored, because their bodies live in another store
    /// (`bowchat_mongo::SplitChatRepository` keeps them in MongoDB). Stores
    /// that cannot serve as such an inner store refuse.
    async fn commit_sequences(&self, batch: &ChatBatch) -> Result<(), ChatRepoError> {
        let _ = batch;
        Err(ChatRepoError::Conflict(
            "this store keeps message bodies itself".into(),
        ))
    }

    /// Stores `report` with its `moderation_audit` row (action `report`,
    /// actor the reporter, target the sender) in one transaction, once per
    /// (room, seq, reporter): a repeat returns the first report's id and
    /// stores nothing.
    async fn report_message(&self, report: &NewReport) -> Result<ReportOutcome, ChatRepoError>;

    /// The newest `limit` reports, newest first.
    async fn reports(&self, limit: u32) -> Result<Vec<Report>, ChatRepoError>;
}

/// `"<min>:<max>"`: the key that makes a pair's direct room unique.
pub fn direct_key(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

/// The messages of `batch` must continue each room's sequence without gaps;
/// adapters call this before writing (`expected_first(room)` = stored last_seq + 1).
/// Returns, per room, (first seq, last seq) in first-seen order.
pub fn seq_ranges(messages: &[ChatMessage]) -> Result<Vec<(RoomId, i64, i64)>, ChatRepoError> {
    let mut ranges: Vec<(RoomId, i64, i64)> = Vec::new();
    for m in messages {
        match ranges.iter_mut().find(|(room, _, _)| *room == m.room_id) {
            Some((_, _, last)) if m.seq == *last + 1 => *last = m.seq,
            Some((room, _, last)) => {
                return Err(ChatRepoError::Conflict(format!(
                    "room {room}: seq {} does not follow {last}",
                    m.seq
                )))
            }
            None => ranges.push((m.room_id, m.seq, m.seq)),
        }
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: RoomId, seq: i64) -> ChatMessage {
        ChatMessage {
            room_id: room,
            seq,
            sender: 1,
            body: "x".into(),
            client_msg_id: format!("{room}-{seq}"),
            created_at: 0,
        }
    }

    #[test]
    fn seq_ranges_accepts_interleaved_contiguous_rooms() {
        let ranges = seq_ranges(&[msg(1, 5), msg(2, 1), msg(1, 6), msg(2, 2)]).unwrap();
        assert_eq!(ranges, vec![(1, 5, 6), (2, 1, 2)]);
    }

    #[test]
    fn seq_ranges_refuses_gaps_and_repeats() {
        assert!(matches!(
            seq_ranges(&[msg(1, 1), msg(1, 3)]),
            Err(ChatRepoError::Conflict(_))
        ));
        assert!(matches!(
            seq_ranges(&[msg(1, 2), msg(1, 2)]),
            Err(ChatRepoError::Conflict(_))
        ));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            RoomKind::Group,
            RoomKind::Direct,
            RoomKind::Auction,
            RoomKind::Deal,
        ] {
            assert_eq!(kind.as_str().parse::<RoomKind>().unwrap(), kind);
        }
        assert!("nope".parse::<RoomKind>().is_err());
        assert_eq!(direct_key(9, 2), "2:9");
    }
}
