//! Chat fan-out: `rooms` group rooms of `members` each, every member holding a
//! WebSocket subscribed to its room and sending messages at a steady rate.
//! The measured latency is from a send to each other member's receipt of the
//! `CHAT_MESSAGE` (the body carries the send time; sender and receivers share
//! this process's clock). A message that an accepted send should have
//! delivered to a member and did not is a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::record::{Latency, Live, Report, Tally};

pub struct ChatOptions {
    pub rooms: usize,
    pub members: usize,
    /// Messages per second per room (spread over its members).
    pub room_rate: f64,
    pub secs: u64,
    pub timeout: Duration,
}

/// What one member saw: its sends' results and the deliveries it received.
#[derive(Default)]
struct MemberRun {
    sends: Tally,
    deliveries: Tally,
}

#[allow(clippy::too_many_arguments)]
async fn member(
    url: String,
    room: i64,
    me: usize,
    members: usize,
    interval: Duration,
    start: Instant,
    deadline: Instant,
    live: Arc<Live>,
    ready: Arc<Barrier>,
) -> MemberRun {
    let mut run = MemberRun::default();
    // Nobody sends before every member watches its room: a message sent before
    // a member subscribed is not delivered to it live, and would count as lost.
    let Some(mut ws) = subscribed(&url, room).await else {
        run.sends.fail(start, "CONNECT_FAILED");
        ready.wait().await;
        return run;
    };
    ready.wait().await;
    // Spread the members' sends over the interval.
    let phase = interval.mul_f64(me as f64 / members.max(1) as f64);
    let mut next = Instant::now() + phase + Duration::from_millis(500);
    let mut pending: std::collections::HashMap<String, Instant> = Default::default();
    let mut n = 0u64;
    let end = deadline + Duration::from_secs(2);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next && now < deadline {
            n += 1;
            let id = format!("{me}-{n}");
            let body = format!("{}", now.duration_since(start).as_micros());
            let frame = json!({"type": "CHAT_SEND", "roomId": room, "clientMsgId": id, "body": body, "requestId": id});
            run.sends.sent += 1;
            Live::add(&live.sent, 1);
            if ws
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                run.sends.fail(start, "SEND_FAILED");
                return run;
            }
            pending.insert(id, now);
            next += interval;
            continue;
        }
        let wait = if now < deadline { next.min(end) } else { end } - now;
        let message = match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(message))) => message,
            Ok(_) => {
                run.sends.fail(start, "DROPPED");
                Live::add(&live.failed, 1);
                return run;
            }
        };
        let Message::Text(text) = message else {
            continue;
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        match v["type"].as_str() {
            Some("CHAT_RESULT") => {
                if let Some(sent_at) = v["requestId"].as_str().and_then(|r| pending.remove(r)) {
                    run.sends
                        .answer(start, sent_at, v["accepted"] == true, v["code"].as_str());
                }
            }
            Some("CHAT_MESSAGE") => {
                let message = &v["message"];
                let mine = message["clientMsgId"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&format!("{me}-")));
                let sent_us = message["body"].as_str().and_then(|b| b.parse::<u64>().ok());
                if let (false, Some(sent_us)) = (mine, sent_us) {
                    let sent_at = start + Duration::from_micros(sent_us);
                    run.deliveries.answer(start, sent_at, true, None);
                    Live::add(&live.answered, 1);
                }
            }
            _ => {}
        }
    }
    for _ in pending.drain() {
        run.sends.fail(start, "TIMEOUT");
    }
    run
}

async fn subscribed(url: &str, room: i64) -> Option<crate::Ws> {
    let mut ws = crate::ws_connect(url).await.ok()?;
    let subscribe = json!({"type": "SUBSCRIBE", "roomId": room, "requestId": "s"});
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .ok()?;
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message {
            let v: Value = serde_json::from_str(text.as_str()).ok()?;
            if v["type"] == "SUBSCRIBED" {
                return Some(ws);
            }
            if v["type"] == "ERROR" {
                return None;
            }
        }
    }
    None
}

pub async fn run(api: &Api, o: &ChatOptions, password: &str) -> anyhow::Result<Report> {
    let prefix = format!("chat-{}", std::process::id());
    let count = o.rooms * o.members;
    eprintln!("chat: registering {count} users, {} rooms ...", o.rooms);
    let users = api.users(&prefix, count, password).await?;
    let mut rooms = Vec::new();
    for (r, group) in users.chunks(o.members).enumerate() {
        let others: Vec<i64> = group[1..].iter().map(|u| u.id).collect();
        rooms.push(
            api.room(&group[0], &format!("load room {r}"), &others)
                .await?,
        );
    }
    let live = Arc::new(Live::default());
    let ready = Arc::new(Barrier::new(count));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.secs);
    let interval = Duration::from_secs_f64(o.members as f64 / o.room_rate.max(0.001));
    let bar = crate::record::progress("chat", o.secs + 2, live.clone());
    live.active
        .store(count as u64, std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            tokio::spawn(member(
                api.ws_url(&u.token),
                rooms[i / o.members],
                i % o.members,
                o.members,
                interval,
                start,
                deadline,
                live.clone(),
                ready.clone(),
            ))
        })
        .collect();
    let mut sends = Tally::default();
    let mut deliveries = Tally::default();
    for task in tasks {
        let run = task.await.unwrap_or_default();
        sends.merge(run.sends);
        deliveries.merge(run.deliveries);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let expected = sends.accepted * (o.members as u64 - 1);
    let received = deliveries.answers.len() as u64;
    let missing = expected.saturating_sub(received);
    let mut send_latency: Vec<u32> = sends.answers.iter().map(|a| a.1).collect();
    send_latency.sort_unstable();
    let send_summary = json!({
        "sent": sends.sent, "accepted": sends.accepted, "rejected": sends.rejected,
        "failed": sends.failures.len(), "latencyMs": Latency::of(&send_latency), "codes": sends.codes,
    });
    // The report's answers are deliveries; failed sends and missing deliveries are its failures.
    deliveries.sent = expected;
    deliveries.failures.extend(sends.failures.iter().copied());
    for _ in 0..missing {
        deliveries.failures.push(elapsed.as_millis() as u32);
    }
    if missing > 0 {
        deliveries.codes.insert("NOT_DELIVERED".into(), missing);
    }
    let mut report = Report::build("chat", deliveries, elapsed, &[]);
    report.extra.insert(
        "setup".into(),
        json!({"rooms": o.rooms, "members": o.members, "roomRatePerSec": o.room_rate}),
    );
    report.extra.insert("sends".into(), send_summary);
    report.extra.insert(
        "fanOut".into(),
        json!({"expectedDeliveries": expected, "received": received, "missing": missing}),
    );
    Ok(report)
}
