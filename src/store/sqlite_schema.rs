//! The SQLite schema and its migrations, keyed by `PRAGMA user_version`.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Each entry migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tokens (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,   -- creation order, the list cursor
    id           TEXT NOT NULL UNIQUE,                -- public UUID
    hash         BLOB NOT NULL UNIQUE,                -- SHA-256 of the whole token
    display_key  TEXT NOT NULL,
    description  TEXT NOT NULL,
    scope        TEXT NOT NULL CHECK (scope IN ('all', 'ogc')),
    created_at   INTEGER NOT NULL,                    -- unix seconds
    expires_at   INTEGER,
    creator_id   TEXT REFERENCES tokens(id),
    revoked_at   INTEGER
);
CREATE INDEX tokens_creator ON tokens(creator_id);
CREATE TABLE grants (
    token_id       TEXT NOT NULL REFERENCES tokens(id),
    path_id        TEXT NOT NULL,
    tier           TEXT NOT NULL,
    max_zoom       INTEGER,
    has_tiles      INTEGER NOT NULL DEFAULT 0,
    property_fence TEXT,                              -- JSON array, NULL = all properties
    PRIMARY KEY (token_id, path_id)
);
CREATE INDEX grants_path ON grants(path_id);
CREATE TABLE fence_tiles (
    token_id TEXT NOT NULL,
    path_id  TEXT NOT NULL,
    zoom     INTEGER NOT NULL,
    x        INTEGER NOT NULL,
    y        INTEGER NOT NULL,
    PRIMARY KEY (token_id, path_id, zoom, x, y),
    FOREIGN KEY (token_id, path_id) REFERENCES grants(token_id, path_id)
);
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    action    TEXT NOT NULL CHECK (action IN ('create', 'revoke')),
    actor_id  TEXT,                                   -- NULL: the CLI
    target_id TEXT NOT NULL,
    client    TEXT NOT NULL,
    detail    TEXT NOT NULL                           -- JSON: the granted access
);
CREATE INDEX audit_target ON audit(target_id);
"#,
    r#"
-- The write probe's row: readiness writes it every few seconds, so a full disk or
-- a read-only file shows as `store.write` failing before a client's create does.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
"#,
    r#"
-- Browser tokens: the web origins a token may be used from (JSON array of
-- normalised origins; NULL = any origin).
ALTER TABLE tokens ADD COLUMN allowed_origins TEXT;
-- Usage, added to by every gateway's flush (never written per request): counts add
-- up, the last use is the newest. Its own table, so a flush never takes a lock on a
-- token row (creates share-lock their creator's, revokes write them).
CREATE TABLE token_usage (
    token_id       TEXT PRIMARY KEY,
    last_used_at   INTEGER NOT NULL,                  -- unix seconds
    last_used_from TEXT NOT NULL,                     -- the client address
    request_count  INTEGER NOT NULL
);
"#,
];

/// Brings the schema to the current version.
///
/// Each step runs in an `IMMEDIATE` transaction that reads the version again once it
/// holds the write lock: two processes opening a new store at once (`serve` and
/// `token create`) would otherwise both see version 0 and the second fail on
/// `table tokens already exists`. A store already current takes no lock (a read-only
/// file still opens).
pub fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let current = |conn: &Connection| -> Result<i64, StoreError> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > supported {
            return Err(StoreError::TooNew { path: path.to_path_buf(), found: version, supported });
        }
        Ok(version)
    };
    if current(conn)? == supported {
        return Ok(());
    }
    loop {
        let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let version = current(&tx)?;
        let Some(sql) = MIGRATIONS.get(version as usize) else { return Ok(()) };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes opening a new store at the same moment (`serve` beside `token create`,
    /// attacker round 8b: "table tokens already exists") all find it migrated.
    #[test]
    fn opening_a_new_store_from_several_connections_at_once_migrates_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let opened: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let conn = Connection::open(&path).expect("open");
                    conn.busy_timeout(std::time::Duration::from_secs(30)).expect("busy timeout");
                    barrier.wait();
                    migrate(&conn, &path).map(|()| conn)
                })
            })
            .collect();
        for handle in opened {
            let conn = handle.join().expect("thread").expect("migrated");
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
            assert_eq!(version, MIGRATIONS.len() as i64);
        }
    }
}
