//! The connection registry of one gateway and the delivery of facts to it.
//!
//! Every gateway consumes the outbound topics in its own consumer group and
//! hands each fact to the sockets that want it: auction watchers, room watchers,
//! the sockets of one user, or the exact socket (or REST call) that sent a
//! command. Each socket has a bounded queue; a client too slow to drain it is
//! disconnected rather than allowed to grow the server's memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bowchat_auction::messages::{AuctionFact, CommandResult};
use bowchat_bus::{Consumer, Record};
use bowchat_chat::messages::ChatFact;
use bowchat_model::{now_millis, AuctionId, RoomId, UserId};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::frames::ServerFrame;
use crate::metrics::metrics;

/// What the hub queues for a socket. Sequenced items carry their sequence so
/// the socket task can drop what a resume already replayed and fill gaps.
#[derive(Debug, Clone)]
pub enum Outbound {
    Frame {
        kind: &'static str,
        text: Arc<str>,
    },
    BidResult {
        request_id: String,
        text: Arc<str>,
    },
    AuctionUpdate {
        auction_id: AuctionId,
        /// The auction's step count after this update.
        step_count: i64,
        /// Whether the update carries price steps (a phase change carries none).
        has_steps: bool,
        text: Arc<str>,
    },
    ChatMessage {
        room_id: RoomId,
        seq: i64,
        text: Arc<str>,
    },
}

/// The answer a REST call waits for.
#[derive(Debug, Clone)]
pub enum Answer {
    Bid {
        result: CommandResult,
        duplicate: bool,
    },
    Chat {
        accepted: bool,
        code: Option<String>,
        message: Option<String>,
        seq: Option<i64>,
        duplicate: bool,
    },
}

pub struct Hub {
    pub gateway_id: String,
    next_conn: AtomicU64,
    /// The queue of each open socket.
    conns: RwLock<HashMap<u64, mpsc::Sender<Outbound>>>,
    by_user: RwLock<HashMap<UserId, HashSet<u64>>>,
    auction_watchers: RwLock<HashMap<AuctionId, HashSet<u64>>>,
    room_watchers: RwLock<HashMap<RoomId, HashMap<u64, UserId>>>,
    /// REST calls waiting for their answer, by call id. A call id is drawn
    /// from the same counter as socket ids and travels as `Origin::conn`, so
    /// every call gets its own answer: concurrent retries with one request id
    /// (the role answers each, the later ones as duplicates) and one request
    /// id used on two auctions or rooms never take each other's slot.
    waiters: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
}

fn frame(f: &ServerFrame) -> Outbound {
    Outbound::Frame {
        kind: f.kind(),
        text: f.to_text().into(),
    }
}

impl Hub {
    pub fn new(gateway_id: String) -> Self {
        Self {
            gateway_id,
            next_conn: AtomicU64::new(1),
            conns: RwLock::default(),
            by_user: RwLock::default(),
            auction_watchers: RwLock::default(),
            room_watchers: RwLock::default(),
            waiters: Mutex::default(),
        }
    }

    pub fn register(&self, user: UserId, tx: mpsc::Sender<Outbound>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.conns.write().insert(id, tx);
        self.by_user.write().entry(user).or_default().insert(id);
        metrics().ws_connections.inc();
        id
    }

    /// Forgets a socket and its subscriptions. The socket task calls this exactly
    /// once, also after `send` dropped a slow client, and names what it watched so
    /// no registry is scanned whole. Presence is the session's business.
    pub fn unregister(&self, conn: u64, user: UserId, auctions: &[AuctionId], rooms: &[RoomId]) {
        self.conns.write().remove(&conn);
        metrics().ws_connections.dec();
        {
            let mut by_user = self.by_user.write();
            if let Some(set) = by_user.get_mut(&user) {
                set.remove(&conn);
                if set.is_empty() {
                    by_user.remove(&user);
                }
            }
        }
        for auction in auctions {
            self.unwatch_auction(*auction, conn);
        }
        for room in rooms {
            self.unwatch_room(*room, conn);
        }
    }

