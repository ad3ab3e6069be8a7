//! `ChatRepository` split over two stores: rooms, members, read markers and
//! each room's `last_seq` in an inner repository (PostgreSQL in a cluster),
//! message documents in MongoDB.
//!
//! The inner `last_seq` is the commit point: a message exists once the inner
//! store's `last_seq` of its room covers its seq. History pages and the
//! dedupe lookup read MongoDB only up to that seq, so documents of a commit
//! that has not (or never) reached the inner store are invisible.
//!
//! `commit(batch)` order and why it is safe:
//! 1. Check each room's stored `last_seq` continues into the batch (a stale
//!    owner is refused before it writes anything).
//! 2. Write the messages to MongoDB under a fresh attempt id. A document
//!    already at (room, seq) with the same sender, client id and body is the
//!    same message from an earlier try: it is *adopted* (its attempt set to
//!    ours by compare-and-set), not written again. A different one is a
//!    `Conflict`; so is a duplicate client id.
//! 3. Commit the batch (with its `last_seq` compare-and-set) to the inner
//!    store, without the message rows (`commit_sequences`): the bodies are
//!    in MongoDB only.
//!
//! Nothing is lost: a message is acknowledged only after step 3, and step 3
//! needs every document of the batch to be in MongoDB already. A document is
//! deleted only by the attempt that inserted it, only after that attempt
//! failed for certain (a `Conflict`/`NotFound`, never an `Unavailable` whose
//! outcome is unknown), only above the room's committed seq, and only while it
//! still owns it; another commit that relies on it has adopted it first, so the
//! delete misses it (adopt and delete are single-document compare-and-sets).
//! Nothing is duplicated: the unique (room, seq) and (room, sender, client id)
//! indexes admit one document each, and a retry after a crash between steps 2
//! and 3 finds its documents and adopts them instead of writing new ones. A
//! retried message keeps the `createdAt` of its first write.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::{
    seq_ranges, ChatBatch, ChatRepoError, ChatRepository, Member, Room, RoomSummary,
};
use bowchat_model::{Millis, PageQuery, RoomId, UserId};

use crate::history::MongoChatHistory;

/// See the module docs.
pub struct SplitChatRepository<R> {
    inner: R,
    history: MongoChatHistory,
}

impl<R: ChatRepository> SplitChatRepository<R> {
    pub fn new(inner: R, history: MongoChatHistory) -> Self {
        Self { inner, history }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    pub fn history_store(&self) -> &MongoChatHistory {
        &self.history
    }

    async fn last_seq(&self, room: RoomId) -> Result<Option<i64>, ChatRepoError> {
        Ok(self.inner.last_seqs(&[room]).await?.get(&room).copied())
    }

    /// Step 2: adopts identical stored documents, inserts the rest. Returns
    /// the seqs it inserted, per room (also when it fails part-way, so the
    /// caller can remove them).
    async fn write_messages(
        &self,
        batch: &ChatBatch,
        ranges: &[(RoomId, i64, i64)],
        attempt: &str,
        inserted: &mut HashMap<RoomId, Vec<i64>>,
    ) -> Result<(), ChatRepoError> {
        let mut present: HashSet<(RoomId, i64)> = HashSet::new();
        for (room, first, last) in ranges {
            for stored in self.history.range(*room, *first, *last).await? {
                let seq = stored.message.seq;
                let ours = batch
                    .messages
                    .iter()
                    .find(|m| m.room_id == *room && m.seq == seq)
                    .expect("a seq inside the batch's range is in the batch");
                if !same_message(&stored.message, ours) {
                    return Err(ChatRepoError::Conflict(format!(
                        "room {room}: seq {seq} is stored with another message"
                    )));
                }
                if !self
                    .history
                    .adopt(*room, seq, &stored.attempt, attempt)
                    .await?
                {
                    return Err(ChatRepoError::Conflict(format!(
                        "room {room}: seq {seq} changed while this commit took it over"
                    )));
                }
                present.insert((*room, seq));
            }
        }
        let missing: Vec<ChatMessage> = batch
            .messages
            .iter()
            .filter(|m| !present.contains(&(m.room_id, m.seq)))
            .cloned()
            .collect();
        // Recorded before the insert: an ordered insert that fails part-way has
        // written a prefix, and removing a seq that was not written is harmless.
        for m in &missing {
            inserted.entry(m.room_id).or_default().push(m.seq);
        }
        self.history.insert(&missing, attempt).await
    }

    /// Removes what this attempt inserted above each room's committed seq.
    async fn discard(&self, attempt: &str, inserted: &HashMap<RoomId, Vec<i64>>) {
        let rooms: Vec<RoomId> = inserted.keys().copied().collect();
        let committed = match self.inner.last_seqs(&rooms).await {
            Ok(seqs) => seqs,
            Err(e) => {
                // Left behind they stay invisible; a retry adopts them.
                tracing::warn!(error = %e, "cannot read last seqs; keeping a failed commit's messages");
                return;
            }
        };
        for (room, seqs) in inserted {
            let above = committed.get(room).copied().unwrap_or(0);
            let seqs: Vec<i64> = seqs.iter().copied().filter(|s| *s > above).collect();
            if let Err(e) = self.history.discard(attempt, *room, &seqs).await {
                tracing::warn!(room, error = %e, "cannot remove a failed commit's messages");
            }
        }
    }
}

/// The same message written twice: the chat role may rebuild a batch after a
/// crash, with a new timestamp but the same sender, client id and body.
fn same_message(a: &ChatMessage, b: &ChatMessage) -> bool {
    (a.room_id, a.seq, a.sender, &a.client_msg_id, &a.body)
        == (b.room_id, b.seq, b.sender, &b.client_msg_id, &b.body)
}

#[async_trait]
impl<R: ChatRepository> ChatRepository for SplitChatRepository<R> {
    async fn create_group(
        &self,
        name: &str,
        creator: UserId,
        members: &[UserId],
        now: Millis,
    ) -> Result<Room, ChatRepoError> {
        self.inner.create_group(name, creator, members, now).await
    }

