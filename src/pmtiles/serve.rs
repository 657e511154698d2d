//! Serving a PMTiles path: which request it is (tile, TileJSON, range read), the
//! [`Target`] the policy judges, and the answer once permitted.
//!
//! A tile is answered as if an upstream had sent it (a [`Response<UpstreamBody>`]
//! with the tile's media type, gzip already undone), so the gateway's filter stage
//! clips and filters it with the same rules as a tile from an HTTP upstream. A tile
//! the archive does not have is `204 No Content` (martin's answer; MapLibre draws an
//! empty tile), judged after the fence like any tile, so a missing tile outside the
//! fence is still a 403.
//!
//! Must never: read the archive before the token's visibility of the path is known;
//! answer a tile, TileJSON or range that `decide` did not permit.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, Uri};

use super::archive::{self, ArchiveError, Archives, Io, Opened};
use super::format::{self, Compression, TileType};
use super::range::{self, Asked, DataIndex};
use crate::gateway::Target;
use crate::ogc::{AnswerCrs, Protocol, ResponseKind};
use crate::paths::{ArchiveSource, PathConfig};
use crate::policy::{Clippable, Denial, Extent, Grant, Operation, Permitted, Surface, Tier};
use crate::proxy::UpstreamBody;
use crate::respond::{self, Body, Reject, UpstreamError};
use crate::route::Route;
use crate::spatial::TileCoord;

/// The file name range-mode clients read: `/path/{id}/archive.pmtiles`.
pub const ARCHIVE_NAME: &str = "archive.pmtiles";
/// The longest range answered at once (a longer one gets a shorter `206`).
pub const MAX_RANGE_BYTES: u64 = 16 << 20;

/// What a request to a PMTiles path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A tile through `/ogc/xyz/…` or `/ogc/mvt/…`.
    Tile(TileCoord, Protocol),
    /// `/ogc/{xyz|mvt}/{id}/tilejson.json`.
    TileJson(Protocol),
    /// `/path/{id}/archive.pmtiles` (range mode).
    Range,
}

/// What the gateway does with a permitted request's answer.
pub enum Answer {
    /// A tile, as if from an upstream: through the filter stage.
    Filter(Response<UpstreamBody>),
    /// The gateway's own finished answer.
    Done(Response<Body>),
}

/// The archive request `route` makes on a path with `[path.upstream] pmtiles`;
/// `None` when the route is not one (another path, or `/path/{id}/…` to `base`).
pub fn ask<'a>(
    config: &'a crate::config::Config,
    route: &Route<'_>,
) -> Option<(&'a Arc<PathConfig>, Result<Ask, Reject>)> {
    let (path_id, ask) = match *route {
        Route::Xyz { path_id, tile, .. } => (path_id, Ok(Ask::Tile(tile, Protocol::Xyz))),
        Route::Ogc { family: family @ (Protocol::Xyz | Protocol::Mvt), path_id, rest } => {
            let ask = if rest == "/tilejson.json" {
                Ok(Ask::TileJson(family))
            } else {
                crate::route::parse_zxy(rest.strip_prefix('/').unwrap_or(rest))
                    .map(|(tile, _)| Ask::Tile(tile, family))
                    .map_err(|e| Reject::BadRequest(e.to_string()))
            };
            (path_id, ask)
        }
        Route::Path { path_id, rest } if rest == ARCHIVE_NAME => (path_id, Ok(Ask::Range)),
        _ => return None,
    };
    let path = config.paths.get(path_id)?;
    path.upstream.pmtiles.as_ref()?;
    Some((path, ask))
}

/// The classify stage for an archive request: the path's visibility first (nothing is
/// read, and no malformed request is told apart, for a token that cannot see it), then
/// the archive's header for the tile type.
pub async fn classify(
    archives: &Archives,
    io: &Io<'_>,
    path: &Arc<PathConfig>,
    ask: Result<Ask, Reject>,
    method: &Method,
    grant: &Grant,
) -> Result<(Target, Ask), Reject> {
    if grant.access_for(path).is_none() {
        return Err(Denial::PathNotFound.into());
    }
    let ask = ask?;
    judged(archives, io, path, ask, method).await.map(|t| (t, ask))
}

