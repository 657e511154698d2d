//! Rate limits and the failed-authentication guard.
//!
//! The per-token and per-IP buckets are [`governor`] keyed GCRA limiters backed
//! by a DashMap: one limiter per (kind, scope), where the scope is `*` for
//! `[limits]` or the path id whose `[path.limits]` applies. A limiter's quota is
//! fixed, so when a reload changes a scope's rate the scope gets a fresh limiter
//! (its clients start with a full burst under the new rate). [`Limiter::sweep`]
//! (every few seconds, from the server) drops the keys whose bucket is full again
//! (`retain_recent`, then `shrink_to_fit`) and the scopes left with no key, so
//! memory follows the number of recently active clients.
//!
//! The failed-authentication guard stays hand-written: it is a fixed window with a
//! cooldown (`max` failures within `window`, then refused for `cooldown`), which a
//! GCRA bucket cannot express — a bucket refuses only while it is empty and
//! admits again as soon as one cell refills, where the guard must refuse for the
//! whole cooldown.
//!
//! IPv6 clients are keyed by their /64, since one host usually holds a whole /64.
//!
//! The guard is keyed by client address, so every client behind one address (a
//! NAT, an office, a carrier-grade NAT) shares one record: one of them flooding
//! bad tokens locks all of them out for the cooldown. That is the price of
//! stopping a token-guessing flood from one address whatever tokens it makes up;
//! keying by the presented token instead would give every made-up token a fresh
//! record and stop nothing. `limits.failed_auth.exempt` lists networks the guard
//! never counts or refuses (an office NAT the operator trusts); the per-IP rate
//! limit still applies to them.
//! Nothing here does I/O, and nothing here ever sees a token secret.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{FailedAuth, Rate};
use crate::policy::TokenId;

/// Rate-limit and failed-authentication state. `C` is the clock the buckets read
/// (a fake one in tests).
pub struct Limiter<C: Clock = DefaultClock> {
    clock: C,
    ip: Buckets<IpAddr, C>,
    token: Buckets<TokenId, C>,
    failures: DashMap<IpAddr, Mutex<Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One keyed limiter per scope, each with the rate it was built for.
struct Buckets<K: Hash + Eq + Clone, C: Clock> {
    scopes: DashMap<Box<str>, Scoped<K, C>>,
}

/// A scope's limiter and the rate it was built for.
struct Scoped<K: Hash + Eq + Clone, C: Clock> {
    rate: Rate,
    limiter: Arc<Keyed<K, C>>,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Buckets<K, C> {
    fn new() -> Self {
        Buckets { scopes: DashMap::new() }
    }

    /// The limiter of `scope` for `rate`, made (or remade, after a rate change) if needed.
    fn limiter(&self, scope: &str, rate: Rate, clock: &C) -> Arc<Keyed<K, C>> {
        if let Some(entry) = self.scopes.get(scope) {
            if entry.rate == rate {
                return entry.limiter.clone();
            }
        }
        let limiter = Arc::new(RateLimiter::dashmap_with_clock(quota(rate), clock.clone()));
        self.scopes.insert(scope.into(), Scoped { rate, limiter: limiter.clone() });
        limiter
    }

    fn take(&self, scope: &str, key: &K, rate: Rate, clock: &C) -> Result<(), Duration> {
        let limiter = self.limiter(scope, rate, clock);
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(clock.now()))
    }

