//! `bowchat-loadtest`: load scenarios against a BowChat server (and against a
//! trivial built-in WebSocket ack server, the ceiling), with results as JSON
//! and an SVG chart.
//!
//! A success is any definite answer (accepted, or rejected with a reason); a
//! failure is an error, a timeout or a dropped connection.

pub mod api;
pub mod bidder;
pub mod ceiling;
pub mod chat;
pub mod idle;
pub mod ramp;
pub mod record;
pub mod seed;
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
