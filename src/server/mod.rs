//! The listeners: bind, accept, TLS, serve HTTP/1.1 and HTTP/2, reload, shut
//! down gracefully.
//!
//! Limits enforced here, per connection: admission ([`admission`]:
//! `server.max_connections`, shedding the connection costing most for least
//! rather than refusing the newcomer, and `server.max_connections_per_ip`), the
//! request body read timeout ([`body`]), the TLS handshake timeout,
//! the header read timeout (hyper closes an HTTP/1.1 connection whose request
//! head is not complete in time; a connection that sends nothing at all is
//! closed by the watchdog below), the idle timeout (no traffic either way) and
//! the header size. Each connection runs in its own task, the TLS handshake
//! included, so a slow handshake never holds up the accept loop.
//!
//! Nothing binds before the configuration validated and the store opened. On
//! shutdown the listener closes first, connections with no request in flight
//! (idle keep-alives, half-sent heads, TLS handshakes) are closed at once, then
//! in-flight requests get up to the deadline to finish; whatever is still open
//! then is closed.
//!
//! Each connection runs inside a `conn` span (`peer.addr`, `tls`, `listener`, at
//! info), HTTP/2 streams included (they are spawned inside it), so a warning
//! logged while serving it names the connection.

pub mod admission;
pub mod body;
pub mod reload;
pub mod tls;
pub mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use crate::config::{Config, ConfigErrors};
use crate::gateway::{Gateway, Listener};
use crate::ops::Handshake;
use crate::store::{GrantCache, Store, StoreError};
use admission::{Admission, Ticket};
use body::{BodyRate, InFlightBody, OnTimeout, RequestBody};
use reload::Reloader;
use tls::CertStore;

/// How often the cache polls the store for changes made by other processes.
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);
/// How often the config file and the files it names are checked for changes.
pub const CONFIG_POLL: Duration = Duration::from_millis(500);
/// How often idle rate-limit state is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on `{addr}`: {source}; check `{key}` and that no other process uses the port")]
    Bind { key: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("cannot set up TLS from `server.tls`: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot start a worker thread for `server.runtime = \"per-core\"`: {0}")]
    Runtime(std::io::Error),
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    /// The ops listener's address (`/metrics`, `/healthz`, `/readyz`), when `[ops] listen` is set.
    pub ops_addr: Option<SocketAddr>,
    /// The token API's own listener, when `[api] listen` is set.
    pub api_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    certs: Option<Arc<CertStore>>,
    reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    /// The accept loops of `server.listen` (one per worker under `per-core`), drained
    /// on shutdown.
    accept: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    /// The per-core worker threads (none under the multi-thread runtime).
    workers: Vec<workers::Worker>,
    /// Connections accepted, per worker (one entry under the multi-thread runtime).
    accepted: Vec<Arc<AtomicU64>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish for up to `deadline`,
    /// closes whatever is still open, and returns.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.gateway.ops().draining.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        let until = tokio::time::Instant::now() + deadline;
        let mut late = Vec::new();
        for mut accept in self.accept.drain(..) {
            if tokio::time::timeout_at(until, &mut accept).await.is_err() {
                late.push(accept);
            }
        }
        if !late.is_empty() {
            tracing::warn!(
                grace = ?deadline,
                "in-flight requests did not finish within server.shutdown_grace; closing their connections"
            );
        }
        for accept in late {
            accept.abort();
            let _ = accept.await;
        }
        // Token usage of the drained requests (waits for a periodic flush in
        // progress, so the task below is never aborted holding a taken batch).
        let store = self.gateway.cache().store().clone();
        self.gateway.usage().flush_at_shutdown(&store, store.query_timeout() * 2).await;
        for t in self.background.drain(..) {
            t.abort();
        }
        // Last: a PostgreSQL connection a worker opened is driven by its runtime.
        for w in self.workers.drain(..) {
            w.join().await;
        }
    }

    /// Resolves when the accept loops end.
    pub async fn wait(mut self) {
        for accept in &mut self.accept {
            let _ = accept.await;
        }
    }

    /// Connections accepted so far by each worker thread (`server.runtime =
    /// "per-core"`; one entry, the whole runtime, otherwise). Tests, diagnostics.
    pub fn accepted_per_worker(&self) -> Vec<u64> {
        self.accepted.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    /// Reads the config file again and applies it (as SIGHUP does). An invalid
    /// config is logged and refused; the old one stays in use.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        self.reloader.reload("requested").await
    }

    /// The certificate store TLS handshakes read from (`None` without `[server.tls]`).
    pub fn certs(&self) -> Option<&Arc<CertStore>> {
        self.certs.as_ref()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for accept in self.accept.drain(..) {
            accept.abort();
        }
        for t in self.background.drain(..) {
            t.abort();
        }
        for w in &mut self.workers {
            w.stop();
        }
    }
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { key, addr, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { key, addr, source })?;
    Ok((listener, addr))
}

