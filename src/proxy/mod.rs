//! The forward stage: send a permitted request upstream and bring the answer back.
//!
//! Forwarding needs a [`Permit`], so nothing reaches an upstream undecided. The
//! request and response bodies stream in both directions; nothing is buffered
//! whole. Header hygiene lives in [`headers`].

pub mod filter;
pub mod headers;
pub mod pool;
pub mod sniff;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::{Request, Response, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
// The client's request body, read under the server's body timeout.
use crate::server::body::RequestBody;
use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::config::{tls, Config, Runtime, UpstreamTls};
use crate::paths::PathConfig;
use crate::policy::Permit;
use crate::respond::{Body, BoxError, Reject, UpstreamError};
use pool::Pool;
pub use pool::UpstreamBody;

/// The pooled HTTP(S) connections to upstreams (keep-alive, [`pool`]): one pool for
/// upstreams checked against the public and system roots, and one per path that
/// sets `[path.upstream.tls]`. Rebuilt on reload.
///
/// With `server.runtime = "per-core"` each worker thread has its own set of pools (a
/// lane): an upstream connection is driven by the runtime that opened it, so one
/// worker's request never waits on another worker's thread, and no connection is
/// handed between threads. The lane is the calling thread's ([`use_lane`]); threads
/// that never chose one (the multi-thread runtime's) share lane 0.
pub struct Upstream {
    // INVARIANT: never empty (`Upstream::new` makes at least one lane).
    lanes: Vec<ArcSwap<Pools>>,
}

struct Pools {
    connect_timeout: Duration,
    default: Arc<Pool>,
    by_path: HashMap<String, Arc<Pool>>,
}

impl Pools {
    fn new(config: &Config) -> Pools {
        Pools {
            connect_timeout: config.upstream.connect_timeout,
            default: pool(config.upstream.connect_timeout, None),
            by_path: path_pools(config),
        }
    }
}

thread_local! {
    /// The lane of [`Upstream`] this thread's requests use.
    static LANE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes the calling thread (a per-core worker) use lane `index` of every [`Upstream`].
pub fn use_lane(index: usize) {
    LANE.with(|l| l.set(index));
}

impl Upstream {
    /// One lane per worker under `server.runtime = "per-core"`, one otherwise.
    pub fn new(config: &Config) -> Self {
        let lanes = match config.server.runtime {
            Runtime::PerCore => config.server.worker_count().max(1),
            Runtime::MultiThread => 1,
        };
        Upstream { lanes: (0..lanes).map(|_| ArcSwap::from_pointee(Pools::new(config))).collect() }
    }

    /// The calling thread's lane.
    fn lane(&self) -> &ArcSwap<Pools> {
        let index = LANE.with(std::cell::Cell::get);
        // INVARIANT: `lanes` is never empty, so index 0 always exists.
        self.lanes.get(index).unwrap_or(&self.lanes[0])
    }

    /// Takes a reloaded config's upstream settings, in every lane. The shared pool (and
    /// its idle connections) is kept unless the connect timeout changed; requests in
    /// flight keep the pool they started with.
    pub fn configure(&self, config: &Config) {
        for lane in &self.lanes {
            let old = lane.load();
            let default = if old.connect_timeout == config.upstream.connect_timeout {
                old.default.clone()
            } else {
                pool(config.upstream.connect_timeout, None)
            };
            lane.store(Arc::new(Pools {
                connect_timeout: config.upstream.connect_timeout,
                default,
                by_path: path_pools(config),
            }));
        }
    }

    /// Sends `req` (whose headers are already sanitized) to `target`, waiting at most
    /// `response_timeout` for the response head (a free connection included). The
    /// body then streams. `path_id` picks the pool when the path has its own TLS
    /// settings.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        response_timeout: Duration,
        path_id: &str,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        *req.version_mut() = Version::HTTP_11;
        let pool = {
            let pools = self.lane().load();
            // Most configs set no per-path TLS: no hashing of the path id then.
            let own = if pools.by_path.is_empty() { None } else { pools.by_path.get(path_id) };
            own.unwrap_or(&pools.default).clone()
        };
        match tokio::time::timeout(response_timeout, pool.send(req)).await {
            Err(_) => Err(UpstreamError::Timeout(response_timeout)),
            Ok(result) => result,
        }
    }

    /// Closes idle upstream connections past their idle timeout, in every lane (the
    /// server's sweep; dropping an idle connection from another thread only closes it).
    pub fn reap(&self) {
        for lane in &self.lanes {
            let pools = lane.load();
            pools.default.reap();
            for p in pools.by_path.values() {
                p.reap();
            }
        }
    }

    /// Open connections per upstream authority in the shared pools, summed over the
    /// lanes (tests, diagnostics).
    pub fn open_connections(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for lane in &self.lanes {
            for (authority, n) in lane.load().default.open_connections() {
                match out.iter_mut().find(|(a, _)| *a == authority) {
                    Some((_, total)) => *total += n,
                    None => out.push((authority, n)),
                }
            }
        }
        out
    }
}

fn path_pools(config: &Config) -> HashMap<String, Arc<Pool>> {
    config.upstream_tls.iter().map(|(id, t)| (id.clone(), pool(config.upstream.connect_timeout, Some(t)))).collect()
}

/// A pool for `http://` and `https://` upstreams (HTTP/1.1).
fn pool(connect_timeout: Duration, settings: Option<&UpstreamTls>) -> Arc<Pool> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let tls_config = match settings {
        Some(t) => (*t.client).clone(),
        // INVARIANT: the ring provider supports the default protocol versions,
        // so building the default client configuration cannot fail.
        None => tls::default_client().expect("the ring provider supports TLS 1.2 and 1.3"),
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config).https_or_http();
    let builder = match settings.and_then(|t| t.server_name.clone()) {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let connector = builder.enable_http1().wrap_connector(connector);
    Arc::new(Pool::new(connector, pool::Limits::default()))
}

/// Per-request facts the forwarded headers are built from.
pub struct ForwardContext<'a> {
    pub peer: SocketAddr,
    pub tls: bool,
    pub config: &'a Config,
    /// The request's token: no header that carries a copy of it (a `Referer` with
    /// `?token=`, a `Cookie`) is forwarded.
    pub token: &'a str,
}

