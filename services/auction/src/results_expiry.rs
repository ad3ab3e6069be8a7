//! The idempotency window: a retried bid gets its first answer back for at
//! least `window`. Refused answers are the bulk of what is stored (most bids
//! in a busy auction are too low), so they are forgotten once older than the
//! window; accepted answers are one per price step and stay as long as their
//! auction, so an accepted bid retried at any time is never placed twice.

use std::sync::Arc;
use std::time::Duration;

use bowchat_model::Millis;
use tracing::{debug, warn};

use crate::ports::{AuctionRepository, RepoError};

#[derive(Debug, Clone)]
pub struct ResultsExpiry {
    /// How long a refused answer is kept at least.
    pub window: Duration,
    /// How often expired answers are looked for.
    pub interval: Duration,
    /// Most answers deleted by one statement, so no statement runs long.
    pub chunk: u32,
}

impl Default for ResultsExpiry {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(60),
            chunk: 10_000,
        }
    }
}

impl ResultsExpiry {
    /// Deletes every refused answer stored more than `window` before `now`,
    /// a chunk at a time; returns how many went.
    pub async fn sweep(&self, repo: &dyn AuctionRepository, now: Millis) -> Result<u64, RepoError> {
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(window);
        let chunk = self.chunk.max(1);
        let mut total = 0;
        loop {
            let deleted = repo.expire_results(cutoff, chunk).await?;
            total += deleted;
            if deleted < u64::from(chunk) {
                return Ok(total);
            }
            // Let bid commits between chunks (on SQLite they share the disk).
            tokio::task::yield_now().await;
        }
    }

    /// Sweeps every `interval` with the time `clock` gives, for as long as the
    /// process runs; a failed sweep is retried at the next interval.
    pub async fn run(
        self,
        repo: Arc<dyn AuctionRepository>,
        clock: fn() -> Millis,
    ) -> Result<(), RepoError> {
        let mut ticker = tokio::time::interval(self.interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.sweep(repo.as_ref(), clock()).await {
                Ok(0) => {}
                Ok(deleted) => debug!(deleted, "expired refused bid answers"),
                Err(e) => warn!(error = %e, "cannot expire refused bid answers; retrying later"),
            }
        }
    }
}
