//! The login flow: start (state, PKCE, nonce stored server-side), callback
//! (state bound to the browser, single use), account creation or linking, and
//! the one-time code the browser trades for a session.
//!
//! An identity is found by (provider, subject) only. A first login whose email
//! belongs to a local account is refused rather than merged: linking needs the
//! user to prove both, by starting the login while signed in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bowchat_auth::{AuthService, Session};
use bowchat_model::{now_millis, Millis, UserId};
use oauth2::PkceCodeChallenge;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::SocialConfig;
use crate::ports::{NewAccount, PendingLogin, SocialRepository, Ticket, TicketKind};
use crate::provider::Provider;
use crate::SocialError;

/// Longest state, code or ticket we look at; real ones are 43 characters.
const MAX_OPAQUE_LEN: usize = 512;

/// A provider as clients list it (for login buttons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSummary {
    pub id: String,
    pub display_name: String,
    pub start_url: String,
}

/// A started login: send the browser to `authorize_url` and bind `state` to it (cookie).
#[derive(Debug, Clone)]
pub struct Started {
    pub authorize_url: String,
    pub state: String,
}

/// The provider's answer at the callback.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// A finished provider login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Trade this one-time code for a session (`exchange`).
    LoggedIn { login_code: String },
    /// The identity was linked to the signed-in user who started the login.
    Linked { user: UserId },
}

/// A session from a social login; `new_account` when this login created the user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocialSession {
    #[serde(flatten)]
    pub session: Session,
    pub new_account: bool,
}

pub struct SocialLogin {
    providers: BTreeMap<String, Provider>,
    repo: Arc<dyn SocialRepository>,
    auth: Arc<AuthService>,
    config: SocialConfig,
    secure_cookies: bool,
}

impl SocialLogin {
    /// Resolves every configured provider; callbacks default to
    /// `{public_url}/api/auth/oauth/{id}/callback`.
    pub fn new(
        config: SocialConfig,
        public_url: &str,
        repo: Arc<dyn SocialRepository>,
        auth: Arc<AuthService>,
    ) -> Result<Self, SocialError> {
        let base = if config.public_url.is_empty() {
            public_url
        } else {
            config.public_url.as_str()
        }
        .trim_end_matches('/')
        .to_string();
        let timeout = Duration::from_secs(config.http_timeout_secs.max(1));
        let mut providers = BTreeMap::new();
        for (id, provider) in &config.providers {
            let callback = format!("{base}/api/auth/oauth/{id}/callback");
            let settings = provider.resolve(id, &callback)?;
            providers.insert(id.clone(), Provider::new(settings, timeout)?);
        }
        Ok(Self {
            providers,
            repo,
            auth,
            secure_cookies: base.starts_with("https://"),
            config,
        })
    }

    pub fn providers(&self) -> Vec<ProviderSummary> {
        self.providers
            .values()
            .map(|p| ProviderSummary {
                id: p.settings().id.clone(),
                display_name: p.settings().display_name.clone(),
                start_url: format!("/api/auth/oauth/{}/start", p.settings().id),
            })
            .collect()
    }

    pub fn ui_url(&self) -> &str {
        &self.config.ui_url
    }

