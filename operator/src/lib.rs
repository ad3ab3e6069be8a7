//! BowChat's Kubernetes operator: the `Auction` custom resource, the
//! reconciler that registers auctions with the platform and mirrors their
//! state, the `auction-bid` partition grower, the lag-based scaler of the
//! auction role, leader election and metrics. `main.rs` wires them together.

pub mod conditions;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod platform;
pub mod reconcile;
pub mod scaler;
pub mod scaling;
pub mod targets;
