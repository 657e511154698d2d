//! The pipeline, top to bottom: one function calls every stage in order.
//!
//! ```text
//! normalize ─► route ─► extract ─► lookup ─► classify ─► decide ──Denial──► respond
//!                                                           │ Permit
//!                                                           ▼
//!                                              forward ─► filter ─► respond
//! ```
//!
//! [`Gateway::pipeline`] is the whole flow on one screen. Each stage is a named
//! function with typed input and output; a [`RequestLog`] carries per-request state
//! for the one access-log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::config::{Config, LogFormat, PathConfig, TileTemplate};
use crate::policy::{self, Denial, Extent, Grant, Operation, Permit, Surface, Tier, TokenId};
use crate::proxy::{self, ForwardContext, Upstream};
use crate::respond::{self, Body, Reject};
use crate::route::{self, BadPath, Route};
use crate::spatial::TileCoord;
use crate::store::{GrantCache, Resolved};
use crate::token::{self, Extracted, TokenSecret};

/// Shared gateway state: the current config (swapped on reload), the grant cache
/// and the upstream client.
pub struct Gateway {
    config: ArcSwap<Config>,
    cache: Arc<GrantCache>,
    upstream: Upstream,
}

/// Where a permitted request goes and what it is.
pub struct Target {
    pub path: Arc<PathConfig>,
    pub op: Operation,
    pub uri: Uri,
}

impl Gateway {
    pub fn new(config: Config, cache: Arc<GrantCache>) -> Self {
        let upstream = Upstream::new(config.upstream.connect_timeout);
        Gateway { config: ArcSwap::from_pointee(config), cache, upstream }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Replaces the configuration for requests that start from now on.
    pub fn swap_config(&self, config: Config) {
        self.config.store(Arc::new(config));
    }

    pub fn cache(&self) -> &Arc<GrantCache> {
        &self.cache
    }

    /// Handles one request and writes its access-log line.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr, tls: bool) -> Response<Body> {
        let config = self.config.load_full();
        let mut log = RequestLog::new(req.method(), peer);
        let response = match self.pipeline(&config, req, peer, tls, &mut log).await {
            Ok(res) => {
                log.decision = if log.token_id.is_some() { "allow" } else { "public" };
                res
            }
            Err(reject) => {
                log.decision =
                    if matches!(reject, Reject::Upstream(_) | Reject::Internal(_)) { "error" } else { "deny" };
                log.reason = reject.reason();
                if let Some(cause) = reject.cause() {
                    tracing::warn!(error = %cause, "request failed");
                }
                reject.into_response()
            }
        };
        log.write(config.log.format, response.status());
        response
    }

    /// The stages in order. Returning early is the only way to skip a stage.
    async fn pipeline(
        &self,
        config: &Config,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, Reject> {
        let path = route::normalize(req.uri().path()).map_err(bad_path)?;
        log.path = Some(path.clone());
        let route = route::route(&path).map_err(bad_path)?;
        if let Some(res) = self.operations(&route, req.method()).await? {
            return Ok(res);
        }
        let token = token::extract(req.headers(), req.uri().query(), config.tokens.allow_query_token)?
            .ok_or(Denial::MissingToken)?;
        let grant = self.lookup(&token.secret).await?;
        log.token_id = Some(grant.token_id);
        let target = classify(config, &route, &req, &token)?;
        log.path_id = Some(target.path.id.clone());
        log.operation = target.op.name;
        let permit = policy::decide(&grant, &target.op, &target.path, unix_now())?;
        let started = Instant::now();
        let response = self.forward(config, req, target.uri, &permit, peer, tls).await;
        log.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        Ok(proxy::relay(response?))
    }

    /// Health and readiness answer without a token.
    async fn operations(&self, route: &Route<'_>, method: &Method) -> Result<Option<Response<Body>>, Reject> {
        let ready = match route {
            Route::Healthz => true,
            Route::Readyz => self.cache.store().ping().await,
            Route::Unknown => return Err(Reject::NotFound),
            _ => return Ok(None),
        };
        if method != Method::GET && method != Method::HEAD {
            return Err(Reject::MethodNotAllowed("GET or HEAD"));
        }
        let (status, text) =
            if ready { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "store unavailable") };
        Ok(Some(respond::json(status, &serde_json::json!({ "status": text }))))
    }

    /// The lookup stage: token → grant, through the cache.
    async fn lookup(&self, secret: &TokenSecret) -> Result<Arc<Grant>, Reject> {
        match self.cache.resolve(secret.hash()).await {
            Ok(Resolved::Grant(g)) => Ok(g),
            Ok(Resolved::Unknown) => Err(Denial::UnknownToken.into()),
            Ok(Resolved::Revoked) => Err(Denial::Revoked.into()),
            Err(e) => Err(Reject::Internal(format!("token lookup failed: {e}"))),
        }
    }

