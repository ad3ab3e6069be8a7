//! The seed's scenario: staged virtual bidders on one auction (`seed`), or
//! spread round-robin over several (`spread`, every partition busy), then a
//! check through the REST API that every acknowledged bid is stored and each
//! auction's state agrees with what the clients were told.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{Api, User};
use crate::bidder::{run_stages, Stages};
use crate::record::{Report, Tally};

/// Registers the users, creates `auctions` auctions, runs the stages (user
/// `i` on auction `i % auctions`) and verifies every auction.
pub async fn run(
    api: &Api,
    stages: &Stages,
    password: &str,
    timeout: Duration,
    auctions: usize,
) -> anyhow::Result<Report> {
    let scenario = if auctions > 1 { "spread" } else { "seed" };
    let peak = stages.iter().map(|s| s.1).max().unwrap_or(0);
    let total: u64 = stages.iter().map(|s| s.0).sum();
    let prefix = format!("{scenario}-{}", std::process::id());
    eprintln!("{scenario}: registering {} users ...", peak + 1);
    let mut users = api.users(&prefix, peak + 1, password).await?;
    let seller = users.remove(0);
    let mut ids = Vec::with_capacity(auctions.max(1));
    for _ in 0..auctions.max(1) {
        ids.push(api.auction(&seller, total + 600).await?);
    }
    let urls = users.iter().map(|u| api.ws_url(&u.token)).collect();
    let (runs, elapsed, load) = run_stages(scenario, urls, &ids, stages, timeout).await;

    let mut tally = Tally::default();
    let mut acknowledged: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (index, (user, run)) in users.iter().zip(runs).enumerate() {
        tally.merge(run.tally);
        acknowledged
            .entry(ids[index % ids.len()])
            .or_default()
            .extend(run.accepted_amounts.into_iter().map(|a| (user.id, a)));
    }
    let mut mismatches = Vec::new();
    for id in &ids {
        let acked = acknowledged.get(id).map(Vec::as_slice).unwrap_or_default();
        for problem in verify(api, &seller, *id, acked).await? {
            mismatches.push(if ids.len() > 1 {
                format!("auction {id}: {problem}")
            } else {
                problem
            });
        }
    }
    for m in &mismatches {
        eprintln!("{scenario}: MISMATCH {m}");
    }
    // A stored state that disagrees with an answer is a failure of that run.
    for _ in &mismatches {
        tally.failures.push(elapsed.as_millis() as u32);
        *tally.codes.entry("VERIFY_MISMATCH".into()).or_default() += 1;
    }
    let mut report = Report::build(scenario, tally, elapsed, &load);
    report.extra.insert("peakUsers".into(), json!(peak));
    report.extra.insert("auctions".into(), json!(ids.len()));
    if ids.len() == 1 {
        report.extra.insert("auctionId".into(), json!(ids[0]));
    }
    let acked_total: usize = acknowledged.values().map(Vec::len).sum();
    report.extra.insert(
        "verification".into(),
        json!({"acknowledgedBids": acked_total, "mismatches": mismatches}),
    );
    Ok(report)
}

/// Compares the acknowledged (bidder, amount) pairs with the stored auction;
/// returns a description of each disagreement.
pub async fn verify(
    api: &Api,
    reader: &User,
    auction: i64,
    acknowledged: &[(i64, i64)],
) -> anyhow::Result<Vec<String>> {
    let view = api
        .get(&format!("/api/auctions/{auction}"), &reader.token)
        .await?;
    let steps = api.all_steps(auction, &reader.token).await?;
    Ok(compare(&view, &steps, acknowledged))
}

/// The pure part of [`verify`].
pub fn compare(view: &Value, steps: &[Value], acknowledged: &[(i64, i64)]) -> Vec<String> {
    let mut problems = Vec::new();
    let stored: HashSet<(i64, i64)> = steps
        .iter()
        .filter_map(|s| Some((s["bidder"].as_i64()?, s["amount"].as_i64()?)))
        .collect();
    let mut missing: BTreeMap<i64, usize> = BTreeMap::new();
    for (bidder, amount) in acknowledged {
        if !stored.contains(&(*bidder, *amount)) {
            *missing.entry(*bidder).or_default() += 1;
        }
    }
    for (bidder, n) in &missing {
        problems.push(format!(
            "{n} acknowledged bid(s) of user {bidder} not stored"
        ));
    }
    if steps.len() != acknowledged.len() {
        problems.push(format!(
            "{} price steps stored, {} bids acknowledged",
            steps.len(),
            acknowledged.len()
        ));
    }
    let amounts: Vec<i64> = steps.iter().filter_map(|s| s["amount"].as_i64()).collect();
    if amounts.windows(2).any(|w| w[1] <= w[0]) {
        problems.push("stored price steps do not rise strictly".into());
    }
    let seqs: Vec<i64> = steps.iter().filter_map(|s| s["seq"].as_i64()).collect();
    if seqs.iter().enumerate().any(|(i, s)| *s != i as i64 + 1) {
        problems.push("stored step sequence has gaps".into());
    }
    let highest = acknowledged.iter().max_by_key(|(_, amount)| *amount);
    if view["price"].as_i64() != highest.map(|h| h.1) {
        problems.push(format!(
            "price {} but highest acknowledged bid {:?}",
            view["price"],
            highest.map(|h| h.1)
        ));
    }
    if view["leaderId"].as_i64() != highest.map(|h| h.0) {
        problems.push(format!(
            "leader {} but highest acknowledged bidder {:?}",
            view["leaderId"],
            highest.map(|h| h.0)
        ));
    }
    for field in ["bidCount", "stepCount"] {
        if view[field].as_i64() != Some(acknowledged.len() as i64) {
            problems.push(format!(
                "{field} {} but {} bids acknowledged",
                view[field],
                acknowledged.len()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(seq: i64, bidder: i64, amount: i64) -> Value {
        json!({"seq": seq, "bidder": bidder, "amount": amount})
    }

    #[test]
    fn consistent_state_has_no_mismatches() {
        let steps = [step(1, 7, 100), step(2, 8, 101)];
        let view = json!({"price": 101, "leaderId": 8, "bidCount": 2, "stepCount": 2});
        assert!(compare(&view, &steps, &[(7, 100), (8, 101)]).is_empty());
    }

    #[test]
    fn a_lost_bid_and_a_wrong_price_are_reported() {
        let steps = [step(1, 7, 100)];
        let view = json!({"price": 100, "leaderId": 7, "bidCount": 1, "stepCount": 1});
        let problems = compare(&view, &steps, &[(7, 100), (8, 101)]);
        assert!(
            problems.iter().any(|p| p.contains("user 8 not stored")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("price")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("leader")),
            "{problems:?}"
        );
    }
}
