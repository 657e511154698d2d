//! Configuration: `config.toml` parsed into a raw serde mirror ([`raw`]) and
//! validated into the runtime [`Config`] that the rest of the gateway reads.
//!
//! Runtime code never sees a raw type. Validation reports every problem at once,
//! each naming the key path, the bad value and what is valid.

pub mod raw;
pub mod tls;
mod unknown;
mod validate;

pub use validate::{load, parse, store as validate_store, ConfigError, ConfigErrors};

use crate::paths::PathTable;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use ipnet::IpNet;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub store: Store,
    pub tokens: Tokens,
    pub upstream: UpstreamLimits,
    pub log: Log,
    pub api: Api,
    pub admin: Admin,
    pub limits: Limits,
    pub ops: Ops,
    pub ogc: Ogc,
    pub paths: PathTable,
    /// `[path.limits]` by path id (only paths that set some).
    pub path_limits: HashMap<String, PathLimits, foldhash::fast::RandomState>,
    /// `[path.upstream.tls]` by path id: how to reach that layer's `https://`
    /// upstreams. Other paths use the public and system roots.
    pub upstream_tls: HashMap<String, UpstreamTls>,
    /// The file this config was loaded from (`None` when parsed from a string);
    /// the server watches it for changes.
    pub source: Option<PathBuf>,
    /// Every other file the config names (certificates, keys, CA files); a change
    /// to any of them reloads the config too.
    pub files: Vec<PathBuf>,
    /// The stamps of `source` (taken before it was read) and of `files`, in that
    /// order: the versions this config was built from. Empty without a source.
    pub stamps: Vec<FileStamp>,
    /// `[pmtiles]`: the PMTiles directory cache bounds.
    pub pmtiles: PmtilesCache,
}

/// `[pmtiles]`: how much of the archives' headers and directories is kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtilesCache {
    /// At most this many cached directories (all archives together).
    pub entries: usize,
    /// At most this many bytes of decoded directory entries.
    pub bytes: usize,
}

impl Config {
    /// The path in `id`'s lineage (itself first) that sets `pick`, and its value.
    pub fn path_limit<T: Copy>(&self, id: Option<&str>, pick: impl Fn(&PathLimits) -> Option<T>) -> Option<(&str, T)> {
        let path = self.paths.get(id?)?;
        path.lineage()
            .find_map(|p| self.path_limits.get_key_value(p).and_then(|(id, l)| pick(l).map(|v| (id.as_str(), v))))
    }

    /// The request body limit for a path: its own or nearest ancestor's
    /// `[path.limits] max_body_bytes`, else `[limits] max_body_bytes`.
    pub fn max_body_bytes(&self, path_id: &str) -> u64 {
        self.path_limit(Some(path_id), |l| l.max_body_bytes).map_or(self.limits.max_body_bytes, |(_, v)| v)
    }
}

/// `[limits]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body forwarded upstream (413 above).
    pub max_body_bytes: u64,
    pub per_token: Option<Rate>,
    pub per_ip: Option<Rate>,
    pub failed_auth: Option<FailedAuth>,
    /// `limits.failed_auth.exempt`: client networks never locked out.
    pub failed_auth_exempt: Vec<IpNet>,
}

/// A token bucket: `per_second` on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// After `max` failed authentications from one client IP within `window`, that
/// IP is refused for `cooldown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAuth {
    pub max: u32,
    pub window: Duration,
    pub cooldown: Duration,
}

/// Per-path overrides of [`Limits`] (`[path.limits]`), inherited by sub-paths.
#[derive(Debug, Clone, Default)]
pub struct PathLimits {
    pub max_body_bytes: Option<u64>,
    pub per_token: Option<Rate>,
    pub per_ip: Option<Rate>,
}

/// `[ops]`: the operations listener.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    /// `/metrics`, `/healthz`, `/readyz`; off when `None`.
    pub listen: Option<SocketAddr>,
}

/// `[server.tls]`, with the certificate already loaded and checked.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub handshake_timeout: Duration,
    pub certified: Arc<rustls::sign::CertifiedKey>,
}

/// `[path.upstream.tls]`, built into a client configuration.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub client: Arc<rustls::ClientConfig>,
    /// The name to send as SNI and to verify the certificate against, instead
    /// of the URL's host.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// The token API (`/account/security/accessToken`).
