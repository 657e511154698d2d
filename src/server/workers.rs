//! Thread-per-core serving (`server.runtime = "per-core"`): `server.workers` OS
//! threads, each running a single-thread tokio runtime with its own `SO_REUSEPORT`
//! listener on every serving address, nginx's worker model.
//!
//! The kernel spreads new connections over the listeners of a port (by a hash of the
//! connection's addresses); a connection is accepted, served and closed on the one
//! thread, its requests forwarded on that thread's own upstream connections
//! ([`crate::proxy::use_lane`]). What the workers share is what the multi-thread runtime
//! shares too: the [`Gateway`] (config snapshot, grant cache, metrics, usage, rate
//! limits), the admission state of each listener and the shutdown signal, all
//! thread-safe and none tied to a runtime.
//!
//! What is not per-core stays on the runtime that called [`super::start`] (the control
//! runtime: `main`'s single-thread one, or a test's): the revocation watcher, the usage
//! flush, the config watcher, the sweep, the ops listener and signals. Blocking work
//! (SQLite, config files, big filters) goes to `spawn_blocking` of whichever runtime
//! asks, as under the multi-thread runtime: a worker's reactor never waits on a disk.
//!
//! A worker must never be handed an IO object made by another runtime: its listeners
//! are made here as plain sockets and registered inside its own runtime.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::admission::Admission;
use super::{accept_loop, StartError};
use crate::gateway::{Gateway, Listener};

/// The listen backlog of each worker's socket (what tokio's own `bind` asks for).
const BACKLOG: i32 = 1024;
/// How long a stopping worker waits for its blocking tasks (a SQLite call in progress).
const STOP_BLOCKING: Duration = Duration::from_secs(5);

/// One serving address, bound once per worker.
pub(super) struct Group {
    pub addr: SocketAddr,
    pub role: Listener,
    pub admission: Arc<Admission>,
    sockets: Vec<std::net::TcpListener>,
}

impl Group {
    /// Binds `addr` `workers` times with `SO_REUSEPORT` (port 0: the first socket picks
    /// the port, the others join it). Every socket is bound before any worker starts,
    /// so a port in use fails the start, as the multi-thread runtime's bind does.
    pub fn bind(
        key: &'static str,
        addr: SocketAddr,
        workers: usize,
        role: Listener,
        admission: Arc<Admission>,
    ) -> Result<Group, StartError> {
        let bind_error = |source| StartError::Bind { key, addr, source };
        let first = reuse_port_listener(addr).map_err(bind_error)?;
        let bound = first.local_addr().map_err(bind_error)?;
        let mut sockets = vec![first];
        for _ in 1..workers {
            sockets.push(reuse_port_listener(bound).map_err(bind_error)?);
        }
        Ok(Group { addr: bound, role, admission, sockets })
    }
}

/// A listening socket others of this process can bind too (`SO_REUSEPORT`; Linux lets
/// only the same user join it).
fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's `TcpListener::bind`: a restart can bind while old connections linger.
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// What every worker serves with.
pub(super) struct Shared {
    pub gateway: Arc<Gateway>,
    pub tls: Option<TlsAcceptor>,
    pub shutdown: watch::Receiver<bool>,
}

/// A running worker thread.
pub(super) struct Worker {
    /// Ends the thread (and its runtime, closing whatever it still serves).
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The accept loops one worker runs, by listener.
pub(super) struct Loops {
    pub main: Vec<JoinHandle<()>>,
    pub other: Vec<JoinHandle<()>>,
}

/// Starts worker `index`: a single-thread runtime on its own thread, running an accept
/// loop on its socket of every group. The accept loops' handles can be awaited and
/// aborted from any runtime.
pub(super) fn spawn(
    index: usize,
    groups: &mut [Group],
    shared: &Shared,
    accepted: Arc<AtomicU64>,
) -> Result<(Worker, Loops), StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("tilegate-worker-{index}"))
        .build()
        .map_err(StartError::Runtime)?;
    let mut loops = Loops { main: Vec::new(), other: Vec::new() };
    if let Err(e) = register(&runtime, groups, shared, &accepted, &mut loops) {
        // Not dropped here: dropping a runtime may block, and this is async code.
        runtime.shutdown_background();
        return Err(e);
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("tilegate-worker-{index}"))
        .spawn(move || {
            crate::proxy::use_lane(index);
            // A dropped sender (the `Running` went away) stops the worker too.
            runtime.block_on(async move {
                let _ = stopped.await;
            });
            runtime.shutdown_timeout(STOP_BLOCKING);
        })
        .map_err(StartError::Runtime)?;
    Ok((Worker { stop: Some(stop), thread: Some(thread) }, loops))
}

/// Starts an accept loop on `runtime` for this worker's socket of every group.
fn register(
    runtime: &tokio::runtime::Runtime,
    groups: &mut [Group],
    shared: &Shared,
    accepted: &Arc<AtomicU64>,
    loops: &mut Loops,
) -> Result<(), StartError> {
    // Registers the listeners with this worker's reactor, not the caller's.
    let _inside = runtime.enter();
    for group in groups.iter_mut() {
        // INVARIANT: `Group::bind` made one socket per worker, and each worker takes one.
        let socket = group.sockets.pop().expect("one socket per worker");
        let key = match group.role {
            Listener::Main => "server.listen",
            Listener::Api => "api.listen",
        };
        let listener =
            TcpListener::from_std(socket).map_err(|source| StartError::Bind { key, addr: group.addr, source })?;
        let task = runtime.spawn(accept_loop(
            listener,
            shared.gateway.clone(),
            shared.tls.clone(),
            shared.shutdown.clone(),
            group.role,
            group.admission.clone(),
            accepted.clone(),
        ));
        match group.role {
            Listener::Main => loops.main.push(task),
            Listener::Api => loops.other.push(task),
        }
    }
    Ok(())
}

impl Worker {
    /// Ends the worker's runtime; its tasks (connections included) are dropped.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the worker and waits for its thread to end.
    pub async fn join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}
