//! TileJSON (2.x/3.0) as one token may see it: the rewriter every tile upstream that
//! advertises TileJSON goes through (martin `/{source}`, PMTiles archives, TiTiler
//! `…/tilejson.json`).
//!
//! [`rewrite`] takes the upstream document and a [`TileJsonView`] (the gateway's own
//! tile URL for the document, the token when it came in the query, the token's
//! fence and property fence, the vector layers the path covers) and builds the
//! document for that token, member by member. Deny by default: only the members
//! below are written, every other one (`grids`, `data`, `template`, `legend`,
//! vendor members such as martin's `format`, anything unknown) is dropped.
//!
//! | member | written as |
//! |---|---|
//! | `tilejson` | `"3.0.0"` |
//! | `tiles` | `[view.tiles]` (plus `token=` when the token came in the query) |
//! | `name`, `description`, `version` | kept when they are strings |
//! | `attribution` | kept when it is a string without markup (`<`); MapLibre renders it as HTML |
//! | `scheme` | always `"xyz"`: the gateway's tile routes are XYZ whatever the upstream says |
//! | `minzoom`, `maxzoom` | `maxzoom` limited to the fence's maxZoom, `minzoom` to `maxzoom` |
//! | `fillzoom` | kept, limited to `maxzoom` |
//! | `bounds` | intersected with the fence's bounds (the fence's bounds when they do not meet) |
//! | `center` | kept inside `bounds` (else the middle of `bounds`), its zoom inside the zoom range |
//! | `vector_layers` | only covered layers; `fields` only visible properties; `id`, `description`, `fields`, `minzoom`, `maxzoom` |
//!
//! Pure code: no I/O, no clock, no logging. A document that is not a JSON object, or
//! whose members have the wrong types, is an error (the caller answers 502).

use serde_json::{Map, Value};

use crate::ogc::capabilities::FenceView;

/// The largest zoom a TileJSON may advertise (the gateway's tile addresses stop there).
const MAX_ZOOM: u64 = 30;

/// The Web Mercator latitude limit (TileJSON's default `bounds`).
const MAX_LAT: f64 = 85.051_128_779_806_6;

/// What one token may see, and where the gateway serves the tiles.
#[derive(Clone, Copy)]
pub struct TileJsonView<'a> {
    /// The gateway's tile URL template for this document, with `{z}`, `{x}`, `{y}`
    /// (`https://gw.example/ogc/martin/osm/roads/{z}/{x}/{y}`), without a token.
    pub tiles: &'a str,
    /// The token, when the client sent it in the query: appended as `token=` to `tiles`
    /// (a client that authenticates by header keeps doing so, and gets no copy).
    pub token_query: Option<&'a str>,
    /// The token's fence (`None`: unlimited).
    pub fence: Option<&'a dyn FenceView>,
    /// How many zoom levels finer than its `z` each tile is drawn (0 for 256-pixel
    /// tiles; 1 for TiTiler's `tilesize=512`): `maxzoom` stays that much below the
    /// fence's maxZoom, since the gateway judges such a tile at the zoom of its pixels.
    pub zoom_offset: u8,
    /// The properties the token may see (`None`: all, empty: none).
    pub properties: Option<&'a [String]>,
    /// The vector layer ids the path covers (`None`: every layer of the document).
    pub layers: Option<&'a [String]>,
}

/// Why a TileJSON document could not be rewritten (answered as a 502).
#[derive(Debug, thiserror::Error)]
pub enum TileJsonError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the document is not a JSON object")]
    NotObject,
    #[error("member `{0}` has the wrong type or an invalid value")]
    Member(&'static str),
}

