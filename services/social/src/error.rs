//! Why a social login failed, with a stable code and an HTTP status.

use bowchat_auth::{AuthError, AuthRepoError};

/// The `Display` text is safe for a client; provider details go to the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocialError {
    #[error("invalid social-login configuration: {0}")]
    Config(String),
    #[error("no login provider with this id is configured")]
    UnknownProvider,
    #[error("the login provider cannot be reached or answered unexpectedly; try again later")]
    ProviderUnavailable,
    #[error("this login was not started in this browser (state mismatch)")]
    StateMismatch,
    #[error("this login is unknown, expired or already finished; start again")]
    StateUnknown,
    #[error("the login was cancelled at the provider")]
    Denied,
    #[error("the provider refused the login: {0}")]
    ProviderError(String),
    #[error("the provider did not accept the authorization code (reused or expired); start again")]
    CodeRejected,
    #[error("the provider's identity token is not valid")]
    IdTokenInvalid,
    #[error("the identity token does not belong to this login (nonce mismatch)")]
    NonceMismatch,
    #[error("the provider did not share a verified email address, which an account needs")]
    EmailRequired,
    #[error(
        "an account with this email exists; sign in with it and link this provider from there"
    )]
    EmailInUse,
    #[error("this provider account is already linked to another user")]
    IdentityTaken,
    #[error("the login code is unknown, expired or already used")]
    LoginCodeInvalid,
    #[error("the link request is unknown, expired or already used")]
    LinkTicketInvalid,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl SocialError {
    pub fn code(&self) -> &'static str {
        match self {
            SocialError::Config(_) => "OAUTH_CONFIG",
            SocialError::UnknownProvider => "OAUTH_UNKNOWN_PROVIDER",
            SocialError::ProviderUnavailable => "OAUTH_PROVIDER_UNAVAILABLE",
            SocialError::StateMismatch => "OAUTH_STATE_MISMATCH",
            SocialError::StateUnknown => "OAUTH_STATE_UNKNOWN",
            SocialError::Denied => "OAUTH_DENIED",
            SocialError::ProviderError(_) => "OAUTH_PROVIDER_ERROR",
            SocialError::CodeRejected => "OAUTH_CODE_REJECTED",
            SocialError::IdTokenInvalid => "OAUTH_ID_TOKEN_INVALID",
            SocialError::NonceMismatch => "OAUTH_NONCE_MISMATCH",
            SocialError::EmailRequired => "OAUTH_EMAIL_REQUIRED",
            SocialError::EmailInUse => "OAUTH_EMAIL_IN_USE",
            SocialError::IdentityTaken => "OAUTH_IDENTITY_TAKEN",
            SocialError::LoginCodeInvalid => "OAUTH_LOGIN_CODE_INVALID",
            SocialError::LinkTicketInvalid => "OAUTH_LINK_TICKET_INVALID",
            SocialError::Auth(e) => e.code(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            SocialError::Config(_) => 500,
            SocialError::UnknownProvider => 404,
            SocialError::ProviderUnavailable => 502,
            SocialError::EmailInUse | SocialError::IdentityTaken => 409,
            SocialError::LoginCodeInvalid | SocialError::LinkTicketInvalid => 401,
            SocialError::Auth(e) => e.status(),
            _ => 400,
        }
    }
}

impl From<AuthRepoError> for SocialError {
    fn from(e: AuthRepoError) -> Self {
        SocialError::Auth(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_and_prefixed() {
        let all = [
            SocialError::Config("x".into()),
            SocialError::UnknownProvider,
            SocialError::ProviderUnavailable,
            SocialError::StateMismatch,
            SocialError::StateUnknown,
            SocialError::Denied,
            SocialError::ProviderError("x".into()),
            SocialError::CodeRejected,
            SocialError::IdTokenInvalid,
            SocialError::NonceMismatch,
            SocialError::EmailRequired,
            SocialError::EmailInUse,
            SocialError::IdentityTaken,
            SocialError::LoginCodeInvalid,
            SocialError::LinkTicketInvalid,
        ];
        let mut codes: Vec<_> = all.iter().map(SocialError::code).collect();
        assert!(codes.iter().all(|c| c.starts_with("OAUTH_")));
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(SocialError::ProviderUnavailable.status(), 502);
        assert_eq!(SocialError::EmailInUse.status(), 409);
    }
}
