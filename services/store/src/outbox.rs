//! The fact outbox on SQLite (`bowchat_bus::outbox`): entries are written in
//! the batch's transaction by the repositories, read and removed by the relay.
//! The row mapping is shared with PostgreSQL (`entry_of`), whose table has the
//! same columns.

use async_trait::async_trait;
use bowchat_bus::outbox::{OutboxEntry, OutboxError, OutboxId, OutboxStore};
use sqlx::{ColumnIndex, Decode, Row, Sqlite, Transaction, Type};

use crate::Db;

/// Writes `entry` in the batch's transaction.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Sqlite>,
    entry: &OutboxEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fact_outbox (id, source, topic, created_at, records) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(entry.id)
    .bind(&entry.source)
    .bind(&entry.topic)
    .bind(entry.created_at)
    .bind(entry.encode_records())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The relay's view of the table.
#[derive(Clone)]
pub struct SqliteOutbox {
    db: Db,
}

impl SqliteOutbox {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

pub fn unavailable(e: sqlx::Error) -> OutboxError {
    OutboxError::Unavailable(e.to_string())
}

/// The columns `entry_of` reads, in the table of either store.
pub const OUTBOX_COLUMNS: &str = "id, source, topic, created_at, records";

/// One `fact_outbox` row of either store as an entry.
pub fn entry_of<R>(row: &R) -> Result<OutboxEntry, OutboxError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let id: OutboxId = row.try_get("id").map_err(unavailable)?;
    let records: String = row.try_get("records").map_err(unavailable)?;
    Ok(OutboxEntry {
        id,
        source: row.try_get("source").map_err(unavailable)?,
        topic: row.try_get("topic").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        records: OutboxEntry::decode_records(id, &records)?,
    })
}

#[async_trait]
impl OutboxStore for SqliteOutbox {
    async fn due(
        &self,
        source: &str,
        created_before: i64,
        max: u32,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM fact_outbox
             WHERE source = ? AND created_at < ? ORDER BY created_at, id LIMIT ?"
        ))
        .bind(source)
        .bind(created_before)
        .bind(max)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter().map(entry_of).collect()
    }

    async fn remove(&self, ids: &[OutboxId]) -> Result<(), OutboxError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM fact_outbox WHERE id IN (SELECT value FROM json_each(?))")
            .bind(serde_json::to_string(ids).expect("ids encode"))
            .execute(&self.db.writer)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
