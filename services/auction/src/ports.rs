//! What the auction domain needs from storage. Adapters live in `bowchat-store`.

use async_trait::async_trait;
use bowchat_bus::outbox::OutboxEntry;
use bowchat_model::{AuctionId, Millis, PageQuery, RoomId, UserId};

use crate::engine::{AuctionState, AuctionTerms, Phase, PriceStep};
use crate::messages::CommandResult;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Another writer stored a newer state of these auctions after the batch
    /// read them; the batch stored nothing.
    #[error("auctions {auctions:?} changed since the batch read them")]
    VersionConflict { auctions: Vec<AuctionId> },
}

impl RepoError {
    /// A batch refused because this consumer no longer owns one of its
    /// partitions (adapters report it as a `Conflict` starting with "fenced").
    pub fn is_fenced(&self) -> bool {
        matches!(self, RepoError::Conflict(m) if m.starts_with("fenced"))
    }
}

/// An auction as stored: descriptive fields plus the engine state.
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionRecord {
    pub id: AuctionId,
    pub title: String,
    pub description: String,
    pub state: AuctionState,
    /// The auction's public chat room.
    pub room_id: Option<RoomId>,
    /// The seller-winner room once sold.
    pub deal_room_id: Option<RoomId>,
    pub created_at: Millis,
    /// Bumped by every stored state: a batch writes its state only over the
    /// version it read (the optimistic lock of the system this replaces).
    pub version: i64,
    /// The partition count of `auction-bid` its commands are mapped over, fixed
    /// when it was created, so growing the topic never moves it (see
    /// `Bus::publish_pinned`). None for an auction from before pinning until
    /// the auction role pins it at start.
    pub bid_partitions: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct NewAuction {
    pub title: String,
    pub description: String,
    pub terms: AuctionTerms,
    /// Operator-provided identity (e.g. a Kubernetes uid) that makes creation idempotent.
    pub external_id: Option<String>,
    /// `auction-bid`'s partition count now, which the auction keeps for life.
    pub bid_partitions: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct AuctionFilter {
    pub phase: Option<Phase>,
    pub seller: Option<UserId>,
    pub limit: u32,
    /// Exclusive upper bound on id, for paging newest first.
    pub before_id: Option<AuctionId>,
    /// Text the title or the description contains, ignoring case (SQLite
    /// folds ASCII letters only; PostgreSQL folds all).
    pub text: Option<String>,
    /// Inclusive bounds on the current price (the starting price before the
    /// first bid), in minor units.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Only the auctions on this user's watchlist.
    pub watched_by: Option<UserId>,
}

/// The stored answer to a request, for idempotent retries.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    pub auction_id: AuctionId,
    pub user_id: UserId,
    pub request_id: String,
    pub result: CommandResult,
}

/// A consumer position committed together with the batch it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusOffset {
    pub topic: String,
    pub partition: u32,
    pub next_offset: u64,
}

/// One auction's state after a batch, stored only over the version the batch
/// computed it from.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub auction_id: AuctionId,
    /// The version of the record the batch read; storing bumps it by one.
    pub read_version: i64,
    pub state: AuctionState,
}

/// Everything one processed batch changed; stored atomically, or not at all
/// when any of its states was written by someone else since it was read
/// ([`RepoError::VersionConflict`]).
#[derive(Debug, Clone, Default)]
pub struct AuctionBatch {
    pub states: Vec<StateWrite>,
    pub steps: Vec<(AuctionId, PriceStep)>,
    pub results: Vec<StoredResult>,
    pub deal_rooms: Vec<(AuctionId, RoomId)>,
    pub offsets: Vec<BusOffset>,
    /// The facts the gateways must see, stored with the batch and removed
    /// once published (`bowchat_bus::outbox`).
    pub outbox: Option<OutboxEntry>,
}

impl AuctionBatch {
    pub fn is_empty(&self) -> bool {
        self.states.is_empty() && self.results.is_empty() && self.offsets.is_empty()
    }
}

/// Identifies one command's answer: (auction, user, request id).
pub type ResultKey = (AuctionId, UserId, String);

/// What adding an auction to a watchlist did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    Added,
    /// It was on the list already; nothing changed.
    AlreadyWatched,
    /// The list holds its maximum already; nothing changed.
    Full,
}

#[async_trait]
pub trait AuctionRepository: Send + Sync + 'static {
    /// Creates the auction and its public room. With an `external_id` the same
    /// seller already used, returns that auction instead; the key belongs to
    /// its seller, so another seller's equal key creates a new auction.
    async fn create(&self, new: NewAuction, now: Millis) -> Result<AuctionRecord, RepoError>;
    async fn get(&self, id: AuctionId) -> Result<Option<AuctionRecord>, RepoError>;
    async fn list(&self, filter: &AuctionFilter) -> Result<Vec<AuctionRecord>, RepoError>;
    /// Price steps, ascending by seq.
    async fn steps(
        &self,
        id: AuctionId,
        page: PageQuery,
        max: u32,
    ) -> Result<Vec<PriceStep>, RepoError>;
    /// Stored results among `keys`, of any auctions, in one look-up: a batch
    /// spread over many auctions must not cost a round trip per auction.
    async fn find_results(&self, keys: &[ResultKey]) -> Result<Vec<StoredResult>, RepoError>;
    async fn commit(&self, batch: &AuctionBatch) -> Result<(), RepoError>;
    /// Forgets at most `max_rows` stored answers that refused their command
    /// and were stored before `refused_before`; returns how many went. An
    /// accepted answer is kept as long as its auction (it is one per price
    /// step), so retrying an accepted bid never places it twice.
    async fn expire_results(&self, refused_before: Millis, max_rows: u32)
        -> Result<u64, RepoError>;
    /// Pins every unfinished auction that has no partition count yet to
    /// `partitions` (the count its commands were mapped over so far); returns
    /// how many were pinned.
    async fn pin_bid_partitions(&self, partitions: u32) -> Result<u64, RepoError>;
    /// Auctions not yet closed or cancelled, for the role's timers.
    async fn unfinished(&self) -> Result<Vec<AuctionRecord>, RepoError>;
    /// Puts `auction` on `user`'s watchlist unless it holds `max` auctions
    /// already (checked in the same statement, so two tabs cannot pass it).
    async fn watch(
        &self,
        user: UserId,
        auction: AuctionId,
        max: u32,
        now: Millis,
    ) -> Result<Watch, RepoError>;
    /// Takes `auction` off `user`'s watchlist; false if it was not on it.
    async fn unwatch(&self, user: UserId, auction: AuctionId) -> Result<bool, RepoError>;
    /// `user`'s watched auctions, the most recently watched first.
    async fn watchlist(&self, user: UserId) -> Result<Vec<AuctionRecord>, RepoError>;
    /// Opens (idempotently) the seller-winner room of a sold auction.
    async fn open_deal_room(
        &self,
        auction: &AuctionRecord,
        winner: UserId,
        now: Millis,
    ) -> Result<RoomId, RepoError>;
}
