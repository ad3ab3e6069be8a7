//! `/api/auctions/*`: browse, create, cancel, bid history and REST bidding.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bowchat_auction::engine::{validate_terms, AuctionTerms, IncrementRule, Phase, SoftClose};
use bowchat_auction::messages::{Action, AuctionCommand, CommandResult};
use bowchat_auction::ports::{AuctionFilter, NewAuction};
use bowchat_auction::AuctionView;
use bowchat_bus::topics;
use bowchat_model::{now_millis, AuctionId, Origin, PageQuery, UserId};
use serde::Deserialize;
use serde_json::json;

use crate::hub::Answer;
use crate::{ApiError, AppState, Body, Caller, GatewayConfig, Id, Params};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auctions", get(list).post(create))
        .route("/api/auctions/{id}", get(fetch))
        .route("/api/auctions/{id}/cancel", post(cancel))
        .route("/api/auctions/{id}/bids", get(bids).post(bid))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    phase: Option<Phase>,
    seller: Option<UserId>,
    before: Option<AuctionId>,
    limit: Option<u32>,
    /// Text the title or description contains, ignoring case.
    q: Option<String>,
    /// Inclusive bounds on the current price (the starting price before the
    /// first bid), in minor units.
    min_price: Option<i64>,
    max_price: Option<i64>,
    /// Only the caller's watchlist (needs a token).
    #[serde(default)]
    watching: bool,
}

