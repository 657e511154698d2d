//! The upstream connection pool: keep-alive HTTP/1.1 connections per upstream origin
//! (scheme and authority), on hyper's `client::conn::http1`.
//!
//! - **Bounded**: at most [`Limits::max_per_upstream`] open connections per origin; a
//!   request beyond that waits for one to come back or close (within the caller's
//!   response timeout, so the wait ends as a 504 at worst).
//! - **Returned when the answer's body has been read to its end** (by [`UpstreamBody`]):
//!   no task per request, no second look later. A body dropped before its end closes
//!   its connection (hyper cannot reuse it).
//! - **Checked before reuse**: a closed connection (the upstream closed it while idle)
//!   is dropped; one that is not ready yet (its connection task has not run since the
//!   body ended) gets one yield to catch up; one still busy after that (an upload still
//!   streaming after an early answer) goes back by a task once it is ready.
//! - **Reaped**: idle connections older than [`Limits::idle_timeout`] are closed, when a
//!   connection comes back and on [`Pool::reap`] (the server's sweep).
//! - **Retried only unsent**: a request hyper hands back unwritten (the reused
//!   connection closed under it) is sent once more; a request that may have reached the
//!   upstream is never sent again, whatever its method.
//!
//! The pool sets `Host` from the origin (one shared value per origin) and sends the
//! origin form of the URI, as hyper-util's legacy client did.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower_service::Service as _;

use crate::respond::{Body, UpstreamError};

/// How far the pool grows and how long an idle connection is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections (busy and idle) per upstream origin.
    pub max_per_upstream: usize,
    /// An idle connection older than this is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    /// 256 per origin (what hyper-util's pool kept idle), 90 s idle (its default).
    fn default() -> Self {
        Limits { max_per_upstream: 256, idle_timeout: Duration::from_secs(90) }
    }
}

/// Keep-alive connections to the upstreams one connector (one TLS setting) reaches.
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    limits: Limits,
    /// One entry per origin; a handful (the origins in the config), so a scan.
    origins: Mutex<Vec<Arc<Origin>>>,
}

/// The connections to one scheme and authority.
struct Origin {
    scheme: Scheme,
    authority: Authority,
    /// The `Host` value for this origin (the port only when not the scheme's default).
    host: HeaderValue,
    /// Most recently returned last (LIFO: the warmest connection is reused first).
    idle: Mutex<Vec<Idle>>,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    /// Signalled when a connection comes back.
    returned: Notify,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// An open connection, with the slot it takes in its origin's bound.
struct Conn {
    sender: SendRequest<Body>,
    _slot: OwnedSemaphorePermit,
    origin: Arc<Origin>,
    reused: bool,
}

impl Pool {
    pub fn new(connector: HttpsConnector<HttpConnector>, limits: Limits) -> Pool {
        Pool { connector, limits, origins: Mutex::new(Vec::new()) }
    }

    /// Sends `req` (absolute URI, headers already sanitized) and returns the answer,
    /// whose body gives the connection back when read to its end.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<UpstreamBody>, UpstreamError> {
        let origin = self.origin(req.uri())?;
        let path = req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
        req.headers_mut().insert(http::header::HOST, origin.host.clone());
        let conn = self.checkout(&origin).await?;
        let req = match self.try_send(conn, req).await {
            Ok(res) => return Ok(res),
            Err(Unsent(req)) => *req,
            Err(Failed(e)) => return Err(e),
        };
        // The reused connection had closed before the request was written: it never
        // reached the upstream, so sending it once more is safe for every method.
        let conn = self.checkout(&origin).await?;
        match self.try_send(conn, req).await {
            Ok(res) => Ok(res),
            Err(Unsent(_)) => Err(UpstreamError::Protocol("the upstream closed the connection again".into())),
            Err(Failed(e)) => Err(e),
        }
    }

