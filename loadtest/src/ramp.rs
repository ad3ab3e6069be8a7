//! Open-loop ramp: bids arrive at a rate that rises linearly from `from` to
//! `to` per second over the run, whatever the server answers (a closed loop
//! would slow down with the server and hide its limit). Spread over a pool of
//! connections; the report names the first second where failures or p99
//! latency break the given limits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::record::{Live, Report, Tally};

pub struct RampOptions {
    pub connections: usize,
    pub from_rate: f64,
    pub to_rate: f64,
    pub secs: u64,
    pub timeout: Duration,
    /// A second breaks when its p99 exceeds this …
    pub p99_limit_ms: f64,
    /// … or its failures exceed this share of its attempts.
    pub failure_limit: f64,
}

struct Conn {
    pending: Mutex<HashMap<u64, Instant>>,
    tally: Mutex<Tally>,
    minimum: AtomicI64,
}

/// The offered rate at `t` seconds.
pub fn rate_at(o: &RampOptions, t: f64) -> f64 {
    o.from_rate + (o.to_rate - o.from_rate) * (t / o.secs.max(1) as f64).min(1.0)
}

/// The ramp against BowChat: registers the users, creates the auction, and
/// offers the bids over one connection per user.
pub async fn run(api: &Api, o: &RampOptions, password: &str) -> anyhow::Result<Report> {
    let prefix = format!("ramp-{}", std::process::id());
    eprintln!("ramp: registering {} users ...", o.connections + 1);
    let mut users = api.users(&prefix, o.connections + 1, password).await?;
    let seller = users.remove(0);
    let auction = api.auction(&seller, o.secs + 600).await?;
    let mut sockets = Vec::with_capacity(users.len());
    for user in &users {
        sockets.push(crate::ws_connect(&api.ws_url(&user.token)).await?);
    }
    drive("ramp", sockets, auction, o).await
}

/// The same ramp against the built-in ack server in this process (the
/// ceiling), with as many connections.
pub async fn run_ceiling(o: &RampOptions) -> anyhow::Result<Report> {
    let addr = crate::ceiling::start_ack_server().await?;
    let mut sockets = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        sockets.push(crate::ws_connect(&format!("ws://{addr}/ws")).await?);
    }
    drive("ramp-ceiling", sockets, 1, o).await
}

