//! The streaming GML filter: a WFS `FeatureCollection` answer (GML 2, 3.1, 3.2) loses
//! the property elements outside a token's property fence and, under a tile geofence,
//! the features outside it.
//!
//! [`GmlFilter`] is a push filter like the GeoJSON one: the gateway feeds it the
//! upstream body chunk by chunk and forwards what it writes. It holds at most one
//! feature (bounded by [`MAX_FEATURE_BYTES`]) or one container start tag (bounded by
//! [`MAX_TAG_BYTES`]) at a time. Nothing is written before the first feature was read,
//! so an answer it cannot read fails before the gateway sends the response head.
//!
//! # Structure it reads (anything else fails closed)
//!
//! ```text
//! wfs:FeatureCollection                 WFS 1.0 / 1.1 (…/wfs) or 2.0 (…/wfs/2.0)
//!   gml:boundedBy | wfs:boundedBy       the collection's envelope
//!   gml:featureMember   → one feature    WFS 1.0, 1.1
//!   gml:featureMembers  → features       WFS 1.1
//!   wfs:member          → one feature, or a nested wfs:FeatureCollection (2.0 multi-query)
//!   wfs:additionalObjects → wfs:SimpleFeatureCollection | wfs:FeatureCollection
//!   wfs:truncatedResponse               copied (it holds the upstream's exception)
//! ```
//!
//! A small lexer finds where each container tag and each feature ends; every byte that
//! is sent was read by the shared hardened reader (`ogc::common::xml::Hardened`: no
//! DOCTYPE, predefined entities only, bounded depth, matching end tags): a feature is
//! parsed as a small document made of the XML declaration, one element per container
//! around it, the first declaring every namespace binding the containers declare (built
//! once per container, so its bindings are the answer's without reading the
//! containers' start tags again for every feature), the feature and the end tags. Comments and processing instructions between members are
//! dropped; text between members must be whitespace, and is copied only when no fence
//! can drop a member (the gaps left would count what was dropped).
//!
//! # What is changed
//!
//! - **Properties.** Each child element of a feature is a property. Under a property
//!   fence, one whose local name is not allowed is removed (with the whitespace before
//!   it); properties holding a GML geometry, `gml:boundedBy` and `gml:location` always
//!   stay (the fence never hides geometry); the other `gml:` properties (`name`,
//!   `description`, `identifier`, `metaDataProperty`) are removed. Kept bytes are copied
//!   as the upstream wrote them.
//! - **Geofence.** Every GML geometry in a feature (outside `gml:boundedBy`) is read
//!   (`pos`, `posList` with `srsDimension`, `coordinates`, `coord`, `lowerCorner` /
//!   `upperCorner`; points, curves, rings, polygons and patches, envelopes, the multi and
//!   composite kinds) in the CRS its `srsName` (or an enclosing geometry's) names, with
//!   that identifier's axis order: URNs and `http://www.opengis.net/def/crs/EPSG/0/4326`
//!   are latitude first, `…/gml/srs/epsg.xml#4326` and CRS84 longitude first, EPSG:3857
//!   in metres. The short `EPSG:4326` names no axis order: MapServer 8 writes it for
//!   every WFS 1.1 answer, latitude first (GML 3.1 and GML 2 alike, even when asked for
//!   the URN), and longitude first in WFS 1.0. It is read in the order of the CRS the
//!   request asked for when that is unambiguous (WFS 1.0, a URN or URI `SRSNAME`), and
//!   fails closed otherwise (no `SRSNAME`, or the short form, in WFS 1.1 and 2.0). A feature stays only if it has a
//!   geometry and every geometry intersects the fence. A geometry without `srsName`, in
//!   another CRS, or of a kind not read here (arcs, splines, solids) fails closed.
//! - **Counts and envelopes.** Under a geofence (features may be removed),
//!   `numberMatched` becomes `unknown` and `numberReturned`/`numberOfFeatures` are
//!   dropped on every collection (the streaming filter cannot know the exact number
//!   before it sent the start tag), and a collection's own envelope is dropped (GML 2,
//!   where it is required, gets `<gml:null>unknown</gml:null>`): both would tell how
//!   much lies outside the fence.
//! - **Links.** `next`/`previous` (dropped under a fence: they count what lies outside)
//!   and the locations of `xsi:schemaLocation` are mapped
//!   by the [`LinkRewrite`]; a location it does not map, or that still names the
//!   upstream, is dropped (with its namespace in `schemaLocation`).
//!
//! Pure code: no I/O, no logging. It must never emit a byte of a hidden property.

use std::sync::Arc;

use geo::{Coord, Geometry, GeometryCollection, LineString, Point, Polygon, Rect};
use quick_xml::events::BytesStart;
use quick_xml::name::ResolveResult;

use super::{FilterError, LinkRewrite};
use crate::ogc::common::xml::{DocTypePolicy, Hardened, Token, XmlError};
use crate::spatial::{AnswerCrs, Fence};

pub use super::geojson::MAX_FEATURE_BYTES;

/// The longest container start tag (a collection's, with its namespace declarations
/// and schema locations) or gap between members the filter holds.
pub const MAX_TAG_BYTES: usize = 1 << 20;

const WFS_1: &[u8] = b"http://www.opengis.net/wfs";
const WFS_2: &[u8] = b"http://www.opengis.net/wfs/2.0";
const XSI: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";

/// Elements that start a GML geometry (what the geofence reads).
const GEOMETRIES: &[&str] = &[
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "Box",
    "Envelope",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "MultiGeometry",
    "MultiCurve",
    "MultiSurface",
    "Curve",
    "Surface",
    "CompositeCurve",
    "CompositeSurface",
    "OrientableCurve",
    "OrientableSurface",
    "PolyhedralSurface",
    "TriangulatedSurface",
    "Tin",
    "Triangle",
    "Rectangle",
    "Solid",
    "MultiSolid",
    "CompositeSolid",
    "GeometricComplex",
    "Grid",
    "RectifiedGrid",
];

/// Elements inside a geometry that only group their children.
const WRAPPERS: &[&str] = &[
    "exterior",
    "interior",
    "outerBoundaryIs",
    "innerBoundaryIs",
    "pointMember",
    "pointMembers",
    "lineStringMember",
    "curveMember",
    "curveMembers",
    "polygonMember",
    "surfaceMember",
    "surfaceMembers",
    "geometryMember",
    "geometryMembers",
    "segments",
    "patches",
    "polygonPatches",
    "trianglePatches",
    "baseCurve",
    "baseSurface",
    "pointProperty",
];

