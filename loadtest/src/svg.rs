//! A small SVG writer for a run's timeline: throughput (answers and failures
//! per second) on top, latency percentiles (p50/p95/p99) below, over time.

use std::fmt::Write;

use crate::record::Report;

const W: f64 = 900.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 60.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<f64>,
}

/// The chart of `report` as an SVG document.
pub fn chart(report: &Report) -> String {
    let tl = &report.timeline;
    let throughput = [
        Series {
            name: "answers/s",
            color: "#1f77b4",
            points: tl.iter().map(|s| s.answers as f64).collect(),
        },
        Series {
            name: "failures/s",
            color: "#d62728",
            points: tl.iter().map(|s| s.failures as f64).collect(),
        },
    ];
    let latency = [
        Series {
            name: "p50 ms",
            color: "#2ca02c",
            points: tl.iter().map(|s| s.latency_ms.p50).collect(),
        },
        Series {
            name: "p95 ms",
            color: "#ff7f0e",
            points: tl.iter().map(|s| s.latency_ms.p95).collect(),
        },
        Series {
            name: "p99 ms",
            color: "#9467bd",
            points: tl.iter().map(|s| s.latency_ms.p99).collect(),
        },
    ];
    let height = TOP + 2.0 * PANEL_H + GAP + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="15">{} — {} answers/s, p99 {} ms, {} failures</text>"#,
        escape(&report.scenario),
        report.answers_per_sec,
        report.latency_ms.p99,
        report.failed
    );
    panel(&mut svg, TOP, &throughput, tl.len());
    panel(&mut svg, TOP + PANEL_H + GAP, &latency, tl.len());
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds</text></svg>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        height - 8.0
    );
    svg
}

fn panel(svg: &mut String, top: f64, series: &[Series], len: usize) {
    let width = W - LEFT - RIGHT;
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .fold(0.0f64, f64::max);
    let max = nice_ceiling(max);
    let x = |i: usize| LEFT + width * i as f64 / (len.max(2) - 1) as f64;
    let y = |v: f64| top + PANEL_H - PANEL_H * (v / max);
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{width}" height="{PANEL_H}" fill="none" stroke="#999"/>"##
    );
    for tick in 0..=4 {
        let v = max * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + width,
            LEFT - 6.0,
            y(v) + 4.0,
            trim(v),
            y = y(v)
        );
    }
    let step = (len / 10).max(1);
    for i in (0..len).step_by(step) {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{i}</text>"#,
            x(i),
            top + PANEL_H + 15.0
        );
    }
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" fill="{}">{}</text>"#,
            s.color,
            points.join(" "),
            LEFT + 10.0 + 110.0 * k as f64,
            top - 6.0,
            s.color,
            escape(s.name)
        );
    }
}

/// 1, 2 or 5 times a power of ten, at least `v` (and at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Tally;
    use std::time::Duration;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.3), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(4999.0), 5000.0);
    }

    #[test]
    fn chart_has_one_line_per_series_and_the_title() {
        let tally = Tally {
            answers: vec![(10, 1000), (1200, 3000), (2500, 2000)],
            ..Tally::default()
        };
        let report = Report::build("seed <x>", tally, Duration::from_secs(3), &[]);
        let svg = chart(&report);
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert!(svg.contains("seed &lt;x&gt;"));
        assert!(svg.contains("p99 ms"));
    }
}
