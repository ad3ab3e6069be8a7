//! Property test of the auction rules engine against a naive reference model.
//!
//! Random valid terms and random command sequences (straight and maximum bids
//! from four bidders and sometimes the seller, ticks with advancing time, the
//! occasional cancel) run through both the engine and `Model`. After every
//! command the two must agree on acceptance, rejection reason, `leading` and all
//! public state, and the engine's events and state must satisfy the invariants
//! the platform promises (strictly increasing gapless steps, untouched state on
//! rejection, nothing moves after the end, ...).

use bowchat_auction::engine::*;
use bowchat_model::MAX_AMOUNT;
use proptest::prelude::*;

const SELLER: UserId = 9;
const START: Millis = 1_000;

// ---- reference model -----------------------------------------------------------

/// Deliberately simple: it keeps every accepted maximum in order and derives the
/// leader from that list instead of tracking it incrementally like the engine.
#[derive(Debug, Clone)]
struct Model {
    terms: AuctionTerms,
    phase: Phase,
    ends_at: Millis,
    price: Option<i64>,
    /// Every accepted maximum in arrival order; a straight bid is a maximum of its amount.
    maxima: Vec<(UserId, i64)>,
    /// Set by a buy-now sale, which overrides the maxima.
    bought: Option<(UserId, i64)>,
    bid_count: i64,
    outcome: Option<Outcome>,
    winner: Option<UserId>,
    closed_at: Option<Millis>,
}

impl Model {
    fn new(terms: AuctionTerms, now: Millis) -> Self {
        Model {
            phase: if now < terms.starts_at {
                Phase::Scheduled
            } else {
                Phase::Open
            },
            ends_at: terms.ends_at,
            terms,
            price: None,
            maxima: Vec::new(),
            bought: None,
            bid_count: 0,
            outcome: None,
            winner: None,
            closed_at: None,
        }
    }

    fn increment(&self, price: i64) -> i64 {
        match &self.terms.increment {
            IncrementRule::Fixed { amount } => *amount,
            IncrementRule::Tiered { tiers } => {
                let mut increment = tiers[0].increment;
                for tier in tiers {
                    if tier.from <= price {
                        increment = tier.increment;
                    }
                }
                increment
            }
        }
    }

    fn minimum(&self) -> i64 {
        match self.price {
            None => self.terms.starting_price,
            Some(price) => price + self.increment(price),
        }
    }

    /// The leader and their maximum: the highest maximum, the earliest on ties.
    fn top(&self) -> Option<(UserId, i64)> {
        if self.bought.is_some() {
            return self.bought;
        }
        let mut best: Option<(UserId, i64)> = None;
        for &(bidder, max) in &self.maxima {
            if best.is_none() || max > best.unwrap().1 {
                best = Some((bidder, max));
            }
        }
        best
    }

    /// The highest maximum of anyone but the leader.
    fn second(&self) -> Option<i64> {
        let (leader, _) = self.top()?;
        self.maxima
            .iter()
            .filter(|(b, _)| *b != leader)
            .map(|&(_, m)| m)
            .max()
    }

    fn reserve_met(&self) -> bool {
        match (self.terms.reserve, self.price) {
            (None, _) => true,
            (Some(reserve), Some(price)) => price >= reserve,
            (Some(_), None) => false,
        }
    }

    fn buy_now_available(&self) -> bool {
        match (self.terms.buy_now, self.price) {
            (Some(_), None) => self.phase == Phase::Open,
            (Some(buy_now), Some(price)) => self.phase == Phase::Open && price < buy_now,
            (None, _) => false,
        }
    }

    fn apply(&mut self, cmd: &Command, now: Millis) -> Result<bool, Rejection> {
        let mut next = self.clone();
        let leading = next.apply_in_place(cmd, now)?;
        *self = next;
        Ok(leading)
    }

