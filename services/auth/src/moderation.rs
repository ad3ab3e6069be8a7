//! Platform-wide blocking of users and the moderation audit trail.
//!
//! A block is stored on the user. Storing it, revoking the user's refresh
//! families and writing the audit row happen in one transaction of the
//! [`AuthRepository`](crate::AuthRepository) (`set_blocked`); a repository
//! keeping refresh tokens elsewhere (Redis) revokes those right after that
//! transaction, in the same call. Access tokens
//! already issued are ended by the deny list (`revocation`): every process
//! reads the blocks recorded in the audit trail with the revocations it polls
//! (`auth.revocation_poll_ms`) and refuses the user's tokens issued up to the
//! block with `USER_BLOCKED`. Login, refresh and social sign-in check the
//! stored block. Unblocking lifts the stored block only: sessions the block
//! ended stay ended.

use std::fmt;
use std::str::FromStr;

use bowchat_model::{Millis, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::ports::{AuthRepoError, AuthRepository, User};

/// The actor of actions taken through `bowchat admin`.
pub const OPERATOR: &str = "operator";

/// What a moderation audit row records. Stored as `block`, `unblock`, `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    Block,
    Unblock,
    Report,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Block => "block",
            AuditAction::Unblock => "unblock",
            AuditAction::Report => "report",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = AuthRepoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(AuditAction::Block),
            "unblock" => Ok(AuditAction::Unblock),
            "report" => Ok(AuditAction::Report),
            other => Err(AuthRepoError::Corrupt(format!(
                "unknown moderation action {other:?}"
            ))),
        }
    }
}

/// One row of `moderation_audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    /// A user id, or [`OPERATOR`].
    pub actor: String,
    pub action: AuditAction,
    /// The user acted on: the blocked user, or the sender of a reported message.
    pub target_user: Option<UserId>,
    pub room_id: Option<RoomId>,
    pub seq: Option<i64>,
    /// The block's or the report's reason (empty when none was given).
    pub detail: String,
}

/// A block or an unblock to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockChange {
    pub user: UserId,
    /// `true`: block; `false`: unblock.
    pub blocked: bool,
    /// Why (blocks only; kept on the user and in the audit row).
    pub reason: Option<String>,
    /// Who asked: [`OPERATOR`] from the CLI.
    pub actor: String,
    pub at: Millis,
}

impl BlockChange {
    /// The audit row recording this change (`id` is the store's to set).
    pub fn audit_entry(&self) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: self.at,
            actor: self.actor.clone(),
            action: if self.blocked {
                AuditAction::Block
            } else {
                AuditAction::Unblock
            },
            target_user: Some(self.user),
            room_id: None,
            seq: None,
            detail: self.reason.clone().unwrap_or_default(),
        }
    }
}

/// What [`AuthRepository::set_blocked`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Stored and audited; the user as stored now.
    Changed(User),
    /// The user was already in that state: nothing stored, nothing audited.
    Unchanged(User),
    UnknownUser,
}

/// Why `bowchat admin users block|unblock` failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("no user {0}")]
    UnknownUser(String),
    #[error(transparent)]
    Storage(#[from] AuthRepoError),
}

/// Finds a user by email (anything with an `@`) or by numeric id.
pub async fn find_user(repo: &dyn AuthRepository, who: &str) -> Result<User, BlockError> {
    let who = who.trim();
    let found = if who.contains('@') {
        repo.user_by_email(&who.to_lowercase()).await?
    } else {
        match who.parse::<UserId>() {
            Ok(id) => repo.user(id).await?,
            Err(_) => None,
        }
    };
    found.ok_or_else(|| BlockError::UnknownUser(who.to_string()))
}

/// Blocks (`reason: Some`/`None`, `blocked: true`) or unblocks `who` as
/// `actor`, at `now`.
pub async fn set_blocked(
    repo: &dyn AuthRepository,
    who: &str,
    blocked: bool,
    reason: Option<String>,
    actor: &str,
    now: Millis,
) -> Result<BlockOutcome, BlockError> {
    let user = find_user(repo, who).await?;
    let change = BlockChange {
        user: user.id,
        blocked,
        reason: if blocked { reason } else { None },
        actor: actor.to_string(),
        at: now,
    };
    let outcome = repo.set_blocked(&change).await?;
    if let BlockOutcome::Changed(user) = &outcome {
        tracing::info!(user = user.id, blocked, actor, "user block changed");
    }
    Ok(outcome)
}

/// Whether an access token issued at `issued_ms` predates a block at
/// `blocked_at`. The same millisecond counts as before: a login racing the
/// block must not survive it.
pub fn issued_before_block(issued_ms: Millis, blocked_at: Millis) -> bool {
    issued_ms <= blocked_at
}
