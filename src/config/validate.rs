//! Raw → runtime conversion with operator-facing errors.
//!
//! Every problem is collected, not just the first, and each names the key path,
//! the bad value in backticks and what is valid.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::raw::{RawConfig, RawFailedAuth, RawLimits, RawPath, RawPathLimits, RawRate, RawServerTls, RawUpstreams};
use super::unknown;
use super::{
    tls, Admin, Api, Config, ExceptionStatus, FailedAuth, Limits, Log, LogFormat, Ogc, Ops, PathLimits, Rate, Server,
    ServerTls, Store, Tokens, UpstreamLimits, UpstreamTls,
};
use crate::paths::{PathConfig, PathId, PathKind, PathTable, TileTemplate, Upstreams};

/// The most `server.workers` a config may ask for (far more threads than any
/// machine tilegate serves from has cores).
const MAX_WORKERS: u64 = 1024;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key path, such as `path[2].parent`.
    pub key: String,
    pub message: String,
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} configuration error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a config file. A relative `store.path` is taken relative to
/// the file's folder.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let stamp = super::FileStamp::of(path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            key: path.display().to_string(),
            message: format!("cannot read the config file: {e}; pass another with --config FILE"),
        }])
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut config = parse(&text, &base)?;
    config.source = Some(path.to_path_buf());
    config.stamps = std::iter::once(stamp).chain(config.files.iter().map(|f| super::FileStamp::of(f))).collect();
    Ok(config)
}

/// Parses and validates config text; `base` is the folder relative paths start from.
/// Unknown keys, a value of the wrong type and semantic problems are all reported
/// together (only a TOML syntax error stops before the rest is read).
pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let de = toml::Deserializer::parse(text).map_err(|e| single("config.toml", toml_message(&e)))?;
    let mut ignored = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| ignored.push(unknown::segments(&path));
    let parsed: Result<RawConfig, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(de, &mut record));
    let mut errors: Vec<ConfigError> = ignored.iter().map(|s| unknown::error(s)).collect();
    let raw = match parsed {
        Ok(raw) => raw,
        Err(e) => {
            let key = e.path().to_string();
            errors.push(ConfigError {
                key: if key == "." { "config.toml".into() } else { key },
                message: toml_message(e.inner()),
            });
            return Err(ConfigErrors(errors));
        }
    };
    let mut v = Validator { base: base.to_path_buf(), errors, ..Validator::default() };
    let config = v.config(raw, base);
    match config {
        Some(config) if v.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(v.errors)),
    }
}

/// Validates a `[store]` table alone (`tilegate store migrate --to`), with the
/// same checks and messages as in a config file.
pub fn store(raw: &super::raw::RawStore, base: &Path) -> Result<Store, ConfigErrors> {
    let mut v = Validator { base: base.to_path_buf(), ..Validator::default() };
    match v.store(raw, base) {
        Some(store) if v.errors.is_empty() => Ok(store),
        _ => Err(ConfigErrors(v.errors)),
    }
}

fn single(key: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { key: key.to_owned(), message }])
}

fn toml_message(e: &toml::de::Error) -> String {
    // The toml error carries its own line/column rendering; keep it on one line.
    e.to_string().lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" ")
}

#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
    /// The folder relative file names start from.
    base: PathBuf,
    /// Files the config names, watched for changes besides the config itself.
    files: Vec<PathBuf>,
    path_limits: HashMap<String, PathLimits, foldhash::fast::RandomState>,
    upstream_tls: HashMap<String, UpstreamTls>,
}