/// Opens the store, binds `server.listen` (and `ops.listen`) and serves until shut down.
///
/// Under `server.runtime = "per-core"` the listeners are served by worker threads
/// ([`workers`]); the background tasks (and the ops listener) run on the runtime
/// this is called on.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let store = Store::connect(&config.store).await?;
    let per_core = config.server.runtime == crate::config::Runtime::PerCore;
    let workers = config.server.worker_count();
    // One admission state per listener, shared by whatever accept loops serve it.
    let (main_admission, api_admission) = (Arc::new(Admission::new()), Arc::new(Admission::new()));
    let api_listen = config.api.listen.filter(|_| config.api.enabled);
    let mut serving = Vec::new();
    if per_core {
        let main = workers::Group::bind(
            "server.listen",
            config.server.listen,
            workers,
            Listener::Main,
            main_admission.clone(),
        )?;
        serving.push(Bound::Group(main));
        if let Some(a) = api_listen {
            serving.push(Bound::Group(workers::Group::bind(
                "api.listen",
                a,
                workers,
                Listener::Api,
                api_admission.clone(),
            )?));
        }
    } else {
        serving.push(Bound::Tokio(
            bind("server.listen", config.server.listen).await?,
            Listener::Main,
            main_admission.clone(),
        ));
        if let Some(a) = api_listen {
            serving.push(Bound::Tokio(bind("api.listen", a).await?, Listener::Api, api_admission.clone()));
        }
    }
    let ops_listener = match config.ops.listen {
        Some(a) => Some(bind("ops.listen", a).await?),
        None => None,
    };
    let addr_of = |role| serving.iter().find(|b| b.role() == role).map(Bound::addr);
    let (addr, api_addr) = (addr_of(Listener::Main), addr_of(Listener::Api));
    // INVARIANT: the main listener was pushed first, above.
    let addr = addr.expect("server.listen is bound");
    let certs = config.server.tls.as_ref().map(|t| CertStore::new(t.certified.clone()));
    let acceptor = certs.clone().map(tls::acceptor).transpose()?;
    let watch_file = config.server.watch_config.then(|| config.source.clone()).flatten();
    let cache = Arc::new(GrantCache::new(store));
    let gateway = Arc::new(Gateway::new(config, cache.clone()));
    let reloader = Arc::new(Reloader::new(gateway.clone(), certs.clone()));
    let (shutdown, watch_rx) = watch::channel(false);

    let mut accept = Vec::new();
    let mut background = Vec::new();
    let mut threads = Vec::new();
    let mut accepted = Vec::new();
    if per_core {
        let mut groups: Vec<workers::Group> =
            serving.into_iter().filter_map(|b| if let Bound::Group(g) = b { Some(g) } else { None }).collect();
        let shared = workers::Shared { gateway: gateway.clone(), tls: acceptor, shutdown: watch_rx.clone() };
        for index in 0..workers {
            let count = Arc::new(AtomicU64::new(0));
            let (worker, loops) = workers::spawn(index, &mut groups, &shared, count.clone())?;
            accept.extend(loops.main);
            background.extend(loops.other);
            threads.push(worker);
            accepted.push(count);
        }
    } else {
        let count = Arc::new(AtomicU64::new(0));
        for bound in serving {
            if let Bound::Tokio((listener, _), role, admission) = bound {
                let task = tokio::spawn(accept_loop(
                    listener,
                    gateway.clone(),
                    acceptor.clone(),
                    watch_rx.clone(),
                    role,
                    admission,
                    count.clone(),
                ));
                match role {
                    Listener::Main => accept.push(task),
                    Listener::Api => background.push(task),
                }
            }
        }
        accepted.push(count);
    }
    let admissions = vec![main_admission, api_admission];
    background.push(tokio::spawn(cache.poll(REVOCATION_POLL)));
    background.push(tokio::spawn(sweep(gateway.clone(), admissions)));
    let flush_every = {
        let gateway = gateway.clone();
        move || gateway.config().store.usage_flush_interval
    };
    background.push(tokio::spawn(gateway.usage().clone().run(gateway.cache().store().clone(), flush_every)));
    if watch_file.is_some() {
        background.push(tokio::spawn(reloader.clone().watch(CONFIG_POLL)));
    }
    let ops_addr = ops_listener.map(|(l, a)| {
        background.push(tokio::spawn(ops_loop(l, gateway.clone())));
        a
    });
    let scheme = if certs.is_some() { "https" } else { "http" };
    let runtime = gateway.config().server.runtime.as_str();
    let threads_serving = if per_core { workers } else { 0 };
    match ops_addr {
        Some(ops) => {
            tracing::info!(listen = %addr, scheme, ops = %ops, runtime, workers = threads_serving, "tilegate is serving")
        }
        None => tracing::info!(listen = %addr, scheme, runtime, workers = threads_serving, "tilegate is serving"),
    }
    Ok(Running {
        addr,
        ops_addr,
        api_addr,
        gateway,
        certs,
        reloader,
        shutdown,
        accept,
        background,
        workers: threads,
        accepted,
    })
}

