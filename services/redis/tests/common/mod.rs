//! A key prefix of its own per test on the server `scripts/testenv up redis`
//! started; its keys are deleted when the test ends (also when it panics).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use bowchat_redis::RedisConfig;
use bowchat_testenv::TestEnv;
use futures::FutureExt;
use redis::aio::ConnectionManager;

/// Runs `test` with settings whose key prefix no other test uses.
pub async fn with_prefix<F, Fut>(test: F)
where
    F: FnOnce(RedisConfig) -> Fut,
    Fut: Future<Output = ()>,
{
    let config = RedisConfig {
        url: TestEnv::require("BOWCHAT_TEST_REDIS_URL", "redis"),
        key_prefix: format!("bowchat_test_{}:", uuid::Uuid::new_v4().simple()),
    };
    let outcome = AssertUnwindSafe(test(config.clone())).catch_unwind().await;
    let mut conn = connect(&config).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", config.key_prefix))
        .query_async(&mut conn)
        .await
        .expect("list test keys");
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .expect("delete test keys");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub async fn connect(config: &RedisConfig) -> ConnectionManager {
    bowchat_redis::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{e}; start it with `scripts/testenv up redis`"))
}