impl Validator {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError { key: key.into(), message: message.into() });
    }

    fn config(&mut self, raw: RawConfig, base: &Path) -> Option<Config> {
        let listen = self.addr("server.listen", &raw.server.listen);
        let public_url = match &raw.server.public_url {
            Some(url) => self.public_url(url),
            None => listen.map(|a| format!("http://{a}")),
        };
        let trusted_proxies = raw
            .server
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.cidr(&format!("server.trusted_proxies[{i}]"), s))
            .collect();
        let header_read_timeout = self.duration("server.header_read_timeout", &raw.server.header_read_timeout);
        if raw.server.max_connections == 0 {
            self.err(
                "server.max_connections",
                "`0` would refuse every connection; use a positive number such as 10000",
            );
        }
        let prefix = raw.tokens.prefix;
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            self.err(
                "tokens.prefix",
                format!("`{prefix}` is not a valid prefix; use 1 to 16 lowercase letters or digits, such as `tg`"),
            );
        }
        let connect_timeout = self.duration("upstream.connect_timeout", &raw.upstream.connect_timeout);
        let response_timeout = self.duration("upstream.response_timeout", &raw.upstream.response_timeout);
        let format = match raw.log.format.as_str() {
            "plain" => Some(LogFormat::Plain),
            "json" => Some(LogFormat::Json),
            other => {
                self.err("log.format", format!("`{other}` is not a log format; valid: `plain`, `json`"));
                None
            }
        };
        let exception_status = match raw.ogc.exception_status.as_str() {
            "refusal" => Some(ExceptionStatus::Refusal),
            "ok" => Some(ExceptionStatus::Ok),
            other => {
                self.err(
                    "ogc.exception_status",
                    format!("`{other}` is not an exception status; valid: `refusal` (the refusal's own), `ok` (200)"),
                );
                None
            }
        };
        let api_listen = raw.api.listen.as_deref().and_then(|a| self.addr("api.listen", a));
        if raw.api.max_body_bytes == 0 {
            self.err("api.max_body_bytes", "`0` would refuse every token request; the default is 1048576");
        }
        if raw.admin.enabled && !raw.api.enabled {
            self.err(
                "admin.enabled",
                "the console needs the token API; set `api.enabled = true` or `admin.enabled = false`",
            );
        }
        let idle_timeout = self.duration("server.idle_timeout", &raw.server.idle_timeout);
        let shutdown_grace = self.duration("server.shutdown_grace", &raw.server.shutdown_grace);
        let body_read_timeout = self.duration("server.body_read_timeout", &raw.server.body_read_timeout);
        if raw.server.max_connections_per_ip == Some(0) {
            self.err(
                "server.max_connections_per_ip",
                "`0` would refuse every connection; use a positive number such as 64, or remove the key for no cap",
            );
        }
        if !(8192..=16 * 1024 * 1024).contains(&raw.server.max_header_bytes) {
            self.err(
                "server.max_header_bytes",
                format!(
                    "`{}` is out of range; use 8192 to 16777216 (the default is 65536)",
                    raw.server.max_header_bytes
                ),
            );
        }
        let runtime = match raw.server.runtime.as_str() {
            "multi-thread" => Some(super::Runtime::MultiThread),
            "per-core" => Some(super::Runtime::PerCore),
            other => {
                self.err(
                    "server.runtime",
                    format!("`{other}` is not a runtime; valid: `multi-thread` (the default), `per-core`"),
                );
                None
            }
        };
        if raw.server.workers.is_some_and(|n| !(1..=MAX_WORKERS).contains(&n)) {
            self.err(
                "server.workers",
                format!(
                    "`{}` is out of range; use 1 to {MAX_WORKERS}, or remove the key for one per available core",
                    raw.server.workers.unwrap_or_default()
                ),
            );
        }
        let server_tls = raw.server.tls.as_ref().map(|t| self.server_tls(t));
        let limits = self.limits(&raw.limits);
        let ops_listen = raw.ops.listen.as_deref().and_then(|a| self.addr("ops.listen", a));
        let paths = self.paths(raw.paths);
        let pmtiles_cache = self.pmtiles_cache(&raw.pmtiles);
        let store = self.store(&raw.store, base);
        let tls = match server_tls {
            Some(t) => Some(t?),
            None => None,
        };
        Some(Config {
            server: Server {
                listen: listen?,
                public_url: public_url?,
                trusted_proxies,
                header_read_timeout: header_read_timeout?,
                max_connections: raw.server.max_connections as usize,
                idle_timeout: idle_timeout?,
                max_header_bytes: raw.server.max_header_bytes as usize,
                shutdown_grace: shutdown_grace?,
                watch_config: raw.server.watch_config,
                tls,
                max_connections_per_ip: raw.server.max_connections_per_ip.map(|n| n as usize),
                body_read_timeout: body_read_timeout?,
                body_min_rate: raw.server.body_min_rate,
                runtime: runtime?,
                workers: raw.server.workers.map(|n| n as usize),
            },
            store: store?,
            tokens: Tokens { prefix, allow_query_token: raw.tokens.allow_query_token },
            upstream: UpstreamLimits { connect_timeout: connect_timeout?, response_timeout: response_timeout? },
            log: Log { format: format? },
            api: Api { enabled: raw.api.enabled, listen: api_listen, max_body_bytes: raw.api.max_body_bytes as usize },
            admin: Admin { enabled: raw.admin.enabled },
            limits: limits?,
            ops: Ops { listen: ops_listen },
            ogc: Ogc { exception_status: exception_status? },
            paths,
            path_limits: std::mem::take(&mut self.path_limits),
            upstream_tls: std::mem::take(&mut self.upstream_tls),
            source: None,
            files: std::mem::take(&mut self.files),
            stamps: Vec::new(),
            pmtiles: pmtiles_cache?,
        })
    }

    /// `[pmtiles]` (src/pmtiles): the directory cache bounds.
    fn pmtiles_cache(&mut self, raw: &super::raw::RawPmtiles) -> Option<super::PmtilesCache> {
        let mut ok = true;
        if raw.cache_entries < 16 {
            self.err(
                "pmtiles.cache_entries",
                format!("`{}` is too small; use 16 or more (the default is 4096)", raw.cache_entries),
            );
            ok = false;
        }
        if raw.cache_bytes < 1 << 20 {
            self.err(
                "pmtiles.cache_bytes",
                format!("`{}` is too small; use 1048576 or more (the default is 67108864)", raw.cache_bytes),
            );
            ok = false;
        }
        let entries = usize::try_from(raw.cache_entries).unwrap_or(usize::MAX);
        let bytes = usize::try_from(raw.cache_bytes).unwrap_or(usize::MAX);
        ok.then_some(super::PmtilesCache { entries, bytes })
    }

    /// `[path.upstream] pmtiles`: `file:///abs/x.pmtiles`, a file path (relative to
    /// the config's folder), or an `http(s)://` URL.
    fn archive_source(&mut self, key: &str, value: &str) -> Option<crate::paths::ArchiveSource> {
        use crate::paths::ArchiveSource;
        if value.starts_with("http://") || value.starts_with("https://") {
            return self.url(key, value).map(ArchiveSource::Http);
        }
        let file = match value.strip_prefix("file://") {
            Some(p) if p.starts_with('/') => PathBuf::from(p),
            Some(_) => {
                self.err(key, format!("`{value}` is not a file URL; write `file:///absolute/path.pmtiles`"));
                return None;
            }
            None if value.contains("://") => {
                self.err(
                    key,
                    format!("`{value}` is not a PMTiles location; use `file:///…`, a file path or an `http(s)://` URL"),
                );
                return None;
            }
            None => resolve(&self.base, value),
        };
        Some(ArchiveSource::File(file))
    }

    /// A file name from the config, relative to the config's folder, remembered for watching.
    fn file(&mut self, name: &str) -> PathBuf {
        let path = resolve(&self.base, name);
        self.files.push(path.clone());
        path
    }

    fn server_tls(&mut self, raw: &RawServerTls) -> Option<ServerTls> {
        let handshake_timeout = self.duration("server.tls.handshake_timeout", &raw.handshake_timeout);
        let cert = self.file(&raw.cert);
        let key = self.file(&raw.key);
        let certified = match tls::certified_key(&cert, &key) {
            Ok(c) => Some(c),
            Err(e) => {
                let which = if e.contains(&format!("`{}`", cert.display())) && !e.contains("does not belong") {
                    "server.tls.cert"
                } else {
                    "server.tls.key"
                };
                self.err(which, format!("{e}; `tilegate certs dev` writes a development pair, see certs/README.md"));
                None
            }
        };
        Some(ServerTls { cert, key, handshake_timeout: handshake_timeout?, certified: Arc::new(certified?) })
    }

    fn limits(&mut self, raw: &RawLimits) -> Option<Limits> {
        if raw.max_body_bytes == 0 {
            self.err("limits.max_body_bytes", "`0` would refuse every request body; the default is 10485760 (10 MiB)");
        }
        let per_token = raw.per_token.as_ref().and_then(|r| self.rate("limits.per_token", r));
        let per_ip = raw.per_ip.as_ref().and_then(|r| self.rate("limits.per_ip", r));
        let failed_auth = match &raw.failed_auth {
            Some(f) => Some(self.failed_auth(f)?),
            None => None,
        };
        let failed_auth_exempt = raw
            .failed_auth
            .iter()
            .flat_map(|f| f.exempt.iter().enumerate())
            .filter_map(|(i, s)| self.cidr(&format!("limits.failed_auth.exempt[{i}]"), s))
            .collect();
        Some(Limits { max_body_bytes: raw.max_body_bytes, per_token, per_ip, failed_auth, failed_auth_exempt })
    }

    fn rate(&mut self, key: &str, raw: &RawRate) -> Option<Rate> {
        if !(raw.rate.is_finite() && raw.rate > 0.0 && raw.rate <= 1e6) {
            self.err(
                format!("{key}.rate"),
                format!("`{}` is not a rate; use requests per second above 0, such as `100` or `0.5`", raw.rate),
            );
            return None;
        }
        let burst = raw.burst.unwrap_or_else(|| raw.rate.ceil() as u64);
        if burst == 0 || burst > u64::from(u32::MAX) {
            self.err(format!("{key}.burst"), format!("`{burst}` is not a burst size; use 1 or more requests"));
            return None;
        }
        Some(Rate { per_second: raw.rate, burst: burst as u32 })
    }

    fn failed_auth(&mut self, raw: &RawFailedAuth) -> Option<FailedAuth> {
        if raw.max == 0 || raw.max > u64::from(u32::MAX) {
            self.err(
                "limits.failed_auth.max",
                format!("`{}` is not a count; use the failures allowed per window, such as `20`", raw.max),
            );
        }
        let window = self.duration("limits.failed_auth.window", &raw.window);
        let cooldown = self.duration("limits.failed_auth.cooldown", &raw.cooldown);
        (raw.max > 0 && raw.max <= u64::from(u32::MAX)).then_some(())?;
        Some(FailedAuth { max: raw.max as u32, window: window?, cooldown: cooldown? })
    }

    fn path_limits(&mut self, key: &str, raw: &RawPathLimits) -> PathLimits {
        if raw.max_body_bytes == Some(0) {
            self.err(
                format!("{key}.max_body_bytes"),
                "`0` would refuse every request body; remove it to inherit `limits.max_body_bytes`",
            );
        }
        PathLimits {
            max_body_bytes: raw.max_body_bytes,
            per_token: raw.per_token.as_ref().and_then(|r| self.rate(&format!("{key}.per_token"), r)),
            per_ip: raw.per_ip.as_ref().and_then(|r| self.rate(&format!("{key}.per_ip"), r)),
        }
    }

    fn upstream_tls(&mut self, key: &str, raw: &super::raw::RawUpstreamTls) -> Option<UpstreamTls> {
        let ca = raw.ca.as_deref().map(|f| self.file(f));
        let client = match (&raw.client_cert, &raw.client_key) {
            (Some(c), Some(k)) => Some((self.file(c), self.file(k))),
            (None, None) => None,
            (Some(_), None) => {
                self.err(
                    format!("{key}.client_key"),
                    "`client_cert` is set but `client_key` is missing; give both for mTLS",
                );
                return None;
            }
            (None, Some(_)) => {
                self.err(
                    format!("{key}.client_cert"),
                    "`client_key` is set but `client_cert` is missing; give both for mTLS",
                );
                return None;
            }
        };
        let server_name = match raw.server_name.as_deref().map(tls::server_name) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                self.err(format!("{key}.server_name"), e);
                None
            }
            None => None,
        };
        let client_config =
            tls::upstream_client(ca.as_deref(), client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())));
        match client_config {
            Ok(c) => Some(UpstreamTls { client: Arc::new(c), server_name }),
            Err(errors) => {
                for e in errors {
                    let which = if ca.as_ref().is_some_and(|ca| e.contains(&format!("`{}`", ca.display()))) {
                        "ca"
                    } else if client.as_ref().is_some_and(|(_, k)| e.contains(&format!("`{}`", k.display()))) {
                        "client_key"
                    } else {
                        "client_cert"
                    };
                    self.err(format!("{key}.{which}"), e);
                }
                None
            }
        }
    }

    fn addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
        value
            .parse()
            .map_err(|_| {
                self.err(key, format!("`{value}` is not a socket address; use IP:PORT such as `127.0.0.1:8080`"))
            })
            .ok()
    }

    fn cidr(&mut self, key: &str, value: &str) -> Option<IpNet> {
        value
            .parse::<IpNet>()
            .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                self.err(key, format!("`{value}` is not an IP network; use CIDR notation such as `10.0.0.0/8`"))
            })
            .ok()
    }

    /// `[store]`: SQLite by `path` (the default) or PostgreSQL by `url`, never both.
    fn store(&mut self, raw: &super::raw::RawStore, base: &Path) -> Option<Store> {
        let max_stale = self.duration("store.max_stale", &raw.max_stale);
        let query_timeout = self.duration("store.query_timeout", &raw.query_timeout);
        let poll_interval = self.duration("store.poll_interval", &raw.poll_interval);
        let usage_flush_interval = self.usage_flush_interval(&raw.usage_flush_interval);
        let path = resolve(base, raw.path.as_deref().unwrap_or(&super::raw::default_store_path()));
        let Some(url) = &raw.url else {
            for (key, set) in [
                ("store.password_file", raw.password_file.is_some()),
                ("store.password_env", raw.password_env.is_some()),
                ("store.ca_file", raw.ca_file.is_some()),
            ] {
                if set {
                    self.err(key, "only used with `store.url` (PostgreSQL); remove it, or set `store.url`");
                }
            }
            return Some(Store {
                path,
                postgres: None,
                max_stale: max_stale?,
                query_timeout: query_timeout?,
                poll_interval: poll_interval?,
                usage_flush_interval: usage_flush_interval?,
            });
        };
        if raw.path.is_some() {
            self.err("store.path", "`store.path` (SQLite) and `store.url` (PostgreSQL) are both set; keep one");
        }
        if !(1..=1000).contains(&raw.pool_size) {
            self.err(
                "store.pool_size",
                format!("`{}` is out of range; use 1 to 1000 (the default is 16)", raw.pool_size),
            );
        }
        let postgres = self.postgres(url, raw);
        Some(Store {
            path,
            postgres: Some(postgres?),
            max_stale: max_stale?,
            query_timeout: query_timeout?,
            poll_interval: poll_interval?,
            usage_flush_interval: usage_flush_interval?,
        })
    }

    /// `store.usage_flush_interval`: 100ms to 10m (one batched write per interval;
    /// shorter would approach a write per request, longer would lose more on a crash).
    fn usage_flush_interval(&mut self, value: &str) -> Option<Duration> {
        let d = self.duration("store.usage_flush_interval", value)?;
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&d) {
            self.err(
                "store.usage_flush_interval",
                format!("`{value}` is out of range; use 100ms to 10m (the default is 5s)"),
            );
            return None;
        }
        Some(d)
    }

    /// Parses `store.url` and finds the password. No message echoes the URL as
    /// given (it may hold the password).
    fn postgres(&mut self, url: &str, raw: &super::raw::RawStore) -> Option<super::Postgres> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            self.err("store.url", "is not a PostgreSQL URL; use `postgres://USER@HOST:PORT/DATABASE?sslmode=require`");
            return None;
        }
        let mut config: tokio_postgres::Config = match url.parse() {
            Ok(c) => c,
            Err(e) => {
                self.err(
                    "store.url",
                    format!("cannot be read ({e}); use `postgres://USER@HOST:PORT/DATABASE?sslmode=require`"),
                );
                return None;
            }
        };
        if config.get_user().is_none() {
            self.err("store.url", "names no user; use `postgres://USER@HOST/DATABASE`");
        }
        let from_url = config.get_password().is_some();
        let sources =
            usize::from(from_url) + usize::from(raw.password_file.is_some()) + usize::from(raw.password_env.is_some());
        if sources > 1 {
            self.err(
                "store.password_file",
                "the password is given more than once (in `store.url`, `store.password_file`, `store.password_env`); keep one",
            );
        }
        if let Some(file) = &raw.password_file {
            let file = self.file(file);
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let pw = text.trim_end_matches(['\r', '\n']);
                    if pw.is_empty() {
                        self.err(
                            "store.password_file",
                            format!("`{}` is empty; write the password into it", file.display()),
                        );
                    }
                    config.password(pw);
                }
                Err(e) => self.err("store.password_file", format!("cannot read `{}`: {e}", file.display())),
            }
        }
        if let Some(var) = &raw.password_env {
            match std::env::var(var) {
                Ok(pw) if !pw.is_empty() => {
                    config.password(pw);
                }
                _ => self.err(
                    "store.password_env",
                    format!("the environment variable `{var}` is not set or empty; export it before starting tilegate"),
                ),
            }
        }
        let ca = raw.ca_file.as_deref().map(|c| self.file(c));
        let tls = match super::tls::upstream_client(ca.as_deref(), None) {
            Ok(t) => std::sync::Arc::new(t),
            Err(errors) => {
                for e in errors {
                    self.err("store.ca_file", e);
                }
                return None;
            }
        };
        Some(super::Postgres { config, tls, pool_size: raw.pool_size as usize })
    }

    fn duration(&mut self, key: &str, value: &str) -> Option<Duration> {
        match humantime::parse_duration(value) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                self.err(
                    key,
                    format!(
                        "`{value}` is not a positive duration; use a number and a unit such as `500ms`, `10s` or `2m`"
                    ),
                );
                None
            }
        }
    }

    fn public_url(&mut self, url: &str) -> Option<String> {
        let ok = url
            .parse::<http::Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none());
        match ok {
            Some(_) => Some(url.trim_end_matches('/').to_owned()),
            None => {
                self.err(
                    "server.public_url",
                    format!(
                        "`{url}` is not an absolute http(s) URL without a query, such as `https://maps.example.org`"
                    ),
                );
                None
            }
        }
    }

    fn url(&mut self, key: &str, value: &str) -> Option<http::Uri> {
        let parsed = value
            .parse::<http::Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if parsed.is_none() {
            self.err(key, format!("`{value}` is not an absolute http(s) URL such as `http://127.0.0.1:9000/service`"));
        }
        parsed
    }

    fn template(&mut self, key: &str, value: &str) -> Option<TileTemplate> {
        let has_y = value.contains("{y}") || value.contains("{-y}");
        if !(value.contains("{z}") && value.contains("{x}") && has_y) {
            self.err(
                key,
                format!("`{value}` must contain `{{z}}`, `{{x}}` and `{{y}}` (or `{{-y}}` for TMS row order)"),
            );
            return None;
        }
        let probe = value.replace("{z}", "0").replace("{x}", "0").replace("{-y}", "0").replace("{y}", "0");
        self.url(key, &probe)?;
        Some(TileTemplate(value.to_owned()))
    }

    fn paths(&mut self, raw: Vec<RawPath>) -> PathTable {
        let mut seen = HashSet::new();
        for (i, p) in raw.iter().enumerate() {
            if !valid_path_id(&p.id) {
                self.err(format!("path[{i}].id"), format!("`{}` is not a valid path id; use 1 to 128 letters, digits, `-` or `_`, starting with a letter or digit", p.id));
            }
            if !seen.insert(p.id.as_str()) {
                self.err(format!("path[{i}].id"), format!("`{}` is declared twice; path ids must be unique", p.id));
            }
        }
        let kinds: HashMap<&str, &str> = raw.iter().map(|p| (p.id.as_str(), p.kind.as_str())).collect();
        let parents: HashMap<&str, Option<&str>> = raw.iter().map(|p| (p.id.as_str(), p.parent.as_deref())).collect();
        let mut declared: Vec<&str> = raw.iter().map(|p| p.id.as_str()).collect();
        declared.sort_unstable();
        let mut out = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            let key = format!("path[{i}]");
            if let Some(parent) = &p.parent {
                match kinds.get(parent.as_str()) {
                    None => self.err(
                        format!("{key}.parent"),
                        format!("`{parent}` is not a declared path; declared: {}", list(&declared)),
                    ),
                    Some(&k) if k != "folder" => self
                        .err(format!("{key}.parent"), format!("`{parent}` is a {k} layer; a parent must be a folder")),
                    _ => {}
                }
            }
            let lineage = match lineage(&p.id, &parents) {
                Ok(l) => l,
                Err(cycle) => {
                    self.err(
                        format!("{key}.parent"),
                        format!("`{}` is part of a parent cycle: {cycle}", p.parent.as_deref().unwrap_or_default()),
                    );
                    continue;
                }
            };
            if let Some(path) = self.path(&key, p, lineage) {
                out.push(path);
            }
        }
        PathTable::new(out)
    }

    fn path(&mut self, key: &str, p: &RawPath, lineage: Vec<String>) -> Option<PathConfig> {
        let kind = match p.kind.as_str() {
            "folder" => PathKind::Folder,
            "raster" => PathKind::Raster,
            "vector" => PathKind::Vector,
            other => {
                self.err(
                    format!("{key}.kind"),
                    format!("`{other}` is not a path kind; valid: `folder`, `raster`, `vector`"),
                );
                return None;
            }
        };
        let upstream = match (&p.upstream, kind) {
            (Some(_), PathKind::Folder) => {
                self.err(format!("{key}.upstream"), "a folder has no upstream; declare layers under it with `parent`");
                Upstreams::default()
            }
            (Some(u), _) => self.upstreams(&format!("{key}.upstream"), u),
            (None, PathKind::Folder) => Upstreams::default(),
            (None, _) => {
                self.err(format!("{key}.upstream"), format!("layer `{}` needs a `[path.upstream]` table with at least one of `base`, `xyz`, `mvt`, `wms`, `wmts`, `wfs`, `wcs`, `ogcapi`, `martin`, `titiler`", p.id));
                Upstreams::default()
            }
        };
        for (j, l) in p.layers.iter().enumerate() {
            if l.trim().is_empty() || l.contains(',') {
                self.err(
                    format!("{key}.layers[{j}]"),
                    format!("`{l}` is not an upstream layer name; names are non-empty and contain no comma"),
                );
            }
        }
        if let Some(m) = &upstream.martin {
            // martin: `layers` names the source ids the path covers (see `ogc::martin`).
            if p.layers.is_empty() {
                self.err(
                    format!("{key}.layers"),
                    "a path with `upstream.martin` lists the martin source ids it covers in `layers`",
                );
            }
            for (j, l) in p.layers.iter().enumerate() {
                if let Err(why) = crate::ogc::martin::check_source_id(l) {
                    self.err(format!("{key}.layers[{j}]"), format!("`{l}` is not a martin source id here: {why}"));
                }
            }
            if m.query().is_some() {
                self.err(format!("{key}.upstream.martin"), format!("`{m}` has a query; give martin's base URL"));
            }
        }
        if kind == PathKind::Folder && !p.layers.is_empty() {
            self.err(format!("{key}.layers"), "a folder covers no upstream layers itself; list them on its layers");
        }
        if p.properties.is_some() && kind != PathKind::Vector {
            self.err(
                format!("{key}.properties"),
                format!("`{}` is a {} path; `properties` declares a vector layer's attributes", p.id, kind.as_str()),
            );
        }
        let allow_params = p.allow_params.iter().map(|s| s.to_ascii_uppercase()).collect();
        if let Some(t) = &p.wmts_rest_template {
            if let Err(e) = crate::ogc::validate_rest_template(t) {
                self.err(format!("{key}.wmts_rest_template"), format!("`{t}` is not a WMTS REST template: {e}"));
            }
        }
        let max_image_size = match p.max_image_size {
            Some(0) => {
                self.err(format!("{key}.max_image_size"), "`0` would refuse every map; the default is 4096");
                0
            }
            Some(n) => n,
            None => crate::paths::MAX_IMAGE_SIZE,
        };
        let partial = match p.partial.as_deref() {
            None | Some("clip") => crate::paths::Partial::Clip,
            Some("deny") => crate::paths::Partial::Deny,
            Some(other) => {
                self.err(
                    format!("{key}.partial"),
                    format!("`{other}` is not a mode; use `clip` (the default) or `deny`"),
                );
                crate::paths::Partial::Deny
            }
        };
        let background = match p.background.as_deref() {
            None => crate::paths::DEFAULT_BACKGROUND,
            Some(text) => crate::filter::raster::parse_colour(text).unwrap_or_else(|| {
                self.err(
                    format!("{key}.background"),
                    format!("`{text}` is not a colour; write `#rrggbb`, e.g. `#ffffff`"),
                );
                crate::paths::DEFAULT_BACKGROUND
            }),
        };
        if let Some(l) = &p.limits {
            let limits = self.path_limits(&format!("{key}.limits"), l);
            self.path_limits.insert(p.id.clone(), limits);
        }
        if let Some(t) = p.upstream.as_ref().and_then(|u| u.tls.as_ref()) {
            if let Some(tls) = self.upstream_tls(&format!("{key}.upstream.tls"), t) {
                self.upstream_tls.insert(p.id.clone(), tls);
            }
        }
        // PMTiles range reads hand out raw tile bytes: nothing in them can be dropped.
        if p.pmtiles_range {
            if p.upstream.as_ref().is_none_or(|u| u.pmtiles.is_none()) {
                self.err(
                    format!("{key}.pmtiles_range"),
                    format!("`{}` has no `[path.upstream] pmtiles` archive to read", p.id),
                );
            }
            if !p.layers.is_empty() {
                self.err(format!("{key}.pmtiles_range"), format!("`{}` declares `layers`; raw tile bytes read by range would carry every layer, so remove `layers` or `pmtiles_range`", p.id));
            }
        }
        // WFS type name prefixes and the namespace URIs XML bodies may bind them to.
        for (prefix, uri) in &p.wfs_namespaces {
            let ncname = prefix.is_empty()
                || (prefix.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
            if !ncname {
                self.err(
                    format!("{key}.wfs_namespaces"),
                    format!("`{prefix}` is not a namespace prefix (letters, digits, `_`, `-`, `.`; `\"\"` for unprefixed names)"),
                );
            }
            if uri.trim().is_empty() || uri.trim() != uri {
                self.err(format!("{key}.wfs_namespaces.{prefix}"), format!("`{uri}` is not a namespace URI"));
            }
        }
        let titiler_datasets = self.titiler_datasets(key, p, &upstream);
        let server = match p.server.as_deref() {
            None => crate::paths::Server::Unknown,
            Some(name) => crate::paths::Server::from_name(name).unwrap_or_else(|| {
                self.err(
                    format!("{key}.server"),
                    format!(
                        "`{name}` is not a server tilegate knows; use one of {} (or leave `server` out: answers are then read only where every server writes them alike)",
                        crate::paths::Server::NAMES.join(", ")
                    ),
                );
                crate::paths::Server::Unknown
            }),
        };
        Some(PathConfig {
            id: p.id.as_str().into(),
            kind,
            lineage: lineage.into_iter().map(PathId::from).collect(),
            upstream,
            layers: p.layers.clone(),
            allow_params,
            properties: p.properties.clone(),
            webmercator_matrix_sets: p.webmercator_matrix_sets.clone(),
            wmts_rest_template: p.wmts_rest_template.clone(),
            dataset_tiles: p.dataset_tiles,
            geometry_properties: p.geometry_properties.clone(),
            max_image_size,
            partial,
            background,
            wfs_namespaces: p.wfs_namespaces.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            pmtiles_range: p.pmtiles_range,
            titiler_datasets,
            server,
        })
    }

    fn upstreams(&mut self, key: &str, u: &RawUpstreams) -> Upstreams {
        let mut url = |name: &str, v: &Option<String>| v.as_deref().and_then(|s| self.url(&format!("{key}.{name}"), s));
        let base = url("base", &u.base).map(|b| {
            if b.path().ends_with('/') {
                b
            } else {
                // INVARIANT: appending `/` to a valid absolute URI's path keeps it valid.
                format!("{b}/").parse().unwrap_or(b)
            }
        });
        let wms = url("wms", &u.wms);
        let wmts = url("wmts", &u.wmts);
        let wmts_rest = url("wmts_rest", &u.wmts_rest);
        let wfs = url("wfs", &u.wfs);
        let wcs = url("wcs", &u.wcs);
        let ogcapi = url("ogcapi", &u.ogcapi);
        let martin = url("martin", &u.martin);
        let titiler = url("titiler", &u.titiler);
        let xyz = u.xyz.as_deref().and_then(|t| self.template(&format!("{key}.xyz"), t));
        let mvt = u.mvt.as_deref().and_then(|t| self.template(&format!("{key}.mvt"), t));
        let pmtiles = u.pmtiles.as_deref().and_then(|v| self.archive_source(&format!("{key}.pmtiles"), v));
        let out = Upstreams { base, xyz, mvt, wms, wmts, wmts_rest, wfs, wcs, ogcapi, martin, titiler, pmtiles };
        if [
            u.base.is_none(),
            u.xyz.is_none(),
            u.mvt.is_none(),
            u.wms.is_none(),
            u.wmts.is_none(),
            u.wfs.is_none(),
            u.wcs.is_none(),
            u.ogcapi.is_none(),
            u.pmtiles.is_none(),
            u.martin.is_none(),
            u.titiler.is_none(),
        ]
        .iter()
        .all(|&none| none)
        {
            self.err(
                key,
                "names no upstream; give at least one of `base`, `xyz`, `mvt`, `wms`, `wmts`, `wfs`, `wcs`, `ogcapi`, `martin`, `titiler`, `pmtiles`",
            );
        }
        out
    }
}

