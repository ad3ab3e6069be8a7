//! Black-box auth hardening: password guessing is throttled per account and
//! per IP (429 problem+json with Retry-After, counted in /metrics),
//! registrations per IP; logout and refresh-family revocation end the
//! access tokens at the next request and WebSocket frame; two tabs
//! refreshing with one token at once both stay logged in.
mod support;

use futures::StreamExt;
use serde_json::{json, Value};
use support::Server;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "correct horse battery";

/// POST /api/auth/login: (status, body, Retry-After, content-type).
async fn login(server: &Server, email: &str, password: &str) -> (u16, Value, Option<u64>, String) {
    let response = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("POST /api/auth/login");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let retry_after = header("retry-after").map(|v| v.parse().expect("Retry-After is seconds"));
    let content_type = header("content-type").unwrap_or_default();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry_after,
        content_type,
    )
}

/// The value of `bowchat_auth_throttled_total{scope="<scope>"}`, 0 if absent.
async fn throttled(server: &Server, scope: &str) -> u64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let prefix = format!("bowchat_auth_throttled_total{{scope=\"{scope}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("a count"))
        .unwrap_or(0)
}

fn assert_throttled(status: u16, body: &Value, retry_after: Option<u64>, content_type: &str) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "TOO_MANY_ATTEMPTS", "{body}");
    assert_eq!(body["status"], 429, "{body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let secs = retry_after.expect("a Retry-After header");
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_per_account() {
    let dir = tempfile::tempdir().unwrap();
    // A long first delay, so no attempt of this test outlives a block.
    let server = Server::start(
        dir.path(),
        &[("BOWCHAT_AUTH__THROTTLE__ACCOUNT__BACKOFF_BASE_MS", "60000")],
    );
    server.user("ada").await;
    server.user("bob").await;

    // One guess after another: the five free attempts are 401, the rest 429.
    for attempt in 1..=20 {
        let (status, body, retry_after, content_type) =
            login(&server, "ada@test.bowchat", "wrong password!").await;
        if attempt <= 5 {
            assert_eq!(status, 401, "attempt {attempt}: {body}");
            assert_eq!(body["code"], "INVALID_CREDENTIALS", "{body}");
        } else {
            assert_throttled(status, &body, retry_after, &content_type);
        }
    }
    // While blocked even the right password is refused: the block says
    // nothing about whether a guess was right.
    let (status, body, retry_after, content_type) =
        login(&server, "ADA@test.bowchat", PASSWORD).await;
    assert_throttled(status, &body, retry_after, &content_type);
    // Another account is not affected.
    let (status, body, _, _) = login(&server, "bob@test.bowchat", PASSWORD).await;
    assert_eq!(status, 200, "{body}");

    // 50 guesses at once on a fresh account: the count is atomic, so exactly
    // the five free attempts reach the password check.
    server.user("cy").await;
    let guesses = (0..50).map(|_| login(&server, "cy@test.bowchat", "wrong password!"));
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|(status, _, _, _)| status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        45,
        "{statuses:?}"
    );
    assert_eq!(throttled(&server, "account").await, 15 + 1 + 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_registrations_are_throttled_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("BOWCHAT_AUTH__THROTTLE__IP__FREE_ATTEMPTS", "10"),
            ("BOWCHAT_AUTH__THROTTLE__IP__BACKOFF_BASE_MS", "60000"),
            ("BOWCHAT_AUTH__THROTTLE__REGISTER__FREE_ATTEMPTS", "3"),
            ("BOWCHAT_AUTH__THROTTLE__REGISTER__BACKOFF_BASE_MS", "60000"),
        ],
    );
    // Three registrations pass, the fourth waits.
    for name in ["u1", "u2", "u3"] {
        server.user(name).await;
    }
    let (status, body) = server
        .post(
            "/api/auth/register",
            None,
            json!({"email": "u4@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "TOO_MANY_ATTEMPTS", "{body}");
    assert_eq!(throttled(&server, "register").await, 1);

    // Password spraying: one guess per account, many accounts, one IP. A
    // successful login gives its attempt back, so it does not count.
    let (status, _, _, _) = login(&server, "u1@test.bowchat", PASSWORD).await;
    assert_eq!(status, 200);
    for i in 0..10 {
        let (status, body, _, _) =
            login(&server, &format!("victim{i}@test.bowchat"), "guess-1234").await;
        assert_eq!(status, 401, "spray {i}: {body}");
    }
    let (status, body, retry_after, content_type) =
        login(&server, "victim-next@test.bowchat", "guess-1234").await;
    assert_throttled(status, &body, retry_after, &content_type);
    assert_eq!(throttled(&server, "ip").await, 1);
}

/// GET /api/me: (status, code).
async fn me(server: &Server, token: &str) -> (u16, Value) {
    server.get("/api/me", Some(token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_access_tokens_at_the_next_request_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ada = server.user("ada").await;
    let (status, other) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ada@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{other}");
    let other_token = other["accessToken"].as_str().unwrap().to_string();

    let mut ws = server.ws(&ada.token).await;
    assert_eq!(me(&server, &ada.token).await.0, 200);
    let (status, body) = server
        .post(
            "/api/auth/logout",
            None,
            json!({"refreshToken": ada.refresh}),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // The next request with the (unexpired) access token is refused.
    let (status, body) = me(&server, &ada.token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "TOKEN_REVOKED", "{body}");
    // So is a new WebSocket.
    let url = format!("ws://{}/ws?access_token={}", server.addr, ada.token);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("upgrade with a revoked token: {:?}", other.map(|_| ())),
    }
    // The open WebSocket gets ERROR TOKEN_REVOKED and close 4001 at its next frame.
    ws.send(json!({"type": "PING", "requestId": "p"})).await;
    let error = ws.recv().await;
    assert_eq!(error["type"], "ERROR", "{error}");
    assert_eq!(error["code"], "TOKEN_REVOKED", "{error}");
    let close = loop {
        match ws.stream.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(4001));

    // The user's other session (another login) still works.
    assert_eq!(me(&server, &other_token).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_refresh_at_once_and_reuse_still_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ada = server.user("ada").await;

    // Two tabs refresh with the same token at the same moment: both succeed
    // with the same successor.
    let refresh = |token: String| {
        let server = &server;
        async move {
            server
                .post("/api/auth/refresh", None, json!({"refreshToken": token}))
                .await
        }
    };
    let ((s1, tab1), (s2, tab2)) =
        futures::future::join(refresh(ada.refresh.clone()), refresh(ada.refresh.clone())).await;
    assert_eq!((s1, s2), (200, 200), "{tab1} {tab2}");
    assert_eq!(tab1["refreshToken"], tab2["refreshToken"]);
    for tab in [&tab1, &tab2] {
        let (status, body) = me(&server, tab["accessToken"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{body}");
    }

    // The successor moves on; the first token is now plain reuse: the family
    // is revoked and with it every access token of the session.
    let (status, next) = refresh(tab1["refreshToken"].as_str().unwrap().to_string()).await;
    assert_eq!(status, 200, "{next}");
    let mut ws = server.ws(next["accessToken"].as_str().unwrap()).await;
    let (status, body) = refresh(ada.refresh.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "REFRESH_REUSED", "{body}");
    let (status, body) = me(&server, next["accessToken"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("TOKEN_REVOKED")),
        "{body}"
    );
    ws.send(json!({"type": "PING", "requestId": "p"})).await;
    let error = ws.recv().await;
    assert_eq!(error["code"], "TOKEN_REVOKED", "{error}");
}
