//! `bowchat`: the whole platform in one binary. `bowchat serve` (the default)
//! runs every role in one process on the embedded SQLite store.

mod adapters;
mod admin;
mod admin_moderation;
mod config;
mod demo;
mod fault;
mod kek;
mod lag;
mod metrics;
mod redis_state;
mod serve;
mod supervise;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

// Every bid allocates a handful of short-lived buffers on several threads
// (frames, JSON, bus records); glibc's allocator showed up at the top of the
// server's profile, mimalloc's thread-local heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bowchat", version, about = "Real-time chat and live auctions")]
struct Cli {
    /// TOML configuration file (optional; defaults work without one).
    #[arg(long, short, global = true, env = "BOWCHAT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform (the default command).
    Serve(ServeArgs),
    /// Print the effective configuration as TOML-compatible JSON and exit.
    Config,
    /// Administration: Kafka topics, dead letters, signing keys, moderation.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// Listen address, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Directory of the embedded database.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Roles to run, comma separated: gateway, auction, chat.
    #[arg(long, value_delimiter = ',', default_value = "gateway,auction,chat")]
    roles: Vec<serve::Role>,
    /// Seed demo users, auctions and rooms, and keep a few bots bidding.
    #[arg(long)]
    demo: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    match cli.command {
        Some(Command::Config) => {
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            Ok(())
        }
        Some(Command::Admin(command)) => {
            serve::init_logging(&config.log);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(admin::run(config, command))
        }
        command => {
            let args = match command {
                Some(Command::Serve(args)) => args,
                _ => ServeArgs {
                    roles: serve::Role::all(),
                    ..Default::default()
                },
            };
            if let Some(listen) = &args.listen {
                config.listen = listen.clone();
            }
            if let Some(dir) = &args.data_dir {
                config.data_dir = dir.clone();
            }
            serve::init_logging(&config.log);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve::serve(config, args.roles, args.demo))
        }
    }
}
