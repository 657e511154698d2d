//! The token store: one interface ([`Store`]) over two backends — SQLite (the
//! embedded default, [`sqlite`]) and PostgreSQL for several nodes on one database
//! ([`postgres`]) — the grant cache in front of it ([`cache`]), and the store's
//! health as readiness and the metrics see it ([`health`]).
//!
//! No SQL lives outside this folder. Every call is bounded by `store.query_timeout`
//! (a SQLite query blocked on a lock held by another process, or a PostgreSQL
//! server that stopped answering, becomes [`StoreError::Timeout`], which clients
//! see as 503 `store_unavailable`), and every outcome is recorded in [`Health`].
//! [`StoreError`] keeps the driver's error as its `source()`; its `Display` is the
//! context only and never carries a password or a token secret.
//!
//! Revisions: every write (create, revoke, cascade) is one transaction that also
//! appends audit rows; the audit row's revision is the store's change log. SQLite's
//! revision is the audit `seq` (one writer at a time, so commit order is seq order);
//! PostgreSQL bumps a one-row counter first (its row lock orders the writers, so a
//! reader that saw revision `r` has seen every change up to `r`) and `NOTIFY`s in the
//! same transaction.

mod cache;
pub mod health;
mod migrate;
mod postgres;
mod records;
mod sqlite;
mod sqlite_schema;

pub use cache::{GrantCache, Resolved};
pub use health::{Health, HealthReport, State};
pub use migrate::{migrate_sqlite_to_postgres, MigrateReport};
pub use postgres::{describe as describe_postgres, LISTEN_APPLICATION};
pub use records::{
    access_json, now_unix, rfc3339, tiles_json, AccessSpec, AuditEntry, Change, Lookup, NewToken, Page, TokenRecord,
    Usage, UsageDelta,
};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config;
use crate::policy::TokenId;
use crate::token::TokenHash;

/// How a store failure is counted and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The call did not finish within `store.query_timeout`.
    Timeout,
    /// The database is locked by another connection (SQLite busy/locked).
    Busy,
    /// The disk or database is full.
    Full,
    /// The store cannot be written (read-only file or server).
    ReadOnly,
    /// The server is unreachable or the connection broke.
    Unreachable,
    /// The cache could not be checked against the store for longer than `store.max_stale`.
    Stale,
    /// A stored value does not read back.
    Corrupt,
    /// Anything else (a bug, a constraint).
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Timeout,
        ErrorKind::Busy,
        ErrorKind::Full,
        ErrorKind::ReadOnly,
        ErrorKind::Unreachable,
        ErrorKind::Stale,
        ErrorKind::Corrupt,
        ErrorKind::Other,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Busy => "busy",
            ErrorKind::Full => "full",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Stale => "stale",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Other => "other",
        }
    }

    /// True when the store (not the request, not a bug) is at fault and a retry
    /// later may succeed: answered 503 `store_unavailable`.
    pub fn is_unavailable(self) -> bool {
        !matches!(self, ErrorKind::Corrupt | ErrorKind::Other)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A store failure. Never carries a token secret or a database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the token store `{path}` (check `store.path` and that the file and its folder are writable by this user)")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the token store `{path}` has schema version {found}, newer than this tilegate understands ({supported}); upgrade tilegate")]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("cannot connect to the token store {target} (check `store.url`, the password (`store.password_file` / `store.password_env`) and that the server accepts this client)")]
    Connect { target: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("token store query failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("token store query failed")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no token store connection available")]
    Pool(String),
    #[error("the token store did not answer within {0:?} (`store.query_timeout`)")]
    Timeout(Duration),
    #[error(
        "the token store could not be reached for longer than `store.max_stale` ({0:?}); cached grants are not served"
    )]
    Stale(Duration),
    #[error("token store row is corrupt: {0}")]
    Corrupt(String),
    /// A token was to be created by a token that is revoked (or gone) by now.
    #[error("the creating token was revoked")]
    CreatorRevoked,
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

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Timeout(_) => ErrorKind::Timeout,
            StoreError::Stale(_) => ErrorKind::Stale,
            StoreError::Pool(_) | StoreError::Connect { .. } => ErrorKind::Unreachable,
            StoreError::Open { source, .. } | StoreError::Sqlite(source) => match source.sqlite_error_code() {
                Some(C::DatabaseBusy | C::DatabaseLocked | C::FileLockingProtocolFailed) => ErrorKind::Busy,
                Some(C::DiskFull) => ErrorKind::Full,
                Some(C::ReadOnly) => ErrorKind::ReadOnly,
                Some(C::CannotOpen | C::SystemIoFailure | C::PermissionDenied) => ErrorKind::Unreachable,
                Some(C::DatabaseCorrupt | C::NotADatabase) => ErrorKind::Corrupt,
                _ => ErrorKind::Other,
            },
            StoreError::Postgres(e) => postgres::kind(e),
            StoreError::Corrupt(_) | StoreError::CorruptValue { .. } => ErrorKind::Corrupt,
            StoreError::TooNew { .. } | StoreError::Worker(_) | StoreError::Join(_) | StoreError::CreatorRevoked => {
                ErrorKind::Other
            }
        }
    }

    /// True when clients should see 503 `store_unavailable` (see [`ErrorKind::is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        self.kind().is_unavailable()
    }
}