async fn judged(
    archives: &Archives,
    io: &Io<'_>,
    path: &Arc<PathConfig>,
    ask: Ask,
    method: &Method,
) -> Result<Target, Reject> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Reject::MethodNotAllowed("GET or HEAD"));
    }
    let target = |op: Operation, protocol: Option<Protocol>, response: Option<ResponseKind>| Target {
        path: path.clone(),
        op,
        uri: Uri::from_static("/"),
        protocol,
        response,
        answer_crs: AnswerCrs::LonLat,
        upstream_base: String::new(),
        public: String::new(),
    };
    match ask {
        Ask::Range => {
            if !path.pmtiles_range {
                return Err(Reject::NotFound);
            }
            // Scope `all` (a `/path/…` route), tier view: the bytes are judged range by range.
            let op = Operation::simple("pmtiles.range", Surface::Full, Tier::View, Extent::None);
            Ok(target(op, None, None))
        }
        Ask::TileJson(protocol) => {
            let op = Operation::simple("pmtiles.tilejson", Surface::Ogc, Tier::View, Extent::None);
            Ok(target(op, Some(protocol), None))
        }
        Ask::Tile(tile, protocol) => {
            let opened = open(archives, io, path).await?;
            let tile_type = opened.header.tile_type;
            if protocol == Protocol::Mvt && tile_type != TileType::Mvt {
                // A protocol the path does not serve looks exactly like a missing path.
                return Err(Denial::PathNotFound.into());
            }
            let (name, kind, clippable) = match tile_type {
                TileType::Mvt => ("mvt.tile", ResponseKind::Mvt, Clippable::VectorTile),
                t if t.clippable_image() => ("xyz.tile", ResponseKind::Image, Clippable::Image { background: None }),
                // AVIF and unknown tiles cannot be decoded: a straddling one is refused.
                _ => ("xyz.tile", ResponseKind::Other, Clippable::No),
            };
            let mut op = Operation::simple(name, Surface::Ogc, Tier::View, Extent::Tile(tile));
            op.clippable = clippable;
            Ok(target(op, Some(protocol), Some(kind)))
        }
    }
}

fn source(path: &PathConfig) -> Result<&ArchiveSource, Reject> {
    path.upstream.pmtiles.as_ref().ok_or(Reject::NotFound)
}

async fn open(archives: &Archives, io: &Io<'_>, path: &PathConfig) -> Result<Arc<Opened>, Reject> {
    Ok(archives.open(io, source(path)?).await?)
}

/// The answer to a permitted archive request.
pub async fn answer(
    archives: &Archives,
    io: &Io<'_>,
    permitted: &Permitted<Target>,
    ask: Ask,
    parts: &http::request::Parts,
    token_query: Option<&str>,
) -> Result<Answer, Reject> {
    match ask {
        Ask::Tile(tile, _) => tile_answer(archives, io, permitted, tile).await,
        Ask::TileJson(protocol) => {
            tilejson_answer(archives, io, permitted, protocol, token_query).await.map(Answer::Done)
        }
        Ask::Range => range_answer(archives, io, permitted, parts).await.map(Answer::Done),
    }
}

