//! Idle connections: open `count` WebSockets that only answer the server's
//! pings, hold them, and report how many stayed open and the server's
//! resident memory per connection (from `/proc/<pid>/status` when the server's
//! pid is given, else from its `process_resident_memory_bytes`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::record::{Live, Report, Tally};

pub struct IdleOptions {
    pub count: usize,
    pub hold_secs: u64,
    pub server_pid: Option<u32>,
    pub timeout: Duration,
}

/// VmRSS of `pid` in bytes.
pub fn proc_rss(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

async fn rss(api: &Api, pid: Option<u32>) -> Option<f64> {
    match pid {
        Some(pid) => proc_rss(pid),
        None => api.server_rss().await,
    }
}

pub async fn run(api: &Api, o: &IdleOptions, password: &str) -> anyhow::Result<Report> {
    let prefix = format!("idle-{}", std::process::id());
    let users = api.users(&prefix, (o.count / 100).max(1), password).await?;
    // Let the registrations' memory settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss(api, o.server_pid).await;
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let bar = crate::record::progress("idle", o.hold_secs, live.clone());
    let stop = Arc::new(AtomicBool::new(false));
    // Connect 64 at a time; each connection's task reads until told to stop.
    let opened: Vec<(Tally, Option<tokio::task::JoinHandle<bool>>)> = stream::iter(0..o.count)
        .map(|i| {
            let url = api.ws_url(&users[i % users.len()].token);
            let live = live.clone();
            let stop = stop.clone();
            let timeout = o.timeout;
            async move {
                let mut tally = Tally {
                    sent: 1,
                    ..Tally::default()
                };
                let sent_at = Instant::now();
                let connected = tokio::time::timeout(timeout, async {
                    let mut ws = crate::ws_connect(&url).await.ok()?;
                    while let Some(Ok(m)) = ws.next().await {
                        if let Message::Text(t) = m {
                            let v: Value = serde_json::from_str(t.as_str()).ok()?;
                            if v["type"] == "WELCOME" {
                                return Some(ws);
                            }
                        }
                    }
                    None
                })
                .await;
                let Ok(Some(mut ws)) = connected else {
                    tally.fail(start, "CONNECT_FAILED");
                    Live::add(&live.failed, 1);
                    return (tally, None);
                };
                tally.answer(start, sent_at, true, None);
                Live::add(&live.answered, 1);
                Live::add(&live.active, 1);
                let task = tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
                            Ok(Some(Ok(_))) | Err(_) => {}
                            Ok(_) => return false,
                        }
                    }
                    true
                });
                (tally, Some(task))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(o.hold_secs)).await;
    let during = rss(api, o.server_pid).await;
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    let mut held = 0u64;
    for (t, task) in opened {
        tally.merge(t);
        if let Some(task) = task {
            if task.await.unwrap_or(false) {
                held += 1;
            } else {
                tally.fail(start, "DROPPED");
            }
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let per_conn = match (before, during) {
        (Some(b), Some(d)) if held > 0 => Some(((d - b) / held as f64).round()),
        _ => None,
    };
    let mut report = Report::build("idle", tally, elapsed, &[]);
    report.extra.insert(
        "idle".into(),
        json!({
            "requested": o.count, "held": held, "holdSecs": o.hold_secs,
            "connectSecs": (connect_secs * 10.0).round() / 10.0,
            "serverRssBeforeBytes": before, "serverRssHeldBytes": during,
            "rssBytesPerConnection": per_conn,
            "rssSource": if o.server_pid.is_some() { "/proc/<pid>/status" } else { "/metrics" },
        }),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_rss() {
        let rss = super::proc_rss(std::process::id()).unwrap();
        assert!(rss > 1024.0 * 1024.0, "{rss}");
    }
}