    /// Whether browsers reach us over HTTPS, so cookies may be marked `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    pub fn state_ttl(&self) -> Duration {
        Duration::from_secs(self.config.state_ttl_secs)
    }

    /// Starts a login; with a `link_ticket` (from [`SocialLogin::link_ticket`])
    /// the identity will be linked to that ticket's user instead.
    pub async fn begin(
        &self,
        provider_id: &str,
        link_ticket: Option<&str>,
    ) -> Result<Started, SocialError> {
        let provider = self.provider(provider_id)?;
        let link_user = match link_ticket {
            Some(ticket) => Some(
                self.take_ticket(TicketKind::LinkTicket, ticket)
                    .await
                    .map_err(|e| match e {
                        SocialError::LoginCodeInvalid => SocialError::LinkTicketInvalid,
                        other => other,
                    })?
                    .user,
            ),
            None => None,
        };
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = random_token();
        let nonce = random_token();
        let authorize_url = provider.authorize_url(&state, challenge, &nonce).await?;
        let now = now_millis();
        self.repo
            .insert_pending(
                &PendingLogin {
                    state: state.clone(),
                    provider: provider_id.to_string(),
                    pkce_verifier: verifier.secret().clone(),
                    nonce,
                    link_user,
                    expires_at: now + ttl_millis(self.config.state_ttl_secs),
                },
                now,
            )
            .await?;
        Ok(Started {
            authorize_url,
            state,
        })
    }

    /// A one-time ticket that lets `user` start a linking login in a browser.
    pub async fn link_ticket(&self, user: UserId) -> Result<String, SocialError> {
        self.issue_ticket(
            TicketKind::LinkTicket,
            user,
            false,
            self.config.state_ttl_secs,
        )
        .await
    }

    /// Handles the provider's redirect. `browser_state` is the state the
    /// browser was bound to when the login started (its cookie).
    pub async fn finish(
        &self,
        provider_id: &str,
        callback: Callback,
        browser_state: Option<&str>,
    ) -> Result<Finished, SocialError> {
        let provider = self.provider(provider_id)?;
        let state = callback
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= MAX_OPAQUE_LEN)
            .ok_or(SocialError::StateUnknown)?;
        if browser_state != Some(state) {
            return Err(SocialError::StateMismatch);
        }
        let pending = self
            .repo
            .take_pending(state)
            .await?
            .filter(|p| p.provider == provider_id && p.expires_at > now_millis())
            .ok_or(SocialError::StateUnknown)?;
        if let Some(error) = callback.error {
            return Err(if error == "access_denied" {
                SocialError::Denied
            } else {
                SocialError::ProviderError(error.chars().take(100).collect())
            });
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| SocialError::ProviderError("no authorization code".into()))?;
        let identity = provider
            .identity(&code, &pending.pkce_verifier, &pending.nonce)
            .await?;
        let now = now_millis();
        let owner = self
            .repo
            .identity_owner(provider_id, &identity.subject)
            .await?;

        if let Some(user) = pending.link_user {
            return match owner {
                Some(other) if other != user => Err(SocialError::IdentityTaken),
                Some(_) => Ok(Finished::Linked { user }),
                None if self
                    .repo
                    .link_identity(provider_id, &identity.subject, user, now)
                    .await? =>
                {
                    tracing::info!(user, provider = provider_id, "provider identity linked");
                    Ok(Finished::Linked { user })
                }
                None => Err(SocialError::IdentityTaken),
            };
        }

        let (user, new_account) = match owner {
            Some(user) => (user, false),
            None => {
                let email = identity
                    .email
                    .as_deref()
                    .ok_or(SocialError::EmailRequired)?;
                let email =
                    bowchat_auth::normalize_email(email).map_err(|_| SocialError::EmailRequired)?;
                let name = identity
                    .name
                    .as_deref()
                    .and_then(|n| bowchat_auth::normalize_display_name(n).ok())
                    .unwrap_or_else(|| bowchat_auth::default_display_name(&email));
                match self
                    .repo
                    .create_linked_user(&email, &name, provider_id, &identity.subject, now)
                    .await?
                {
                    NewAccount::Created(user) => {
                        tracing::info!(
                            user = user.id,
                            provider = provider_id,
                            "account created by social login"
                        );
                        (user.id, true)
                    }
                    NewAccount::AlreadyLinked(user) => (user, false),
                    NewAccount::EmailTaken => return Err(SocialError::EmailInUse),
                }
            }
        };
        // A blocked account gets no login code (the exchange would refuse it too).
        self.auth.ensure_not_blocked(user).await?;
        let login_code = self
            .issue_ticket(
                TicketKind::LoginCode,
                user,
                new_account,
                self.config.login_code_ttl_secs,
            )
            .await?;
        Ok(Finished::LoggedIn { login_code })
    }

    /// Trades a login code for the same tokens a password login gives.
    pub async fn exchange(&self, login_code: &str) -> Result<SocialSession, SocialError> {
        let ticket = self.take_ticket(TicketKind::LoginCode, login_code).await?;
        let session = self.auth.open_session_for(ticket.user).await?;
        Ok(SocialSession {
            session,
            new_account: ticket.new_account,
        })
    }

    fn provider(&self, id: &str) -> Result<&Provider, SocialError> {
        self.providers.get(id).ok_or(SocialError::UnknownProvider)
    }

    async fn issue_ticket(
        &self,
        kind: TicketKind,
        user: UserId,
        new_account: bool,
        ttl_secs: u64,
    ) -> Result<String, SocialError> {
        let value = random_token();
        let now = now_millis();
        self.repo
            .insert_ticket(
                &Ticket {
                    hash: hash_opaque(&value),
                    kind,
                    user,
                    new_account,
                    expires_at: now + ttl_millis(ttl_secs),
                },
                now,
            )
            .await?;
        Ok(value)
    }

    async fn take_ticket(&self, kind: TicketKind, value: &str) -> Result<Ticket, SocialError> {
        if value.is_empty() || value.len() > MAX_OPAQUE_LEN {
            return Err(SocialError::LoginCodeInvalid);
        }
        self.repo
            .take_ticket(kind, &hash_opaque(value))
            .await?
            .filter(|t| t.expires_at > now_millis())
            .ok_or(SocialError::LoginCodeInvalid)
    }
}

fn ttl_millis(secs: u64) -> Millis {
    Millis::try_from(secs.saturating_mul(1000)).unwrap_or(Millis::MAX / 2)
}

/// 256 random bits, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_opaque(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(hash_opaque("x").len(), 64);
    }
}
