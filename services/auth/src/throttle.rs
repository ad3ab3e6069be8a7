//! Login and registration throttling: per account and per client IP, with
//! exponential backoff.
//!
//! Every attempt is counted *before* the password is checked, atomically in
//! the [`AttemptStore`], so a burst of concurrent guesses cannot all pass a
//! check made before any of them failed. A key's first `free_attempts`
//! attempts go through at once; each later one is allowed only after a delay
//! that doubles from `backoff_base_ms` up to `backoff_max_ms`. A successful
//! login clears its account's count and gives its IP one attempt back, so
//! people behind one NAT who type their passwords right never wait. The count
//! starts over after `window_secs` without attempts.
//!
//! Keys never hold an email in clear: accounts are keyed by a SHA-256 of the
//! normalised address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a refusal was counted against (the `scope` label of
/// `bowchat_auth_throttled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleScope {
    /// Logins to one account, from anywhere.
    Account,
    /// Logins from one client IP, to any account.
    Ip,
    /// Registrations from one client IP.
    Register,
}

impl ThrottleScope {
    pub fn label(self) -> &'static str {
        match self {
            ThrottleScope::Account => "account",
            ThrottleScope::Ip => "ip",
            ThrottleScope::Register => "register",
        }
    }
}

/// How many attempts a key gets before backoff, and how the delay grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleRule {
    /// Attempts allowed in a row before the first delay; 0 turns the rule off.
    pub free_attempts: u32,
    /// The first delay; each further attempt doubles it.
    pub backoff_base_ms: u64,
    /// The longest delay.
    pub backoff_max_ms: u64,
    /// A key with no attempt for this long starts over.
    pub window_secs: u64,
}

impl Default for ThrottleRule {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 15 * 60 * 1000,
            window_secs: 15 * 60,
        }
    }
}

impl ThrottleRule {
    /// How long a key stays blocked after its `count`th attempt in a row.
    pub fn block_ms(&self, count: u64) -> u64 {
        let free = u64::from(self.free_attempts);
        if free == 0 || count < free {
            return 0;
        }
        let doublings = (count - free).min(40) as u32;
        self.backoff_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.backoff_max_ms)
    }

    /// How long the store keeps a key: the window, or the block if longer.
    pub fn keep_ms(&self) -> u64 {
        self.window_secs
            .saturating_mul(1000)
            .max(self.backoff_max_ms)
            .max(1)
    }

    fn enabled(&self) -> bool {
        self.free_attempts > 0
    }
}

/// The three rules (`[auth.throttle]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Logins to one account.
    pub account: ThrottleRule,
    /// Logins from one IP (many accounts: password spraying).
    pub ip: ThrottleRule,
    /// Registrations from one IP.
    pub register: ThrottleRule,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account: ThrottleRule::default(),
            ip: ThrottleRule {
                free_attempts: 50,
                ..ThrottleRule::default()
            },
            register: ThrottleRule {
                free_attempts: 20,
                backoff_base_ms: 10_000,
                backoff_max_ms: 3600 * 1000,
                window_secs: 3600,
            },
        }
    }
}

/// The answer to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Counted; go ahead.
    Allowed,
    /// Not counted: the key is blocked for this much longer.
    Blocked { retry_after_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attempt counter unavailable: {0}")]
pub struct AttemptStoreError(pub String);

/// Where attempts are counted: this process ([`LocalAttempts`]) or a store
/// every gateway shares (Redis in cluster mode).
#[async_trait]
pub trait AttemptStore: Send + Sync + 'static {
    /// Counts one attempt on `key` unless it is blocked now, atomically, and
    /// blocks the key for `rule.block_ms(count)` after it.
    async fn hit(&self, key: &str, rule: &ThrottleRule) -> Result<Hit, AttemptStoreError>;
    /// Forgets `key`'s attempts.
    async fn clear(&self, key: &str) -> Result<(), AttemptStoreError>;
    /// Takes one attempt back from `key`'s count (not its current block).
    async fn forgive(&self, key: &str) -> Result<(), AttemptStoreError>;
}

