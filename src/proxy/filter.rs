//! The filter stage: what a permit's obligations and the response kind require of
//! the upstream's answer before the client sees it.
//!
//! - capabilities (XML, OGC API JSON): upstream URLs become gateway URLs, layers
//!   outside the path and the fence disappear (whole document, bounded);
//! - GeoJSON features and WFS GML feature collections: hidden properties and features
//!   outside the fence are dropped while the body streams (bounded memory, any size);
//! - vector tiles: re-encoded without hidden properties and the layers the path does
//!   not cover, and clipped to the fence when they straddle it (whole tile, bounded);
//!   a tile whose layers are all covered, with nothing else to do, is relayed as it
//!   came (its layer names scanned, `mvt::only_layers`);
//! - images (tiles, WMS maps) that straddle the fence: masked outside it (the `Clip`
//!   obligation); wholly inside ones are relayed byte for byte, never decoded. Clips
//!   run on the blocking pool, at most one per core at a time;
//! - schemas (DescribeFeatureType, queryables): hidden properties trimmed.
//!
//! A document that does not parse is a 502, never passed through, and so is an OGC
//! exception report answered with a success status (`proxy::sniff`: an answer
//! relayed unread whose media type is XML is read up to its root element first). Only successful
//! (2xx) answers are filtered. Error answers keep their status; their bodies are the
//! gateway's (`upstream_error`, in the request's error format) for 5xx, for 3xx/4xx
//! answers to requests the gateway filters or rewrites, and for 4xx answers to the
//! other OGC requests (maps, tiles, coverages: upstream exception documents name
//! internal URLs and files). Redirects of those pass, their `Location` sanitised.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
// The upstream answer's body (hyper's, plus the pooled connection it came on).
use crate::proxy::UpstreamBody as Incoming;

use crate::filter::LinkRewrite;
use crate::filter::{mvt, raster, schema, FilterError, GeoJsonFilter, GmlFilter};
use crate::ogc::capabilities::{FenceView, LinkMap, LinkMapped, Rewrite, TileLimits};
use crate::ogc::common::rel::Rel;
use crate::ogc::{self, AnswerCrs, DataFormat, Protocol, ResponseKind};
use crate::policy::Obligations;
use crate::respond::{Body, BoxError, Reject, UpstreamError};
use crate::spatial::{ClipArea, Fence};

/// The largest capabilities document or schema the gateway rewrites.
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;

/// What the filter needs besides the response.
pub struct FilterContext<'a> {
    pub kind: &'a ResponseKind,
    pub obligations: &'a Obligations,
    /// The upstream endpoint URL the request went to (for capabilities rewriting).
    pub upstream: &'a str,
    /// The gateway URL that replaces it: `{public_url}/ogc/{proto}/{pathId}`.
    pub public: &'a str,
    /// The token, when it came in the query (appended to rewritten URLs).
    pub token_query: Option<&'a str>,
    pub layers: &'a [String],
    pub quad_matrix_sets: &'a [String],
    /// OGC API item pages carry upstream `links[].href`: rewrite them while streaming.
    pub rewrite_links: bool,
    /// The coordinates the answer's geometries are written in.
    pub answer_crs: AnswerCrs,
    /// The software behind the path (how a GML answer's `srsName` labels are read).
    pub server: crate::paths::Server,
    /// The largest image side the clipper decodes (the path's `max_image_size`).
    pub max_image_size: u32,
    /// The path clips partial overlaps (`partial = "clip"`): capabilities advertise
    /// every tile matrix up to maxZoom, limited to the fence's footprint.
    pub clips_partial: bool,
    /// The WMTS REST tile template the path serves (WMTS capabilities keep only the
    /// `ResourceURL`s it reads).
    pub rest_template: Option<&'a str>,
}

