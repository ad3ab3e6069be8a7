//! `bowchat-loadtest`: runs one scenario, prints its summary as one JSON line
//! and writes `<out>/<scenario>.json` (with the per-second timeline) and
//! `<out>/<scenario>.svg` (throughput and latency percentiles over time).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bowchat_loadtest::api::Api;
use bowchat_loadtest::bidder::{parse_stages, scale_stages, SEED_STAGES};
use bowchat_loadtest::record::Report;
use bowchat_loadtest::{ceiling, chat, idle, ramp, seed, soak, svg};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "bowchat-loadtest",
    about = "Load scenarios against a BowChat server"
)]
struct Cli {
    /// Base URL of the server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Where the JSON and SVG results go.
    #[arg(long, global = true, default_value = "target/bench")]
    out: PathBuf,
    /// Password of the generated users.
    #[arg(long, global = true, default_value = "load-test-password")]
    password: String,
    /// Seconds to wait for an answer before counting a failure.
    #[arg(long, global = true, default_value_t = 10)]
    timeout_secs: u64,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// The seed's stages of closed-loop bidders on one auction, then a check
    /// that every acknowledged bid is stored.
    Seed {
        /// Stages as secs:users pairs.
        #[arg(long, default_value = SEED_STAGES)]
        stages: String,
        /// Multiply every stage's users by this.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Also run the same stages against the built-in ack server and report the ratio.
        #[arg(long)]
        ceiling: bool,
    },
    /// The seed's stages spread round-robin over many auctions (every
    /// partition of the bid topic busy), with the same verification.
    Spread {
        #[arg(long, default_value = SEED_STAGES)]
        stages: String,
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value_t = 64)]
        auctions: usize,
        /// Also run the same stages against the built-in ack server and report the ratio.
        #[arg(long)]
        ceiling: bool,
    },
    /// The seed's stages against the built-in ack server only.
    Ceiling {
        #[arg(long, default_value = SEED_STAGES)]
        stages: String,
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Open-loop bids at a rate rising linearly to saturation.
    Ramp {
        #[arg(long, default_value_t = 200)]
        connections: usize,
        #[arg(long, default_value_t = 500.0)]
        from_rate: f64,
        #[arg(long, default_value_t = 30000.0)]
        to_rate: f64,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        #[arg(long, default_value_t = 50.0)]
        p99_limit_ms: f64,
        #[arg(long, default_value_t = 0.01)]
        failure_limit: f64,
        /// Also run the same ramp against the built-in ack server and report
        /// the ratio of the offered rates where each breaks.
        #[arg(long)]
        ceiling: bool,
    },
    /// Many rooms of many members; fan-out latency from send to each receiver.
    Chat {
        #[arg(long, default_value_t = 20)]
        rooms: usize,
        #[arg(long, default_value_t = 25)]
        members: usize,
        /// Messages per second per room.
        #[arg(long, default_value_t = 10.0)]
        room_rate: f64,
        #[arg(long, default_value_t = 20)]
        secs: u64,
    },
    /// A long steady mixed load (not for CI): bids at a constant rate, with
    /// connections cycling, short auctions and chat beside them; reports
    /// latency per minute and the slopes of the server's memory and open files.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Bids offered per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        sample_secs: u64,
        /// Samples before this are left out of the slopes.
        #[arg(long, default_value_t = 120)]
        warmup_secs: u64,
        /// The server's pid, to read its memory and open files from /proc (else from /metrics).
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Idle connections: how many are held and the server's memory per connection.
    Idle {
        #[arg(long, default_value_t = 5000)]
        count: usize,
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        /// The server's pid, to read its RSS from /proc (else from /metrics).
        #[arg(long)]
        server_pid: Option<u32>,
    },
}

fn write(out: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join(format!("{}.json", report.scenario));
    std::fs::write(&json_path, serde_json::to_string_pretty(report)?)?;
    std::fs::write(
        out.join(format!("{}.svg", report.scenario)),
        svg::chart(report),
    )?;
    println!("{}", report.summary());
    eprintln!("wrote {} and .svg", json_path.display());
    Ok(())
}

