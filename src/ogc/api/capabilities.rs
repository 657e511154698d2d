//! OGC API JSON documents: collections filtered to the path's layers, links into removed
//! collections dropped, every upstream URL rewritten, collection extents shrunk to a
//! fence. The document is read into an order-keeping tree so keys come out in the order
//! the upstream wrote them. Pure code.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::ogc::capabilities::bbox::{Bounds, Placement};
use crate::ogc::capabilities::url::{Mapped, UrlMap};
use crate::ogc::capabilities::{CapabilitiesError, FenceView, Rewrite, TileLimits};
use crate::ogc::common::matrix::{is_quad_set, matrix_zoom, MAX_QUAD_ZOOM};
use crate::ogc::common::percent;
use crate::ogc::common::rel::Rel;
use crate::ogc::DataFormat;

/// A JSON value whose objects keep their key order (and duplicate keys).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v).map(Json::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Object(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }
}

struct Ctx<'r, 'a> {
    rw: &'r Rewrite<'a>,
    map: &'r UrlMap,
    bounds: Option<Bounds>,
}

fn rewrite_with(input: &[u8], rw: &Rewrite<'_>, map: &UrlMap) -> Result<Vec<u8>, CapabilitiesError> {
    let mut doc: Json = serde_json::from_slice(input).map_err(CapabilitiesError::Json)?;
    if !matches!(doc, Json::Object(_)) {
        return Err(CapabilitiesError::JsonRoot);
    }
    let ctx = Ctx { rw, map, bounds: rw.bounds() };
    filter(&mut doc, &ctx);
    rewrite_strings(&mut doc, map);
    if leaks(&doc, map) {
        return Err(CapabilitiesError::Leak);
    }
    serde_json::to_vec(&doc).map_err(CapabilitiesError::Json)
}

/// Filters collections and links below `value`; says where an object's extent lies.
fn filter(value: &mut Json, ctx: &Ctx<'_, '_>) -> Placement {
    match value {
        Json::Object(entries) => {
            let placement = ctx.bounds.as_ref().map_or(Placement::Unknown, |b| shrink_extent(entries, b));
            if let Some(fence) = ctx.rw.limiting_fence() {
                limit_tileset(entries, fence, ctx.rw.quad_matrix_sets);
            }
            for (key, child) in entries.iter_mut() {
                match (key.as_str(), &mut *child) {
                    ("collections", Json::Array(items)) => items.retain_mut(|c| {
                        let id_covered = c.get("id").and_then(Json::as_str).is_none_or(|id| ctx.rw.covers(id));
                        id_covered && filter(c, ctx) != Placement::Outside
                    }),
                    ("links", Json::Array(links)) => {
                        links.retain(|l| keep_link(l, ctx));
                    }
                    _ => {
                        filter(child, ctx);
                    }
                }
            }
            placement
        }
        Json::Array(items) => {
            for item in items {
                filter(item, ctx);
            }
            Placement::Unknown
        }
        _ => Placement::Unknown,
    }
}

