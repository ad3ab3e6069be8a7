//! The gateway role: REST API, the `/ws` protocol, `/metrics`, `/healthz`, `/readyz`.
//!
//! It never changes auction or chat state itself: writes become commands on the
//! bus, and clients see facts the roles emitted after storing them. Reads
//! (lists, history) go to storage directly.

mod config;
mod ephemeral;
mod frames;
mod hub;
mod limits;
mod metrics;
mod problem;
mod rest_auctions;
mod rest_auth;
mod rest_moderation;
mod rest_rooms;
mod rest_social;
mod rest_watchlist;
mod web;
mod ws;
mod ws_close;
mod ws_session;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bowchat_auction::ports::AuctionRepository;
use bowchat_auth::{AccessClaims, AuthService};
use bowchat_bus::{topics, Bus, BusError};
use bowchat_chat::ports::ChatRepository;
use bowchat_model::{AuctionId, RoomId, UserId};
use bowchat_social::SocialLogin;
use serde_json::json;

pub use config::GatewayConfig;
pub use ephemeral::{
    Ephemeral, EphemeralError, PresenceDirectory, RoomSignal, SignalBus, SignalKind, UserRateLimit,
};
pub use problem::ApiError;

use ephemeral::{LocalPresence, NoSignals};
use frames::ServerFrame;
use hub::Hub;
use limits::{ConnectionLimiter, RateLimiter};

/// Answers `/readyz`: can the process serve traffic right now?
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn ready(&self) -> bool;
}

/// What the gateway is built from.
pub struct GatewayDeps {
    pub config: GatewayConfig,
    pub gateway_id: String,
    pub auth: Arc<AuthService>,
    pub social: Arc<SocialLogin>,
    pub auctions: Arc<dyn AuctionRepository>,
    pub chat: Arc<dyn ChatRepository>,
    pub bus: Arc<dyn Bus>,
    pub readiness: Arc<dyn Readiness>,
    /// Presence, rate limit and room signals shared with other gateways;
    /// the default keeps them in this process.
    pub ephemeral: Ephemeral,
    /// The accounts `--demo` seeded, offered by `GET /api/auth/demo` for a
    /// one-click sign-in; empty otherwise.
    pub demo_accounts: Vec<DemoAccount>,
    /// Longest reason of a message report, in characters (`chat.max_report_chars`).
    pub max_report_chars: usize,
}

/// A seeded account the login page may sign in with (demo mode only: its
/// password is public by design).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoAccount {
    pub email: String,
    pub display_name: String,
    /// `seller` or `bidder`: what the demo has this account do.
    pub role: &'static str,
    pub password: String,
}

pub(crate) struct Shared {
    pub config: GatewayConfig,
    pub demo_accounts: Vec<DemoAccount>,
    pub max_report_chars: usize,
    pub auth: Arc<AuthService>,
    pub social: Arc<SocialLogin>,
    pub auctions: Arc<dyn AuctionRepository>,
    pub chat: Arc<dyn ChatRepository>,
    pub bus: Arc<dyn Bus>,
    pub hub: Arc<Hub>,
    pub rate: Arc<dyn UserRateLimit>,
    pub presence: Arc<dyn PresenceDirectory>,
    pub signals: Arc<dyn SignalBus>,
    pub connections: ConnectionLimiter,
    pub readiness: Arc<dyn Readiness>,
    /// Each auction's pinned `auction-bid` partition count, read once from
    /// storage (an auction keeps it for life).
    pub bid_partitions: parking_lot::RwLock<std::collections::HashMap<AuctionId, u32>>,
}

/// Why a command was refused before it reached the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateRefusal {
    /// The user is over the limit.
    Limited,
    /// The shared limiter did not answer: refused, so an outage of the
    /// limiter never lifts the limit (fail closed).
    Unavailable,
}

impl RateRefusal {
    pub fn code(self) -> &'static str {
        match self {
            RateRefusal::Limited => "RATE_LIMITED",
            RateRefusal::Unavailable => "UNAVAILABLE",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            RateRefusal::Limited => "too many commands, slow down",
            RateRefusal::Unavailable => "cannot check the rate limit right now, retry",
        }
    }
}

impl From<RateRefusal> for ApiError {
    fn from(refusal: RateRefusal) -> ApiError {
        match refusal {
            RateRefusal::Limited => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests, slow down",
            ),
            RateRefusal::Unavailable => ApiError::unavailable(refusal.message()),
        }
    }
}

