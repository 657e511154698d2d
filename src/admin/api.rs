//! The token API at `/account/security/accessToken[/{id}]`, in the shape of Ellipsis
//! Drive's: create (201, the raw token this once), list (cursor pages, never a
//! secret), read one, and revoke (204, the token and its descendants stop working
//! before the answer is sent).
//!
//! The caller authenticates with a token of scope `all`. What a caller may see or
//! revoke: the tokens it created (transitively); with `fullView` on a path, every
//! token granting that path; with `admin` on every path a token grants, that token.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};

use crate::server::body::RequestBody;
use serde_json::{json, Value};

use super::body::{self, BodyError};
use super::delegate;
use super::{mint, Minter};
use crate::config::Config;
use crate::policy::{Denial, Grant, Scope, Tier, TokenId};
use crate::respond::{self, Body, Reject};
use crate::store::{now_unix, GrantCache, Page, TokenRecord};

/// Page size when `pageSize` is absent, and its maximum.
pub const DEFAULT_PAGE_SIZE: usize = 30;
pub const MAX_PAGE_SIZE: usize = 100;

/// Serves one token API request from an authenticated caller.
pub async fn handle(
    cache: &GrantCache,
    config: &Config,
    req: Request<RequestBody>,
    caller: Arc<Grant>,
    peer: SocketAddr,
    id: Option<&str>,
) -> Result<Response<Body>, Reject> {
    if !config.api.enabled {
        return Err(Reject::NotFound);
    }
    if caller.scope != Scope::All {
        return Err(Denial::ScopeOgcOnly.into());
    }
    match (req.method().clone(), id) {
        (Method::POST, None) => create(cache, config, req, &caller, peer).await,
        (Method::GET, None) => list(cache, config, req.uri().query().unwrap_or(""), &caller).await,
        (Method::GET, Some(id)) => read(cache, config, id, &caller).await,
        (Method::DELETE, Some(id)) => revoke(cache, config, id, &caller, peer).await,
        (_, None) => Err(Reject::MethodNotAllowed("GET or POST")),
        (_, Some(_)) => Err(Reject::MethodNotAllowed("GET or DELETE")),
    }
}

async fn create(
    cache: &GrantCache,
    config: &Config,
    req: Request<RequestBody>,
    caller: &Grant,
    peer: SocketAddr,
) -> Result<Response<Body>, Reject> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(Reject::BadRequest("send the token request as JSON with `Content-Type: application/json`".into()));
    }
    let (parts, body) = req.into_parts();
    let bytes = crate::proxy::read_body(body, &parts.headers, config.api.max_body_bytes).await?;
    let now = now_unix();
    let request = match body::parse_create(&bytes, &config.paths, now) {
        Ok(r) => r,
        Err(BodyError::Malformed(m)) => return Err(Reject::BadRequest(m)),
        Err(BodyError::Invalid(problems)) => {
            return Err(Reject::Unprocessable(problems.iter().map(body::Problem::to_json).collect()));
        }
    };
    let (access, expires_at) = delegate::narrow(caller, &config.paths, &request.requested, request.expires_at)
        .map_err(|violations| {
            let text: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.path_id, v.message)).collect();
            Reject::Forbidden(format!("the new token would be wider than the calling token: {}", text.join("; ")))
        })?;
    let allowed_origins = delegated_origins(caller, request.allowed_origins)?;
    let minter = Minter { creator: Some(caller.token_id), client: peer.ip().to_string() };
    let mut minted = mint(&config.tokens.prefix, request.description, request.scope, now, expires_at, access, minter)
        .map_err(|e| Reject::internal("cannot read OS randomness", e))?;
    minted.row.allowed_origins = allowed_origins;
    let hash = minted.row.hash;
    let record = cache.store().create(minted.row).await.map_err(|e| Reject::store("token create failed", e))?;
    // A token made up before it existed may sit in the negative cache.
    cache.evict(&[hash]);
    let mut out = token_json(&record);
    out["token"] = json!(minted.secret.expose());
    Ok(respond::json(StatusCode::CREATED, &out))
}

