//! Black-box tests of a process whose roles cannot answer: a role that stops
//! fails `/readyz` and then ends the process with an error, and a WebSocket
//! bid without a result is answered `TIMEOUT` instead of holding its slot.

mod support;

use std::time::Duration;

use serde_json::json;
use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_panics_fails_readiness_and_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("BOWCHAT_DEBUG_FAULT", "panic-in-auction-role"),
            ("BOWCHAT_ROLE_EXIT_DELAY_MS", "2000"),
        ],
    );
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "ready before any record: {body}");
    let seller = server.user("seller").await;
    // Creating the auction hands the role its first record.
    server.auction(&seller, json!({})).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.get("/readyz", None).await;
        if status == 503 {
            assert_eq!(body["code"], "UNAVAILABLE", "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {status} after the role panicked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = server
        .exit_within(Duration::from_secs(15))
        .await
        .expect("the process ends after its role stopped");
    assert!(!exit.success(), "a stopped role is an error exit: {exit}");
    let stopped = server.log_lines("role stopped");
    assert!(
        stopped
            .iter()
            .any(|l| l.contains("auction") && l.contains("fault injected")),
        "the log names the role and the reason: {stopped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_websocket_bids_time_out_and_free_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    // A gateway with no auction role: no bid is ever answered.
    let server = Server::start_roles(
        dir.path(),
        "gateway",
        &[("BOWCHAT_GATEWAY__COMMAND_TIMEOUT_MS", "300")],
    );
    let user = server.user("bidder").await;
    let mut ws = server.ws(&user.token).await;
    // Fill all 1024 slots a connection has; each one comes back TIMEOUT.
    let slots = 1024;
    for n in 0..slots {
        ws.send(json!({"type": "AUCTION_BID", "requestId": format!("r{n}"), "auctionId": 1, "amount": 100}))
            .await;
    }
    for n in 0..slots {
        let frame = ws.recv().await;
        assert_eq!(frame["type"], "ERROR", "{frame}");
        assert_eq!(frame["code"], "TIMEOUT", "{frame}");
        assert_eq!(frame["requestId"], format!("r{n}"), "oldest first: {frame}");
    }
    // The slots are free again: the next bid is taken, not TOO_MANY_PENDING.
    ws.send(json!({"type": "AUCTION_BID", "requestId": "again", "auctionId": 1, "amount": 100}))
        .await;
    let frame = ws.recv().await;
    assert_eq!(frame["code"], "TIMEOUT", "{frame}");
    assert_eq!(frame["requestId"], "again", "{frame}");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("bowchat_command_timeouts_total{via=\"ws\"} 1025"),
        "timeouts are counted"
    );
}
