//! SQLite side of moderation (tables from `0011_moderation.sql`): blocks on
//! users with the revocation of their refresh tokens, message reports, and
//! the `moderation_audit` row each of them writes in its own transaction.
//! `SqliteAuthRepository` and `SqliteChatRepository` call into here.

use bowchat_auth::moderation::{AuditAction, AuditEntry, BlockChange, BlockOutcome};
use bowchat_auth::ports::AuthRepoError;
use bowchat_chat::ports::{ChatRepoError, NewReport, Report, ReportOutcome};
use bowchat_model::{Millis, UserId};
use sqlx::{ColumnIndex, Decode, Row, Sqlite, Transaction, Type};

use crate::auth_repo::{corrupt, storage_error, user_of, USER_COLUMNS};
use crate::chat_rows::db_error;
use crate::Db;

/// One audit row, inside the caller's transaction.
async fn audit(tx: &mut Transaction<'_, Sqlite>, entry: &AuditEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO moderation_audit (at, actor, action, target_user, room_id, seq, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
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
    db: &Db,
    change: &BlockChange,
) -> Result<BlockOutcome, AuthRepoError> {
    let mut tx = db.writer.begin().await.map_err(storage_error)?;
    // The write comes first, so this transaction holds the write lock from
    // its first statement (no read-then-upgrade against another process).
    let changed = sqlx::query(
        "UPDATE users SET blocked_at = ?, blocked_reason = ? \
         WHERE id = ? AND (blocked_at IS NOT NULL) <> ?",
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
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
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
            "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
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
    db: &Db,
    since: Millis,
) -> Result<Vec<(UserId, Millis)>, AuthRepoError> {
    let rows = sqlx::query(
        "SELECT target_user, at FROM moderation_audit \
         WHERE action = 'block' AND at >= ? AND target_user IS NOT NULL",
    )
    .bind(since)
    .fetch_all(&db.reader)
    .await
    .map_err(storage_error)?;
    rows.iter().map(block_of).collect()
}

/// The columns `audit_entry_of` reads, in the table of either store.
pub const AUDIT_COLUMNS: &str = "id, at, actor, action, target_user, room_id, seq, detail";

/// One `moderation_audit` row of either store.
pub fn audit_entry_of<R>(row: &R) -> Result<AuditEntry, AuthRepoError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let action: String = row.try_get("action").map_err(corrupt)?;
    Ok(AuditEntry {
        id: row.try_get("id").map_err(corrupt)?,
        at: row.try_get("at").map_err(corrupt)?,
        actor: row.try_get("actor").map_err(corrupt)?,
        action: action.parse()?,
        target_user: row.try_get("target_user").map_err(corrupt)?,
        room_id: row.try_get("room_id").map_err(corrupt)?,
        seq: row.try_get("seq").map_err(corrupt)?,
        detail: row.try_get("detail").map_err(corrupt)?,
    })
}

/// One (blocked user, block time) row of either store's `blocks_since`.
pub fn block_of<R>(row: &R) -> Result<(UserId, Millis), AuthRepoError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((
        row.try_get("target_user").map_err(corrupt)?,
        row.try_get("at").map_err(corrupt)?,
    ))
}

pub(crate) async fn moderation_audit(
    db: &Db,
    limit: u32,
) -> Result<Vec<AuditEntry>, AuthRepoError> {
    let rows = sqlx::query(&format!(
        "SELECT {AUDIT_COLUMNS} FROM moderation_audit ORDER BY id DESC LIMIT ?"
    ))
    .bind(i64::from(limit))
    .fetch_all(&db.reader)
    .await
    .map_err(storage_error)?;
    rows.iter().map(audit_entry_of).collect()
}

pub(crate) async fn report_message(
    db: &Db,
    report: &NewReport,
) -> Result<ReportOutcome, ChatRepoError> {
    let mut tx = db.writer.begin().await.map_err(db_error)?;
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO message_reports (room_id, seq, reporter, reason, sender, body, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
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
            "SELECT id FROM message_reports WHERE room_id = ? AND seq = ? AND reporter = ?",
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

/// The audit row of a report: by the reporter, about the sender.
pub fn report_entry(report: &NewReport) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: report.at,
        actor: report.reporter.to_string(),
        action: AuditAction::Report,
        target_user: Some(report.sender),
        room_id: Some(report.room_id),
        seq: Some(report.seq),
        detail: report.reason.clone(),
    }
}

/// The columns `report_of` reads, in the table of either store.
pub const REPORT_COLUMNS: &str = "id, room_id, seq, reporter, reason, sender, body, created_at";

/// One `message_reports` row of either store.
pub fn report_of<R>(row: &R) -> Result<Report, ChatRepoError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let get = |e: sqlx::Error| ChatRepoError::Corrupt(e.to_string());
    Ok(Report {
        id: row.try_get("id").map_err(get)?,
        room_id: row.try_get("room_id").map_err(get)?,
        seq: row.try_get("seq").map_err(get)?,
        reporter: row.try_get("reporter").map_err(get)?,
        reason: row.try_get("reason").map_err(get)?,
        sender: row.try_get("sender").map_err(get)?,
        body: row.try_get("body").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
    })
}

pub(crate) async fn reports(db: &Db, limit: u32) -> Result<Vec<Report>, ChatRepoError> {
    let rows = sqlx::query(&format!(
        "SELECT {REPORT_COLUMNS} FROM message_reports ORDER BY id DESC LIMIT ?"
    ))
    .bind(i64::from(limit))
    .fetch_all(&db.reader)
    .await
    .map_err(db_error)?;
    rows.iter().map(report_of).collect()
}
