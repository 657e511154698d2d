//! Rows in and out of the store: the types both backends share, and SQLite's
//! blocking query functions behind [`Sqlite`](super::sqlite::Sqlite).

use std::net::IpAddr;
use std::sync::Arc;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde_json::json;

use super::StoreError;
use crate::policy::{Access, Grant, OriginPattern, Scope, Tier, TokenId};
use crate::spatial::Fence;
use crate::token::TokenHash;

/// One path's access as stored: tier, fence, property fence.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessSpec {
    pub path_id: String,
    pub tier: Tier,
    pub fence: Fence,
    /// `None` = all properties; empty = geometry only.
    pub properties: Option<Vec<String>>,
}

/// A token to insert. The secret itself is never here, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: TokenId,
    pub hash: TokenHash,
    pub display_key: String,
    pub description: String,
    pub scope: Scope,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub creator: Option<TokenId>,
    pub access: Vec<AccessSpec>,
    /// `allowedOrigins`, normalised; `None` = any origin.
    pub allowed_origins: Option<Vec<OriginPattern>>,
    /// Who made it, for the audit trail: `None` is the CLI.
    pub actor: Option<TokenId>,
    /// The client address, or `cli`.
    pub client: String,
}

/// A stored token as listed: never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub seq: i64,
    pub id: TokenId,
    pub display_key: String,
    pub description: String,
    pub scope: Scope,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub creator: Option<TokenId>,
    pub revoked_at: Option<i64>,
    pub access: Vec<AccessSpec>,
    /// `allowedOrigins`, normalised; `None` = any origin.
    pub allowed_origins: Option<Vec<OriginPattern>>,
    /// What the store has recorded of the token's use (flushed every
    /// `store.usage_flush_interval`, so up to one interval behind).
    pub usage: Usage,
}

/// A token's recorded use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Unix seconds of the newest counted request.
    pub last_used_at: Option<i64>,
    /// The client address of that request (after `server.trusted_proxies`).
    pub last_used_from: Option<String>,
    pub request_count: u64,
}

/// One token's use since the last flush, as written to the store: the count is
/// added, the time and address replace the stored ones when newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageDelta {
    pub token_id: TokenId,
    pub count: u64,
    pub last_at: i64,
    pub from: IpAddr,
}

/// `allowedOrigins` as stored: a JSON array of normalised origins, `NULL` = any.
pub(super) fn origins_text(list: &Option<Vec<OriginPattern>>) -> Option<String> {
    list.as_ref().map(|l| serde_json::Value::from(l.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string())
}

/// Reads a stored `allowedOrigins` back; both backends read through this.
pub(super) fn origins_from(id: &str, text: Option<String>) -> Result<Option<Vec<OriginPattern>>, StoreError> {
    let Some(text) = text else { return Ok(None) };
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::CorruptValue {
        what: format!("allowed_origins of {id}"),
        source,
    };
    let list: Vec<String> = serde_json::from_str(&text).map_err(|e| corrupt(e.into()))?;
    list.iter().map(|s| s.parse::<OriginPattern>().map_err(|e| corrupt(e.into()))).collect::<Result<_, _>>().map(Some)
}

impl TokenRecord {
    /// The grant this record gives, as the decision stage reads it.
    pub fn grant(&self) -> Grant {
        Grant {
            token_id: self.id,
            scope: self.scope,
            expires_at: self.expires_at,
            access: self
                .access
                .iter()
                .map(|a| Access {
                    path_id: a.path_id.clone(),
                    tier: a.tier,
                    fence: Arc::new(a.fence.clone()),
                    properties: a.properties.as_ref().map(|p| p.clone().into()),
                })
                .collect(),
            allowed_origins: self.allowed_origins.as_ref().map(|l| l.clone().into()),
        }
    }
}

/// What a lookup by hash found.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Grant),
    Revoked,
    Unknown,
}

/// One entry of the change log: a token hash and whether the change narrowed
/// access (a revocation: evict the grant) or not (a creation: forget only that the
/// token was unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub hash: TokenHash,
    pub narrowing: bool,
}

/// Which tokens to list, and where to start.
#[derive(Debug, Clone)]
pub enum Page {
    /// Tokens created by `creator` and, transitively, by those tokens.
    Below { creator: TokenId, after: i64, limit: usize },
    /// Tokens granting any of `paths` (a path and its ancestors).
    Granting { paths: Vec<String>, after: i64, limit: usize },
    /// Every token (the CLI).
    All { after: i64, limit: usize },
}

