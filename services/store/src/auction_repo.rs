//! SQLite adapter for `bowchat_auction::ports::AuctionRepository`.
//!
//! The engine state is stored as JSON next to the columns we query by (phase,
//! seller); the role is the single writer of an auction, so no row versioning.

use async_trait::async_trait;
use bowchat_auction::engine::{AuctionState, Phase, PriceStep};
use bowchat_auction::ports::{
    AuctionBatch, AuctionFilter, AuctionRecord, AuctionRepository, NewAuction, RepoError,
    ResultKey, StoredResult, Watch,
};
use bowchat_model::{AuctionId, Millis, PageQuery, RoomId, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use crate::Db;

mod watchlist;

#[derive(Clone)]
pub struct SqliteAuctionRepository {
    db: Db,
}

impl SqliteAuctionRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

pub(crate) fn unavailable(e: sqlx::Error) -> RepoError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            RepoError::Conflict(d.message().to_string())
        }
        _ => RepoError::Unavailable(e.to_string()),
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Scheduled => "scheduled",
        Phase::Open => "open",
        Phase::Closed => "closed",
        Phase::Cancelled => "cancelled",
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, RepoError> {
    serde_json::to_string(value).map_err(|e| RepoError::Corrupt(e.to_string()))
}

const AUCTION_COLUMNS: &str =
    "id, title, description, state, room_id, deal_room_id, created_at, version, bid_partitions";

fn record_of(row: &SqliteRow) -> Result<AuctionRecord, RepoError> {
    let state: String = row.try_get("state").map_err(unavailable)?;
    let id: i64 = row.try_get("id").map_err(unavailable)?;
    let state: AuctionState = serde_json::from_str(&state)
        .map_err(|e| RepoError::Corrupt(format!("auction {id}: {e}")))?;
    Ok(AuctionRecord {
        id,
        title: row.try_get("title").map_err(unavailable)?,
        description: row.try_get("description").map_err(unavailable)?,
        state,
        room_id: row.try_get("room_id").map_err(unavailable)?,
        deal_room_id: row.try_get("deal_room_id").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        version: row.try_get("version").map_err(unavailable)?,
        bid_partitions: row.try_get("bid_partitions").map_err(unavailable)?,
    })
}

fn step_of(row: &SqliteRow) -> Result<PriceStep, RepoError> {
    Ok(PriceStep {
        seq: row.try_get("seq").map_err(unavailable)?,
        bidder: row.try_get("bidder").map_err(unavailable)?,
        amount: row.try_get("amount").map_err(unavailable)?,
        proxy: row.try_get::<i64, _>("proxy").map_err(unavailable)? != 0,
        at: row.try_get("at").map_err(unavailable)?,
    })
}

