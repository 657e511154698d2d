//! The SQLite backend: one file, one writer connection and one reader connection,
//! every query on `spawn_blocking` so the reactor never waits on the disk.
//!
//! Token writes are durable (`synchronous = FULL`, WAL): a create that returned
//! success survives a crash. The revision is the audit `seq`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::OwnedSemaphorePermit;

use super::records::{self, AuditEntry, Lookup, NewToken, Page, TokenRecord};
use super::{sqlite_schema, StoreError};
use crate::policy::TokenId;
use crate::token::TokenHash;

pub(super) struct Sqlite {
    path: PathBuf,
    busy: Duration,
    // INVARIANT: one writer connection, so writes queue here instead of failing
    // with SQLITE_BUSY; readers have their own connection (WAL lets them run
    // beside the writer).
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

/// `PRAGMA cache_size` of each connection: 512 KiB, negative as SQLite spells KiB.
const PAGE_CACHE_KIB: i64 = -512;

impl Sqlite {
    /// Opens (creating and migrating) the store. Blocking.
    /// `busy` is how long a query waits for another process's lock (the writer's
    /// is shorter than the caller's timeout for writes, so a write blocked by a lock
    /// fails inside SQLite and writes nothing, rather than committing after the
    /// caller has already answered 503).
    pub(super) fn open(path: &Path, busy: Duration) -> Result<Sqlite, StoreError> {
        let open = |p: &Path| {
            let c = Connection::open(p).map_err(|source| StoreError::Open { path: p.to_path_buf(), source })?;
            let named = |source| StoreError::Open { path: p.to_path_buf(), source };
            c.busy_timeout(busy).map_err(named)?;
            c.pragma_update(None, "journal_mode", "WAL").map_err(named)?;
            c.pragma_update(None, "foreign_keys", true).map_err(named)?;
            // Pages cached per connection (KiB when negative). SQLite's default, 2 MiB
            // each, held 4.4 MB of the 48 MB a gateway reached with 100k tokens (bench/m4,
            // massif): every lookup walks the token index once per token (the grant
            // cache answers after that) and the usage flush sweeps the rows once per
            // interval, so a larger cache only re-holds what the kernel's page cache has.
            c.pragma_update(None, "cache_size", PAGE_CACHE_KIB).map_err(named)?;
            Ok::<_, StoreError>(c)
        };
        let named = |e| match e {
            StoreError::Sqlite(source) => StoreError::Open { path: path.to_path_buf(), source },
            other => other,
        };
        let writer = open(path)?;
        writer.pragma_update(None, "synchronous", "FULL").map_err(StoreError::from).map_err(named)?;
        sqlite_schema::migrate(&writer, path).map_err(named)?;
        // A read-only file opens (read-only); find out now, naming the key, rather
        // than at the first create.
        probe_write(&writer).map_err(named)?;
        let reader = open(path)?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            busy,
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer (`write = true`) or reader connection on the
    /// blocking pool; `permit` is released when `f` has returned.
    async fn run<T, F>(&self, write: bool, permit: Option<OwnedSemaphorePermit>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let lock = if write { self.writer.clone() } else { self.reader.clone() };
        let deadline = Instant::now() + self.busy;
        let busy = self.busy;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn =
                lock.lock().map_err(|_| StoreError::Worker("a store connection was poisoned by a panic".into()))?;
            // A read queued behind one that waited out a lock: the caller has given
            // up. (Writes queue behind this process's writer; they are not cut.)
            if !write && Instant::now() > deadline {
                return Err(StoreError::Timeout(busy));
            }
            f(&mut conn)
        })
        .await?
    }

    pub(super) async fn lookup(
        &self,
        hash: TokenHash,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Lookup, StoreError> {
        self.run(false, permit, move |c| records::lookup(c, &hash)).await
    }

    pub(super) async fn create(&self, new: NewToken) -> Result<TokenRecord, StoreError> {
        self.run(true, None, move |c| records::create(c, &new)).await
    }

    pub(super) async fn revoke(
        &self,
        id: TokenId,
        actor: Option<TokenId>,
        client: String,
    ) -> Result<Vec<TokenHash>, StoreError> {
        self.run(true, None, move |c| records::revoke(c, id, actor, &client)).await
    }

    pub(super) async fn get(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.run(false, None, move |c| records::get(c, id)).await
    }

    pub(super) async fn list(&self, page: Page) -> Result<Vec<TokenRecord>, StoreError> {
        self.run(false, None, move |c| records::list(c, &page)).await
    }

    pub(super) async fn descendants(&self, id: TokenId) -> Result<Vec<TokenId>, StoreError> {
        self.run(false, None, move |c| records::descendants(c, id)).await
    }

    pub(super) async fn audit(
        &self,
        token: Option<TokenId>,
        since: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(false, None, move |c| records::audit(c, token, since)).await
    }

    pub(super) async fn revision(&self) -> Result<i64, StoreError> {
        self.run(false, None, |c| Ok(c.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))?)).await
    }

    /// Hashes touched by audit rows after `seq`. The newest seq is read first
    /// (a real read of the file, so a lock held by another process shows here).
    pub(super) async fn changes_since(
        &self,
        seq: i64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(i64, Vec<records::Change>), StoreError> {
        self.run(false, permit, move |c| {
            let newest: i64 = c.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))?;
            if newest <= seq {
                return Ok((seq, Vec::new()));
            }
            let mut stmt = c.prepare_cached(
                "SELECT a.seq, t.hash, a.action FROM audit a JOIN tokens t ON t.id = a.target_id WHERE a.seq > ?1 ORDER BY a.seq",
            )?;
            let mut newest = seq;
            let mut hashes = Vec::new();
            let rows = stmt.query_map(params![seq], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
            })?;
            for row in rows {
                let (s, h, action) = row?;
                newest = newest.max(s);
                hashes.push(records::Change { hash: records::hash_from(&h)?, narrowing: action != "create" });
            }
            Ok((newest, hashes))
        })
        .await
    }

    /// One flush of recorded usage, in one transaction.
    pub(super) async fn add_usage(&self, batch: Vec<records::UsageDelta>) -> Result<(), StoreError> {
        self.run(true, None, move |c| records::add_usage(c, &batch)).await
    }

    /// One small durable write to the probe row.
    pub(super) async fn probe_write(&self, permit: Option<OwnedSemaphorePermit>) -> Result<(), StoreError> {
        self.run(true, permit, |c| probe_write(c)).await
    }

    /// Everything in the file, for `tilegate store migrate` (blocking).
    pub(super) fn dump(&self) -> Result<records::Dump, StoreError> {
        let conn = self.reader.lock().map_err(|_| StoreError::Worker("poisoned".into()))?;
        records::dump(&conn)
    }
}

fn probe_write(c: &Connection) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO write_probe (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        params![records::now_unix()],
    )?;
    Ok(())
}