    fn apply_in_place(&mut self, cmd: &Command, now: Millis) -> Result<bool, Rejection> {
        if self.phase == Phase::Scheduled && now >= self.terms.starts_at {
            self.phase = Phase::Open;
        }
        if *cmd == Command::Tick {
            if self.phase == Phase::Open && now >= self.ends_at {
                let sold = self.top().is_some() && self.reserve_met();
                self.finish(if sold { Outcome::Sold } else { Outcome::Unsold }, now);
            }
            return Ok(false);
        }
        match self.phase {
            Phase::Closed => return Err(Rejection::Closed),
            Phase::Cancelled => return Err(Rejection::Cancelled),
            Phase::Open if now >= self.ends_at => return Err(Rejection::Closed),
            Phase::Scheduled if !matches!(cmd, Command::Cancel { .. }) => {
                return Err(Rejection::NotStarted)
            }
            _ => {}
        }
        match *cmd {
            Command::Cancel { by, operator } => {
                if by != self.terms.seller && !operator {
                    return Err(Rejection::NotSeller);
                }
                if self.bid_count > 0 {
                    return Err(Rejection::HasBids);
                }
                self.phase = Phase::Cancelled;
                self.closed_at = Some(now);
                Ok(false)
            }
            Command::Bid { bidder, amount } => self.bid(bidder, amount, false, now),
            Command::MaxBid { bidder, max } => self.bid(bidder, max, true, now),
            Command::Tick => unreachable!(),
        }
    }

    fn bid(
        &mut self,
        bidder: UserId,
        amount: i64,
        is_max: bool,
        now: Millis,
    ) -> Result<bool, Rejection> {
        if !(1..=MAX_AMOUNT).contains(&amount) {
            return Err(Rejection::InvalidAmount);
        }
        if bidder == self.terms.seller {
            return Err(Rejection::SellerCannotBid);
        }
        if !is_max && self.buy_now_available() && amount >= self.terms.buy_now.unwrap() {
            let buy_now = self.terms.buy_now.unwrap();
            self.bought = Some((bidder, buy_now));
            self.price = Some(buy_now);
            self.bid_count += 1;
            self.finish(Outcome::Sold, now);
            return Ok(true);
        }
        let before = self.top();
        let was_leader = before.is_some_and(|(leader, _)| leader == bidder);
        if is_max && was_leader {
            let current_max = before.unwrap().1;
            if amount <= current_max {
                return Err(Rejection::MaxNotRaised { current_max });
            }
        } else if amount < self.minimum() {
            let minimum = self.minimum();
            return Err(Rejection::BelowMinimum { minimum });
        }
        self.maxima.push((bidder, amount));
        self.bid_count += 1;
        let (leader, top) = self.top().unwrap();
        // A maximum at or above the reserve never leaves the price below it.
        let floor = |price: i64| match self.terms.reserve {
            Some(reserve) if top >= reserve => price.max(reserve),
            _ => price,
        };
        // A leading straight bid names its price; a leader raising a maximum moves
        // nothing but the reserve; any other bid is a contest, which eBay prices at
        // one increment over the runner-up's maximum, capped at the winner's.
        let price = if !is_max && leader == bidder {
            amount
        } else if was_leader {
            floor(self.price.unwrap())
        } else {
            match self.second() {
                None => floor(self.terms.starting_price),
                Some(second) => floor(top.min(second + self.increment(second))),
            }
        };
        self.price = Some(price);
        if let Some(rule) = self.terms.soft_close {
            if self.ends_at - now <= rule.window_ms {
                self.ends_at = match rule.mode {
                    SoftCloseMode::Extend => self.ends_at + rule.extension_ms,
                    SoftCloseMode::Reset => self.ends_at.max(now + rule.extension_ms),
                };
            }
        }
        Ok(leader == bidder)
    }

    fn finish(&mut self, outcome: Outcome, now: Millis) {
        self.phase = Phase::Closed;
        self.outcome = Some(outcome);
        let sold = outcome == Outcome::Sold;
        self.winner = self.top().map(|(leader, _)| leader).filter(|_| sold);
        self.closed_at = Some(now);
    }
}

// ---- generated input -------------------------------------------------------------

