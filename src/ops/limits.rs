//! Rate limits and the failed-authentication guard.
//!
//! Token buckets use GCRA: one `AtomicU64` per bucket holds the theoretical
//! arrival time, updated by compare-and-swap, so the hot path takes no lock
//! beyond the DashMap shard read. Buckets are keyed by a 64-bit hash of
//! (kind, scope, subject); a rate change on reload applies to existing buckets at
//! once. Idle buckets and expired failure records are swept periodically, so
//! memory follows the number of recently active clients.
//!
//! IPv6 clients are keyed by their /64, since one host usually holds a whole /64.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::config::{FailedAuth, Rate};

/// Rate-limit and failed-authentication state.
pub struct Limiter {
    epoch: Instant,
    hasher: std::collections::hash_map::RandomState,
    /// Bucket key → theoretical arrival time in ns since `epoch`.
    buckets: DashMap<u64, AtomicU64>,
    failures: DashMap<IpAddr, Mutex<Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// Which kind of bucket.
#[derive(Debug, Clone, Copy, Hash)]
pub enum Kind {
    Ip,
    Token,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Self {
        Limiter { epoch: Instant::now(), hasher: Default::default(), buckets: DashMap::new(), failures: DashMap::new() }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos().min(u128::from(u64::MAX)) as u64
    }

    /// Takes one request from the bucket of (`kind`, `scope`, `subject`).
    /// `Err` carries how long until a request would be allowed.
    pub fn take(&self, kind: Kind, scope: &str, subject: impl Hash, rate: Rate, now: Instant) -> Result<(), Duration> {
        let key = self.hasher.hash_one((kind, scope, subject));
        let interval = (1e9 / rate.per_second).max(1.0) as u64;
        let capacity = interval.saturating_mul(u64::from(rate.burst));
        let t = self.nanos(now);
        let attempt = |tat: &AtomicU64| -> Result<(), Duration> {
            let mut seen = tat.load(Ordering::Acquire);
            loop {
                let next = seen.max(t).saturating_add(interval);
                let ahead = next - t;
                if ahead > capacity {
                    return Err(Duration::from_nanos(ahead - capacity));
                }
                match tat.compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Ok(()),
                    Err(now_seen) => seen = now_seen,
                }
            }
        };
        match self.buckets.get(&key) {
            Some(tat) => attempt(&tat),
            None => attempt(&self.buckets.entry(key).or_insert_with(|| AtomicU64::new(0))),
        }
    }

    /// How much longer `ip` is refused for failed authentications, if it is.
    pub fn auth_blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let entry = self.failures.get(&client_key(ip))?;
        let f = *entry.lock().ok()?;
        f.blocked_until.filter(|until| *until > now).map(|until| until - now)
    }

    /// Counts a failed authentication from `ip`; returns true when this one
    /// starts a cooldown.
    pub fn auth_failed(&self, ip: IpAddr, rule: FailedAuth, now: Instant) -> bool {
        let entry = self
            .failures
            .entry(client_key(ip))
            .or_insert_with(|| Mutex::new(Failures { window_start: now, count: 0, blocked_until: None }));
        let Ok(mut f) = entry.lock() else { return false };
        if f.blocked_until.is_some_and(|until| until > now) {
            return false;
        }
        if now.saturating_duration_since(f.window_start) > rule.window || f.blocked_until.is_some() {
            *f = Failures { window_start: now, count: 0, blocked_until: None };
        }
        f.count += 1;
        if f.count >= rule.max {
            f.blocked_until = Some(now + rule.cooldown);
            return true;
        }
        false
    }

    /// Forgets full buckets and expired failure records. `window` is the longest
    /// failed-auth window in use.
    pub fn sweep(&self, now: Instant, window: Duration) {
        let t = self.nanos(now);
        self.buckets.retain(|_, tat| tat.load(Ordering::Relaxed) > t);
        self.failures.retain(|_, f| {
            f.get_mut()
                .map(|f| {
                    f.blocked_until.is_some_and(|u| u > now) || now.saturating_duration_since(f.window_start) <= window
                })
                .unwrap_or(false)
        });
    }

    /// (buckets, failure records) held now.
    pub fn sizes(&self) -> (usize, usize) {
        (self.buckets.len(), self.failures.len())
    }
}

/// The key a client address is limited by: IPv4 as is, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Whole seconds for `Retry-After` (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { per_second: 10.0, burst: 3 };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.take(Kind::Token, "*", 1u8, RATE, t0).is_ok(), "request {i} is within the burst");
        }
        let wait = l.take(Kind::Token, "*", 1u8, RATE, t0).expect_err("the fourth is over the burst");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO, "{wait:?}");
        assert!(l.take(Kind::Token, "*", 2u8, RATE, t0).is_ok(), "another subject has its own bucket");
        assert!(l.take(Kind::Token, "osm", 1u8, RATE, t0).is_ok(), "another scope has its own bucket");
        assert!(l.take(Kind::Token, "*", 1u8, RATE, t0 + wait).is_ok(), "one request refilled after the wait");
        assert!(l.take(Kind::Token, "*", 1u8, RATE, t0 + wait).is_err());
    }

    #[test]
    fn failed_authentications_start_a_cooldown_after_the_maximum() {
        let l = Limiter::new();
        let rule = FailedAuth { max: 3, window: Duration::from_secs(60), cooldown: Duration::from_secs(300) };
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let t0 = Instant::now();
        assert!(!l.auth_failed(ip, rule, t0));
        assert!(!l.auth_failed(ip, rule, t0));
        assert_eq!(l.auth_blocked(ip, t0), None);
        assert!(l.auth_failed(ip, rule, t0), "the third failure starts the cooldown");
        assert_eq!(l.auth_blocked(ip, t0 + Duration::from_secs(100)), Some(Duration::from_secs(200)));
        assert_eq!(l.auth_blocked("192.0.2.8".parse().expect("ip"), t0), None, "other clients are not affected");
        assert_eq!(l.auth_blocked(ip, t0 + Duration::from_secs(301)), None, "the cooldown ends");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let l = Limiter::new();
        let rule = FailedAuth { max: 2, window: Duration::from_secs(10), cooldown: Duration::from_secs(300) };
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let t0 = Instant::now();
        assert!(!l.auth_failed(ip, rule, t0));
        assert!(!l.auth_failed(ip, rule, t0 + Duration::from_secs(11)));
        assert!(l.auth_failed(ip, rule, t0 + Duration::from_secs(12)));
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:192.0.2.1".parse().expect("ip")), "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn sweeping_forgets_idle_buckets_and_expired_failures() {
        let l = Limiter::new();
        let t0 = Instant::now();
        l.take(Kind::Ip, "*", 1u8, RATE, t0).expect("ok");
        let rule = FailedAuth { max: 5, window: Duration::from_secs(10), cooldown: Duration::from_secs(60) };
        l.auth_failed("192.0.2.1".parse().expect("ip"), rule, t0);
        l.sweep(t0, rule.window);
        assert_eq!(l.sizes(), (1, 1));
        l.sweep(t0 + Duration::from_secs(11), rule.window);
        assert_eq!(l.sizes(), (0, 0));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
