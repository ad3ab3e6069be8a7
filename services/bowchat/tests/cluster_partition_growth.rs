//! One writer per auction on real Kafka and PostgreSQL, as black-box tests of
//! the binary: the bid topic grows from 2 to 6 partitions in the middle of a
//! 1000-bid burst over two workers, and a second writer is forced onto one
//! auction by hand-made records on the partition it does not live on. Every
//! acknowledged bid is stored once, stored amounts rise by at least the
//! increment, and the lost batches are counted, never applied over.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bowchat_auction::messages::{Action, AuctionCommand};
use bowchat_bus::{partition_for, topics, Bus};
use bowchat_model::Origin;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::cluster::{self, Cluster};
use support::{Server, User};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const INCREMENT: i64 = 10;

/// An acknowledged bid: the bidder, the amount it offered and the answer.
struct Ack {
    user: i64,
    amount: i64,
    frame: Value,
}

/// A bidder's socket split into a sender and a task that hands every
/// `BID_RESULT` to `acks`.
async fn bidder(
    gateway: &Server,
    user: &User,
    acks: mpsc::UnboundedSender<(i64, Value)>,
) -> futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
> {
    let ws = gateway.ws(&user.token).await;
    let (sink, mut stream) = ws.stream.split();
    let id = user.id;
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["type"] == "BID_RESULT" && acks.send((id, v)).is_err() {
                    return;
                }
            }
        }
    });
    sink
}

async fn send_bid(
    sink: &mut futures::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    request_id: &str,
    auction: i64,
    amount: i64,
) {
    let frame = json!({"type": "AUCTION_BID", "requestId": request_id, "auctionId": auction, "amount": amount});
    sink.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send a bid");
}

/// Receives answers until `expected` request ids are answered.
async fn collect(
    acks: &mut mpsc::UnboundedReceiver<(i64, Value)>,
    into: &mut HashMap<String, Ack>,
    amounts: &HashMap<String, i64>,
    expected: usize,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while into.len() < expected {
        let next = tokio::time::timeout_at(deadline, acks.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} bids answered", into.len()))
            .expect("answers flow");
        let (user, frame) = next;
        let request_id = frame["requestId"].as_str().unwrap().to_string();
        let amount = amounts[&request_id];
        into.insert(
            request_id,
            Ack {
                user,
                amount,
                frame,
            },
        );
    }
}