    async fn open_direct(&self, a: UserId, b: UserId, now: Millis) -> Result<Room, ChatRepoError> {
        self.inner.open_direct(a, b, now).await
    }

    async fn get_room(&self, id: RoomId) -> Result<Option<Room>, ChatRepoError> {
        self.inner.get_room(id).await
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomSummary>, ChatRepoError> {
        self.inner.rooms_of(user).await
    }

    async fn members(&self, room: RoomId) -> Result<Vec<Member>, ChatRepoError> {
        self.inner.members(room).await
    }

    async fn member(&self, room: RoomId, user: UserId) -> Result<Option<Member>, ChatRepoError> {
        self.inner.member(room, user).await
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        now: Millis,
    ) -> Result<(), ChatRepoError> {
        self.inner.add_member(room, user, now).await
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<(), ChatRepoError> {
        self.inner.remove_member(room, user).await
    }

    async fn history(
        &self,
        room: RoomId,
        page: PageQuery,
        max: u32,
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        match self.last_seq(room).await? {
            Some(last) => self.history.page(room, page, max, last).await,
            None => Ok(Vec::new()),
        }
    }

    async fn find_messages(
        &self,
        room: RoomId,
        keys: &[(UserId, String)],
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self.last_seq(room).await? {
            Some(last) => self.history.find(room, keys, last).await,
            None => Ok(Vec::new()),
        }
    }

    async fn last_seqs(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, i64>, ChatRepoError> {
        self.inner.last_seqs(rooms).await
    }

    /// Reports carry a copy of the message, so they live in the inner store.
    async fn report_message(
        &self,
        report: &bowchat_chat::ports::NewReport,
    ) -> Result<bowchat_chat::ports::ReportOutcome, ChatRepoError> {
        self.inner.report_message(report).await
    }

    async fn reports(&self, limit: u32) -> Result<Vec<bowchat_chat::ports::Report>, ChatRepoError> {
        self.inner.reports(limit).await
    }

    /// Bodies to MongoDB, then the rest (and the sequence advance, the
    /// commit point) to the inner store, which keeps no copy of the bodies.
    async fn commit(&self, batch: &ChatBatch) -> Result<(), ChatRepoError> {
        let ranges = seq_ranges(&batch.messages)?;
        if ranges.is_empty() {
            return self.inner.commit_sequences(batch).await;
        }
        let rooms: Vec<RoomId> = ranges.iter().map(|(room, _, _)| *room).collect();
        let stored = self.inner.last_seqs(&rooms).await?;
        for (room, first, _) in &ranges {
            match stored.get(room) {
                None => return Err(ChatRepoError::NotFound(format!("room {room}"))),
                Some(last) if *last != first - 1 => {
                    return Err(ChatRepoError::Conflict(format!(
                        "room {room}: batch starts at seq {first} but the stored last seq is {last}"
                    )))
                }
                Some(_) => {}
            }
        }
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let mut inserted = HashMap::new();
        if let Err(e) = self
            .write_messages(batch, &ranges, &attempt, &mut inserted)
            .await
        {
            if !matches!(e, ChatRepoError::Unavailable(_)) {
                self.discard(&attempt, &inserted).await;
            }
            return Err(e);
        }
        match self.inner.commit_sequences(batch).await {
            Ok(()) => Ok(()),
            Err(e @ (ChatRepoError::Conflict(_) | ChatRepoError::NotFound(_))) => {
                self.discard(&attempt, &inserted).await;
                Err(e)
            }
            // Unknown whether the inner commit happened: keep the documents
            // (invisible unless it did); a retry adopts them.
            Err(e) => Err(e),
        }
    }
}
