//! The pipeline, top to bottom: one function calls every stage in order.
//!
//! ```text
//! normalize ─► route ─► extract ─► lookup ─► classify ─► decide ──Denial──► respond
//!                                                           │ Permit
//!                                                           ▼
//!                                              forward ─► filter ─► respond
//! ```
//!
//! `Gateway::pipeline` is the whole flow on one screen. Each stage is a named
//! function with typed input and output; a `RequestLog` carries per-request state
//! for the one access-log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::admin;
use crate::config::{Config, LogFormat, PathConfig, TileTemplate};
use crate::ogc::{self, DataFormat, ForwardBody, OgcError, OgcRequest, Protocol, ResponseKind};
use crate::ops::{self, Ops, RequestLabels};
use crate::policy::{self, Denial, Extent, Grant, Operation, Permit, Surface, Tier, TokenId};
use crate::proxy::{self, ForwardContext, Outgoing, Upstream};
use crate::respond::{self, Body, Reject};
use crate::route::{self, BadPath, Route};
use crate::spatial::TileCoord;
use crate::store::{now_unix, GrantCache, Resolved};
use crate::token::{self, Extracted, TokenSecret};

/// Shared gateway state: the current config (swapped on reload), the grant cache
/// and the upstream client.
pub struct Gateway {
    config: ArcSwap<Config>,
    cache: Arc<GrantCache>,
    upstream: Upstream,
    ops: Arc<Ops>,
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `server.listen`: everything (the token API too, unless `api.listen` is set).
    Main,
    /// `api.listen`: only the token API, its OpenAPI document and health checks.
    Api,
}

/// Where a permitted request goes and what it is.
pub struct Target {
    pub path: Arc<PathConfig>,
    pub op: Operation,
    pub uri: Uri,
    /// What the filter stage does with the answer; `None` relays it as it is.
    pub response: Option<ResponseKind>,
    /// For capabilities rewriting: the upstream endpoint and the public URL for it.
    pub upstream_base: String,
    pub public: String,
}

/// The largest OGC POST body the gateway reads to classify (WFS XML, forms, OGC API items).
pub const MAX_OGC_BODY_BYTES: usize = 8 << 20;

impl Gateway {
    pub fn new(config: Config, cache: Arc<GrantCache>) -> Self {
        let upstream = Upstream::new(&config);
        Gateway { config: ArcSwap::from_pointee(config), cache, upstream, ops: Arc::new(Ops::new()) }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Replaces the configuration for requests that start from now on.
    pub fn swap_config(&self, config: Config) {
        self.upstream.configure(&config);
        self.config.store(Arc::new(config));
    }

    pub fn cache(&self) -> &Arc<GrantCache> {
        &self.cache
    }

    /// Metrics and rate limits (the token API records its actions here).
    pub fn ops(&self) -> &Arc<Ops> {
        &self.ops
    }

    /// Handles one request and writes its access-log line.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        listener: Listener,
    ) -> Response<Body> {
        let config = self.config.load_full();
        let client = proxy::headers::client_ip(req.headers(), peer.ip(), &config.server.trusted_proxies);
        let mut log = RequestLog::new(req.method(), peer, client);
        let response = match self.pipeline(&config, req, peer, tls, listener, &mut log).await {
            Ok(res) => {
                log.decision = if log.token_id.is_some() { "allow" } else { "public" };
                log.outcome = ops::Outcome::answered(log.token_id.is_some());
                res
            }
            Err(reject) => {
                log.decision =
                    if matches!(reject, Reject::Upstream(_) | Reject::Internal(_)) { "error" } else { "deny" };
                log.reason = reject.reason();
                log.outcome = ops::Outcome::rejected(&reject);
                if let Some(cause) = reject.cause() {
                    tracing::warn!(error = %cause, "request failed");
                }
                reject.into_response()
            }
        };
        log.write(config.log.format, response.status());
        self.ops.record(&config, log.labels(response.status()), log.started.elapsed(), log.upstream(), client);
        response
    }