impl Shared {
    /// Takes one token of `user`'s command rate.
    pub async fn take_rate(&self, user: UserId) -> Result<(), RateRefusal> {
        match self.rate.allow(user).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(RateRefusal::Limited),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; command refused");
                Err(RateRefusal::Unavailable)
            }
        }
    }

    /// Delivers a room signal to this gateway's watchers of the room (except
    /// `except`) and hands it to the other gateways.
    pub async fn signal(&self, room: RoomId, user: UserId, kind: SignalKind, except: Option<u64>) {
        self.hub
            .to_room(room, except, &signal_frame(room, user, kind));
        let signal = RoomSignal {
            gateway: self.hub.gateway_id.clone(),
            room_id: room,
            user_id: user,
            kind,
        };
        let payload = match serde_json::to_vec(&signal) {
            Ok(payload) => payload,
            Err(_) => return,
        };
        if let Err(e) = self.signals.publish(payload).await {
            tracing::warn!(error = %e, room, "room signal not sent to other gateways");
        }
    }

    /// One connection of `user` stopped watching `room` (it had entered the
    /// presence directory): announces the user offline if that was the last.
    pub async fn leave_room(&self, room: RoomId, user: UserId) {
        match self.presence.leave(room, user).await {
            Ok(true) => self.signal(room, user, SignalKind::Offline, None).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, room, user, "presence leave failed"),
        }
    }

    /// Puts a command for the auction role on `auction-bid`, keyed by auction
    /// and mapped over the partition count the auction was pinned to, so every
    /// gateway sends its commands to one partition however the topic grew.
    pub async fn send_auction(
        &self,
        command: &bowchat_auction::messages::AuctionCommand,
    ) -> Result<(), BusError> {
        let payload =
            serde_json::to_vec(command).map_err(|e| BusError::Transport(e.to_string()))?;
        let key = command.auction_id.to_string();
        let payload = bytes::Bytes::from(payload);
        match self.bid_partitions_of(command.auction_id).await {
            Some(partitions) => {
                self.bus
                    .publish_pinned(topics::AUCTION_BID, &key, partitions, payload)
                    .await
            }
            // Unknown auction (the role answers AUCTION_NOT_FOUND), or one not
            // pinned yet (the auction role pins it at its start).
            None => self.bus.publish(topics::AUCTION_BID, &key, payload).await,
        }
    }

    /// The auction's pinned partition count, from the cache or storage.
    async fn bid_partitions_of(&self, auction: AuctionId) -> Option<u32> {
        if let Some(p) = self.bid_partitions.read().get(&auction) {
            return Some(*p);
        }
        let record = match self.auctions.get(auction).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(auction, error = %e, "cannot read the auction's partition count");
                return None;
            }
        };
        let pinned = record.bid_partitions?;
        self.bid_partitions.write().insert(auction, pinned);
        Some(pinned)
    }

    /// Remembers the partition count of an auction this gateway created.
    pub fn remember_bid_partitions(&self, auction: AuctionId, partitions: Option<u32>) {
        if let Some(p) = partitions {
            self.bid_partitions.write().insert(auction, p);
        }
    }

    /// Puts a command for the chat role on `chat-message`, keyed by room.
    pub async fn send_chat(
        &self,
        command: &bowchat_chat::messages::ChatCommand,
    ) -> Result<(), BusError> {
        self.publish_json(topics::CHAT_MESSAGE, command.room_id, command)
            .await
    }

    async fn publish_json<T: serde::Serialize>(
        &self,
        topic: &str,
        key: i64,
        value: &T,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(value).map_err(|e| BusError::Transport(e.to_string()))?;
        self.bus
            .publish(topic, &key.to_string(), bytes::Bytes::from(payload))
            .await
    }
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

fn signal_frame(room_id: RoomId, user_id: UserId, kind: SignalKind) -> ServerFrame {
    match kind {
        SignalKind::Typing => ServerFrame::Typing { room_id, user_id },
        SignalKind::Online | SignalKind::Offline => ServerFrame::Presence {
            room_id,
            user_id,
            online: kind == SignalKind::Online,
        },
    }
}

/// Delivers the room signals of other gateways to this gateway's sockets.
async fn run_signals(hub: Arc<Hub>, mut signals: tokio::sync::mpsc::Receiver<Vec<u8>>) {
    while let Some(payload) = signals.recv().await {
        match serde_json::from_slice::<RoomSignal>(&payload) {
            // Our own signals were delivered locally when they were sent.
            Ok(signal) if signal.gateway == hub.gateway_id => {}
            Ok(signal) => hub.to_room(
                signal.room_id,
                None,
                &signal_frame(signal.room_id, signal.user_id, signal.kind),
            ),
            Err(e) => tracing::warn!(error = %e, "unreadable room signal skipped"),
        }
    }
}

