//! The bid-processing role: the single writer of the auctions whose partitions
//! it consumes.
//!
//! It drains a batch of commands, applies them to in-memory state with the pure
//! engine, stores the whole batch in one transaction (with its bus offsets), and
//! only then emits the results and updates. A failed commit answers the batch
//! with a retryable error and forgets the cached states, so memory never runs
//! ahead of storage. Closing and opening are driven by timers kept here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bowchat_bus::outbox::{OutboxWriter, Published};
use bowchat_bus::{topics, Bus, BusError, Consumer, Record};
use bowchat_model::{now_millis, AuctionId, Millis, UserId, MAX_AMOUNT};
use bytes::Bytes;
use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, Histogram, IntCounter,
    IntCounterVec,
};
use tracing::{error, info, warn};

use crate::engine::{AuctionState, Command, Event, Phase, Rejection};
use crate::messages::{Action, AuctionCommand, AuctionFact, CommandResult};
use crate::ports::{
    AuctionBatch, AuctionRecord, AuctionRepository, BusOffset, RepoError, ResultKey, StateWrite,
    StoredResult,
};
use crate::AuctionView;

/// How often a role on a shared store re-reads the unfinished auctions for its timers.
const TIMER_RELOAD: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct AuctionRoleConfig {
    /// Most commands taken into one transaction.
    pub max_batch: usize,
    /// Consumer group name on `auction-bid`.
    pub group: String,
    /// How often to retry a failing commit before answering with an error.
    pub commit_retries: u32,
    /// Other processes write the same store (cluster mode): cached auctions are
    /// re-read at every batch, since a partition may have been processed
    /// elsewhere between two of this member's batches.
    pub shared_store: bool,
    /// How often a batch that lost to another writer is decided again before
    /// its commands are answered UNAVAILABLE.
    pub conflict_retries: u32,
}

impl Default for AuctionRoleConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            group: "auction-role".into(),
            commit_retries: 3,
            shared_store: false,
            conflict_retries: 3,
        }
    }
}

struct Metrics {
    commands: IntCounterVec,
    version_conflicts: IntCounter,
    batch_size: Histogram,
    commit_seconds: Histogram,
}

fn metrics() -> &'static Metrics {
    static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        commands: register_int_counter_vec!(
            "bowchat_auction_commands_total",
            "Auction commands processed, by action and result code",
            &["action", "result"]
        )
        .expect("metric registers once"),
        version_conflicts: register_int_counter!(
            "bowchat_auction_version_conflicts_total",
            "Auction batches that lost to another writer (an auction's version moved since it was read)"
        )
        .expect("metric registers once"),
        batch_size: register_histogram!(
            "bowchat_auction_batch_size",
            "Commands per auction transaction",
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]
        )
        .expect("metric registers once"),
        commit_seconds: register_histogram!(
            "bowchat_auction_commit_seconds",
            "Time to store one auction batch",
            prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")
        )
        .expect("metric registers once"),
    })
}

/// Cached auction: the stored record and the live state (which may be ahead of
/// `record.state` only inside a batch being processed).
struct Slot {
    record: AuctionRecord,
}

pub struct AuctionRole {
    repo: Arc<dyn AuctionRepository>,
    bus: Arc<dyn Bus>,
    config: AuctionRoleConfig,
    slots: HashMap<AuctionId, Slot>,
    /// (deadline, auction) pairs; a stale entry is harmless (the tick is a no-op).
    timers: BTreeSet<(Millis, AuctionId)>,
    /// Each known auction's pinned `auction-bid` partition count, for the
    /// ticks this member publishes (they must reach the auction's partition).
    bid_partitions: HashMap<AuctionId, u32>,
    /// Set when the store refused the last batch because another member owns
    /// its partition now; the batch is dropped, not answered or committed.
    fenced: bool,
    /// Where a batch's facts are stored with it (`with_outbox`); without one
    /// a fact whose publish fails is lost.
    outbox: Option<OutboxWriter>,
}