impl<'a> FilterContext<'a> {
    /// How this request's documents are rewritten: its URLs, layers, query token and
    /// matrix sets, with `fence` for the documents that follow the fence.
    fn rewrite(&self, fence: Option<&'a dyn FenceView>) -> Rewrite<'a> {
        Rewrite {
            upstream: self.upstream,
            public: self.public,
            token_query: self.token_query,
            layers: self.layers,
            fence,
            quad_matrix_sets: self.quad_matrix_sets,
            rest_template: self.rest_template,
        }
    }
}

/// Refuses, before anything is forwarded, a request whose answer the filter stage
/// would have to filter but cannot (a fenced token asking for GML, CSV, HTML…).
pub fn precheck(kind: &ResponseKind, answer_crs: AnswerCrs, obligations: &Obligations) -> Result<(), Reject> {
    let fenced = obligations.fence.as_ref().is_some_and(|f| f.tiles().is_some());
    // A GML answer names its CRS per geometry (`answer_crs` only says how to read the
    // short `EPSG:4326` label); the GML filter fails closed on what it cannot read.
    let gml = kind.feature_format() == Some(&DataFormat::Gml);
    if fenced && kind.feature_format().is_some() && !gml && answer_crs == AnswerCrs::Unknown {
        // The geometry filter could not read the answer's coordinates.
        return Err(Reject::Denied(crate::policy::Denial::UnsupportedCrs));
    }
    match kind {
        ResponseKind::Features(format) | ResponseKind::Feature(format)
            if (obligations.properties.is_some() || fenced)
                && !matches!(format, DataFormat::Json | DataFormat::Gml) =>
        {
            Err(unfilterable(format))
        }
        ResponseKind::Schema(format @ (DataFormat::Other(_) | DataFormat::Mvt)) if obligations.properties.is_some() => {
            Err(unfilterable(format))
        }
        _ => Ok(()),
    }
}

/// Applies the filter stage to an upstream response.
pub async fn apply(res: Response<Incoming>, ctx: &FilterContext<'_>) -> Result<Response<Body>, Reject> {
    let status = res.status();
    if !status.is_success() {
        // An answer the gateway would filter or rewrite is not relayed unread when it
        // is an error or a redirect: its body may hold the very data or upstream URLs
        // the filter exists for. Its status stays, its body is the gateway's. A feature
        // the upstream does not have answers exactly like one outside the fence.
        // An OGC answer that is not filtered (a map, a tile, a coverage, an image that
        // needs no clipping) keeps its redirects, but not a 4xx body: upstream exception
        // documents name internal URLs (`schemaLocation`), file paths and layers the
        // path does not cover.
        let unclipped_image = *ctx.kind == ResponseKind::Image && ctx.obligations.clip.is_none();
        if status == http::StatusCode::NOT_MODIFIED
            || ((*ctx.kind == ResponseKind::Other || unclipped_image) && !status.is_client_error())
        {
            return Ok(super::relay(res));
        }
        if status == http::StatusCode::NOT_FOUND && matches!(ctx.kind, ResponseKind::Feature(_)) {
            return Err(Reject::Denied(crate::policy::Denial::PathNotFound));
        }
        return Ok(super::replaced(&res));
    }
    if matches!(ctx.kind, ResponseKind::Image | ResponseKind::Mvt) && is_error_document(&res) {
        // MapServer and GeoServer answer a failed GetMap with a 200 exception document
        // (`application/vnd.ogc.se_xml`, `text/xml`) naming files, layers and schema
        // locations: it is the upstream error it is, replaced like a 4xx body.
        tracing::warn!(
            upstream.content_type = ?res.headers().get(header::CONTENT_TYPE),
            "the upstream answered an image or tile request with a document; not relayed"
        );
        return Ok(super::replaced_as(&res, http::StatusCode::BAD_GATEWAY));
    }
    if *ctx.kind == ResponseKind::Image && ctx.obligations.clip.is_none() {
        // Wholly inside the fence (or no fence): relayed byte for byte, never decoded,
        // once its first bytes are an image's (`sniff::relay_image`).
        return Ok(if is_image_type(&res) {
            super::sniff::relay_image(res).await
        } else {
            // Untyped (a document type was refused above): not an exception report.
            super::sniff::relay_checked(res).await
        });
    }
    if status == http::StatusCode::PARTIAL_CONTENT && *ctx.kind != ResponseKind::Other {
        // `Range` is not forwarded for these; a slice of a document cannot be filtered.
        return Err(bad_document("a partial answer (206) to a request the gateway filters".into()));
    }
    let properties = ctx.obligations.properties.as_ref();
    let api = ctx.rewrite_links || matches!(ctx.kind, ResponseKind::Capabilities(Protocol::Api));
    let documents = !matches!(ctx.kind, ResponseKind::Features(_) | ResponseKind::Feature(_));
    // (Features answered in another media type than the judged GeoJSON are a 502 below.)
    if api && (is_html(&res) || documents && is_jsonld(&res)) {
        // HTML pages carry the upstream's URLs and no structure the gateway can rewrite;
        // JSON-LD puts them anywhere (`@id`, schema.org `url`s), links and data alike.
        return Err(Reject::NotAcceptable(
            "OGC API HTML and JSON-LD documents are not served through the gateway; ask for JSON with `f=json` or `Accept: application/json`".into(),
        ));
    }
    match ctx.kind {
        ResponseKind::Capabilities(protocol) => {
            let (parts, body) = whole(res).await?;
            let view = ctx.obligations.fence.as_deref().map(|fence| Clipping { fence, clips: ctx.clips_partial });
            let fence = view.as_ref().map(|v| v as &dyn FenceView);
            let rw = ctx.rewrite(fence);
            let out = ogc::service(*protocol)
                .rewrite_capabilities(&body, &rw)
                .ok_or_else(|| Reject::internal_bug(format!("{} has no capabilities document", protocol.as_str())))?
                .map_err(|e| bad_document(format!("capabilities: {e}")))?;
            let out = match (protocol, properties) {
                (Protocol::Api, Some(allowed)) => trim_property_schemas(&out, allowed)?,
                _ => out,
            };
            Ok(rebuild(parts, out))
        }
        ResponseKind::ApiDefinition => {
            // Served trimmed to the path's collections and the token's properties.
            let (parts, body) = whole(res).await?;
            let out = crate::ogc::api::capabilities::rewrite_definition(
                &body,
                &ctx.rewrite(None),
                properties.map(|p| &p[..]),
            )
            .map_err(|e| bad_document(format!("API definition: {e}")))?;
            Ok(rebuild(parts, out))
        }
        ResponseKind::Features(format) | ResponseKind::Feature(format) => {
            if ctx.rewrite_links && *format != DataFormat::Json {
                // JSON-LD names the upstream in `@id`s the streaming filter does not
                // rewrite (an open token got them), CSV and others cannot be read.
                return Err(Reject::NotAcceptable(
                    "OGC API features are served as GeoJSON through the gateway; ask for `f=json` or `Accept: application/geo+json`".into(),
                ));
            }
            let fence = ctx.obligations.fence.clone().filter(|f| f.tiles().is_some());
            // GeoJSON `links` name the upstream on WFS and WMS too (MapServer's `next`;
            // attacker round 6): a GeoJSON answer has them mapped whatever the protocol.
            // (A JSON request answered in another type is judged below, or relayed checked.)
            let geojson_links = *format == DataFormat::Json && (ctx.rewrite_links || is_geojson_type(&res));
            // Under a fence, a WFS or WMS answer's page links count what lies outside (OGC
            // API items are asked for within the fence: their paging stays).
            let unpaged = fence.is_some() && !ctx.rewrite_links;
            let links = geojson_links
                .then(|| LinkMap::new(ctx.upstream, ctx.public, ctx.token_query))
                .transpose()
                .map_err(|e| Reject::internal("cannot map upstream links", e))?
                .map(|l| if unpaged { l.without_paging() } else { l });
            if properties.is_none() && fence.is_none() && links.is_none() {
                return Ok(super::sniff::relay_checked(res).await);
            }
            if *format == DataFormat::Gml {
                // A WFS GetFeature answer: its schema locations and paging links name the
                // upstream, so they are mapped (or dropped) like every relayed URL.
                let links = LinkMap::new(ctx.upstream, ctx.public, ctx.token_query)
                    .map_err(|e| Reject::internal("cannot map upstream links", e))?;
                let filter = GmlFilter::new(properties.cloned(), fence, ctx.answer_crs)
                    .with_trusted_labels(crate::ogc::wfs::gml_labels_trusted(ctx.server))
                    .with_links(Arc::new(links));
                return stream_filtered(res, BodyFilter::Gml(Box::new(filter))).await;
            }
            if *format != DataFormat::Json {
                return Err(unfilterable(format));
            }
            if !is_geojson_type(&res) {
                // What was judged is GeoJSON: any other answer (JSON-LD, HTML, text) is
                // refused, not read as if it were.
                return Err(bad_document("the upstream answered a GeoJSON request with another media type".into()));
            }
            let mut filter = GeoJsonFilter::new(properties.cloned(), fence).with_answer_crs(ctx.answer_crs);
            if let Some(links) = links {
                filter = filter.with_links(Arc::new(links));
            }
            if matches!(ctx.kind, ResponseKind::Feature(_)) {
                let (parts, body) = whole(res).await?;
                let out = filter.filter_all(&body).map_err(|e| match e {
                    FilterError::FeatureOutsideFence => Reject::Denied(crate::policy::Denial::PathNotFound),
                    other => bad_document(format!("feature: {other}")),
                })?;
                return Ok(rebuild(parts, out));
            }
            stream_filtered(res, BodyFilter::GeoJson(Box::new(filter))).await
        }
        ResponseKind::Schema(format) => {
            // OGC API schemas (queryables, schema, sortables) carry upstream URLs
            // (`$id`, links): rewritten whatever the fence.
            let api_json = ctx.rewrite_links && *format == DataFormat::Json;
            if properties.is_none() && !api_json {
                return Ok(super::sniff::relay_checked(res).await);
            }
            let (parts, body) = whole(res).await?;
            let trimmed = match (format, properties) {
                (_, None) => Ok(body),
                (DataFormat::Json, Some(allowed)) => schema::trim_json_schema(&body, allowed),
                (DataFormat::Xml, Some(allowed)) => schema::trim_describe_feature_type(&body, allowed),
                (other, Some(_)) => return Err(unfilterable(other)),
            }
            .map_err(|e| bad_document(format!("schema: {e}")))?;
            let out = if api_json {
                crate::ogc::api::capabilities::rewrite(&trimmed, &ctx.rewrite(None))
                    .map_err(|e| bad_document(format!("schema: {e}")))?
            } else {
                trimmed
            };
            Ok(rebuild(parts, out))
        }
        ResponseKind::Image => {
            let (Some(clip), Some(fence)) = (ctx.obligations.clip, ctx.obligations.fence.clone()) else {
                return Ok(super::relay(res));
            };
            if clip.vector {
                return Err(Reject::internal_bug("a vector-tile clip obligation on an image answer"));
            }
            let (parts, body) = whole(res).await?;
            let max_side = ctx.max_image_size;
            let out = off_the_reactor(move || raster::clip_image(&body, &fence, &clip, max_side)).await?;
            let mut res = rebuild(parts, out.body);
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(out.content_type));
            Ok(res)
        }
        ResponseKind::Mvt => {
            // A path that declares its layers keeps only those; one that declares none
            // serves its whole tile template.
            let layers = (!ctx.layers.is_empty()).then_some(ctx.layers);
            // The tile's format, from its type: MVT, or MLT only for a token that needs
            // no filtering (the gateway cannot read MLT); anything else fails closed.
            let mlt_ok = properties.is_none() && layers.is_none() && ctx.obligations.fence.is_none();
            let declared = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
            crate::filter::tile_format::check(declared, mlt_ok).map_err(bad_document)?;
            let clip = match (ctx.obligations.clip, &ctx.obligations.fence) {
                (Some(crate::policy::Clip { area: ClipArea::Tile(tile), vector: true, .. }), Some(fence)) => {
                    Some((fence.clone(), tile))
                }
                (Some(_), _) => return Err(Reject::internal_bug("a vector tile clip without its tile")),
                (None, _) => None,
            };
            if properties.is_none() && layers.is_none() && clip.is_none() {
                return Ok(super::relay(res));
            }
            let (parts, body) = whole(res).await?;
            let out = match clip {
                // Every layer covered and nothing else to do: relayed as it came.
                None if properties.is_none()
                    && layers.is_some_and(|kept| mvt::only_layers(&body, kept).unwrap_or(false)) =>
                {
                    body
                }
                None => {
                    let filter = mvt::TileFilter { allowed: properties.map(|p| &p[..]), layers, clip: None };
                    mvt::filter_tile_with(&body, &filter).map_err(|e| bad_document(format!("vector tile: {e}")))?
                }
                Some((fence, tile)) => {
                    let allowed = properties.cloned();
                    let layers = layers.map(<[String]>::to_vec);
                    off_the_reactor(move || {
                        let filter = mvt::TileFilter {
                            allowed: allowed.as_deref(),
                            layers: layers.as_deref(),
                            clip: Some((&fence, tile)),
                        };
                        mvt::filter_tile_with(&body, &filter)
                    })
                    .await?
                }
            };
            let mut res = rebuild(parts, out);
            // filter_tile keeps the tile's own gzip framing; the HTTP layer must not claim more.
            res.headers_mut().remove(header::CONTENT_ENCODING);
            Ok(res)
        }
        ResponseKind::TileJson { tiles, covers_layers } => {
            // TileJSON for this token: tiles at the gateway, bounds, zooms, vector layers
            // and fields trimmed to the fences (`ogc::tilejson`).
            let (parts, body) = whole(res).await?;
            let url = format!("{}{tiles}", ctx.public);
            let view = crate::ogc::tilejson::TileJsonView {
                tiles: &url,
                token_query: ctx.token_query,
                fence: ctx.obligations.fence.as_deref().map(|f| f as &dyn FenceView),
                properties: properties.map(|p| &p[..]),
                layers: covers_layers.then_some(ctx.layers),
                zoom_offset: 0,
            };
            let out =
                crate::ogc::tilejson::rewrite(&body, &view).map_err(|e| bad_document(format!("TileJSON: {e}")))?;
            let mut res = rebuild(parts, out);
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(res)
        }
        ResponseKind::Written => {
            if !ctx.obligations.shape_the_answer() {
                return Ok(super::relay(res));
            }
            let (mut parts, _body) = res.into_parts();
            super::headers::sanitize_response(&mut parts.headers);
            parts.headers.remove(header::CONTENT_TYPE);
            parts.headers.remove(header::CONTENT_ENCODING);
            let no_content = parts.status == http::StatusCode::NO_CONTENT;
            let mut res = rebuild(parts, Vec::new());
            if no_content {
                res.headers_mut().remove(header::CONTENT_LENGTH);
            }
            Ok(res)
        }
        ResponseKind::Other => Ok(super::sniff::relay_checked(res).await),
    }
}

