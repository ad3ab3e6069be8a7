//! The rules. See the module docs of `engine`.

use super::types::*;

impl AuctionState {
    /// A fresh auction in `Scheduled` phase (or `Open`, if `now >= starts_at`).
    pub fn new(terms: AuctionTerms, now: Millis) -> Self {
        todo!()
    }

    /// The increment in force at `price`.
    pub fn increment_at(&self, price: i64) -> i64 {
        todo!()
    }

    /// The least amount a new bid (straight or maximum) from a non-leader must reach.
    pub fn minimum_bid(&self) -> i64 {
        todo!()
    }

    /// Whether buy-now is still offered (set, auction open, price below it).
    pub fn buy_now_available(&self) -> bool {
        todo!()
    }

    pub fn reserve_met(&self) -> bool {
        todo!()
    }

    /// Apply one command at time `now`. On `Err` the state is unchanged.
    pub fn apply(&mut self, cmd: &Command, now: Millis) -> Result<Applied, Rejection> {
        todo!()
    }
}

/// Validation of terms at creation; returns a human-readable reason.
pub fn validate_terms(terms: &AuctionTerms) -> Result<(), String> {
    todo!()
}
