//! OGC protocols: understanding a request before the decision.
//!
//! This module owns the *route → classify* part of the pipeline for everything under
//! `/ogc/…`: it turns one request (method, the path after `/ogc/{proto}/{pathId}`, the
//! query, the bounded POST body) into the [`Operation`] that [`decide`](crate::policy::decide)
//! judges, tells the gateway what to do with the response ([`ResponseKind`]), and says
//! exactly what to forward ([`Forward`]). Capabilities rewriting lives in [`capabilities`].
//!
//! Pure code: no I/O, no clocks, no logging. Anything it cannot read is an [`OgcError`],
//! never a pass (DESIGN.md §5: "anything the gateway cannot parse is denied").
//!
//! **No parser differential.** The KVP pairs that were judged are the pairs that are
//! forwarded: [`Forward::query`] (or [`ForwardBody::Form`]) is re-encoded from the parsed
//! pairs, in their original order and spelling, so an upstream cannot read a parameter
//! the gateway did not see. XML and JSON bodies are forwarded as received
//! ([`ForwardBody::Original`]) after they parsed completely.
//!
//! **Where it sits.** `classify` needs only the path config, so it can run before the
//! token lookup; the gateway should still answer an [`OgcError`] only once the token is
//! known and the path visible to it, so that a 400 never tells a stranger that a path id
//! exists (DESIGN.md §5: invisible paths are 404).
//!
//! | protocol | module | what |
//! |---|---|---|
//! | WMS 1.1.1/1.3.0 | `wms` | GetCapabilities, GetMap, GetFeatureInfo, GetLegendGraphic |
//! | WMTS 1.0 | `wmts` | KVP GetCapabilities/GetTile/GetFeatureInfo, REST capabilities and tiles |
//! | WFS 1.0/1.1/2.0 | `wfs`, `wfs_xml` | KVP and XML POST: GetCapabilities … Transaction |
//! | WCS 2.0 | `wcs` | GetCapabilities, DescribeCoverage, GetCoverage |
//! | OGC API | `api` | Features and Tiles paths, item writes |
//! | MVT / XYZ | `tiles` | `/{z}/{x}/{y}` tiles |

pub mod capabilities;
pub mod kvp;

mod api;
mod geo;
mod tiles;
mod wcs;
mod wfs;
mod wfs_xml;
mod wms;
mod wmts;

pub use kvp::{Dialect, Kvp, Pair};
pub use wmts::{validate_rest_template, DEFAULT_WMTS_REST_TEMPLATE};

use http::Method;

use crate::config::PathConfig;
use crate::filter::props::{cql2_text_properties, fes_properties, UnreadableFilter};
use crate::policy::{Extent, Operation, Surface, Tier};

/// The GetCapabilities parameters of OWS Common (WMTS, WFS 1.1+/2.0, WCS 2.0).
pub(crate) const OWS_CAPABILITIES: &[&str] = &[
    "SERVICE",
    "VERSION",
    "REQUEST",
    "ACCEPTVERSIONS",
    "SECTIONS",
    "UPDATESEQUENCE",
    "ACCEPTFORMATS",
    "ACCEPTLANGUAGES",
];

/// The default largest WIDTH or HEIGHT (pixels) a WMS GetMap/GetFeatureInfo/GetLegendGraphic
/// may ask for; override per call with [`Options::max_image_size`].
pub const MAX_IMAGE_SIZE: u32 = 4096;

/// Tile matrix set names that are always taken to be the Web Mercator quad tree with
/// 256-pixel tiles, matrix `n` = zoom `n`, rows counted from the north. Compared
/// ASCII case-insensitively. Paths may add more with [`Options::webmercator_matrix_sets`].
pub const WEB_MERCATOR_MATRIX_SETS: &[&str] =
    &["GoogleMapsCompatible", "WebMercatorQuad", "EPSG:3857", "EPSG:900913", "GLOBAL_WEBMERCATOR"];

/// Which `/ogc/{proto}/…` family a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Wms,
    Wmts,
    Wfs,
    Wcs,
    /// OGC API Features / Tiles (`/ogc/api/{pathId}/…`).
    Api,
    /// Vector tiles (`/ogc/mvt/{pathId}/{z}/{x}/{y}`).
    Mvt,
    /// Raster XYZ tiles (`/ogc/xyz/{pathId}/{z}/{x}/{y}[.ext]`).
    Xyz,
}

