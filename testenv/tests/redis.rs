//! Smoke test of the `redis` testenv component: a real Redis stores and expires keys.

use bowchat_testenv::TestEnv;
use redis::AsyncCommands;

#[tokio::test]
async fn set_get_and_expiry_on_a_real_server() {
    let url = TestEnv::require("BOWCHAT_TEST_REDIS_URL", "redis");
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the testenv Redis");

    let key = format!("bowchat:smoke:{}", uuid::Uuid::new_v4());
    let _: () = conn.set(&key, "hello").await.unwrap();
    let value: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some("hello"));

    // INCR on a string that is not a number is refused by the server itself.
    let err = conn.incr::<_, _, i64>(&key, 1).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("not an integer"),
        "{err}"
    );

    let _: () = conn.pexpire(&key, 50).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let gone: Option<String> = conn.get(&key).await.unwrap();
    assert_eq!(gone, None, "the key should have expired");
}