    async fn try_send(&self, mut conn: Conn, req: Request<Body>) -> Result<Response<UpstreamBody>, SendError> {
        // A connection that carried a HEAD is not reused: waitress (MapProxy's and
        // pygeoapi's usual server) sends the body anyway, and those bytes would be read
        // as the next request's answer (a 502 for it). Dropping it closes it.
        let head = req.method() == http::Method::HEAD;
        match conn.sender.try_send_request(req).await {
            Ok(res) => {
                let (parts, inner) = res.into_parts();
                let body = UpstreamBody { inner: Inner::Hyper(inner), conn: (!head).then_some(conn) };
                let mut res = Response::from_parts(parts, body);
                res.body_mut().give_back_if_done();
                Ok(res)
            }
            Err(mut e) => match e.take_message() {
                Some(req) if conn.reused => Err(Unsent(Box::new(req))),
                _ => Err(Failed(UpstreamError::Protocol(e.into_error().into()))),
            },
        }
    }

    /// The origin entry for `uri`, made on first use.
    fn origin(&self, uri: &Uri) -> Result<Arc<Origin>, UpstreamError> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(UpstreamError::Connect(format!("`{uri}` names no upstream").into()));
        };
        let mut origins = lock(&self.origins);
        if let Some(o) = origins.iter().find(|o| o.authority == *authority && o.scheme == *scheme) {
            return Ok(o.clone());
        }
        let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_owned(),
        };
        let host = HeaderValue::from_str(&host).map_err(|e| UpstreamError::Connect(e.into()))?;
        let origin = Arc::new(Origin {
            scheme: scheme.clone(),
            authority: authority.clone(),
            host,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(self.limits.max_per_upstream)),
            returned: Notify::new(),
            idle_timeout: self.limits.idle_timeout,
        });
        origins.push(origin.clone());
        Ok(origin)
    }

    /// A ready connection to `origin`: an idle one, or a new one within the bound, or
    /// (at the bound) the first one that comes back or frees its slot.
    async fn checkout(&self, origin: &Arc<Origin>) -> Result<Conn, UpstreamError> {
        loop {
            while let Some(conn) = origin.take_idle() {
                if let Some(conn) = ready(conn).await {
                    return Ok(conn);
                }
            }
            let slot = match origin.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    let returned = origin.returned.notified();
                    tokio::select! {
                        slot = origin.slots.clone().acquire_owned() => match slot {
                            Ok(slot) => slot,
                            // Only a closed semaphore fails, and the pool never closes it.
                            Err(_) => continue,
                        },
                        () = returned => continue,
                    }
                }
            };
            // Boxed: the connect path (TCP, TLS, handshake) is large and rare; every
            // request's future would otherwise carry its size.
            return Box::pin(self.connect(origin, slot)).await;
        }
    }

    async fn connect(&self, origin: &Arc<Origin>, slot: OwnedSemaphorePermit) -> Result<Conn, UpstreamError> {
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let mut connector = self.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx)).await.map_err(UpstreamError::Connect)?;
        let io = connector.call(uri).await.map_err(UpstreamError::Connect)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| UpstreamError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Conn { sender, _slot: slot, origin: origin.clone(), reused: false })
    }

    /// Closes idle connections older than the idle timeout, and closed ones.
    pub fn reap(&self) {
        let origins: Vec<Arc<Origin>> = lock(&self.origins).clone();
        for origin in origins {
            let now = Instant::now();
            lock(&origin.idle)
                .retain(|i| now.duration_since(i.since) < origin.idle_timeout && !i.conn.sender.is_closed());
        }
    }

    /// Open connections to each origin (busy, and idle ones not closed by the
    /// upstream), for tests and diagnostics.
    pub fn open_connections(&self) -> Vec<(String, usize)> {
        lock(&self.origins)
            .iter()
            .map(|o| {
                let closed = lock(&o.idle).iter().filter(|i| i.conn.sender.is_closed()).count();
                let taken = self.limits.max_per_upstream - o.slots.available_permits();
                (o.authority.to_string(), taken - closed)
            })
            .collect()
    }
}

enum SendError {
    /// Handed back unwritten by a reused connection that had closed (boxed: the
    /// rare case should not size the common one).
    Unsent(Box<Request<Body>>),
    Failed(UpstreamError),
}
use SendError::{Failed, Unsent};

