//! Closed-loop staged bidders, the seed's shape: each virtual user holds one
//! WebSocket and, while the stage's target says it is active, sends
//! `AUCTION_BID` at its last known minimum and waits for the `BID_RESULT`
//! before the next. Used against BowChat (`seed`) and the ack server (`ceiling`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::record::{Live, Tally};

/// Stages as (seconds, target users); the target ramps linearly within a stage.
pub type Stages = Vec<(u64, usize)>;

/// The seed's stages: 5s→100, 10s→500, 10s→1000, 20s hold, 5s→0.
pub const SEED_STAGES: &str = "5:100,10:500,10:1000,20:1000,5:0";

/// Parses `secs:target,secs:target,…`.
pub fn parse_stages(text: &str) -> anyhow::Result<Stages> {
    text.split(',')
        .map(|stage| {
            let (secs, target) = stage
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("stage {stage:?} is not secs:target"))?;
            Ok((secs.trim().parse()?, target.trim().parse()?))
        })
        .collect()
}

/// Stages with every user count multiplied by `scale` (at least 1 where it was not 0).
pub fn scale_stages(stages: &Stages, scale: f64) -> Stages {
    stages
        .iter()
        .map(|(secs, n)| {
            let scaled = (*n as f64 * scale).round() as usize;
            (*secs, if *n > 0 { scaled.max(1) } else { 0 })
        })
        .collect()
}

/// The target user count at `t` seconds into the stages.
pub fn target_at(stages: &Stages, t: f64) -> f64 {
    let mut from = 0.0;
    let mut start = 0.0;
    for (secs, target) in stages {
        let end = start + *secs as f64;
        if t < end {
            let done = (t - start) / (*secs as f64).max(1e-9);
            return from + (*target as f64 - from) * done;
        }
        from = *target as f64;
        start = end;
    }
    from
}

/// What one user did: its outcomes and the amounts of its accepted bids.
pub struct UserRun {
    pub tally: Tally,
    pub accepted_amounts: Vec<i64>,
}

/// One virtual user (index `index`) bidding on `auction` over `ws_url` until `deadline`.
#[allow(clippy::too_many_arguments)]
pub async fn bidder(
    ws_url: String,
    auction: i64,
    index: usize,
    active: Arc<AtomicU64>,
    live: Arc<Live>,
    start: Instant,
    deadline: Instant,
    timeout: Duration,
) -> UserRun {
    let mut run = UserRun {
        tally: Tally::default(),
        accepted_amounts: Vec::new(),
    };
    // Connect only when first needed, as the seed's virtual users do.
    while (index as u64) >= active.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = match crate::ws_connect(&ws_url).await {
        Ok(ws) => ws,
        Err(_) => {
            run.tally.fail(start, "CONNECT_FAILED");
            Live::add(&live.failed, 1);
            return run;
        }
    };
    let mut amount = 100i64;
    let mut n = 0u64;
    while Instant::now() < deadline {
        if (index as u64) >= active.load(Ordering::Relaxed) {
            // Idle users keep reading so the server's pings are answered.
            match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
                Ok(None) | Ok(Some(Err(_))) => {
                    run.tally.fail(start, "DROPPED");
                    Live::add(&live.failed, 1);
                    return run;
                }
                _ => continue,
            }
        }
        n += 1;
        let request_id = format!("{index}-{n}");
        let frame = json!({"type": "AUCTION_BID", "requestId": request_id, "auctionId": auction, "amount": amount});
        let sent_at = Instant::now();
        run.tally.sent += 1;
        Live::add(&live.sent, 1);
        if ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            run.tally.fail(start, "SEND_FAILED");
            Live::add(&live.failed, 1);
            return run;
        }
        let answer = tokio::time::timeout(timeout, async {
            while let Some(message) = ws.next().await {
                let Ok(message) = message else { return None };
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
        let result = match answer {
            Ok(Some(result)) => result,
            Ok(None) => {
                run.tally.fail(start, "DROPPED");
                Live::add(&live.failed, 1);
                return run;
            }
            Err(_) => {
                run.tally.fail(start, "TIMEOUT");
                Live::add(&live.failed, 1);
                return run;
            }
        };
        let accepted = result["accepted"] == true;
        let code = result["code"].as_str();
        if code == Some("TIMEOUT") {
            // The server gave up waiting for the result: no answer.
            run.tally.fail(start, "TIMEOUT");
            Live::add(&live.failed, 1);
            return run;
        }
        if result["type"] == "BID_RESULT" || (result["type"] == "ERROR" && code.is_some()) {
            run.tally.answer(start, sent_at, accepted, code);
            Live::add(&live.answered, 1);
            if accepted {
                run.accepted_amounts.push(amount);
            }
        } else {
            run.tally.fail(start, "UNEXPECTED_ANSWER");
            Live::add(&live.failed, 1);
        }
        if let Some(minimum) = result["minimum"].as_i64() {
            amount = minimum.max(amount);
        }
    }
    run
}

/// Drives `stages` over `urls` (one per user, as many as the peak); user `i`
/// bids on `auctions[i % auctions.len()]`. Returns every user's run in user
/// order and the target per second.
pub async fn run_stages(
    label: &str,
    urls: Vec<String>,
    auctions: &[i64],
    stages: &Stages,
    timeout: Duration,
) -> (Vec<UserRun>, Duration, Vec<f64>) {
    let total: u64 = stages.iter().map(|s| s.0).sum();
    let live = Arc::new(Live::default());
    let active = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(total);
    let bar = crate::record::progress(label, total, live.clone());
    let tasks: Vec<_> = urls
        .into_iter()
        .enumerate()
        .map(|(index, url)| {
            tokio::spawn(bidder(
                url,
                auctions[index % auctions.len().max(1)],
                index,
                active.clone(),
                live.clone(),
                start,
                deadline,
                timeout,
            ))
        })
        .collect();
    let mut load = Vec::new();
    while Instant::now() < deadline {
        let t = start.elapsed().as_secs_f64();
        let target = target_at(stages, t).round();
        active.store(target as u64, Ordering::Relaxed);
        live.active.store(target as u64, Ordering::Relaxed);
        if load.len() <= t as usize {
            load.push(target);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    active.store(0, Ordering::Relaxed);
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        runs.push(task.await.unwrap_or(UserRun {
            tally: Tally::default(),
            accepted_amounts: Vec::new(),
        }));
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    (runs, elapsed, load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_stages_parse_and_ramp() {
        let stages = parse_stages(SEED_STAGES).unwrap();
        assert_eq!(
            stages,
            vec![(5, 100), (10, 500), (10, 1000), (20, 1000), (5, 0)]
        );
        assert_eq!(target_at(&stages, 0.0), 0.0);
        assert_eq!(target_at(&stages, 2.5), 50.0);
        assert_eq!(target_at(&stages, 10.0), 300.0);
        assert_eq!(target_at(&stages, 30.0), 1000.0);
        assert_eq!(target_at(&stages, 47.5), 500.0);
        assert_eq!(target_at(&stages, 60.0), 0.0);
        assert!(parse_stages("5-100").is_err());
        assert_eq!(scale_stages(&stages, 0.001)[0], (5, 1));
        assert_eq!(scale_stages(&stages, 0.5)[2], (10, 500));
        assert_eq!(scale_stages(&stages, 0.5)[4], (5, 0));
    }
}
