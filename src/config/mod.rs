//! Configuration: `config.toml` parsed into a raw serde mirror ([`raw`]) and
//! validated into the runtime [`Config`] that the rest of the gateway reads.
//!
//! Runtime code never sees a raw type. Validation reports every problem at once,
//! each naming the key path, the bad value and what is valid.

pub mod raw;
mod validate;

pub use validate::{load, parse, ConfigError, ConfigErrors};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    pub paths: PathTable,
}

/// The token API (`/account/security/accessToken`).
#[derive(Debug, Clone)]
pub struct Api {
    pub enabled: bool,
    /// A separate listener for the token API; `None` serves it on the main listener.
    pub listen: Option<SocketAddr>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// The gateway's public base URL, without a trailing slash.
    pub public_url: String,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// Absolute, or relative to the working directory when the config came from a string.
    pub path: PathBuf,
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

/// Whether a path is a folder or a layer, and which kind of layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Folder,
    Raster,
    Vector,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Folder => "folder",
            PathKind::Raster => "raster",
            PathKind::Vector => "vector",
        }
    }
}

/// A URL template with `{z}`, `{x}`, `{y}` placeholders (also `{-y}` for TMS order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileTemplate(pub String);

/// Where one layer's protocols live upstream. Every URL is absolute `http(s)://`.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    /// `/path/{id}/…` is forwarded under this base (ends with `/`).
    pub base: Option<http::Uri>,
    pub xyz: Option<TileTemplate>,
    pub mvt: Option<TileTemplate>,
    pub wms: Option<http::Uri>,
    pub wmts: Option<http::Uri>,
    /// The WMTS RESTful base, when the upstream serves it apart from KVP (MapProxy
    /// `/wmts`); `None` uses `wmts`.
    pub wmts_rest: Option<http::Uri>,
    pub wfs: Option<http::Uri>,
    pub wcs: Option<http::Uri>,
    pub ogcapi: Option<http::Uri>,
}

/// One declared path (folder or layer).
#[derive(Debug, Clone)]
pub struct PathConfig {
    pub id: String,
    pub kind: PathKind,
    /// This path's id followed by its ancestors' up to the root.
    pub lineage: Vec<String>,
    pub upstream: Upstreams,
    /// Upstream layer names this path covers.
    pub layers: Vec<String>,
    /// Extra KVP parameter names (upper case) this path lets through.
    pub allow_params: Vec<String>,
    /// The vector layer's known property names; `None` when not declared.
    /// Requests naming a property outside this list are refused.
    pub properties: Option<Vec<String>>,
    /// WMTS / OGC API tile matrix set ids to treat as Web Mercator quad sets,
    /// besides the well-known names.
    pub webmercator_matrix_sets: Vec<String>,
    /// The upstream's WMTS RESTful tile template, relative to the WMTS REST base.
    pub wmts_rest_template: Option<String>,
    /// Dataset-level OGC API tiles (which mix collections) are served only when the
    /// path covers every upstream collection and says so.
    pub dataset_tiles: bool,
    /// Geometry property names, never hidden by a property fence.
    pub geometry_properties: Vec<String>,
    /// The largest WMS WIDTH/HEIGHT.
    pub max_image_size: u32,
}

impl PathConfig {
    /// A path with no parent, no upstream and every optional key at its default
    /// (tests and the demo start from here).
    pub fn new(id: &str, kind: PathKind) -> Self {
        PathConfig {
            id: id.to_owned(),
            kind,
            lineage: vec![id.to_owned()],
            upstream: Upstreams::default(),
            layers: Vec::new(),
            allow_params: Vec::new(),
            properties: None,
            webmercator_matrix_sets: Vec::new(),
            wmts_rest_template: None,
            dataset_tiles: false,
            geometry_properties: Vec::new(),
            max_image_size: crate::ogc::MAX_IMAGE_SIZE,
        }
    }

    /// The OGC classifier's options for this path.
    pub fn ogc_options(&self) -> crate::ogc::Options<'_> {
        crate::ogc::Options {
            max_image_size: self.max_image_size,
            webmercator_matrix_sets: &self.webmercator_matrix_sets,
            wmts_rest_template: self.wmts_rest_template.as_deref(),
            dataset_tiles: self.dataset_tiles,
            geometry_properties: &self.geometry_properties,
        }
    }
}

impl PathConfig {
    /// This path's id, then each ancestor's, nearest first.
    pub fn lineage(&self) -> impl Iterator<Item = &str> {
        self.lineage.iter().map(String::as_str)
    }

    /// True when `layer` is one of the upstream layers this path declares.
    pub fn covers_layer(&self, layer: &str) -> bool {
        self.layers.iter().any(|l| l == layer)
    }
}

/// All declared paths by id.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    by_id: HashMap<String, Arc<PathConfig>>,
}

impl PathTable {
    pub fn new(paths: impl IntoIterator<Item = PathConfig>) -> Self {
        PathTable { by_id: paths.into_iter().map(|p| (p.id.clone(), Arc::new(p))).collect() }
    }
    pub fn get(&self, id: &str) -> Option<&Arc<PathConfig>> {
        self.by_id.get(id)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<PathConfig>> {
        self.by_id.values()
    }
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
