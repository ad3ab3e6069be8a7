//! The fact outbox on SQLite (`bowchat_bus::outbox`): entries are written in
//! the batch's transaction by the repositories, read and removed by the relay.

use async_trait::async_trait;
use bowchat_bus::outbox::{OutboxEntry, OutboxError, OutboxId, OutboxStore};
use sqlx::{Row, Sqlite, Transaction};

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

fn unavailable(e: sqlx::Error) -> OutboxError {
    OutboxError::Unavailable(e.to_string())
}

#[async_trait]
impl OutboxStore for SqliteOutbox {
    async fn due(
        &self,
        source: &str,
        created_before: i64,
        max: u32,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, source, topic, created_at, records FROM fact_outbox
             WHERE source = ? AND created_at < ? ORDER BY created_at, id LIMIT ?",
        )
        .bind(source)
        .bind(created_before)
        .bind(max)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let id: OutboxId = row.get("id");
                Ok(OutboxEntry {
                    id,
                    source: row.get("source"),
                    topic: row.get("topic"),
                    created_at: row.get("created_at"),
                    records: OutboxEntry::decode_records(id, row.get("records"))?,
                })
            })
            .collect()
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
