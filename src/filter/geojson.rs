//! The streaming GeoJSON filter: hides properties outside a token's property fence
//! and, under a tile geofence, drops features outside it.
//!
//! [`GeoJsonFilter`] is a push parser: the gateway feeds it the upstream body chunk
//! by chunk and forwards what it writes. It validates the whole document as JSON
//! (strict RFC 8259, UTF-8) while it copies it, so what it emits is valid JSON or
//! nothing: any invalid input is a [`FilterError`] and the response is abandoned.
//!
//! # Which objects are features
//!
//! The root must be a JSON object (anything else is refused). Features are the
//! members of the root's `features` array (a FeatureCollection, whatever its `type`
//! says and wherever `type` comes) and the root object itself when it has a
//! `properties` or `geometry` member and no `features` member (a single Feature,
//! as OGC API `/items/{id}` answers). A root with none of these members — an OGC
//! API collection document, a landing page, an upstream error body — passes
//! unchanged. A root-level `properties` member is filtered even in a collection.
//! Nothing deeper is touched: a key named `properties` inside a feature's
//! properties is just a key, and `properties` objects anywhere else (links,
//! foreign members) are not feature properties. Under any fence (properties or
//! tiles) a feature keeps only `type`, `id`, `geometry`, `properties`, `bbox` and
//! `links` ([`FEATURE_MEMBERS_UNDER_FENCE`]): foreign members, and anything nested in
//! them, are dropped, as they may hold values the filter does not read. Feature
//! `id`s pass as they are (links are only rewritten, see below).
//!
//! # What is changed
//!
//! - In each feature's `properties` object, members whose (unescaped) key is not
//!   allowed are removed; kept values pass byte for byte, whatever they hold.
//!   `"properties": null` stays null; any other non-object `properties` is refused.
//!   A filtered properties object is re-emitted compactly (its own whitespace and
//!   commas are rewritten), and so are, under any fence, each feature object, the
//!   root object, and the `features` array under a geometry filter; every other byte
//!   of the document — member values, whitespace inside them, number spellings,
//!   escapes — is copied.
//! - Under any fence the root keeps only the members of
//!   `ROOT_MEMBERS_UNDER_FILTER` (with its counts and `bbox` when there is no
//!   geometry filter, and its `geometry` while it may be a Feature).
//! - With a fence that has tiles, each feature is held (up to
//!   [`MAX_FEATURE_BYTES`]) until it is complete, its `geometry` is parsed and the
//!   feature is dropped unless `Fence::intersects_lonlat` says it touches the fence.
//!   A null or missing geometry is dropped. A duplicated `geometry` member must
//!   intersect in every copy. A single-Feature root outside the fence is
//!   [`FilterError::FeatureOutsideFence`]. Geometries are read as RFC 7946 lon/lat
//!   unless the request asked for another order ([`GeoJsonFilter::with_answer_crs`]).
//! - Under the geometry filter the upstream's counts would be wrong, and would tell
//!   how many features lie outside the fence: the root's `numberMatched`,
//!   `numberReturned` and `totalFeatures` members are dropped wherever they come
//!   (before or after `features`), and a collection that had any of them ends with
//!   `"numberReturned": n`, the features on the page. The root's other members are
//!   re-emitted compactly; a member whose name is too long to read is dropped. The
//!   property filter alone removes no feature and leaves the counts as they are.
//! - With a link rewriter ([`GeoJsonFilter::with_links`]), the string value of every
//!   member named `href` outside feature `properties` (top-level and per-feature
//!   `links`, nested link objects, foreign members) is unescaped and handed to the
//!   [`LinkRewrite`]. A target it rewrites is written as a new, minimally escaped
//!   JSON string; any other target is copied byte for byte. Members named `href`
//!   inside a feature's `properties` are data and are never touched, and nothing but
//!   `href` string values is rewritten. Before a target leaves, it is checked once
//!   more: if it still names the upstream ([`LinkRewrite::leaks`]) the response is
//!   abandoned with [`FilterError::UpstreamLink`].
//!
//!   A link the gateway cannot reach (a template outside the upstream base) is not
//!   removed, as it is from whole OGC API documents: its other members may already
//!   have been sent. Its `href` becomes what the rewriter gives for it —
//!   [`LinkMap`](crate::ogc::capabilities::LinkMap) gives the public base with the
//!   link's query — so the client sees a dead end on the gateway, never the upstream.
//!
//! # Memory
//!
//! Without a fence nothing is held but a key (bounded by the longest allowed name),
//! an `href` value while links are rewritten (bounded by [`MAX_HREF_BYTES`]) and a
//! nesting stack (bounded by [`MAX_DEPTH`]). With a fence, one feature at a
//! time is held, and the root's members until `features` starts (the root may be
//! a single Feature), each bounded by [`MAX_FEATURE_BYTES`] plus one input chunk.
//!
//! Pure code: no I/O, no logging. It must never emit a byte of a hidden property.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use geo::{Coord, Geometry, GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde_json::Value;

use super::FilterError;
use crate::spatial::{AnswerCrs, Fence};

/// The largest feature the geometry filter holds in memory while it reads it.
pub const MAX_FEATURE_BYTES: usize = 16 << 20;
/// The longest `href` string (as written, escapes included) the link rewriter reads.
pub const MAX_HREF_BYTES: usize = 64 << 10;
/// The largest `links` array the link rewriter holds to drop links it does not serve.
pub const MAX_LINKS_BYTES: usize = 1 << 20;
/// The deepest nesting of JSON arrays and objects accepted.
pub const MAX_DEPTH: usize = 512;
/// The deepest nesting of GeometryCollections accepted in a geometry.
const MAX_COLLECTION_DEPTH: usize = 16;
/// The literal words, indexed by [`State::Literal`].
const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];
/// Keys longer than this (escaped) are never compared with a member name.
const MIN_KEY_CAP: usize = 64;
/// Root members that count features (OGC API Features, WFS 2.0 GeoJSON, GeoServer):
/// dropped under a geometry filter, which writes its own `numberReturned`.
const COUNT_MEMBERS: [&[u8]; 3] = [b"numberMatched", b"numberReturned", b"totalFeatures"];
/// Under a geometry filter, the only root members relayed: what a FeatureCollection
/// or a Feature is made of and what describes the page without counting or bounding
/// it. Anything else may count or bound the upstream's whole answer, outside the fence
/// included, wherever it nests (`"context":{"matched":…}` of the OGC API drafts,
/// `"meta":{…}`, a collection `bbox`, a server's foreign members), so it is dropped
/// rather than recognised: a rule that catches the next one.
const ROOT_MEMBERS_UNDER_FILTER: [&[u8]; 11] = [
    b"type",
    b"features",
    b"links",
    b"timeStamp",
    b"crs",
    b"coordRefSys",
    b"name",
    b"id",
    b"title",
    b"description",
    b"properties",
];

