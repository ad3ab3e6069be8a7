//! The protocol state of one WebSocket connection: who it is, what it watches,
//! and how each client frame turns into bus commands or direct replies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bowchat_auction::messages::{Action, AuctionCommand};
use bowchat_auction::AuctionView;
use bowchat_auth::AccessClaims;
use bowchat_chat::messages::{ChatAction, ChatCommand};
use bowchat_model::{now_millis, AuctionId, Origin, PageQuery, RoomId, UserId};
use serde_json::Number;

use crate::frames::{amount, ClientFrame, ServerFrame};
use crate::hub::Outbound;
use crate::metrics::metrics;
use crate::{AppState, SignalKind};

/// After expiry, a connection may still re-authenticate for this long.
const EXPIRY_GRACE_SECS: i64 = 60;
/// Bids awaiting their result, per connection.
const MAX_IN_FLIGHT: usize = 1024;

pub struct Session {
    state: AppState,
    conn_id: u64,
    user: UserId,
    expires_at: i64,
    /// The session (refresh family) of the token in force; see `revoked`.
    sid: String,
    /// When the token in force was issued (ms): a block of the user ends it.
    issued_ms: i64,
    /// Watched auctions and the last price-step count sent for each.
    auctions: HashMap<AuctionId, i64>,
    /// Watched rooms and the last message seq sent for each.
    rooms: HashMap<RoomId, i64>,
    /// Watched rooms whose presence entry this connection holds.
    present: HashSet<RoomId>,
    /// Whether the connection registry counts this connection.
    registered: bool,
    /// Bids sent and not answered yet, with when they were sent.
    in_flight: HashMap<String, Instant>,
    /// The same bids in the order they were sent, for expiry; entries answered
    /// (or re-sent) meanwhile no longer match `in_flight` and are skipped.
    sent: VecDeque<(Instant, String)>,
    close: bool,
}

fn err(code: &str, message: impl Into<String>, request_id: &Option<String>) -> Vec<ServerFrame> {
    vec![ServerFrame::error(code, message, request_id.clone())]
}

impl Session {
    pub fn new(state: AppState, conn_id: u64, claims: AccessClaims) -> Self {
        Self {
            state,
            conn_id,
            user: claims.sub,
            expires_at: claims.exp,
            issued_ms: claims.issued_ms(),
            sid: claims.sid,
            auctions: HashMap::new(),
            rooms: HashMap::new(),
            present: HashSet::new(),
            registered: false,
            in_flight: HashMap::new(),
            sent: VecDeque::new(),
            close: false,
        }
    }

    pub fn welcome(&self) -> ServerFrame {
        ServerFrame::Welcome {
            conn_id: self.conn_id,
            user_id: self.user,
            expires_at: self.expires_at,
            heartbeat_secs: self.state.config.ping_interval_secs,
        }
    }

    pub fn must_close(&self) -> bool {
        self.close
    }

    /// Why the token in force stopped working since, if it did: its
    /// session was logged out or revoked (`TOKEN_REVOKED`), or its user
    /// blocked (`USER_BLOCKED`).
    pub fn ended(&self) -> Option<bowchat_auth::AuthError> {
        self.state
            .auth
            .token_ended(self.user, self.issued_ms, &self.sid)
    }

    fn expired(&self) -> bool {
        now_millis() / 1000 >= self.expires_at
    }

    pub fn expired_beyond_grace(&self) -> bool {
        now_millis() / 1000 >= self.expires_at + EXPIRY_GRACE_SECS
    }

    /// Counts the connection in the registry (once, after the upgrade).
    pub async fn open(&mut self) {
        match self.state.presence.connected(self.user).await {
            Ok(()) => self.registered = true,
            Err(e) => tracing::warn!(error = %e, "connection registry unavailable"),
        }
    }

    /// Forgets the connection: the hub stops delivering to it, then its
    /// presence entries go (announcing the user offline where this was its
    /// last connection) and the registry stops counting it.
    pub async fn close(&mut self) {
        let auctions: Vec<AuctionId> = self.auctions.keys().copied().collect();
        let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
        // A room the user was removed from has already been left (evicted).
        let present: Vec<RoomId> = rooms
            .iter()
            .copied()
            .filter(|room| {
                self.present.contains(room) && self.state.hub.watches_room(*room, self.conn_id)
            })
            .collect();
        self.state
            .hub
            .unregister(self.conn_id, self.user, &auctions, &rooms);
        self.present.clear();
        for room in present {
            self.state.leave_room(room, self.user).await;
        }
        if std::mem::take(&mut self.registered) {
            if let Err(e) = self.state.presence.disconnected(self.user).await {
                tracing::warn!(error = %e, "connection registry unavailable");
            }
        }
    }

