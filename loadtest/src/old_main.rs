//! `bowchat-load`: virtual users that each hold a WebSocket and bid in a loop
//! (send `AUCTION_BID`, wait for its `BID_RESULT`, bid again at the new
//! minimum), ramped through stages like the seed's k6 test. Prints bids/s,
//! latency percentiles and failures. A failure is a bid without a definite
//! answer (timeout, broken connection); a rejection such as `BID_TOO_LOW` is an
//! answer and counted apart.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "Staged WebSocket bidding load against a BowChat server")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Stages as duration:target pairs (seconds), the seed's by default.
    #[arg(long, default_value = "5:100,10:500,10:1000,20:1000,5:0")]
    stages: String,
    /// Password for the generated users (`load-<n>@load.bowchat`).
    #[arg(long, default_value = "load-test-password")]
    password: String,
    /// Seconds to wait for one bid's result before counting a failure.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

fn parse_stages(text: &str) -> anyhow::Result<Vec<(u64, usize)>> {
    text.split(',')
        .map(|stage| {
            let (secs, target) = stage.split_once(':').context("stage is secs:target")?;
            Ok((secs.trim().parse()?, target.trim().parse()?))
        })
        .collect()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() && body["code"] != "EMAIL_TAKEN" {
        bail!("{url}: {status} {body}");
    }
    Ok(body)
}

async fn session(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    password: &str,
) -> anyhow::Result<String> {
    let email = format!("load-{n}@load.bowchat");
    let registered = post(
        client,
        &format!("{base}/api/auth/register"),
        None,
        json!({"email": email, "password": password}),
    )
    .await?;
    let body = if registered["accessToken"].is_string() {
        registered
    } else {
        post(
            client,
            &format!("{base}/api/auth/login"),
            None,
            json!({"email": email, "password": password}),
        )
        .await?
    };
    Ok(body["accessToken"]
        .as_str()
        .context("no access token")?
        .to_string())
}

/// One virtual user: bids while `active` says it is within the current target.
/// Returns its answer latencies in microseconds (kept locally: no shared lock per bid).
async fn bidder(
    ws_url: String,
    auction: i64,
    index: usize,
    active: Arc<AtomicUsize>,
    stats: Arc<Stats>,
    timeout: Duration,
    deadline: Instant,
) -> Vec<u64> {
    let mut latencies = Vec::new();
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&ws_url).await else {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        return latencies;
    };
    let mut amount = 100i64;
    let mut n = 0u64;
    while Instant::now() < deadline {
        if index >= active.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        n += 1;
        let request_id = format!("{index}-{n}");
        let frame = json!({"type": "AUCTION_BID", "requestId": request_id, "auctionId": auction, "amount": amount});
        let started = Instant::now();
        stats.sent.fetch_add(1, Ordering::Relaxed);
        if ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return latencies;
        }
        let answer = tokio::time::timeout(timeout, async {
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if v["requestId"] == request_id.as_str() {
                        return Some(v);
                    }
                }
            }
            None
        })
        .await;
        match answer {
            Ok(Some(result)) => {
                latencies.push(started.elapsed().as_micros() as u64);
                if result["accepted"] == true {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                } else if result["type"] == "BID_RESULT" {
                    stats.rejected.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(minimum) = result["minimum"].as_i64() {
                    amount = minimum.max(amount);
                }
            }
            _ => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return latencies;
            }
        }
    }
    latencies
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stages = parse_stages(&args.stages)?;
    let peak = stages.iter().map(|s| s.1).max().unwrap_or(0);
    let base = args.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();

    eprintln!("preparing {peak} users ...");
    let seller = session(&client, &base, 0, &args.password).await?;
    let total_secs: u64 = stages.iter().map(|s| s.0).sum();
    let auction = post(
        &client,
        &format!("{base}/api/auctions"),
        Some(&seller),
        json!({"title": "load test", "startingPrice": 100, "increment": 1, "durationSecs": total_secs + 600}),
    )
    .await?["id"]
        .as_i64()
        .context("auction id")?;
    let mut tokens = Vec::with_capacity(peak);
    for n in 1..=peak {
        tokens.push(session(&client, &base, n, &args.password).await?);
    }

    let ws_base = base.replacen("http", "ws", 1);
    let active = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(total_secs);
    let mut tasks = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let url = format!("{ws_base}/ws?access_token={token}");
        tasks.push(tokio::spawn(bidder(
            url,
            auction,
            index,
            active.clone(),
            stats.clone(),
            Duration::from_secs(args.timeout_secs),
            deadline,
        )));
    }
    // Ramp the number of active users linearly within each stage.
    let mut from = 0usize;
    for (secs, target) in &stages {
        let stage_start = Instant::now();
        let length = Duration::from_secs(*secs);
        while stage_start.elapsed() < length {
            let done = stage_start.elapsed().as_secs_f64() / length.as_secs_f64();
            let now = from as f64 + (*target as f64 - from as f64) * done;
            active.store(now.round() as usize, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        from = *target;
    }
    active.store(0, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let answered = latencies.len() as f64;
    let sent = stats.sent.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "durationSecs": (elapsed * 10.0).round() / 10.0,
            "peakUsers": peak,
            "sent": sent,
            "accepted": stats.accepted.load(Ordering::Relaxed),
            "rejected": stats.rejected.load(Ordering::Relaxed),
            "failed": failed,
            "failureRate": if sent == 0 { 0.0 } else { failed as f64 / sent as f64 },
            "answersPerSec": (answered / elapsed).round(),
            "acceptedPerSec": (stats.accepted.load(Ordering::Relaxed) as f64 / elapsed).round(),
            "latencyMs": {"p50": percentile(&latencies, 0.50), "p95": percentile(&latencies, 0.95), "p99": percentile(&latencies, 0.99)},
        })
    );
    Ok(())
}
