//! Paths: the folders and layers declared in `config.toml`, as the rest of the
//! gateway reads them.
//!
//! A leaf module: [`config`](crate::config) builds these types, and the classifier
//! ([`ogc`](crate::ogc)), the decision ([`policy`](crate::policy)), the token API and
//! the forwarder read them. It depends on nothing else in the crate, which is what
//! keeps `config → ogc → policy → config` from being a cycle.
//!
//! Must never: hold runtime state, do I/O, or know about a protocol's rules beyond
//! where its upstream endpoint lives.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The default largest WMS WIDTH or HEIGHT (pixels) a GetMap, GetFeatureInfo or
/// GetLegendGraphic may ask for; `max_image_size` on a path overrides it.
pub const MAX_IMAGE_SIZE: u32 = 4096;

/// A declared path's id (`osm`, `basemaps`), cheap to clone (one reference count).
///
/// Ids are validated by config (1 to 128 letters, digits, `-` or `_`); a `PathId`
/// only ever holds one that passed.
///
/// ```
/// use tilegate::paths::PathId;
/// let id = PathId::from("osm");
/// assert_eq!(id, "osm");
/// assert_eq!(id.to_string(), "osm");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(Arc<str>);

impl PathId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PathId {
    fn from(s: &str) -> Self {
        PathId(Arc::from(s))
    }
}

impl From<String> for PathId {
    fn from(s: String) -> Self {
        PathId(Arc::from(s))
    }
}

impl std::ops::Deref for PathId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for PathId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PathId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for PathId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for PathId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for PathId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
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
    /// A martin tile server's base URL (`/ogc/martin/{id}/…`); the path's `layers`
    /// name the martin source ids it covers.
    pub martin: Option<http::Uri>,
    /// TiTiler's root (`titiler.application`), served at `/ogc/titiler/{pathId}/cog/…`.
    pub titiler: Option<http::Uri>,
    /// A PMTiles v3 archive (`[path.upstream] pmtiles`), served by `crate::pmtiles`.
    pub pmtiles: Option<ArchiveSource>,
}

/// Where a PMTiles archive lives: a file on disk, or an `http(s)://` URL read with
/// range requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArchiveSource {
    File(std::path::PathBuf),
    Http(http::Uri),
}

impl fmt::Display for ArchiveSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveSource::File(p) => write!(f, "file://{}", p.display()),
            ArchiveSource::Http(u) => write!(f, "{u}"),
        }
    }
}

/// One declared path (folder or layer).
#[derive(Debug, Clone)]
pub struct PathConfig {
    pub id: PathId,
    pub kind: PathKind,
    /// This path's id followed by its ancestors' up to the root.
    pub lineage: Vec<PathId>,
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
    /// The largest WMS WIDTH/HEIGHT, and the largest decoded image side the clipper accepts.
    pub max_image_size: u32,
    /// What a fenced token gets for a tile or map that only partly overlaps its fence.
    pub partial: Partial,
    /// The colour outside the fence in clipped JPEG answers (no transparency there).
    pub background: [u8; 3],
    /// The namespace URI of each type name prefix the path's WFS layers use (`""`: the
    /// namespace of unprefixed names): what a WFS XML body may bind them to.
    pub wfs_namespaces: Vec<(String, String)>,
    /// `pmtiles_range`: PMTiles-aware clients may read the archive with range
    /// requests at `/path/{id}/archive.pmtiles` (judged range by range).
    pub pmtiles_range: bool,
    /// The TiTiler datasets this path serves, in canonical form
    /// (`ogc::titiler::canonical_dataset`): exact URLs, or prefixes ending in `/`.
    pub titiler_datasets: Vec<String>,
    /// The software behind the path's OGC endpoints (`server`), where servers write
    /// the same request's answer differently.
    pub server: Server,
}

/// The software behind a path's OGC endpoints (`[[path]] server`). Servers differ in
/// the axis order and CRS they write an answer in for the same request (attacker round
/// 10: QGIS Server writes WFS GeoJSON in longitude, latitude whatever `SRSNAME` asks,
/// OGC API `crs=…/EPSG/…/4326` longitude first, and GML axis orders that do not follow
/// the `srsName` it writes). A fence reads an answer in the order its declared server
/// writes; [`Server::Unknown`] (the default) reads only what every mainstream server
/// writes alike and refuses the rest to fenced tokens (`unsupported_crs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Server {
    #[default]
    Unknown,
    MapServer,
    GeoServer,
    Qgis,
    Pygeoapi,
    MapProxy,
}

impl Server {
    /// The names `server` accepts.
    pub const NAMES: [&'static str; 5] = ["mapserver", "geoserver", "qgis", "pygeoapi", "mapproxy"];

    /// The server `name` names (ASCII case-insensitive), `None` for any other.
    pub fn from_name(name: &str) -> Option<Server> {
        const ALL: [Server; 5] =
            [Server::MapServer, Server::GeoServer, Server::Qgis, Server::Pygeoapi, Server::MapProxy];
        Server::NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| ALL[i])
    }
}

/// What a fenced token gets for a tile or map that only partly overlaps its fence
/// (`[path] partial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partial {
    /// Forwarded, and the answer clipped: pixels outside the fence masked, vector
    /// features outside dropped or cut at the fence.
    #[default]
    Clip,
    /// Refused (`outside_geofence`), as a pass-through proxy must.
    Deny,
}

/// The default JPEG background outside the fence: white.
pub const DEFAULT_BACKGROUND: [u8; 3] = [255, 255, 255];

impl PathConfig {
    /// A path with no parent, no upstream and every optional key at its default
    /// (tests and the demo start from here).
    pub fn new(id: &str, kind: PathKind) -> Self {
        PathConfig {
            id: PathId::from(id),
            kind,
            lineage: vec![PathId::from(id)],
            upstream: Upstreams::default(),
            layers: Vec::new(),
            allow_params: Vec::new(),
            properties: None,
            webmercator_matrix_sets: Vec::new(),
            wmts_rest_template: None,
            dataset_tiles: false,
            geometry_properties: Vec::new(),
            max_image_size: MAX_IMAGE_SIZE,
            partial: Partial::Clip,
            background: DEFAULT_BACKGROUND,
            wfs_namespaces: Vec::new(),
            pmtiles_range: false,
            titiler_datasets: Vec::new(),
            server: Server::Unknown,
        }
    }

    /// This path's id, then each ancestor's, nearest first.
    pub fn lineage(&self) -> impl Iterator<Item = &str> {
        self.lineage.iter().map(PathId::as_str)
    }

    /// True when `layer` is one of the upstream layers this path declares.
    pub fn covers_layer(&self, layer: &str) -> bool {
        self.layers.iter().any(|l| l == layer)
    }
}

/// All declared paths by id.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    by_id: HashMap<PathId, Arc<PathConfig>, foldhash::fast::RandomState>,
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
