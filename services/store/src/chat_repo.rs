//! SQLite adapter for `bowchat_chat::ports::ChatRepository`.
//!
//! Writes go through the single writer connection, each in one transaction;
//! reads use the reader pool (WAL readers see every committed batch). The chat
//! role is the only writer of messages, and `commit` refuses a batch whose
//! sequence does not continue the stored `rooms.last_seq`, so a stale owner
//! after a rebalance can never create a gap or a fork.

use std::collections::HashMap;

use async_trait::async_trait;
use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::{
    direct_key, seq_ranges, ChatBatch, ChatRepoError, ChatRepository, Member, Room, RoomKind,
    RoomSummary,
};
use bowchat_model::{Millis, PageQuery, RoomId, UserId};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use crate::chat_rows::{db_error, member_of, message_of, room_of, MESSAGE_COLUMNS, ROOM_COLUMNS};
use crate::Db;

/// Most (sender, client id) pairs or room ids per lookup query; keeps every
/// statement far below SQLite's bound-parameter limit.
const LOOKUP_CHUNK: usize = 250;
/// Messages per multi-row INSERT (6 parameters each).
const INSERT_CHUNK: usize = 100;

#[derive(Clone)]
pub struct SqliteChatRepository {
    db: Db,
}

impl SqliteChatRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

async fn insert_room(
    tx: &mut Transaction<'_, Sqlite>,
    kind: RoomKind,
    name: &str,
    direct: Option<&str>,
    creator: UserId,
    now: Millis,
) -> Result<Room, ChatRepoError> {
    let row = sqlx::query(&format!(
        "INSERT INTO rooms (kind, name, direct_key, created_by, created_at) VALUES (?, ?, ?, ?, ?)
         RETURNING {ROOM_COLUMNS}"
    ))
    .bind(kind.as_str())
    .bind(name)
    .bind(direct)
    .bind(creator)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    room_of(&row)
}

async fn insert_member(
    tx: &mut Transaction<'_, Sqlite>,
    room: RoomId,
    user: UserId,
    role: &str,
    now: Millis,
) -> Result<(), ChatRepoError> {
    sqlx::query(
        "INSERT OR IGNORE INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
    )
    .bind(room)
    .bind(user)
    .bind(role)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[async_trait]
impl ChatRepository for SqliteChatRepository {
    async fn create_group(
        &self,
        name: &str,
        creator: UserId,
        members: &[UserId],
        now: Millis,
    ) -> Result<Room, ChatRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(db_error)?;
        let room = insert_room(&mut tx, RoomKind::Group, name, None, creator, now).await?;
        insert_member(&mut tx, room.id, creator, "owner", now).await?;
        for user in members.iter().filter(|u| **u != creator) {
            insert_member(&mut tx, room.id, *user, "member", now).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(room)
    }

    async fn open_direct(&self, a: UserId, b: UserId, now: Millis) -> Result<Room, ChatRepoError> {
        if a == b {
            return Err(ChatRepoError::Conflict(
                "a direct room needs two different users".into(),
            ));
        }
        let key = direct_key(a, b);
        // Look up and create in one write transaction: the single writer
        // connection serialises concurrent opens, so a pair never gets two rooms.
        let mut tx = self.db.writer.begin().await.map_err(db_error)?;
        let existing = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = ?"
        ))
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = existing {
            return room_of(&row);
        }
        let room = insert_room(&mut tx, RoomKind::Direct, "", Some(&key), a, now).await?;
        insert_member(&mut tx, room.id, a, "member", now).await?;
        insert_member(&mut tx, room.id, b, "member", now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(room)
    }

    async fn get_room(&self, id: RoomId) -> Result<Option<Room>, ChatRepoError> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.db.reader)
            .await
            .map_err(db_error)?;
        row.as_ref().map(room_of).transpose()
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomSummary>, ChatRepoError> {
        let rows = sqlx::query(
            "SELECT r.id, r.kind, r.name, r.auction_id, r.created_by, r.created_at, r.last_seq,
                    m.last_read_seq,
                    (SELECT COUNT(*) FROM room_members c WHERE c.room_id = r.id) AS member_count
             FROM room_members m JOIN rooms r ON r.id = m.room_id
             WHERE m.user_id = ?
             ORDER BY r.id",
        )
        .bind(user)
        .fetch_all(&self.db.reader)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let room = room_of(row)?;
                let last_read_seq: i64 = row.try_get("last_read_seq").map_err(db_error)?;
                Ok(RoomSummary {
                    unread: (room.last_seq - last_read_seq).max(0),
                    last_read_seq,
                    member_count: row.try_get("member_count").map_err(db_error)?,
                    room,
                })
            })
            .collect()
    }

    async fn members(&self, room: RoomId) -> Result<Vec<Member>, ChatRepoError> {
        let rows = sqlx::query(
            "SELECT user_id, role, joined_at, last_read_seq FROM room_members
             WHERE room_id = ? ORDER BY joined_at, user_id",
        )
        .bind(room)
        .fetch_all(&self.db.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(member_of).collect()
    }

    async fn member(&self, room: RoomId, user: UserId) -> Result<Option<Member>, ChatRepoError> {
        let row = sqlx::query(
            "SELECT user_id, role, joined_at, last_read_seq FROM room_members
             WHERE room_id = ? AND user_id = ?",
        )
        .bind(room)
        .bind(user)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(db_error)?;
        row.as_ref().map(member_of).transpose()
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        now: Millis,
    ) -> Result<(), ChatRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(db_error)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM rooms WHERE id = ?")
            .bind(room)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            return Err(ChatRepoError::NotFound(format!("room {room}")));
        }
        insert_member(&mut tx, room, user, "member", now).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<(), ChatRepoError> {
        sqlx::query("DELETE FROM room_members WHERE room_id = ? AND user_id = ?")
            .bind(room)
            .bind(user)
            .execute(&self.db.writer)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn history(
        &self,
        room: RoomId,
        page: PageQuery,
        max: u32,
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        let limit = i64::from(page.limit_or(max, max));
        // With `after`, the page starts right after it (reconnect replay);
        // otherwise it ends just before `before` (or at the newest message), so
        // it is read newest first and turned around.
        let ascending = page.after.is_some();
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE room_id = ? AND seq > ? AND seq < ?
             ORDER BY seq {} LIMIT ?",
            if ascending { "ASC" } else { "DESC" }
        );
        let rows = sqlx::query(&sql)
            .bind(room)
            .bind(page.after.unwrap_or(i64::MIN))
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.db.reader)
            .await
            .map_err(db_error)?;
        let mut messages = rows.iter().map(message_of).collect::<Result<Vec<_>, _>>()?;
        if !ascending {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn find_messages(
        &self,
        room: RoomId,
        keys: &[(UserId, String)],
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            // A joined CTE of keys makes SQLite probe `messages_dedupe` once per
            // key; `(sender, client_msg_id) IN (VALUES ...)` would scan the room.
            let pairs = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "WITH k(sender, client_msg_id) AS (VALUES {pairs})
                 SELECT m.room_id, m.seq, m.sender, m.body, m.client_msg_id, m.created_at
                 FROM k JOIN messages m
                   ON m.room_id = ? AND m.sender = k.sender AND m.client_msg_id = k.client_msg_id"
            );
            let mut query = sqlx::query(&sql);
            for (sender, client_msg_id) in chunk {
                query = query.bind(*sender).bind(client_msg_id.as_str());
            }
            let rows = query
                .bind(room)
                .fetch_all(&self.db.reader)
                .await
                .map_err(db_error)?;
            for row in &rows {
                found.push(message_of(row)?);
            }
        }
        // A key asked twice matches twice; answer each message once, in seq order.
        found.sort_by_key(|m| m.seq);
        found.dedup_by_key(|m| m.seq);
        Ok(found)
    }

    async fn last_seqs(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, i64>, ChatRepoError> {
        let mut seqs = HashMap::with_capacity(rooms.len());
        for chunk in rooms.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT id, last_seq FROM rooms WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for room in chunk {
                query = query.bind(*room);
            }
            for row in query.fetch_all(&self.db.reader).await.map_err(db_error)? {
                seqs.insert(
                    row.try_get("id").map_err(db_error)?,
                    row.try_get("last_seq").map_err(db_error)?,
                );
            }
        }
        Ok(seqs)
    }

    async fn commit(&self, batch: &ChatBatch) -> Result<(), ChatRepoError> {
        self.store_batch(batch, true).await
    }

    async fn commit_sequences(&self, batch: &ChatBatch) -> Result<(), ChatRepoError> {
        self.store_batch(batch, false).await
    }
    async fn report_message(
        &self,
        report: &bowchat_chat::ports::NewReport,
    ) -> Result<bowchat_chat::ports::ReportOutcome, ChatRepoError> {
        crate::moderation_repo::report_message(&self.db, report).await
    }

    async fn reports(&self, limit: u32) -> Result<Vec<bowchat_chat::ports::Report>, ChatRepoError> {
        crate::moderation_repo::reports(&self.db, limit).await
    }
}

