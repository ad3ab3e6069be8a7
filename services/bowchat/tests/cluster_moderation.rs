//! Cluster-mode blocking: gateways and a worker as separate processes on the
//! real PostgreSQL, Kafka, MongoDB (FerretDB) and Redis test servers, refresh
//! tokens in Redis. `bowchat admin users block`, run against the same stores,
//! ends the user's WebSocket on one gateway (ERROR USER_BLOCKED, close 4001)
//! and their REST access on the other, refuses login and refresh; after
//! `unblock` the old refresh tokens (kept in Redis) stay refused and a new
//! login works on every gateway.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::{Server, Ws};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// `bowchat admin <args>` with the cluster's store settings; its stdout.
fn admin(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.admin(args);
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn login(gateway: &Server, name: &str) -> (u16, Value) {
    gateway
        .post(
            "/api/auth/login",
            None,
            json!({"email": format!("{name}@test.bowchat"), "password": "correct horse battery"}),
        )
        .await
}

async fn refresh(gateway: &Server, token: &str) -> (u16, Value) {
    gateway
        .post("/api/auth/refresh", None, json!({"refreshToken": token}))
        .await
}

/// Sends a PING frame now and then (the gateway checks a session at every
/// frame) until the server closes the socket; returns the ERROR frames and
/// the close code. Panics after 30 s.
async fn until_closed(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut errors = Vec::new();
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the socket is still open after 30 s"
        );
        n += 1;
        // The server may have closed the socket meanwhile: the close frame
        // is read below.
        let _ = ws
            .stream
            .send(Message::Text(
                json!({"type": "PING", "requestId": format!("p{n}")})
                    .to_string()
                    .into(),
            ))
            .await;
        loop {
            let next =
                match tokio::time::timeout(Duration::from_millis(200), ws.stream.next()).await {
                    Ok(next) => next,
                    // Nothing more for now: ping again.
                    Err(_) => break,
                };
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("json");
                    if frame["type"] == "ERROR" {
                        errors.push(frame);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return (errors, frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (errors, None),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_ends_sessions_on_every_gateway_and_an_unblock_revives_none() {
    let cluster = Cluster::with_document_stores("dsmod", 1).await;
    let poll = [("BOWCHAT_AUTH__REVOCATION_POLL_MS", "200")];
    let worker = cluster.start_with("worker", "chat", &poll);
    let gw_a = cluster.start_with("a", "gateway", &poll);
    let gw_b = cluster.start_with("b", "gateway", &poll);

    // Ann registered on A and logged in again on B: two refresh families,
    // both in Redis.
    let ann = gw_a.user("ann").await;
    let bob = gw_a.user("bob").await;
    let (status, on_b) = login(&gw_b, "ann").await;
    assert_eq!(status, 200, "{on_b}");
    let b_token = on_b["accessToken"].as_str().unwrap().to_string();
    let b_refresh = on_b["refreshToken"].as_str().unwrap().to_string();
    let store = cluster.docs.as_ref().expect("document stores");
    assert_eq!(
        store.redis_keys("rt:*").await.len(),
        3,
        "the refresh tokens (two of Ann's, one of Bob's) are in Redis"
    );

    // Her socket on B works across the cluster.
    let room = gw_a.group_room(&ann, "club", &[&bob]).await;
    let mut ws = gw_b.ws(&b_token).await;
    ws.subscribe_room(room, None).await;
    ws.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": "m1", "body": "hello", "requestId": "r1"}))
        .await;
    let (sent, _) = ws
        .until(|f| f["type"] == "CHAT_RESULT" && f["requestId"] == "r1")
        .await;
    assert_eq!(sent["accepted"], true, "{sent}");

    let out = admin(
        &cluster,
        &["users", "block", "ann@test.bowchat", "--reason", "spam"],
    );
    assert!(out.contains(&format!("blocked user {}", ann.id)), "{out}");

    // B ends the socket once its poll has read the block.
    let (errors, code) = until_closed(&mut ws).await;
    assert_eq!(code, Some(4001), "{errors:?}");
    assert!(
        errors.iter().any(|e| e["code"] == "USER_BLOCKED"),
        "{errors:?}"
    );
    // A refuses the access tokens once its poll has read it.
    for token in [&ann.token, &b_token] {
        let (status, body) = gw_a.until_refused(token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("USER_BLOCKED")),
            "{body}"
        );
    }
    // Login and refresh read the stored block: refused on both gateways.
    for gateway in [&gw_a, &gw_b] {
        let (status, body) = login(gateway, "ann").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("USER_BLOCKED")),
            "{body}"
        );
        for token in [&ann.refresh, &b_refresh] {
            let (status, body) = refresh(gateway, token).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("USER_BLOCKED")),
                "{body}"
            );
        }
    }
    // Bob is untouched.
    assert_eq!(gw_b.get("/api/rooms", Some(&bob.token)).await.0, 200);
    let (status, body) = refresh(&gw_b, &bob.refresh).await;
    assert_eq!(status, 200, "{body}");

    let out = admin(&cluster, &["users", "unblock", "ann@test.bowchat"]);
    assert!(out.contains(&format!("unblocked user {}", ann.id)), "{out}");

    // The sessions the block ended stay ended: the old refresh tokens are
    // refused on both gateways (they live in Redis, not in PostgreSQL).
    for gateway in [&gw_a, &gw_b] {
        for token in [&ann.refresh, &b_refresh] {
            let (status, body) = refresh(gateway, token).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some("REFRESH_INVALID")),
                "an old refresh token after the unblock: {body}"
            );
        }
        assert_ne!(gateway.get("/api/rooms", Some(&ann.token)).await.0, 200);
    }
    // A new login works, on every gateway, and its refresh token rotates.
    let (status, fresh) = login(&gw_b, "ann").await;
    assert_eq!(status, 200, "{fresh}");
    let token = fresh["accessToken"].as_str().unwrap();
    for gateway in [&gw_a, &gw_b] {
        let (status, body) = gateway.get("/api/rooms", Some(token)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = refresh(&gw_a, fresh["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let mut ws = gw_a.ws(token).await;
    ws.subscribe_room(room, None).await;

    let audit = admin(&cluster, &["audit", "list"]);
    let actions: Vec<&str> = audit
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("action=")))
        .collect();
    assert_eq!(actions, ["action=unblock", "action=block"], "{audit}");

    drop((ws, gw_a, gw_b, worker));
    cluster.finish().await;
}