/// One audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub actor: Option<String>,
    pub target: String,
    pub client: String,
    pub detail: String,
}

/// A whole store's rows, as `tilegate store migrate` copies them (SQLite → PostgreSQL).
#[derive(Debug, Default)]
pub struct Dump {
    /// In creation order (so a creator is inserted before the tokens it made).
    pub tokens: Vec<DumpToken>,
    pub grants: Vec<DumpGrant>,
    /// (token_id, path_id, zoom, x, y)
    pub tiles: Vec<(String, String, i64, i64, i64)>,
    pub audit: Vec<AuditEntry>,
    /// (token_id, last_used_at, last_used_from, request_count)
    pub usage: Vec<(String, i64, String, i64)>,
}

/// One grant row as stored: (token_id, path_id, tier, max_zoom, has_tiles, property_fence).
pub type DumpGrant = (String, String, String, Option<i64>, bool, Option<String>);

/// One token row as stored.
#[derive(Debug, Clone)]
pub struct DumpToken {
    pub id: String,
    pub hash: Vec<u8>,
    pub display_key: String,
    pub description: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub creator_id: Option<String>,
    pub revoked_at: Option<i64>,
    pub allowed_origins: Option<String>,
}

pub(super) fn dump(conn: &Connection) -> Result<Dump, StoreError> {
    let mut d = Dump::default();
    let mut stmt = conn.prepare(
        "SELECT id, hash, display_key, description, scope, created_at, expires_at, creator_id, revoked_at, allowed_origins
         FROM tokens ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DumpToken {
            id: r.get(0)?,
            hash: r.get(1)?,
            display_key: r.get(2)?,
            description: r.get(3)?,
            scope: r.get(4)?,
            created_at: r.get(5)?,
            expires_at: r.get(6)?,
            creator_id: r.get(7)?,
            revoked_at: r.get(8)?,
            allowed_origins: r.get(9)?,
        })
    })?;
    d.tokens = rows.collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT token_id, path_id, tier, max_zoom, has_tiles, property_fence FROM grants ORDER BY token_id, path_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
    d.grants = rows.collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT token_id, path_id, zoom, x, y FROM fence_tiles")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
    d.tiles = rows.collect::<Result<_, _>>()?;
    d.audit = audit(conn, None, None)?;
    let mut stmt = conn.prepare("SELECT token_id, last_used_at, last_used_from, request_count FROM token_usage")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    d.usage = rows.collect::<Result<_, _>>()?;
    Ok(d)
}

pub(super) fn hash_from(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?;
    Ok(TokenHash(arr))
}

pub(super) fn id_from(s: &str) -> Result<TokenId, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("`{s}` is not a token id")))
}

/// A fence's tiles as `{tileX, tileY, zoom}` objects in (zoom, x, y) order; `None`
/// when the fence has no tiles.
pub fn tiles_json(fence: &Fence) -> Option<Vec<serde_json::Value>> {
    fence
        .to_parts()
        .0
        .map(|tiles| tiles.into_iter().map(|(z, x, y)| json!({"tileX": x, "tileY": y, "zoom": z})).collect())
}

/// A unix time as RFC 3339 (`2026-11-22T08:00:00Z`).
pub fn rfc3339(t: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t).ok()?.format(&time::format_description::well_known::Rfc3339).ok()
}

/// The access list as JSON, for the audit trail.
pub fn access_json(access: &[AccessSpec]) -> serde_json::Value {
    access
        .iter()
        .map(|a| {
            let tiles = tiles_json(&a.fence);
            json!({
                "pathId": a.path_id,
                "accessTier": a.tier.as_str(),
                "maxZoom": a.fence.max_zoom(),
                "tiles": tiles,
                "propertyFence": a.properties,
            })
        })
        .collect()
}

