//! Example-based tests of the auction rules engine: one small scenario per rule
//! (lifecycle, increments, reserve, buy-now, soft close, proxy bidding, seller
//! exclusion, cancel, rejections, terms validation).

use bowchat_auction::engine::*;
use bowchat_model::MAX_AMOUNT;
use Rejection as R;

const SELLER: UserId = 9;
const A: UserId = 1;
const B: UserId = 2;
const C: UserId = 3;
const START: Millis = 1_000;
const END: Millis = 10_000;
const TICK: Command = Command::Tick;
const EXTEND: SoftCloseMode = SoftCloseMode::Extend;
const DAYS_30: Millis = 30 * 24 * 60 * 60 * 1000;

/// Plain terms: start 100, fixed increment 10, no reserve, buy-now or soft close.
fn terms() -> AuctionTerms {
    AuctionTerms {
        seller: SELLER,
        currency: "EUR".into(),
        starting_price: 100,
        increment: IncrementRule::Fixed { amount: 10 },
        reserve: None,
        buy_now: None,
        starts_at: START,
        ends_at: END,
        soft_close: None,
    }
}

/// `terms()` changed by `change`.
fn with(change: impl FnOnce(&mut AuctionTerms)) -> AuctionTerms {
    let mut terms = terms();
    change(&mut terms);
    terms
}

/// An auction created at its start, hence open.
fn open(terms: AuctionTerms) -> AuctionState {
    validate_terms(&terms).expect("test terms are valid");
    AuctionState::new(terms, START)
}

fn bid(bidder: UserId, amount: i64) -> Command {
    Command::Bid { bidder, amount }
}

fn max_bid(bidder: UserId, max: i64) -> Command {
    Command::MaxBid { bidder, max }
}

fn cancel(by: UserId, operator: bool) -> Command {
    Command::Cancel { by, operator }
}

fn low(minimum: i64) -> Rejection {
    R::BelowMinimum { minimum }
}

fn closed(outcome: Outcome, winner: Option<UserId>, price: Option<i64>) -> Event {
    Event::Closed {
        outcome,
        winner,
        price,
    }
}

/// Applies a command that must be accepted.
fn ok(state: &mut AuctionState, cmd: Command, now: Millis) -> Applied {
    let result = state.apply(&cmd, now);
    result.unwrap_or_else(|e| panic!("{cmd:?} at {now} rejected: {e:?}"))
}

/// Applies a command that must be rejected with `expected`, leaving the state identical.
fn rejected(state: &mut AuctionState, cmd: Command, now: Millis, expected: Rejection) {
    let before = state.clone();
    assert_eq!(state.apply(&cmd, now), Err(expected), "{cmd:?} at {now}");
    assert_eq!(*state, before, "state changed by rejected {cmd:?}");
}

/// The (bidder, amount, proxy) of every step event.
fn steps(applied: &Applied) -> Vec<(UserId, i64, bool)> {
    let step = |e: &Event| match e {
        Event::Step(s) => Some((s.bidder, s.amount, s.proxy)),
        _ => None,
    };
    applied.events.iter().filter_map(step).collect()
}

fn outbids(applied: &Applied) -> Vec<UserId> {
    let outbid = |e: &Event| match e {
        Event::Outbid { user, .. } => Some(*user),
        _ => None,
    };
    applied.events.iter().filter_map(outbid).collect()
}

/// The new end announced by an `Extended` event, if any.
fn extension(applied: &Applied) -> Option<Millis> {
    let extended = |e: &Event| match e {
        Event::Extended { ends_at } => Some(*ends_at),
        _ => None,
    };
    applied.events.iter().find_map(extended)
}

/// (leader, price, leader_max).
fn lead(s: &AuctionState) -> (Option<UserId>, Option<i64>, Option<i64>) {
    (s.leader, s.price, s.leader_max)
}

fn outbid(user: UserId, price: i64) -> Event {
    Event::Outbid { user, price }
}

fn price_step(seq: i64, bidder: UserId, amount: i64, proxy: bool, at: Millis) -> Event {
    Event::Step(PriceStep {
        seq,
        bidder,
        amount,
        proxy,
        at,
    })
}

// ---- lifecycle -------------------------------------------------------------

