//! Black-box robustness tests: bad WebSocket frames cost their sender an ERROR
//! frame and nothing else (the connection stays usable, other clients and the
//! process are unaffected); bad REST bodies get problem+json answers.
mod support;

use serde_json::{json, Value};
use support::{Server, Ws};
use tokio_tungstenite::tungstenite::Message;

/// Sends `message`, expects the next frame to be an ERROR with `code` (and
/// `request_id` echoed), then checks the connection still answers a PING.
async fn expect_error(ws: &mut Ws, message: Message, code: &str, request_id: Option<&str>) {
    let what = format!("{message:?}");
    let what = if what.len() > 120 {
        format!("{}…", &what[..120])
    } else {
        what
    };
    ws.send_raw(message).await;
    let frame = ws.recv().await;
    assert_eq!(frame["type"], "ERROR", "after {what}: {frame}");
    assert_eq!(frame["code"], code, "after {what}: {frame}");
    assert!(frame["message"].is_string(), "{frame}");
    match request_id {
        Some(id) => assert_eq!(
            frame["requestId"], id,
            "requestId echoed after {what}: {frame}"
        ),
        None => assert!(frame["requestId"].is_null(), "{frame}"),
    }
    still_usable(ws, "after-error").await;
}

/// A PING is answered with a PONG carrying its requestId, and nothing else comes first.
async fn still_usable(ws: &mut Ws, request_id: &str) {
    ws.send(json!({"type": "PING", "requestId": request_id}))
        .await;
    let frame = ws.recv().await;
    assert_eq!(frame["type"], "PONG", "{frame}");
    assert_eq!(frame["requestId"], request_id, "{frame}");
    assert!(frame["serverTime"].is_i64(), "{frame}");
}

fn text(s: impl Into<String>) -> Message {
    Message::Text(s.into().into())
}

