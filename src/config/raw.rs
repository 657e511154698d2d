//! The raw serde mirror of `config.toml`: plain types, unknown keys refused.
//!
//! Nothing outside `config` reads these types; `validate` turns them into
//! the runtime [`Config`](super::Config). Defaults live here, next to the keys.
//! Unknown keys are not refused with `deny_unknown_fields` (which stops at the
//! first): [`super::unknown`] collects every key these types do not read, and
//! each one is an error.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub upstream: RawUpstreamLimits,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub ops: RawOps,
    #[serde(default)]
    pub ogc: RawOgc,
    #[serde(default, rename = "path")]
    pub paths: Vec<RawPath>,
    // PMTiles archives (src/pmtiles): the header/directory cache bounds.
    #[serde(default)]
    pub pmtiles: RawPmtiles,
}

/// `[pmtiles]`: the bounds of the PMTiles directory cache (src/pmtiles).
#[derive(Debug, Deserialize)]
pub struct RawPmtiles {
    #[serde(default = "default_pmtiles_cache_entries")]
    pub cache_entries: u64,
    #[serde(default = "default_pmtiles_cache_bytes")]
    pub cache_bytes: u64,
}

impl Default for RawPmtiles {
    fn default() -> Self {
        RawPmtiles { cache_entries: default_pmtiles_cache_entries(), cache_bytes: default_pmtiles_cache_bytes() }
    }
}

fn default_pmtiles_cache_entries() -> u64 {
    4096
}

fn default_pmtiles_cache_bytes() -> u64 {
    64 << 20
}

#[derive(Debug, Deserialize)]
pub struct RawServer {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub public_url: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u64,
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: String,
    #[serde(default = "default_true")]
    pub watch_config: bool,
    pub tls: Option<RawServerTls>,
    // Admission and body timeouts (src/server/admission.rs, src/server/body.rs).
    pub max_connections_per_ip: Option<u64>,
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: String,
    #[serde(default = "default_body_min_rate")]
    pub body_min_rate: u64,
    // How requests are scheduled (src/server/workers.rs).
    #[serde(default = "default_runtime")]
    pub runtime: String,
    pub workers: Option<u64>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            public_url: None,
            trusted_proxies: Vec::new(),
            header_read_timeout: default_header_read_timeout(),
            max_connections: default_max_connections(),
            idle_timeout: default_idle_timeout(),
            max_header_bytes: default_max_header_bytes(),
            shutdown_grace: default_shutdown_grace(),
            watch_config: true,
            tls: None,
            max_connections_per_ip: None,
            body_read_timeout: default_body_read_timeout(),
            body_min_rate: default_body_min_rate(),
            runtime: default_runtime(),
            workers: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_header_read_timeout() -> String {
    "10s".into()
}
fn default_max_connections() -> u64 {
    10_000
}
fn default_idle_timeout() -> String {
    "60s".into()
}
fn default_max_header_bytes() -> u64 {
    64 * 1024
}
fn default_shutdown_grace() -> String {
    "30s".into()
}
fn default_body_read_timeout() -> String {
    "10s".into()
}
fn default_body_min_rate() -> u64 {
    500
}
fn default_runtime() -> String {
    "multi-thread".into()
}

/// `[server.tls]`: serve HTTPS instead of cleartext HTTP.
#[derive(Debug, Deserialize)]
pub struct RawServerTls {
    pub cert: String,
    pub key: String,
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: String,
}

fn default_handshake_timeout() -> String {
    "10s".into()
}

/// `[limits]`: request body size, rate limits and the failed-authentication guard.
#[derive(Debug, Deserialize)]
pub struct RawLimits {
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    pub per_token: Option<RawRate>,
    pub per_ip: Option<RawRate>,
    pub failed_auth: Option<RawFailedAuth>,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits { max_body_bytes: default_max_body_bytes(), per_token: None, per_ip: None, failed_auth: None }
    }
}

fn default_max_body_bytes() -> u64 {
    10 * 1024 * 1024
}

/// A token bucket: `rate` requests per second on average, `burst` at once.
#[derive(Debug, Clone, Deserialize)]
pub struct RawRate {
    pub rate: f64,
    pub burst: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawFailedAuth {
    pub max: u64,
    #[serde(default = "default_failed_auth_window")]
    pub window: String,
    #[serde(default = "default_failed_auth_cooldown")]
    pub cooldown: String,
    /// Client networks the guard never locks out (an office NAT, a partner's egress).
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_failed_auth_window() -> String {
    "1m".into()
}
fn default_failed_auth_cooldown() -> String {
    "5m".into()
}

/// `[ops]`: the metrics and health listener.
#[derive(Debug, Default, Deserialize)]
pub struct RawOps {
    pub listen: Option<String>,
}

/// `[path.limits]`: overrides of `[limits]` for one path and the paths under it.
#[derive(Debug, Default, Deserialize)]
pub struct RawPathLimits {
    pub max_body_bytes: Option<u64>,
    pub per_token: Option<RawRate>,
    pub per_ip: Option<RawRate>,
}

/// `[path.upstream.tls]`: how to check an `https://` upstream and present ourselves.
#[derive(Debug, Default, Deserialize)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub server_name: Option<String>,
}

/// `[store]`: SQLite (`path`) or PostgreSQL (`url`), and how long cached grants
/// outlive a store outage.
#[derive(Debug, Deserialize)]
pub struct RawStore {
    /// `None`: `tilegate.db` unless `url` is given.
    pub path: Option<String>,
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    #[serde(default = "default_max_stale")]
    pub max_stale: String,
    #[serde(default = "default_query_timeout")]
    pub query_timeout: String,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    /// How often recorded token usage is written to the store (`src/usage.rs`).
    #[serde(default = "default_usage_flush_interval")]
    pub usage_flush_interval: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: None,
            url: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            pool_size: default_pool_size(),
            max_stale: default_max_stale(),
            query_timeout: default_query_timeout(),
            poll_interval: default_poll_interval(),
            usage_flush_interval: default_usage_flush_interval(),
        }
    }
}

