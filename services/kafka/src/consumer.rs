//! `KafkaConsumer`: one member of a consumer group, with fencing.
//!
//! Offsets are committed only by [`Consumer::commit`], for exactly the
//! partitions of the given records (next offset = last offset + 1), after the
//! caller made its effect durable; offsets an earlier commit could not deliver
//! to the coordinator (a broker restart) ride along with the next one. A rebalance context counts generations: each
//! revoke or assign bumps the counter and every owned partition remembers the
//! generation it was assigned in (its epoch). Records remember the epoch of their
//! partition when they were polled; committing records whose partition was
//! revoked meanwhile (or revoked and assigned again) is `BusError::Fenced`, and
//! records of lost partitions are never handed out. Rebalance callbacks run only
//! inside `poll` of this consumer, and `poll`/`commit` take `&mut self`, so the
//! ownership check and the commit cannot interleave with a rebalance.
//!
//! Offsets kept elsewhere: the auction role stores its next offsets in
//! PostgreSQL in the same transaction as the bids. Give the consumer a
//! [`StoredOffsets`] (see [`KafkaConsumer::with_stored_offsets`]); whenever
//! partitions are assigned, `poll` asks it for their stored offsets and seeks
//! there before handing out any record of them, so the store, not the group's
//! Kafka commit, decides where processing resumes. The Kafka commit then only
//! feeds lag metrics. [`KafkaConsumer::seek_to_stored`] does the same by hand.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bowchat_bus::{BusError, Consumer, Record};
use bytes::Bytes;
use futures::FutureExt;
use parking_lot::Mutex;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::config::KafkaConfig;
use crate::transport;

/// First and longest pause before resuming newly assigned partitions again.
const SETTLE_BACKOFF_MIN: Duration = Duration::from_millis(100);
const SETTLE_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Next offsets stored with the effects (e.g. the auction role's bus offsets
/// table). Partitions it does not know resume from the group's committed offset.
#[async_trait]
pub trait StoredOffsets: Send + Sync + 'static {
    /// `(partition, next_offset)` for those of `partitions` of `topic` (logical
    /// name) that have a stored offset.
    async fn next_offsets(
        &self,
        topic: &str,
        partitions: &[u32],
    ) -> Result<Vec<(u32, u64)>, String>;
}

#[derive(Default)]
struct Ownership {
    /// Bumped by every revoke and assign.
    generation: u64,
    /// Partition -> generation it was assigned in.
    owned: HashMap<i32, u64>,
    /// Assigned since `poll` last looked; they may need a seek.
    newly_assigned: Vec<i32>,
    /// Next offsets of owned partitions whose commit the coordinator did not
    /// take (a broker restart); sent again with the next commit.
    owed: BTreeMap<u32, u64>,
}

/// Tracks ownership from librdkafka's rebalance callbacks.
pub struct GroupContext {
    group: String,
    /// Logical topic, for the logs (a process runs several members of a group).
    topic: String,
    state: Arc<Mutex<Ownership>>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut state = self.state.lock();
            state.generation += 1;
            for e in tpl.elements() {
                state.owned.remove(&e.partition());
                state.newly_assigned.retain(|p| *p != e.partition());
                // The new owner's business now.
                state.owed.remove(&(e.partition() as u32));
            }
            info!(group = %self.group, topic = %self.topic, generation = state.generation, revoked = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut state = self.state.lock();
                state.generation += 1;
                let generation = state.generation;
                for e in tpl.elements() {
                    state.owned.insert(e.partition(), generation);
                    state.newly_assigned.push(e.partition());
                }
                info!(group = %self.group, topic = %self.topic, generation, assigned = tpl.count(), "partitions assigned");
            }
            Rebalance::Error(e) => warn!(group = %self.group, error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    /// Result of an asynchronous commit, served inside `poll`. Offsets the
    /// coordinator did not take go with the next commit; a generation error
    /// needs nothing here, librdkafka rejoins and the revoke follows.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let Err(e) = result else { return };
        if e.rdkafka_error_code().is_some_and(is_fencing) {
            info!(group = %self.group, error = %e, "commit refused by the group; rejoining");
            return;
        }
        let mut state = self.state.lock();
        let mut failed = BTreeMap::new();
        for el in offsets.elements() {
            if let (Offset::Offset(o), true) =
                (el.offset(), state.owned.contains_key(&el.partition()))
            {
                failed.insert(el.partition() as u32, o.max(0) as u64);
            }
        }
        warn!(group = %self.group, error = %e, partitions = ?failed.keys().collect::<Vec<_>>(),
            "commit not taken; it goes again with the next commit");
        let owed = std::mem::take(&mut state.owed);
        state.owed = with_owed(owed, &failed);
    }
}

