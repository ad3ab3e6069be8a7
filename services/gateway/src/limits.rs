//! Per-user command rate (token bucket) and per-IP connection counting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bowchat_model::UserId;
use parking_lot::Mutex;

/// One token bucket per user, shared by all of that user's connections and REST
/// calls so opening more sockets does not buy more rate.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<UserId, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token; false when the user is over the limit.
    pub fn allow(&self, user: UserId) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() > 100_000 {
            // Full buckets carry no information; dropping them bounds memory.
            let burst = self.burst;
            let rate = self.rate;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(user).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts open connections per IP; a `ConnectionPermit` gives its slot back on drop.
#[derive(Clone)]
pub struct ConnectionLimiter {
    per_ip: usize,
    total: usize,
    open: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

pub struct ConnectionPermit {
    ip: IpAddr,
    open: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

impl ConnectionLimiter {
    pub fn new(per_ip: usize, total: usize) -> Self {
        Self {
            per_ip,
            total,
            open: Arc::new(Mutex::new((0, HashMap::new()))),
        }
    }

    pub fn acquire(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        let mut open = self.open.lock();
        if open.0 >= self.total {
            return None;
        }
        let count = open.1.entry(ip).or_insert(0);
        if *count >= self.per_ip {
            return None;
        }
        *count += 1;
        open.0 += 1;
        Some(ConnectionPermit {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(count) = open.1.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let limiter = RateLimiter::new(0.001, 3.0);
        assert!(limiter.allow(1));
        assert!(limiter.allow(1));
        assert!(limiter.allow(1));
        assert!(!limiter.allow(1));
        assert!(limiter.allow(2), "users have separate buckets");
    }

    #[test]
    fn permits_are_returned_on_drop() {
        let limiter = ConnectionLimiter::new(2, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limiter.acquire(ip).unwrap();
        let _b = limiter.acquire(ip).unwrap();
        assert!(limiter.acquire(ip).is_none());
        drop(a);
        assert!(limiter.acquire(ip).is_some());
    }
}