/// Geometries made of their members.
const COLLECTIONS: &[&str] = &[
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "MultiGeometry",
    "MultiCurve",
    "MultiSurface",
    "Curve",
    "Surface",
    "CompositeCurve",
    "CompositeSurface",
    "OrientableCurve",
    "OrientableSurface",
    "PolyhedralSurface",
    "TriangulatedSurface",
    "Tin",
];

/// What a lexed piece of markup is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Text,
    Comment,
    Pi,
    CData,
    DocType,
    Start,
    Empty,
    End,
}

/// The next piece of markup at `at`, and where it ends; `None` when `buf` ends first.
fn lex(buf: &[u8], at: usize) -> Option<(Item, usize)> {
    let rest = buf.get(at..)?;
    let first = *rest.first()?;
    let find = |needle: &[u8]| rest.windows(needle.len()).position(|w| w == needle).map(|i| at + i + needle.len());
    if first != b'<' {
        return rest.iter().position(|&b| b == b'<').map(|i| (Item::Text, at + i));
    }
    if rest.starts_with(b"<!--") {
        return find(b"-->").map(|e| (Item::Comment, e));
    }
    if rest.starts_with(b"<![CDATA[") {
        return find(b"]]>").map(|e| (Item::CData, e));
    }
    if rest.starts_with(b"<!") {
        if (rest.len() < 4 && b"<!--".starts_with(rest)) || (rest.len() < 9 && b"<![CDATA[".starts_with(rest)) {
            return None;
        }
        return Some((Item::DocType, at + 2));
    }
    if rest.starts_with(b"<?") {
        return find(b"?>").map(|e| (Item::Pi, e));
    }
    if rest.starts_with(b"</") {
        return find(b">").map(|e| (Item::End, e));
    }
    let mut quote: Option<u8> = None;
    for (i, &b) in rest.iter().enumerate().skip(1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'>' => {
                    let item = if rest[i - 1] == b'/' { Item::Empty } else { Item::Start };
                    return Some((item, at + i + 1));
                }
                _ => {}
            },
        }
    }
    None
}

/// The qualified name of a start or end tag.
fn tag_name(tag: &[u8]) -> &[u8] {
    let from = if tag.starts_with(b"</") { 2 } else { 1 };
    let rest = tag.get(from..).unwrap_or_default();
    let end = rest.iter().position(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b'>')).unwrap_or(rest.len());
    &rest[..end]
}

fn local_of(qname: &[u8]) -> &[u8] {
    qname.rsplit(|&b| b == b':').next().unwrap_or(qname)
}