#[derive(Debug, Clone)]
pub struct Api {
    pub enabled: bool,
    /// A separate listener for the token API; `None` serves it on the main listener.
    pub listen: Option<SocketAddr>,
    pub max_body_bytes: usize,
}

/// `[admin]`: the browser console, served at `/admin/` on the token API's listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admin {
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// The gateway's public base URL, without a trailing slash.
    pub public_url: String,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Close a connection with no traffic for this long.
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    /// How long a shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Poll the config file (and the files it names) for changes.
    pub watch_config: bool,
    pub tls: Option<ServerTls>,
    /// Connections one client address may hold (IPv6 by /64; trusted proxies exempt).
    pub max_connections_per_ip: Option<usize>,
    /// The longest wait for request body bytes, and the allowance before `body_min_rate` applies.
    pub body_read_timeout: Duration,
    /// Bytes per second a request body must average after `body_read_timeout`.
    pub body_min_rate: u64,
    /// `server.runtime`: one multi-thread runtime, or one single-thread runtime per core.
    pub runtime: Runtime,
    /// `server.workers`: threads serving requests; `None` is the available parallelism
    /// (see [`Server::worker_count`]).
    pub workers: Option<usize>,
}

impl Server {
    /// The threads that serve requests: `server.workers`, or as many as this process
    /// may run on at once (its CPU affinity counts: `taskset -c 1` makes it 1).
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// `server.runtime`: how connections are scheduled onto threads (src/server/workers.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One tokio multi-thread runtime: tasks move between its worker threads.
    MultiThread,
    /// One single-thread runtime per worker, each with its own `SO_REUSEPORT` listener
    /// and upstream connections: a connection and its requests never leave their thread.
    PerCore,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::MultiThread => "multi-thread",
            Runtime::PerCore => "per-core",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    /// The SQLite file (unused when `postgres` is set). Absolute, or relative to the
    /// working directory when the config came from a string.
    pub path: PathBuf,
    /// `store.url`: the shared PostgreSQL store instead of the SQLite file.
    pub postgres: Option<Postgres>,
    /// How long cached grants are served while the store cannot be reached.
    pub max_stale: std::time::Duration,
    /// How long one store call may take before it counts as failed (503).
    pub query_timeout: std::time::Duration,
    /// How often the watcher polls the store's revision (PostgreSQL: the backstop
    /// behind `LISTEN`).
    pub poll_interval: std::time::Duration,
    /// `store.usage_flush_interval`: how often recorded token usage is written.
    pub usage_flush_interval: std::time::Duration,
}

/// `store.url` and its companions, checked and ready to connect. `Debug` never
/// shows the password (`tokio_postgres::Config` redacts it).
#[derive(Debug, Clone)]
pub struct Postgres {
    /// Parsed from `store.url`, with the password from the URL, `store.password_file`
    /// or `store.password_env`.
    pub config: tokio_postgres::Config,
    /// Roots for TLS to the server: `store.ca_file`, else the public and system roots.
    pub tls: std::sync::Arc<rustls::ClientConfig>,
    pub pool_size: usize,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub prefix: String,
    pub allow_query_token: bool,
}

#[derive(Debug, Clone)]
pub struct UpstreamLimits {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
}

/// `[ogc]`: how the OGC endpoints answer refusals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ogc {
    pub exception_status: ExceptionStatus,
}

/// The HTTP status of an OGC exception document (`ogc.exception_status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExceptionStatus {
    /// The refusal's own status (403, 404, 400, 502…).
    #[default]
    Refusal,
    /// 200, as GeoServer and MapServer answer exceptions: GDAL (3.6) and QGIS show
    /// the exception's text only then. 401 and 429 keep theirs (the challenge, the
    /// back-off).
    Ok,
}

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    canonical: Option<PathBuf>,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// The stamp of `path` now (following symlinks); a missing file has an empty one.
    pub fn of(path: &Path) -> FileStamp {
        let canonical = std::fs::canonicalize(path).ok();
        match std::fs::metadata(path) {
            Ok(m) => FileStamp { canonical, inode: inode(&m), len: m.len(), modified: m.modified().ok() },
            Err(_) => FileStamp { canonical, inode: 0, len: 0, modified: None },
        }
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino() ^ m.dev().rotate_left(32)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}
