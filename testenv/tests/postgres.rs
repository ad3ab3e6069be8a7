//! Smoke test of the `postgres` testenv component: a real PostgreSQL answers SQL.

use bowchat_testenv::TestEnv;
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

#[tokio::test]
async fn sql_round_trip_through_a_real_server() {
    let url = TestEnv::require("BOWCHAT_TEST_PG_URL", "postgres");
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect to the testenv PostgreSQL");

    // Each run gets its own table, so parallel or repeated runs never collide.
    let table = format!("smoke_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, amount BIGINT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let mut tx = pool.begin().await.unwrap();
    for (name, amount) in [("alice", 5_000_i64), ("bob", 7_500)] {
        sqlx::query(&format!(
            "INSERT INTO {table} (name, amount) VALUES ($1, $2)"
        ))
        .bind(name)
        .bind(amount)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let rows = sqlx::query(&format!(
        "SELECT name, amount FROM {table} ORDER BY amount DESC"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![("bob".to_owned(), 7_500), ("alice".to_owned(), 5_000)]
    );

    // The server enforces constraints: a duplicate name is refused with 23505.
    let err = sqlx::query(&format!(
        "INSERT INTO {table} (name, amount) VALUES ('bob', 1)"
    ))
    .execute(&pool)
    .await
    .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23505"), "{err}");

    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!version.is_empty());

    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await
        .unwrap();
}
