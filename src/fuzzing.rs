//! Entry points for the `cargo fuzz` targets in `fuzz/`: thin wrappers over the parsers
//! that read hostile input, so that the targets name only `tilegate::fuzzing::…`.
//!
//! This is not an API. It is `#[doc(hidden)]`, production code never calls it, and when a
//! module moves (the per-protocol split of `src/ogc/`, say) this file is the only place the
//! fuzz targets need new paths. Each wrapper does what the pipeline does around the parser
//! (the path config a classifier sees, the fence a filter gets) and returns plain owned
//! values; the invariants themselves are checked by the targets.
//!
//! Pure code: no I/O, no logging.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::filter::GeoJsonFilter;
use crate::ogc::capabilities::{FenceView, Rewrite};
use crate::ogc::{Dialect, ForwardBody, Kvp, OgcRequest};
use crate::paths::{PathConfig, PathKind, PathTable};
use crate::policy::Extent;
use crate::spatial::Fence;

pub use crate::filter::mvt::Tile as MvtTile;
pub use crate::ogc::titiler::{canonical_dataset, covers};
pub use crate::ogc::Protocol;
pub use crate::pmtiles::format::{
    find as pmtiles_find, parse_directory as pmtiles_directory, tile_id as pmtiles_tile_id, tile_of as pmtiles_tile_of,
    Header as PmtilesHeader,
};
pub use crate::pmtiles::range::{parse_range as pmtiles_range, Asked as PmtilesAsked};
pub use crate::route::Route;
pub use crate::spatial::{AxisOrder, BBox, Crs};

/// Every protocol family, in `Protocol::from_segment` order.
pub const PROTOCOLS: [Protocol; 8] = [
    Protocol::Wms,
    Protocol::Wmts,
    Protocol::Wfs,
    Protocol::Wcs,
    Protocol::Api,
    Protocol::Mvt,
    Protocol::Xyz,
    Protocol::Martin,
];

/// The path id every fuzzed request goes to.
pub const PATH_ID: &str = "roads";

/// The layers [`path`] covers (as the seeds and fixtures name them).
pub const LAYERS: &[&str] = &["roads", "osm", "topp:states", "dem", "obs", "lakes"];

/// The property names visible through the fence the filter targets use.
pub const ALLOWED_PROPERTIES: &[&str] = &["name", "kept"];

/// The one fence tile the fenced variants use (z, x, y): the demo's tile.
pub const FENCE_TILE: (u32, u64, u64) = (3, 4, 2);

/// `route::normalize`.
pub fn normalize(raw: &str) -> Result<String, String> {
    crate::route::normalize(raw).map_err(|e| e.to_string())
}

/// `route::route` (on a normalized path).
pub fn route(normalized: &str) -> Result<Route<'_>, String> {
    crate::route::route(normalized).map_err(|e| e.to_string())
}

/// The query without its `token` parameters, as the gateway strips it before classifying.
pub fn strip_token_param(query: &str) -> String {
    crate::token::strip_token_param(query).into_owned()
}

/// One parsed KVP pair: the name as spelled, the canonical key, the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvpPair {
    pub name: String,
    pub key: String,
    pub value: String,
}

/// `Kvp::parse` in the protocol's dialect: the pairs, and `encode()` of them.
pub fn kvp(input: &str, protocol: Protocol) -> Result<(Vec<KvpPair>, String), String> {
    kvp_parts(&[input], protocol)
}

/// `Kvp::parse_parts` (a URL query and a form body read as one set).
pub fn kvp_parts(inputs: &[&str], protocol: Protocol) -> Result<(Vec<KvpPair>, String), String> {
    let kvp = Kvp::parse_parts(inputs, Dialect::for_protocol(protocol)).map_err(|e| e.to_string())?;
    let pairs = kvp
        .pairs()
        .iter()
        .map(|p| KvpPair { name: p.name().to_owned(), key: p.key().to_owned(), value: p.value().to_owned() })
        .collect();
    Ok((pairs, kvp.encode()))
}

/// The path config every classified request is judged against: a vector path covering
/// [`LAYERS`], no declared properties, defaults otherwise.
pub fn path() -> PathConfig {
    PathConfig {
        layers: LAYERS.iter().map(|l| (*l).to_owned()).collect(),
        ..PathConfig::new(PATH_ID, PathKind::Vector)
    }
}

/// One request for the classifier, as the gateway hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub protocol: Protocol,
    pub method: &'a str,
    /// After `/ogc/{proto}/{pathId}`, normalized.
    pub rest: &'a str,
    /// Without `?`, token already stripped.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub body: Option<&'a [u8]>,
}