struct Entry {
    count: u64,
    blocked_until: Instant,
    last: Instant,
}

/// Attempts counted in this process (embedded mode: one process is all).
#[derive(Default)]
pub struct LocalAttempts {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Keys kept before stale ones are swept.
const MAX_LOCAL_KEYS: usize = 100_000;

impl LocalAttempts {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, AttemptStoreError> {
        self.entries
            .lock()
            .map_err(|_| AttemptStoreError("attempt counter lock poisoned".into()))
    }
}

#[async_trait]
impl AttemptStore for LocalAttempts {
    async fn hit(&self, key: &str, rule: &ThrottleRule) -> Result<Hit, AttemptStoreError> {
        let now = Instant::now();
        let keep = Duration::from_millis(rule.keep_ms());
        let mut entries = self.lock()?;
        if entries.len() >= MAX_LOCAL_KEYS {
            entries.retain(|_, e| now.duration_since(e.last) < keep || e.blocked_until > now);
        }
        let entry = entries.entry(key.to_string()).or_insert(Entry {
            count: 0,
            blocked_until: now,
            last: now,
        });
        if entry.blocked_until > now {
            let left = entry.blocked_until.duration_since(now);
            return Ok(Hit::Blocked {
                retry_after_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
            });
        }
        if now.duration_since(entry.last) >= keep {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        entry.blocked_until = now + Duration::from_millis(rule.block_ms(entry.count));
        Ok(Hit::Allowed)
    }

    async fn clear(&self, key: &str) -> Result<(), AttemptStoreError> {
        self.lock()?.remove(key);
        Ok(())
    }

    async fn forgive(&self, key: &str) -> Result<(), AttemptStoreError> {
        if let Some(entry) = self.lock()?.get_mut(key) {
            entry.count = entry.count.saturating_sub(1);
        }
        Ok(())
    }
}

/// Why an attempt was refused before any password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub scope: ThrottleScope,
    /// Whole seconds, rounded up (the `Retry-After` value).
    pub retry_after_secs: u64,
}

/// The rules and the counter together; what the auth service consults.
#[derive(Clone)]
pub struct Throttle {
    config: ThrottleConfig,
    store: Arc<dyn AttemptStore>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(
            ThrottleConfig::default(),
            Arc::new(LocalAttempts::default()),
        )
    }
}

/// The outcome of a throttle check: refused, or the store failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleError {
    Refused(Refusal),
    Store(AttemptStoreError),
}

impl Throttle {
    pub fn new(config: ThrottleConfig, store: Arc<dyn AttemptStore>) -> Self {
        Self { config, store }
    }

