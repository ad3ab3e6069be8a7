//! The operator's Prometheus metrics and the `/metrics` + `/healthz` server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    reconciles: IntCounter,
    reconcile_errors: IntCounter,
    reconcile_seconds: Histogram,
    registrations: IntCounter,
    partition_grows: IntCounter,
    scale_changes: IntCounter,
    desired_replicas: IntGauge,
    bid_lag: IntGauge,
    bid_partitions: IntGauge,
    leader: IntGauge,
    scaler_errors: IntCounter,
    scaler_last_success: Gauge,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconcile_seconds = Histogram::with_opts(HistogramOpts::new(
            "bowchat_operator_reconcile_duration_seconds",
            "Time one Auction reconcile took",
        ))
        .expect("valid metric");
        registry
            .register(Box::new(reconcile_seconds.clone()))
            .expect("unique metric");
        let scaler_last_success = Gauge::new(
            "bowchat_operator_scaler_last_success_timestamp_seconds",
            "When the scaler last finished a pass that read the lag and applied every decision",
        )
        .expect("valid metric");
        registry
            .register(Box::new(scaler_last_success.clone()))
            .expect("unique metric");
        Self {
            scaler_errors: counter(
                &registry,
                "bowchat_operator_scaler_errors_total",
                "Scaler steps that failed (Kafka look-ups, Kubernetes calls)",
            ),
            scaler_last_success,
            reconciles: counter(
                &registry,
                "bowchat_operator_reconciles_total",
                "Auction reconciles started",
            ),
            reconcile_errors: counter(
                &registry,
                "bowchat_operator_reconcile_errors_total",
                "Auction reconciles that failed",
            ),
            registrations: counter(
                &registry,
                "bowchat_operator_registrations_total",
                "Auctions registered with the platform",
            ),
            partition_grows: counter(
                &registry,
                "bowchat_operator_partition_grows_total",
                "Times auction-bid partitions were grown",
            ),
            scale_changes: counter(
                &registry,
                "bowchat_operator_scale_changes_total",
                "Replica changes of the auction role",
            ),
            desired_replicas: gauge(
                &registry,
                "bowchat_operator_desired_replicas",
                "Replicas the scaler last decided",
            ),
            bid_lag: gauge(
                &registry,
                "bowchat_operator_auction_bid_lag",
                "Auction role lag on auction-bid",
            ),
            bid_partitions: gauge(
                &registry,
                "bowchat_operator_auction_bid_partitions",
                "Partitions of auction-bid",
            ),
            leader: gauge(
                &registry,
                "bowchat_operator_leader",
                "1 while this instance holds the Lease",
            ),
            reconcile_seconds,
            registry,
        }
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the guard drops.
    pub fn reconcile_started(&self) -> prometheus::HistogramTimer {
        self.reconciles.inc();
        self.reconcile_seconds.start_timer()
    }
    pub fn reconcile_failed(&self) {
        self.reconcile_errors.inc();
    }
    pub fn registered(&self) {
        self.registrations.inc();
    }
    pub fn partitions_grown(&self) {
        self.partition_grows.inc();
    }
    pub fn scaled(&self, replicas: u32) {
        self.scale_changes.inc();
        self.desired(replicas);
    }
    pub fn desired(&self, replicas: u32) {
        self.desired_replicas.set(i64::from(replicas));
    }
    pub fn observe_lag(&self, lag: u64, partitions: u32) {
        self.bid_lag.set(lag.min(i64::MAX as u64) as i64);
        self.bid_partitions.set(i64::from(partitions));
    }
    pub fn scaler_error(&self) {
        self.scaler_errors.inc();
    }
    /// A complete pass: every lag read, every decision applied.
    pub fn scaler_succeeded(&self, at: chrono::DateTime<chrono::Utc>) {
        self.scaler_last_success
            .set(at.timestamp_millis() as f64 / 1000.0);
    }
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding does not fail");
        String::from_utf8(out).expect("metrics are UTF-8")
    }
}

/// Serves `/metrics` and `/healthz`; returns the bound address.
pub async fn serve(metrics: Arc<Metrics>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.render() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}