impl Protocol {
    /// The URL segment (`wms`, `api`, …), also the prefix of [`Operation::name`].
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Wms => "wms",
            Protocol::Wmts => "wmts",
            Protocol::Wfs => "wfs",
            Protocol::Wcs => "wcs",
            Protocol::Api => "api",
            Protocol::Mvt => "mvt",
            Protocol::Xyz => "xyz",
        }
    }

    /// The protocol for a URL segment, exactly as written in the public URL scheme.
    ///
    /// ```
    /// use tilegate::ogc::Protocol;
    /// assert_eq!(Protocol::from_segment("wfs"), Some(Protocol::Wfs));
    /// assert_eq!(Protocol::from_segment("WFS"), None);
    /// ```
    pub fn from_segment(segment: &str) -> Option<Protocol> {
        [Protocol::Wms, Protocol::Wmts, Protocol::Wfs, Protocol::Wcs, Protocol::Api, Protocol::Mvt, Protocol::Xyz]
            .into_iter()
            .find(|p| p.as_str() == segment)
    }

    /// The KVP `SERVICE` value, for the four KVP protocols.
    pub fn service(self) -> Option<&'static str> {
        match self {
            Protocol::Wms => Some("WMS"),
            Protocol::Wmts => Some("WMTS"),
            Protocol::Wfs => Some("WFS"),
            Protocol::Wcs => Some("WCS"),
            Protocol::Api | Protocol::Mvt | Protocol::Xyz => None,
        }
    }
}

/// One request as the gateway received it, after path normalization and token removal.
#[derive(Clone, Copy, Debug)]
pub struct OgcRequest<'a> {
    pub protocol: Protocol,
    pub method: &'a Method,
    /// The normalized path after `/ogc/{proto}/{pathId}`: `""` or `"/…"`.
    pub rest: &'a str,
    /// The raw query string without `?`; the token parameter is already removed.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    /// The `Accept` header, used for OGC API content negotiation when `f` is absent.
    pub accept: Option<&'a str>,
    /// The request body (POST/PUT/PATCH), already bounded in size by the gateway.
    pub body: Option<&'a [u8]>,
}

/// Per-path settings the classifier needs beyond [`PathConfig`]. Each field is a proposed
/// path config key (see the field docs); until config carries them, callers use the defaults.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Largest WMS WIDTH/HEIGHT. Proposed key: `max_image_size` (default [`MAX_IMAGE_SIZE`]).
    pub max_image_size: u32,
    /// Extra tile matrix set names that are Web Mercator quad trees (matrix ids = zoom).
    /// Proposed key: `webmercator_matrix_sets`.
    pub webmercator_matrix_sets: &'a [String],
    /// The upstream's WMTS RESTful ResourceURL template, relative to the WMTS base.
    /// Proposed key: `wmts_rest_template` (default [`DEFAULT_WMTS_REST_TEMPLATE`]).
    pub wmts_rest_template: Option<&'a str>,
    /// True when the path covers every collection upstream, so that dataset-level OGC API
    /// tiles (`/tiles/…`, `/map/tiles/…`), which mix collections, may be served.
    /// Proposed key: `dataset_tiles` (default false: such paths are refused).
    pub dataset_tiles: bool,
    /// The layer's geometry property names. The property fence never hides geometry
    /// (`[]` means geometry only), so these are dropped from [`Operation::properties`].
    /// Proposed key: `geometry_properties` (default none).
    pub geometry_properties: &'a [String],
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            max_image_size: MAX_IMAGE_SIZE,
            webmercator_matrix_sets: &[],
            wmts_rest_template: None,
            dataset_tiles: false,
            geometry_properties: &[],
        }
    }
}

/// What a classified request is, what to do with its response, and what to forward.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    /// What [`decide`](crate::policy::decide) judges.
    pub op: Operation,
    /// What the gateway must do with the upstream response.
    pub response: ResponseKind,
    /// The output format the client asked for, as written (`OUTPUTFORMAT`, `INFO_FORMAT`,
    /// `FORMAT`, `f`, a REST extension), if it named one.
    pub format: Option<String>,
    /// Exactly what to send upstream.
    pub forward: Forward,
}

/// What to send upstream for a classified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Appended to the protocol's upstream base URL path: `""` for KVP endpoints and for
    /// MVT/XYZ (whose upstream is a template filled from the [`Extent::Tile`]); the REST
    /// or OGC API path (`"/collections/a/items"`) otherwise, as normalized.
    pub path: String,
    /// The query string to send, without `?`; `""` for none. Re-encoded from the parsed pairs.
    pub query: String,
    pub body: ForwardBody,
}

/// The body to send upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardBody {
    /// No body (GET, HEAD, DELETE).
    None,
    /// The request body unchanged (WFS XML, OGC API JSON), with the request's content type.
    Original,
    /// An `application/x-www-form-urlencoded` body, re-encoded from the judged pairs
    /// (the URL query pairs are merged into it, and [`Forward::query`] is empty).
    Form(String),
}