/// OGC API metadata (tilesets' `layers[].propertiesSchema`, collections' `properties`
/// schemas) can list a layer's properties: a property-fenced token sees only its own.
fn trim_property_schemas(json: &[u8], allowed: &[String]) -> Result<Vec<u8>, Reject> {
    fn walk(v: &mut serde_json::Value, allowed: &[String]) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if key == "propertiesSchema" {
                        trim_schema(child, allowed);
                    }
                    walk(child, allowed);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|c| walk(c, allowed)),
            _ => {}
        }
    }
    fn trim_schema(schema: &mut serde_json::Value, allowed: &[String]) {
        if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.retain(|k, _| allowed.iter().any(|a| a == k));
        }
        if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
            required.retain(|r| r.as_str().is_some_and(|r| allowed.iter().any(|a| a == r)));
        }
    }
    let mut doc: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad_document(format!("OGC API metadata: {e}")))?;
    walk(&mut doc, allowed);
    serde_json::to_vec(&doc).map_err(|e| Reject::internal("re-encoding OGC API metadata", e))
}

/// The answer says it is GeoJSON or plain JSON (`application/geo+json`,
/// `application/vnd.geo+json`, `application/json`, with any parameters).
fn is_geojson_type(res: &Response<Incoming>) -> bool {
    let essence = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    matches!(essence.as_deref(), Some("application/geo+json" | "application/vnd.geo+json" | "application/json"))
}

