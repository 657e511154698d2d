//! The logging phase: one access-log line and one metrics record per request,
//! written when the response body ends, with how it ended.
//!
//! ```text
//! handle ─► RequestLog::new ─► pipeline (fills the log) ─► RequestLog::respond
//!        ─► finish: X-Request-Id on the response, body wrapped in `Logged`
//!        ─► body ends (complete) / errors or is dropped early (cut)
//!        ─► RequestLog dropped: the line (`tilegate::access`) and the metrics, once
//! ```
//!
//! "Exactly once" is carried by `Drop`: the [`RequestLog`] writes when it goes
//! away, wherever that is: in [`finish`] for a response without a body, with the
//! [`Logged`] body otherwise, or inside `handle` when the client left before the
//! response head (then `outcome` is `cut` and `status` is 499, nginx's "client
//! closed request"). No task, no timer; the only allocation is the boxed body.
//!
//! Request ids are made here ([`new_request_id`]): a per-process random prefix and
//! an atomic counter, 32 hex digits, no syscall per request. Which client id is
//! kept is header hygiene and lives in [`crate::proxy::headers::request_id`].
//!
//! This module must never log a token: the path is redacted ([`redact_path`]), the
//! query is never logged, and the token appears only as its id.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::config::Config;
use crate::ops::{self, Ops, RequestLabels};
use crate::paths::PathId;
use crate::policy::TokenId;
use crate::respond::{Body, BoxError, Reject};

/// The header a request id travels in, both ways.
pub const REQUEST_ID: http::header::HeaderName = http::header::HeaderName::from_static("x-request-id");

/// How a response ended, as the access log and the metrics report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole body was handed to the connection.
    Complete,
    /// The body errored (upstream reset, a filter failure after the head) or was
    /// dropped before its end (the client went away); or the client left before
    /// the response head.
    Cut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Cut => "cut",
        }
    }
}

/// Per-request state for the one access-log line and the metrics. Never holds a
/// token. Writes both when dropped.
pub struct RequestLog {
    pub(crate) started: Instant,
    pub(crate) method: Method,
    pub(crate) peer: SocketAddr,
    /// The client address rate limits apply to (the peer, or the forwarded
    /// address behind a trusted proxy).
    pub(crate) client: IpAddr,
    pub(crate) request_id: HeaderValue,
    /// The normalized path, copied only when the access log is on.
    pub(crate) path: Option<String>,
    pub(crate) path_id: Option<PathId>,
    pub(crate) operation: &'static str,
    pub(crate) token_id: Option<TokenId>,
    /// What became of the request (allowed, denied and why, failed): the `decision`
    /// and `deny.reason` of the line and the metric labels.
    pub(crate) verdict: ops::Outcome,
    pub(crate) upstream_ms: Option<f64>,
    /// `None` until the response head exists.
    status: Option<StatusCode>,
    /// Body bytes handed to the connection.
    bytes: u64,
    /// `None` until the body ended one way or the other.
    outcome: Option<Outcome>,
    ops: Arc<Ops>,
    config: Arc<Config>,
}

impl RequestLog {
    pub fn new(
        method: &Method,
        peer: SocketAddr,
        client: IpAddr,
        request_id: HeaderValue,
        ops: Arc<Ops>,
        config: Arc<Config>,
    ) -> Self {
        RequestLog {
            started: Instant::now(),
            method: method.clone(),
            peer,
            client,
            request_id,
            path: None,
            path_id: None,
            operation: "-",
            token_id: None,
            verdict: ops::Outcome::Public,
            upstream_ms: None,
            status: None,
            bytes: 0,
            outcome: None,
            ops,
            config,
        }
    }

