//! `AuctionRepository`: idempotent creation, listing, the batch commit of
//! engine states, price steps and stored results, and deal rooms.

use std::sync::Arc;

use bowchat_auction::engine::{AuctionState, AuctionTerms, Command, Event, IncrementRule, Phase};
use bowchat_auction::messages::CommandResult;
use bowchat_auction::ports::{
    AuctionBatch, AuctionFilter, NewAuction, RepoError, ResultKey, StateWrite, StoredResult, Watch,
};
use bowchat_chat::ports::{MemberRole, RoomKind};
use bowchat_model::{PageQuery, UserId};

use crate::Store;

/// Terms of an auction open from t=1000 to t=100_000.
pub fn terms(seller: UserId) -> AuctionTerms {
    AuctionTerms {
        seller,
        currency: "EUR".into(),
        starting_price: 100,
        increment: IncrementRule::Fixed { amount: 10 },
        reserve: None,
        buy_now: None,
        starts_at: 1_000,
        ends_at: 100_000,
        soft_close: None,
    }
}

pub fn new_auction(title: &str, seller: UserId, external_id: Option<&str>) -> NewAuction {
    NewAuction {
        title: title.into(),
        description: format!("about {title}"),
        terms: terms(seller),
        external_id: external_id.map(str::to_string),
        bid_partitions: Some(4),
    }
}

pub fn accepted(price: i64) -> CommandResult {
    CommandResult {
        accepted: true,
        code: None,
        message: None,
        leading: true,
        price: Some(price),
        minimum: Some(price + 10),
    }
}

/// Applies `bids` (bidder, amount) to `state` at `at` and returns the batch
/// the role would store: the new state, its steps and one result per bid.
/// A batch of accepted bids on `auction`, computed from `state` as stored at
/// `version`; `state` ends as the batch leaves it.
pub fn bid_batch(
    auction: i64,
    version: i64,
    state: &mut AuctionState,
    bids: &[(UserId, i64)],
    at: i64,
) -> AuctionBatch {
    let mut batch = AuctionBatch::default();
    for (i, (bidder, amount)) in bids.iter().enumerate() {
        let applied = state
            .apply(
                &Command::Bid {
                    bidder: *bidder,
                    amount: *amount,
                },
                at,
            )
            .expect("bid accepted");
        for event in applied.events {
            if let Event::Step(step) = event {
                batch.steps.push((auction, step));
            }
        }
        batch.results.push(StoredResult {
            auction_id: auction,
            user_id: *bidder,
            request_id: format!("r{at}-{i}"),
            result: accepted(*amount),
        });
    }
    batch.states.push(StateWrite {
        auction_id: auction,
        read_version: version,
        state: state.clone(),
    });
    batch
}

pub async fn create_is_idempotent_by_external_id(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let repo = repos.auction;
    let first = repo
        .create(new_auction("lamp", 7, Some("uid-1")), 500)
        .await
        .unwrap();
    assert_eq!(first.state.phase, Phase::Scheduled);
    assert_eq!(first.state, AuctionState::new(terms(7), 500));
    let again = repo
        .create(new_auction("other title", 7, Some("uid-1")), 600)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(repo.get(first.id).await.unwrap(), Some(first.clone()));

    // The key is the seller's own: another seller's equal key is a new auction.
    let other = repo
        .create(new_auction("other title", 8, Some("uid-1")), 600)
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    assert_eq!(other.state.terms.seller, 8);
    assert_eq!(
        repo.create(new_auction("x", 8, Some("uid-1")), 700)
            .await
            .unwrap(),
        other
    );

    // Without an external id every call creates a new auction.
    let a = repo.create(new_auction("a", 7, None), 700).await.unwrap();
    let b = repo.create(new_auction("a", 7, None), 700).await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.state.phase, Phase::Scheduled);
    assert!(repo.get(9_999).await.unwrap().is_none());

    // Each auction has its own public room, owned by the seller.
    let room = repos
        .chat
        .get_room(first.room_id.expect("room"))
        .await
        .unwrap()
        .expect("room stored");
    assert_eq!(
        (room.kind, room.auction_id, room.name.as_str()),
        (RoomKind::Auction, Some(first.id), "lamp")
    );
    let owner = repos
        .chat
        .member(room.id, 7)
        .await
        .unwrap()
        .expect("seller");
    assert_eq!(owner.role, MemberRole::Owner);
    assert_ne!(a.room_id, b.room_id);
}

