//! The auction rules engine: pure functions from (state, command, time) to events.
//!
//! No I/O, no clock, no randomness: the caller passes `now` and persists the
//! resulting state. Everything the platform guarantees about bids (strictly
//! increasing price, increments, reserve, buy-now, soft close, proxy bidding with
//! eBay rules, seller exclusion, cancel-before-first-bid) is decided here and
//! property-tested against the naive reference model in `tests/engine_model.rs`.

mod rules;
mod types;

pub use rules::*;
pub use types::*;
