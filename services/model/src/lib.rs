//! Types every BowChat crate shares: identifiers, the routing address of a
//! client request, paging, and the clock. No I/O beyond reading the time.

use serde::{Deserialize, Serialize};

pub type UserId = i64;
pub type AuctionId = i64;
pub type RoomId = i64;
/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Wall-clock time in milliseconds.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the answer to a command must go: the gateway process, the socket on it
/// and the client's own request id. Travels with a command through the bus and
/// comes back on the result so the gateway can route it to the exact sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub gateway: String,
    /// The socket, or the waiting REST call, on that gateway (one counter
    /// numbers both); 0 when nobody waits for the answer (timer ticks).
    pub conn: u64,
    pub request_id: String,
}

/// A page of a sequenced log (bids of an auction, messages of a room).
/// `before`/`after` are exclusive sequence bounds; at most one is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The limit clamped into `1..=max`, `default` when absent.
    pub fn limit_or(&self, default: u32, max: u32) -> u32 {
        self.limit.unwrap_or(default).clamp(1, max.max(1))
    }
}

/// Upper bound for any money amount in minor units (10^15): far from overflow
/// in every sum the engine computes, far above any real price.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;
