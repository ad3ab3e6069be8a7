//! Local authentication: argon2id passwords, JWT access tokens, rotating
//! refresh tokens, the deny list of ended sessions and login throttling.
//!
//! [`AuthService`] is the entry point; storage sits behind
//! [`ports::AuthRepository`] (SQLite adapter in `bowchat-store`, in-memory one
//! in [`memory`]). Every failure is an [`AuthError`] with a stable `code()` and
//! an HTTP `status()`.

mod error;
pub mod keys;
pub mod memory;
pub mod moderation;
pub mod password;
pub mod ports;
pub mod revocation;
mod service;
pub mod throttle;
pub mod tokens;

pub use error::AuthError;
pub use keys::{Kek, KeyError, KeyRing, KeyTimes, SigningKey, StoredSigningKey};
pub use moderation::{AuditAction, AuditEntry, BlockChange, BlockOutcome};
pub use password::PasswordPolicy;
pub use ports::{AuthRepoError, AuthRepository, RefreshRecord, User};
pub use service::{
    default_display_name, normalize_display_name, normalize_email, rotate_signing_key, AuthService,
    KeyOptions, PublicUser, Session,
};
pub use throttle::{
    AttemptStore, AttemptStoreError, Hit, LocalAttempts, Throttle, ThrottleConfig, ThrottleRule,
    ThrottleScope,
};
pub use tokens::{AccessClaims, TokenConfig};
