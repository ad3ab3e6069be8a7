//! Gauges read at scrape time from the process's own parts: the database
//! pools' connections (SQLite or PostgreSQL), and in embedded mode the
//! in-process bus's lag per consumer group and the bid answers not yet merged
//! into the results file. They are computed when Prometheus asks, so nothing
//! has to poll in the background.

use std::sync::Arc;

use bowchat_bus::InProcessBus;
use bowchat_store::Db;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};

/// (pool, open connections, idle connections) of each pool, when asked.
pub type PoolStats = Box<dyn Fn() -> Vec<(&'static str, u32, usize)> + Send + Sync>;

/// `bowchat_db_connections{pool, state}` for whatever database the process uses.
pub struct ConnectionsCollector {
    stats: PoolStats,
    connections: IntGaugeVec,
}

impl ConnectionsCollector {
    pub fn new(stats: PoolStats) -> Self {
        let connections = IntGaugeVec::new(
            Opts::new(
                "bowchat_db_connections",
                "Database connections by pool and state (idle or in_use)",
            ),
            &["pool", "state"],
        )
        .expect("valid metric");
        Self { stats, connections }
    }
}

impl Collector for ConnectionsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.connections.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (pool, open, idle) in (self.stats)() {
            let idle = idle as i64;
            self.connections
                .with_label_values(&[pool, "idle"])
                .set(idle);
            self.connections
                .with_label_values(&[pool, "in_use"])
                .set(i64::from(open) - idle);
        }
        self.connections.collect()
    }
}

/// The embedded mode's own gauges: bus lag and unmerged answers.
pub struct EmbeddedCollector {
    bus: Arc<InProcessBus>,
    db: Db,
    lag: IntGaugeVec,
    unmerged_results: IntGauge,
}

impl EmbeddedCollector {
    pub fn new(bus: Arc<InProcessBus>, db: Db) -> Self {
        let lag = IntGaugeVec::new(
            Opts::new(
                "bowchat_bus_lag_records",
                "Records published to a topic and not yet polled by a consumer group",
            ),
            &["topic", "group"],
        )
        .expect("valid metric");
        let unmerged_results = IntGauge::new(
            "bowchat_results_unmerged",
            "Bid answers stored in the results log and not yet merged into the results file",
        )
        .expect("valid metric");
        Self {
            bus,
            db,
            lag,
            unmerged_results,
        }
    }
}

impl Collector for EmbeddedCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.lag.desc();
        descs.extend(self.unmerged_results.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (topic, group, queued) in self.bus.lag() {
            self.lag
                .with_label_values(&[&topic, &group])
                .set(queued as i64);
        }
        self.unmerged_results.set(self.db.unmerged_results() as i64);
        let mut families = self.lag.collect();
        families.extend(self.unmerged_results.collect());
        families
    }
}