fn is_space(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_gml(ns: Option<&[u8]>) -> bool {
    ns.is_some_and(|ns| ns == b"http://www.opengis.net/gml" || ns == b"http://www.opengis.net/gml/3.2")
}

fn is_wfs(ns: Option<&[u8]>) -> bool {
    ns.is_some_and(|ns| ns == WFS_1 || ns == WFS_2)
}

/// An open container element.
struct Open {
    qname: Vec<u8>,
    kind: Container,
    /// The namespace declarations in scope inside it (its own and its ancestors',
    /// innermost winning), as written: `xmlns[:p]` → the escaped value.
    bindings: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What every piece is read inside: the XML declaration and one synthetic element per
/// open container (the first declaring every binding in scope), and their end tags.
/// Built once when a container opens or closes, not per feature: reading the
/// containers' own start tags again for each feature (a collection's can be kilobytes
/// of schema locations) was most of the filter's time.
#[derive(Default)]
struct Context {
    open: Vec<u8>,
    close: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    /// A `FeatureCollection` or `SimpleFeatureCollection`.
    Collection,
    /// `gml:featureMembers`: features directly inside.
    FeatureMembers,
    /// A `wfs:member` holding a nested collection.
    Member,
    AdditionalObjects,
}

/// A whole element being held until it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// A collection's `boundedBy`.
    Bounds,
    /// `gml:featureMember` or `wfs:member` around one feature.
    Wrapped,
    /// A feature inside `gml:featureMembers`.
    Feature,
    /// Read and copied (`wfs:truncatedResponse`).
    Pass,
}

struct Held {
    unit: Unit,
    /// Where the unit starts in `buf`, where the lexer goes on, and how deep it is.
    start: usize,
    scan: usize,
    depth: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Prolog,
    Body,
    Done,
    Failed,
}

/// A tag read through the hardened reader: its namespace URI, local name and attributes.
type Resolved = (Option<Vec<u8>>, String, Vec<Attr>);

/// One attribute of a tag read through the hardened reader.
struct Attr {
    key: Vec<u8>,
    namespace: Option<Vec<u8>>,
    /// As written (escaped).
    raw: Vec<u8>,
    value: String,
}

/// How a GML answer's `srsName` labels are read under a geofence: the short
/// `EPSG:4326` in `short`'s order, and the long EPSG:4326 forms (URN, URI,
/// `epsg.xml#`) in the order they name only when `trusted` (MapServer, GeoServer;
/// `ogc::wfs::gml_labels_trusted`); else such a geometry fails closed.
#[derive(Clone, Copy, Debug)]
pub struct Labels {
    pub short: AnswerCrs,
    pub trusted: bool,
}

impl GmlFilter {
    /// Whether the long EPSG:4326 `srsName` forms say the axis order (see [`Labels`];
    /// [`GmlFilter::new`] trusts them).
    pub fn with_trusted_labels(mut self, trusted: bool) -> Self {
        self.labels.trusted = trusted;
        self
    }
}

/// A streaming filter for one GML `FeatureCollection` answer. See the module docs.
///
/// ```
/// use std::sync::Arc;
/// use tilegate::filter::GmlFilter;
/// use tilegate::spatial::AnswerCrs;
///
/// let allowed: Arc<[String]> = Arc::from(vec!["name".to_string()]);
/// let mut filter = GmlFilter::new(Some(allowed), None, AnswerCrs::Unknown);
/// let mut out = Vec::new();
/// filter.push(br#"<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs" xmlns:gml="http://www.opengis.net/gml" xmlns:ms="urn:ms">
/// <gml:featureMember><ms:lakes><ms:name>A</ms:name><ms:ow"#, &mut out).unwrap();
/// filter.push(br#"ner>secret</ms:owner></ms:lakes></gml:featureMember></wfs:FeatureCollection>"#, &mut out).unwrap();
/// filter.finish(&mut out).unwrap();
/// let out = String::from_utf8(out).unwrap();
/// assert!(out.contains("<ms:name>A</ms:name>") && !out.contains("secret"));
/// ```
pub struct GmlFilter {
    allowed: Option<Arc<[String]>>,
    fence: Option<Arc<Fence>>,
    /// How srsName labels are read (see [`GmlFilter::new`]).
    labels: Labels,
    links: Option<Arc<dyn LinkRewrite>>,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    consumed: u64,
    /// The XML declaration, read again in front of every piece.
    decl: Vec<u8>,
    stack: Vec<Open>,
    /// The context pieces are read in, for the current `stack`.
    context: Context,
    /// A buffer the pieces are assembled in, kept between features.
    scratch: Vec<u8>,
    held: Option<Held>,
    phase: Phase,
    /// Output held back until the first feature was read, so that an answer the filter
    /// cannot read (a geometry in an unknown CRS) fails before the response head is sent.
    head: Vec<u8>,
    first_read: bool,
}

impl GmlFilter {
    /// A filter showing only `properties` (`None`: all, empty: geometry only) and, when
    /// `fence` has tiles, only features whose geometries intersect it.
    ///
    /// `short` is how a short `srsName="EPSG:4326"` in the answer is read: the axis
    /// order of the CRS the request asked for, when that is unambiguous (WFS 1.0, or a
    /// URN `SRSNAME`: MapServer 8 answers a WFS 1.1 request for the URN with the short
    /// label, latitude first), else [`AnswerCrs::Unknown`] and such a geometry fails
    /// closed.
    pub fn new(properties: Option<Arc<[String]>>, fence: Option<Arc<Fence>>, short: AnswerCrs) -> Self {
        GmlFilter {
            allowed: properties,
            fence: fence.filter(|f| f.tiles().is_some()),
            labels: Labels { short, trusted: true },
            links: None,
            buf: Vec::new(),
            consumed: 0,
            decl: Vec::new(),
            stack: Vec::new(),
            context: Context::default(),
            scratch: Vec::new(),
            held: None,
            phase: Phase::Prolog,
            head: Vec::new(),
            first_read: false,
        }
    }

    /// Maps `next`/`previous` and schema locations (see the module docs); without it
    /// they are dropped, except locations under `http://schemas.opengis.net/`.
    pub fn with_links(mut self, links: Arc<dyn LinkRewrite>) -> Self {
        self.links = Some(links);
        self
    }

    /// Filters a whole document at once.
    pub fn filter_all(mut self, document: &[u8]) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::with_capacity(document.len());
        self.push(document, &mut out)?;
        self.finish(&mut out)?;
        Ok(out)
    }

    /// Filters the next chunk of the body, appending what may be sent on to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        if self.phase == Phase::Failed {
            return Err(FilterError::Poisoned);
        }
        self.buf.extend_from_slice(chunk);
        let result = if self.first_read {
            self.run(out)
        } else {
            let mut head = std::mem::take(&mut self.head);
            let result = self.run(&mut head);
            if self.first_read || self.phase == Phase::Done {
                self.first_read = true;
                out.extend_from_slice(&head);
            } else {
                self.head = head;
            }
            result
        };
        if result.is_err() {
            self.phase = Phase::Failed;
            self.buf = Vec::new();
            self.head = Vec::new();
        }
        result
    }

    /// Ends the body: an error if it stopped inside the collection.
    pub fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), FilterError> {
        match self.phase {
            Phase::Failed => Err(FilterError::Poisoned),
            Phase::Done if is_space(&self.buf) => Ok(()),
            _ => {
                self.phase = Phase::Failed;
                Err(self.not_gml(self.buf.len(), "the answer ends inside the feature collection".into()))
            }
        }
    }

    fn not_gml(&self, at: usize, reason: String) -> FilterError {
        FilterError::NotGml { offset: self.consumed + at as u64, reason }
    }

    fn fenced(&self) -> bool {
        self.fence.is_some()
    }

    /// Consumes every complete item in `buf`, keeping the rest for the next chunk.
    fn run(&mut self, out: &mut Vec<u8>) -> Result<(), FilterError> {
        let mut pos = 0usize;
        let result = self.items(&mut pos, out);
        self.buf.drain(..pos);
        self.consumed += pos as u64;
        if let Some(held) = self.held.as_mut() {
            held.start -= pos;
            held.scan -= pos;
        }
        result
    }

    fn items(&mut self, pos: &mut usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        if self.consumed == 0 && *pos == 0 && self.phase == Phase::Prolog {
            const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(());
            }
            if self.buf.starts_with(BOM) {
                out.extend_from_slice(BOM);
                *pos = BOM.len();
            }
        }
        loop {
            if let Some(held) = self.held.as_mut() {
                let mut end = None;
                while let Some((item, e)) = lex(&self.buf, held.scan) {
                    match item {
                        Item::Start => held.depth += 1,
                        Item::End => held.depth = held.depth.saturating_sub(1),
                        Item::DocType => {
                            return Err(FilterError::NotGml {
                                offset: self.consumed + held.scan as u64,
                                reason: "a DOCTYPE inside a feature".into(),
                            })
                        }
                        _ => {}
                    }
                    held.scan = e;
                    if held.depth == 0 {
                        end = Some(e);
                        break;
                    }
                }
                let Some(end) = end else {
                    if self.buf.len() - held.start > MAX_FEATURE_BYTES {
                        return Err(FilterError::FeatureTooLarge {
                            offset: self.consumed + held.start as u64,
                            limit: MAX_FEATURE_BYTES,
                        });
                    }
                    return Ok(());
                };
                let (unit, start) = (held.unit, held.start);
                self.held = None;
                let piece = self.buf[start..end].to_vec();
                self.unit(unit, &piece, start, out)?;
                *pos = end;
                continue;
            }
            let Some((item, end)) = lex(&self.buf, *pos) else {
                let rest = &self.buf[*pos..];
                if !rest.starts_with(b"<") && !rest.is_empty() {
                    // Text with no markup after it yet: only whitespace is allowed here.
                    if !is_space(rest) {
                        return Err(self.not_gml(*pos, "text between the collection's members".into()));
                    }
                    if self.phase == Phase::Body && self.fence.is_none() {
                        out.extend_from_slice(rest);
                    }
                    *pos = self.buf.len();
                } else if rest.len() > MAX_TAG_BYTES {
                    return Err(self.not_gml(*pos, format!("markup longer than {MAX_TAG_BYTES} bytes")));
                }
                return Ok(());
            };
            let bytes = &self.buf[*pos..end];
            match item {
                Item::Text => {
                    if !is_space(bytes) {
                        return Err(self.not_gml(*pos, "text between the collection's members".into()));
                    }
                    // Under a fence the whitespace between members is not copied: the
                    // indentation left where a dropped member stood counted the features
                    // outside the fence, in document order (attacker round 5).
                    if self.phase == Phase::Body && self.fence.is_none() {
                        out.extend_from_slice(bytes);
                    }
                }
                Item::Comment => {}
                Item::Pi => {
                    if self.phase == Phase::Prolog && self.decl.is_empty() && bytes.starts_with(b"<?xml ") {
                        self.decl = bytes.to_vec();
                        out.extend_from_slice(bytes);
                    }
                }
                Item::CData => return Err(self.not_gml(*pos, "character data between the collection's members".into())),
                Item::DocType => return Err(self.not_gml(*pos, "a DOCTYPE".into())),
                Item::End => {
                    let name = tag_name(bytes).to_vec();
                    let popped = self.stack.pop();
                    self.recontext();
                    match popped {
                        Some(open) if open.qname == name => {
                            out.extend_from_slice(b"</");
                            out.extend_from_slice(&name);
                            out.push(b'>');
                        }
                        _ => return Err(self.not_gml(*pos, "an end tag that does not match".into())),
                    }
                    if self.stack.is_empty() {
                        self.phase = Phase::Done;
                    }
                }
                Item::Start | Item::Empty => {
                    if self.phase == Phase::Done {
                        return Err(self.not_gml(*pos, "a second root element".into()));
                    }
                    if !self.open(item, *pos, end, out)? {
                        // The next piece is not complete yet.
                        if self.buf.len() - *pos > MAX_TAG_BYTES {
                            return Err(self.not_gml(*pos, "a member whose first child does not start".into()));
                        }
                        return Ok(());
                    }
                    if self.held.is_some() {
                        // `open` started holding the element at `pos`.
                        continue;
                    }
                }
            }
            *pos = end;
        }
    }

    /// Handles a start tag at container level. Returns false when the decision needs
    /// input that has not arrived (the first child of a `wfs:member`).
    fn open(&mut self, item: Item, at: usize, end: usize, out: &mut Vec<u8>) -> Result<bool, FilterError> {
        let tag = self.buf[at..end].to_vec();
        let empty = item == Item::Empty;
        let (ns, local, attrs) = self.resolve(&[&tag], at)?;
        let ns = ns.as_deref();
        let parent = self.stack.last().map(|o| o.kind);
        let collection = is_wfs(ns) && matches!(local.as_str(), "FeatureCollection" | "SimpleFeatureCollection");
        let hold = |filter: &mut GmlFilter, unit: Unit| {
            filter.held = Some(Held { unit, start: at, scan: end, depth: usize::from(!empty) });
            if empty {
                // An empty element is complete at once.
                filter.held = Some(Held { unit, start: at, scan: at, depth: 0 });
            }
        };
        match parent {
            None => {
                if !(collection && local == "FeatureCollection") {
                    return Err(self.not_gml(at, format!("the answer's root `{local}` is not a wfs:FeatureCollection")));
                }
                self.phase = Phase::Body;
                self.open_collection(&tag, &attrs, empty, out)?;
            }
            Some(Container::Collection) => match (ns, local.as_str()) {
                (n, "boundedBy") if is_gml(n) || is_wfs(n) => hold(self, Unit::Bounds),
                (n, "featureMember") if is_gml(n) => hold(self, Unit::Wrapped),
                (n, "featureMembers") if is_gml(n) => {
                    self.push_container(tag, &attrs, empty, Container::FeatureMembers, out);
                }
                (n, "additionalObjects") if is_wfs(n) => {
                    self.push_container(tag, &attrs, empty, Container::AdditionalObjects, out);
                }
                (n, "truncatedResponse") if is_wfs(n) => hold(self, Unit::Pass),
                (n, "member") if is_wfs(n) => {
                    if empty {
                        return Err(self.not_gml(at, "an empty wfs:member".into()));
                    }
                    // A member holds a feature or a nested collection: look at its first child.
                    let mut next = end;
                    let child = loop {
                        match lex(&self.buf, next) {
                            None => return Ok(false),
                            Some((Item::Text, e)) if is_space(&self.buf[next..e]) => next = e,
                            Some((Item::Comment, e)) => next = e,
                            Some((Item::Start | Item::Empty, e)) => break self.buf[next..e].to_vec(),
                            Some(_) => return Err(self.not_gml(next, "a wfs:member without an element".into())),
                        }
                    };
                    let (child_ns, child_local, _) = self.resolve(&[&tag, &child], at)?;
                    let nested = is_wfs(child_ns.as_deref())
                        && matches!(child_local.as_str(), "FeatureCollection" | "SimpleFeatureCollection");
                    if nested {
                        self.push_container(tag, &attrs, false, Container::Member, out);
                    } else {
                        hold(self, Unit::Wrapped);
                    }
                }
                _ => return Err(self.not_gml(at, format!("`{local}` is not a member of a feature collection"))),
            },
            Some(Container::FeatureMembers) => {
                if is_wfs(ns) || is_gml(ns) {
                    return Err(self.not_gml(at, format!("`{local}` is not a feature")));
                }
                hold(self, Unit::Feature);
            }
            Some(Container::Member | Container::AdditionalObjects) => {
                if !collection {
                    return Err(self.not_gml(at, format!("`{local}` is not a feature collection")));
                }
                self.open_collection(&tag, &attrs, empty, out)?;
            }
        }
        Ok(true)
    }

    fn push_container(&mut self, tag: Vec<u8>, attrs: &[Attr], empty: bool, kind: Container, out: &mut Vec<u8>) {
        out.extend_from_slice(&tag);
        if !empty {
            let qname = tag_name(&tag).to_vec();
            self.push_open(qname, kind, attrs);
        }
    }

    /// Opens a container: its bindings are its parent's with its own declarations.
    fn push_open(&mut self, qname: Vec<u8>, kind: Container, attrs: &[Attr]) {
        let mut bindings = self.stack.last().map(|o| o.bindings.clone()).unwrap_or_default();
        for attr in attrs.iter().filter(|a| a.key == b"xmlns" || a.key.starts_with(b"xmlns:")) {
            match bindings.iter_mut().find(|(k, _)| *k == attr.key) {
                Some(binding) => binding.1.clone_from(&attr.raw),
                None => bindings.push((attr.key.clone(), attr.raw.clone())),
            }
        }
        self.stack.push(Open { qname, kind, bindings });
        self.recontext();
    }

    /// Rebuilds the context pieces are read in after the stack changed.
    fn recontext(&mut self) {
        let mut open = self.decl.clone();
        let mut close = Vec::new();
        if let Some(top) = self.stack.last() {
            open.extend_from_slice(b"<c");
            for (key, value) in &top.bindings {
                open.push(b' ');
                open.extend_from_slice(key);
                open.extend_from_slice(b"=\"");
                open.extend_from_slice(value);
                open.push(b'"');
            }
            open.push(b'>');
            // As deep as the containers, so the reader's depth bound counts the same.
            for _ in 1..self.stack.len() {
                open.extend_from_slice(b"<c>");
            }
            for _ in 0..self.stack.len() {
                close.extend_from_slice(b"</c>");
            }
        }
        self.context = Context { open, close };
    }

    /// Writes a collection's start tag with its counts and links fixed, and opens it.
    fn open_collection(
        &mut self,
        tag: &[u8],
        attrs: &[Attr],
        empty: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), FilterError> {
        let qname = tag_name(tag).to_vec();
        let mut written = Vec::with_capacity(tag.len());
        written.push(b'<');
        written.extend_from_slice(&qname);
        for attr in attrs {
            let local = local_of(&attr.key);
            let plain = attr.namespace.is_none();
            let plain = plain && !attr.key.starts_with(b"xmlns");
            let value: Option<Vec<u8>> = match local {
                b"numberMatched" if plain && self.fenced() => Some(b"unknown".to_vec()),
                b"numberReturned" | b"numberOfFeatures" if plain && self.fenced() => None,
                // Under a fence a page link says whether the upstream holds more
                // features, counted over what lies outside too (attacker round 6:
                // `COUNT=1` and `STARTINDEX` walked `next` over 23 hidden features).
                // Any case: XML names are case-sensitive, but a reader of the raw
                // answer sees the link whatever its attribute is called.
                l if plain
                    && self.fenced()
                    && (l.eq_ignore_ascii_case(b"next") || l.eq_ignore_ascii_case(b"previous")) =>
                {
                    None
                }
                b"next" | b"previous" if plain => self.link(&attr.value).map(|url| escape(&url)),
                b"schemaLocation" if attr.namespace.as_deref() == Some(XSI) => self.schema_locations(&attr.value),
                _ => Some(attr.raw.clone()),
            };
            if let Some(value) = value {
                written.push(b' ');
                written.extend_from_slice(&attr.key);
                written.extend_from_slice(b"=\"");
                written.extend_from_slice(&value);
                written.push(b'"');
            }
        }
        written.extend_from_slice(if empty { b"/>" } else { b">" });
        out.extend_from_slice(&written);
        if empty {
            if self.stack.is_empty() {
                self.phase = Phase::Done;
            }
        } else {
            // Later pieces are read with the bindings the upstream's own tag declares.
            self.push_open(qname, Container::Collection, attrs);
        }
        Ok(())
    }

    /// A link the client may follow: mapped to the gateway and no longer naming the upstream.
    fn link(&self, url: &str) -> Option<String> {
        let links = self.links.as_ref()?;
        links.rewrite(url).filter(|mapped| !links.leaks(mapped))
    }

    /// `xsi:schemaLocation` pairs whose location is an OGC schema or maps to the gateway.
    fn schema_locations(&self, value: &str) -> Option<Vec<u8>> {
        let words: Vec<&str> = value.split_ascii_whitespace().collect();
        let mut kept: Vec<String> = Vec::new();
        for pair in words.chunks(2) {
            let [namespace, location] = pair else { continue };
            let location = if location.starts_with("http://schemas.opengis.net/") {
                Some((*location).to_owned())
            } else {
                self.link(location)
            };
            if let Some(location) = location {
                kept.push(format!("{namespace} {location}"));
            }
        }
        (!kept.is_empty()).then(|| escape(&kept.join(" ")))
    }

    /// Reads `tags` (start tags, the last one possibly empty) in the context of the open
    /// containers through the hardened reader: the last tag's namespace, local name and
    /// attributes.
    fn resolve(&self, tags: &[&[u8]], at: usize) -> Result<Resolved, FilterError> {
        let mut doc = Vec::with_capacity(self.context.open.len() + 256);
        doc.extend_from_slice(&self.context.open);
        let mut names: Vec<&[u8]> = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            doc.extend_from_slice(tag);
            let last = i + 1 == tags.len();
            if !(last && tag.ends_with(b"/>")) {
                names.push(tag_name(tag));
            }
        }
        for name in names.iter().rev() {
            doc.extend_from_slice(b"</");
            doc.extend_from_slice(name);
            doc.push(b'>');
        }
        doc.extend_from_slice(&self.context.close);
        let offset = self.consumed + at as u64;
        let invalid = |e: XmlError| FilterError::InvalidXml { offset, reason: e.to_string() };
        let mut reader = Hardened::new(&doc, DocTypePolicy::Refuse).map_err(invalid)?;
        let wanted = self.stack.len() + tags.len();
        let mut seen = 0usize;
        loop {
            let (resolved, token) = reader.next_resolved().map_err(invalid)?;
            let ns = bound(resolved);
            match token {
                Token::Start(e) | Token::Empty(e) => {
                    seen += 1;
                    if seen == wanted {
                        let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                        let attrs = attributes(&reader, &e, offset)?;
                        return Ok((ns, local, attrs));
                    }
                }
                Token::Eof => return Err(FilterError::NotGml { offset, reason: "a tag that does not parse".into() }),
                _ => {}
            }
        }
    }

    /// A complete held element: read, filtered, written (or dropped).
    fn unit(&mut self, unit: Unit, piece: &[u8], at: usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        let offset = self.consumed + at as u64;
        let mut doc = std::mem::take(&mut self.scratch);
        doc.clear();
        doc.extend_from_slice(&self.context.open);
        let base = doc.len();
        doc.extend_from_slice(piece);
        doc.extend_from_slice(&self.context.close);
        let labels = self.fence.as_ref().map(|_| self.labels);
        let read = read_piece(&doc, base, self.stack.len(), unit, labels, offset);
        self.scratch = doc;
        let read = read?;
        match unit {
            Unit::Pass => out.extend_from_slice(piece),
            Unit::Bounds => {
                if !self.fenced() || !read.corners {
                    out.extend_from_slice(piece);
                } else if read.gml2_box {
                    // GML 2 requires a collection's boundedBy: say it is unknown.
                    let qname = tag_name(piece);
                    let prefix = qname.len().checked_sub(local_of(qname).len()).map_or(&qname[..0], |n| &qname[..n]);
                    out.extend_from_slice(b"<");
                    out.extend_from_slice(qname);
                    out.extend_from_slice(b"><");
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(b"null>unknown</");
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(b"null></");
                    out.extend_from_slice(qname);
                    out.extend_from_slice(b">");
                }
            }
            Unit::Wrapped | Unit::Feature => {
                self.first_read = true;
                if let Some(fence) = &self.fence {
                    let inside =
                        !read.geometries.is_empty() && read.geometries.iter().all(|g| fence.intersects_lonlat(g));
                    if !inside {
                        return Ok(());
                    }
                }
                let mut copied = 0usize;
                for prop in &read.properties {
                    if self.keeps(prop) {
                        continue;
                    }
                    let mut from = prop.start;
                    while from > copied && piece.get(from - 1).is_some_and(u8::is_ascii_whitespace) {
                        from -= 1;
                    }
                    out.extend_from_slice(piece.get(copied..from).unwrap_or_default());
                    copied = prop.end;
                }
                out.extend_from_slice(piece.get(copied..).unwrap_or_default());
            }
        }
        Ok(())
    }

    fn keeps(&self, prop: &Property) -> bool {
        let Some(allowed) = &self.allowed else { return true };
        if prop.geometry {
            return true;
        }
        if prop.gml {
            return matches!(prop.local.as_str(), "boundedBy" | "location");
        }
        allowed.contains(&prop.local)
    }
}