/// What the classifier decided, in plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    pub name: &'static str,
    pub layers: Vec<String>,
    pub properties: Vec<String>,
    /// The bounding box, when the extent is one, and the effective zoom.
    pub bbox: Option<(BBox, Option<f64>)>,
    pub forward_path: String,
    pub forward_query: String,
    /// The re-encoded form body (`ForwardBody::Form`).
    pub forward_form: Option<String>,
    /// The body is forwarded as received (`ForwardBody::Original`).
    pub forward_original: bool,
    /// The XML body re-written in canonical form (`ForwardBody::Xml`).
    pub forward_xml: Option<String>,
}

/// `ogc::classify` against [`path`]. `Err` also for a method that
/// is not a method token.
pub fn classify(req: &Request<'_>) -> Result<Classified, String> {
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
    let path = path();
    let ogc = OgcRequest {
        protocol: req.protocol,
        method: &method,
        rest: req.rest,
        query: req.query,
        content_type: req.content_type,
        accept: req.accept,
        body: req.body,
    };
    let c = crate::ogc::classify(&ogc, &path).map_err(|e| e.to_string())?;
    let bbox = match c.op.extent {
        Extent::BBox { bbox, zoom } => Some((bbox, zoom)),
        _ => None,
    };
    let (forward_form, forward_original, forward_xml) = match c.forward.body {
        ForwardBody::None => (None, false, None),
        ForwardBody::Original => (None, true, None),
        ForwardBody::Form(form) => (Some(form), false, None),
        ForwardBody::Xml { body, .. } => (None, false, Some(body)),
    };
    Ok(Classified {
        name: c.op.name,
        layers: c.op.layers,
        properties: c.op.properties,
        bbox,
        forward_path: c.forward.path,
        forward_query: c.forward.query,
        forward_form,
        forward_original,
        forward_xml,
    })
}

/// `common::xml::canonical`: an XML document in the canonical form the gateway forwards.
pub fn canonical_xml(input: &[u8], declaration: bool) -> Result<String, String> {
    crate::ogc::common::xml::canonical(input, declaration).map_err(|e| e.to_string())
}

/// `common::expr::canonical_filter`: a KVP `FILTER` value as the gateway forwards it.
pub fn canonical_filter(filter: &str) -> Result<String, String> {
    crate::ogc::common::expr::canonical_filter(filter).map_err(|e| e.to_string())
}

/// `spatial::crs_from_identifier`.
pub fn crs_from_identifier(id: &str) -> Option<(Crs, AxisOrder)> {
    crate::spatial::crs_from_identifier(id)
}

/// `filter::cql2_text_properties`.
pub fn cql2_text(text: &str) -> Result<Vec<String>, String> {
    crate::ogc::common::expr::cql2_text_properties(text).map_err(|e| e.to_string())
}

/// `filter::cql2_json_properties`.
pub fn cql2_json(json: &str) -> Result<Vec<String>, String> {
    crate::ogc::common::expr::cql2_json_properties(json).map_err(|e| e.to_string())
}

/// `filter::fes_properties`.
pub fn fes(xml: &str) -> Result<Vec<String>, String> {
    crate::ogc::common::expr::fes_properties(xml).map_err(|e| e.to_string())
}

/// The fence with the one [`FENCE_TILE`] and maxZoom 12.
pub fn fence() -> Fence {
    // INVARIANT: one tile at z3 with x, y < 8 and a maxZoom above it is a valid fence.
    Fence::new(Some(&[FENCE_TILE]), Some(12)).expect("a valid fixed fence")
}