#[test]
fn new_auction_is_scheduled_before_start_and_open_from_start() {
    let early = AuctionState::new(terms(), START - 1);
    assert_eq!(early.phase, Phase::Scheduled);
    assert_eq!(lead(&early), (None, None, None));
    assert_eq!((early.step_count, early.bid_count), (0, 0));
    assert_eq!(early.ends_at, END);
    assert_eq!(AuctionState::new(terms(), START).phase, Phase::Open);
}

#[test]
fn tick_opens_then_closes_and_idle_ticks_change_nothing() {
    let mut s = AuctionState::new(terms(), 0);
    let before = s.clone();
    assert_eq!(ok(&mut s, TICK, START - 1).events, vec![]);
    assert_eq!(s, before);
    assert_eq!(ok(&mut s, TICK, START).events, vec![Event::Opened]);
    assert_eq!(ok(&mut s, TICK, END - 1).events, vec![]);
    let applied = ok(&mut s, TICK, END);
    assert_eq!(applied.events, vec![closed(Outcome::Unsold, None, None)]);
    assert_eq!((s.phase, s.outcome), (Phase::Closed, Some(Outcome::Unsold)));
    assert_eq!(s.closed_at, Some(END));
    let after = s.clone();
    assert_eq!(ok(&mut s, TICK, END + 5).events, vec![]);
    assert_eq!(s, after);
}

#[test]
fn one_late_tick_both_opens_and_closes() {
    let mut s = AuctionState::new(terms(), 0);
    let applied = ok(&mut s, TICK, END + 1);
    let expected = vec![Event::Opened, closed(Outcome::Unsold, None, None)];
    assert_eq!(applied.events, expected);
    assert_eq!((s.phase, s.closed_at), (Phase::Closed, Some(END + 1)));
}

#[test]
fn sold_to_leader_at_close() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 100), START);
    ok(&mut s, bid(B, 110), START + 1);
    let applied = ok(&mut s, TICK, END);
    let expected = closed(Outcome::Sold, Some(B), Some(110));
    assert_eq!(applied.events, vec![expected]);
    assert_eq!((s.winner, s.outcome), (Some(B), Some(Outcome::Sold)));
}

#[test]
fn bid_before_start_is_not_started_and_at_start_opens_implicitly() {
    let mut s = AuctionState::new(terms(), 0);
    rejected(&mut s, bid(A, 100), START - 1, R::NotStarted);
    rejected(&mut s, max_bid(A, 100), START - 1, R::NotStarted);
    // A rejected bid does not open the auction either.
    rejected(&mut s, bid(A, 5), START, low(100));
    assert_eq!(s.phase, Phase::Scheduled);
    let applied = ok(&mut s, bid(A, 100), START);
    assert_eq!(applied.events[0], Event::Opened);
    assert_eq!(steps(&applied), vec![(A, 100, false)]);
    assert!(applied.leading);
    assert_eq!(s.phase, Phase::Open);
}

#[test]
fn bids_after_end_are_rejected_until_and_after_the_tick() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 100), START);
    rejected(&mut s, bid(B, 200), END, R::Closed);
    rejected(&mut s, max_bid(B, 200), END + 1, R::Closed);
    assert_eq!(s.phase, Phase::Open, "only a tick closes");
    ok(&mut s, TICK, END);
    rejected(&mut s, bid(B, 200), END + 2, R::Closed);
    rejected(&mut s, max_bid(B, 200), END + 2, R::Closed);
}

#[test]
fn steps_are_gapless_and_stamped_with_now() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 100), START + 1);
    let applied = ok(&mut s, bid(B, 150), START + 2);
    let expected = vec![price_step(2, B, 150, false, START + 2), outbid(A, 150)];
    assert_eq!(applied.events, expected);
    assert_eq!((s.step_count, s.bid_count), (2, 2));
}

// ---- increments ------------------------------------------------------------

#[test]
fn fixed_increment_sets_the_minimum() {
    let mut s = open(terms());
    assert_eq!(s.minimum_bid(), 100);
    rejected(&mut s, bid(A, 99), START, low(100));
    ok(&mut s, bid(A, 100), START);
    assert_eq!(s.minimum_bid(), 110);
    rejected(&mut s, bid(B, 109), START, low(110));
    rejected(&mut s, max_bid(B, 109), START, low(110));
    ok(&mut s, bid(B, 110), START);
}