    /// The request's tracing span (`request.id`, `method`, `path.id`); a disabled
    /// span when `tilegate::gateway` is not on at info, which costs next to nothing.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            target: "tilegate::gateway",
            "request",
            request.id = self.request_id.to_str().unwrap_or("-"),
            method = %self.method,
            path.id = tracing::field::Empty,
        )
    }

    /// The pipeline's result as a response, with the decision and deny reason
    /// noted; a failure's cause is logged here (inside the request span).
    /// Errors are written in the format the client of `uri` reads
    /// ([`crate::respond::ErrorFormat::of`]: OGC exceptions, problem JSON, JSON).
    pub fn respond(
        &mut self,
        result: Result<Response<Body>, Reject>,
        span: &tracing::Span,
        uri: &http::Uri,
    ) -> Response<Body> {
        match result {
            Ok(res) => {
                self.verdict = ops::Outcome::answered(self.token_id.is_some());
                crate::respond::localize(res, uri, self.config.ogc.exception_status)
            }
            Err(reject) => {
                self.verdict = ops::Outcome::rejected(&reject);
                if let Some(cause) = reject.cause() {
                    span.in_scope(|| tracing::warn!(target: "tilegate::gateway", error = %cause, "request failed"));
                }
                let format = crate::respond::ErrorFormat::of(uri).with_status(self.config.ogc.exception_status);
                reject.into_response_as(&format)
            }
        }
    }

    /// The metric labels for this request.
    fn labels(&self, status: u16) -> RequestLabels {
        RequestLabels {
            path_id: self.path_id.as_ref().map_or_else(|| "-".into(), PathId::to_string),
            operation: self.operation,
            outcome: self.verdict,
            status,
        }
    }

    fn write(&self, status: u16, outcome: Outcome, elapsed: Duration) {
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
            decision = self.verdict.decision(),
            deny.reason = self.verdict.reason(),
            status,
            outcome = outcome.as_str(),
            bytes = self.bytes,
            upstream.ms = self.upstream_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
            duration.ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            request.id = self.request_id.to_str().unwrap_or("-"),
            client = %self.peer.ip(),
        );
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        // No status: the request future was dropped before the response head,
        // i.e. the client went away while the gateway was still working.
        let status = self.status.map_or(499, |s| s.as_u16());
        let outcome = self.outcome.unwrap_or(Outcome::Cut);
        let elapsed = self.started.elapsed();
        // Metrics first: whoever reads the line can count on them.
        let upstream = self.upstream_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0));
        let labels = self.labels(status);
        if outcome == Outcome::Cut {
            self.ops.metrics.response_cut(&labels.path_id);
        }
        self.ops.record(&self.config, labels, elapsed, upstream, self.client);
        self.write(status, outcome, elapsed);
    }
}

/// The logging phase's entry: puts the request id on the response and hands the
/// log to the body, which writes it when it ends. A response with nothing to send
/// is logged at once.
pub fn finish(response: Response<Body>, mut log: RequestLog) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(REQUEST_ID, log.request_id.clone());
    log.status = Some(parts.status);
    if body.is_end_stream() {
        log.outcome = Some(Outcome::Complete);
        return Response::from_parts(parts, body);
    }
    // hyper never polls these bodies (RFC 9110 §6.4.1): dropping one unread is their end.
    let bodiless = log.method == Method::HEAD
        || parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let expected = body.size_hint().exact();
    let logged = Logged { inner: body, log, expected, bodiless };
    Response::from_parts(parts, Body::new(logged))
}

/// A response body that counts what it sends and settles the log's outcome.
struct Logged {
    inner: Body,
    log: RequestLog,
    /// The body's exact length, when known: hyper stops polling once it has sent
    /// that many bytes, even if the body never said it ended.
    expected: Option<u64>,
    bodiless: bool,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.log.bytes += data.len() as u64;
                }
            }
            Some(Err(_)) => {
                this.log.outcome.get_or_insert(Outcome::Cut);
            }
            None => {
                this.log.outcome.get_or_insert(Outcome::Complete);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if self.log.outcome.is_none() {
            let complete =
                self.bodiless || self.inner.is_end_stream() || self.expected.is_some_and(|n| n == self.log.bytes);
            self.log.outcome = Some(if complete { Outcome::Complete } else { Outcome::Cut });
        }
        // `self.log` is dropped next and writes the line.
    }
}

/// A new request id: 16 hex digits of per-process randomness, then 16 of a counter.
///
/// ```
/// let a = tilegate::access::new_request_id();
/// let b = tilegate::access::new_request_id();
/// assert_eq!(a.len(), 32);
/// assert_ne!(a, b);
/// assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16], "one prefix per process");
/// ```
pub fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness the ids are still unique within the process; the
        // clock keeps restarts apart.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            bytes = (nanos.as_nanos() as u64).to_be_bytes();
        }
        u64::from_be_bytes(bytes)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 32];
    hex(prefix, &mut buf[..16]);
    hex(n, &mut buf[16..]);
    // One allocation (the owner, with its reference count), shared by the upstream
    // request, the response and the log; `from_bytes` would copy, then allocate
    // again at the first clone.
    // INVARIANT: hex digits are visible ASCII, always a valid header value.
    HeaderValue::from_maybe_shared(Bytes::from_owner(buf)).expect("hex digits are a valid header value")
}

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// True for a client-sent request id worth keeping: 1 to 128 visible ASCII
/// characters (no spaces, no control characters).
///
/// ```
/// use tilegate::access::sane_request_id;
/// assert!(sane_request_id(b"4bf92f3577b34da6a3ce929d0e0e4736"));
/// assert!(!sane_request_id(b"has space"));
/// assert!(!sane_request_id(b""));
/// assert!(!sane_request_id(&[b'a'; 129]));
/// ```
pub fn sane_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len()) && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// True when the access log is on (`RUST_LOG` includes `tilegate::access` at info);
/// when off, the request's path is neither copied nor redacted.
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: "tilegate::access", tracing::Level::INFO)
}

