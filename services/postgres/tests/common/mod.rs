//! A fresh PostgreSQL database per test on the server `scripts/testenv up
//! postgres` started: created with a random name, dropped when the test ends
//! (also when it panics).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use bowchat_postgres::{PgConfig, PgStore};
use bowchat_testenv::TestEnv;
use futures::FutureExt;
use sqlx::{Connection, Executor, PgConnection};

/// The server's URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

/// Connects to the server's own database; the server may be restarting, so
/// a few attempts are made before failing.
async fn admin(url: &str) -> PgConnection {
    let mut last = None;
    for _ in 0..20 {
        match PgConnection::connect(url).await {
            Ok(conn) => return conn,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("cannot connect to {url}: {last:?}; start it with `scripts/testenv up postgres`");
}

/// Settings of a small pool on `url`, as the tests use it.
pub fn config(url: &str) -> PgConfig {
    PgConfig {
        url: url.to_string(),
        max_connections: 8,
        ..PgConfig::default()
    }
}

/// Runs `test` with the URL of a new, empty database and drops the database afterwards.
pub async fn in_fresh_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let server = TestEnv::require("BOWCHAT_TEST_PG_URL", "postgres");
    let name = format!("bowchat_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin(&server).await;
    // template0: never connected to, so concurrent creations cannot collide on it.
    conn.execute(format!("CREATE DATABASE {name} TEMPLATE template0").as_str())
        .await
        .expect("create test database");
    let outcome = AssertUnwindSafe(test(with_database(&server, &name)))
        .catch_unwind()
        .await;
    drop_database(&server, &name).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A connected, migrated store on `url`.
pub async fn connect(url: &str) -> PgStore {
    PgStore::connect(&config(url)).await.expect("connect")
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5/db", "x"),
        "postgres://u:p@127.0.0.1:5/x"
    );
    assert_eq!(
        with_database("postgres://u@h:5/db?sslmode=disable", "x"),
        "postgres://u@h:5/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// Drops a test database. A backend the server itself runs on it (autovacuum)
/// can make the forced drop fail for a moment, so it is retried; a database
/// that still cannot be dropped is reported, not turned into a test failure.
async fn drop_database(server: &str, name: &str) {
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let mut last_error = None;
    for _ in 0..10 {
        let mut conn = admin(server).await;
        match conn.execute(statement.as_str()).await {
            Ok(_) => return,
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("warning: test database {name} left behind: {last_error:?}");
}
