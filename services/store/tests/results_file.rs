//! The results file of the embedded store: answers logged by batch commits are
//! merged into it in the background and at opening, the log is pruned only
//! behind the merge, and a results file from another database is refused.
//! Real SQLite files in a temporary directory.

use std::path::Path;
use std::time::{Duration, Instant};

use bowchat_auction::messages::CommandResult;
use bowchat_auction::ports::{AuctionBatch, AuctionRepository, StoredResult};
use bowchat_model::UserId;
use bowchat_store::{results_path, Db, SqliteAuctionRepository, SqliteOptions, StoreError};
use bowchat_store_suite::auction::accepted;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

/// Options under which nothing merges in the background during a test.
fn never_merging() -> SqliteOptions {
    SqliteOptions {
        results_merge_rows: 1_000_000,
        results_merge_interval: Duration::from_secs(3600),
        ..SqliteOptions::default()
    }
}

fn answer(user: UserId, request: &str, price: i64) -> StoredResult {
    StoredResult {
        auction_id: 1,
        user_id: user,
        request_id: request.into(),
        result: accepted(price),
    }
}

async fn store(repo: &SqliteAuctionRepository, results: Vec<StoredResult>) {
    repo.commit(&AuctionBatch {
        results,
        ..AuctionBatch::default()
    })
    .await
    .expect("commit");
}

async fn find(
    repo: &SqliteAuctionRepository,
    user: UserId,
    request: &str,
) -> Option<CommandResult> {
    let mut found = repo
        .find_results(&[(1, user, request.to_string())])
        .await
        .expect("find results");
    assert!(found.len() <= 1, "one answer per key: {found:?}");
    found.pop().map(|stored| stored.result)
}

async fn count(file: &Path, sql: &str) -> i64 {
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .connect()
        .await
        .expect("open for counting");
    sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

async fn wait_until_merged(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.unmerged_results() > 0 {
        assert!(Instant::now() < deadline, "answers were never merged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn answers_not_yet_merged_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bowchat.db");
    let db = Db::open(&path, &never_merging()).await.unwrap();
    let repo = SqliteAuctionRepository::new(db.clone());
    store(&repo, (0..50).map(|i| answer(i, "r1", 100 + i)).collect()).await;
    assert_eq!(db.unmerged_results(), 50);
    assert_eq!(find(&repo, 7, "r1").await, Some(accepted(107)));
    db.close().await;
    assert_eq!(
        count(&path, "SELECT count(*) FROM auction_results_log").await,
        50
    );

    let db = Db::open(&path, &never_merging()).await.unwrap();
    let repo = SqliteAuctionRepository::new(db.clone());
    assert_eq!(db.unmerged_results(), 0, "opening merges the log");
    for user in 0..50 {
        assert_eq!(find(&repo, user, "r1").await, Some(accepted(100 + user)));
    }
    assert_eq!(find(&repo, 7, "r2").await, None);
    db.close().await;
    assert_eq!(
        count(&path, "SELECT count(*) FROM auction_results_log").await,
        0,
        "merged rows leave the log"
    );
    assert_eq!(
        count(&results_path(&path), "SELECT count(*) FROM auction_results").await,
        50
    );
}

#[tokio::test]
async fn the_merger_moves_answers_and_the_first_answer_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bowchat.db");
    let options = SqliteOptions {
        results_merge_rows: 16,
        results_merge_interval: Duration::from_millis(20),
        results_prune_rows: 1_000,
        ..SqliteOptions::default()
    };
    let db = Db::open(&path, &options).await.unwrap();
    let repo = SqliteAuctionRepository::new(db.clone());
    for batch in 0..10 {
        let request = format!("r{batch}");
        store(
            &repo,
            (0..7)
                .map(|user| answer(user, &request, batch * 10 + user))
                .collect(),
        )
        .await;
    }
    wait_until_merged(&db).await;
    for batch in 0..10 {
        for user in 0..7 {
            assert_eq!(
                find(&repo, user, &format!("r{batch}")).await,
                Some(accepted(batch * 10 + user))
            );
        }
    }

    // A second answer to a merged request does not replace the first, before
    // its own merge or after it.
    store(&repo, vec![answer(3, "r4", 999)]).await;
    assert_eq!(find(&repo, 3, "r4").await, Some(accepted(43)));
    wait_until_merged(&db).await;
    assert_eq!(find(&repo, 3, "r4").await, Some(accepted(43)));

    // Within one batch and across unmerged batches the first answer stays too.
    store(&repo, vec![answer(8, "x", 1), answer(8, "x", 2)]).await;
    store(&repo, vec![answer(8, "x", 3)]).await;
    assert_eq!(find(&repo, 8, "x").await, Some(accepted(1)));
    wait_until_merged(&db).await;
    assert_eq!(find(&repo, 8, "x").await, Some(accepted(1)));

    // The next commit deletes what was merged from the log.
    store(&repo, Vec::new()).await;
    db.close().await;
    assert_eq!(
        count(&path, "SELECT count(*) FROM auction_results_log").await,
        0
    );
    assert_eq!(
        count(&results_path(&path), "SELECT count(*) FROM auction_results").await,
        71
    );
}

#[tokio::test]
async fn the_log_is_pruned_a_chunk_per_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bowchat.db");
    let options = SqliteOptions {
        results_merge_rows: 1_000,
        results_merge_interval: Duration::from_millis(20),
        results_prune_rows: 10,
        ..SqliteOptions::default()
    };
    let db = Db::open(&path, &options).await.unwrap();
    let repo = SqliteAuctionRepository::new(db.clone());
    store(&repo, (0..35).map(|user| answer(user, "r", user)).collect()).await;
    wait_until_merged(&db).await;
    for left in [25, 15, 5, 0, 0] {
        store(&repo, Vec::new()).await;
        assert_eq!(
            count(&path, "SELECT count(*) FROM auction_results_log").await,
            left
        );
    }
    db.close().await;
}