/// The request body to forward.
pub enum Outgoing {
    /// The client's body, streamed as it arrives.
    Stream(RequestBody),
    /// A body the gateway read and judged (OGC POST), with its content type.
    Judged(Bytes, Option<http::HeaderValue>),
    /// No body.
    Empty,
}

/// Reads a client body up to `limit` bytes: a declared length over it, or a body
/// that turns out longer, is a 413.
///
/// Before a 413 the rest of the body is read and dropped, up to [`LINGER_BYTES`] more:
/// a connection closed with the client's bytes unread is reset by the kernel, and the
/// reset can reach the client before the 413 does (it saw a broken connection, not the
/// answer). A larger body is refused without reading; the read timeouts still bound it.
pub async fn read_body(mut body: RequestBody, headers: &http::HeaderMap, limit: usize) -> Result<Bytes, Reject> {
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        if declared.is_some_and(|len| len <= limit.saturating_add(LINGER_BYTES)) {
            discard(&mut body, limit.saturating_add(LINGER_BYTES)).await;
        }
        return Err(Reject::PayloadTooLarge(limit));
    }
    let mut collected = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(collected.freeze()),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if collected.len() + data.len() > limit {
                    discard(&mut body, LINGER_BYTES).await;
                    return Err(Reject::PayloadTooLarge(limit));
                }
                collected.extend_from_slice(&data);
            }
            Some(Err(e)) => {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                return Err(crate::server::body::too_slow(&*e)
                    .unwrap_or_else(|| Reject::BadRequest(format!("the request body could not be read: {e}"))));
            }
        }
    }
}

/// How much of an oversized body is read and dropped before its 413 (see [`read_body`]).
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// Reads and drops up to `max` bytes of `body`, stopping at its end or its first error.
async fn discard(body: &mut RequestBody, max: usize) {
    let mut seen = 0usize;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// What the gateway asks of the upstream for one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask {
    /// A whole, uncompressed answer: the filters read it (no `Accept-Encoding`, no
    /// `Range`/`If-Range`: a slice of a document cannot be filtered; no conditionals:
    /// a 304 would answer for the unfiltered bytes).
    pub identity: bool,
    /// The `Accept` to send instead of the client's: the format that was judged
    /// (OGC API negotiates by `Accept`; `application/ld+json` would bypass the filters).
    pub accept: Option<&'static str>,
    /// URLs in the upstream's own terms: the gateway rewrites this answer's URLs from
    /// `server.public_url`, so `X-Forwarded-Host`/`-Proto` are not sent (an upstream
    /// honouring them would mix the gateway's host with its own paths).
    pub own_urls: bool,
    /// The answer is checked by its first bytes (`sniff`): only content codings the
    /// gateway can inflate (gzip, deflate) are asked for (attacker round 6: a brotli
    /// answer was relayed unread).
    pub readable_codings: bool,
}

