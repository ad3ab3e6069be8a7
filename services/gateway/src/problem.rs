//! Errors as `application/problem+json` (RFC 9457) with a stable `code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bowchat_auction::ports::RepoError;
use bowchat_auth::AuthError;
use bowchat_bus::BusError;
use bowchat_chat::ports::ChatRepoError;
use serde_json::json;

/// An error a client sees. `code` is stable; `detail` is for humans.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    /// Seconds until a retry can succeed (`Retry-After`), for 429s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    pub fn forbidden(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    pub fn unauthorized(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("https://bowchat.dev/problems/{}", self.code.to_lowercase().replace('_', "-")),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = Self::new(status, e.code(), e.to_string());
        error.retry_after = e.retry_after_secs();
        error
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        tracing::error!(error = %e, "auction storage error");
        match e {
            RepoError::Conflict(m) => Self::new(StatusCode::CONFLICT, "CONFLICT", m),
            _ => Self::unavailable("storage is unavailable, retry later"),
        }
    }
}

impl From<ChatRepoError> for ApiError {
    fn from(e: ChatRepoError) -> Self {
        match e {
            ChatRepoError::NotFound(_) => Self::not_found("room"),
            ChatRepoError::Conflict(m) => Self::new(StatusCode::CONFLICT, "CONFLICT", m),
            other => {
                tracing::error!(error = %other, "chat storage error");
                Self::unavailable("storage is unavailable, retry later")
            }
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        tracing::error!(error = %e, "bus error");
        Self::unavailable("the platform is busy or shutting down, retry later")
    }
}