    /// Counts one login attempt against `ip` (if known) and the account.
    pub async fn login(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ThrottleError> {
        if let Some(ip) = ip {
            self.hit(ThrottleScope::Ip, &ip_key("ip", ip)).await?;
        }
        self.hit(ThrottleScope::Account, &account_key(email)).await
    }

    /// A login succeeded: its account starts over, its IP gets the attempt back.
    pub async fn login_succeeded(&self, email: &str, ip: Option<IpAddr>) {
        if let Err(e) = self.store.clear(&account_key(email)).await {
            tracing::warn!(error = %e, "cannot clear an account's login attempts");
        }
        if let Some(ip) = ip {
            if let Err(e) = self.store.forgive(&ip_key("ip", ip)).await {
                tracing::warn!(error = %e, "cannot forgive an IP's login attempt");
            }
        }
    }

    /// Counts one registration attempt against `ip` (if known).
    pub async fn register(&self, ip: Option<IpAddr>) -> Result<(), ThrottleError> {
        match ip {
            Some(ip) => self.hit(ThrottleScope::Register, &ip_key("reg", ip)).await,
            None => Ok(()),
        }
    }

    async fn hit(&self, scope: ThrottleScope, key: &str) -> Result<(), ThrottleError> {
        let rule = match scope {
            ThrottleScope::Account => &self.config.account,
            ThrottleScope::Ip => &self.config.ip,
            ThrottleScope::Register => &self.config.register,
        };
        if !rule.enabled() {
            return Ok(());
        }
        match self.store.hit(key, rule).await {
            Ok(Hit::Allowed) => Ok(()),
            Ok(Hit::Blocked { retry_after_ms }) => Err(ThrottleError::Refused(Refusal {
                scope,
                retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
            })),
            Err(e) => Err(ThrottleError::Store(e)),
        }
    }
}

fn account_key(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    format!("acct:{}", hex::encode(&digest[..16]))
}

fn ip_key(kind: &str, ip: IpAddr) -> String {
    // An IPv6 client usually holds a whole /64: count the prefix, or a new
    // address per attempt would escape the rule.
    match ip {
        IpAddr::V4(v4) => format!("{kind}:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{kind}:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(free: u32) -> ThrottleRule {
        ThrottleRule {
            free_attempts: free,
            backoff_base_ms: 60_000,
            backoff_max_ms: 240_000,
            window_secs: 900,
        }
    }

    #[test]
    fn backoff_doubles_after_the_free_attempts_up_to_the_cap() {
        let r = rule(3);
        let blocks: Vec<u64> = (1..=7).map(|n| r.block_ms(n)).collect();
        assert_eq!(
            blocks,
            vec![0, 0, 60_000, 120_000, 240_000, 240_000, 240_000]
        );
        assert_eq!(rule(0).block_ms(1_000), 0, "0 free attempts: rule off");
        assert_eq!(rule(1).block_ms(u64::MAX), 240_000, "no overflow");
    }

    #[tokio::test]
    async fn a_blocked_key_is_refused_without_counting_and_clear_resets_it() {
        let store = LocalAttempts::default();
        let r = rule(2);
        assert_eq!(store.hit("k", &r).await, Ok(Hit::Allowed));
        assert_eq!(store.hit("k", &r).await, Ok(Hit::Allowed));
        for _ in 0..3 {
            match store.hit("k", &r).await.unwrap() {
                Hit::Blocked { retry_after_ms } => {
                    assert!(retry_after_ms > 0 && retry_after_ms <= 60_000)
                }
                Hit::Allowed => panic!("the third attempt waits"),
            }
        }
        assert_eq!(store.hit("other", &r).await, Ok(Hit::Allowed));
        store.clear("k").await.unwrap();
        assert_eq!(store.hit("k", &r).await, Ok(Hit::Allowed));
    }

    #[tokio::test]
    async fn login_refusals_name_their_scope() {
        let config = ThrottleConfig {
            account: rule(2),
            ip: rule(3),
            register: rule(1),
        };
        let throttle = Throttle::new(config, Arc::new(LocalAttempts::default()));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(throttle.login("a@x.io", Some(ip)).await.is_ok());
        assert!(throttle.login("a@x.io", Some(ip)).await.is_ok());
        let Err(ThrottleError::Refused(refusal)) = throttle.login("a@x.io", Some(ip)).await else {
            panic!("the account is blocked");
        };
        assert_eq!(refusal.scope, ThrottleScope::Account);
        assert_eq!(refusal.retry_after_secs, 60);
        // That third attempt still counted against the IP (3 of 3): a
        // different account from the same IP is now refused by IP.
        let Err(ThrottleError::Refused(refusal)) = throttle.login("b@x.io", Some(ip)).await else {
            panic!("the IP is blocked");
        };
        assert_eq!(refusal.scope, ThrottleScope::Ip);
        // Another IP, another account: fine.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(throttle.login("c@x.io", Some(other)).await.is_ok());
        assert!(throttle.register(Some(other)).await.is_ok());
        let Err(ThrottleError::Refused(refusal)) = throttle.register(Some(other)).await else {
            panic!("registrations are throttled");
        };
        assert_eq!(refusal.scope, ThrottleScope::Register);
    }

    #[test]
    fn keys_hide_emails_and_group_ipv6_by_prefix() {
        let key = account_key("ada@example.com");
        assert!(key.starts_with("acct:") && !key.contains("ada"), "{key}");
        let a = ip_key("ip", "2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ip_key("ip", "2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a, "ip:2001:db8:1:2::/64");
    }
}
