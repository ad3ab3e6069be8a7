//! The shared chat suite (`bowchat-store-suite`) on the split repository:
//! an inner SQLite file and a fresh database on the real MongoDB-wire server
//! per test.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bowchat_mongo::MongoConfig;
use bowchat_store::{
    Db, SqliteAuctionRepository, SqliteAuthRepository, SqliteOptions, SqliteOutbox,
    SqliteSocialRepository,
};
use bowchat_store_suite::{Repos, Store, SuiteTest};

struct SplitStore {
    path: PathBuf,
    config: MongoConfig,
}

#[async_trait]
impl Store for SplitStore {
    async fn open(&self) -> Repos {
        let db = Db::open(&self.path, &SqliteOptions::default())
            .await
            .expect("open db");
        Repos {
            auth: Arc::new(SqliteAuthRepository::new(db.clone())),
            chat: Arc::new(common::open(&self.path, &self.config).await),
            social: Arc::new(SqliteSocialRepository::new(db.clone())),
            outbox: Arc::new(SqliteOutbox::new(db.clone())),
            auction: Arc::new(SqliteAuctionRepository::new(db)),
        }
    }
}

async fn on_mongo(test: SuiteTest) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bowchat.db");
    common::in_fresh_database(|config| async move {
        test(Arc::new(SplitStore { path, config })).await;
    })
    .await;
}

bowchat_store_suite::chat_conformance_tests!(on_mongo);