/// The forward stage: checks the body against the path's size limit, builds the
/// upstream request and sends it with the path's client.
///
/// A body whose declared length is over `max_body_bytes` is refused (413) before
/// anything reaches the upstream; one that turns out longer while streaming is
/// cut there, the upstream exchange is aborted, and the client gets 413 too.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    upstream: &Upstream,
    path: &PathConfig,
    parts: http::request::Parts,
    body: Outgoing,
    target: Uri,
    permit: &Permit,
    ctx: &ForwardContext<'_>,
    ask: Ask,
) -> Result<Response<UpstreamBody>, Reject> {
    let limit = ctx.config.max_body_bytes(&path.id);
    let too_large = || Reject::PayloadTooLarge(usize::try_from(limit).unwrap_or(usize::MAX));
    // Set when a streamed body is cut at the limit (no flag without a streamed body).
    let mut cut: Option<Arc<AtomicBool>> = None;
    // Set when a streamed body turns out to carry a copy of the token.
    let mut copied: Option<Arc<AtomicBool>> = None;
    let mut upstream_req = match body {
        Outgoing::Stream(body) => {
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .max(body.size_hint().lower());
            if declared > limit {
                return Err(too_large());
            }
            if parts
                .headers
                .get_all(http::header::CONTENT_ENCODING)
                .iter()
                .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
            {
                // A compressed body cannot be scanned for copies of the token, and the
                // upstream (a servlet filter, a WSGI middleware) may well inflate it.
                return Err(Reject::UnsupportedMediaType(
                    "a request body streamed to the upstream must not be compressed (`Content-Encoding`); send it uncompressed".into(),
                ));
            }
            let flag = cut.insert(Arc::new(AtomicBool::new(false))).clone();
            let copied_flag = copied.insert(Arc::new(AtomicBool::new(false))).clone();
            let scan = TokenScan::new(ctx.token, copied_flag);
            let body = LimitedBody { inner: body, remaining: limit, cut: flag, scan }.boxed();
            assemble(parts, body, target, permit, ctx)
        }
        Outgoing::Judged(bytes, content_type) => {
            if bytes.len() as u64 > limit {
                return Err(too_large());
            }
            let len = bytes.len();
            let mut req = assemble(parts, crate::respond::full(bytes), target, permit, ctx);
            // The judged bytes replace the client's body: describe them, not it.
            let h = req.headers_mut();
            h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
            h.remove(http::header::TRANSFER_ENCODING);
            match content_type {
                Some(ct) => h.insert(http::header::CONTENT_TYPE, ct),
                None => h.remove(http::header::CONTENT_TYPE),
            };
            req
        }
        Outgoing::Empty => {
            // `Empty` is zero-sized: boxing it allocates nothing.
            let empty = http_body_util::Empty::new().map_err(|never| match never {}).boxed();
            let mut req = assemble(parts, empty, target, permit, ctx);
            let h = req.headers_mut();
            h.remove(http::header::CONTENT_LENGTH);
            h.remove(http::header::TRANSFER_ENCODING);
            h.remove(http::header::CONTENT_TYPE);
            req
        }
    };
    if ask.identity && upstream_req.method() == http::Method::HEAD {
        // An answer the gateway filters is read whole, and a HEAD must carry the length
        // of what a GET would get (GDAL's /vsicurl sizes a tile by HEAD first; the
        // upstream's empty HEAD body filtered was `Content-Length: 0`): the upstream is
        // asked with GET, and hyper sends the client no body for its HEAD.
        *upstream_req.method_mut() = http::Method::GET;
    }
    let h = upstream_req.headers_mut();
    if !ask.identity && ask.readable_codings {
        readable_codings_only(h);
    }
    if ask.identity {
        h.insert(http::header::ACCEPT_ENCODING, http::HeaderValue::from_static("identity"));
        h.remove(http::header::RANGE);
        h.remove(http::header::IF_RANGE);
        // A 304 would confirm a guess of the unfiltered answer (its upstream `ETag`
        // names the unfiltered bytes; attacker round 4), and the gateway's filtered
        // answers carry no validator a client could send back: no conditionals.
        for name in [
            http::header::IF_NONE_MATCH,
            http::header::IF_MODIFIED_SINCE,
            http::header::IF_MATCH,
            http::header::IF_UNMODIFIED_SINCE,
        ] {
            h.remove(name);
        }
    }
    if let Some(accept) = ask.accept {
        h.insert(http::header::ACCEPT, http::HeaderValue::from_static(accept));
    }
    if ask.own_urls {
        h.remove("x-forwarded-host");
        h.remove("x-forwarded-proto");
    }
    match upstream.send(upstream_req, ctx.config.upstream.response_timeout, &path.id).await {
        Err(_) if copied.is_some_and(|c| c.load(Ordering::Acquire)) => Err(Reject::TokenCopied),
        Err(_) if cut.is_some_and(|c| c.load(Ordering::Acquire)) => Err(too_large()),
        Err(e) => Err(crate::server::body::too_slow(&e).unwrap_or_else(|| e.into())),
        Ok(res) => Ok(res),
    }
}

