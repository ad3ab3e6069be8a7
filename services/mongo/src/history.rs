//! The `messages` collection: one document per chat message.
//!
//! Indexes (created by [`MongoChatHistory::ensure_indexes`], idempotent):
//! - `room_seq`, unique on `(room, seq)`: one message per sequence number, and
//!   the index every history page and range lookup walks (forwards for
//!   `after`, backwards for `before`/latest).
//! - `room_sender_client`, unique on `(room, sender, clientMsgId)`, partial
//!   (only documents that have a `clientMsgId`): the chat role's dedupe
//!   lookup, and a second guard against storing one client message twice.
//!
//! Every document also records the `attempt` (one id per commit call) that
//! wrote or last adopted it, so a failed commit removes exactly its own
//! documents and never one another commit relies on.

use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::ChatRepoError;
use bowchat_model::{PageQuery, RoomId, UserId};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};

use crate::{MongoConfig, MongoError};

/// Name of the collection.
pub const MESSAGES: &str = "messages";
/// Server error code of a unique index violation.
const DUPLICATE_KEY: i32 = 11000;
/// Server error code of an unsupported feature (FerretDB has no partial indexes).
const NOT_IMPLEMENTED: i32 = 238;
/// (sender, client id) pairs per dedupe query; keeps each `$or` small.
const LOOKUP_CHUNK: usize = 250;

/// A stored message with the commit attempt that owns its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub message: ChatMessage,
    pub attempt: String,
}

/// Chat message bodies in MongoDB.
#[derive(Clone)]
pub struct MongoChatHistory {
    db: Database,
    messages: Collection<Document>,
}