/// Rewrites one upstream TileJSON document for one token (see the module docs for
/// what each member becomes).
///
/// ```
/// use tilegate::ogc::tilejson::{rewrite, TileJsonView};
/// use tilegate::spatial::Fence;
/// let upstream = br#"{"tilejson":"3.0.0","tiles":["http://martin:3000/roads/{z}/{x}/{y}"],
///   "maxzoom":14,"bounds":[-180,-85,180,85],"grids":["http://martin:3000/g"],
///   "vector_layers":[{"id":"roads","fields":{"name":"String","owner":"String"}},{"id":"secret","fields":{}}]}"#;
/// let fence = Fence::new(Some(&[(1, 1, 0)]), Some(10)).unwrap();
/// let props = ["name".to_owned()];
/// let layers = ["roads".to_owned()];
/// let view = TileJsonView {
///     tiles: "https://gw/ogc/martin/osm/roads/{z}/{x}/{y}",
///     token_query: Some("tg_abc"),
///     fence: Some(&fence),
///     properties: Some(&props),
///     layers: Some(&layers),
///     zoom_offset: 0,
/// };
/// let out: serde_json::Value = serde_json::from_slice(&rewrite(upstream, &view).unwrap()).unwrap();
/// assert_eq!(out["tiles"][0], "https://gw/ogc/martin/osm/roads/{z}/{x}/{y}?token=tg_abc");
/// assert_eq!(out["maxzoom"], 10);
/// assert_eq!(out["bounds"][0], 0.0);
/// assert_eq!(out["vector_layers"].as_array().unwrap().len(), 1);
/// assert_eq!(out["vector_layers"][0]["fields"], serde_json::json!({"name": "String"}));
/// assert!(out.get("grids").is_none());
/// ```
pub fn rewrite(doc: &[u8], view: &TileJsonView<'_>) -> Result<Vec<u8>, TileJsonError> {
    let value = crate::json::parse_strict(doc)?;
    let out = rewrite_value(&value, view)?;
    Ok(serde_json::to_vec(&out)?)
}

/// [`rewrite`] on a parsed document.
pub fn rewrite_value(doc: &Value, view: &TileJsonView<'_>) -> Result<Value, TileJsonError> {
    let doc = doc.as_object().ok_or(TileJsonError::NotObject)?;
    let mut out = Map::new();
    out.insert("tilejson".into(), "3.0.0".into());
    out.insert("tiles".into(), Value::Array(vec![Value::String(tile_url(view))]));
    for key in ["name", "description", "version"] {
        if let Some(v) = doc.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), Value::String(v.as_str().ok_or(TileJsonError::Member(member(key)))?.to_owned()));
        }
    }
    if let Some(a) = doc.get("attribution").filter(|a| !a.is_null()) {
        let a = a.as_str().ok_or(TileJsonError::Member("attribution"))?;
        if !a.contains('<') {
            out.insert("attribution".into(), a.into());
        }
    }
    // The gateway's tile routes address tiles in the XYZ scheme whatever the upstream
    // stores (martin flips MBTiles' TMS rows itself and still labels some sources `tms`).
    out.insert("scheme".into(), "xyz".into());
    let fence_max = view
        .fence
        .and_then(|f| f.max_zoom())
        .map(|m| u64::from(m.saturating_sub(view.zoom_offset)))
        .unwrap_or(MAX_ZOOM);
    let maxzoom = zoom(doc, "maxzoom")?.unwrap_or(MAX_ZOOM).min(fence_max).min(MAX_ZOOM);
    let minzoom = zoom(doc, "minzoom")?.unwrap_or(0).min(maxzoom);
    out.insert("minzoom".into(), minzoom.into());
    out.insert("maxzoom".into(), maxzoom.into());
    if let Some(fill) = zoom(doc, "fillzoom")? {
        out.insert("fillzoom".into(), fill.clamp(minzoom, maxzoom).into());
    }
    let upstream_bounds = match doc.get("bounds") {
        None => None,
        Some(b) => Some(numbers::<4>(b).ok_or(TileJsonError::Member("bounds"))?),
    };
    let fence_bounds = view.fence.and_then(|f| f.bounds_lonlat());
    let bounds = match (upstream_bounds, fence_bounds) {
        (Some(u), Some(f)) => Some(intersect(u, f).unwrap_or(f)),
        (u, f) => u.or(f),
    };
    if let Some(b) = bounds {
        out.insert("bounds".into(), b.iter().copied().map(Value::from).collect());
    }
    if let Some(c) = doc.get("center") {
        let c = numbers::<3>(c)
            .or_else(|| numbers::<2>(c).map(|[x, y]| [x, y, minzoom as f64]))
            .ok_or(TileJsonError::Member("center"))?;
        let b = bounds.unwrap_or([-180.0, -MAX_LAT, 180.0, MAX_LAT]);
        // Under a fence the upstream's centre, the middle of all its data, is not told
        // (attacker round 11: martin's centre lay inside the fence and was kept).
        let inside = view.fence.is_none() && b[0] <= c[0] && c[0] <= b[2] && b[1] <= c[1] && c[1] <= b[3];
        let (x, y) = if inside { (c[0], c[1]) } else { ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0) };
        let z = c[2].clamp(minzoom as f64, maxzoom as f64);
        out.insert("center".into(), Value::Array(vec![x.into(), y.into(), z.into()]));
    }
    if let Some(layers) = doc.get("vector_layers") {
        let layers = layers.as_array().ok_or(TileJsonError::Member("vector_layers"))?;
        let mut kept = Vec::with_capacity(layers.len());
        for layer in layers {
            if let Some(l) = vector_layer(layer, view, minzoom, maxzoom)? {
                kept.push(l);
            }
        }
        out.insert("vector_layers".into(), Value::Array(kept));
    }
    Ok(Value::Object(out))
}

