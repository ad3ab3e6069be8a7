//! The auction role end to end on the embedded adapters (the in-process bus
//! and SQLite in a temporary folder): retries inside one batch get the first
//! answer, refused answers expire after the idempotency window, driven by an
//! injected clock, while accepted ones stay, and a batch that loses to
//! another writer is decided again on the stored state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bowchat_auction::engine::{AuctionTerms, IncrementRule};
use bowchat_auction::messages::{Action, AuctionCommand, AuctionFact, CommandResult};
use bowchat_auction::ports::{AuctionRepository, NewAuction};
use bowchat_auction::results_expiry::ResultsExpiry;
use bowchat_auction::role::{AuctionRole, AuctionRoleConfig};
use bowchat_bus::{topics, Bus, Consumer, InProcessBus};
use bowchat_model::{now_millis, Origin, UserId};
use bowchat_store::{Db, SqliteAuctionRepository, SqliteOptions};
use bytes::Bytes;

fn bid(auction: i64, user: UserId, request_id: &str, amount: i64) -> AuctionCommand {
    AuctionCommand {
        auction_id: auction,
        user_id: user,
        origin: Origin {
            gateway: "g".into(),
            conn: 1,
            request_id: request_id.into(),
        },
        action: Action::Bid {
            amount,
            currency: None,
        },
    }
}

async fn publish(bus: &InProcessBus, commands: &[AuctionCommand]) {
    for cmd in commands {
        let json = Bytes::from(serde_json::to_vec(cmd).unwrap());
        bus.publish(topics::AUCTION_BID, &cmd.auction_id.to_string(), json)
            .await
            .unwrap();
    }
}

/// The next `n` answers, in the order they came: (request id, result, duplicate).
async fn answers(events: &mut Box<dyn Consumer>, n: usize) -> Vec<(String, CommandResult, bool)> {
    let mut out = Vec::new();
    while out.len() < n {
        let records = tokio::time::timeout(Duration::from_secs(10), events.poll(1000))
            .await
            .expect("answers arrive")
            .unwrap();
        for record in records {
            if let AuctionFact::Result {
                origin,
                result,
                duplicate,
                ..
            } = serde_json::from_slice(&record.payload).unwrap()
            {
                out.push((origin.request_id, result, duplicate));
            }
        }
    }
    out
}

struct Setup {
    repo: Arc<SqliteAuctionRepository>,
    bus: Arc<InProcessBus>,
    auction: i64,
    events: Box<dyn Consumer>,
    role_input: Box<dyn Consumer>,
    _dir: tempfile::TempDir,
}

/// An open auction (starting price 100, increment 10), the bus, and the
/// role's consumer, subscribed but not yet polled.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("bowchat.db"), &SqliteOptions::default())
        .await
        .unwrap();
    let repo = Arc::new(SqliteAuctionRepository::new(db));
    let now = now_millis();
    let terms = AuctionTerms {
        seller: 1,
        currency: "EUR".into(),
        starting_price: 100,
        increment: IncrementRule::Fixed { amount: 10 },
        reserve: None,
        buy_now: None,
        starts_at: now - 1_000,
        ends_at: now + 3_600_000,
        soft_close: None,
    };
    let auction = repo
        .create(
            NewAuction {
                title: "lamp".into(),
                description: String::new(),
                terms,
                external_id: None,
                bid_partitions: Some(4),
            },
            now,
        )
        .await
        .unwrap()
        .id;
    let dlt = topics::dead_letter(topics::AUCTION_BID);
    let bus = Arc::new(InProcessBus::new(
        &[
            (topics::AUCTION_BID, 4),
            (topics::AUCTION_EVENT, 4),
            (dlt.as_str(), 1),
        ],
        10_000,
    ));
    let events = bus
        .subscribe(topics::AUCTION_EVENT, "gateway")
        .await
        .unwrap();
    let role_input = bus
        .subscribe(topics::AUCTION_BID, &AuctionRoleConfig::default().group)
        .await
        .unwrap();
    Setup {
        repo,
        bus,
        auction,
        events,
        role_input,
        _dir: dir,
    }
}

fn start_role(setup: &mut Setup) {
    let consumer = std::mem::replace(&mut setup.role_input, Box::new(Closed));
    let mut role = AuctionRole::new(
        setup.repo.clone(),
        setup.bus.clone(),
        AuctionRoleConfig::default(),
    );
    tokio::spawn(async move { role.run_with(consumer).await });
}

/// Stands in for the consumer once the role owns the real one.
struct Closed;

#[async_trait::async_trait]
impl Consumer for Closed {
    async fn poll(
        &mut self,
        _max: usize,
    ) -> Result<Vec<bowchat_bus::Record>, bowchat_bus::BusError> {
        Err(bowchat_bus::BusError::Closed)
    }
    async fn commit(
        &mut self,
        _records: &[bowchat_bus::Record],
    ) -> Result<(), bowchat_bus::BusError> {
        Err(bowchat_bus::BusError::Closed)
    }
}

