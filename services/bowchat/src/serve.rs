//! Wiring: storage, bus, roles and the gateway of one process (embedded or
//! one node of a cluster; the adapters are chosen in `adapters`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bowchat_auction::results_expiry::ResultsExpiry;
use bowchat_auction::role::{AuctionRole, AuctionRoleConfig};
use bowchat_auth::{AuthService, KeyOptions, PasswordPolicy, TokenConfig};
use bowchat_bus::outbox::{run_relay, Published};
use bowchat_bus::topics;
use bowchat_chat::{ChatRole, ChatRoleConfig};
use bowchat_gateway::GatewayDeps;
use bowchat_social::SocialLogin;
use tracing::{error, info, warn};

use crate::adapters::{Buses, Database, Store};
use crate::config::{Config, LogConfig, StoreKind};
use crate::supervise::{RoleStopped, Roles, RolesAlive};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Gateway,
    Auction,
    Chat,
}

impl Role {
    pub fn all() -> Vec<Role> {
        vec![Role::Gateway, Role::Auction, Role::Chat]
    }
}

pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log.format == "text" {
        builder.init();
    } else {
        builder.json().with_current_span(false).init();
    }
}

pub async fn serve(config: Config, roles: Vec<Role>, demo: bool) -> anyhow::Result<()> {
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    prometheus::default_registry()
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .ok();

    let store = Store::open(&config).await?;
    let buses = Buses::open(&config)?;
    let bus = buses.bus.clone();
    let shared_store = config.store.kind == StoreKind::Postgres;
    let concurrency = config.bus.kafka.consumer_concurrency;
    // Scrape-time gauges: the database pools on either store, and embedded
    // mode's in-process bus lag and unmerged answers; on Kafka the lag gauge
    // comes from the broker (crate::lag).
    let pool_stats: crate::metrics::PoolStats = match &store.db {
        Database::Sqlite(db) => {
            let db = db.clone();
            Box::new(move || db.pool_stats().to_vec())
        }
        Database::Postgres(pg) => {
            let pool = pg.pool().clone();
            Box::new(move || vec![("postgres", pool.size(), pool.num_idle())])
        }
    };
    prometheus::default_registry()
        .register(Box::new(crate::metrics::ConnectionsCollector::new(
            pool_stats,
        )))
        .ok();
    if let (Some(in_process), Database::Sqlite(db)) = (buses.in_process.clone(), &store.db) {
        prometheus::default_registry()
            .register(Box::new(crate::metrics::EmbeddedCollector::new(
                in_process,
                db.clone(),
            )))
            .ok();
    }

    // Roles join their groups before the gateway accepts traffic, so the
    // in-process bus never drops a command published before a consumer exists.
    let mut lag_groups: Vec<(String, &'static str)> = Vec::new();
    let mut role_tasks = Roles::default();
    if roles.contains(&Role::Auction) {
        let role_config = AuctionRoleConfig {
            max_batch: config.auction.max_batch.max(1),
            commit_retries: config.auction.commit_retries,
            shared_store,
            ..AuctionRoleConfig::default()
        };
        lag_groups.push((role_config.group.clone(), topics::AUCTION_BID));
        let members = buses
            .auction_members(&store, &role_config.group, concurrency)
            .await?;
        let expiry = ResultsExpiry {
            window: Duration::from_secs(config.auction.idempotency_window_secs),
            interval: Duration::from_secs(config.auction.results_sweep_interval_secs),
            ..ResultsExpiry::default()
        };
        let repo = store.auctions(&role_config.group);
        role_tasks.spawn("auction", expiry.run(repo, bowchat_model::now_millis));
        let published = spawn_relay(&mut role_tasks, "auction", &store, &bus, &config.outbox);
        for (consumer, repo) in members {
            let consumer = crate::fault::consumer("auction", consumer);
            let role_bus = crate::fault::role_bus("auction", topics::AUCTION_EVENT, bus.clone());
            let mut role = AuctionRole::new(repo, role_bus, role_config.clone())
                .with_outbox(published.clone());
            role_tasks.spawn("auction", async move { role.run_with(consumer).await });
        }
    }
    if roles.contains(&Role::Chat) {
        let role_config = ChatRoleConfig {
            max_batch: config.chat.max_batch.max(1),
            commit_retries: config.chat.commit_retries,
            max_body_chars: config.gateway.max_message_chars,
            ..ChatRoleConfig::default()
        };
        lag_groups.push((role_config.group.clone(), topics::CHAT_MESSAGE));
        let published = spawn_relay(&mut role_tasks, "chat", &store, &bus, &config.outbox);
        for consumer in buses.chat_members(&role_config.group, concurrency).await? {
            let consumer = crate::fault::consumer("chat", consumer);
            let role_bus = crate::fault::role_bus("chat", topics::CHAT_EVENT, bus.clone());
            let mut role = ChatRole::new(
                store.chat(),
                role_bus,
                role_config.clone(),
                prometheus::default_registry(),
            )
            .with_outbox(published.clone());
            role_tasks.spawn("chat", async move { role.run_with(consumer).await });
        }
    }
    if let (Some(_), true) = (&buses.kafka, config.bus.lag_interval_ms > 0) {
        if roles.contains(&Role::Gateway) {
            let group = format!("gateway-{node_id}");
            for topic in [topics::AUCTION_EVENT, topics::CHAT_EVENT] {
                lag_groups.push((crate::adapters::gateway_group(&group, topic), topic));
            }
        }
        crate::lag::spawn(
            config.bus.kafka.clone(),
            lag_groups,
            std::time::Duration::from_millis(config.bus.lag_interval_ms),
        )?;
    }
    let auctions = store.auctions(AuctionRoleConfig::default().group.as_str());
    let chat = store.chat();
    let auth_repo = store.auth();

    let tokens = TokenConfig {
        issuer: config.auth.issuer.clone(),
        audience: config.auth.audience.clone(),
        access_ttl_secs: config.auth.access_ttl_secs,
        refresh_ttl_secs: config.auth.refresh_ttl_secs,
        leeway_secs: config.auth.leeway_secs,
        refresh_reuse_grace_secs: config.auth.refresh_reuse_grace_secs,
    };
    let policy = PasswordPolicy {
        min_len: config.auth.password_min_len,
        max_len: config.auth.password_max_len,
        memory_kib: config.auth.argon2_memory_kib,
        iterations: config.auth.argon2_iterations,
        parallelism: config.auth.argon2_parallelism,
    };
    // With Redis, every gateway counts login attempts in one place;
    // otherwise each process counts its own (embedded mode: the only one).
    let attempts: Arc<dyn bowchat_auth::AttemptStore> = match &store.redis {
        Some(redis) => Arc::new(bowchat_redis::RedisAttempts::new(
            redis.conn.clone(),
            &redis.config.key_prefix,
        )),
        None => Arc::new(bowchat_auth::LocalAttempts::default()),
    };
    let throttle = bowchat_auth::Throttle::new(config.auth.throttle.clone(), attempts);
    let keys = key_options(&config)?;
    let auth = Arc::new(
        AuthService::start(auth_repo, tokens, policy, keys)
            .await
            .context("starting the auth service")?
            .with_throttle(throttle),
    );
    tokio::spawn(poll_revocations(
        Arc::downgrade(&auth),
        Duration::from_millis(config.auth.revocation_poll_ms),
    ));

    if demo {
        crate::demo::seed(&auth, auctions.as_ref(), chat.as_ref(), bus.as_ref()).await?;
        tokio::spawn(crate::demo::bots(
            auth.clone(),
            auctions.clone(),
            bus.clone(),
        ));
    }

    // Bound first: social-login callbacks default to the address we listen on.
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    if !roles.contains(&Role::Gateway) {
        // A worker still answers /metrics (role metrics, consumer lag) and /healthz.
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics_text))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        info!(addr = %addr, node = %node_id, "running without a gateway; serving /metrics");
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
        let outcome = tokio::select! {
            result = std::future::IntoFuture::into_future(server) => result.map_err(anyhow::Error::from),
            stopped = role_tasks.stopped() => Err(role_stopped(stopped, &config).await),
        };
        if let Some(kafka) = &buses.kafka {
            let _ = kafka.flush(std::time::Duration::from_secs(5));
        }
        store.close().await;
        return outcome;
    }
    let social = Arc::new(
        SocialLogin::new(
            config.auth.social.clone(),
            &format!("http://{addr}"),
            store.social(),
            auth.clone(),
        )
        .context("configuring social login")?,
    );
    // With Redis, presence, the rate limit and room signals are shared by
    // every gateway; otherwise the gateway keeps them in this process.
    let redis_gateway = match &store.redis {
        Some(redis) => Some(
            crate::redis_state::RedisGateway::start(
                redis,
                &node_id,
                std::time::Duration::from_millis(config.ephemeral.presence_ttl_ms),
                config.gateway.user_rate_per_sec,
                config.gateway.user_rate_burst,
            )
            .await
            .context("starting presence in Redis")?,
        ),
        None => None,
    };
    let ephemeral = redis_gateway
        .as_ref()
        .map(|r| r.ephemeral.clone())
        .unwrap_or_default();
    let app = bowchat_gateway::start(GatewayDeps {
        config: config.gateway.clone(),
        gateway_id: node_id.clone(),
        auth,
        social,
        auctions,
        chat,
        bus: buses.gateway.clone(),
        readiness: Arc::new(ProcessReadiness {
            store: store.clone(),
            roles: role_tasks.alive(),
        }),
        ephemeral,
        max_report_chars: config.chat.max_report_chars,
        demo_accounts: if demo {
            crate::demo::accounts()
        } else {
            Vec::new()
        },
    })
    .await?;
    info!(addr = %addr, node = %node_id, "listening");
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(true);
    });
    // WebSocket connections do not end by themselves; give them a moment, then go.
    let grace = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    };
    let outcome = tokio::select! {
        result = std::future::IntoFuture::into_future(server) => result.map_err(anyhow::Error::from),
        _ = grace => {
            warn!("connections still open after the grace period; closing them");
            Ok(())
        }
        stopped = role_tasks.stopped() => Err(role_stopped(stopped, &config).await),
    };
    info!("shutting down");
    if let Some(redis_gateway) = &redis_gateway {
        redis_gateway.shutdown().await;
    }
    if let Some(kafka) = &buses.kafka {
        if let Err(e) = kafka.flush(std::time::Duration::from_secs(5)) {
            warn!(error = %e, "unacknowledged records at shutdown");
        }
    }
    store.close().await;
    outcome
}

