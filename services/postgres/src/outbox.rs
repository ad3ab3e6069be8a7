//! The fact outbox on PostgreSQL (`bowchat_bus::outbox`): entries are written
//! in the batch's transaction by the repositories, read and removed by the relay.

use async_trait::async_trait;
use bowchat_bus::outbox::{OutboxEntry, OutboxError, OutboxId, OutboxStore};
use sqlx::{Postgres, Row, Transaction};

use crate::PgStore;

/// Writes `entry` in the batch's transaction.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    entry: &OutboxEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fact_outbox (id, source, topic, created_at, records) VALUES ($1, $2, $3, $4, $5)",
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
pub struct PgOutbox {
    store: PgStore,
}

impl PgOutbox {
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }
}

fn unavailable(e: sqlx::Error) -> OutboxError {
    OutboxError::Unavailable(e.to_string())
}

#[async_trait]
impl OutboxStore for PgOutbox {
    async fn due(
        &self,
        source: &str,
        created_before: i64,
        max: u32,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, source, topic, created_at, records FROM fact_outbox
             WHERE source = $1 AND created_at < $2 ORDER BY created_at, id LIMIT $3",
        )
        .bind(source)
        .bind(created_before)
        .bind(i64::from(max))
        .fetch_all(&self.store.pool)
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
        sqlx::query("DELETE FROM fact_outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.store.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