    /// The stages in order. Returning early is the only way to skip a stage.
    async fn pipeline(
        &self,
        config: &Config,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        listener: Listener,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, Reject> {
        let path = route::normalize(req.uri().path()).map_err(bad_path)?;
        if access_log_enabled() {
            log.path = Some(path.clone());
        }
        let route = route::route(&path).map_err(bad_path)?;
        let route = listener_route(config, listener, route);
        if let Some(res) = self.operations(&route, req.method()).await? {
            return Ok(res);
        }
        self.ops.admit_client(config, ops::route_path_id(&route), log.client)?;
        let token = token::extract(req.headers(), req.uri().query(), config.tokens.allow_query_token)?
            .ok_or(Denial::MissingToken)?;
        let grant = self.lookup(&token.secret).await?;
        log.token_id = Some(grant.token_id);
        self.ops.admit_token(config, ops::route_path_id(&route), grant.token_id)?;
        if let Route::TokenApi { id } = route {
            return self.token_api(config, req, grant, peer, id, log).await;
        }
        let (parts, body) = req.into_parts();
        let (target, body) = classify(config, &route, &parts, body, &grant).await?;
        log.path_id = Some(target.path.id.clone());
        log.operation = target.op.name;
        let permit = policy::decide(&grant, &target.op, &target.path, now_unix())?;
        if let Some(kind) = &target.response {
            proxy::filter::precheck(kind, permit.obligations())?;
        }
        let started = Instant::now();
        let response = self.forward(config, parts, body, &target, &permit, peer, tls).await;
        log.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        self.filter(response?, &target, &permit, &token).await
    }

    /// The token API, with its metrics.
    async fn token_api(
        &self,
        config: &Config,
        req: Request<Incoming>,
        grant: Arc<Grant>,
        peer: SocketAddr,
        id: Option<&str>,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, Reject> {
        let (action, operation) = match (req.method(), id) {
            (&Method::POST, None) => ("create", "tokens.create"),
            (&Method::GET, None) => ("list", "tokens.list"),
            (&Method::GET, Some(_)) => ("get", "tokens.get"),
            (&Method::DELETE, Some(_)) => ("revoke", "tokens.revoke"),
            _ => ("other", "tokens.other"),
        };
        log.operation = operation;
        let result = admin::api::handle(&self.cache, config, req, grant, peer, id).await;
        let status = result.as_ref().map_or_else(|r| r.status(), |res| res.status());
        self.ops.metrics.token_api(action, status.as_u16());
        if let Err(Reject::Internal(_)) = &result {
            self.ops.metrics.store_error();
        }
        result
    }

    /// Health and readiness answer without a token, as on the ops listener
    /// ([`ops::health`]: `/readyz` is 503 while draining here too).
    async fn operations(&self, route: &Route<'_>, method: &Method) -> Result<Option<Response<Body>>, Reject> {
        let probe = match route {
            Route::OpenApi => return Ok(Some(openapi())),
            Route::Healthz => ops::Probe::Liveness,
            Route::Readyz => ops::Probe::Readiness,
            Route::Unknown => return Err(Reject::NotFound),
            _ => return Ok(None),
        };
        if method != Method::GET && method != Method::HEAD {
            return Err(Reject::MethodNotAllowed("GET or HEAD"));
        }
        let paths = self.config.load().paths.len();
        Ok(Some(ops::health(probe, &self.ops, self.cache.store(), paths).await))
    }

    /// The lookup stage: token → grant, through the cache.
    async fn lookup(&self, secret: &TokenSecret) -> Result<Arc<Grant>, Reject> {
        match self.cache.resolve(secret.hash()).await {
            Ok(Resolved::Grant(g)) => Ok(g),
            Ok(Resolved::Unknown) => Err(Denial::UnknownToken.into()),
            Ok(Resolved::Revoked) => Err(Denial::Revoked.into()),
            Err(e) => {
                self.ops.metrics.store_error();
                Err(Reject::Internal(format!("token lookup failed: {e}")))
            }
        }
    }

    /// The forward stage (body limits, upstream clients and timeouts live in `proxy`).
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        config: &Config,
        parts: http::request::Parts,
        body: Outgoing,
        target: &Target,
        permit: &Permit,
        peer: SocketAddr,
        tls: bool,
    ) -> Result<Response<Incoming>, Reject> {
        let ctx = ForwardContext { peer, tls, config };
        let ask = proxy::Ask {
            identity: target.response.as_ref().is_some_and(|k| *k != ResponseKind::Other),
            own_urls: matches!(target.response, Some(ResponseKind::Capabilities(_))) || rewrites_links(&target.op),
        };
        proxy::forward(&self.upstream, &target.path, parts, body, target.uri.clone(), permit, &ctx, ask).await
    }

    /// The filter stage: the permit's obligations applied to the answer.
    async fn filter(
        &self,
        response: Response<Incoming>,
        target: &Target,
        permit: &Permit,
        token: &Extracted,
    ) -> Result<Response<Body>, Reject> {
        let Some(kind) = &target.response else { return Ok(proxy::relay(response)) };
        let ctx = proxy::filter::FilterContext {
            kind,
            obligations: permit.obligations(),
            upstream: &target.upstream_base,
            public: &target.public,
            token_query: token.from_query.then(|| token.secret.expose()),
            layers: &target.path.layers,
            quad_matrix_sets: &target.path.webmercator_matrix_sets,
            single_feature: target.op.name == "api.item",
            rewrite_links: rewrites_links(&target.op),
        };
        proxy::filter::apply(response, &ctx).await
    }
}

/// The token API's OpenAPI 3.1 document (`src/admin/openapi.json`).
pub const OPENAPI: &str = include_str!("admin/openapi.json");

fn openapi() -> Response<Body> {
    let mut res = Response::new(respond::full(OPENAPI));
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res
}

/// What a listener serves: with `api.listen` set, the token API lives only there
/// and the API listener serves nothing else (both answer 404 for the other's routes).
fn listener_route<'a>(config: &Config, listener: Listener, route: Route<'a>) -> Route<'a> {
    let api_route = matches!(route, Route::TokenApi { .. } | Route::OpenApi);
    let health = matches!(route, Route::Healthz | Route::Readyz);
    match (listener, config.api.listen.is_some()) {
        (Listener::Main, true) if api_route => Route::Unknown,
        (Listener::Api, _) if !api_route && !health => Route::Unknown,
        _ => route,
    }
}

