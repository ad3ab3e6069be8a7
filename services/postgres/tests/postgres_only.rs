//! PostgreSQL-only behaviour on a real server: offsets stored with the batch
//! fence a stale owner, concurrent batches on one auction serialize,
//! migrations can run again, and pool settings reach every connection.

mod common;

use bowchat_auction::ports::{AuctionBatch, AuctionRepository, BusOffset, RepoError, StateWrite};
use bowchat_postgres::{is_fenced, PgAuctionRepository};
use bowchat_store_suite::auction::{bid_batch, new_auction};
use sqlx::Row;

const TOPIC: &str = "auction-bid";

fn offset(partition: u32, next_offset: u64) -> BusOffset {
    BusOffset {
        topic: TOPIC.into(),
        partition,
        next_offset,
    }
}

async fn step_count(repo: &PgAuctionRepository, auction: i64) -> usize {
    repo.steps(auction, Default::default(), 1_000)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_behind_the_stored_offsets_is_fenced_and_stores_nothing() {
    common::in_fresh_database(|url| async move {
        let store = common::connect(&url).await;
        let repo = store.auctions("bidders");
        let record = repo
            .create(new_auction("lamp", 1, None), 2_000)
            .await
            .unwrap();
        let mut state = record.state.clone();
        let mut first = bid_batch(record.id, 0, &mut state, &[(2, 100)], 3_000);
        first.offsets = vec![offset(0, 10), offset(3, 4)];
        repo.commit(&first).await.unwrap();
        assert_eq!(
            repo.offsets(TOPIC).await.unwrap(),
            vec![offset(0, 10), offset(3, 4)]
        );

        // A consumer that lost partition 0 after processing records up to 7
        // (or exactly the stored ones) from the old state.
        for stale_next in [8, 10] {
            let mut old = record.state.clone();
            let mut stale = bid_batch(record.id, 0, &mut old, &[(5, 500)], 3_500);
            stale.offsets = vec![offset(0, stale_next)];
            let err = repo.commit(&stale).await.unwrap_err();
            assert!(is_fenced(&err), "{err:?}");
            assert!(matches!(err, RepoError::Conflict(_)));
        }
        // A batch where only one of its partitions is behind is refused whole.
        let mut mixed = bid_batch(record.id, 1, &mut state.clone(), &[(3, 110)], 3_600);
        mixed.offsets = vec![offset(0, 11), offset(3, 2)];
        assert!(is_fenced(&repo.commit(&mixed).await.unwrap_err()));

        let stored = repo.get(record.id).await.unwrap().unwrap();
        assert_eq!(stored.state, state, "the fenced batches changed nothing");
        assert_eq!(step_count(&repo, record.id).await, 1);
        assert!(repo
            .find_results(&[
                (record.id, 5, "r3500-0".into()),
                (record.id, 3, "r3600-0".into()),
            ])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            repo.offsets(TOPIC).await.unwrap(),
            vec![offset(0, 10), offset(3, 4)]
        );

        // Moving forward works; another group keeps its own positions.
        let mut next = bid_batch(record.id, 1, &mut state, &[(3, 110)], 3_700);
        next.offsets = vec![offset(0, 11)];
        repo.commit(&next).await.unwrap();
        let other = store.auctions("replayer");
        other
            .commit(&AuctionBatch {
                offsets: vec![offset(0, 2)],
                ..AuctionBatch::default()
            })
            .await
            .unwrap();
        assert_eq!(other.offsets(TOPIC).await.unwrap(), vec![offset(0, 2)]);
        assert_eq!(
            repo.offsets(TOPIC).await.unwrap(),
            vec![offset(0, 11), offset(3, 4)]
        );
        assert!(repo.offsets("elsewhere").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_fences_the_previous_owner_even_when_it_moves_forward() {
    common::in_fresh_database(|url| async move {
        let store = common::connect(&url).await;
        let old_owner = store.auctions("bidders");
        let record = old_owner
            .create(new_auction("vase", 1, None), 2_000)
            .await
            .unwrap();
        assert_eq!(
            old_owner.claim(TOPIC, &[1, 0, 1]).await.unwrap(),
            vec![offset(0, 0), offset(1, 0)]
        );
        let mut state = record.state.clone();
        let mut batch = bid_batch(record.id, 0, &mut state, &[(2, 100)], 3_000);
        batch.offsets = vec![offset(1, 5)];
        old_owner.commit(&batch).await.unwrap();

        // A rebalance moves partition 1 to another process, which seeks to the stored offset.
        let new_owner = bowchat_postgres::PgStore::connect(&common::config(&url))
            .await
            .unwrap()
            .auctions("bidders");
        assert_eq!(
            new_owner.claim(TOPIC, &[1]).await.unwrap(),
            vec![offset(1, 5)]
        );

        // The old owner still has records 5.. buffered and would move forward: fenced.
        let mut stale_state = state.clone();
        let mut stale = bid_batch(record.id, 1, &mut stale_state, &[(3, 110)], 3_500);
        stale.offsets = vec![offset(1, 9)];
        let err = old_owner.commit(&stale).await.unwrap_err();
        assert!(is_fenced(&err), "{err:?}");
        // Its other partition is still its own.
        old_owner
            .commit(&AuctionBatch {
                offsets: vec![offset(0, 3)],
                ..AuctionBatch::default()
            })
            .await
            .unwrap();

        let mut fresh = bid_batch(record.id, 1, &mut state, &[(4, 120)], 3_600);
        fresh.offsets = vec![offset(1, 7)];
        new_owner.commit(&fresh).await.unwrap();
        let stored = new_owner.get(record.id).await.unwrap().unwrap();
        assert_eq!(stored.state, state);
        assert_eq!(stored.state.leader, Some(4));
        assert_eq!(step_count(&new_owner, record.id).await, 2);
        assert_eq!(
            new_owner.offsets(TOPIC).await.unwrap(),
            vec![offset(0, 3), offset(1, 7)]
        );

        // After releasing, the old owner is checked by offset only.
        old_owner.release(TOPIC, &[1]);
        let mut late = bid_batch(record.id, 2, &mut state.clone(), &[(3, 130)], 3_700);
        late.offsets = vec![offset(1, 6)];
        assert!(is_fenced(&old_owner.commit(&late).await.unwrap_err()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_on_one_auction_serialize() {
    common::in_fresh_database(|url| async move {
        let store = common::connect(&url).await;
        let repo = store.auctions("bidders");
        let mut winners = [0usize; 2];
        for round in 0..25u64 {
            let record = repo
                .create(new_auction(&format!("r{round}"), 1, None), 2_000)
                .await
                .unwrap();
            // Two owners build a batch from the same stored state: A takes two
            // records, B one, of the same partition.
            let base = round * 10;
            let mut state_a = record.state.clone();
            let mut a = bid_batch(record.id, 0, &mut state_a, &[(2, 100), (3, 110)], 3_000);
            a.offsets = vec![offset(0, base + 2)];
            let mut state_b = record.state.clone();
            let mut b = bid_batch(record.id, 0, &mut state_b, &[(4, 150)], 3_001);
            b.offsets = vec![offset(0, base + 1)];

            let (ra, rb) = tokio::join!(
                tokio::spawn({
                    let repo = repo.clone();
                    async move { repo.commit(&a).await }
                }),
                tokio::spawn({
                    let repo = repo.clone();
                    async move { repo.commit(&b).await }
                }),
            );
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert!(
                ra.is_ok() != rb.is_ok(),
                "round {round}: exactly one batch commits: {ra:?} {rb:?}"
            );
            // Refused by the partition's offsets, or by the auction's
            // version when the other batch stored first.
            for failed in [&ra, &rb].into_iter().filter_map(|r| r.as_ref().err()) {
                assert!(
                    matches!(
                        failed,
                        RepoError::Conflict(_) | RepoError::VersionConflict { .. }
                    ),
                    "{failed:?}"
                );
            }
            let (state, steps, next) = if ra.is_ok() {
                winners[0] += 1;
                (state_a, 2, base + 2)
            } else {
                winners[1] += 1;
                (state_b, 1, base + 1)
            };
            let stored = repo.get(record.id).await.unwrap().unwrap();
            assert_eq!(stored.state, state, "round {round}");
            assert_eq!(step_count(&repo, record.id).await, steps, "round {round}");
            assert_eq!(repo.offsets(TOPIC).await.unwrap(), vec![offset(0, next)]);
        }
        println!("winners (two-record batch, one-record batch): {winners:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racing_stale_batch_never_overwrites_a_newer_state() {
    common::in_fresh_database(|url| async move {
        let store = common::connect(&url).await;
        let repo = store.auctions("bidders");
        let mut stale_won = 0;
        for round in 0..25u64 {
            let record = repo
                .create(new_auction(&format!("r{round}"), 1, None), 2_000)
                .await
                .unwrap();
            let base = round * 10;
            // The current owner stores two bids (records base, base + 1).
            let mut state = record.state.clone();
            let mut current = bid_batch(record.id, 0, &mut state, &[(2, 100), (3, 110)], 3_000);
            current.offsets = vec![offset(0, base + 2)];
            // A stale owner answered record `base` with a rejection: no step,
            // but it would write back the state it read before the bids.
            let mut stale = AuctionBatch {
                states: vec![StateWrite {
                    auction_id: record.id,
                    read_version: 0,
                    state: record.state.clone(),
                }],
                offsets: vec![offset(0, base + 1)],
                ..AuctionBatch::default()
            };
            stale.results.push(bowchat_auction::ports::StoredResult {
                auction_id: record.id,
                user_id: 9,
                request_id: format!("stale-{round}"),
                result: bowchat_auction::messages::CommandResult::rejected(
                    "BID_TOO_LOW",
                    "low",
                    Some(100),
                    None,
                ),
            });
            let (rc, rs) = tokio::join!(
                tokio::spawn({
                    let repo = repo.clone();
                    async move { repo.commit(&current).await }
                }),
                tokio::spawn({
                    let repo = repo.clone();
                    async move { repo.commit(&stale).await }
                }),
            );
            match (rc.unwrap(), rs.unwrap()) {
                (Ok(()), Err(e)) => assert!(
                    is_fenced(&e) || matches!(e, RepoError::VersionConflict { .. }),
                    "round {round}: {e:?}"
                ),
                // The stale write got in first: the current owner's batch,
                // read before it, is refused by the version and decided again
                // on the stored state, as the role does.
                (Err(RepoError::VersionConflict { .. }), Ok(())) => {
                    stale_won += 1;
                    let stored = repo.get(record.id).await.unwrap().unwrap();
                    let mut again = stored.state.clone();
                    let mut retried = bid_batch(
                        record.id,
                        stored.version,
                        &mut again,
                        &[(2, 100), (3, 110)],
                        3_000,
                    );
                    retried.offsets = vec![offset(0, base + 2)];
                    repo.commit(&retried)
                        .await
                        .expect("decided again, it commits");
                    state = again;
                }
                other => panic!("round {round}: {other:?}"),
            }
            let stored = repo.get(record.id).await.unwrap().unwrap();
            assert_eq!(
                stored.state, state,
                "round {round}: the bids are never undone"
            );
            assert_eq!(step_count(&repo, record.id).await, 2);
            assert_eq!(
                repo.offsets(TOPIC).await.unwrap(),
                vec![offset(0, base + 2)]
            );
        }
        println!("stale batch committed first in {stale_won} of 25 rounds");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_of_different_partitions_commit_side_by_side() {
    common::in_fresh_database(|url| async move {
        let store = common::connect(&url).await;
        let mut tasks = Vec::new();
        for partition in 0..4u32 {
            let repo = store.auctions("bidders");
            repo.claim(TOPIC, &[partition]).await.unwrap();
            let record = repo
                .create(new_auction(&format!("p{partition}"), 1, None), 2_000)
                .await
                .unwrap();
            tasks.push(tokio::spawn(async move {
                let mut state = record.state.clone();
                for i in 0..30u64 {
                    let amount = 100 + 10 * i as i64;
                    let mut batch = bid_batch(
                        record.id,
                        i as i64,
                        &mut state,
                        &[(2 + i as i64 % 2, amount)],
                        3_000 + i as i64,
                    );
                    batch.offsets = vec![offset(partition, i + 1)];
                    repo.commit(&batch).await.unwrap();
                }
                (record.id, state)
            }));
        }
        let repo = store.auctions("bidders");
        for task in tasks {
            let (id, state) = task.await.unwrap();
            assert_eq!(repo.get(id).await.unwrap().unwrap().state, state);
            assert_eq!(step_count(&repo, id).await, 30);
        }
        let offsets = repo.offsets(TOPIC).await.unwrap();
        assert_eq!(offsets, (0..4).map(|p| offset(p, 30)).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent() {
    common::in_fresh_database(|url| async move {
        let first = common::connect(&url).await;
        let user = bowchat_auth::AuthRepository::create_user(
            &first.auth(),
            "ada@example.com",
            "Ada",
            None,
            1,
        )
        .await
        .unwrap();
        // Connecting again (three processes at once) applies nothing twice.
        let (a, b, c) = tokio::join!(
            common::connect(&url),
            common::connect(&url),
            common::connect(&url)
        );
        let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .count() as i64;
        for store in [&first, &a, &b, &c] {
            let row =
                sqlx::query("SELECT COUNT(*) AS n, BOOL_AND(success) AS ok FROM _sqlx_migrations")
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(row.get::<i64, _>("n"), migrations);
            assert!(row.get::<bool, _>("ok"));
            assert!(store.ping().await);
        }
        assert_eq!(
            bowchat_auth::AuthRepository::user(&c.auth(), user.id)
                .await
                .unwrap(),
            Some(user)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_apply_to_every_pooled_connection() {
    common::in_fresh_database(|url| async move {
        let config = bowchat_postgres::PgConfig {
            statement_timeout_ms: 300,
            application_name: "bowchat-settings-test".into(),
            ..common::config(&url)
        };
        let store = bowchat_postgres::PgStore::connect(&config).await.unwrap();
        let mut conns = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool().acquire().await.unwrap();
            let row = sqlx::query(
                "SELECT current_setting('statement_timeout') AS t, current_setting('application_name') AS a",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            assert_eq!(row.get::<String, _>("t"), "300ms");
            assert_eq!(row.get::<String, _>("a"), "bowchat-settings-test");
            conns.push(conn);
        }
        drop(conns);
        let slow = sqlx::query("SELECT pg_sleep(2)").execute(store.pool()).await;
        let err = slow.expect_err("the statement timeout cancels a slow query");
        assert!(err.to_string().contains("statement timeout"), "{err}");
        // A malformed URL is an error, not a panic.
        assert!(bowchat_postgres::PgStore::connect(&bowchat_postgres::PgConfig {
            url: "not a url".into(),
            ..config
        })
        .await
        .is_err());
    })
    .await;
}