/// See the module docs.
pub struct KafkaConsumer {
    inner: Arc<StreamConsumer<GroupContext>>,
    state: Arc<Mutex<Ownership>>,
    /// Logical and broker-side topic name.
    topic: String,
    full_topic: String,
    /// Polled but not yet handed out (kept across a cancelled `poll`).
    pending: VecDeque<Record>,
    /// Epoch of each partition when its records were last handed out.
    handed_out: HashMap<u32, u64>,
    stored: Option<Arc<dyn StoredOffsets>>,
    timeout: Duration,
}

impl KafkaConsumer {
    pub(crate) fn new(config: &KafkaConfig, topic: &str, group: &str) -> Result<Self, BusError> {
        let state = Arc::new(Mutex::new(Ownership::default()));
        let context = GroupContext {
            group: group.to_string(),
            topic: topic.to_string(),
            state: state.clone(),
        };
        let inner: StreamConsumer<GroupContext> = config
            .consumer_config(group)
            .create_with_context(context)
            .map_err(transport)?;
        let full_topic = config.topic_name(topic);
        inner.subscribe(&[&full_topic]).map_err(transport)?;
        Ok(Self {
            inner: Arc::new(inner),
            state,
            topic: topic.to_string(),
            full_topic,
            pending: VecDeque::new(),
            handed_out: HashMap::new(),
            stored: None,
            timeout: config.admin_timeout(),
        })
    }

    /// On every assignment, resume from the offsets in `stored` (see module docs).
    pub fn with_stored_offsets(mut self, stored: Arc<dyn StoredOffsets>) -> Self {
        self.stored = Some(stored);
        self
    }

    /// Partitions this member owns now, sorted.
    pub fn assignment(&self) -> Vec<u32> {
        let mut owned: Vec<u32> = self.state.lock().owned.keys().map(|p| *p as u32).collect();
        owned.sort_unstable();
        owned
    }

    /// The rebalance generation this member has seen (bumped by every revoke/assign).
    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Moves an owned partition to `next_offset`; records of it already buffered
    /// are dropped and fetched again from there.
    pub fn seek_to_stored(&mut self, partition: u32, next_offset: u64) -> Result<(), BusError> {
        if !self.state.lock().owned.contains_key(&(partition as i32)) {
            return Err(BusError::Fenced);
        }
        self.inner
            .seek(
                &self.full_topic,
                partition as i32,
                Offset::Offset(next_offset as i64),
                self.timeout,
            )
            .map_err(transport)?;
        self.pending.retain(|r| r.partition != partition);
        debug!(topic = %self.topic, partition, next_offset, "seeked to stored offset");
        Ok(())
    }

