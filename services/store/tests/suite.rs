//! The shared storage suite (`bowchat-store-suite`) on real SQLite files, one
//! temporary directory per test.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bowchat_store::{
    Db, SqliteAuctionRepository, SqliteAuthRepository, SqliteChatRepository, SqliteOptions,
    SqliteOutbox, SqliteSocialRepository,
};
use bowchat_store_suite::{Repos, Store, SuiteTest};

struct SqliteStore {
    path: PathBuf,
}

#[async_trait]
impl Store for SqliteStore {
    async fn open(&self) -> Repos {
        let db = Db::open(&self.path, &SqliteOptions::default())
            .await
            .expect("open db");
        Repos {
            auth: Arc::new(SqliteAuthRepository::new(db.clone())),
            chat: Arc::new(SqliteChatRepository::new(db.clone())),
            social: Arc::new(SqliteSocialRepository::new(db.clone())),
            outbox: Arc::new(SqliteOutbox::new(db.clone())),
            auction: Arc::new(SqliteAuctionRepository::new(db)),
        }
    }
}

async fn on_sqlite(test: SuiteTest) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore {
        path: dir.path().join("bowchat.db"),
    });
    test(store).await;
}

bowchat_store_suite::conformance_tests!(on_sqlite);