fn bad_path(e: BadPath) -> Reject {
    Reject::BadRequest(e.to_string())
}

/// The classify stage: which path, which operation, which upstream URL, and the
/// body to send (the client's stream, or bytes the classifier judged).
///
/// The token's visibility of the path is checked before any request detail is
/// judged, so that a malformed request cannot reveal that a path exists.
async fn classify(
    config: &Config,
    route: &Route<'_>,
    parts: &http::request::Parts,
    body: Incoming,
    grant: &Grant,
) -> Result<(Target, Outgoing), Reject> {
    let path_id = match *route {
        Route::Xyz { path_id, .. } | Route::Path { path_id, .. } | Route::Ogc { path_id, .. } => path_id,
        Route::TokenApi { .. } | Route::OpenApi | Route::Healthz | Route::Readyz | Route::Unknown => {
            return Err(Reject::NotFound)
        }
    };
    let path = config.paths.get(path_id).cloned().ok_or(Denial::PathNotFound)?;
    if grant.access_for(&path).is_none() {
        return Err(Denial::PathNotFound.into());
    }
    let plain = |path: Arc<PathConfig>, op: Operation, uri: Uri, body: Outgoing| {
        (Target { path, op, uri, response: None, upstream_base: String::new(), public: String::new() }, body)
    };
    match *route {
        Route::Xyz { tile, .. } => {
            // A protocol the path does not configure looks exactly like a missing path.
            let template = path.upstream.xyz.as_ref().ok_or(Denial::PathNotFound)?;
            if parts.method != Method::GET && parts.method != Method::HEAD {
                return Err(Reject::MethodNotAllowed("GET or HEAD"));
            }
            let uri = fill_template(template, tile)?;
            let op = Operation::simple("xyz.tile", Surface::Ogc, Tier::View, Extent::Tile(tile));
            Ok(plain(path, op, uri, Outgoing::Empty))
        }
        Route::Path { rest, .. } => {
            let base = path.upstream.base.as_ref().ok_or(Denial::PathNotFound)?;
            let (name, tier) = if parts.method == Method::GET || parts.method == Method::HEAD {
                ("path.read", Tier::ViewPlus)
            } else {
                ("path.write", Tier::Edit)
            };
            let query = parts.uri.query().map(token::strip_token_param);
            let uri = join(&base.to_string(), rest, query.as_deref().unwrap_or(""))?;
            let op = Operation::simple(name, Surface::Full, tier, Extent::Opaque);
            Ok(plain(path, op, uri, Outgoing::Stream(body)))
        }
        Route::Ogc { family, rest, .. } => classify_ogc(config, path, family, rest, parts, body).await,
        _ => Err(Reject::NotFound),
    }
}