/// False for a link into a collection the path does not cover, for a templated
/// upstream link outside the base (no public URL reaches it), for a link to the
/// service itself on a third host (`ogc::api::leads_away`), for a target a browser
/// reads otherwise than it is written (`is_misleading_href`), and for a link on the
/// upstream the gateway would refuse: an HTML page (answered 406), or a route the
/// classifier does not serve (`/processes`, `/jobs`, the API definition…).
fn keep_link(link: &Json, ctx: &Ctx<'_, '_>) -> bool {
    let rel = rel_of(link);
    if rel == Rel::Unreadable {
        // Decision 81: a relation nobody can read keeps no link.
        return false;
    }
    let Some(href) = link.get("href").and_then(Json::as_str) else {
        return true;
    };
    let href = href.trim();
    if crate::ogc::capabilities::is_misleading_href(href) {
        return false;
    }
    if matches!(ctx.map.map(href), Mapped::Outside { templated: true, .. }) {
        return false;
    }
    let relative = !href.contains("://") && !href.starts_with("//");
    let path = if relative {
        href.split(['?', '#']).next().unwrap_or("")
    } else {
        match ctx.map.path_under_base(href) {
            Some(p) => p,
            // Elsewhere: kept when it leads away by nature or to the gateway itself.
            None => {
                return !ctx.map.is_elsewhere(href) || rel.leads_away();
            }
        }
    };
    if !relative && (is_html(link, href) || !crate::ogc::api::serves_route(path)) {
        return false;
    }
    if !relative && crate::ogc::api::is_feature_route(path) && !is_geojson(link, href) {
        // Features are served only as GeoJSON (JSON-LD `@id`s name the upstream; a
        // fence filters GeoJSON only): other formats answer 406.
        return false;
    }
    let segments: Vec<&str> = path.split('/').collect();
    !segments.windows(2).any(|w| {
        w[0] == "collections" && !w[1].is_empty() && !percent::decode_name(w[1]).is_ok_and(|c| ctx.rw.covers(&c))
    })
}

/// A link's `rel` in this module's JSON (`common::rel`); two `rel` members in one link
/// are unreadable (readers disagree on which one counts).
fn rel_of(link: &Json) -> Rel<'_> {
    let Json::Object(entries) = link else { return Rel::Absent };
    let mut rels = entries.iter().filter(|(k, _)| k == "rel").map(|(_, v)| v);
    match (rels.next(), rels.next()) {
        (None, _) => Rel::Absent,
        (Some(_), Some(_)) => Rel::Unreadable,
        (Some(Json::String(s)), None) => Rel::Text(s),
        (Some(Json::Array(items)), None) => {
            let texts: Option<Vec<&str>> = items.iter().map(Json::as_str).collect();
            texts.map_or(Rel::Unreadable, Rel::List)
        }
        (Some(_), None) => Rel::Unreadable,
    }
}

/// A link to an HTML page or a JSON-LD document (both answered 406: their URLs sit
/// where the rewriter cannot tell links from data): `"type": "text/html"` or
/// `application/ld+json`, or `f=html` / `f=jsonld` in its query.
fn is_html(link: &Json, href: &str) -> bool {
    let typed = link.get("type").and_then(Json::as_str).is_some_and(|t| {
        let t = t.trim().to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/ld+json")
    });
    let query = href.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    typed || query.split('&').any(|p| p.eq_ignore_ascii_case("f=html") || p.eq_ignore_ascii_case("f=jsonld"))
}

/// A link whose answer is GeoJSON: its `f=` (else its `type`, else the JSON default).
fn is_geojson(link: &Json, href: &str) -> bool {
    let query = href.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
    let format = query
        .split('&')
        .find_map(|p| p.strip_prefix("f="))
        .map(str::to_owned)
        .or_else(|| link.get("type").and_then(Json::as_str).map(str::to_owned));
    format.is_none_or(|f| {
        let decoded = percent::decode_name(&f).map(|d| d.into_owned()).unwrap_or_else(|_| f.clone());
        DataFormat::from_media_type(&decoded) == DataFormat::Json
    })
}

/// Shrinks `extent.spatial.bbox` (CRS84) of an object to the fence. The first box is the
/// overall extent: when it is outside the fence the object is `Outside` and left as is.
fn shrink_extent(entries: &mut [(String, Json)], bounds: &Bounds) -> Placement {
    let Some((_, extent)) = entries.iter_mut().find(|(k, _)| k == "extent") else {
        return Placement::Unknown;
    };
    let Some(spatial) = extent.get_mut("spatial") else {
        return Placement::Unknown;
    };
    let crs84 = spatial.get("crs").and_then(Json::as_str).is_none_or(|c| c.to_ascii_lowercase().ends_with("crs84"));
    if !crs84 {
        return Placement::Unknown;
    }
    let Some(Json::Array(boxes)) = spatial.get_mut("bbox") else {
        return Placement::Unknown;
    };
    let read = |b: &Json| -> Option<[f64; 4]> {
        let Json::Array(v) = b else { return None };
        if v.len() != 4 {
            return None;
        }
        Some([v[0].as_f64()?, v[1].as_f64()?, v[2].as_f64()?, v[3].as_f64()?])
    };
    let Some(first) = boxes.first().and_then(read) else {
        return Placement::Unknown;
    };
    if !bounds.intersects_lonlat(first) {
        return Placement::Outside;
    }
    boxes.retain_mut(|b| {
        let Some(v) = read(b) else { return true };
        match bounds.clip_lonlat(v) {
            None => false,
            Some(c) => {
                if c != v {
                    *b = Json::Array(
                        c.iter().filter_map(|x| serde_json::Number::from_f64(*x).map(Json::Number)).collect(),
                    );
                }
                true
            }
        }
    });
    Placement::Inside
}

