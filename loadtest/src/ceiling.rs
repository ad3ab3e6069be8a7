//! The ceiling: a trivial WebSocket server that parses each bid frame and
//! answers a `BID_RESULT` at once, with no rules, storage or fan-out. The same
//! bidder code drives it in the same process as the load generator, so its
//! throughput is the most this machine and this client could get from any
//! server speaking the protocol.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::bidder::{run_stages, Stages};
use crate::record::{Report, Tally};

/// Starts the ack server on 127.0.0.1 (port 0) and returns its address.
pub async fn start_ack_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(crate::ws_config()))
                        .await
                else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let amount = frame["amount"].as_i64().unwrap_or(0);
                    let answer = json!({
                        "type": "BID_RESULT",
                        "requestId": frame["requestId"],
                        "auctionId": frame["auctionId"],
                        "accepted": true,
                        "leading": true,
                        "price": amount,
                        "minimum": amount + 1,
                        "duplicate": false,
                    });
                    if ws
                        .send(Message::Text(answer.to_string().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Runs `stages` against a fresh ack server in this process.
pub async fn run(stages: &Stages, timeout: Duration) -> anyhow::Result<Report> {
    let addr = start_ack_server().await?;
    let peak = stages.iter().map(|s| s.1).max().unwrap_or(0);
    let urls = (0..peak).map(|_| format!("ws://{addr}/ws")).collect();
    let (runs, elapsed, load) = run_stages("ceiling", urls, &[1], stages, timeout).await;
    let mut tally = Tally::default();
    for run in runs {
        tally.merge(run.tally);
    }
    let mut report = Report::build("ceiling", tally, elapsed, &load);
    report.extra.insert("peakUsers".into(), json!(peak));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ack_server_answers_every_bid_without_failures() {
        let stages = vec![(1, 5), (1, 5)];
        let report = run(&stages, Duration::from_secs(2)).await.unwrap();
        assert_eq!(report.failed, 0, "{:?}", report.codes);
        assert!(report.answered > 50, "{}", report.answered);
        assert_eq!(report.accepted, report.answered);
    }
}