/// An answer to an image or tile request whose media type is a document, not an image
/// or a tile: `text/*`, or an `application/*` XML, JSON or HTML type (OGC exceptions
/// `application/vnd.ogc.se_xml`, `text/xml`, GeoServer's `application/json`
/// exceptions, problem JSON, error pages). Raster formats with a document syntax
/// (`image/svg+xml`) are refused before forwarding, so `image/*` is never one.
fn is_error_document(res: &Response<Incoming>) -> bool {
    let Some(ct) = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    // Compared without lowering a copy: this runs on every relayed tile.
    let media = ct.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = media.split_once('/') else { return false };
    let has = |word: &str| sub.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word.as_bytes()));
    kind.eq_ignore_ascii_case("text")
        || (kind.eq_ignore_ascii_case("application") && ["xml", "json", "html"].into_iter().any(has))
}

/// `image/*` or `application/octet-stream` (object stores serving tiles): the types
/// under which an image answer must carry a raster signature.
fn is_image_type(res: &Response<Incoming>) -> bool {
    let Some(ct) = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let media = ct.split(';').next().unwrap_or("").trim();
    media.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("image/"))
        || media.eq_ignore_ascii_case("application/octet-stream")
}

fn is_html(res: &Response<Incoming>) -> bool {
    content_type_starts(res, "text/html")
}