/// For a fenced token, a tileset in a Web Mercator quad set (`tileMatrixSetURI` ending in
/// the set's id, or `tileMatrixSetId`: pygeoapi's tileset documents and `tilesets` list
/// entries) gets `tileMatrixSetLimits`, as WMTS capabilities get `TileMatrixSetLimits`:
/// one entry per level from 0 to maxZoom where the fence lets a tile through (its
/// footprint there; with `partial = "deny"` only the levels at and below the
/// shallowest fence tile), none above maxZoom. Limits the upstream declared are kept
/// as a bound: a level it does not list stays unlisted, and its ranges are
/// intersected with the fence's. So what is advertised is what the classifier and
/// the policy accept.
fn limit_tileset(entries: &mut Vec<(String, Json)>, fence: &dyn FenceView, quad_sets: &[String]) {
    let set = entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("tileMatrixSetURI", Json::String(uri)) => uri.trim_end_matches('/').rsplit('/').next().map(str::to_owned),
        ("tileMatrixSetId", Json::String(id)) => Some(id.clone()),
        _ => None,
    });
    let Some(set) = set.filter(|s| is_quad_set(s, quad_sets)) else {
        return;
    };
    let number = |entry: &Json, key: &str| entry.get(key).and_then(Json::as_f64).map(|v| v as i64);
    // The upstream's own limits, by zoom: (matrix id, min_col, max_col, min_row, max_row).
    let declared: Option<Vec<(u8, String, [i64; 4])>> =
        entries.iter().find(|(k, _)| k == "tileMatrixSetLimits").map(|(_, v)| match v {
            Json::Array(items) => items
                .iter()
                .filter_map(|e| {
                    let id = e.get("tileMatrix").and_then(Json::as_str)?;
                    let lim = [
                        number(e, "minTileCol")?,
                        number(e, "maxTileCol")?,
                        number(e, "minTileRow")?,
                        number(e, "maxTileRow")?,
                    ];
                    Some((matrix_zoom(&set, id)?, id.to_owned(), lim))
                })
                .collect(),
            _ => Vec::new(),
        });
    let max_zoom = fence.max_zoom().unwrap_or(MAX_QUAD_ZOOM).min(MAX_QUAD_ZOOM);
    let mut limits = Vec::new();
    for zoom in 0..=max_zoom {
        let last = (1i64 << zoom) - 1;
        let (mut lim, mut id) = match fence.tile_limits(zoom) {
            TileLimits::All => ([0, last, 0, last], zoom.to_string()),
            TileLimits::Range { min_col, max_col, min_row, max_row } => (
                [i64::from(min_col), i64::from(max_col).min(last), i64::from(min_row), i64::from(max_row).min(last)],
                zoom.to_string(),
            ),
            TileLimits::Nothing => continue,
        };
        if let Some(declared) = &declared {
            // The upstream offers nothing outside its own limits.
            let Some((_, declared_id, d)) = declared.iter().find(|(z, _, _)| *z == zoom) else {
                continue;
            };
            lim = [lim[0].max(d[0]), lim[1].min(d[1]), lim[2].max(d[2]), lim[3].min(d[3])];
            id.clone_from(declared_id);
        }
        if lim[0] > lim[1] || lim[2] > lim[3] {
            continue;
        }
        let n = |v: i64| Json::Number(serde_json::Number::from(v));
        limits.push(Json::Object(vec![
            ("tileMatrix".into(), Json::String(id)),
            ("minTileRow".into(), n(lim[2])),
            ("maxTileRow".into(), n(lim[3])),
            ("minTileCol".into(), n(lim[0])),
            ("maxTileCol".into(), n(lim[1])),
        ]));
    }
    let limits = Json::Array(limits);
    match entries.iter_mut().find(|(k, _)| k == "tileMatrixSetLimits") {
        Some((_, v)) => *v = limits,
        None => {
            let at = entries
                .iter()
                .position(|(k, _)| k == "tileMatrixSetURI" || k == "tileMatrixSetId")
                .map_or(0, |i| i + 1);
            entries.insert(at, ("tileMatrixSetLimits".into(), limits));
        }
    }
}