    /// Like [`Consumer::poll`] but gives up after `wait` with an empty batch.
    /// Rebalances are served while waiting.
    pub async fn poll_timeout(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, BusError> {
        match tokio::time::timeout(wait, self.poll(max)).await {
            Ok(polled) => polled,
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Seeks newly assigned partitions to their stored offsets and forgets
    /// buffered records of partitions this member no longer owns.
    async fn settle_assignment(&mut self) -> Result<(), BusError> {
        // Cloned, not taken: if this future is dropped while the store answers,
        // the next poll seeks these partitions again.
        let fresh = self.state.lock().newly_assigned.clone();
        if let (Some(stored), false) = (self.stored.clone(), fresh.is_empty()) {
            let partitions: Vec<u32> = fresh.iter().map(|p| *p as u32).collect();
            // On error nothing is handed out: records from the group's commit
            // could be processed twice against the store. The next poll retries.
            let offsets = stored
                .next_offsets(&self.topic, &partitions)
                .await
                .map_err(|e| BusError::Transport(format!("stored offsets: {e}")))?;
            for (partition, next) in offsets {
                // Revoked while the store answered: nothing to seek.
                if self.state.lock().owned.contains_key(&(partition as i32)) {
                    self.seek_to_stored(partition, next)?;
                }
            }
        }
        self.state
            .lock()
            .newly_assigned
            .retain(|p| !fresh.contains(p));
        let state = self.state.lock();
        self.pending
            .retain(|r| state.owned.contains_key(&(r.partition as i32)));
        Ok(())
    }

    fn to_record(&self, message: &BorrowedMessage<'_>) -> Record {
        Record {
            topic: self.topic.clone(),
            partition: message.partition() as u32,
            offset: message.offset().max(0) as u64,
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        }
    }

    /// Moves what librdkafka already has into `pending`, without waiting.
    fn drain_ready(&mut self, max: usize) {
        while self.pending.len() < max {
            let next = match self.inner.recv().now_or_never() {
                Some(Ok(message)) => self.to_record(&message),
                Some(Err(e)) => {
                    log_consume_error(&self.topic, &e);
                    break;
                }
                None => break,
            };
            self.pending.push_back(next);
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    /// Cancel-safe: records taken from librdkafka are kept in `pending` before
    /// any await, so a `select!` that drops this future loses nothing.
    async fn poll(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        let max = max.max(1);
        let mut backoff = SETTLE_BACKOFF_MIN;
        loop {
            // A store that cannot answer (or a seek librdkafka refuses while
            // the group settles after a broker restart) must not end `poll`:
            // the roles treat a poll error as final and would stop for good.
            // Nothing of the new partitions is handed out meanwhile.
            if let Err(e) = self.settle_assignment().await {
                warn!(topic = %self.topic, error = %e, retry_in = ?backoff, "cannot resume newly assigned partitions yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(SETTLE_BACKOFF_MAX);
                continue;
            }
            backoff = SETTLE_BACKOFF_MIN;
            if !self.pending.is_empty() {
                let take = self.pending.len().min(max);
                let batch: Vec<Record> = self.pending.drain(..take).collect();
                let state = self.state.lock();
                for r in &batch {
                    if let Some(epoch) = state.owned.get(&(r.partition as i32)) {
                        self.handed_out.insert(r.partition, *epoch);
                    }
                }
                return Ok(batch);
            }
            let first = match self.inner.recv().await {
                Ok(message) => self.to_record(&message),
                Err(e) => {
                    log_consume_error(&self.topic, &e);
                    continue;
                }
            };
            self.pending.push_back(first);
            self.drain_ready(max);
        }
    }

    /// Commits asynchronously: the request is queued at once and its result
    /// arrives in `poll` (see `GroupContext::commit_callback`). A synchronous
    /// commit waits inside librdkafka without any bound while the coordinator
    /// is away (a broker restart), and meanwhile this member does not poll, so
    /// it neither serves its rebalance nor hands out records: a gateway's
    /// delivery loop or a role hung there. Offsets the coordinator does not
    /// take are sent again with the next commit; the caller's effects are
    /// durable already and a record redelivered after a crash is deduplicated
    /// by every role. Partitions lost in a rebalance are `Fenced` here; the
    /// broker's generation errors show up as a revoke in `poll`.
    async fn commit(&mut self, records: &[Record]) -> Result<(), BusError> {
        let next = next_offsets(records);
        if next.is_empty() {
            return Ok(());
        }
        let offsets = {
            let mut state = self.state.lock();
            let fenced = fenced_partitions(&state.owned, &self.handed_out, next.keys());
            if !fenced.is_empty() {
                warn!(topic = %self.topic, ?fenced, "commit refused: partitions lost in a rebalance");
                return Err(BusError::Fenced);
            }
            let owed = std::mem::take(&mut state.owed);
            with_owed(owed, &next)
        };
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            tpl.add_partition_offset(
                &self.full_topic,
                *partition as i32,
                Offset::Offset(*offset as i64),
            )
            .map_err(transport)?;
        }
        match self
            .inner
            .commit(&tpl, CommitMode::Async)
            .map_err(commit_error)
        {
            Err(BusError::Transport(e)) => {
                warn!(topic = %self.topic, error = %e, "commit not queued; it goes again with the next commit");
                let mut state = self.state.lock();
                let owed = std::mem::take(&mut state.owed);
                state.owed = with_owed(owed, &offsets);
                Ok(())
            }
            other => other,
        }
    }
}

/// Per partition, the offset after the last of `records` (what Kafka commits).
fn next_offsets(records: &[Record]) -> BTreeMap<u32, u64> {
    let mut next = BTreeMap::new();
    for r in records {
        let n = next.entry(r.partition).or_insert(0);
        *n = (*n).max(r.offset + 1);
    }
    next
}

/// What to commit: `next` merged over offsets still owed from earlier
/// commits; a partition's offset never moves back.
fn with_owed(mut owed: BTreeMap<u32, u64>, next: &BTreeMap<u32, u64>) -> BTreeMap<u32, u64> {
    for (partition, offset) in next {
        let entry = owed.entry(*partition).or_insert(*offset);
        *entry = (*offset).max(*entry);
    }
    owed
}

/// Partitions among `partitions` this member no longer owns in the epoch it
/// handed their records out in: revoked, or revoked and assigned again.
fn fenced_partitions<'a>(
    owned: &HashMap<i32, u64>,
    handed_out: &HashMap<u32, u64>,
    partitions: impl Iterator<Item = &'a u32>,
) -> Vec<u32> {
    partitions
        .copied()
        .filter(|p| match owned.get(&(*p as i32)) {
            Some(epoch) => handed_out.get(p) != Some(epoch),
            None => true,
        })
        .collect()
}

fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::StaleMemberEpoch
            | RDKafkaErrorCode::FencedMemberEpoch
    )
}

/// Broker-side generation checks also mean another member owns the partitions now.
fn commit_error(e: KafkaError) -> BusError {
    match e.rdkafka_error_code() {
        Some(code) if is_fencing(code) => BusError::Fenced,
        _ => BusError::Transport(format!("commit: {e}")),
    }
}

/// Errors librdkafka reports while polling never end polling: it reconnects
/// after a broker outage, rejoins the group after a generation error (the
/// rebalance callbacks then say which partitions this member lost, and a commit
/// for them is `Fenced`), and re-reads metadata of a topic a restarting broker
/// does not know yet. A role must survive all of these, so they are logged.
fn log_consume_error(topic: &str, e: &KafkaError) {
    match e.rdkafka_error_code() {
        Some(code) if is_fencing(code) => {
            info!(topic, error = %e, "group membership changing; rejoining")
        }
        _ => warn!(topic, error = %e, "consumer error; waiting for the broker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_errors_fence_and_others_do_not() {
        assert!(matches!(
            commit_error(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::IllegalGeneration
            )),
            BusError::Fenced
        ));
        assert!(matches!(
            commit_error(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::UnknownMemberId
            )),
            BusError::Fenced
        ));
        assert!(matches!(
            commit_error(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::RequestTimedOut
            )),
            BusError::Transport(_)
        ));
    }

