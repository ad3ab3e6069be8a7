//! PostgreSQL adapter for `bowchat_chat::ports::ChatRepository`.
//!
//! The chat role is the only writer of a room's messages, and `commit`
//! advances `rooms.last_seq` with a compare-and-set from the value the batch
//! was built on, so a stale owner after a rebalance gets a `Conflict` instead
//! of creating a gap or a fork. Room creation races between nodes are settled
//! by unique constraints (`direct_key`) with `ON CONFLICT`.

use std::collections::HashMap;

use async_trait::async_trait;
use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::{
    direct_key, seq_ranges, ChatBatch, ChatRepoError, ChatRepository, Member, Room, RoomSummary,
};
use bowchat_model::{Millis, PageQuery, RoomId, UserId};
use sqlx::{PgExecutor, Postgres, QueryBuilder, Row};

use crate::PgStore;
use bowchat_store::chat_rows::{
    db_error, member_of, message_of, room_of, MESSAGE_COLUMNS, ROOM_COLUMNS,
};

/// Messages per multi-row INSERT (6 parameters each; PostgreSQL takes 65535).
const INSERT_CHUNK: usize = 500;

#[derive(Clone)]
pub struct PgChatRepository {
    store: PgStore,
}

impl PgChatRepository {
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }
}

/// Adds a member; a no-op when already one. Also used by the auction adapter.
pub(crate) async fn insert_member<'c>(
    executor: impl PgExecutor<'c>,
    room: RoomId,
    user: UserId,
    role: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room_id, user_id) DO NOTHING",
    )
    .bind(room)
    .bind(user)
    .bind(role)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

#[async_trait]
impl ChatRepository for PgChatRepository {
    async fn create_group(
        &self,
        name: &str,
        creator: UserId,
        members: &[UserId],
        now: Millis,
    ) -> Result<Room, ChatRepoError> {
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(&format!(
            "INSERT INTO rooms (kind, name, created_by, created_at) VALUES ('group', $1, $2, $3)
             RETURNING {ROOM_COLUMNS}"
        ))
        .bind(name)
        .bind(creator)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let room = room_of(&row)?;
        insert_member(&mut *tx, room.id, creator, "owner", now)
            .await
            .map_err(db_error)?;
        for user in members.iter().filter(|u| **u != creator) {
            insert_member(&mut *tx, room.id, *user, "member", now)
                .await
                .map_err(db_error)?;
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
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        // Of two nodes opening the same pair at once, one inserts; the other
        // waits on the unique index, inserts nothing and reads the winner's room.
        let created = sqlx::query(&format!(
            "INSERT INTO rooms (kind, name, direct_key, created_by, created_at)
             VALUES ('direct', '', $1, $2, $3)
             ON CONFLICT (direct_key) DO NOTHING RETURNING {ROOM_COLUMNS}"
        ))
        .bind(&key)
        .bind(a)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = created else {
            tx.rollback().await.map_err(db_error)?;
            let row = sqlx::query(&format!(
                "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = $1"
            ))
            .bind(&key)
            .fetch_one(&self.store.pool)
            .await
            .map_err(db_error)?;
            return room_of(&row);
        };
        let room = room_of(&row)?;
        for user in [a, b] {
            insert_member(&mut *tx, room.id, user, "member", now)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(room)
    }

    async fn get_room(&self, id: RoomId) -> Result<Option<Room>, ChatRepoError> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.store.pool)
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
             WHERE m.user_id = $1
             ORDER BY r.id",
        )
        .bind(user)
        .fetch_all(&self.store.pool)
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
             WHERE room_id = $1 ORDER BY joined_at, user_id",
        )
        .bind(room)
        .fetch_all(&self.store.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(member_of).collect()
    }

    async fn member(&self, room: RoomId, user: UserId) -> Result<Option<Member>, ChatRepoError> {
        let row = sqlx::query(
            "SELECT user_id, role, joined_at, last_read_seq FROM room_members
             WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room)
        .bind(user)
        .fetch_optional(&self.store.pool)
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
        // An unknown room fails the foreign key, which `db_error` maps to NotFound.
        insert_member(&self.store.pool, room, user, "member", now)
            .await
            .map_err(db_error)
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<(), ChatRepoError> {
        sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room)
            .bind(user)
            .execute(&self.store.pool)
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
             WHERE room_id = $1 AND seq > $2 AND seq < $3
             ORDER BY seq {} LIMIT $4",
            if ascending { "ASC" } else { "DESC" }
        );
        let rows = sqlx::query(&sql)
            .bind(room)
            .bind(page.after.unwrap_or(i64::MIN))
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.store.pool)
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let senders: Vec<i64> = keys.iter().map(|(s, _)| *s).collect();
        let ids: Vec<&str> = keys.iter().map(|(_, c)| c.as_str()).collect();
        // Two parallel arrays unnested into key rows: one probe of
        // `messages_dedupe` per key, however many keys.
        let rows = sqlx::query(
            "SELECT DISTINCT m.room_id, m.seq, m.sender, m.body, m.client_msg_id, m.created_at
             FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS k(sender, client_msg_id)
             JOIN messages m
               ON m.room_id = $1 AND m.sender = k.sender AND m.client_msg_id = k.client_msg_id
             ORDER BY m.seq",
        )
        .bind(room)
        .bind(&senders)
        .bind(&ids)
        .fetch_all(&self.store.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(message_of).collect()
    }

    async fn last_seqs(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, i64>, ChatRepoError> {
        let rows = sqlx::query("SELECT id, last_seq FROM rooms WHERE id = ANY($1)")
            .bind(rooms)
            .fetch_all(&self.store.pool)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id").map_err(db_error)?,
                    row.try_get("last_seq").map_err(db_error)?,
                ))
            })
            .collect()
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
        crate::moderation_repo::report_message(&self.store, report).await
    }

    async fn reports(&self, limit: u32) -> Result<Vec<bowchat_chat::ports::Report>, ChatRepoError> {
        crate::moderation_repo::reports(&self.store, limit).await
    }
}

impl PgChatRepository {
    /// `commit`, storing the messages' rows only when `with_messages`.
    async fn store_batch(
        &self,
        batch: &ChatBatch,
        with_messages: bool,
    ) -> Result<(), ChatRepoError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut ranges = seq_ranges(&batch.messages)?;
        // Rooms locked in id order, so two batches touching the same rooms
        // cannot deadlock.
        ranges.sort_by_key(|(room, _, _)| *room);
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        // Advance each room's sequence only from the value the batch was built
        // on; anything else means another writer got there first.
        for (room, first, last) in ranges {
            let moved =
                sqlx::query("UPDATE rooms SET last_seq = $1 WHERE id = $2 AND last_seq = $3")
                    .bind(last)
                    .bind(room)
                    .bind(first - 1)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            if moved.rows_affected() == 0 {
                let stored: Option<i64> =
                    sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = $1")
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
                QueryBuilder::<Postgres>::new(format!("INSERT INTO messages ({MESSAGE_COLUMNS}) "));
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
            insert_member(&mut *tx, *room, *user, "member", *at)
                .await
                .map_err(db_error)?;
        }
        for (room, user, seq) in &batch.reads {
            sqlx::query(
                "UPDATE room_members
                 SET last_read_seq = GREATEST(last_read_seq, LEAST($1, (SELECT last_seq FROM rooms WHERE id = $2)))
                 WHERE room_id = $2 AND user_id = $3",
            )
            .bind(*seq)
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
