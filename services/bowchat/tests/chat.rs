//! Black-box chat tests: ordering, resume, dedupe, membership and read markers,
//! all through the real binary's REST API and WebSocket protocol.
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{Server, User, Ws};

/// Sends a CHAT_SEND and waits for its CHAT_RESULT (matched by requestId);
/// returns the result and the frames that came before it.
async fn send_chat(
    ws: &mut Ws,
    room: i64,
    client_msg_id: &str,
    body: &str,
    request_id: &str,
) -> (Value, Vec<Value>) {
    ws.send(json!({
        "type": "CHAT_SEND", "roomId": room, "clientMsgId": client_msg_id,
        "body": body, "requestId": request_id,
    }))
    .await;
    let rid = request_id.to_string();
    ws.until(move |f| f["type"] == "CHAT_RESULT" && f["requestId"] == rid.as_str())
        .await
}

async fn history(server: &Server, user: &User, room: i64) -> Vec<Value> {
    let (status, body) = server
        .get(
            &format!("/api/rooms/{room}/messages?limit=100"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, 200, "history: {body}");
    body["items"].as_array().expect("items").clone()
}

/// (seq, sender, clientMsgId, body) of a stored or delivered message.
fn key(message: &Value) -> (i64, i64, String, String) {
    (
        message["seq"].as_i64().expect("seq"),
        message["sender"].as_i64().expect("sender"),
        message["clientMsgId"]
            .as_str()
            .expect("clientMsgId")
            .to_string(),
        message["body"].as_str().expect("body").to_string(),
    )
}

/// The room's unread count and read marker in `user`'s room list.
async fn unread(server: &Server, user: &User, room: i64) -> (i64, i64) {
    let (status, body) = server.get("/api/rooms", Some(&user.token)).await;
    assert_eq!(status, 200, "room list: {body}");
    let entry = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["id"] == room)
        .unwrap_or_else(|| panic!("room {room} in the list: {body}"))
        .clone();
    (
        entry["unread"].as_i64().expect("unread"),
        entry["lastReadSeq"].as_i64().expect("lastReadSeq"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_see_one_gapless_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let users = [
        server.user("ann").await,
        server.user("bob").await,
        server.user("cat").await,
    ];
    let room = server
        .group_room(&users[0], "Test room", &[&users[1], &users[2]])
        .await;

    const PER_CLIENT: usize = 6;
    let total = PER_CLIENT * users.len();
    let mut sockets = Vec::new();
    for user in &users {
        let mut ws = server.ws(&user.token).await;
        ws.subscribe_room(room, None).await;
        sockets.push(ws);
    }

    let mut tasks = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_CLIENT {
                ws.send(json!({
                    "type": "CHAT_SEND", "roomId": room,
                    "clientMsgId": format!("c{i}-{n}"), "body": format!("hello {i}/{n}"),
                    "requestId": format!("r{i}-{n}"),
                }))
                .await;
            }
            let mut messages = Vec::new();
            let mut results = Vec::new();
            while messages.len() < total || results.len() < PER_CLIENT {
                let frame = ws.recv().await;
                match frame["type"].as_str() {
                    Some("CHAT_MESSAGE") => messages.push(frame["message"].clone()),
                    Some("CHAT_RESULT") => results.push(frame),
                    Some("ERROR") => panic!("client {i} got {frame}"),
                    _ => {}
                }
            }
            (messages, results)
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        let (messages, results) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("clients finish")
            .expect("client task");
        for result in &results {
            assert_eq!(result["accepted"], true, "{result}");
            assert_eq!(result["duplicate"], false, "{result}");
            assert_eq!(result["roomId"], room, "{result}");
        }
        seen.push(messages.iter().map(key).collect::<Vec<_>>());
    }

    let seqs: Vec<i64> = seen[0].iter().map(|k| k.0).collect();
    assert_eq!(
        seqs,
        (1..=total as i64).collect::<Vec<_>>(),
        "gapless 1..N in order"
    );
    for other in &seen[1..] {
        assert_eq!(other, &seen[0], "every client sees the same order");
    }
    // Each client's own messages appear in the order it sent them.
    for (i, user) in users.iter().enumerate() {
        let own: Vec<String> = seen[0]
            .iter()
            .filter(|k| k.1 == user.id)
            .map(|k| k.2.clone())
            .collect();
        let sent: Vec<String> = (0..PER_CLIENT).map(|n| format!("c{i}-{n}")).collect();
        assert_eq!(own, sent, "client {i}'s messages in sending order");
    }
    let stored: Vec<_> = history(&server, &users[1], room)
        .await
        .iter()
        .map(key)
        .collect();
    assert_eq!(stored, seen[0], "history matches what was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_with_since_replays_exactly_the_missed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;

    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;
    a.subscribe_room(room, None).await;
    b.subscribe_room(room, None).await;

    for n in 1..=3 {
        let (result, _) = send_chat(
            &mut a,
            room,
            &format!("m{n}"),
            &format!("body {n}"),
            &format!("r{n}"),
        )
        .await;
        assert_eq!(result["accepted"], true, "{result}");
    }
    let mut k = 0;
    while k < 3 {
        let (frame, _) = b.until(|f| f["type"] == "CHAT_MESSAGE").await;
        let seq = frame["message"]["seq"].as_i64().unwrap();
        assert_eq!(seq, k + 1, "live delivery is gapless");
        k = seq;
    }
    drop(b);

    for n in 4..=7 {
        let (result, _) = send_chat(
            &mut a,
            room,
            &format!("m{n}"),
            &format!("body {n}"),
            &format!("r{n}"),
        )
        .await;
        assert_eq!(result["accepted"], true, "{result}");
        assert_eq!(result["seq"], n, "{result}");
    }

    let mut b = server.ws(&bob.token).await;
    b.send(json!({"type": "SUBSCRIBE", "roomId": room, "since": k, "requestId": "resub"}))
        .await;
    let (subscribed, before) = b
        .until(|f| f["type"] == "SUBSCRIBED" || f["type"] == "ERROR")
        .await;
    assert_eq!(subscribed["type"], "SUBSCRIBED", "{subscribed}");
    assert_eq!(subscribed["roomId"], room);
    assert_eq!(subscribed["seq"], 7, "{subscribed}");
    assert_eq!(subscribed["truncated"], false, "{subscribed}");
    assert_eq!(subscribed["requestId"], "resub", "{subscribed}");
    let replayed: Vec<i64> = before
        .iter()
        .filter(|f| f["type"] == "CHAT_MESSAGE")
        .map(|f| f["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        replayed,
        vec![4, 5, 6, 7],
        "replay is exactly k+1..N, before SUBSCRIBED: {before:?}"
    );
    let bodies: Vec<&str> = before
        .iter()
        .filter(|f| f["type"] == "CHAT_MESSAGE")
        .map(|f| f["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["body 4", "body 5", "body 6", "body 7"]);

    // Live delivery continues after the replay with no repeats.
    let (result, _) = send_chat(&mut a, room, "m8", "body 8", "r8").await;
    assert_eq!(result["seq"], 8, "{result}");
    let (next, between) = b.until(|f| f["type"] == "CHAT_MESSAGE").await;
    assert_eq!(next["message"]["seq"], 8, "next live message: {next}");
    assert!(
        between.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "{between:?}"
    );
    b.send(json!({"type": "PING", "requestId": "p"})).await;
    let (_, between) = b.until(|f| f["type"] == "PONG").await;
    assert!(
        between.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "nothing duplicated: {between:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_chat_send_is_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;

    let mut a = server.ws(&ann.token).await;
    a.subscribe_room(room, None).await;

    let (first, _) = send_chat(&mut a, room, "same-id", "only once", "try-1").await;
    assert_eq!(first["accepted"], true, "{first}");
    assert_eq!(first["duplicate"], false, "{first}");
    let seq = first["seq"].as_i64().expect("seq");
    // Drain the broadcast of the first send before retrying.
    a.send(json!({"type": "PING", "requestId": "p1"})).await;
    a.until(|f| f["type"] == "PONG").await;

    let (retry, before) = send_chat(&mut a, room, "same-id", "only once", "try-2").await;
    assert_eq!(retry["accepted"], true, "{retry}");
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["seq"], seq, "{retry}");
    assert!(
        before.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "a retry is not broadcast again: {before:?}"
    );
    a.send(json!({"type": "PING", "requestId": "p2"})).await;
    let (_, after) = a.until(|f| f["type"] == "PONG").await;
    assert!(
        after.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "a retry is not broadcast again: {after:?}"
    );

    // Without a requestId the result is keyed by the clientMsgId.
    a.send(
        json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": "same-id", "body": "only once"}),
    )
    .await;
    let (third, _) = a.until(|f| f["type"] == "CHAT_RESULT").await;
    assert_eq!(third["duplicate"], true, "{third}");
    assert_eq!(third["seq"], seq, "{third}");

    let stored = history(&server, &ann, room).await;
    assert_eq!(stored.len(), 1, "one message stored: {stored:?}");
    assert_eq!(stored[0]["clientMsgId"], "same-id");
    assert_eq!(stored[0]["seq"], seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_cannot_read_or_write_a_group_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;

    let mut a = server.ws(&ann.token).await;
    a.subscribe_room(room, None).await;
    let (ok, _) = send_chat(&mut a, room, "hello", "members only", "r1").await;
    assert_eq!(ok["accepted"], true, "{ok}");

    let mut e = server.ws(&eve.token).await;
    e.send(json!({"type": "SUBSCRIBE", "roomId": room, "requestId": "sub"}))
        .await;
    let (error, _) = e
        .until(|f| f["type"] == "ERROR" || f["type"] == "SUBSCRIBED")
        .await;
    assert_eq!(error["type"], "ERROR", "{error}");
    assert_eq!(error["code"], "NOT_A_MEMBER", "{error}");
    assert_eq!(error["requestId"], "sub", "{error}");

    let (result, before) = send_chat(&mut e, room, "intruder", "let me in", "r2").await;
    assert_eq!(result["accepted"], false, "{result}");
    assert_eq!(result["code"], "NOT_A_MEMBER", "{result}");
    assert_eq!(result["roomId"], room, "{result}");
    assert!(result["seq"].is_null(), "{result}");
    assert!(
        before.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "{before:?}"
    );

    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/rooms/{room}/messages")))
        .bearer_auth(&eve.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "NOT_A_MEMBER", "{body}");
    assert_eq!(body["status"], 403, "{body}");

    // The room's history is untouched by the outsider.
    let stored = history(&server, &bob, room).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["clientMsgId"], "hello");
    // Ann's connection never saw the intruder's message.
    a.send(json!({"type": "PING"})).await;
    let (_, frames) = a.until(|f| f["type"] == "PONG").await;
    assert!(
        frames
            .iter()
            .all(|f| f["type"] != "CHAT_MESSAGE" || f["message"]["sender"] != eve.id),
        "{frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_reduce_unread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;

    let mut a = server.ws(&ann.token).await;
    for n in 1..=4 {
        let (result, _) = send_chat(&mut a, room, &format!("m{n}"), "news", &format!("r{n}")).await;
        assert_eq!(result["accepted"], true, "{result}");
    }
    assert_eq!(unread(&server, &bob, room).await, (4, 0));

    let mut b = server.ws(&bob.token).await;
    b.subscribe_room(room, None).await;
    b.send(json!({"type": "CHAT_READ", "roomId": room, "seq": 3, "requestId": "read-3"}))
        .await;
    let (result, _) = b
        .until(|f| f["type"] == "CHAT_RESULT" && f["requestId"] == "read-3")
        .await;
    assert_eq!(result["accepted"], true, "{result}");
    assert_eq!(result["seq"], 3, "{result}");
    assert_eq!(unread(&server, &bob, room).await, (1, 3));

    // Markers never move backwards...
    b.send(json!({"type": "CHAT_READ", "roomId": room, "seq": 1, "requestId": "read-1"}))
        .await;
    let (result, _) = b
        .until(|f| f["type"] == "CHAT_RESULT" && f["requestId"] == "read-1")
        .await;
    assert_eq!(result["seq"], 3, "{result}");
    assert_eq!(unread(&server, &bob, room).await, (1, 3));

    // ...nor past the last message.
    b.send(json!({"type": "CHAT_READ", "roomId": room, "seq": 99, "requestId": "read-99"}))
        .await;
    let (result, _) = b
        .until(|f| f["type"] == "CHAT_RESULT" && f["requestId"] == "read-99")
        .await;
    assert_eq!(result["seq"], 4, "{result}");
    assert_eq!(unread(&server, &bob, room).await, (0, 4));

    // Ann's unread count is hers alone.
    let (ann_unread, _) = unread(&server, &ann, room).await;
    assert!(ann_unread <= 4, "{ann_unread}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_msg_ids_are_scoped_to_sender_and_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;
    let other = server.group_room(&ann, "Test room", &[&bob]).await;

    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;
    let (r1, _) = send_chat(&mut a, room, "same", "from ann", "a1").await;
    let (r2, _) = send_chat(&mut b, room, "same", "from bob", "b1").await;
    let (r3, _) = send_chat(&mut a, other, "same", "ann elsewhere", "a2").await;
    for r in [&r1, &r2, &r3] {
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(
            r["duplicate"], false,
            "the same id from another sender or room is new: {r}"
        );
    }
    assert_eq!(
        (r1["seq"].as_i64(), r2["seq"].as_i64(), r3["seq"].as_i64()),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!(history(&server, &ann, room).await.len(), 2);
    assert_eq!(history(&server, &ann, other).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_retries_store_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let room = server.group_room(&ann, "Test room", &[]).await;
    let mut a = server.ws(&ann.token).await;
    a.subscribe_room(room, None).await;

    // Fired without waiting, so they may land in one batch of the chat role.
    for n in 0..5 {
        a.send(json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": "burst", "body": "once", "requestId": format!("t{n}")}))
            .await;
    }
    let mut results = Vec::new();
    let mut messages = Vec::new();
    while results.len() < 5 {
        let frame = a.recv().await;
        match frame["type"].as_str() {
            Some("CHAT_RESULT") => results.push(frame),
            Some("CHAT_MESSAGE") => messages.push(frame),
            _ => {}
        }
    }
    a.send(json!({"type": "PING"})).await;
    let (_, rest) = a.until(|f| f["type"] == "PONG").await;
    messages.extend(rest.into_iter().filter(|f| f["type"] == "CHAT_MESSAGE"));
    assert!(
        results
            .iter()
            .all(|r| r["accepted"] == true && r["seq"] == 1),
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| r["duplicate"] == false).count(),
        1,
        "{results:?}"
    );
    assert_eq!(messages.len(), 1, "broadcast once: {messages:?}");
    assert_eq!(history(&server, &ann, room).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_by_seq() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let room = server.group_room(&ann, "Test room", &[]).await;
    let mut a = server.ws(&ann.token).await;
    for n in 1..=10 {
        let (r, _) = send_chat(
            &mut a,
            room,
            &format!("m{n}"),
            &format!("b{n}"),
            &format!("r{n}"),
        )
        .await;
        assert_eq!(r["seq"], n, "{r}");
    }
    let seqs = |items: Vec<Value>| {
        items
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let page = |q: &str| {
        let path = format!("/api/rooms/{room}/messages{q}");
        let server = &server;
        let token = ann.token.clone();
        async move {
            let (status, body) = server.get(&path, Some(&token)).await;
            assert_eq!(status, 200, "{path}: {body}");
            body["items"].as_array().unwrap().clone()
        }
    };
    assert_eq!(seqs(page("").await), (1..=10).collect::<Vec<_>>());
    assert_eq!(
        seqs(page("?limit=3").await),
        vec![8, 9, 10],
        "newest page, ascending"
    );
    assert_eq!(seqs(page("?before=8&limit=3").await), vec![5, 6, 7]);
    assert_eq!(seqs(page("?after=7").await), vec![8, 9, 10]);
    assert_eq!(seqs(page("?after=2&limit=2").await), vec![3, 4]);
    assert_eq!(seqs(page("?after=10").await), Vec::<i64>::new());
    let (status, body) = server
        .get(
            &format!("/api/rooms/{room}/messages?limit=abc"),
            Some(&ann.token),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_QUERY", "{body}");
    let (status, body) = server
        .get("/api/rooms/999999/messages", Some(&ann.token))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_a_crash_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;
    let mut a = server.ws(&ann.token).await;
    for n in 1..=3 {
        let (r, _) = send_chat(
            &mut a,
            room,
            &format!("m{n}"),
            "before crash",
            &format!("r{n}"),
        )
        .await;
        assert_eq!(r["accepted"], true, "{r}");
    }
    drop(a);
    server.kill();
    drop(server);

    let server = Server::start(dir.path(), &[]);
    let before: Vec<_> = history(&server, &bob, room).await.iter().map(key).collect();
    assert_eq!(
        before.iter().map(|k| k.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "acknowledged messages are durable"
    );
    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;
    let replay = b.subscribe_room(room, Some(1)).await;
    let replayed: Vec<i64> = replay
        .iter()
        .filter(|f| f["type"] == "CHAT_MESSAGE")
        .map(|f| f["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(replayed, vec![2, 3]);
    // A retry of an acknowledged message is still recognised after the restart.
    let (retry, _) = send_chat(&mut a, room, "m3", "before crash", "again").await;
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["seq"], 3, "{retry}");
    let (next, _) = send_chat(&mut a, room, "m4", "after crash", "r4").await;
    assert_eq!(next["seq"], 4, "{next}");
    let (live, _) = b.until(|f| f["type"] == "CHAT_MESSAGE").await;
    assert_eq!(live["message"]["seq"], 4, "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_members_lose_access() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;
    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;
    a.subscribe_room(room, None).await;
    b.subscribe_room(room, None).await;

    let response = reqwest::Client::new()
        .delete(server.url(&format!("/api/rooms/{room}/members/{}", bob.id)))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);

    let (r, _) = send_chat(&mut a, room, "secret", "bob is gone", "r1").await;
    assert_eq!(r["accepted"], true, "{r}");
    let (r, before) = send_chat(&mut b, room, "still-here", "let me in", "r2").await;
    assert_eq!(r["accepted"], false, "{r}");
    assert_eq!(r["code"], "NOT_A_MEMBER", "{r}");
    assert!(
        before.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "no messages after removal: {before:?}"
    );
    b.send(json!({"type": "PING", "requestId": "p"})).await;
    let (_, before) = b.until(|f| f["type"] == "PONG").await;
    assert!(
        before.iter().all(|f| f["type"] != "CHAT_MESSAGE"),
        "no messages after removal: {before:?}"
    );
    let (status, body) = server
        .get(&format!("/api/rooms/{room}/messages"), Some(&bob.token))
        .await;
    assert_eq!(status, 403, "{body}");
    b.send(json!({"type": "SUBSCRIBE", "roomId": room, "requestId": "s"}))
        .await;
    let (e, _) = b
        .until(|f| f["type"] == "ERROR" || f["type"] == "SUBSCRIBED")
        .await;
    assert_eq!(e["code"], "NOT_A_MEMBER", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_members_cannot_query_presence_or_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let room = server.group_room(&ann, "Test room", &[&bob]).await;
    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;
    a.subscribe_room(room, None).await;
    b.subscribe_room(room, None).await;

    let response = reqwest::Client::new()
        .delete(server.url(&format!("/api/rooms/{room}/members/{}", bob.id)))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);

    b.send(json!({"type": "PRESENCE", "roomId": room, "requestId": "who"}))
        .await;
    let (frame, _) = b.until(|f| f["requestId"] == "who").await;
    assert_eq!(
        frame["type"], "ERROR",
        "a removed member must not see who is online: {frame}"
    );

    b.send(json!({"type": "TYPING", "roomId": room, "requestId": "typing"}))
        .await;
    b.send(json!({"type": "PING", "requestId": "p"})).await;
    let (_, before) = b.until(|f| f["type"] == "PONG").await;
    assert!(
        before
            .iter()
            .any(|f| f["type"] == "ERROR" && f["requestId"] == "typing"),
        "{before:?}"
    );
    a.send(json!({"type": "PING", "requestId": "pa"})).await;
    let (_, seen) = a.until(|f| f["type"] == "PONG").await;
    assert!(
        seen.iter().all(|f| f["type"] != "TYPING"),
        "typing from a removed member reached the room: {seen:?}"
    );
}