/// Outcome of processing one batch, before it is stored.
#[derive(Default)]
struct Pending {
    batch: AuctionBatch,
    facts: Vec<AuctionFact>,
    /// Auctions whose state changed in this batch, in first-touch order.
    touched: Vec<AuctionId>,
    /// Results for the commands of this batch, by (auction, user, request) so a
    /// retry inside the same batch gets the first answer.
    answered: HashMap<(AuctionId, UserId, String), CommandResult>,
}

impl AuctionRole {
    pub fn new(
        repo: Arc<dyn AuctionRepository>,
        bus: Arc<dyn Bus>,
        config: AuctionRoleConfig,
    ) -> Self {
        Self {
            repo,
            bus,
            config,
            slots: HashMap::new(),
            timers: BTreeSet::new(),
            bid_partitions: HashMap::new(),
            fenced: false,
            outbox: None,
        }
    }

    /// Stores each batch's facts in the outbox with the batch and reports the
    /// published ones to `published`, which a relay of source `"auction"`
    /// (`bowchat_bus::outbox::run_relay`) removes.
    pub fn with_outbox(mut self, published: Published) -> Self {
        self.outbox = Some(OutboxWriter::new("auction", published));
        self
    }

    /// Subscribe and process until the bus closes or this member is fenced.
    pub async fn run(mut self) -> Result<(), BusError> {
        let consumer = self
            .bus
            .subscribe(topics::AUCTION_BID, &self.config.group)
            .await?;
        self.run_with(consumer).await
    }

