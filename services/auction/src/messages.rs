//! Commands on `auction-bid` and facts on `auction-event`, as JSON records keyed
//! by auction id.

use bowchat_model::{AuctionId, Millis, Origin, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::engine::{Outcome, Phase, PriceStep};
use crate::AuctionView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    Bid {
        amount: i64,
        currency: Option<String>,
    },
    MaxBid {
        max: i64,
        currency: Option<String>,
    },
    Cancel {
        operator: bool,
    },
    /// A new auction exists: the owning role starts its timers.
    Register,
    /// A timer fired in some process (cluster mode): the member owning the
    /// auction's partition opens or closes it if due, in order with the bids.
    Tick,
}

/// A command for the auction role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuctionCommand {
    pub auction_id: AuctionId,
    pub user_id: UserId,
    /// Where the result goes; `origin.request_id` is the idempotency key per user.
    pub origin: Origin,
    #[serde(flatten)]
    pub action: Action,
}

/// The definite answer to one bid or cancel command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    pub accepted: bool,
    /// Stable error code when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether the bidder leads after an accepted bid.
    pub leading: bool,
    /// Visible price after the command.
    pub price: Option<i64>,
    /// The least acceptable next bid after the command (or the one that was missed).
    pub minimum: Option<i64>,
}

impl CommandResult {
    pub fn rejected(
        code: &str,
        message: impl Into<String>,
        minimum: Option<i64>,
        price: Option<i64>,
    ) -> Self {
        Self {
            accepted: false,
            code: Some(code.to_string()),
            message: Some(message.into()),
            leading: false,
            price,
            minimum,
        }
    }
}

/// Facts, emitted only after they are durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "camelCase")]
pub enum AuctionFact {
    /// Routed to the sender of the command only.
    Result {
        origin: Origin,
        auction_id: AuctionId,
        user_id: UserId,
        result: CommandResult,
        /// True when this answers a retry of an already processed request.
        duplicate: bool,
    },
    /// Broadcast to watchers: the new price steps of one batch and the state after them.
    Updated {
        auction: AuctionView,
        steps: Vec<PriceStep>,
    },
    /// To every socket of `user_id`.
    Outbid {
        auction_id: AuctionId,
        user_id: UserId,
        price: i64,
    },
    Extended {
        auction_id: AuctionId,
        ends_at: Millis,
    },
    Closed {
        auction: AuctionView,
        phase: Phase,
        outcome: Option<Outcome>,
        winner: Option<UserId>,
        price: Option<i64>,
        /// The seller-winner room when sold.
        room_id: Option<RoomId>,
    },
}

impl AuctionFact {
    pub fn auction_id(&self) -> AuctionId {
        match self {
            AuctionFact::Result { auction_id, .. }
            | AuctionFact::Outbid { auction_id, .. }
            | AuctionFact::Extended { auction_id, .. } => *auction_id,
            AuctionFact::Updated { auction, .. } | AuctionFact::Closed { auction, .. } => {
                auction.id
            }
        }
    }
}
