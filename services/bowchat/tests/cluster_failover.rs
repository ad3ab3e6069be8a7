//! Cluster mode: two auction workers share the auction-bid partitions; one is
//! SIGKILLed during a bidding burst. After the rebalance every acknowledged
//! bid is in PostgreSQL exactly once and each auction's stored state agrees
//! with its stored steps and results.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::cluster::{self, Cluster};
use tokio_tungstenite::tungstenite::Message;

const AUCTIONS: usize = 6;
const CLIENTS: usize = 6;
const BIDS_PER_AUCTION: i64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bids_survive_a_killed_worker_exactly_once() {
    let started = std::time::Instant::now();
    let cluster = Cluster::new("failover", 4).await;
    let mut w1 = cluster.start("w1", "auction,chat");
    let w2 = cluster.start("w2", "auction,chat");
    let gateway = cluster.start("gw", "gateway");

    let seller = gateway.user("seller").await;
    let mut ids = Vec::new();
    for _ in 0..AUCTIONS {
        let auction = gateway
            .auction(&seller, json!({"startingPrice": 100, "increment": 1}))
            .await;
        ids.push(auction["id"].as_i64().unwrap());
    }
    // Both workers own partitions before the burst (each logs its claim).
    cluster::wait_for_claims(&[&w1, &w2]).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Value)>();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let user = gateway.user(&format!("b{c}")).await;
        let ws = gateway.ws(&user.token).await;
        let (mut sink, mut stream) = ws.stream.split();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..BIDS_PER_AUCTION {
                for id in &ids {
                    let amount = 100 + n * 10 + c as i64;
                    let frame = json!({"type": "AUCTION_BID", "requestId": format!("{id}-{c}-{n}"), "auctionId": id, "amount": amount});
                    if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drop(sink);
            std::future::pending::<()>().await;
        }));
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            // Answers stop once everything sent was answered (or lost with the worker).
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(12), stream.next()).await
            {
                if let Message::Text(text) = message {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap();
                    if v["type"] == "BID_RESULT" {
                        let _ = tx.send((user.id, v));
                    }
                }
            }
        }));
    }
    drop(tx);
    let total = AUCTIONS * CLIENTS * BIDS_PER_AUCTION as usize;
    let mut acknowledged: HashMap<String, (i64, Value)> = HashMap::new();
    let mut killed = false;
    while let Some((user, result)) = rx.recv().await {
        acknowledged.insert(
            result["requestId"].as_str().unwrap().to_string(),
            (user, result),
        );
        if !killed && acknowledged.len() >= total / 4 {
            w1.kill();
            killed = true;
            eprintln!("killed w1 after {} acknowledgements", acknowledged.len());
        }
    }
    for task in tasks {
        task.abort();
    }
    assert!(killed);
    // The survivor was assigned the dead worker's partitions and claimed them.
    let claims = w2.log_lines("claimed partitions").len();
    assert!(claims >= 2, "w2 claimed partitions {claims} time(s)");
    let after_kill = acknowledged.len();
    eprintln!("{after_kill} of {total} bids acknowledged");
    // The survivor took over: bids after the kill were answered on every auction.
    assert!(
        after_kill > total / 2,
        "only {after_kill} of {total} answered"
    );

    let pg = cluster.pg().await;
    let mut accepted = 0;
    for (request_id, (user, result)) in &acknowledged {
        if result["accepted"] != true {
            continue;
        }
        accepted += 1;
        let parts: Vec<i64> = request_id.split('-').map(|p| p.parse().unwrap()).collect();
        let (id, c, n) = (parts[0], parts[1], parts[2]);
        let amount = 100 + n * 10 + c;
        let count = cluster::stored_steps(&pg, id, *user, amount).await;
        assert_eq!(
            count, 1,
            "acknowledged bid {request_id} stored exactly once"
        );
    }
    assert!(accepted > 0);
    cluster::assert_auction_invariants(&pg, &ids).await;
    pg.close().await;
    drop((gateway, w2));
    cluster.finish().await;
    eprintln!("cluster failover test took {:?}", started.elapsed());
}
