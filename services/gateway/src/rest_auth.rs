//! `/api/auth/*` and `/api/me`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bowchat_auth::AuthError;
use serde::Deserialize;

use crate::metrics::metrics;
use crate::{ApiError, AppState, Body, Caller, Id};

/// The client's address as the TCP connection shows it (what login and
/// registration throttling count per IP). `X-Forwarded-For` is not read: a
/// client could name any address in it. `None` where the server runs without
/// connection info (in-process tests).
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// Counts a throttle refusal in `/metrics` on its way to the client.
fn counted(error: AuthError) -> ApiError {
    if let AuthError::Throttled { scope, .. } = &error {
        metrics()
            .auth_throttled
            .with_label_values(&[scope.label()])
            .inc();
    }
    ApiError::from(error)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/users/{id}", get(user))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/auth/demo", get(demo_accounts))
}

/// The seeded accounts of a `--demo` server; none on every other server
/// (an empty list, not a 404, so the login page asks without a console error).
async fn demo_accounts(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "accounts": state.demo_accounts }))
}

/// How long clients may cache the JWKS. A new signing key is published
/// `auth.signing_key_activation_ms` before it signs (default 2 min), longer
/// than this, so a cached set always holds the key of a fresh token.
const JWKS_MAX_AGE_SECS: u64 = 60;

/// The public keys that verify access tokens (RFC 7517 JWK Set): each with
/// `kid`, `alg: EdDSA`, `use: sig`; never a private part. No authentication:
/// public keys are public.
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        )],
        Json(state.auth.jwks()),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registration {
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(body): Body<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    let session = state
        .auth
        .register_from(
            &body.email,
            &body.password,
            body.display_name.as_deref(),
            ip,
        )
        .await
        .map_err(counted)?;
    Ok((StatusCode::CREATED, Json(session)))
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(body): Body<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let session = state
        .auth
        .login_from(&body.email, &body.password, ip)
        .await
        .map_err(counted)?;
    Ok(Json(session))
}

async fn refresh(
    State(state): State<AppState>,
    Body(body): Body<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.auth.refresh(&body.refresh_token).await?))
}

async fn logout(
    State(state): State<AppState>,
    Body(body): Body<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    state.auth.logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let user = state
        .auth
        .user(caller.id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user))
}

async fn user(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state
        .auth
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut body = serde_json::to_value(&user)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    // Ids are sequential: an address shown to anyone could be collected for
    // every account by counting. Only its owner sees it.
    if caller.id != id {
        if let Some(fields) = body.as_object_mut() {
            fields.remove("email");
        }
    }
    // Whether the user has a WebSocket open on any gateway; left out when
    // the connection registry cannot say.
    match state.presence.is_connected(id).await {
        Ok(online) => body["online"] = online.into(),
        Err(e) => tracing::warn!(error = %e, "connection registry unavailable"),
    }
    Ok(Json(body))
}