/// Offers bids over `sockets` at the ramp's rate and reports where it broke.
async fn drive(
    scenario: &str,
    sockets: Vec<crate::Ws>,
    auction: i64,
    o: &RampOptions,
) -> anyhow::Result<Report> {
    let live = Arc::new(Live::default());
    // Times count from the first offered bid, so the timeline and the offered
    // rate line up.
    let start = Instant::now();
    let mut senders = Vec::new();
    let mut conns = Vec::new();
    let mut workers = Vec::new();
    for ws in sockets {
        let (mut sink, mut stream) = ws.split();
        let conn = Arc::new(Conn {
            pending: Mutex::new(HashMap::new()),
            tally: Mutex::new(Tally::default()),
            minimum: AtomicI64::new(100),
        });
        let (tx, mut rx) = mpsc::channel::<u64>(1024);
        let writer_conn = conn.clone();
        let writer_live = live.clone();
        workers.push(tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                let amount = writer_conn.minimum.load(Ordering::Relaxed);
                let frame = json!({"type": "AUCTION_BID", "requestId": n.to_string(), "auctionId": auction, "amount": amount});
                writer_conn.pending.lock().unwrap().insert(n, Instant::now());
                writer_conn.tally.lock().unwrap().sent += 1;
                Live::add(&writer_live.sent, 1);
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return;
                }
            }
        }));
        let reader_conn = conn.clone();
        let reader_live = live.clone();
        let timeout = o.timeout;
        workers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let Some(n) = v["requestId"].as_str().and_then(|r| r.parse::<u64>().ok()) else {
                    continue;
                };
                let Some(sent_at) = reader_conn.pending.lock().unwrap().remove(&n) else {
                    continue;
                };
                if let Some(minimum) = v["minimum"].as_i64() {
                    reader_conn.minimum.fetch_max(minimum, Ordering::Relaxed);
                }
                let code = v["code"].as_str();
                let mut tally = reader_conn.tally.lock().unwrap();
                // An answer later than the timeout is a timeout, as it would be
                // for a client that gave up waiting; so is the server's own
                // TIMEOUT (it gave up waiting for the result).
                if sent_at.elapsed() > timeout || code == Some("TIMEOUT") {
                    tally.failures.push(crate::record::ms_since(start, sent_at));
                    *tally.codes.entry("TIMEOUT".into()).or_default() += 1;
                    Live::add(&reader_live.failed, 1);
                    continue;
                }
                tally.answer(start, sent_at, v["accepted"] == true, code);
                drop(tally);
                Live::add(&reader_live.answered, 1);
            }
        }));
        senders.push(tx);
        conns.push(conn);
    }
    let bar = crate::record::progress(scenario, o.secs, live.clone());
    let start_sending = start;
    let mut issued = 0u64;
    let mut due = 0.0f64;
    let mut last = start_sending;
    let mut load = Vec::new();
    let mut backlog = Tally::default();
    while start_sending.elapsed() < Duration::from_secs(o.secs) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = Instant::now();
        let t = now.duration_since(start_sending).as_secs_f64();
        let rate = rate_at(o, t);
        live.active.store(rate as u64, Ordering::Relaxed);
        while load.len() <= t as usize {
            load.push(rate.round());
        }
        due += rate * now.duration_since(last).as_secs_f64();
        last = now;
        while due >= 1.0 {
            due -= 1.0;
            issued += 1;
            let conn = (issued as usize) % senders.len();
            // A connection whose queue is full cannot keep up: the client is
            // saturated at this rate, which counts against the run.
            if senders[conn].try_send(issued).is_err() {
                backlog.fail(start, "CLIENT_BACKLOG");
                Live::add(&live.failed, 1);
            }
        }
    }
    drop(senders);
    // Let answers in flight arrive, then whatever is still pending timed out.
    let drain_until = Instant::now() + o.timeout;
    while Instant::now() < drain_until
        && conns.iter().any(|c| !c.pending.lock().unwrap().is_empty())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let mut tally = backlog;
    for conn in &conns {
        let mut t = std::mem::take(&mut *conn.tally.lock().unwrap());
        for (_, sent_at) in conn.pending.lock().unwrap().drain() {
            t.failures.push(crate::record::ms_since(start, sent_at));
            *t.codes.entry("TIMEOUT".into()).or_default() += 1;
        }
        tally.merge(t);
    }
    for worker in workers {
        worker.abort();
    }
    let mut report = Report::build(scenario, tally, elapsed, &load);
    let breaks = report.timeline.iter().find(|s| {
        let attempts = s.answers + s.failures;
        s.latency_ms.p99 > o.p99_limit_ms
            || (attempts > 0 && s.failures as f64 / attempts as f64 > o.failure_limit)
    });
    let sustained = report
        .timeline
        .iter()
        .take_while(|s| breaks.is_none_or(|b| s.t < b.t))
        .map(|s| s.answers)
        .max()
        .unwrap_or(0);
    report.extra.insert(
        "limits".into(),
        json!({"p99Ms": o.p99_limit_ms, "failureShare": o.failure_limit}),
    );
    report.extra.insert(
        "breaksAt".into(),
        breaks.map_or(Value::Null, |b| {
            json!({"second": b.t, "offeredPerSec": b.load, "answersPerSec": b.answers, "p99Ms": b.latency_ms.p99, "failures": b.failures})
        }),
    );
    report
        .extra
        .insert("maxAnswersPerSecBeforeBreak".into(), json!(sustained));
    report
        .extra
        .insert("connections".into(), json!(o.connections));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_rises_linearly_then_holds() {
        let o = RampOptions {
            connections: 1,
            from_rate: 100.0,
            to_rate: 1100.0,
            secs: 10,
            timeout: Duration::from_secs(1),
            p99_limit_ms: 50.0,
            failure_limit: 0.01,
        };
        assert_eq!(rate_at(&o, 0.0), 100.0);
        assert_eq!(rate_at(&o, 5.0), 600.0);
        assert_eq!(rate_at(&o, 20.0), 1100.0);
    }
}