/// Under any fence, the only members a feature keeps: what RFC 7946 makes a Feature
/// of, and its links. Anything else — a server's foreign members (GeoServer's
/// `geometry_name`, JSON-FG's `place` and `time`), a collection nested in a feature —
/// may carry attribute values or geometries that neither the property filter nor the
/// geometry test reads, so it is dropped rather than recognised.
const FEATURE_MEMBERS_UNDER_FENCE: [&[u8]; 6] = [b"type", b"id", b"geometry", b"properties", b"bbox", b"links"];

/// An open array or object, and what it means to the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// The root object: may be a FeatureCollection, a Feature or anything else.
    Root,
    /// The root's `features` array.
    Features,
    /// A member of `features`.
    Feature,
    /// A feature's `properties` object, being filtered.
    Properties,
    /// Any other object.
    Object,
    /// Any other array.
    Array,
}

impl Frame {
    fn is_object(self) -> bool {
        matches!(self, Frame::Root | Frame::Feature | Frame::Properties | Frame::Object)
    }
}

/// What the value after the current member key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Other,
    Features,
    /// A feature's `properties`, filtered.
    Properties,
    /// A feature's `properties`, not filtered: still data, where links are not rewritten.
    Data,
    Geometry,
    /// A link target, rewritten when links are.
    Href,
    /// A `links` array of the root or a feature: held, and its links the gateway does
    /// not serve removed, when links are rewritten.
    Links,
}

/// The kind of value that starts at a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    Null,
    Scalar,
}

/// Where in the number grammar the parser is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpInt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A value must follow (document start, after `:`, after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object: a key.
    Key,
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    AfterValue,
    Str,
    Escape,
    Unicode(u8),
    Number(Num),
    /// Inside `true`, `false` or `null` (an index into [`LITERALS`]), at a byte offset.
    Literal(u8, u8),
    /// The root value is complete; only whitespace may follow.
    Done,
    Failed,
}

/// The property names a token may see, as bytes, for fast comparison with keys.
struct AllowedSet {
    names: Vec<Box<[u8]>>,
    set: Option<HashSet<Box<[u8]>>>,
}

impl AllowedSet {
    fn new(names: &[String]) -> Self {
        let names: Vec<Box<[u8]>> = names.iter().map(|n| n.as_bytes().into()).collect();
        // A linear scan beats hashing for the handful of names a fence usually has.
        let set = (names.len() > 16).then(|| names.iter().cloned().collect());
        AllowedSet { names, set }
    }

    fn contains(&self, key: &[u8]) -> bool {
        match &self.set {
            Some(set) => set.contains(key),
            None => self.names.iter().any(|n| **n == *key),
        }
    }

    fn longest(&self) -> usize {
        self.names.iter().map(|n| n.len()).max().unwrap_or(0)
    }
}

/// Decides whether a feature's geometry may be shown.
enum GeometryTest {
    /// The fence, and the order the answer writes coordinates in.
    Fence(Arc<Fence>, AnswerCrs),
    #[cfg(test)]
    Predicate(fn(&Geometry<f64>) -> bool),
}

impl GeometryTest {
    fn admits(&self, geometry: &Geometry<f64>) -> bool {
        use geo::MapCoords;
        match self {
            GeometryTest::Fence(fence, AnswerCrs::LonLat) => fence.intersects_lonlat(geometry),
            GeometryTest::Fence(fence, AnswerCrs::LatLon) => {
                fence.intersects_lonlat(&geometry.map_coords(|c| geo::Coord { x: c.y, y: c.x }))
            }
            GeometryTest::Fence(fence, AnswerCrs::WebMercator) => fence.intersects_lonlat(&geometry.map_coords(|c| {
                let (lon, lat) = crate::spatial::lonlat_from_mercator(c.x, c.y);
                geo::Coord { x: lon, y: lat }
            })),
            // Refused before forwarding (`precheck`); admit nothing if it ever gets here.
            GeometryTest::Fence(_, AnswerCrs::Unknown) => false,
            #[cfg(test)]
            GeometryTest::Predicate(test) => test(geometry),
        }
    }
}

/// Rewrites link targets (`href` values) for [`GeoJsonFilter::with_links`].
///
/// The filter module defines what it needs and the gateway's URL mapper implements it
/// ([`LinkMap`](crate::ogc::capabilities::LinkMap)), so the filter stays free of URL
/// rules and tests can plug in their own.
pub trait LinkRewrite: Send + Sync {
    /// The URL to write in place of `href` (unescaped), or `None` to keep it as written.
    fn rewrite(&self, href: &str) -> Option<String>;
    /// True when a link target about to be sent still names the upstream: the filter
    /// then abandons the response.
    fn leaks(&self, href: &str) -> bool;
    /// Whether a member of a `links` array (as it will be sent, `href` rewritten) is
    /// kept: false for a link the gateway would not answer (an HTML page, a route it
    /// does not serve). Everything is kept by default.
    fn serves(&self, _link: &Value) -> bool {
        true
    }
}

/// A streaming filter for one GeoJSON response body. See the module docs for the rules.
///
/// ```
/// use std::sync::Arc;
/// use tilegate::filter::GeoJsonFilter;
///
/// let allowed: Arc<[String]> = Arc::from(vec!["name".to_string()]);
/// let mut filter = GeoJsonFilter::new(Some(allowed), None);
/// let mut out = Vec::new();
/// filter.push(br#"{"type":"Feature","properties":{"name":"a","sec"#, &mut out).unwrap();
/// filter.push(br#"ret":1},"geometry":null}"#, &mut out).unwrap();
/// filter.finish(&mut out).unwrap();
/// assert_eq!(out, br#"{"type":"Feature","properties":{"name":"a"},"geometry":null}"#);
/// ```
pub struct GeoJsonFilter {
    /// `None`: every property may be shown.
    allowed: Option<AllowedSet>,
    /// `None`: no geometry filter (no fence, or a fence without tiles).
    geometry_test: Option<GeometryTest>,
    /// `None`: links pass as they are.
    links: Option<Arc<dyn LinkRewrite>>,
    state: State,
    stack: Vec<Frame>,
    /// Input bytes before the current chunk, for error offsets.
    consumed: u64,

    // Emission: `chunk[start..i]` is pending and is written to the sink if `emitting`.
    start: usize,
    emitting: bool,
    /// The sink is `held` (a feature or an undecided root under a fence), else `out`.
    buffering: bool,
    held: Vec<u8>,

    // Strings and keys.
    str_is_key: bool,
    collecting: bool,
    key_from: usize,
    key: Vec<u8>,
    key_overflow: bool,
    key_cap: usize,
    /// An `href` value is being read (from `key_from` in the current chunk).
    href_collecting: bool,
    href: Vec<u8>,
    href_offset: u64,
    /// Whether bytes were being emitted when the `href` value started.
    href_emitting: bool,

