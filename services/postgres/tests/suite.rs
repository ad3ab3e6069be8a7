//! The shared storage suite (`bowchat-store-suite`) on a real PostgreSQL, one
//! fresh database per test.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use bowchat_postgres::PgOutbox;
use bowchat_store_suite::{Repos, Store, SuiteTest};

struct PgSuiteStore {
    url: String,
}

#[async_trait]
impl Store for PgSuiteStore {
    async fn open(&self) -> Repos {
        let store = common::connect(&self.url).await;
        Repos {
            auth: Arc::new(store.auth()),
            chat: Arc::new(store.chat()),
            social: Arc::new(store.social()),
            auction: Arc::new(store.auctions("auction-role")),
            outbox: Arc::new(PgOutbox::new(store.clone())),
        }
    }
}

async fn on_postgres(test: SuiteTest) {
    common::in_fresh_database(|url| async move {
        test(Arc::new(PgSuiteStore { url })).await;
    })
    .await;
}

bowchat_store_suite::conformance_tests!(on_postgres);