/// How a bid amount is chosen; resolved against the model so that many bids
/// land near the interesting boundaries.
#[derive(Debug, Clone)]
enum Amount {
    Raw(i64),
    AboveMinimum(i64),
    BelowMinimum(i64),
    LeaderMaxPlus(i64),
    NearBuyNow(i64),
}

#[derive(Debug, Clone)]
enum Op {
    Bid(UserId, Amount),
    MaxBid(UserId, Amount),
    Tick,
    Cancel(UserId, bool),
}

fn increment_strategy() -> impl Strategy<Value = IncrementRule> {
    let fixed = (1i64..=20).prop_map(|amount| IncrementRule::Fixed { amount });
    let tiered = (
        1i64..=30,
        prop::collection::vec((1i64..=200, 1i64..=30), 0..4),
    )
        .prop_map(|(first, rest)| {
            let mut tiers = vec![IncrementTier {
                from: 0,
                increment: first,
            }];
            let mut from = 0;
            for (gap, increment) in rest {
                from += gap;
                tiers.push(IncrementTier { from, increment });
            }
            IncrementRule::Tiered { tiers }
        });
    prop_oneof![fixed, tiered]
}

fn terms_strategy() -> impl Strategy<Value = AuctionTerms> {
    let soft_close = (
        0i64..=500,
        1i64..=400,
        prop_oneof![Just(SoftCloseMode::Extend), Just(SoftCloseMode::Reset)],
    )
        .prop_map(|(window_ms, extension_ms, mode)| SoftClose {
            window_ms,
            extension_ms,
            mode,
        });
    (
        1i64..=50,
        increment_strategy(),
        prop::option::of(1i64..=400),
        prop::option::of(0i64..=400),
        100i64..=3_000,
        prop::option::of(soft_close),
    )
        .prop_map(
            |(starting_price, increment, reserve, buy_now_extra, duration, soft_close)| {
                AuctionTerms {
                    seller: SELLER,
                    currency: "USD".into(),
                    starting_price,
                    increment,
                    reserve,
                    buy_now: buy_now_extra
                        .map(|extra| starting_price.max(reserve.unwrap_or(0)) + extra),
                    starts_at: START,
                    ends_at: START + duration,
                    soft_close,
                }
            },
        )
}

