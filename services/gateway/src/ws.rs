//! `/ws`: authentication at upgrade, limits, and the per-connection loop.
//!
//! One task per connection owns the socket: it reads client frames, writes
//! server frames queued by the hub, and sends heartbeats. Nothing a client sends
//! can end another client's connection or the process; a bad frame costs the
//! sender an `ERROR` frame and nothing else.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bowchat_auth::AccessClaims;
use futures::SinkExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::frames::{self, ServerFrame};
use crate::hub::Outbound;
use crate::limits::ConnectionPermit;
use crate::metrics::metrics;
use crate::ws_session::Session;
use crate::{ApiError, AppState, Params};

/// Most queued frames written together before one flush.
const MAX_FRAMES_PER_WRITE: usize = 64;
/// A deadline that never comes (the expiry timer while nothing is in flight).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

#[derive(Deserialize)]
pub struct WsQuery {
    access_token: Option<String>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Params(query): Params<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A plain GET (or a broken handshake) gets a problem like every other
    // error, with the status axum chose (400, 405 or 426).
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                rejection.status(),
                "WEBSOCKET_UPGRADE_REQUIRED",
                format!("/ws speaks WebSocket only: {}", rejection.body_text()),
            )
            .into_response()
        }
    };
    let token = query.access_token.or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
    });
    let Some(token) = token else {
        return ApiError::unauthorized(
            "AUTH_REQUIRED",
            "pass ?access_token=<jwt> or Authorization: Bearer",
        )
        .into_response();
    };
    let claims = match state.auth.verify_access(&token) {
        Ok(claims) => claims,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(permit) = state.connections.acquire(peer.ip()) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_CONNECTIONS",
            "connection limit reached",
        )
        .into_response();
    };
    let cap = state
        .config
        .max_transport_frame_bytes
        .max(state.config.max_frame_bytes);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .read_buffer_size(state.config.ws_read_buffer_bytes.max(1024))
        .write_buffer_size(state.config.ws_write_buffer_bytes)
        .on_upgrade(move |socket| run(state, socket, claims, permit))
}

async fn run(
    state: AppState,
    mut socket: WebSocket,
    claims: AccessClaims,
    _permit: ConnectionPermit,
) {
    let (tx, mut rx) = mpsc::channel::<Outbound>(state.config.outbound_queue.max(16));
    let conn_id = state.hub.register(claims.sub, tx);
    let mut session = Session::new(state.clone(), conn_id, claims);
    session.open().await;
    let heartbeat = Duration::from_secs(state.config.ping_interval_secs.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut last_seen = Instant::now();
    // Fires when the oldest unanswered bid may have timed out. It is not
    // moved when that bid is answered: it fires early for nothing and is set
    // again, which costs far less than moving it at every bid of a busy
    // connection.
    let expiry = tokio::time::sleep(FAR_FUTURE);
    tokio::pin!(expiry);
    let mut armed: Option<Instant> = None;

    let welcome = session.welcome();
    if send(&mut socket, &welcome).await.is_err() {
        session.close().await;
        return;
    }
    loop {
        // Bids are sent in order, so a bid sent after the armed one expires
        // later: the timer needs setting only when nothing is armed.
        if armed.is_none() {
            if let Some(at) = session.next_expiry() {
                armed = Some(at);
                expiry.as_mut().reset(at.into());
            }
        }
        tokio::select! {
            _ = &mut expiry, if armed.is_some() => {
                armed = None;
                expiry.as_mut().reset((Instant::now() + FAR_FUTURE).into());
                let mut failed = false;
                for reply in session.expire_in_flight() {
                    if send(&mut socket, &reply).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break;
                }
            }
            incoming = socket.recv() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        crate::ws_close::fail(&mut socket, error).await;
                        break;
                    }
                    None => break,
                };
                if let Some(ended) = session.ended() {
                    end_revoked(&mut socket, ended).await;
                    break;
                }
                last_seen = Instant::now();
                let replies = match message {
                    Message::Text(text) => {
                        if text.len() > state.config.max_frame_bytes {
                            metrics().frames_in.with_label_values(&["TOO_LARGE"]).inc();
                            vec![ServerFrame::error(
                                "FRAME_TOO_LARGE",
                                format!("frames are limited to {} bytes", state.config.max_frame_bytes),
                                None,
                            )]
                        } else {
                            match frames::parse(text.as_str()) {
                                Ok(frame) => session.handle(frame).await,
                                Err(e) => {
                                    metrics().frames_in.with_label_values(&["INVALID"]).inc();
                                    vec![ServerFrame::error(e.code, e.message, e.request_id)]
                                }
                            }
                        }
                    }
                    Message::Binary(_) => {
                        metrics().frames_in.with_label_values(&["BINARY"]).inc();
                        vec![ServerFrame::error("BINARY_NOT_SUPPORTED", "send JSON text frames", None)]
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => Vec::new(),
                };
                let mut failed = false;
                for reply in replies {
                    if send(&mut socket, &reply).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || session.must_close() {
                    break;
                }
            }
            queued = rx.recv() => {
                // None: the hub dropped this connection (queue overflow).
                let Some(out) = queued else {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1013, reason: "too slow".into() }))).await;
                    break;
                };
                // A revoked session gets nothing more, not even broadcasts.
                if let Some(ended) = session.ended() {
                    end_revoked(&mut socket, ended).await;
                    break;
                }
                let mut texts = session.deliver(out).await;
                // Frames queued meanwhile (a burst of updates or chat) leave in
                // the same write: one flush, one syscall.
                while texts.len() < MAX_FRAMES_PER_WRITE {
                    match rx.try_recv() {
                        Ok(more) => texts.extend(session.deliver(more).await),
                        Err(_) => break,
                    }
                }
                if write_all(&mut socket, texts).await.is_err() {
                    break;
                }
            }
            _ = ticker.tick() => {
                if let Some(ended) = session.ended() {
                    end_revoked(&mut socket, ended).await;
                    break;
                }
                if session.expired_beyond_grace() {
                    let _ = send(&mut socket, &ServerFrame::error("TOKEN_EXPIRED", "access token expired; reconnect", None)).await;
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4001, reason: "token expired".into() }))).await;
                    break;
                }
                if last_seen.elapsed() > heartbeat * 3 {
                    break;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    session.close().await;
}

/// Ends a connection whose session was logged out or revoked, or whose
/// user was blocked: an `ERROR TOKEN_REVOKED` (or `USER_BLOCKED`) frame, then
/// close code 4001 (the same as an expired token: the client must log in
/// again).
async fn end_revoked(socket: &mut WebSocket, error: bowchat_auth::AuthError) {
    let _ = send(
        socket,
        &ServerFrame::error(error.code(), error.to_string(), None),
    )
    .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 4001,
            reason: if error == bowchat_auth::AuthError::UserBlocked {
                "user blocked".into()
            } else {
                "session revoked".into()
            },
        })))
        .await;
}

async fn write_all(socket: &mut WebSocket, texts: Vec<String>) -> Result<(), axum::Error> {
    for text in texts {
        socket.feed(Message::Text(text.into())).await?;
    }
    socket.flush().await
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), axum::Error> {
    metrics()
        .frames_out
        .with_label_values(&[frame.kind()])
        .inc();
    socket.send(Message::Text(frame.to_text().into())).await
}
