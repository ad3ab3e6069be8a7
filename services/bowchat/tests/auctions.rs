//! Black-box auction tests: the real binary, real WebSocket clients.

mod support;

use std::collections::HashMap;

use bowchat_auction::engine::{AuctionState, AuctionTerms, Command, IncrementRule};
use serde_json::{json, Value};
use support::{Server, User, Ws};

async fn all_steps(server: &Server, id: i64, token: &str) -> Vec<Value> {
    let mut steps = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = server
            .get(
                &format!("/api/auctions/{id}/bids?after={after}&limit=200"),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return steps;
        }
        after = items.last().unwrap()["seq"].as_i64().unwrap();
        steps.extend(items);
    }
}

async fn bid(ws: &mut Ws, auction: i64, request_id: &str, amount: i64) -> Value {
    ws.send(json!({"type": "AUCTION_BID", "requestId": request_id, "auctionId": auction, "amount": amount})).await;
    let (result, _) = ws
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == request_id)
        .await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_bidders_get_definite_results_and_a_replayable_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let auction = server
        .auction(&seller, json!({"startingPrice": 100, "increment": 10}))
        .await;
    let id = auction["id"].as_i64().unwrap();

    let mut bidders: Vec<User> = Vec::new();
    for i in 0..200 {
        bidders.push(server.user(&format!("bidder{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, bidder) in bidders.iter().enumerate() {
        let mut ws = server.ws(&bidder.token).await;
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut next = 100;
            for round in 0..5 {
                let request_id = format!("b{i}-{round}");
                let result = bid(&mut ws, id, &request_id, next).await;
                next = result["minimum"].as_i64().unwrap_or(next + 10).max(next);
                results.push(result);
            }
            results
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        for result in task.await.unwrap() {
            if result["accepted"] == true {
                accepted += 1;
            } else {
                assert!(
                    result["code"].is_string(),
                    "a rejection carries a reason: {result}"
                );
            }
        }
    }
    assert!(accepted > 0);

    let steps = all_steps(&server, id, &seller.token).await;
    assert_eq!(
        steps.len(),
        accepted,
        "every accepted straight bid is one price step"
    );
    for pair in steps.windows(2) {
        let (a, b) = (
            pair[0]["amount"].as_i64().unwrap(),
            pair[1]["amount"].as_i64().unwrap(),
        );
        assert!(
            b >= a + 10,
            "steps increase by at least the increment: {a} -> {b}"
        );
        assert_eq!(
            pair[1]["seq"].as_i64().unwrap(),
            pair[0]["seq"].as_i64().unwrap() + 1
        );
    }

    // Replaying the accepted bids one by one through the engine gives the served state.
    let (_, view) = server.get(&format!("/api/auctions/{id}"), None).await;
    let terms = AuctionTerms {
        seller: seller.id,
        currency: "USD".into(),
        starting_price: 100,
        increment: IncrementRule::Fixed { amount: 10 },
        reserve: None,
        buy_now: None,
        starts_at: view["startsAt"].as_i64().unwrap(),
        ends_at: view["endsAt"].as_i64().unwrap(),
        soft_close: None,
    };
    let mut replay = AuctionState::new(terms, view["startsAt"].as_i64().unwrap());
    for step in &steps {
        let command = Command::Bid {
            bidder: step["bidder"].as_i64().unwrap(),
            amount: step["amount"].as_i64().unwrap(),
        };
        replay
            .apply(&command, step["at"].as_i64().unwrap())
            .expect("each recorded step replays");
    }
    assert_eq!(view["price"].as_i64(), replay.price);
    assert_eq!(view["leaderId"].as_i64(), replay.leader);
    assert_eq!(view["bidCount"].as_i64().unwrap(), replay.bid_count);
    assert_eq!(view["stepCount"].as_i64().unwrap(), replay.step_count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bids_survive_sigkill_and_retries_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let auction = server
        .auction(&seller, json!({"startingPrice": 100, "increment": 1}))
        .await;
    let id = auction["id"].as_i64().unwrap();
    let mut clients = Vec::new();
    for i in 0..10 {
        let user = server.user(&format!("b{i}")).await;
        clients.push((user.clone(), server.ws(&user.token).await));
    }
    // Each client fires bids without waiting; the server is killed mid-burst.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Value)>();
    let mut tasks = Vec::new();
    for (i, (user, mut ws)) in clients.into_iter().enumerate() {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..400i64 {
                let amount = 100 + n * 10 + i as i64;
                let frame = json!({"type": "AUCTION_BID", "requestId": format!("c{i}-{n}"), "auctionId": id, "amount": amount});
                if futures::SinkExt::send(&mut ws.stream, tokio_tungstenite::tungstenite::Message::Text(frame.to_string().into())).await.is_err() {
                    return;
                }
            }
            loop {
                let next = tokio::time::timeout(std::time::Duration::from_secs(5), futures::StreamExt::next(&mut ws.stream)).await;
                match next {
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        if v["type"] == "BID_RESULT" {
                            let _ = tx.send((user.id, v));
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => return,
                }
            }
        }));
    }
    drop(tx);
    let mut acknowledged: HashMap<String, (i64, Value)> = HashMap::new();
    while let Some((user, result)) = rx.recv().await {
        acknowledged.insert(
            result["requestId"].as_str().unwrap().to_string(),
            (user, result),
        );
        if acknowledged.len() >= 300 {
            server.kill();
            break;
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    // Frames already read off the sockets before the kill are acknowledgements too.
    while let Ok((user, result)) = rx.try_recv() {
        acknowledged.insert(
            result["requestId"].as_str().unwrap().to_string(),
            (user, result),
        );
    }
    assert!(acknowledged.len() >= 300);

    let server = Server::start(dir.path(), &[]);
    let steps = all_steps(&server, id, &seller.token).await;
    let stored: std::collections::HashSet<(i64, i64)> = steps
        .iter()
        .map(|s| (s["bidder"].as_i64().unwrap(), s["amount"].as_i64().unwrap()))
        .collect();
    let mut accepted = 0;
    for (request_id, (user, result)) in &acknowledged {
        if result["accepted"] == true {
            accepted += 1;
            let n: i64 = request_id.split('-').nth(1).unwrap().parse().unwrap();
            let i: i64 = request_id[1..].split('-').next().unwrap().parse().unwrap();
            let amount = 100 + n * 10 + i;
            assert!(
                stored.contains(&(*user, amount)),
                "acknowledged bid {request_id} ({amount}) survived the crash"
            );
        }
    }
    assert!(accepted > 0);

    // Every acknowledged answer, accepted or refused, is the answer to its
    // request id after the restart: retried with an amount that would be
    // accepted if it were evaluated again, each one returns the first result
    // marked duplicate, and nothing is placed.
    let before = all_steps(&server, id, &seller.token).await.len();
    let mut by_client: HashMap<String, Vec<(&String, &Value)>> = HashMap::new();
    for (request_id, (_, original)) in &acknowledged {
        let client = request_id.split('-').next().unwrap()[1..].to_string();
        by_client
            .entry(client)
            .or_default()
            .push((request_id, original));
    }
    let mut refused = 0;
    for (client, requests) in by_client {
        let (status, login) = server
            .post(
                "/api/auth/login",
                None,
                json!({"email": format!("b{client}@test.bowchat"), "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, 200, "{login}");
        let mut ws = server.ws(login["accessToken"].as_str().unwrap()).await;
        for (request_id, original) in requests {
            refused += usize::from(original["accepted"] != true);
            let retried = bid(&mut ws, id, request_id, 999_999).await;
            assert_eq!(retried["duplicate"], true, "{request_id}: {retried}");
            for field in ["accepted", "code", "price", "leading"] {
                assert_eq!(
                    retried[field], original[field],
                    "{request_id} {field}: first {original}, retried {retried}"
                );
            }
        }
    }
    assert!(refused > 0, "the burst had refused bids to retry too");
    assert_eq!(all_steps(&server, id, &seller.token).await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_close_proxy_reserve_and_buy_now_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut a = server.ws(&alice.token).await;
    let mut b = server.ws(&bob.token).await;

    // Proxy bidding, eBay rules.
    let proxy = server
        .auction(&seller, json!({"startingPrice": 100, "increment": 10}))
        .await["id"]
        .as_i64()
        .unwrap();
    a.send(json!({"type": "AUCTION_MAX_BID", "requestId": "m1", "auctionId": proxy, "max": 500}))
        .await;
    let (r, _) = a.until(|f| f["type"] == "BID_RESULT").await;
    assert_eq!(
        (
            r["accepted"].clone(),
            r["leading"].clone(),
            r["price"].clone()
        ),
        (json!(true), json!(true), json!(100))
    );
    let r = bid(&mut b, proxy, "s1", 200).await;
    assert_eq!(
        (
            r["accepted"].clone(),
            r["leading"].clone(),
            r["price"].clone()
        ),
        (json!(true), json!(false), json!(210))
    );
    b.send(json!({"type": "AUCTION_MAX_BID", "requestId": "m2", "auctionId": proxy, "max": 500}))
        .await;
    let (r, _) = b
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "m2")
        .await;
    assert_eq!(r["leading"], false, "the earlier maximum wins a tie: {r}");
    assert_eq!(r["price"], 500);
    b.send(json!({"type": "AUCTION_MAX_BID", "requestId": "m3", "auctionId": proxy, "max": 800}))
        .await;
    let (r, _) = b
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "m3")
        .await;
    assert_eq!(
        (r["leading"].clone(), r["price"].clone()),
        (json!(true), json!(510))
    );
    let (outbid, _) = a.until(|f| f["type"] == "OUTBID").await;
    assert_eq!(outbid["auctionId"], proxy);

    // Soft close: a bid inside the window moves the end.
    let soft = server
        .auction(&seller, json!({"durationSecs": 3, "softClose": {"windowMs": 5000, "extensionMs": 4000, "mode": "extend"}}))
        .await;
    let soft_id = soft["id"].as_i64().unwrap();
    let ends_at = soft["endsAt"].as_i64().unwrap();
    a.subscribe_auction(soft_id, None).await;
    a.send(
        json!({"type": "AUCTION_BID", "requestId": "soft1", "auctionId": soft_id, "amount": 100}),
    )
    .await;
    // The result and the extension may arrive in either order.
    let mut frames = Vec::new();
    while !(frames.iter().any(|f: &Value| f["type"] == "BID_RESULT")
        && frames.iter().any(|f| f["type"] == "AUCTION_EXTENDED"))
    {
        frames.push(a.recv().await);
    }
    let result = frames.iter().find(|f| f["type"] == "BID_RESULT").unwrap();
    assert_eq!(result["accepted"], true, "{result}");
    let extended = frames
        .iter()
        .find(|f| f["type"] == "AUCTION_EXTENDED")
        .unwrap()
        .clone();
    assert_eq!(extended["endsAt"].as_i64().unwrap(), ends_at + 4000);
    let (closed, _) = a
        .until(|f| f["type"] == "AUCTION_CLOSED" && f["auction"]["id"] == soft_id)
        .await;
    assert_eq!(closed["outcome"], "sold");
    assert_eq!(closed["winnerId"], alice.id);
    assert!(
        closed["roomId"].is_i64(),
        "a sold auction opens the seller-winner room"
    );

    // Reserve not met: unsold.
    let reserve = server
        .auction(&seller, json!({"durationSecs": 2, "reserve": 1000}))
        .await["id"]
        .as_i64()
        .unwrap();
    b.subscribe_auction(reserve, None).await;
    assert_eq!(bid(&mut b, reserve, "r1", 200).await["accepted"], true);
    let (closed, _) = b
        .until(|f| f["type"] == "AUCTION_CLOSED" && f["auction"]["id"] == reserve)
        .await;
    assert_eq!(closed["outcome"], "unsold");
    assert!(closed["winnerId"].is_null());

    // Buy-now sells at once; afterwards bids are refused.
    let buy = server.auction(&seller, json!({"buyNow": 5000})).await["id"]
        .as_i64()
        .unwrap();
    let r = bid(&mut a, buy, "buy1", 5000).await;
    assert_eq!(r["accepted"], true);
    let (_, view) = server.get(&format!("/api/auctions/{buy}"), None).await;
    assert_eq!(
        (
            view["phase"].clone(),
            view["outcome"].clone(),
            view["winnerId"].clone()
        ),
        (json!("closed"), json!("sold"), json!(alice.id))
    );
    let r = bid(&mut b, buy, "late", 6000).await;
    assert_eq!(
        (r["accepted"].clone(), r["code"].clone()),
        (json!(false), json!("AUCTION_CLOSED"))
    );

    // The seller cannot bid; bids below the minimum are refused with the minimum.
    let mut s = server.ws(&seller.token).await;
    let r = bid(&mut s, proxy, "self", 5000).await;
    assert_eq!(r["code"], "SELLER_CANNOT_BID");
    let r = bid(&mut a, proxy, "low", 1).await;
    assert_eq!(r["code"], "BID_TOO_LOW");
    assert!(r["minimum"].as_i64().unwrap() > 510);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_seller_cancels_and_only_before_the_first_bid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let bidder = server.user("bidder").await;
    let quiet = server.auction(&seller, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let (status, body) = server
        .post(
            &format!("/api/auctions/{quiet}/cancel"),
            Some(&bidder.token),
            json!({}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (403, json!("NOT_SELLER")));
    let (status, _) = server
        .post(
            &format!("/api/auctions/{quiet}/cancel"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, view) = server.get(&format!("/api/auctions/{quiet}"), None).await;
    assert_eq!(view["phase"], "cancelled");

    let busy = server.auction(&seller, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let (status, body) = server
        .post(
            &format!("/api/auctions/{busy}/bids"),
            Some(&bidder.token),
            json!({"amount": 100, "requestId": "x1"}),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let (status, body) = server
        .post(
            &format!("/api/auctions/{busy}/cancel"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("AUCTION_HAS_BIDS"))
    );
    // The REST retry of a bid is idempotent too.
    let (status, body) = server
        .post(
            &format!("/api/auctions/{busy}/bids"),
            Some(&bidder.token),
            json!({"amount": 500, "requestId": "x1"}),
        )
        .await;
    assert_eq!(
        (status, body["duplicate"].clone(), body["price"].clone()),
        (200, json!(true), json!(100))
    );
}

/// Checks that `steps` continue `last` without a gap or a repeat; returns the
/// new last step.
fn follow(last: i64, steps: &Value, context: &str) -> i64 {
    let mut last = last;
    for step in steps.as_array().expect("steps array") {
        let seq = step["seq"].as_i64().unwrap();
        assert_eq!(seq, last + 1, "{context}: step {seq} after {last}");
        last = seq;
    }
    last
}

/// While bids flow, every SUBSCRIBE (with `since` or without) gives the steps
/// after `since`, then `SUBSCRIBED{seq}` at the last of them, then live steps
/// from `seq + 1` on: nothing missed, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_while_bids_flow_is_gapless() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let id = server
        .auction(&seller, json!({"startingPrice": 100, "increment": 1}))
        .await["id"]
        .as_i64()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut bidders = Vec::new();
    for i in 0..4 {
        let user = server.user(&format!("bidder{i}")).await;
        let mut ws = server.ws(&user.token).await;
        let stop = stop.clone();
        bidders.push(tokio::spawn(async move {
            let mut next = 100;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let result = bid(&mut ws, id, &format!("b{i}-{n}"), next).await;
                next = result["minimum"].as_i64().unwrap_or(next + 1).max(next + 1);
            }
        }));
    }

    let watcher = server.user("watcher").await;
    let mut ws = server.ws(&watcher.token).await;
    let mut last = 0;
    for round in 0..60 {
        let since = (round % 3 != 2).then_some(last);
        ws.send(json!({"type": "SUBSCRIBE", "auctionId": id, "since": since}))
            .await;
        let (subscribed, before) = ws
            .until(|f| f["type"] == "SUBSCRIBED" && f["auctionId"] == id)
            .await;
        let seq = subscribed["seq"].as_i64().unwrap();
        assert_eq!(subscribed["truncated"], false, "{subscribed}");
        let snapshot: Vec<&Value> = before
            .iter()
            .filter(|f| f["type"] == "AUCTION_UPDATE")
            .collect();
        assert_eq!(
            snapshot.len(),
            1,
            "one snapshot before SUBSCRIBED: {before:?}"
        );
        let snapshot = snapshot[0];
        assert_eq!(snapshot["auction"]["stepCount"], seq, "{snapshot}");
        match since {
            Some(since) => {
                let replayed = follow(since, &snapshot["steps"], &format!("round {round} replay"));
                assert_eq!(
                    replayed, seq,
                    "the replay ends at SUBSCRIBED.seq: {snapshot}"
                );
            }
            None => assert_eq!(snapshot["steps"], json!([]), "{snapshot}"),
        }
        last = seq;
        // Live: at least two more steps, each right after the one before.
        let target = last + 2;
        while last < target {
            let frame = ws.recv().await;
            if frame["type"] == "AUCTION_UPDATE" {
                last = follow(last, &frame["steps"], &format!("round {round} live"));
            }
        }
        ws.send(json!({"type": "UNSUBSCRIBE", "auctionId": id}))
            .await;
        loop {
            let frame = ws.recv().await;
            if frame["type"] == "UNSUBSCRIBED" {
                break;
            }
            if frame["type"] == "AUCTION_UPDATE" {
                last = follow(
                    last,
                    &frame["steps"],
                    &format!("round {round} before unsubscribe"),
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for bidder in bidders {
        bidder.await.unwrap();
    }
}

/// `externalId` is an idempotency key of the creator: repeating it returns the
/// creator's auction, while another user's equal key creates their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_belong_to_their_creator() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let server = &server;
    let create = |user: &User, title: &str| {
        let body = json!({"title": title, "startingPrice": 100, "durationSecs": 600, "externalId": "k8s:uid-1"});
        let token = user.token.clone();
        async move { server.post("/api/auctions", Some(&token), body).await }
    };
    let (status, first) = create(&ann, "Ann's lamp").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = create(&ann, "Ann's lamp, retried").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], first["id"], "a retry returns the same auction");
    assert_eq!(again["title"], "Ann's lamp");

    let (status, bobs) = create(&bob, "Bob's chair").await;
    assert_eq!(status, 201, "{bobs}");
    assert_ne!(bobs["id"], first["id"], "Bob gets his own auction: {bobs}");
    assert_eq!(bobs["sellerId"], bob.id, "{bobs}");
    assert_eq!(bobs["title"], "Bob's chair");
    let (status, anns) = server
        .get(&format!("/api/auctions/{}", first["id"]), None)
        .await;
    assert_eq!(status, 200, "{anns}");
    assert_eq!(
        anns["sellerId"], ann.id,
        "Ann's auction is untouched: {anns}"
    );
}