/// Joins the outbound topics (in this gateway's own consumer group, so it sees
/// every fact) and returns the HTTP application.
pub async fn start(deps: GatewayDeps) -> Result<Router, BusError> {
    let hub = Arc::new(Hub::new(deps.gateway_id.clone()));
    let group = format!("gateway-{}", deps.gateway_id);
    let auction_events = deps.bus.subscribe(topics::AUCTION_EVENT, &group).await?;
    let chat_events = deps.bus.subscribe(topics::CHAT_EVENT, &group).await?;
    tokio::spawn(hub::run_delivery(
        hub.clone(),
        auction_events,
        hub::dispatch_auction_record,
    ));
    tokio::spawn(hub::run_delivery(
        hub.clone(),
        chat_events,
        hub::dispatch_chat_record,
    ));
    let config = deps.config;
    let signals = deps
        .ephemeral
        .signals
        .unwrap_or_else(|| Arc::new(NoSignals));
    // Subscribed before the gateway takes traffic, so no signal sent after
    // its first client arrives is missed.
    let incoming = signals
        .subscribe()
        .await
        .map_err(|e| BusError::Transport(e.to_string()))?;
    tokio::spawn(run_signals(hub.clone(), incoming));
    let rate = deps.ephemeral.rate.unwrap_or_else(|| {
        Arc::new(RateLimiter::new(
            config.user_rate_per_sec,
            config.user_rate_burst,
        ))
    });
    let presence = deps
        .ephemeral
        .presence
        .unwrap_or_else(|| Arc::new(LocalPresence::default()));
    let state = AppState(Arc::new(Shared {
        rate,
        presence,
        signals,
        connections: ConnectionLimiter::new(config.max_connections_per_ip, config.max_connections),
        auth: deps.auth,
        social: deps.social,
        auctions: deps.auctions,
        chat: deps.chat,
        bus: deps.bus,
        hub,
        readiness: deps.readiness,
        bid_partitions: Default::default(),
        demo_accounts: deps.demo_accounts,
        max_report_chars: deps.max_report_chars,
        config,
    }));
    Ok(router(state))
}

fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let web_root = state.config.web_root.clone();
    let mut app = Router::new()
        .merge(rest_auth::routes())
        .merge(rest_auctions::routes())
        .merge(rest_rooms::routes())
        .merge(rest_moderation::routes())
        .merge(rest_social::routes())
        .merge(rest_watchlist::routes())
        .route("/ws", get(ws::upgrade))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        // After every route: it applies to the routes registered before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(web::serve)
        .layer(middleware::from_fn_with_state(state.clone(), limit_headers))
        .layer(middleware::from_fn(count_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    if let Some(root) = web_root {
        app = app.fallback_service(tower_http::services::ServeDir::new(root));
    }
    app
}

/// A known path asked with a method it does not take (axum adds `Allow`).
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed here; the Allow header lists what is"),
    )
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ready = tokio::time::timeout(Duration::from_secs(2), state.readiness.ready())
        .await
        .unwrap_or(false);
    if ready {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::unavailable("not ready").into_response()
    }
}

async fn metrics_text() -> Response {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut buffer = Vec::new();
    if let Err(e) = encoder.encode(&prometheus::gather(), &mut buffer) {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        buffer,
    )
        .into_response()
}

/// Refuses requests whose headers exceed `gateway.max_header_bytes` (the
/// HTTP layer itself allows far more), before any handler runs.
async fn limit_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let limit = state.config.max_header_bytes;
    if size > limit {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            format!("request headers are limited to {limit} bytes (got {size})"),
        )
        .into_response();
    }
    next.run(request).await
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    metrics::metrics()
        .http_requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}

/// The authenticated caller of a REST endpoint (`Authorization: Bearer <jwt>`).
pub(crate) struct Caller {
    pub id: UserId,
    #[allow(dead_code)]
    pub claims: AccessClaims,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError::unauthorized("AUTH_REQUIRED", "send Authorization: Bearer <access token>")
            })?;
        let claims = state.auth.verify_access(token.trim())?;
        Ok(Caller {
            id: claims.sub,
            claims,
        })
    }
}

/// A caller where one is optional (a public list with a private filter): no
/// `Authorization` header is `None`, a bad one is still refused.
impl axum::extract::OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }
}

/// JSON body extractor whose failures are problem+json with code INVALID_BODY.
pub(crate) struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(e) => Err(ApiError::new(e.status(), "INVALID_BODY", e.body_text())),
        }
    }
}

/// Query-string extractor whose failures are problem+json with code INVALID_QUERY.
pub(crate) struct Params<T>(pub T);

impl<T> FromRequestParts<AppState> for Params<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(e) => Err(ApiError::bad_request("INVALID_QUERY", e.body_text())),
        }
    }
}

/// Path extractor whose failures are problem+json with code INVALID_PATH.
pub(crate) struct Id<T>(pub T);

impl<T> FromRequestParts<AppState> for Id<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Id(value)),
            Err(e) => Err(ApiError::bad_request("INVALID_PATH", e.body_text())),
        }
    }
}
