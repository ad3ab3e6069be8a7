//! PostgreSQL adapter for `bowchat_auction::ports::AuctionRepository`.
//!
//! The engine state is stored as JSONB next to the columns we query by (phase,
//! seller). The auction role is the single writer of an auction *while it owns
//! the auction's partition*; after a Kafka rebalance the previous owner may
//! still be finishing a batch, so `commit` fences it inside the transaction:
//!
//! - every offset of the batch must move its (group, topic, partition) row
//!   forward (`next_offset` strictly greater than the stored one): a batch
//!   built from records another owner already stored is refused;
//! - after [`PgAuctionRepository::claim`], the row's `owner_epoch` must still
//!   be the one this repository claimed: a newer claim by another consumer
//!   fences this one even when its offsets would move forward.
//!
//! A fenced batch stores nothing and fails with `RepoError::Conflict` whose
//! message starts with [`FENCED`]; the consumer should drop its cached state,
//! re-read [`PgAuctionRepository::offsets`] and seek.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bowchat_auction::engine::{AuctionState, Phase, PriceStep};
use bowchat_auction::messages::CommandResult;
use bowchat_auction::ports::{
    AuctionBatch, AuctionFilter, AuctionRecord, AuctionRepository, BusOffset, NewAuction,
    RepoError, ResultKey, StateWrite, StoredResult, Watch,
};
use bowchat_model::{AuctionId, Millis, PageQuery, RoomId, UserId};
use parking_lot::Mutex;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};

use crate::chat_repo::insert_member;
use crate::PgStore;

mod watchlist;

/// How the message of a fenced commit's `RepoError::Conflict` starts.
pub const FENCED: &str = "fenced";

/// Whether `e` is the refusal of a stale owner's batch.
pub fn is_fenced(e: &RepoError) -> bool {
    matches!(e, RepoError::Conflict(m) if m.starts_with(FENCED))
}

#[derive(Clone)]
pub struct PgAuctionRepository {
    store: PgStore,
    group: String,
    /// Epochs this consumer claimed, by (topic, partition).
    epochs: Arc<Mutex<HashMap<(String, u32), i64>>>,
}