#[test]
fn tiered_increment_uses_the_greatest_tier_at_or_below_the_price() {
    let tier = |from, increment| IncrementTier { from, increment };
    let tiers = vec![tier(0, 5), tier(100, 10), tier(1_000, 50)];
    let mut s = open(with(|t| {
        t.starting_price = 50;
        t.increment = IncrementRule::Tiered { tiers };
    }));
    let prices = [0, 99, 100, 999, 1_000, 5_000];
    let at: Vec<i64> = prices.iter().map(|&p| s.increment_at(p)).collect();
    assert_eq!(at, vec![5, 5, 10, 10, 50, 50]);
    ok(&mut s, bid(A, 95), START);
    assert_eq!(s.minimum_bid(), 100);
    ok(&mut s, bid(B, 1_000), START);
    assert_eq!(s.minimum_bid(), 1_050);
}

// ---- reserve ---------------------------------------------------------------

#[test]
fn reserve_decides_sold_or_unsold() {
    let mut s = open(with(|t| t.reserve = Some(500)));
    ok(&mut s, bid(A, 400), START);
    assert!(!s.reserve_met());
    let applied = ok(&mut s, TICK, END);
    let expected = closed(Outcome::Unsold, None, Some(400));
    assert_eq!(applied.events, vec![expected]);

    let mut s = open(with(|t| t.reserve = Some(500)));
    ok(&mut s, bid(A, 500), START);
    assert!(s.reserve_met());
    ok(&mut s, TICK, END);
    assert_eq!((s.outcome, s.winner), (Some(Outcome::Sold), Some(A)));
}

#[test]
fn first_max_bid_jumps_to_the_reserve_only_when_it_covers_it() {
    let mut s = open(with(|t| t.reserve = Some(500)));
    let applied = ok(&mut s, max_bid(A, 800), START);
    assert_eq!(steps(&applied), vec![(A, 500, true)]);
    assert_eq!(lead(&s), (Some(A), Some(500), Some(800)));

    let mut s = open(with(|t| t.reserve = Some(500)));
    let applied = ok(&mut s, max_bid(A, 499), START);
    assert_eq!(steps(&applied), vec![(A, 100, true)]);
    assert!(!s.reserve_met());
}

#[test]
fn leader_raising_max_past_unmet_reserve_jumps() {
    let mut s = open(with(|t| t.reserve = Some(500)));
    ok(&mut s, max_bid(A, 300), START);
    let applied = ok(&mut s, max_bid(A, 600), START);
    assert_eq!(steps(&applied), vec![(A, 500, true)]);
    assert!(applied.leading);
    assert_eq!((s.price, s.leader_max), (Some(500), Some(600)));
    assert_eq!(s.bid_count, 2);
}

#[test]
fn new_leader_past_unmet_reserve_jumps() {
    let mut s = open(with(|t| t.reserve = Some(500)));
    ok(&mut s, max_bid(A, 200), START);
    let applied = ok(&mut s, max_bid(B, 700), START);
    assert_eq!(steps(&applied), vec![(A, 200, true), (B, 500, true)]);
    assert_eq!(outbids(&applied), vec![A]);
}

// ---- buy-now ---------------------------------------------------------------

#[test]
fn buy_now_sells_immediately_at_exactly_buy_now() {
    let mut s = open(with(|t| t.buy_now = Some(1_000)));
    ok(&mut s, max_bid(A, 5_000), START);
    assert!(s.buy_now_available());
    let applied = ok(&mut s, bid(B, 1_500), START + 1);
    let expected = vec![
        price_step(2, B, 1_000, false, START + 1),
        outbid(A, 1_000),
        closed(Outcome::Sold, Some(B), Some(1_000)),
    ];
    assert_eq!(applied.events, expected);
    assert!(applied.leading);
    assert_eq!((s.phase, s.winner), (Phase::Closed, Some(B)));
    assert_eq!((s.closed_at, s.bid_count), (Some(START + 1), 2));
    assert!(!s.buy_now_available());
}

#[test]
fn buy_now_ignores_a_minimum_above_it_and_the_leader_may_buy() {
    let mut s = open(with(|t| t.buy_now = Some(105)));
    ok(&mut s, bid(A, 100), START);
    assert_eq!(s.minimum_bid(), 110);
    let applied = ok(&mut s, bid(A, 105), START);
    assert_eq!(steps(&applied), vec![(A, 105, false)]);
    assert!(outbids(&applied).is_empty());
    assert_eq!(
        (s.phase, s.winner, s.price),
        (Phase::Closed, Some(A), Some(105))
    );
}