/// A serving address, bound: one tokio listener (multi-thread runtime), or one socket
/// per worker (per-core).
enum Bound {
    Tokio((TcpListener, SocketAddr), Listener, Arc<Admission>),
    Group(workers::Group),
}

impl Bound {
    fn role(&self) -> Listener {
        match self {
            Bound::Tokio(_, role, _) => *role,
            Bound::Group(g) => g.role,
        }
    }
    fn addr(&self) -> SocketAddr {
        match self {
            Bound::Tokio((_, addr), _, _) => *addr,
            Bound::Group(g) => g.addr,
        }
    }
}

async fn sweep(gateway: Arc<Gateway>, admissions: Vec<Arc<Admission>>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY.min(admission::WARN_EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        gateway.ops().sweep(&gateway.config());
        gateway.upstream().reap();
        for a in &admissions {
            a.flush_warnings();
        }
    }
}

/// Per-connection settings derived from the config in use; rebuilt when a
/// reload changes it. Connections keep the settings they started with.
struct Settings {
    config: Arc<Config>,
    builder: Arc<auto::Builder<SpanExecutor>>,
    limits: admission::Limits,
    body_rate: BodyRate,
}

impl Settings {
    fn new(config: Arc<Config>) -> Settings {
        let server = &config.server;
        let mut builder = auto::Builder::new(SpanExecutor(TokioExecutor::new()));
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(server.header_read_timeout)
            .max_buf_size(server.max_header_bytes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX));
        // The admission state outlives settings: a reload changes the limits,
        // and the connections already open keep counting against them.
        let limits = admission::Limits {
            max_connections: server.max_connections,
            max_per_ip: server.max_connections_per_ip,
            trusted_proxies: server.trusted_proxies.clone(),
        };
        let body_rate = BodyRate { timeout: server.body_read_timeout, min_rate: server.body_min_rate };
        Settings { config, builder: Arc::new(builder), limits, body_rate }
    }
}

/// Accepts connections until `shutdown` says so, then waits for them to drain.
/// Aborting this task closes every connection it started.
async fn accept_loop(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    listener_role: Listener,
    admission: Arc<Admission>,
    counted: Arc<AtomicU64>,
) {
    let mut settings = Settings::new(gateway.config());
    let body_timeouts: Arc<dyn OnTimeout> = Arc::new(CountTimeouts(gateway.clone()));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = wait_for(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let config = gateway.config();
                if !Arc::ptr_eq(&config, &settings.config) {
                    settings = Settings::new(config);
                }
                let Some(ticket) = admission.admit_logged(peer.ip(), &settings.limits, &gateway.ops().metrics) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Conn {
                    peer,
                    role: listener_role,
                    gateway: gateway.clone(),
                    builder: settings.builder.clone(),
                    header_read_timeout: settings.config.server.header_read_timeout,
                    idle_timeout: settings.config.server.idle_timeout,
                    shutdown: shutdown.clone(),
                    ticket,
                    body_rate: settings.body_rate,
                    body_timeouts: body_timeouts.clone(),
                };
                let tls = tls.clone().map(|a| (a, settings.config.server.tls.as_ref().map_or(Duration::from_secs(10), |t| t.handshake_timeout)));
                let span = tracing::info_span!(
                    "conn",
                    peer.addr = %peer,
                    tls = tls.is_some(),
                    listener = match listener_role { Listener::Main => "main", Listener::Api => "api" },
                );
                conns.spawn(conn.run(stream, tls).instrument(span));
                // One accept per turn (nginx's `multi_accept off`): the connection just
                // spawned reads its head before the next accept can shed it as the
                // oldest without one. A per-core worker is one thread, and a backlog of
                // a flood would otherwise be accepted up to tokio's budget (128) first.
                tokio::task::yield_now().await;
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn wait_for(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Spawns what hyper spawns (HTTP/2 streams) inside the current span, so a
/// stream's logs carry its connection's fields.
#[derive(Clone)]
struct SpanExecutor(TokioExecutor);

impl<F> hyper::rt::Executor<F> for SpanExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.execute(fut.in_current_span());
    }
}

/// One client connection.
struct Conn {
    peer: SocketAddr,
    role: Listener,
    gateway: Arc<Gateway>,
    builder: Arc<auto::Builder<SpanExecutor>>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    /// The connection's admission place: shed through it, freed when dropped.
    ticket: Ticket,
    body_rate: BodyRate,
    body_timeouts: Arc<dyn OnTimeout>,
}

/// Counts request bodies cut for being too slow.
struct CountTimeouts(Arc<Gateway>);

impl OnTimeout for CountTimeouts {
    fn timed_out(&self) {
        self.0.ops().metrics.body_timeout();
        tracing::debug!("request body too slow (server.body_read_timeout, server.body_min_rate); cutting it");
    }
}

/// Counts the connection as open while it lives.
struct OpenGuard(Arc<Gateway>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.ops().metrics.connection(false);
    }
}