fn assemble(
    mut parts: http::request::Parts,
    body: Body,
    target: Uri,
    permit: &Permit,
    ctx: &ForwardContext<'_>,
) -> Request<Body> {
    // The Host the client asked for (HTTP/2: the authority), before sanitizing drops it.
    let host = parts
        .headers
        .get(http::header::HOST)
        .cloned()
        .or_else(|| parts.uri.authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()));
    headers::sanitize_request(&mut parts.headers);
    headers::drop_token_copies(&mut parts.headers, ctx.token);
    headers::set_forwarded(&mut parts.headers, ctx, host);
    headers::set_identity(&mut parts.headers, permit);
    parts.uri = target;
    Request::from_parts(parts, body)
}

/// The request body was longer than the path's `max_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("the request body is over the size limit")]
pub struct BodyTooLarge;

/// The streamed body carried a copy of the request's token.
#[derive(Debug, thiserror::Error)]
#[error("the request body carries a copy of its access token")]
pub struct TokenInBody;

/// A request body that counts its bytes and ends with an error past the limit, or
/// when it carries a copy of the token ([`TokenScan`]).
struct LimitedBody {
    inner: RequestBody,
    remaining: u64,
    cut: Arc<AtomicBool>,
    scan: Option<TokenScan>,
}

/// Looks for copies of the token in a streamed body (`/path/…` writes), frame by
/// frame, before each frame is forwarded: a copy found ends the body with an error,
/// so hyper aborts the upstream exchange and the upstream never receives the frame
/// that completes the copy, nor the end of the body (a short `Content-Length` body
/// or a chunked body without its last chunk, on a connection that is closed).
///
/// Each frame is searched whole ([`headers::holds_copy`]: escapes, XML markup,
/// NFKC), and so is the seam with the frame before it: the last [`TokenScan::window`]
/// bytes before it joined with its first as many. A copy spelled in more than that
/// many bytes (a comment of kilobytes between two halves) across a frame boundary is
/// not found; nothing is buffered beyond the window, so large bodies still stream.
struct TokenScan {
    token: Box<str>,
    tail: Vec<u8>,
    window: usize,
    copied: Arc<AtomicBool>,
}

impl TokenScan {
    fn new(token: &str, copied: Arc<AtomicBool>) -> Option<TokenScan> {
        // The longest spelling of one character after two rounds of escaping (a
        // fullwidth letter percent-encoded twice: 15 bytes), with room for markup.
        let window = token.len() * 24 + 256;
        (!token.is_empty()).then(|| TokenScan { token: token.into(), tail: Vec::new(), window, copied })
    }

    /// A copy in `bytes`: as UTF-8 and its escapes, or in UTF-16 or UTF-32, whose ASCII
    /// is the same bytes with NULs between (attacker round 4: a `charset=utf-16le`
    /// JSON body carried the token to the upstream). Text without a NUL byte is not
    /// copied again.
    fn holds(&self, bytes: &[u8]) -> bool {
        if headers::holds_copy(bytes, &self.token) {
            return true;
        }
        if !bytes.contains(&0) {
            return false;
        }
        let narrow: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
        headers::holds_copy(&narrow, &self.token)
    }