impl ListQuery {
    /// The repository filter, or why the query asks for nothing sensible.
    fn filter(
        self,
        config: &GatewayConfig,
        caller: Option<&Caller>,
    ) -> Result<AuctionFilter, ApiError> {
        let watched_by = match (self.watching, caller) {
            (false, _) => None,
            (true, Some(caller)) => Some(caller.id),
            (true, None) => {
                return Err(ApiError::unauthorized(
                    "AUTH_REQUIRED",
                    "watching=true lists the caller's watchlist: send Authorization: Bearer <access token>",
                ))
            }
        };
        let text = self
            .q
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty());
        if let Some(text) = &text {
            let chars = text.chars().count();
            if chars > config.max_search_chars {
                return Err(ApiError::bad_request(
                    "INVALID_QUERY",
                    format!(
                        "q has {chars} characters; at most {} are searched",
                        config.max_search_chars
                    ),
                ));
            }
        }
        for (name, bound) in [("minPrice", self.min_price), ("maxPrice", self.max_price)] {
            if bound.is_some_and(|b| b < 0) {
                return Err(ApiError::bad_request(
                    "INVALID_QUERY",
                    format!("{name} must not be negative"),
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price) {
            if min > max {
                return Err(ApiError::bad_request(
                    "INVALID_QUERY",
                    format!("minPrice {min} is above maxPrice {max}"),
                ));
            }
        }
        Ok(AuctionFilter {
            phase: self.phase,
            seller: self.seller,
            before_id: self.before,
            limit: self.limit.unwrap_or(50).clamp(1, config.max_page),
            text,
            min_price: self.min_price,
            max_price: self.max_price,
            watched_by,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Params(q): Params<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = q.filter(&state.config, caller.as_ref())?;
    let records = state.auctions.list(&filter).await?;
    let items: Vec<AuctionView> = records.iter().map(AuctionView::of).collect();
    Ok(Json(json!({ "items": items })))
}

/// Either a plain number (a fixed increment) or the engine's rule object.
#[derive(Deserialize)]
#[serde(untagged)]
enum IncrementInput {
    Fixed(i64),
    Rule(IncrementRule),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateAuction {
    title: String,
    #[serde(default)]
    description: String,
    currency: Option<String>,
    starting_price: i64,
    increment: Option<IncrementInput>,
    reserve: Option<i64>,
    buy_now: Option<i64>,
    /// Milliseconds since the epoch; default now.
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    /// Alternative to `endsAt`: seconds after the start.
    duration_secs: Option<i64>,
    soft_close: Option<SoftClose>,
    /// Idempotency key for creators that retry (the Kubernetes operator).
    external_id: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateAuction>,
) -> Result<impl IntoResponse, ApiError> {
    let title = body.title.trim().to_string();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "INVALID_TITLE",
            "title must be 1 to 200 characters",
        ));
    }
    if body.description.chars().count() > 10_000 {
        return Err(ApiError::bad_request(
            "INVALID_DESCRIPTION",
            "description must be at most 10000 characters",
        ));
    }
    if body
        .external_id
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.len() > 200)
    {
        return Err(ApiError::bad_request(
            "INVALID_EXTERNAL_ID",
            "externalId must be 1 to 200 characters",
        ));
    }
    let now = now_millis();
    let starts_at = body.starts_at.unwrap_or(now);
    let ends_at = match (body.ends_at, body.duration_secs) {
        (Some(end), None) => end,
        (None, Some(secs)) if (1..=365 * 24 * 3600).contains(&secs) => {
            starts_at.saturating_add(secs * 1000)
        }
        (None, None) => starts_at.saturating_add(3600 * 1000),
        _ => {
            return Err(ApiError::bad_request(
                "INVALID_TERMS",
                "give either endsAt or durationSecs (1 second to 1 year)",
            ))
        }
    };
    let increment = match body.increment {
        None => IncrementRule::Fixed { amount: 100 },
        Some(IncrementInput::Fixed(amount)) => IncrementRule::Fixed { amount },
        Some(IncrementInput::Rule(rule)) => rule,
    };
    let terms = AuctionTerms {
        seller: caller.id,
        currency: body.currency.unwrap_or_else(|| "USD".to_string()),
        starting_price: body.starting_price,
        increment,
        reserve: body.reserve,
        buy_now: body.buy_now,
        starts_at,
        ends_at,
        soft_close: body.soft_close,
    };
    validate_terms(&terms).map_err(|reason| ApiError::bad_request("INVALID_TERMS", reason))?;
    if ends_at <= now {
        return Err(ApiError::bad_request(
            "INVALID_TERMS",
            "the auction must end in the future",
        ));
    }
    // Pinned for the auction's life (see `Shared::send_auction`). A count
    // cached before the topic grew is still a valid, smaller pin.
    let bid_partitions = state.bus.partitions(topics::AUCTION_BID).ok();
    let record = state
        .auctions
        .create(
            NewAuction {
                title,
                description: body.description,
                terms,
                external_id: body.external_id,
                bid_partitions,
            },
            now,
        )
        .await?;
    state.remember_bid_partitions(record.id, record.bid_partitions);
    // The owning auction role starts its open/close timers on this.
    let register = AuctionCommand {
        auction_id: record.id,
        user_id: caller.id,
        origin: Origin {
            gateway: state.hub.gateway_id.clone(),
            conn: 0,
            request_id: format!("register-{}", record.id),
        },
        action: Action::Register,
    };
    state.send_auction(&register).await?;
    Ok((StatusCode::CREATED, Json(AuctionView::of(&record))))
}

async fn fetch(
    State(state): State<AppState>,
    Id(id): Id<AuctionId>,
) -> Result<impl IntoResponse, ApiError> {
    let record = state
        .auctions
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("auction"))?;
    Ok(Json(AuctionView::of(&record)))
}

async fn bids(
    State(state): State<AppState>,
    Id(id): Id<AuctionId>,
    Params(page): Params<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if state.auctions.get(id).await?.is_none() {
        return Err(ApiError::not_found("auction"));
    }
    let steps = state
        .auctions
        .steps(id, page, state.config.max_page)
        .await?;
    Ok(Json(json!({ "items": steps })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BidBody {
    amount: serde_json::Number,
    currency: Option<String>,
    /// Retrying with the same id returns the first result.
    request_id: Option<String>,
    /// A hidden maximum (proxy bid) instead of a straight bid.
    #[serde(default)]
    max: bool,
}

async fn bid(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<AuctionId>,
    Body(body): Body<BidBody>,
) -> Result<impl IntoResponse, ApiError> {
    let amount = crate::frames::amount(&body.amount).ok_or_else(|| {
        ApiError::bad_request(
            "INVALID_AMOUNT",
            "amount must be a positive integer of minor units, at most 10^15",
        )
    })?;
    let request_id = request_id(body.request_id)?;
    state.take_rate(caller.id).await?;
    let action = if body.max {
        Action::MaxBid {
            max: amount,
            currency: body.currency,
        }
    } else {
        Action::Bid {
            amount,
            currency: body.currency,
        }
    };
    let (result, duplicate) = submit(&state, caller.id, id, request_id.clone(), action).await?;
    command_response(id, &request_id, result, duplicate)
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<AuctionId>,
) -> Result<impl IntoResponse, ApiError> {
    if state.auctions.get(id).await?.is_none() {
        return Err(ApiError::not_found("auction"));
    }
    let request_id = format!("cancel-{}", uuid::Uuid::new_v4());
    let (result, duplicate) = submit(
        &state,
        caller.id,
        id,
        request_id.clone(),
        Action::Cancel { operator: false },
    )
    .await?;
    command_response(id, &request_id, result, duplicate)
}

fn request_id(given: Option<String>) -> Result<String, ApiError> {
    match given {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(id) if !id.is_empty() && id.len() <= 128 => Ok(id),
        Some(_) => Err(ApiError::bad_request(
            "INVALID_REQUEST_ID",
            "requestId must be 1 to 128 characters",
        )),
    }
}

fn command_response(
    auction_id: AuctionId,
    request_id: &str,
    result: CommandResult,
    duplicate: bool,
) -> Result<impl IntoResponse, ApiError> {
    if !result.accepted {
        let code = result.code.clone().unwrap_or_else(|| "REJECTED".into());
        let status = match code.as_str() {
            "AUCTION_NOT_FOUND" => StatusCode::NOT_FOUND,
            "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
            "NOT_SELLER" | "SELLER_CANNOT_BID" => StatusCode::FORBIDDEN,
            "INVALID_AMOUNT" | "CURRENCY_MISMATCH" => StatusCode::BAD_REQUEST,
            _ => StatusCode::CONFLICT,
        };
        return Err(ApiError::new(
            status,
            &code,
            result.message.unwrap_or_default(),
        ));
    }
    Ok(Json(json!({
        "auctionId": auction_id,
        "requestId": request_id,
        "accepted": true,
        "leading": result.leading,
        "price": result.price,
        "minimum": result.minimum,
        "duplicate": duplicate,
    })))
}

/// Sends a command to the auction role and waits for its definite result.
async fn submit(
    state: &AppState,
    user: UserId,
    auction_id: AuctionId,
    request_id: String,
    action: Action,
) -> Result<(CommandResult, bool), ApiError> {
    let (call, waiter) = state.hub.wait_for();
    let command = AuctionCommand {
        auction_id,
        user_id: user,
        origin: Origin {
            gateway: state.hub.gateway_id.clone(),
            conn: call,
            request_id,
        },
        action,
    };
    if let Err(e) = state.send_auction(&command).await {
        state.hub.forget_waiter(call);
        return Err(e.into());
    }
    let timeout = Duration::from_millis(state.config.command_timeout_ms);
    match tokio::time::timeout(timeout, waiter).await {
        Ok(Ok(Answer::Bid { result, duplicate })) => Ok((result, duplicate)),
        _ => {
            state.hub.forget_waiter(call);
            crate::metrics::metrics()
                .command_timeouts
                .with_label_values(&["rest"])
                .inc();
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TIMEOUT",
                "no result in time; retry with the same requestId to learn the outcome",
            ))
        }
    }
}