fn version_conflicts() -> f64 {
    prometheus::gather()
        .into_iter()
        .find(|f| f.name() == "bowchat_auction_version_conflicts_total")
        .map(|f| f.get_metric()[0].get_counter().value())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_loses_to_another_writer_is_decided_again_on_the_stored_state() {
    let mut s = setup().await;
    start_role(&mut s);
    publish(&s.bus, &[bid(s.auction, 2, "a", 100)]).await;
    let got = answers(&mut s.events, 1).await;
    assert!(got[0].1.accepted, "{got:?}");
    let conflicts_before = version_conflicts();

    // A second writer (a worker that owns the auction's new partition, say)
    // stores a bid of 300 over the version the role has cached.
    let stored = s.repo.get(s.auction).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    let mut state = stored.state.clone();
    let elsewhere = bowchat_store_suite::auction::bid_batch(
        s.auction,
        stored.version,
        &mut state,
        &[(4, 300)],
        now_millis(),
    );
    s.repo.commit(&elsewhere).await.unwrap();

    // On its cached state (price 100) the role would accept 110 and write
    // over the 300. Its commit is refused; decided again, 110 is too low.
    publish(&s.bus, &[bid(s.auction, 3, "b", 110)]).await;
    let got = answers(&mut s.events, 1).await;
    assert_eq!(got[0].0, "b");
    assert!(!got[0].1.accepted, "{got:?}");
    assert_eq!(got[0].1.code.as_deref(), Some("BID_TOO_LOW"));
    assert_eq!(got[0].1.minimum, Some(310));
    assert!(
        version_conflicts() > conflicts_before,
        "the conflict is counted"
    );
    let stored = s.repo.get(s.auction).await.unwrap().unwrap();
    assert_eq!(
        stored.state.price,
        Some(300),
        "the other writer's bid stands"
    );
    assert_eq!(stored.version, 2, "a refusal writes no state");
    let steps = s
        .repo
        .steps(s.auction, Default::default(), 50)
        .await
        .unwrap();
    assert_eq!(
        steps.iter().map(|st| st.amount).collect::<Vec<_>>(),
        vec![100, 300]
    );

    // The role goes on from the stored state.
    publish(&s.bus, &[bid(s.auction, 3, "c", 310)]).await;
    let got = answers(&mut s.events, 1).await;
    assert!(got[0].1.accepted, "{got:?}");
    assert_eq!(got[0].1.price, Some(310));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_in_one_batch_get_the_first_answer_and_refusals_expire_after_the_window() {
    let mut s = setup().await;
    let (auction, repo) = (s.auction, s.repo.clone());
    // Published before the role polls: its first poll takes all four, so
    // each retry meets its first answer inside the same batch.
    publish(
        &s.bus,
        &[
            bid(auction, 2, "first", 100),
            bid(auction, 2, "first", 100),
            bid(auction, 3, "low", 50),
            bid(auction, 3, "low", 50),
        ],
    )
    .await;
    start_role(&mut s);

    let got = answers(&mut s.events, 4).await;
    let flags: Vec<(&str, bool, bool)> = got
        .iter()
        .map(|(id, result, duplicate)| (id.as_str(), result.accepted, *duplicate))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("first", true, false),
            ("first", true, true),
            ("low", false, false),
            ("low", false, true),
        ]
    );
    assert_eq!(got[0].1, got[1].1, "the retry gets the first answer");
    assert_eq!(got[2].1, got[3].1);
    assert_eq!(got[2].1.code.as_deref(), Some("BID_TOO_LOW"));
    let steps = repo.steps(auction, Default::default(), 50).await.unwrap();
    assert_eq!(steps.len(), 1, "one bid placed: {steps:?}");

    // The clock is injected: inside the window nothing goes, after it the
    // refusal does and the accepted answer stays.
    let expiry = ResultsExpiry {
        window: Duration::from_secs(3600),
        ..ResultsExpiry::default()
    };
    let stored_at = now_millis();
    assert_eq!(
        expiry
            .sweep(repo.as_ref(), stored_at + 3_000_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        expiry
            .sweep(repo.as_ref(), stored_at + 3_700_000)
            .await
            .unwrap(),
        1
    );

    // "low" is a new command now and is evaluated again; "first" still
    // answers as the first time and places nothing.
    publish(
        &s.bus,
        &[bid(auction, 3, "low", 120), bid(auction, 2, "first", 500)],
    )
    .await;
    let got: HashMap<String, (CommandResult, bool)> = answers(&mut s.events, 2)
        .await
        .into_iter()
        .map(|(id, result, duplicate)| (id, (result, duplicate)))
        .collect();
    assert!(!got["low"].1, "expired: answered anew");
    assert!(got["low"].0.accepted, "{:?}", got["low"]);
    assert!(got["first"].1, "accepted answers outlive the window");
    assert_eq!(got["first"].0.price, Some(100));
    let steps = repo.steps(auction, Default::default(), 50).await.unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
}
