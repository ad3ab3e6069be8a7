//! Black-box auth tests: the REST session lifecycle, forged, tampered,
//! foreign-audience and expired access tokens (REST and WebSocket upgrade),
//! refresh-token reuse detection and in-band WebSocket re-authentication.
mod support;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use support::{Server, User};

const PASSWORD: &str = "correct horse battery";

/// GET /api/me with `token`: (status, body, content-type).
async fn me(server: &Server, token: &str) -> (u16, Value, String) {
    let response = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/me");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        content_type,
    )
}

/// Asserts a 401 problem+json with `code` on GET /api/me.
async fn refused(server: &Server, token: &str, code: &str) {
    let (status, body, content_type) = me(server, token).await;
    assert_eq!(status, 401, "expected 401 {code}: {body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
}

/// The HTTP status the server answered a WebSocket upgrade with, or None if it upgraded.
async fn ws_upgrade_status(server: &Server, token: &str) -> Option<u16> {
    let url = format!("ws://{}/ws?access_token={}", server.addr, token);
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(e) => panic!("unexpected ws error: {e}"),
    }
}

async fn refresh(server: &Server, token: &str) -> (u16, Value) {
    server
        .post("/api/auth/refresh", None, json!({"refreshToken": token}))
        .await
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    assert!(it.next().is_none(), "a JWT has three parts");
    (h.to_string(), p.to_string(), s.to_string())
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_logout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;

    let (status, body, _) = me(&server, &ann.token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], ann.id);
    assert_eq!(body["email"], "ann@test.bowchat");
    assert_eq!(body["displayName"], "ann");

    // Same email again.
    let (status, body) = server
        .post(
            "/api/auth/register",
            None,
            json!({"email": "ann@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "EMAIL_TAKEN");

    // Wrong password, unknown email: the same answer.
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ann@test.bowchat", "password": "wrong password!!"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "INVALID_CREDENTIALS");
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "nobody@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "INVALID_CREDENTIALS");

    let (status, login) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ann@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["tokenType"], "Bearer");
    assert_eq!(login["user"]["id"], ann.id);
    let access = login["accessToken"].as_str().unwrap().to_string();
    let refresh_token = login["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(
        refresh_token, ann.refresh,
        "each login starts its own session"
    );
    assert_eq!(me(&server, &access).await.0, 200);

    let (status, rotated) = refresh(&server, &refresh_token).await;
    assert_eq!(status, 200, "{rotated}");
    let new_access = rotated["accessToken"].as_str().unwrap().to_string();
    let new_refresh = rotated["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, refresh_token, "refresh tokens rotate");
    assert_eq!(rotated["user"]["id"], ann.id);
    assert_eq!(me(&server, &new_access).await.0, 200);

    // Logout revokes the session's refresh token (idempotently)...
    let (status, body) = server
        .post(
            "/api/auth/logout",
            None,
            json!({"refreshToken": new_refresh}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = refresh(&server, &new_refresh).await;
    assert_eq!(status, 401, "a logged-out refresh token is refused: {body}");
    let (status, _) = server
        .post(
            "/api/auth/logout",
            None,
            json!({"refreshToken": new_refresh}),
        )
        .await;
    assert_eq!(status, 204);
    // ...but not the registration's separate session.
    let (status, body) = refresh(&server, &ann.refresh).await;
    assert_eq!(status, 200, "{body}");

    // Garbage refresh token.
    let (status, body) = refresh(&server, "not-a-token").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "REFRESH_INVALID");

    // No token at all.
    let (status, body) = server.get("/api/me", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "AUTH_REQUIRED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_and_tampered_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let (header, payload, signature) = parts(&ann.token);
    assert_eq!(decode(&header)["alg"], "EdDSA");

    // alg "none", with and without the real kid, with an empty signature.
    let none = format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"})));
    let mut none_kid_header = json!({"alg": "none", "typ": "JWT"});
    none_kid_header["kid"] = decode(&header)["kid"].clone();
    let none_kid = format!("{}.{payload}.", b64(&none_kid_header));
    for token in [&none, &none_kid] {
        refused(&server, token, "TOKEN_INVALID").await;
        assert_eq!(
            ws_upgrade_status(&server, token).await,
            Some(401),
            "ws upgrade with {token}"
        );
    }

    // One character of the signature changed (the first: the last one carries padding bits).
    let mut sig: Vec<char> = signature.chars().collect();
    sig[0] = if sig[0] == 'A' { 'B' } else { 'A' };
    let tampered_sig = format!("{header}.{payload}.{}", sig.iter().collect::<String>());
    refused(&server, &tampered_sig, "TOKEN_INVALID").await;
    assert_eq!(ws_upgrade_status(&server, &tampered_sig).await, Some(401));

    // The signature of someone else's claims: make ann's token claim bob's id.
    let bob = server.user("bob").await;
    let mut claims = decode(&payload);
    claims["sub"] = json!(bob.id.to_string());
    if decode(&payload)["sub"].is_number() {
        claims["sub"] = json!(bob.id);
    }
    let forged = format!("{header}.{}.{signature}", b64(&claims));
    refused(&server, &forged, "TOKEN_INVALID").await;
    assert_eq!(ws_upgrade_status(&server, &forged).await, Some(401));

    // Not a JWT at all; and no token on the upgrade.
    refused(&server, "hello", "TOKEN_INVALID").await;
    let url = format!("ws://{}/ws", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        Ok(_) => panic!("upgrade without a token was accepted"),
        Err(e) => panic!("unexpected ws error: {e}"),
    }

    // The genuine token still works.
    assert_eq!(me(&server, &ann.token).await.0, 200);
    assert_eq!(ws_upgrade_status(&server, &ann.token).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_another_audience_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start(dir.path(), &[]);
    let ann = first.user("ann").await;
    assert_eq!(me(&first, &ann.token).await.0, 200);
    first.kill();
    drop(first);

    // Same database (same signing key), different expected audience.
    let server = Server::start(dir.path(), &[("BOWCHAT_AUTH__AUDIENCE", "someone-else")]);
    refused(&server, &ann.token, "TOKEN_INVALID").await;
    assert_eq!(ws_upgrade_status(&server, &ann.token).await, Some(401));

    // A token issued by this configuration is accepted.
    let (status, login) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ann@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["accessToken"].as_str().unwrap();
    let (_, payload, _) = parts(token);
    assert_eq!(decode(&payload)["aud"], "someone-else");
    assert_eq!(me(&server, token).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("BOWCHAT_AUTH__ACCESS_TTL_SECS", "1"),
            ("BOWCHAT_AUTH__LEEWAY_SECS", "0"),
        ],
    );
    let ann = server.user("ann").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    refused(&server, &ann.token, "TOKEN_EXPIRED").await;
    assert_eq!(ws_upgrade_status(&server, &ann.token).await, Some(401));
    // The refresh token outlives the access token.
    let (status, body) = refresh(&server, &ann.refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expiresIn"], 1, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_connection_must_reauthenticate_in_band() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("BOWCHAT_AUTH__ACCESS_TTL_SECS", "1"),
            ("BOWCHAT_AUTH__LEEWAY_SECS", "0"),
        ],
    );
    let ann = server.user("ann").await;
    let mut ws = server.ws(&ann.token).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // PING is always answered; commands need a live token.
    ws.send(json!({"type": "PING", "requestId": "p"})).await;
    let (pong, _) = ws.until(|f| f["type"] == "PONG").await;
    assert_eq!(pong["requestId"], "p");
    ws.send(json!({"type": "SUBSCRIBE", "roomId": 1, "requestId": "s"}))
        .await;
    let (error, _) = ws.until(|f| f["type"] == "ERROR").await;
    assert_eq!(error["code"], "TOKEN_EXPIRED", "{error}");
    assert_eq!(error["requestId"], "s", "{error}");
    // An expired token does not re-authenticate.
    ws.send(json!({"type": "AUTH", "token": ann.token, "requestId": "a0"}))
        .await;
    let (error, _) = ws
        .until(|f| f["type"] == "ERROR" || f["type"] == "AUTH_OK")
        .await;
    assert_eq!(error["type"], "ERROR", "{error}");
    assert_eq!(error["code"], "TOKEN_EXPIRED", "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let dir = tempfile::tempdir().unwrap();
    // No grace window: every reuse is outside it (inside it, a second use
    // gets the same successor; see auth_hardening.rs).
    let server = Server::start(
        dir.path(),
        &[("BOWCHAT_AUTH__REFRESH_REUSE_GRACE_SECS", "0")],
    );
    let ann = server.user("ann").await;

    let (status, rotated) = refresh(&server, &ann.refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let next = rotated["refreshToken"].as_str().unwrap().to_string();

    let (status, body) = refresh(&server, &ann.refresh).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "REFRESH_REUSED", "{body}");

    let (status, body) = refresh(&server, &next).await;
    assert_eq!(
        status, 401,
        "the whole family is revoked after reuse: {body}"
    );
    assert!(
        body["code"] == "REFRESH_INVALID" || body["code"] == "REFRESH_REUSED",
        "{body}"
    );

    // Another login is a new family and is unaffected.
    let (status, login) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ann@test.bowchat", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let (status, body) = refresh(&server, login["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_auth_with_a_fresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann: User = server.user("ann").await;
    let bob = server.user("bob").await;
    let mut ws = server.ws(&ann.token).await;

    let (status, rotated) = refresh(&server, &ann.refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let fresh = rotated["accessToken"].as_str().unwrap();
    ws.send(json!({"type": "AUTH", "token": fresh, "requestId": "a1"}))
        .await;
    let (ok, _) = ws
        .until(|f| f["type"] == "AUTH_OK" || f["type"] == "ERROR")
        .await;
    assert_eq!(ok["type"], "AUTH_OK", "{ok}");
    assert_eq!(ok["requestId"], "a1");
    assert_eq!(ok["userId"], ann.id);
    let (_, payload, _) = parts(fresh);
    assert_eq!(ok["expiresAt"], decode(&payload)["exp"], "{ok}");

    // Another user's token cannot take over the connection.
    ws.send(json!({"type": "AUTH", "token": bob.token, "requestId": "a2"}))
        .await;
    let (error, _) = ws
        .until(|f| f["type"] == "AUTH_OK" || f["type"] == "ERROR")
        .await;
    assert_eq!(error["type"], "ERROR", "{error}");
    assert_eq!(error["code"], "AUTH_USER_MISMATCH", "{error}");
    assert_eq!(error["requestId"], "a2");

    // A garbage token is refused, and the connection stays usable.
    ws.send(json!({"type": "AUTH", "token": "x.y.z", "requestId": "a3"}))
        .await;
    let (error, _) = ws
        .until(|f| f["type"] == "AUTH_OK" || f["type"] == "ERROR")
        .await;
    assert_eq!(error["code"], "TOKEN_INVALID", "{error}");
    assert_eq!(error["requestId"], "a3");
    ws.send(json!({"type": "PING", "requestId": "p"})).await;
    let (pong, _) = ws.until(|f| f["type"] == "PONG").await;
    assert_eq!(pong["requestId"], "p");
}

/// Ids are sequential, so a profile must not hand out addresses: only the
/// owner sees their email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_shows_its_email_to_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let path = format!("/api/users/{}", ann.id);
    let (status, own) = server.get(&path, Some(&ann.token)).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["email"], "ann@test.bowchat", "{own}");
    let (status, other) = server.get(&path, Some(&bob.token)).await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["displayName"], "ann", "{other}");
    assert!(
        other.get("email").is_none(),
        "no address for others: {other}"
    );
}