fn escape(text: &str) -> Vec<u8> {
    quick_xml::escape::escape(text).as_bytes().to_vec()
}

fn bound(resolved: ResolveResult<'_>) -> Option<Vec<u8>> {
    match resolved {
        ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
        _ => None,
    }
}

fn attributes(reader: &Hardened<'_>, e: &BytesStart<'_>, offset: u64) -> Result<Vec<Attr>, FilterError> {
    let mut out = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|err| FilterError::InvalidXml { offset, reason: err.to_string() })?;
        let key = attr.key.as_ref().to_vec();
        let namespace = if key.contains(&b':') && !key.starts_with(b"xmlns:") {
            bound(reader.resolve_element(attr.key).0)
        } else {
            None
        };
        let value = attr
            .unescape_value()
            .map_err(|err| FilterError::InvalidXml { offset, reason: err.to_string() })?
            .into_owned();
        let raw = if attr.value.contains(&b'"') { escape(&value) } else { attr.value.to_vec() };
        out.push(Attr { key, namespace, raw, value });
    }
    Ok(out)
}

/// One property element of a feature, by byte range of the piece.
struct Property {
    start: usize,
    end: usize,
    local: String,
    gml: bool,
    geometry: bool,
}

/// What reading a piece found.
#[derive(Default)]
struct Piece {
    properties: Vec<Property>,
    geometries: Vec<Geometry<f64>>,
    gml2_box: bool,
    /// It holds an envelope or a box (a collection's `boundedBy` may say `null` instead).
    corners: bool,
}

