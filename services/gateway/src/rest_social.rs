//! `/api/auth/providers` and `/api/auth/oauth/*`: social login over HTTP.
//!
//! `start` and `callback` are browser navigations: the state is bound to the
//! browser with an HttpOnly cookie, and results go back to the web UI as
//! `?login_code=`, `?linked=` or `?login_error=CODE`. Clients that do not
//! accept HTML get problem+json errors instead of the error redirect.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bowchat_social::{Callback, Finished, SocialError};
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, AppState, Body, Caller};

const STATE_COOKIE: &str = "bowchat_oauth_state";
const COOKIE_PATH: &str = "/api/auth/oauth";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/providers", get(providers))
        .route("/api/auth/oauth/exchange", post(exchange))
        .route("/api/auth/oauth/{provider}/start", get(start))
        .route("/api/auth/oauth/{provider}/callback", get(callback))
        .route("/api/auth/oauth/{provider}/link", post(link))
}

impl From<SocialError> for ApiError {
    fn from(e: SocialError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.code(), e.to_string())
    }
}

async fn providers(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.social.providers())
}

#[derive(Deserialize)]
struct StartQuery {
    link: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
) -> Response {
    match state.social.begin(&provider, query.link.as_deref()).await {
        Ok(started) => {
            let max_age = state.social.state_ttl().as_secs();
            let cookie = state_cookie(&started.state, max_age, state.social.secure_cookies());
            redirect(&started.authorize_url, Some(cookie))
        }
        Err(e) => failure(&state, &headers, e),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let browser_state = cookie(&headers, STATE_COOKIE);
    let result = state
        .social
        .finish(
            &provider,
            Callback {
                code: query.code,
                state: query.state,
                error: query.error,
            },
            browser_state.as_deref(),
        )
        .await;
    let clear = state_cookie("", 0, state.social.secure_cookies());
    let mut response = match result {
        Ok(Finished::LoggedIn { login_code }) => redirect(
            &ui_location(state.social.ui_url(), "login_code", &login_code),
            None,
        ),
        Ok(Finished::Linked { .. }) => redirect(
            &ui_location(state.social.ui_url(), "linked", &provider),
            None,
        ),
        Err(e) => {
            tracing::info!(provider, code = e.code(), "social login failed");
            failure(&state, &headers, e)
        }
    };
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct ExchangeBody {
    code: String,
}

async fn exchange(
    State(state): State<AppState>,
    Body(body): Body<ExchangeBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.social.exchange(&body.code).await?))
}

async fn link(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.social.providers().iter().any(|p| p.id == provider) {
        return Err(SocialError::UnknownProvider.into());
    }
    let ticket = state.social.link_ticket(caller.id).await?;
    Ok(Json(json!({
        "startUrl": format!("/api/auth/oauth/{provider}/start?link={ticket}")
    })))
}

/// Browsers go back to the UI with the error code; API clients get problem+json.
fn failure(state: &AppState, headers: &HeaderMap, error: SocialError) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        redirect(
            &ui_location(state.social.ui_url(), "login_error", error.code()),
            None,
        )
    } else {
        ApiError::from(error).into_response()
    }
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.append(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `ui_url` with one query parameter added; values here are URL-safe already
/// (base64url codes, provider ids, error codes), but are encoded regardless.
fn ui_location(ui_url: &str, key: &str, value: &str) -> String {
    let separator = if ui_url.contains('?') { '&' } else { '?' };
    let encoded: String = value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("{ui_url}{separator}{key}={encoded}")
}

/// SameSite=Lax: the provider's redirect back is a top-level cross-site GET,
/// which Lax cookies accompany; Strict ones would not.
fn state_cookie(value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{STATE_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}")
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_location_appends_and_encodes() {
        assert_eq!(
            ui_location("/", "login_code", "a-b_c"),
            "/?login_code=a-b_c"
        );
        assert_eq!(
            ui_location("/app?x=1", "linked", "git hub"),
            "/app?x=1&linked=git%20hub"
        );
    }

    #[test]
    fn reads_the_state_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bowchat_oauth_state=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, STATE_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cookie_is_http_only_lax_and_scoped() {
        let c = state_cookie("s", 600, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(c.contains("Path=/api/auth/oauth") && c.contains("Max-Age=600"));
        assert!(!state_cookie("s", 600, false).contains("Secure"));
    }
}
