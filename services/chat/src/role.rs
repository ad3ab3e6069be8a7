//! The chat role: the single writer of the rooms whose `chat-message`
//! partitions it consumes.
//!
//! Per polled batch it looks up what it needs in bulk (rooms, memberships,
//! earlier messages with the same client ids), decides every command in memory
//! (membership, validation, dedupe, the next gapless seq of each room), stores
//! the whole batch with ONE repository commit, and only then publishes the
//! facts and commits the consumer. A failed commit answers every command of the
//! batch with UNAVAILABLE and forgets the cached sequences of its rooms, so the
//! in-memory sequence never runs ahead of storage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bowchat_bus::outbox::{OutboxWriter, Published};
use bowchat_bus::{topics, Bus, BusError, Consumer, Record};
use bowchat_model::{now_millis, Millis, RoomId, UserId};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use prometheus::Registry;
use tracing::{error, info, warn};

use crate::messages::{codes, ChatAction, ChatCommand, ChatFact, ChatMessage};
use crate::metrics::Metrics;
use crate::ports::{ChatBatch, ChatRepoError, ChatRepository, RoomKind};

/// Longest accepted client message id, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 128;

/// Above this many cached rooms the caches are dropped and refilled on demand,
/// which bounds memory without any bookkeeping per access.
const MAX_CACHED_ROOMS: usize = 100_000;

/// Concurrent point lookups (rooms, memberships) per batch.
const LOOKUP_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct ChatRoleConfig {
    /// Most commands taken into one transaction.
    pub max_batch: usize,
    /// Consumer group name on `chat-message`.
    pub group: String,
    /// Longest accepted message body, in characters.
    pub max_body_chars: usize,
    /// How often to retry a failing commit (or publish) before giving up.
    pub commit_retries: u32,
}

impl Default for ChatRoleConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            group: "chat-role".into(),
            max_body_chars: 4000,
            commit_retries: 3,
        }
    }
}

/// What one user is in one room, as looked up for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Member {
        last_read: i64,
    },
    Outsider,
    /// The lookup failed: answer UNAVAILABLE rather than guess.
    Unknown,
}

/// Bulk lookups done before the commands of a batch are decided.
#[derive(Default)]
struct Lookups {
    /// Rooms whose state could not be read.
    unavailable: HashSet<RoomId>,
    /// Stored messages by (room, sender, client id) -> seq.
    stored: HashMap<(RoomId, UserId, String), i64>,
    members: HashMap<(RoomId, UserId), Membership>,
}

/// The outcome of one batch before it is stored.
#[derive(Default)]
struct Pending {
    batch: ChatBatch,
    results: Vec<ChatFact>,
    reads: Vec<ChatFact>,
    joined: Vec<ChatFact>,
    /// Last seq assigned in this batch, per room.
    next_seq: HashMap<RoomId, i64>,
    /// Messages accepted in this batch, for dedupe inside it.
    sent: HashMap<(RoomId, UserId, String), i64>,
}

pub struct ChatRole {
    repo: Arc<dyn ChatRepository>,
    bus: Arc<dyn Bus>,
    config: ChatRoleConfig,
    metrics: Metrics,
    /// Room kinds never change, so they stay cached across failures.
    kinds: HashMap<RoomId, RoomKind>,
    /// Stored last seq per room; evicted when a commit fails.
    last_seq: HashMap<RoomId, i64>,
    /// Where a batch's facts are stored with it (`with_outbox`); without one
    /// a fact whose publish fails is lost.
    outbox: Option<OutboxWriter>,
}

impl ChatRole {
    /// Metrics are registered into `registry` (pass `prometheus::default_registry()` in the binary).
    pub fn new(
        repo: Arc<dyn ChatRepository>,
        bus: Arc<dyn Bus>,
        config: ChatRoleConfig,
        registry: &Registry,
    ) -> Self {
        let metrics = Metrics::new(registry);
        Self {
            repo,
            bus,
            config,
            metrics,
            kinds: HashMap::new(),
            last_seq: HashMap::new(),
            outbox: None,
        }
    }