/// The new token's `allowedOrigins` within the caller's, or 422 naming the entry.
fn delegated_origins(
    caller: &Grant,
    asked: Option<Vec<crate::policy::OriginPattern>>,
) -> Result<Option<Vec<crate::policy::OriginPattern>>, Reject> {
    delegate::origins(caller, asked).map_err(|msg| {
        Reject::Unprocessable(
            json!([{ "loc": ["body", "allowedOrigins"], "msg": msg, "type": "value_error.delegation" }]),
        )
    })
}

async fn list(cache: &GrantCache, config: &Config, query: &str, caller: &Grant) -> Result<Response<Body>, Reject> {
    let mut page_size = DEFAULT_PAGE_SIZE;
    let mut after = 0i64;
    let mut path_id: Option<String> = None;
    let mut problems = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "pageSize" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => page_size = n,
                _ => problems
                    .push(query_problem("pageSize", format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"))),
            },
            "pageStart" => match v.parse::<i64>() {
                Ok(n) if n >= 0 => after = n,
                _ => problems.push(query_problem("pageStart", "must be the nextPageStart of a previous page".into())),
            },
            "pathId" => path_id = Some(v.into_owned()),
            other => problems
                .push(query_problem(other, "unknown query parameter; valid: pageSize, pageStart, pathId".into())),
        }
    }
    if !problems.is_empty() {
        return Err(Reject::Unprocessable(Value::Array(problems)));
    }
    let page = match path_id {
        Some(id) => {
            let path = config.paths.get(&id).ok_or_else(|| {
                Reject::Unprocessable(json!([query_problem("pathId", format!("`{id}` is not a declared path"))]))
            })?;
            match caller.access_for(path) {
                Some(a) if a.tier >= Tier::FullView => {}
                Some(a) => return Err(Denial::TierTooLow { needed: Tier::FullView, held: a.tier }.into()),
                None => return Err(Denial::PathNotFound.into()),
            }
            Page::Granting { paths: path.lineage().map(str::to_owned).collect(), after, limit: page_size + 1 }
        }
        None => Page::Below { creator: caller.token_id, after, limit: page_size + 1 },
    };
    let granting = matches!(page, Page::Granting { .. });
    // One row more than the page tells whether another page exists.
    let mut records = cache.store().list(page).await.map_err(|e| Reject::store("token list failed", e))?;
    let more = records.len() > page_size;
    records.truncate(page_size);
    let next = if more { records.last().map(|r| r.seq.to_string()) } else { None };
    // A list shows exactly what the caller could read one by one (`GET /{id}`): a
    // token granting the parent folder is not listed for a `pathId` under it. A page
    // may then hold fewer than `pageSize` tokens; `nextPageStart` still goes on.
    let below = if granting {
        cache.store().descendants(caller.token_id).await.map_err(|e| Reject::store("token read failed", e))?
    } else {
        Vec::new()
    };
    let readable = |r: &&TokenRecord| !granting || below.contains(&r.id) || covered(config, caller, r, Tier::FullView);
    let result: Vec<Value> = records.iter().filter(readable).map(token_json).collect();
    Ok(respond::json(StatusCode::OK, &json!({ "result": result, "nextPageStart": next })))
}

fn query_problem(name: &str, msg: String) -> Value {
    json!({ "loc": ["query", name], "msg": msg, "type": "value_error" })
}

/// True when the caller holds `need` on every path `record` grants (how a token that
/// is not below the caller becomes readable to it).
fn covered(config: &Config, caller: &Grant, record: &TokenRecord, need: Tier) -> bool {
    !record.access.is_empty()
        && record.access.iter().all(|a| {
            config.paths.get(&a.path_id).and_then(|p| caller.access_for(p)).is_some_and(|held| held.tier >= need)
        })
}

/// The one 404 for a token id that does not exist, is malformed, or is not visible
/// to the caller: the three cannot be told apart.
const NOT_VISIBLE: &str = "no token with this id is visible to the calling token";

