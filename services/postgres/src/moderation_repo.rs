//! PostgreSQL side of moderation (tables from `0010_moderation.sql`): blocks
//! on users with the revocation of their refresh tokens, message reports,
//! and the `moderation_audit` row each of them writes in its own
//! transaction. `PgAuthRepository` and `PgChatRepository` call into here.

use bowchat_auth::moderation::{AuditEntry, BlockChange, BlockOutcome};
use bowchat_auth::ports::AuthRepoError;
use bowchat_chat::ports::{ChatRepoError, NewReport, Report, ReportOutcome};
use bowchat_model::{Millis, UserId};
use sqlx::{Postgres, Transaction};

use crate::auth_repo::{storage_error, user_of, USER_COLUMNS};
use bowchat_store::chat_rows::db_error;
use bowchat_store::moderation_repo::{
    audit_entry_of, block_of, report_entry, report_of, AUDIT_COLUMNS, REPORT_COLUMNS,
};

use crate::PgStore;

/// One audit row, inside the caller's transaction.
async fn audit(tx: &mut Transaction<'_, Postgres>, entry: &AuditEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO moderation_audit (at, actor, action, target_user, room_id, seq, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(entry.action.as_str())
    .bind(entry.target_user)
    .bind(entry.room_id)
    .bind(entry.seq)
    .bind(&entry.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn set_blocked(
    store: &PgStore,
    change: &BlockChange,
) -> Result<BlockOutcome, AuthRepoError> {
    let mut tx = store.pool.begin().await.map_err(storage_error)?;
    // The write comes first: the row lock makes a concurrent block of the
    // same user wait and then match nothing (one audit row per change).
    let changed = sqlx::query(
        "UPDATE users SET blocked_at = $1, blocked_reason = $2 \
         WHERE id = $3 AND (blocked_at IS NOT NULL) <> $4",
    )
    .bind(change.blocked.then_some(change.at))
    .bind(change.reason.as_deref().filter(|_| change.blocked))
    .bind(change.user)
    .bind(change.blocked)
    .execute(&mut *tx)
    .await
    .map_err(storage_error)?
    .rows_affected()
        == 1;
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(change.user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage_error)?;
    let Some(user) = row.as_ref().map(user_of).transpose()? else {
        return Ok(BlockOutcome::UnknownUser);
    };
    if !changed {
        return Ok(BlockOutcome::Unchanged(user));
    }
    if change.blocked {
        // Every family of the user ends: the revocation poll of every
        // process sees them, and a stolen refresh token is dead too.
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(change.at)
        .bind(change.user)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
    }
    audit(&mut tx, &change.audit_entry())
        .await
        .map_err(storage_error)?;
    tx.commit().await.map_err(storage_error)?;
    Ok(BlockOutcome::Changed(user))
}

pub(crate) async fn blocks_since(
    store: &PgStore,
    since: Millis,
) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
    let rows = sqlx::query(
        "SELECT target_user, at FROM moderation_audit \
         WHERE action = 'block' AND at >= $1 AND target_user IS NOT NULL",
    )
    .bind(since)
    .fetch_all(&store.pool)
    .await
    .map_err(storage_error)?;
    rows.iter().map(block_of).collect()
}

pub(crate) async fn moderation_audit(
    store: &PgStore,
    limit: u32,
) -> Result<Vec<AuditEntry>, AuthRepoError> {
    let rows = sqlx::query(&format!(
        "SELECT {AUDIT_COLUMNS} FROM moderation_audit ORDER BY id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(storage_error)?;
    rows.iter().map(audit_entry_of).collect()
}

pub(crate) async fn report_message(
    store: &PgStore,
    report: &NewReport,
) -> Result<ReportOutcome, ChatRepoError> {
    let mut tx = store.pool.begin().await.map_err(db_error)?;
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO message_reports (room_id, seq, reporter, reason, sender, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (room_id, seq, reporter) DO NOTHING RETURNING id",
    )
    .bind(report.room_id)
    .bind(report.seq)
    .bind(report.reporter)
    .bind(&report.reason)
    .bind(report.sender)
    .bind(&report.body)
    .bind(report.at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(id) = created else {
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM message_reports WHERE room_id = $1 AND seq = $2 AND reporter = $3",
        )
        .bind(report.room_id)
        .bind(report.seq)
        .bind(report.reporter)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.rollback().await.map_err(db_error)?;
        return Ok(ReportOutcome::Existing(id));
    };
    audit(&mut tx, &report_entry(report))
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(ReportOutcome::Created(id))
}

pub(crate) async fn reports(store: &PgStore, limit: u32) -> Result<Vec<Report>, ChatRepoError> {
    let rows = sqlx::query(&format!(
        "SELECT {REPORT_COLUMNS} FROM message_reports ORDER BY id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(report_of).collect()
}
