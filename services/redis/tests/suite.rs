//! The shared auth and moderation suites (`bowchat-store-suite`) on
//! `RedisRefreshStore`: refresh tokens on the real Redis, users, keys, blocks
//! and reports in a SQLite file.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bowchat_redis::{RedisConfig, RedisRefreshStore};
use bowchat_store::{
    Db, SqliteAuctionRepository, SqliteAuthRepository, SqliteChatRepository, SqliteOptions,
    SqliteOutbox, SqliteSocialRepository,
};
use bowchat_store_suite::{Repos, Store, SuiteTest};

struct RedisStore {
    path: PathBuf,
    config: RedisConfig,
}

#[async_trait]
impl Store for RedisStore {
    async fn open(&self) -> Repos {
        let db = Db::open(&self.path, &SqliteOptions::default())
            .await
            .expect("open db");
        let conn = common::connect(&self.config).await;
        Repos {
            auth: Arc::new(RedisRefreshStore::new(
                SqliteAuthRepository::new(db.clone()),
                conn,
                &self.config.key_prefix,
                Duration::from_secs(60),
            )),
            chat: Arc::new(SqliteChatRepository::new(db.clone())),
            outbox: Arc::new(SqliteOutbox::new(db.clone())),
            social: Arc::new(SqliteSocialRepository::new(db.clone())),
            auction: Arc::new(SqliteAuctionRepository::new(db)),
        }
    }
}

async fn on_redis(test: SuiteTest) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bowchat.db");
    common::with_prefix(|config| async move {
        test(Arc::new(RedisStore { path, config })).await;
    })
    .await;
}

bowchat_store_suite::auth_conformance_tests!(on_redis);
bowchat_store_suite::moderation_conformance_tests!(on_redis);
