//! `tilegate store migrate --from sqlite:PATH --to postgres://…`: copies tokens,
//! grants, fence tiles and the audit trail (the revisions) from a SQLite file into
//! PostgreSQL in one transaction, verifies the counts before committing, and can be
//! run again (rows are keyed; a token revoked in SQLite since the last run is
//! revoked in PostgreSQL, and the nodes are notified).

use std::path::Path;
use std::time::Duration;

use super::{postgres, sqlite, StoreError};
use crate::config;

/// What one run copied and what PostgreSQL holds afterwards (of the SQLite rows).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Token rows inserted (or revoked) by this run.
    pub tokens_written: usize,
    /// Audit rows inserted by this run.
    pub audit_written: usize,
    pub tokens: usize,
    pub grants: usize,
    pub tiles: usize,
    pub audit: usize,
    pub revoked: usize,
}

/// Copies `from` (a SQLite file) into the PostgreSQL store `to` (migrating its
/// schema first).
pub async fn migrate_sqlite_to_postgres(
    from: &Path,
    to: &config::Postgres,
    timeout: Duration,
) -> Result<MigrateReport, StoreError> {
    let path = from.to_path_buf();
    if !path.exists() {
        return Err(StoreError::Worker(format!("`{}` does not exist (check --from sqlite:PATH)", path.display())));
    }
    let dump = tokio::task::spawn_blocking(move || sqlite::Sqlite::open(&path, timeout)?.dump()).await??;
    let pg = postgres::Postgres::connect(to, timeout).await?;
    pg.import(&dump).await
}
