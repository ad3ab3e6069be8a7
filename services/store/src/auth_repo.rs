//! SQLite adapter for `bowchat_auth::ports::AuthRepository`.
use crate::Db;

#[derive(Clone)]
pub struct SqliteAuthRepository {
    #[allow(dead_code)]
    db: Db,
}

impl SqliteAuthRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}
