//! Watchlist rows of the SQLite auction repository. Every write goes through
//! the one writer connection, so the check of the list's size and the insert
//! cannot interleave with another tab's.

use bowchat_auction::ports::{AuctionRecord, RepoError, Watch};
use bowchat_model::{AuctionId, Millis, UserId};

use super::{record_of, unavailable, AUCTION_COLUMNS};
use crate::Db;

pub(super) async fn watch(
    db: &Db,
    user: UserId,
    auction: AuctionId,
    max: u32,
    now: Millis,
) -> Result<Watch, RepoError> {
    let mut tx = db.writer.begin().await.map_err(unavailable)?;
    let (listed, already): (i64, bool) = sqlx::query_as(
        "SELECT count(*), coalesce(max(auction_id = ?2), 0) FROM watchlist WHERE user_id = ?1",
    )
    .bind(user)
    .bind(auction)
    .fetch_one(&mut *tx)
    .await
    .map_err(unavailable)?;
    if already {
        return Ok(Watch::AlreadyWatched);
    }
    if listed >= i64::from(max) {
        return Ok(Watch::Full);
    }
    sqlx::query("INSERT INTO watchlist (user_id, auction_id, created_at) VALUES (?, ?, ?)")
        .bind(user)
        .bind(auction)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(Watch::Added)
}

pub(super) async fn unwatch(db: &Db, user: UserId, auction: AuctionId) -> Result<bool, RepoError> {
    let done = sqlx::query("DELETE FROM watchlist WHERE user_id = ? AND auction_id = ?")
        .bind(user)
        .bind(auction)
        .execute(&db.writer)
        .await
        .map_err(unavailable)?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn watchlist(db: &Db, user: UserId) -> Result<Vec<AuctionRecord>, RepoError> {
    let rows = sqlx::query(&format!(
        "SELECT {AUCTION_COLUMNS} FROM auctions
         JOIN (SELECT auction_id, created_at AS watched_at FROM watchlist WHERE user_id = ?) w
           ON w.auction_id = auctions.id
         ORDER BY w.watched_at DESC, id DESC"
    ))
    .bind(user)
    .fetch_all(&db.reader)
    .await
    .map_err(unavailable)?;
    rows.iter().map(record_of).collect()
}
