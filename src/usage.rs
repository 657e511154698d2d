//! Token usage: per token, the last-used time and client address and a request
//! count, recorded in memory on the request path and written to the store in
//! batches by a background task (`store.usage_flush_interval`) and once more on
//! graceful shutdown. Never a store write per request.
//!
//! What counts: every request whose token was found, not revoked and not expired
//! (the lookup stage), whether it is then permitted or refused (a fence, a tier,
//! an origin, the per-token rate limit): the operator reading "last used from" wants to see a leaked
//! token being tried as much as one being used. A request with a malformed,
//! unknown, revoked or expired token never counts.
//!
//! The hot path ([`Recorder::record`]) takes one read lock of one map shard, adds
//! to an atomic, raises another with `fetch_max`, and writes the address under a
//! per-token `try_lock` (a concurrent writer in the same instant wins); it holds
//! nothing across an await, calls no store and allocates nothing once the token's
//! slot exists (`tests/allocations.rs`). A flush swaps each count to zero and sends
//! the non-zero ones; if the store refuses, the deltas are added back and go with
//! the next flush, so an outage delays counts but does not lose them. The memory
//! this takes is bounded: one slot per token that was used (only tokens the store
//! knows reach here), at most [`MAX_SLOTS`]; past that, new tokens' requests are
//! not recorded and the next flush says how many were missed.
//!
//! Must never: write to the store from the request path, hold a lock across an
//! await, or see a token secret (slots are keyed by the public token id).

use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
#[cfg(test)]
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;

use crate::policy::TokenId;
use crate::respond::ErrorChain;
use crate::store::{Store, StoreError, UsageDelta};

/// The most tokens whose use is held in memory at once (≈ 100 bytes each).
pub const MAX_SLOTS: usize = 1 << 20;
/// Rows per store statement or transaction.
const MAX_BATCH: usize = 1000;
/// A slot with nothing to flush whose last use is older than this is dropped (the
/// token's next request makes a new one).
const IDLE_SLOT_SECS: i64 = 600;

/// Hashes a [`TokenId`] by its first eight bytes: ids are random UUIDs minted by
/// the gateway, and only ids of stored tokens are recorded, so nobody can choose
/// colliding keys.
#[derive(Default)]
pub struct TokenIdHasher(u64);

impl Hasher for TokenIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _len: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

struct Slot {
    count: AtomicU64,
    last_at: AtomicI64,
    from: Mutex<IpAddr>,
}

impl Slot {
    fn new(from: IpAddr) -> Slot {
        Slot { count: AtomicU64::new(0), last_at: AtomicI64::new(0), from: Mutex::new(from) }
    }

    fn hit(&self, from: IpAddr, now: i64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.last_at.fetch_max(now, Ordering::Relaxed);
        // Contended only by another request of the same token at the same instant:
        // either address is "the last".
        if let Ok(mut f) = self.from.try_lock() {
            *f = from;
        }
    }