    fn origin(&self, request_id: String) -> Origin {
        Origin {
            gateway: self.state.hub.gateway_id.clone(),
            conn: self.conn_id,
            request_id,
        }
    }

    pub async fn handle(&mut self, frame: ClientFrame) -> Vec<ServerFrame> {
        let kind = frame.kind();
        metrics().frames_in.with_label_values(&[kind]).inc();
        match frame {
            ClientFrame::Auth { token, request_id } => self.reauth(&token, request_id),
            // Counted like every other frame: a flood of pings costs the
            // server as much as a flood of anything else.
            ClientFrame::Ping { request_id } => match self.state.take_rate(self.user).await {
                Ok(()) => vec![ServerFrame::Pong {
                    request_id,
                    server_time: now_millis(),
                }],
                Err(refusal) => err(refusal.code(), refusal.message(), &request_id),
            },
            _ if self.expired() => err(
                "TOKEN_EXPIRED",
                "access token expired; send AUTH with a fresh token",
                &frame.request_id(),
            ),
            ClientFrame::Subscribe {
                auction_id,
                room_id,
                since,
                request_id,
            } => match (auction_id, room_id) {
                (Some(auction), None) => self.subscribe_auction(auction, since, request_id).await,
                (None, Some(room)) => self.subscribe_room(room, since, request_id).await,
                _ => err(
                    "INVALID_FRAME",
                    "SUBSCRIBE needs exactly one of auctionId, roomId",
                    &request_id,
                ),
            },
            ClientFrame::Unsubscribe {
                auction_id,
                room_id,
                request_id,
            } => self.unsubscribe(auction_id, room_id, request_id).await,
            ClientFrame::AuctionBid {
                request_id,
                auction_id,
                amount,
                currency,
            } => {
                self.bid(request_id, auction_id, &amount, currency, false)
                    .await
            }
            ClientFrame::AuctionMaxBid {
                request_id,
                auction_id,
                max,
                currency,
            } => self.bid(request_id, auction_id, &max, currency, true).await,
            ClientFrame::ChatSend {
                room_id,
                client_msg_id,
                body,
                request_id,
            } => {
                self.chat_send(room_id, client_msg_id, body, request_id)
                    .await
            }
            ClientFrame::ChatRead {
                room_id,
                seq,
                request_id,
            } => {
                if let Err(refusal) = self.state.take_rate(self.user).await {
                    return err(refusal.code(), refusal.message(), &request_id);
                }
                if seq < 0 {
                    return err("INVALID_FRAME", "seq must not be negative", &request_id);
                }
                let rid = request_id
                    .clone()
                    .unwrap_or_else(|| format!("read-{}", uuid::Uuid::new_v4()));
                self.publish_chat(room_id, ChatAction::Read { seq }, rid, &request_id)
                    .await
            }
            ClientFrame::Typing {
                room_id,
                request_id,
            } => {
                if !self.state.hub.watches_room(room_id, self.conn_id) {
                    return err("NOT_SUBSCRIBED", "subscribe to the room first", &request_id);
                }
                if let Err(refusal) = self.state.take_rate(self.user).await {
                    return err(refusal.code(), refusal.message(), &request_id);
                }
                self.state
                    .signal(room_id, self.user, SignalKind::Typing, Some(self.conn_id))
                    .await;
                Vec::new()
            }
            ClientFrame::Presence {
                room_id,
                request_id,
            } => {
                if !self.state.hub.watches_room(room_id, self.conn_id) {
                    return err("NOT_SUBSCRIBED", "subscribe to the room first", &request_id);
                }
                match self.state.presence.online_in_room(room_id).await {
                    Ok(user_ids) => vec![ServerFrame::PresenceList {
                        request_id,
                        room_id,
                        user_ids,
                    }],
                    Err(e) => {
                        tracing::warn!(error = %e, "presence list unavailable");
                        err("UNAVAILABLE", "presence unavailable, retry", &request_id)
                    }
                }
            }
        }
    }

    fn reauth(&mut self, token: &str, request_id: Option<String>) -> Vec<ServerFrame> {
        match self.state.auth.verify_access(token) {
            Ok(claims) if claims.sub == self.user => {
                self.expires_at = claims.exp;
                self.issued_ms = claims.issued_ms();
                self.sid.clone_from(&claims.sid);
                vec![ServerFrame::AuthOk {
                    request_id,
                    user_id: self.user,
                    expires_at: claims.exp,
                }]
            }
            Ok(_) => err(
                "AUTH_USER_MISMATCH",
                "a connection cannot change its user",
                &request_id,
            ),
            Err(e) => err(e.code(), e.to_string(), &request_id),
        }
    }