    /// Queues `out` for `conn`; a full queue disconnects the slow client.
    fn send(&self, conn: u64, out: Outbound) {
        let full = match self.conns.read().get(&conn) {
            Some(tx) => match tx.try_send(out) {
                Ok(()) => false,
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            None => false,
        };
        if full {
            warn!(conn, "outbound queue full, disconnecting slow client");
            metrics().slow_disconnects.inc();
            // Dropping the sender ends the socket task, which then unregisters.
            self.conns.write().remove(&conn);
        }
    }

    pub fn watch_auction(&self, auction: AuctionId, conn: u64) {
        self.auction_watchers
            .write()
            .entry(auction)
            .or_default()
            .insert(conn);
    }

    pub fn unwatch_auction(&self, auction: AuctionId, conn: u64) {
        let mut watchers = self.auction_watchers.write();
        if let Some(set) = watchers.get_mut(&auction) {
            set.remove(&conn);
            if set.is_empty() {
                watchers.remove(&auction);
            }
        }
    }

    /// Adds a room watcher.
    pub fn watch_room(&self, room: RoomId, conn: u64, user: UserId) {
        self.room_watchers
            .write()
            .entry(room)
            .or_default()
            .insert(conn, user);
    }

    /// Removes a room watcher; the user it watched for, if it did.
    pub fn unwatch_room(&self, room: RoomId, conn: u64) -> Option<UserId> {
        let mut rooms = self.room_watchers.write();
        let watchers = rooms.get_mut(&room)?;
        let user = watchers.remove(&conn)?;
        if watchers.is_empty() {
            rooms.remove(&room);
        }
        Some(user)
    }

    /// Stops delivering a room to every socket of `user` (after they left
    /// it); returns how many sockets stopped (each leaves the room's presence).
    pub fn evict_from_room(&self, room: RoomId, user: UserId) -> usize {
        let conns: Vec<u64> = self
            .room_watchers
            .read()
            .get(&room)
            .map(|w| {
                w.iter()
                    .filter(|(_, u)| **u == user)
                    .map(|(c, _)| *c)
                    .collect()
            })
            .unwrap_or_default();
        conns
            .into_iter()
            .filter(|conn| self.unwatch_room(room, *conn).is_some())
            .count()
    }

    /// Whether `conn` currently receives `room` (false after its user was removed).
    pub fn watches_room(&self, room: RoomId, conn: u64) -> bool {
        self.room_watchers
            .read()
            .get(&room)
            .is_some_and(|w| w.contains_key(&conn))
    }

    /// Sends `f` to every watcher of `room` except `except`.
    pub fn to_room(&self, room: RoomId, except: Option<u64>, f: &ServerFrame) {
        let out = frame(f);
        let conns: Vec<u64> = self
            .room_watchers
            .read()
            .get(&room)
            .map(|w| w.keys().copied().collect())
            .unwrap_or_default();
        for conn in conns.into_iter().filter(|c| Some(*c) != except) {
            self.send(conn, out.clone());
        }
    }

    fn to_auction(&self, auction: AuctionId, out: Outbound, also_users: &[UserId]) {
        let mut conns: HashSet<u64> = self
            .auction_watchers
            .read()
            .get(&auction)
            .cloned()
            .unwrap_or_default();
        {
            let by_user = self.by_user.read();
            for user in also_users {
                if let Some(set) = by_user.get(user) {
                    conns.extend(set.iter().copied());
                }
            }
        }
        for conn in conns {
            self.send(conn, out.clone());
        }
    }

    fn to_user(&self, user: UserId, out: Outbound) {
        let conns: Vec<u64> = self
            .by_user
            .read()
            .get(&user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for conn in conns {
            self.send(conn, out.clone());
        }
    }

    /// Registers a REST call: its call id (the command's `Origin::conn`) and
    /// the answer it will receive.
    pub fn wait_for(&self) -> (u64, oneshot::Receiver<Answer>) {
        let call = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(call, tx);
        (call, rx)
    }

    pub fn forget_waiter(&self, call: u64) {
        self.waiters.lock().remove(&call);
    }

    /// The REST call waiting under `call`; none when `call` is a socket (or
    /// the call gave up).
    fn take_waiter(&self, call: u64) -> Option<oneshot::Sender<Answer>> {
        self.waiters.lock().remove(&call)
    }

    pub fn dispatch_auction(&self, fact: AuctionFact) {
        match fact {
            AuctionFact::Result {
                origin,
                auction_id,
                user_id: _,
                result,
                duplicate,
            } => {
                if origin.gateway != self.gateway_id {
                    return;
                }
                let label = if result.accepted {
                    "accepted"
                } else {
                    result.code.as_deref().unwrap_or("rejected")
                };
                metrics().bids.with_label_values(&[label]).inc();
                if let Some(waiter) = self.take_waiter(origin.conn) {
                    let _ = waiter.send(Answer::Bid { result, duplicate });
                    return;
                }
                let f = ServerFrame::BidResult {
                    request_id: origin.request_id.clone(),
                    auction_id,
                    accepted: result.accepted,
                    code: result.code,
                    message: result.message,
                    leading: result.leading,
                    price: result.price,
                    minimum: result.minimum,
                    duplicate,
                };
                self.send(
                    origin.conn,
                    Outbound::BidResult {
                        request_id: origin.request_id,
                        text: f.to_text().into(),
                    },
                );
            }
            AuctionFact::Updated { auction, steps } => {
                let (id, step_count, has_steps) =
                    (auction.id, auction.step_count, !steps.is_empty());
                let f = ServerFrame::AuctionUpdate { auction, steps };
                let out = Outbound::AuctionUpdate {
                    auction_id: id,
                    step_count,
                    has_steps,
                    text: f.to_text().into(),
                };
                self.to_auction(id, out, &[]);
            }
            AuctionFact::Outbid {
                auction_id,
                user_id,
                price,
            } => {
                self.to_user(user_id, frame(&ServerFrame::Outbid { auction_id, price }));
            }
            AuctionFact::Extended {
                auction_id,
                ends_at,
            } => {
                self.to_auction(
                    auction_id,
                    frame(&ServerFrame::AuctionExtended {
                        auction_id,
                        ends_at,
                    }),
                    &[],
                );
            }
            AuctionFact::Closed {
                auction,
                phase,
                outcome,
                winner,
                price,
                room_id,
            } => {
                let id = auction.id;
                let mut users = vec![auction.seller_id];
                users.extend(winner);
                let f = ServerFrame::AuctionClosed {
                    auction,
                    phase,
                    outcome,
                    winner_id: winner,
                    price,
                    room_id,
                };
                self.to_auction(id, frame(&f), &users);
            }
        }
    }

    pub fn dispatch_chat(&self, fact: ChatFact) {
        match fact {
            ChatFact::Message { message } => {
                let latency = (now_millis() - message.created_at).max(0) as f64 / 1000.0;
                metrics().chat_delivery_latency.observe(latency);
                let (room_id, seq) = (message.room_id, message.seq);
                let text: Arc<str> = ServerFrame::ChatMessage { message }.to_text().into();
                let conns: Vec<u64> = self
                    .room_watchers
                    .read()
                    .get(&room_id)
                    .map(|w| w.keys().copied().collect())
                    .unwrap_or_default();
                for conn in conns {
                    self.send(
                        conn,
                        Outbound::ChatMessage {
                            room_id,
                            seq,
                            text: text.clone(),
                        },
                    );
                }
            }
            ChatFact::Result {
                origin,
                room_id,
                user_id: _,
                accepted,
                code,
                message,
                seq,
                duplicate,
            } => {
                if origin.gateway != self.gateway_id {
                    return;
                }
                if let Some(waiter) = self.take_waiter(origin.conn) {
                    let _ = waiter.send(Answer::Chat {
                        accepted,
                        code,
                        message,
                        seq,
                        duplicate,
                    });
                    return;
                }
                let f = ServerFrame::ChatResult {
                    request_id: Some(origin.request_id),
                    room_id,
                    accepted,
                    code,
                    message,
                    seq,
                    duplicate,
                };
                self.send(origin.conn, frame(&f));
            }
            ChatFact::Read {
                room_id,
                user_id,
                seq,
            } => {
                self.to_room(
                    room_id,
                    None,
                    &ServerFrame::ChatRead {
                        room_id,
                        user_id,
                        seq,
                    },
                );
            }
            ChatFact::Joined { .. } => {}
        }
    }
}

/// Delivers facts from one outbound topic until the bus closes.
pub async fn run_delivery(
    hub: Arc<Hub>,
    mut consumer: Box<dyn Consumer>,
    dispatch: fn(&Hub, &Record),
) {
    loop {
        match consumer.poll(1024).await {
            Ok(records) => {
                for record in &records {
                    dispatch(&hub, record);
                }
                if let Err(e) = consumer.commit(&records).await {
                    warn!(error = %e, "cannot commit delivered facts");
                }
            }
            Err(bowchat_bus::BusError::Closed) | Err(bowchat_bus::BusError::Fenced) => return,
            Err(e) => {
                warn!(error = %e, "fact delivery poll failed, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

pub fn dispatch_auction_record(hub: &Hub, record: &Record) {
    match serde_json::from_slice::<AuctionFact>(&record.payload) {
        Ok(fact) => hub.dispatch_auction(fact),
        Err(e) => warn!(offset = record.offset, error = %e, "unreadable auction fact skipped"),
    }
}

pub fn dispatch_chat_record(hub: &Hub, record: &Record) {
    match serde_json::from_slice::<ChatFact>(&record.payload) {
        Ok(fact) => hub.dispatch_chat(fact),
        Err(e) => warn!(offset = record.offset, error = %e, "unreadable chat fact skipped"),
    }
}
