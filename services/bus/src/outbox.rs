//! The fact outbox: how a fact that is stored reaches the gateways at least
//! once, also when the broker is away longer than the producer's delivery
//! timeout or the role's process dies between its commit and its publish.
//!
//! A role writes the facts of a batch as one [`OutboxEntry`] in the batch's own
//! transaction, publishes them after the commit, and hands the entry's id to
//! [`Published`]. The [`run_relay`] task of the same process removes published
//! entries a few at a time, off the commit path, and publishes again every
//! entry still stored `relay_after` after it was written: its publish failed,
//! or the process that wrote it is gone. The relay may publish a fact twice
//! (a slow publish that succeeded late); gateways drop the copy by sequence.
//!
//! Only facts a gateway cannot get otherwise go through the outbox (price
//! steps, phase changes, chat messages); the answer to one command does not,
//! since its sender retries with the same id and gets the stored answer.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::Bus;

/// Unique across processes (see [`OutboxIds`]); orders one process's entries.
pub type OutboxId = i64;

/// The facts of one stored batch, bound for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: OutboxId,
    /// The role that wrote it (`"auction"`, `"chat"`); each relay reads its own.
    pub source: String,
    pub topic: String,
    /// Milliseconds since the epoch, by the writer's clock.
    pub created_at: i64,
    /// (key, payload) in publish order.
    pub records: Vec<(String, Bytes)>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage unavailable: {0}")]
    Unavailable(String),
    #[error("outbox entry {id} is unreadable: {reason}")]
    Corrupt { id: OutboxId, reason: String },
}

impl OutboxEntry {
    /// The records as stored: a JSON array of `[key, payload]` pairs. Fact
    /// payloads are JSON text already, so they are kept as strings.
    pub fn encode_records(&self) -> String {
        let mut out = String::from("[");
        for (i, (key, payload)) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            push_json_string(&mut out, key);
            out.push(',');
            push_json_string(&mut out, &String::from_utf8_lossy(payload));
            out.push(']');
        }
        out.push(']');
        out
    }

    /// Reads back what [`encode_records`](Self::encode_records) wrote.
    pub fn decode_records(id: OutboxId, text: &str) -> Result<Vec<(String, Bytes)>, OutboxError> {
        let pairs: Vec<(String, String)> =
            serde_json::from_str(text).map_err(|e| OutboxError::Corrupt {
                id,
                reason: e.to_string(),
            })?;
        Ok(pairs
            .into_iter()
            .map(|(key, payload)| (key, Bytes::from(payload)))
            .collect())
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
}

/// Where a role's entries are read and removed; the writes happen in the
/// role's own batch transaction, through its repository.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Entries of `source` written before `created_before`, oldest first.
    async fn due(
        &self,
        source: &str,
        created_before: i64,
        max: u32,
    ) -> Result<Vec<OutboxEntry>, OutboxError>;

    /// Forgets `ids`; unknown ids are ignored.
    async fn remove(&self, ids: &[OutboxId]) -> Result<(), OutboxError>;
}

/// Hands out entry ids: a random prefix per process and a counter, so two
/// processes writing one table never pick the same id.
#[derive(Debug)]
pub struct OutboxIds {
    prefix: i64,
    next: AtomicI64,
}

impl OutboxIds {
    pub fn new() -> Self {
        // 23 random bits above a 40-bit counter keep the id a positive i64.
        let random = uuid::Uuid::new_v4().as_u128() as i64 & ((1 << 23) - 1);
        Self {
            prefix: random << 40,
            next: AtomicI64::new(0),
        }
    }

    pub fn next_id(&self) -> OutboxId {
        self.prefix | (self.next.fetch_add(1, Ordering::Relaxed) & ((1 << 40) - 1))
    }
}

impl Default for OutboxIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Ids of entries their role has published; the relay removes them.
#[derive(Debug, Clone, Default)]
pub struct Published(Arc<Mutex<Vec<OutboxId>>>);

impl Published {
    pub fn push(&self, id: OutboxId) {
        self.0.lock().push(id);
    }

