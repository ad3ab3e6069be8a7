//! The deny list of ended sessions: access tokens whose `sid` (refresh
//! family) was logged out or revoked stop working before their `exp`.
//!
//! Verifying an access token must stay cheap and synchronous (it runs on
//! every request and every WebSocket frame), so the list is a map in memory.
//! A revocation made by this process enters it at once; revocations made by
//! other processes of a cluster are read from the refresh-token store by
//! [`crate::AuthService::sync_revocations`], which the binary runs every
//! `auth.revocation_poll_ms`. An entry is kept until every access token of
//! its session has expired (revocation time + access-token lifetime +
//! leeway), then dropped: the list never grows beyond the sessions ended in
//! the last access-token lifetime.
//!
//! Blocked users are a second map of the same list: user -> the block's
//! time. A token of that user issued at or before it is refused, so a
//! block ends every session at once (also those whose refresh tokens live
//! in Redis, where they cannot be listed by user), while a login after an
//! unblock works. Entries last as long as session entries do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bowchat_model::{Millis, UserId};

use crate::moderation::issued_before_block;

/// Revocations seen by earlier polls are read again for this long, so a
/// revocation committed by another process with a slightly older timestamp
/// (clock skew, a slow commit) is not missed.
pub const POLL_OVERLAP_MS: Millis = 30_000;

#[derive(Default)]
pub struct Revocations {
    /// Session id -> the time (ms) after which no token of it can be valid.
    ended: Mutex<HashMap<String, Millis>>,
    /// User -> (latest block time, the time after which no token issued
    /// before it can be valid).
    blocked: Mutex<HashMap<UserId, (Millis, Millis)>>,
    /// Whether `blocked` ever held an entry: blocks are rare, and the check
    /// runs on every request and frame, so it takes no lock until then.
    any_blocked: AtomicBool,
    /// When the last successful poll started.
    polled: Mutex<Option<Millis>>,
}

impl Revocations {
    /// Ends session `sid` until `until` (ms).
    pub fn insert(&self, sid: &str, until: Millis, now: Millis) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() >= 1024 && ended.len().is_power_of_two() {
            ended.retain(|_, until| *until > now);
        }
        let entry = ended.entry(sid.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Refuses the tokens of `user` issued at or before `blocked_at` until `until`.
    pub fn block(&self, user: UserId, blocked_at: Millis, until: Millis, now: Millis) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() >= 1024 && blocked.len().is_power_of_two() {
            blocked.retain(|_, (_, until)| *until > now);
        }
        self.any_blocked.store(true, Ordering::Release);
        let entry = blocked.entry(user).or_insert((blocked_at, until));
        // The latest block covers every earlier one.
        if blocked_at >= entry.0 {
            *entry = (blocked_at, until.max(entry.1));
        }
    }

    /// Whether a token of `user` issued at `issued_ms` was ended by a block.
    pub fn blocked(&self, user: UserId, issued_ms: Millis, now: Millis) -> bool {
        if !self.any_blocked.load(Ordering::Acquire) {
            return false;
        }
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked
            .get(&user)
            .is_some_and(|(at, until)| *until > now && issued_before_block(issued_ms, *at))
    }

    /// Whether `sid` has ended (and its tokens may still be unexpired).
    pub fn contains(&self, sid: &str, now: Millis) -> bool {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.get(sid).is_some_and(|until| *until > now)
    }

    /// Where the next poll starts reading: the last poll's start minus the
    /// overlap, or `fallback` before the first poll.
    pub fn poll_from(&self, fallback: Millis) -> Millis {
        let polled = self.polled.lock().unwrap_or_else(|e| e.into_inner());
        polled.map_or(fallback, |at| at - POLL_OVERLAP_MS)
    }

    pub fn polled_at(&self, started: Millis) {
        *self.polled.lock().unwrap_or_else(|e| e.into_inner()) = Some(started);
    }

    /// Sessions on the list (expired entries included until swept).
    pub fn len(&self) -> usize {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lasts_until_its_tokens_expire() {
        let list = Revocations::default();
        list.insert("s1", 2_000, 1_000);
        assert!(list.contains("s1", 1_999));
        assert!(!list.contains("s1", 2_000));
        assert!(!list.contains("s2", 1_000));
        // A later revocation of the same session only extends it.
        list.insert("s1", 1_500, 1_000);
        assert!(list.contains("s1", 1_800));
    }

    #[test]
    fn a_block_ends_tokens_issued_up_to_it() {
        let list = Revocations::default();
        list.block(7, 1_000, 5_000, 1_000);
        assert!(list.blocked(7, 999, 1_001));
        assert!(list.blocked(7, 1_000, 1_001));
        // Issued after the block (a login after an unblock): valid.
        assert!(!list.blocked(7, 1_001, 1_002));
        assert!(!list.blocked(8, 999, 1_001));
        // Past the lifetime of every token it ended, the entry is moot.
        assert!(!list.blocked(7, 999, 5_000));
        // An older block read later does not move the newer one back.
        list.block(7, 500, 4_000, 1_000);
        assert!(list.blocked(7, 1_000, 1_001));
    }

    #[test]
    fn polls_overlap_the_previous_one() {
        let list = Revocations::default();
        assert_eq!(list.poll_from(5), 5);
        list.polled_at(100_000);
        assert_eq!(list.poll_from(5), 100_000 - POLL_OVERLAP_MS);
    }
}