fn is_jsonld(res: &Response<Incoming>) -> bool {
    content_type_starts(res, "application/ld+json")
}

fn content_type_starts(res: &Response<Incoming>, prefix: &str) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(prefix))
}

fn bad_document(message: String) -> Reject {
    Reject::Upstream(UpstreamError::BadDocument(message))
}

fn unfilterable(format: &DataFormat) -> Reject {
    let named = match format {
        DataFormat::Other(f) => format!("`{f}`"),
        DataFormat::Xml => "this GML/XML answer (only WFS GetFeature feature collections are filtered)".into(),
        DataFormat::Gml => "GML".into(),
        DataFormat::Mvt => "MVT".into(),
        DataFormat::Json => "JSON".into(),
    };
    Reject::Forbidden(format!(
        "the token has a property fence or geofence and the gateway cannot filter {named}; ask for application/geo+json or application/json (features), WFS GetFeature GML, or MVT (tiles)"
    ))
}

/// Reads a whole (bounded) body, undoing gzip or deflate content coding.
async fn whole(res: Response<Incoming>) -> Result<(http::response::Parts, Vec<u8>), Reject> {
    let (mut parts, body) = res.into_parts();
    let bytes = Limited::new(body, MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| bad_document(format!("reading the upstream document: {e}")))?
        .to_bytes();
    let coding = parts.headers.remove(header::CONTENT_ENCODING);
    let bytes = match coding.as_ref().and_then(|v| v.to_str().ok()).map(str::trim) {
        None | Some("identity") => bytes.to_vec(),
        Some("gzip" | "x-gzip") => inflate(flate2::write::GzDecoder::new(Bounded::default()), &bytes)?,
        Some("deflate") => inflate(flate2::write::ZlibDecoder::new(Bounded::default()), &bytes)?,
        Some(other) => return Err(bad_document(format!("content coding `{other}` cannot be filtered"))),
    };
    Ok((parts, bytes))
}

