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
pub fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: version, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