/// The streaming GeoJSON filter showing [`ALLOWED_PROPERTIES`] (and, when `fenced`, only
/// features touching [`fence`]), fed `chunks` one by one.
pub fn geojson_filter(chunks: &[&[u8]], fenced: bool) -> Result<Vec<u8>, String> {
    let properties: Arc<[String]> = ALLOWED_PROPERTIES.iter().map(|p| (*p).to_owned()).collect();
    let mut filter = GeoJsonFilter::new(Some(properties), fenced.then(|| Arc::new(fence())));
    let mut out = Vec::new();
    for chunk in chunks {
        filter.push(chunk, &mut out).map_err(|e| e.to_string())?;
    }
    filter.finish(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The streaming GML filter showing [`ALLOWED_PROPERTIES`] (and, when `fenced`, only
/// features touching [`fence`]; a short `EPSG:4326` is read latitude first), fed
/// `chunks` one by one.
pub fn gml_filter(chunks: &[&[u8]], fenced: bool) -> Result<Vec<u8>, String> {
    let properties: Arc<[String]> = ALLOWED_PROPERTIES.iter().map(|p| (*p).to_owned()).collect();
    let fence = fenced.then(|| Arc::new(fence()));
    let mut filter = crate::filter::GmlFilter::new(Some(properties), fence, crate::spatial::AnswerCrs::LatLon);
    let mut out = Vec::new();
    for chunk in chunks {
        filter.push(chunk, &mut out).map_err(|e| e.to_string())?;
    }
    filter.finish(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `filter::filter_tile` showing [`ALLOWED_PROPERTIES`]; tiles of an odd length
/// are also clipped as tile 2/2/1, which [`fence`] only partly covers (the clipper's
/// geometry decoder, boolean operations and encoder).
pub fn mvt_filter(tile: &[u8]) -> Result<Vec<u8>, String> {
    let allowed: Vec<String> = ALLOWED_PROPERTIES.iter().map(|p| (*p).to_owned()).collect();
    if tile.len() % 2 == 1 {
        let fence = fence();
        // INVARIANT: 2/2/1 is a valid tile.
        let at = crate::spatial::TileCoord::new(2, 2, 1).expect("a valid tile");
        let filter = crate::filter::mvt::TileFilter { allowed: Some(&allowed), layers: None, clip: Some((&fence, at)) };
        return crate::filter::mvt::filter_tile_with(tile, &filter).map_err(|e| e.to_string());
    }
    crate::filter::filter_tile(tile, &allowed).map_err(|e| e.to_string())
}

/// Which capabilities rewriter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capabilities {
    Wms,
    Wmts,
    Wfs,
    Wcs,
    OgcApiJson,
}

impl Capabilities {
    pub const ALL: [Capabilities; 5] =
        [Capabilities::Wms, Capabilities::Wmts, Capabilities::Wfs, Capabilities::Wcs, Capabilities::OgcApiJson];

    /// The upstream base the fixtures in `tests/fixtures/capabilities/` come from.
    pub fn upstream(self) -> &'static str {
        match self {
            Capabilities::Wms | Capabilities::Wmts => "http://127.0.0.1:9001/service",
            Capabilities::Wfs => "http://127.0.0.1:9002/geoserver/ows",
            Capabilities::Wcs => "http://127.0.0.1:9003/cgi-bin/mapserv?map=/srv/maps/dem.map",
            Capabilities::OgcApiJson => "http://127.0.0.1:5000",
        }
    }

    /// The upstream's `host:port`, which no rewritten document may name.
    pub fn upstream_authority(self) -> &'static str {
        match self {
            Capabilities::Wms | Capabilities::Wmts => "127.0.0.1:9001",
            Capabilities::Wfs => "127.0.0.1:9002",
            Capabilities::Wcs => "127.0.0.1:9003",
            Capabilities::OgcApiJson => "127.0.0.1:5000",
        }
    }
}

/// The public URL the rewritten documents point at.
pub const PUBLIC_URL: &str = "https://maps.example.org/ogc/any/roads";

/// One capabilities rewrite covering [`LAYERS`], with the query token `tg_fuzz` and,
/// when `fenced`, [`fence`].
pub fn rewrite_capabilities(kind: Capabilities, doc: &[u8], fenced: bool) -> Result<Vec<u8>, String> {
    let layers: Vec<String> = LAYERS.iter().map(|l| (*l).to_owned()).collect();
    let fence = fence();
    let rw = Rewrite {
        token_query: Some("tg_fuzz"),
        fence: fenced.then_some(&fence as &dyn FenceView),
        ..Rewrite::new(kind.upstream(), PUBLIC_URL, &layers)
    };
    let out = match kind {
        Capabilities::Wms => crate::ogc::wms::capabilities::rewrite(doc, &rw),
        Capabilities::Wmts => crate::ogc::wmts::capabilities::rewrite(doc, &rw),
        Capabilities::Wfs => crate::ogc::wfs::capabilities::rewrite(doc, &rw),
        Capabilities::Wcs => crate::ogc::wcs::capabilities::rewrite(doc, &rw),
        Capabilities::OgcApiJson => crate::ogc::api::capabilities::rewrite(doc, &rw),
    };
    out.map_err(|e| e.to_string())
}

/// Why [`extract_token`] gave no token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtractFailure {
    /// A header name or value `http` refuses: such a request never reaches the gateway.
    NotAHeader,
    /// The gateway's denial.
    Denied(String),
}

/// `token::extract` over headers built from raw names and values. `Ok(Some((token,
/// from_query)))` when a token was found.
pub fn extract_token(
    headers: &[(&[u8], &[u8])],
    query: Option<&str>,
    allow_query: bool,
) -> Result<Option<(String, bool)>, ExtractFailure> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name).map_err(|_| ExtractFailure::NotAHeader)?;
        let value = HeaderValue::from_bytes(value).map_err(|_| ExtractFailure::NotAHeader)?;
        map.append(name, value);
    }
    match crate::token::extract(&map, query, allow_query) {
        Ok(found) => Ok(found.map(|e| (e.secret.expose().to_owned(), e.from_query))),
        Err(denial) => Err(ExtractFailure::Denied(format!("{denial:?}"))),
    }
}

