//! `bowchat-operator`: `crd` prints the CRD YAML; `run` runs the operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bowchat_kafka::{KafkaAdmin, KafkaConfig};
use bowchat_operator::crd::crd_yaml;
use bowchat_operator::leader::{campaign, LeaseConfig};
use bowchat_operator::metrics::{serve, Metrics};
use bowchat_operator::platform::{Platform, PlatformConfig};
use bowchat_operator::reconcile::{self, Context, ReconcileConfig};
use bowchat_operator::scaler::{Scaler, ScalerConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bowchat-operator",
    version,
    about = "Kubernetes operator for BowChat auctions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Auction CustomResourceDefinition as YAML.
    Crd,
    /// Run the operator (in a cluster, or with a kubeconfig).
    Run(Box<RunArgs>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The platform's gateway base URL.
    #[arg(long, env = "BOWCHAT_OPERATOR_PLATFORM_URL")]
    platform_url: String,
    /// The operator's service user on the platform (from a Secret).
    #[arg(long, env = "BOWCHAT_OPERATOR_PLATFORM_EMAIL")]
    platform_email: String,
    #[arg(
        long,
        env = "BOWCHAT_OPERATOR_PLATFORM_PASSWORD",
        hide_env_values = true
    )]
    platform_password: String,
    /// Kafka brokers; without them partitions and lag scaling are off.
    #[arg(long, env = "BOWCHAT_OPERATOR_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,
    #[arg(long, env = "BOWCHAT_OPERATOR_KAFKA_TOPIC_PREFIX", default_value = "")]
    kafka_topic_prefix: String,
    /// The auction role's consumer group.
    #[arg(
        long,
        env = "BOWCHAT_OPERATOR_AUCTION_GROUP",
        default_value = "auction-role"
    )]
    auction_group: String,
    /// Watch only this namespace.
    #[arg(long, env = "BOWCHAT_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    #[arg(long, env = "BOWCHAT_OPERATOR_POLL_SECS", default_value_t = 5)]
    poll_secs: u64,
    #[arg(long, env = "BOWCHAT_OPERATOR_SCALE_SECS", default_value_t = 15)]
    scale_secs: u64,
    #[arg(long, env = "BOWCHAT_OPERATOR_METRICS", default_value = "0.0.0.0:9090")]
    metrics: SocketAddr,
    /// Lease for leader election (namespace/name); empty turns election off.
    #[arg(long, env = "BOWCHAT_OPERATOR_LEASE_NAMESPACE", default_value = "")]
    lease_namespace: String,
    #[arg(
        long,
        env = "BOWCHAT_OPERATOR_LEASE_NAME",
        default_value = "bowchat-operator"
    )]
    lease_name: String,
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", crd_yaml());
            Ok(())
        }
        Command::Run(args) => run(*args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let metrics = Arc::new(Metrics::default());
    let bound = serve(metrics.clone(), args.metrics)
        .await
        .context("metrics listener")?;
    tracing::info!(addr = %bound, "metrics listening");
    let client = kube::Client::try_default()
        .await
        .context("kubernetes client")?;
    if !args.lease_namespace.is_empty() {
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(|| format!("bowchat-operator-{}", std::process::id()));
        let mut leading = campaign(
            client.clone(),
            LeaseConfig {
                namespace: args.lease_namespace.clone(),
                name: args.lease_name.clone(),
                identity,
                duration: Duration::from_secs(15),
            },
        );
        while !*leading.borrow() {
            leading.changed().await?;
        }
        metrics.set_leader(true);
        // Losing the Lease ends the process; the Deployment restarts it as a follower.
        tokio::spawn(async move {
            while leading.changed().await.is_ok() {
                if !*leading.borrow() {
                    tracing::error!("lost the lease, exiting");
                    std::process::exit(1);
                }
            }
        });
    }
    let kafka = match &args.kafka_bootstrap {
        Some(bootstrap) => Some(Arc::new(KafkaAdmin::new(KafkaConfig {
            bootstrap: bootstrap.clone(),
            client_id: "bowchat-operator".into(),
            topic_prefix: args.kafka_topic_prefix.clone(),
            ..KafkaConfig::default()
        })?)),
        None => None,
    };
    let platform = Platform::new(PlatformConfig {
        url: args.platform_url,
        email: args.platform_email,
        password: args.platform_password,
    });
    let config = ReconcileConfig {
        poll: Duration::from_secs(args.poll_secs),
        ..ReconcileConfig::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        platform,
        kafka.clone(),
        config,
        metrics.clone(),
    ));
    if let Some(kafka) = kafka {
        let scaler = Scaler::new(
            client,
            kafka,
            ScalerConfig {
                interval: Duration::from_secs(args.scale_secs),
                group: args.auction_group,
                namespace: args.namespace.clone(),
                ..ScalerConfig::default()
            },
            metrics,
        );
        tokio::spawn(scaler.run());
    }
    reconcile::run(ctx, args.namespace).await;
    Ok(())
}
