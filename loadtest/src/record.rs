//! Outcome recording: each virtual user keeps its own [`Tally`] (no shared lock
//! per request) and the tallies are merged at the end into a [`Report`] with a
//! per-second timeline. [`Live`] holds the few atomic counters the progress bar
//! shows while the run goes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

/// Counters shared by all users of a run, for the progress bar only.
#[derive(Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    pub active: AtomicU64,
}

impl Live {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One user's outcomes. Times are milliseconds since the run's start.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    /// (completion time ms, latency µs) of every definite answer.
    pub answers: Vec<(u32, u32)>,
    /// Times of failures (error, timeout, dropped connection).
    pub failures: Vec<u32>,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Rejection and failure reasons with counts.
    pub codes: BTreeMap<String, u64>,
}

impl Tally {
    pub fn answer(&mut self, start: Instant, sent_at: Instant, accepted: bool, code: Option<&str>) {
        let now = Instant::now();
        self.answers.push((
            ms_since(start, now),
            now.duration_since(sent_at)
                .as_micros()
                .min(u32::MAX as u128) as u32,
        ));
        if accepted {
            self.accepted += 1;
        } else {
            self.rejected += 1;
            *self
                .codes
                .entry(code.unwrap_or("REJECTED").to_string())
                .or_default() += 1;
        }
    }

    pub fn fail(&mut self, start: Instant, reason: &str) {
        self.failures.push(ms_since(start, Instant::now()));
        *self.codes.entry(reason.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        self.answers.extend(other.answers);
        self.failures.extend(other.failures);
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        for (code, n) in other.codes {
            *self.codes.entry(code).or_default() += n;
        }
    }
}

pub fn ms_since(start: Instant, now: Instant) -> u32 {
    now.saturating_duration_since(start).as_millis() as u32
}

/// The value at quantile `q` of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    round3(f64::from(sorted_us[i]) / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(sorted_us: &[u32]) -> Self {
        Latency {
            p50: percentile_ms(sorted_us, 0.50),
            p95: percentile_ms(sorted_us, 0.95),
            p99: percentile_ms(sorted_us, 0.99),
            max: percentile_ms(sorted_us, 1.0),
        }
    }
}

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    pub t: u32,
    pub answers: u64,
    pub failures: u64,
    pub latency_ms: Latency,
    /// Scenario-specific load level in this second (users, offered rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: String,
    pub duration_secs: f64,
    pub sent: u64,
    pub answered: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    pub failure_rate: f64,
    pub answers_per_sec: f64,
    pub peak_answers_per_sec: u64,
    pub latency_ms: Latency,
    pub codes: BTreeMap<String, u64>,
    /// Scenario-specific results (verification, ceiling ratio, memory, ...).
    pub extra: serde_json::Map<String, Value>,
    pub timeline: Vec<Second>,
}

impl Report {
    /// Builds the report of `tally` for a run of `elapsed`; `load` gives the
    /// load level per second for the timeline when the scenario has one.
    pub fn build(scenario: &str, tally: Tally, elapsed: Duration, load: &[f64]) -> Report {
        let secs = elapsed.as_secs_f64().max(0.001);
        let buckets = (elapsed.as_millis() as usize).div_ceil(1000).max(1);
        let mut per_second: Vec<Vec<u32>> = vec![Vec::new(); buckets];
        let mut failures = vec![0u64; buckets];
        for (at, latency) in &tally.answers {
            let i = (*at as usize / 1000).min(buckets - 1);
            per_second[i].push(*latency);
        }
        for at in &tally.failures {
            failures[(*at as usize / 1000).min(buckets - 1)] += 1;
        }
        let timeline: Vec<Second> = per_second
            .iter_mut()
            .enumerate()
            .map(|(t, lat)| {
                lat.sort_unstable();
                Second {
                    t: t as u32,
                    answers: lat.len() as u64,
                    failures: failures[t],
                    latency_ms: Latency::of(lat),
                    load: load.get(t).copied(),
                }
            })
            .collect();
        let mut all: Vec<u32> = tally.answers.iter().map(|a| a.1).collect();
        all.sort_unstable();
        let answered = all.len() as u64;
        let failed = tally.failures.len() as u64;
        let attempts = answered + failed;
        Report {
            scenario: scenario.to_string(),
            duration_secs: (secs * 10.0).round() / 10.0,
            sent: tally.sent,
            answered,
            accepted: tally.accepted,
            rejected: tally.rejected,
            failed,
            failure_rate: if attempts == 0 {
                0.0
            } else {
                round3(failed as f64 / attempts as f64)
            },
            answers_per_sec: (answered as f64 / secs).round(),
            peak_answers_per_sec: timeline.iter().map(|s| s.answers).max().unwrap_or(0),
            latency_ms: Latency::of(&all),
            codes: tally.codes,
            extra: serde_json::Map::new(),
            timeline,
        }
    }

    /// The one-line summary printed at the end (the report without its timeline).
    pub fn summary(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("serializable");
        if let Some(map) = v.as_object_mut() {
            map.remove("timeline");
        }
        v
    }
}

/// A progress bar over `secs` seconds whose message shows the live counters;
/// ticks until the returned handle is dropped or finished.
pub fn progress(label: &str, secs: u64, live: std::sync::Arc<Live>) -> ProgressBar {
    let bar = ProgressBar::new(secs.max(1));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}")
            .expect("valid template"),
    );
    bar.set_prefix(label.to_string());
    let ticker = bar.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        while !ticker.is_finished() {
            ticker.set_position(started.elapsed().as_secs().min(secs));
            ticker.set_message(format!(
                "active {} sent {} answered {} failed {}",
                live.active.load(Ordering::Relaxed),
                live.sent.load(Ordering::Relaxed),
                live.answered.load(Ordering::Relaxed),
                live.failed.load(Ordering::Relaxed),
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_latencies() {
        let us: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let l = Latency::of(&us);
        assert_eq!(l.p50, 51.0);
        assert_eq!(l.p99, 99.0);
        assert_eq!(l.max, 100.0);
        assert_eq!(Latency::of(&[]).p99, 0.0);
    }

    #[test]
    fn report_buckets_answers_and_failures_per_second() {
        let mut tally = Tally {
            answers: vec![(100, 2000), (900, 4000), (1500, 8000)],
            failures: vec![1999],
            sent: 4,
            accepted: 2,
            rejected: 1,
            ..Tally::default()
        };
        tally.codes.insert("TIMEOUT".into(), 1);
        let report = Report::build("t", tally, Duration::from_millis(2000), &[10.0]);
        assert_eq!(report.timeline.len(), 2);
        assert_eq!(report.timeline[0].answers, 2);
        assert_eq!(report.timeline[1].answers, 1);
        assert_eq!(report.timeline[1].failures, 1);
        assert_eq!(report.timeline[0].load, Some(10.0));
        assert_eq!(report.timeline[1].load, None);
        assert_eq!(report.failed, 1);
        assert_eq!(report.failure_rate, 0.25);
        assert_eq!(report.peak_answers_per_sec, 2);
        assert!(report.summary().get("timeline").is_none());
    }
}