/// One `vector_layers` entry, or `None` when the path does not cover it.
fn vector_layer(
    layer: &Value,
    view: &TileJsonView<'_>,
    minzoom: u64,
    maxzoom: u64,
) -> Result<Option<Value>, TileJsonError> {
    let layer = layer.as_object().ok_or(TileJsonError::Member("vector_layers"))?;
    let id = layer.get("id").and_then(Value::as_str).ok_or(TileJsonError::Member("vector_layers[].id"))?;
    if view.layers.is_some_and(|covered| !covered.iter().any(|c| c == id)) {
        return Ok(None);
    }
    let mut out = Map::new();
    out.insert("id".into(), id.into());
    if let Some(d) = layer.get("description").and_then(Value::as_str) {
        out.insert("description".into(), d.into());
    }
    let fields = match layer.get("fields") {
        None => Map::new(),
        Some(Value::Object(fields)) => fields
            .iter()
            .filter(|(name, _)| view.properties.is_none_or(|p| p.iter().any(|a| a == *name)))
            .map(|(name, kind)| (name.clone(), kind.as_str().map_or(Value::String(String::new()), Value::from)))
            .collect(),
        Some(_) => return Err(TileJsonError::Member("vector_layers[].fields")),
    };
    out.insert("fields".into(), Value::Object(fields));
    let lmax = zoom(layer, "maxzoom")?.unwrap_or(maxzoom).min(maxzoom);
    let lmin = zoom(layer, "minzoom")?.unwrap_or(minzoom).clamp(minzoom, lmax);
    if layer.contains_key("minzoom") {
        out.insert("minzoom".into(), lmin.into());
    }
    if layer.contains_key("maxzoom") {
        out.insert("maxzoom".into(), lmax.into());
    }
    Ok(Some(Value::Object(out)))
}

/// The gateway's tile URL, with the query token when the client sent one.
fn tile_url(view: &TileJsonView<'_>) -> String {
    match view.token_query {
        None => view.tiles.to_owned(),
        Some(token) => {
            let sep = if view.tiles.contains('?') { '&' } else { '?' };
            let token: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
            format!("{}{sep}token={token}", view.tiles)
        }
    }
}

fn member(key: &str) -> &'static str {
    match key {
        "name" => "name",
        "description" => "description",
        _ => "version",
    }
}

