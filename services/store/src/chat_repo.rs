//! SQLite adapter for `bowchat_chat::ports::ChatRepository`.
use crate::Db;

#[derive(Clone)]
pub struct SqliteChatRepository {
    #[allow(dead_code)]
    db: Db,
}

impl SqliteChatRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}