#[test]
fn max_bid_does_not_buy_now() {
    let mut s = open(with(|t| t.buy_now = Some(1_000)));
    let applied = ok(&mut s, max_bid(A, 2_000), START);
    assert_eq!(steps(&applied), vec![(A, 100, true)]);
    assert_eq!(s.phase, Phase::Open);
}

#[test]
fn buy_now_is_offered_only_while_open_and_below_buy_now() {
    assert!(!AuctionState::new(with(|t| t.buy_now = Some(1_000)), 0).buy_now_available());
    let mut s = open(with(|t| t.buy_now = Some(1_000)));
    ok(&mut s, bid(A, 900), START);
    assert!(s.buy_now_available());
    ok(&mut s, max_bid(B, 1_200), START);
    assert_eq!(s.price, Some(910));
    ok(&mut s, max_bid(A, 1_100), START);
    assert_eq!(s.price, Some(1_110), "B's maximum answers past buy-now");
    assert!(!s.buy_now_available());
    ok(&mut s, bid(A, 1_300), START);
    assert_eq!(lead(&s), (Some(A), Some(1_300), Some(1_300)));
    assert_eq!(s.phase, Phase::Open);
}

// ---- soft close ------------------------------------------------------------

/// Soft close with a 1 s window and a 0.5 s extension.
fn soft(mode: SoftCloseMode) -> AuctionTerms {
    with(|t| t.soft_close = soft_rule(1_000, 500, mode))
}

#[test]
fn soft_close_extend_adds_the_extension_inside_the_window_only() {
    let mut s = open(soft(SoftCloseMode::Extend));
    assert_eq!(extension(&ok(&mut s, bid(A, 100), END - 1_001)), None);
    assert_eq!(s.ends_at, END);
    let inside = ok(&mut s, bid(B, 110), END - 1_000);
    assert_eq!(extension(&inside), Some(END + 500));
    ok(&mut s, bid(A, 120), END + 499);
    assert_eq!(s.ends_at, END + 1_000);
    assert_eq!(s.terms.ends_at, END, "terms keep the scheduled end");
    rejected(&mut s, bid(B, 130), END + 1_000, R::Closed);
}

#[test]
fn soft_close_reset_restarts_the_clock_but_never_shortens() {
    let mut s = open(soft(SoftCloseMode::Reset));
    let early = ok(&mut s, bid(A, 100), END - 900);
    assert_eq!(extension(&early), None, "now + 500 is before the end");
    assert_eq!(s.ends_at, END);
    let late = ok(&mut s, bid(B, 110), END - 100);
    assert_eq!(extension(&late), Some(END + 400));
    assert_eq!(s.ends_at, END + 400);
}

#[test]
fn buy_now_close_does_not_extend() {
    let mut s = open(AuctionTerms {
        buy_now: Some(1_000),
        ..soft(SoftCloseMode::Extend)
    });
    ok(&mut s, bid(A, 1_000), END - 10);
    assert_eq!((s.ends_at, s.phase), (END, Phase::Closed));
}

// ---- proxy bidding (eBay rules) ---------------------------------------------

#[test]
fn bid_below_hidden_max_is_answered_by_the_proxy_up_to_the_max() {
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 300), START);
    assert_eq!(s.price, Some(100));
    let applied = ok(&mut s, bid(B, 200), START);
    assert_eq!(steps(&applied), vec![(B, 200, false), (A, 210, true)]);
    assert!(!applied.leading);
    assert_eq!(lead(&s), (Some(A), Some(210), Some(300)));
    // The answer is capped at the hidden maximum.
    let applied = ok(&mut s, max_bid(C, 295), START);
    assert_eq!(steps(&applied), vec![(C, 295, true), (A, 300, true)]);
    assert_eq!(s.leader, Some(A));
}

#[test]
fn tie_goes_to_the_earlier_maximum() {
    for tie in [max_bid(B, 300), bid(B, 300)] {
        let mut s = open(terms());
        ok(&mut s, max_bid(A, 300), START);
        let applied = ok(&mut s, tie, START + 1);
        assert_eq!(steps(&applied), vec![(A, 300, true)]);
        assert!(!applied.leading);
        assert_eq!((s.leader, s.price, s.bid_count), (Some(A), Some(300), 2));
    }
}