/// `conn` if it can take a request now (after one yield, for a connection whose task
/// has not run since its last answer ended); `None` when it is closed or still busy
/// (a busy one is put back by a task once ready).
async fn ready(conn: Conn) -> Option<Conn> {
    if conn.sender.is_ready() {
        return Some(conn);
    }
    if conn.sender.is_closed() {
        return None;
    }
    tokio::task::yield_now().await;
    if conn.sender.is_ready() {
        return Some(conn);
    }
    if !conn.sender.is_closed() {
        let mut conn = conn;
        tokio::spawn(async move {
            if conn.sender.ready().await.is_ok() {
                let origin = conn.origin.clone();
                origin.give_back(conn);
            }
        });
    }
    None
}

impl Origin {
    /// The most recently returned idle connection that is not too old.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        while let Some(i) = idle.pop() {
            if i.since.elapsed() < self.idle_timeout {
                let mut conn = i.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        {
            let mut idle = lock(&self.idle);
            // The oldest are at the front: reap them while here.
            let stale = idle.iter().take_while(|i| now.duration_since(i.since) >= self.idle_timeout).count();
            if stale > 0 {
                idle.drain(..stale);
            }
            idle.push(Idle { conn, since: now });
        }
        self.returned.notify_one();
    }
}

/// The pool's state stays consistent under a panic in another request (every critical
/// section is a push or a pop), so a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An upstream answer's body: hyper's, plus the connection it came on, which goes back
/// to the pool once the body has been read to its end (or is dropped after its end).
/// A body the gateway read itself (a PMTiles tile, `crate::pmtiles`) is
/// [`UpstreamBody::full`]: the filter stage treats both alike.
pub struct UpstreamBody {
    inner: Inner,
    conn: Option<Conn>,
}

enum Inner {
    Hyper(Incoming),
    /// Bytes already in hand; `None` once sent.
    Full(Option<Bytes>),
}

impl UpstreamBody {
    /// A body of bytes the gateway holds, as if an upstream had sent them.
    pub fn full(bytes: Bytes) -> UpstreamBody {
        UpstreamBody { inner: Inner::Full((!bytes.is_empty()).then_some(bytes)), conn: None }
    }