/// Reads the sessions other processes ended into `auth`'s deny list every
/// `every`, until the service is gone.
/// The signing-key settings of `config`, with the key-encryption key from
/// the configuration or from `data_dir` (see `crate::kek`).
pub fn key_options(config: &Config) -> anyhow::Result<KeyOptions> {
    let (kek, source) = crate::kek::load(config)?;
    match &source {
        crate::kek::KekSource::Config => {
            info!("signing keys sealed with auth.key_encryption_key")
        }
        crate::kek::KekSource::File(path) => {
            info!(path = %path.display(), "signing keys sealed with the key-encryption key file")
        }
        crate::kek::KekSource::Created(path) => info!(
            path = %path.display(),
            "created a key-encryption key file for the signing keys (auth.key_encryption_key is not set)"
        ),
    }
    Ok(KeyOptions {
        kek,
        activation_ms: config.auth.signing_key_activation_ms,
        rotate_after_secs: config.auth.signing_key_rotate_after_secs,
    })
}

/// Reads, every `every`, the sessions other processes ended and the signing
/// keys (a rotation by another process or by `bowchat admin keys rotate`;
/// automatic rotation when due).
async fn poll_revocations(auth: std::sync::Weak<AuthService>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(auth) = auth.upgrade() else { return };
        if let Err(e) = auth.sync_revocations().await {
            warn!(error = %e, "cannot read revoked sessions; retrying");
        }
        if let Err(e) = auth.sync_keys().await {
            warn!(error = %e, "cannot read the signing keys; retrying");
        }
    }
}

