//! The PostgreSQL backend: several gateway nodes share one database.
//!
//! Queries go through a `deadpool-postgres` pool; TLS to the server is rustls
//! (`sslmode` in `store.url` decides whether it is used; certificates are always
//! verified, against `store.ca_file` or the public and system roots). Schema
//! migrations run at start inside a transaction holding an advisory lock, so nodes
//! starting at once migrate once.
//!
//! Every write takes the one-row `revision` counter first (`UPDATE … RETURNING`):
//! its row lock orders writers, so revisions become visible in order and a reader
//! that has seen revision `r` has seen every change up to `r`. The audit rows carry
//! the revision, and `pg_notify('tilegate_changes', rev)` in the same transaction
//! wakes every node's watcher on commit. Each node keeps one dedicated `LISTEN`
//! connection (never a pooled one); after a (re)connect the watcher catches up from
//! its last seen revision, so a notification lost while disconnected loses nothing.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::records::{
    self, access_json, AccessSpec, AuditEntry, Lookup, NewToken, Page, TokenRecord, Usage, UsageDelta,
};
use super::{ErrorKind, StoreError};
use crate::config;
use crate::policy::{Scope, TokenId};
use crate::respond::ErrorChain;
use crate::token::TokenHash;

/// The channel every node listens on.
const CHANNEL: &str = "tilegate_changes";
/// The advisory lock key migrations hold ("tilegate" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7469_6c65_6761_7465;
/// `application_name` of the LISTEN connection (tests find it by this name).
pub const LISTEN_APPLICATION: &str = "tilegate-listen";

/// Each entry migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tokens (
    seq          bigserial PRIMARY KEY,               -- creation order, the list cursor
    id           text NOT NULL UNIQUE,                -- public UUID
    hash         bytea NOT NULL UNIQUE,               -- SHA-256 of the whole token
    display_key  text NOT NULL,
    description  text NOT NULL,
    scope        text NOT NULL CHECK (scope IN ('all', 'ogc')),
    created_at   bigint NOT NULL,                     -- unix seconds
    expires_at   bigint,
    creator_id   text REFERENCES tokens(id),
    revoked_at   bigint
);
CREATE INDEX tokens_creator ON tokens(creator_id);
CREATE TABLE grants (
    token_id       text NOT NULL REFERENCES tokens(id),
    path_id        text NOT NULL,
    tier           text NOT NULL,
    max_zoom       integer,
    has_tiles      boolean NOT NULL DEFAULT false,
    property_fence text,                              -- JSON array, NULL = all properties
    PRIMARY KEY (token_id, path_id)
);
CREATE INDEX grants_path ON grants(path_id);
CREATE TABLE fence_tiles (
    token_id text NOT NULL,
    path_id  text NOT NULL,
    zoom     integer NOT NULL,
    x        bigint NOT NULL,
    y        bigint NOT NULL,
    PRIMARY KEY (token_id, path_id, zoom, x, y),
    FOREIGN KEY (token_id, path_id) REFERENCES grants(token_id, path_id)
);
CREATE TABLE audit (
    seq           bigserial PRIMARY KEY,
    rev           bigint NOT NULL,                    -- the write's revision (the change log)
    at            bigint NOT NULL,
    action        text NOT NULL CHECK (action IN ('create', 'revoke')),
    actor_id      text,                               -- NULL: the CLI
    target_id     text NOT NULL,
    client        text NOT NULL,
    detail        text NOT NULL,                      -- JSON: the granted access
    migrated_from bigint UNIQUE                       -- the SQLite seq (`tilegate store migrate`)
);
CREATE INDEX audit_target ON audit(target_id);
CREATE INDEX audit_rev ON audit(rev);
CREATE TABLE revision (
    id  integer PRIMARY KEY CHECK (id = 1),
    rev bigint NOT NULL
);
INSERT INTO revision (id, rev) VALUES (1, 0);
CREATE TABLE write_probe (
    id integer PRIMARY KEY CHECK (id = 1),
    at bigint NOT NULL
);
"#,
    r#"