#[test]
fn higher_max_takes_the_lead_one_increment_over_the_old_max() {
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 300), START);
    let applied = ok(&mut s, max_bid(B, 1_000), START);
    assert_eq!(steps(&applied), vec![(A, 300, true), (B, 310, true)]);
    assert_eq!(outbids(&applied), vec![A]);
    assert!(applied.leading);
    assert_eq!(lead(&s), (Some(B), Some(310), Some(1_000)));
    // Within one increment of the old maximum, the new leader pays its own maximum.
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 300), START);
    let applied = ok(&mut s, max_bid(B, 305), START);
    assert_eq!(steps(&applied), vec![(A, 300, true), (B, 305, true)]);
}

#[test]
fn higher_max_over_a_straight_leader_needs_no_step_for_the_old_leader() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 200), START);
    let applied = ok(&mut s, max_bid(B, 500), START);
    assert_eq!(steps(&applied), vec![(B, 210, true)]);
}

#[test]
fn straight_bid_above_hidden_max_leads_at_its_amount() {
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 300), START);
    let applied = ok(&mut s, bid(B, 400), START);
    assert_eq!(steps(&applied), vec![(B, 400, false)]);
    assert_eq!(applied.events[1], outbid(A, 400));
    assert_eq!(lead(&s), (Some(B), Some(400), Some(400)));
}

#[test]
fn leader_may_raise_max_silently_but_not_lower_it() {
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 300), START);
    let not_raised = R::MaxNotRaised { current_max: 300 };
    rejected(&mut s, max_bid(A, 300), START, not_raised.clone());
    rejected(&mut s, max_bid(A, 200), START, not_raised);
    let applied = ok(&mut s, max_bid(A, 500), START);
    assert_eq!(applied.events, vec![]);
    assert!(applied.leading);
    assert_eq!(lead(&s), (Some(A), Some(100), Some(500)));
    assert_eq!(s.bid_count, 2);
}

#[test]
fn leader_straight_bid_raises_the_price_and_keeps_the_max() {
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 300), START);
    rejected(&mut s, bid(A, 105), START, low(110));
    let applied = ok(&mut s, bid(A, 150), START);
    assert_eq!(steps(&applied), vec![(A, 150, false)]);
    assert_eq!((s.price, s.leader_max), (Some(150), Some(300)));
    ok(&mut s, bid(A, 400), START);
    assert_eq!((s.price, s.leader_max), (Some(400), Some(400)));
}

#[test]
fn three_bidder_war() {
    let mut s = open(terms());
    ok(&mut s, max_bid(A, 250), START);
    ok(&mut s, max_bid(B, 400), START);
    assert_eq!((s.leader, s.price), (Some(B), Some(260)));
    let applied = ok(&mut s, max_bid(C, 350), START);
    assert_eq!(steps(&applied), vec![(C, 350, true), (B, 360, true)]);
    assert!(outbids(&applied).is_empty());
    ok(&mut s, TICK, END);
    assert_eq!((s.winner, s.price), (Some(B), Some(360)));
}

// ---- who may bid, and with what ----------------------------------------------

#[test]
fn seller_cannot_bid() {
    let mut s = open(terms());
    rejected(&mut s, bid(SELLER, 100), START, R::SellerCannotBid);
    rejected(&mut s, max_bid(SELLER, 100), START, R::SellerCannotBid);
}

#[test]
fn bad_amounts_are_invalid() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 100), START);
    for amount in [0, -1, i64::MIN, MAX_AMOUNT + 1, i64::MAX] {
        rejected(&mut s, bid(B, amount), START, R::InvalidAmount);
        rejected(&mut s, max_bid(B, amount), START, R::InvalidAmount);
        rejected(&mut s, max_bid(A, amount), START, R::InvalidAmount);
    }
}

#[test]
fn max_amount_is_accepted_and_then_unbeatable() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 100), START);
    ok(&mut s, max_bid(B, MAX_AMOUNT), START);
    assert_eq!(s.price, Some(110));
    let applied = ok(&mut s, bid(C, MAX_AMOUNT), START);
    assert_eq!(steps(&applied), vec![(B, MAX_AMOUNT, true)]);
    assert_eq!(s.minimum_bid(), MAX_AMOUNT + 10);
    rejected(&mut s, bid(C, MAX_AMOUNT), START, low(MAX_AMOUNT + 10));
}

// ---- cancel ------------------------------------------------------------------

#[test]
fn seller_or_operator_cancels_before_the_first_bid() {
    let mut s = AuctionState::new(terms(), 0);
    rejected(&mut s, cancel(A, false), 0, R::NotSeller);
    let applied = ok(&mut s, cancel(SELLER, false), 0);
    assert_eq!(applied.events, vec![Event::Cancelled]);
    assert_eq!((s.phase, s.closed_at), (Phase::Cancelled, Some(0)));

    let mut s = open(terms());
    let applied = ok(&mut s, cancel(C, true), START);
    assert_eq!(applied.events, vec![Event::Cancelled]);
}

