//! Gauges read at scrape time from the process's own parts: the in-process
//! bus's lag per consumer group, the SQLite pools' connections and the bid
//! answers not yet merged into the results file. They are
//! computed when Prometheus asks, so nothing has to poll in the background.

use std::sync::Arc;

use bowchat_bus::InProcessBus;
use bowchat_store::Db;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};

/// See the module docs.
pub struct RuntimeCollector {
    bus: Arc<InProcessBus>,
    db: Db,
    lag: IntGaugeVec,
    connections: IntGaugeVec,
    unmerged_results: IntGauge,
}

impl RuntimeCollector {
    pub fn new(bus: Arc<InProcessBus>, db: Db) -> Self {
        let lag = IntGaugeVec::new(
            Opts::new(
                "bowchat_bus_lag_records",
                "Records published to a topic and not yet polled by a consumer group",
            ),
            &["topic", "group"],
        )
        .expect("valid metric");
        let connections = IntGaugeVec::new(
            Opts::new(
                "bowchat_db_connections",
                "Database connections by pool and state (idle or in_use)",
            ),
            &["pool", "state"],
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
            connections,
            unmerged_results,
        }
    }
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.lag.desc();
        descs.extend(self.connections.desc());
        descs.extend(self.unmerged_results.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (topic, group, queued) in self.bus.lag() {
            self.lag
                .with_label_values(&[&topic, &group])
                .set(queued as i64);
        }
        for (pool, open, idle) in self.db.pool_stats() {
            let idle = idle as i64;
            self.connections
                .with_label_values(&[pool, "idle"])
                .set(idle);
            self.connections
                .with_label_values(&[pool, "in_use"])
                .set(i64::from(open) - idle);
        }
        self.unmerged_results.set(self.db.unmerged_results() as i64);
        let mut families = self.lag.collect();
        families.extend(self.connections.collect());
        families.extend(self.unmerged_results.collect());
        families
    }
}
