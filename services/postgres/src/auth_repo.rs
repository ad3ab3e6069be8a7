//! PostgreSQL adapter for `bowchat_auth::ports::AuthRepository`: users, the JWT
//! signing keys and refresh-token records.

use async_trait::async_trait;
use bowchat_auth::moderation::{AuditEntry, BlockChange, BlockOutcome};
use bowchat_auth::ports::{AuthRepoError, AuthRepository, RefreshRecord, User};
use bowchat_auth::StoredSigningKey;
use bowchat_model::{Millis, UserId};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};

use crate::PgStore;

pub(crate) const USER_COLUMNS: &str =
    "id, email, display_name, password_hash, created_at, blocked_at";
const REFRESH_COLUMNS: &str =
    "token_hash, family, user_id, created_at, expires_at, rotated_at, revoked_at, successor";

#[derive(Clone)]
pub struct PgAuthRepository {
    store: PgStore,
}

impl PgAuthRepository {
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }
}

/// Advisory lock key of signing-key creation, first or rotated ("bowchat" + 1).
const SIGNING_KEY_LOCK: i64 = 0x626f_7763_6861_7401;

fn key_of(row: &PgRow) -> Result<StoredSigningKey, AuthRepoError> {
    Ok(StoredSigningKey {
        kid: row.try_get("kid").map_err(corrupt)?,
        alg: row.try_get("alg").map_err(corrupt)?,
        public_key: row.try_get("public_key").map_err(corrupt)?,
        sealed_private: row.try_get("sealed_private").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
    })
}

pub(crate) fn storage_error(e: sqlx::Error) -> AuthRepoError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            AuthRepoError::Conflict(d.message().to_string())
        }
        other => AuthRepoError::Unavailable(other.to_string()),
    }
}

/// A row that does not decode into the expected types is corrupt data, not
/// an outage: retrying will not help.
pub(crate) fn corrupt(e: sqlx::Error) -> AuthRepoError {
    AuthRepoError::Corrupt(e.to_string())
}

pub(crate) fn user_of(row: &PgRow) -> Result<User, AuthRepoError> {
    Ok(User {
        id: row.try_get("id").map_err(corrupt)?,
        email: row.try_get("email").map_err(corrupt)?,
        display_name: row.try_get("display_name").map_err(corrupt)?,
        password_hash: row.try_get("password_hash").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        blocked_at: row.try_get("blocked_at").map_err(corrupt)?,
    })
}

fn refresh_of(row: &PgRow) -> Result<RefreshRecord, AuthRepoError> {
    Ok(RefreshRecord {
        token_hash: row.try_get("token_hash").map_err(corrupt)?,
        family: row.try_get("family").map_err(corrupt)?,
        user_id: row.try_get("user_id").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        expires_at: row.try_get("expires_at").map_err(corrupt)?,
        rotated_at: row.try_get("rotated_at").map_err(corrupt)?,
        revoked_at: row.try_get("revoked_at").map_err(corrupt)?,
        successor: row.try_get("successor").map_err(corrupt)?,
    })
}

async fn insert_refresh<'c>(
    executor: impl PgExecutor<'c>,
    record: &RefreshRecord,
) -> Result<(), AuthRepoError> {
    sqlx::query(
        "INSERT INTO refresh_tokens \
         (token_hash, family, user_id, created_at, expires_at, rotated_at, revoked_at, successor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&record.token_hash)
    .bind(&record.family)
    .bind(record.user_id)
    .bind(record.created_at)
    .bind(record.expires_at)
    .bind(record.rotated_at)
    .bind(record.revoked_at)
    .bind(&record.successor)
    .execute(executor)
    .await
    .map_err(storage_error)?;
    Ok(())
}

#[async_trait]
impl AuthRepository for PgAuthRepository {
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        now: Millis,
    ) -> Result<User, AuthRepoError> {
        let id: UserId = sqlx::query_scalar(
            "INSERT INTO users (email, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(email)
        .bind(display_name)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.store.pool)
        .await
        .map_err(storage_error)?;
        Ok(User {
            id,
            email: email.to_string(),
            display_name: display_name.to_string(),
            password_hash: password_hash.map(str::to_string),
            created_at: now,
            blocked_at: None,
        })
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, AuthRepoError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(user_of).transpose()
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, AuthRepoError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(user_of).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, AuthRepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One array parameter, however many ids: no chunking needed.
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1) ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(ids)
            .fetch_all(&self.store.pool)
            .await
            .map_err(storage_error)?;
        rows.iter().map(user_of).collect()
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, AuthRepoError> {
        let rows = sqlx::query(
            "SELECT kid, alg, public_key, sealed_private, created_at FROM signing_keys \
             ORDER BY created_at, stored_seq",
        )
        .fetch_all(&self.store.pool)
        .await
        .map_err(storage_error)?;
        rows.iter().map(key_of).collect()
    }

    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        unless_created_since: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut tx = self.store.pool.begin().await.map_err(storage_error)?;
        // Serialises the processes adding keys: each one after the first
        // sees the key committed before it (READ COMMITTED reads a fresh
        // snapshot per statement).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEY_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        let added = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, public_key, sealed_private, created_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE created_at >= $6)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.public_key)
        .bind(&key.sealed_private)
        .bind(key.created_at)
        .bind(unless_created_since)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?
        .rows_affected();
        tx.commit().await.map_err(storage_error)?;
        Ok(added == 1)
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> Result<(), AuthRepoError> {
        if kids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM signing_keys WHERE kid = ANY($1)")
            .bind(kids)
            .execute(&self.store.pool)
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), AuthRepoError> {
        insert_refresh(&self.store.pool, record).await
    }

    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, AuthRepoError> {
        let sql = format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(refresh_of).transpose()
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        successor: &str,
        new: &RefreshRecord,
        now: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut tx = self.store.pool.begin().await.map_err(storage_error)?;
        // The guard in the WHERE clause makes rotation once-only: the row lock
        // makes a concurrent second UPDATE wait, re-check the guard and match nothing.
        let updated = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1, successor = $3 \
             WHERE token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(old_hash)
        .bind(successor)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await.map_err(storage_error)?;
            return Ok(false);
        }
        insert_refresh(&mut *tx, new).await?;
        tx.commit().await.map_err(storage_error)?;
        Ok(true)
    }

    async fn revoke_family(&self, family: &str, now: Millis) -> Result<(), AuthRepoError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family)
        .execute(&self.store.pool)
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    async fn revoked_families(
        &self,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>, AuthRepoError> {
        let rows = sqlx::query(
            "SELECT family, MAX(revoked_at) AS at FROM refresh_tokens \
             WHERE revoked_at >= $1 GROUP BY family",
        )
        .bind(since)
        .fetch_all(&self.store.pool)
        .await
        .map_err(storage_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("family").map_err(corrupt)?,
                    row.try_get("at").map_err(corrupt)?,
                ))
            })
            .collect()
    }

    async fn revoke_token(&self, token_hash: &str, now: Millis) -> Result<(), AuthRepoError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.store.pool)
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    async fn set_blocked(&self, change: &BlockChange) -> Result<BlockOutcome, AuthRepoError> {
        crate::moderation_repo::set_blocked(&self.store, change).await
    }

    async fn blocks_since(&self, since: Millis) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
        crate::moderation_repo::blocks_since(&self.store, since).await
    }

    async fn moderation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthRepoError> {
        crate::moderation_repo::moderation_audit(&self.store, limit).await
    }
}
