//! Cluster mode: an undecodable record on auction-bid goes to auction-bid.DLT
//! with the error in headers, counts in a metric, is logged, and does not block
//! its partition; `bowchat admin dlt replay` reads it back. Also checks the
//! consumer-lag gauge in /metrics.

mod support;

use std::time::Duration;

use bowchat_bus::Bus;
use bytes::Bytes;
use serde_json::json;
use support::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_record_is_dead_lettered_and_does_not_block_its_partition() {
    let started = std::time::Instant::now();
    let cluster = Cluster::new("dlt", 2).await;
    let node = cluster.start("node", "gateway,auction,chat");
    let seller = node.user("seller").await;
    let bidder = node.user("bidder").await;
    let auction = node
        .auction(&seller, json!({"startingPrice": 100, "increment": 10}))
        .await;
    let id = auction["id"].as_i64().unwrap();

    // The poison record has the auction's key, so it lands on the partition
    // the next valid bid uses.
    let producer = bowchat_kafka::KafkaBus::new(bowchat_kafka::KafkaConfig {
        bootstrap: cluster.bootstrap.clone(),
        topic_prefix: cluster.prefix.clone(),
        ..Default::default()
    })
    .unwrap();
    producer
        .publish(
            "auction-bid",
            &id.to_string(),
            Bytes::from_static(b"{not json"),
        )
        .await
        .unwrap();

    let mut ws = node.ws(&bidder.token).await;
    ws.send(
        json!({"type": "AUCTION_BID", "requestId": "after-poison", "auctionId": id, "amount": 120}),
    )
    .await;
    let (result, _) = ws
        .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == "after-poison")
        .await;
    assert_eq!(result["accepted"], true, "{result}");

    let log = node.log_lines("dead-lettering an unreadable command");
    assert_eq!(log.len(), 1, "one log line for the poison record: {log:?}");
    let (_, metrics) = get_text(&node.url("/metrics")).await;
    assert!(
        metrics.contains(
            r#"bowchat_auction_commands_total{action="unreadable",result="DEAD_LETTER"} 1"#
        ),
        "dead-letter metric: {}",
        grep(&metrics, "DEAD_LETTER")
    );
    // Lag is read every second; the role has committed past both records.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = get_text(&node.url("/metrics")).await;
        let lines = grep(
            &metrics,
            "bowchat_kafka_consumer_lag{group=\"auction-role\"",
        );
        if lines.lines().count() == 2 && lines.lines().all(|l| l.ends_with(" 0")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag gauge: {lines}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The DLT record carries the error in its headers: replay reads them back.
    let out = cluster.admin(&["dlt", "replay", "--topic", "auction-bid"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 replayed, 0 without headers"), "{stdout}");
    assert!(
        stdout.contains(&format!("key={id} error=")) && stdout.contains("line 1 column"),
        "the decode error travels in the headers: {stdout}"
    );

    drop(node);
    cluster.finish().await;
    eprintln!("cluster dead-letter test took {:?}", started.elapsed());
}

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("http get");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn grep(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}