pub(super) fn create(conn: &mut Connection, new: &NewToken) -> Result<TokenRecord, StoreError> {
    // IMMEDIATE: the write lock first, so reading before writing cannot fail with
    // SQLITE_BUSY_SNAPSHOT when another process wrote in between.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let Some(creator) = new.creator {
        // Revoked since the caller's token was looked up: a revocation cascades to
        // everything made from the token, so nothing new may be made from it.
        let revoked: Option<Option<i64>> = tx
            .query_row("SELECT revoked_at FROM tokens WHERE id = ?1", params![creator.to_string()], |r| r.get(0))
            .optional()?;
        if !matches!(revoked, Some(None)) {
            return Err(StoreError::CreatorRevoked);
        }
    }
    tx.execute(
        "INSERT INTO tokens (id, hash, display_key, description, scope, created_at, expires_at, creator_id, allowed_origins)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            new.id.to_string(),
            &new.hash.0[..],
            new.display_key,
            new.description,
            new.scope.as_str(),
            new.created_at,
            new.expires_at,
            new.creator.map(|c| c.to_string()),
            origins_text(&new.allowed_origins),
        ],
    )?;
    for a in &new.access {
        let properties = a.properties.as_ref().map(serde_json::to_string).transpose().map_err(|e| {
            StoreError::CorruptValue { what: format!("property fence on {}", a.path_id), source: e.into() }
        })?;
        let tiles: Vec<_> = a.fence.tiles().map(|t| t.collect()).unwrap_or_default();
        tx.execute(
            "INSERT INTO grants (token_id, path_id, tier, max_zoom, has_tiles, property_fence) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![new.id.to_string(), a.path_id, a.tier.as_str(), a.fence.max_zoom(), a.fence.tiles().is_some(), properties],
        )?;
        let mut stmt =
            tx.prepare_cached("INSERT INTO fence_tiles (token_id, path_id, zoom, x, y) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for t in tiles {
            stmt.execute(params![new.id.to_string(), a.path_id, t.z(), t.x(), t.y()])?;
        }
    }
    tx.execute(
        "INSERT INTO audit (at, action, actor_id, target_id, client, detail) VALUES (?1, 'create', ?2, ?3, ?4, ?5)",
        params![
            new.created_at,
            new.actor.map(|a| a.to_string()),
            new.id.to_string(),
            new.client,
            access_json(&new.access).to_string()
        ],
    )?;
    let seq: i64 = tx.query_row("SELECT seq FROM tokens WHERE id = ?1", params![new.id.to_string()], |r| r.get(0))?;
    tx.commit()?;
    Ok(TokenRecord {
        seq,
        id: new.id,
        display_key: new.display_key.clone(),
        description: new.description.clone(),
        scope: new.scope,
        created_at: new.created_at,
        expires_at: new.expires_at,
        creator: new.creator,
        revoked_at: None,
        access: new.access.clone(),
        allowed_origins: new.allowed_origins.clone(),
        usage: Usage::default(),
    })
}

/// Adds one flush of usage in one transaction: counts add up, the last use is the
/// newest (so several processes on one file add up too).
pub(super) fn add_usage(conn: &mut Connection, batch: &[UsageDelta]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(ADD_USAGE)?;
        for d in batch {
            let count = i64::try_from(d.count).unwrap_or(i64::MAX);
            stmt.execute(params![d.token_id.to_string(), d.last_at, d.from.to_string(), count])?;
        }
    }
    tx.commit()?;
    Ok(())
}

const ADD_USAGE: &str = "INSERT INTO token_usage (token_id, last_used_at, last_used_from, request_count)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (token_id) DO UPDATE SET
       request_count = request_count + excluded.request_count,
       last_used_from = CASE WHEN excluded.last_used_at >= last_used_at THEN excluded.last_used_from ELSE last_used_from END,
       last_used_at = max(last_used_at, excluded.last_used_at)";

pub(super) fn lookup(conn: &mut Connection, hash: &TokenHash) -> Result<Lookup, StoreError> {
    let row = conn.prepare_cached(TOKEN_COLUMNS_BY_HASH)?.query_row(params![&hash.0[..]], token_row).optional()?;
    let Some(row) = row else {
        return Ok(Lookup::Unknown);
    };
    let record = finish_record(conn, row?)?;
    if record.revoked_at.is_some() {
        return Ok(Lookup::Revoked);
    }
    Ok(Lookup::Found(record.grant()))
}

pub(super) fn get(conn: &mut Connection, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
    let row = conn.prepare_cached(TOKEN_COLUMNS_BY_ID)?.query_row(params![id.to_string()], token_row).optional()?;
    row.map(|r| finish_record(conn, r?)).transpose()
}