fn rewrite_strings(value: &mut Json, map: &UrlMap) {
    match value {
        Json::String(s) => {
            if let Some(v) = map.rewrite_value(s) {
                *s = v;
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|i| rewrite_strings(i, map)),
        Json::Object(entries) => entries.iter_mut().for_each(|(_, v)| rewrite_strings(v, map)),
        _ => {}
    }
}

fn leaks(value: &Json, map: &UrlMap) -> bool {
    match value {
        Json::String(s) => map.leaks(s),
        Json::Array(items) => items.iter().any(|i| leaks(i, map)),
        Json::Object(entries) => entries.iter().any(|(k, v)| map.leaks(k) || leaks(v, map)),
        _ => false,
    }
}

/// Rewrites an OGC API JSON document (landing page, conformance, collections, one
/// collection, tilesets, items): entries of a `collections` array whose `id` is not
/// covered are removed, and so are links into removed collections
/// (`…/collections/{id}…`), templated links the gateway cannot reach, and upstream links
/// the gateway would refuse (HTML pages, routes it does not serve such as `/processes`
/// and `/jobs`, items in any format but GeoJSON). Every string
/// holding an upstream URL is rewritten. Key order is kept. For fenced tokens,
/// `extent.spatial.bbox` shrinks and collections outside the fence are removed.
pub fn rewrite(json: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, CapabilitiesError> {
    let map = rw.url_map()?;
    rewrite_with(json, rw, &map)
}

/// Query parameters the gateway's OGC API classifier knows by name on some route; any
/// other query parameter in an API definition is a queryable property.
const STANDARD_PARAMETERS: &[&str] = &[
    "f",
    "lang",
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "crs",
    "datetime",
    "properties",
    "sortby",
    "filter",
    "filter-lang",
    "filter-crs",
    "skipGeometry",
    "resulttype",
    "collections",
    "profile",
];

/// The HTTP methods of an OpenAPI path item the gateway classifies (`options` and
/// `trace` are refused).
const SERVED_METHODS: &[&str] = &["get", "head", "post", "put", "patch", "delete"];

/// Rewrites the upstream's OGC API definition (OpenAPI 3, `/api`, `/openapi`) for one
/// token, so that what QGIS and GDAL read from it names only what the token can use:
///
/// - `servers` is the gateway's public URL for the path, alone;
/// - `paths` keeps only routes the gateway serves (not `/processes`, `/jobs`, `/stac`…)
///   into collections the path covers, and of their operations only the methods the
///   gateway passes; `tags` naming a removed collection go;
/// - for a property-fenced token (`properties`), query parameters naming a hidden
///   property (pygeoapi lists every queryable as one, QGIS reads them) are removed, and
///   the `enum` lists of `properties` and `sortby` parameters are cut to the allowed names;
/// - `components` entries no kept part refers to (`$ref`, transitively) are removed, so
///   a removed collection's parameters and schemas go with it;
/// - every upstream URL is rewritten, and the document is refused if one is left.
pub fn rewrite_definition(
    json: &[u8],
    rw: &Rewrite<'_>,
    properties: Option<&[String]>,
) -> Result<Vec<u8>, CapabilitiesError> {
    let map = rw.url_map()?;
    let mut doc: Json = serde_json::from_slice(json).map_err(CapabilitiesError::Json)?;
    let Json::Object(entries) = &mut doc else { return Err(CapabilitiesError::JsonRoot) };
    let mut removed_collections: Vec<String> = Vec::new();
    for (key, value) in entries.iter_mut() {
        match (key.as_str(), value) {
            ("servers", servers) => {
                *servers = Json::Array(vec![Json::Object(vec![("url".into(), Json::String(rw.public.into()))])])
            }
            ("paths", Json::Object(paths)) => paths.retain_mut(|(path, item)| {
                let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
                if let ["collections", c, ..] = segments.as_slice() {
                    let covered = c.starts_with('{') || percent::decode_name(c).is_ok_and(|c| rw.covers(&c));
                    if !covered {
                        removed_collections.push((*c).to_owned());
                        return false;
                    }
                }
                if !crate::ogc::api::serves_route(path.trim_end_matches('/')) {
                    return false;
                }
                if let Json::Object(operations) = item {
                    operations
                        .retain(|(method, _)| SERVED_METHODS.contains(&method.as_str()) || !is_http_method(method));
                }
                true
            }),
            _ => {}
        }
    }
    if let Some(Json::Array(tags)) = doc.get_mut("tags") {
        tags.retain(|t| {
            t.get("name").and_then(Json::as_str).is_none_or(|n| !removed_collections.iter().any(|c| c == n))
        });
    }
    if let Some(allowed) = properties {
        let components = doc.get("components").cloned();
        if let Some(Json::Object(paths)) = doc.get_mut("paths") {
            for (_, item) in paths.iter_mut() {
                fence_parameters(item, allowed, components.as_ref());
            }
        }
        if let Some(Json::Object(parameters)) = doc.get_mut("components").and_then(|c| c.get_mut("parameters")) {
            for (_, parameter) in parameters.iter_mut() {
                trim_name_enums(parameter, allowed);
            }
        }
    }
    drop_unreferenced_components(&mut doc);
    rewrite_strings(&mut doc, &map);
    if leaks(&doc, &map) {
        return Err(CapabilitiesError::Leak);
    }
    serde_json::to_vec(&doc).map_err(CapabilitiesError::Json)
}

fn is_http_method(name: &str) -> bool {
    matches!(name, "get" | "head" | "post" | "put" | "patch" | "delete" | "options" | "trace")
}

/// In a path item (its operations' and its own `parameters`), removes query
/// parameters that name a hidden property and cuts property-name `enum`s.
fn fence_parameters(item: &mut Json, allowed: &[String], components: Option<&Json>) {
    let Json::Object(entries) = item else { return };
    for (key, value) in entries.iter_mut() {
        if key == "parameters" {
            if let Json::Array(parameters) = value {
                parameters.retain(|p| {
                    let resolved = resolve_local(p, components).unwrap_or(p);
                    let query = resolved.get("in").and_then(Json::as_str) == Some("query");
                    let name = resolved.get("name").and_then(Json::as_str).unwrap_or("");
                    !query || STANDARD_PARAMETERS.contains(&name) || allowed.iter().any(|a| a == name)
                });
                parameters.iter_mut().for_each(|p| trim_name_enums(p, allowed));
            }
        } else if is_http_method(key) {
            fence_parameters(value, allowed, components);
        }
    }
}

/// A `{"$ref": "#/components/parameters/x"}` resolved in `components`.
fn resolve_local<'a>(parameter: &Json, components: Option<&'a Json>) -> Option<&'a Json> {
    let name = parameter.get("$ref")?.as_str()?.strip_prefix("#/components/parameters/")?;
    components?.get("parameters")?.get(name)
}