/// The path ids the token API body target's table declares.
pub const DECLARED_PATHS: &[&str] = &["roads", "osm", "basemaps"];

/// "Now" for the token API body target (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000;

/// The longest `validFor` the token API accepts.
pub const MAX_VALID_FOR: i64 = crate::admin::body::MAX_VALID_FOR;

/// A create body that validated, in plain values.
#[derive(Clone, Debug)]
pub struct CreateBody {
    pub path_ids: Vec<String>,
    pub description: String,
    pub expires_at: Option<i64>,
    pub property_fences: Vec<Option<Vec<String>>>,
}

/// Why [`parse_create`] refused a body.
#[derive(Clone, Debug)]
pub enum CreateFailure {
    /// Not JSON (400).
    Malformed(String),
    /// Invalid (422), with the number of problems listed.
    Invalid(usize),
}

/// `admin::body::parse_create` against [`DECLARED_PATHS`] at [`NOW`].
pub fn parse_create(body: &[u8]) -> Result<CreateBody, CreateFailure> {
    let table = PathTable::new(DECLARED_PATHS.iter().map(|id| PathConfig::new(id, PathKind::Vector)));
    match crate::admin::body::parse_create(body, &table, NOW) {
        Ok(req) => Ok(CreateBody {
            path_ids: req.requested.iter().map(|r| r.path_id.clone()).collect(),
            property_fences: req.requested.into_iter().map(|r| r.properties).collect(),
            description: req.description,
            expires_at: req.expires_at,
        }),
        Err(crate::admin::body::BodyError::Malformed(m)) => Err(CreateFailure::Malformed(m)),
        Err(crate::admin::body::BodyError::Invalid(problems)) => Err(CreateFailure::Invalid(problems.len())),
    }
}

#[cfg(test)]
mod tests {
    //! The wrappers still reach what they wrap: one README example through each, so a
    //! moved module breaks `cargo test`, not only the next fuzz run.
    use super::*;

    #[test]
    fn wrappers_reach_the_parsers_they_wrap() {
        assert_eq!(normalize("/ogc/wms/%72oads").as_deref(), Ok("/ogc/wms/roads"));
        assert!(matches!(route("/ogc/wms/roads"), Ok(Route::Ogc { family: Protocol::Wms, .. })));
        let (pairs, encoded) = kvp("srs=EPSG%3A4326&Layers=a+b", Protocol::Wms).expect("valid KVP");
        assert_eq!((pairs[0].key.as_str(), encoded.as_str()), ("CRS", "srs=EPSG:4326&Layers=a%20b"));
        let req = Request {
            protocol: Protocol::Wms,
            method: "GET",
            rest: "",
            query: "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:3857\
                    &BBOX=0,0,1000,1000&WIDTH=256&HEIGHT=256&FORMAT=image/png",
            content_type: None,
            accept: None,
            body: None,
        };
        let c = classify(&req).expect("a valid GetMap");
        assert_eq!((c.name, c.bbox.map(|b| b.0.max_x)), ("wms.GetMap", Some(1000.0)));
        assert_eq!(cql2_text("name = 'a'").expect("valid CQL2"), vec!["name".to_owned()]);
        let out = geojson_filter(&[br#"{"type":"Feature","properties":{"name":"a","se"#, br#"cret":1}}"#], false);
        assert_eq!(out.expect("valid GeoJSON"), br#"{"type":"Feature","properties":{"name":"a"}}"#);
        assert!(rewrite_capabilities(Capabilities::OgcApiJson, br#"{"links":[]}"#, true).is_ok());
        assert_eq!(
            extract_token(&[(b"x-access-token", b"nope")], None, false),
            Err(ExtractFailure::Denied("MalformedToken".into()))
        );
        let body = br#"{"description":"d","accessList":[{"pathId":"osm","access":{"accessTier":"view"}}]}"#;
        assert_eq!(parse_create(body).expect("a valid body").path_ids, vec!["osm".to_owned()]);
    }
}