    fn give_back_if_done(&mut self) {
        if self.is_end_stream() {
            if let Some(conn) = self.conn.take() {
                let origin = conn.origin.clone();
                origin.give_back(conn);
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = match &mut self.inner {
            Inner::Hyper(inner) => std::task::ready!(Pin::new(inner).poll_frame(cx)),
            Inner::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match &frame {
            None => {
                // A chunked body ends here; the connection is reusable.
                if let Some(conn) = self.conn.take() {
                    let origin = conn.origin.clone();
                    origin.give_back(conn);
                }
            }
            Some(Ok(_)) => self.give_back_if_done(),
            // A broken exchange: the connection closes with the body.
            Some(Err(_)) => self.conn = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper(inner) => inner.is_end_stream(),
            Inner::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper(inner) => inner.size_hint(),
            Inner::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Read to its end (hyper stops polling a body once its declared length is
        // sent): back to the pool. Dropped before its end: the connection closes.
        self.give_back_if_done();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    fn connector() -> HttpsConnector<HttpConnector> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let tls = crate::config::tls::default_client().expect("TLS defaults");
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }

    /// A raw upstream: counts connections; answers each request head with a 2-byte
    /// body once `hold` lets it (a permit per answer), keep-alive.
    struct Raw {
        addr: std::net::SocketAddr,
        accepted: Arc<AtomicUsize>,
        waiting: Arc<AtomicUsize>,
        closed: Arc<AtomicUsize>,
        hold: Arc<Semaphore>,
        heads: Arc<Mutex<Vec<String>>>,
    }

    async fn raw(held: bool) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (accepted, waiting, closed) = (Arc::default(), Arc::default(), Arc::default());
        let hold = Arc::new(Semaphore::new(if held { 0 } else { Semaphore::MAX_PERMITS }));
        let up = Raw { addr, accepted, waiting, closed, hold, heads: Arc::default() };
        let (accepted, waiting, closed, hold, heads) =
            (up.accepted.clone(), up.waiting.clone(), up.closed.clone(), up.hold.clone(), up.heads.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (waiting, closed, hold, heads) = (waiting.clone(), closed.clone(), hold.clone(), heads.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            lock(&heads).push(String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase());
                            buf.drain(..end + 4);
                            waiting.fetch_add(1, Ordering::SeqCst);
                            let Ok(permit) = hold.acquire().await else { return };
                            permit.forget();
                            waiting.fetch_sub(1, Ordering::SeqCst);
                            if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
                                break;
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        up
    }

    fn get(addr: std::net::SocketAddr) -> Request<Body> {
        let uri: Uri = format!("http://{addr}/t?x=1").parse().expect("uri");
        Request::get(uri).body(crate::respond::full(Bytes::new())).expect("request")
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection_and_send_the_origin_form_with_host() {
        let up = raw(false).await;
        let pool = Pool::new(connector(), Limits::default());
        for _ in 0..10 {
            let res = pool.send(get(up.addr)).await.expect("answer");
            assert_eq!(res.into_body().collect().await.expect("body").to_bytes(), "ok");
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "one keep-alive connection for ten requests");
        assert_eq!(pool.open_connections(), [(up.addr.to_string(), 1)]);
        let heads = lock(&up.heads).clone();
        assert_eq!(heads.len(), 10);
        for head in heads {
            assert!(head.starts_with("get /t?x=1 http/1.1\r\n"), "origin form: {head}");
            assert_eq!(head.matches("\r\nhost: ").count(), 1, "one Host: {head}");
            assert!(head.contains(&format!("\r\nhost: {}", up.addr)), "the origin's Host: {head}");
        }
    }

    #[tokio::test]
    async fn the_bound_holds_a_request_until_a_connection_comes_back() {
        let up = raw(true).await;
        let pool =
            Arc::new(Pool::new(connector(), Limits { max_per_upstream: 2, idle_timeout: Duration::from_secs(90) }));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (pool, addr) = (pool.clone(), up.addr);
            tasks.push(tokio::spawn(async move {
                let res = pool.send(get(addr)).await.expect("answer");
                res.into_body().collect().await.expect("body").to_bytes()
            }));
        }
        until("two requests at the upstream", || up.waiting.load(Ordering::SeqCst) == 2).await;
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2, "the third request waits instead of connecting");
        up.hold.add_permits(3);
        for t in tasks {
            assert_eq!(t.await.expect("task"), "ok");
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2, "the third request reused a returned connection");
    }

    #[tokio::test]
    async fn idle_connections_past_the_idle_timeout_are_closed() {
        let up = raw(false).await;
        let pool = Pool::new(connector(), Limits { max_per_upstream: 4, idle_timeout: Duration::from_millis(50) });
        let res = pool.send(get(up.addr)).await.expect("answer");
        drop(res.into_body().collect().await.expect("body"));
        assert_eq!(pool.open_connections(), [(up.addr.to_string(), 1)]);
        tokio::time::sleep(Duration::from_millis(80)).await;
        pool.reap();
        assert_eq!(pool.open_connections(), [(up.addr.to_string(), 0)], "reaped");
        until("the upstream to see the close", || up.closed.load(Ordering::SeqCst) == 1).await;
        let res = pool.send(get(up.addr)).await.expect("a new connection after the reap");
        drop(res.into_body().collect().await.expect("body"));
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let closed = Arc::new(AtomicUsize::new(0));
        let seen = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut chunk = [0u8; 4096];
                    let _ = s.read(&mut chunk).await;
                    // A declared 10-byte body of which only 2 bytes come now.
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok").await;
                    while !matches!(s.read(&mut chunk).await, Ok(0) | Err(_)) {}
                    seen.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        let pool = Pool::new(connector(), Limits::default());
        let res = pool.send(get(addr)).await.expect("answer");
        drop(res);
        until("the connection to close", || closed.load(Ordering::SeqCst) == 1).await;
        assert_eq!(pool.open_connections(), [(addr.to_string(), 0)], "its slot is free again");
    }
}
