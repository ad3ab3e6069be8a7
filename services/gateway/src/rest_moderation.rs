//! `POST /api/rooms/{id}/messages/{seq}/report`: a member reports a message
//! to the operators. The report keeps a copy of the message (sender, body)
//! and is audited with it; operators read both with `bowchat admin reports
//! list` and `bowchat admin audit list`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use bowchat_chat::ports::{NewReport, ReportOutcome};
use bowchat_model::{now_millis, PageQuery, RoomId};
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, AppState, Body, Caller, Id};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/rooms/{id}/messages/{seq}/report", post(report))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReportBody {
    reason: String,
}

/// 201 `{id}` for a new report; 200 with the same id when the caller had
/// reported this message already.
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Id((room_id, seq)): Id<(RoomId, i64)>,
    Body(body): Body<ReportBody>,
) -> Result<impl IntoResponse, ApiError> {
    let reason = body.reason.trim();
    let max = state.max_report_chars;
    if reason.is_empty() || reason.chars().count() > max {
        return Err(ApiError::bad_request(
            "INVALID_REASON",
            format!("a report's reason is 1 to {max} characters"),
        ));
    }
    let room = state
        .chat
        .get_room(room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    // Members only, public rooms included: reading a room is not enough.
    if state.chat.member(room.id, caller.id).await?.is_none() {
        return Err(ApiError::forbidden(
            "NOT_A_MEMBER",
            "only members of the room can report its messages",
        ));
    }
    let page = PageQuery {
        before: None,
        after: Some(seq.saturating_sub(1)),
        limit: Some(1),
    };
    let message = state
        .chat
        .history(room.id, page, 1)
        .await?
        .into_iter()
        .find(|m| m.seq == seq)
        .ok_or_else(|| ApiError::not_found("message"))?;
    let outcome = state
        .chat
        .report_message(&NewReport {
            room_id: room.id,
            seq,
            reporter: caller.id,
            reason: reason.to_string(),
            sender: message.sender,
            body: message.body,
            at: now_millis(),
        })
        .await?;
    Ok(match outcome {
        ReportOutcome::Created(id) => {
            tracing::info!(
                report = id,
                room = room.id,
                seq,
                reporter = caller.id,
                "message reported"
            );
            (StatusCode::CREATED, Json(json!({ "id": id })))
        }
        ReportOutcome::Existing(id) => (StatusCode::OK, Json(json!({ "id": id }))),
    })
}
