//! Capabilities and OGC API link rewriting: the `filter` stage for GetCapabilities
//! responses (WMS 1.1.1/1.3.0, WMTS 1.0 KVP and REST, WFS 1.0/1.1/2.0, WCS 1.0/1.1/2.0)
//! and OGC API JSON documents (landing page, collections, collection, tilesets, items).
//!
//! Three things happen to every document (DESIGN.md §5 "OGC KVP"):
//! 1. **URLs**: every URL on the upstream host and port becomes a public gateway URL
//!    (see [`Rewrite`] for the suffix rule); URLs of other servers stay. When the client
//!    sent its token in the query, `token=<value>` is appended to every rewritten URL so
//!    desktop clients keep working. Afterwards the whole document is checked once more:
//!    if an upstream URL is still anywhere, the rewrite fails rather than leak it.
//! 2. **Layers**: layers, feature types, coverages and collections the path does not
//!    cover are removed (see each protocol's rules below).
//! 3. **Fence** (fenced tokens only): WMTS Web Mercator quad links get
//!    `TileMatrixSetLimits` and lose tile matrices above maxZoom; bounding boxes shrink to
//!    the fence; items wholly outside the fence are removed.
//!
//! Anything that does not parse, has an unexpected root, declares entities or (except the
//! WMS 1.1.1 DOCTYPE) a DOCTYPE is a [`CapabilitiesError`]: the gateway answers 502 and
//! never passes the upstream document through.
//!
//! Pure functions: no I/O, no logging, no clock. The token only ever appears in the query
//! of a rewritten URL, never in an error.

pub(crate) mod bbox;
pub(crate) mod ows;
pub(crate) mod url;

#[cfg(test)]
mod tests;

pub use url::{is_misleading_href, LinkMap, LinkMapped};

use crate::ogc::common::xml::{self, Doc, Element, Node};
use url::UrlMap;

/// Which tiles of one zoom level a fence lets through, as a column/row rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileLimits {
    /// The whole zoom level (the fence has no tiles, only a maxZoom).
    All,
    /// Only tiles inside this rectangle, bounds inclusive.
    Range { min_col: u32, max_col: u32, min_row: u32, max_row: u32 },
    /// Nothing at this zoom (e.g. above every fence tile, where tiles only partly overlap).
    Nothing,
}

/// What the rewrite needs to know about a token's geofence on this path. The gateway
/// implements it for `spatial::Fence`; tests implement it with plain data.
pub trait FenceView {
    /// The highest zoom the token may request, if limited.
    fn max_zoom(&self) -> Option<u8>;
    /// `[min_lon, min_lat, max_lon, max_lat]` of the fence tiles; `None` without tiles.
    fn bounds_lonlat(&self) -> Option<[f64; 4]>;
    /// `[min_x, min_y, max_x, max_y]` in Web Mercator metres; `None` derives it from
    /// [`FenceView::bounds_lonlat`].
    fn bounds_mercator(&self) -> Option<[f64; 4]>;
    /// The tiles allowed at zoom `z` (Web Mercator quad, row 0 at the north).
    fn tile_limits(&self, z: u8) -> TileLimits;
}