-- Browser tokens: the web origins a token may be used from (JSON array of
-- normalised origins; NULL = any origin).
ALTER TABLE tokens ADD COLUMN allowed_origins text;
-- Usage, added to by every node's flush (never written per request): each node adds
-- its delta, the last use is the newest. Its own table, so a flush never waits on a
-- token row's lock (creates share-lock their creator's, revokes write them).
CREATE TABLE token_usage (
    token_id       text PRIMARY KEY,
    last_used_at   bigint NOT NULL,                   -- unix seconds
    last_used_from text NOT NULL,                     -- the client address
    request_count  bigint NOT NULL
);
"#,
];

pub(super) struct Postgres {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    describe: String,
    notify: Notify,
}

/// The kind of a driver error.
pub(super) fn kind(e: &tokio_postgres::Error) -> ErrorKind {
    if e.is_closed() {
        return ErrorKind::Unreachable;
    }
    match e.code() {
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => ErrorKind::ReadOnly,
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => ErrorKind::Full,
        Some(c) if *c == SqlState::QUERY_CANCELED => ErrorKind::Timeout,
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::T_R_SERIALIZATION_FAILURE => ErrorKind::Busy,
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            ErrorKind::Unreachable
        }
        Some(c) if c.code().starts_with("08") => ErrorKind::Unreachable,
        Some(_) => ErrorKind::Other,
        // No SQLSTATE: an I/O or protocol failure talking to the server.
        None => ErrorKind::Unreachable,
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Postgres(e),
        other => StoreError::Pool(other.to_string()),
    }
}

/// Where the database is, for logs: never the password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or(config.get_user().unwrap_or(""))
    )
}