/// The `enum` lists under a `properties` or `sortby` parameter cut to the allowed
/// names (`sortby` items may carry a `+`/`-`).
fn trim_name_enums(parameter: &mut Json, allowed: &[String]) {
    fn walk(v: &mut Json, allowed: &[String]) {
        match v {
            Json::Object(entries) => {
                for (k, child) in entries.iter_mut() {
                    if let ("enum", Json::Array(items)) = (k.as_str(), &mut *child) {
                        items.retain(|i| {
                            i.as_str().is_none_or(|n| {
                                let n = n.trim_start_matches(['+', '-']);
                                allowed.iter().any(|a| a == n)
                            })
                        });
                    } else {
                        walk(child, allowed);
                    }
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|i| walk(i, allowed)),
            _ => {}
        }
    }
    if matches!(parameter.get("name").and_then(Json::as_str), Some("properties" | "sortby")) {
        walk(parameter, allowed);
    }
}

/// Removes `components` entries that nothing outside `components` refers to, directly
/// or through other kept components.
fn drop_unreferenced_components(doc: &mut Json) {
    fn refs(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Object(entries) => {
                for (k, child) in entries {
                    if let ("$ref", Json::String(r)) = (k.as_str(), child) {
                        if let Some(local) = r.strip_prefix("#/components/") {
                            out.push(local.to_owned());
                        }
                    }
                    refs(child, out);
                }
            }
            Json::Array(items) => items.iter().for_each(|i| refs(i, out)),
            _ => {}
        }
    }
    let Json::Object(entries) = doc else { return };
    let mut wanted = Vec::new();
    for (k, v) in entries.iter() {
        if k != "components" {
            refs(v, &mut wanted);
        }
    }
    let Some((_, components)) = entries.iter_mut().find(|(k, _)| k == "components") else { return };
    let mut kept: Vec<String> = Vec::new();
    while let Some(r) = wanted.pop() {
        if kept.contains(&r) {
            continue;
        }
        let mut parts = r.splitn(2, '/');
        let (Some(section), Some(name)) = (parts.next(), parts.next()) else { continue };
        if let Some(target) = components.get(section).and_then(|s| s.get(name)) {
            refs(target, &mut wanted);
        }
        kept.push(r);
    }
    if let Json::Object(sections) = components {
        for (section, members) in sections.iter_mut() {
            if let Json::Object(members) = members {
                members.retain(|(name, _)| kept.iter().any(|k| *k == format!("{section}/{name}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFINITION: &str = r##"{
      "openapi": "3.0.2",
      "servers": [{"url": "http://up:5000", "description": "x"}],
      "tags": [{"name": "server"}, {"name": "places"}, {"name": "secret_sites"}],
      "paths": {
        "/": {"get": {"operationId": "landing"}},
        "/openapi": {"get": {"parameters": [{"$ref": "#/components/parameters/f"}]}},
        "/conformance": {"get": {}},
        "/collections/places/items": {
          "get": {"parameters": [
            {"$ref": "#/components/parameters/f"},
            {"$ref": "#/components/parameters/bbox"},
            {"name": "limit", "in": "query", "style": "form", "explode": false, "schema": {"type": "integer", "maximum": 1000}},
            {"name": "properties", "in": "query", "schema": {"items": {"enum": ["name", "secret_note"], "type": "string"}, "type": "array"}},
            {"name": "name", "in": "query", "style": "form", "explode": false, "schema": {"type": "string"}},
            {"name": "secret_note", "in": "query", "style": "form", "explode": false, "schema": {"type": "string"}},
            {"$ref": "#/components/parameters/owner"}
          ]},
          "options": {"summary": "Options for Places items"}
        },
        "/collections/places/items/{featureId}": {"get": {}},
        "/collections/secret_sites/items": {"get": {"summary": "Get Secret Sites", "parameters": [{"$ref": "#/components/parameters/secretOnly"}]}},
        "/jobs": {"get": {"summary": "jobs"}},
        "/processes/hello": {"post": {}}
      },
      "components": {
        "parameters": {
          "f": {"name": "f", "in": "query", "schema": {"type": "string"}},
          "bbox": {"name": "bbox", "in": "query", "schema": {"$ref": "#/components/schemas/box"}},
          "owner": {"name": "owner", "in": "query", "schema": {"type": "string"}},
          "secretOnly": {"name": "vault", "in": "query", "description": "Secret Sites vault", "schema": {"type": "string"}},
          "unused": {"name": "x", "in": "query"}
        },
        "schemas": {"box": {"type": "array"}, "orphan": {"description": "http://up:5000/jobs"}}
      }
    }"##;

    fn definition(properties: Option<&[&str]>) -> serde_json::Value {
        let layers = vec!["places".to_string()];
        let rw = Rewrite {
            upstream: "http://up:5000",
            public: "https://gw/ogc/api/obs",
            token_query: None,
            layers: &layers,
            fence: None,
            quad_matrix_sets: &[],
            rest_template: None,
        };
        let allowed: Option<Vec<String>> = properties.map(|p| p.iter().map(|s| s.to_string()).collect());
        let out = rewrite_definition(DEFINITION.as_bytes(), &rw, allowed.as_deref()).expect("rewrites");
        serde_json::from_slice(&out).expect("json")
    }

    /// Regression (#13.1): the API definition was refused (403), so QGIS could open no
    /// OGC API Features layer through the gateway ("Download of API page failed").
    #[test]
    fn the_api_definition_names_only_what_the_token_can_use() {
        let doc = definition(None);
        let text = doc.to_string();
        assert_eq!(doc["servers"], serde_json::json!([{"url": "https://gw/ogc/api/obs"}]));
        // (serde_json's map sorts the keys.)
        let paths: Vec<&str> = doc["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["/", "/collections/places/items", "/collections/places/items/{featureId}", "/conformance", "/openapi"]
        );
        assert!(doc["paths"]["/collections/places/items"].get("options").is_none());
        assert!(!text.contains("secret_sites") && !text.contains("Secret Sites") && !text.contains("vault"), "{text}");
        assert!(!text.contains("http://up:5000"), "{text}");
        let parameters = doc["components"]["parameters"].as_object().expect("parameters");
        assert_eq!(parameters.keys().collect::<Vec<_>>(), ["bbox", "f", "owner"]);
        assert_eq!(doc["components"]["schemas"], serde_json::json!({"box": {"type": "array"}}));
        // QGIS reads the limit and the simple queryables from the items path.
        let names: Vec<&str> = doc["paths"]["/collections/places/items"]["get"]["parameters"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["limit", "properties", "name", "secret_note"]);
    }

    #[test]
    fn a_property_fenced_token_sees_no_hidden_property_in_the_api_definition() {
        let doc = definition(Some(&["name"]));
        let text = doc.to_string();
        assert!(!text.contains("secret_note") && !text.contains("owner"), "{text}");
        let items = &doc["paths"]["/collections/places/items"]["get"]["parameters"];
        let names: Vec<&str> = items.as_array().expect("array").iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["limit", "properties", "name"]);
        assert_eq!(items[3]["schema"]["items"]["enum"], serde_json::json!(["name"]));
    }

    #[test]
    fn key_order_and_duplicates_survive() {
        let input = br#"{"z":1,"a":[true,null,1.5,-2],"m":{"y":"s","b":{}},"z":2}"#;
        let doc: Json = serde_json::from_slice(input).expect("parses");
        assert_eq!(serde_json::to_vec(&doc).expect("writes"), input.to_vec());
    }

    /// Tile 4/8/5 (central Europe), maxZoom 6, clipping: the footprint at every level.
    struct Europe;

    impl FenceView for Europe {
        fn max_zoom(&self) -> Option<u8> {
            Some(6)
        }
        fn bounds_lonlat(&self) -> Option<[f64; 4]> {
            Some([0.0, 40.98, 22.5, 55.78])
        }
        fn bounds_mercator(&self) -> Option<[f64; 4]> {
            None
        }
        fn tile_limits(&self, z: u8) -> TileLimits {
            if z < 4 {
                return TileLimits::Range {
                    min_col: 8 >> (4 - z),
                    max_col: 8 >> (4 - z),
                    min_row: 5 >> (4 - z),
                    max_row: 5 >> (4 - z),
                };
            }
            let s = z - 4;
            TileLimits::Range { min_col: 8 << s, max_col: (9 << s) - 1, min_row: 5 << s, max_row: (6 << s) - 1 }
        }
    }

    fn limits(doc: &serde_json::Value) -> Vec<(String, [i64; 4])> {
        doc["tileMatrixSetLimits"]
            .as_array()
            .expect("limits")
            .iter()
            .map(|l| {
                let n = |k: &str| l[k].as_i64().expect(k);
                (
                    l["tileMatrix"].as_str().expect("id").to_owned(),
                    [n("minTileCol"), n("maxTileCol"), n("minTileRow"), n("maxTileRow")],
                )
            })
            .collect()
    }

    #[test]
    fn a_fenced_tileset_advertises_the_fence_footprint_up_to_max_zoom() {
        let layers = vec!["lakes".to_owned()];
        let fence = Europe;
        let rw =
            Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:5000", "https://gw/ogc/api/x", &layers) };
        // pygeoapi's tileset document: no limits of its own.
        let tileset = br#"{"title":"lakes","tileMatrixSetURI":"http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad","crs":"http://www.opengis.net/def/crs/EPSG/0/3857","links":[]}"#;
        let out: serde_json::Value = serde_json::from_slice(&rewrite(tileset, &rw).expect("rewrites")).expect("json");
        let got = limits(&out);
        assert_eq!(got.len(), 7, "levels 0..=6, none above maxZoom: {got:?}");
        assert_eq!(got[0], ("0".to_owned(), [0, 0, 0, 0]));
        assert_eq!(got[3], ("3".to_owned(), [4, 4, 2, 2]), "the tile holding the fence");
        assert_eq!(got[4], ("4".to_owned(), [8, 8, 5, 5]));
        assert_eq!(got[6], ("6".to_owned(), [32, 35, 20, 23]));
        // The key sits after the set's URI, the rest in the upstream's order.
        let text = String::from_utf8(rewrite(tileset, &rw).expect("rewrites")).expect("utf-8");
        assert!(
            text.find("tileMatrixSetURI") < text.find("tileMatrixSetLimits")
                && text.find("tileMatrixSetLimits") < text.find("\"crs\"")
        );

        // Limits the upstream declared bound the fence's: levels it lacks stay out,
        // levels above maxZoom go.
        let declared = br#"{"tileMatrixSetId":"WebMercatorQuad","tileMatrixSetLimits":[
            {"tileMatrix":"2","minTileRow":0,"maxTileRow":3,"minTileCol":0,"maxTileCol":3},
            {"tileMatrix":"5","minTileRow":0,"maxTileRow":10,"minTileCol":17,"maxTileCol":31},
            {"tileMatrix":"9","minTileRow":0,"maxTileRow":511,"minTileCol":0,"maxTileCol":511}]}"#;
        let out: serde_json::Value = serde_json::from_slice(&rewrite(declared, &rw).expect("rewrites")).expect("json");
        assert_eq!(limits(&out), [("2".to_owned(), [2, 2, 1, 1]), ("5".to_owned(), [17, 17, 10, 10])]);

        // Another tile matrix set, or no fence: untouched.
        let other = br#"{"tileMatrixSetURI":"http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad"}"#;
        assert!(!String::from_utf8(rewrite(other, &rw).unwrap()).unwrap().contains("tileMatrixSetLimits"));
        let open = Rewrite::new("http://127.0.0.1:5000", "https://gw/ogc/api/x", &layers);
        assert!(!String::from_utf8(rewrite(tileset, &open).unwrap()).unwrap().contains("tileMatrixSetLimits"));
    }
}
