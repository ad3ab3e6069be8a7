//! Auctions: the pure rules engine (`engine`), the records that travel on the
//! bus (`messages`), the storage port (`ports`) and the bid-processing role.

pub mod engine;
pub mod messages;
pub mod ports;
pub mod role;
mod view;

pub use view::AuctionView;
