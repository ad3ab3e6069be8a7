//! The rules. See the module docs of `engine`.
//!
//! `apply` works on a clone and commits only on success, so a rejected command
//! never leaves a half-applied state behind (not even an implicit opening).
//!
//! Choices made where the rules leave room:
//!
//! * Every non-`Tick` command arriving when `now >= ends_at` is rejected with
//!   `Closed` (a `Cancel` too); closing itself is the job of `Tick`.
//! * A `Cancel` is allowed while `Scheduled` (not started yet) as well as `Open`.
//! * Buy-now is checked before the minimum: a straight bid of at least `buy_now`
//!   buys while buy-now is offered, even in the corner where `buy_now` is below
//!   `minimum_bid()`. The current leader may buy too.
//! * Straight bid by the leader: must reach `minimum_bid()`, sets the price to
//!   exactly `amount` and keeps `leader_max = max(leader_max, amount)`.
//! * A leader's new maximum only has to exceed the old one (no minimum applies).
//! * Ties go to the earlier maximum. When a challenger exactly matches the
//!   leader's maximum, only the leader's step at that maximum is recorded (the
//!   challenger's step would repeat the amount), so the price becomes the maximum.
//! * A challenger's step at its own maximum (losing `MaxBid`) is `proxy = true`;
//!   steps of straight bids are `proxy = false`.
//! * Soft close applies to every accepted `Bid`/`MaxBid`, including a leader
//!   silently raising a maximum; it never applies to the bid that buys now.
//! * `Closed { price }` carries the last visible price for both outcomes.

use bowchat_model::MAX_AMOUNT;

use super::types::*;

/// Upper bound for the soft-close window and extension: 30 days.
const MAX_SOFT_CLOSE_MS: i64 = 30 * 24 * 60 * 60 * 1000;

impl AuctionState {
    /// A fresh auction in `Scheduled` phase (or `Open`, if `now >= starts_at`).
    pub fn new(terms: AuctionTerms, now: Millis) -> Self {
        let phase = if now >= terms.starts_at {
            Phase::Open
        } else {
            Phase::Scheduled
        };
        Self {
            ends_at: terms.ends_at,
            terms,
            phase,
            outcome: None,
            price: None,
            leader: None,
            leader_max: None,
            step_count: 0,
            bid_count: 0,
            winner: None,
            closed_at: None,
        }
    }

    /// The increment in force at `price`.
    pub fn increment_at(&self, price: i64) -> i64 {
        let increment = match &self.terms.increment {
            IncrementRule::Fixed { amount } => *amount,
            IncrementRule::Tiered { tiers } => tiers
                .iter()
                .filter(|tier| tier.from <= price)
                .max_by_key(|tier| tier.from)
                .or(tiers.first())
                .map_or(1, |tier| tier.increment),
        };
        // Validated terms never have a non-positive increment; clamping keeps the
        // price strictly increasing even if unvalidated terms slip through.
        increment.max(1)
    }

    /// The least amount a new bid (straight or maximum) from a non-leader must reach.
    pub fn minimum_bid(&self) -> i64 {
        match self.price {
            None => self.terms.starting_price,
            Some(price) => price.saturating_add(self.increment_at(price)),
        }
    }

    /// Whether buy-now is still offered (set, auction open, price below it).
    pub fn buy_now_available(&self) -> bool {
        match self.terms.buy_now {
            Some(buy_now) => {
                self.phase == Phase::Open && !matches!(self.price, Some(p) if p >= buy_now)
            }
            None => false,
        }
    }

    pub fn reserve_met(&self) -> bool {
        match self.terms.reserve {
            None => true,
            Some(reserve) => self.price.is_some_and(|p| p >= reserve),
        }
    }

    /// Apply one command at time `now`. On `Err` the state is unchanged.
    pub fn apply(&mut self, cmd: &Command, now: Millis) -> Result<Applied, Rejection> {
        let mut next = self.clone();
        let applied = next.apply_in_place(cmd, now)?;
        *self = next;
        Ok(applied)
    }

    /// The body of `apply`; may leave `self` half-changed on `Err`, which is
    /// why `apply` runs it on a clone.
    fn apply_in_place(&mut self, cmd: &Command, now: Millis) -> Result<Applied, Rejection> {
        let mut events = Vec::new();
        self.open_if_due(now, &mut events);
        let leading = match *cmd {
            Command::Tick => {
                if self.phase == Phase::Open && now >= self.ends_at {
                    let outcome = match self.leader {
                        Some(_) if self.reserve_met() => Outcome::Sold,
                        _ => Outcome::Unsold,
                    };
                    self.close(outcome, now, &mut events);
                }
                false
            }
            Command::Bid { bidder, amount } => {
                self.check_accepting(now, false)?;
                self.straight_bid(bidder, amount, now, &mut events)?
            }
            Command::MaxBid { bidder, max } => {
                self.check_accepting(now, false)?;
                self.max_bid(bidder, max, now, &mut events)?
            }
            Command::Cancel { by, operator } => {
                self.check_accepting(now, true)?;
                if !operator && by != self.terms.seller {
                    return Err(Rejection::NotSeller);
                }
                if self.bid_count > 0 {
                    return Err(Rejection::HasBids);
                }
                self.phase = Phase::Cancelled;
                self.closed_at = Some(now);
                events.push(Event::Cancelled);
                false
            }
        };
        Ok(Applied { events, leading })
    }

