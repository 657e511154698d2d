//! Connection admission: who gets a connection slot when the listener is full.
//!
//! Every accepted connection asks [`Admission::admit`] for a [`Ticket`] before
//! anything else happens to it. Two limits apply:
//!
//! - `server.max_connections_per_ip`: the connections one client address may
//!   hold (IPv6 by its /64, as the rate limits key it; peers in
//!   `server.trusted_proxies` are exempt, since every client behind them shares
//!   their address). Over it, the new connection is refused.
//! - `server.max_connections`: at the limit, a new connection is not simply
//!   refused (that hands the listener to whoever holds it, e.g. a slowloris
//!   flood). The connection costing the most for the least is shed instead:
//!   first a connection that has not completed a request head yet (still in
//!   its TLS handshake or sending its first head), then one idle with no
//!   request in flight (a keep-alive, or one dripping its next head); within
//!   each, one of the address holding the most connections, then the oldest
//!   (idle longest). A connection with a request in flight is never
//!   shed; when every connection has one, the newcomer is refused.
//!
//! The state is shared by every accept loop of a listener, whatever thread or
//! runtime runs it: counts are atomics, the per-address counts a sharded map, and
//! each connection's [`Slot`] is updated with atomic stores only (the request
//! path never locks). The registry of slots is scanned only at the limit, and
//! then for a batch of victims at once, so a flood costs one scan per batch, not
//! one per connection.
//!
//! Warnings about refused and shed connections are rate limited ([`Throttle`]):
//! one line per interval with the count since the last line; the metrics count
//! every event.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ipnet::IpNet;
use tokio::sync::Notify;

use crate::ops::limits::client_key;
use crate::ops::Metrics;

/// How often a repeated admission warning is written at most.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The limits one admission applies (from `[server]`; read per connection, so a
/// reload applies to the next one).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: Option<usize>,
    pub trusted_proxies: Vec<IpNet>,
}

/// How a victim ranks, lowest shed first: its kind, then the connections its address
/// holds (most first), then its age (oldest first).
type VictimRank = (Shed, std::cmp::Reverse<usize>, u64);

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `server.max_connections` reached and every open connection has a request in flight.
    Full,
    /// `server.max_connections_per_ip` reached for this address.
    PerIp,
}

/// Which kind of connection was shed to admit a new one (the `state` label of
/// `tilegate_connections_shed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shed {
    /// No complete request head yet (TLS handshake or first head).
    Head,
    /// No request in flight after at least one.
    Idle,
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Shed::Head => "head",
            Shed::Idle => "idle",
        }
    }
}

/// What admitting a connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// There was room.
    Free,
    /// Room was made by shedding a connection of this kind.
    Shed(Shed),
}

/// The admission state of one listener.
pub struct Admission {
    epoch: Instant,
    /// Tickets alive.
    open: AtomicUsize,
    /// Tickets marked to be shed that have not closed yet; `open - shedding` is
    /// what counts against the limit, so a victim slow to close is not shed twice
    /// and the limit is not exceeded by more than the victims on their way out.
    shedding: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    slots: DashMap<u64, Arc<Slot>>,
    next_id: AtomicU64,
    /// The next victims, best last (refilled by a scan when empty).
    victims: Mutex<Vec<Weak<Slot>>>,
    pub(crate) warn_full: Throttle,
    pub(crate) warn_per_ip: Throttle,
    pub(crate) warn_shed: Throttle,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new()
    }
}

/// One connection's state as admission sees it.
pub struct Slot {
    id: u64,
    /// The per-address key, `None` for an exempt (trusted proxy) peer.
    key: Option<IpAddr>,
    opened_ms: u64,
    epoch: Instant,
    /// Whether a request head was ever completed.
    served: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since the epoch when the last request ended (or the connection opened).
    idle_since_ms: AtomicU64,
    shed: AtomicBool,
    close: Notify,
}

impl Slot {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request head completed: the connection is busy until [`InFlight`] drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Whether a request is in flight now.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Resolves when admission shed this connection.
    pub async fn shed(&self) {
        self.close.notified().await;
    }

    /// What shedding this connection would be, if it may be shed.
    fn sheddable(&self) -> Option<(Shed, u64)> {
        if self.shed.load(Ordering::Acquire) || self.busy() {
            return None;
        }
        if self.served.load(Ordering::Relaxed) {
            Some((Shed::Idle, self.idle_since_ms.load(Ordering::Relaxed)))
        } else {
            Some((Shed::Head, self.opened_ms))
        }
    }
}