#[tokio::test]
async fn a_results_file_of_another_database_is_refused() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let path = ours.path().join("bowchat.db");
    let other = theirs.path().join("bowchat.db");
    for file in [&path, &other] {
        Db::open(file, &never_merging())
            .await
            .unwrap()
            .close()
            .await;
    }
    std::fs::copy(results_path(&other), results_path(&path)).unwrap();

    let refused = Db::open(&path, &never_merging())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&refused, StoreError::ForeignResults { path: shown } if shown.ends_with("bowchat.db-results")),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("another database"),
        "{refused}"
    );

    std::fs::remove_file(results_path(&path)).unwrap();
    Db::open(&path, &never_merging())
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn answers_and_auctions_stored_before_the_results_file_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bowchat.db");
    // The schema as it was before the results file: the first two migrations.
    let old = tempfile::tempdir().unwrap();
    for name in ["0001_init.sql", "0002_social_login.sql"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(name),
            old.path().join(name),
        )
        .unwrap();
    }
    {
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO auction_results (auction_id, user_id, request_id, result, created_at)
             VALUES (1, 4, 'early', ?, 1000)",
        )
        .bind(serde_json::to_string(&accepted(250)).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
        // An auction with a step and a global external id, as stored then:
        // the auctions table is rebuilt on the way up (externalId per seller).
        let state = serde_json::to_string(&bowchat_auction::engine::AuctionState::new(
            bowchat_store_suite::auction::terms(7),
            500,
        ))
        .unwrap();
        sqlx::query(
            "INSERT INTO auctions (id, title, description, seller, phase, state, external_id, created_at, updated_at)
             VALUES (1, 'lamp', '', 7, 'open', ?, 'k8s:uid-1', 500, 500)",
        )
        .bind(state)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("INSERT INTO auction_steps VALUES (1, 1, 4, 250, 0, 1000)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let db = Db::open(&path, &never_merging()).await.unwrap();
    let repo = SqliteAuctionRepository::new(db.clone());
    assert_eq!(find(&repo, 4, "early").await, Some(accepted(250)));
    let record = repo.get(1).await.unwrap().expect("the auction survives");
    assert_eq!((record.title.as_str(), record.version), ("lamp", 0));
    assert_eq!(
        record.bid_partitions, None,
        "pinned later by the auction role"
    );
    assert_eq!(
        repo.steps(1, Default::default(), 10).await.unwrap().len(),
        1
    );
    // Its external id is now the seller's own: another seller may use it.
    let mut other = bowchat_store_suite::auction::new_auction("chair", 8, Some("k8s:uid-1"));
    other.terms.starts_at = 0;
    assert_ne!(repo.create(other, 2_000).await.unwrap().id, 1);
    let mut same = bowchat_store_suite::auction::new_auction("again", 7, Some("k8s:uid-1"));
    same.terms.starts_at = 0;
    assert_eq!(repo.create(same, 2_000).await.unwrap().id, 1);
    db.close().await;
}