    /// True when `data`, or the seam between the bytes before it and it, holds a copy.
    fn finds(&mut self, data: &[u8]) -> bool {
        if self.holds(data) {
            return true;
        }
        if !self.tail.is_empty() {
            let head = &data[..data.len().min(self.window)];
            let mut seam = Vec::with_capacity(self.tail.len() + head.len());
            seam.extend_from_slice(&self.tail);
            seam.extend_from_slice(head);
            if self.holds(&seam) {
                return true;
            }
        }
        if data.len() >= self.window {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - self.window..]);
        } else {
            self.tail.extend_from_slice(data);
            let over = self.tail.len().saturating_sub(self.window);
            self.tail.drain(..over);
        }
        false
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if frame.is_trailers() {
            // Request trailers are a header section no hygiene ran on (a token, an
            // identity header): never forwarded. They come last, so the body ends here.
            return Poll::Ready(None);
        }
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.remaining {
                self.cut.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
            }
            self.remaining -= len;
            let this = &mut *self;
            if let Some(scan) = &mut this.scan {
                if scan.finds(data) {
                    scan.copied.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(Box::new(TokenInBody))));
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Cleans the upstream response's headers and boxes its body for the client. An
/// upstream 5xx keeps its status but not its body (stack traces, internal addresses,
/// exception documents naming the upstream): the gateway answers with its own. An
/// upstream 401/407 is the gateway's own credentials failing upstream, not the
/// client's: a 502, never the upstream's challenge.
pub fn relay(res: Response<UpstreamBody>) -> Response<Body> {
    if res.status().is_server_error() || asks_for_credentials(res.status()) {
        return replaced(&res);
    }
    let (mut parts, body) = res.into_parts();
    headers::sanitize_response(&mut parts.headers);
    Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
}

/// Keeps only the codings of the client's `Accept-Encoding` that [`sniff`] can read
/// (`gzip`, `x-gzip`, `deflate`, `identity`); none left: the header goes.
fn readable_codings_only(h: &mut http::HeaderMap) {
    // No `Accept-Encoding` lets the upstream choose any coding (RFC 9110): the client
    // asked for none, so none is asked for (attacker round 7: brotli answers).
    let Some(value) = h.get(http::header::ACCEPT_ENCODING) else {
        h.insert(http::header::ACCEPT_ENCODING, http::HeaderValue::from_static("identity"));
        return;
    };
    let readable = |c: &str| {
        let name = c.split(';').next().unwrap_or("").trim();
        ["gzip", "x-gzip", "deflate", "identity"].iter().any(|r| name.eq_ignore_ascii_case(r))
    };
    let text = value.to_str().unwrap_or("");
    if text.split(',').all(readable) {
        return;
    }
    let kept: Vec<&str> = text.split(',').filter(|c| readable(c)).map(str::trim).collect();
    match http::HeaderValue::from_str(&kept.join(", ")) {
        Ok(v) if !kept.is_empty() => {
            h.insert(http::header::ACCEPT_ENCODING, v);
        }
        _ => {
            h.remove(http::header::ACCEPT_ENCODING);
        }
    }
}

/// The gateway's own answer in place of an upstream answer whose body is not passed
/// on (`upstream_error`): the upstream's status, and its `Retry-After`.
pub(crate) fn replaced(res: &Response<UpstreamBody>) -> Response<Body> {
    let status = if asks_for_credentials(res.status()) { http::StatusCode::BAD_GATEWAY } else { res.status() };
    replaced_as(res, status)
}

/// [`replaced`] with the status the gateway answers (502 for an upstream error
/// written as a 200).
pub(crate) fn replaced_as<B>(res: &Response<B>, status: http::StatusCode) -> Response<Body> {
    let mut own = Reject::UpstreamStatus(status).into_response();
    if let Some(v) = res.headers().get(http::header::RETRY_AFTER) {
        own.headers_mut().insert(http::header::RETRY_AFTER, v.clone());
    }
    own
}

