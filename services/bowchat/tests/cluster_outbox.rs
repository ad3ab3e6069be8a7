//! A stored fact reaches the gateways also when its role could not publish it:
//! black-box tests of the fact outbox on the real PostgreSQL and Kafka test
//! servers, with a worker process apart from the gateway. Debug builds switch
//! on the failure (`BOWCHAT_DEBUG_FAULT`, services/bowchat/src/fault.rs): the
//! role's publish fails after its commit, as it does when the broker stays
//! away longer than the producer's delivery timeout, or the worker dies
//! between its commit and its publish. The watchers stay connected to the
//! gateway throughout and never subscribe again: what they get, the relay sent.

mod support;

use serde_json::json;
use support::cluster::Cluster;
use support::Server;

/// Waits until `bowchat_outbox_relayed_total{source}` of `server` counts at
/// least one entry. The relay counts an entry after it removed it, which is
/// after the gateways may already have delivered what it published, so the
/// count is awaited rather than read once.
async fn relayed(server: &Server, source: &str) {
    let series = format!("bowchat_outbox_relayed_total{{source=\"{source}\"}} ");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let count: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if count >= 1 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {source} relay of {} counted nothing in 30 s",
            server.url("")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_whose_publish_failed_are_relayed() {
    let cluster = Cluster::new("outbox_lost", 2).await;
    let settings = [
        ("BOWCHAT_OUTBOX__RELAY_AFTER_MS", "1000"),
        ("BOWCHAT_OUTBOX__RELAY_INTERVAL_MS", "200"),
        // One failed publish is final (no retry hides the failure).
        ("BOWCHAT_CHAT__COMMIT_RETRIES", "0"),
    ];
    let auction_worker = cluster.start_with(
        "auction-worker",
        "auction",
        &[
            settings.as_slice(),
            &[("BOWCHAT_DEBUG_FAULT", "lose-facts-in-auction-role")],
        ]
        .concat(),
    );
    let chat_worker = cluster.start_with(
        "chat-worker",
        "chat",
        &[
            settings.as_slice(),
            &[("BOWCHAT_DEBUG_FAULT", "lose-facts-in-chat-role")],
        ]
        .concat(),
    );
    let gateway = cluster.start("gw", "gateway");
    // The auction role claims its partitions in PostgreSQL; the chat role's
    // group starts from the earliest offset, so nothing sent is missed.
    support::cluster::wait_for_claims(&[&auction_worker]).await;

    // Auctions: the first batch's facts are lost at publish; the watcher
    // still sees the price step, and the bidder's retry gets the stored answer.
    let seller = gateway.user("seller").await;
    let bidder = gateway.user("bidder").await;
    let watcher = gateway.user("watcher").await;
    let id = gateway
        .auction(&seller, json!({"startingPrice": 100, "increment": 10}))
        .await["id"]
        .as_i64()
        .unwrap();
    let mut watch = gateway.ws(&watcher.token).await;
    watch.subscribe_auction(id, None).await;
    let mut bid_ws = gateway.ws(&bidder.token).await;
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "lost-1", "auctionId": id, "amount": 150}))
        .await;
    let (update, _) = watch
        .until(|f| f["type"] == "AUCTION_UPDATE" && f["auction"]["price"] == 150)
        .await;
    assert_eq!(update["auction"]["leaderId"], bidder.id, "{update}");
    assert_eq!(update["steps"][0]["amount"], 150, "{update}");
    relayed(&auction_worker, "auction").await;
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "lost-1", "auctionId": id, "amount": 150}))
        .await;
    let (answer, before) = bid_ws
        .until(|f| {
            f["type"] == "BID_RESULT" && f["requestId"] == "lost-1" && f["duplicate"] == true
        })
        .await;
    assert_eq!(answer["accepted"], true, "{answer}");
    assert!(
        !before
            .iter()
            .any(|f| f["type"] == "BID_RESULT" && f["duplicate"] == false),
        "the first answer was lost with the batch's publish, so the update came from the relay: {before:?}"
    );
    // Later batches publish as usual.
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "next", "auctionId": id, "amount": 200}))
        .await;
    watch
        .until(|f| f["type"] == "AUCTION_UPDATE" && f["auction"]["price"] == 200)
        .await;

    // Chat: the first message's facts are lost at publish; the other member
    // still gets it, once, in sequence.
    let alice = gateway.user("alice").await;
    let bob = gateway.user("bob").await;
    let room = gateway.group_room(&alice, "outbox", &[&bob]).await;
    let mut a = gateway.ws(&alice.token).await;
    let mut b = gateway.ws(&bob.token).await;
    a.subscribe_room(room, None).await;
    b.subscribe_room(room, None).await;
    a.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": "m1", "body": "first"}))
        .await;
    let (message, _) = b.until(|f| f["type"] == "CHAT_MESSAGE").await;
    assert_eq!(message["message"]["seq"], 1, "{message}");
    assert_eq!(message["message"]["body"], "first", "{message}");
    relayed(&chat_worker, "chat").await;
    a.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": "m2", "body": "second"}))
        .await;
    let (message, _) = b.until(|f| f["type"] == "CHAT_MESSAGE").await;
    assert_eq!(
        message["message"]["seq"], 2,
        "no copy of seq 1 comes after it: {message}"
    );

    drop((gateway, auction_worker, chat_worker));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_of_a_worker_that_died_before_publishing_are_relayed_by_the_next() {
    let cluster = Cluster::new("outbox_died", 1).await;
    let settings = [
        ("BOWCHAT_OUTBOX__RELAY_AFTER_MS", "1000"),
        ("BOWCHAT_OUTBOX__RELAY_INTERVAL_MS", "200"),
    ];
    let mut doomed = cluster.start_with(
        "doomed",
        "auction,chat",
        &[
            settings.as_slice(),
            &[("BOWCHAT_DEBUG_FAULT", "die-before-publish-in-auction-role")],
        ]
        .concat(),
    );
    let gateway = cluster.start("gw", "gateway");
    support::cluster::wait_for_claims(&[&doomed]).await;

    let seller = gateway.user("seller").await;
    let bidder = gateway.user("bidder").await;
    let watcher = gateway.user("watcher").await;
    let id = gateway
        .auction(&seller, json!({"startingPrice": 100, "increment": 10}))
        .await["id"]
        .as_i64()
        .unwrap();
    let mut watch = gateway.ws(&watcher.token).await;
    watch.subscribe_auction(id, None).await;
    let mut bid_ws = gateway.ws(&bidder.token).await;
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "d1", "auctionId": id, "amount": 170}))
        .await;
    // The worker stores the bid, then dies where it would publish.
    let status = doomed
        .exit_within(std::time::Duration::from_secs(30))
        .await
        .expect("the worker dies at its first publish");
    assert!(!status.success(), "{status:?}");

    let next = cluster.start_with("next", "auction,chat", &settings);
    let (update, _) = watch
        .until(|f| f["type"] == "AUCTION_UPDATE" && f["auction"]["price"] == 170)
        .await;
    assert_eq!(update["auction"]["leaderId"], bidder.id, "{update}");
    relayed(&next, "auction").await;
    // The bid was stored before the death: its retry is answered from storage.
    bid_ws
        .send(json!({"type": "AUCTION_BID", "requestId": "d1", "auctionId": id, "amount": 170}))
        .await;
    let (answer, _) = bid_ws
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "d1" && f["duplicate"] == true)
        .await;
    assert_eq!(answer["accepted"], true, "{answer}");

    drop((gateway, next));
    cluster.finish().await;
}
