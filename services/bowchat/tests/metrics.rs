//! `/metrics` of the real binary: the gauges the Grafana dashboard reads
//! (bus lag, database connections, process memory and threads) are exported,
//! and bids move the bid counters and latency histogram.

mod support;

use serde_json::json;
use support::Server;

fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_bus_lag_db_connections_and_process_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let seller = server.user("seller").await;
    let bidder = server.user("bidder").await;
    let auction = server.auction(&seller, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let mut ws = server.ws(&bidder.token).await;
    ws.send(json!({"type": "AUCTION_BID", "requestId": "m1", "auctionId": auction, "amount": 100}))
        .await;
    let (result, _) = ws
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "m1")
        .await;
    assert_eq!(result["accepted"], true, "{result}");

    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lag = sample(&text, "bowchat_bus_lag_records{group=\"");
    assert!(
        text.contains("topic=\"auction-bid\""),
        "no lag for the bid topic:\n{text}"
    );
    assert_eq!(lag, Some(0.0), "an idle bus has no lag");
    let writer_idle = sample(
        &text,
        "bowchat_db_connections{pool=\"writer\",state=\"idle\"}",
    );
    let writer_busy = sample(
        &text,
        "bowchat_db_connections{pool=\"writer\",state=\"in_use\"}",
    );
    assert_eq!(
        writer_idle.zip(writer_busy).map(|(a, b)| a + b),
        Some(1.0),
        "one writer connection:\n{text}"
    );
    assert!(sample(
        &text,
        "bowchat_db_connections{pool=\"reader\",state=\"idle\"}"
    )
    .is_some());
    assert!(
        sample(
            &text,
            "bowchat_db_connections{pool=\"results_writer\",state=\"idle\"}"
        )
        .is_some(),
        "the results file's writer is measured:\n{text}"
    );
    // The accepted bid's answer is in memory or already merged: 0 or 1.
    let unmerged = sample(&text, "bowchat_results_unmerged").expect("unmerged gauge");
    assert!(unmerged == 0.0 || unmerged == 1.0, "{unmerged}");
    assert!(sample(&text, "process_threads").unwrap_or(0.0) >= 1.0);
    assert!(sample(&text, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0);
    assert_eq!(
        sample(&text, "bowchat_bids_total{result=\"accepted\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "bowchat_bid_latency_seconds_count"),
        Some(1.0)
    );
}