    fn open_if_due(&mut self, now: Millis, events: &mut Vec<Event>) {
        if self.phase == Phase::Scheduled && now >= self.terms.starts_at {
            self.phase = Phase::Open;
            events.push(Event::Opened);
        }
    }

    /// Phase checks shared by bids and cancel (after any implicit opening).
    fn check_accepting(&self, now: Millis, scheduled_ok: bool) -> Result<(), Rejection> {
        match self.phase {
            Phase::Scheduled if scheduled_ok => Ok(()),
            Phase::Scheduled => Err(Rejection::NotStarted),
            // Past the end but not ticked yet: too late, and the Tick closes it.
            Phase::Open if now >= self.ends_at => Err(Rejection::Closed),
            Phase::Open => Ok(()),
            Phase::Closed => Err(Rejection::Closed),
            Phase::Cancelled => Err(Rejection::Cancelled),
        }
    }

    fn check_bidder(&self, bidder: UserId, amount: i64) -> Result<(), Rejection> {
        if amount <= 0 || amount > MAX_AMOUNT {
            return Err(Rejection::InvalidAmount);
        }
        if bidder == self.terms.seller {
            return Err(Rejection::SellerCannotBid);
        }
        Ok(())
    }

    fn check_minimum(&self, amount: i64) -> Result<(), Rejection> {
        let minimum = self.minimum_bid();
        if amount < minimum {
            return Err(Rejection::BelowMinimum { minimum });
        }
        Ok(())
    }

    /// The current leader and their hidden maximum.
    fn lead(&self) -> Option<(UserId, i64)> {
        let leader = self.leader?;
        // `leader_max` is always set with a leader; fall back to the price defensively.
        Some((leader, self.leader_max.or(self.price).unwrap_or(0)))
    }