fn default_usage_flush_interval() -> String {
    "5s".into()
}

pub fn default_store_path() -> String {
    "tilegate.db".into()
}

fn default_pool_size() -> u32 {
    16
}

fn default_max_stale() -> String {
    "30s".into()
}

fn default_poll_interval() -> String {
    "250ms".into()
}

fn default_query_timeout() -> String {
    "5s".into()
}

#[derive(Debug, Deserialize)]
pub struct RawTokens {
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_true")]
    pub allow_query_token: bool,
}

impl Default for RawTokens {
    fn default() -> Self {
        RawTokens { prefix: default_prefix(), allow_query_token: true }
    }
}

fn default_prefix() -> String {
    "tg".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct RawUpstreamLimits {
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "default_response_timeout")]
    pub response_timeout: String,
}

impl Default for RawUpstreamLimits {
    fn default() -> Self {
        RawUpstreamLimits { connect_timeout: default_connect_timeout(), response_timeout: default_response_timeout() }
    }
}

fn default_connect_timeout() -> String {
    "5s".into()
}
fn default_response_timeout() -> String {
    "30s".into()
}

#[derive(Debug, Deserialize)]
pub struct RawLog {
    #[serde(default = "default_log_format")]
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { format: default_log_format() }
    }
}

fn default_log_format() -> String {
    "plain".into()
}

/// `[ogc]`: how the OGC endpoints answer refusals.
#[derive(Debug, Deserialize)]
pub struct RawOgc {
    #[serde(default = "default_exception_status")]
    pub exception_status: String,
}

impl Default for RawOgc {
    fn default() -> Self {
        RawOgc { exception_status: default_exception_status() }
    }
}

fn default_exception_status() -> String {
    "refusal".into()
}

#[derive(Debug, Deserialize)]
pub struct RawApi {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub listen: Option<String>,
    #[serde(default = "default_api_body_limit")]
    pub max_body_bytes: u64,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi { enabled: true, listen: None, max_body_bytes: default_api_body_limit() }
    }
}

/// `[admin]`: the browser console at `/admin/` (see `crate::console`).
#[derive(Debug, Default, Deserialize)]
pub struct RawAdmin {
    /// Off unless asked for (ARCHITECTURE decision "the console is opt-in").
    #[serde(default)]
    pub enabled: bool,
}

fn default_api_body_limit() -> u64 {
    1024 * 1024
}

#[derive(Debug, Deserialize)]
pub struct RawPath {
    pub id: String,
    pub kind: String,
    pub parent: Option<String>,
    #[serde(default)]
    pub upstream: Option<RawUpstreams>,
    #[serde(default)]
    pub layers: Vec<String>,
    #[serde(default)]
    pub allow_params: Vec<String>,
    pub properties: Option<Vec<String>>,
    #[serde(default)]
    pub webmercator_matrix_sets: Vec<String>,
    pub wmts_rest_template: Option<String>,
    #[serde(default)]
    pub dataset_tiles: bool,
    #[serde(default)]
    pub geometry_properties: Vec<String>,
    pub max_image_size: Option<u32>,
    /// `clip` (default) or `deny`: tiles and maps partly inside a token's fence.
    pub partial: Option<String>,
    /// The software behind the path's OGC endpoints: `mapserver`, `geoserver`, `qgis`,
    /// `pygeoapi`, `mapproxy`; unset: unknown.
    pub server: Option<String>,
    /// `#rrggbb`: outside the fence in clipped JPEG answers (default white).
    pub background: Option<String>,
    pub limits: Option<RawPathLimits>,
    /// WFS type name prefix → namespace URI (`wfs_namespaces = { ms = "http://…" }`).
    #[serde(default)]
    pub wfs_namespaces: std::collections::BTreeMap<String, String>,
    /// PMTiles range reads through `/path/{id}/archive.pmtiles` (src/pmtiles).
    #[serde(default)]
    pub pmtiles_range: bool,
    /// The dataset URLs (or prefixes, ending in `/`) a TiTiler path serves (`url=`).
    #[serde(default)]
    pub titiler_datasets: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawUpstreams {
    pub base: Option<String>,
    pub xyz: Option<String>,
    pub mvt: Option<String>,
    pub wms: Option<String>,
    pub wmts: Option<String>,
    pub wmts_rest: Option<String>,
    pub wfs: Option<String>,
    pub wcs: Option<String>,
    pub ogcapi: Option<String>,
    /// A PMTiles v3 archive: `file:///…`, a file path, or an `http(s)://` URL.
    pub pmtiles: Option<String>,
    /// A martin tile server's base URL; the path's `layers` name its source ids.
    pub martin: Option<String>,
    /// TiTiler (`titiler.application`): `/ogc/titiler/{pathId}/cog/…`.
    pub titiler: Option<String>,
    pub tls: Option<RawUpstreamTls>,
}