/// A request in flight on a connection; dropped when its response ended (or was dropped).
pub struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.idle_since_ms.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's place: frees it (and its per-address count) when dropped.
pub struct Ticket {
    slot: Arc<Slot>,
    admission: Arc<Admission>,
}

impl Ticket {
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        a.slots.remove(&self.slot.id);
        if let Some(key) = self.slot.key {
            a.release_ip(key);
        }
        if self.slot.shed.load(Ordering::Acquire) {
            a.shedding.fetch_sub(1, Ordering::AcqRel);
        }
        a.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new() -> Self {
        Admission {
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
            shedding: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            slots: DashMap::new(),
            next_id: AtomicU64::new(0),
            victims: Mutex::new(Vec::new()),
            warn_full: Throttle::new(WARN_EVERY),
            warn_per_ip: Throttle::new(WARN_EVERY),
            warn_shed: Throttle::new(WARN_EVERY),
        }
    }

    /// Admits a connection from `peer`, shedding another if the listener is full.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, limits: &Limits) -> Result<(Ticket, Admitted), Refused> {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`; the trusted
        // list names them as IPv4.
        let canonical = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            IpAddr::V4(_) => peer,
        };
        let key = (!limits.trusted_proxies.iter().any(|n| n.contains(&canonical))).then(|| client_key(peer));
        if let (Some(key), Some(max)) = (key, limits.max_per_ip) {
            let mut count = self.per_ip.entry(key).or_insert(0);
            if *count >= max {
                return Err(Refused::PerIp);
            }
            *count += 1;
        } else if let Some(key) = key {
            *self.per_ip.entry(key).or_insert(0) += 1;
        }
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let counted = before.saturating_sub(self.shedding.load(Ordering::Acquire));
        let admitted = if counted < limits.max_connections {
            Admitted::Free
        } else {
            match self.shed_one(limits.max_connections) {
                Some(kind) => Admitted::Shed(kind),
                None => {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    if let Some(key) = key {
                        self.release_ip(key);
                    }
                    return Err(Refused::Full);
                }
            }
        };
        let now = self.epoch.elapsed().as_millis() as u64;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            key,
            opened_ms: now,
            epoch: self.epoch,
            served: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now),
            shed: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.slots.insert(id, slot.clone());
        Ok((Ticket { slot, admission: self.clone() }, admitted))
    }

    /// [`Admission::admit`] with its metrics and rate-limited warnings: `None`
    /// when the connection is refused (the caller closes it).
    pub fn admit_logged(self: &Arc<Self>, peer: IpAddr, limits: &Limits, metrics: &Metrics) -> Option<Ticket> {
        match self.admit(peer, limits) {
            Ok((ticket, Admitted::Free)) => Some(ticket),
            Ok((ticket, Admitted::Shed(kind))) => {
                metrics.connection_shed(kind.label());
                if let Some(n) = self.warn_shed.event() {
                    tracing::warn!(
                        count = n,
                        max_connections = limits.max_connections,
                        "connection limit reached; shed idle or unfinished connections to admit new ones"
                    );
                }
                Some(ticket)
            }
            Err(Refused::Full) => {
                metrics.connection_refused();
                if let Some(n) = self.warn_full.event() {
                    tracing::warn!(
                        count = n,
                        client = %peer,
                        max_connections = limits.max_connections,
                        "connection limit reached and every connection has a request in flight; closing new connections"
                    );
                }
                None
            }
            Err(Refused::PerIp) => {
                metrics.connection_refused_per_ip();
                if let Some(n) = self.warn_per_ip.event() {
                    tracing::warn!(
                        count = n,
                        client = %peer,
                        max_connections_per_ip = limits.max_per_ip.unwrap_or(0),
                        "per-address connection limit reached; closing new connections from it"
                    );
                }
                None
            }
        }
    }

    fn release_ip(&self, key: IpAddr) {
        if let dashmap::mapref::entry::Entry::Occupied(mut e) = self.per_ip.entry(key) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Marks the best victim to be shed and tells it to close.
    fn shed_one(&self, max: usize) -> Option<Shed> {
        // INVARIANT: the lock is only taken here, at the limit, and nothing
        // panics while holding it; a poisoned lock still holds a valid list.
        let mut victims = self.victims.lock().unwrap_or_else(|p| p.into_inner());
        for refilled in [false, true] {
            if refilled {
                *victims = self.scan(max);
            }
            while let Some(weak) = victims.pop() {
                let Some(slot) = weak.upgrade() else { continue };
                let Some((kind, _)) = slot.sheddable() else { continue };
                if slot.shed.swap(true, Ordering::AcqRel) {
                    continue;
                }
                self.shedding.fetch_add(1, Ordering::AcqRel);
                slot.close.notify_one();
                return Some(kind);
            }
        }
        None
    }

    /// The best victims now, best last: connections without a complete head, then
    /// idle ones; within each, those of the address holding the most connections
    /// first, then the oldest (idle longest). A lone client's connection is thus the
    /// last of its kind to go while a flood's addresses hold many (the suite under load
    /// once shed 12 of 40 legitimate connections whose heads were not read yet, when
    /// age alone ranked them). Takes a batch (a thirty-second of the limit, at least
    /// 16), so a flood scans once per batch.
    fn scan(&self, max: usize) -> Vec<Weak<Slot>> {
        let batch = (max / 32).max(16);
        let held = |slot: &Slot| slot.key.and_then(|k| self.per_ip.get(&k).map(|n| *n)).unwrap_or(1);
        let mut found: Vec<(VictimRank, Weak<Slot>)> = self
            .slots
            .iter()
            .filter_map(|e| {
                let slot = e.value();
                slot.sheddable().map(|(kind, age)| ((kind, std::cmp::Reverse(held(slot)), age), Arc::downgrade(slot)))
            })
            .collect();
        found.sort_unstable_by_key(|(rank, _)| *rank);
        found.truncate(batch);
        found.into_iter().rev().map(|(_, w)| w).collect()
    }

    /// Connections admitted and not yet closed.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Writes the counts of warnings held back since their last line (the server
    /// calls this every few seconds, so a flood that stopped is still summarised).
    pub fn flush_warnings(&self) {
        for (t, what) in [
            (&self.warn_full, "connection limit reached; closed new connections"),
            (&self.warn_per_ip, "per-address connection limit reached; closed new connections"),
            (&self.warn_shed, "connection limit reached; shed idle or unfinished connections"),
        ] {
            if let Some(n) = t.flush() {
                tracing::warn!(count = n, interval = ?t.every, "{what} (summary of the last interval)");
            }
        }
    }
}