    fn straight_bid(
        &mut self,
        bidder: UserId,
        amount: i64,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<bool, Rejection> {
        self.check_bidder(bidder, amount)?;
        if let Some(buy_now) = self.terms.buy_now {
            if amount >= buy_now && self.buy_now_available() {
                self.buy_now(bidder, buy_now, now, events);
                return Ok(true);
            }
        }
        self.check_minimum(amount)?;
        self.bid_count += 1;
        match self.lead() {
            Some((leader, max)) if leader == bidder => {
                self.leader_max = Some(max.max(amount));
                self.push_step(bidder, amount, false, now, events);
            }
            // Equal to the hidden maximum: the earlier maximum keeps the lead and
            // the price rises to it (one step; the bidder's would repeat the amount).
            Some((leader, max)) if amount == max => self.push_step(leader, max, true, now, events),
            Some((leader, max)) if amount < max => {
                self.push_step(bidder, amount, false, now, events);
                let answer = max.min(amount.saturating_add(self.increment_at(amount)));
                self.push_step(leader, answer, true, now, events);
            }
            previous => {
                self.leader = Some(bidder);
                self.leader_max = Some(amount);
                self.push_step(bidder, amount, false, now, events);
                if let Some((previous, _)) = previous {
                    events.push(Event::Outbid {
                        user: previous,
                        price: amount,
                    });
                }
            }
        }
        self.soft_close(now, events);
        Ok(self.leader == Some(bidder))
    }

    fn max_bid(
        &mut self,
        bidder: UserId,
        max: i64,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<bool, Rejection> {
        self.check_bidder(bidder, max)?;
        match self.lead() {
            Some((leader, current_max)) if leader == bidder => {
                if max <= current_max {
                    return Err(Rejection::MaxNotRaised { current_max });
                }
                self.leader_max = Some(max);
                let price = self.price.unwrap_or(self.terms.starting_price);
                let jumped = self.reserve_floor(price, max);
                if jumped > price {
                    self.push_step(bidder, jumped, true, now, events);
                }
            }
            None => {
                self.check_minimum(max)?;
                self.leader = Some(bidder);
                self.leader_max = Some(max);
                let price = self.reserve_floor(self.terms.starting_price, max);
                self.push_step(bidder, price, true, now, events);
            }
            Some((leader, current_max)) if max > current_max => {
                self.check_minimum(max)?;
                // Show the outgoing leader's maximum being used up first.
                if !matches!(self.price, Some(p) if p >= current_max) {
                    self.push_step(leader, current_max, true, now, events);
                }
                let needed = current_max.saturating_add(self.increment_at(current_max));
                let price = self.reserve_floor(max.min(needed), max);
                self.leader = Some(bidder);
                self.leader_max = Some(max);
                self.push_step(bidder, price, true, now, events);
                events.push(Event::Outbid {
                    user: leader,
                    price,
                });
            }
            Some((leader, current_max)) => {
                self.check_minimum(max)?;
                if max < current_max {
                    self.push_step(bidder, max, true, now, events);
                }
                let answer = current_max.min(max.saturating_add(self.increment_at(max)));
                self.push_step(leader, answer, true, now, events);
            }
        }
        self.bid_count += 1;
        self.soft_close(now, events);
        Ok(self.leader == Some(bidder))
    }

    /// The reserve jump: a maximum at or above an unmet reserve lifts the price to it.
    fn reserve_floor(&self, price: i64, max: i64) -> i64 {
        match self.terms.reserve {
            Some(reserve) if price < reserve && max >= reserve => reserve,
            _ => price,
        }
    }

    fn buy_now(&mut self, bidder: UserId, price: i64, now: Millis, events: &mut Vec<Event>) {
        let previous = self.leader.filter(|&p| p != bidder);
        self.bid_count += 1;
        self.leader = Some(bidder);
        self.leader_max = Some(price);
        self.push_step(bidder, price, false, now, events);
        if let Some(previous) = previous {
            events.push(Event::Outbid {
                user: previous,
                price,
            });
        }
        self.close(Outcome::Sold, now, events);
    }

    fn close(&mut self, outcome: Outcome, now: Millis, events: &mut Vec<Event>) {
        let winner = if outcome == Outcome::Sold {
            self.leader
        } else {
            None
        };
        self.phase = Phase::Closed;
        self.outcome = Some(outcome);
        self.winner = winner;
        self.closed_at = Some(now);
        events.push(Event::Closed {
            outcome,
            winner,
            price: self.price,
        });
    }

    fn push_step(
        &mut self,
        bidder: UserId,
        amount: i64,
        proxy: bool,
        now: Millis,
        events: &mut Vec<Event>,
    ) {
        debug_assert!(
            !matches!(self.price, Some(p) if p >= amount),
            "steps must strictly increase"
        );
        self.step_count += 1;
        self.price = Some(amount);
        events.push(Event::Step(PriceStep {
            seq: self.step_count,
            bidder,
            amount,
            proxy,
            at: now,
        }));
    }

    fn soft_close(&mut self, now: Millis, events: &mut Vec<Event>) {
        let Some(rule) = self.terms.soft_close else {
            return;
        };
        if self.ends_at.saturating_sub(now) > rule.window_ms {
            return;
        }
        let ends_at = match rule.mode {
            SoftCloseMode::Extend => self.ends_at.saturating_add(rule.extension_ms),
            SoftCloseMode::Reset => self.ends_at.max(now.saturating_add(rule.extension_ms)),
        };
        if ends_at != self.ends_at {
            self.ends_at = ends_at;
            events.push(Event::Extended { ends_at });
        }
    }
}

/// Validation of terms at creation; returns a human-readable reason.
pub fn validate_terms(terms: &AuctionTerms) -> Result<(), String> {
    let in_range = |name: &str, value: i64| {
        if (1..=MAX_AMOUNT).contains(&value) {
            Ok(())
        } else {
            Err(format!("{name} must be between 1 and {MAX_AMOUNT}"))
        }
    };
    let currency = terms.currency.as_bytes();
    if currency.len() != 3 || !currency.iter().all(u8::is_ascii_uppercase) {
        return Err("currency must be three upper-case letters".into());
    }
    in_range("starting price", terms.starting_price)?;
    match &terms.increment {
        IncrementRule::Fixed { amount } => in_range("increment", *amount)?,
        IncrementRule::Tiered { tiers } => {
            if tiers.first().map(|tier| tier.from) != Some(0) {
                return Err("increment tiers must start at 0".into());
            }
            if tiers.windows(2).any(|pair| pair[1].from <= pair[0].from) {
                return Err("increment tiers must be in strictly ascending order".into());
            }
            // A tier starting above any possible price could never apply.
            if tiers.iter().any(|tier| tier.from > MAX_AMOUNT) {
                return Err(format!(
                    "increment tiers must start at or below {MAX_AMOUNT}"
                ));
            }
            for tier in tiers {
                in_range("increment", tier.increment)?;
            }
        }
    }
    if let Some(reserve) = terms.reserve {
        in_range("reserve", reserve)?;
    }
    if let Some(buy_now) = terms.buy_now {
        in_range("buy-now price", buy_now)?;
        if buy_now < terms.starting_price {
            return Err("buy-now price must not be below the starting price".into());
        }
        if terms.reserve.is_some_and(|reserve| buy_now < reserve) {
            return Err("buy-now price must not be below the reserve".into());
        }
    }
    if terms.ends_at <= terms.starts_at {
        return Err("the auction must end after it starts".into());
    }
    if let Some(rule) = terms.soft_close {
        if !(0..=MAX_SOFT_CLOSE_MS).contains(&rule.window_ms) {
            return Err("soft-close window must be between 0 and 30 days".into());
        }
        if !(1..=MAX_SOFT_CLOSE_MS).contains(&rule.extension_ms) {
            return Err("soft-close extension must be between 1 ms and 30 days".into());
        }
    }
    Ok(())
}