fn amount_strategy() -> impl Strategy<Value = Amount> {
    let raw = prop_oneof![
        4 => -5i64..=600,
        1 => prop::sample::select(vec![0, i64::MIN, MAX_AMOUNT, MAX_AMOUNT + 1, i64::MAX]),
    ];
    prop_oneof![
        2 => raw.prop_map(Amount::Raw),
        5 => (0i64..=40).prop_map(Amount::AboveMinimum),
        1 => (1i64..=5).prop_map(Amount::BelowMinimum),
        4 => prop_oneof![-3i64..=3, 1i64..=60].prop_map(Amount::LeaderMaxPlus),
        1 => (-2i64..=5).prop_map(Amount::NearBuyNow),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let bidder = prop_oneof![6 => 1i64..=4, 1 => Just(SELLER)];
    prop_oneof![
        4 => (bidder.clone(), amount_strategy()).prop_map(|(b, a)| Op::Bid(b, a)),
        4 => (bidder, amount_strategy()).prop_map(|(b, a)| Op::MaxBid(b, a)),
        2 => Just(Op::Tick),
        1 => (prop_oneof![Just(SELLER), 1i64..=4], any::<bool>()).prop_map(|(by, op)| Op::Cancel(by, op)),
    ]
}

fn resolve(amount: &Amount, model: &Model) -> i64 {
    let minimum = model.minimum();
    match *amount {
        Amount::Raw(value) => value,
        Amount::AboveMinimum(delta) => minimum + delta,
        Amount::BelowMinimum(delta) => minimum - delta,
        Amount::LeaderMaxPlus(delta) => model.top().map_or(minimum, |(_, max)| max + delta),
        Amount::NearBuyNow(delta) => model
            .terms
            .buy_now
            .map_or(minimum, |buy_now| buy_now + delta),
    }
}

fn to_command(op: &Op, model: &Model) -> Command {
    match *op {
        Op::Bid(bidder, ref amount) => {
            let amount = resolve(amount, model);
            Command::Bid { bidder, amount }
        }
        Op::MaxBid(bidder, ref amount) => {
            let max = resolve(amount, model);
            Command::MaxBid { bidder, max }
        }
        Op::Tick => Command::Tick,
        Op::Cancel(by, operator) => Command::Cancel { by, operator },
    }
}

// ---- checks ----------------------------------------------------------------------

fn assert_agree(engine: &AuctionState, model: &Model) {
    assert_eq!(engine.phase, model.phase, "phase");
    assert_eq!(engine.outcome, model.outcome, "outcome");
    assert_eq!(engine.ends_at, model.ends_at, "ends_at");
    assert_eq!(engine.price, model.price, "price");
    assert_eq!(engine.leader, model.top().map(|(l, _)| l), "leader");
    assert_eq!(engine.leader_max, model.top().map(|(_, m)| m), "leader_max");
    assert_eq!(engine.bid_count, model.bid_count, "bid_count");
    assert_eq!(engine.winner, model.winner, "winner");
    assert_eq!(engine.closed_at, model.closed_at, "closed_at");
    assert_eq!(engine.minimum_bid(), model.minimum(), "minimum_bid");
    assert_eq!(engine.reserve_met(), model.reserve_met(), "reserve_met");
    let buy_now = model.buy_now_available();
    assert_eq!(engine.buy_now_available(), buy_now, "buy_now_available");
}

/// Invariants of a single state.
fn assert_state_invariants(s: &AuctionState) {
    assert_eq!(
        s.price.is_some(),
        s.leader.is_some(),
        "price without leader"
    );
    assert_eq!(
        s.leader_max.is_some(),
        s.leader.is_some(),
        "leader without max"
    );
    assert_eq!(s.step_count == 0, s.price.is_none(), "price without steps");
    assert_ne!(s.leader, Some(s.terms.seller), "seller leads");
    if let (Some(price), Some(max)) = (s.price, s.leader_max) {
        assert!(
            price <= max,
            "price {price} above the leader's maximum {max}"
        );
        assert!(price <= MAX_AMOUNT);
        // The reserve jump: a leader able to pay the reserve is never shown below it.
        if s.terms.reserve.is_some_and(|r| max >= r) {
            assert!(
                s.reserve_met(),
                "maximum covers the reserve, price does not"
            );
        }
    }
    let sold = s.outcome == Some(Outcome::Sold);
    match s.phase {
        Phase::Closed => {
            assert!(s.outcome.is_some() && s.closed_at.is_some());
            assert_eq!(s.winner, s.leader.filter(|_| sold));
        }
        Phase::Cancelled => {
            assert_eq!((s.bid_count, s.outcome), (0, None));
            assert!(s.closed_at.is_some());
        }
        Phase::Scheduled | Phase::Open => {
            assert_eq!((s.outcome, s.winner, s.closed_at), (None, None, None))
        }
    }
}

/// The events of an accepted command describe exactly the change from `before`
/// to `after`, in the fixed order Opened, steps, Outbid, Extended, Closed/Cancelled.
fn assert_events(
    before: &AuctionState,
    after: &AuctionState,
    cmd: &Command,
    now: Millis,
    applied: &Applied,
) {
    let steps: Vec<PriceStep> = applied
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Step(step) => Some(step.clone()),
            _ => None,
        })
        .collect();
    let mut last = before.price;
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step.seq, before.step_count + 1 + i as i64, "gapless seq");
        assert!(
            !matches!(last, Some(p) if p >= step.amount),
            "not increasing: {steps:?}"
        );
        assert_ne!(step.bidder, after.terms.seller);
        assert_eq!(step.at, now);
        last = Some(step.amount);
    }
    assert_eq!(after.step_count, before.step_count + steps.len() as i64);
    assert_eq!(after.price, last, "the last step is the price");
    if let Some(step) = steps.last() {
        assert_eq!(
            after.leader,
            Some(step.bidder),
            "the last step's bidder leads"
        );
    }

    let mut expected = Vec::new();
    // An accepted command at or after the start opens a scheduled auction first.
    if before.phase == Phase::Scheduled && now >= before.terms.starts_at {
        expected.push(Event::Opened);
    }
    expected.extend(steps.into_iter().map(Event::Step));
    if let Some(user) = before.leader.filter(|&l| after.leader != Some(l)) {
        expected.push(Event::Outbid {
            user,
            price: after.price.unwrap(),
        });
    }
    if after.ends_at != before.ends_at {
        expected.push(Event::Extended {
            ends_at: after.ends_at,
        });
    }
    if after.phase != before.phase && after.phase == Phase::Closed {
        let (outcome, winner, price) = (after.outcome.unwrap(), after.winner, after.price);
        expected.push(Event::Closed {
            outcome,
            winner,
            price,
        });
    }
    if after.phase != before.phase && after.phase == Phase::Cancelled {
        expected.push(Event::Cancelled);
    }
    assert_eq!(applied.events, expected);

    if let Command::Bid { bidder, amount }
    | Command::MaxBid {
        bidder,
        max: amount,
    } = *cmd
    {
        // Every accepted bid from a non-leader reached the minimum, except a buy-now.
        let bought = after.phase == Phase::Closed && matches!(cmd, Command::Bid { .. });
        if before.leader != Some(bidder) && !bought {
            assert!(
                amount >= before.minimum_bid(),
                "accepted {amount}: {before:?}"
            );
        }
        assert_eq!(after.bid_count, before.bid_count + 1);
        assert_eq!(applied.leading, after.leader == Some(bidder));
    } else {
        assert_eq!(after.bid_count, before.bid_count);
    }
}