/// Reads a piece (inside its context) through the hardened reader: its properties, its
/// geometries in lon/lat when `geometry` says how to read a short srsName (under a
/// geofence), and whether it holds a GML 2 `Box`.
fn read_piece(
    doc: &[u8],
    base: usize,
    context: usize,
    unit: Unit,
    geometry: Option<Labels>,
    offset: u64,
) -> Result<Piece, FilterError> {
    let invalid = |e: XmlError| FilterError::InvalidXml { offset, reason: e.to_string() };
    let geometry_error = |reason: String| FilterError::InvalidGeometry { offset, reason };
    let mut reader = Hardened::new(doc, DocTypePolicy::Refuse).map_err(invalid)?;
    let mut piece = Piece::default();
    // The depth (relative to the piece) of the feature element and of its properties.
    let feature_depth = usize::from(unit == Unit::Wrapped);
    let mut depth = 0usize;
    let mut features = 0usize;
    let mut in_bounds: Option<usize> = None;
    let mut builder: Option<(usize, Builder)> = None;
    loop {
        let before = to_usize(reader.position());
        let (resolved, token) = reader.next_resolved().map_err(invalid)?;
        let ns = bound(resolved);
        let after = to_usize(reader.position());
        let (start, empty) = match &token {
            Token::Start(e) => (Some(e), false),
            Token::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            if depth >= context {
                let rel = depth - context;
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let gml = is_gml(ns.as_deref());
                if local == "Box" && gml {
                    piece.gml2_box = true;
                }
                if gml && matches!(local.as_str(), "Box" | "Envelope") {
                    piece.corners = true;
                }
                if matches!(unit, Unit::Wrapped | Unit::Feature) {
                    if rel == feature_depth {
                        features += 1;
                        if features > 1 || is_wfs(ns.as_deref()) || gml {
                            return Err(FilterError::NotGml {
                                offset,
                                reason: format!("`{local}` is not one feature"),
                            });
                        }
                    } else if rel == feature_depth + 1 {
                        piece.properties.push(Property {
                            start: before.saturating_sub(base),
                            end: if empty { after.saturating_sub(base) } else { usize::MAX },
                            local: local.clone(),
                            gml,
                            geometry: false,
                        });
                        if gml && local == "boundedBy" && !empty {
                            in_bounds = Some(rel);
                        }
                    } else if rel == feature_depth + 2 && gml && GEOMETRIES.contains(&local.as_str()) {
                        if let Some(prop) = piece.properties.last_mut() {
                            prop.geometry = true;
                        }
                    }
                    if let Some(short) = geometry.filter(|_| rel > feature_depth && in_bounds.is_none()) {
                        match builder.as_mut() {
                            Some((_, b)) => b.start(&local, gml, e, short).map_err(geometry_error)?,
                            None if gml && GEOMETRIES.contains(&local.as_str()) => {
                                let mut b = Builder::default();
                                b.start(&local, gml, e, short).map_err(geometry_error)?;
                                builder = Some((rel, b));
                            }
                            None => {}
                        }
                    }
                }
                if empty {
                    close(&mut builder, &mut piece, rel, &mut in_bounds, geometry_error)?;
                }
            }
            if !empty {
                depth += 1;
            }
            continue;
        }
        match token {
            Token::End(_) => {
                depth = depth.saturating_sub(1);
                if depth >= context {
                    let rel = depth - context;
                    if rel == feature_depth + 1 && matches!(unit, Unit::Wrapped | Unit::Feature) {
                        if let Some(prop) = piece.properties.last_mut() {
                            if prop.end == usize::MAX {
                                prop.end = after.saturating_sub(base);
                            }
                        }
                    }
                    close(&mut builder, &mut piece, rel, &mut in_bounds, geometry_error)?;
                }
            }
            Token::Text(t) => {
                let text = t.decode().map_err(|e| FilterError::InvalidXml { offset, reason: e.to_string() })?;
                if let Some((_, b)) = builder.as_mut() {
                    b.text(&text);
                } else if depth > context
                    && depth - context - 1 <= feature_depth
                    && !is_space(text.as_bytes())
                    && matches!(unit, Unit::Wrapped | Unit::Feature)
                {
                    return Err(FilterError::NotGml { offset, reason: "text outside the feature's properties".into() });
                }
            }
            Token::CData(t) => {
                if let Some((_, b)) = builder.as_mut() {
                    b.text(&String::from_utf8_lossy(&t));
                } else if depth > context
                    && depth - context - 1 <= feature_depth
                    && !is_space(&t)
                    && matches!(unit, Unit::Wrapped | Unit::Feature)
                {
                    return Err(FilterError::NotGml { offset, reason: "text outside the feature's properties".into() });
                }
            }
            Token::Ref { value, .. } => {
                if let Some((_, b)) = builder.as_mut() {
                    b.text(value.encode_utf8(&mut [0; 4]));
                }
            }
            Token::Eof => break,
            _ => {}
        }
    }
    if matches!(unit, Unit::Wrapped | Unit::Feature) && features != 1 {
        return Err(FilterError::NotGml { offset, reason: "a feature member without a feature".into() });
    }
    Ok(piece)
}

