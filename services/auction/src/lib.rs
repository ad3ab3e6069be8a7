//! Auctions: the pure rules engine (`engine`), the records that travel on the
//! bus (`messages`), the storage port (`ports`), the bid-processing role and
//! the idempotency window's expiry (`results_expiry`).

pub mod engine;
pub mod messages;
pub mod ports;
pub mod results_expiry;
pub mod role;
mod view;

pub use view::AuctionView;
