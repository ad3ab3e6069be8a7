//! Chat rows to domain values, for every SQL adapter (SQLite here, PostgreSQL
//! in `bowchat-postgres`): both schemas use the same column names and types,
//! so the mapping and the error mapping are written once, generic over the row.

use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::{ChatRepoError, Member, Room};
use sqlx::{ColumnIndex, Decode, Row, Type};

pub const ROOM_COLUMNS: &str = "id, kind, name, auction_id, created_by, created_at, last_seq";
pub const MESSAGE_COLUMNS: &str = "room_id, seq, sender, body, client_msg_id, created_at";

/// Unique violations are conflicts, a missing room a not-found; the rest is
/// the store being unavailable.
pub fn db_error(e: sqlx::Error) -> ChatRepoError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ChatRepoError::Conflict(d.message().to_string())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            ChatRepoError::NotFound(format!("room ({})", d.message()))
        }
        _ => ChatRepoError::Unavailable(e.to_string()),
    }
}

/// A row type whose columns decode into the chat values' field types.
pub trait ChatRow: Row
where
    for<'c> &'c str: ColumnIndex<Self>,
{
    fn field<T>(&self, name: &str) -> Result<T, ChatRepoError>
    where
        T: for<'r> Decode<'r, Self::Database> + Type<Self::Database>,
    {
        self.try_get(name).map_err(db_error)
    }
}

impl<R: Row> ChatRow for R where for<'c> &'c str: ColumnIndex<R> {}

pub fn room_of<R>(row: &R) -> Result<Room, ChatRepoError>
where
    R: ChatRow,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = row.field("kind")?;
    Ok(Room {
        id: row.field("id")?,
        kind: kind.parse()?,
        name: row.field("name")?,
        auction_id: row.field("auction_id")?,
        created_by: row.field("created_by")?,
        created_at: row.field("created_at")?,
        last_seq: row.field("last_seq")?,
    })
}

pub fn member_of<R>(row: &R) -> Result<Member, ChatRepoError>
where
    R: ChatRow,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let role: String = row.field("role")?;
    Ok(Member {
        user_id: row.field("user_id")?,
        role: role.parse()?,
        joined_at: row.field("joined_at")?,
        last_read_seq: row.field("last_read_seq")?,
    })
}

pub fn message_of<R>(row: &R) -> Result<ChatMessage, ChatRepoError>
where
    R: ChatRow,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ChatMessage {
        room_id: row.field("room_id")?,
        seq: row.field("seq")?,
        sender: row.field("sender")?,
        body: row.field("body")?,
        client_msg_id: row.field("client_msg_id")?,
        created_at: row.field("created_at")?,
    })
}