/// A role stopped: the process is not ready from now on (see
/// `supervise`); it stays up `role_exit_delay_ms` so a probe sees that,
/// then ends with the role's reason as its error.
/// Starts the outbox relay of `source` (a role of this process) and returns
/// the list through which the role reports what it published.
fn spawn_relay(
    tasks: &mut Roles,
    source: &'static str,
    store: &Store,
    bus: &Arc<dyn bowchat_bus::Bus>,
    config: &crate::config::OutboxConfig,
) -> Published {
    static RELAYED: std::sync::OnceLock<prometheus::IntCounterVec> = std::sync::OnceLock::new();
    let relayed = RELAYED.get_or_init(|| {
        prometheus::register_int_counter_vec!(
            "bowchat_outbox_relayed_total",
            "Outbox entries (a stored batch's facts) published by the relay, not by their role",
            &["source"]
        )
        .expect("metric registers once")
    });
    let counter = relayed.with_label_values(&[source]);
    let published = Published::default();
    let relay = run_relay(
        store.outbox(),
        bus.clone(),
        source,
        published.clone(),
        config.relay(),
        bowchat_model::now_millis,
        move |n| counter.inc_by(n as u64),
    );
    tasks.spawn(source, async move {
        relay.await;
        Ok::<(), std::convert::Infallible>(())
    });
    published
}

async fn role_stopped(stopped: RoleStopped, config: &Config) -> anyhow::Error {
    error!(role = stopped.role, reason = %stopped.reason, "role stopped; the process is not ready and will exit");
    tokio::time::sleep(std::time::Duration::from_millis(config.role_exit_delay_ms)).await;
    anyhow::anyhow!("{stopped}")
}

/// `/readyz`: storage answers and every role of the process runs.
struct ProcessReadiness {
    store: Store,
    roles: RolesAlive,
}

#[async_trait::async_trait]
impl bowchat_gateway::Readiness for ProcessReadiness {
    async fn ready(&self) -> bool {
        self.roles.get() && self.store.ready().await
    }
}

async fn metrics_text() -> String {
    use prometheus::Encoder;
    let mut buffer = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buffer) {
        return format!("# cannot encode metrics: {e}\n");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