/// Runs `stages` against the ack server, writes that report as `name`, and
/// adds the ceiling's figures and the ratios to `report`.
async fn compare_with_ceiling(
    out: &Path,
    report: &mut Report,
    stages: &bowchat_loadtest::bidder::Stages,
    timeout: Duration,
    name: &str,
) -> anyhow::Result<()> {
    let mut top = ceiling::run(stages, timeout).await?;
    top.scenario = name.to_string();
    write(out, &top)?;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    report.extra.insert(
        "ceiling".into(),
        json!({"answersPerSec": top.answers_per_sec, "latencyMs": top.latency_ms, "failed": top.failed}),
    );
    report.extra.insert(
        "ratioToCeiling".into(),
        json!(round(report.answers_per_sec / top.answers_per_sec.max(1.0))),
    );
    report.extra.insert(
        "p99RatioToCeiling".into(),
        json!(round(report.latency_ms.p99 / top.latency_ms.p99.max(0.001))),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fds = bowchat_loadtest::raise_fd_limit();
    let api = Api::new(&cli.url);
    let timeout = Duration::from_secs(cli.timeout_secs);
    match cli.scenario {
        Scenario::Seed {
            stages,
            scale,
            ceiling: with_ceiling,
        } => {
            let stages = scale_stages(&parse_stages(&stages)?, scale);
            let mut report = seed::run(&api, &stages, &cli.password, timeout, 1).await?;
            if with_ceiling {
                compare_with_ceiling(&cli.out, &mut report, &stages, timeout, "ceiling").await?;
            }
            write(&cli.out, &report)?;
        }
        Scenario::Spread {
            stages,
            scale,
            auctions,
            ceiling: with_ceiling,
        } => {
            let stages = scale_stages(&parse_stages(&stages)?, scale);
            let mut report =
                seed::run(&api, &stages, &cli.password, timeout, auctions.max(2)).await?;
            if with_ceiling {
                compare_with_ceiling(&cli.out, &mut report, &stages, timeout, "spread-ceiling")
                    .await?;
            }
            write(&cli.out, &report)?;
        }
        Scenario::Ceiling { stages, scale } => {
            let stages = scale_stages(&parse_stages(&stages)?, scale);
            write(&cli.out, &ceiling::run(&stages, timeout).await?)?;
        }
        Scenario::Ramp {
            connections,
            from_rate,
            to_rate,
            secs,
            p99_limit_ms,
            failure_limit,
            ceiling: with_ceiling,
        } => {
            let options = ramp::RampOptions {
                connections: connections.max(1),
                from_rate,
                to_rate,
                secs,
                timeout,
                p99_limit_ms,
                failure_limit,
            };
            let mut report = ramp::run(&api, &options, &cli.password).await?;
            if with_ceiling {
                let top = ramp::run_ceiling(&options).await?;
                write(&cli.out, &top)?;
                let offered = |r: &Report| r.extra["breaksAt"]["offeredPerSec"].as_f64();
                // No break means the ramp's top rate was taken: count that.
                let (ours, theirs) = (
                    offered(&report).unwrap_or(options.to_rate),
                    offered(&top).unwrap_or(options.to_rate),
                );
                report.extra.insert(
                    "ceiling".into(),
                    json!({"breaksAt": top.extra["breaksAt"], "maxAnswersPerSecBeforeBreak": top.extra["maxAnswersPerSecBeforeBreak"]}),
                );
                report.extra.insert(
                    "breakRatioToCeiling".into(),
                    json!(((ours / theirs.max(1.0)) * 1000.0).round() / 1000.0),
                );
            }
            write(&cli.out, &report)?;
        }
        Scenario::Chat {
            rooms,
            members,
            room_rate,
            secs,
        } => {
            let options = chat::ChatOptions {
                rooms: rooms.max(1),
                members: members.max(2),
                room_rate,
                secs,
                timeout,
            };
            write(&cli.out, &chat::run(&api, &options, &cli.password).await?)?;
        }
        Scenario::Soak {
            minutes,
            connections,
            rate,
            sample_secs,
            warmup_secs,
            server_pid,
        } => {
            let options = soak::SoakOptions {
                minutes,
                connections: connections.max(1),
                rate,
                sample_secs,
                warmup_secs,
                server_pid,
                timeout,
            };
            write(&cli.out, &soak::run(&api, &options, &cli.password).await?)?;
        }
        Scenario::Idle {
            count,
            hold_secs,
            server_pid,
        } => {
            if (count as u64) * 2 > fds {
                eprintln!("idle: open-file limit {fds} may be too low for {count} connections");
            }
            let options = idle::IdleOptions {
                count,
                hold_secs,
                server_pid,
                timeout,
            };
            write(&cli.out, &idle::run(&api, &options, &cli.password).await?)?;
        }
    }
    Ok(())
}
