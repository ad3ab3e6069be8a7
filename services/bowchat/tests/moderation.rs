//! Black-box moderation: `bowchat admin users block` ends a user's open
//! WebSocket (ERROR USER_BLOCKED, close 4001) and REST access, refuses their
//! login and refresh, and `unblock` lets them log in again while the old
//! sessions stay ended; members report messages once (idempotent), and
//! `bowchat admin reports list` / `audit list` show reports and every
//! moderation action.
mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::{Server, Ws};
use tokio_tungstenite::tungstenite::Message;

fn admin(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bowchat"))
        .arg("admin")
        .args(args)
        .env("BOWCHAT_DATA_DIR", &server.dir)
        .env("BOWCHAT_LOG__LEVEL", "warn")
        .output()
        .expect("run bowchat admin");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn login(server: &Server, name: &str) -> (u16, Value) {
    server
        .post(
            "/api/auth/login",
            None,
            json!({"email": format!("{name}@test.bowchat"), "password": "correct horse battery"}),
        )
        .await
}

/// Frames until the server closes; returns the ERROR frames and the close code.
async fn until_closed(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    let mut errors = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(15), ws.stream.next())
            .await
            .expect("the server ends the socket within 15 s");
        match next {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(text.as_str()).expect("json");
                if frame["type"] == "ERROR" {
                    errors.push(frame);
                }
            }
            Some(Ok(Message::Close(frame))) => return (errors, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (errors, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_ends_every_session_and_an_unblock_allows_a_new_login() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("BOWCHAT_AUTH__REVOCATION_POLL_MS", "200")]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let mut ws = server.ws(&ann.token).await;

    let out = admin(
        &server,
        &["users", "block", "ann@test.bowchat", "--reason", "spam"],
    );
    assert!(out.contains(&format!("blocked user {}", ann.id)), "{out}");
    let again = admin(&server, &["users", "block", &ann.id.to_string()]);
    assert!(again.contains("already blocked"), "{again}");

    // Login and refresh are refused at once: they read the stored block.
    let (status, body) = login(&server, "ann").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("USER_BLOCKED")),
        "{body}"
    );
    let (status, body) = server
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": ann.refresh}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("USER_BLOCKED")),
        "{body}"
    );

    // The access token stops at the server's next revocation poll.
    let (status, body) = server.until_refused(&ann.token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("USER_BLOCKED")),
        "{body}"
    );
    // Others are untouched.
    assert_eq!(server.get("/api/rooms", Some(&bob.token)).await.0, 200);

    // The open socket: its next frame is refused and the socket closed.
    ws.send(json!({"type": "PING", "requestId": "p"})).await;
    let (errors, code) = until_closed(&mut ws).await;
    assert_eq!(code, Some(4001));
    assert!(
        errors.iter().any(|e| e["code"] == "USER_BLOCKED"),
        "{errors:?}"
    );
    // A new socket with the old token is refused at the upgrade.
    let url = format!("ws://{}/ws?access_token={}", server.addr, ann.token);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    let out = admin(&server, &["users", "unblock", "ann@test.bowchat"]);
    assert!(out.contains(&format!("unblocked user {}", ann.id)), "{out}");
    let (status, body) = login(&server, "ann").await;
    assert_eq!(status, 200, "{body}");
    let token = body["accessToken"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/rooms", Some(&token)).await.0, 200);
    // The sessions the block ended stay ended.
    assert_ne!(server.get("/api/rooms", Some(&ann.token)).await.0, 200);
    let (status, _) = server
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": ann.refresh}),
        )
        .await;
    assert_eq!(status, 401);

    let audit = admin(&server, &["audit", "list"]);
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(
        lines[0].contains("action=unblock") && lines[0].contains("actor=operator"),
        "{audit}"
    );
    assert!(
        lines[1].contains("action=block") && lines[1].contains("detail=\"spam\""),
        "{audit}"
    );
    assert!(lines[1].contains(&format!("target={}", ann.id)), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_report_a_message_once_and_operators_list_reports_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("BOWCHAT_CHAT__MAX_REPORT_CHARS", "20")]);
    let ann = server.user("ann").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = server.group_room(&ann, "club", &[&bob]).await;
    let (status, sent) = server
        .post(
            &format!("/api/rooms/{room}/messages"),
            Some(&ann.token),
            json!({"clientMsgId": "m1", "body": "buy my stuff"}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let seq = sent["seq"].as_i64().unwrap();
    let path = format!("/api/rooms/{room}/messages/{seq}/report");

    let (status, first) = server
        .post(&path, Some(&bob.token), json!({"reason": "spam"}))
        .await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_i64().expect("report id");
    let (status, again) = server
        .post(&path, Some(&bob.token), json!({"reason": "still spam"}))
        .await;
    assert_eq!((status, again["id"].as_i64()), (200, Some(id)), "{again}");

    let refused = [
        (
            Some(&eve.token),
            json!({"reason": "x"}),
            path.clone(),
            403,
            "NOT_A_MEMBER",
        ),
        (
            Some(&bob.token),
            json!({"reason": "  "}),
            path.clone(),
            400,
            "INVALID_REASON",
        ),
        (
            Some(&bob.token),
            json!({"reason": "x".repeat(21)}),
            path.clone(),
            400,
            "INVALID_REASON",
        ),
        (
            Some(&bob.token),
            json!({}),
            path.clone(),
            422,
            "INVALID_BODY",
        ),
        (
            Some(&bob.token),
            json!({"reason": "x"}),
            format!("/api/rooms/{room}/messages/99/report"),
            404,
            "NOT_FOUND",
        ),
        (
            Some(&bob.token),
            json!({"reason": "x"}),
            "/api/rooms/999999/messages/1/report".to_string(),
            404,
            "NOT_FOUND",
        ),
        (
            None,
            json!({"reason": "x"}),
            path.clone(),
            401,
            "AUTH_REQUIRED",
        ),
    ];
    for (token, body, path, status, code) in refused {
        let (got, answer) = server.post(&path, token.map(String::as_str), body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{path}: {answer}"
        );
    }

    let reports = admin(&server, &["reports", "list"]);
    let lines: Vec<&str> = reports.lines().collect();
    assert_eq!(lines.len(), 1, "{reports}");
    for part in [
        format!("id={id}"),
        format!("room={room}"),
        format!("seq={seq}"),
        format!("reporter={}", bob.id),
        "reason=\"spam\"".to_string(),
        format!("sender={}", ann.id),
        "body=\"buy my stuff\"".to_string(),
    ] {
        assert!(lines[0].contains(&part), "{part} in {reports}");
    }
    let audit = admin(&server, &["audit", "list", "--limit", "10"]);
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 1, "one audit row for one report: {audit}");
    for part in [
        format!("actor={}", bob.id),
        "action=report".to_string(),
        format!("target={}", ann.id),
        format!("room={room}"),
        format!("seq={seq}"),
    ] {
        assert!(lines[0].contains(&part), "{part} in {audit}");
    }
}