/// How to rewrite one capabilities document for one request.
///
/// **URL mapping.** `upstream` is the base URL the gateway forwards this endpoint to and
/// `public` the gateway URL that stands for it (from `server.public_url`, never from the
/// Host header). A URL under the upstream base keeps what follows the base:
///
/// ```text
/// upstream http://up:9001/wmts                public https://gw/ogc/wmts/osm
/// http://up:9001/wmts/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png
///   → https://gw/ogc/wmts/osm/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png
/// ```
///
/// Any other URL on the upstream host and port (scheme-insensitive, default ports
/// filled in) is taken as a KVP endpoint reference and maps to `public` with its query
/// (e.g. MapProxy's `http://up/service?` when the base is `http://up/wms`). A *template*
/// there (WMTS `ResourceURL`, templated OGC API link) cannot be reached through the
/// gateway, so the element or link is removed. The upstream base's own query pairs
/// (MapServer's `map=`) and any `token` pair are removed from rewritten URLs.
#[derive(Clone, Copy)]
pub struct Rewrite<'a> {
    /// The upstream base URL of this protocol endpoint, e.g. `http://127.0.0.1:9001/service`.
    pub upstream: &'a str,
    /// The gateway URL that replaces it, e.g. `https://maps.example.org/ogc/wms/osm`.
    pub public: &'a str,
    /// The client's token when it came in the query: appended as `token=` to every
    /// rewritten URL.
    pub token_query: Option<&'a str>,
    /// Upstream layer names (WMS/WMTS layers, WFS type names as written with their
    /// prefix, WCS coverage ids, OGC API collection ids) the path covers.
    pub layers: &'a [String],
    /// The token's geofence on this path, if any.
    pub fence: Option<&'a dyn FenceView>,
    /// More WMTS tile matrix set identifiers to treat as Web Mercator quad sets, besides
    /// [`WEB_MERCATOR_QUAD_SETS`](crate::ogc::common::matrix::WEB_MERCATOR_QUAD_SETS):
    /// the path's `webmercator_matrix_sets`, which the classifier reads too.
    pub quad_matrix_sets: &'a [String],
    /// The WMTS RESTful tile template the gateway serves on this path (its
    /// `wmts_rest_template` or the default): a tile `ResourceURL` whose template does not
    /// match it would be advertised and then refused, so it is removed. `None`: not checked.
    pub rest_template: Option<&'a str>,
}

impl<'a> Rewrite<'a> {
    /// A rewrite with no query token, no fence, no extra quad sets and no REST template check.
    pub fn new(upstream: &'a str, public: &'a str, layers: &'a [String]) -> Rewrite<'a> {
        Rewrite { upstream, public, token_query: None, layers, fence: None, quad_matrix_sets: &[], rest_template: None }
    }

    pub(crate) fn covers(&self, name: &str) -> bool {
        self.layers.iter().any(|l| l == name)
    }

    /// The fence, when it limits anything.
    pub(crate) fn limiting_fence(&self) -> Option<&'a dyn FenceView> {
        self.fence.filter(|f| f.max_zoom().is_some() || f.bounds_lonlat().is_some())
    }

    pub(crate) fn bounds(&self) -> Option<bbox::Bounds> {
        self.limiting_fence().and_then(bbox::Bounds::of)
    }

    pub(crate) fn url_map(&self) -> Result<UrlMap, CapabilitiesError> {
        UrlMap::new(self.upstream, self.public, self.token_query)
    }
}

impl std::fmt::Debug for Rewrite<'_> {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite")
            .field("upstream", &self.upstream)
            .field("public", &self.public)
            .field("token_query", &self.token_query.map(|_| "<redacted>"))
            .field("layers", &self.layers)
            .field("fenced", &self.fence.is_some())
            .field("quad_matrix_sets", &self.quad_matrix_sets)
            .finish()
    }
}