/// What the gateway must do with the upstream response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseKind {
    /// A capabilities document (XML for WMS/WMTS/WFS/WCS; for [`Protocol::Api`] the JSON
    /// landing page, collection lists, collection and tileset metadata): rewrite upstream
    /// URLs and remove layers/collections outside the path.
    Capabilities(Protocol),
    /// The OGC API definition (`/api`, `/openapi`): it names every upstream collection;
    /// serve only if it can be trimmed, or when the path covers the whole upstream.
    ApiDefinition,
    /// Feature data (WFS GetFeature/GetPropertyValue, OGC API items, WMS/WMTS
    /// GetFeatureInfo): filter properties and geometry; formats the gateway cannot filter
    /// are refused for fenced tokens.
    Features(DataFormat),
    /// Schemas (DescribeFeatureType, OGC API queryables/schema/sortables): trim hidden properties.
    Schema(DataFormat),
    /// A Mapbox vector tile: re-encode without hidden properties.
    Mvt,
    /// Nothing to filter: images, coverages, legends, conformance, write results.
    Other,
}

/// The family of a requested output format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataFormat {
    /// GeoJSON or plain JSON: the gateway can filter it.
    Json,
    /// GML, XML or XSD (also the WFS default when no OUTPUTFORMAT is given).
    Xml,
    /// A Mapbox vector tile.
    Mvt,
    /// Anything else (CSV, shapefile, KML, HTML, text…), as the client named it.
    Other(String),
}

impl DataFormat {
    /// Classifies a media type or an OGC format keyword.
    ///
    /// ```
    /// use tilegate::ogc::DataFormat;
    /// assert_eq!(DataFormat::from_media_type("application/geo+json"), DataFormat::Json);
    /// assert_eq!(DataFormat::from_media_type("application/json; subtype=geojson"), DataFormat::Json);
    /// assert_eq!(DataFormat::from_media_type("GML3"), DataFormat::Xml);
    /// assert_eq!(DataFormat::from_media_type("text/xml; subtype=gml/3.1.1"), DataFormat::Xml);
    /// assert_eq!(DataFormat::from_media_type("csv"), DataFormat::Other("csv".into()));
    /// // JSON dialects the GeoJSON filter cannot read
    /// assert!(!DataFormat::from_media_type("application/json;type=topojson").is_filterable());
    /// assert!(!DataFormat::from_media_type("application/json;type=utfgrid").is_filterable());
    /// assert!(DataFormat::from_media_type("application/json;type=geojson").is_filterable());
    /// ```
    pub fn from_media_type(format: &str) -> DataFormat {
        let lower = format.trim().to_ascii_lowercase();
        let mut parts = lower.split(';');
        let essence = parts.next().unwrap_or("").trim();
        // `type=`/`subtype=` name JSON dialects (TopoJSON, UTFGrid) the filters cannot read.
        let dialect = parts.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            matches!(k.trim(), "type" | "subtype").then(|| v.trim().trim_matches('"'))
        });
        if essence == "application/json" && dialect.is_some_and(|d| d != "geojson") {
            return DataFormat::Other(format.trim().to_owned());
        }
        match essence {
            "application/json"
            | "application/geo+json"
            | "application/vnd.geo+json"
            | "json"
            | "geojson"
            | "application/geojson" => DataFormat::Json,
            "application/vnd.mapbox-vector-tile" | "application/x-protobuf" | "mvt" | "pbf" => DataFormat::Mvt,
            "text/xml"
            | "application/xml"
            | "application/gml+xml"
            | "xmlschema"
            | "xsd"
            | "application/vnd.ogc.gml"
            | "application/vnd.ogc.gml/3.1.1" => DataFormat::Xml,
            e if e.starts_with("gml") => DataFormat::Xml,
            _ => DataFormat::Other(format.trim().to_owned()),
        }
    }

    /// True for the formats the gateway's response filters can rewrite.
    pub fn is_filterable(&self) -> bool {
        matches!(self, DataFormat::Json | DataFormat::Mvt)
    }
}

/// Why a request cannot be classified. The `respond` module chooses the status; the
/// intended mapping is in each variant's docs and in [`OgcError::reason`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OgcError {
    /// 400 `bad_request`: malformed, unknown or disallowed parameters, paths or bodies.
    /// The message names the parameter and the problem.
    #[error("{0}")]
    BadRequest(String),
    /// 400 `unsupported_request`: well-formed OGC that the gateway does not pass
    /// (WCS 1.x, stored queries, DescribeLayer, KVP Transaction…).
    #[error("{0}")]
    NotSupported(String),
    /// 405 with `Allow: {allowed}`.
    #[error("method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed { method: String, allowed: &'static str },
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 403 with the same reason as `Denial::PropertyFenced` (`property_fenced`), so that a
    /// token cannot tell a property hidden by its fence from one the layer lacks.
    #[error("the request names property `{0}`, which is not available on this layer")]
    UnknownProperty(String),
}