impl PgAuctionRepository {
    /// `group` names the consumer group whose offsets `commit` stores.
    pub fn new(store: PgStore, group: &str) -> Self {
        Self {
            store,
            group: group.to_string(),
            epochs: Arc::default(),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The stored positions of this group on `topic`, by partition: where a
    /// consumer seeks after it is assigned partitions.
    pub async fn offsets(&self, topic: &str) -> Result<Vec<BusOffset>, RepoError> {
        let rows = sqlx::query(
            "SELECT partition, next_offset FROM bus_offsets
             WHERE consumer_group = $1 AND topic = $2 ORDER BY partition",
        )
        .bind(&self.group)
        .bind(topic)
        .fetch_all(&self.store.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let partition: i32 = row.try_get("partition").map_err(db_error)?;
                let next: i64 = row.try_get("next_offset").map_err(db_error)?;
                Ok(BusOffset {
                    topic: topic.to_string(),
                    partition: partition as u32,
                    next_offset: next as u64,
                })
            })
            .collect()
    }

    /// Takes ownership of `partitions` of `topic` after an assignment: bumps
    /// each partition's epoch (fencing whoever held it) and returns the stored
    /// positions to seek to (`next_offset` 0 for a partition never committed).
    pub async fn claim(
        &self,
        topic: &str,
        partitions: &[u32],
    ) -> Result<Vec<BusOffset>, RepoError> {
        let mut sorted = partitions.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        let mut claimed = Vec::with_capacity(sorted.len());
        for partition in sorted {
            let row = sqlx::query(
                "INSERT INTO bus_offsets AS b (consumer_group, topic, partition, next_offset, owner_epoch)
                 VALUES ($1, $2, $3, 0, 1)
                 ON CONFLICT (consumer_group, topic, partition)
                 DO UPDATE SET owner_epoch = b.owner_epoch + 1
                 RETURNING next_offset, owner_epoch",
            )
            .bind(&self.group)
            .bind(topic)
            .bind(partition as i32)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            let next: i64 = row.try_get("next_offset").map_err(db_error)?;
            let epoch: i64 = row.try_get("owner_epoch").map_err(db_error)?;
            claimed.push((partition, next, epoch));
        }
        tx.commit().await.map_err(db_error)?;
        let mut epochs = self.epochs.lock();
        Ok(claimed
            .into_iter()
            .map(|(partition, next, epoch)| {
                epochs.insert((topic.to_string(), partition), epoch);
                BusOffset {
                    topic: topic.to_string(),
                    partition,
                    next_offset: next as u64,
                }
            })
            .collect())
    }

    /// Forgets claimed epochs after a revocation (commits for those
    /// partitions are then checked by offset only).
    pub fn release(&self, topic: &str, partitions: &[u32]) {
        let mut epochs = self.epochs.lock();
        for p in partitions {
            epochs.remove(&(topic.to_string(), *p));
        }
    }

    fn claimed_epoch(&self, offset: &BusOffset) -> Option<i64> {
        self.epochs
            .lock()
            .get(&(offset.topic.clone(), offset.partition))
            .copied()
    }

    /// Stores one offset or fails the transaction with a fencing error.
    async fn store_offset(
        &self,
        conn: &mut sqlx::PgConnection,
        offset: &BusOffset,
    ) -> Result<(), RepoError> {
        let next = i64::try_from(offset.next_offset)
            .map_err(|_| RepoError::Corrupt(format!("offset {} too large", offset.next_offset)))?;
        let epoch = self.claimed_epoch(offset);
        // The conditional upsert takes the row lock, so of two concurrent
        // commits on one partition the second re-checks against the first's result.
        let stored = sqlx::query(
            "INSERT INTO bus_offsets AS b (consumer_group, topic, partition, next_offset)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
             WHERE b.next_offset < excluded.next_offset
               AND ($5::BIGINT IS NULL OR b.owner_epoch = $5)
             RETURNING 1",
        )
        .bind(&self.group)
        .bind(&offset.topic)
        .bind(offset.partition as i32)
        .bind(next)
        .bind(epoch)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        if stored.is_some() {
            return Ok(());
        }
        let row = sqlx::query(
            "SELECT next_offset, owner_epoch FROM bus_offsets
             WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
        )
        .bind(&self.group)
        .bind(&offset.topic)
        .bind(offset.partition as i32)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        let stored_next: i64 = row.try_get("next_offset").map_err(db_error)?;
        let stored_epoch: i64 = row.try_get("owner_epoch").map_err(db_error)?;
        Err(RepoError::Conflict(format!(
            "{FENCED}: group {} {}/{}: batch ends at offset {next} (epoch {}), stored offset {stored_next} (epoch {stored_epoch})",
            self.group,
            offset.topic,
            offset.partition,
            epoch.map_or_else(|| "unclaimed".to_string(), |e| e.to_string()),
        )))
    }
}

fn db_error(e: sqlx::Error) -> RepoError {
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

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, RepoError> {
    serde_json::to_string(value).map_err(|e| RepoError::Corrupt(e.to_string()))
}

/// JSONB read back as text, so decoding stays with serde.
const AUCTION_COLUMNS: &str =
    "id, title, description, state::TEXT AS state, room_id, deal_room_id, created_at, version,
     bid_partitions";

fn record_of(row: &PgRow) -> Result<AuctionRecord, RepoError> {
    let state: String = row.try_get("state").map_err(db_error)?;
    let id: i64 = row.try_get("id").map_err(db_error)?;
    let state: AuctionState = serde_json::from_str(&state)
        .map_err(|e| RepoError::Corrupt(format!("auction {id}: {e}")))?;
    Ok(AuctionRecord {
        id,
        title: row.try_get("title").map_err(db_error)?,
        description: row.try_get("description").map_err(db_error)?,
        state,
        room_id: row.try_get("room_id").map_err(db_error)?,
        deal_room_id: row.try_get("deal_room_id").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
        version: row.try_get("version").map_err(db_error)?,
        bid_partitions: row
            .try_get::<Option<i32>, _>("bid_partitions")
            .map_err(db_error)?
            .map(|p| p.max(1) as u32),
    })
}

fn step_of(row: &PgRow) -> Result<PriceStep, RepoError> {
    Ok(PriceStep {
        seq: row.try_get("seq").map_err(db_error)?,
        bidder: row.try_get("bidder").map_err(db_error)?,
        amount: row.try_get("amount").map_err(db_error)?,
        proxy: row.try_get("proxy").map_err(db_error)?,
        at: row.try_get("at").map_err(db_error)?,
    })
}

async fn fetch_auction<'c>(
    executor: impl PgExecutor<'c>,
    id: AuctionId,
) -> Result<Option<AuctionRecord>, RepoError> {
    let row = sqlx::query(&format!(
        "SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(db_error)?;
    row.as_ref().map(record_of).transpose()
}

#[async_trait]
impl AuctionRepository for PgAuctionRepository {
    async fn create(&self, new: NewAuction, now: Millis) -> Result<AuctionRecord, RepoError> {
        let state = AuctionState::new(new.terms.clone(), now);
        let seller = state.terms.seller;
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        // ON CONFLICT settles two operators registering the same external id at once.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO auctions (title, description, seller, phase, state, external_id, created_at, updated_at, bid_partitions)
             VALUES ($1, $2, $3, $4, $5::JSONB, $6, $7, $7, $8)
             ON CONFLICT (seller, external_id) DO NOTHING RETURNING id",
        )
        .bind(&new.title)
        .bind(&new.description)
        .bind(seller)
        .bind(phase_name(state.phase))
        .bind(to_json(&state)?)
        .bind(&new.external_id)
        .bind(now)
        .bind(new.bid_partitions.map(|p| p as i32))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(id) = id else {
            tx.rollback().await.map_err(db_error)?;
            let existing: AuctionRecord = sqlx::query(&format!(
                "SELECT {AUCTION_COLUMNS} FROM auctions WHERE seller = $1 AND external_id = $2"
            ))
            .bind(seller)
            .bind(&new.external_id)
            .fetch_one(&self.store.pool)
            .await
            .map_err(db_error)
            .and_then(|row| record_of(&row))?;
            return Ok(existing);
        };
        let room_id: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (kind, name, auction_id, created_by, created_at)
             VALUES ('auction', $1, $2, $3, $4) RETURNING id",
        )
        .bind(&new.title)
        .bind(id)
        .bind(seller)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_member(&mut *tx, room_id, seller, "owner", now)
            .await
            .map_err(db_error)?;
        sqlx::query("UPDATE auctions SET room_id = $1 WHERE id = $2")
            .bind(room_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
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
        fetch_auction(&self.store.pool, id).await
    }

    async fn list(&self, filter: &AuctionFilter) -> Result<Vec<AuctionRecord>, RepoError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUCTION_COLUMNS} FROM auctions
             WHERE ($1::TEXT IS NULL OR phase = $1) AND ($2::BIGINT IS NULL OR seller = $2)
               AND ($3::BIGINT IS NULL OR id < $3)
               AND ($5::TEXT IS NULL OR strpos(lower(title), lower($5)) > 0
                    OR strpos(lower(description), lower($5)) > 0)
               AND ($6::BIGINT IS NULL OR {PRICE} >= $6) AND ($7::BIGINT IS NULL OR {PRICE} <= $7)
               AND ($8::BIGINT IS NULL OR id IN (SELECT auction_id FROM watchlist WHERE user_id = $8))
             ORDER BY id DESC LIMIT $4",
            PRICE =
                "COALESCE((state->>'price')::BIGINT, (state->'terms'->>'startingPrice')::BIGINT)"
        ))
        .bind(filter.phase.map(phase_name))
        .bind(filter.seller)
        .bind(filter.before_id)
        .bind(filter.limit.max(1) as i64)
        .bind(filter.text.as_deref())
        .bind(filter.min_price)
        .bind(filter.max_price)
        .bind(filter.watched_by)
        .fetch_all(&self.store.pool)
        .await
        .map_err(db_error)?;
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
            sqlx::query(
                "SELECT seq, bidder, amount, proxy, at FROM auction_steps
                 WHERE auction_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3",
            )
            .bind(id)
            .bind(after)
        } else {
            // The latest page (or the page before `before`), read newest first and reversed.
            sqlx::query(
                "SELECT * FROM (SELECT seq, bidder, amount, proxy, at FROM auction_steps
                 WHERE auction_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3) s ORDER BY seq ASC",
            )
            .bind(id)
            .bind(page.before.unwrap_or(i64::MAX))
        };
        let rows = query
            .bind(limit)
            .fetch_all(&self.store.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(step_of).collect()
    }

    async fn find_results(&self, keys: &[ResultKey]) -> Result<Vec<StoredResult>, RepoError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let auctions: Vec<i64> = keys.iter().map(|(a, _, _)| *a).collect();
        let users: Vec<i64> = keys.iter().map(|(_, u, _)| *u).collect();
        let requests: Vec<&str> = keys.iter().map(|(_, _, r)| r.as_str()).collect();
        let rows = sqlx::query(
            "SELECT DISTINCT r.auction_id, r.user_id, r.request_id, r.result::TEXT AS result
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS k(auction_id, user_id, request_id)
             JOIN auction_results r
               ON r.auction_id = k.auction_id AND r.user_id = k.user_id
              AND r.request_id = k.request_id",
        )
        .bind(&auctions)
        .bind(&users)
        .bind(&requests)
        .fetch_all(&self.store.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let result: String = row.try_get("result").map_err(db_error)?;
                let result: CommandResult =
                    serde_json::from_str(&result).map_err(|e| RepoError::Corrupt(e.to_string()))?;
                Ok(StoredResult {
                    auction_id: row.try_get("auction_id").map_err(db_error)?,
                    user_id: row.try_get("user_id").map_err(db_error)?,
                    request_id: row.try_get("request_id").map_err(db_error)?,
                    result,
                })
            })
            .collect()
    }

    async fn commit(&self, batch: &AuctionBatch) -> Result<(), RepoError> {
        let now = bowchat_model::now_millis();
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        // Offsets first: a fenced batch fails before it writes anything, and in
        // (topic, partition) order so concurrent batches lock rows in one order.
        let mut offsets: Vec<&BusOffset> = batch.offsets.iter().collect();
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        for offset in offsets {
            self.store_offset(&mut tx, offset).await?;
        }
        let mut states: Vec<&StateWrite> = batch.states.iter().collect();
        states.sort_by_key(|w| w.auction_id);
        for write in states {
            let id = write.auction_id;
            // Written only over the version the state was computed from: a
            // second writer's commit fails instead of overwriting.
            let updated = sqlx::query(
                "UPDATE auctions SET state = $1::JSONB, phase = $2, updated_at = $3,
                        version = version + 1
                 WHERE id = $4 AND version = $5",
            )
            .bind(to_json(&write.state)?)
            .bind(phase_name(write.state.phase))
            .bind(now)
            .bind(id)
            .bind(write.read_version)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if updated.rows_affected() == 0 {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM auctions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error)?;
                return Err(match exists {
                    Some(_) => RepoError::VersionConflict { auctions: vec![id] },
                    None => RepoError::Conflict(format!("auction {id} does not exist")),
                });
            }
        }
        // Steps and results go in as arrays, one statement each: a round trip
        // per row made the batch's cost grow with its size.
        if !batch.steps.is_empty() {
            let mut ids = Vec::with_capacity(batch.steps.len());
            let (mut seqs, mut bidders, mut amounts) = (Vec::new(), Vec::new(), Vec::new());
            let (mut proxies, mut ats) = (Vec::new(), Vec::new());
            for (id, step) in &batch.steps {
                ids.push(*id);
                seqs.push(step.seq);
                bidders.push(step.bidder);
                amounts.push(step.amount);
                proxies.push(step.proxy);
                ats.push(step.at);
            }
            sqlx::query(
                "INSERT INTO auction_steps (auction_id, seq, bidder, amount, proxy, at)
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[],
                                      $5::BOOLEAN[], $6::BIGINT[])",
            )
            .bind(&ids)
            .bind(&seqs)
            .bind(&bidders)
            .bind(&amounts)
            .bind(&proxies)
            .bind(&ats)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        if !batch.results.is_empty() {
            let mut ids = Vec::with_capacity(batch.results.len());
            let (mut users, mut requests, mut results) = (Vec::new(), Vec::new(), Vec::new());
            let mut accepted = Vec::with_capacity(batch.results.len());
            for stored in &batch.results {
                ids.push(stored.auction_id);
                users.push(stored.user_id);
                requests.push(stored.request_id.as_str());
                results.push(to_json(&stored.result)?);
                accepted.push(stored.result.accepted);
            }
            sqlx::query(
                "INSERT INTO auction_results (auction_id, user_id, request_id, result, accepted, created_at)
                 SELECT k.auction_id, k.user_id, k.request_id, k.result::JSONB, k.accepted, $6
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BOOLEAN[])
                      AS k(auction_id, user_id, request_id, result, accepted)
                 ON CONFLICT (auction_id, user_id, request_id) DO NOTHING",
            )
            .bind(&ids)
            .bind(&users)
            .bind(&requests)
            .bind(&results)
            .bind(&accepted)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        for (id, room) in &batch.deal_rooms {
            sqlx::query("UPDATE auctions SET deal_room_id = $1 WHERE id = $2")
                .bind(room)
                .bind(id)
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

    async fn expire_results(
        &self,
        refused_before: Millis,
        max_rows: u32,
    ) -> Result<u64, RepoError> {
        let done = sqlx::query(
            "DELETE FROM auction_results WHERE ctid IN (
                 SELECT ctid FROM auction_results
                 WHERE NOT accepted AND created_at < $1 ORDER BY created_at LIMIT $2)",
        )
        .bind(refused_before)
        .bind(i64::from(max_rows))
        .execute(&self.store.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn pin_bid_partitions(&self, partitions: u32) -> Result<u64, RepoError> {
        let done = sqlx::query(
            "UPDATE auctions SET bid_partitions = $1
             WHERE bid_partitions IS NULL AND phase IN ('scheduled', 'open')",
        )
        .bind(partitions as i32)
        .execute(&self.store.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn unfinished(&self) -> Result<Vec<AuctionRecord>, RepoError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUCTION_COLUMNS} FROM auctions WHERE phase IN ('scheduled', 'open') ORDER BY id"
        ))
        .fetch_all(&self.store.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(record_of).collect()
    }

    async fn watch(
        &self,
        user: UserId,
        auction: AuctionId,
        max: u32,
        now: Millis,
    ) -> Result<Watch, RepoError> {
        watchlist::watch(&self.store, user, auction, max, now).await
    }

    async fn unwatch(&self, user: UserId, auction: AuctionId) -> Result<bool, RepoError> {
        watchlist::unwatch(&self.store, user, auction).await
    }

    async fn watchlist(&self, user: UserId) -> Result<Vec<AuctionRecord>, RepoError> {
        watchlist::watchlist(&self.store, user).await
    }

    async fn open_deal_room(
        &self,
        auction: &AuctionRecord,
        winner: UserId,
        now: Millis,
    ) -> Result<RoomId, RepoError> {
        let seller = auction.state.terms.seller;
        let mut tx = self.store.pool.begin().await.map_err(db_error)?;
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO rooms (kind, name, auction_id, created_by, created_at)
             VALUES ('deal', $1, $2, $3, $4)
             ON CONFLICT (auction_id, kind) WHERE auction_id IS NOT NULL DO NOTHING RETURNING id",
        )
        .bind(format!("Deal: {}", auction.title))
        .bind(auction.id)
        .bind(seller)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(room) = created else {
            tx.rollback().await.map_err(db_error)?;
            return sqlx::query_scalar(
                "SELECT id FROM rooms WHERE auction_id = $1 AND kind = 'deal'",
            )
            .bind(auction.id)
            .fetch_one(&self.store.pool)
            .await
            .map_err(db_error);
        };
        for (user, role) in [(seller, "owner"), (winner, "member")] {
            insert_member(&mut *tx, room, user, role, now)
                .await
                .map_err(db_error)?;
        }
        sqlx::query("UPDATE auctions SET deal_room_id = $1 WHERE id = $2")
            .bind(room)
            .bind(auction.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(room)
    }
}