    // What the structure means.
    next_role: Role,
    member_kept: bool,
    props_emitted: bool,
    features_emitted: bool,
    /// Under a fence, the root is held until it turns out to be a collection or ends.
    root_pending: bool,
    root_is_feature: bool,
    /// Under a fence the root's members are re-emitted one by one (counts dropped
    /// under a geometry filter): whether the current one is kept, and whether one was
    /// written.
    root_member_kept: bool,
    root_emitted: bool,
    /// The same for the members of the current feature.
    feature_member_kept: bool,
    feature_emitted: bool,
    /// The root has a `features` member (a collection, not a single Feature).
    root_is_collection: bool,
    /// The root had a count member (`numberReturned`, `numberMatched`, `totalFeatures`).
    root_had_count: bool,
    /// Features kept by the geometry filter so far.
    kept_features: u64,
    /// Under a fence: the stack depth of the member whose value is a `geometry`.
    geometry_depth: Option<usize>,
    geometry_start: usize,
    /// Ranges of `held` that hold the current feature's geometries.
    geometries: Vec<(usize, usize)>,
    feature_offset: u64,
    /// The stack depth inside a feature's `properties` (the properties container is at
    /// `depth - 1`): keys below are data, and `href`s there are not links.
    data_depth: Option<usize>,

    /// An incomplete UTF-8 sequence at the end of the last chunk.
    utf8_carry: Vec<u8>,

    // A `links` array held while links are rewritten (the sink is `captured` then).
    capturing: bool,
    captured: Vec<u8>,
    /// The stack depth of the object holding the `links` member.
    capture_depth: usize,
    /// Whether the array was being emitted when it started.
    capture_emitting: bool,
    /// Where each member of the array starts and ends in `captured`.
    capture_items: Vec<(usize, usize)>,
    capture_item_start: usize,
}

impl GeoJsonFilter {
    /// A filter showing only `properties` (`None`: all, empty: none) and, when `fence`
    /// has tiles, only features whose geometry intersects it.
    pub fn new(properties: Option<Arc<[String]>>, fence: Option<Arc<Fence>>) -> Self {
        let fence = fence.filter(|f| f.tiles().is_some());
        Self::with_test(properties, fence.map(|f| GeometryTest::Fence(f, AnswerCrs::LonLat)))
    }

    /// Reads geometries in `crs` (the order the request asked the upstream to write
    /// them in) when testing them against the fence; RFC 7946 lon/lat by default.
    pub fn with_answer_crs(mut self, crs: AnswerCrs) -> Self {
        if let Some(GeometryTest::Fence(_, order)) = &mut self.geometry_test {
            *order = crs;
        }
        self
    }

    fn with_test(properties: Option<Arc<[String]>>, geometry_test: Option<GeometryTest>) -> Self {
        let allowed = properties.map(|p| AllowedSet::new(&p));
        // An escaped key is at most 6 bytes per byte of its name (`\u0041`).
        let key_cap = allowed.as_ref().map_or(0, |a| a.longest() * 6).max(MIN_KEY_CAP);
        GeoJsonFilter {
            allowed,
            geometry_test,
            links: None,
            state: State::Value,
            stack: Vec::with_capacity(16),
            consumed: 0,
            start: 0,
            emitting: true,
            buffering: false,
            held: Vec::new(),
            str_is_key: false,
            collecting: false,
            key_from: 0,
            key: Vec::with_capacity(key_cap),
            key_overflow: false,
            key_cap,
            href_collecting: false,
            href: Vec::new(),
            href_offset: 0,
            href_emitting: false,
            next_role: Role::Other,
            member_kept: false,
            props_emitted: false,
            features_emitted: false,
            root_pending: false,
            root_is_feature: false,
            root_member_kept: false,
            root_emitted: false,
            feature_member_kept: false,
            feature_emitted: false,
            root_is_collection: false,
            root_had_count: false,
            kept_features: 0,
            geometry_depth: None,
            geometry_start: 0,
            geometries: Vec::new(),
            feature_offset: 0,
            data_depth: None,
            utf8_carry: Vec::with_capacity(4),
            capturing: false,
            captured: Vec::new(),
            capture_depth: 0,
            capture_emitting: false,
            capture_items: Vec::new(),
            capture_item_start: 0,
        }
    }