impl OgcError {
    /// The snake_case reason for bodies, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            OgcError::BadRequest(_) => "bad_request",
            OgcError::NotSupported(_) => "unsupported_request",
            OgcError::MethodNotAllowed { .. } => "method_not_allowed",
            OgcError::UnsupportedMediaType(_) => "unsupported_media_type",
            OgcError::UnknownProperty(_) => "property_fenced",
        }
    }

    /// The HTTP status this error is meant to answer with.
    pub fn status(&self) -> u16 {
        match self {
            OgcError::BadRequest(_) | OgcError::NotSupported(_) => 400,
            OgcError::MethodNotAllowed { .. } => 405,
            OgcError::UnsupportedMediaType(_) => 415,
            OgcError::UnknownProperty(_) => 403,
        }
    }
}

/// Shorthand for a 400.
pub(crate) fn bad(message: impl Into<String>) -> OgcError {
    OgcError::BadRequest(message.into())
}

/// Shorthand for an unsupported-request 400.
pub(crate) fn unsupported(message: impl Into<String>) -> OgcError {
    OgcError::NotSupported(message.into())
}

/// A value shortened for an error message (values are user input and may be long).
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// Classifies one request with default [`Options`].
pub fn classify(req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
    classify_with(req, path, &Options::default())
}

/// Classifies one request: which operation it is, which tier it needs, which layers,
/// extent and properties it touches, what to do with the response and what to forward.
///
/// Property names outside `path.properties` (when declared) are refused here with
/// [`OgcError::UnknownProperty`].
pub fn classify_with(req: &OgcRequest<'_>, path: &PathConfig, opts: &Options<'_>) -> Result<Classified, OgcError> {
    let mut classified = match req.protocol {
        Protocol::Wms | Protocol::Wfs | Protocol::Wcs => {
            if !matches!(req.rest, "" | "/") {
                return Err(bad(format!(
                    "`{}` is not a {} endpoint; send KVP requests to the path itself",
                    shown(req.rest),
                    req.protocol.as_str().to_ascii_uppercase()
                )));
            }
            classify_kvp_endpoint(req, path, opts)?
        }
        Protocol::Wmts => {
            if matches!(req.rest, "" | "/") {
                classify_kvp_endpoint(req, path, opts)?
            } else {
                wmts::classify_rest(req, path, opts)?
            }
        }
        Protocol::Api => api::classify(req, path, opts)?,
        Protocol::Mvt | Protocol::Xyz => tiles::classify(req, path)?,
    };
    finish_properties(&mut classified.op, path, opts)?;
    Ok(classified)
}

/// The judged parts of a request, before the forward is built.
pub(crate) struct Parts {
    pub op: Operation,
    pub response: ResponseKind,
    pub format: Option<String>,
}

impl Parts {
    pub(crate) fn new(
        name: &'static str,
        tier: Tier,
        layers: Vec<String>,
        extent: Extent,
        response: ResponseKind,
    ) -> Parts {
        Parts {
            op: Operation { name, surface: Surface::Ogc, tier, layers, extent, properties: Vec::new() },
            response,
            format: None,
        }
    }

    pub(crate) fn with_format(mut self, format: Option<&str>) -> Parts {
        self.format = format.map(str::to_owned);
        self
    }

    pub(crate) fn with_properties(mut self, properties: Vec<String>) -> Parts {
        self.op.properties = properties;
        self
    }

    pub(crate) fn into_classified(self, forward: Forward) -> Classified {
        Classified { op: self.op, response: self.response, format: self.format, forward }
    }
}

/// Where the KVP pairs of a request came from, which decides how they are forwarded.
enum KvpSource {
    Query,
    Form,
}

