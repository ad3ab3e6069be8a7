//! `bowchat-loadtest`: runs one scenario, prints its summary as one JSON line
//! and writes `<out>/<scenario>.json` (with the per-second timeline) and
//! `<out>/<scenario>.svg` (throughput and latency percentiles over time).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bowchat_loadtest::api::Api;
use bowchat_loadtest::bidder::{parse_stages, scale_stages, SEED_STAGES};
use bowchat_loadtest::record::Report;
use bowchat_loadtest::{ceiling, chat, idle, ramp, seed, svg};
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
            let mut report = seed::run(&api, &stages, &cli.password, timeout).await?;
            if with_ceiling {
                let top = ceiling::run(&stages, timeout).await?;
                write(&cli.out, &top)?;
                let ratio = report.answers_per_sec / top.answers_per_sec.max(1.0);
                report.extra.insert(
                    "ceiling".into(),
                    json!({"answersPerSec": top.answers_per_sec, "latencyMs": top.latency_ms, "failed": top.failed}),
                );
                report.extra.insert(
                    "ratioToCeiling".into(),
                    json!((ratio * 1000.0).round() / 1000.0),
                );
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
            write(&cli.out, &ramp::run(&api, &options, &cli.password).await?)?;
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
