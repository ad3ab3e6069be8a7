//! Soak: a steady mixed load for a long time (30 minutes by default), to find
//! what only time shows: memory or file descriptors that grow without bound,
//! and latency that drifts. Bids arrive at a constant rate on one auction
//! (open loop, [`crate::bid_pool`]); beside them, connections open, subscribe
//! and close, short auctions are created and close by themselves, and a room
//! gets messages over REST. Tokens are renewed (`AUTH`) before they expire.
//! The report has the latency percentiles per minute, the server's resident
//! memory and open files sampled over the run, and their slopes per hour
//! (least squares over the samples after the warm-up).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Api, User};
use crate::bid_pool::{BidPool, Outgoing};
use crate::record::{Latency, Report, Tally};

pub struct SoakOptions {
    pub minutes: u64,
    pub connections: usize,
    /// Bids offered per second, constant.
    pub rate: f64,
    /// How often the server's memory and open files are read.
    pub sample_secs: u64,
    /// Samples before this are the warm-up and left out of the slopes.
    pub warmup_secs: u64,
    /// The server's pid, to read /proc (else its /metrics).
    pub server_pid: Option<u32>,
    pub timeout: Duration,
}

/// The server's footprint at `t` seconds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub t: u64,
    pub rss_mib: Option<f64>,
    /// The anonymous part of the RSS (heap, stacks): what a leak grows. The
    /// rest is mostly the store's memory-mapped files, which the kernel can
    /// drop. Only from /proc.
    pub rss_anon_mib: Option<f64>,
    pub open_fds: Option<f64>,
}

/// The bids answered in one minute.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Minute {
    pub minute: u32,
    pub answers: u64,
    pub failures: u64,
    pub latency_ms: Latency,
}

/// Latency percentiles and counts per `window` seconds of `tally`.
pub fn per_window(tally: &Tally, window_secs: u32) -> Vec<Minute> {
    let window_ms = window_secs.max(1) * 1000;
    let last = tally
        .answers
        .iter()
        .map(|a| a.0)
        .chain(tally.failures.iter().copied())
        .max()
        .unwrap_or(0);
    let count = (last / window_ms + 1) as usize;
    let mut latencies = vec![Vec::new(); count];
    let mut failures = vec![0u64; count];
    for (at, latency) in &tally.answers {
        latencies[(at / window_ms) as usize].push(*latency);
    }
    for at in &tally.failures {
        failures[(at / window_ms) as usize] += 1;
    }
    latencies
        .into_iter()
        .zip(failures)
        .enumerate()
        .map(|(i, (mut l, failures))| {
            l.sort_unstable();
            Minute {
                minute: i as u32,
                answers: l.len() as u64,
                failures,
                latency_ms: Latency::of(&l),
            }
        })
        .collect()
}

/// The least-squares slope of `points` (x in seconds) per hour; `None` with
/// fewer than two points or no spread in x.
pub fn slope_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some(((sxy / sxx) * 3600.0 * 1000.0).round() / 1000.0)
}

/// Open file descriptors of `pid`.
fn proc_fds(pid: u32) -> Option<f64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64)
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

async fn sample(api: &Api, pid: Option<u32>, t: u64) -> Sample {
    let (rss, anon, fds) = match pid {
        Some(pid) => (
            proc_status_bytes(pid, "VmRSS:"),
            proc_status_bytes(pid, "RssAnon:"),
            proc_fds(pid),
        ),
        None => (
            api.server_rss().await,
            None,
            api.server_gauge("process_open_fds").await,
        ),
    };
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let mib = |b: f64| round(b / (1024.0 * 1024.0));
    Sample {
        t,
        rss_mib: rss.map(mib),
        rss_anon_mib: anon.map(mib),
        open_fds: fds,
    }
}

/// Counts of the side load, for the report.
#[derive(Default, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SideLoad {
    connections_cycled: u64,
    connection_failures: u64,
    auctions_created: u64,
    chat_messages: u64,
    chat_failures: u64,
    token_renewals: u64,
}

/// A signed-in user's current access token, renewed by logging in again.
struct Session {
    email: String,
    token: Mutex<String>,
}

impl Session {
    fn token(&self) -> String {
        self.token.lock().unwrap().clone()
    }
}

