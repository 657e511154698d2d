//! The store's health as readiness and the metrics see it: whether it can be read
//! and written now, from the outcome of recent calls and of the watcher's probes,
//! and the failures counted by kind.
//!
//! Everything here is atomics: `/readyz` reads it without waiting on the store, so
//! it answers at once even while a query is stuck behind another process's lock.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::ErrorKind;

/// A read or write probe still unanswered after this long counts as failing.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// Whether reads (or writes) work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    /// Nothing has been tried yet.
    Unknown,
    Failing(ErrorKind),
}

impl State {
    /// Not failing (nothing tried yet counts as working).
    pub fn is_ok(self) -> bool {
        !matches!(self, State::Failing(_))
    }

    /// `ok`, `unknown`, or the failure kind (`timeout`, `full`, `read_only`…).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Unknown => "unknown",
            State::Failing(k) => k.as_str(),
        }
    }
}

/// One direction (reads or writes).
struct Side {
    /// Milliseconds since `Health::start` + 1 (0 = never).
    last_ok: AtomicU64,
    last_err: AtomicU64,
    last_kind: AtomicU8,
    /// When the probe now in flight started (0 = none).
    probe_started: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
}

impl Side {
    fn new() -> Side {
        Side {
            last_ok: AtomicU64::new(0),
            last_err: AtomicU64::new(0),
            last_kind: AtomicU8::new(0),
            probe_started: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Shared by the store handle, the watcher and readiness.
pub struct Health {
    start: Instant,
    read: Side,
    write: Side,
    /// When the cache was last brought up to date with the store (ms + 1; 0 = never).
    last_sync: AtomicU64,
    /// Set by the watcher when `last_sync` is older than `store.max_stale`: the
    /// grant cache then refuses what it cannot re-validate (one relaxed load on
    /// the hit path).
    stale: AtomicBool,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthReport {
    pub read: State,
    pub write: State,
    /// The cache is older than `store.max_stale`: cached grants are not served.
    pub stale: bool,
    /// Since the cache was last brought up to date (`None`: never).
    pub since_sync: Option<Duration>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            start: Instant::now(),
            read: Side::new(),
            write: Side::new(),
            last_sync: AtomicU64::new(0),
            stale: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn side(&self, write: bool) -> &Side {
        if write {
            &self.write
        } else {
            &self.read
        }
    }

    pub(super) fn succeeded(&self, write: bool) {
        self.side(write).last_ok.store(self.now(), Ordering::Release);
    }

    pub(super) fn failed(&self, write: bool, kind: ErrorKind) {
        let side = self.side(write);
        side.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
        side.last_kind.store(kind.index() as u8, Ordering::Relaxed);
        side.last_err.store(self.now(), Ordering::Release);
    }

    /// A probe finished (`None`: it succeeded; the call itself was recorded already).
    pub(super) fn probed(&self, write: bool, _failure: Option<ErrorKind>) {
        self.side(write).probe_started.store(0, Ordering::Release);
    }

    /// A probe is starting (so a probe that never returns shows as failing).
    pub(super) fn probing(&self, write: bool) {
        self.side(write).probe_started.store(self.now(), Ordering::Release);
    }

    /// Reads (`write = false`) or writes work, as far as the last calls and the
    /// probe in flight tell.
    pub fn state(&self, write: bool) -> State {
        let side = self.side(write);
        let started = side.probe_started.load(Ordering::Acquire);
        if started != 0 && self.now().saturating_sub(started) > PROBE_DEADLINE.as_millis() as u64 {
            return State::Failing(ErrorKind::Timeout);
        }
        let ok = side.last_ok.load(Ordering::Acquire);
        let err = side.last_err.load(Ordering::Acquire);
        if ok == 0 && err == 0 {
            return State::Unknown;
        }
        if err > ok {
            let kind = ErrorKind::ALL.get(side.last_kind.load(Ordering::Relaxed) as usize).copied();
            return State::Failing(kind.unwrap_or(ErrorKind::Other));
        }
        State::Ok
    }

    /// Failures so far by (write, kind).
    pub fn errors(&self) -> Vec<(bool, ErrorKind, u64)> {
        let mut out = Vec::new();
        for write in [false, true] {
            for kind in ErrorKind::ALL {
                out.push((write, kind, self.side(write).errors[kind.index()].load(Ordering::Relaxed)));
            }
        }
        out
    }

    /// The cache was brought up to date with the store now.
    pub(super) fn synced(&self) {
        self.last_sync.store(self.now(), Ordering::Release);
        self.stale.store(false, Ordering::Release);
    }

    /// Re-evaluates staleness against `max_stale` (the watcher calls this on every tick).
    pub(super) fn check_stale(&self, max_stale: Duration) -> bool {
        let last = self.last_sync.load(Ordering::Acquire);
        let stale = last != 0 && self.now().saturating_sub(last) > max_stale.as_millis() as u64;
        self.stale.store(stale, Ordering::Release);
        stale
    }

    /// True when cached grants must not be served (the hot path's one load).
    #[inline]
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    pub fn since_sync(&self) -> Option<Duration> {
        let last = self.last_sync.load(Ordering::Acquire);
        (last != 0).then(|| Duration::from_millis(self.now().saturating_sub(last)))
    }

    pub fn report(&self) -> HealthReport {
        HealthReport {
            read: self.state(false),
            write: self.state(true),
            stale: self.is_stale(),
            since_sync: self.since_sync(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_outcome_decides_and_a_hung_probe_fails() {
        let h = Health::new();
        assert_eq!(h.state(false), State::Unknown);
        h.succeeded(false);
        assert_eq!(h.state(false), State::Ok);
        std::thread::sleep(Duration::from_millis(3));
        h.failed(true, ErrorKind::Full);
        assert_eq!(h.state(true), State::Failing(ErrorKind::Full));
        assert_eq!(h.state(false), State::Ok, "reads and writes are reported apart");
        std::thread::sleep(Duration::from_millis(3));
        h.succeeded(true);
        assert_eq!(h.state(true), State::Ok);
        h.probing(false);
        assert_eq!(h.state(false), State::Ok, "a probe just started is not a failure");
        h.side(false).probe_started.store(1, Ordering::Release);
        std::thread::sleep(PROBE_DEADLINE + Duration::from_millis(20));
        assert_eq!(h.state(false), State::Failing(ErrorKind::Timeout));
        h.probed(false, None);
        assert_eq!(h.state(false), State::Ok);
        assert!(h.errors().contains(&(true, ErrorKind::Full, 1)));
    }

    #[test]
    fn staleness_starts_only_after_a_first_sync() {
        let h = Health::new();
        assert!(!h.check_stale(Duration::ZERO), "never synced: the watcher has not started");
        h.synced();
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.check_stale(Duration::from_millis(1)));
        assert!(h.is_stale());
        h.synced();
        assert!(!h.is_stale());
    }
}