fn inflate<W: std::io::Write + Finish>(mut decoder: W, data: &[u8]) -> Result<Vec<u8>, Reject> {
    decoder.write_all(data).map_err(|e| bad_document(format!("decompressing the upstream document: {e}")))?;
    decoder.done().map_err(|e| bad_document(format!("decompressing the upstream document: {e}")))
}

/// A write sink that refuses to grow past [`MAX_DOCUMENT_BYTES`] (zip bombs).
#[derive(Default)]
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_DOCUMENT_BYTES {
            return Err(std::io::Error::other(format!("more than {MAX_DOCUMENT_BYTES} bytes after decompression")));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

trait Finish {
    fn done(self) -> std::io::Result<Vec<u8>>;
}

impl Finish for flate2::write::GzDecoder<Bounded> {
    fn done(self) -> std::io::Result<Vec<u8>> {
        self.finish().map(|b| b.0)
    }
}

impl Finish for flate2::write::ZlibDecoder<Bounded> {
    fn done(self) -> std::io::Result<Vec<u8>> {
        self.finish().map(|b| b.0)
    }
}

fn rebuild(mut parts: http::response::Parts, body: Vec<u8>) -> Response<Body> {
    super::headers::sanitize_response(&mut parts.headers);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    // A rewritten document differs from what the upstream's validators describe.
    parts.headers.remove(header::ETAG);
    Response::from_parts(parts, crate::respond::full(body))
}

/// A streaming body filter: GeoJSON, or a WFS GML feature collection.
enum BodyFilter {
    GeoJson(Box<GeoJsonFilter>),
    Gml(Box<GmlFilter>),
}

impl BodyFilter {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        match self {
            BodyFilter::GeoJson(f) => f.push(chunk, out),
            BodyFilter::Gml(f) => f.push(chunk, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FilterError> {
        match self {
            BodyFilter::GeoJson(f) => f.finish(out),
            BodyFilter::Gml(f) => f.finish(out),
        }
    }
}

/// Streams a GeoJSON or GML body through its filter: bounded memory per frame (plus
/// one feature when a filter holds it), chunked to the client. A content coding
/// the gateway cannot undo, or a body whose first frame already fails the filter (an
/// upstream error page sent with 200), is a 502 before the response head is sent; a
/// failure later in the stream cuts it.
async fn stream_filtered(res: Response<Incoming>, filter: BodyFilter) -> Result<Response<Body>, Reject> {
    let (mut parts, body) = res.into_parts();
    super::headers::sanitize_response(&mut parts.headers);
    let coding = parts.headers.remove(header::CONTENT_ENCODING);
    let decoder = match coding.as_ref().and_then(|v| v.to_str().ok()).map(str::trim) {
        Some("gzip" | "x-gzip") => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
        Some("deflate") => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(Vec::new()))),
        None | Some("identity") => Decoder::Identity,
        Some(other) => return Err(bad_document(format!("content coding `{other}` cannot be filtered"))),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::ETAG);
    let mut body = FilteredBody { inner: body, filter, decoder, pending: Bytes::new(), ready: None, done: false };
    body.ready = match body.frame().await {
        None => None,
        Some(Ok(frame)) => frame.into_data().ok(),
        Some(Err(e)) => return Err(bad_document(format!("{e}"))),
    };
    Ok(Response::from_parts(parts, body.boxed()))
}

/// How much compressed input is inflated at a time: deflate expands at most about
/// 1032:1, so one step produces about a megabyte at the most.
const INFLATE_STEP: usize = 1024;
/// A frame is sent once this much filtered output has gathered.
const FRAME_BYTES: usize = 256 << 10;

enum Decoder {
    Identity,
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
}

impl Decoder {
    /// Decoded bytes of one step of input (borrowed when there is no coding).
    fn decode(&mut self, input: Bytes) -> Result<Bytes, FilterStreamError> {
        let take = |w: &mut Vec<u8>| Bytes::from(std::mem::take(w));
        match self {
            Decoder::Identity => Ok(input),
            Decoder::Gzip(d) => {
                d.write_all(&input).map_err(FilterStreamError::Decode)?;
                Ok(take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(&input).map_err(FilterStreamError::Decode)?;
                Ok(take(d.get_mut()))
            }
        }
    }

    /// What the decoder still holds at the end of the stream (a truncated stream is an error).
    fn finish(&mut self) -> Result<Bytes, FilterStreamError> {
        let take = |w: &mut Vec<u8>| Bytes::from(std::mem::take(w));
        match self {
            Decoder::Identity => Ok(Bytes::new()),
            Decoder::Gzip(d) => {
                d.try_finish().map_err(FilterStreamError::Decode)?;
                Ok(take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.try_finish().map_err(FilterStreamError::Decode)?;
                Ok(take(d.get_mut()))
            }
        }
    }

    /// Identity input passes whole; coded input is inflated a step at a time.
    fn step(&self) -> usize {
        match self {
            Decoder::Identity => usize::MAX,
            Decoder::Gzip(_) | Decoder::Deflate(_) => INFLATE_STEP,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FilterStreamError {
    #[error("the upstream answer could not be filtered: {0}")]
    Filter(#[from] FilterError),
    #[error("the upstream answer could not be decompressed: {0}")]
    Decode(std::io::Error),
    #[error("the upstream body failed: {0}")]
    Upstream(#[from] hyper::Error),
}

/// A response body that runs each upstream chunk through its filter. A
/// filter error ends the stream with an error, so the client sees a cut response,
/// never unfiltered data.
struct FilteredBody {
    inner: Incoming,
    filter: BodyFilter,
    decoder: Decoder,
    /// Input received but not yet decoded and filtered (coded input goes a step at a time).
    pending: Bytes,
    /// The first frame, produced before the response head was sent.
    ready: Option<Bytes>,
    done: bool,
}

impl FilteredBody {
    /// Decodes and filters pending input until a frame's worth of output gathered.
    fn drain(&mut self, out: &mut Vec<u8>) -> Result<(), FilterStreamError> {
        while !self.pending.is_empty() && out.len() < FRAME_BYTES {
            let n = self.pending.len().min(self.decoder.step());
            let input = self.pending.split_to(n);
            let decoded = self.decoder.decode(input)?;
            self.filter.push(&decoded, out)?;
        }
        Ok(())
    }

    /// The end of the upstream body: what the decoder held, then the filter's tail.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), FilterStreamError> {
        let tail = self.decoder.finish()?;
        self.filter.push(&tail, out)?;
        self.filter.finish(out)?;
        Ok(())
    }
}

impl http_body::Body for FilteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(first) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            let step: Result<(), FilterStreamError> = if this.pending.is_empty() {
                match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        this.done = true;
                        this.end(&mut out)
                    }
                    Poll::Ready(Some(Err(e))) => Err(e.into()),
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            this.pending = data;
                            this.drain(&mut out)
                        }
                        // Trailers carry no features; they are not forwarded after a rewrite.
                        Err(_) => Ok(()),
                    },
                }
            } else {
                this.drain(&mut out)
            };
            if let Err(e) = step {
                this.done = true;
                tracing::warn!(error = %e, "filtered response cut: it could not be filtered");
                return Poll::Ready(Some(Err(Box::new(e))));
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }
}

/// The URL mapper as the GeoJSON filter sees it (implemented here, where both meet, so
/// that `ogc` does not depend on `filter`).
impl LinkRewrite for LinkMap {
    fn rewrite(&self, href: &str) -> Option<String> {
        match self.map(href) {
            LinkMapped::Unchanged => None,
            LinkMapped::Rewritten(url) | LinkMapped::Unreachable { fallback: url } => Some(url),
        }
    }

    fn leaks(&self, href: &str) -> bool {
        LinkMap::leaks(self, href)
    }

    fn serves(&self, link: &serde_json::Value) -> bool {
        let rel = Rel::of_json(link.get("rel"));
        match link.get("href").and_then(serde_json::Value::as_str) {
            Some(href) => {
                self.keeps_rel(&rel)
                    && !crate::ogc::capabilities::is_misleading_href(href)
                    && self.serves_link(href, link.get("type").and_then(serde_json::Value::as_str))
                    && (!self.is_elsewhere(href) || rel.leads_away())
            }
            None => self.keeps_rel(&rel),
        }
    }
}

/// How many clips (image or vector tile decodes) run at once; the rest wait.
fn clip_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores.clamp(1, 16))
    })
}