async fn healthy(server: &Server) {
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_errors_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[("BOWCHAT_GATEWAY__MAX_FRAME_BYTES", "1024")]);
    let seller = server.user("seller").await;
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let auction = server.auction(&seller, json!({})).await;
    let auction_id = auction["id"].as_i64().expect("auction id");

    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;

    let bid = |amount: Value| {
        text(json!({"type": "AUCTION_BID", "requestId": "bid-1", "auctionId": auction_id, "amount": amount}).to_string())
    };
    let cases: Vec<(Message, &str, Option<&str>)> = vec![
        (text("{oops"), "MALFORMED_JSON", None),
        (text(""), "MALFORMED_JSON", None),
        (Message::Binary(vec![0u8, 1, 2, 3].into()), "BINARY_NOT_SUPPORTED", None),
        (text(format!(r#"{{"type":"PING","requestId":"big","pad":"{}"}}"#, "x".repeat(5000))), "FRAME_TOO_LARGE", None),
        (text(r#"{"type":"FLY"}"#), "UNKNOWN_TYPE", None),
        (text(r#"{"type":"FLY","requestId":"fly-1"}"#), "UNKNOWN_TYPE", Some("fly-1")),
        (text(r#"{"requestId":"no-type"}"#), "INVALID_FRAME", Some("no-type")),
        (text(r#"{"type":5,"requestId":"num-type"}"#), "INVALID_FRAME", Some("num-type")),
        (text("[1,2,3]"), "INVALID_FRAME", None),
        (text("null"), "INVALID_FRAME", None),
        (text(format!("{}{}", "[".repeat(400), "]".repeat(400))), "MALFORMED_JSON", None),
        (bid(json!(-5)), "INVALID_AMOUNT", Some("bid-1")),
        (bid(json!(0)), "INVALID_AMOUNT", Some("bid-1")),
        (bid(json!(1.5)), "INVALID_AMOUNT", Some("bid-1")),
        (bid(json!(1e30)), "INVALID_AMOUNT", Some("bid-1")),
        (
            text(format!(r#"{{"type":"AUCTION_BID","requestId":"bid-1","auctionId":{auction_id},"amount":99999999999999999999999}}"#)),
            "INVALID_AMOUNT",
            Some("bid-1"),
        ),
        (bid(json!(i64::MAX)), "INVALID_AMOUNT", Some("bid-1")),
        (bid(json!("abc")), "INVALID_FRAME", Some("bid-1")),
        (bid(json!("150")), "INVALID_FRAME", Some("bid-1")),
        (bid(Value::Null), "INVALID_FRAME", Some("bid-1")),
        (
            text(json!({"type": "AUCTION_BID", "requestId": "", "auctionId": auction_id, "amount": 150}).to_string()),
            "INVALID_REQUEST_ID",
            Some(""),
        ),
        (
            text(json!({"type": "AUCTION_BID", "requestId": "no-amount", "auctionId": auction_id}).to_string()),
            "INVALID_FRAME",
            Some("no-amount"),
        ),
        (
            text(json!({"type": "SUBSCRIBE", "requestId": "both", "auctionId": auction_id, "roomId": 1}).to_string()),
            "INVALID_FRAME",
            Some("both"),
        ),
        (text(json!({"type": "SUBSCRIBE", "requestId": "neither"}).to_string()), "INVALID_FRAME", Some("neither")),
        (
            text(json!({"type": "SUBSCRIBE", "requestId": "missing", "auctionId": 999_999}).to_string()),
            "NOT_FOUND",
            Some("missing"),
        ),
        (
            text(json!({"type": "CHAT_SEND", "requestId": "cs", "roomId": 1}).to_string()),
            "INVALID_FRAME",
            Some("cs"),
        ),
        (
            text(json!({"type": "CHAT_SEND", "requestId": "empty", "roomId": 1, "clientMsgId": "c", "body": "   "}).to_string()),
            "EMPTY_MESSAGE",
            Some("empty"),
        ),
        (
            text(json!({"type": "CHAT_SEND", "requestId": "cid", "roomId": 1, "clientMsgId": "", "body": "hi"}).to_string()),
            "INVALID_CLIENT_MSG_ID",
            Some("cid"),
        ),
        (
            text(json!({"type": "CHAT_READ", "requestId": "neg", "roomId": 1, "seq": -1}).to_string()),
            "INVALID_FRAME",
            Some("neg"),
        ),
        (
            text(json!({"type": "TYPING", "requestId": "typing", "roomId": 1}).to_string()),
            "NOT_SUBSCRIBED",
            Some("typing"),
        ),
        (text(json!({"type": "AUTH", "requestId": "auth"}).to_string()), "INVALID_FRAME", Some("auth")),
    ];

    for (i, (message, code, request_id)) in cases.into_iter().enumerate() {
        expect_error(&mut a, message, code, request_id).await;
        // The other client is unaffected throughout.
        still_usable(&mut b, &format!("b-{i}")).await;
    }

    // After all that, real work still goes through on the same connection.
    a.subscribe_auction(auction_id, None).await;
    a.send(json!({"type": "AUCTION_BID", "requestId": "real-bid", "auctionId": auction_id, "amount": 150})).await;
    let (result, _) = a
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "real-bid")
        .await;
    assert_eq!(result["accepted"], true, "{result}");
    assert_eq!(result["leading"], true, "{result}");
    still_usable(&mut b, "b-end").await;

    healthy(&server).await;
    assert!(server.alive(), "the process survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_beyond_the_transport_limit_only_ends_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("BOWCHAT_GATEWAY__MAX_FRAME_BYTES", "1024"),
            ("BOWCHAT_GATEWAY__MAX_TRANSPORT_FRAME_BYTES", "65536"),
        ],
    );
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let mut a = server.ws(&ann.token).await;
    let mut b = server.ws(&bob.token).await;

    // Over the transport cap the server may drop the connection rather than
    // answer; either an ERROR frame or a closed stream is acceptable.
    let huge = format!(r#"{{"type":"PING","pad":"{}"}}"#, "x".repeat(200_000));
    let _ = futures::SinkExt::send(&mut a.stream, text(huge)).await;
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            match futures::StreamExt::next(&mut a.stream).await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str::<Value>(t.as_str()).unwrap())
                }
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("the server reacts to an oversized frame");
    if let Some(frame) = outcome {
        assert_eq!(frame["type"], "ERROR", "{frame}");
        assert_eq!(frame["code"], "FRAME_TOO_LARGE", "{frame}");
    }

    still_usable(&mut b, "b").await;
    healthy(&server).await;
    assert!(server.alive(), "the process survived");
    // The user can connect again.
    let mut again = server.ws(&ann.token).await;
    still_usable(&mut again, "again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rest_bodies_get_problem_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let http = reqwest::Client::new();

    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("/api/auctions", "{oops", Some("application/json")),
        ("/api/auctions", "[]", Some("application/json")),
        (
            "/api/auctions",
            r#"{"title":"x","startingPrice":"abc"}"#,
            Some("application/json"),
        ),
        ("/api/auctions", r#"{"title":"x"}"#, None),
        ("/api/rooms", "{oops", Some("application/json")),
        ("/api/auth/login", "{oops", Some("application/json")),
    ];
    for (path, body, content_type) in cases {
        let mut request = http
            .post(server.url(path))
            .bearer_auth(&seller.token)
            .body(body.to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{path} {body:?}: status {status}"
        );
        let ct = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/problem+json"),
            "{path} {body:?}: content-type {ct}"
        );
        let problem: Value = response.json().await.expect("problem body is JSON");
        assert!(problem["code"].is_string(), "{path} {body:?}: {problem}");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["type"].is_string() && problem["title"].is_string(),
            "{problem}"
        );
    }

    // Negative and absurd amounts in a well-formed body are refused too.
    for price in [json!(-5), json!(1e30), json!(0)] {
        let (status, problem) = server
            .post(
                "/api/auctions",
                Some(&seller.token),
                json!({"title": "Lot", "currency": "USD", "startingPrice": price, "increment": 10, "durationSecs": 600}),
            )
            .await;
        assert!(
            (400..500).contains(&status),
            "startingPrice {price}: {status} {problem}"
        );
        assert!(problem["code"].is_string(), "{problem}");
    }

    healthy(&server).await;
    assert!(server.alive());
}

/// A wrong method on a known path, and a plain GET of `/ws`, answer
/// problem+json like every other error (405 keeps its `Allow` header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_plain_ws_gets_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let cases = [
        (
            reqwest::Method::DELETE,
            "/api/auctions",
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (reqwest::Method::POST, "/metrics", 405, "METHOD_NOT_ALLOWED"),
        (
            reqwest::Method::PUT,
            "/api/auth/login",
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            reqwest::Method::GET,
            "/ws",
            400,
            "WEBSOCKET_UPGRADE_REQUIRED",
        ),
    ];
    for (method, path, status, code) in cases {
        let response = http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let headers = response.headers().clone();
        let ct = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/problem+json"),
            "{method} {path}: content-type {ct:?}"
        );
        if status == 405 {
            let allow = headers
                .get("allow")
                .map(|v| v.to_str().unwrap().to_string());
            assert!(
                allow.as_deref().is_some_and(|a| !a.is_empty()),
                "{method} {path}: Allow {allow:?}"
            );
        }
        let problem: Value = response.json().await.expect("problem body is JSON");
        assert_eq!(problem["code"], code, "{method} {path}: {problem}");
        assert_eq!(problem["status"], status, "{problem}");
    }
    healthy(&server).await;
}

/// PING counts against the per-user command rate like every other frame,
/// and a refusal costs the sender an ERROR frame, not the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_rate_limited_like_other_frames() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("BOWCHAT_GATEWAY__USER_RATE_PER_SEC", "1"),
            ("BOWCHAT_GATEWAY__USER_RATE_BURST", "3"),
        ],
    );
    let user = server.user("pinger").await;
    let mut ws = server.ws(&user.token).await;
    for n in 0..10 {
        ws.send(json!({"type": "PING", "requestId": format!("p{n}")}))
            .await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..10 {
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("PONG") => pongs += 1,
            Some("ERROR") => {
                assert_eq!(frame["code"], "RATE_LIMITED", "{frame}");
                limited += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert!(pongs <= 4, "the burst is 3 (plus what refilled): {pongs}");
    assert!(limited >= 6, "{limited} refused of 10");
    // The connection is still there; once the bucket refills, pings pass.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        ws.send(json!({"type": "PING", "requestId": "later"})).await;
        let frame = ws.recv().await;
        if frame["type"] == "PONG" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{frame}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    healthy(&server).await;
}

/// Request headers have a configurable size limit (32 KiB by default): more
/// is a 431 problem, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let ask = |bytes: usize| {
        http.get(server.url("/healthz"))
            .header("x-padding", "a".repeat(bytes))
            .send()
    };
    let response = ask(16 * 1024).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = ask(200 * 1024).await.unwrap();
    assert_eq!(response.status().as_u16(), 431);
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "HEADERS_TOO_LARGE", "{problem}");
    healthy(&server).await;

    // The limit is a setting.
    let dir = tempfile::tempdir().unwrap();
    let strict = Server::start(dir.path(), &[("BOWCHAT_GATEWAY__MAX_HEADER_BYTES", "4096")]);
    let response = reqwest::Client::new()
        .get(strict.url("/healthz"))
        .header("x-padding", "a".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 431);
}