    /// The forward stage.
    async fn forward(
        &self,
        config: &Config,
        req: Request<Incoming>,
        target: Uri,
        permit: &Permit,
        peer: SocketAddr,
        tls: bool,
    ) -> Result<Response<Incoming>, Reject> {
        let (parts, body) = req.into_parts();
        let ctx = ForwardContext { peer, tls, config };
        let upstream_req = proxy::prepare(parts, body, target, permit, &ctx);
        Ok(self.upstream.send(upstream_req, config.upstream.response_timeout).await?)
    }
}

fn bad_path(e: BadPath) -> Reject {
    Reject::BadRequest(e.to_string())
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The classify stage: which path, which operation, which upstream URL.
fn classify(config: &Config, route: &Route<'_>, req: &Request<Incoming>, _token: &Extracted) -> Result<Target, Reject> {
    let path_for = |id: &str| config.paths.get(id).cloned().ok_or(Reject::Denied(Denial::PathNotFound));
    match *route {
        Route::Xyz { path_id, tile, .. } => {
            let path = path_for(path_id)?;
            // A protocol the path does not configure looks exactly like a missing path.
            let template = path.upstream.xyz.as_ref().ok_or(Denial::PathNotFound)?;
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Err(Reject::MethodNotAllowed("GET or HEAD"));
            }
            let uri = fill_template(template, tile)?;
            let op = Operation::simple("xyz.tile", Surface::Ogc, Tier::View, Extent::Tile(tile));
            Ok(Target { path, op, uri })
        }
        Route::Path { path_id, rest } => {
            let path = path_for(path_id)?;
            let base = path.upstream.base.as_ref().ok_or(Denial::PathNotFound)?;
            let (name, tier) = if req.method() == Method::GET || req.method() == Method::HEAD {
                ("path.read", Tier::ViewPlus)
            } else {
                ("path.write", Tier::Edit)
            };
            let query = req.uri().query().map(token::strip_token_param);
            let mut uri = format!("{base}{rest}");
            if let Some(q) = query.as_deref().filter(|q| !q.is_empty()) {
                uri.push('?');
                uri.push_str(q);
            }
            let uri = uri.parse().map_err(|_| Reject::BadRequest("the request path cannot be forwarded".into()))?;
            let op = Operation::simple(name, Surface::Full, tier, Extent::Opaque);
            Ok(Target { path, op, uri })
        }
        Route::Ogc { path_id, .. } => {
            // Reveal nothing about the path until the OGC classifiers can judge it.
            let _ = path_for(path_id)?;
            Err(Reject::Denied(Denial::PathNotFound))
        }
        Route::TokenApi { .. } | Route::OpenApi | Route::Healthz | Route::Readyz | Route::Unknown => {
            Err(Reject::NotFound)
        }
    }
}

/// Fills `{z}`, `{x}`, `{y}` (or `{-y}`, the TMS row) in a tile URL template.
fn fill_template(template: &TileTemplate, tile: TileCoord) -> Result<Uri, Reject> {
    // One pass, one allocation (route::fill_tile_template); was four `replace`s.
    route::fill_tile_template(&template.0, tile)
        .ok_or_else(|| Reject::Internal(format!("tile template `{}` gives an invalid URL", template.0)))
}

/// Per-request state for the one access-log line. Never holds a token.
struct RequestLog {
    started: Instant,
    method: Method,
    peer: SocketAddr,
    path: Option<String>,
    path_id: Option<String>,
    operation: &'static str,
    token_id: Option<TokenId>,
    decision: &'static str,
    reason: &'static str,
    upstream_ms: Option<f64>,
}

impl RequestLog {
    fn new(method: &Method, peer: SocketAddr) -> Self {
        RequestLog {
            started: Instant::now(),
            method: method.clone(),
            peer,
            path: None,
            path_id: None,
            operation: "-",
            token_id: None,
            decision: "-",
            reason: "-",
            upstream_ms: None,
        }
    }

    fn write(&self, _format: LogFormat, status: StatusCode) {
        let path = self.path.as_deref().map(redact_path);
        tracing::info!(
            target: "tilegate::access",
            method = %self.method,
            path = path.as_deref().unwrap_or("-"),
            path.id = self.path_id.as_deref().unwrap_or("-"),
            operation = self.operation,
            token.id = %self.token_id.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            decision = self.decision,
            deny.reason = self.reason,
            status = status.as_u16(),
            upstream.ms = self.upstream_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
            duration.ms = (self.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
            client = %self.peer.ip(),
        );
    }
}

/// Replaces any path segment that is a well-formed token, so a token pasted into
/// a URL path never reaches the log.
fn redact_path(path: &str) -> String {
    if !path.contains('_') {
        return path.to_owned();
    }
    path.split('/')
        .map(|seg| if seg.len() >= 51 && TokenSecret::parse(seg).is_ok() { "<redacted>" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}