/// Replaces anything token-shaped in the path ([`crate::token::redact`], the one
/// redaction error bodies use too), so a token pasted into a URL path, whole or with
/// an extension (`/3/4/<token>.png`), never reaches the log.
///
/// ```
/// use tilegate::access::redact_path;
/// assert_eq!(redact_path("/xyz/osm/1/2/3.png"), "/xyz/osm/1/2/3.png");
/// ```
pub fn redact_path(path: &str) -> String {
    crate::token::redact(path).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(method: Method, ops: &Arc<Ops>) -> RequestLog {
        let config = crate::config::parse(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"t.db\"\n",
            std::path::Path::new("."),
        )
        .expect("config");
        let peer: SocketAddr = "192.0.2.1:1000".parse().expect("addr");
        RequestLog::new(&method, peer, peer.ip(), new_request_id(), ops.clone(), Arc::new(config))
    }

    /// Two data frames, the second never polled in these tests.
    struct TwoChunks(u8);

    impl HttpBody for TwoChunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0 += 1;
            Poll::Ready((self.0 <= 2).then(|| Ok(Frame::data(Bytes::from_static(b"abc")))))
        }
    }

    fn two_chunks() -> Body {
        Body::new(TwoChunks(0))
    }

    fn counts(ops: &Ops) -> (bool, bool) {
        let text = ops.metrics.render((0, 0, 0), 0);
        let requests = text.lines().any(|l| l.starts_with("tilegate_requests_total{") && l.ends_with(" 1"));
        (requests, text.contains("tilegate_responses_cut_total{path_id=\"-\"} 1"))
    }

    fn first_frame(body: &mut Body) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(Pin::new(body).poll_frame(&mut cx), Poll::Ready(Some(Ok(_)))));
    }

    #[test]
    fn a_body_with_no_data_is_recorded_at_once_as_complete() {
        let ops = Arc::new(Ops::new());
        let res = finish(Response::new(crate::respond::full(Bytes::new())), log(Method::GET, &ops));
        assert_eq!(counts(&ops), (true, false), "recorded before the body is even polled");
        assert!(res.headers().contains_key(REQUEST_ID));
    }

    #[test]
    fn a_body_dropped_before_its_end_is_recorded_once_as_cut() {
        let ops = Arc::new(Ops::new());
        let mut res = finish(Response::new(two_chunks()), log(Method::GET, &ops));
        first_frame(res.body_mut());
        assert_eq!(counts(&ops), (false, false), "nothing recorded while the body is still sending");
        drop(res);
        assert_eq!(counts(&ops), (true, true));
    }

    #[test]
    fn a_head_response_dropped_unread_is_complete() {
        let ops = Arc::new(Ops::new());
        drop(finish(Response::new(two_chunks()), log(Method::HEAD, &ops)));
        assert_eq!(counts(&ops), (true, false));
    }

    #[test]
    fn request_ids_are_unique_hex_with_one_prefix() {
        let ids: Vec<HeaderValue> = (0..1000).map(|_| new_request_id()).collect();
        let mut set: Vec<&[u8]> = ids.iter().map(HeaderValue::as_bytes).collect();
        set.sort_unstable();
        set.dedup();
        assert_eq!(set.len(), 1000, "ids repeat");
        for id in &ids {
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
            assert_eq!(id.as_bytes()[..16], ids[0].as_bytes()[..16]);
        }
    }

    #[test]
    fn only_visible_ascii_up_to_128_is_a_sane_client_id() {
        assert!(sane_request_id(&[b'~'; 128]));
        for bad in [&b"a\tb"[..], b"caf\xc3\xa9", b"a\x7f", &[b'x'; 129]] {
            assert!(!sane_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_token_pasted_into_a_path_is_redacted() {
        let secret = crate::token::TokenSecret::generate("tg").expect("randomness");
        let path = format!("/osm/{}/tile.png", secret.expose());
        assert_eq!(redact_path(&path), "/osm/<redacted>/tile.png");
        let tile = format!("/ogc/xyz/osm/3/4/{}.png", secret.expose());
        assert_eq!(redact_path(&tile), "/ogc/xyz/osm/3/4/<redacted>.png");
    }
}
