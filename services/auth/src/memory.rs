//! An in-memory `AuthRepository` for tests and single-process demos. It keeps
//! the same contract as the SQLite adapter (unique emails, once-only rotation)
//! under one mutex, which is what makes `rotate_refresh` atomic here.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bowchat_model::{Millis, UserId};

use crate::keys::StoredSigningKey;
use crate::moderation::{AuditAction, AuditEntry, BlockChange, BlockOutcome};
use crate::ports::{AuthRepoError, AuthRepository, RefreshRecord, User};

#[derive(Default)]
struct State {
    users: Vec<User>,
    keys: Vec<StoredSigningKey>,
    refresh: HashMap<String, RefreshRecord>,
    audit: Vec<AuditEntry>,
}

#[derive(Default)]
pub struct InMemoryAuthRepository {
    state: Mutex<State>,
}

impl InMemoryAuthRepository {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, AuthRepoError> {
        // A poisoned lock means a panic mid-update; report it rather than
        // continuing on possibly half-written state.
        self.state
            .lock()
            .map_err(|_| AuthRepoError::Unavailable("state lock poisoned".into()))
    }
}

#[async_trait]
impl AuthRepository for InMemoryAuthRepository {
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        now: Millis,
    ) -> Result<User, AuthRepoError> {
        let mut state = self.lock()?;
        if state.users.iter().any(|u| u.email == email) {
            return Err(AuthRepoError::Conflict(format!("email {email} is taken")));
        }
        let user = User {
            id: state.users.len() as UserId + 1,
            email: email.to_string(),
            display_name: display_name.to_string(),
            password_hash: password_hash.map(str::to_string),
            created_at: now,
            blocked_at: None,
        };
        state.users.push(user.clone());
        Ok(user)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, AuthRepoError> {
        Ok(self
            .lock()?
            .users
            .iter()
            .find(|u| u.email == email)
            .cloned())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, AuthRepoError> {
        Ok(self.lock()?.users.iter().find(|u| u.id == id).cloned())
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, AuthRepoError> {
        Ok(self
            .lock()?
            .users
            .iter()
            .filter(|u| ids.contains(&u.id))
            .cloned()
            .collect())
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, AuthRepoError> {
        let mut keys = self.lock()?.keys.clone();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        unless_created_since: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut state = self.lock()?;
        if state.keys.iter().any(|k| k.kid == key.kid) {
            return Err(AuthRepoError::Conflict(format!("kid {} exists", key.kid)));
        }
        if state
            .keys
            .iter()
            .any(|k| k.created_at >= unless_created_since)
        {
            return Ok(false);
        }
        state.keys.push(key.clone());
        Ok(true)
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> Result<(), AuthRepoError> {
        self.lock()?.keys.retain(|k| !kids.contains(&k.kid));
        Ok(())
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), AuthRepoError> {
        let mut state = self.lock()?;
        if state.refresh.contains_key(&record.token_hash) {
            return Err(AuthRepoError::Conflict("refresh token exists".into()));
        }
        state
            .refresh
            .insert(record.token_hash.clone(), record.clone());
        Ok(())
    }

    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, AuthRepoError> {
        Ok(self.lock()?.refresh.get(token_hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        successor: &str,
        new: &RefreshRecord,
        now: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut state = self.lock()?;
        if state.refresh.contains_key(&new.token_hash) {
            return Err(AuthRepoError::Conflict("refresh token exists".into()));
        }
        match state.refresh.get_mut(old_hash) {
            Some(old) if old.rotated_at.is_none() && old.revoked_at.is_none() => {
                old.rotated_at = Some(now);
                old.successor = Some(successor.to_string());
            }
            _ => return Ok(false),
        }
        state.refresh.insert(new.token_hash.clone(), new.clone());
        Ok(true)
    }

    async fn revoke_family(&self, family: &str, now: Millis) -> Result<(), AuthRepoError> {
        let mut state = self.lock()?;
        for record in state.refresh.values_mut() {
            if record.family == family && record.revoked_at.is_none() {
                record.revoked_at = Some(now);
            }
        }
        Ok(())
    }

    async fn revoked_families(
        &self,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>, AuthRepoError> {
        let mut latest: HashMap<String, Millis> = HashMap::new();
        for record in self.lock()?.refresh.values() {
            if let Some(at) = record.revoked_at.filter(|at| *at >= since) {
                let entry = latest.entry(record.family.clone()).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
        Ok(latest.into_iter().collect())
    }

    async fn revoke_token(&self, token_hash: &str, now: Millis) -> Result<(), AuthRepoError> {
        let mut state = self.lock()?;
        if let Some(record) = state.refresh.get_mut(token_hash) {
            record.revoked_at.get_or_insert(now);
        }
        Ok(())
    }

    async fn set_blocked(&self, change: &BlockChange) -> Result<BlockOutcome, AuthRepoError> {
        let mut state = self.lock()?;
        let Some(user) = state.users.iter_mut().find(|u| u.id == change.user) else {
            return Ok(BlockOutcome::UnknownUser);
        };
        if user.blocked_at.is_some() == change.blocked {
            return Ok(BlockOutcome::Unchanged(user.clone()));
        }
        user.blocked_at = change.blocked.then_some(change.at);
        let user = user.clone();
        if change.blocked {
            for record in state.refresh.values_mut() {
                if record.user_id == change.user && record.revoked_at.is_none() {
                    record.revoked_at = Some(change.at);
                }
            }
        }
        let id = state.audit.len() as i64 + 1;
        state.audit.push(AuditEntry {
            id,
            ..change.audit_entry()
        });
        Ok(BlockOutcome::Changed(user))
    }

    async fn blocks_since(&self, since: Millis) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
        Ok(self
            .lock()?
            .audit
            .iter()
            .filter(|e| e.action == AuditAction::Block && e.at >= since)
            .filter_map(|e| Some((e.target_user?, e.at)))
            .collect())
    }

    async fn moderation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthRepoError> {
        let state = self.lock()?;
        Ok(state
            .audit
            .iter()
            .rev()
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
