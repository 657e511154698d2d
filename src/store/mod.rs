//! The token store: SQLite schema and queries, run off the async threads, and the
//! grant cache in front of it.
//!
//! Every blocking SQLite call goes through `Store::run` (`spawn_blocking`), so
//! the reactor never waits on the disk. [`StoreError`] keeps the SQLite error as
//! its `source()`; its `Display` is the context only. Token writes are durable (`synchronous =
//! FULL`, WAL): a create that returned success survives a crash.

mod cache;
mod records;
mod schema;

pub use cache::{GrantCache, Resolved};
pub use records::{
    access_json, now_unix, rfc3339, tiles_json, AccessSpec, AuditEntry, Lookup, NewToken, Page, TokenRecord,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::policy::TokenId;
use crate::token::TokenHash;

/// A store failure. Never carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the token store `{path}` (check `store.path` and that its folder is writable)")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the token store `{path}` has schema version {found}, newer than this tilegate understands ({supported}); upgrade tilegate")]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("token store query failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("token store row is corrupt: {0}")]
    Corrupt(String),
    /// A stored value that does not read back (or encode) as its type; `what`
    /// names the row and column.
    #[error("token store row is corrupt: {what}")]
    CorruptValue { what: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("token store worker failed: {0}")]
    Worker(String),
    /// The blocking task running a query panicked or was cancelled.
    #[error("token store worker failed")]
    Join(#[from] tokio::task::JoinError),
}

/// A handle to the SQLite store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    // INVARIANT: one writer connection, so writes queue here instead of failing
    // with SQLITE_BUSY; readers have their own connection (WAL lets them run
    // beside the writer).
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl Store {
    /// Opens (creating and migrating) the store. Blocking: call before serving or
    /// from a blocking context.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open = |p: &Path| {
            let c = Connection::open(p).map_err(|source| StoreError::Open { path: p.to_path_buf(), source })?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "foreign_keys", true)?;
            Ok::<_, StoreError>(c)
        };
        let writer = open(path)?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&writer, path)?;
        let reader = open(path)?;
        Ok(Store {
            inner: Arc::new(Inner { path: path.to_path_buf(), writer: Mutex::new(writer), reader: Mutex::new(reader) }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the writer (`write = true`) or reader connection on the blocking pool.
    async fn run<T, F>(&self, write: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let lock = if write { &inner.writer } else { &inner.reader };
            let mut conn =
                lock.lock().map_err(|_| StoreError::Worker("a store connection was poisoned by a panic".into()))?;
            f(&mut conn)
        })
        .await?
    }

    /// Runs `f` on the writer connection on the current thread (CLI use).
    pub fn blocking<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.inner.writer.lock().map_err(|_| StoreError::Worker("poisoned".into()))?;
        f(&mut conn)
    }

    /// Looks a token up by hash.
    pub async fn lookup(&self, hash: TokenHash) -> Result<Lookup, StoreError> {
        self.run(false, move |c| records::lookup(c, &hash)).await
    }

    /// Creates a token with its grants and an audit row, in one durable transaction.
    pub async fn create(&self, new: NewToken) -> Result<TokenRecord, StoreError> {
        self.run(true, move |c| records::create(c, &new)).await
    }

    /// Revokes a token and every token created from it (transitively). Returns the
    /// hashes revoked now, so the caller can evict them before answering.
    pub async fn revoke(
        &self,
        id: TokenId,
        actor: Option<TokenId>,
        client: String,
    ) -> Result<Vec<TokenHash>, StoreError> {
        self.run(true, move |c| records::revoke(c, id, actor, &client)).await
    }

    pub async fn get(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.run(false, move |c| records::get(c, id)).await
    }

    pub async fn list(&self, page: Page) -> Result<Vec<TokenRecord>, StoreError> {
        self.run(false, move |c| records::list(c, &page)).await
    }

    /// The token ids below `id` (created from it, transitively).
    pub async fn descendants(&self, id: TokenId) -> Result<Vec<TokenId>, StoreError> {
        self.run(false, move |c| records::descendants(c, id)).await
    }

    pub async fn audit(&self, token: Option<TokenId>, since: Option<i64>) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(false, move |c| records::audit(c, token, since)).await
    }

    /// Token hashes touched (created or revoked) by audit rows after `seq`, with the
    /// newest seq; `None` when nothing changed since the last call (cheap
    /// `PRAGMA data_version` check first).
    pub async fn changes_since(&self, seq: i64, last_version: i64) -> Result<(i64, i64, Vec<TokenHash>), StoreError> {
        self.run(false, move |c| {
            let version: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            if version == last_version {
                return Ok((seq, version, Vec::new()));
            }
            let mut stmt = c.prepare_cached(
                "SELECT a.seq, t.hash FROM audit a JOIN tokens t ON t.id = a.target_id WHERE a.seq > ?1 ORDER BY a.seq",
            )?;
            let mut newest = seq;
            let mut hashes = Vec::new();
            let rows = stmt.query_map(params![seq], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            for row in rows {
                let (s, h) = row?;
                newest = newest.max(s);
                hashes.push(records::hash_from(&h)?);
            }
            Ok((newest, version, hashes))
        })
        .await
    }

    /// The newest audit seq (the poller starts from here).
    pub async fn latest_seq(&self) -> Result<i64, StoreError> {
        self.run(false, |c| Ok(c.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))?)).await
    }

    /// True when the store answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.run(false, |c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).optional()?)).await.is_ok()
    }
}
