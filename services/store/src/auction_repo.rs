//! SQLite adapter for `bowchat_auction::ports::AuctionRepository`.
use crate::Db;

#[derive(Clone)]
pub struct SqliteAuctionRepository {
    #[allow(dead_code)]
    db: Db,
}

impl SqliteAuctionRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}
