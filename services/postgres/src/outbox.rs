//! The fact outbox on PostgreSQL (`bowchat_bus::outbox`): entries are written
//! in the batch's transaction by the repositories, read and removed by the
//! relay. Rows map to entries as on SQLite (`bowchat_store::outbox::entry_of`).

use async_trait::async_trait;
use bowchat_bus::outbox::{OutboxEntry, OutboxError, OutboxId, OutboxStore};
use bowchat_store::outbox::{entry_of, unavailable, OUTBOX_COLUMNS};
use sqlx::{Postgres, Transaction};

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

#[async_trait]
impl OutboxStore for PgOutbox {
    async fn due(
        &self,
        source: &str,
        created_before: i64,
        max: u32,
    ) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM fact_outbox
             WHERE source = $1 AND created_at < $2 ORDER BY created_at, id LIMIT $3"
        ))
        .bind(source)
        .bind(created_before)
        .bind(i64::from(max))
        .fetch_all(&self.store.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(entry_of).collect()
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
