//! SQLite adapter for `bowchat_auth::ports::AuthRepository`: users, the JWT
//! signing keys and refresh-token records (tables from `0001_init.sql`).
//!
//! Writes go through the single writer connection, each in a transaction;
//! reads use the reader pool (WAL readers see every committed write).

use async_trait::async_trait;
use bowchat_auth::moderation::{AuditEntry, BlockChange, BlockOutcome};
use bowchat_auth::ports::{AuthRepoError, AuthRepository, RefreshRecord, User};
use bowchat_auth::StoredSigningKey;
use bowchat_model::{Millis, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::Db;

fn key_of(row: &SqliteRow) -> Result<StoredSigningKey, AuthRepoError> {
    Ok(StoredSigningKey {
        kid: row.try_get("kid").map_err(corrupt)?,
        alg: row.try_get("alg").map_err(corrupt)?,
        public_key: row.try_get("public_key").map_err(corrupt)?,
        sealed_private: row.try_get("sealed_private").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
    })
}

/// SQLite binds at most 32766 parameters; stay far below for `users(ids)`.
const IDS_PER_QUERY: usize = 500;

pub(crate) const USER_COLUMNS: &str =
    "id, email, display_name, password_hash, created_at, blocked_at";
const REFRESH_COLUMNS: &str =
    "token_hash, family, user_id, created_at, expires_at, rotated_at, revoked_at, successor";

#[derive(Clone)]
pub struct SqliteAuthRepository {
    db: Db,
}

impl SqliteAuthRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
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

pub(crate) fn user_of(row: &SqliteRow) -> Result<User, AuthRepoError> {
    Ok(User {
        id: row.try_get("id").map_err(corrupt)?,
        email: row.try_get("email").map_err(corrupt)?,
        display_name: row.try_get("display_name").map_err(corrupt)?,
        password_hash: row.try_get("password_hash").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        blocked_at: row.try_get("blocked_at").map_err(corrupt)?,
    })
}

fn refresh_of(row: &SqliteRow) -> Result<RefreshRecord, AuthRepoError> {
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

fn insert_refresh_query(
    record: &RefreshRecord,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO refresh_tokens \
         (token_hash, family, user_id, created_at, expires_at, rotated_at, revoked_at, successor) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&record.token_hash)
    .bind(&record.family)
    .bind(record.user_id)
    .bind(record.created_at)
    .bind(record.expires_at)
    .bind(record.rotated_at)
    .bind(record.revoked_at)
    .bind(&record.successor)
}

#[async_trait]
impl AuthRepository for SqliteAuthRepository {
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        now: Millis,
    ) -> Result<User, AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        let row = sqlx::query(
            "INSERT INTO users (email, display_name, password_hash, created_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(email)
        .bind(display_name)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(storage_error)?;
        let id: UserId = row.try_get("id").map_err(corrupt)?;
        tx.commit().await.map_err(storage_error)?;
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.db.reader)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(user_of).transpose()
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, AuthRepoError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.db.reader)
            .await
            .map_err(storage_error)?;
        row.as_ref().map(user_of).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, AuthRepoError> {
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut users = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(IDS_PER_QUERY) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id IN ({placeholders}) ORDER BY id"
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            let rows = query
                .fetch_all(&self.db.reader)
                .await
                .map_err(storage_error)?;
            for row in &rows {
                users.push(user_of(row)?);
            }
        }
        Ok(users)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, AuthRepoError> {
        // rowid breaks ties between keys stored in the same millisecond.
        let rows = sqlx::query(
            "SELECT kid, alg, public_key, sealed_private, created_at FROM signing_keys \
             ORDER BY created_at, rowid",
        )
        .fetch_all(&self.db.reader)
        .await
        .map_err(storage_error)?;
        rows.iter().map(key_of).collect()
    }

    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        unless_created_since: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        // One statement: the check and the insert see the same database (a
        // writer in another process that got there first makes this one
        // fail with a busy snapshot instead of inserting a second key).
        let added = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, public_key, sealed_private, created_at) \
             SELECT ?, ?, ?, ?, ? \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE created_at >= ?)",
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
        let placeholders = vec!["?"; kids.len()].join(", ");
        let sql = format!("DELETE FROM signing_keys WHERE kid IN ({placeholders})");
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        let mut query = sqlx::query(&sql);
        for kid in kids {
            query = query.bind(kid);
        }
        query.execute(&mut *tx).await.map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        insert_refresh_query(record)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)
    }

    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, AuthRepoError> {
        let sql = format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = ?");
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.db.reader)
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
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        // The guard in the WHERE clause is what makes rotation once-only: of
        // two concurrent uses, the second updates no row.
        let updated = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ?, successor = ? \
             WHERE token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(successor)
        .bind(old_hash)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await.map_err(storage_error)?;
            return Ok(false);
        }
        insert_refresh_query(new)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)?;
        Ok(true)
    }

    async fn revoke_family(&self, family: &str, now: Millis) -> Result<(), AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)
    }

    async fn revoked_families(
        &self,
        since: Millis,
    ) -> Result<Vec<(String, Millis)>, AuthRepoError> {
        let rows = sqlx::query(
            "SELECT family, MAX(revoked_at) AS at FROM refresh_tokens \
             WHERE revoked_at >= ? GROUP BY family",
        )
        .bind(since)
        .fetch_all(&self.db.reader)
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
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)
    }

    async fn set_blocked(&self, change: &BlockChange) -> Result<BlockOutcome, AuthRepoError> {
        crate::moderation_repo::set_blocked(&self.db, change).await
    }

    async fn blocks_since(&self, since: Millis) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
        crate::moderation_repo::blocks_since(&self.db, since).await
    }

    async fn moderation_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthRepoError> {
        crate::moderation_repo::moderation_audit(&self.db, limit).await
    }
}