/// Finds a token the caller may see; anything else is the same 404.
async fn visible(
    cache: &GrantCache,
    config: &Config,
    id: &str,
    caller: &Grant,
    need: Tier,
) -> Result<TokenRecord, Reject> {
    let not_found = || Reject::NotFoundDetail(NOT_VISIBLE.into());
    let id: TokenId = id.parse().map_err(|_| not_found())?;
    let store = cache.store();
    let record = store.get(id).await.map_err(|e| Reject::store("token read failed", e))?.ok_or_else(not_found)?;
    let below = store.descendants(caller.token_id).await.map_err(|e| Reject::store("token read failed", e))?;
    if below.contains(&id) {
        return Ok(record);
    }
    if covered(config, caller, &record, need) {
        Ok(record)
    } else {
        Err(not_found())
    }
}

async fn read(cache: &GrantCache, config: &Config, id: &str, caller: &Grant) -> Result<Response<Body>, Reject> {
    let record = visible(cache, config, id, caller, Tier::FullView).await?;
    Ok(respond::json(StatusCode::OK, &token_json(&record)))
}

async fn revoke(
    cache: &GrantCache,
    config: &Config,
    id: &str,
    caller: &Grant,
    peer: SocketAddr,
) -> Result<Response<Body>, Reject> {
    let record = visible(cache, config, id, caller, Tier::Admin).await?;
    let hashes = cache
        .store()
        .revoke(record.id, Some(caller.token_id), peer.ip().to_string())
        .await
        .map_err(|e| Reject::store("token revoke failed", e))?;
    // INVARIANT: evicted before answering, so the very next request with any of
    // these tokens is refused.
    cache.evict(&hashes);
    let mut res = Response::new(respond::full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

/// `GET /account/security/paths`: the paths the calling token can see, its own tier
/// and fences on each, and their Integrate URLs ([`super::integrate`]). Judged like
/// the token API (enabled, scope `all`), and an expired token is refused here.
pub fn paths(config: &Config, method: &Method, caller: &Grant, now: i64) -> Result<Response<Body>, Reject> {
    if !config.api.enabled {
        return Err(Reject::NotFound);
    }
    if caller.expires_at.is_some_and(|t| t <= now) {
        return Err(Denial::Expired.into());
    }
    if caller.scope != Scope::All {
        return Err(Denial::ScopeOgcOnly.into());
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(Reject::MethodNotAllowed("GET"));
    }
    Ok(respond::json(StatusCode::OK, &super::integrate::paths_json(config, caller)))
}

fn rfc3339(t: i64) -> Value {
    crate::store::rfc3339(t).map_or(Value::Null, Value::String)
}

/// A token as the API shows it: never the secret.
pub fn token_json(r: &TokenRecord) -> Value {
    let access: Vec<Value> = r
        .access
        .iter()
        .map(|a| {
            let tiles = crate::store::tiles_json(&a.fence);
            let geo = if a.fence.is_unlimited() {
                Value::Null
            } else {
                let mut g = serde_json::Map::new();
                if let Some(t) = tiles {
                    g.insert("tiles".into(), Value::Array(t));
                }
                if let Some(z) = a.fence.max_zoom() {
                    g.insert("maxZoom".into(), json!(z));
                }
                Value::Object(g)
            };
            json!({
                "pathId": a.path_id,
                "access": { "accessTier": a.tier.as_str(), "geoFence": geo, "propertyFence": a.properties },
            })
        })
        .collect();
    json!({
        "id": r.id.to_string(),
        "displayKey": r.display_key,
        "description": r.description,
        "scope": r.scope.as_str(),
        "accessList": access,
        "createdAt": rfc3339(r.created_at),
        "expiresAt": r.expires_at.map_or(Value::Null, rfc3339),
        "revokedAt": r.revoked_at.map_or(Value::Null, rfc3339),
        "createdBy": r.creator.map(|c| c.to_string()),
        "allowedOrigins": origins_json(r),
        "lastUsedAt": r.usage.last_used_at.map_or(Value::Null, rfc3339),
        "lastUsedFrom": r.usage.last_used_from,
        "requestCount": r.usage.request_count,
    })
}

/// `allowedOrigins` as stored (normalised), `null` = any origin.
fn origins_json(r: &TokenRecord) -> Value {
    r.allowed_origins
        .as_ref()
        .map_or(Value::Null, |l| Value::Array(l.iter().map(|p| Value::String(p.to_string())).collect()))
}