pub async fn run(api: &Api, o: &SoakOptions, password: &str) -> anyhow::Result<Report> {
    let prefix = format!("soak-{}", std::process::id());
    let secs = o.minutes.max(1) * 60;
    eprintln!("soak: registering {} users ...", o.connections + 2);
    let users: Vec<User> = api.users(&prefix, o.connections + 2, password).await?;
    let email = |n: usize| format!("{prefix}-{n}@load.bowchat");
    let seller = Arc::new(Session {
        email: email(0),
        token: Mutex::new(users[0].token.clone()),
    });
    let reader = users[1].clone();
    let bidders = &users[2..];
    let auction = api.auction(&users[0], secs + 600).await?;
    let room = api.room(&users[0], "soak", &[reader.id]).await?;
    let mut sockets = Vec::with_capacity(bidders.len());
    for user in bidders {
        sockets.push(crate::ws_connect(&api.ws_url(&user.token)).await?);
    }
    let mut pool = BidPool::open(sockets, auction, o.timeout);
    let start = pool.start;
    let side = Arc::new(Mutex::new(SideLoad::default()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();

    // The server's footprint, now and every sample_secs.
    {
        let (api, samples, pid, every) = (
            api.clone(),
            samples.clone(),
            o.server_pid,
            o.sample_secs.max(1),
        );
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(every));
            loop {
                ticker.tick().await;
                let s = sample(&api, pid, start.elapsed().as_secs()).await;
                samples.lock().unwrap().push(s);
            }
        }));
    }
    // Access tokens last 15 minutes by default: every bidder and the seller
    // log in again every 5 minutes and the bidders send AUTH on their socket.
    {
        let api = api.clone();
        let password = password.to_string();
        let senders: Vec<_> = (0..pool.len()).map(|i| pool.sender(i)).collect();
        let emails: Vec<String> = (2..o.connections + 2).map(email).collect();
        let (seller, side) = (seller.clone(), side.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(300));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Ok(user) = api.user(&seller.email, &password).await {
                    *seller.token.lock().unwrap() = user.token;
                }
                for (sender, email) in senders.iter().zip(&emails) {
                    let Ok(user) = api.user(email, &password).await else {
                        continue;
                    };
                    let frame = json!({"type": "AUTH", "token": user.token}).to_string();
                    if sender.send(Outgoing::Frame(frame)).await.is_ok() {
                        side.lock().unwrap().token_renewals += 1;
                    }
                }
            }
        }));
    }
    // A connection opens, subscribes to the auction, and closes, every second.
    {
        let (api, seller, side) = (api.clone(), seller.clone(), side.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                let ok = cycle_connection(&api, &seller.token(), auction).await;
                let mut side = side.lock().unwrap();
                if ok {
                    side.connections_cycled += 1;
                } else {
                    side.connection_failures += 1;
                }
            }
        }));
    }
    // A 20-second auction every 30 seconds: each opens, closes and is done.
    {
        let (api, seller, side) = (api.clone(), seller.clone(), side.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(30));
            loop {
                ticker.tick().await;
                let user = User {
                    id: 0,
                    token: seller.token(),
                };
                if api.auction(&user, 20).await.is_ok() {
                    side.lock().unwrap().auctions_created += 1;
                }
            }
        }));
    }
    // Two chat messages a second in one room, over REST.
    {
        let (api, seller, side) = (api.clone(), seller.clone(), side.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(500));
            let mut n = 0u64;
            loop {
                ticker.tick().await;
                n += 1;
                let body = json!({"clientMsgId": format!("soak-{n}"), "body": format!("soak message {n}")});
                let sent = api
                    .post(&format!("/api/rooms/{room}/messages"), Some(&seller.token()), body)
                    .await;
                let mut side = side.lock().unwrap();
                match sent {
                    Ok(_) => side.chat_messages += 1,
                    Err(_) => side.chat_failures += 1,
                }
            }
        }));
    }

    let bar = crate::record::progress("soak", secs, pool.live.clone());
    let rate = o.rate;
    pool.offer(Duration::from_secs(secs), |_| rate).await;
    for task in tasks {
        task.abort();
    }
    let last = sample(api, o.server_pid, start.elapsed().as_secs()).await;
    samples.lock().unwrap().push(last);
    let load = std::mem::take(&mut pool.load);
    let (tally, elapsed) = pool.finish().await;
    bar.finish_and_clear();
    // Once the connections are gone: what the load itself held.
    let after = sample(api, o.server_pid, start.elapsed().as_secs()).await;

    let minutes = per_window(&tally, 60);
    let mut report = Report::build("soak", tally, elapsed, &load);
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let after_warmup = |value: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|s| s.t >= o.warmup_secs)
            .filter_map(|s| Some((s.t as f64, value(s)?)))
            .collect()
    };
    let rss = after_warmup(|s| s.rss_mib);
    let anon = after_warmup(|s| s.rss_anon_mib);
    let fds = after_warmup(|s| s.open_fds);
    // The second half alone: a cache that fills up early flattens there, a
    // leak does not.
    let half = o.warmup_secs.max(secs / 2) as f64;
    let second_half = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
        points.iter().copied().filter(|p| p.0 >= half).collect()
    };
    report.extra.insert(
        "footprint".into(),
        json!({
            "source": if o.server_pid.is_some() { "/proc/<pid>" } else { "/metrics" },
            "warmupSecs": o.warmup_secs,
            "rssMiBFirst": rss.first().map(|p| p.1),
            "rssMiBLast": rss.last().map(|p| p.1),
            "rssSlopeMiBPerHour": slope_per_hour(&rss),
            "rssSlopeMiBPerHourSecondHalf": slope_per_hour(&second_half(&rss)),
            "rssAnonMiBFirst": anon.first().map(|p| p.1),
            "rssAnonMiBLast": anon.last().map(|p| p.1),
            "rssAnonSlopeMiBPerHour": slope_per_hour(&anon),
            "rssAnonSlopeMiBPerHourSecondHalf": slope_per_hour(&second_half(&anon)),
            "rssMiBAfterLoad": after.rss_mib,
            "rssAnonMiBAfterLoad": after.rss_anon_mib,
            "openFdsFirst": fds.first().map(|p| p.1),
            "openFdsLast": fds.last().map(|p| p.1),
            "openFdsSlopePerHour": slope_per_hour(&fds),
            "openFdsAfterLoad": after.open_fds,
        }),
    );
    report.extra.insert("samples".into(), json!(samples));
    report.extra.insert("minutes".into(), json!(minutes));
    report
        .extra
        .insert("sideLoad".into(), json!(&*side.lock().unwrap()));
    report.extra.insert(
        "load".into(),
        json!({"minutes": o.minutes, "connections": o.connections, "bidsPerSec": o.rate}),
    );
    Ok(report)
}