/// WMS, WFS, WCS and WMTS KVP: GET/HEAD query, form POST, or (WFS) XML POST.
fn classify_kvp_endpoint(req: &OgcRequest<'_>, path: &PathConfig, opts: &Options<'_>) -> Result<Classified, OgcError> {
    let dialect = Dialect::for_protocol(req.protocol);
    let (mut kvp, source) = match *req.method {
        Method::GET | Method::HEAD => (Kvp::parse(req.query, dialect)?, KvpSource::Query),
        Method::POST if req.protocol != Protocol::Wmts => {
            let media = media_essence(req.content_type);
            match media.as_str() {
                "application/x-www-form-urlencoded" => {
                    let body = std::str::from_utf8(req.body.unwrap_or_default())
                        .map_err(|_| bad("the form body is not valid UTF-8"))?;
                    (Kvp::parse_parts(&[req.query, body], dialect)?, KvpSource::Form)
                }
                "text/xml" | "application/xml" if req.protocol == Protocol::Wfs => {
                    return wfs_xml::classify(req, path);
                }
                _ => {
                    let accepted = if req.protocol == Protocol::Wfs {
                        "application/x-www-form-urlencoded, text/xml or application/xml"
                    } else {
                        "application/x-www-form-urlencoded"
                    };
                    return Err(OgcError::UnsupportedMediaType(format!(
                        "a {} POST must be {accepted}; got `{}`",
                        req.protocol.as_str().to_ascii_uppercase(),
                        shown(req.content_type.unwrap_or("no content type"))
                    )));
                }
            }
        }
        _ => {
            return Err(OgcError::MethodNotAllowed {
                method: req.method.to_string(),
                allowed: if req.protocol == Protocol::Wmts { "GET, HEAD" } else { "GET, HEAD, POST" },
            })
        }
    };
    let service = req.protocol.service().unwrap_or_default();
    match kvp.get("SERVICE") {
        Some(s) if s.eq_ignore_ascii_case(service) => {}
        Some(s) => return Err(bad(format!("SERVICE: `{}` does not match this {service} endpoint", shown(s)))),
        // Some upstreams (GeoServer `/ows`) pick the service from SERVICE; name it so the
        // upstream reads the request as the protocol it was judged as.
        None => kvp.insert_first("SERVICE", service),
    }
    let parts = match req.protocol {
        Protocol::Wms => wms::classify(&kvp, path, opts)?,
        Protocol::Wfs => wfs::classify(&kvp, path)?,
        Protocol::Wcs => wcs::classify(&kvp, path)?,
        _ => wmts::classify_kvp(&kvp, path, opts)?,
    };
    let forward = match source {
        KvpSource::Query => Forward { path: String::new(), query: kvp.encode(), body: ForwardBody::None },
        KvpSource::Form => Forward { path: String::new(), query: String::new(), body: ForwardBody::Form(kvp.encode()) },
    };
    Ok(parts.into_classified(forward))
}

/// The lower-cased media type without parameters (`""` when absent).
pub(crate) fn media_essence(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The canonical name of a KVP `REQUEST` value among `known` (matched ASCII
/// case-insensitively). `refused` lists real operations the gateway does not pass.
pub(crate) fn request_name(
    kvp: &Kvp,
    service: &str,
    known: &[&'static str],
    refused: &[(&str, &str)],
) -> Result<&'static str, OgcError> {
    let request = kvp
        .get_nonempty("REQUEST")
        .ok_or_else(|| bad(format!("REQUEST is required; {service} requests: {}", known.join(", "))))?;
    if let Some(name) = known.iter().find(|k| k.eq_ignore_ascii_case(request)) {
        return Ok(name);
    }
    if let Some((name, why)) = refused.iter().find(|(k, _)| k.eq_ignore_ascii_case(request)) {
        return Err(unsupported(format!("{service} {name} is not supported by the gateway: {why}")));
    }
    Err(bad(format!(
        "REQUEST: `{}` is not a {service} request the gateway knows; known: {}",
        shown(request),
        known.join(", ")
    )))
}

/// Parameters that read or filter data (or make the upstream fetch URLs) and are only
/// passed when the path's `allow_params` names them.
const DATA_READING: &[&str] = &[
    "CQL_FILTER",
    "FILTER",
    "VIEWPARAMS",
    "ENV",
    "SLD",
    "SLD_BODY",
    "FEATUREID",
    "RESOURCEID",
    "STOREDQUERY_ID",
    "RESOLVE",
    "MAP",
    "FORMAT_OPTIONS",
    "SORTBY",
    "PROPERTYNAME",
];

/// Refuses any pair whose name is not allowed for this operation: in `allowed`, starting
/// with one of `prefixes`, or listed in the path's `allow_params`.
pub(crate) fn check_allowed(
    kvp: &Kvp,
    allowed: &[&str],
    prefixes: &[&str],
    path: &PathConfig,
    op_name: &str,
) -> Result<(), OgcError> {
    for pair in kvp.pairs() {
        let key = pair.key();
        if allowed.contains(&key)
            || prefixes.iter().any(|p| key.starts_with(p))
            || path_allows(path, key)
            || path_allows(path, &pair.name().to_ascii_uppercase())
        {
            continue;
        }
        let hint = match key {
            "NAMESPACES" => {
                "it rebinds type name prefixes to namespaces the gateway cannot check, and is refused unless the path's `allow_params` lists it"
            }
            k if DATA_READING.contains(&k) => {
                "it can read or filter data and is refused unless the path's `allow_params` lists it"
            }
            _ => "not in the operation's parameters and not in the path's `allow_params`",
        };
        return Err(bad(format!("parameter `{}` is not allowed for {op_name}: {hint}", pair.name())));
    }
    Ok(())
}

/// True when the path's `allow_params` lists this (upper-case) name.
pub(crate) fn path_allows(path: &PathConfig, upper: &str) -> bool {
    path.allow_params.iter().any(|a| a.eq_ignore_ascii_case(upper))
}

/// Splits a comma list of layer-like names; empty items are an error.
pub(crate) fn name_list(value: &str, param: &str) -> Result<Vec<String>, OgcError> {
    value
        .split(',')
        .map(|n| {
            if n.is_empty() {
                Err(bad(format!("{param}: `{}` has an empty name", shown(value))))
            } else {
                Ok(n.to_owned())
            }
        })
        .collect()
}

/// Splits a WFS 2.0 parenthesised list `(a,b)(c)` into its groups; a value without a
/// leading `(` is one group.
///
/// Unbalanced or nested parentheses are an error.
pub(crate) fn paren_groups<'v>(value: &'v str, param: &str) -> Result<Vec<&'v str>, OgcError> {
    if !value.starts_with('(') {
        if value.contains(['(', ')']) {
            return Err(bad(format!("{param}: unbalanced parentheses in `{}`", shown(value))));
        }
        return Ok(vec![value]);
    }
    let mut groups = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .filter(|(g, _)| !g.contains('('))
            .ok_or_else(|| bad(format!("{param}: unbalanced parentheses in `{}`", shown(value))))?;
        groups.push(inner.0);
        rest = inner.1;
    }
    Ok(groups)
}

