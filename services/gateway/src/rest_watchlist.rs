//! `/api/me/watchlist` and `/api/auctions/{id}/watch`: the auctions a user
//! follows. The web UI keeps them subscribed and says when one is about to
//! end, on any page; the list is stored, so every device shows the same.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use bowchat_auction::ports::Watch;
use bowchat_auction::AuctionView;
use bowchat_model::{now_millis, AuctionId};
use serde_json::json;

use crate::{ApiError, AppState, Caller, Id};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/me/watchlist", get(list))
        .route("/api/auctions/{id}/watch", put(watch).delete(unwatch))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let records = state.auctions.watchlist(caller.id).await?;
    let items: Vec<AuctionView> = records.iter().map(AuctionView::of).collect();
    Ok(Json(json!({ "items": items })))
}

/// 204 whether it was added now or before; 409 WATCHLIST_FULL at the limit.
async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<AuctionId>,
) -> Result<impl IntoResponse, ApiError> {
    if state.auctions.get(id).await?.is_none() {
        return Err(ApiError::not_found("auction"));
    }
    let max = state.config.max_watchlist;
    match state
        .auctions
        .watch(caller.id, id, max, now_millis())
        .await?
    {
        Watch::Added | Watch::AlreadyWatched => Ok(StatusCode::NO_CONTENT),
        Watch::Full => Err(ApiError::new(
            StatusCode::CONFLICT,
            "WATCHLIST_FULL",
            format!("a watchlist holds at most {max} auctions; stop watching one first"),
        )),
    }
}

/// 204 also when it was not watched: the end state is what was asked for.
async fn unwatch(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<AuctionId>,
) -> Result<impl IntoResponse, ApiError> {
    state.auctions.unwatch(caller.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