impl Validator {
    /// `titiler_datasets`: required with `upstream.titiler` (a TiTiler path without
    /// them would open any `url=`), meaningless without it; each entry in canonical form.
    fn titiler_datasets(&mut self, key: &str, p: &RawPath, upstream: &Upstreams) -> Vec<String> {
        let mut out = Vec::with_capacity(p.titiler_datasets.len());
        for (j, d) in p.titiler_datasets.iter().enumerate() {
            match crate::ogc::titiler::canonical_dataset(d, true) {
                Ok(c) => out.push(c),
                Err(e) => self.err(format!("{key}.titiler_datasets[{j}]"), format!("`{d}` {e}")),
            }
        }
        match (upstream.titiler.is_some(), p.titiler_datasets.is_empty()) {
            (true, true) => self.err(
                format!("{key}.titiler_datasets"),
                "a TiTiler path must list the datasets it serves (`titiler_datasets = [\"file:///data/cog.tif\", \"https://bucket.example/cogs/\"]`); TiTiler opens whatever `url=` names",
            ),
            (false, false) => self.err(
                format!("{key}.titiler_datasets"),
                "datasets are served only through a TiTiler upstream; add `upstream.titiler`",
            ),
            _ => {}
        }
        out
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// A path id is a slug (letters, digits, `-`, `_`) or a UUID: always one URL segment.
fn valid_path_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `id` and its ancestors, nearest first, or the cycle as text.
fn lineage(id: &str, parents: &HashMap<&str, Option<&str>>) -> Result<Vec<String>, String> {
    let mut out = vec![id.to_owned()];
    let mut cur = id;
    while let Some(Some(parent)) = parents.get(cur) {
        if out.iter().any(|p| p == parent) {
            out.push((*parent).to_owned());
            return Err(out.join(" → "));
        }
        if !parents.contains_key(parent) {
            break;
        }
        out.push((*parent).to_owned());
        cur = parent;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("/etc/tilegate")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://maps.example.org/"
trusted_proxies = ["10.0.0.0/8", "192.168.1.1"]
[store]
path = "tilegate.db"
[[path]]
id = "world"
kind = "folder"
[[path]]
id = "osm"
parent = "world"
kind = "raster"
layers = ["osm"]
[path.upstream]
base = "http://127.0.0.1:9000"
xyz = "http://127.0.0.1:9000/tiles/{z}/{x}/{y}.png"
"#;

    #[test]
    fn a_good_config_validates_into_runtime_types() {
        let c = parse(GOOD, Path::new("/etc/tilegate")).expect("valid");
        assert_eq!(c.server.public_url, "https://maps.example.org");
        assert_eq!(c.store.path, PathBuf::from("/etc/tilegate/tilegate.db"));
        assert_eq!(c.server.trusted_proxies.len(), 2);
        let osm = c.paths.get("osm").expect("osm");
        assert_eq!(osm.lineage, vec!["osm", "world"]);
        assert_eq!(osm.upstream.base.as_ref().map(ToString::to_string).as_deref(), Some("http://127.0.0.1:9000/"));
        assert!(c.tokens.allow_query_token);
    }

    #[test]
    fn a_path_names_its_server_or_none() {
        let osm =
            |text: &str| parse(text, Path::new("/etc/tilegate")).expect("valid").paths.get("osm").expect("osm").server;
        assert_eq!(osm(GOOD), crate::paths::Server::Unknown);
        let qgis = GOOD.replace("layers = [\"osm\"]\n", "layers = [\"osm\"]\nserver = \"QGIS\"\n");
        assert_eq!(osm(&qgis), crate::paths::Server::Qgis);
        let bad = GOOD.replace("layers = [\"osm\"]\n", "layers = [\"osm\"]\nserver = \"nginx\"\n");
        let e = errors(&bad);
        assert!(e.len() == 1 && e[0].contains("].server") && e[0].contains("mapserver, geoserver, qgis"), "{e:?}");
    }

    #[test]
    fn the_runtime_is_multi_thread_unless_per_core_is_asked_and_workers_are_bounded() {
        let c = parse(GOOD, Path::new("/etc/tilegate")).expect("valid");
        assert_eq!((c.server.runtime, c.server.workers), (super::super::Runtime::MultiThread, None));
        assert!(c.server.worker_count() >= 1, "the available parallelism, at least 1");
        let per_core = GOOD.replace("[server]\n", "[server]\nruntime = \"per-core\"\nworkers = 3\n");
        let c = parse(&per_core, Path::new("/etc/tilegate")).expect("valid");
        assert_eq!((c.server.runtime, c.server.worker_count()), (super::super::Runtime::PerCore, 3));
        let bad = GOOD.replace("[server]\n", "[server]\nruntime = \"thread-per-core\"\nworkers = 0\n");
        assert_eq!(
            errors(&bad),
            [
                "server.runtime: `thread-per-core` is not a runtime; valid: `multi-thread` (the default), `per-core`",
                "server.workers: `0` is out of range; use 1 to 1024, or remove the key for one per available core",
            ]
        );
    }

    #[test]
    fn a_misspelled_key_is_an_error_naming_its_path() {
        let e = errors(&GOOD.replace("layers = [\"osm\"]", "layerz = [\"osm\"]"));
        assert_eq!(e, ["path[1].layerz: `layerz` is not a key of `path[1]`; did you mean `layers`?"]);
    }

    #[test]
    fn misspelled_keys_in_three_tables_are_three_errors_in_one_run() {
        let text = GOOD
            .replace("trusted_proxies", "trusted_proxy")
            .replace("path = \"tilegate.db\"", "pth = \"tilegate.db\"")
            .replace("xyz = ", "xzy = ");
        let mut e = errors(&text);
        e.sort();
        assert_eq!(
            e,
            [
                "path[1].upstream.xzy: `xzy` is not a key of `path[1].upstream`; did you mean `xyz`?",
                "server.trusted_proxy: `trusted_proxy` is not a key of `server`; did you mean `trusted_proxies`?",
                "store.pth: `pth` is not a key of `store`; did you mean `path`?",
            ],
        );
    }

    #[test]
    fn an_unknown_key_in_a_path_names_the_path_index() {
        let text = format!("{GOOD}[[path]]\nid = \"roads\"\nkind = \"vector\"\ngeoFence = true\n[path.upstream]\nwfs = \"http://127.0.0.1:9000/wfs\"\n");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with("path[2].geoFence: `geoFence` is not a key of `path[2]`; valid: `id`, `kind`"),
            "{e:?}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_nested_table_names_the_whole_path() {
        let text = format!("{GOOD}[path.upstream.tls]\nca = \"ca.pem\"\nserver_nme = \"maps\"\n");
        let e = errors(&text);
        assert!(
            e.contains(&"path[1].upstream.tls.server_nme: `server_nme` is not a key of `path[1].upstream.tls`; did you mean `server_name`?".to_owned()),
            "{e:#?}"
        );
    }

    #[test]
    fn unknown_keys_and_semantic_errors_are_reported_together() {
        let text = GOOD.replace("parent = \"world\"", "parent = \"wrld\"\ngeofence = 1");
        let e = errors(&text);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with("path[1].geofence:"), "{e:?}");
        assert!(e[1].starts_with("path[1].parent: `wrld`"), "{e:?}");
    }

    #[test]
    fn unknown_keys_in_inline_tables_are_named_by_their_full_path() {
        let text = format!(
            "{GOOD}[path.limits]\nper_ip = {{ rate = 5, brust = 10 }}\n[limits]\nfailed_auth = {{ max = 5, cooldwn = \"1m\" }}\n"
        );
        let mut e = errors(&text);
        e.sort();
        assert_eq!(
            e,
            [
                "limits.failed_auth.cooldwn: `cooldwn` is not a key of `limits.failed_auth`; did you mean `cooldown`?",
                "path[1].limits.per_ip.brust: `brust` is not a key of `path[1].limits.per_ip`; did you mean `burst`?",
            ],
        );
    }

    #[test]
    fn a_misspelled_array_of_tables_is_refused_with_a_suggestion() {
        let e = errors(&GOOD.replace("[[path]]", "[[paths]]").replace("[path.upstream]", "[paths.upstream]"));
        assert_eq!(e, ["paths: `paths` is not a key of the top level; did you mean `path`?"]);
    }

    #[test]
    fn every_semantic_error_is_reported_at_once() {
        let text = GOOD
            .replace("parent = \"world\"", "parent = \"wrld\"")
            .replace("127.0.0.1:8080", "localhost")
            .replace("10.0.0.0/8", "10.0.0.0/33")
            .replace("{y}", "{row}");
        let e = errors(&text);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e.iter().any(|m| m == "path[1].parent: `wrld` is not a declared path; declared: `osm`, `world`"));
        assert!(e.iter().any(|m| m.starts_with("server.listen: `localhost`")));
        assert!(e.iter().any(|m| m.starts_with("server.trusted_proxies[0]: `10.0.0.0/33`")));
        assert!(e.iter().any(|m| m.starts_with("path[1].upstream.xyz:")));
    }

    #[test]
    fn structural_mistakes_are_refused() {
        let cases = [
            ("kind = \"raster\"", "kind = \"tiles\"", "path[1].kind: `tiles` is not a path kind"),
            ("id = \"osm\"", "id = \"world\"", "is declared twice"),
            ("id = \"osm\"", "id = \"os/m\"", "is not a valid path id"),
            ("base = \"http://127.0.0.1:9000\"", "base = \"ftp://x\"", "path[1].upstream.base: `ftp://x`"),
        ];
        for (from, to, want) in cases {
            let e = errors(&GOOD.replacen(from, to, 1));
            assert!(e.iter().any(|m| m.contains(want)), "{to}: {e:#?}");
        }
    }

    #[test]
    fn parent_cycles_are_refused() {
        let text = r#"
[[path]]
id = "a"
kind = "folder"
parent = "b"
[[path]]
id = "b"
kind = "folder"
parent = "a"
"#;
        let e = errors(text);
        assert!(e.iter().any(|m| m.contains("parent cycle")), "{e:#?}");
    }

    #[test]
    fn a_layer_parent_and_a_folder_upstream_are_refused() {
        let text = r#"
[[path]]
id = "osm"
kind = "raster"
[path.upstream]
base = "http://127.0.0.1:9000/"
[[path]]
id = "sub"
kind = "raster"
parent = "osm"
[path.upstream]
base = "http://127.0.0.1:9000/"
[[path]]
id = "dir"
kind = "folder"
[path.upstream]
base = "http://127.0.0.1:9000/"
"#;
        let e = errors(text);
        assert!(e.iter().any(|m| m.contains("a parent must be a folder")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("a folder has no upstream")), "{e:#?}");
    }

    #[test]
    fn operations_keys_are_validated_with_their_key_paths() {
        let cases = [
            ("[server]\nmax_header_bytes = 100\n", "server.max_header_bytes: `100` is out of range"),
            ("[server]\nshutdown_grace = \"soon\"\n", "server.shutdown_grace: `soon` is not a positive duration"),
            ("[limits]\nmax_body_bytes = 0\n", "limits.max_body_bytes: `0`"),
            ("[limits]\nper_token = { rate = 0 }\n", "limits.per_token.rate: `0` is not a rate"),
            ("[limits]\nper_ip = { rate = 5, burst = 0 }\n", "limits.per_ip.burst: `0`"),
            ("[limits]\nfailed_auth = { max = 0 }\n", "limits.failed_auth.max: `0`"),
            ("[limits]\nfailed_auth = { max = 3, window = \"1 fortnight\" }\n", "limits.failed_auth.window:"),
            ("[ops]\nlisten = \"metrics\"\n", "ops.listen: `metrics` is not a socket address"),
            ("[limits]\nper_token = { rate = 1, brust = 2 }\n", "brust"),
        ];
        for (text, want) in cases {
            let e = errors(text);
            assert!(e.iter().any(|m| m.contains(want)), "{text}: {e:#?}");
        }
    }

    #[test]
    fn path_limits_and_upstream_tls_name_the_path() {
        let text = r#"
[[path]]
id = "a"
kind = "raster"
[path.limits]
max_body_bytes = 0
per_token = { rate = -1 }
[path.upstream]
base = "https://127.0.0.1:9000/"
[path.upstream.tls]
client_cert = "gateway.pem"
server_name = "not a name!"
"#;
        let e = errors(text);
        assert!(e.iter().any(|m| m.starts_with("path[0].limits.max_body_bytes:")), "{e:#?}");
        assert!(e.iter().any(|m| m.starts_with("path[0].limits.per_token.rate:")), "{e:#?}");
        assert!(e.iter().any(|m| m.starts_with("path[0].upstream.tls.client_key:")), "{e:#?}");
        let e = errors(&text.replace("client_cert = \"gateway.pem\"\n", "ca = \"missing-ca.pem\"\n"));
        assert!(e.iter().any(|m| m.starts_with("path[0].upstream.tls.ca: cannot read")), "{e:#?}");
        assert!(e.iter().any(|m| m.starts_with("path[0].upstream.tls.server_name: `not a name!`")), "{e:#?}");
    }

    #[test]
    fn path_limits_are_inherited_from_the_nearest_folder() {
        let text = r#"
[limits]
max_body_bytes = 1000
[[path]]
id = "dir"
kind = "folder"
[path.limits]
max_body_bytes = 5000
per_ip = { rate = 2 }
[[path]]
id = "a"
parent = "dir"
kind = "raster"
[path.upstream]
base = "http://127.0.0.1:9000/"
[[path]]
id = "b"
kind = "raster"
[path.upstream]
base = "http://127.0.0.1:9000/"
"#;
        let c = parse(text, Path::new("/etc/tilegate")).expect("valid");
        assert_eq!(c.max_body_bytes("a"), 5000);
        assert_eq!(c.max_body_bytes("b"), 1000);
        let (scope, rate) = c.path_limit(Some("a"), |l| l.per_ip).expect("inherited");
        assert_eq!((scope, rate.burst), ("dir", 2), "the bucket belongs to the folder; burst defaults to the rate");
        assert!(c.path_limit(Some("b"), |l| l.per_ip).is_none());
    }
}