pub(super) fn list(conn: &mut Connection, page: &Page) -> Result<Vec<TokenRecord>, StoreError> {
    let rows: Vec<PartialRecord> = match page {
        Page::Below { creator, after, limit } => {
            let mut stmt = conn.prepare_cached(&format!(
                "WITH RECURSIVE below(id) AS (
                    SELECT id FROM tokens WHERE creator_id = ?1
                    UNION SELECT t.id FROM tokens t JOIN below b ON t.creator_id = b.id)
                 {TOKEN_COLUMNS} WHERE id IN below AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![creator.to_string(), after, *limit as i64], token_row)?;
            rows.collect::<Result<Result<Vec<_>, _>, _>>()??
        }
        Page::Granting { paths, after, limit } => {
            let marks = vec!["?"; paths.len()].join(", ");
            let mut stmt = conn.prepare(&format!(
                "{TOKEN_COLUMNS} WHERE id IN (SELECT token_id FROM grants WHERE path_id IN ({marks}))
                 AND seq > ? ORDER BY seq LIMIT ?"
            ))?;
            let mut values: Vec<rusqlite::types::Value> = paths.iter().map(|p| p.clone().into()).collect();
            values.push((*after).into());
            values.push((*limit as i64).into());
            let rows = stmt.query_map(params_from_iter(values), token_row)?;
            rows.collect::<Result<Result<Vec<_>, _>, _>>()??
        }
        Page::All { after, limit } => {
            let mut stmt = conn.prepare_cached(&format!("{TOKEN_COLUMNS} WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
            let rows = stmt.query_map(params![after, *limit as i64], token_row)?;
            rows.collect::<Result<Result<Vec<_>, _>, _>>()??
        }
    };
    rows.into_iter().map(|r| finish_record(conn, r)).collect()
}

pub(super) fn descendants(conn: &Connection, id: TokenId) -> Result<Vec<TokenId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE below(id) AS (
            SELECT id FROM tokens WHERE creator_id = ?1
            UNION SELECT t.id FROM tokens t JOIN below b ON t.creator_id = b.id)
         SELECT id FROM below",
    )?;
    let ids = stmt.query_map(params![id.to_string()], |r| r.get::<_, String>(0))?;
    ids.map(|s| id_from(&s?)).collect()
}

pub(super) fn revoke(
    conn: &mut Connection,
    id: TokenId,
    actor: Option<TokenId>,
    client: &str,
) -> Result<Vec<TokenHash>, StoreError> {
    // IMMEDIATE: the write lock first, so reading before writing cannot fail with
    // SQLITE_BUSY_SNAPSHOT when another process wrote in between.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = now_unix();
    let mut ids = vec![id];
    ids.extend(descendants(&tx, id)?);
    let mut hashes = Vec::new();
    for target in ids {
        let changed = tx.execute(
            "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![now, target.to_string()],
        )?;
        if changed == 0 {
            continue;
        }
        let hash: Vec<u8> =
            tx.query_row("SELECT hash FROM tokens WHERE id = ?1", params![target.to_string()], |r| r.get(0))?;
        hashes.push(hash_from(&hash)?);
        let detail =
            if target == id { json!({"cascade": false}) } else { json!({"cascade": true, "root": id.to_string()}) };
        tx.execute(
            "INSERT INTO audit (at, action, actor_id, target_id, client, detail) VALUES (?1, 'revoke', ?2, ?3, ?4, ?5)",
            params![now, actor.map(|a| a.to_string()), target.to_string(), client, detail.to_string()],
        )?;
    }
    tx.commit()?;
    Ok(hashes)
}