/// A warning written at most once per interval: the first event is written at
/// once, later ones are counted and written as one summary line (with their count)
/// once the interval has passed.
pub struct Throttle {
    every: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` before which nothing is written.
    quiet_until_ms: AtomicU64,
    held: AtomicU64,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle { every, epoch: Instant::now(), quiet_until_ms: AtomicU64::new(0), held: AtomicU64::new(0) }
    }

    /// One event: `Some(n)` when a line should be written now for `n` events (this
    /// one and those held back), `None` when it is counted for a later line.
    pub fn event(&self) -> Option<u64> {
        self.held.fetch_add(1, Ordering::AcqRel);
        self.take()
    }

    /// The events held back, if the interval has passed since the last line.
    pub fn flush(&self) -> Option<u64> {
        if self.held.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.take()
    }

    fn take(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let until = self.quiet_until_ms.load(Ordering::Acquire);
        if now < until {
            return None;
        }
        let next = now + self.every.as_millis() as u64;
        self.quiet_until_ms.compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire).ok()?;
        match self.held.swap(0, Ordering::AcqRel) {
            0 => None,
            n => Some(n),
        }
    }

    pub fn every(&self) -> Duration {
        self.every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: Option<usize>) -> Limits {
        Limits { max_connections: max, max_per_ip: per_ip, trusted_proxies: vec!["10.0.0.0/8".parse().expect("net")] }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn at_the_limit_the_oldest_connection_without_a_head_is_shed_not_the_newcomer() {
        let a = Arc::new(Admission::new());
        let l = limits(3, None);
        let (old, _) = a.admit(ip("192.0.2.1"), &l).expect("room");
        std::thread::sleep(Duration::from_millis(2));
        let (younger, _) = a.admit(ip("192.0.2.2"), &l).expect("room");
        let (busy, _) = a.admit(ip("192.0.2.3"), &l).expect("room");
        let _request = busy.slot().request();
        let (_new, how) = a.admit(ip("192.0.2.4"), &l).expect("a victim makes room");
        assert_eq!(how, Admitted::Shed(Shed::Head));
        assert!(old.slot().shed.load(Ordering::Acquire), "the oldest unfinished connection is shed");
        assert!(!younger.slot().shed.load(Ordering::Acquire));
        drop(old);
        let (_newer, how) = a.admit(ip("192.0.2.5"), &l).expect("the next victim");
        assert_eq!(how, Admitted::Shed(Shed::Head));
        assert!(younger.slot().shed.load(Ordering::Acquire));
    }

    /// A lone client's unfinished connection outlives a flood address's, however old.
    #[test]
    fn the_address_holding_the_most_connections_is_shed_first() {
        let a = Arc::new(Admission::new());
        let l = limits(4, None);
        let (lone, _) = a.admit(ip("192.0.2.1"), &l).expect("room");
        std::thread::sleep(Duration::from_millis(2));
        let flood: Vec<_> = (0..3).map(|_| a.admit(ip("192.0.2.66"), &l).expect("room").0).collect();
        let mut newcomers = Vec::new();
        for n in 0..3 {
            let (new, how) = a.admit(ip(&format!("192.0.2.{}", 100 + n)), &l).expect("a victim makes room");
            newcomers.push(new);
            assert_eq!(how, Admitted::Shed(Shed::Head));
            assert!(!lone.slot().shed.load(Ordering::Acquire), "shed #{n}: the lone client, though oldest");
        }
        assert!(flood.iter().all(|t| t.slot().shed.load(Ordering::Acquire)), "the flood's went");
    }

    #[test]
    fn idle_connections_are_shed_after_unfinished_heads_and_busy_ones_never() {
        let a = Arc::new(Admission::new());
        let l = limits(2, None);
        let (idle, _) = a.admit(ip("192.0.2.1"), &l).expect("room");
        drop(idle.slot().request());
        let (busy, _) = a.admit(ip("192.0.2.2"), &l).expect("room");
        let _r = busy.slot().request();
        let (_c, how) = a.admit(ip("192.0.2.3"), &l).expect("the idle one is shed");
        assert_eq!(how, Admitted::Shed(Shed::Idle));
        let (_d, how) = a.admit(ip("192.0.2.4"), &l).expect("the unfinished newcomer is shed");
        assert_eq!(how, Admitted::Shed(Shed::Head));
        drop(idle);
        let l1 = limits(1, None);
        let b = Arc::new(Admission::new());
        let (only, _) = b.admit(ip("192.0.2.1"), &l1).expect("room");
        let _r = only.slot().request();
        assert_eq!(b.admit(ip("192.0.2.2"), &l1).err(), Some(Refused::Full), "every connection is busy");
        assert_eq!(b.open(), 1);
    }

    #[test]
    fn one_address_is_capped_ipv6_by_its_slash_64_and_trusted_proxies_are_not() {
        let a = Arc::new(Admission::new());
        let l = limits(100, Some(2));
        let _t: Vec<_> = ["2001:db8::1", "2001:db8::2"].iter().map(|s| a.admit(ip(s), &l).expect("room")).collect();
        assert_eq!(a.admit(ip("2001:db8::ffff:1"), &l).err(), Some(Refused::PerIp), "the same /64");
        assert!(a.admit(ip("2001:db8:0:1::1"), &l).is_ok(), "another /64");
        let _p: Vec<_> = (0..5).map(|_| a.admit(ip("10.1.2.3"), &l).expect("a trusted proxy is exempt")).collect();
        let _m: Vec<_> = (0..5).map(|_| a.admit(ip("::ffff:10.1.2.3"), &l).expect("also seen dual-stack")).collect();
        let first = a.admit(ip("192.0.2.9"), &l).expect("room");
        let second = a.admit(ip("192.0.2.9"), &l).expect("room");
        assert!(a.admit(ip("192.0.2.9"), &l).is_err());
        drop((first, second));
        assert!(a.admit(ip("192.0.2.9"), &l).is_ok(), "closing frees the address's places");
        assert!(!a.per_ip.contains_key(&ip("192.0.2.1")));
    }

    #[test]
    fn a_repeated_warning_is_written_once_per_interval_with_its_count() {
        let t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.event(), Some(1), "the first is written at once");
        for _ in 0..1000 {
            assert_eq!(t.event(), None);
        }
        assert_eq!(t.flush(), None, "within the interval");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.flush(), Some(1000), "the summary counts every event held back");
        assert_eq!(t.flush(), None);
    }
}
