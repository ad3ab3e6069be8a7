//! A pool of WebSocket connections offering bids on one auction at a rate the
//! caller sets, whatever the server answers (an open loop: a closed one would
//! slow down with the server and hide its limit). Each connection has a
//! writer and a reader task and its own [`Tally`]; the ramp and the soak
//! drive it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::record::{Live, Tally};

/// What a connection's writer sends next.
pub enum Outgoing {
    /// A bid with this request number, at the connection's known minimum.
    Bid(u64),
    /// Any other frame (an `AUTH` with a fresh token).
    Frame(String),
}

struct Conn {
    pending: Mutex<HashMap<u64, Instant>>,
    tally: Mutex<Tally>,
    minimum: AtomicI64,
}

pub struct BidPool {
    senders: Vec<mpsc::Sender<Outgoing>>,
    conns: Vec<Arc<Conn>>,
    workers: Vec<JoinHandle<()>>,
    pub live: Arc<Live>,
    /// Times count from here, so the timeline and the offered rate line up.
    pub start: Instant,
    timeout: Duration,
    issued: u64,
    due: f64,
    last: Instant,
    /// Bids the client could not even queue (it is saturated at this rate).
    backlog: Tally,
    /// The offered rate in each second so far.
    pub load: Vec<f64>,
}

impl BidPool {
    /// Starts a writer and a reader on each of `sockets`, all bidding on
    /// `auction`; an answer later than `timeout` counts as a failure.
    pub fn open(sockets: Vec<crate::Ws>, auction: i64, timeout: Duration) -> BidPool {
        let live = Arc::new(Live::default());
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
            let (tx, mut rx) = mpsc::channel::<Outgoing>(1024);
            let writer_conn = conn.clone();
            let writer_live = live.clone();
            workers.push(tokio::spawn(async move {
                while let Some(out) = rx.recv().await {
                    let frame = match out {
                        Outgoing::Bid(n) => {
                            let amount = writer_conn.minimum.load(Ordering::Relaxed);
                            writer_conn.pending.lock().unwrap().insert(n, Instant::now());
                            writer_conn.tally.lock().unwrap().sent += 1;
                            Live::add(&writer_live.sent, 1);
                            json!({"type": "AUCTION_BID", "requestId": n.to_string(), "auctionId": auction, "amount": amount}).to_string()
                        }
                        Outgoing::Frame(text) => text,
                    };
                    if sink.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
            }));
            let reader_conn = conn.clone();
            let reader_live = live.clone();
            workers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let Some(n) = v["requestId"].as_str().and_then(|r| r.parse::<u64>().ok())
                    else {
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
                    // An answer later than the timeout is a timeout, as it would
                    // be for a client that gave up waiting; so is the server's
                    // own TIMEOUT (it gave up waiting for the result).
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
        BidPool {
            senders,
            conns,
            workers,
            live,
            start,
            timeout,
            issued: 0,
            due: 0.0,
            last: start,
            backlog: Tally::default(),
            load: Vec::new(),
        }
    }

    /// A handle that queues a frame on connection `i` (for an `AUTH`).
    pub fn sender(&self, i: usize) -> mpsc::Sender<Outgoing> {
        self.senders[i].clone()
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Offers bids, round-robin over the connections, at `rate(t)` per second
    /// (`t` in seconds since the start) until `until` seconds since the start.
    pub async fn offer(&mut self, until: Duration, rate: impl Fn(f64) -> f64) {
        while self.start.elapsed() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = Instant::now();
            let t = now.duration_since(self.start).as_secs_f64();
            let rate = rate(t);
            self.live.active.store(rate as u64, Ordering::Relaxed);
            while self.load.len() <= t as usize {
                self.load.push(rate.round());
            }
            self.due += rate * now.duration_since(self.last).as_secs_f64();
            self.last = now;
            while self.due >= 1.0 {
                self.due -= 1.0;
                self.issued += 1;
                let conn = (self.issued as usize) % self.senders.len();
                // A connection whose queue is full cannot keep up: the client
                // is saturated at this rate, which counts against the run.
                if self.senders[conn]
                    .try_send(Outgoing::Bid(self.issued))
                    .is_err()
                {
                    self.backlog.fail(self.start, "CLIENT_BACKLOG");
                    Live::add(&self.live.failed, 1);
                }
            }
        }
    }

    /// Waits up to the timeout for the answers in flight, counts what is still
    /// pending as timed out, and returns every outcome and the run's length.
    pub async fn finish(self) -> (Tally, Duration) {
        drop(self.senders);
        let drain_until = Instant::now() + self.timeout;
        while Instant::now() < drain_until
            && self
                .conns
                .iter()
                .any(|c| !c.pending.lock().unwrap().is_empty())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let elapsed = self.start.elapsed();
        let mut tally = self.backlog;
        for conn in &self.conns {
            let mut t = std::mem::take(&mut *conn.tally.lock().unwrap());
            for (_, sent_at) in conn.pending.lock().unwrap().drain() {
                t.failures
                    .push(crate::record::ms_since(self.start, sent_at));
                *t.codes.entry("TIMEOUT".into()).or_default() += 1;
            }
            tally.merge(t);
        }
        for worker in self.workers {
            worker.abort();
        }
        (tally, elapsed)
    }
}
