//! The grant cache: token hash → grant, in front of the store.
//!
//! It holds grants, never decisions: expiry and every check run per request.
//! Unknown and revoked tokens are remembered in a fixed-size, lock-free table so a
//! flood of made-up tokens (with valid checksums) cannot hammer the store. A
//! revocation through the API evicts before the API answers; one made by another
//! process (the CLI, another node) is seen by the watcher ([`GrantCache::poll`]):
//! within its interval, and for PostgreSQL at once through `LISTEN`.
//!
//! Outages: the watcher records when the cache was last brought up to date; once
//! that is older than `store.max_stale`, cached grants (and remembered unknown
//! tokens) are refused with [`StoreError::Stale`] (503) until the store answers
//! again. The hit path pays one relaxed atomic load for it.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::Semaphore;

use super::{Health, Lookup, Store, StoreError};
use crate::policy::{Access, AccessList, Grant};
use crate::respond::ErrorChain;
use crate::spatial::Fence;
use crate::token::TokenHash;

/// Slots in the negative table (a power of two): 64k × 8 bytes = 512 KiB.
const NEGATIVE_SLOTS: usize = 1 << 16;
const REVOKED_BIT: u64 = 1;
/// Distinct access lists (and fences) remembered for sharing between cached grants.
const SHARED_KINDS: usize = 64;
/// Store lookups in flight at once. The SQLite store has one reader connection
/// behind a mutex, so more would only park blocking-pool threads on it; each parked
/// thread costs a stack and, with glibc, a malloc arena (a flood of first-time
/// tokens once grew ~30 threads and ~10 MB that way). A lookup keeps its permit
/// until its query has really finished, so a store stuck on a lock holds at most
/// this many threads. PostgreSQL lookups are async and may run more at once.
const STORE_LOOKUPS: usize = 2;
const PG_LOOKUPS: usize = 32;
/// How often the watcher writes the probe row (readiness' `store.write`).
const WRITE_PROBE_EVERY: Duration = Duration::from_secs(5);

/// Hashes a [`TokenHash`] by its first eight bytes: the key is already SHA-256
/// output, so hashing it again (SipHash) buys nothing. Only tokens present in the
/// store enter the positive map, so nobody can fill it with chosen collisions.
#[derive(Default)]
pub struct TokenHashHasher(u64);