pub async fn list_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let mut ids = Vec::new();
    for (i, seller) in [1, 2, 1, 2, 1].into_iter().enumerate() {
        // Created before or after the start: scheduled or open.
        let now = if i % 2 == 0 { 500 } else { 2_000 };
        let record = repo
            .create(new_auction(&format!("a{i}"), seller, None), now)
            .await
            .unwrap();
        ids.push(record.id);
    }
    let list = |phase, seller, before_id, limit| {
        let repo = repo.clone();
        async move {
            repo.list(&AuctionFilter {
                phase,
                seller,
                limit,
                before_id,
                ..AuctionFilter::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(None, None, None, 10).await,
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(list(None, None, None, 2).await, vec![ids[4], ids[3]]);
    assert_eq!(
        list(None, None, Some(ids[3]), 2).await,
        vec![ids[2], ids[1]]
    );
    assert_eq!(list(None, None, Some(ids[0]), 2).await, Vec::<i64>::new());
    assert_eq!(
        list(Some(Phase::Open), None, None, 10).await,
        vec![ids[3], ids[1]]
    );
    assert_eq!(
        list(Some(Phase::Scheduled), Some(1), Some(ids[4]), 10).await,
        vec![ids[2], ids[0]]
    );
    assert_eq!(list(None, Some(2), None, 10).await, vec![ids[3], ids[1]]);
    assert_eq!(
        list(Some(Phase::Closed), None, None, 10).await,
        Vec::<i64>::new()
    );
    // A zero limit still answers one row.
    assert_eq!(list(None, None, None, 0).await, vec![ids[4]]);
}

pub async fn list_searches_text_and_current_price(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let camera = repo
        .create(new_auction("Vintage Camera", 1, None), 2_000)
        .await
        .unwrap();
    let lamp = repo
        .create(
            NewAuction {
                description: "A brass lamp, CAMERA-shy".into(),
                ..new_auction("Lamp", 1, None)
            },
            2_000,
        )
        .await
        .unwrap();
    let bike = repo
        .create(new_auction("Bike 100% carbon_fibre", 2, None), 2_000)
        .await
        .unwrap();
    // The bike's price is 300 now; the others still ask their starting 100.
    let mut state = bike.state.clone();
    repo.commit(&bid_batch(
        bike.id,
        bike.version,
        &mut state,
        &[(3, 300)],
        3_000,
    ))
    .await
    .unwrap();

    let list = |text: Option<&str>, min_price, max_price| {
        let repo = repo.clone();
        let filter = AuctionFilter {
            text: text.map(str::to_string),
            min_price,
            max_price,
            limit: 10,
            ..AuctionFilter::default()
        };
        async move {
            repo.list(&filter)
                .await
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    // Title or description, ignoring case.
    assert_eq!(
        list(Some("camera"), None, None).await,
        vec![lamp.id, camera.id]
    );
    assert_eq!(list(Some("VINTAGE"), None, None).await, vec![camera.id]);
    assert_eq!(list(Some("brass lamp"), None, None).await, vec![lamp.id]);
    // LIKE's wildcards are plain characters here.
    assert_eq!(list(Some("100%"), None, None).await, vec![bike.id]);
    assert_eq!(list(Some("_"), None, None).await, vec![bike.id]);
    assert_eq!(list(Some("%"), None, None).await, vec![bike.id]);
    assert_eq!(list(Some("nothing"), None, None).await, Vec::<i64>::new());
    // The current price, or the starting price before the first bid; inclusive.
    assert_eq!(list(None, Some(300), None).await, vec![bike.id]);
    assert_eq!(list(None, Some(301), None).await, Vec::<i64>::new());
    assert_eq!(list(None, None, Some(100),).await, vec![lamp.id, camera.id]);
    assert_eq!(
        list(None, Some(100), Some(300)).await,
        vec![bike.id, lamp.id, camera.id]
    );
    assert_eq!(
        list(Some("camera"), Some(101), None).await,
        Vec::<i64>::new()
    );
}

pub async fn watchlists_are_per_user_bounded_and_newest_first(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let mut ids = Vec::new();
    for title in ["first", "second", "third"] {
        ids.push(
            repo.create(new_auction(title, 1, None), 2_000)
                .await
                .unwrap()
                .id,
        );
    }
    let listed = |user| {
        let repo = repo.clone();
        async move {
            repo.watchlist(user)
                .await
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(repo.watch(5, ids[0], 2, 10).await.unwrap(), Watch::Added);
    assert_eq!(repo.watch(5, ids[1], 2, 20).await.unwrap(), Watch::Added);
    assert_eq!(
        repo.watch(5, ids[0], 2, 30).await.unwrap(),
        Watch::AlreadyWatched
    );
    assert_eq!(repo.watch(5, ids[2], 2, 40).await.unwrap(), Watch::Full);
    assert_eq!(
        listed(5).await,
        vec![ids[1], ids[0]],
        "newest watched first"
    );
    // Another user's list is their own.
    assert_eq!(repo.watch(6, ids[2], 2, 50).await.unwrap(), Watch::Added);
    assert_eq!(listed(6).await, vec![ids[2]]);
    assert!(repo.unwatch(5, ids[1]).await.unwrap());
    assert!(
        !repo.unwatch(5, ids[1]).await.unwrap(),
        "not on the list any more"
    );
    assert_eq!(repo.watch(5, ids[2], 2, 60).await.unwrap(), Watch::Added);
    assert_eq!(listed(5).await, vec![ids[2], ids[0]]);
    assert_eq!(listed(7).await, Vec::<i64>::new());
    // The list's filters apply to a watchlist too (newest auction first).
    let watched = |user, text: Option<&str>| {
        let repo = repo.clone();
        let filter = AuctionFilter {
            watched_by: Some(user),
            text: text.map(str::to_string),
            limit: 10,
            ..AuctionFilter::default()
        };
        async move {
            repo.list(&filter)
                .await
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(watched(5, None).await, vec![ids[2], ids[0]]);
    assert_eq!(watched(5, Some("thi")).await, vec![ids[2]]);
    assert_eq!(watched(7, None).await, Vec::<i64>::new());

    // Many adds at once never pass the bound.
    let adds = (0..8).map(|i| {
        let repo = repo.clone();
        let auction = ids[i % 3];
        async move {
            repo.watch(8 + (i as i64 % 2), auction, 2, 70)
                .await
                .unwrap()
        }
    });
    futures::future::join_all(adds).await;
    assert_eq!(listed(8).await.len(), 2);
    assert_eq!(listed(9).await.len(), 2);
}

pub async fn commit_stores_states_steps_and_results(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let record = repo
        .create(new_auction("vase", 1, None), 2_000)
        .await
        .unwrap();
    let other = repo
        .create(new_auction("jug", 1, None), 2_000)
        .await
        .unwrap();
    let mut state = record.state.clone();
    let batch = bid_batch(
        record.id,
        record.version,
        &mut state,
        &[(2, 100), (3, 120), (2, 150)],
        3_000,
    );
    assert_eq!(batch.steps.len(), 3);
    repo.commit(&batch).await.unwrap();

    let stored = repo.get(record.id).await.unwrap().unwrap();
    assert_eq!(stored.state, state);
    assert_eq!(
        (stored.state.price, stored.state.leader),
        (Some(150), Some(2))
    );
    assert_eq!(
        repo.get(other.id).await.unwrap().unwrap().state,
        other.state
    );
    let steps = repo
        .steps(record.id, PageQuery::default(), 100)
        .await
        .unwrap();
    let expected: Vec<_> = batch.steps.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(steps, expected);

    let unfinished: Vec<i64> = repo
        .unfinished()
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(unfinished, vec![record.id, other.id]);

    // Closing at the end: the auction leaves the unfinished set.
    state.apply(&Command::Tick, 100_000).unwrap();
    assert_eq!(state.phase, Phase::Closed);
    repo.commit(&AuctionBatch {
        states: vec![StateWrite {
            auction_id: record.id,
            read_version: record.version + 1,
            state: state.clone(),
        }],
        ..AuctionBatch::default()
    })
    .await
    .unwrap();
    let unfinished: Vec<i64> = repo
        .unfinished()
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(unfinished, vec![other.id]);
    let closed = repo
        .list(&AuctionFilter {
            phase: Some(Phase::Closed),
            limit: 10,
            ..AuctionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].state.winner, Some(2));

    // A batch that repeats a stored step fails whole: the state is not overwritten.
    let mut replay = record.state.clone();
    let bad = bid_batch(
        record.id,
        record.version + 2,
        &mut replay,
        &[(3, 500)],
        4_000,
    );
    assert!(repo.commit(&bad).await.is_err());
    assert_eq!(repo.get(record.id).await.unwrap().unwrap().state, state);
    assert_eq!(
        repo.find_results(&[(record.id, 3, "r4000-0".into())])
            .await
            .unwrap(),
        vec![]
    );
}

/// A batch computed from an older version than the stored one is refused
/// whole, and the version moves by one per stored state.
pub async fn a_stale_version_stores_nothing(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let record = repo
        .create(new_auction("stool", 1, None), 2_000)
        .await
        .unwrap();
    assert_eq!(record.version, 0);
    let mut ours = record.state.clone();
    repo.commit(&bid_batch(record.id, 0, &mut ours, &[(2, 100)], 3_000))
        .await
        .unwrap();
    let stored = repo.get(record.id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state.price), (1, Some(100)));

    // A second writer that read version 0 places a higher bid: refused.
    let mut theirs = record.state.clone();
    let late = bid_batch(record.id, 0, &mut theirs, &[(3, 500)], 3_100);
    match repo.commit(&late).await {
        Err(RepoError::VersionConflict { auctions }) => assert_eq!(auctions, vec![record.id]),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let stored = repo.get(record.id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state.price), (1, Some(100)));
    assert!(repo
        .find_results(&[(record.id, 3, "r3100-0".into())])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        repo.steps(record.id, PageQuery::default(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Decided again on the stored state, it goes in.
    let mut again = stored.state.clone();
    repo.commit(&bid_batch(record.id, 1, &mut again, &[(3, 500)], 3_200))
        .await
        .unwrap();
    let stored = repo.get(record.id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state.price), (2, Some(500)));
}

/// The partition count an auction was created with stays; auctions without
/// one (from before pinning) are pinned once, finished ones never.
pub async fn auctions_keep_their_pinned_partition_count(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let pinned = repo
        .create(new_auction("pinned", 1, None), 2_000)
        .await
        .unwrap();
    assert_eq!(pinned.bid_partitions, Some(4));
    let mut older = new_auction("older", 1, None);
    older.bid_partitions = None;
    let older = repo.create(older, 2_000).await.unwrap();
    assert_eq!(older.bid_partitions, None);
    let mut done = new_auction("done", 1, None);
    done.bid_partitions = None;
    let done = repo.create(done, 2_000).await.unwrap();
    let mut closed = done.state.clone();
    closed.apply(&Command::Tick, 100_000).unwrap();
    repo.commit(&AuctionBatch {
        states: vec![StateWrite {
            auction_id: done.id,
            read_version: 0,
            state: closed,
        }],
        ..AuctionBatch::default()
    })
    .await
    .unwrap();

    assert_eq!(repo.pin_bid_partitions(6).await.unwrap(), 1);
    assert_eq!(repo.pin_bid_partitions(8).await.unwrap(), 0, "pinned once");
    let of = |id| {
        let repo = repo.clone();
        async move { repo.get(id).await.unwrap().unwrap().bid_partitions }
    };
    assert_eq!(of(pinned.id).await, Some(4));
    assert_eq!(of(older.id).await, Some(6));
    assert_eq!(
        of(done.id).await,
        None,
        "a finished auction gets no commands"
    );
}

pub async fn steps_page_like_history(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let record = repo
        .create(new_auction("clock", 1, None), 2_000)
        .await
        .unwrap();
    let mut state = record.state.clone();
    let bids: Vec<(UserId, i64)> = (0..60).map(|i| (2 + i % 2, 100 + 10 * i)).collect();
    repo.commit(&bid_batch(
        record.id,
        record.version,
        &mut state,
        &bids,
        3_000,
    ))
    .await
    .unwrap();
    let seqs = |page: PageQuery, max: u32| {
        let repo = repo.clone();
        async move {
            repo.steps(record.id, page, max)
                .await
                .unwrap()
                .iter()
                .map(|s| s.seq)
                .collect::<Vec<_>>()
        }
    };
    let page = |before, after, limit| PageQuery {
        before,
        after,
        limit,
    };
    // Default: the latest min(max, 50).
    assert_eq!(
        seqs(page(None, None, None), 100).await,
        (11..=60).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(page(None, None, None), 20).await,
        (41..=60).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(page(Some(11), None, Some(5)), 100).await,
        (6..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(page(None, Some(55), Some(10)), 100).await,
        (56..=60).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(page(None, Some(0), Some(500)), 30).await,
        (1..=30).collect::<Vec<_>>()
    );
    assert!(seqs(page(Some(1), None, None), 100).await.is_empty());
    assert!(repo
        .steps(9_999, PageQuery::default(), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn results_answer_retries(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let record = repo
        .create(new_auction("bowl", 1, None), 2_000)
        .await
        .unwrap();
    let other = repo
        .create(new_auction("cup", 1, None), 2_000)
        .await
        .unwrap();
    let mut state = record.state.clone();
    let batch = bid_batch(
        record.id,
        record.version,
        &mut state,
        &[(2, 100), (3, 110)],
        3_000,
    );
    repo.commit(&batch).await.unwrap();

    let mut found = repo
        .find_results(&[
            (record.id, 2, "r3000-0".into()),
            (record.id, 3, "r3000-1".into()),
            (record.id, 2, "r3000-0".into()),
            (record.id, 3, "r3000-0".into()),
            (record.id, 2, "unknown".into()),
        ])
        .await
        .unwrap();
    found.sort_by_key(|r| r.user_id);
    assert_eq!(found, batch.results);
    assert!(repo
        .find_results(&[(other.id, 2, "r3000-0".into())])
        .await
        .unwrap()
        .is_empty());
    assert!(repo.find_results(&[]).await.unwrap().is_empty());

    // Storing an answer again keeps the first one.
    let mut second = batch.results[0].clone();
    second.result = CommandResult::rejected("BID_TOO_LOW", "late", Some(120), Some(110));
    repo.commit(&AuctionBatch {
        results: vec![second],
        ..AuctionBatch::default()
    })
    .await
    .unwrap();
    let again = repo
        .find_results(&[(record.id, 2, "r3000-0".into())])
        .await
        .unwrap();
    assert_eq!(again, vec![batch.results[0].clone()]);

    // One look-up spans auctions: the same user and request id on another
    // auction is another answer.
    let mut elsewhere = batch.results[0].clone();
    elsewhere.auction_id = other.id;
    elsewhere.result = accepted(777);
    repo.commit(&AuctionBatch {
        results: vec![elsewhere.clone()],
        ..AuctionBatch::default()
    })
    .await
    .unwrap();
    let mut both = repo
        .find_results(&[
            (record.id, 2, "r3000-0".into()),
            (other.id, 2, "r3000-0".into()),
        ])
        .await
        .unwrap();
    both.sort_by_key(|r| r.auction_id);
    assert_eq!(both, vec![batch.results[0].clone(), elsewhere]);

    // Many keys in one lookup.
    let keys: Vec<ResultKey> = (0..1_500)
        .map(|i| (record.id, 2, format!("k{i}")))
        .collect();
    assert!(repo.find_results(&keys).await.unwrap().is_empty());
}

/// Refused answers stored before the cutoff go, a chunk at a time; accepted
/// answers and younger refusals stay.
pub async fn refused_results_expire_and_accepted_stay(store: Arc<dyn Store>) {
    let repo = store.open().await.auction;
    let record = repo
        .create(new_auction("vase", 1, None), 2_000)
        .await
        .unwrap();
    let mut state = record.state.clone();
    let mut batch = bid_batch(record.id, record.version, &mut state, &[(2, 100)], 3_000);
    for i in 0..5 {
        batch.results.push(StoredResult {
            auction_id: record.id,
            user_id: 3,
            request_id: format!("low-{i}"),
            result: CommandResult::rejected("BID_TOO_LOW", "too low", Some(110), Some(100)),
        });
    }
    repo.commit(&batch).await.unwrap();
    let keys: Vec<ResultKey> = batch
        .results
        .iter()
        .map(|r| (r.auction_id, r.user_id, r.request_id.clone()))
        .collect();
    let stored_at = bowchat_model::now_millis();

    // A cutoff before they were stored leaves everything.
    assert_eq!(
        repo.expire_results(stored_at - 60_000, 100).await.unwrap(),
        0
    );
    assert_eq!(repo.find_results(&keys).await.unwrap().len(), 6);

    // A cutoff after: the refusals go in chunks, the accepted answer stays.
    let cutoff = stored_at + 60_000;
    assert_eq!(repo.expire_results(cutoff, 2).await.unwrap(), 2);
    assert_eq!(repo.expire_results(cutoff, 100).await.unwrap(), 3);
    assert_eq!(repo.expire_results(cutoff, 100).await.unwrap(), 0);
    let left = repo.find_results(&keys).await.unwrap();
    assert_eq!(
        left,
        vec![batch.results[0].clone()],
        "only the accepted answer"
    );
}

pub async fn deal_room_is_opened_once(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let repo = repos.auction;
    let record = repo
        .create(new_auction("car", 1, None), 2_000)
        .await
        .unwrap();
    let room = repo.open_deal_room(&record, 5, 9_000).await.unwrap();
    assert_ne!(Some(room), record.room_id);
    assert_eq!(repo.open_deal_room(&record, 5, 9_500).await.unwrap(), room);
    assert_eq!(
        repo.get(record.id).await.unwrap().unwrap().deal_room_id,
        Some(room)
    );
    let deal = repos.chat.get_room(room).await.unwrap().unwrap();
    assert_eq!(
        (deal.kind, deal.auction_id, deal.name.as_str()),
        (RoomKind::Deal, Some(record.id), "Deal: car")
    );
    let members: Vec<(UserId, MemberRole)> = repos
        .chat
        .members(room)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(
        members,
        vec![(1, MemberRole::Owner), (5, MemberRole::Member)]
    );

    // The role records the room in a batch too (idempotently).
    repo.commit(&AuctionBatch {
        deal_rooms: vec![(record.id, room)],
        ..AuctionBatch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        repo.get(record.id).await.unwrap().unwrap().deal_room_id,
        Some(room)
    );
}

pub async fn concurrent_creates_with_one_external_id_make_one_auction(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let repo = repos.auction;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.create(new_auction("lamp", 7, Some("uid-9")), 500 + i)
                    .await
            })
        })
        .collect();
    let mut records = Vec::new();
    for task in tasks {
        records.push(task.await.expect("join").expect("create"));
    }
    assert!(records.windows(2).all(|w| w[0] == w[1]), "{records:?}");
    let all = repo
        .list(&AuctionFilter {
            limit: 100,
            ..AuctionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    // One public room, not one per attempt.
    assert_eq!(repos.chat.rooms_of(7).await.unwrap().len(), 1);

    // Racing deal-room opens give one room too.
    let record = records[0].clone();
    let opens: Vec<_> = (0..6)
        .map(|i| {
            let repo = repo.clone();
            let record = record.clone();
            tokio::spawn(async move { repo.open_deal_room(&record, 5, 9_000 + i).await })
        })
        .collect();
    let mut rooms = Vec::new();
    for open in opens {
        rooms.push(open.await.expect("join").expect("open"));
    }
    rooms.dedup();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(repos.chat.rooms_of(5).await.unwrap().len(), 1);
}
