//! The one error type of the auth service, with a stable machine-readable code
//! and an HTTP status, so the gateway maps it without knowing each variant.

use crate::keys::KeyError;
use crate::ports::AuthRepoError;
use crate::throttle::{AttemptStoreError, ThrottleError, ThrottleScope};

/// Why an auth operation failed. The `Display` text is safe to show a client:
/// it never says whether an email exists or which check on a token failed
/// beyond what the code already says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the email address is not valid")]
    InvalidEmail,
    #[error("the password is not acceptable: {0}")]
    WeakPassword(String),
    #[error("the display name must be 1 to 64 printable characters")]
    InvalidDisplayName,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("the access token is not valid")]
    TokenInvalid,
    #[error("the access token has expired")]
    TokenExpired,
    /// The token's session was logged out or its refresh family revoked.
    #[error("the session of this access token has ended; log in again")]
    TokenRevoked,
    /// An operator blocked the account: no login, refresh or request until
    /// it is unblocked.
    #[error("this account is blocked")]
    UserBlocked,
    #[error("the refresh token is not valid")]
    RefreshInvalid,
    #[error("the refresh token has expired")]
    RefreshExpired,
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshReused,
    /// Too many login or registration attempts; retry after the delay.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled {
        scope: ThrottleScope,
        retry_after_secs: u64,
    },
    /// The signing keys cannot be used: most often a key-encryption key
    /// that is not the one they were sealed with. An operator's problem.
    #[error("the access-token signing keys cannot be used: {0}")]
    SigningKeys(KeyError),
    /// Storage or configuration trouble; the detail is for logs, the client
    /// should retry later.
    #[error("the auth service is unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// Stable code for clients (problem+json `code`, WS `ERROR` frame code).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidEmail => "INVALID_EMAIL",
            AuthError::WeakPassword(_) => "WEAK_PASSWORD",
            AuthError::InvalidDisplayName => "INVALID_DISPLAY_NAME",
            AuthError::EmailTaken => "EMAIL_TAKEN",
            AuthError::InvalidCredentials => "INVALID_CREDENTIALS",
            AuthError::TokenInvalid => "TOKEN_INVALID",
            AuthError::TokenExpired => "TOKEN_EXPIRED",
            AuthError::TokenRevoked => "TOKEN_REVOKED",
            AuthError::UserBlocked => "USER_BLOCKED",
            AuthError::RefreshInvalid => "REFRESH_INVALID",
            AuthError::RefreshExpired => "REFRESH_EXPIRED",
            AuthError::RefreshReused => "REFRESH_REUSED",
            AuthError::Throttled { .. } => "TOO_MANY_ATTEMPTS",
            AuthError::SigningKeys(_) => "SIGNING_KEYS_UNUSABLE",
            AuthError::Unavailable(_) => "UNAVAILABLE",
        }
    }

    /// HTTP status: 400 bad input, 409 conflict, 401 credentials/tokens, 403
    /// a blocked account, 429 throttled, 503 unavailable.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::InvalidEmail
            | AuthError::WeakPassword(_)
            | AuthError::InvalidDisplayName => 400,
            AuthError::EmailTaken => 409,
            AuthError::InvalidCredentials
            | AuthError::TokenInvalid
            | AuthError::TokenExpired
            | AuthError::TokenRevoked
            | AuthError::RefreshInvalid
            | AuthError::RefreshExpired
            | AuthError::RefreshReused => 401,
            AuthError::UserBlocked => 403,
            AuthError::Throttled { .. } => 429,
            AuthError::SigningKeys(_) | AuthError::Unavailable(_) => 503,
        }
    }

    /// Seconds the client should wait before retrying (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::Throttled {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl From<KeyError> for AuthError {
    fn from(e: KeyError) -> Self {
        AuthError::SigningKeys(e)
    }
}

impl From<ThrottleError> for AuthError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Refused(r) => AuthError::Throttled {
                scope: r.scope,
                retry_after_secs: r.retry_after_secs,
            },
            ThrottleError::Store(e) => e.into(),
        }
    }
}

impl From<AttemptStoreError> for AuthError {
    /// The counter did not answer: refuse (fail closed), so an outage of the
    /// shared counter never lifts the throttle.
    fn from(e: AttemptStoreError) -> Self {
        tracing::error!(error = %e, "login throttle unavailable");
        AuthError::Unavailable("cannot check the login throttle, retry later".to_string())
    }
}

impl From<AuthRepoError> for AuthError {
    /// Storage failures are never the client's fault. A `Conflict` that reaches
    /// here was not expected by the caller (the one expected conflict, a taken
    /// email, is mapped where it can happen).
    fn from(e: AuthRepoError) -> Self {
        tracing::error!(error = %e, "auth storage error");
        AuthError::Unavailable("storage is unavailable, retry later".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_stable() {
        let all = [
            (AuthError::InvalidEmail, "INVALID_EMAIL", 400),
            (AuthError::WeakPassword("x".into()), "WEAK_PASSWORD", 400),
            (AuthError::InvalidDisplayName, "INVALID_DISPLAY_NAME", 400),
            (AuthError::EmailTaken, "EMAIL_TAKEN", 409),
            (AuthError::InvalidCredentials, "INVALID_CREDENTIALS", 401),
            (AuthError::TokenInvalid, "TOKEN_INVALID", 401),
            (AuthError::TokenExpired, "TOKEN_EXPIRED", 401),
            (AuthError::TokenRevoked, "TOKEN_REVOKED", 401),
            (AuthError::UserBlocked, "USER_BLOCKED", 403),
            (
                AuthError::Throttled {
                    scope: ThrottleScope::Ip,
                    retry_after_secs: 3,
                },
                "TOO_MANY_ATTEMPTS",
                429,
            ),
            (AuthError::RefreshInvalid, "REFRESH_INVALID", 401),
            (AuthError::RefreshExpired, "REFRESH_EXPIRED", 401),
            (AuthError::RefreshReused, "REFRESH_REUSED", 401),
            (AuthError::Unavailable("db".into()), "UNAVAILABLE", 503),
            (
                AuthError::SigningKeys(KeyError::WrongKek { kid: "k".into() }),
                "SIGNING_KEYS_UNUSABLE",
                503,
            ),
        ];
        for (error, code, status) in all {
            assert_eq!(error.code(), code);
            assert_eq!(error.status(), status);
        }
    }
}