    /// Stores each batch's facts in the outbox with the batch and reports the
    /// published ones to `published`, which a relay of source `"chat"`
    /// (`bowchat_bus::outbox::run_relay`) removes.
    pub fn with_outbox(mut self, published: Published) -> Self {
        self.outbox = Some(OutboxWriter::new("chat", published));
        self
    }

    /// Subscribe and process until the bus closes or this member is fenced.
    pub async fn run(mut self) -> Result<(), BusError> {
        let consumer = self
            .bus
            .subscribe(topics::CHAT_MESSAGE, &self.config.group)
            .await?;
        self.run_with(consumer).await
    }

    pub async fn run_with(&mut self, mut consumer: Box<dyn Consumer>) -> Result<(), BusError> {
        info!(group = %self.config.group, "chat role running");
        loop {
            let records = consumer.poll(self.config.max_batch.max(1)).await?;
            self.process_records(&records).await?;
            match consumer.commit(&records).await {
                Ok(()) => {}
                // Lost the partitions in a rebalance: the stored batch is kept
                // (its records are deduplicated by client id when the new
                // owner sees them again); keep serving the partitions we own.
                Err(BusError::Fenced) => {
                    warn!("bus commit fenced after a rebalance; continuing");
                    self.kinds.clear();
                    self.last_seq.clear();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Decides, stores and announces one batch. Errors only when the bus is gone.
    pub(crate) async fn process_records(&mut self, records: &[Record]) -> Result<(), BusError> {
        self.metrics.batch_size.observe(records.len() as f64);
        let mut commands = Vec::with_capacity(records.len());
        for record in records {
            match serde_json::from_slice::<ChatCommand>(&record.payload) {
                Ok(cmd) => commands.push(cmd),
                Err(e) => self.dead_letter(record, &e.to_string()).await,
            }
        }
        if commands.is_empty() {
            return Ok(());
        }
        if self.kinds.len() > MAX_CACHED_ROOMS {
            self.kinds.clear();
            self.last_seq.clear();
        }
        let lookups = self.lookup(&commands).await;
        let now = now_millis();
        let mut pending = Pending::default();
        for cmd in &commands {
            self.decide(cmd, &lookups, now, &mut pending);
        }
        let rooms: HashSet<RoomId> = commands.iter().map(|c| c.room_id).collect();
        self.finish(pending, &rooms).await
    }

    async fn lookup(&mut self, commands: &[ChatCommand]) -> Lookups {
        let mut lookups = Lookups::default();
        let rooms: Vec<RoomId> = distinct(commands.iter().map(|c| c.room_id));
        self.load_rooms(&rooms, &mut lookups).await;

        // Earlier messages with the same (sender, client id), one query per room.
        let mut keys: HashMap<RoomId, Vec<(UserId, String)>> = HashMap::new();
        for cmd in commands {
            if let ChatAction::Send { client_msg_id, .. } = &cmd.action {
                if self.kinds.contains_key(&cmd.room_id)
                    && !lookups.unavailable.contains(&cmd.room_id)
                {
                    keys.entry(cmd.room_id)
                        .or_default()
                        .push((cmd.user_id, client_msg_id.clone()));
                }
            }
        }
        for (room, keys) in keys {
            match self.repo.find_messages(room, &keys).await {
                Ok(found) => {
                    for m in found {
                        lookups
                            .stored
                            .insert((m.room_id, m.sender, m.client_msg_id), m.seq);
                    }
                }
                Err(e) => {
                    warn!(room, error = %e, "cannot look up earlier messages");
                    lookups.unavailable.insert(room);
                }
            }
        }

        let pairs: Vec<(RoomId, UserId)> = distinct(
            commands
                .iter()
                .filter(|c| {
                    self.kinds.contains_key(&c.room_id) && !lookups.unavailable.contains(&c.room_id)
                })
                .map(|c| (c.room_id, c.user_id)),
        );
        let repo = &self.repo;
        let found: Vec<((RoomId, UserId), Membership)> = stream::iter(pairs)
            .map(|(room, user)| async move {
                let membership = match repo.member(room, user).await {
                    Ok(Some(m)) => Membership::Member {
                        last_read: m.last_read_seq,
                    },
                    Ok(None) => Membership::Outsider,
                    Err(e) => {
                        warn!(room, user, error = %e, "cannot look up membership");
                        Membership::Unknown
                    }
                };
                ((room, user), membership)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        lookups.members.extend(found);
        lookups
    }

    /// Fills the kind and last-seq caches for `rooms`; rooms that cannot be read
    /// are marked unavailable, unknown rooms stay out of `kinds`.
    async fn load_rooms(&mut self, rooms: &[RoomId], lookups: &mut Lookups) {
        let unknown: Vec<RoomId> = rooms
            .iter()
            .copied()
            .filter(|r| !self.kinds.contains_key(r))
            .collect();
        let repo = &self.repo;
        let loaded: Vec<(RoomId, Result<_, ChatRepoError>)> = stream::iter(unknown)
            .map(|room| async move { (room, repo.get_room(room).await) })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        for (room, result) in loaded {
            match result {
                Ok(Some(r)) => {
                    self.kinds.insert(room, r.kind);
                    self.last_seq.insert(room, r.last_seq);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(room, error = %e, "cannot load room");
                    lookups.unavailable.insert(room);
                }
            }
        }
        // Known rooms whose sequence was evicted after a failed commit.
        let stale: Vec<RoomId> = rooms
            .iter()
            .copied()
            .filter(|r| self.kinds.contains_key(r) && !self.last_seq.contains_key(r))
            .collect();
        if stale.is_empty() {
            return;
        }
        match self.repo.last_seqs(&stale).await {
            Ok(seqs) => self.last_seq.extend(seqs),
            Err(e) => warn!(error = %e, "cannot reload room sequences"),
        }
        for room in stale {
            if !self.last_seq.contains_key(&room) {
                lookups.unavailable.insert(room);
            }
        }
    }

    fn decide(&self, cmd: &ChatCommand, lookups: &Lookups, now: Millis, pending: &mut Pending) {
        let room = cmd.room_id;
        if lookups.unavailable.contains(&room) {
            return self.reject(
                cmd,
                codes::UNAVAILABLE,
                "storage unavailable; retry",
                pending,
            );
        }
        let Some(kind) = self.kinds.get(&room).copied() else {
            return self.reject(cmd, codes::ROOM_NOT_FOUND, "no such room", pending);
        };
        if let ChatAction::Send {
            client_msg_id,
            body,
        } = &cmd.action
        {
            if let Some((code, message)) = self.validate(client_msg_id, body) {
                return self.reject(cmd, code, &message, pending);
            }
        }
        let membership = match lookups.members.get(&(room, cmd.user_id)).copied() {
            Some(Membership::Member { last_read }) => Membership::Member { last_read },
            // A join earlier in this batch counts.
            _ if pending
                .batch
                .joins
                .iter()
                .any(|(r, u, _)| *r == room && *u == cmd.user_id) =>
            {
                Membership::Member { last_read: 0 }
            }
            Some(other) => other,
            None => Membership::Unknown,
        };
        let mut last_read = match membership {
            Membership::Member { last_read } => last_read,
            Membership::Unknown => {
                return self.reject(
                    cmd,
                    codes::UNAVAILABLE,
                    "storage unavailable; retry",
                    pending,
                )
            }
            Membership::Outsider if kind.is_public() => {
                pending.batch.joins.push((room, cmd.user_id, now));
                pending.joined.push(ChatFact::Joined {
                    room_id: room,
                    user_id: cmd.user_id,
                });
                0
            }
            Membership::Outsider => {
                return self.reject(
                    cmd,
                    codes::NOT_A_MEMBER,
                    "only members can use this room",
                    pending,
                )
            }
        };
        let Some(live_last) = pending
            .next_seq
            .get(&room)
            .or_else(|| self.last_seq.get(&room))
            .copied()
        else {
            return self.reject(
                cmd,
                codes::UNAVAILABLE,
                "storage unavailable; retry",
                pending,
            );
        };
        match &cmd.action {
            ChatAction::Join => self.accept(cmd, None, false, pending),
            ChatAction::Send {
                client_msg_id,
                body,
            } => {
                let key = (room, cmd.user_id, client_msg_id.clone());
                if let Some(seq) = pending
                    .sent
                    .get(&key)
                    .or_else(|| lookups.stored.get(&key))
                    .copied()
                {
                    return self.accept(cmd, Some(seq), true, pending);
                }
                let seq = live_last + 1;
                pending.next_seq.insert(room, seq);
                pending.sent.insert(key, seq);
                pending.batch.messages.push(ChatMessage {
                    room_id: room,
                    seq,
                    sender: cmd.user_id,
                    body: body.clone(),
                    client_msg_id: client_msg_id.clone(),
                    created_at: now,
                });
                self.accept(cmd, Some(seq), false, pending);
            }
            ChatAction::Read { seq } => {
                // Markers move forward only, and never past the last message.
                if let Some((_, _, earlier)) = pending
                    .batch
                    .reads
                    .iter()
                    .rev()
                    .find(|(r, u, _)| *r == room && *u == cmd.user_id)
                {
                    last_read = last_read.max(*earlier);
                }
                let marker = (*seq).min(live_last).max(last_read);
                if marker > last_read {
                    pending.batch.reads.push((room, cmd.user_id, marker));
                    pending.reads.push(ChatFact::Read {
                        room_id: room,
                        user_id: cmd.user_id,
                        seq: marker,
                    });
                }
                self.accept(cmd, Some(marker), false, pending);
            }
        }
    }

    fn validate(&self, client_msg_id: &str, body: &str) -> Option<(&'static str, String)> {
        if client_msg_id.is_empty() || client_msg_id.chars().count() > MAX_CLIENT_MSG_ID_CHARS {
            let message = format!("clientMsgId must be 1 to {MAX_CLIENT_MSG_ID_CHARS} characters");
            return Some((codes::INVALID_CLIENT_MSG_ID, message));
        }
        if body.trim().is_empty() {
            return Some((codes::EMPTY_MESSAGE, "the message is empty".into()));
        }
        if body.chars().count() > self.config.max_body_chars {
            let message = format!(
                "messages are at most {} characters",
                self.config.max_body_chars
            );
            return Some((codes::MESSAGE_TOO_LONG, message));
        }
        None
    }

    fn accept(&self, cmd: &ChatCommand, seq: Option<i64>, duplicate: bool, pending: &mut Pending) {
        if matches!(cmd.action, ChatAction::Send { .. }) {
            let label = if duplicate { "duplicate" } else { "accepted" };
            self.metrics.messages.with_label_values(&[label]).inc();
        }
        pending
            .results
            .push(result_fact(cmd, true, None, None, seq, duplicate));
    }

    fn reject(&self, cmd: &ChatCommand, code: &str, message: &str, pending: &mut Pending) {
        if matches!(cmd.action, ChatAction::Send { .. }) {
            self.metrics.messages.with_label_values(&[code]).inc();
        }
        pending.results.push(result_fact(
            cmd,
            false,
            Some(code),
            Some(message),
            None,
            false,
        ));
    }

    /// Stores the batch, then publishes its facts (messages in seq order, results, reads, joins).
    async fn finish(
        &mut self,
        mut pending: Pending,
        rooms: &HashSet<RoomId>,
    ) -> Result<(), BusError> {
        // The facts every member must see go into the outbox with the batch;
        // answers stay out, since their senders retry with the same id.
        let mut shared: Vec<ChatFact> = Vec::with_capacity(
            pending.batch.messages.len() + pending.reads.len() + pending.joined.len(),
        );
        shared.extend(
            pending
                .batch
                .messages
                .iter()
                .cloned()
                .map(|message| ChatFact::Message { message }),
        );
        let shared_records = encode_facts(&shared);
        let mut extra_records = encode_facts(&pending.reads);
        extra_records.extend(encode_facts(&pending.joined));
        if !pending.batch.is_empty() {
            let mut outbox_records = shared_records.clone();
            outbox_records.extend(extra_records.iter().cloned());
            pending.batch.outbox = self
                .outbox
                .as_ref()
                .and_then(|outbox| outbox.entry(topics::CHAT_EVENT, outbox_records, now_millis()));
            if let Err(e) = self.commit(&pending.batch).await {
                if matches!(e, ChatRepoError::Conflict(_)) {
                    // Another writer moved a room's sequence: nothing of this
                    // batch is stored, its senders retry, and the rooms'
                    // sequences are read again below.
                    self.metrics.conflicts.inc();
                }
                error!(error = %e, "chat batch commit failed; answering with UNAVAILABLE");
                for room in rooms {
                    self.last_seq.remove(room);
                }
                let facts: Vec<ChatFact> = pending.results.into_iter().map(unavailable).collect();
                return self.publish(encode_facts(&facts)).await.map(|_| ());
            }
        }
        self.last_seq.extend(pending.next_seq);
        let mut records = shared_records;
        records.extend(encode_facts(&pending.results));
        records.extend(extra_records);
        let published = self.publish(records).await?;
        if let (true, Some(outbox), Some(entry)) = (published, &self.outbox, &pending.batch.outbox)
        {
            outbox.published(entry.id);
        }
        Ok(())
    }

    async fn commit(&self, batch: &ChatBatch) -> Result<(), ChatRepoError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match self.repo.commit(batch).await {
                Ok(()) => {
                    self.metrics
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(());
                }
                // Only a storage outage can heal by waiting; a conflict or corruption will not.
                Err(ChatRepoError::Unavailable(e)) if attempt < self.config.commit_retries => {
                    attempt += 1;
                    warn!(error = %e, attempt, "chat batch commit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Publishes fact records keyed by room; returns whether the bus took
    /// them. The effects are already stored, so a transient failure is
    /// retried; a closed or fenced bus stops the role.
    async fn publish(&self, records: Vec<(String, Bytes)>) -> Result<bool, BusError> {
        if records.is_empty() {
            return Ok(true);
        }
        let mut attempt = 0;
        loop {
            match self
                .bus
                .publish_all(topics::CHAT_EVENT, records.clone())
                .await
            {
                Ok(()) => return Ok(true),
                Err(e @ (BusError::Closed | BusError::Fenced)) => return Err(e),
                Err(e) if attempt < self.config.commit_retries => {
                    attempt += 1;
                    warn!(error = %e, attempt, "cannot publish chat facts; retrying");
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => {
                    // Stored facts stay in the outbox; its relay sends them later.
                    error!(error = %e, "cannot publish chat facts; the outbox relay sends them later");
                    return Ok(false);
                }
            }
        }
    }

    async fn dead_letter(&self, record: &Record, reason: &str) {
        warn!(topic = %record.topic, partition = record.partition, offset = record.offset, reason, "dead-lettering an unreadable chat command");
        self.metrics
            .messages
            .with_label_values(&["DEAD_LETTER"])
            .inc();
        if let Err(e) = self.bus.dead_letter(record, reason, 1).await {
            error!(error = %e, "cannot dead-letter a record");
        }
    }
}

fn result_fact(
    cmd: &ChatCommand,
    accepted: bool,
    code: Option<&str>,
    message: Option<&str>,
    seq: Option<i64>,
    duplicate: bool,
) -> ChatFact {
    ChatFact::Result {
        origin: cmd.origin.clone(),
        room_id: cmd.room_id,
        user_id: cmd.user_id,
        accepted,
        code: code.map(str::to_string),
        message: message.map(str::to_string),
        seq,
        duplicate,
    }
}

/// Turns a decided result into the answer of a batch that could not be stored.
/// One (key, payload) record per fact, keyed by room, in order.
fn encode_facts(facts: &[ChatFact]) -> Vec<(String, Bytes)> {
    facts
        .iter()
        .map(|fact| {
            let json = serde_json::to_vec(fact).expect("chat facts always encode");
            (fact.room_id().to_string(), Bytes::from(json))
        })
        .collect()
}

fn unavailable(fact: ChatFact) -> ChatFact {
    match fact {
        ChatFact::Result {
            origin,
            room_id,
            user_id,
            ..
        } => ChatFact::Result {
            origin,
            room_id,
            user_id,
            accepted: false,
            code: Some(codes::UNAVAILABLE.into()),
            message: Some("storage unavailable; retry".into()),
            seq: None,
            duplicate: false,
        },
        other => other,
    }
}

/// Distinct values in first-seen order.
fn distinct<T: Clone + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|item| seen.insert(item.clone())).collect()
}
