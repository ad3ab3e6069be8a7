//! What social login needs from storage: started logins, linked identities and
//! one-time tickets. The SQLite adapter is in `bowchat-store`; `crate::memory`
//! has an in-memory one for tests.

use async_trait::async_trait;
use bowchat_auth::{AuthRepoError, User};
use bowchat_model::{Millis, UserId};

/// A login sent to a provider and not back yet. Kept server-side so the PKCE
/// verifier and nonce never travel through the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state: String,
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// Set when a signed-in user links this provider to their account.
    pub link_user: Option<UserId>,
    pub expires_at: Millis,
}

/// What a one-time ticket is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    /// Handed to the browser after a login; exchanged for a session.
    LoginCode,
    /// Lets a signed-in user start a linking login in the browser.
    LinkTicket,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::LoginCode => "login",
            TicketKind::LinkTicket => "link",
        }
    }
}

/// A single-use ticket, stored only as the SHA-256 of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub hash: String,
    pub kind: TicketKind,
    pub user: UserId,
    pub new_account: bool,
    pub expires_at: Millis,
}

/// The outcome of creating an account for a first social login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewAccount {
    Created(User),
    /// A local account has this email; nothing was created.
    EmailTaken,
    /// A concurrent login linked this identity first.
    AlreadyLinked(UserId),
}

#[async_trait]
pub trait SocialRepository: Send + Sync + 'static {
    /// Stores a started login and forgets those expired before `now`.
    async fn insert_pending(&self, login: &PendingLogin, now: Millis) -> Result<(), AuthRepoError>;
    /// Removes and returns the login for `state`: each state is used once.
    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, AuthRepoError>;

    /// The user a provider identity is linked to.
    async fn identity_owner(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<UserId>, AuthRepoError>;
    /// Links an identity to an existing user; `Ok(false)` when it is linked already.
    async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user: UserId,
        now: Millis,
    ) -> Result<bool, AuthRepoError>;
    /// Creates a password-less user and links the identity, in one transaction.
    async fn create_linked_user(
        &self,
        email: &str,
        display_name: &str,
        provider: &str,
        subject: &str,
        now: Millis,
    ) -> Result<NewAccount, AuthRepoError>;

    /// Stores a ticket and forgets those expired before `now`.
    async fn insert_ticket(&self, ticket: &Ticket, now: Millis) -> Result<(), AuthRepoError>;
    /// Removes and returns a ticket of `kind`: each is used once.
    async fn take_ticket(
        &self,
        kind: TicketKind,
        hash: &str,
    ) -> Result<Option<Ticket>, AuthRepoError>;
}
