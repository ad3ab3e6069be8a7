//! Cluster mode across processes: two gateways and one worker (auction + chat)
//! on the real PostgreSQL and Kafka test servers. A bid sent to gateway A is
//! answered to its sender and broadcast to a watcher on gateway B; chat sent
//! through both gateways reaches both in one order; an auction's end (a
//! worker timer) is broadcast to the other gateway.

mod support;

use serde_json::{json, Value};
use support::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_and_chat_cross_gateways_in_one_order() {
    let started = std::time::Instant::now();
    let cluster = Cluster::new("gateways", 4).await;
    // The worker first: the first process creates the token signing key that
    // every gateway then shares through PostgreSQL.
    let worker = cluster.start("worker", "auction,chat");
    let gw_a = cluster.start("a", "gateway");
    let gw_b = cluster.start("b", "gateway");

    let seller = gw_a.user("seller").await;
    let bidder = gw_a.user("bidder").await;
    let watcher = gw_b.user("watcher").await;
    let auction = gw_a
        .auction(&seller, json!({"startingPrice": 100, "increment": 10}))
        .await;
    let id = auction["id"].as_i64().unwrap();

    // A short auction: its end is a timer in the worker, applied by the owner.
    // Long enough for the bid below to arrive before the end on a busy machine.
    let short = gw_a
        .auction(
            &seller,
            json!({"startingPrice": 100, "increment": 10, "durationSecs": 12}),
        )
        .await;
    let short = short["id"].as_i64().unwrap();

    let mut watch = gw_b.ws(&watcher.token).await;
    watch.subscribe_auction(id, None).await;
    watch.subscribe_auction(short, None).await;
    let mut bid_ws = gw_a.ws(&bidder.token).await;
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "x1", "auctionId": id, "amount": 150}))
        .await;
    let (result, _) = bid_ws
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "x1")
        .await;
    assert_eq!(result["accepted"], true, "{result}");
    assert_eq!(result["price"], 150, "{result}");
    let (update, _) = watch
        .until(|f| f["type"] == "AUCTION_UPDATE" && f["auction"]["price"] == 150)
        .await;
    assert_eq!(update["auction"]["leaderId"], bidder.id, "{update}");
    assert_eq!(update["steps"][0]["bidder"], bidder.id, "{update}");
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "s1", "auctionId": short, "amount": 100}))
        .await;
    let (result, _) = bid_ws
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "s1")
        .await;
    assert_eq!(result["accepted"], true, "{result}");

    // Chat: a member on each gateway sends concurrently; both see every
    // message once, in the same order, with gapless sequence numbers.
    let alice = gw_a.user("alice").await;
    let bob = gw_b.user("bob").await;
    let room = gw_a.group_room(&alice, "cross", &[&bob]).await;
    let mut a = gw_a.ws(&alice.token).await;
    let mut b = gw_b.ws(&bob.token).await;
    a.subscribe_room(room, None).await;
    b.subscribe_room(room, None).await;
    const EACH: usize = 20;
    for n in 0..EACH {
        a.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": format!("a{n}"), "body": format!("from a {n}")}))
            .await;
        b.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": format!("b{n}"), "body": format!("from b {n}")}))
            .await;
    }
    let seen_a = messages(&mut a, 2 * EACH).await;
    let seen_b = messages(&mut b, 2 * EACH).await;
    assert_eq!(seen_a, seen_b, "both gateways deliver one order");
    let seqs: Vec<i64> = seen_a.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=2 * EACH as i64).collect::<Vec<_>>());

    let (closed, _) = watch
        .until(|f| f["type"] == "AUCTION_CLOSED" && f["auction"]["id"] == short)
        .await;
    assert_eq!(closed["outcome"], "sold", "{closed}");
    assert_eq!(closed["winnerId"], bidder.id, "{closed}");

    // The PostgreSQL pool is measured like the SQLite pools.
    let metrics = reqwest::get(gw_a.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for state in ["idle", "in_use"] {
        let series = format!("bowchat_db_connections{{pool=\"postgres\",state=\"{state}\"}}");
        assert!(metrics.contains(&series), "{series} in /metrics");
    }

    drop((gw_a, gw_b, worker));
    cluster.finish().await;
    eprintln!("cluster gateways test took {:?}", started.elapsed());
}

/// The next `count` chat messages as (seq, clientMsgId).
async fn messages(ws: &mut support::Ws, count: usize) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        let (frame, _) = ws.until(|f: &Value| f["type"] == "CHAT_MESSAGE").await;
        out.push((
            frame["message"]["seq"].as_i64().unwrap(),
            frame["message"]["clientMsgId"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    out
}