    pub async fn run_with(&mut self, mut consumer: Box<dyn Consumer>) -> Result<(), BusError> {
        self.pin_older_auctions().await;
        self.load_timers().await;
        info!(group = %self.config.group, "auction role running");
        let mut next_reload = tokio::time::Instant::now() + TIMER_RELOAD;
        loop {
            let next_deadline = self.timers.first().map(|(at, _)| *at);
            let sleep_for = next_deadline
                .map(|at| Duration::from_millis((at - now_millis()).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(next_reload), if self.config.shared_store => {
                    // Auctions registered on other workers, and ticks whose
                    // publish failed, are picked up here.
                    self.load_timers().await;
                    next_reload = tokio::time::Instant::now() + TIMER_RELOAD;
                }
                polled = consumer.poll(self.config.max_batch) => {
                    let records = polled?;
                    if self.config.shared_store {
                        self.slots.clear();
                    }
                    self.fenced = false;
                    self.process_records(&records).await;
                    if self.fenced {
                        // The new owner processes these records from the
                        // offsets it found in the store.
                        continue;
                    }
                    match consumer.commit(&records).await {
                        Ok(()) => {}
                        Err(BusError::Fenced) => {
                            warn!("bus commit fenced after a rebalance; the new owner resumes from the stored offsets");
                            self.slots.clear();
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ = tokio::time::sleep(sleep_for) => {
                    if self.config.shared_store {
                        self.slots.clear();
                    }
                    self.fire_due_timers().await;
                }
            }
        }
    }

    /// Auctions from before partition pinning keep the count their commands
    /// were mapped over until now: the topic's current one.
    async fn pin_older_auctions(&self) {
        let partitions = match self.bus.partitions(topics::AUCTION_BID) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot read auction-bid's partition count; older auctions stay unpinned");
                return;
            }
        };
        match self.repo.pin_bid_partitions(partitions).await {
            Ok(0) => {}
            Ok(pinned) => info!(
                pinned,
                partitions, "older auctions pinned to their partitions"
            ),
            Err(e) => warn!(error = %e, "cannot pin older auctions"),
        }
    }

    async fn load_timers(&mut self) {
        match self.repo.unfinished().await {
            Ok(records) => {
                for record in records {
                    self.remember(&record);
                    self.schedule(&record.state, record.id);
                }
            }
            Err(e) => error!(error = %e, "cannot load unfinished auctions; timers start empty"),
        }
    }

    fn remember(&mut self, record: &AuctionRecord) {
        if let Some(p) = record.bid_partitions {
            self.bid_partitions.insert(record.id, p);
        }
    }

    fn schedule(&mut self, state: &AuctionState, id: AuctionId) {
        match state.phase {
            Phase::Scheduled => {
                self.timers.insert((state.terms.starts_at, id));
            }
            Phase::Open => {
                self.timers.insert((state.ends_at, id));
            }
            Phase::Closed | Phase::Cancelled => {}
        }
    }

    async fn fire_due_timers(&mut self) {
        let now = now_millis();
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            due.push(id);
        }
        if due.is_empty() {
            return;
        }
        if self.config.shared_store {
            // Only the partition's owner may write the auction; it applies the
            // tick in order with the bids. Every worker keeps timers for every
            // auction, so a tick survives the loss of any one worker; extra
            // ticks are no-ops.
            for id in due {
                let cmd = AuctionCommand {
                    auction_id: id,
                    user_id: 0,
                    origin: bowchat_model::Origin {
                        gateway: String::new(),
                        conn: 0,
                        request_id: format!("tick-{id}-{now}"),
                    },
                    action: Action::Tick,
                };
                let Ok(json) = serde_json::to_vec(&cmd) else {
                    continue;
                };
                let (key, payload) = (id.to_string(), Bytes::from(json));
                let published = match self.bid_partitions.get(&id) {
                    Some(p) => {
                        self.bus
                            .publish_pinned(topics::AUCTION_BID, &key, *p, payload)
                            .await
                    }
                    None => self.bus.publish(topics::AUCTION_BID, &key, payload).await,
                };
                if let Err(e) = published {
                    warn!(auction = id, error = %e, "cannot publish an auction tick; retrying at the next reload");
                }
            }
            return;
        }
        let mut pending = Pending::default();
        for id in due {
            if !self.ensure_loaded(id).await {
                continue;
            }
            self.apply_tick(id, now, &mut pending).await;
        }
        if let Some(conflicted) = self.finish(pending).await {
            // Lost to another writer: tick again at once, on the stored state.
            metrics().version_conflicts.inc();
            for id in conflicted.touched {
                self.timers.insert((now, id));
            }
        }
    }

    async fn ensure_loaded(&mut self, id: AuctionId) -> bool {
        if self.slots.contains_key(&id) {
            return true;
        }
        match self.repo.get(id).await {
            Ok(Some(record)) => {
                self.remember(&record);
                self.slots.insert(id, Slot { record });
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(auction = id, error = %e, "cannot load auction");
                false
            }
        }
    }

    async fn apply_tick(&mut self, id: AuctionId, now: Millis, pending: &mut Pending) {
        let Some(slot) = self.slots.get(&id) else {
            return;
        };
        let record = slot.record.clone();
        let mut state = self.live_state(&record, pending);
        if let Ok(applied) = state.apply(&Command::Tick, now) {
            if !applied.events.is_empty() {
                self.record_events(&record, state.clone(), &applied.events, now, pending)
                    .await;
            }
        }
        self.schedule(&state, id);
    }

    async fn process_records(&mut self, records: &[Record]) {
        metrics().batch_size.observe(records.len() as f64);
        let mut commands = Vec::with_capacity(records.len());
        for record in records {
            match serde_json::from_slice::<AuctionCommand>(&record.payload) {
                Ok(cmd) => commands.push(cmd),
                Err(e) => self.dead_letter(record, &e.to_string()).await,
            }
        }
        let offsets = next_offsets(records);
        let mut attempt = 0;
        loop {
            let pending = self.decide(commands.clone(), offsets.clone()).await;
            let Some(conflicted) = self.finish(pending).await else {
                return;
            };
            // Another writer stored one of these auctions after this batch
            // read it (docs/architecture.md, "one writer per auction"): the
            // batch stored nothing and is decided again on the stored states,
            // its retries finding the other writer's answers.
            metrics().version_conflicts.inc();
            if attempt >= self.config.conflict_retries {
                error!("auction batch kept conflicting with another writer; answering UNAVAILABLE");
                self.fail_batch(conflicted).await;
                return;
            }
            attempt += 1;
            warn!(
                attempt,
                "auction batch conflicted with another writer; deciding it again"
            );
        }
    }

    /// Applies `commands` to the cached states; nothing is stored yet.
    async fn decide(&mut self, commands: Vec<AuctionCommand>, offsets: Vec<BusOffset>) -> Pending {
        let mut pending = Pending::default();
        pending.batch.offsets = offsets;
        let known = self.lookup_stored_results(&commands).await;
        for cmd in commands {
            let key = (cmd.auction_id, cmd.user_id, cmd.origin.request_id.clone());
            if let Some(result) = pending.answered.get(&key).or_else(|| known.get(&key)) {
                metrics()
                    .commands
                    .with_label_values(&[action_name(&cmd.action), "duplicate"])
                    .inc();
                pending.facts.push(AuctionFact::Result {
                    origin: cmd.origin.clone(),
                    auction_id: cmd.auction_id,
                    user_id: cmd.user_id,
                    result: result.clone(),
                    duplicate: true,
                });
                continue;
            }
            self.process_command(cmd, &mut pending).await;
        }
        pending
    }

    async fn lookup_stored_results(
        &self,
        commands: &[AuctionCommand],
    ) -> HashMap<(AuctionId, UserId, String), CommandResult> {
        let keys: Vec<ResultKey> = commands
            .iter()
            .filter(|cmd| !matches!(cmd.action, Action::Register | Action::Tick))
            .map(|cmd| (cmd.auction_id, cmd.user_id, cmd.origin.request_id.clone()))
            .collect();
        let mut known = HashMap::new();
        match self.repo.find_results(&keys).await {
            Ok(found) => {
                for stored in found {
                    known.insert(
                        (stored.auction_id, stored.user_id, stored.request_id),
                        stored.result,
                    );
                }
            }
            Err(e) => warn!(error = %e, "cannot look up earlier results"),
        }
        known
    }

    async fn process_command(&mut self, cmd: AuctionCommand, pending: &mut Pending) {
        let now = now_millis();
        if !self.ensure_loaded(cmd.auction_id).await {
            let result =
                CommandResult::rejected("AUCTION_NOT_FOUND", "no such auction", None, None);
            self.answer(&cmd, result, pending, false);
            return;
        }
        let record = self.slots[&cmd.auction_id].record.clone();
        let mut state = self.live_state(&record, pending);
        let engine_cmd = match &cmd.action {
            Action::Register => {
                self.schedule(&state, cmd.auction_id);
                return;
            }
            Action::Tick => {
                self.apply_tick(cmd.auction_id, now, pending).await;
                return;
            }
            Action::Bid { amount, currency }
            | Action::MaxBid {
                max: amount,
                currency,
            } => {
                if let Some(rejected) = precheck_amount(*amount, currency.as_deref(), &state) {
                    self.answer(&cmd, rejected, pending, true);
                    return;
                }
                if matches!(cmd.action, Action::Bid { .. }) {
                    Command::Bid {
                        bidder: cmd.user_id,
                        amount: *amount,
                    }
                } else {
                    Command::MaxBid {
                        bidder: cmd.user_id,
                        max: *amount,
                    }
                }
            }
            Action::Cancel { operator } => Command::Cancel {
                by: cmd.user_id,
                operator: *operator,
            },
        };
        match state.apply(&engine_cmd, now) {
            Ok(applied) => {
                let result = CommandResult {
                    accepted: true,
                    code: None,
                    message: None,
                    leading: applied.leading,
                    price: state.price,
                    minimum: Some(state.minimum_bid()),
                };
                self.record_events(&record, state.clone(), &applied.events, now, pending)
                    .await;
                self.schedule(&state, cmd.auction_id);
                self.answer(&cmd, result, pending, true);
            }
            Err(rejection) => {
                // A bid that arrives after the end closes the auction first.
                if rejection == Rejection::Closed && state.phase == Phase::Open {
                    self.apply_tick(cmd.auction_id, now, pending).await;
                    state = self.live_state(&record, pending);
                }
                let minimum = matches!(rejection, Rejection::BelowMinimum { .. })
                    .then(|| state.minimum_bid());
                let result = CommandResult::rejected(
                    rejection.code(),
                    rejection.to_string(),
                    minimum,
                    state.price,
                );
                self.answer(&cmd, result, pending, true);
            }
        }
    }

    /// The state including changes earlier in this batch.
    fn live_state(&self, record: &AuctionRecord, pending: &Pending) -> AuctionState {
        pending
            .batch
            .states
            .iter()
            .rev()
            .find(|w| w.auction_id == record.id)
            .map(|w| w.state.clone())
            .unwrap_or_else(|| record.state.clone())
    }

    fn answer(
        &self,
        cmd: &AuctionCommand,
        result: CommandResult,
        pending: &mut Pending,
        store: bool,
    ) {
        let label = result.code.as_deref().unwrap_or("accepted");
        metrics()
            .commands
            .with_label_values(&[action_name(&cmd.action), label])
            .inc();
        let key = (cmd.auction_id, cmd.user_id, cmd.origin.request_id.clone());
        pending.answered.insert(key, result.clone());
        if store {
            pending.batch.results.push(StoredResult {
                auction_id: cmd.auction_id,
                user_id: cmd.user_id,
                request_id: cmd.origin.request_id.clone(),
                result: result.clone(),
            });
        }
        pending.facts.push(AuctionFact::Result {
            origin: cmd.origin.clone(),
            auction_id: cmd.auction_id,
            user_id: cmd.user_id,
            result,
            duplicate: false,
        });
    }

    /// Turns engine events into stored rows and outgoing facts.
    async fn record_events(
        &mut self,
        record: &AuctionRecord,
        state: AuctionState,
        events: &[Event],
        now: Millis,
        pending: &mut Pending,
    ) {
        let id = record.id;
        if !pending.touched.contains(&id) {
            pending.touched.push(id);
        }
        let mut steps = Vec::new();
        let mut record = record.clone();
        for event in events {
            match event {
                Event::Step(step) => {
                    pending.batch.steps.push((id, step.clone()));
                    steps.push(step.clone());
                }
                Event::Outbid { user, price } => pending.facts.push(AuctionFact::Outbid {
                    auction_id: id,
                    user_id: *user,
                    price: *price,
                }),
                Event::Extended { ends_at } => pending.facts.push(AuctionFact::Extended {
                    auction_id: id,
                    ends_at: *ends_at,
                }),
                Event::Closed {
                    outcome,
                    winner,
                    price,
                } => {
                    let mut room_id = None;
                    if let Some(winner) = winner {
                        match self.repo.open_deal_room(&record, *winner, now).await {
                            Ok(room) => {
                                room_id = Some(room);
                                record.deal_room_id = Some(room);
                                pending.batch.deal_rooms.push((id, room));
                            }
                            Err(e) => {
                                error!(auction = id, error = %e, "cannot open the seller-winner room")
                            }
                        }
                    }
                    pending.facts.push(AuctionFact::Closed {
                        auction: AuctionView::from_parts(&record, &state),
                        phase: state.phase,
                        outcome: Some(*outcome),
                        winner: *winner,
                        price: *price,
                        room_id,
                    });
                }
                Event::Cancelled => pending.facts.push(AuctionFact::Closed {
                    auction: AuctionView::from_parts(&record, &state),
                    phase: state.phase,
                    outcome: None,
                    winner: None,
                    price: None,
                    room_id: None,
                }),
                Event::Opened => {}
            }
        }
        pending.facts.push(AuctionFact::Updated {
            auction: AuctionView::from_parts(&record, &state),
            steps,
        });
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.record.deal_room_id = record.deal_room_id;
        }
        pending.batch.states.push(StateWrite {
            auction_id: id,
            read_version: record.version,
            state,
        });
    }

