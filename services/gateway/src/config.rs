//! Gateway settings. Every limit a client can run into is here, with defaults
//! that work without a configuration file.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Largest accepted WebSocket text frame; larger ones get `ERROR FRAME_TOO_LARGE`.
    pub max_frame_bytes: usize,
    /// Hard transport cap: a frame above this closes the connection (protects memory).
    pub max_transport_frame_bytes: usize,
    /// Largest accepted HTTP request body.
    pub max_body_bytes: usize,
    /// Commands (bids, chat sends, reads, typing) per second per user, sustained.
    pub user_rate_per_sec: f64,
    /// Burst allowance above the sustained rate.
    pub user_rate_burst: f64,
    /// Open WebSocket connections per client IP.
    pub max_connections_per_ip: usize,
    /// Open WebSocket connections in total.
    pub max_connections: usize,
    /// Server frames queued per connection before a slow client is disconnected.
    pub outbound_queue: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// How long a REST bid waits for its result.
    pub command_timeout_ms: u64,
    /// Most history rows (messages, bids) returned in one page.
    pub max_page: u32,
    /// Longest auction search text (`GET /api/auctions?q=`), in characters.
    pub max_search_chars: usize,
    /// Most auctions one user's watchlist holds.
    pub max_watchlist: u32,
    /// Most messages replayed on SUBSCRIBE with `since`; more must be paged over REST.
    pub max_replay: u32,
    /// Server heartbeat ping interval.
    pub ping_interval_secs: u64,
    /// Chat message body limit in characters (the chat role enforces the same).
    pub max_message_chars: usize,
    /// Directory of the web UI's static files, if served.
    pub web_root: Option<String>,
    /// Per-connection WebSocket read buffer. tungstenite zero-fills this
    /// buffer before every socket read, so its 128 KiB default cost a quarter
    /// of the server's CPU under load (docs/benchmarks.md) and most of the
    /// memory of an idle connection; frames larger than it still arrive, in
    /// several reads.
    pub ws_read_buffer_bytes: usize,
    /// Per-connection WebSocket write buffer (frames are flushed past it).
    pub ws_write_buffer_bytes: usize,
    /// Most bytes of request headers (names and values); more is a 431.
    pub max_header_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_transport_frame_bytes: 1024 * 1024,
            max_body_bytes: 64 * 1024,
            user_rate_per_sec: 50.0,
            user_rate_burst: 100.0,
            max_connections_per_ip: 256,
            max_connections: 100_000,
            outbound_queue: 1024,
            max_subscriptions: 256,
            command_timeout_ms: 10_000,
            max_page: 200,
            max_search_chars: 100,
            max_watchlist: 200,
            max_replay: 1000,
            ping_interval_secs: 25,
            max_message_chars: 4000,
            web_root: None,
            ws_read_buffer_bytes: 4 * 1024,
            ws_write_buffer_bytes: 16 * 1024,
            max_header_bytes: 32 * 1024,
        }
    }
}