    fn take(&self) -> Vec<OutboxId> {
        std::mem::take(&mut *self.0.lock())
    }

    fn put_back(&self, ids: Vec<OutboxId>) {
        self.0.lock().extend(ids);
    }
}

/// A role's side of the outbox: makes the entry of each batch and reports
/// the entries it published.
#[derive(Debug)]
pub struct OutboxWriter {
    source: &'static str,
    ids: OutboxIds,
    published: Published,
}

impl OutboxWriter {
    /// `published` is the list the relay of `source` removes.
    pub fn new(source: &'static str, published: Published) -> Self {
        Self {
            source,
            ids: OutboxIds::new(),
            published,
        }
    }

    /// The entry for `records` bound for `topic`; `None` when there are none.
    pub fn entry(
        &self,
        topic: &str,
        records: Vec<(String, Bytes)>,
        now: i64,
    ) -> Option<OutboxEntry> {
        (!records.is_empty()).then(|| OutboxEntry {
            id: self.ids.next_id(),
            source: self.source.to_string(),
            topic: topic.to_string(),
            created_at: now,
            records,
        })
    }

    /// The entry's facts are published; the relay may remove it.
    pub fn published(&self, id: OutboxId) {
        self.published.push(id);
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often the relay looks.
    pub interval: Duration,
    /// An entry still stored this long after it was written is published again.
    pub relay_after: Duration,
    /// Entries read per look.
    pub max_entries: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            relay_after: Duration::from_secs(10),
            max_entries: 256,
        }
    }
}

/// What one pass of the relay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayPass {
    pub removed: usize,
    pub relayed: usize,
}

/// One pass: removes what was published, then publishes, oldest first, what
/// has waited `relay_after` at `now`, and removes it. Stops at the first
/// entry the bus refuses, so a later entry never overtakes an earlier one.
pub async fn relay_once(
    store: &dyn OutboxStore,
    bus: &dyn Bus,
    source: &str,
    published: &Published,
    config: &RelayConfig,
    now: i64,
) -> Result<RelayPass, OutboxError> {
    let mut pass = RelayPass::default();
    let done = published.take();
    if !done.is_empty() {
        if let Err(e) = store.remove(&done).await {
            published.put_back(done);
            return Err(e);
        }
        pass.removed = done.len();
    }
    let created_before = now - config.relay_after.as_millis() as i64;
    let due = store
        .due(source, created_before, config.max_entries)
        .await?;
    let mut relayed = Vec::with_capacity(due.len());
    for entry in due {
        match bus.publish_all(&entry.topic, entry.records).await {
            Ok(()) => relayed.push(entry.id),
            Err(e) => {
                warn!(source, id = entry.id, error = %e, "cannot relay stored facts yet");
                break;
            }
        }
    }
    if !relayed.is_empty() {
        store.remove(&relayed).await?;
        pass.relayed = relayed.len();
    }
    Ok(pass)
}