impl Conn {
    async fn run(mut self, stream: TcpStream, tls: Option<(TlsAcceptor, Duration)>) {
        self.gateway.ops().metrics.connection(true);
        let _open = OpenGuard(self.gateway.clone());
        let Some((acceptor, timeout)) = tls else {
            return self.serve(stream, false).await;
        };
        let gateway = self.gateway.clone();
        let metrics = &gateway.ops().metrics;
        let slot = self.ticket.slot().clone();
        // A handshake holds no request: shedding and draining close it at once.
        let handshake = tokio::select! {
            r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r,
            () = slot.shed() => return,
            () = wait_for(&mut self.shutdown) => return,
        };
        match handshake {
            Ok(Ok(stream)) => {
                metrics.handshake(Handshake::Ok);
                self.serve(stream, true).await;
            }
            Ok(Err(e)) => {
                metrics.handshake(Handshake::Failed);
                tracing::debug!(error = %e, client = %self.peer.ip(), "TLS handshake failed");
            }
            Err(_) => {
                metrics.handshake(Handshake::TimedOut);
                tracing::debug!(client = %self.peer.ip(), "TLS handshake timed out; closing");
            }
        }
    }

    /// Serves HTTP on an established stream until it closes, shutdown has
    /// drained it, or the watchdog closes it.
    async fn serve<S>(mut self, stream: S, tls: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
        let (gw, peer, role) = (self.gateway.clone(), self.peer, self.role);
        let slot = self.ticket.slot().clone();
        let (rule, on_timeout) = (self.body_rate, self.body_timeouts.clone());
        let in_flight = slot.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let gw = gw.clone();
            // Marked in flight from the complete head to the end of the answer.
            let mark = in_flight.request();
            let req = req.map(|b| RequestBody::new(b, rule, Some(on_timeout.clone())));
            async move {
                let res = gw.handle(req, peer, tls, role).await;
                Ok::<_, Infallible>(res.map(|b| InFlightBody::new(b, mark)))
            }
        });
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        if *self.shutdown.borrow_and_update() {
            // Accepted as shutdown began: no request can be in flight yet.
            return;
        }
        let every = (self.header_read_timeout.min(self.idle_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, client = %peer.ip(), "connection ended with an error");
                    }
                    return;
                }
                () = slot.shed() => {
                    tracing::debug!(client = %peer.ip(), "shed to admit a new connection at server.max_connections");
                    return;
                }
                _ = self.shutdown.changed(), if !draining => {
                    // Draining closes what holds no request (an idle keep-alive, a
                    // half-sent head) at once; the rest finish their request first.
                    if !slot.busy() {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = tick.tick(), if !draining => {
                    let quiet = activity.quiet_for();
                    if !activity.read_any() && quiet >= self.header_read_timeout {
                        tracing::debug!(client = %peer.ip(), "no request within server.header_read_timeout; closing");
                        return;
                    }
                    if quiet >= self.idle_timeout {
                        tracing::debug!(client = %peer.ip(), "idle for server.idle_timeout; closing");
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    }
                }
            }
        }
    }
}

/// When a connection last moved bytes, and whether it ever sent any.
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read or write.
    last_ms: AtomicU64,
    read_any: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0), read_any: AtomicBool::new(false) }
    }
    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
    fn read_any(&self) -> bool {
        self.read_any.load(Ordering::Relaxed)
    }
}

/// A stream that records its activity for the watchdog.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_any.store(true, Ordering::Relaxed);
            self.activity.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the task is aborted.
async fn ops_loop(listener: TcpListener, gateway: Arc<Gateway>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let gw = gateway.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let gw = gw.clone();
                        async move {
                            let paths = gw.config().paths.len();
                            let answer = crate::ops::answer(gw.ops(), gw.cache(), paths, req.method(), req.uri().path());
                            Ok::<_, Infallible>(answer.await)
                        }
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}