/// Runs a clip on the blocking pool, at most [`clip_slots`] at a time, so that
/// decoding and encoding never hold an async worker.
async fn off_the_reactor<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FilterError> + Send + 'static,
) -> Result<T, Reject> {
    let _slot = clip_slots().acquire().await.map_err(|e| Reject::internal("the clip slots are closed", e))?;
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(bad_document(e.to_string())),
        Err(e) => Err(Reject::internal("a clip task failed", e)),
    }
}

/// The fence as the capabilities rewriter sees it, for a path that clips partial
/// overlaps (`clips`) or refuses them.
pub(crate) struct Clipping<'a> {
    pub fence: &'a Fence,
    pub clips: bool,
}

impl FenceView for Clipping<'_> {
    fn max_zoom(&self) -> Option<u8> {
        self.fence.max_zoom()
    }
    fn bounds_lonlat(&self) -> Option<[f64; 4]> {
        FenceView::bounds_lonlat(self.fence)
    }
    fn bounds_mercator(&self) -> Option<[f64; 4]> {
        FenceView::bounds_mercator(self.fence)
    }
    fn tile_limits(&self, z: u8) -> TileLimits {
        if !self.clips {
            return FenceView::tile_limits(self.fence, z);
        }
        // Every tile that meets the fence is served, clipped: the footprint at every zoom.
        match Fence::tile_limits(self.fence, z) {
            Some((min_col, max_col, min_row, max_row)) => TileLimits::Range { min_col, max_col, min_row, max_row },
            None if self.fence.tiles().is_none() => TileLimits::All,
            None => TileLimits::Nothing,
        }
    }
}

