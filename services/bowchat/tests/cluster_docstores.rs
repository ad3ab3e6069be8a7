//! Cluster mode with the document stores: gateways and workers as separate
//! processes on the real PostgreSQL, Kafka, MongoDB (FerretDB) and Redis test
//! servers. Chat history goes to MongoDB, refresh tokens, the per-user rate
//! limit, presence and typing go through Redis, so each of them works across
//! gateways. Every check reads the stores directly as well, so a process
//! quietly falling back to PostgreSQL or per-process state fails the test.

mod support;

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mongodb::bson::doc;
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::Ws;

fn docs(cluster: &Cluster) -> &support::cluster::DocumentStores {
    cluster.docs.as_ref().expect("document stores")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_sent_on_one_gateway_is_history_on_the_other_and_in_mongo() {
    let cluster = Cluster::with_document_stores("dshist", 2).await;
    let worker = cluster.start("worker", "chat");
    let gw_a = cluster.start("a", "gateway");
    let gw_b = cluster.start("b", "gateway");

    let alice = gw_a.user("alice").await;
    let bob = gw_b.user("bob").await;
    let room = gw_a.group_room(&alice, "docs", &[&bob]).await;
    let mut a = gw_a.ws(&alice.token).await;
    a.subscribe_room(room, None).await;
    for n in 1..=5 {
        a.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": format!("m{n}"), "body": format!("hello {n}"), "requestId": format!("r{n}")}))
            .await;
        let (result, _) = a
            .until(|f| f["type"] == "CHAT_RESULT" && f["requestId"] == format!("r{n}"))
            .await;
        assert_eq!(result["accepted"], true, "{result}");
        assert_eq!(result["seq"], n, "{result}");
    }
    // A retried send is answered as a duplicate and stores nothing.
    a.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": "m3", "body": "hello 3", "requestId": "again"}))
        .await;
    let (again, _) = a
        .until(|f| f["type"] == "CHAT_RESULT" && f["requestId"] == "again")
        .await;
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["seq"], 3, "{again}");

    // History read through the other gateway, over REST and as a replay.
    let (status, page) = gw_b
        .get(&format!("/api/rooms/{room}/messages"), Some(&bob.token))
        .await;
    assert_eq!(status, 200, "{page}");
    let bodies: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["hello 1", "hello 2", "hello 3", "hello 4", "hello 5"]
    );
    let mut b = gw_b.ws(&bob.token).await;
    let replay = b.subscribe_room(room, Some(2)).await;
    let seqs: Vec<i64> = replay
        .iter()
        .filter(|f| f["type"] == "CHAT_MESSAGE")
        .map(|f| f["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5], "replay since 2");

    // The bodies are documents in MongoDB, not rows in PostgreSQL.
    let stored: Vec<(i64, String, i64)> = docs(&cluster)
        .messages()
        .await
        .find(doc! {"room": room})
        .sort(doc! {"seq": 1})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                d.get_i64("seq").unwrap(),
                d.get_str("body").unwrap().to_string(),
                d.get_i64("sender").unwrap(),
            )
        })
        .collect();
    let expected: Vec<(i64, String, i64)> = (1..=5)
        .map(|n| (n, format!("hello {n}"), alice.id))
        .collect();
    assert_eq!(stored, expected, "MongoDB holds each message once");
    let pg = cluster.pg().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no message body in PostgreSQL");
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = $1")
        .bind(room)
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(last_seq, 5, "the commit point stays in PostgreSQL");
    pg.close().await;

    let (status, ready) = gw_b.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");

    drop((a, b, gw_a, gw_b, worker));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family_across_gateways() {
    let cluster = Cluster::with_document_stores("dsauth", 1).await;
    // No grace for a second use of a rotated token (two tabs refreshing at
    // once get one successor within it): any reuse here is a replay.
    let no_grace = [("BOWCHAT_AUTH__REFRESH_REUSE_GRACE_SECS", "0")];
    let gw_a = cluster.start_with("a", "gateway", &no_grace);
    let gw_b = cluster.start_with("b", "gateway", &no_grace);

    let carol = gw_a.user("carol").await;
    // Issued by A, rotated at B.
    let (status, rotated) = gw_b
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": carol.refresh}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let next = rotated["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(next, carol.refresh);
    // One signing key for both: B's access token works at A.
    let access = rotated["accessToken"].as_str().unwrap();
    let (status, me) = gw_a.get("/api/me", Some(access)).await;
    assert_eq!(status, 200, "{me}");

    // The records are in Redis (one family of two tokens), not in PostgreSQL.
    let store = docs(&cluster);
    assert_eq!(store.redis_keys("rt:*").await.len(), 2, "two token records");
    assert_eq!(store.redis_keys("rf:*").await.len(), 1, "one family");
    let pg = cluster.pg().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no refresh token in PostgreSQL");
    pg.close().await;

    // Reusing the rotated token at A revokes the whole family...
    let (status, reused) = gw_a
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": carol.refresh}),
        )
        .await;
    assert_eq!(status, 401, "{reused}");
    assert_eq!(reused["code"], "REFRESH_REUSED", "{reused}");
    // ...so the newest token, unused so far, no longer works at B either.
    let (status, revoked) = gw_b
        .post("/api/auth/refresh", None, json!({"refreshToken": next}))
        .await;
    assert_eq!(status, 401, "{revoked}");

    drop((gw_a, gw_b));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_one_bucket_over_all_gateways() {
    let cluster = Cluster::with_document_stores("dsrate", 2).await;
    let worker = cluster.start("worker", "auction");
    // Ten commands per user, practically no refill during the test.
    let limits = [
        ("BOWCHAT_GATEWAY__USER_RATE_BURST", "10"),
        ("BOWCHAT_GATEWAY__USER_RATE_PER_SEC", "0.01"),
    ];
    let gw_a = cluster.start_with("a", "gateway", &limits);
    let gw_b = cluster.start_with("b", "gateway", &limits);

    let seller = gw_a.user("seller").await;
    let dave = gw_a.user("dave").await;
    let auction = gw_a.auction(&seller, json!({"startingPrice": 100})).await;
    let id = auction["id"].as_i64().unwrap();
    let mut a = gw_a.ws(&dave.token).await;
    let mut b = gw_b.ws(&dave.token).await;
    const EACH: i64 = 8;
    for n in 0..EACH {
        for (ws, side) in [(&mut a, "a"), (&mut b, "b")] {
            ws.send(json!({"type": "AUCTION_BID", "requestId": format!("{side}{n}"), "auctionId": id, "amount": 100 + 10 * n}))
                .await;
        }
    }
    let mut limited = 0;
    let mut answered = 0;
    for ws in [&mut a, &mut b] {
        for _ in 0..EACH {
            let (reply, _) = ws
                .until(|f| f["type"] == "BID_RESULT" || f["type"] == "ERROR")
                .await;
            match reply["type"].as_str() {
                Some("BID_RESULT") => answered += 1,
                _ if reply["code"] == "RATE_LIMITED" => limited += 1,
                _ => panic!("unexpected reply {reply}"),
            }
        }
    }
    eprintln!("{answered} bids answered, {limited} rate limited");
    assert_eq!(
        (answered, limited),
        (10, 2 * EACH - 10),
        "one bucket of 10 for both gateways"
    );
    let bucket = docs(&cluster).redis_keys(&format!("rl:{}", dave.id)).await;
    assert_eq!(bucket.len(), 1, "the bucket lives in Redis");

    drop((a, b, gw_a, gw_b, worker));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_cross_gateways_and_end_with_the_connection() {
    let cluster = Cluster::with_document_stores("dspres", 1).await;
    let ttl = [("BOWCHAT_EPHEMERAL__PRESENCE_TTL_MS", "3000")];
    let mut gw_a = cluster.start_with("a", "gateway", &ttl);
    let gw_b = cluster.start_with("b", "gateway", &ttl);

    let erin = gw_b.user("erin").await;
    let frank = gw_a.user("frank").await;
    let room = gw_b.group_room(&erin, "lobby", &[&frank]).await;

    // Erin watches on B; Frank arrives on A.
    let mut watcher = gw_b.ws(&erin.token).await;
    watcher.subscribe_room(room, None).await;
    let mut f = gw_a.ws(&frank.token).await;
    f.subscribe_room(room, None).await;
    let online = presence_of(&mut watcher, frank.id).await;
    assert_eq!(online["online"], true, "{online}");
    assert_eq!(
        presence_list(&mut watcher, room).await,
        sorted(&[erin.id, frank.id])
    );
    let (status, user) = gw_b
        .get(&format!("/api/users/{}", frank.id), Some(&erin.token))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(
        user["online"], true,
        "the registry counts A's connection: {user}"
    );

    // Typing on A reaches the watcher on B (and is not stored anywhere).
    f.send(json!({"type": "TYPING", "roomId": room})).await;
    let (typing, _) = watcher
        .until(|fr| fr["type"] == "TYPING" && fr["userId"] == frank.id)
        .await;
    assert_eq!(typing["roomId"], room, "{typing}");

    // Frank disconnects: B announces him offline and lists only Erin.
    f.stream.close(None).await.unwrap();
    drop(f);
    let offline = presence_of(&mut watcher, frank.id).await;
    assert_eq!(offline["online"], false, "{offline}");
    assert_eq!(presence_list(&mut watcher, room).await, vec![erin.id]);
    let (_, user) = gw_b
        .get(&format!("/api/users/{}", frank.id), Some(&erin.token))
        .await;
    assert_eq!(user["online"], false, "{user}");

    // Frank again, then gateway A dies: once its liveness lapses (3 s TTL)
    // he is no longer listed anywhere.
    let mut f = gw_a.ws(&frank.token).await;
    f.subscribe_room(room, None).await;
    let online = presence_of(&mut watcher, frank.id).await;
    assert_eq!(online["online"], true, "{online}");
    gw_a.kill();
    let killed = Instant::now();
    loop {
        let listed = presence_list(&mut watcher, room).await;
        if listed == vec![erin.id] {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "still listed 10 s after his gateway died: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "a dead gateway's user went offline after {:?}",
        killed.elapsed()
    );

    drop((f, watcher, gw_a, gw_b));
    cluster.finish().await;
}

/// The next `PRESENCE` frame about `user`.
async fn presence_of(ws: &mut Ws, user: i64) -> Value {
    ws.until(|f| f["type"] == "PRESENCE" && f["userId"] == user)
        .await
        .0
}

async fn presence_list(ws: &mut Ws, room: i64) -> Vec<i64> {
    ws.send(json!({"type": "PRESENCE", "roomId": room, "requestId": "who"}))
        .await;
    let (list, _) = ws
        .until(|f| f["type"] == "PRESENCE_LIST" && f["requestId"] == "who")
        .await;
    list["userIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_i64().unwrap())
        .collect()
}

fn sorted(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}