/// Collects the properties named by `FILTER` (FES XML; WFS 2.0 parenthesised lists of
/// filters are read one by one) and `CQL_FILTER` (CQL2 text / ECQL). Whether these
/// parameters are allowed at all was decided by the allowlist before; here a filter
/// the readers cannot read is refused.
pub(crate) fn kvp_filter_properties(kvp: &Kvp, out: &mut Vec<String>) -> Result<(), OgcError> {
    if let Some(filter) = kvp.get_nonempty("FILTER") {
        let trimmed = filter.trim();
        let groups: Vec<&str> = match trimmed.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(inner) => inner.split(")(").collect(),
            None => vec![trimmed],
        };
        for group in groups {
            wfs_xml::check_fes_functions(group, "FILTER")?;
            for p in fes_properties(group).map_err(|e| filter_error("FILTER", e))? {
                out.push(xml_property(&p, "FILTER")?);
            }
        }
    }
    if let Some(cql) = kvp.get_nonempty("CQL_FILTER") {
        check_text_functions(cql, "CQL_FILTER")?;
        out.extend(cql2_text_properties(cql).map_err(|e| filter_error("CQL_FILTER", e))?);
    }
    Ok(())
}

/// Filter functions that read *other* layers (GeoServer's `querySingle`,
/// `queryCollection`): a filter naming them could reach data the path does not cover.
pub(crate) const CROSS_LAYER_FUNCTIONS: &[&str] = &["querysingle", "querycollection"];

/// Refuses a text filter (CQL, CQL2) that mentions a cross-layer function anywhere,
/// in any case. Blunt on purpose: a literal containing the name is refused too.
pub(crate) fn check_text_functions(text: &str, param: &str) -> Result<(), OgcError> {
    let lower = text.to_ascii_lowercase();
    match CROSS_LAYER_FUNCTIONS.iter().find(|f| lower.contains(*f)) {
        Some(f) => Err(unsupported(format!("{param}: the `{f}` function reads other layers and is refused"))),
        None => Ok(()),
    }
}

/// What a rendering operation (WMS GetMap/GetLegendGraphic, WMTS GetTile, map tiles)
/// may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rendered {
    Image,
    Mvt,
}

/// Checks that a rendering operation asks for an image (`image/*` or a raster file
/// extension) or, when `allow_mvt`, a vector tile. Servers also render GeoJSON, UTFGrid,
/// KML or vector tiles through GetMap/GetTile, which would hand raw attributes to a
/// `view` token; those formats are refused.
pub(crate) fn rendered_format(format: &str, param: &str, op_name: &str, allow_mvt: bool) -> Result<Rendered, OgcError> {
    let lower = format.trim().to_ascii_lowercase();
    if lower.starts_with("image/")
        || matches!(lower.as_str(), "png" | "png8" | "jpg" | "jpeg" | "gif" | "webp" | "tif" | "tiff")
    {
        return Ok(Rendered::Image);
    }
    if allow_mvt && DataFormat::from_media_type(&lower) == DataFormat::Mvt {
        return Ok(Rendered::Mvt);
    }
    let what = if allow_mvt { "an image or vector tile" } else { "an image" };
    Err(bad(format!("{param}: `{}` is not {what} format; {op_name} serves rendered output only", shown(format))))
}

