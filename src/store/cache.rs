//! The grant cache: token hash → grant, in front of SQLite.
//!
//! It holds grants, never decisions: expiry and every check run per request.
//! Unknown and revoked tokens are remembered in a fixed-size, lock-free table so a
//! flood of made-up tokens (with valid checksums) cannot hammer SQLite. A revocation
//! through the API evicts before the API answers; one made by another process (the
//! CLI) is seen by [`GrantCache::poll`] within its interval.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Semaphore;

use super::{Lookup, Store, StoreError};
use crate::policy::{Access, AccessList, Grant};
use crate::respond::ErrorChain;
use crate::spatial::Fence;
use crate::token::TokenHash;

/// Slots in the negative table (a power of two): 64k × 8 bytes = 512 KiB.
const NEGATIVE_SLOTS: usize = 1 << 16;
const REVOKED_BIT: u64 = 1;
/// Distinct access lists (and fences) remembered for sharing between cached grants.
const SHARED_KINDS: usize = 64;
/// Store lookups in flight at once. The store has one reader connection behind a
/// mutex, so more would only park blocking-pool threads on it; each parked thread
/// costs a stack and, with glibc, a malloc arena (a flood of first-time tokens once
/// grew ~30 threads and ~10 MB that way).
const STORE_LOOKUPS: usize = 2;

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
    positive: PositiveMap,
    /// Access lists and fences of recently cached grants: a grant whose list
    /// equals one of these shares it instead of keeping its own copy (most tokens
    /// of a deployment are of a few kinds; 100k cached tokens: ~60 MB → ~25 MB).
    shelf: Mutex<Shelf>,
    lookups: Semaphore,
    /// Direct-mapped: slot = low hash bits; value = a 64-bit fingerprint of the
    /// hash with the low bit meaning "revoked", or 0 for empty.
    negative: Box<[AtomicU64]>,
    /// Bumped by every eviction, so a lookup that raced one does not re-insert a
    /// stale grant.
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl GrantCache {
    pub fn new(store: Store) -> Self {
        GrantCache {
            store,
            positive: PositiveMap::default(),
            shelf: Mutex::new(Shelf::default()),
            lookups: Semaphore::new(STORE_LOOKUPS),
            negative: (0..NEGATIVE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
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
    pub async fn resolve(&self, hash: TokenHash) -> Result<Resolved, StoreError> {
        if let Some(grant) = self.positive.get(&hash) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Resolved::Grant(grant.clone()));
        }
        let (slot, fp) = negative_slot(&hash);
        let seen = self.negative[slot].load(Ordering::Acquire);
        if seen != 0 && seen & !REVOKED_BIT == fp {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(if seen & REVOKED_BIT != 0 { Resolved::Revoked } else { Resolved::Unknown });
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let before = self.generation.load(Ordering::Acquire);
        let found = {
            // INVARIANT: the semaphore is never closed, so acquiring only waits.
            let _permit = self.lookups.acquire().await.ok();
            self.store.lookup(hash).await?
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
                if self.generation.load(Ordering::Acquire) == before {
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

    /// Watches the store for changes made by any connection (this process or the
    /// CLI) and evicts the tokens they touched. Runs until the task is dropped.
    pub async fn poll(self: Arc<Self>, every: Duration) {
        let mut seq = match self.store.latest_seq().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "cannot read the audit log; revocations by other processes are not seen");
                return;
            }
        };
        let mut version = -1;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.store.changes_since(seq, version).await {
                Ok((newest, v, hashes)) => {
                    if !hashes.is_empty() {
                        self.evict(&hashes);
                    }
                    seq = newest;
                    version = v;
                }
                Err(e) => tracing::warn!(error = %ErrorChain(&e), "token store poll failed; retrying"),
            }
        }
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