impl SqliteChatRepository {
    /// `commit`, storing the messages' rows only when `with_messages`.
    async fn store_batch(
        &self,
        batch: &ChatBatch,
        with_messages: bool,
    ) -> Result<(), ChatRepoError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ranges = seq_ranges(&batch.messages)?;
        let mut tx = self.db.writer.begin().await.map_err(db_error)?;
        // Advance each room's sequence only from the value the batch was built
        // on; anything else means another writer got there first.
        for (room, first, last) in ranges {
            let moved = sqlx::query("UPDATE rooms SET last_seq = ? WHERE id = ? AND last_seq = ?")
                .bind(last)
                .bind(room)
                .bind(first - 1)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if moved.rows_affected() == 0 {
                let stored: Option<i64> =
                    sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = ?")
                        .bind(room)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error)?;
                return Err(match stored {
                    None => ChatRepoError::NotFound(format!("room {room}")),
                    Some(stored) => ChatRepoError::Conflict(format!(
                        "room {room}: batch starts at seq {first} but the stored last seq is {stored}"
                    )),
                });
            }
        }
        let rows: &[ChatMessage] = if with_messages { &batch.messages } else { &[] };
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut insert =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO messages ({MESSAGE_COLUMNS}) "));
            insert.push_values(chunk, |mut row, m| {
                row.push_bind(m.room_id)
                    .push_bind(m.seq)
                    .push_bind(m.sender)
                    .push_bind(m.body.as_str())
                    .push_bind(m.client_msg_id.as_str())
                    .push_bind(m.created_at);
            });
            insert.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        // Joins before reads: a user who joins and reads in one batch gets a marker.
        for (room, user, at) in &batch.joins {
            insert_member(&mut tx, *room, *user, "member", *at).await?;
        }
        for (room, user, seq) in &batch.reads {
            sqlx::query(
                "UPDATE room_members
                 SET last_read_seq = MAX(last_read_seq, MIN(?, (SELECT last_seq FROM rooms WHERE id = ?)))
                 WHERE room_id = ? AND user_id = ?",
            )
            .bind(*seq)
            .bind(*room)
            .bind(*room)
            .bind(*user)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        if let Some(entry) = &batch.outbox {
            crate::outbox::insert(&mut tx, entry)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}