    fn sweep(&self) {
        for entry in self.scopes.iter() {
            entry.limiter.retain_recent();
            entry.limiter.shrink_to_fit();
        }
        // A take racing this can land in a limiter just dropped; its client then
        // starts from a full bucket, as it had one a moment ago: at most one extra
        // request per sweep, never an unbounded one.
        self.scopes.retain(|_, scoped| !scoped.limiter.is_empty());
        self.scopes.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.scopes.iter().map(|e| e.limiter.len()).sum()
    }
}

/// The governor quota for a validated rate: one request per `1 / per_second`,
/// up to `burst` at once.
fn quota(rate: Rate) -> Quota {
    // Config validation keeps per_second in (0, 1e6] and burst ≥ 1; the clamps
    // only guard against a zero period or burst, never change a valid rate.
    let period = Duration::from_secs_f64(1.0 / rate.per_second).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    match Quota::with_period(period) {
        Some(q) => q.allow_burst(burst),
        // INVARIANT: `period` is at least 1 ns, so `with_period` returns `Some`.
        None => Quota::per_second(NonZeroU32::MAX).allow_burst(burst),
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limiter<C> {
    /// A limiter whose buckets read `clock`.
    pub fn with_clock(clock: C) -> Self {
        Limiter { clock, ip: Buckets::new(), token: Buckets::new(), failures: DashMap::new() }
    }

    /// Takes one request from the per-IP bucket of `client` (by [`client_key`])
    /// in `scope`. `Err` carries how long until a request would be allowed.
    pub fn take_ip(&self, scope: &str, client: IpAddr, rate: Rate) -> Result<(), Duration> {
        self.ip.take(scope, &client_key(client), rate, &self.clock)
    }

    /// Takes one request from the bucket of `token` in `scope`.
    pub fn take_token(&self, scope: &str, token: TokenId, rate: Rate) -> Result<(), Duration> {
        self.token.take(scope, &token, rate, &self.clock)
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

    /// Forgets full buckets (and scopes left empty) and expired failure records.
    /// `window` is the longest failed-auth window in use.
    pub fn sweep(&self, now: Instant, window: Duration) {
        self.ip.sweep();
        self.token.sweep();
        self.failures.retain(|_, f| {
            f.get_mut()
                .map(|f| {
                    f.blocked_until.is_some_and(|u| u > now) || now.saturating_duration_since(f.window_start) <= window
                })
                .unwrap_or(false)
        });
    }

    /// (bucket keys, failure records) held now.
    pub fn sizes(&self) -> (usize, usize) {
        (self.ip.len() + self.token.len(), self.failures.len())
    }
}

/// Whether `ip` is in one of `networks` (`limits.failed_auth.exempt`): the
/// failed-authentication guard neither counts nor refuses it.
pub fn exempt(networks: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = client_key(ip);
    networks.iter().any(|n| n.contains(&ip))
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

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const RATE: Rate = Rate { per_second: 10.0, burst: 3 };

    fn token(n: u128) -> TokenId {
        TokenId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(clock.clone());
        for i in 0..3 {
            assert!(l.take_token("*", token(1), RATE).is_ok(), "request {i} is within the burst");
        }
        let wait = l.take_token("*", token(1), RATE).expect_err("the fourth is over the burst");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO, "{wait:?}");
        assert!(l.take_token("*", token(2), RATE).is_ok(), "another subject has its own bucket");
        assert!(l.take_token("osm", token(1), RATE).is_ok(), "another scope has its own bucket");
        clock.advance(wait);
        assert!(l.take_token("*", token(1), RATE).is_ok(), "one request refilled after the wait");
        assert!(l.take_token("*", token(1), RATE).is_err());
    }

    #[test]
    fn the_wait_is_the_time_until_the_next_request_is_allowed() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(clock.clone());
        let slow = Rate { per_second: 0.5, burst: 1 };
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        l.take_ip("*", ip, slow).expect("the first is within the burst");
        clock.advance(Duration::from_millis(500));
        let wait = l.take_ip("*", ip, slow).expect_err("the bucket refills in 2 s");
        assert_eq!(wait, Duration::from_millis(1500));
        assert_eq!(crate::respond::retry_after_secs(wait), 2, "Retry-After rounds up");
    }

    #[test]
    fn a_rate_change_on_reload_applies_at_once() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(clock);
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let one = Rate { per_second: 1.0, burst: 1 };
        l.take_ip("*", ip, one).expect("within the burst");
        assert!(l.take_ip("*", ip, one).is_err());
        let more = Rate { per_second: 1.0, burst: 5 };
        assert!(l.take_ip("*", ip, more).is_ok(), "the larger burst holds from the next request");
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
        let l = Limiter::with_clock(FakeRelativeClock::default());
        let one = Rate { per_second: 1.0, burst: 1 };
        l.take_ip("*", a, one).expect("within the burst");
        assert!(l.take_ip("*", b, one).is_err(), "the same /64 shares one bucket");
        assert!(l.take_ip("*", c, one).is_ok(), "another /64 has its own");
    }

    #[test]
    fn sweeping_forgets_idle_buckets_and_expired_failures() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(clock.clone());
        let t0 = Instant::now();
        l.take_ip("*", "192.0.2.1".parse().expect("ip"), RATE).expect("ok");
        l.take_token("osm", token(1), RATE).expect("ok");
        let rule = FailedAuth { max: 5, window: Duration::from_secs(10), cooldown: Duration::from_secs(60) };
        l.auth_failed("192.0.2.1".parse().expect("ip"), rule, t0);
        l.sweep(t0, rule.window);
        assert_eq!(l.sizes(), (2, 1), "buckets in use and failures in their window stay");
        clock.advance(Duration::from_secs(11));
        l.sweep(t0 + Duration::from_secs(11), rule.window);
        assert_eq!(l.sizes(), (0, 0));
        assert!(l.ip.scopes.is_empty() && l.token.scopes.is_empty(), "scopes with no key are dropped");
    }
}
