//! Wiring: storage, bus, roles and the gateway of one process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use bowchat_auction::role::{AuctionRole, AuctionRoleConfig};
use bowchat_auth::{AuthService, PasswordPolicy, TokenConfig};
use bowchat_bus::{topics, Bus, InProcessBus};
use bowchat_chat::{ChatRole, ChatRoleConfig};
use bowchat_gateway::{GatewayDeps, Readiness};
use bowchat_social::SocialLogin;
use bowchat_store::{
    Db, SqliteAuctionRepository, SqliteAuthRepository, SqliteChatRepository, SqliteOptions,
    SqliteSocialRepository,
};
use tracing::{info, warn};

use crate::config::{Config, LogConfig};

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

struct DbReadiness(Db);

#[async_trait]
impl Readiness for DbReadiness {
    async fn ready(&self) -> bool {
        self.0.ping().await
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

    let path = config.database_path();
    let options = SqliteOptions {
        readers: config.sqlite.readers,
        synchronous_full: config.sqlite.synchronous_full,
        ..SqliteOptions::default()
    };
    let db = Db::open(&path, &options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    info!(path = %path.display(), "database open");

    let mut topic_list: Vec<(String, u32)> = Vec::new();
    for topic in topics::ALL {
        topic_list.push((topic.to_string(), config.bus.partitions.max(1)));
        topic_list.push((topics::dead_letter(topic), 1));
    }
    let topic_refs: Vec<(&str, u32)> = topic_list.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let in_process = Arc::new(InProcessBus::new(
        &topic_refs,
        config.bus.queue_capacity.max(16),
    ));
    prometheus::default_registry()
        .register(Box::new(crate::metrics::RuntimeCollector::new(
            in_process.clone(),
            db.clone(),
        )))
        .ok();
    let bus: Arc<dyn Bus> = in_process;

    let auctions = Arc::new(SqliteAuctionRepository::new(db.clone()));
    let chat = Arc::new(SqliteChatRepository::new(db.clone()));
    let auth_repo = Arc::new(SqliteAuthRepository::new(db.clone()));

    // Roles join their groups before the gateway accepts traffic, so the
    // in-process bus never drops a command published before a consumer exists.
    if roles.contains(&Role::Auction) {
        let role_config = AuctionRoleConfig {
            max_batch: config.auction.max_batch.max(1),
            commit_retries: config.auction.commit_retries,
            ..AuctionRoleConfig::default()
        };
        let consumer = bus
            .subscribe(topics::AUCTION_BID, &role_config.group)
            .await?;
        let mut role = AuctionRole::new(auctions.clone(), bus.clone(), role_config);
        tokio::spawn(async move {
            if let Err(e) = role.run_with(consumer).await {
                warn!(error = %e, "auction role stopped");
            }
        });
    }
    if roles.contains(&Role::Chat) {
        let role_config = ChatRoleConfig {
            max_batch: config.chat.max_batch.max(1),
            commit_retries: config.chat.commit_retries,
            max_body_chars: config.gateway.max_message_chars,
            ..ChatRoleConfig::default()
        };
        let consumer = bus
            .subscribe(topics::CHAT_MESSAGE, &role_config.group)
            .await?;
        let mut role = ChatRole::new(
            chat.clone(),
            bus.clone(),
            role_config,
            prometheus::default_registry(),
        );
        tokio::spawn(async move {
            if let Err(e) = role.run_with(consumer).await {
                warn!(error = %e, "chat role stopped");
            }
        });
    }

    let tokens = TokenConfig {
        issuer: config.auth.issuer.clone(),
        audience: config.auth.audience.clone(),
        access_ttl_secs: config.auth.access_ttl_secs,
        refresh_ttl_secs: config.auth.refresh_ttl_secs,
        leeway_secs: config.auth.leeway_secs,
    };
    let policy = PasswordPolicy {
        min_len: config.auth.password_min_len,
        max_len: config.auth.password_max_len,
        memory_kib: config.auth.argon2_memory_kib,
        iterations: config.auth.argon2_iterations,
        parallelism: config.auth.argon2_parallelism,
    };
    let auth = Arc::new(AuthService::start(auth_repo, tokens, policy).await?);

    if demo {
        crate::demo::seed(&auth, auctions.as_ref(), chat.as_ref(), bus.as_ref()).await?;
        tokio::spawn(crate::demo::bots(
            auth.clone(),
            auctions.clone(),
            bus.clone(),
        ));
    }

    if !roles.contains(&Role::Gateway) {
        info!(node = %node_id, "running without a gateway; stop with Ctrl-C");
        shutdown_signal().await;
        db.close().await;
        return Ok(());
    }
    // Bound first: social-login callbacks default to the address we listen on.
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let social = Arc::new(
        SocialLogin::new(
            config.auth.social.clone(),
            &format!("http://{addr}"),
            Arc::new(SqliteSocialRepository::new(db.clone())),
            auth.clone(),
        )
        .context("configuring social login")?,
    );
    let app = bowchat_gateway::start(GatewayDeps {
        config: config.gateway.clone(),
        gateway_id: node_id.clone(),
        auth,
        social,
        auctions,
        chat,
        bus,
        readiness: Arc::new(DbReadiness(db.clone())),
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
    tokio::select! {
        result = std::future::IntoFuture::into_future(server) => result?,
        _ = grace => warn!("connections still open after the grace period; closing them"),
    }
    info!("shutting down");
    db.close().await;
    Ok(())
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