pub(super) fn audit(
    conn: &Connection,
    token: Option<TokenId>,
    since: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, action, actor_id, target_id, client, detail FROM audit
         WHERE (?1 IS NULL OR target_id = ?1 OR actor_id = ?1) AND (?2 IS NULL OR at >= ?2) ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![token.map(|t| t.to_string()), since], |r| {
        Ok(AuditEntry {
            seq: r.get(0)?,
            at: r.get(1)?,
            action: r.get(2)?,
            actor: r.get(3)?,
            target: r.get(4)?,
            client: r.get(5)?,
            detail: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A token row with its recorded use (the column names are unique across both
/// tables, so the callers' `WHERE id = …` / `seq > …` need no alias).
const TOKEN_COLUMNS: &str =
    "SELECT seq, id, display_key, description, scope, created_at, expires_at, creator_id, revoked_at, allowed_origins,
            last_used_at, last_used_from, request_count
     FROM tokens LEFT JOIN token_usage ON token_usage.token_id = tokens.id";
const TOKEN_COLUMNS_BY_HASH: &str =
    "SELECT seq, id, display_key, description, scope, created_at, expires_at, creator_id, revoked_at, allowed_origins,
            last_used_at, last_used_from, request_count
     FROM tokens LEFT JOIN token_usage ON token_usage.token_id = tokens.id WHERE hash = ?1";
const TOKEN_COLUMNS_BY_ID: &str =
    "SELECT seq, id, display_key, description, scope, created_at, expires_at, creator_id, revoked_at, allowed_origins,
            last_used_at, last_used_from, request_count
     FROM tokens LEFT JOIN token_usage ON token_usage.token_id = tokens.id WHERE id = ?1";

/// One stored grant row (and its tiles) as an [`AccessSpec`]; both backends read
/// through this, so a stored value is judged the same way whichever store holds it.
pub(super) fn access_from(
    id: &str,
    path_id: String,
    tier: &str,
    max_zoom: Option<u32>,
    tiles: Option<Vec<(u32, u64, u64)>>,
    properties: Option<String>,
) -> Result<AccessSpec, StoreError> {
    let tier: Tier = tier.parse().map_err(|e: crate::policy::UnknownTier| StoreError::CorruptValue {
        what: format!("tier of {id} on {path_id}"),
        source: e.into(),
    })?;
    let fence = Fence::new(tiles.as_deref(), max_zoom)
        .map_err(|e| StoreError::CorruptValue { what: format!("fence of {id} on {path_id}"), source: e.into() })?;
    let properties = properties.map(|p| serde_json::from_str::<Vec<String>>(&p)).transpose().map_err(|e| {
        StoreError::CorruptValue { what: format!("property fence of {id} on {path_id}"), source: e.into() }
    })?;
    Ok(AccessSpec { path_id, tier, fence, properties })
}

/// A token row before its grants are attached.
struct PartialRecord(TokenRecord);

fn token_row(r: &Row<'_>) -> rusqlite::Result<Result<PartialRecord, StoreError>> {
    let id: String = r.get(1)?;
    let scope: String = r.get(4)?;
    let creator: Option<String> = r.get(7)?;
    let origins: Option<String> = r.get(9)?;
    let build = || -> Result<PartialRecord, StoreError> {
        Ok(PartialRecord(TokenRecord {
            seq: r.get(0)?,
            id: id_from(&id)?,
            display_key: r.get(2)?,
            description: r.get(3)?,
            scope: Scope::parse(&scope).ok_or_else(|| StoreError::Corrupt(format!("scope `{scope}`")))?,
            created_at: r.get(5)?,
            expires_at: r.get(6)?,
            creator: creator.as_deref().map(id_from).transpose()?,
            revoked_at: r.get(8)?,
            access: Vec::new(),
            allowed_origins: origins_from(&id, origins)?,
            usage: Usage {
                last_used_at: r.get(10)?,
                last_used_from: r.get(11)?,
                request_count: r.get::<_, Option<i64>>(12)?.map_or(0, |n| n.max(0) as u64),
            },
        }))
    };
    Ok(build())
}

fn finish_record(conn: &Connection, partial: PartialRecord) -> Result<TokenRecord, StoreError> {
    let mut record = partial.0;
    let id = record.id.to_string();
    let mut grants = conn.prepare_cached(
        "SELECT path_id, tier, max_zoom, has_tiles, property_fence FROM grants WHERE token_id = ?1 ORDER BY path_id",
    )?;
    let rows = grants.query_map(params![id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<u32>>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
    let mut tiles_stmt =
        conn.prepare_cached("SELECT zoom, x, y FROM fence_tiles WHERE token_id = ?1 AND path_id = ?2")?;
    for (path_id, tier, max_zoom, has_tiles, properties) in rows {
        let tiles: Option<Vec<(u32, u64, u64)>> = if has_tiles {
            let t = tiles_stmt.query_map(params![id, path_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Some(t.collect::<Result<_, _>>()?)
        } else {
            None
        };
        record.access.push(access_from(&id, path_id, &tier, max_zoom, tiles, properties)?);
    }
    Ok(record)
}