impl Postgres {
    pub(super) async fn connect(pg: &config::Postgres, timeout: Duration) -> Result<Postgres, StoreError> {
        let mut config = pg.config.clone();
        config.application_name("tilegate");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_options().is_none() {
            // The server gives up first (see `Store::call`): a write stuck on a lock
            // fails there, rolled back, instead of committing after a 503.
            config.options(format!(
                "-c statement_timeout={} -c lock_timeout={}",
                timeout.as_millis(),
                timeout.as_millis()
            ));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let tls = MakeRustlsConnect::new((*pg.tls).clone());
        let describe = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(pg.pool_size)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout.max(Duration::from_secs(5))))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Connect { target: describe.clone(), source: e.to_string().into() })?;
        let pg = Postgres { pool, config, tls, describe, notify: Notify::new() };
        pg.migrate().await.map_err(|e| match e {
            StoreError::Postgres(source) => {
                StoreError::Connect { target: pg.describe.clone(), source: Box::new(source) }
            }
            other => other,
        })?;
        Ok(pg)
    }

    pub(super) fn describe(&self) -> &str {
        &self.describe
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Brings the schema to the current version, once, whatever the number of
    /// nodes starting at the same time.
    async fn migrate(&self) -> Result<(), StoreError> {
        let connect_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Connect {
            target: self.describe.clone(),
            source,
        };
        let mut client = self.pool.get().await.map_err(|e| connect_error(Box::new(e)))?;
        let tx = client.transaction().await?;
        tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        let exists: bool = tx.query_one("SELECT to_regclass('tilegate_schema') IS NOT NULL", &[]).await?.get(0);
        if !exists {
            tx.batch_execute("CREATE TABLE tilegate_schema (version integer NOT NULL)").await?;
        }
        let version: Option<i32> = tx.query_opt("SELECT version FROM tilegate_schema", &[]).await?.map(|r| r.get(0));
        let supported = MIGRATIONS.len() as i32;
        let found = version.unwrap_or(0);
        if found > supported {
            return Err(StoreError::TooNew {
                path: self.describe.clone().into(),
                found: found.into(),
                supported: supported.into(),
            });
        }
        for sql in MIGRATIONS.iter().skip(found as usize) {
            tx.batch_execute(sql).await?;
        }
        if version.is_none() {
            tx.execute("INSERT INTO tilegate_schema (version) VALUES ($1)", &[&supported]).await?;
        } else if found < supported {
            tx.execute("UPDATE tilegate_schema SET version = $1", &[&supported]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn lookup(&self, hash: TokenHash) -> Result<Lookup, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{TOKEN_COLUMNS} WHERE hash = $1")).await?;
        let Some(row) = client.query_opt(&stmt, &[&&hash.0[..]]).await? else {
            return Ok(Lookup::Unknown);
        };
        let record = finish(&client, token_row(&row)?).await?;
        if record.revoked_at.is_some() {
            return Ok(Lookup::Revoked);
        }
        Ok(Lookup::Found(record.grant()))
    }

    pub(super) async fn get(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{TOKEN_COLUMNS} WHERE id = $1")).await?;
        match client.query_opt(&stmt, &[&id.to_string()]).await? {
            Some(row) => Ok(Some(finish(&client, token_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    pub(super) async fn list(&self, page: Page) -> Result<Vec<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let rows = match &page {
            Page::Below { creator, after, limit } => {
                let sql = format!(
                    "WITH RECURSIVE below(id) AS (
                        SELECT id FROM tokens WHERE creator_id = $1
                        UNION SELECT t.id FROM tokens t JOIN below b ON t.creator_id = b.id)
                     {TOKEN_COLUMNS} WHERE id IN (SELECT id FROM below) AND seq > $2 ORDER BY seq LIMIT $3"
                );
                client.query(&sql, &[&creator.to_string(), after, &(*limit as i64)]).await?
            }
            Page::Granting { paths, after, limit } => {
                let sql = format!(
                    "{TOKEN_COLUMNS} WHERE id IN (SELECT token_id FROM grants WHERE path_id = ANY($1))
                     AND seq > $2 ORDER BY seq LIMIT $3"
                );
                client.query(&sql, &[paths, after, &(*limit as i64)]).await?
            }
            Page::All { after, limit } => {
                let sql = format!("{TOKEN_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2");
                client.query(&sql, &[after, &(*limit as i64)]).await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(finish(&client, token_row(&row)?).await?);
        }
        Ok(out)
    }

    pub(super) async fn descendants(&self, id: TokenId) -> Result<Vec<TokenId>, StoreError> {
        let client = self.client().await?;
        descendants(&client, id).await
    }

    pub(super) async fn create(&self, new: NewToken) -> Result<TokenRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A creation narrows nothing, so it takes no revision (creates run in
        // parallel): its audit row carries the revision current now. The creator's
        // row is share-locked and must not be revoked: a revoke of it waits for
        // this commit (and then finds this token), or this waits for the revoke
        // (and is refused).
        if let Some(creator) = new.creator {
            let row =
                tx.query_opt("SELECT revoked_at FROM tokens WHERE id = $1 FOR SHARE", &[&creator.to_string()]).await?;
            if !matches!(row.map(|r| r.get::<_, Option<i64>>(0)), Some(None)) {
                return Err(StoreError::CreatorRevoked);
            }
        }
        let rev: i64 = tx.query_one("SELECT rev FROM revision WHERE id = 1", &[]).await?.get(0);
        let id = new.id.to_string();
        let seq: i64 = tx
            .query_one(
                "INSERT INTO tokens (id, hash, display_key, description, scope, created_at, expires_at, creator_id, allowed_origins)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
                &[
                    &id,
                    &&new.hash.0[..],
                    &new.display_key,
                    &new.description,
                    &new.scope.as_str(),
                    &new.created_at,
                    &new.expires_at,
                    &new.creator.map(|c| c.to_string()),
                    &records::origins_text(&new.allowed_origins),
                ],
            )
            .await?
            .get(0);
        for a in &new.access {
            let properties = a.properties.as_ref().map(serde_json::to_string).transpose().map_err(|e| {
                StoreError::CorruptValue { what: format!("property fence on {}", a.path_id), source: e.into() }
            })?;
            let max_zoom = a.fence.max_zoom().map(|z| z as i32);
            tx.execute(
                "INSERT INTO grants (token_id, path_id, tier, max_zoom, has_tiles, property_fence) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &a.path_id, &a.tier.as_str(), &max_zoom, &a.fence.tiles().is_some(), &properties],
            )
            .await?;
            let tiles: Vec<_> = a.fence.tiles().map(|t| t.collect()).unwrap_or_default();
            if !tiles.is_empty() {
                let zooms: Vec<i32> = tiles.iter().map(|t| t.z() as i32).collect();
                let xs: Vec<i64> = tiles.iter().map(|t| t.x() as i64).collect();
                let ys: Vec<i64> = tiles.iter().map(|t| t.y() as i64).collect();
                tx.execute(
                    "INSERT INTO fence_tiles (token_id, path_id, zoom, x, y)
                     SELECT $1, $2, z, x, y FROM unnest($3::integer[], $4::bigint[], $5::bigint[]) AS t(z, x, y)",
                    &[&id, &a.path_id, &zooms, &xs, &ys],
                )
                .await?;
            }
        }
        tx.execute(
            "INSERT INTO audit (rev, at, action, actor_id, target_id, client, detail) VALUES ($1, $2, 'create', $3, $4, $5, $6)",
            &[
                &rev,
                &new.created_at,
                &new.actor.map(|a| a.to_string()),
                &id,
                &new.client,
                &access_json(&new.access).to_string(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(TokenRecord {
            seq,
            id: new.id,
            display_key: new.display_key,
            description: new.description,
            scope: new.scope,
            created_at: new.created_at,
            expires_at: new.expires_at,
            creator: new.creator,
            revoked_at: None,
            access: new.access,
            allowed_origins: new.allowed_origins,
            usage: Usage::default(),
        })
    }

    /// One flush of usage in one statement. Rows are sent in token-id order, so two
    /// nodes flushing the same tokens lock them in the same order (no deadlock).
    pub(super) async fn add_usage(&self, mut batch: Vec<UsageDelta>) -> Result<(), StoreError> {
        batch.sort_unstable_by_key(|d| d.token_id);
        let ids: Vec<String> = batch.iter().map(|d| d.token_id.to_string()).collect();
        let at: Vec<i64> = batch.iter().map(|d| d.last_at).collect();
        let from: Vec<String> = batch.iter().map(|d| d.from.to_string()).collect();
        let count: Vec<i64> = batch.iter().map(|d| i64::try_from(d.count).unwrap_or(i64::MAX)).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO token_usage (token_id, last_used_at, last_used_from, request_count)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
                 ON CONFLICT (token_id) DO UPDATE SET
                   request_count = token_usage.request_count + excluded.request_count,
                   last_used_from = CASE WHEN excluded.last_used_at >= token_usage.last_used_at
                                         THEN excluded.last_used_from ELSE token_usage.last_used_from END,
                   last_used_at = GREATEST(token_usage.last_used_at, excluded.last_used_at)",
                &[&ids, &at, &from, &count],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn revoke(
        &self,
        id: TokenId,
        actor: Option<TokenId>,
        client_addr: String,
    ) -> Result<Vec<TokenHash>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The counter's row lock first: a create of a child of `id` commits before
        // this reads the descendants, or waits until this has committed.
        let rev: i64 = tx.query_one("UPDATE revision SET rev = rev + 1 WHERE id = 1 RETURNING rev", &[]).await?.get(0);
        let now = records::now_unix();
        // Mark, then look below again until nothing new turns up: a child created
        // (under a token not yet marked) while this runs has committed by the next
        // look (creates share-lock their creator), and one under a marked token
        // waits for this commit and is then refused.
        let mut seen = std::collections::HashSet::new();
        let mut frontier = vec![id];
        let mut hashes = Vec::new();
        loop {
            for target in frontier.drain(..) {
                if !seen.insert(target) {
                    continue;
                }
                let row = tx
                    .query_opt(
                        "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING hash",
                        &[&now, &target.to_string()],
                    )
                    .await?;
                let Some(row) = row else { continue };
                let hash: Vec<u8> = row.get(0);
                hashes.push(records::hash_from(&hash)?);
                let detail = if target == id {
                    json!({"cascade": false})
                } else {
                    json!({"cascade": true, "root": id.to_string()})
                };
                tx.execute(
                    "INSERT INTO audit (rev, at, action, actor_id, target_id, client, detail) VALUES ($1, $2, 'revoke', $3, $4, $5, $6)",
                    &[&rev, &now, &actor.map(|a| a.to_string()), &target.to_string(), &client_addr, &detail.to_string()],
                )
                .await?;
            }
            frontier = descendants(&tx, id).await?.into_iter().filter(|t| !seen.contains(t)).collect();
            if frontier.is_empty() {
                break;
            }
        }
        if hashes.is_empty() {
            // Nothing changed: the revision is not spent.
            tx.rollback().await?;
            return Ok(hashes);
        }
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &rev.to_string()]).await?;
        tx.commit().await?;
        Ok(hashes)
    }

    pub(super) async fn audit(
        &self,
        token: Option<TokenId>,
        since: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, at, action, actor_id, target_id, client, detail FROM audit
                 WHERE ($1::text IS NULL OR target_id = $1 OR actor_id = $1) AND ($2::bigint IS NULL OR at >= $2) ORDER BY seq",
                &[&token.map(|t| t.to_string()), &since],
            )
            .await?;
        Ok(rows.iter().map(audit_row).collect())
    }

    pub(super) async fn revision(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        Ok(client.query_one("SELECT rev FROM revision WHERE id = 1", &[]).await?.get(0))
    }

    pub(super) async fn changes_since(&self, rev: i64) -> Result<(i64, Vec<records::Change>), StoreError> {
        let client = self.client().await?;
        let newest: i64 = client.query_one("SELECT rev FROM revision WHERE id = 1", &[]).await?.get(0);
        if newest <= rev {
            return Ok((rev, Vec::new()));
        }
        // Every audit row up to `newest` committed with the counter's value.
        let rows = client
            .query(
                "SELECT t.hash, a.action FROM audit a JOIN tokens t ON t.id = a.target_id WHERE a.rev > $1 AND a.rev <= $2",
                &[&rev, &newest],
            )
            .await?;
        let hashes = rows
            .iter()
            .map(|r| {
                let hash = records::hash_from(&r.get::<_, Vec<u8>>(0))?;
                Ok(records::Change { hash, narrowing: r.get::<_, &str>(1) != "create" })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((newest, hashes))
    }

    pub(super) async fn probe_write(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO write_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                &[&records::now_unix()],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The dedicated `LISTEN` connection: reconnects with backoff, and wakes the
    /// watcher after every (re)connect so it catches up from its last revision.
    pub(super) async fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen_once().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), store = %self.describe, "the store's LISTEN connection failed; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn listen_once(&self) -> Result<(), StoreError> {
        let mut config = self.config.clone();
        config.application_name(LISTEN_APPLICATION);
        let (client, mut connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| StoreError::Connect { target: self.describe.clone(), source: Box::new(e) })?;
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let command = format!("LISTEN {CHANNEL}");
        {
            let listen = client.batch_execute(&command);
            tokio::pin!(listen);
            // Drive the connection while LISTEN runs.
            loop {
                tokio::select! {
                    r = &mut listen => { r?; break; }
                    m = messages.next() => match m {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => return Ok(()),
                    },
                }
            }
        }
        tracing::debug!(store = %self.describe, "listening for changes");
        // Catch up: changes made while this connection was down.
        self.notify.notify_one();
        while let Some(m) = messages.next().await {
            match m? {
                AsyncMessage::Notification(_) => self.notify.notify_one(),
                AsyncMessage::Notice(_) => {}
                _ => {}
            }
        }
        drop(client);
        Ok(())
    }

    /// Copies a SQLite dump in one transaction; every row is keyed so a second run
    /// adds nothing twice (tokens by id, audit rows by their SQLite seq) and only
    /// carries revocations made since. Returns the counts verified afterwards.
    pub(super) async fn import(&self, dump: &records::Dump) -> Result<super::MigrateReport, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let rev: i64 = tx.query_one("UPDATE revision SET rev = rev + 1 WHERE id = 1 RETURNING rev", &[]).await?.get(0);
        let mut report = super::MigrateReport::default();
        for t in &dump.tokens {
            let n = tx
                .execute(
                    "INSERT INTO tokens (id, hash, display_key, description, scope, created_at, expires_at, creator_id, revoked_at, allowed_origins)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (id) DO UPDATE SET revoked_at = coalesce(tokens.revoked_at, excluded.revoked_at)
                     WHERE tokens.revoked_at IS NULL AND excluded.revoked_at IS NOT NULL",
                    &[
                        &t.id,
                        &t.hash,
                        &t.display_key,
                        &t.description,
                        &t.scope,
                        &t.created_at,
                        &t.expires_at,
                        &t.creator_id,
                        &t.revoked_at,
                        &t.allowed_origins,
                    ],
                )
                .await?;
            report.tokens_written += n as usize;
        }
        // Usage: a second run must not add the same counts twice, so the larger
        // count and the newer last use are kept.
        for (token, at, from, count) in &dump.usage {
            tx.execute(
                "INSERT INTO token_usage (token_id, last_used_at, last_used_from, request_count) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (token_id) DO UPDATE SET
                   request_count = GREATEST(token_usage.request_count, excluded.request_count),
                   last_used_from = CASE WHEN excluded.last_used_at > token_usage.last_used_at
                                         THEN excluded.last_used_from ELSE token_usage.last_used_from END,
                   last_used_at = GREATEST(token_usage.last_used_at, excluded.last_used_at)",
                &[token, at, from, count],
            )
            .await?;
        }
        for (token, path, tier, max_zoom, has_tiles, fence) in &dump.grants {
            let max_zoom = max_zoom.map(|z| z as i32);
            tx.execute(
                "INSERT INTO grants (token_id, path_id, tier, max_zoom, has_tiles, property_fence) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT DO NOTHING",
                &[token, path, tier, &max_zoom, has_tiles, fence],
            )
            .await?;
        }
        for (token, path, z, x, y) in &dump.tiles {
            let z = *z as i32;
            tx.execute(
                "INSERT INTO fence_tiles (token_id, path_id, zoom, x, y) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[token, path, &z, x, y],
            )
            .await?;
        }
        for a in &dump.audit {
            let n = tx
                .execute(
                    "INSERT INTO audit (rev, at, action, actor_id, target_id, client, detail, migrated_from)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (migrated_from) DO NOTHING",
                    &[&rev, &a.at, &a.action, &a.actor, &a.target, &a.client, &a.detail, &a.seq],
                )
                .await?;
            report.audit_written += n as usize;
        }
        // Verify: every SQLite row is now in PostgreSQL.
        let ids: Vec<&str> = dump.tokens.iter().map(|t| t.id.as_str()).collect();
        let count = |r: Row| r.get::<_, i64>(0) as usize;
        report.tokens = count(tx.query_one("SELECT count(*) FROM tokens WHERE id = ANY($1)", &[&ids]).await?);
        report.grants = count(tx.query_one("SELECT count(*) FROM grants WHERE token_id = ANY($1)", &[&ids]).await?);
        report.tiles = count(tx.query_one("SELECT count(*) FROM fence_tiles WHERE token_id = ANY($1)", &[&ids]).await?);
        report.audit = count(tx.query_one("SELECT count(*) FROM audit WHERE migrated_from IS NOT NULL", &[]).await?);
        let revoked: Vec<&str> = dump.tokens.iter().filter(|t| t.revoked_at.is_some()).map(|t| t.id.as_str()).collect();
        report.revoked = count(
            tx.query_one("SELECT count(*) FROM tokens WHERE id = ANY($1) AND revoked_at IS NOT NULL", &[&revoked])
                .await?,
        );
        let expected = (dump.tokens.len(), dump.grants.len(), dump.tiles.len(), dump.audit.len(), revoked.len());
        let found = (report.tokens, report.grants, report.tiles, report.audit, report.revoked);
        if expected != found {
            return Err(StoreError::Corrupt(format!(
                "after copying, PostgreSQL holds (tokens, grants, tiles, audit rows, revoked) = {found:?}, SQLite {expected:?}; nothing was committed"
            )));
        }
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &rev.to_string()]).await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// A token row with its recorded use (column names are unique across both tables,
/// so the callers' `WHERE id = …` / `seq > …` need no alias).
const TOKEN_COLUMNS: &str =
    "SELECT seq, id, display_key, description, scope, created_at, expires_at, creator_id, revoked_at, allowed_origins,
            last_used_at, last_used_from, request_count
     FROM tokens LEFT JOIN token_usage ON token_usage.token_id = tokens.id";

fn token_row(r: &Row) -> Result<TokenRecord, StoreError> {
    let id: String = r.try_get(1)?;
    let scope: String = r.try_get(4)?;
    let creator: Option<String> = r.try_get(7)?;
    Ok(TokenRecord {
        seq: r.try_get(0)?,
        id: records::id_from(&id)?,
        display_key: r.try_get(2)?,
        description: r.try_get(3)?,
        scope: Scope::parse(&scope).ok_or_else(|| StoreError::Corrupt(format!("scope `{scope}`")))?,
        created_at: r.try_get(5)?,
        expires_at: r.try_get(6)?,
        creator: creator.as_deref().map(records::id_from).transpose()?,
        revoked_at: r.try_get(8)?,
        access: Vec::new(),
        allowed_origins: records::origins_from(&id, r.try_get(9)?)?,
        usage: Usage {
            last_used_at: r.try_get(10)?,
            last_used_from: r.try_get(11)?,
            request_count: r.try_get::<_, Option<i64>>(12)?.map_or(0, |n| n.max(0) as u64),
        },
    })
}

fn audit_row(r: &Row) -> AuditEntry {
    AuditEntry {
        seq: r.get(0),
        at: r.get(1),
        action: r.get(2),
        actor: r.get(3),
        target: r.get(4),
        client: r.get(5),
        detail: r.get(6),
    }
}

/// Attaches the record's grants and fence tiles (two queries).
async fn finish(client: &deadpool_postgres::Object, mut record: TokenRecord) -> Result<TokenRecord, StoreError> {
    let id = record.id.to_string();
    let grants = client
        .prepare_cached(
            "SELECT path_id, tier, max_zoom, has_tiles, property_fence FROM grants WHERE token_id = $1 ORDER BY path_id",
        )
        .await?;
    let grants = client.query(&grants, &[&id]).await?;
    let has_tiles = grants.iter().any(|g| g.get::<_, bool>(3));
    let tiles = if has_tiles {
        let stmt = client.prepare_cached("SELECT path_id, zoom, x, y FROM fence_tiles WHERE token_id = $1").await?;
        client.query(&stmt, &[&id]).await?
    } else {
        Vec::new()
    };
    for g in grants {
        let path_id: String = g.get(0);
        let tier: String = g.get(1);
        let max_zoom: Option<i32> = g.get(2);
        let tiles_of: Option<Vec<(u32, u64, u64)>> = g.get::<_, bool>(3).then(|| {
            tiles
                .iter()
                .filter(|t| t.get::<_, &str>(0) == path_id)
                .map(|t| (t.get::<_, i32>(1) as u32, t.get::<_, i64>(2) as u64, t.get::<_, i64>(3) as u64))
                .collect()
        });
        let access: AccessSpec = records::access_from(
            &id,
            path_id,
            &tier,
            max_zoom.map(|z| z as u32),
            tiles_of,
            g.get::<_, Option<String>>(4),
        )?;
        record.access.push(access);
    }
    Ok(record)
}

async fn descendants<C: deadpool_postgres::GenericClient>(client: &C, id: TokenId) -> Result<Vec<TokenId>, StoreError> {
    let rows = client
        .query(
            "WITH RECURSIVE below(id) AS (
                SELECT id FROM tokens WHERE creator_id = $1
                UNION SELECT t.id FROM tokens t JOIN below b ON t.creator_id = b.id)
             SELECT id FROM below",
            &[&id.to_string()],
        )
        .await?;
    rows.iter().map(|r| records::id_from(r.get::<_, &str>(0))).collect()
}
