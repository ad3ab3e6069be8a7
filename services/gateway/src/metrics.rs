//! Gateway metrics in the default Prometheus registry.

use std::sync::OnceLock;

use prometheus::{
    register_histogram, register_int_counter_vec, register_int_gauge, Histogram, IntCounterVec,
    IntGauge,
};

pub struct Metrics {
    pub ws_connections: IntGauge,
    pub frames_in: IntCounterVec,
    pub frames_out: IntCounterVec,
    pub bids: IntCounterVec,
    pub bid_latency: Histogram,
    pub chat_delivery_latency: Histogram,
    pub http_requests: IntCounterVec,
    pub slow_disconnects: prometheus::IntCounter,
    /// Commands answered TIMEOUT by the gateway, by `via` (ws, rest).
    pub command_timeouts: IntCounterVec,
    /// Logins and registrations refused by the throttle, by `scope`
    /// (account, ip, register).
    pub auth_throttled: IntCounterVec,
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let latency_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        Metrics {
            ws_connections: register_int_gauge!(
                "bowchat_ws_connections",
                "Open WebSocket connections"
            )
            .unwrap(),
            frames_in: register_int_counter_vec!(
                "bowchat_ws_frames_in_total",
                "Client frames by type",
                &["type"]
            )
            .unwrap(),
            frames_out: register_int_counter_vec!(
                "bowchat_ws_frames_out_total",
                "Server frames by type",
                &["type"]
            )
            .unwrap(),
            bids: register_int_counter_vec!(
                "bowchat_bids_total",
                "Bid results seen by the gateway",
                &["result"]
            )
            .unwrap(),
            bid_latency: register_histogram!(
                "bowchat_bid_latency_seconds",
                "From receiving a bid to sending its result",
                latency_buckets.clone()
            )
            .unwrap(),
            chat_delivery_latency: register_histogram!(
                "bowchat_chat_delivery_latency_seconds",
                "From a message's creation to its delivery by this gateway",
                latency_buckets
            )
            .unwrap(),
            http_requests: register_int_counter_vec!(
                "bowchat_http_requests_total",
                "HTTP requests by route and status",
                &["route", "status"]
            )
            .unwrap(),
            slow_disconnects: prometheus::register_int_counter!(
                "bowchat_ws_slow_disconnects_total",
                "Connections closed because their outbound queue was full"
            )
            .unwrap(),
            command_timeouts: register_int_counter_vec!(
                "bowchat_command_timeouts_total",
                "Commands answered TIMEOUT because no result came within gateway.command_timeout_ms",
                &["via"]
            )
            .unwrap(),
            auth_throttled: register_int_counter_vec!(
                "bowchat_auth_throttled_total",
                "Logins and registrations refused by the throttle (429), by scope",
                &["scope"]
            )
            .unwrap(),
        }
    })
}
