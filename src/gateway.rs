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
//! function with typed input and output; a [`RequestLog`] carries per-request state
//! for the one access-log line, which [`crate::access`] writes when the body ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, Uri};
// The client's request body, read under the server's body timeout.
use crate::server::body::RequestBody;
use tracing::Instrument as _;

use crate::access::{self, access_log_enabled, RequestLog};
use crate::admin;
use crate::config::Config;
use crate::ogc::{self, AnswerCrs, DataFormat, ForwardBody, OgcRequest, Protocol, ResponseKind};
use crate::ops::{self, Ops};
use crate::paths::{PathConfig, TileTemplate};
use crate::policy::{self, Denial, Extent, Grant, Judged, Operation, Permitted, Surface, Tier};
use crate::proxy::{self, ForwardContext, Outgoing, Upstream, UpstreamBody};
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
    /// PMTiles archives: opened versions and the directory cache (src/pmtiles).
    archives: crate::pmtiles::Archives,
    /// Token usage, recorded per request and flushed by the server's task.
    usage: Arc<crate::usage::Recorder>,
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `server.listen`: everything (the token API too, unless `api.listen` is set).
    Main,
    /// `api.listen`: only the token API, its OpenAPI document and health checks.
    Api,
}

/// Where a request goes and what it is: what `decide` judges, and (wrapped in
/// [`Permitted`]) the only thing `forward` sends.
pub struct Target {
    pub path: Arc<PathConfig>,
    pub op: Operation,
    pub uri: Uri,
    /// The OGC protocol it came through; `None` for `/path/…` pass-through.
    pub protocol: Option<Protocol>,
    /// What the filter stage does with the answer; `None` relays it as it is.
    pub response: Option<ResponseKind>,
    /// The coordinates the answer's geometries are written in.
    pub answer_crs: AnswerCrs,
    /// For capabilities rewriting: the upstream endpoint and the public URL for it.
    pub upstream_base: String,
    pub public: String,
}

impl Judged for Target {
    fn operation(&self) -> &Operation {
        &self.op
    }

    fn path(&self) -> &PathConfig {
        &self.path
    }
}

impl Target {
    /// OGC API answers carry `links[].href` that the filter stage rewrites.
    fn rewrites_links(&self) -> bool {
        self.protocol == Some(Protocol::Api)
    }

    /// The `Accept` sent upstream for an OGC API answer the gateway reads as JSON: the
    /// judged format, never the client's (pygeoapi answers `application/ld+json`, with
    /// the properties flattened out of reach of the filter, when asked for it).
    fn pinned_accept(&self) -> Option<&'static str> {
        if self.protocol != Some(Protocol::Api) {
            return None;
        }
        match self.response.as_ref()? {
            ResponseKind::Features(DataFormat::Json) | ResponseKind::Feature(DataFormat::Json) => {
                Some("application/geo+json, application/json;q=0.9")
            }
            ResponseKind::Capabilities(_) | ResponseKind::Schema(DataFormat::Json) => {
                Some("application/json, application/schema+json;q=0.9")
            }
            ResponseKind::ApiDefinition => Some("application/vnd.oai.openapi+json;version=3.0, application/json;q=0.9"),
            _ => None,
        }
    }
}

/// The largest OGC POST body the gateway reads to classify (WFS XML, forms, OGC API
/// items), whatever `max_body_bytes` allows (README, "Limits").
pub const MAX_OGC_BODY_BYTES: usize = 8 << 20;

/// OGC bodies larger than this are judged on the blocking pool.
const BLOCKING_BODY_BYTES: usize = 64 << 10;

