//! `bowchat admin ...`: one-shot operations on the cluster's Kafka topics,
//! using the same `bus.kafka` settings as the servers (so the topic prefix and
//! brokers always agree with what `serve` uses).

use bowchat_bus::topics;
use bowchat_kafka::{replay_dead_letters, Ensured, KafkaAdmin, KafkaBus};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Bus topics: create them, or grow their partitions.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Dead-letter topics.
    #[command(subcommand)]
    Dlt(DltCommand),
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
    /// shrinks; grow while the roles are idle).
    Grow {
        #[arg(long)]
        partitions: u32,
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
        AdminCommand::Topics(TopicsCommand::Grow { partitions }) => {
            let admin = KafkaAdmin::new(config.bus.kafka.clone())?;
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
