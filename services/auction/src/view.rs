//! The public face of an auction: what clients may see (never the hidden maximum
//! or the reserve amount).

use bowchat_model::{AuctionId, Millis, UserId};
use serde::{Deserialize, Serialize};

use crate::engine::{AuctionState, IncrementRule, Outcome, Phase, SoftClose};
use crate::ports::AuctionRecord;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuctionView {
    pub id: AuctionId,
    pub title: String,
    pub description: String,
    pub seller_id: UserId,
    pub currency: String,
    pub starting_price: i64,
    pub increment: IncrementRule,
    pub phase: Phase,
    pub outcome: Option<Outcome>,
    pub price: Option<i64>,
    pub leader_id: Option<UserId>,
    pub winner_id: Option<UserId>,
    pub minimum_bid: i64,
    pub bid_count: i64,
    /// Sequence of the last price step; resume with `since` from here.
    pub step_count: i64,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub scheduled_end: Millis,
    pub has_reserve: bool,
    pub reserve_met: bool,
    pub buy_now: Option<i64>,
    pub buy_now_available: bool,
    pub soft_close: Option<SoftClose>,
    pub room_id: Option<i64>,
    pub deal_room_id: Option<i64>,
    pub created_at: Millis,
}

impl AuctionView {
    pub fn of(record: &AuctionRecord) -> Self {
        Self::from_parts(record, &record.state)
    }

    /// The view of `record` with a newer `state` (the role keeps state apart).
    pub fn from_parts(record: &AuctionRecord, state: &AuctionState) -> Self {
        let terms = &state.terms;
        Self {
            id: record.id,
            title: record.title.clone(),
            description: record.description.clone(),
            seller_id: terms.seller,
            currency: terms.currency.clone(),
            starting_price: terms.starting_price,
            increment: terms.increment.clone(),
            phase: state.phase,
            outcome: state.outcome,
            price: state.price,
            leader_id: state.leader,
            winner_id: state.winner,
            minimum_bid: state.minimum_bid(),
            bid_count: state.bid_count,
            step_count: state.step_count,
            starts_at: terms.starts_at,
            ends_at: state.ends_at,
            scheduled_end: terms.ends_at,
            has_reserve: terms.reserve.is_some(),
            reserve_met: state.reserve_met(),
            buy_now: terms.buy_now.filter(|_| state.buy_now_available()),
            buy_now_available: state.buy_now_available(),
            soft_close: terms.soft_close,
            room_id: record.room_id,
            deal_room_id: record.deal_room_id,
            created_at: record.created_at,
        }
    }
}
