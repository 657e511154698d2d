//! The accept loop: bind, accept, serve HTTP/1.1 and cleartext HTTP/2, shut down
//! gracefully.
//!
//! Limits enforced here: concurrent connections (a semaphore; connections over
//! the limit are closed at once), the header read timeout (a slowloris client is
//! dropped) and the header buffer size. Nothing binds before the configuration
//! validated and the store opened.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::store::{GrantCache, Store, StoreError};

/// How often the cache polls the store for changes made by other processes.
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);
/// The most header bytes a request may send.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on `{addr}`: {source}; check `server.listen` and that no other process uses the port")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to `deadline`), and returns.
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.shutdown.send(true);
        if let Some(accept) = self.tasks.first_mut() {
            let _ = tokio::time::timeout(deadline + Duration::from_millis(100), accept).await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Resolves when the accept loop ends.
    pub async fn wait(mut self) {
        if let Some(accept) = self.tasks.first_mut() {
            let _ = accept.await;
        }
    }
}

/// Opens the store, binds `config.server.listen` and serves until shut down.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let path = config.store.path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))??;
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    let cache = Arc::new(GrantCache::new(store));
    let gateway = Arc::new(Gateway::new(config, cache.clone()));
    let (shutdown, watch_rx) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(listener, gateway.clone(), wait_for(watch_rx)));
    let poll = tokio::spawn(cache.poll(REVOCATION_POLL));
    tracing::info!(listen = %addr, "tilegate is serving");
    Ok(Running { addr, gateway, shutdown, tasks: vec![accept, poll] })
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Accepts connections until `shutdown` resolves, then drains them.
pub async fn accept_loop(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let config = gateway.config();
    let limit = Arc::new(Semaphore::new(config.server.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(client = %peer.ip(), "connection limit reached; closing the new connection");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let gw = gateway.clone();
                let service = service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(gw.handle(req, peer, false).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, client = %peer.ip(), "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