/// The fence as the capabilities rewriter sees it, for a path that refuses partial
/// overlaps: only the zooms at and below the shallowest fence tile.
impl FenceView for Fence {
    fn max_zoom(&self) -> Option<u8> {
        Fence::max_zoom(self)
    }
    fn bounds_lonlat(&self) -> Option<[f64; 4]> {
        Fence::bounds_lonlat(self).map(|b| [b.min_x, b.min_y, b.max_x, b.max_y])
    }
    fn bounds_mercator(&self) -> Option<[f64; 4]> {
        Fence::bounds_mercator(self).map(|b| [b.min_x, b.min_y, b.max_x, b.max_y])
    }
    fn tile_limits(&self, z: u8) -> TileLimits {
        let Some(shallowest) = self.tiles().and_then(|t| t.map(|t| t.z()).min()) else {
            return TileLimits::All;
        };
        // Above every fence tile, each tile only partly overlaps the fence: refused.
        if z < shallowest {
            return TileLimits::Nothing;
        }
        match Fence::tile_limits(self, z) {
            Some((min_col, max_col, min_row, max_row)) => TileLimits::Range { min_col, max_col, min_row, max_row },
            None => TileLimits::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tileset_property_schemas_lose_hidden_properties() {
        let doc =
            br#"{"title":"t","layers":[{"id":"roads","propertiesSchema":{"type":"object","required":["name","secret"],
            "properties":{"name":{"type":"string"},"secret":{"type":"string"}}}}],"properties":{"secret":1}}"#;
        let out = trim_property_schemas(doc, &["name".to_owned()]).expect("trimmed");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let schema = &v["layers"][0]["propertiesSchema"];
        assert_eq!(
            schema["properties"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["name".to_owned()])
        );
        assert_eq!(schema["required"], serde_json::json!(["name"]));
        assert_eq!(v["properties"]["secret"], 1, "only schemas are trimmed, other members pass");
    }
}
