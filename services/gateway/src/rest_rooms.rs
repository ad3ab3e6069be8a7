//! `/api/rooms/*`: room lists with unread counts, group and direct rooms,
//! membership, history and REST sending.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bowchat_chat::messages::{ChatAction, ChatCommand};
use bowchat_chat::ports::{MemberRole, Room, RoomKind};
use bowchat_model::{now_millis, Origin, PageQuery, RoomId, UserId};
use serde::Deserialize;
use serde_json::json;

use crate::hub::Answer;
use crate::{ApiError, AppState, Body, Caller, Id, Params};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list).post(create_group))
        .route("/api/rooms/direct", post(open_direct))
        .route("/api/rooms/{id}", get(fetch))
        .route("/api/rooms/{id}/members", get(members).post(add_member))
        .route("/api/rooms/{id}/members/{user}", delete(remove_member))
        .route("/api/rooms/{id}/messages", get(history).post(send))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "items": state.chat.rooms_of(caller.id).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default)]
    members: Vec<UserId>,
}

const MAX_INITIAL_MEMBERS: usize = 1000;

async fn ensure_users_exist(state: &AppState, ids: &[UserId]) -> Result<(), ApiError> {
    let mut wanted = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let found = state.auth.users(&wanted).await?;
    if found.len() != wanted.len() {
        let missing: Vec<UserId> = wanted
            .into_iter()
            .filter(|id| !found.iter().any(|u| u.id == *id))
            .collect();
        return Err(ApiError::bad_request(
            "UNKNOWN_USER",
            format!("no such users: {missing:?}"),
        ));
    }
    Ok(())
}

async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewGroup>,
) -> Result<impl IntoResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            "room names are 1 to 100 characters",
        ));
    }
    if body.members.len() > MAX_INITIAL_MEMBERS {
        return Err(ApiError::bad_request(
            "TOO_MANY_MEMBERS",
            format!("at most {MAX_INITIAL_MEMBERS} members at creation"),
        ));
    }
    ensure_users_exist(&state, &body.members).await?;
    let room = state
        .chat
        .create_group(name, caller.id, &body.members, now_millis())
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DirectBody {
    user_id: UserId,
}

async fn open_direct(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<DirectBody>,
) -> Result<impl IntoResponse, ApiError> {
    if body.user_id == caller.id {
        return Err(ApiError::bad_request(
            "INVALID_MEMBER",
            "a direct room needs another user",
        ));
    }
    ensure_users_exist(&state, &[body.user_id]).await?;
    Ok(Json(
        state
            .chat
            .open_direct(caller.id, body.user_id, now_millis())
            .await?,
    ))
}

/// The room, if the caller may read it (members; anyone for public rooms).
async fn readable(state: &AppState, room: RoomId, user: UserId) -> Result<Room, ApiError> {
    let room = state
        .chat
        .get_room(room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    if !room.kind.is_public() && state.chat.member(room.id, user).await?.is_none() {
        return Err(ApiError::forbidden(
            "NOT_A_MEMBER",
            "only members can read this room",
        ));
    }
    Ok(room)
}

async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<RoomId>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(readable(&state, id, caller.id).await?))
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<RoomId>,
) -> Result<impl IntoResponse, ApiError> {
    readable(&state, id, caller.id).await?;
    Ok(Json(json!({ "items": state.chat.members(id).await? })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MemberBody {
    user_id: UserId,
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<RoomId>,
    Body(body): Body<MemberBody>,
) -> Result<impl IntoResponse, ApiError> {
    let room = readable(&state, id, caller.id).await?;
    if room.kind != RoomKind::Group {
        return Err(ApiError::bad_request(
            "FIXED_MEMBERSHIP",
            "only group rooms take new members",
        ));
    }
    ensure_users_exist(&state, &[body.user_id]).await?;
    state
        .chat
        .add_member(id, body.user_id, now_millis())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Id((id, user)): Id<(RoomId, UserId)>,
) -> Result<impl IntoResponse, ApiError> {
    let room = readable(&state, id, caller.id).await?;
    if room.kind != RoomKind::Group {
        return Err(ApiError::bad_request(
            "FIXED_MEMBERSHIP",
            "only group rooms change members",
        ));
    }
    if user != caller.id {
        let me = state.chat.member(id, caller.id).await?;
        if !me.is_some_and(|m| m.role == MemberRole::Owner) {
            return Err(ApiError::forbidden(
                "NOT_OWNER",
                "only the owner removes other members",
            ));
        }
    }
    state.chat.remove_member(id, user).await?;
    for _ in 0..state.hub.evict_from_room(id, user) {
        state.leave_room(id, user).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<RoomId>,
    Params(page): Params<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    readable(&state, id, caller.id).await?;
    let items = state.chat.history(id, page, state.config.max_page).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    client_msg_id: String,
    body: String,
}

async fn send(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<RoomId>,
    Body(body): Body<SendBody>,
) -> Result<impl IntoResponse, ApiError> {
    if body.client_msg_id.is_empty() || body.client_msg_id.len() > 128 {
        return Err(ApiError::bad_request(
            "INVALID_CLIENT_MSG_ID",
            "clientMsgId must be 1 to 128 characters",
        ));
    }
    state.take_rate(caller.id).await?;
    let request_id = format!("rest-{}", body.client_msg_id);
    let (call, waiter) = state.hub.wait_for();
    let command = ChatCommand {
        room_id: id,
        user_id: caller.id,
        origin: Origin {
            gateway: state.hub.gateway_id.clone(),
            conn: call,
            request_id,
        },
        action: ChatAction::Send {
            client_msg_id: body.client_msg_id,
            body: body.body,
        },
    };
    if let Err(e) = state.send_chat(&command).await {
        state.hub.forget_waiter(call);
        return Err(e.into());
    }
    let timeout = Duration::from_millis(state.config.command_timeout_ms);
    match tokio::time::timeout(timeout, waiter).await {
        Ok(Ok(Answer::Chat {
            accepted: true,
            seq,
            duplicate,
            ..
        })) => {
            let status = if duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((
                status,
                Json(json!({ "roomId": id, "seq": seq, "duplicate": duplicate })),
            ))
        }
        Ok(Ok(Answer::Chat { code, message, .. })) => {
            let code = code.unwrap_or_else(|| "REJECTED".into());
            let status = match code.as_str() {
                "NOT_A_MEMBER" => StatusCode::FORBIDDEN,
                "ROOM_NOT_FOUND" => StatusCode::NOT_FOUND,
                "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError::new(status, &code, message.unwrap_or_default()))
        }
        _ => {
            state.hub.forget_waiter(call);
            crate::metrics::metrics()
                .command_timeouts
                .with_label_values(&["rest"])
                .inc();
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TIMEOUT",
                "no result in time; retry with the same clientMsgId",
            ))
        }
    }
}