    fn subscription_room_left(&self, request_id: &Option<String>) -> Option<Vec<ServerFrame>> {
        (self.auctions.len() + self.rooms.len() >= self.state.config.max_subscriptions).then(|| {
            err(
                "TOO_MANY_SUBSCRIPTIONS",
                format!(
                    "at most {} subscriptions per connection",
                    self.state.config.max_subscriptions
                ),
                request_id,
            )
        })
    }

    async fn subscribe_auction(
        &mut self,
        id: AuctionId,
        since: Option<i64>,
        request_id: Option<String>,
    ) -> Vec<ServerFrame> {
        if !self.auctions.contains_key(&id) {
            if let Some(refused) = self.subscription_room_left(&request_id) {
                return refused;
            }
        }
        // Watch first, then read: anything committed after the read arrives live,
        // anything before is in the read, and `deliver` drops the overlap.
        self.state.hub.watch_auction(id, self.conn_id);
        let record = match self.state.auctions.get(id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.state.hub.unwatch_auction(id, self.conn_id);
                return err("NOT_FOUND", "no such auction", &request_id);
            }
            Err(e) => {
                self.state.hub.unwatch_auction(id, self.conn_id);
                tracing::error!(error = %e, "subscribe: cannot read auction");
                return err("UNAVAILABLE", "storage unavailable, retry", &request_id);
            }
        };
        let view = AuctionView::of(&record);
        let mut truncated = false;
        let steps = match since {
            Some(since) if since < view.step_count => {
                let max = self.state.config.max_replay;
                let page = PageQuery {
                    after: Some(since),
                    before: None,
                    limit: Some(max),
                };
                match self.state.auctions.steps(id, page, max).await {
                    Ok(mut steps) => {
                        // Steps stored after the snapshot was read arrive
                        // live: replaying them too would deliver them twice.
                        steps.retain(|s| s.seq <= view.step_count);
                        truncated = steps.last().is_some_and(|s| s.seq < view.step_count);
                        steps
                    }
                    Err(_) => return err("UNAVAILABLE", "storage unavailable, retry", &request_id),
                }
            }
            _ => Vec::new(),
        };
        let seq = view.step_count;
        self.auctions.insert(id, seq);
        vec![
            ServerFrame::AuctionUpdate {
                auction: view,
                steps,
            },
            ServerFrame::Subscribed {
                request_id,
                auction_id: Some(id),
                room_id: None,
                seq,
                truncated,
            },
        ]
    }

    async fn subscribe_room(
        &mut self,
        id: RoomId,
        since: Option<i64>,
        request_id: Option<String>,
    ) -> Vec<ServerFrame> {
        if !self.rooms.contains_key(&id) {
            if let Some(refused) = self.subscription_room_left(&request_id) {
                return refused;
            }
        }
        let room = match self.state.chat.get_room(id).await {
            Ok(Some(room)) => room,
            Ok(None) => return err("NOT_FOUND", "no such room", &request_id),
            Err(_) => return err("UNAVAILABLE", "storage unavailable, retry", &request_id),
        };
        if !room.kind.is_public() {
            match self.state.chat.member(id, self.user).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return err(
                        "NOT_A_MEMBER",
                        "only members can read this room",
                        &request_id,
                    )
                }
                Err(_) => return err("UNAVAILABLE", "storage unavailable, retry", &request_id),
            }
        }
        // Entered already unless this is a new watch (or the user was
        // evicted from the room meanwhile, which left the entry).
        let entered = self.present.contains(&id) && self.state.hub.watches_room(id, self.conn_id);
        self.state.hub.watch_room(id, self.conn_id, self.user);
        let last_seq = match self.state.chat.get_room(id).await {
            Ok(Some(room)) => room.last_seq,
            _ => room.last_seq,
        };
        let mut out = Vec::new();
        let mut sent = last_seq;
        let mut truncated = false;
        if let Some(since) = since.filter(|s| *s < last_seq) {
            let since = since.max(0);
            let max = self.state.config.max_replay;
            let page = PageQuery {
                after: Some(since),
                before: None,
                limit: Some(max),
            };
            match self.state.chat.history(id, page, max).await {
                Ok(messages) => {
                    sent = messages.last().map(|m| m.seq).unwrap_or(since);
                    truncated = sent < last_seq;
                    out.extend(
                        messages
                            .into_iter()
                            .map(|message| ServerFrame::ChatMessage { message }),
                    );
                }
                Err(_) => {
                    // A room watched before keeps its watch (and presence).
                    if !self.rooms.contains_key(&id) {
                        self.state.hub.unwatch_room(id, self.conn_id);
                    }
                    return err("UNAVAILABLE", "storage unavailable, retry", &request_id);
                }
            }
        }
        // After a cut-short replay, the next live message fills the gap (up to
        // `max_replay` again); the client pages anything older over REST.
        self.rooms.insert(id, sent);
        if !entered {
            self.present.remove(&id);
            match self.state.presence.enter(id, self.user).await {
                Ok(first) => {
                    self.present.insert(id);
                    if first {
                        self.state
                            .signal(id, self.user, SignalKind::Online, Some(self.conn_id))
                            .await;
                    }
                }
                // Presence is a hint: the subscription works without it.
                Err(e) => tracing::warn!(error = %e, room = id, "presence enter failed"),
            }
        }
        out.push(ServerFrame::Subscribed {
            request_id,
            auction_id: None,
            room_id: Some(id),
            seq: last_seq,
            truncated,
        });
        out
    }

    async fn unsubscribe(
        &mut self,
        auction: Option<AuctionId>,
        room: Option<RoomId>,
        request_id: Option<String>,
    ) -> Vec<ServerFrame> {
        match (auction, room) {
            (Some(id), None) => {
                self.auctions.remove(&id);
                self.state.hub.unwatch_auction(id, self.conn_id);
            }
            (None, Some(id)) => {
                self.rooms.remove(&id);
                let watched = self.state.hub.unwatch_room(id, self.conn_id).is_some();
                if self.present.remove(&id) && watched {
                    self.state.leave_room(id, self.user).await;
                }
            }
            _ => {
                return err(
                    "INVALID_FRAME",
                    "UNSUBSCRIBE needs exactly one of auctionId, roomId",
                    &request_id,
                )
            }
        }
        vec![ServerFrame::Unsubscribed {
            request_id,
            auction_id: auction,
            room_id: room,
        }]
    }

    async fn bid(
        &mut self,
        request_id: String,
        auction_id: AuctionId,
        value: &Number,
        currency: Option<String>,
        max: bool,
    ) -> Vec<ServerFrame> {
        let rid = Some(request_id.clone());
        if request_id.is_empty() || request_id.len() > 128 {
            return err(
                "INVALID_REQUEST_ID",
                "requestId must be 1 to 128 characters",
                &rid,
            );
        }
        let Some(amount) = amount(value) else {
            return err(
                "INVALID_AMOUNT",
                "amounts are positive integers of minor units, at most 10^15",
                &rid,
            );
        };
        if let Err(refusal) = self.state.take_rate(self.user).await {
            return err(refusal.code(), refusal.message(), &rid);
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return err(
                "TOO_MANY_PENDING",
                "wait for results before sending more bids",
                &rid,
            );
        }
        let action = if max {
            Action::MaxBid {
                max: amount,
                currency,
            }
        } else {
            Action::Bid { amount, currency }
        };
        let command = AuctionCommand {
            auction_id,
            user_id: self.user,
            origin: self.origin(request_id.clone()),
            action,
        };
        let now = Instant::now();
        self.in_flight.insert(request_id.clone(), now);
        self.sent.push_back((now, request_id.clone()));
        if let Err(e) = self.state.send_auction(&command).await {
            self.in_flight.remove(&request_id);
            tracing::error!(error = %e, "cannot publish a bid");
            return err("UNAVAILABLE", "cannot take bids right now, retry", &rid);
        }
        Vec::new()
    }

    async fn chat_send(
        &mut self,
        room_id: RoomId,
        client_msg_id: String,
        body: String,
        request_id: Option<String>,
    ) -> Vec<ServerFrame> {
        if client_msg_id.is_empty() || client_msg_id.len() > 128 {
            return err(
                "INVALID_CLIENT_MSG_ID",
                "clientMsgId must be 1 to 128 characters",
                &request_id,
            );
        }
        let limit = self.state.config.max_message_chars;
        if body.chars().count() > limit {
            return err(
                "MESSAGE_TOO_LONG",
                format!("messages are limited to {limit} characters"),
                &request_id,
            );
        }
        if body.trim().is_empty() {
            return err("EMPTY_MESSAGE", "a message needs some text", &request_id);
        }
        if let Err(refusal) = self.state.take_rate(self.user).await {
            return err(refusal.code(), refusal.message(), &request_id);
        }
        let rid = request_id.clone().unwrap_or_else(|| client_msg_id.clone());
        self.publish_chat(
            room_id,
            ChatAction::Send {
                client_msg_id,
                body,
            },
            rid,
            &request_id,
        )
        .await
    }

    async fn publish_chat(
        &self,
        room_id: RoomId,
        action: ChatAction,
        rid: String,
        request_id: &Option<String>,
    ) -> Vec<ServerFrame> {
        let command = ChatCommand {
            room_id,
            user_id: self.user,
            origin: self.origin(rid),
            action,
        };
        if let Err(e) = self.state.send_chat(&command).await {
            tracing::error!(error = %e, "cannot publish a chat command");
            return err(
                "UNAVAILABLE",
                "cannot take messages right now, retry",
                request_id,
            );
        }
        Vec::new()
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.state.config.command_timeout_ms)
    }

    /// When the oldest unanswered bid times out, if any bid is unanswered.
    pub fn next_expiry(&mut self) -> Option<Instant> {
        while let Some((sent, request_id)) = self.sent.front() {
            if self.in_flight.get(request_id) == Some(sent) {
                return Some(*sent + self.command_timeout());
            }
            self.sent.pop_front();
        }
        None
    }

    /// Answers `TIMEOUT` to every bid unanswered for `command_timeout_ms`
    /// and frees its slot: a result lost on the way (a worker that died
    /// mid-batch) must not hold one of the `MAX_IN_FLIGHT` slots until the
    /// client reconnects. The client learns the outcome by retrying with the
    /// same request id; a late result is still delivered if it comes.
    pub fn expire_in_flight(&mut self) -> Vec<ServerFrame> {
        let deadline = Instant::now() - self.command_timeout();
        let mut expired = Vec::new();
        while let Some((sent, _)) = self.sent.front() {
            if *sent > deadline {
                break;
            }
            let Some((sent, request_id)) = self.sent.pop_front() else {
                break;
            };
            if self.in_flight.get(&request_id) == Some(&sent) {
                self.in_flight.remove(&request_id);
                metrics().command_timeouts.with_label_values(&["ws"]).inc();
                expired.push(ServerFrame::error(
                    "TIMEOUT",
                    "no result in time; retry with the same requestId to learn the outcome",
                    Some(request_id),
                ));
            }
        }
        expired
    }

    /// Turns a queued item into the texts to write, dropping what this
    /// connection already has and filling a gap in a room's sequence.
    pub async fn deliver(&mut self, out: Outbound) -> Vec<String> {
        match out {
            Outbound::Frame { kind, text } => {
                metrics().frames_out.with_label_values(&[kind]).inc();
                vec![text.to_string()]
            }
            Outbound::BidResult { request_id, text } => {
                if let Some(started) = self.in_flight.remove(&request_id) {
                    metrics()
                        .bid_latency
                        .observe(started.elapsed().as_secs_f64());
                }
                metrics()
                    .frames_out
                    .with_label_values(&["BID_RESULT"])
                    .inc();
                vec![text.to_string()]
            }
            Outbound::AuctionUpdate {
                auction_id,
                step_count,
                has_steps,
                text,
            } => {
                let Some(known) = self.auctions.get_mut(&auction_id) else {
                    return Vec::new();
                };
                // A batch's steps are stored in one commit, so an update whose
                // last step is at or before what this connection has carries
                // only steps it has (the subscribe snapshot or a replay). An
                // update without steps at the known count is a phase change.
                if step_count < *known || (has_steps && step_count == *known) {
                    return Vec::new();
                }
                *known = step_count;
                metrics()
                    .frames_out
                    .with_label_values(&["AUCTION_UPDATE"])
                    .inc();
                vec![text.to_string()]
            }
            Outbound::ChatMessage { room_id, seq, text } => {
                let Some(&last) = self.rooms.get(&room_id) else {
                    return Vec::new();
                };
                if seq <= last {
                    return Vec::new();
                }
                let mut texts = Vec::new();
                if seq > last + 1 {
                    let missing = (seq - last - 1).min(self.state.config.max_replay as i64) as u32;
                    let page = PageQuery {
                        after: Some(last),
                        before: Some(seq),
                        limit: Some(missing),
                    };
                    if let Ok(messages) =
                        self.state.chat.history(room_id, page, missing.max(1)).await
                    {
                        texts.extend(
                            messages
                                .into_iter()
                                .map(|m| ServerFrame::ChatMessage { message: m }.to_text()),
                        );
                    }
                }
                texts.push(text.to_string());
                self.rooms.insert(room_id, seq);
                metrics()
                    .frames_out
                    .with_label_values(&["CHAT_MESSAGE"])
                    .inc_by(texts.len() as u64);
                texts
            }
        }
    }
}