/// Percent-decodes one path segment (layer, collection, matrix set names); the result
/// must be UTF-8 without `/`, `\` or control characters.
pub(crate) fn decode_segment(segment: &str, what: &str) -> Result<String, OgcError> {
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| bad(format!("{what}: `{}` is not valid UTF-8 once decoded", shown(segment))))?;
    if decoded.is_empty() || decoded.contains(['/', '\\']) || decoded.chars().any(char::is_control) {
        return Err(bad(format!("{what}: `{}` is not a valid name", shown(segment))));
    }
    Ok(decoded.into_owned())
}

/// Converts an `UnreadableFilter` into a 400 naming the parameter.
pub(crate) fn filter_error(param: &str, err: UnreadableFilter) -> OgcError {
    bad(format!("{param}: {err}"))
}

/// A WFS/FES property reference reduced to the property name: one namespace prefix is
/// dropped (`topp:NAME` → `NAME`); XPath steps, attributes and predicates are refused,
/// because the gateway cannot judge what they reach.
///
/// ```text
/// "NAME" → NAME; "topp:NAME" → NAME; "a/b", "@gml:id", "a[1]" → refused
/// ```
pub(crate) fn xml_property(raw: &str, param: &str) -> Result<String, OgcError> {
    let name = raw.trim();
    let local = match name.split_once(':') {
        Some((prefix, local)) if is_ncname(prefix) => local,
        _ => name,
    };
    if !is_ncname(local) {
        return Err(bad(format!(
            "{param}: `{}` is not a plain property name; the gateway cannot judge XPath expressions",
            shown(raw)
        )));
    }
    Ok(local.to_owned())
}

fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Deduplicates the operation's properties, drops the geometry properties, and refuses
/// names outside the layer's declared schema.
fn finish_properties(op: &mut Operation, path: &PathConfig, opts: &Options<'_>) -> Result<(), OgcError> {
    let mut kept: Vec<String> = Vec::with_capacity(op.properties.len());
    for p in op.properties.drain(..) {
        if !kept.contains(&p) && !opts.geometry_properties.contains(&p) {
            kept.push(p);
        }
    }
    op.properties = kept;
    if let Some(schema) = &path.properties {
        if let Some(unknown) = op.properties.iter().find(|p| !schema.contains(p)) {
            return Err(OgcError::UnknownProperty(unknown.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders shared by the protocol tests.
    use super::*;
    use crate::config::{PathKind, Upstreams};

    pub fn path() -> PathConfig {
        PathConfig {
            layers: vec!["roads".into()],
            upstream: Upstreams::default(),
            ..PathConfig::new("roads", PathKind::Vector)
        }
    }

    pub fn get(protocol: Protocol, rest: &'static str, query: &'static str) -> OgcRequest<'static> {
        OgcRequest { protocol, method: &Method::GET, rest, query, content_type: None, accept: None, body: None }
    }

    pub fn run(protocol: Protocol, query: &'static str) -> Result<Classified, OgcError> {
        classify(&get(protocol, "", query), &path())
    }

    pub fn ok(protocol: Protocol, query: &'static str) -> Classified {
        match run(protocol, query) {
            Ok(c) => c,
            Err(e) => panic!("{query}: {e}"),
        }
    }

    pub fn err(protocol: Protocol, query: &'static str) -> OgcError {
        match run(protocol, query) {
            Ok(c) => panic!("{query}: expected an error, got {:?}", c.op),
            Err(e) => e,
        }
    }

    pub fn bbox_of(c: &Classified) -> crate::spatial::BBox {
        match c.op.extent {
            Extent::BBox { bbox, .. } => bbox,
            ref other => panic!("expected a bbox, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn kvp_endpoints_refuse_sub_paths() {
        let req = get(Protocol::Wms, "/extra", "REQUEST=GetCapabilities");
        assert!(matches!(classify(&req, &path()), Err(OgcError::BadRequest(_))));
    }

    #[test]
    fn put_on_a_kvp_endpoint_is_405() {
        let mut req = get(Protocol::Wfs, "", "REQUEST=GetCapabilities");
        req.method = &Method::PUT;
        let e = classify(&req, &path()).unwrap_err();
        assert_eq!(e.status(), 405);
    }

    #[test]
    fn missing_service_is_added_to_the_forwarded_query() {
        let c = ok(Protocol::Wms, "request=GetCapabilities");
        assert_eq!(c.forward.query, "SERVICE=WMS&request=GetCapabilities");
        assert_eq!(c.forward.body, ForwardBody::None);
    }

    #[test]
    fn service_of_another_protocol_is_refused() {
        let e = err(Protocol::Wms, "SERVICE=WFS&REQUEST=GetCapabilities");
        assert!(e.to_string().contains("SERVICE"), "{e}");
    }

    #[test]
    fn form_post_is_judged_and_forwarded_as_one_form_body() {
        let body = b"REQUEST=GetMap&VERSION=1.3.0&LAYERS=roads&STYLES=&CRS=EPSG:3857&BBOX=0,0,1000,1000&WIDTH=256&HEIGHT=256&FORMAT=image/png";
        let req = OgcRequest {
            method: &Method::POST,
            content_type: Some("application/x-www-form-urlencoded; charset=UTF-8"),
            body: Some(body),
            ..get(Protocol::Wms, "", "SERVICE=WMS")
        };
        let c = classify(&req, &path()).unwrap();
        assert_eq!(c.op.name, "wms.GetMap");
        assert_eq!(c.forward.query, "");
        match &c.forward.body {
            ForwardBody::Form(f) => assert!(f.starts_with("SERVICE=WMS&REQUEST=GetMap"), "{f}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn form_post_with_a_duplicate_across_query_and_body_is_refused() {
        let req = OgcRequest {
            method: &Method::POST,
            content_type: Some("application/x-www-form-urlencoded"),
            body: Some(b"LAYERS=secret"),
            ..get(Protocol::Wms, "", "SERVICE=WMS&LAYERS=roads")
        };
        assert!(matches!(classify(&req, &path()), Err(OgcError::BadRequest(_))));
    }

    #[test]
    fn xml_post_to_wms_is_415() {
        let req = OgcRequest {
            method: &Method::POST,
            content_type: Some("text/xml"),
            body: Some(b"<GetMap/>"),
            ..get(Protocol::Wms, "", "")
        };
        assert_eq!(classify(&req, &path()).unwrap_err().status(), 415);
    }

    #[test]
    fn properties_outside_the_declared_schema_are_refused_with_403() {
        let mut p = path();
        p.properties = Some(vec!["name".into(), "lanes".into()]);
        let ok_req = get(
            Protocol::Wfs,
            "",
            "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&PROPERTYNAME=name,lanes",
        );
        assert_eq!(classify(&ok_req, &p).unwrap().op.properties, vec!["name", "lanes"]);
        let bad_req = get(
            Protocol::Wfs,
            "",
            "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&PROPERTYNAME=name,owner",
        );
        let e = classify(&bad_req, &p).unwrap_err();
        assert_eq!(e, OgcError::UnknownProperty("owner".into()));
        assert_eq!((e.status(), e.reason()), (403, "property_fenced"));
    }

    #[test]
    fn properties_are_deduplicated() {
        let c = ok(
            Protocol::Wfs,
            "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&PROPERTYNAME=name,name&SORTBY=name DESC",
        );
        assert_eq!(c.op.properties, vec!["name"]);
    }

    #[test]
    fn xml_property_names() {
        assert_eq!(xml_property("topp:NAME", "P").unwrap(), "NAME");
        assert_eq!(xml_property(" name ", "P").unwrap(), "name");
        for bad in ["a/b", "@gml:id", "a[1]", "", "a b", "1abc", "x:y:z"] {
            assert!(xml_property(bad, "P").is_err(), "{bad}");
        }
    }

    #[test]
    fn paren_groups_split() {
        assert_eq!(paren_groups("(a,b)(c)", "T").unwrap(), vec!["a,b", "c"]);
        assert_eq!(paren_groups("a,b", "T").unwrap(), vec!["a,b"]);
        assert!(paren_groups("(a,b", "T").is_err());
        assert!(paren_groups("(a(b))", "T").is_err());
        assert!(paren_groups("a)(b", "T").is_err());
    }

    #[test]
    fn data_formats() {
        assert!(DataFormat::from_media_type("application/json").is_filterable());
        assert!(DataFormat::from_media_type("application/vnd.mapbox-vector-tile").is_filterable());
        assert!(!DataFormat::from_media_type("SHAPE-ZIP").is_filterable());
        assert!(!DataFormat::from_media_type("text/html").is_filterable());
        assert!(!DataFormat::from_media_type("application/vnd.google-earth.kml+xml").is_filterable());
        assert!(!DataFormat::from_media_type("text/javascript").is_filterable());
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(200);
        assert_eq!(shown(&long).chars().count(), 65);
        assert_eq!(shown("short"), "short");
    }

    #[test]
    fn geometry_properties_are_not_fenced_properties() {
        let mut p = path();
        p.properties = Some(vec!["name".into()]);
        let geometry = vec!["geom".to_owned()];
        let opts = Options { geometry_properties: &geometry, ..Options::default() };
        let req = get(
            Protocol::Wfs,
            "",
            "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&PROPERTYNAME=name,geom",
        );
        assert_eq!(classify_with(&req, &p, &opts).unwrap().op.properties, vec!["name"]);
        assert_eq!(classify(&req, &p).unwrap_err(), OgcError::UnknownProperty("geom".into()));
    }
}