async fn classify_ogc(
    config: &Config,
    path: Arc<PathConfig>,
    protocol: Protocol,
    rest: &str,
    parts: &http::request::Parts,
    body: Incoming,
) -> Result<(Target, Outgoing), Reject> {
    let up = &path.upstream;
    let rest_wmts = protocol == Protocol::Wmts && !matches!(rest, "" | "/");
    let base: Option<String> = match protocol {
        Protocol::Wms => up.wms.as_ref().map(ToString::to_string),
        Protocol::Wmts if rest_wmts => up.wmts_rest.as_ref().or(up.wmts.as_ref()).map(ToString::to_string),
        Protocol::Wmts => up.wmts.as_ref().map(ToString::to_string),
        Protocol::Wfs => up.wfs.as_ref().map(ToString::to_string),
        Protocol::Wcs => up.wcs.as_ref().map(ToString::to_string),
        Protocol::Api => up.ogcapi.as_ref().map(ToString::to_string),
        Protocol::Mvt => up.mvt.as_ref().map(|t| t.0.clone()),
        Protocol::Xyz => up.xyz.as_ref().map(|t| t.0.clone()),
    };
    let base = base.ok_or(Denial::PathNotFound)?;
    let header = |name: http::header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = header(http::header::CONTENT_TYPE);
    let judged = if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        Some(proxy::read_body(body, &parts.headers, MAX_OGC_BODY_BYTES).await?)
    } else {
        None
    };
    let query = parts.uri.query().map(token::strip_token_param);
    let request = OgcRequest {
        protocol,
        method: &parts.method,
        rest,
        query: query.as_deref().unwrap_or(""),
        content_type,
        accept: header(http::header::ACCEPT),
        body: judged.as_deref(),
    };
    let classified = ogc::classify_with(&request, &path, &path.ogc_options()).map_err(ogc_reject)?;
    let mut op = classified.op;
    let filterable = matches!(classified.response, ResponseKind::Features(DataFormat::Json));
    if op.extent == Extent::Unbounded && filterable {
        // The filter stage drops features outside the fence, so no bound is needed.
        op.extent = Extent::GeometryFiltered;
    }
    let uri = match (protocol, op.extent) {
        (Protocol::Mvt, Extent::Tile(tile)) => fill_template(up.mvt.as_ref().ok_or(Denial::PathNotFound)?, tile)?,
        (Protocol::Mvt, _) => {
            return Err(Reject::BadRequest("a vector tile address is /ogc/mvt/{pathId}/{z}/{x}/{y}".into()))
        }
        _ => join(&base, &classified.forward.path, &classified.forward.query)?,
    };
    let body = match (classified.forward.body, judged) {
        (ForwardBody::None, _) | (ForwardBody::Original, None) => Outgoing::Empty,
        (ForwardBody::Original, Some(bytes)) => {
            Outgoing::Judged(bytes, parts.headers.get(http::header::CONTENT_TYPE).cloned())
        }
        (ForwardBody::Form(form), _) => Outgoing::Judged(
            Bytes::from(form),
            Some(http::HeaderValue::from_static("application/x-www-form-urlencoded")),
        ),
    };
    let public = format!("{}/ogc/{}/{}", config.server.public_url, protocol.as_str(), path.id);
    Ok((Target { path, op, uri, response: Some(classified.response), upstream_base: base, public }, body))
}