/// Maps a driver error: a unique index violation is the port's `Conflict`,
/// anything else (network, server) `Unavailable`.
pub(crate) fn repo_error(e: mongodb::error::Error) -> ChatRepoError {
    if is_duplicate_key(&e) {
        ChatRepoError::Conflict(format!("message already stored: {e}"))
    } else {
        ChatRepoError::Unavailable(e.to_string())
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(many) => many
            .write_errors
            .iter()
            .flatten()
            .any(|w| w.code == DUPLICATE_KEY),
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn to_document(m: &ChatMessage, attempt: &str) -> Document {
    doc! {
        "room": m.room_id,
        "seq": m.seq,
        "sender": m.sender,
        "body": m.body.as_str(),
        "clientMsgId": m.client_msg_id.as_str(),
        "createdAt": m.created_at,
        "attempt": attempt,
    }
}

fn int(d: &Document, key: &str) -> Result<i64, ChatRepoError> {
    match d.get(key) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        other => Err(ChatRepoError::Corrupt(format!(
            "message field {key}: {other:?}"
        ))),
    }
}

fn text(d: &Document, key: &str) -> Result<String, ChatRepoError> {
    d.get_str(key)
        .map(str::to_owned)
        .map_err(|e| ChatRepoError::Corrupt(format!("message field {key}: {e}")))
}

fn from_document(d: &Document) -> Result<StoredMessage, ChatRepoError> {
    Ok(StoredMessage {
        message: ChatMessage {
            room_id: int(d, "room")?,
            seq: int(d, "seq")?,
            sender: int(d, "sender")?,
            body: text(d, "body")?,
            client_msg_id: text(d, "clientMsgId")?,
            created_at: int(d, "createdAt")?,
        },
        attempt: text(d, "attempt")?,
    })
}

impl MongoChatHistory {
    /// Uses the `messages` collection of `db`; call [`Self::ensure_indexes`] once.
    pub fn new(db: &Database) -> Self {
        Self {
            db: db.clone(),
            messages: db.collection(MESSAGES),
        }
    }

    /// Whether the server answers a `ping` (for readiness checks).
    pub async fn ping(&self) -> bool {
        self.db.run_command(doc! { "ping": 1 }).await.is_ok()
    }

    /// Connects, checks the server answers and creates the indexes.
    pub async fn connect(config: &MongoConfig) -> Result<Self, MongoError> {
        let client = Client::with_uri_str(&config.url).await?;
        let db = client.database(&config.database);
        db.run_command(doc! { "ping": 1 }).await?;
        let history = Self::new(&db);
        history.ensure_indexes().await?;
        Ok(history)
    }

    /// Creates the indexes if missing (see the module docs).
    pub async fn ensure_indexes(&self) -> Result<(), MongoError> {
        let unique = |name: &str| IndexOptions::builder().unique(true).name(name.to_string());
        self.messages
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "room": 1, "seq": 1 })
                    .options(unique("room_seq").build())
                    .build(),
            )
            .await?;
        let dedupe_keys = doc! { "room": 1, "sender": 1, "clientMsgId": 1 };
        let partial = IndexModel::builder()
            .keys(dedupe_keys.clone())
            .options(
                unique("room_sender_client")
                    .partial_filter_expression(doc! { "clientMsgId": { "$exists": true } })
                    .build(),
            )
            .build();
        match self.messages.create_index(partial).await {
            Ok(_) => {}
            // FerretDB (the test server) lacks partial indexes. Every message
            // the chat role writes has a client id, so the full index holds
            // the same entries there.
            Err(e) if command_code(&e) == Some(NOT_IMPLEMENTED) => {
                tracing::warn!(error = %e, "partial indexes unsupported; using a full unique index");
                self.messages
                    .create_index(
                        IndexModel::builder()
                            .keys(dedupe_keys)
                            .options(unique("room_sender_client").build())
                            .build(),
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Stored documents of `room` with `first <= seq <= last`, by seq, committed or not.
    pub async fn range(
        &self,
        room: RoomId,
        first: i64,
        last: i64,
    ) -> Result<Vec<StoredMessage>, ChatRepoError> {
        let docs: Vec<Document> = self
            .messages
            .find(doc! { "room": room, "seq": { "$gte": first, "$lte": last } })
            .sort(doc! { "room": 1, "seq": 1 })
            .await
            .map_err(repo_error)?
            .try_collect()
            .await
            .map_err(repo_error)?;
        docs.iter().map(from_document).collect()
    }

    /// Inserts `messages` in order under `attempt`; stops at the first
    /// failure. A (room, seq) or (room, sender, client id) already stored is a
    /// `Conflict`.
    pub async fn insert(
        &self,
        messages: &[ChatMessage],
        attempt: &str,
    ) -> Result<(), ChatRepoError> {
        if messages.is_empty() {
            return Ok(());
        }
        let docs: Vec<Document> = messages.iter().map(|m| to_document(m, attempt)).collect();
        self.messages
            .insert_many(docs)
            .ordered(true)
            .await
            .map_err(repo_error)?;
        Ok(())
    }

    /// Moves the document at (room, seq) from attempt `from` to `to`; false
    /// when it is no longer owned by `from` (deleted or adopted meanwhile).
    pub async fn adopt(
        &self,
        room: RoomId,
        seq: i64,
        from: &str,
        to: &str,
    ) -> Result<bool, ChatRepoError> {
        let updated = self
            .messages
            .update_one(
                doc! { "room": room, "seq": seq, "attempt": from },
                doc! { "$set": { "attempt": to } },
            )
            .await
            .map_err(repo_error)?;
        Ok(updated.matched_count == 1)
    }

    /// Deletes the documents `attempt` still owns in `room` at `seqs`: the
    /// ones a failed commit inserted.
    pub async fn discard(
        &self,
        attempt: &str,
        room: RoomId,
        seqs: &[i64],
    ) -> Result<u64, ChatRepoError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let deleted = self
            .messages
            .delete_many(doc! { "room": room, "seq": { "$in": seqs }, "attempt": attempt })
            .await
            .map_err(repo_error)?;
        Ok(deleted.deleted_count)
    }

    /// A history page (see `ChatRepository::history`) among the messages up
    /// to `last_seq`, the room's committed sequence.
    pub async fn page(
        &self,
        room: RoomId,
        page: PageQuery,
        max: u32,
        last_seq: i64,
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        let limit = i64::from(page.limit_or(max, max));
        let after = page.after.unwrap_or(i64::MIN);
        let before = page
            .before
            .unwrap_or(i64::MAX)
            .min(last_seq.saturating_add(1));
        if before <= after.saturating_add(1) {
            return Ok(Vec::new());
        }
        // With `after` the page starts right after it; otherwise it ends just
        // before `before`, so the index is walked backwards and the page turned around.
        let ascending = page.after.is_some();
        let direction = if ascending { 1 } else { -1 };
        let docs: Vec<Document> = self
            .messages
            .find(doc! { "room": room, "seq": { "$gt": after, "$lt": before } })
            .sort(doc! { "room": direction, "seq": direction })
            .limit(limit)
            .await
            .map_err(repo_error)?
            .try_collect()
            .await
            .map_err(repo_error)?;
        let mut messages = docs
            .iter()
            .map(|d| from_document(d).map(|s| s.message))
            .collect::<Result<Vec<_>, _>>()?;
        if !ascending {
            messages.reverse();
        }
        Ok(messages)
    }

    /// Messages of `room` up to `last_seq` among `keys` (sender, client id),
    /// each once, by seq.
    pub async fn find(
        &self,
        room: RoomId,
        keys: &[(UserId, String)],
        last_seq: i64,
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let any: Vec<Document> = chunk
                .iter()
                .map(|(sender, client)| doc! { "sender": *sender, "clientMsgId": client.as_str() })
                .collect();
            let docs: Vec<Document> = self
                .messages
                .find(doc! { "room": room, "seq": { "$lte": last_seq }, "$or": any })
                .await
                .map_err(repo_error)?
                .try_collect()
                .await
                .map_err(repo_error)?;
            for d in &docs {
                found.push(from_document(d)?.message);
            }
        }
        // A key asked twice (in two chunks) matches twice.
        found.sort_by_key(|m| m.seq);
        found.dedup_by_key(|m| m.seq);
        Ok(found)
    }
}