fn run(terms: AuctionTerms, first_now: Millis, ops: Vec<(Millis, Op)>) {
    assert_eq!(validate_terms(&terms), Ok(()));
    let mut engine = AuctionState::new(terms.clone(), first_now);
    let mut model = Model::new(terms, first_now);
    assert_agree(&engine, &model);
    let mut now = first_now;
    for (advance, op) in ops {
        now += advance;
        let cmd = to_command(&op, &model);
        let before = engine.clone();
        let got = engine.apply(&cmd, now);
        let want = model.apply(&cmd, now);
        match (&got, &want) {
            (Ok(applied), Ok(leading)) => {
                assert_eq!(applied.leading, *leading, "leading after {cmd:?}");
                assert_events(&before, &engine, &cmd, now, applied);
            }
            (Err(got_err), Err(want_err)) => {
                assert_eq!(got_err, want_err, "rejection of {cmd:?}");
                assert_eq!(engine, before, "rejected {cmd:?} changed the state");
            }
            _ => panic!("{cmd:?} at {now}: engine {got:?}, model {want:?}\nstate {before:?}"),
        }
        if matches!(before.phase, Phase::Closed | Phase::Cancelled) {
            assert_eq!(engine, before, "{cmd:?} changed a finished auction");
        }
        assert!(engine.ends_at >= before.ends_at, "ends_at went back");
        assert_agree(&engine, &model);
        assert_state_invariants(&engine);
    }
    // A tick far in the future always finishes the auction.
    engine.apply(&Command::Tick, now + 1_000_000).unwrap();
    assert!(matches!(engine.phase, Phase::Closed | Phase::Cancelled));
    assert_state_invariants(&engine);
}

proptest! {
    // No persistence: regression files would land outside the test sources.
    #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_reference_model(
        terms in terms_strategy(),
        first_now in (START - 300)..=(START + 300),
        ops in prop::collection::vec((0i64..=100, op_strategy()), 0..60),
    ) {
        run(terms, first_now, ops);
    }

    #[test]
    fn increment_at_matches_the_model(terms in terms_strategy(), price in 0i64..=2_000) {
        let engine = AuctionState::new(terms.clone(), START);
        let model = Model::new(terms, START);
        prop_assert_eq!(engine.increment_at(price), model.increment(price));
    }
}