/// Maps a classifier error to its reject (the statuses the classifier documents).
fn ogc_reject(e: OgcError) -> Reject {
    match e {
        OgcError::BadRequest(m) => Reject::BadRequest(m),
        OgcError::NotSupported(m) => Reject::BadRequest(format!("{m} (not supported through the gateway)")),
        OgcError::MethodNotAllowed { allowed, .. } => Reject::MethodNotAllowed(allowed),
        OgcError::UnsupportedMediaType(m) => Reject::UnsupportedMediaType(m),
        // Same reason as a fenced property, so a token cannot tell the two apart.
        OgcError::UnknownProperty(p) => Reject::Denied(Denial::PropertyFenced(p)),
    }
}

/// `base` (which may carry its own query, e.g. MapServer `?map=`) + `path` + `query`.
fn join(base: &str, path: &str, query: &str) -> Result<Uri, Reject> {
    let (base_path, base_query) = match base.split_once('?') {
        Some((p, q)) => (p, q),
        None => (base, ""),
    };
    let mut url = String::with_capacity(base.len() + path.len() + query.len() + 2);
    url.push_str(base_path);
    if !path.is_empty() {
        if url.ends_with('/') && path.starts_with('/') {
            url.pop();
        } else if !url.ends_with('/') && !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
    }
    let queries: Vec<&str> = [base_query, query].into_iter().filter(|q| !q.is_empty()).collect();
    if !queries.is_empty() {
        url.push('?');
        url.push_str(&queries.join("&"));
    }
    url.parse().map_err(|_| Reject::BadRequest("the request cannot be forwarded as a valid URL".into()))
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
    /// The client address rate limits apply to (the peer, or the forwarded
    /// address behind a trusted proxy).
    client: std::net::IpAddr,
    path: Option<String>,
    path_id: Option<String>,
    operation: &'static str,
    token_id: Option<TokenId>,
    decision: &'static str,
    reason: &'static str,
    /// What became of the request, typed (for metrics and the failed-auth guard).
    outcome: ops::Outcome,
    upstream_ms: Option<f64>,
}

impl RequestLog {
    fn new(method: &Method, peer: SocketAddr, client: std::net::IpAddr) -> Self {
        RequestLog {
            started: Instant::now(),
            method: method.clone(),
            peer,
            client,
            path: None,
            path_id: None,
            operation: "-",
            token_id: None,
            decision: "-",
            reason: "-",
            outcome: ops::Outcome::Public,
            upstream_ms: None,
        }
    }

    /// The metric labels for this request.
    fn labels(&self, status: StatusCode) -> RequestLabels {
        RequestLabels {
            path_id: self.path_id.clone().unwrap_or_else(|| "-".into()),
            operation: self.operation,
            outcome: self.outcome,
            status: status.as_u16(),
        }
    }

    fn upstream(&self) -> Option<std::time::Duration> {
        self.upstream_ms.map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
    }

    fn write(&self, _format: LogFormat, status: StatusCode) {
        if !access_log_enabled() {
            return;
        }
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

/// OGC API answers carry `links[].href` that the filter stage rewrites.
fn rewrites_links(op: &Operation) -> bool {
    op.name.starts_with("api.")
}

/// True when the access log is on (`RUST_LOG` includes `tilegate::access` at info);
/// when off, the request's path is neither copied nor redacted.
fn access_log_enabled() -> bool {
    tracing::enabled!(target: "tilegate::access", tracing::Level::INFO)
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