    /// Also rewrites link targets: the string value of every `href` member outside
    /// feature `properties` (see the module docs).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tilegate::filter::GeoJsonFilter;
    /// use tilegate::ogc::capabilities::LinkMap;
    ///
    /// let links = LinkMap::new("http://up:5000", "https://gw/ogc/api/obs", None)?;
    /// let mut filter = GeoJsonFilter::new(None, None).with_links(Arc::new(links));
    /// let mut out = Vec::new();
    /// filter.push(br#"{"features":[],"links":[{"rel":"next","href":"http:\/\/up:5000\/col"#, &mut out)?;
    /// filter.push(br#"lections/obs/items?offset=10"}]}"#, &mut out)?;
    /// filter.finish(&mut out)?;
    /// assert_eq!(
    ///     out,
    ///     br#"{"features":[],"links":[{"rel":"next","href":"https://gw/ogc/api/obs/collections/obs/items?offset=10"}]}"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_links(mut self, links: Arc<dyn LinkRewrite>) -> Self {
        self.links = Some(links);
        self
    }

    /// Filters a whole document at once (a single feature, small bodies).
    pub fn filter_all(mut self, document: &[u8]) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::with_capacity(document.len());
        self.push(document, &mut out)?;
        self.finish(&mut out)?;
        Ok(out)
    }

    /// Filters the next chunk of the body, appending what may be sent on to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        if self.state == State::Failed {
            return Err(FilterError::Poisoned);
        }
        let result = self.run(chunk, out);
        self.consumed += chunk.len() as u64;
        if result.is_err() {
            self.fail();
        }
        result
    }

    /// Ends the body: an error if it stopped inside the document.
    pub fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), FilterError> {
        match self.state {
            State::Failed => Err(FilterError::Poisoned),
            State::Done if self.utf8_carry.is_empty() => Ok(()),
            _ => {
                self.fail();
                Err(FilterError::TruncatedJson { offset: self.consumed })
            }
        }
    }

    fn fail(&mut self) {
        self.state = State::Failed;
        self.held = Vec::new();
        self.stack = Vec::new();
        self.href = Vec::new();
        self.captured = Vec::new();
    }

    fn invalid(&self, i: usize, reason: &'static str) -> FilterError {
        FilterError::InvalidJson { offset: self.consumed + i as u64, reason }
    }

    fn not_geojson(&self, i: usize, reason: &'static str) -> FilterError {
        FilterError::NotGeoJson { offset: self.consumed + i as u64, reason }
    }

    fn run(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        self.check_utf8(chunk)?;
        self.start = 0;
        self.key_from = 0;
        let n = chunk.len();
        let mut i = 0;
        while i < n {
            match self.state {
                State::Str => {
                    let mut j = i;
                    while j < n {
                        let b = chunk[j];
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        j += 1;
                    }
                    if j == n {
                        i = n;
                        continue;
                    }
                    match chunk[j] {
                        b'"' if self.str_is_key => self.end_key(chunk, j, out)?,
                        b'"' => {
                            if self.href_collecting {
                                self.end_href(chunk, j, out)?;
                            }
                            self.end_value(chunk, j + 1, out)?
                        }
                        b'\\' => self.state = State::Escape,
                        _ => return Err(self.invalid(j, "a control character inside a string")),
                    }
                    i = j + 1;
                }
                State::Number(num) => {
                    let b = chunk[i];
                    let next = match (num, b) {
                        (Num::Minus, b'0') => Some(Num::Zero),
                        (Num::Minus, b'1'..=b'9') | (Num::Int, b'0'..=b'9') => Some(Num::Int),
                        (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
                        (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
                        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
                        (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
                        (Num::Exp | Num::ExpSign | Num::ExpInt, b'0'..=b'9') => Some(Num::ExpInt),
                        _ => None,
                    };
                    match next {
                        Some(next) => {
                            self.state = State::Number(next);
                            i += 1;
                            if matches!(next, Num::Int | Num::Frac | Num::ExpInt) {
                                while i < n && chunk[i].is_ascii_digit() {
                                    i += 1;
                                }
                            }
                        }
                        // The number ended at `b`, which is read again as what follows it.
                        None if matches!(num, Num::Zero | Num::Int | Num::Frac | Num::ExpInt) => {
                            self.end_value(chunk, i, out)?;
                        }
                        None => return Err(self.invalid(i, "a malformed number")),
                    }
                }
                State::Value | State::ValueOrEnd => {
                    // Fast path: a scalar inside an opaque container (coordinates, nested
                    // values) needs no bookkeeping when it ends inside this chunk.
                    // Inside a properties object the same holds, plus copying the value
                    // of a kept member (emission is off between members).
                    // (A link target is no plain scalar: it may have to be rewritten.)
                    let top = self.stack.last().copied();
                    if matches!(top, Some(Frame::Array | Frame::Object | Frame::Properties))
                        && self.next_role != Role::Href
                    {
                        if let Some(end) = scan_scalar(chunk, i) {
                            if top == Some(Frame::Properties) {
                                if self.member_kept {
                                    self.write(out, &chunk[i..end]);
                                }
                                self.start = end;
                            }
                            self.state = State::AfterValue;
                            i = end;
                            continue;
                        }
                    }
                    let kind = match chunk[i] {
                        b' ' | b'\t' | b'\n' | b'\r' => {
                            i = skip_whitespace(chunk, i);
                            continue;
                        }
                        b']' if self.state == State::ValueOrEnd => {
                            self.close_array(chunk, i, out)?;
                            i += 1;
                            continue;
                        }
                        b'{' => Kind::Object,
                        b'[' => Kind::Array,
                        b'n' => Kind::Null,
                        b'"' | b'-' | b'0'..=b'9' | b't' | b'f' => Kind::Scalar,
                        _ => return Err(self.invalid(i, "expected a value")),
                    };
                    self.begin_value(chunk, i, out, kind)?;
                    self.state = match chunk[i] {
                        b'{' => State::KeyOrEnd,
                        b'[' => State::ValueOrEnd,
                        b'"' => {
                            self.str_is_key = false;
                            State::Str
                        }
                        b'-' => State::Number(Num::Minus),
                        b'0' => State::Number(Num::Zero),
                        b'1'..=b'9' => State::Number(Num::Int),
                        b't' => State::Literal(0, 1),
                        b'f' => State::Literal(1, 1),
                        _ => State::Literal(2, 1),
                    };
                    i += 1;
                }
                State::KeyOrEnd | State::Key => match chunk[i] {
                    b' ' | b'\t' | b'\n' | b'\r' => i = skip_whitespace(chunk, i),
                    b'"' => {
                        self.begin_key(i);
                        i += 1;
                    }
                    b'}' if self.state == State::KeyOrEnd => {
                        self.close_object(chunk, i, out)?;
                        i += 1;
                    }
                    _ => return Err(self.invalid(i, "expected a member name")),
                },
                State::Colon => match chunk[i] {
                    b' ' | b'\t' | b'\n' | b'\r' => i = skip_whitespace(chunk, i),
                    b':' => {
                        self.state = State::Value;
                        i += 1;
                    }
                    _ => return Err(self.invalid(i, "expected `:` after a member name")),
                },
                State::AfterValue => match chunk[i] {
                    b' ' | b'\t' | b'\n' | b'\r' => i = skip_whitespace(chunk, i),
                    b',' => match self.stack.last() {
                        // Fast path for the next number of a coordinate list.
                        Some(Frame::Array) => match chunk.get(i + 1) {
                            Some(b'-' | b'0'..=b'9') => match scan_number(chunk, i + 1) {
                                Some(end) => i = end,
                                None => {
                                    self.state = State::Value;
                                    i += 1;
                                }
                            },
                            _ => {
                                self.state = State::Value;
                                i += 1;
                            }
                        },
                        Some(frame) if frame.is_object() => {
                            self.state = State::Key;
                            i += 1;
                        }
                        _ => {
                            self.state = State::Value;
                            i += 1;
                        }
                    },
                    b'}' => {
                        self.close_object(chunk, i, out)?;
                        i += 1;
                    }
                    b']' => {
                        self.close_array(chunk, i, out)?;
                        i += 1;
                    }
                    _ => return Err(self.invalid(i, "expected `,` or a closing bracket")),
                },
                State::Escape => {
                    self.state = match chunk[i] {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => State::Str,
                        b'u' => State::Unicode(4),
                        _ => return Err(self.invalid(i, "an unknown escape sequence")),
                    };
                    i += 1;
                }
                State::Unicode(left) => {
                    if !chunk[i].is_ascii_hexdigit() {
                        return Err(self.invalid(i, "a malformed \\u escape"));
                    }
                    self.state = if left == 1 { State::Str } else { State::Unicode(left - 1) };
                    i += 1;
                }
                State::Literal(index, at) => {
                    let word = LITERALS[usize::from(index)];
                    if chunk[i] != word[usize::from(at)] {
                        return Err(self.invalid(i, "an unknown literal; expected true, false or null"));
                    }
                    i += 1;
                    if usize::from(at) + 1 == word.len() {
                        self.end_value(chunk, i, out)?;
                    } else {
                        self.state = State::Literal(index, at + 1);
                    }
                }
                State::Done => match chunk[i] {
                    b' ' | b'\t' | b'\n' | b'\r' => i = skip_whitespace(chunk, i),
                    _ => return Err(self.invalid(i, "data after the end of the JSON document")),
                },
                State::Failed => return Err(FilterError::Poisoned),
            }
        }
        self.cut(chunk, n, out);
        if self.collecting {
            self.collect(&chunk[self.key_from..n]);
        }
        if self.href_collecting {
            self.collect_href(&chunk[self.key_from..n])?;
        }
        if self.buffering && self.held.len() > MAX_FEATURE_BYTES {
            return Err(FilterError::FeatureTooLarge { offset: self.feature_offset, limit: MAX_FEATURE_BYTES });
        }
        if self.capturing && self.captured.len() > MAX_LINKS_BYTES {
            return Err(FilterError::LinkTooLong { offset: self.consumed, limit: MAX_LINKS_BYTES });
        }
        Ok(())
    }

    /// Writes the pending span up to `i` to the sink (if emitting) and starts a new one at `i`.
    #[inline]
    fn cut(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>) {
        if self.emitting && i > self.start {
            let bytes = &chunk[self.start..i];
            if self.capturing {
                self.captured.extend_from_slice(bytes);
            } else if self.buffering {
                self.held.extend_from_slice(bytes);
            } else {
                out.extend_from_slice(bytes);
            }
        }
        self.start = i;
    }

    #[inline]
    fn set_emitting(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>, emitting: bool) {
        self.cut(chunk, i, out);
        self.emitting = emitting;
    }

    /// Writes bytes that are not in the input; call after [`Self::cut`].
    fn write(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        if self.capturing {
            self.captured.extend_from_slice(bytes);
        } else if self.buffering {
            self.held.extend_from_slice(bytes);
        } else {
            out.extend_from_slice(bytes);
        }
    }

    fn push_frame(&mut self, frame: Frame, i: usize) -> Result<(), FilterError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(FilterError::TooDeep { offset: self.consumed + i as u64, limit: MAX_DEPTH });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn push_container(&mut self, kind: Kind, i: usize) -> Result<(), FilterError> {
        match kind {
            Kind::Object => self.push_frame(Frame::Object, i),
            Kind::Array => self.push_frame(Frame::Array, i),
            Kind::Null | Kind::Scalar => Ok(()),
        }
    }

    /// A value of `kind` starts at `chunk[i]`.
    fn begin_value(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>, kind: Kind) -> Result<(), FilterError> {
        let Some(&top) = self.stack.last() else {
            if kind != Kind::Object {
                return Err(self.not_geojson(i, "the document root is not a JSON object"));
            }
            // Under any fence the root is held until it shows itself a FeatureCollection
            // (its `features` member starts) or a Feature: a root that is neither is
            // refused whole, never relayed (its members would be unfiltered data).
            if self.geometry_test.is_some() || self.allowed.is_some() {
                self.cut(chunk, i, out);
                self.buffering = true;
                self.root_pending = true;
                self.feature_offset = self.consumed + i as u64;
            }
            self.push_frame(Frame::Root, i)?;
            if self.reemits_members() {
                // The root's members are re-emitted one by one (see `end_key`).
                self.set_emitting(chunk, i + 1, out, false);
            }
            return Ok(());
        };
        match top {
            Frame::Root if self.reemits_members() => self.set_emitting(chunk, i, out, self.root_member_kept),
            Frame::Feature if self.reemits_members() => self.set_emitting(chunk, i, out, self.feature_member_kept),
            _ => {}
        }
        if self.capturing && self.stack.len() == self.capture_depth + 1 {
            // A member of the held `links` array starts.
            self.cut(chunk, i, out);
            self.capture_item_start = self.captured.len();
        }
        match top {
            Frame::Features => {
                if kind != Kind::Object {
                    return Err(self.not_geojson(i, "a member of `features` is not an object"));
                }
                if self.geometry_test.is_some() {
                    // Array-level bytes are not emitted: the filter writes its own commas.
                    self.cut(chunk, i, out);
                    self.buffering = true;
                    self.held.clear();
                    self.geometries.clear();
                    self.feature_offset = self.consumed + i as u64;
                    self.emitting = true;
                }
                self.push_frame(Frame::Feature, i)?;
                if self.reemits_members() {
                    // The feature's members are re-emitted one by one (see `end_key`).
                    self.feature_emitted = false;
                    self.set_emitting(chunk, i + 1, out, false);
                }
                Ok(())
            }
            Frame::Properties => {
                self.set_emitting(chunk, i, out, self.member_kept);
                self.push_container(kind, i)
            }
            Frame::Root | Frame::Feature => match self.next_role {
                Role::Features => match kind {
                    Kind::Array => {
                        self.push_frame(Frame::Features, i)?;
                        if self.geometry_test.is_some() {
                            self.features_emitted = false;
                            self.set_emitting(chunk, i + 1, out, false);
                        }
                        Ok(())
                    }
                    Kind::Null => Ok(()),
                    _ => Err(self.not_geojson(i, "`features` is neither an array nor null")),
                },
                Role::Properties => match kind {
                    Kind::Object => {
                        self.push_frame(Frame::Properties, i)?;
                        self.data_depth = Some(self.stack.len());
                        self.props_emitted = false;
                        self.set_emitting(chunk, i + 1, out, false);
                        Ok(())
                    }
                    Kind::Null => Ok(()),
                    _ => Err(self.not_geojson(i, "a feature's `properties` is neither an object nor null")),
                },
                Role::Geometry => {
                    if self.buffering {
                        self.cut(chunk, i, out);
                        self.geometry_start = self.held.len();
                        self.geometry_depth = Some(self.stack.len());
                    }
                    self.push_container(kind, i)
                }
                Role::Data => {
                    self.push_container(kind, i)?;
                    if matches!(kind, Kind::Object | Kind::Array) {
                        self.data_depth = Some(self.stack.len());
                    }
                    Ok(())
                }
                Role::Href => {
                    self.begin_href(chunk, i, out);
                    self.push_container(kind, i)
                }
                Role::Links => {
                    if kind == Kind::Array && !self.capturing {
                        self.cut(chunk, i, out);
                        self.capturing = true;
                        self.captured.clear();
                        self.capture_items.clear();
                        self.capture_depth = self.stack.len();
                        self.capture_emitting = self.emitting;
                    }
                    self.push_container(kind, i)
                }
                Role::Other => self.push_container(kind, i),
            },
            Frame::Object if self.next_role == Role::Href => {
                self.begin_href(chunk, i, out);
                self.push_container(kind, i)
            }
            Frame::Object | Frame::Array => self.push_container(kind, i),
        }
    }

    /// The value of an `href` member starts at `chunk[i]`: a string is read whole (and
    /// not emitted) until [`Self::end_href`] decides what to write; anything else is
    /// not a link target and passes.
    fn begin_href(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>) {
        self.next_role = Role::Other;
        if chunk[i] != b'"' {
            return;
        }
        self.href_emitting = self.emitting;
        self.set_emitting(chunk, i, out, false);
        self.href_collecting = true;
        self.href.clear();
        self.href_offset = self.consumed + i as u64;
        self.key_from = i + 1;
    }

    fn collect_href(&mut self, bytes: &[u8]) -> Result<(), FilterError> {
        if self.href.len() + bytes.len() > MAX_HREF_BYTES {
            return Err(FilterError::LinkTooLong { offset: self.href_offset, limit: MAX_HREF_BYTES });
        }
        self.href.extend_from_slice(bytes);
        Ok(())
    }

    /// The `href` string ends with the quote at `chunk[q]`: writes it, rewritten or as
    /// it was, unless it still names the upstream.
    fn end_href(&mut self, chunk: &[u8], q: usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        self.collect_href(&chunk[self.key_from..q])?;
        self.href_collecting = false;
        // The string, quotes included, was not emitted.
        self.cut(chunk, q + 1, out);
        self.emitting = self.href_emitting;
        let raw = std::mem::take(&mut self.href);
        let rewritten = match self.links.as_deref() {
            Some(links) => {
                let target = unescape_lossy(&raw);
                let rewritten = links.rewrite(&target);
                if links.leaks(rewritten.as_deref().unwrap_or(&target)) {
                    return Err(FilterError::UpstreamLink { offset: self.href_offset });
                }
                rewritten
            }
            None => None,
        };
        if self.emitting {
            let escaped;
            let body: &[u8] = match &rewritten {
                Some(url) => {
                    escaped = escape(url);
                    &escaped
                }
                None => &raw,
            };
            self.write(out, b"\"");
            self.write(out, body);
            self.write(out, b"\"");
        }
        self.href = raw;
        Ok(())
    }

    /// A value ended just before `chunk[e]`.
    fn end_value(&mut self, chunk: &[u8], e: usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        self.state = State::AfterValue;
        if self.capturing && self.stack.len() == self.capture_depth + 1 {
            self.cut(chunk, e, out);
            self.capture_items.push((self.capture_item_start, self.captured.len()));
        } else if self.capturing && self.stack.len() == self.capture_depth {
            self.cut(chunk, e, out);
            self.end_links(out);
        }
        match self.stack.last() {
            None => {
                self.state = State::Done;
                if self.root_pending {
                    self.cut(chunk, e, out);
                    self.root_pending = false;
                    self.buffering = false;
                    if !self.root_is_feature {
                        self.held.clear();
                        return Err(self.not_geojson(e, "the root is neither a FeatureCollection nor a Feature"));
                    }
                    if !self.keep_feature()? {
                        self.held.clear();
                        return Err(FilterError::FeatureOutsideFence);
                    }
                    out.extend_from_slice(&self.held);
                    self.held.clear();
                }
            }
            Some(Frame::Properties) => self.set_emitting(chunk, e, out, false),
            Some(Frame::Features) => {
                if self.geometry_test.is_some() {
                    self.cut(chunk, e, out);
                    self.buffering = false;
                    if self.keep_feature()? {
                        if self.features_emitted {
                            out.push(b',');
                        }
                        out.extend_from_slice(&self.held);
                        self.features_emitted = true;
                        self.kept_features += 1;
                    }
                    self.held.clear();
                    self.geometries.clear();
                    self.emitting = false;
                }
            }
            Some(Frame::Root | Frame::Feature) => {
                if self.geometry_depth == Some(self.stack.len()) {
                    self.cut(chunk, e, out);
                    self.geometries.push((self.geometry_start, self.held.len()));
                    self.geometry_depth = None;
                }
                if self.reemits_members() {
                    self.set_emitting(chunk, e, out, false);
                }
            }
            Some(Frame::Object | Frame::Array) => {}
        }
        Ok(())
    }

    fn close_object(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        match self.stack.last() {
            Some(Frame::Properties) => self.set_emitting(chunk, i, out, true),
            Some(Frame::Feature) if self.reemits_members() => self.set_emitting(chunk, i, out, true),
            Some(Frame::Root) if self.reemits_members() => {
                self.set_emitting(chunk, i, out, true);
                if self.hides_counts() && self.root_is_collection && self.root_had_count {
                    // The one count the filter knows: what is on this page.
                    let count = format!("\"numberReturned\":{}", self.kept_features);
                    if self.root_emitted {
                        self.write(out, b",");
                    }
                    self.write(out, count.as_bytes());
                }
            }
            Some(frame) if frame.is_object() => {}
            _ => return Err(self.invalid(i, "a `}` that closes no object")),
        }
        self.leave_data();
        self.stack.pop();
        self.end_value(chunk, i + 1, out)
    }

    fn close_array(&mut self, chunk: &[u8], i: usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        match self.stack.last() {
            Some(Frame::Features) => self.set_emitting(chunk, i, out, true),
            Some(Frame::Array) => {}
            _ => return Err(self.invalid(i, "a `]` that closes no array")),
        }
        self.leave_data();
        self.stack.pop();
        self.end_value(chunk, i + 1, out)
    }

    /// The held `links` array ended: writes it with the links the gateway serves, compactly.
    fn end_links(&mut self, out: &mut Vec<u8>) {
        self.capturing = false;
        let captured = std::mem::take(&mut self.captured);
        if self.capture_emitting {
            let mut kept = Vec::with_capacity(captured.len());
            kept.push(b'[');
            let mut dropped = false;
            for &(from, to) in &self.capture_items {
                let link = &captured[from..to];
                // The bytes parsed as JSON on the way in; a link that does not read as one
                // value (two `rel` or `href` members: readers keep different ones) is dropped.
                let serves = match (&self.links, crate::json::parse_strict(link)) {
                    (Some(links), Ok(value)) => links.serves(&value),
                    (Some(_), Err(_)) => false,
                    (None, _) => true,
                };
                if serves {
                    if kept.len() > 1 {
                        kept.push(b',');
                    }
                    kept.extend_from_slice(link);
                } else {
                    dropped = true;
                }
            }
            kept.push(b']');
            // Nothing dropped: the array goes as it came (scalar members are not links,
            // and are only kept here).
            let whole = !dropped && self.capture_items.len() == count_members(&captured);
            self.write(out, if whole { &captured } else { &kept });
        }
        self.captured = captured;
        self.captured.clear();
        self.capture_items.clear();
    }

    /// Called before a container closes: past a feature's `properties`, keys are
    /// structure again.
    #[inline]
    fn leave_data(&mut self) {
        if self.data_depth == Some(self.stack.len()) {
            self.data_depth = None;
        }
    }

    /// A member name starts with the quote at `chunk[i]`.
    fn begin_key(&mut self, i: usize) {
        self.str_is_key = true;
        self.state = State::Str;
        // INVARIANT: key states only occur inside an object, so the stack is not empty.
        self.collecting = match self.stack.last() {
            Some(Frame::Root | Frame::Feature | Frame::Properties) => true,
            // Any object outside feature properties may be a link.
            Some(Frame::Object) => self.links.is_some() && self.data_depth.is_none(),
            _ => false,
        };
        if self.collecting {
            self.key_from = i + 1;
            self.key.clear();
            self.key_overflow = false;
        }
    }

    fn collect(&mut self, bytes: &[u8]) {
        if self.key_overflow {
            return;
        }
        if self.key.len() + bytes.len() > self.key_cap {
            self.key_overflow = true;
        } else {
            self.key.extend_from_slice(bytes);
        }
    }

    /// The member name ends with the quote at `chunk[q]`.
    fn end_key(&mut self, chunk: &[u8], q: usize, out: &mut Vec<u8>) -> Result<(), FilterError> {
        self.state = State::Colon;
        if !self.collecting {
            return Ok(());
        }
        self.collecting = false;
        self.collect(&chunk[self.key_from..q]);
        let name = if self.key_overflow { None } else { unescape(&self.key) };
        let name: &[u8] = name.as_deref().unwrap_or(b"");
        match self.stack.last() {
            Some(Frame::Root) => {
                self.next_role = match name {
                    b"features" => Role::Features,
                    b"properties" | b"geometry" => {
                        self.root_is_feature = true;
                        self.feature_role(name)
                    }
                    _ => self.feature_role(name),
                };
                if self.reemits_members() {
                    self.root_is_collection |= self.next_role == Role::Features;
                    // Counts and a collection's `bbox` go under a geometry filter (they
                    // would count or bound what lies outside); the property filter
                    // removes no feature, so they stay under it alone.
                    let count = COUNT_MEMBERS.contains(&name);
                    if self.hides_counts() {
                        self.root_had_count |= count;
                    }
                    // A key too long to read is no member the filter knows: dropped.
                    // A root `geometry` is a Feature's (tested like any feature's); once
                    // the root is known to be a collection, nothing tests it: dropped.
                    let kept = !self.key_overflow
                        && (ROOT_MEMBERS_UNDER_FILTER.contains(&name)
                            || (name == b"geometry" && !self.root_is_collection)
                            || ((count || name == b"bbox") && !self.hides_counts()));
                    self.root_member_kept = kept;
                    if kept {
                        let emitted = std::mem::replace(&mut self.root_emitted, true);
                        self.write_key(chunk, q, out, emitted);
                    } else {
                        self.next_role = Role::Other;
                    }
                }
                if self.next_role == Role::Features && self.root_pending {
                    // A FeatureCollection: what was held of the root goes out, and
                    // each feature is held on its own from now on.
                    self.cut(chunk, q + 1, out);
                    if !self.geometries.is_empty() && !self.keep_feature()? {
                        // A collection's own geometry, held before `features` came: it
                        // would show what lies outside the fence.
                        return Err(self.not_geojson(q, "a collection's root geometry lies outside the geofence"));
                    }
                    out.extend_from_slice(&self.held);
                    self.held.clear();
                    self.geometries.clear();
                    self.geometry_depth = None;
                    self.buffering = false;
                    self.root_pending = false;
                }
            }
            Some(Frame::Feature) => {
                self.next_role = self.feature_role(name);
                if self.reemits_members() {
                    let kept = !self.key_overflow && FEATURE_MEMBERS_UNDER_FENCE.contains(&name);
                    self.feature_member_kept = kept;
                    if kept {
                        let emitted = std::mem::replace(&mut self.feature_emitted, true);
                        self.write_key(chunk, q, out, emitted);
                    } else {
                        self.next_role = Role::Other;
                    }
                }
            }
            Some(Frame::Object) => self.next_role = if name == b"href" { Role::Href } else { Role::Other },
            Some(Frame::Properties) => {
                let kept = !self.key_overflow && self.allowed.as_ref().is_some_and(|a| a.contains(name));
                self.member_kept = kept;
                if kept {
                    let emitted = std::mem::replace(&mut self.props_emitted, true);
                    self.write_key(chunk, q, out, emitted);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the member name just read (its closing quote at `chunk[q]`) and a colon,
    /// after a comma unless it is the object's first member written; emission is off
    /// between the members of an object that is re-emitted one member at a time.
    fn write_key(&mut self, chunk: &[u8], q: usize, out: &mut Vec<u8>, after_another: bool) {
        self.cut(chunk, q + 1, out);
        let key = std::mem::take(&mut self.key);
        if after_another {
            self.write(out, b",");
        }
        self.write(out, b"\"");
        self.write(out, &key);
        self.write(out, b"\":");
        self.key = key;
    }

    /// Under any fence the root's and the features' members are re-emitted one by one:
    /// only those the filter knows are kept (see [`FEATURE_MEMBERS_UNDER_FENCE`]).
    #[inline]
    fn reemits_members(&self) -> bool {
        self.geometry_test.is_some() || self.allowed.is_some()
    }

    /// Under a geometry filter features may be dropped, so the upstream's counts
    /// would be wrong and would tell how many features lie outside the fence.
    #[inline]
    fn hides_counts(&self) -> bool {
        self.geometry_test.is_some()
    }

    fn feature_role(&self, name: &[u8]) -> Role {
        match name {
            b"properties" if self.allowed.is_some() => Role::Properties,
            b"properties" if self.links.is_some() => Role::Data,
            b"geometry" if self.geometry_test.is_some() => Role::Geometry,
            b"href" if self.links.is_some() => Role::Href,
            b"links" if self.links.is_some() => Role::Links,
            _ => Role::Other,
        }
    }

    /// Whether the held feature's geometries all pass the geometry test.
    fn keep_feature(&self) -> Result<bool, FilterError> {
        let Some(test) = &self.geometry_test else {
            return Ok(true);
        };
        if self.geometries.is_empty() {
            return Ok(false);
        }
        for &(from, to) in &self.geometries {
            let geometry = parse_geometry(&self.held[from..to])
                .map_err(|reason| FilterError::InvalidGeometry { offset: self.feature_offset, reason })?;
            match geometry {
                Some(geometry) if test.admits(&geometry) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Refuses invalid UTF-8 anywhere in the body, across chunk boundaries.
    fn check_utf8(&mut self, chunk: &[u8]) -> Result<(), FilterError> {
        let mut rest = chunk;
        if let Some(&lead) = self.utf8_carry.first() {
            let need = utf8_len(lead).saturating_sub(self.utf8_carry.len());
            let take = need.min(rest.len());
            self.utf8_carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if take < need {
                return Ok(());
            }
            if std::str::from_utf8(&self.utf8_carry).is_err() {
                return Err(FilterError::InvalidJson { offset: self.consumed, reason: "invalid UTF-8" });
            }
            self.utf8_carry.clear();
        }
        if let Err(e) = std::str::from_utf8(rest) {
            let valid = e.valid_up_to();
            if e.error_len().is_some() {
                let offset = self.consumed + (chunk.len() - rest.len() + valid) as u64;
                return Err(FilterError::InvalidJson { offset, reason: "invalid UTF-8" });
            }
            self.utf8_carry.extend_from_slice(&rest[valid..]);
        }
        Ok(())
    }
}

/// How many members a compact-or-not JSON array (as held, valid) has at its top level.
fn count_members(array: &[u8]) -> usize {
    let (mut depth, mut in_str, mut escaped, mut members, mut any) = (0usize, false, false, 0usize, false);
    for &b in array {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                any |= depth == 1;
            }
            b'[' | b'{' => {
                any |= depth == 1;
                depth += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => members += 1,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => any |= depth == 1,
        }
    }
    if any {
        members + 1
    } else {
        0
    }
}

/// Filters a whole GeoJSON document at once (tests, small bodies).
pub fn filter_geojson(
    document: &[u8],
    properties: Option<Arc<[String]>>,
    fence: Option<Arc<Fence>>,
) -> Result<Vec<u8>, FilterError> {
    GeoJsonFilter::new(properties, fence).filter_all(document)
}

/// The end of a number, plain string or literal starting at `chunk[i]` that ends
/// inside the chunk; `None` when the slow path must decide.
#[inline]
fn scan_scalar(chunk: &[u8], i: usize) -> Option<usize> {
    let word: &[u8] = match chunk[i] {
        b'-' | b'0'..=b'9' => return scan_number(chunk, i),
        b'"' => return scan_plain_string(chunk, i),
        b't' => b"true",
        b'f' => b"false",
        b'n' => b"null",
        _ => return None,
    };
    chunk[i..].starts_with(word).then_some(i + word.len())
}

/// The end of a valid number starting at `chunk[i]`, when a byte that cannot
/// continue it follows inside the chunk; `None` sends the caller the slow way
/// (which also reports malformed numbers at the right byte).
#[inline]
fn scan_number(chunk: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while i < chunk.len() && chunk[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    if chunk[i] == b'-' {
        i += 1;
    }
    match chunk.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if *chunk.get(i)? == b'.' {
        let from = i + 1;
        i = digits(from);
        if i == from {
            return None;
        }
    }
    if matches!(chunk.get(i)?, b'e' | b'E') {
        i += 1;
        if matches!(chunk.get(i)?, b'+' | b'-') {
            i += 1;
        }
        let from = i;
        i = digits(from);
        if i == from {
            return None;
        }
    }
    // A following byte must exist: otherwise the number may go on in the next chunk.
    chunk.get(i)?;
    Some(i)
}

/// The end of a string starting at `chunk[i]` that has no escapes or control
/// characters and closes inside the chunk; `None` otherwise.
#[inline]
fn scan_plain_string(chunk: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < chunk.len() {
        match chunk[j] {
            b'"' => return Some(j + 1),
            b'\\' | 0..=0x1f => return None,
            _ => j += 1,
        }
    }
    None
}

fn skip_whitespace(chunk: &[u8], mut i: usize) -> usize {
    while i < chunk.len() && matches!(chunk[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The length of the UTF-8 sequence a lead byte starts (1 for anything invalid,
/// which `from_utf8` then refuses).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The UTF-8 bytes a JSON string body (without quotes) stands for, or `None` when
/// it holds a lone surrogate (such a key equals no property name).
fn unescape(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    decode(raw, None)
}

/// The text a JSON string body (without quotes) stands for, a lone surrogate read as
/// U+FFFD (a link target like that is copied as written unless it is rewritten).
fn unescape_lossy(raw: &[u8]) -> String {
    let decoded = decode(raw, Some(char::REPLACEMENT_CHARACTER)).unwrap_or(Cow::Borrowed(raw));
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Decodes the escapes of a JSON string body. A lone surrogate becomes `lone`, or
/// makes the whole string `None`.
fn decode(raw: &[u8], lone: Option<char>) -> Option<Cow<'_, [u8]>> {
    if !raw.contains(&b'\\') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let escape = *raw.get(i + 1)?;
        i += 2;
        let ch = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                if (0xD800..0xDC00).contains(&high) {
                    let low = raw
                        .get(i..i + 6)
                        .filter(|e| e.starts_with(b"\\u"))
                        .and_then(|e| hex4(&e[2..]))
                        .filter(|low| (0xDC00..0xE000).contains(low));
                    match low {
                        Some(low) => {
                            i += 6;
                            char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                        }
                        // What follows a lone high surrogate is read on its own.
                        None => lone?,
                    }
                } else {
                    // A lone low surrogate is not a char.
                    char::from_u32(high).or(lone)?
                }
            }
            _ => return None,
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Some(Cow::Owned(out))
}

/// `text` as the body of a JSON string: `"`, `\\` and control characters escaped.
fn escape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

fn hex4(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// Reads a GeoJSON geometry; `None` for `null`.
fn parse_geometry(raw: &[u8]) -> Result<Option<Geometry<f64>>, String> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    geometry_from_value(&value, 0)
}

fn geometry_from_value(value: &Value, depth: usize) -> Result<Option<Geometry<f64>>, String> {
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        _ => return Err("it is neither an object nor null".into()),
    };
    let kind = object.get("type").and_then(Value::as_str).ok_or("it has no string `type`")?;
    if kind == "GeometryCollection" {
        if depth >= MAX_COLLECTION_DEPTH {
            return Err("GeometryCollections nest too deep".into());
        }
        let members = object
            .get("geometries")
            .and_then(Value::as_array)
            .ok_or("a GeometryCollection without a `geometries` array")?;
        let mut geometries = Vec::with_capacity(members.len());
        for member in members {
            match geometry_from_value(member, depth + 1)? {
                Some(geometry) => geometries.push(geometry),
                None => return Err("a null inside a GeometryCollection".into()),
            }
        }
        return Ok(Some(Geometry::GeometryCollection(GeometryCollection(geometries))));
    }
    let coordinates = object.get("coordinates").ok_or("it has no `coordinates`")?;
    let geometry = match kind {
        "Point" => Geometry::Point(Point(coord(coordinates)?)),
        "MultiPoint" => Geometry::MultiPoint(MultiPoint(list(coordinates, |c| coord(c).map(Point))?)),
        "LineString" => Geometry::LineString(line(coordinates)?),
        "MultiLineString" => Geometry::MultiLineString(MultiLineString(list(coordinates, line)?)),
        "Polygon" => Geometry::Polygon(polygon(coordinates)?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(list(coordinates, polygon)?)),
        other => return Err(format!("unknown geometry type `{other}`")),
    };
    Ok(Some(geometry))
}

fn coord(value: &Value) -> Result<Coord<f64>, String> {
    let position = value.as_array().ok_or("a position is not an array")?;
    let (Some(x), Some(y)) = (position.first().and_then(Value::as_f64), position.get(1).and_then(Value::as_f64)) else {
        return Err("a position without two numbers".into());
    };
    Ok(Coord { x, y })
}

fn list<T>(value: &Value, item: impl Fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    value.as_array().ok_or("coordinates are not an array")?.iter().map(item).collect()
}

fn line(value: &Value) -> Result<LineString<f64>, String> {
    Ok(LineString(list(value, coord)?))
}

fn polygon(value: &Value) -> Result<Polygon<f64>, String> {
    let mut rings = list(value, line)?.into_iter();
    let exterior = rings.next().unwrap_or_else(|| LineString(Vec::new()));
    Ok(Polygon::new(exterior, rings.collect()))
}

#[cfg(test)]
mod tests;
