//! `bowchat-loadtest`: load scenarios against a BowChat server (and against a
//! trivial built-in WebSocket ack server, the ceiling), with results as JSON
//! and an SVG chart.
//!
//! A success is any definite answer (accepted, or rejected with a reason); a
//! failure is an error, a timeout or a dropped connection.

pub mod api;
pub mod bid_pool;
pub mod bidder;
pub mod ceiling;
pub mod chat;
pub mod idle;
pub mod ramp;
pub mod record;
pub mod seed;
pub mod soak;
pub mod svg;

/// Raises this process's open-file limit to its hard limit: every connection
/// is a file descriptor, and the default soft limit (often 1024) is far below
/// the connection counts of these scenarios.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

/// A client WebSocket of this crate.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Read buffer of every WebSocket here. tungstenite zero-fills its whole read
/// buffer before each socket read (128 KiB by default), which showed up as the
/// top symbol in profiles; protocol frames are far smaller than this.
pub const WS_READ_BUFFER: usize = 8 * 1024;

/// The WebSocket settings of the generator and the ack server.
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
}

/// Opens a client WebSocket to `url` (Nagle off: answers are waited for one by one).
pub async fn ws_connect(url: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
    Ok(ws)
}