/// Every acknowledged accepted bid is stored exactly once, and each auction's
/// stored amounts rise by at least the increment.
async fn verify(pg: &PgPool, acknowledged: &HashMap<String, Ack>, ids: &[i64]) -> usize {
    let mut accepted = 0;
    for (request_id, ack) in acknowledged {
        if ack.frame["accepted"] != true {
            continue;
        }
        accepted += 1;
        let auction = ack.frame["auctionId"].as_i64().unwrap();
        assert_eq!(
            cluster::stored_steps(pg, auction, ack.user, ack.amount).await,
            1,
            "acknowledged bid {request_id} stored exactly once"
        );
    }
    for id in ids {
        let amounts: Vec<i64> = sqlx::query_scalar(
            "SELECT amount FROM auction_steps WHERE auction_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(pg)
        .await
        .unwrap();
        for pair in amounts.windows(2) {
            assert!(
                pair[1] >= pair[0] + INCREMENT,
                "auction {id}: {} after {} rises by less than the increment",
                pair[1],
                pair[0]
            );
        }
    }
    cluster::assert_auction_invariants(pg, ids).await;
    accepted
}

async fn pinned(pg: &PgPool, id: i64) -> Option<i32> {
    sqlx::query_scalar("SELECT bid_partitions FROM auctions WHERE id = $1")
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap()
}

/// The conflict counter of a worker, from its /metrics.
async fn version_conflicts(worker: &Server) -> f64 {
    let text = reqwest::get(worker.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("bowchat_auction_version_conflicts_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_the_bid_topic_mid_burst_splits_no_auction() {
    const AUCTIONS: usize = 4;
    const CLIENTS: usize = 5;
    const ROUNDS: i64 = 50; // 4 auctions x 5 clients x 50 = 1000 bids
    let cluster = Cluster::new("growth", 2).await;
    let w1 = cluster.start("w1", "auction,chat");
    let w2 = cluster.start("w2", "auction,chat");
    let gateway = cluster.start("gw", "gateway");
    let pg = cluster.pg().await;

    let seller = gateway.user("seller").await;
    let mut ids = Vec::new();
    for _ in 0..AUCTIONS {
        let auction = gateway
            .auction(
                &seller,
                json!({"startingPrice": 100, "increment": INCREMENT}),
            )
            .await;
        ids.push(auction["id"].as_i64().unwrap());
    }
    for id in &ids {
        assert_eq!(
            pinned(&pg, *id).await,
            Some(2),
            "auction {id} pinned at creation"
        );
    }
    cluster::wait_for_claims(&[&w1, &w2]).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sinks = Vec::new();
    for c in 0..CLIENTS {
        let user = gateway.user(&format!("b{c}")).await;
        sinks.push(bidder(&gateway, &user, tx.clone()).await);
    }
    let mut amounts: HashMap<String, i64> = HashMap::new();
    let mut acknowledged: HashMap<String, Ack> = HashMap::new();
    // The first half goes out at once; the topic grows while it is processed.
    let mut sent = 0;
    for half in 0..2 {
        for n in half * ROUNDS / 2..(half + 1) * ROUNDS / 2 {
            for (c, sink) in sinks.iter_mut().enumerate() {
                for id in &ids {
                    let amount = 100 + (n * CLIENTS as i64 + c as i64) * INCREMENT;
                    let request_id = format!("{id}-{c}-{n}");
                    send_bid(sink, &request_id, *id, amount).await;
                    amounts.insert(request_id, amount);
                    sent += 1;
                }
            }
        }
        if half == 0 {
            collect(&mut rx, &mut acknowledged, &amounts, sent / 4).await;
            let grow = tokio::task::block_in_place(|| {
                cluster.admin(&["topics", "grow", "--partitions", "6"])
            });
            let printed = String::from_utf8_lossy(&grow.stdout).to_string();
            assert!(
                grow.status.success(),
                "grow: {printed}{}",
                String::from_utf8_lossy(&grow.stderr)
            );
            assert!(
                printed.contains(&format!(
                    "{AUCTIONS} live auctions pinned keep their partitions"
                )),
                "{printed}"
            );
            assert!(
                printed.contains("auction-bid: 2 -> 6 partitions"),
                "{printed}"
            );
            eprintln!(
                "grew the topics after {} of {sent} answers",
                acknowledged.len()
            );
        }
    }
    collect(&mut rx, &mut acknowledged, &amounts, sent).await;
    assert_eq!(sent, 1000);

    // An auction created after the growth is pinned to a count the topic has.
    let late = gateway
        .auction(
            &seller,
            json!({"startingPrice": 100, "increment": INCREMENT}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let late_pin = pinned(&pg, late).await.expect("pinned");
    assert!((2..=6).contains(&late_pin), "{late_pin}");
    for (c, sink) in sinks.iter_mut().enumerate() {
        let request_id = format!("{late}-{c}-late");
        let amount = 100 + c as i64 * INCREMENT;
        send_bid(sink, &request_id, late, amount).await;
        amounts.insert(request_id, amount);
    }
    collect(&mut rx, &mut acknowledged, &amounts, sent + CLIENTS).await;
    ids.push(late);

    let accepted = verify(&pg, &acknowledged, &ids).await;
    assert!(accepted > 0);
    eprintln!(
        "{accepted} of {} bids accepted; version conflicts: w1 {}, w2 {}",
        acknowledged.len(),
        version_conflicts(&w1).await,
        version_conflicts(&w2).await
    );
    pg.close().await;
    drop((gateway, w1, w2));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_forced_onto_an_auction_loses_and_nothing_is_lost() {
    let cluster = Cluster::new("twowriters", 2).await;
    let w1 = cluster.start("w1", "auction,chat");
    let w2 = cluster.start("w2", "auction,chat");
    let gateway = cluster.start("gw", "gateway");
    let pg = cluster.pg().await;
    let seller = gateway.user("seller").await;
    let intruder = gateway.user("intruder").await;
    // An auction that lives on partition 1, so that records mapped over one
    // partition (partition 0) reach the other worker.
    let id = loop {
        let auction = gateway
            .auction(
                &seller,
                json!({"startingPrice": 100, "increment": INCREMENT}),
            )
            .await;
        let id = auction["id"].as_i64().unwrap();
        if partition_for(&id.to_string(), 2) == 1 {
            break id;
        }
    };
    cluster::wait_for_claims(&[&w1, &w2]).await;

    let config = bowchat_kafka::KafkaConfig {
        bootstrap: cluster.bootstrap.clone(),
        topic_prefix: cluster.prefix.clone(),
        ..Default::default()
    };
    let bus = bowchat_kafka::KafkaBus::new(config).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let bidder_user = gateway.user("bidder").await;
    let mut sink = bidder(&gateway, &bidder_user, tx).await;
    let mut amounts: HashMap<String, i64> = HashMap::new();
    let mut acknowledged: HashMap<String, Ack> = HashMap::new();
    let mut n = 0i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Both writers bid on the auction at once, until a batch loses.
    loop {
        for _ in 0..20 {
            let amount = 100 + n * 2 * INCREMENT;
            let request_id = format!("ws-{n}");
            send_bid(&mut sink, &request_id, id, amount).await;
            amounts.insert(request_id, amount);
            let handmade = AuctionCommand {
                auction_id: id,
                user_id: intruder.id,
                origin: Origin {
                    gateway: "handmade".into(),
                    conn: 0,
                    request_id: format!("hand-{n}"),
                },
                action: Action::Bid {
                    amount: amount + INCREMENT,
                    currency: None,
                },
            };
            bus.publish_pinned(
                topics::AUCTION_BID,
                &id.to_string(),
                1,
                bytes::Bytes::from(serde_json::to_vec(&handmade).unwrap()),
            )
            .await
            .expect("publish a hand-made record");
            n += 1;
        }
        collect(&mut rx, &mut acknowledged, &amounts, n as usize).await;
        if version_conflicts(&w1).await + version_conflicts(&w2).await > 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no batch lost to the other writer in {n} rounds"
        );
    }
    let conflicts = version_conflicts(&w1).await + version_conflicts(&w2).await;
    eprintln!("{conflicts} lost batches after {n} bids from each writer");
    // Each hand-made bid outbids the bidder's of its round, so every bidder's
    // bid may have been refused. One last bid above all of them is accepted
    // whichever writer decides it: the check below is never vacuous.
    let top = 100 + (2 * n + 2) * INCREMENT;
    send_bid(&mut sink, "ws-top", id, top).await;
    amounts.insert("ws-top".into(), top);
    collect(&mut rx, &mut acknowledged, &amounts, n as usize + 1).await;
    assert_eq!(
        acknowledged["ws-top"].frame["accepted"], true,
        "{}",
        acknowledged["ws-top"].frame
    );

    let accepted = verify(&pg, &acknowledged, &[id]).await;
    assert!(accepted > 0);
    // The hand-made bids that were accepted are stored too, once each.
    let intruders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auction_steps WHERE auction_id = $1 AND bidder = $2",
    )
    .bind(id)
    .bind(intruder.id)
    .fetch_one(&pg)
    .await
    .unwrap();
    eprintln!("{accepted} acknowledged bids accepted, {intruders} hand-made ones stored");
    pg.close().await;
    drop((gateway, w1, w2));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_that_would_move_an_unpinned_live_auction_is_refused_unless_forced() {
    let cluster = Cluster::new("unpinned", 2).await;
    let worker = cluster.start("w1", "auction,chat");
    let gateway = cluster.start("gw", "gateway");
    let pg = cluster.pg().await;
    let seller = gateway.user("seller").await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        let auction = gateway
            .auction(
                &seller,
                json!({"startingPrice": 100, "increment": INCREMENT}),
            )
            .await;
        ids.push(auction["id"].as_i64().unwrap());
    }
    // As if they were created before pinning (and no auction role of this
    // version had started since).
    sqlx::query("UPDATE auctions SET bid_partitions = NULL")
        .execute(&pg)
        .await
        .unwrap();
    let movers: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| partition_for(&id.to_string(), 2) != partition_for(&id.to_string(), 6))
        .collect();
    assert!(!movers.is_empty(), "some of {ids:?} move from 2 to 6");

    let refused =
        tokio::task::block_in_place(|| cluster.admin(&["topics", "grow", "--partitions", "6"]));
    let stderr = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{} live auctions have no pinned partition count",
            movers.len()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    let grown = tokio::task::block_in_place(|| {
        cluster.admin(&["topics", "grow", "--partitions", "6", "--force"])
    });
    let stdout = String::from_utf8_lossy(&grown.stdout).to_string();
    assert!(
        grown.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&grown.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "--force: {} unpinned live auctions move",
            movers.len()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("auction-bid: 2 -> 6 partitions"),
        "{stdout}"
    );
    pg.close().await;
    drop((gateway, worker));
    cluster.finish().await;
}