/// Which backend, with its handle.
#[derive(Clone)]
enum Backend {
    Sqlite(Arc<sqlite::Sqlite>),
    Postgres(Arc<postgres::Postgres>),
}

/// A handle to the token store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    health: Arc<Health>,
    timeout: Duration,
    max_stale: Duration,
    /// `store.poll_interval`; `None` for a store opened without a config.
    poll: Option<Duration>,
}

/// The default `store.query_timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The default `store.max_stale`.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(30);

impl Store {
    /// Opens (creating and migrating) a SQLite store with the default timeouts.
    /// Blocking: call before serving or from a blocking context.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let sqlite = sqlite::Sqlite::open(path, DEFAULT_QUERY_TIMEOUT)?;
        Ok(Store::new(Backend::Sqlite(Arc::new(sqlite)), DEFAULT_QUERY_TIMEOUT, DEFAULT_MAX_STALE, None))
    }

    /// Opens the store the config names (`store.path` or `store.url`), migrating
    /// its schema (PostgreSQL: under an advisory lock, so nodes starting together
    /// migrate once).
    pub async fn connect(config: &config::Store) -> Result<Store, StoreError> {
        let backend = match &config.postgres {
            None => {
                let path = config.path.clone();
                let busy = config.query_timeout;
                let sqlite = tokio::task::spawn_blocking(move || sqlite::Sqlite::open(&path, busy)).await??;
                Backend::Sqlite(Arc::new(sqlite))
            }
            Some(pg) => Backend::Postgres(Arc::new(postgres::Postgres::connect(pg, config.query_timeout).await?)),
        };
        Ok(Store::new(backend, config.query_timeout, config.max_stale, Some(config.poll_interval)))
    }

    fn new(backend: Backend, timeout: Duration, max_stale: Duration, poll: Option<Duration>) -> Store {
        let health = Arc::new(Health::new());
        // Opening read and wrote the store (schema check, migrations, the SQLite
        // write probe): both work as of now.
        health.succeeded(false);
        health.succeeded(true);
        Store { backend, health, timeout, max_stale, poll }
    }

    /// `store.poll_interval`, when the store was opened from a config.
    pub fn poll_interval(&self) -> Option<Duration> {
        self.poll
    }

    /// The SQLite file, when this is a SQLite store.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the store is, for logs: the SQLite path or the PostgreSQL host and
    /// database (never the password).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => format!("sqlite:{}", s.path().display()),
            Backend::Postgres(p) => p.describe().to_owned(),
        }
    }

    /// True for the PostgreSQL backend (several nodes may share it).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn max_stale(&self) -> Duration {
        self.max_stale
    }

    pub fn query_timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one store call under the query timeout and records its outcome.
    /// Writes get twice the time: the database gives up on its own first (SQLite's
    /// busy timeout, PostgreSQL's `statement_timeout`, both the query timeout), so
    /// a write refused for a lock has written nothing and says so.
    ///
    /// SQLite writes are not cut from outside at all: they queue behind this
    /// process's one writer connection (a burst of creates is a queue, not a
    /// fault), and another process's lock is bounded by the busy timeout inside.
    async fn call<T>(&self, write: bool, f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        // Boxed: a PostgreSQL query's future holds a connect path of several KB, and
        // every future awaiting a store call (the grant cache's, the request
        // pipeline's) would carry that size even on a cache hit, which never gets here.
        let f = Box::pin(f);
        let limit = if write { self.timeout * 2 } else { self.timeout };
        let result = if write && matches!(self.backend, Backend::Sqlite(_)) {
            f.await
        } else {
            match tokio::time::timeout(limit, f).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Timeout(limit)),
            }
        };
        match &result {
            // A refusal the store answered is the store working.
            Ok(_) | Err(StoreError::CreatorRevoked) => self.health.succeeded(write),
            Err(e) => self.health.failed(write, e.kind()),
        }
        result
    }

    /// Looks a token up by hash. `permit` is held until the query has really
    /// finished (a SQLite query that timed out still runs on its blocking thread),
    /// so the number of blocked threads stays bounded by the caller's semaphore.
    pub async fn lookup(
        &self,
        hash: TokenHash,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<Lookup, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.lookup(hash, permit)).await,
            Backend::Postgres(p) => self.call(false, p.lookup(hash)).await,
        }
    }

    /// Creates a token with its grants and an audit row, in one durable transaction.
    pub async fn create(&self, new: NewToken) -> Result<TokenRecord, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(true, s.create(new)).await,
            Backend::Postgres(p) => self.call(true, p.create(new)).await,
        }
    }

    /// Revokes a token and every token created from it (transitively). Returns the
    /// hashes revoked now, so the caller can evict them before answering.
    pub async fn revoke(
        &self,
        id: TokenId,
        actor: Option<TokenId>,
        client: String,
    ) -> Result<Vec<TokenHash>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(true, s.revoke(id, actor, client)).await,
            Backend::Postgres(p) => self.call(true, p.revoke(id, actor, client)).await,
        }
    }

    pub async fn get(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.get(id)).await,
            Backend::Postgres(p) => self.call(false, p.get(id)).await,
        }
    }

    pub async fn list(&self, page: Page) -> Result<Vec<TokenRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.list(page)).await,
            Backend::Postgres(p) => self.call(false, p.list(page)).await,
        }
    }

    /// The token ids below `id` (created from it, transitively).
    pub async fn descendants(&self, id: TokenId) -> Result<Vec<TokenId>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.descendants(id)).await,
            Backend::Postgres(p) => self.call(false, p.descendants(id)).await,
        }
    }

    pub async fn audit(&self, token: Option<TokenId>, since: Option<i64>) -> Result<Vec<AuditEntry>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.audit(token, since)).await,
            Backend::Postgres(p) => self.call(false, p.audit(token, since)).await,
        }
    }

    /// Adds one flush of recorded usage (see [`crate::usage`]): each token's count
    /// is added to the stored one and its last use kept when newer, so several
    /// nodes on one database add up. One transaction (PostgreSQL: one statement).
    pub async fn add_usage(&self, batch: Vec<UsageDelta>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(true, s.add_usage(batch)).await,
            Backend::Postgres(p) => self.call(true, p.add_usage(batch)).await,
        }
    }

    /// The newest revision (the watcher starts from here).
    pub async fn revision(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.revision()).await,
            Backend::Postgres(p) => self.call(false, p.revision()).await,
        }
    }

    /// The changes (creations, revocations) after revision `rev`, with the newest
    /// revision. Also the read probe: it always reads the store.
    /// `permit` is held until the query has really finished (see [`Store::lookup`]).
    pub async fn changes_since(
        &self,
        rev: i64,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(i64, Vec<Change>), StoreError> {
        let r = match &self.backend {
            Backend::Sqlite(s) => self.call(false, s.changes_since(rev, permit)).await,
            Backend::Postgres(p) => self.call(false, p.changes_since(rev)).await,
        };
        self.health.probed(false, r.as_ref().err().map(StoreError::kind));
        r
    }

    /// The write probe: a one-row write that touches the file (SQLite) or the
    /// primary (PostgreSQL), so a full disk or a read-only store shows in readiness.
    pub async fn probe_write(&self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Result<(), StoreError> {
        let r = match &self.backend {
            Backend::Sqlite(s) => self.call(true, s.probe_write(permit)).await,
            Backend::Postgres(p) => self.call(true, p.probe_write()).await,
        };
        self.health.probed(true, r.as_ref().err().map(StoreError::kind));
        r
    }

    /// Waits for a change notification (PostgreSQL `LISTEN`); never returns for
    /// SQLite, whose watcher polls.
    pub async fn notified(&self) {
        match &self.backend {
            Backend::Sqlite(_) => std::future::pending().await,
            Backend::Postgres(p) => p.notified().await,
        }
    }

    /// Starts the backend's background work (the PostgreSQL `LISTEN` connection).
    pub fn spawn_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(tokio::spawn(p.clone().listen())),
        }
    }
}