    /// Stores the batch, then publishes its facts. Hands the batch back,
    /// stored and published nothing, when another writer changed one of its
    /// auctions since they were read; their cached states are forgotten.
    async fn finish(&mut self, mut pending: Pending) -> Option<Pending> {
        if pending.batch.is_empty() && pending.facts.is_empty() {
            return None;
        }
        // Only the last state of each auction needs storing.
        let mut last: HashMap<AuctionId, usize> = HashMap::new();
        for (i, write) in pending.batch.states.iter().enumerate() {
            last.insert(write.auction_id, i);
        }
        let states = std::mem::take(&mut pending.batch.states);
        pending.batch.states = states
            .into_iter()
            .enumerate()
            .filter(|(i, write)| last[&write.auction_id] == *i)
            .map(|(_, s)| s)
            .collect();

        let facts = coalesce_updates(std::mem::take(&mut pending.facts));
        let records = encode_facts(&facts);
        pending.facts = facts;
        if !pending.batch.is_empty() {
            // Answers stay out: their senders retry with the same id and get
            // the stored answer; every other fact only reaches gateways here.
            pending.batch.outbox = self.outbox.as_ref().and_then(|outbox| {
                let gateway_facts = records
                    .iter()
                    .zip(&pending.facts)
                    .filter(|(_, fact)| !matches!(fact, AuctionFact::Result { .. }))
                    .map(|(record, _)| record.clone())
                    .collect();
                outbox.entry(topics::AUCTION_EVENT, gateway_facts, now_millis())
            });
            let started = std::time::Instant::now();
            let mut attempt = 0;
            loop {
                match self.repo.commit(&pending.batch).await {
                    Ok(()) => break,
                    Err(e) if e.is_fenced() => {
                        // Another member owns a partition of this batch now and
                        // will process its records: answering or publishing
                        // here would double the effect.
                        warn!(error = %e, "auction batch fenced; dropping it");
                        self.slots.clear();
                        self.fenced = true;
                        return None;
                    }
                    Err(RepoError::VersionConflict { auctions }) => {
                        warn!(?auctions, "auction batch lost to another writer");
                        for id in &pending.touched {
                            self.slots.remove(id);
                        }
                        return Some(pending);
                    }
                    Err(e) if attempt < self.config.commit_retries => {
                        attempt += 1;
                        warn!(error = %e, attempt, "auction batch commit failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                    Err(e) => {
                        error!(error = %e, "auction batch commit failed; answering with UNAVAILABLE");
                        self.fail_batch(pending).await;
                        return None;
                    }
                }
            }
            metrics()
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        for write in &pending.batch.states {
            if let Some(slot) = self.slots.get_mut(&write.auction_id) {
                slot.record.state = write.state.clone();
                slot.record.version = write.read_version + 1;
            }
        }
        if self.publish_records(records).await {
            if let (Some(outbox), Some(entry)) = (&self.outbox, &pending.batch.outbox) {
                outbox.published(entry.id);
            }
        }
        None
    }

    async fn fail_batch(&mut self, pending: Pending) {
        for id in &pending.touched {
            self.slots.remove(id);
        }
        let facts = pending
            .facts
            .into_iter()
            .filter_map(|fact| match fact {
                AuctionFact::Result {
                    origin,
                    auction_id,
                    user_id,
                    duplicate,
                    ..
                } => Some(AuctionFact::Result {
                    origin,
                    auction_id,
                    user_id,
                    duplicate,
                    result: CommandResult::rejected(
                        "UNAVAILABLE",
                        "storage unavailable; retry",
                        None,
                        None,
                    ),
                }),
                _ => None,
            })
            .collect();
        self.publish(facts).await;
    }

    async fn publish(&self, facts: Vec<AuctionFact>) {
        self.publish_records(encode_facts(&facts)).await;
    }

    /// Whether the bus took every record. A stored batch's facts that it
    /// refused stay in the outbox, whose relay publishes them later.
    async fn publish_records(&self, records: Vec<(String, Bytes)>) -> bool {
        if records.is_empty() {
            return true;
        }
        match self.bus.publish_all(topics::AUCTION_EVENT, records).await {
            Ok(()) => true,
            Err(e) => {
                error!(error = %e, "cannot publish auction facts; the outbox relay sends them later");
                false
            }
        }
    }

    async fn dead_letter(&self, record: &Record, reason: &str) {
        warn!(topic = %record.topic, partition = record.partition, offset = record.offset, reason, "dead-lettering an unreadable command");
        metrics()
            .commands
            .with_label_values(&["unreadable", "DEAD_LETTER"])
            .inc();
        if let Err(e) = self.bus.dead_letter(record, reason, 1).await {
            error!(error = %e, "cannot dead-letter a record");
        }
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Bid { .. } => "bid",
        Action::MaxBid { .. } => "max_bid",
        Action::Cancel { .. } => "cancel",
        Action::Register => "register",
        Action::Tick => "tick",
    }
}

fn precheck_amount(
    amount: i64,
    currency: Option<&str>,
    state: &AuctionState,
) -> Option<CommandResult> {
    if amount <= 0 || amount > MAX_AMOUNT {
        return Some(CommandResult::rejected(
            "INVALID_AMOUNT",
            format!("amount must be between 1 and {MAX_AMOUNT} minor units"),
            Some(state.minimum_bid()),
            state.price,
        ));
    }
    match currency {
        Some(c) if c != state.terms.currency => Some(CommandResult::rejected(
            "CURRENCY_MISMATCH",
            format!("this auction is in {}", state.terms.currency),
            Some(state.minimum_bid()),
            state.price,
        )),
        _ => None,
    }
}

/// Per partition, the offset after the last record of the batch.
fn next_offsets(records: &[Record]) -> Vec<BusOffset> {
    let mut by_partition: HashMap<(String, u32), u64> = HashMap::new();
    for r in records {
        let next = by_partition
            .entry((r.topic.clone(), r.partition))
            .or_insert(0);
        *next = (*next).max(r.offset + 1);
    }
    by_partition
        .into_iter()
        .map(|((topic, partition), next_offset)| BusOffset {
            topic,
            partition,
            next_offset,
        })
        .collect()
}

/// Merges the `Updated` facts of one auction within a batch into one fact
/// carrying all its steps and the final view; keeps every other fact in order.
/// One (key, payload) record per fact, in order; facts always encode.
fn encode_facts(facts: &[AuctionFact]) -> Vec<(String, Bytes)> {
    facts
        .iter()
        .map(|fact| {
            let json = serde_json::to_vec(fact).expect("auction facts always encode");
            (fact.auction_id().to_string(), Bytes::from(json))
        })
        .collect()
}

fn coalesce_updates(facts: Vec<AuctionFact>) -> Vec<AuctionFact> {
    let mut out: Vec<AuctionFact> = Vec::with_capacity(facts.len());
    let mut update_at: HashMap<AuctionId, usize> = HashMap::new();
    for fact in facts {
        match fact {
            AuctionFact::Updated { auction, steps } => match update_at.get(&auction.id) {
                Some(&i) => {
                    if let AuctionFact::Updated {
                        auction: a,
                        steps: s,
                    } = &mut out[i]
                    {
                        *a = auction;
                        s.extend(steps);
                    }
                }
                None => {
                    update_at.insert(auction.id, out.len());
                    out.push(AuctionFact::Updated { auction, steps });
                }
            },
            other => out.push(other),
        }
    }
    // Updates go first so watchers see the new price before the per-sender results
    // and before a close.
    out.sort_by_key(|f| match f {
        AuctionFact::Updated { .. } => 0,
        AuctionFact::Closed { .. } => 2,
        _ => 1,
    });
    out
}
