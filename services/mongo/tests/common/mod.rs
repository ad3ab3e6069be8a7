//! A fresh MongoDB database per test on the server `scripts/testenv up
//! ferretdb` started, dropped when the test ends (also when it panics), and
//! an inner SQLite chat store in a temporary directory.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use bowchat_mongo::{MongoChatHistory, MongoConfig, SplitChatRepository};
use bowchat_store::{Db, SqliteChatRepository, SqliteOptions};
use bowchat_testenv::TestEnv;
use futures::FutureExt;
use mongodb::Client;

/// Runs `test` with the settings of a new, empty database and drops it afterwards.
#[allow(dead_code)]
pub async fn in_fresh_database<F, Fut>(test: F)
where
    F: FnOnce(MongoConfig) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = TestEnv::require("BOWCHAT_TEST_MONGODB_URL", "ferretdb");
    let config = MongoConfig {
        url: url.clone(),
        database: format!("bowchat_test_{}", uuid::Uuid::new_v4().simple()),
    };
    let outcome = AssertUnwindSafe(test(config.clone())).catch_unwind().await;
    let client = Client::with_uri_str(&url).await.expect("client");
    client
        .database(&config.database)
        .drop()
        .await
        .expect("drop test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The split repository over a SQLite file at `path` and the database of `config`.
#[allow(dead_code)]
pub async fn open(path: &Path, config: &MongoConfig) -> SplitChatRepository<SqliteChatRepository> {
    let db = Db::open(path, &SqliteOptions::default())
        .await
        .expect("open sqlite");
    let history = MongoChatHistory::connect(config)
        .await
        .expect("connect mongodb");
    SplitChatRepository::new(SqliteChatRepository::new(db), history)
}
