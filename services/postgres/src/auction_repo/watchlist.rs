//! Watchlist rows of the PostgreSQL auction repository. Adding takes a
//! transaction lock on the user's list first, so two gateways adding at once
//! cannot both pass the size check.

use bowchat_auction::ports::{AuctionRecord, RepoError, Watch};
use bowchat_model::{AuctionId, Millis, UserId};

use super::{db_error, record_of, AUCTION_COLUMNS};
use crate::PgStore;

pub(super) async fn watch(
    store: &PgStore,
    user: UserId,
    auction: AuctionId,
    max: u32,
    now: Millis,
) -> Result<Watch, RepoError> {
    let mut tx = store.pool.begin().await.map_err(db_error)?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('bowchat.watchlist:' || $1::TEXT, 0))",
    )
    .bind(user)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    let (listed, already): (i64, bool) = sqlx::query_as(
        "SELECT count(*), coalesce(bool_or(auction_id = $2), false) FROM watchlist WHERE user_id = $1",
    )
    .bind(user)
    .bind(auction)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if already {
        return Ok(Watch::AlreadyWatched);
    }
    if listed >= i64::from(max) {
        return Ok(Watch::Full);
    }
    sqlx::query("INSERT INTO watchlist (user_id, auction_id, created_at) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(auction)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(Watch::Added)
}

pub(super) async fn unwatch(
    store: &PgStore,
    user: UserId,
    auction: AuctionId,
) -> Result<bool, RepoError> {
    let done = sqlx::query("DELETE FROM watchlist WHERE user_id = $1 AND auction_id = $2")
        .bind(user)
        .bind(auction)
        .execute(&store.pool)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn watchlist(
    store: &PgStore,
    user: UserId,
) -> Result<Vec<AuctionRecord>, RepoError> {
    let rows = sqlx::query(&format!(
        "SELECT {AUCTION_COLUMNS} FROM auctions
         JOIN (SELECT auction_id, created_at AS watched_at FROM watchlist WHERE user_id = $1) w
           ON w.auction_id = auctions.id
         ORDER BY w.watched_at DESC, id DESC"
    ))
    .bind(user)
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(record_of).collect()
}