/// Runs [`relay_once`] every `config.interval` until the bus closes;
/// `on_relayed` counts the entries it published again (a metric).
pub async fn run_relay(
    store: Arc<dyn OutboxStore>,
    bus: Arc<dyn Bus>,
    source: &'static str,
    published: Published,
    config: RelayConfig,
    clock: fn() -> i64,
    on_relayed: impl Fn(usize) + Send + 'static,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match relay_once(&*store, &*bus, source, &published, &config, clock()).await {
            Ok(pass) if pass.relayed > 0 => {
                info!(source, entries = pass.relayed, "relayed stored facts");
                on_relayed(pass.relayed);
            }
            Ok(_) => {}
            Err(e) => warn!(source, error = %e, "outbox relay pass failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BusError, InProcessBus};

    /// An in-memory store, as a role's repository would keep the table.
    #[derive(Default)]
    struct MemoryOutbox(Mutex<Vec<OutboxEntry>>);

    #[async_trait]
    impl OutboxStore for MemoryOutbox {
        async fn due(
            &self,
            source: &str,
            created_before: i64,
            max: u32,
        ) -> Result<Vec<OutboxEntry>, OutboxError> {
            let mut due: Vec<OutboxEntry> = self
                .0
                .lock()
                .iter()
                .filter(|e| e.source == source && e.created_at < created_before)
                .cloned()
                .collect();
            due.sort_by_key(|e| (e.created_at, e.id));
            due.truncate(max as usize);
            Ok(due)
        }

        async fn remove(&self, ids: &[OutboxId]) -> Result<(), OutboxError> {
            self.0.lock().retain(|e| !ids.contains(&e.id));
            Ok(())
        }
    }

    fn entry(id: OutboxId, source: &str, created_at: i64, key: &str) -> OutboxEntry {
        OutboxEntry {
            id,
            source: source.into(),
            topic: "facts".into(),
            created_at,
            records: vec![(key.into(), Bytes::from(format!("{{\"k\":\"{key}\"}}")))],
        }
    }

    #[test]
    fn records_survive_their_encoding() {
        let e = OutboxEntry {
            records: vec![
                ("1".into(), Bytes::from_static(br#"{"a":"x\"y","b":[1,2]}"#)),
                ("k \u{1F600}".into(), Bytes::from_static(b"\"\\n\"")),
            ],
            ..entry(1, "auction", 0, "x")
        };
        let text = e.encode_records();
        assert_eq!(OutboxEntry::decode_records(1, &text).unwrap(), e.records);
        assert!(matches!(
            OutboxEntry::decode_records(7, "[[1"),
            Err(OutboxError::Corrupt { id: 7, .. })
        ));
    }

    #[test]
    fn ids_grow_within_a_process_and_differ_between_processes() {
        let (a, b) = (OutboxIds::new(), OutboxIds::new());
        let first = a.next_id();
        assert!(first >= 0 && a.next_id() > first);
        // Two prefixes collide with probability 2^-23; a clash fails the test.
        assert_ne!(a.next_id() >> 40, b.next_id() >> 40);
    }

    #[tokio::test]
    async fn the_relay_publishes_what_waited_removes_what_was_published() {
        let bus = InProcessBus::new(&[("facts", 1)], 64);
        let mut consumer = bus.subscribe("facts", "g").await.unwrap();
        let store = MemoryOutbox::default();
        {
            let mut rows = store.0.lock();
            rows.push(entry(3, "auction", 1_000, "old"));
            rows.push(entry(1, "auction", 1_500, "published"));
            rows.push(entry(2, "auction", 9_500, "fresh"));
            rows.push(entry(4, "chat", 1_000, "other-role"));
        }
        let published = Published::default();
        published.push(1);
        let config = RelayConfig {
            relay_after: Duration::from_secs(5),
            ..RelayConfig::default()
        };
        let pass = relay_once(&store, &bus, "auction", &published, &config, 10_000)
            .await
            .unwrap();
        assert_eq!(
            pass,
            RelayPass {
                removed: 1,
                relayed: 1
            }
        );
        let got = consumer.poll(10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key, "old");
        let left: Vec<OutboxId> = store.0.lock().iter().map(|e| e.id).collect();
        assert_eq!(left, vec![2, 4]);
    }

    #[tokio::test]
    async fn a_refused_publish_keeps_the_entry_and_its_successors() {
        let bus = InProcessBus::new(&[("facts", 1)], 64);
        let store = MemoryOutbox::default();
        store.0.lock().push(OutboxEntry {
            topic: "no-such-topic".into(),
            ..entry(1, "auction", 0, "a")
        });
        store.0.lock().push(entry(2, "auction", 1, "b"));
        let config = RelayConfig::default();
        let pass = relay_once(
            &store,
            &bus,
            "auction",
            &Published::default(),
            &config,
            60_000,
        )
        .await
        .unwrap();
        assert_eq!(pass.relayed, 0);
        assert_eq!(store.0.lock().len(), 2);
        assert!(matches!(
            bus.publish("no-such-topic", "k", Bytes::new()).await,
            Err(BusError::UnknownTopic(_))
        ));
    }
}
