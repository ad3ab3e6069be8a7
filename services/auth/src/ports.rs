//! What the auth service needs from storage: users, the JWT signing keys and
//! refresh-token records. Adapters live in `bowchat-store`; `crate::memory`
//! has an in-memory one for tests.

use async_trait::async_trait;
use bowchat_model::{Millis, UserId};

pub use crate::keys::StoredSigningKey;
use crate::moderation::{AuditEntry, BlockChange, BlockOutcome};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRepoError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A stored account. `email` is already normalised (trimmed, lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    /// PHC string; `None` for accounts that only sign in through a social provider.
    pub password_hash: Option<String>,
    pub created_at: Millis,
    /// Set while an operator has blocked the account (see `crate::moderation`).
    pub blocked_at: Option<Millis>,
}

/// One refresh token, known only by the hex SHA-256 of its value. Every token
/// obtained by rotating another shares its `family` (one per login), so reuse
/// of any member can revoke the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family: String,
    pub user_id: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Set when the token was exchanged for its successor.
    pub rotated_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    /// The successor token, sealed under this token's own value (see
    /// `tokens::seal_successor`): set at rotation, so a concurrent use of
    /// this token within the grace window gets the same successor. Useless
    /// without the token itself, which is never stored.
    pub successor: Option<String>,
}

#[async_trait]
pub trait AuthRepository: Send + Sync + 'static {
    /// Creates an account; `Conflict` when the email is already used.
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        now: Millis,
    ) -> Result<User, AuthRepoError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, AuthRepoError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, AuthRepoError>;
    /// The existing users among `ids` (unknown ids are skipped; order unspecified).
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, AuthRepoError>;

    /// Every stored signing key, oldest first (by `created_at`). Private
    /// keys are sealed (`crate::keys`): storage never sees them in the clear.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, AuthRepoError>;
    /// Stores `key` unless a key created at or after `unless_created_since`
    /// is stored already, atomically across processes; returns whether it
    /// was stored. `Millis::MIN`: only on an empty table (the first key);
    /// `now - rotate_after`: automatic rotation, once for all processes;
    /// `Millis::MAX`: always (a rotation asked for). `Conflict` when the
    /// `kid` exists.
    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        unless_created_since: Millis,
    ) -> Result<bool, AuthRepoError>;
    /// Deletes the named keys (retired ones); unknown names are ignored.
    async fn delete_signing_keys(&self, kids: &[String]) -> Result<(), AuthRepoError>;

    /// Stores `key` only if no signing key is stored yet, atomically, and
    /// returns the newest key: of processes starting together on a fresh
    /// database the first one's key wins and every process uses it.
    async fn first_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<StoredSigningKey, AuthRepoError> {
        self.add_signing_key(key, Millis::MIN).await?;
        self.signing_keys()
            .await?
            .pop()
            .ok_or_else(|| AuthRepoError::Corrupt("signing key vanished".into()))
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), AuthRepoError>;
    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, AuthRepoError>;
    /// Atomically marks `old_hash` rotated at `now` with its sealed
    /// `successor` and inserts `new`, but only when the old token is neither
    /// rotated nor revoked yet. Returns `false` (and inserts nothing)
    /// otherwise, so of two concurrent uses only one wins.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        successor: &str,
        new: &RefreshRecord,
        now: Millis,
    ) -> Result<bool, AuthRepoError>;
    /// Revokes every not yet revoked token of the family.
    async fn revoke_family(&self, family: &str, now: Millis) -> Result<(), AuthRepoError>;
    /// Families revoked at or after `since` with the time of their
    /// revocation (the deny list every gateway polls, so access tokens of a
    /// revoked family stop working everywhere).
    async fn revoked_families(&self, since: Millis)
        -> Result<Vec<(String, Millis)>, AuthRepoError>;
    async fn revoke_token(&self, token_hash: &str, now: Millis) -> Result<(), AuthRepoError>;

    /// Blocks or unblocks `change.user` in one transaction: the block on the
    /// user, on a block the revocation of every refresh token of the user
    /// (so their families reach `revoked_families`), and a
    /// `moderation_audit` row. Nothing is stored when the user is already in
    /// the asked state. Refresh tokens kept outside that transaction (Redis)
    /// are revoked after it, also for a user already blocked (so blocking
    /// again finishes a revocation that failed).
    async fn set_blocked(&self, change: &BlockChange) -> Result<BlockOutcome, AuthRepoError>;
    /// Blocks recorded at or after `since` (user, time of the block), from
    /// the audit trail: a block later lifted is still listed, so the tokens
    /// it ended stay refused everywhere.
    async fn blocks_since(&self, since: Millis) -> Result<Vec<(UserId, Millis)>, AuthRepoError>;
    /// The newest `limit` rows of the moderation audit trail, newest first.
    async fn moderation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthRepoError>;
}