#[test]
fn cancel_after_the_first_bid_is_refused() {
    let mut s = open(terms());
    ok(&mut s, bid(A, 100), START);
    rejected(&mut s, cancel(SELLER, false), START, R::HasBids);
    rejected(&mut s, cancel(A, true), START, R::HasBids);
}

#[test]
fn cancelled_auction_rejects_everything_but_ticks() {
    let mut s = open(terms());
    ok(&mut s, cancel(SELLER, false), START);
    rejected(&mut s, bid(A, 100), START, R::Cancelled);
    rejected(&mut s, max_bid(A, 100), START, R::Cancelled);
    rejected(&mut s, cancel(SELLER, false), START, R::Cancelled);
    assert_eq!(ok(&mut s, TICK, END + 1).events, vec![]);
    assert_eq!(s.phase, Phase::Cancelled);
}

#[test]
fn closed_auction_rejects_cancel_and_bids() {
    let mut s = open(terms());
    rejected(&mut s, cancel(SELLER, false), END, R::Closed);
    ok(&mut s, TICK, END);
    rejected(&mut s, cancel(SELLER, false), END, R::Closed);
    rejected(&mut s, bid(A, 100), END, R::Closed);
}

// ---- terms -------------------------------------------------------------------

fn tiered(tiers: &[(i64, i64)]) -> IncrementRule {
    let tier = |&(from, increment): &(i64, i64)| IncrementTier { from, increment };
    IncrementRule::Tiered {
        tiers: tiers.iter().map(tier).collect(),
    }
}

fn soft_rule(window_ms: i64, extension_ms: i64, mode: SoftCloseMode) -> Option<SoftClose> {
    Some(SoftClose {
        window_ms,
        extension_ms,
        mode,
    })
}

#[test]
fn validate_terms_accepts_good_terms() {
    assert_eq!(validate_terms(&terms()), Ok(()));
    let good = [
        with(|t| t.increment = tiered(&[(0, 1), (10, 5)])),
        with(|t| (t.reserve, t.buy_now) = (Some(100), Some(100))),
        with(|t| t.soft_close = soft_rule(0, 1, EXTEND)),
        with(|t| t.soft_close = soft_rule(DAYS_30, DAYS_30, EXTEND)),
        with(|t| t.starting_price = MAX_AMOUNT),
    ];
    for terms in good {
        assert_eq!(validate_terms(&terms), Ok(()), "{terms:?}");
    }
}

#[test]
fn validate_terms_rejects_each_bad_field() {
    let bad = [
        with(|t| t.currency = "eur".into()),
        with(|t| t.currency = "EURO".into()),
        with(|t| t.currency = "ÉU".into()),
        with(|t| t.starting_price = 0),
        with(|t| t.starting_price = MAX_AMOUNT + 1),
        with(|t| t.increment = IncrementRule::Fixed { amount: 0 }),
        with(|t| {
            t.increment = IncrementRule::Fixed {
                amount: MAX_AMOUNT + 1,
            }
        }),
        with(|t| t.increment = tiered(&[])),
        with(|t| t.increment = tiered(&[(1, 5)])),
        with(|t| t.increment = tiered(&[(0, 5), (10, 1), (10, 2)])),
        with(|t| t.increment = tiered(&[(0, 5), (10, 0)])),
        with(|t| t.reserve = Some(0)),
        with(|t| t.reserve = Some(MAX_AMOUNT + 1)),
        with(|t| t.buy_now = Some(-1)),
        with(|t| t.buy_now = Some(99)),
        with(|t| (t.reserve, t.buy_now) = (Some(500), Some(400))),
        with(|t| t.ends_at = START),
        with(|t| t.soft_close = soft_rule(-1, 10, EXTEND)),
        with(|t| t.soft_close = soft_rule(10, 0, EXTEND)),
        with(|t| t.soft_close = soft_rule(DAYS_30 + 1, 10, EXTEND)),
        with(|t| t.soft_close = soft_rule(10, DAYS_30 + 1, EXTEND)),
    ];
    for terms in bad {
        assert!(validate_terms(&terms).is_err(), "accepted {terms:?}");
    }
}