/// Opens a connection, subscribes to `auction`, waits for SUBSCRIBED and
/// closes; false if any step failed.
async fn cycle_connection(api: &Api, token: &str, auction: i64) -> bool {
    let attempt = async {
        let mut ws = crate::ws_connect(&api.ws_url(token)).await.ok()?;
        let frame = json!({"type": "SUBSCRIBE", "auctionId": auction}).to_string();
        ws.send(Message::Text(frame.into())).await.ok()?;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                if text.as_str().contains("\"SUBSCRIBED\"") {
                    ws.close(None).await.ok()?;
                    return Some(());
                }
            }
        }
        None
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    matches!(
        tokio::time::timeout_at(deadline.into(), attempt).await,
        Ok(Some(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_per_hour() {
        // 2 MiB per minute is 120 MiB per hour.
        let points: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 60.0, 100.0 + 2.0 * i as f64))
            .collect();
        assert_eq!(slope_per_hour(&points), Some(120.0));
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0)).collect();
        assert_eq!(slope_per_hour(&flat), Some(0.0));
        assert_eq!(slope_per_hour(&[(1.0, 2.0)]), None);
        assert_eq!(slope_per_hour(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn windows_split_answers_and_failures_by_minute() {
        let tally = Tally {
            answers: vec![(1_000, 2_000), (59_999, 4_000), (60_000, 8_000)],
            failures: vec![125_000],
            ..Tally::default()
        };
        let w = per_window(&tally, 60);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].answers, w[0].failures), (2, 0));
        assert_eq!(w[0].latency_ms.max, 4.0);
        assert_eq!((w[1].answers, w[1].latency_ms.p50), (1, 8.0));
        assert_eq!((w[2].answers, w[2].failures), (0, 1));
    }

    #[test]
    fn reads_own_open_files() {
        assert!(proc_fds(std::process::id()).unwrap() >= 3.0);
    }
}
