//! The auction role end to end on the embedded adapters (the in-process bus
//! and SQLite in a temporary folder): retries inside one batch get the first
//! answer, and refused answers expire after the idempotency window, driven by
//! an injected clock, while accepted ones stay.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_in_one_batch_get_the_first_answer_and_refusals_expire_after_the_window() {
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
    let mut events = bus
        .subscribe(topics::AUCTION_EVENT, "gateway")
        .await
        .unwrap();
    let config = AuctionRoleConfig::default();
    let consumer = bus
        .subscribe(topics::AUCTION_BID, &config.group)
        .await
        .unwrap();
    // Published before the role polls: its first poll takes all four, so
    // each retry meets its first answer inside the same batch.
    publish(
        &bus,
        &[
            bid(auction, 2, "first", 100),
            bid(auction, 2, "first", 100),
            bid(auction, 3, "low", 50),
            bid(auction, 3, "low", 50),
        ],
    )
    .await;
    let mut role = AuctionRole::new(repo.clone(), bus.clone(), config);
    tokio::spawn(async move { role.run_with(consumer).await });

    let got = answers(&mut events, 4).await;
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
        &bus,
        &[bid(auction, 3, "low", 120), bid(auction, 2, "first", 500)],
    )
    .await;
    let got: HashMap<String, (CommandResult, bool)> = answers(&mut events, 2)
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