/// An element at `rel` closed: finishes the geometry it started, or leaves boundedBy.
fn close(
    builder: &mut Option<(usize, Builder)>,
    piece: &mut Piece,
    rel: usize,
    in_bounds: &mut Option<usize>,
    geometry_error: impl Fn(String) -> FilterError,
) -> Result<(), FilterError> {
    if *in_bounds == Some(rel) {
        *in_bounds = None;
        return Ok(());
    }
    if let Some((at, b)) = builder.as_mut() {
        let done = b.end().map_err(&geometry_error)?;
        if *at == rel {
            let geometry = done.ok_or_else(|| geometry_error("the geometry is empty".into()))?;
            piece.geometries.push(geometry);
            *builder = None;
        }
    }
    Ok(())
}

fn to_usize(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// How an `srsName` is read: its CRS and the axis order its form names; the short
/// `EPSG:4326` in the order `short` gives.
fn read_srs(srs: &str, labels: Labels) -> Result<AnswerCrs, String> {
    let Labels { short, trusted } = labels;
    let short_form = srs.trim().get(..5).is_some_and(|p| p.eq_ignore_ascii_case("epsg:"));
    let crs = AnswerCrs::from_crs(crate::spatial::crs_from_identifier(srs));
    match crs {
        AnswerCrs::LonLat | AnswerCrs::LatLon if !trusted && !short_form && !crate::spatial::names_crs84(srs) => {
            Err(format!(
            "srsName `{srs}` does not say the axis order on this server (QGIS Server writes these labels in either \
             order; declare the path's `server`, or ask with SRSNAME=EPSG:3857)"
        ))
        }
        AnswerCrs::LonLat | AnswerCrs::LatLon if short_form => {
            if matches!(short, AnswerCrs::LonLat | AnswerCrs::LatLon) {
                Ok(short)
            } else {
                Err(format!(
                    "srsName `{srs}` does not say its axis order (MapServer writes it latitude first, other servers \
                     longitude first); ask with SRSNAME=urn:ogc:def:crs:EPSG::4326"
                ))
            }
        }
        AnswerCrs::Unknown => Err(format!("srsName `{srs}` is not a CRS the gateway reads (EPSG:4326, EPSG:3857)")),
        known => Ok(known),
    }
}

fn lonlat(crs: AnswerCrs, a: f64, b: f64) -> Result<Coord<f64>, String> {
    match crs {
        AnswerCrs::LonLat => Ok(Coord { x: a, y: b }),
        AnswerCrs::LatLon => Ok(Coord { x: b, y: a }),
        AnswerCrs::WebMercator => {
            let (x, y) = crate::spatial::lonlat_from_mercator(a, b);
            Ok(Coord { x, y })
        }
        AnswerCrs::Unknown => Err("a coordinate in an unknown CRS".into()),
    }
}

/// One open element inside a geometry.
struct Frame {
    local: String,
    srs: Option<AnswerCrs>,
    dimension: Option<usize>,
    /// Text of a coordinate element.
    text: Option<String>,
    coords: Vec<Coord<f64>>,
    /// `gml:coord`'s X and Y.
    xy: [Option<f64>; 2],
    parts: Vec<Geometry<f64>>,
}

/// Builds one geometry from the elements of a GML geometry, in lon/lat.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
}

