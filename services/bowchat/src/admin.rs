//! `bowchat admin ...`: one-shot operations on the cluster's Kafka topics,
//! on the access-token signing keys and for moderation (`admin_moderation`), using the same settings as the servers
//! (so the topic prefix, brokers, database and key-encryption key always
//! agree with what `serve` uses).

use bowchat_auction::role::AuctionRoleConfig;
use bowchat_bus::{partition_for, topics};
use bowchat_kafka::{replay_dead_letters, Ensured, KafkaAdmin, KafkaBus};
use bowchat_model::AuctionId;
use clap::Subcommand;

use crate::adapters::Store;
use crate::config::{Config, StoreKind};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Bus topics: create them, or grow their partitions.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Dead-letter topics.
    #[command(subcommand)]
    Dlt(DltCommand),
    /// Access-token signing keys (in the database, sealed with the
    /// key-encryption key).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Users: block or unblock one platform-wide.
    #[command(subcommand)]
    Users(crate::admin_moderation::UsersCommand),
    /// Message reports made by room members.
    #[command(subcommand)]
    Reports(crate::admin_moderation::ListCommand),
    /// The moderation audit trail (blocks, unblocks, reports).
    #[command(subcommand)]
    Audit(crate::admin_moderation::ListCommand),
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key. Every process loads it within
    /// `auth.revocation_poll_ms` and signs with it once it is
    /// `auth.signing_key_activation_ms` old; older keys keep verifying until
    /// their tokens have expired. Refused if the configured key-encryption
    /// key does not open the stored keys.
    Rotate,
    /// List the stored signing keys, oldest first, and whether the
    /// configured key-encryption key opens them.
    List,
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create the four bus topics and their `.DLT` topics where missing.
    Ensure {
        /// Partitions of newly created topics (default `bus.kafka.partitions`).
        #[arg(long)]
        partitions: Option<u32>,
    },
    /// Grow the bus topics and their `.DLT` topics to N partitions (never
    /// shrinks). Live auctions keep their partitions (each is pinned to the
    /// count it was created with); refused while a live auction without a
    /// pinned count would move, unless `--force`.
    Grow {
        #[arg(long)]
        partitions: u32,
        /// Grow even if a live auction without a pinned partition count
        /// would move (two workers could then hold its commands).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum DltCommand {
    /// Put the records of `<topic>.DLT` back on their original topic.
    Replay {
        /// Logical topic, e.g. auction-bid.
        #[arg(long)]
        topic: String,
    },
}

pub async fn run(mut config: Config, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Keys(command) => return keys(&config, command).await,
        AdminCommand::Users(command) => {
            return crate::admin_moderation::users(&config, command).await
        }
        AdminCommand::Reports(command) => {
            return crate::admin_moderation::reports(&config, command).await
        }
        AdminCommand::Audit(command) => {
            return crate::admin_moderation::audit(&config, command).await
        }
        AdminCommand::Topics(TopicsCommand::Ensure { partitions }) => {
            if let Some(p) = partitions {
                config.bus.kafka.partitions = p;
            }
            let admin = KafkaAdmin::new(config.bus.kafka.clone())?;
            for ensured in admin.ensure_bus_topics().await? {
                match ensured {
                    Ensured::Created { topic, partitions } => {
                        println!("created {topic} ({partitions} partitions)")
                    }
                    Ensured::Existed { topic, partitions } => {
                        println!("exists  {topic} ({partitions} partitions)")
                    }
                }
            }
        }
        AdminCommand::Topics(TopicsCommand::Grow { partitions, force }) => {
            let admin = KafkaAdmin::new(config.bus.kafka.clone())?;
            let current = admin.partitions(topics::AUCTION_BID).await?;
            let moves = live_auctions_that_would_move(&config, current, partitions).await?;
            if !moves.is_empty() && !force {
                anyhow::bail!(
                    "{} live auctions have no pinned partition count and would move to another \
                     partition of {}: {:?}; start an auction role first (it pins them), or pass --force",
                    moves.len(),
                    topics::AUCTION_BID,
                    moves
                );
            }
            if !moves.is_empty() {
                println!(
                    "--force: {} unpinned live auctions move: {moves:?}",
                    moves.len()
                );
            }
            // A topic and its dead-letter topic grow together.
            for topic in topics::ALL {
                for name in [topic.to_string(), topics::dead_letter(topic)] {
                    let before = admin.grow_partitions(&name, partitions).await?;
                    println!("{name}: {before} -> {partitions} partitions");
                }
            }
        }
        AdminCommand::Dlt(DltCommand::Replay { topic }) => {
            if !topics::ALL.contains(&topic.as_str()) {
                anyhow::bail!("unknown topic {topic}; one of {:?}", topics::ALL);
            }
            let bus = KafkaBus::new(config.bus.kafka.clone())?;
            let report = replay_dead_letters(&bus, &topic, None).await?;
            for letter in &report.replayed {
                println!(
                    "replayed {}[{}]@{} key={} error={}",
                    letter.original_topic,
                    letter.original_partition,
                    letter.original_offset,
                    letter.key,
                    letter.error
                );
            }
            println!(
                "{} replayed, {} without headers",
                report.replayed.len(),
                report.without_headers
            );
        }
    }
    Ok(())
}

async fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let options = crate::serve::key_options(config)?;
    let store = Store::open(config).await?;
    let repo = store.auth();
    let outcome = match command {
        KeysCommand::Rotate => bowchat_auth::rotate_signing_key(repo.as_ref(), &options.kek)
            .await
            .map(|key| {
                println!(
                    "added signing key {} (alg {}); it signs from {} ms from now",
                    key.kid, key.alg, options.activation_ms
                )
            })
            .map_err(anyhow::Error::from),
        KeysCommand::List => match repo.signing_keys().await {
            Ok(keys) => {
                for key in keys {
                    let opens = match bowchat_auth::SigningKey::open(&key, &options.kek) {
                        Ok(_) => "opens".to_string(),
                        Err(e) => format!("does not open: {e}"),
                    };
                    println!(
                        "{} {} created_at={} {opens}",
                        key.kid, key.alg, key.created_at
                    );
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
    };
    store.close().await;
    outcome
}

/// Live auctions whose commands would go to another partition of
/// `auction-bid` when it grows from `from` to `to` partitions, and prints
/// what stays. Pinned auctions never move: their keys are mapped over the
/// count they were created with. Rooms do move; a room's sequence guard makes
/// a second writer's batch fail, and its senders retry.
async fn live_auctions_that_would_move(
    config: &Config,
    from: u32,
    to: u32,
) -> anyhow::Result<Vec<AuctionId>> {
    if to <= from {
        return Ok(Vec::new());
    }
    if config.store.kind != StoreKind::Postgres {
        // The workers of a Kafka cluster share PostgreSQL; without it there
        // is no shared list of auctions to check (and none is created here).
        println!("store.kind is not postgres: live auctions not checked");
        return Ok(Vec::new());
    }
    let store = Store::open(config).await?;
    let live = store
        .auctions(AuctionRoleConfig::default().group.as_str())
        .unfinished()
        .await?;
    store.close().await;
    let key = |id: AuctionId| id.to_string();
    let (pinned, unpinned): (Vec<_>, Vec<_>) =
        live.iter().partition(|a| a.bid_partitions.is_some());
    let moves: Vec<AuctionId> = unpinned
        .iter()
        .filter(|a| partition_for(&key(a.id), from) != partition_for(&key(a.id), to))
        .map(|a| a.id)
        .collect();
    println!(
        "{}: {} live auctions pinned keep their partitions, {} unpinned stay, {} unpinned would move",
        topics::AUCTION_BID,
        pinned.len(),
        unpinned.len() - moves.len(),
        moves.len()
    );
    println!(
        "{}: rooms map over the new count; a second writer of a room fails on its sequence and its senders retry",
        topics::CHAT_MESSAGE
    );
    Ok(moves)
}