impl Hasher for TokenHashHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _len: usize) {
        // The slice length prefix; always 32 for a TokenHash.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type PositiveMap = DashMap<TokenHash, Arc<Grant>, BuildHasherDefault<TokenHashHasher>>;

/// What resolving a token hash gave.
#[derive(Debug, Clone)]
pub enum Resolved {
    Grant(Arc<Grant>),
    Unknown,
    Revoked,
}

/// The cache. Cheap to share behind an `Arc`.
pub struct GrantCache {
    store: Store,
    health: Arc<Health>,
    positive: PositiveMap,
    /// Access lists and fences of recently cached grants: a grant whose list
    /// equals one of these shares it instead of keeping its own copy (most tokens
    /// of a deployment are of a few kinds; 100k cached tokens: ~60 MB → ~25 MB).
    shelf: Mutex<Shelf>,
    lookups: Arc<Semaphore>,
    /// One watcher poll in flight at a time (a SQLite poll that timed out may still
    /// be waiting on a lock on its blocking thread).
    poll_gate: Arc<Semaphore>,
    write_gate: Arc<Semaphore>,
    /// Direct-mapped: slot = low hash bits; value = a 64-bit fingerprint of the
    /// hash with the low bit meaning "revoked", or 0 for empty.
    negative: Box<[AtomicU64]>,
    /// Bumped by every eviction, so a lookup that raced one does not re-insert a
    /// stale grant.
    generation: AtomicU64,
    /// Bumped when tokens were created elsewhere ([`GrantCache::forget_unknown`]),
    /// so a lookup that raced the creation does not remember it as unknown; kept
    /// apart from `generation` so creations never stop a grant from being cached.
    unknown_generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl GrantCache {
    pub fn new(store: Store) -> Self {
        let lookups = if store.is_shared() { PG_LOOKUPS } else { STORE_LOOKUPS };
        GrantCache {
            health: store.health().clone(),
            store,
            positive: PositiveMap::default(),
            shelf: Mutex::new(Shelf::default()),
            lookups: Arc::new(Semaphore::new(lookups)),
            poll_gate: Arc::new(Semaphore::new(1)),
            write_gate: Arc::new(Semaphore::new(1)),
            negative: (0..NEGATIVE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            unknown_generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    pub fn len(&self) -> usize {
        self.positive.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positive.is_empty()
    }

    /// The grant for a token hash: cache first, then the store (off the reactor).
    /// While the cache is older than `store.max_stale`, a cached grant or unknown
    /// token is [`StoreError::Stale`]; a revoked one stays revoked.
    pub async fn resolve(&self, hash: TokenHash) -> Result<Resolved, StoreError> {
        if let Some(grant) = self.positive.get(&hash) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            if self.health.is_stale() {
                return Err(StoreError::Stale(self.store.max_stale()));
            }
            return Ok(Resolved::Grant(grant.clone()));
        }
        let (slot, fp) = negative_slot(&hash);
        let seen = self.negative[slot].load(Ordering::Acquire);
        if seen != 0 && seen & !REVOKED_BIT == fp {
            self.hits.fetch_add(1, Ordering::Relaxed);
            if seen & REVOKED_BIT != 0 {
                return Ok(Resolved::Revoked);
            }
            if self.health.is_stale() {
                return Err(StoreError::Stale(self.store.max_stale()));
            }
            return Ok(Resolved::Unknown);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let before = self.generation.load(Ordering::Acquire);
        let unknown_before = self.unknown_generation.load(Ordering::Acquire);
        let found = {
            let wait = self.store.query_timeout();
            let permit = match tokio::time::timeout(wait, self.lookups.clone().acquire_owned()).await {
                Ok(p) => p.ok(),
                Err(_) => return Err(StoreError::Timeout(wait)),
            };
            self.store.lookup(hash, permit).await?
        };
        Ok(match found {
            Lookup::Found(grant) => {
                let grant = Arc::new(self.share_access(grant));
                // INVARIANT: the generation is compared under the shard lock that
                // `evict` also takes after bumping it, so either this insert sees the
                // bump and skips, or `evict`'s remove runs after it and undoes it.
                if let dashmap::Entry::Vacant(v) = self.positive.entry(hash) {
                    if self.generation.load(Ordering::Acquire) == before {
                        v.insert(grant.clone());
                    }
                }
                Resolved::Grant(grant)
            }
            Lookup::Revoked => {
                self.negative[slot].store(fp | REVOKED_BIT, Ordering::Release);
                Resolved::Revoked
            }
            Lookup::Unknown => {
                if self.generation.load(Ordering::Acquire) == before
                    && self.unknown_generation.load(Ordering::Acquire) == unknown_before
                {
                    self.negative[slot].store(fp, Ordering::Release);
                }
                Resolved::Unknown
            }
        })
    }

    /// The grant as the cache keeps it: its access list replaced by an equal one
    /// already held (each fence too), so cached grants of the same kind share one
    /// list; a new list is copied here, on the async thread, so long-lived entries
    /// do not stay scattered over the blocking threads' malloc arenas.
    fn share_access(&self, grant: Grant) -> Grant {
        let Ok(mut shelf) = self.shelf.lock() else {
            return grant;
        };
        let access = shelf.share(&grant.access);
        Grant { access, ..grant }
    }

    /// Forgets that these hashes were unknown (they were created since), keeping
    /// their grants if cached: a creation narrows nothing.
    pub fn forget_unknown(&self, hashes: &[TokenHash]) {
        self.unknown_generation.fetch_add(1, Ordering::AcqRel);
        for hash in hashes {
            let (slot, fp) = negative_slot(hash);
            let seen = self.negative[slot].load(Ordering::Acquire);
            if seen == fp {
                let _ = self.negative[slot].compare_exchange(seen, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Forgets everything known about these hashes (after a create or revoke).
    pub fn evict(&self, hashes: &[TokenHash]) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for hash in hashes {
            self.positive.remove(hash);
            let (slot, fp) = negative_slot(hash);
            let seen = self.negative[slot].load(Ordering::Acquire);
            if seen & !REVOKED_BIT == fp {
                let _ = self.negative[slot].compare_exchange(seen, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Watches the store for changes made by any connection (this process, the
    /// CLI, other nodes) and evicts the tokens they touched; probes writes; keeps
    /// the staleness flag. Polls every `every`, and at once on a PostgreSQL
    /// notification. `every` applies unless the store has `store.poll_interval`.
    /// Runs until the task is dropped (the `LISTEN` task with it).
    pub async fn poll(self: Arc<Self>, every: Duration) {
        let every = self.store.poll_interval().unwrap_or(every);
        let health = self.health.clone();
        let max_stale = self.store.max_stale();
        let mut rev = loop {
            match self.store.revision().await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::error!(error = %ErrorChain(&e), store = %self.store.describe(), "cannot read the store's revision; retrying");
                    tokio::time::sleep(every).await;
                }
            }
        };
        health.synced();
        let _listener = self.store.spawn_listener().map(AbortOnDrop);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_write_probe = Instant::now();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.store.notified() => {}
            }
            health.check_stale(max_stale);
            if Instant::now() >= next_write_probe {
                next_write_probe = Instant::now() + WRITE_PROBE_EVERY;
                self.spawn_write_probe();
            }
            // The previous poll may still be waiting on a lock (SQLite): do not
            // queue another thread behind it.
            let Ok(permit) = self.poll_gate.clone().try_acquire_owned() else { continue };
            health.probing(false);
            let result = self.store.changes_since(rev, Some(permit)).await;
            match result {
                Ok((newest, changes)) => {
                    let (revoked, created): (Vec<super::Change>, Vec<super::Change>) =
                        changes.iter().partition(|c| c.narrowing);
                    if !revoked.is_empty() {
                        self.evict(&revoked.iter().map(|c| c.hash).collect::<Vec<_>>());
                    }
                    if !created.is_empty() {
                        self.forget_unknown(&created.iter().map(|c| c.hash).collect::<Vec<_>>());
                    }
                    rev = newest;
                    health.synced();
                    if failing {
                        tracing::info!(store = %self.store.describe(), "the token store answers again");
                        failing = false;
                    }
                }
                Err(e) => {
                    let stale = health.check_stale(max_stale);
                    if !failing {
                        tracing::warn!(error = %ErrorChain(&e), store = %self.store.describe(), max_stale = ?max_stale, "the token store cannot be read; cached grants are served until store.max_stale");
                        failing = true;
                    } else if stale {
                        tracing::debug!(error = %ErrorChain(&e), "token store still unreadable; cached grants refused");
                    }
                }
            }
        }
    }

    /// Writes the probe row in its own task (one at a time), so a write stuck on a
    /// lock never delays the read poll.
    fn spawn_write_probe(self: &Arc<Self>) {
        let Ok(permit) = self.write_gate.clone().try_acquire_owned() else { return };
        let store = self.store.clone();
        tokio::spawn(async move {
            store.health().probing(true);
            if let Err(e) = store.probe_write(Some(permit)).await {
                tracing::debug!(error = %ErrorChain(&e), "token store write probe failed");
            }
        });
    }
}

/// Aborts the task when dropped (the `LISTEN` task ends with its watcher).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Small round-robin sets of distinct access lists and fences (equality is exact,
/// so sharing never changes a decision).
#[derive(Default)]
struct Shelf {
    lists: Ring<AccessList>,
    fences: Ring<Arc<Fence>>,
}

impl Shelf {
    fn share(&mut self, list: &AccessList) -> AccessList {
        if let Some(same) = self.lists.find(|l| l == list) {
            return same.clone();
        }
        let fresh: AccessList = list
            .iter()
            .map(|a| Access {
                path_id: a.path_id.as_str().to_owned(),
                tier: a.tier,
                fence: self.share_fence(&a.fence),
                properties: a.properties.clone(),
            })
            .collect();
        self.lists.keep(fresh.clone());
        fresh
    }

    fn share_fence(&mut self, fence: &Arc<Fence>) -> Arc<Fence> {
        if let Some(same) = self.fences.find(|f| Arc::ptr_eq(f, fence) || f.as_ref() == fence.as_ref()) {
            return same.clone();
        }
        self.fences.keep(fence.clone());
        fence.clone()
    }
}

/// At most [`SHARED_KINDS`] items, the oldest replaced first.
struct Ring<T> {
    items: Vec<T>,
    next: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring { items: Vec::new(), next: 0 }
    }
}

impl<T> Ring<T> {
    fn find(&self, pred: impl Fn(&T) -> bool) -> Option<&T> {
        self.items.iter().find(|t| pred(t))
    }

    fn keep(&mut self, item: T) {
        if self.items.len() < SHARED_KINDS {
            self.items.push(item);
        } else {
            self.items[self.next] = item;
            self.next = (self.next + 1) % SHARED_KINDS;
        }
    }
}

fn negative_slot(hash: &TokenHash) -> (usize, u64) {
    let slot = (usize::from(hash.0[0]) << 8 | usize::from(hash.0[1])) & (NEGATIVE_SLOTS - 1);
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&hash.0[8..16]);
    // Clear the flag bit and make sure a fingerprint is never 0 (the empty mark).
    let fp = (u64::from_le_bytes(fp) & !REVOKED_BIT) | 2;
    (slot, fp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn list(tiles: &[(u32, u64, u64)], tier: crate::policy::Tier) -> AccessList {
        let fence = Arc::new(Fence::new(Some(tiles), Some(18)).expect("fence"));
        vec![Access { path_id: "osm".into(), tier, fence, properties: None }].into()
    }

    #[test]
    fn equal_access_lists_are_shared_and_unequal_ones_kept_apart() {
        use crate::policy::Tier;
        let mut shelf = Shelf::default();
        let a = shelf.share(&list(&[(5, 16, 10)], Tier::View));
        assert!(a.ptr_eq(&shelf.share(&list(&[(5, 16, 10)], Tier::View))), "an equal list is the held one");
        let b = shelf.share(&list(&[(5, 16, 10)], Tier::Edit));
        assert!(!a.ptr_eq(&b));
        assert!(Arc::ptr_eq(&a[0].fence, &b[0].fence), "the same fence is shared across lists");
        assert_eq!(b[0].tier, Tier::Edit);
        for i in 0..(SHARED_KINDS as u64 * 2) {
            let l = list(&[(10, i, 0)], Tier::View);
            assert_eq!(shelf.share(&l), l);
        }
        assert_eq!(shelf.lists.items.len(), SHARED_KINDS, "the shelf stays bounded");
        assert_eq!(shelf.fences.items.len(), SHARED_KINDS);
    }

    #[test]
    fn the_key_hasher_spreads_on_the_hash_bytes() {
        let build = BuildHasherDefault::<TokenHashHasher>::default();
        let mut a = [0u8; 32];
        let h0 = build.hash_one(TokenHash(a));
        a[0] = 1;
        assert_ne!(build.hash_one(TokenHash(a)), h0);
    }
}