async fn fetch_auction(
    tx: &mut Transaction<'_, Sqlite>,
    id: AuctionId,
) -> Result<Option<AuctionRecord>, RepoError> {
    let row = sqlx::query(&format!(
        "SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(unavailable)?;
    row.as_ref().map(record_of).transpose()
}

#[async_trait]
impl AuctionRepository for SqliteAuctionRepository {
    async fn create(&self, new: NewAuction, now: Millis) -> Result<AuctionRecord, RepoError> {
        let mut tx = self.db.writer.begin().await.map_err(unavailable)?;
        if let Some(external) = &new.external_id {
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT id FROM auctions WHERE seller = ? AND external_id = ?")
                    .bind(new.terms.seller)
                    .bind(external)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            if let Some(id) = existing {
                return fetch_auction(&mut tx, id)
                    .await?
                    .ok_or_else(|| RepoError::Corrupt(format!("auction {id} vanished")));
            }
        }
        let state = AuctionState::new(new.terms.clone(), now);
        let seller = state.terms.seller;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO auctions (title, description, seller, phase, state, external_id, created_at, updated_at, bid_partitions)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.title)
        .bind(&new.description)
        .bind(seller)
        .bind(phase_name(state.phase))
        .bind(to_json(&state)?)
        .bind(&new.external_id)
        .bind(now)
        .bind(now)
        .bind(new.bid_partitions)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let room_id: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (kind, name, auction_id, created_by, created_at) VALUES ('auction', ?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.title)
        .bind(id)
        .bind(seller)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, 'owner', ?)")
            .bind(room_id)
            .bind(seller)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("UPDATE auctions SET room_id = ? WHERE id = ?")
            .bind(room_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(AuctionRecord {
            id,
            title: new.title,
            description: new.description,
            state,
            room_id: Some(room_id),
            deal_room_id: None,
            created_at: now,
            version: 0,
            bid_partitions: new.bid_partitions,
        })
    }

    async fn get(&self, id: AuctionId) -> Result<Option<AuctionRecord>, RepoError> {
        let row = sqlx::query(&format!(
            "SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(record_of).transpose()
    }

    async fn list(&self, filter: &AuctionFilter) -> Result<Vec<AuctionRecord>, RepoError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUCTION_COLUMNS} FROM auctions
             WHERE (?1 IS NULL OR phase = ?1) AND (?2 IS NULL OR seller = ?2) AND (?3 IS NULL OR id < ?3)
               AND (?5 IS NULL OR instr(lower(title), lower(?5)) > 0
                    OR instr(lower(description), lower(?5)) > 0)
               AND (?6 IS NULL OR {PRICE} >= ?6) AND (?7 IS NULL OR {PRICE} <= ?7)
               AND (?8 IS NULL OR id IN (SELECT auction_id FROM watchlist WHERE user_id = ?8))
             ORDER BY id DESC LIMIT ?4",
            PRICE = "COALESCE(json_extract(state, '$.price'), json_extract(state, '$.terms.startingPrice'))"
        ))
        .bind(filter.phase.map(phase_name))
        .bind(filter.seller)
        .bind(filter.before_id)
        .bind(filter.limit.max(1) as i64)
        .bind(filter.text.as_deref())
        .bind(filter.min_price)
        .bind(filter.max_price)
        .bind(filter.watched_by)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter().map(record_of).collect()
    }

    async fn steps(
        &self,
        id: AuctionId,
        page: PageQuery,
        max: u32,
    ) -> Result<Vec<PriceStep>, RepoError> {
        let limit = page.limit_or(max.min(50), max) as i64;
        let query = if let Some(after) = page.after {
            sqlx::query("SELECT * FROM auction_steps WHERE auction_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?")
                .bind(id)
                .bind(after)
        } else {
            // The latest page (or the page before `before`), read newest first and reversed.
            sqlx::query(
                "SELECT * FROM (SELECT * FROM auction_steps WHERE auction_id = ? AND seq < ?
                 ORDER BY seq DESC LIMIT ?) ORDER BY seq ASC",
            )
            .bind(id)
            .bind(page.before.unwrap_or(i64::MAX))
        };
        let rows = query
            .bind(limit)
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
        rows.iter().map(step_of).collect()
    }

    async fn find_results(&self, keys: &[ResultKey]) -> Result<Vec<StoredResult>, RepoError> {
        self.db.results.find(keys).await
    }

    async fn commit(&self, batch: &AuctionBatch) -> Result<(), RepoError> {
        let now = bowchat_model::now_millis();
        // Rows go in as one JSON array per table (see find_results): a batch is
        // a handful of statements whatever its size.
        let states: Vec<(AuctionId, String, &str, i64)> = batch
            .states
            .iter()
            .map(|w| {
                Ok((
                    w.auction_id,
                    to_json(&w.state)?,
                    phase_name(w.state.phase),
                    w.read_version,
                ))
            })
            .collect::<Result<_, RepoError>>()?;
        let steps: Vec<(AuctionId, i64, UserId, i64, i64, Millis)> = batch
            .steps
            .iter()
            .map(|(id, s)| (*id, s.seq, s.bidder, s.amount, s.proxy as i64, s.at))
            .collect();
        let offsets: Vec<(&str, u32, u64)> = batch
            .offsets
            .iter()
            .map(|o| (o.topic.as_str(), o.partition, o.next_offset))
            .collect();
        let mut tx = self.db.writer.begin().await.map_err(unavailable)?;
        if !states.is_empty() {
            let states_json = to_json(&states)?;
            // Written only over the version each state was computed from.
            let updated = sqlx::query(
                "UPDATE auctions SET state = s.value ->> 1, phase = s.value ->> 2,
                        version = version + 1, updated_at = ?
                 FROM json_each(?) AS s
                 WHERE auctions.id = s.value ->> 0 AND auctions.version = s.value ->> 3",
            )
            .bind(now)
            .bind(&states_json)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            if updated.rows_affected() != states.len() as u64 {
                // Nothing is stored (the transaction is dropped); say which.
                let moved: Vec<AuctionId> = sqlx::query_scalar(
                    "SELECT s.value ->> 0 FROM json_each(?) AS s
                     LEFT JOIN auctions a ON a.id = s.value ->> 0
                     WHERE a.version IS NOT s.value ->> 3",
                )
                .bind(&states_json)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
                return Err(RepoError::VersionConflict { auctions: moved });
            }
        }
        if !steps.is_empty() {
            sqlx::query(
                "INSERT INTO auction_steps (auction_id, seq, bidder, amount, proxy, at)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5
                 FROM json_each(?)",
            )
            .bind(to_json(&steps)?)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        let appended = if batch.results.is_empty() {
            None
        } else {
            Some(self.db.results.append(&mut tx, &batch.results, now).await?)
        };
        let pruned = self.db.results.prune(&mut tx).await?;
        for (id, room) in &batch.deal_rooms {
            sqlx::query("UPDATE auctions SET deal_room_id = ? WHERE id = ?")
                .bind(room)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        if !offsets.is_empty() {
            sqlx::query(
                "INSERT INTO bus_offsets (consumer_group, topic, partition, next_offset)
                 SELECT 'auction-role', value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
                 ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            )
            .bind(to_json(&offsets)?)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        if let Some(entry) = &batch.outbox {
            crate::outbox::insert(&mut tx, entry)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.db.results.committed(&batch.results, appended, pruned);
        Ok(())
    }

    async fn expire_results(
        &self,
        refused_before: Millis,
        max_rows: u32,
    ) -> Result<u64, RepoError> {
        self.db.results.expire(refused_before, max_rows).await
    }

    async fn pin_bid_partitions(&self, partitions: u32) -> Result<u64, RepoError> {
        let done = sqlx::query(
            "UPDATE auctions SET bid_partitions = ?
             WHERE bid_partitions IS NULL AND phase IN ('scheduled', 'open')",
        )
        .bind(partitions)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    async fn unfinished(&self) -> Result<Vec<AuctionRecord>, RepoError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUCTION_COLUMNS} FROM auctions WHERE phase IN ('scheduled', 'open') ORDER BY id"
        ))
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter().map(record_of).collect()
    }

    async fn watch(
        &self,
        user: UserId,
        auction: AuctionId,
        max: u32,
        now: Millis,
    ) -> Result<Watch, RepoError> {
        watchlist::watch(&self.db, user, auction, max, now).await
    }

    async fn unwatch(&self, user: UserId, auction: AuctionId) -> Result<bool, RepoError> {
        watchlist::unwatch(&self.db, user, auction).await
    }

    async fn watchlist(&self, user: UserId) -> Result<Vec<AuctionRecord>, RepoError> {
        watchlist::watchlist(&self.db, user).await
    }

    async fn open_deal_room(
        &self,
        auction: &AuctionRecord,
        winner: UserId,
        now: Millis,
    ) -> Result<RoomId, RepoError> {
        let mut tx = self.db.writer.begin().await.map_err(unavailable)?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM rooms WHERE auction_id = ? AND kind = 'deal'")
                .bind(auction.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if let Some(room) = existing {
            return Ok(room);
        }
        let seller = auction.state.terms.seller;
        let room: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (kind, name, auction_id, created_by, created_at) VALUES ('deal', ?, ?, ?, ?) RETURNING id",
        )
        .bind(format!("Deal: {}", auction.title))
        .bind(auction.id)
        .bind(seller)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        for (user, role) in [(seller, "owner"), (winner, "member")] {
            sqlx::query("INSERT OR IGNORE INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)")
                .bind(room)
                .bind(user)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        sqlx::query("UPDATE auctions SET deal_room_id = ? WHERE id = ?")
            .bind(room)
            .bind(auction.id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(room)
    }
}