async fn tile_answer(
    archives: &Archives,
    io: &Io<'_>,
    permitted: &Permitted<Target>,
    tile: TileCoord,
) -> Result<Answer, Reject> {
    let target = permitted.target();
    let obligations = permitted.permit().obligations();
    let mut retried = false;
    loop {
        let opened = open(archives, io, &target.path).await?;
        let tile_type = opened.header.tile_type;
        let expected = match tile_type {
            TileType::Mvt => ResponseKind::Mvt,
            t if t.clippable_image() => ResponseKind::Image,
            _ => ResponseKind::Other,
        };
        if target.response.as_ref() != Some(&expected) {
            return Err(ArchiveError::Changed.into());
        }
        if tile_type == TileType::Unknown && (obligations.fence.is_some() || obligations.properties.is_some()) {
            return Err(Reject::Forbidden(
                "the archive's tile type is unknown, so its tiles cannot be judged against this token's fences".into(),
            ));
        }
        match archives.tile(io, &opened, tile.z(), tile.x(), tile.y()).await {
            Ok(None) => {
                let mut res = Response::new(respond::full(Bytes::new()));
                *res.status_mut() = StatusCode::NO_CONTENT;
                return Ok(Answer::Done(res));
            }
            Ok(Some(stored)) => {
                let bytes = match opened.header.tile_compression {
                    Compression::None => stored,
                    Compression::Unknown if tile_type.clippable_image() => stored,
                    Compression::Gzip => Bytes::from(
                        format::decompress(Compression::Gzip, &stored, archive::MAX_READ_BYTES)
                            .map_err(|e| Reject::Upstream(UpstreamError::BadDocument(format!("a tile: {e}"))))?,
                    ),
                    other => {
                        return Err(Reject::Upstream(UpstreamError::BadDocument(format!(
                            "the archive's tiles are {}-compressed; tilegate reads gzip or uncompressed tiles",
                            other.as_str()
                        ))))
                    }
                };
                let len = bytes.len();
                let mut res = Response::new(UpstreamBody::full(bytes));
                let h = res.headers_mut();
                h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(tile_type.content_type()));
                h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                return Ok(Answer::Filter(res));
            }
            Err(ArchiveError::Changed) if !retried => {
                archives.drop_version(&opened);
                retried = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn range_answer(
    archives: &Archives,
    io: &Io<'_>,
    permitted: &Permitted<Target>,
    parts: &http::request::Parts,
) -> Result<Response<Body>, Reject> {
    let obligations = permitted.permit().obligations();
    if obligations.properties.is_some() {
        return Err(Reject::Forbidden(
            "raw tiles read by range cannot be filtered for a property-fenced token; read tiles at /ogc/mvt/{pathId}/{z}/{x}/{y}".into(),
        ));
    }
    let mut ranges = parts.headers.get_all(http::header::RANGE).iter();
    let range = ranges.next();
    if ranges.next().is_some() {
        return Err(Reject::BadRequest("several `Range` headers; send one".into()));
    }
    let range = match range {
        Some(v) => Some(v.to_str().map_err(|_| Reject::BadRequest("the `Range` header is not ASCII".into()))?),
        None => None,
    };
    let head = parts.method == Method::HEAD;
    let fence = obligations.fence.as_deref().filter(|f| !f.is_unlimited());
    let mut retried = false;
    loop {
        let path = &permitted.target().path;
        let opened = open(archives, io, path).await?;
        let size = opened.size;
        // `If-Range` naming another version: the whole archive, as RFC 9110 says.
        let current = parts.headers.get(http::header::IF_RANGE).is_none_or(|v| v.as_bytes() == opened.etag.as_bytes());
        let asked = match range {
            Some(r) if current => range::parse_range(r, size).map_err(Reject::BadRequest)?,
            _ => Asked::Whole,
        };
        let (start, end, whole) = match asked {
            Asked::Unsatisfiable => {
                let mut res = Response::new(respond::full(Bytes::new()));
                *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                let h = res.headers_mut();
                h.insert(http::header::CONTENT_RANGE, header_value(format!("bytes */{size}"))?);
                h.insert(http::header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                return Ok(res);
            }
            Asked::Whole if head => {
                // The size is in the header's offsets anyway: nothing to judge.
                return archive_response(&opened, StatusCode::OK, None, Bytes::new(), size);
            }
            Asked::Whole => (0, size, true),
            Asked::Range { start, end } => (start, end.min(start + MAX_RANGE_BYTES), false),
        };
        if whole && size > MAX_RANGE_BYTES {
            return Err(Reject::BadRequest(format!(
                "the archive is {size} bytes; read it with `Range` requests of at most {MAX_RANGE_BYTES} bytes"
            )));
        }
        let tile_data = range::touches_tile_data(&opened.header, start, end);
        if tile_data && opened.header.tile_type == TileType::Mvt && fence.is_some_and(|f| f.tiles().is_some()) {
            // A vector tile carries a buffer of geometry beyond its edges (attacker
            // round 9: London in tile 2/2/1's): raw bytes cannot be clipped to the fence.
            return Err(Reject::Forbidden(
                "raw vector tiles read by range carry geometry beyond their edges, which cannot be clipped to a geofence; read tiles at /ogc/mvt/{pathId}/{z}/{x}/{y}".into(),
            ));
        }
        let index = match fence {
            Some(_) if tile_data => Some(index(archives, io, &opened).await),
            _ => None,
        };
        let index = match index {
            Some(Ok(i)) => Some(i),
            Some(Err(ArchiveError::Changed)) if !retried => {
                archives.drop_version(&opened);
                retried = true;
                continue;
            }
            Some(Err(e)) => return Err(e.into()),
            None => None,
        };
        let (until, stop) = range::allowed_prefix(&opened.header, start, end, fence, index.as_deref());
        if let Some(stop) = stop {
            if whole || until == start {
                return Err(stop.into());
            }
        }
        let len = until - start;
        let body = if head {
            Bytes::new()
        } else {
            match archive::read(io, &opened, start, len).await {
                Ok(b) => b,
                Err(ArchiveError::Changed) if !retried => {
                    archives.drop_version(&opened);
                    retried = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        return if whole {
            archive_response(&opened, StatusCode::OK, None, body, size)
        } else {
            let content_range = format!("bytes {start}-{}/{size}", until - 1);
            archive_response(&opened, StatusCode::PARTIAL_CONTENT, Some(content_range), body, len)
        };
    }
}

async fn index(archives: &Archives, io: &Io<'_>, opened: &Opened) -> Result<Arc<DataIndex>, ArchiveError> {
    opened.index.get_or_try_init(|| async { DataIndex::build(archives, io, opened).await.map(Arc::new) }).await.cloned()
}

fn header_value(s: String) -> Result<HeaderValue, Reject> {
    HeaderValue::from_str(&s).map_err(|_| Reject::internal_bug(format!("`{s}` is not a header value")))
}

fn archive_response(
    opened: &Opened,
    status: StatusCode,
    content_range: Option<String>,
    body: Bytes,
    len: u64,
) -> Result<Response<Body>, Reject> {
    let mut res = Response::new(respond::full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.pmtiles"));
    h.insert(http::header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(http::header::ETAG, header_value(opened.etag.clone())?);
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(cr) = content_range {
        h.insert(http::header::CONTENT_RANGE, header_value(cr)?);
    }
    Ok(res)
}

async fn tilejson_answer(
    archives: &Archives,
    io: &Io<'_>,
    permitted: &Permitted<Target>,
    protocol: Protocol,
    token_query: Option<&str>,
) -> Result<Response<Body>, Reject> {
    let target = permitted.target();
    let path = &target.path;
    let mut retried = false;
    let (opened, metadata) = loop {
        let opened = open(archives, io, path).await?;
        match archives.metadata(io, &opened).await {
            Ok(m) => break (opened, m),
            Err(ArchiveError::Changed) if !retried => {
                archives.drop_version(&opened);
                retried = true;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let h = &opened.header;
    if protocol == Protocol::Mvt && h.tile_type != TileType::Mvt {
        return Err(Denial::PathNotFound.into());
    }
    let ext = match (protocol, h.tile_type) {
        (Protocol::Mvt, _) => String::new(),
        (_, t) => format!(".{}", t.extension()),
    };
    let url = format!("{}/ogc/{}/{}/{{z}}/{{x}}/{{y}}{ext}", io.config.server.public_url, protocol.as_str(), path.id);
    // The archive's own description, shaped as an upstream TileJSON; the shared rewriter
    // then narrows it for this token like any other TileJSON upstream's.
    let mut doc = serde_json::json!({
        "tilejson": "3.0.0",
        "tiles": [url],
        "minzoom": h.min_zoom,
        "maxzoom": h.max_zoom,
        "bounds": h.bounds,
        "center": [h.center[0], h.center[1], h.center_zoom],
    });
    if let (Some(meta), Some(out)) = (metadata.as_object(), doc.as_object_mut()) {
        for key in ["name", "description", "attribution", "version", "vector_layers"] {
            if let Some(v) = meta.get(key) {
                out.insert(key.to_owned(), v.clone());
            }
        }
    }
    let o = permitted.permit().obligations();
    let view = crate::ogc::tilejson::TileJsonView {
        tiles: &url,
        token_query,
        fence: o.fence.as_deref().map(|f| f as &dyn crate::ogc::capabilities::FenceView),
        properties: o.properties.as_deref(),
        layers: (!path.layers.is_empty()).then_some(&path.layers[..]),
        zoom_offset: 0,
    };
    let doc = crate::ogc::tilejson::rewrite_value(&doc, &view)
        .map_err(|e| Reject::from(respond::UpstreamError::BadDocument(format!("the archive's TileJSON: {e}"))))?;
    let body = serde_json::to_vec(&doc).map_err(|e| Reject::internal("cannot write the TileJSON", e))?;
    let mut res = Response::new(respond::full(body));
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}