    fn record(partition: u32, offset: u64) -> Record {
        Record {
            topic: "t".into(),
            partition,
            offset,
            key: String::new(),
            payload: Bytes::new(),
        }
    }

    #[test]
    fn commits_the_offset_after_the_last_record_per_partition() {
        let next = next_offsets(&[record(0, 4), record(1, 9), record(0, 6), record(0, 5)]);
        assert_eq!(next, BTreeMap::from([(0, 7), (1, 10)]));
        assert!(next_offsets(&[]).is_empty());
    }

    #[test]
    fn owed_offsets_ride_along_and_never_move_back() {
        // Partition 0 owed 7 and 1 owed 3; now 0 reaches 9 and 2 reaches 4.
        let owed = BTreeMap::from([(0, 7), (1, 3)]);
        let next = BTreeMap::from([(0, 9), (2, 4)]);
        assert_eq!(
            with_owed(owed, &next),
            BTreeMap::from([(0, 9), (1, 3), (2, 4)])
        );
        // A stale, lower offset never undoes an owed higher one.
        let owed = BTreeMap::from([(0, 7)]);
        assert_eq!(
            with_owed(owed, &BTreeMap::from([(0, 5)])),
            BTreeMap::from([(0, 7)])
        );
    }

    #[test]
    fn revoked_or_reassigned_partitions_are_fenced() {
        // Owned: 0 since generation 1, 2 since generation 5 (revoked and assigned
        // again after its records went out in generation 1); 1 was revoked.
        let owned = HashMap::from([(0, 1), (2, 5)]);
        let handed_out = HashMap::from([(0, 1), (1, 1), (2, 1)]);
        assert!(fenced_partitions(&owned, &handed_out, [0].iter()).is_empty());
        assert_eq!(
            fenced_partitions(&owned, &handed_out, [0, 1].iter()),
            vec![1]
        );
        assert_eq!(fenced_partitions(&owned, &handed_out, [2].iter()), vec![2]);
        // Never handed out by this member: not its records to commit.
        assert_eq!(
            fenced_partitions(&owned, &HashMap::new(), [0].iter()),
            vec![0]
        );
    }
}