impl Gateway {
    pub fn new(config: Config, cache: Arc<GrantCache>) -> Self {
        let upstream = Upstream::new(&config);
        let usage = Arc::new(crate::usage::Recorder::new());
        Gateway {
            config: ArcSwap::from_pointee(config),
            cache,
            upstream,
            ops: Arc::new(Ops::new()),
            usage,
            archives: crate::pmtiles::Archives::default(),
        }
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

    /// The upstream connection pools (the server's sweep reaps their idle connections).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The PMTiles archives and their directory cache (tests, diagnostics).
    pub fn archives(&self) -> &crate::pmtiles::Archives {
        &self.archives
    }

    /// Token usage recorded since the last flush.
    pub fn usage(&self) -> &Arc<crate::usage::Recorder> {
        &self.usage
    }

    /// Metrics and rate limits (the token API records its actions here).
    pub fn ops(&self) -> &Arc<Ops> {
        &self.ops
    }

    /// Handles one request; its access-log line and metrics are written when the
    /// response body ends (see [`crate::access`]).
    pub async fn handle(
        &self,
        mut req: Request<RequestBody>,
        peer: SocketAddr,
        tls: bool,
        listener: Listener,
    ) -> Response<Body> {
        let config = self.config.load_full();
        // Room for what the gateway adds (`X-Request-Id`, `X-Forwarded-*`, its identity
        // headers, `Host`): the map grows once here, not at each insert.
        req.headers_mut().reserve(8);
        let trusted = &config.server.trusted_proxies;
        let client = proxy::headers::client_ip(req.headers(), peer.ip(), trusted);
        let id = proxy::headers::request_id(req.headers_mut(), trusted.iter().any(|n| n.contains(&peer.ip())));
        let mut log = RequestLog::new(req.method(), peer, client, id, self.ops.clone(), config.clone());
        let span = log.span();
        // Kept for the error format (OGC exception, problem JSON); a cheap clone of shared bytes.
        let uri = req.uri().clone();
        // Boxed: the pipeline's state machine holds every stage's future (token API,
        // archives, classification, forwarding, filtering) and is several KB; moved by
        // value into `Instrumented` and into hyper's dispatcher it cost ~20k instructions
        // of memcpy per request, against one allocation (bench/profile, decision 89).
        let pipeline = Box::pin(self.pipeline(&config, req, peer, tls, listener, &mut log));
        let result = pipeline.instrument(span.clone()).await;
        let response = log.respond(result, &span, &uri);
        access::finish(response, log)
    }

    /// The stages in order. Returning early is the only way to skip a stage.
    async fn pipeline(
        &self,
        config: &Config,
        req: Request<RequestBody>,
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
        if let Route::Console { asset } = route {
            return crate::console::serve(config, asset, req.method(), req.headers());
        }
        if let Some(res) = self.operations(&route, req.method()).await? {
            return Ok(res);
        }
        self.ops.admit_client(config, ops::route_path_id(&route), log.client)?;
        let token = token::extract(req.headers(), req.uri().query(), config.tokens.allow_query_token)?
            .ok_or(Denial::MissingToken)?;
        let grant = self.lookup(&token.secret).await?;
        log.token_id = Some(grant.token_id);
        let now = now_unix();
        // The token itself (expiry, allowed origins) before anything else, the token
        // API included; usage counts every request of a live token (crate::usage).
        let admitted = policy::admit(&grant, req.headers(), now);
        if !matches!(admitted, Err(Denial::Expired)) {
            self.usage.record(grant.token_id, log.client, now);
        }
        admitted?;
        self.ops.admit_token(config, ops::route_path_id(&route), grant.token_id)?;
        if let Route::TokenApi { id } = route {
            // The token API's and archives' futures are boxed: each is larger than
            // the whole forwarding path, and every request's future would carry it.
            return Box::pin(self.token_api(config, req, grant, peer, id, log)).await;
        }
        if let Route::AccountPaths = route {
            log.operation = "tokens.paths";
            return admin::api::paths(config, req.method(), &grant, now_unix()).map(no_store);
        }
        // A PMTiles archive answers in place of an upstream (src/pmtiles).
        if let Some((path, ask)) = crate::pmtiles::serve::ask(config, &route) {
            return Box::pin(self.archive(config, path, ask, req, &grant, &token, log)).await;
        }
        let (parts, body) = req.into_parts();
        let (target, body) = classify(config, &route, &parts, body, &grant).await?;
        if proxy::headers::carries_token(&target.uri, &parts, &body, token.secret.expose()) {
            return Err(Reject::TokenCopied);
        }
        log.path_id = Some(target.path.id.clone());
        log.operation = target.op.name;
        tracing::Span::current().record("path.id", target.path.id.as_str());
        let permitted = policy::decide(&grant, target, now_unix())?;
        if let Some(kind) = &permitted.target().response {
            proxy::filter::precheck(kind, permitted.target().answer_crs, permitted.permit().obligations())?;
        }
        // Allowed from here: a client that goes away while the upstream works is logged so.
        log.verdict = crate::ops::Outcome::Allowed;
        let started = Instant::now();
        let ctx = ForwardContext { peer, tls, config, token: token.secret.expose() };
        let response = self.forward(parts, body, &permitted, &ctx).await;
        log.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        let mut res = self.filter(response?, &permitted, &token).await?;
        proxy::headers::cache_for_token(res.headers_mut(), permitted.permit().obligations().shape_the_answer());
        Ok(res)
    }

    /// A PMTiles path: classify against the archive's header, decide, then the tile
    /// goes through the same filter stage as an upstream's; TileJSON and range reads
    /// are answered by `pmtiles::serve`.
    #[allow(clippy::too_many_arguments)]
    async fn archive(
        &self,
        config: &Config,
        path: &Arc<PathConfig>,
        ask: Result<crate::pmtiles::serve::Ask, Reject>,
        req: Request<RequestBody>,
        grant: &Grant,
        token: &Extracted,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, Reject> {
        use crate::pmtiles::serve::{self as archive, Answer};
        let (parts, _body) = req.into_parts();
        let io = crate::pmtiles::Io { upstream: &self.upstream, config, path_id: &path.id };
        let (target, ask) = archive::classify(&self.archives, &io, path, ask, &parts.method, grant).await?;
        log.path_id = Some(target.path.id.clone());
        log.operation = target.op.name;
        tracing::Span::current().record("path.id", target.path.id.as_str());
        let permitted = policy::decide(grant, target, now_unix())?;
        if let Some(kind) = &permitted.target().response {
            proxy::filter::precheck(kind, permitted.target().answer_crs, permitted.permit().obligations())?;
        }
        log.verdict = crate::ops::Outcome::Allowed;
        let started = Instant::now();
        let token_query = token.from_query.then(|| token.secret.expose());
        let answer = archive::answer(&self.archives, &io, &permitted, ask, &parts, token_query).await;
        log.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        let mut res = match answer? {
            Answer::Filter(res) => self.filter(res, &permitted, token).await?,
            Answer::Done(res) => res,
        };
        proxy::headers::cache_for_token(res.headers_mut(), permitted.permit().obligations().shape_the_answer());
        Ok(res)
    }

    /// The token API, with its metrics.
    async fn token_api(
        &self,
        config: &Config,
        req: Request<RequestBody>,
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
        let mut result = admin::api::handle(&self.cache, config, req, grant, peer, id).await;
        if let Ok(res) = &mut result {
            // A new token's secret, or what the caller's token may see: never stored.
            res.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
            res.headers_mut().append(http::header::VARY, http::HeaderValue::from_static("authorization"));
        }
        let status = result.as_ref().map_or_else(|r| r.status(), |res| res.status());
        self.ops.metrics.token_api(action, status.as_u16());
        if let Err(Reject::Internal(_) | Reject::StoreUnavailable(_)) = &result {
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
                Err(Reject::store("token lookup failed", e))
            }
        }
    }

    /// The forward stage (body limits, upstream clients and timeouts live in `proxy`).
    async fn forward(
        &self,
        parts: http::request::Parts,
        body: Outgoing,
        permitted: &Permitted<Target>,
        ctx: &ForwardContext<'_>,
    ) -> Result<Response<UpstreamBody>, Reject> {
        let target = permitted.target();
        let ask = proxy::Ask {
            // An image is read only when it must be clipped; otherwise it is relayed.
            identity: target.response.as_ref().is_some_and(|k| match k {
                ResponseKind::Other => false,
                ResponseKind::Image => permitted.permit().obligations().clip.is_some(),
                _ => true,
            }),
            accept: match (target.protocol, &target.response) {
                // martin: MVT for a token the gateway filters, JSON for documents.
                (Some(Protocol::Martin), Some(kind)) => {
                    ogc::martin::pinned_accept(kind, permitted.permit().obligations())
                }
                // Any other vector tile the gateway reads (a fence, a property fence,
                // the path's layer list) is asked for as MVT: the client's `Accept` may
                // negotiate MLT, which the gateway cannot read (a 502 for every such
                // token; attacker round 9).
                (_, Some(ResponseKind::Mvt))
                    if permitted.permit().obligations().shape_the_answer() || !target.path.layers.is_empty() =>
                {
                    Some(ogc::martin::MVT_ACCEPT)
                }
                _ => target.pinned_accept(),
            },
            own_urls: matches!(target.response, Some(ResponseKind::Capabilities(_))) || target.rewrites_links(),
            readable_codings: target.response.is_some(),
        };
        // A fenced token's OGC API items and WFS KVP features are asked for within the
        // fence's extent only (#12).
        let fence = permitted.permit().obligations().fence.as_deref();
        let uri = match fence {
            Some(fence) if target.op.name == "api.items" => {
                crate::ogc::api::narrow_items_to_fence(&target.uri, fence).unwrap_or_else(|| target.uri.clone())
            }
            Some(fence) if matches!(target.op.name, "wfs.GetFeature" | "wfs.GetPropertyValue") => {
                crate::ogc::wfs::narrow_to_fence(&target.uri, fence, target.path.server)
                    .unwrap_or_else(|| target.uri.clone())
            }
            _ => target.uri.clone(),
        };
        proxy::forward(&self.upstream, &target.path, parts, body, uri, permitted.permit(), ctx, ask).await
    }

    /// The filter stage: the permit's obligations applied to the answer.
    async fn filter(
        &self,
        response: Response<UpstreamBody>,
        permitted: &Permitted<Target>,
        token: &Extracted,
    ) -> Result<Response<Body>, Reject> {
        let target = permitted.target();
        let Some(kind) = &target.response else { return Ok(proxy::relay(response)) };
        let ctx = proxy::filter::FilterContext {
            kind,
            obligations: permitted.permit().obligations(),
            upstream: &target.upstream_base,
            public: &target.public,
            token_query: token.from_query.then(|| token.secret.expose()),
            // martin paths name sources in `layers`, not the vector layers inside their tiles.
            layers: if target.protocol == Some(Protocol::Martin) && *kind == ResponseKind::Mvt {
                &[]
            } else {
                &target.path.layers
            },
            quad_matrix_sets: &target.path.webmercator_matrix_sets,
            rewrite_links: target.rewrites_links(),
            answer_crs: target.answer_crs,
            server: target.path.server,
            max_image_size: target.path.max_image_size,
            clips_partial: target.path.partial == crate::paths::Partial::Clip,
            rest_template: (target.protocol == Some(Protocol::Wmts)).then(|| {
                target.path.wmts_rest_template.as_deref().unwrap_or(crate::ogc::wmts::DEFAULT_WMTS_REST_TEMPLATE)
            }),
        };
        let mut res = proxy::filter::apply(response, &ctx).await?;
        if target.protocol == Some(Protocol::Martin) && *kind == ResponseKind::Mvt {
            // martin answers MVT or MLT by `Accept` (and the gateway pins it for fenced tokens).
            res.headers_mut().append(http::header::VARY, http::HeaderValue::from_static("accept"));
        }
        Ok(res)
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
    let api_route =
        matches!(route, Route::TokenApi { .. } | Route::OpenApi | Route::AccountPaths | Route::Console { .. });
    let health = matches!(route, Route::Healthz | Route::Readyz);
    match (listener, config.api.listen.is_some()) {
        (Listener::Main, true) if api_route => Route::Unknown,
        (Listener::Api, _) if !api_route && !health => Route::Unknown,
        _ => route,
    }
}

/// The paths answer (what the caller's token may see): never stored.
fn no_store(mut res: Response<Body>) -> Response<Body> {
    res.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    res.headers_mut().append(http::header::VARY, http::HeaderValue::from_static("authorization"));
    res
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
    body: RequestBody,
    grant: &Grant,
) -> Result<(Target, Outgoing), Reject> {
    let path_id = match *route {
        Route::Xyz { path_id, .. } | Route::Path { path_id, .. } | Route::Ogc { path_id, .. } => path_id,
        Route::TokenApi { .. }
        | Route::AccountPaths
        | Route::Console { .. }
        | Route::OpenApi
        | Route::Healthz
        | Route::Readyz
        | Route::Unknown => return Err(Reject::NotFound),
    };
    let path = config.paths.get(path_id).cloned().ok_or(Denial::PathNotFound)?;
    if grant.access_for(&path).is_none() {
        return Err(Denial::PathNotFound.into());
    }
    let plain = |path: Arc<PathConfig>, op: Operation, uri: Uri, body: Outgoing| {
        let target = Target {
            path,
            op,
            uri,
            protocol: None,
            response: None,
            answer_crs: AnswerCrs::LonLat,
            upstream_base: String::new(),
            public: String::new(),
        };
        (target, body)
    };
    match *route {
        Route::Xyz { tile, .. } => {
            // A protocol the path does not configure looks exactly like a missing path.
            let template = path.upstream.xyz.as_ref().ok_or(Denial::PathNotFound)?;
            if parts.method != Method::GET && parts.method != Method::HEAD {
                return Err(Reject::MethodNotAllowed("GET or HEAD"));
            }
            let uri = fill_template(template, tile)?;
            let mut op = Operation::simple("xyz.tile", Surface::Ogc, Tier::View, Extent::Tile(tile));
            // A tile straddling the fence is served clipped (filter stage, `Image`).
            op.clippable = policy::Clippable::Image { background: None };
            let (mut target, body) = plain(path, op, uri, Outgoing::Empty);
            target.protocol = Some(Protocol::Xyz);
            target.response = Some(ResponseKind::Image);
            Ok((target, body))
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
    body: RequestBody,
) -> Result<(Target, Outgoing), Reject> {
    let up = &path.upstream;
    let base = ogc::service(protocol).endpoint(up, rest).ok_or(Denial::PathNotFound)?;
    let header = |name: http::header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = header(http::header::CONTENT_TYPE);
    let judged = if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        // The path's `max_body_bytes`, and never more than the gateway reads to judge.
        let limit =
            usize::try_from(config.max_body_bytes(path.id.as_str())).unwrap_or(usize::MAX).min(MAX_OGC_BODY_BYTES);
        Some(proxy::read_body(body, &parts.headers, limit).await?)
    } else {
        None
    };
    let query = parts.uri.query().map(token::strip_token_param);
    let query = query.as_deref().unwrap_or("");
    let accept = header(http::header::ACCEPT);
    let classified = match judged.as_ref() {
        // Reading a large body (XML walked twice, JSON parsed whole) is CPU work that
        // would hold the reactor (attacker round 11c: 1 s for an 8 MiB WFS body of
        // attributes): on the blocking pool.
        Some(bytes) if bytes.len() > BLOCKING_BODY_BYTES => {
            let (bytes, path, method) = (bytes.clone(), path.clone(), parts.method.clone());
            let (rest, query) = (rest.to_owned(), query.to_owned());
            let (content_type, accept) = (content_type.map(str::to_owned), accept.map(str::to_owned));
            tokio::task::spawn_blocking(move || {
                let request = OgcRequest {
                    protocol,
                    method: &method,
                    rest: &rest,
                    query: &query,
                    content_type: content_type.as_deref(),
                    accept: accept.as_deref(),
                    body: Some(&bytes),
                };
                ogc::classify(&request, &path)
            })
            .await
            .map_err(|e| Reject::internal("a request's body could not be judged", e))??
        }
        _ => {
            let request = OgcRequest {
                protocol,
                method: &parts.method,
                rest,
                query,
                content_type,
                accept,
                body: judged.as_deref(),
            };
            ogc::classify(&request, &path)?
        }
    };
    let op = classified.op;
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
        (ForwardBody::Xml { body, content_type }, _) => {
            Outgoing::Judged(Bytes::from(body), Some(http::HeaderValue::from_static(content_type)))
        }
        (ForwardBody::Form(form), _) => Outgoing::Judged(
            Bytes::from(form),
            Some(http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8")),
        ),
    };
    let public = format!("{}/ogc/{}/{}", config.server.public_url, protocol.as_str(), path.id);
    let (response, answer_crs) = (Some(classified.response), classified.answer_crs);
    Ok((Target { path, op, uri, protocol: Some(protocol), response, answer_crs, upstream_base: base, public }, body))
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
        .ok_or_else(|| Reject::internal_bug(format!("tile template `{}` gives an invalid URL", template.0)))
}
