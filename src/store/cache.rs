//! The grant cache: token hash → grant, in front of SQLite.
//!
//! It holds grants, never decisions: expiry and every check run per request.
//! Unknown and revoked tokens are remembered in a fixed-size, lock-free table so a
//! flood of made-up tokens (with valid checksums) cannot hammer SQLite. A revocation
//! through the API evicts before the API answers; one made by another process (the
//! CLI) is seen by [`GrantCache::poll`] within its interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use super::{Lookup, Store, StoreError};
use crate::policy::Grant;
use crate::token::TokenHash;

/// Slots in the negative table (a power of two): 64k × 8 bytes = 512 KiB.
const NEGATIVE_SLOTS: usize = 1 << 16;
const REVOKED_BIT: u64 = 1;

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
    positive: DashMap<TokenHash, Arc<Grant>>,
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
            positive: DashMap::new(),
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
        let found = self.store.lookup(hash).await?;
        Ok(match found {
            Lookup::Found(grant) => {
                let grant = Arc::new(grant);
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
                tracing::error!(error = %e, "cannot read the audit log; revocations by other processes are not seen");
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
                Err(e) => tracing::warn!(error = %e, "token store poll failed; retrying"),
            }
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
