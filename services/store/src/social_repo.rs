//! SQLite adapter for `bowchat_social::ports::SocialRepository` (tables from
//! `0002_social_login.sql`). Every "take" is a `DELETE ... RETURNING`, so a
//! state or ticket is used once even when two requests race.

use async_trait::async_trait;
use bowchat_auth::{AuthRepoError, User};
use bowchat_model::{Millis, UserId};
use bowchat_social::ports::{NewAccount, PendingLogin, SocialRepository, Ticket, TicketKind};
use sqlx::Row;

use crate::auth_repo::{corrupt, storage_error};
use crate::Db;

#[derive(Clone)]
pub struct SqliteSocialRepository {
    db: Db,
}

impl SqliteSocialRepository {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn kind_of(text: &str) -> Result<TicketKind, AuthRepoError> {
    match text {
        "login" => Ok(TicketKind::LoginCode),
        "link" => Ok(TicketKind::LinkTicket),
        other => Err(AuthRepoError::Corrupt(format!("ticket kind {other}"))),
    }
}

#[async_trait]
impl SocialRepository for SqliteSocialRepository {
    async fn insert_pending(&self, login: &PendingLogin, now: Millis) -> Result<(), AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        sqlx::query("DELETE FROM oauth_pending WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        sqlx::query(
            "INSERT INTO oauth_pending (state, provider, pkce_verifier, nonce, link_user_id, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&login.state)
        .bind(&login.provider)
        .bind(&login.pkce_verifier)
        .bind(&login.nonce)
        .bind(login.link_user)
        .bind(login.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)
    }

    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        let row = sqlx::query(
            "DELETE FROM oauth_pending WHERE state = ? \
             RETURNING state, provider, pkce_verifier, nonce, link_user_id, expires_at",
        )
        .bind(state)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)?;
        row.map(|row| {
            Ok(PendingLogin {
                state: row.try_get("state").map_err(corrupt)?,
                provider: row.try_get("provider").map_err(corrupt)?,
                pkce_verifier: row.try_get("pkce_verifier").map_err(corrupt)?,
                nonce: row.try_get("nonce").map_err(corrupt)?,
                link_user: row.try_get("link_user_id").map_err(corrupt)?,
                expires_at: row.try_get("expires_at").map_err(corrupt)?,
            })
        })
        .transpose()
    }

    async fn identity_owner(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<UserId>, AuthRepoError> {
        let row =
            sqlx::query("SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?")
                .bind(provider)
                .bind(subject)
                .fetch_optional(&self.db.reader)
                .await
                .map_err(storage_error)?;
        row.map(|r| r.try_get("user_id").map_err(corrupt))
            .transpose()
    }

    async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user: UserId,
        now: Millis,
    ) -> Result<bool, AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        let inserted = sqlx::query(
            "INSERT INTO user_identities (provider, subject, user_id, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (provider, subject) DO NOTHING",
        )
        .bind(provider)
        .bind(subject)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?
        .rows_affected();
        tx.commit().await.map_err(storage_error)?;
        Ok(inserted == 1)
    }

    async fn create_linked_user(
        &self,
        email: &str,
        display_name: &str,
        provider: &str,
        subject: &str,
        now: Millis,
    ) -> Result<NewAccount, AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        let linked =
            sqlx::query("SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?")
                .bind(provider)
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage_error)?;
        if let Some(row) = linked {
            return Ok(NewAccount::AlreadyLinked(
                row.try_get("user_id").map_err(corrupt)?,
            ));
        }
        let taken = sqlx::query("SELECT 1 FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage_error)?;
        if taken.is_some() {
            return Ok(NewAccount::EmailTaken);
        }
        let id: UserId = sqlx::query(
            "INSERT INTO users (email, display_name, password_hash, created_at) \
             VALUES (?, ?, NULL, ?) RETURNING id",
        )
        .bind(email)
        .bind(display_name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(storage_error)?
        .try_get("id")
        .map_err(corrupt)?;
        sqlx::query(
            "INSERT INTO user_identities (provider, subject, user_id, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(provider)
        .bind(subject)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)?;
        Ok(NewAccount::Created(User {
            id,
            email: email.to_string(),
            display_name: display_name.to_string(),
            password_hash: None,
            created_at: now,
            blocked_at: None,
        }))
    }

    async fn insert_ticket(&self, ticket: &Ticket, now: Millis) -> Result<(), AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        sqlx::query("DELETE FROM oauth_tickets WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        sqlx::query(
            "INSERT INTO oauth_tickets (hash, kind, user_id, new_account, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&ticket.hash)
        .bind(ticket.kind.as_str())
        .bind(ticket.user)
        .bind(ticket.new_account)
        .bind(ticket.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        hash: &str,
    ) -> Result<Option<Ticket>, AuthRepoError> {
        let mut tx = self.db.writer.begin().await.map_err(storage_error)?;
        let row = sqlx::query(
            "DELETE FROM oauth_tickets WHERE hash = ? AND kind = ? \
             RETURNING hash, kind, user_id, new_account, expires_at",
        )
        .bind(hash)
        .bind(kind.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)?;
        row.map(|row| {
            let kind: String = row.try_get("kind").map_err(corrupt)?;
            Ok(Ticket {
                hash: row.try_get("hash").map_err(corrupt)?,
                kind: kind_of(&kind)?,
                user: row.try_get("user_id").map_err(corrupt)?,
                new_account: row.try_get("new_account").map_err(corrupt)?,
                expires_at: row.try_get("expires_at").map_err(corrupt)?,
            })
        })
        .transpose()
    }
}