impl Builder {
    fn start(&mut self, local: &str, gml: bool, e: &BytesStart<'_>, short: Labels) -> Result<(), String> {
        if !gml {
            return Err(format!("`{local}` inside a geometry is not GML"));
        }
        let attr = |name: &str| -> Result<Option<String>, String> {
            match e.try_get_attribute(name) {
                Ok(Some(a)) => a.unescape_value().map(|v| Some(v.into_owned())).map_err(|err| err.to_string()),
                Ok(None) => Ok(None),
                Err(err) => Err(err.to_string()),
            }
        };
        let parent = self.stack.last();
        let srs = match attr("srsName")? {
            Some(s) => Some(read_srs(&s, short)?),
            None => parent.and_then(|p| p.srs),
        };
        let dimension = match attr("srsDimension")? {
            Some(d) => match d.trim() {
                "2" => Some(2),
                "3" => Some(3),
                other => return Err(format!("srsDimension `{other}` is not 2 or 3")),
            },
            None => parent.and_then(|p| p.dimension),
        };
        let coordinate =
            matches!(local, "pos" | "posList" | "coordinates" | "lowerCorner" | "upperCorner" | "X" | "Y" | "Z");
        if local == "coordinates" {
            for (name, default) in [("cs", ","), ("ts", " "), ("decimal", ".")] {
                if attr(name)?.is_some_and(|v| v != default) {
                    return Err(format!("gml:coordinates with a `{name}` other than `{default}`"));
                }
            }
        }
        let known = coordinate
            || local == "coord"
            || GEOMETRIES.contains(&local)
            || WRAPPERS.contains(&local)
            || matches!(local, "LineStringSegment" | "PolygonPatch" | "name" | "description" | "identifier");
        if !known
            || matches!(
                local,
                "Solid" | "MultiSolid" | "CompositeSolid" | "GeometricComplex" | "Grid" | "RectifiedGrid"
            )
        {
            return Err(format!("the geometry element `gml:{local}` is not read by the gateway"));
        }
        self.stack.push(Frame {
            local: local.to_owned(),
            srs,
            dimension,
            text: coordinate.then(String::new),
            coords: Vec::new(),
            xy: [None, None],
            parts: Vec::new(),
        });
        Ok(())
    }