/// A zoom member: an integer 0..=30 (a float with no fraction is accepted).
fn zoom(doc: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, TileJsonError> {
    let Some(v) = doc.get(key) else { return Ok(None) };
    let z = v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
    match z {
        Some(z) if z <= MAX_ZOOM => Ok(Some(z)),
        _ => Err(TileJsonError::Member(key)),
    }
}

/// `N` finite numbers: a JSON array, or the comma-separated string that tippecanoe's
/// `metadata.json` writes and pygeoapi relays as its TileJSON (`"bounds":"-99.1,-34.6,…"`).
fn numbers<const N: usize>(v: &Value) -> Option<[f64; N]> {
    let mut out = [0.0; N];
    match v {
        Value::Array(items) if items.len() == N => {
            for (slot, item) in out.iter_mut().zip(items) {
                *slot = item.as_f64().filter(|f| f.is_finite())?;
            }
        }
        Value::String(text) => {
            let mut parts = text.split(',');
            for slot in &mut out {
                *slot = parts.next()?.trim().parse::<f64>().ok().filter(|f| f.is_finite())?;
            }
            if parts.next().is_some() {
                return None;
            }
        }
        _ => return None,
    }
    Some(out)
}

/// The intersection of two `[west, south, east, north]` boxes, `None` when they do not meet.
fn intersect(a: [f64; 4], b: [f64; 4]) -> Option<[f64; 4]> {
    let out = [a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])];
    (out[0] <= out[2] && out[1] <= out[3]).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::Fence;

    fn view<'a>(fence: Option<&'a Fence>, props: Option<&'a [String]>) -> TileJsonView<'a> {
        TileJsonView {
            tiles: "https://gw/ogc/martin/p/a/{z}/{x}/{y}",
            token_query: None,
            fence: fence.map(|f| f as &dyn FenceView),
            properties: props,
            layers: None,
            zoom_offset: 0,
        }
    }

    fn run(doc: &str, v: &TileJsonView<'_>) -> Value {
        serde_json::from_slice(&rewrite(doc.as_bytes(), v).unwrap()).unwrap()
    }

    /// pygeoapi relays tippecanoe's metadata: bounds and center as comma strings, a null
    /// attribution. Read as numbers, and narrowed like any.
    #[test]
    fn pygeoapi_s_string_bounds_and_null_members_are_read() {
        let doc = r#"{"tilejson":"3.0.0","name":"places","tiles":"http://up/{tileMatrix}","minzoom":0,"maxzoom":6,
            "bounds":"-99.1332000,-34.6037000,151.2093000,69.6496000","center":"26.03,17.52,0","attribution":null,
            "vector_layers":[{"id":"places","fields":{"name":"String","secret_note":"String"}}]}"#;
        let fence = Fence::new(Some(&[(2, 2, 1)]), Some(4)).unwrap();
        let names = ["name".to_string()];
        let out = run(doc, &view(Some(&fence), Some(&names)));
        assert_eq!(out["bounds"][0], 0.0);
        assert!(out["bounds"][2].as_f64().unwrap() <= 90.0, "{out}");
        assert_eq!(out["maxzoom"], 4);
        assert!(out.get("attribution").is_none());
        assert!(!out.to_string().contains("secret_note"), "{out}");
        for bad in [r#"{"bounds":"1,2,3"}"#, r#"{"bounds":"1,2,3,4,5"}"#, r#"{"bounds":"a,b,c,d"}"#] {
            assert!(rewrite(bad.as_bytes(), &view(None, None)).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_members_are_dropped_and_tiles_point_at_the_gateway() {
        let doc = r#"{"tilejson":"2.2.0","tiles":["http://up/a/{z}/{x}/{y}"],"grids":["http://up/g"],"data":["http://up/d.geojson"],
            "template":"{{x}}","legend":"<b>x</b>","format":"pbf","attribution":"<a href='http://up'>up</a>","name":"A"}"#;
        let out = run(doc, &view(None, None));
        let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["maxzoom", "minzoom", "name", "scheme", "tilejson", "tiles"]);
        assert_eq!(out["tiles"], serde_json::json!(["https://gw/ogc/martin/p/a/{z}/{x}/{y}"]));
        assert!(!out.to_string().contains("http://up"), "{out}");
    }

    #[test]
    fn plain_attribution_is_kept() {
        let out = run(r#"{"attribution":"© OSM contributors"}"#, &view(None, None));
        assert_eq!(out["attribution"], "© OSM contributors");
    }

    #[test]
    fn query_token_is_appended_encoded() {
        let mut v = view(None, None);
        v.token_query = Some("tg_a+b");
        assert_eq!(run("{}", &v)["tiles"][0], "https://gw/ogc/martin/p/a/{z}/{x}/{y}?token=tg_a%2Bb");
    }

    #[test]
    fn zooms_bounds_and_center_follow_the_fence() {
        // The fence: the north-east quarter of the world at zoom 1, maxZoom 6.
        let fence = Fence::new(Some(&[(1, 1, 0)]), Some(6)).unwrap();
        let doc = r#"{"minzoom":2,"maxzoom":14,"fillzoom":12,"bounds":[-10,-10,10,10],"center":[-5,-5,9]}"#;
        let out = run(doc, &view(Some(&fence), None));
        assert_eq!(
            (out["minzoom"].as_u64(), out["maxzoom"].as_u64(), out["fillzoom"].as_u64()),
            (Some(2), Some(6), Some(6))
        );
        assert_eq!(out["bounds"], serde_json::json!([0.0, 0.0, 10.0, 10.0]));
        assert_eq!(out["center"], serde_json::json!([5.0, 5.0, 6.0]));
        // A centre inside the fence is the middle of all the data: replaced too.
        let out = run(r#"{"bounds":[-10,-10,10,10],"center":[1,2,3]}"#, &view(Some(&fence), None));
        assert_eq!(out["center"], serde_json::json!([5.0, 5.0, 3.0]));
        let out = run(r#"{"bounds":[-10,-10,10,10],"center":[1,2,3]}"#, &view(None, None));
        assert_eq!(out["center"], serde_json::json!([1.0, 2.0, 3.0]), "kept without a fence");
    }

    #[test]
    fn disjoint_bounds_become_the_fence() {
        let fence = Fence::new(Some(&[(1, 1, 0)]), None).unwrap();
        let out = run(r#"{"bounds":[-20,-20,-10,-10]}"#, &view(Some(&fence), None));
        assert_eq!(out["bounds"][0], 0.0);
        assert_eq!(out["bounds"][2], 180.0);
    }

    #[test]
    fn vector_layers_are_trimmed_to_layers_and_fields() {
        let doc = r#"{"vector_layers":[{"id":"roads","fields":{"name":"String","owner":"String"},"maxzoom":20,"x":1},{"id":"pois","fields":{"name":"String"}}]}"#;
        let props = vec!["name".to_owned()];
        let layers = vec!["roads".to_owned()];
        let mut v = view(None, Some(&props));
        v.layers = Some(&layers);
        let out = run(doc, &v);
        assert_eq!(out["vector_layers"], serde_json::json!([{"id":"roads","fields":{"name":"String"},"maxzoom":20}]));
        let empty: Vec<String> = Vec::new();
        let out = run(doc, &view(None, Some(&empty)));
        assert_eq!(out["vector_layers"][1], serde_json::json!({"id":"pois","fields":{}}));
    }

    #[test]
    fn bad_documents_are_errors() {
        for doc in [
            "[]",
            r#"{"maxzoom":31}"#,
            r#"{"maxzoom":"3"}"#,
            r#"{"bounds":[1,2,3]}"#,
            r#"{"vector_layers":[{"fields":{}}]}"#,
            r#"{"name":"a","name":"b"}"#,
        ] {
            assert!(rewrite(doc.as_bytes(), &view(None, None)).is_err(), "{doc}");
        }
    }
}