/// Why an upstream document cannot be rewritten. The gateway answers 502 for every
/// variant and logs the message; none of them contains the token.
#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    #[error("upstream document is not well-formed XML at byte {position}")]
    Xml {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("upstream document is not well-formed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("upstream document is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    #[error("upstream document encoding `{0}` is not supported; UTF-8 or ISO-8859-1 expected")]
    Encoding(String),
    #[error("upstream document has a DOCTYPE; only WMS 1.1.1 may carry one")]
    DocType,
    #[error("upstream document declares entities in its DOCTYPE")]
    EntityDeclaration,
    #[error("upstream document uses the undeclared entity `&{0};`")]
    UndeclaredEntity(String),
    #[error("upstream document nests elements deeper than {0}")]
    TooDeep(usize),
    #[error("upstream root element `{found}` is not a {expected} capabilities document")]
    WrongRoot { found: String, expected: &'static str },
    #[error("upstream document is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("upstream JSON document is not an object")]
    JsonRoot,
    #[error("{which} URL `{url}` is not valid; expected {expected}")]
    BadUrl { which: &'static str, url: String, expected: &'static str },
    #[error("an upstream URL is left after rewriting; refusing to pass it on")]
    Leak,
    #[error("writing the rewritten document failed: {0}")]
    Write(String),
}

/// Rewrites URLs everywhere, refuses to pass on a leftover upstream URL, and writes.
pub(crate) fn finish(mut doc: Doc, map: &UrlMap) -> Result<Vec<u8>, CapabilitiesError> {
    for node in doc.nodes_mut() {
        rewrite_node(node, map);
    }
    rewrite_element(&mut doc.root, map);
    let mut leak = false;
    doc.visit(&mut |piece| {
        leak |= match piece {
            xml::NodeRef::Attr(a) => !is_namespace_declaration(&a.key) && map.leaks(&a.value),
            xml::NodeRef::Text(t) => map.leaks(t),
        }
    });
    if leak {
        return Err(CapabilitiesError::Leak);
    }
    doc.write()
}

/// Namespace URIs are names, not locations: rewriting one would break every client that
/// matches it against GML responses, so `xmlns` attributes are left alone.
fn is_namespace_declaration(key: &str) -> bool {
    key == "xmlns" || key.starts_with("xmlns:")
}

fn rewrite_node(node: &mut Node, map: &UrlMap) {
    match node {
        Node::Element(e) => rewrite_element(e, map),
        Node::Text(t) => {
            if let Some(v) = map.rewrite_value(&t.value) {
                t.set(v);
            }
        }
        Node::CData(s) | Node::PI(s) | Node::DocType(s) => {
            if let Some(v) = map.rewrite_value(s) {
                *s = v;
            }
        }
        Node::Comment(s) => {
            if let Some(v) = map.rewrite_value(s) {
                // `--` may not appear in a comment; such a comment is emptied instead.
                *s = if v.contains("--") { String::new() } else { v };
            }
        }
        Node::Decl(_) => {}
    }
}

fn rewrite_element(el: &mut Element, map: &UrlMap) {
    let mut index = 0;
    while index < el.attrs.len() {
        let attr = &el.attrs[index];
        if is_namespace_declaration(&attr.key) {
            index += 1;
            continue;
        }
        if xml::local(&attr.key) == "schemaLocation" {
            match schema_location(&attr.value, map) {
                Some(v) if v.is_empty() => {
                    el.remove_attr_at(index);
                    continue;
                }
                Some(v) => el.set_attr_at(index, v),
                None => {}
            }
        } else if let Some(v) = map.rewrite_value(&attr.value) {
            el.set_attr_at(index, v);
        }
        index += 1;
    }
    for child in &mut el.children {
        rewrite_node(child, map);
    }
}

/// `xsi:schemaLocation` is a list of namespace/location pairs. A location under the
/// upstream base is rewritten; a pair naming the upstream elsewhere (a schema the
/// gateway does not serve, or an upstream namespace) is dropped: it is only a hint.
/// An empty result removes the attribute.
fn schema_location(value: &str, map: &UrlMap) -> Option<String> {
    let tokens: Vec<&str> = value.split_whitespace().collect();
    if !tokens.iter().any(|t| map.is_upstream(t)) {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for pair in tokens.chunks(2) {
        match pair {
            [ns, _] if map.is_upstream(ns) => {}
            [ns, loc] => match map.map(loc) {
                url::Mapped::Under(public) => out.extend([(*ns).to_owned(), public]),
                url::Mapped::Outside { .. } => {}
                url::Mapped::Foreign => out.extend([(*ns).to_owned(), (*loc).to_owned()]),
            },
            [odd] if !map.is_upstream(odd) => out.push((*odd).to_owned()),
            _ => {}
        }
    }
    Some(out.join(" "))
}
