//! Open-loop ramp: bids arrive at a rate that rises linearly from `from` to
//! `to` per second over the run, whatever the server answers (see
//! [`crate::bid_pool`]); the report names the first second where failures or
//! p99 latency break the given limits.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::Api;
use crate::bid_pool::BidPool;
use crate::record::Report;

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
    let mut pool = BidPool::open(sockets, auction, o.timeout);
    let bar = crate::record::progress(scenario, o.secs, pool.live.clone());
    pool.offer(Duration::from_secs(o.secs), |t| rate_at(o, t))
        .await;
    let load = std::mem::take(&mut pool.load);
    let (tally, elapsed) = pool.finish().await;
    bar.finish_and_clear();
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
