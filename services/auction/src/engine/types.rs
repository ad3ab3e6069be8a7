//! Data the engine works on. All money is `i64` minor units in the auction's currency.

use serde::{Deserialize, Serialize};

pub type UserId = i64;
pub type AuctionId = i64;
/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Minimum raise over the current price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IncrementRule {
    /// The same increment at every price.
    Fixed { amount: i64 },
    /// `tiers` sorted by `from` ascending, the first starting at 0; the tier whose
    /// `from` is the greatest value `<= price` applies.
    Tiered { tiers: Vec<IncrementTier> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncrementTier {
    pub from: i64,
    pub increment: i64,
}

/// What a bid inside the closing window does to the end time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SoftCloseMode {
    /// `ends_at += extension_ms`.
    Extend,
    /// Whatnot style: `ends_at = bid_time + extension_ms` (the clock resets).
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftClose {
    /// A bid accepted when `ends_at - now <= window_ms` triggers the rule.
    pub window_ms: i64,
    pub extension_ms: i64,
    pub mode: SoftCloseMode,
}

/// The immutable terms of an auction, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuctionTerms {
    pub seller: UserId,
    /// ISO 4217 code, upper case, three letters.
    pub currency: String,
    /// The first bid must be at least this.
    pub starting_price: i64,
    pub increment: IncrementRule,
    pub reserve: Option<i64>,
    pub buy_now: Option<i64>,
    pub starts_at: Millis,
    /// The scheduled end; soft close moves `AuctionState::ends_at`, not this.
    pub ends_at: Millis,
    pub soft_close: Option<SoftClose>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Scheduled,
    Open,
    Closed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Sold,
    Unsold,
}

/// One visible price step. Steps of an auction strictly increase in `amount`;
/// the last step's bidder leads at the current price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceStep {
    /// 1-based, gapless per auction.
    pub seq: i64,
    pub bidder: UserId,
    pub amount: i64,
    /// True when the step was placed automatically by a bidder's hidden maximum.
    pub proxy: bool,
    pub at: Millis,
}

/// The mutable state of one auction. `Clone` is cheap enough to snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuctionState {
    pub terms: AuctionTerms,
    pub phase: Phase,
    pub outcome: Option<Outcome>,
    /// Current end (moves with soft close).
    pub ends_at: Millis,
    /// Current visible price; `None` before the first accepted bid.
    pub price: Option<i64>,
    pub leader: Option<UserId>,
    /// The leader's hidden maximum (equals `price` for a straight bid). Never shown to clients.
    pub leader_max: Option<i64>,
    /// Number of price steps so far (= seq of the last step).
    pub step_count: i64,
    /// Number of accepted bid commands (straight and maximum).
    pub bid_count: i64,
    pub winner: Option<UserId>,
    pub closed_at: Option<Millis>,
}

/// A command for one auction. `now` is passed separately to `apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Command {
    /// A straight bid: if it leads, the price becomes exactly `amount`.
    Bid { bidder: UserId, amount: i64 },
    /// A proxy bid: hidden maximum, the price moves only as far as competition requires.
    MaxBid { bidder: UserId, max: i64 },
    /// Seller (or an operator) cancels; allowed only before the first accepted bid.
    Cancel { by: UserId, operator: bool },
    /// Time passed; closes the auction when `now >= ends_at`, opens it when `now >= starts_at`.
    Tick,
}

/// Why a command changed nothing. Each maps to a stable client-facing code via `code()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Rejection {
    #[error("the auction has not started yet")]
    NotStarted,
    #[error("the auction is closed")]
    Closed,
    #[error("the auction was cancelled")]
    Cancelled,
    #[error("the seller cannot bid on their own auction")]
    SellerCannotBid,
    #[error("the bid is below the minimum of {minimum}")]
    BelowMinimum { minimum: i64 },
    #[error("a new maximum must be above your current maximum of {current_max}")]
    MaxNotRaised { current_max: i64 },
    #[error("amounts must be positive")]
    InvalidAmount,
    #[error("only the seller can cancel this auction")]
    NotSeller,
    #[error("an auction with bids cannot be cancelled")]
    HasBids,
}

impl Rejection {
    /// Stable machine-readable code (SCREAMING_SNAKE_CASE).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotStarted => "AUCTION_NOT_STARTED",
            Rejection::Closed => "AUCTION_CLOSED",
            Rejection::Cancelled => "AUCTION_CANCELLED",
            Rejection::SellerCannotBid => "SELLER_CANNOT_BID",
            Rejection::BelowMinimum { .. } => "BID_TOO_LOW",
            Rejection::MaxNotRaised { .. } => "MAX_NOT_RAISED",
            Rejection::InvalidAmount => "INVALID_AMOUNT",
            Rejection::NotSeller => "NOT_SELLER",
            Rejection::HasBids => "AUCTION_HAS_BIDS",
        }
    }
}

/// What an accepted command did, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    Opened,
    /// A new visible price step (also appended to the history).
    Step(PriceStep),
    /// `user` lost the lead (to send an outbid notice).
    Outbid {
        user: UserId,
        price: i64,
    },
    /// Soft close moved the end.
    Extended {
        ends_at: Millis,
    },
    Closed {
        outcome: Outcome,
        winner: Option<UserId>,
        price: Option<i64>,
    },
    Cancelled,
}

/// The result for the submitter of an accepted bid command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub events: Vec<Event>,
    /// For bid commands: does the submitter lead afterwards?
    pub leading: bool,
}