    fn from(&self) -> IpAddr {
        match self.from.lock() {
            Ok(f) => *f,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// The in-memory usage of every token used since the last flush.
pub struct Recorder {
    slots: DashMap<TokenId, Slot, BuildHasherDefault<TokenIdHasher>>,
    /// Requests not recorded because [`MAX_SLOTS`] tokens were held.
    missed: AtomicU64,
    /// The last flush failed (a warning was logged; recovery is logged once).
    failing: AtomicBool,
    /// One flush at a time, so the shutdown flush waits for a periodic one in
    /// progress instead of racing it (and nothing taken is dropped mid-write).
    flushing: tokio::sync::Mutex<()>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            slots: DashMap::default(),
            missed: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one request of `token` from `from` at `now` (unix seconds).
    pub fn record(&self, token: TokenId, from: IpAddr, now: i64) {
        if let Some(slot) = self.slots.get(&token) {
            slot.hit(from, now);
            return;
        }
        if self.slots.len() >= MAX_SLOTS {
            self.missed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.slots.entry(token).or_insert_with(|| Slot::new(from)).hit(from, now);
    }

    /// Requests recorded and not yet written (for tests and the shutdown log).
    pub fn pending(&self) -> u64 {
        self.slots.iter().map(|s| s.count.load(Ordering::Relaxed)).sum()
    }

    /// True while the last flush failed (the store refused the write).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Takes every non-zero delta (the counts become zero) and drops idle slots.
    fn take(&self, now: i64) -> Vec<UsageDelta> {
        self.slots.retain(|_, s| {
            s.count.load(Ordering::Relaxed) > 0 || s.last_at.load(Ordering::Relaxed) > now - IDLE_SLOT_SECS
        });
        let mut out = Vec::new();
        for entry in self.slots.iter() {
            let count = entry.count.swap(0, Ordering::AcqRel);
            if count > 0 {
                out.push(UsageDelta {
                    token_id: *entry.key(),
                    count,
                    last_at: entry.last_at.load(Ordering::Relaxed),
                    from: entry.from(),
                });
            }
        }
        out
    }

    /// Puts back deltas the store did not take; they go with the next flush.
    fn restore(&self, deltas: &[UsageDelta]) {
        for d in deltas {
            let slot = self.slots.entry(d.token_id).or_insert_with(|| Slot::new(d.from));
            slot.count.fetch_add(d.count, Ordering::AcqRel);
            slot.last_at.fetch_max(d.last_at, Ordering::Relaxed);
        }
    }

    /// Writes everything recorded so far: `Ok(requests written)`. On a store
    /// failure what was not written is kept for the next flush.
    ///
    /// A write that fails after the database may have committed it (a PostgreSQL
    /// answer lost on the network) is counted again by the next flush: counts can
    /// come out high after such a fault, never low.
    pub async fn flush(&self, store: &Store) -> Result<u64, StoreError> {
        let _one = self.flushing.lock().await;
        let missed = self.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            tracing::warn!(
                missed,
                max = MAX_SLOTS,
                "token usage: requests of tokens beyond the first {MAX_SLOTS} in memory were not counted"
            );
        }
        let batch = self.take(crate::store::now_unix());
        let mut written = 0;
        for (i, chunk) in batch.chunks(MAX_BATCH).enumerate() {
            if let Err(e) = store.add_usage(chunk.to_vec()).await {
                let rest = &batch[i * MAX_BATCH..];
                self.restore(rest);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    let held: u64 = rest.iter().map(|d| d.count).sum();
                    tracing::warn!(
                        error = %ErrorChain(&e),
                        requests = held,
                        tokens = rest.len(),
                        "token usage could not be written to the store; kept in memory and retried at the next flush"
                    );
                }
                return Err(e);
            }
            written += chunk.iter().map(|d| d.count).sum::<u64>();
        }
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(requests = written, "token usage is written to the store again");
        }
        Ok(written)
    }

    /// The background task: a flush every `every`, for ever.
    ///
    /// `every` is read again at each wake-up, at most a second apart, so a reload that
    /// changes `store.usage_flush_interval` applies within a second, not after the old
    /// interval has run out.
    pub async fn run(self: std::sync::Arc<Self>, store: Store, every: impl Fn() -> Duration) {
        let mut last = tokio::time::Instant::now();
        loop {
            let wait = every().saturating_sub(last.elapsed()).min(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
            if last.elapsed() >= every() {
                last = tokio::time::Instant::now();
                // A failure is logged (once per outage) and the deltas kept.
                let _ = self.flush(&store).await;
            }
        }
    }

    /// The flush at graceful shutdown, bounded by `limit`; logs what could not be
    /// written (the only way counts are lost: the store is down as the gateway stops).
    pub async fn flush_at_shutdown(&self, store: &Store, limit: Duration) {
        let outcome = tokio::time::timeout(limit, self.flush(store)).await;
        let lost = self.pending();
        match outcome {
            Ok(Ok(_)) if lost == 0 => {}
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => tracing::warn!(
                requests = lost,
                "token usage of these requests could not be written before shutdown and is lost"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNKNOWN_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    #[test]
    fn counts_add_up_and_the_newest_use_wins() {
        let r = Recorder::new();
        let (a, b) = (TokenId::new_random(), TokenId::new_random());
        let ip = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
        r.record(a, ip(1), 100);
        r.record(a, ip(2), 105);
        r.record(a, ip(3), 103);
        r.record(b, ip(9), 50);
        let mut batch = r.take(200);
        batch.sort_by_key(|d| d.count);
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].token_id, batch[0].count, batch[0].last_at), (b, 1, 50));
        assert_eq!((batch[1].token_id, batch[1].count, batch[1].last_at, batch[1].from), (a, 3, 105, ip(3)));
        assert!(r.take(200).is_empty(), "taken once");
        r.restore(&batch);
        assert_eq!(r.pending(), 4, "a failed flush gives the deltas back");
        r.record(a, ip(4), 106);
        let again = r.take(200);
        assert_eq!(again.iter().map(|d| d.count).sum::<u64>(), 5);
    }

    #[test]
    fn idle_slots_are_dropped_and_busy_ones_kept() {
        let r = Recorder::new();
        let (a, b) = (TokenId::new_random(), TokenId::new_random());
        r.record(a, UNKNOWN_ADDRESS, 1000);
        r.record(b, UNKNOWN_ADDRESS, 1000);
        assert_eq!(r.take(1000).len(), 2);
        r.record(b, UNKNOWN_ADDRESS, 1000 + IDLE_SLOT_SECS);
        assert_eq!(r.take(1000 + IDLE_SLOT_SECS + 1).len(), 1);
        assert_eq!(r.slots.len(), 1, "a's slot went idle");
        assert!(r.slots.contains_key(&b));
    }
}