/// 401 and 407 from an upstream: it wants credentials the gateway does not have (the
/// client's never reach it). Relayed, its challenge would make clients send their
/// password for the upstream's realm, and a 401 must carry a challenge.
fn asks_for_credentials(status: http::StatusCode) -> bool {
    matches!(status, http::StatusCode::UNAUTHORIZED | http::StatusCode::PROXY_AUTHENTICATION_REQUIRED)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attacker round 6: a brotli answer to a WCS or WFS request skipped the first-bytes
    /// check; the gateway now asks only for codings it can read.
    #[test]
    fn only_readable_codings_are_asked_for() {
        let ask = |client: Option<&'static str>| {
            let mut h = http::HeaderMap::new();
            if let Some(v) = client {
                h.insert(http::header::ACCEPT_ENCODING, http::HeaderValue::from_static(v));
            }
            readable_codings_only(&mut h);
            h.get(http::header::ACCEPT_ENCODING).map(|v| v.to_str().unwrap_or("").to_owned())
        };
        assert_eq!(ask(Some("gzip, deflate, br, zstd")).as_deref(), Some("gzip, deflate"));
        assert_eq!(ask(Some("br;q=1.0, GZIP;q=0.5")).as_deref(), Some("GZIP;q=0.5"));
        assert_eq!(ask(Some("br")), None);
        assert_eq!(ask(Some("gzip")).as_deref(), Some("gzip"));
        assert_eq!(ask(None).as_deref(), Some("identity"), "none asked: none may come");
    }

    const T: &str = "tg_0123456789abcdefghijABCDEFGHIJ0123456789abcdefXYZ";

    /// Attacker round 4: the token in a UTF-16 (LE, BE) or UTF-32 body, split across
    /// two frames too.
    #[test]
    fn a_copy_in_utf16_or_utf32_is_found() {
        let wide = |t: &str, w: usize, be: bool| -> Vec<u8> {
            t.bytes()
                .flat_map(|b| {
                    let mut unit = vec![0u8; w];
                    unit[if be { w - 1 } else { 0 }] = b;
                    unit
                })
                .collect()
        };
        for (w, be) in [(2, false), (2, true), (4, false), (4, true)] {
            let body = [wide("{\"t\":\"", w, be), wide(T, w, be), wide("\"}", w, be)].concat();
            assert!(scan().finds(&body), "width {w}, big-endian {be}");
            let mut s = scan();
            let (a, b) = body.split_at(body.len() / 2);
            assert!(!s.finds(a) && s.finds(b), "split, width {w}");
        }
        assert!(!scan().finds(&wide("no token here", 2, false)));
    }

    fn scan() -> TokenScan {
        TokenScan::new(T, Arc::new(AtomicBool::new(false))).expect("a token")
    }

    /// #12: a token split across the frames of a streamed `/path/` write is found at
    /// every cut, in every spelling the whole-body check knows.
    #[test]
    fn a_token_split_across_frames_is_found_at_every_cut() {
        let percent: String = T.bytes().map(|b| format!("%{b:02X}")).collect();
        let json: String = T.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        let fullwidth: String =
            T.chars().map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).expect("fullwidth")).collect();
        let comment = format!("{}<!--x-->{}", &T[..20], &T[20..]);
        for spelling in [T.to_owned(), percent, json, fullwidth, comment] {
            let body = format!("{{\"a\":\"{}\",\"note\":\"{spelling}\",\"b\":1}}", "x".repeat(3000));
            let bytes = body.as_bytes();
            for cut in (0..bytes.len()).step_by(7) {
                let mut s = scan();
                let found = s.finds(&bytes[..cut]) || s.finds(&bytes[cut..]);
                assert!(found, "cut at {cut}: {spelling}");
            }
            // Three frames, the token's spelling cut twice.
            let start = body.find(&spelling).expect("there");
            let (a, b) = (start + spelling.len() / 3, start + 2 * spelling.len() / 3);
            let mut s = scan();
            assert!(s.finds(&bytes[..a]) || s.finds(&bytes[a..b]) || s.finds(&bytes[b..]), "{spelling}");
        }
    }

    #[test]
    fn a_body_without_the_token_passes_and_the_scan_holds_only_its_window() {
        let mut s = scan();
        let frame = vec![b'%'; 64 << 10];
        for _ in 0..8 {
            assert!(!s.finds(&frame));
            assert!(s.tail.len() <= s.window);
        }
        let binary: Vec<u8> = (0..=255u8).cycle().take(64 << 10).collect();
        assert!(!s.finds(&binary));
        assert!(!s.finds(&T.as_bytes()[..T.len() - 1]), "a part of the token is not the token");
    }
}
