//! `/api/auth/*` and `/api/me`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::{ApiError, AppState, Body, Caller, Id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/users/{id}", get(user))
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
    Body(body): Body<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    let session = state
        .auth
        .register(&body.email, &body.password, body.display_name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

async fn login(
    State(state): State<AppState>,
    Body(body): Body<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.auth.login(&body.email, &body.password).await?))
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