    fn text(&mut self, text: &str) {
        if let Some(Frame { text: Some(buf), .. }) = self.stack.last_mut() {
            buf.push_str(text);
        }
    }

    /// Closes the innermost element; the finished geometry when it was the outermost.
    fn end(&mut self) -> Result<Option<Geometry<f64>>, String> {
        let frame = self.stack.pop().ok_or("a geometry closes more than it opened")?;
        let srs = || frame.srs.ok_or_else(|| format!("`gml:{}` has no srsName", frame.local));
        let numbers = |text: &str| -> Result<Vec<f64>, String> {
            text.split_ascii_whitespace()
                .map(|n| n.parse::<f64>().map_err(|_| format!("`{n}` is not a number")))
                .collect()
        };
        let mut coords: Vec<Coord<f64>> = Vec::new();
        let mut parts: Vec<Geometry<f64>> = Vec::new();
        let text = frame.text.clone().unwrap_or_default();
        match frame.local.as_str() {
            "pos" | "lowerCorner" | "upperCorner" => {
                let n = numbers(&text)?;
                let dim = frame.dimension.unwrap_or(n.len());
                if !(2..=3).contains(&n.len()) || n.len() != dim {
                    return Err(format!("gml:{} holds {} numbers", frame.local, n.len()));
                }
                coords.push(lonlat(srs()?, n[0], n[1])?);
            }
            "posList" => {
                let n = numbers(&text)?;
                let dim = frame.dimension.unwrap_or(2);
                if n.is_empty() || n.len() % dim != 0 {
                    return Err(format!("gml:posList holds {} numbers, not a multiple of {dim}", n.len()));
                }
                let crs = srs()?;
                for c in n.chunks(dim) {
                    coords.push(lonlat(crs, c[0], c[1])?);
                }
            }
            "coordinates" => {
                let crs = srs()?;
                for tuple in text.split_ascii_whitespace() {
                    let n: Vec<f64> = tuple
                        .split(',')
                        .map(|v| v.parse::<f64>().map_err(|_| format!("`{tuple}` is not a coordinate tuple")))
                        .collect::<Result<_, _>>()?;
                    if !(2..=3).contains(&n.len()) {
                        return Err(format!("`{tuple}` is not a coordinate tuple"));
                    }
                    coords.push(lonlat(crs, n[0], n[1])?);
                }
            }
            "X" | "Y" | "Z" => {
                let n = numbers(&text)?;
                let [v] = n[..] else { return Err(format!("gml:{} holds {} numbers", frame.local, n.len())) };
                if let Some(parent) = self.stack.last_mut() {
                    match frame.local.as_str() {
                        "X" => parent.xy[0] = Some(v),
                        "Y" => parent.xy[1] = Some(v),
                        _ => {}
                    }
                }
            }
            "coord" => match frame.xy {
                [Some(x), Some(y)] => coords.push(lonlat(srs()?, x, y)?),
                _ => return Err("gml:coord without X and Y".into()),
            },
            "Point" => match frame.coords[..] {
                [c] => parts.push(Geometry::Point(Point(c))),
                _ => return Err(format!("a gml:Point with {} positions", frame.coords.len())),
            },
            "LineString" | "LinearRing" | "LineStringSegment" => {
                if frame.coords.len() < 2 {
                    return Err(format!("a gml:{} with fewer than 2 positions", frame.local));
                }
                parts.push(Geometry::LineString(LineString(frame.coords.clone())));
            }
            "Polygon" | "PolygonPatch" | "Triangle" | "Rectangle" => {
                let mut rings = frame.parts.iter().map(|g| match g {
                    Geometry::LineString(l) => Ok(l.clone()),
                    _ => Err(format!("a gml:{} ring is not a ring", frame.local)),
                });
                let exterior = rings.next().ok_or_else(|| format!("a gml:{} without a ring", frame.local))??;
                let interiors = rings.collect::<Result<Vec<_>, _>>()?;
                parts.push(Geometry::Polygon(Polygon::new(exterior, interiors)));
            }
            "Envelope" | "Box" => match frame.coords[..] {
                [a, b] => parts.push(Geometry::Polygon(Rect::new(a, b).to_polygon())),
                _ => return Err(format!("a gml:{} without two corners", frame.local)),
            },
            "name" | "description" | "identifier" => {}
            local if COLLECTIONS.contains(&local) => {
                parts.push(Geometry::GeometryCollection(GeometryCollection(frame.parts.clone())));
            }
            _ => {
                // Wrappers pass their children up.
                coords.extend_from_slice(&frame.coords);
                parts.extend(frame.parts.iter().cloned());
            }
        }
        match self.stack.last_mut() {
            Some(parent) => {
                parent.coords.extend(coords);
                parent.parts.extend(parts);
                Ok(None)
            }
            None => {
                let mut parts = parts.into_iter();
                match (parts.next(), parts.next()) {
                    (Some(g), None) => Ok(Some(g)),
                    _ => Err(format!("`gml:{}` is not one geometry", frame.local)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
