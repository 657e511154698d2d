//! martin (maplibre/martin) as an upstream: `/ogc/martin/{pathId}/…`.
//!
//! martin "leaves authentication to the reverse proxy"; this module is that proxy's
//! reading of martin's URL scheme. A path declares `[path.upstream] martin = "http://…"`
//! and names the martin **source ids** it covers in `layers` (the unit of coverage is
//! the source: every vector layer inside a covered source's tiles is covered).
//!
//! | gateway route (after `/ogc/martin/{pathId}`) | martin | operation | tier | extent | answer |
//! |---|---|---|---|---|---|
//! | `/{sources}/{z}/{x}/{y}[.pbf\|.mvt]` | `/{sources}/{z}/{x}/{y}` | `martin.tile` | view | the tile | MVT, filtered and clipped like `/ogc/mvt`; MLT only for an unrestricted token |
//! | `/{sources}` | `/{sources}` (TileJSON) | `martin.tilejson` | view | none | [`tilejson::rewrite`](super::tilejson::rewrite) for the token |
//! | `/catalog` | `/catalog` | `martin.catalog` | view | none | trimmed to covered sources, fonts and sprites (styles dropped) |
//! | `/font/{fontstack}/{start}-{end}` | same | `martin.font` | view | none | relayed |
//! | `/sprite/{id}[@2x].json\|png` | same | `martin.sprite` | view | none | relayed |
//!
//! `{sources}` is one source id or a composite `a,b` (martin merges the tiles): every
//! member must be covered by the path (the policy's layer check), members are unique.
//! Everything else martin serves (`/health`, `/metrics`, `/_/…`, `/style/…`, `/sdf_sprite/…`,
//! `/tiles/…`, the web UI, anything unknown) is refused for every token: the gateway
//! passes only what it reads. No query parameter passes unless the path's
//! `allow_params` lists it (martin hands the query to function sources).
//!
//! Pure code, like every classifier.

use http::Method;
use serde_json::{Map, Value};

use crate::paths::{PathConfig, Upstreams};
use crate::policy::{Extent, Obligations, Tier};
use crate::spatial::TileCoord;

use crate::ogc::capabilities::{CapabilitiesError, Rewrite};
use crate::ogc::common::geo::uint;
use crate::ogc::common::kvp::{Dialect, Kvp};
use crate::ogc::common::{bad, check_allowed, shown};
use crate::ogc::{Classified, Forward, ForwardBody, OgcError, OgcRequest, Parts, Protocol, ResponseKind, Service};

/// The martin service.
pub struct Martin;

/// The `Accept` sent to martin for a tile the gateway must read (fenced or
/// property-fenced tokens): MVT only, never MLT, which the gateway cannot filter.
pub const MVT_ACCEPT: &str = "application/vnd.mapbox-vector-tile, application/x-protobuf;q=0.9";

/// Names martin routes itself: no source id may be one of them.
const RESERVED: &[&str] = &["catalog", "health", "metrics", "font", "sprite", "sdf_sprite", "style", "tiles", "_"];

/// Checks a martin source id as a path's `layers` entry (config): letters, digits,
/// `-`, `_`, `.`, not starting with `.`, not a martin route name.
///
/// ```
/// use tilegate::ogc::martin::check_source_id;
/// assert!(check_source_id("roads_2024").is_ok());
/// assert!(check_source_id("a,b").is_err());
/// assert!(check_source_id("catalog").is_err());
/// ```
pub fn check_source_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.starts_with('.') {
        return Err("it is empty or starts with `.`");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err("use letters, digits, `-`, `_` and `.` only");
    }
    if RESERVED.contains(&id) {
        return Err("martin serves its own route under that name");
    }
    Ok(())
}

/// The `Accept` the gateway pins for a martin request, `None` to pass the client's:
/// JSON documents are asked for as JSON; a tile is asked for as MVT whenever the token
/// has a fence or a property fence (only an unrestricted token may negotiate MLT).
pub fn pinned_accept(kind: &ResponseKind, obligations: &Obligations) -> Option<&'static str> {
    match kind {
        ResponseKind::Mvt if obligations.properties.is_some() || obligations.fence.is_some() => Some(MVT_ACCEPT),
        ResponseKind::Mvt | ResponseKind::Other => None,
        _ => Some("application/json"),
    }
}

impl Service for Martin {
    fn endpoint(&self, upstream: &Upstreams, _rest: &str) -> Option<String> {
        upstream.martin.as_ref().map(|u| u.to_string())
    }

    fn classify(&self, req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
        classify(req, path)
    }

    fn rewrite_capabilities(&self, doc: &[u8], rw: &Rewrite<'_>) -> Option<Result<Vec<u8>, CapabilitiesError>> {
        Some(rewrite_catalog(doc, rw.layers))
    }
}

fn classify(req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
    if !matches!(*req.method, Method::GET | Method::HEAD) {
        return Err(OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "GET, HEAD" });
    }
    let segments: Vec<&str> = req.rest.strip_prefix('/').unwrap_or("").split('/').collect();
    let (name, layers, extent, response, forward_path) = match segments[..] {
        ["catalog"] => ("martin.catalog", Vec::new(), Extent::None, ResponseKind::Capabilities(Protocol::Martin), "/catalog".to_owned()),
        ["font", stack, range] if !stack.is_empty() && is_glyph_range(range) => {
            ("martin.font", Vec::new(), Extent::None, ResponseKind::Other, format!("/font/{stack}/{range}"))
        }
        ["sprite", file] if is_sprite_file(file) => {
            ("martin.sprite", Vec::new(), Extent::None, ResponseKind::Other, format!("/sprite/{file}"))
        }
        [sources] if !sources.is_empty() => {
            let members = members(sources)?;
            let tiles = format!("/{sources}/{{z}}/{{x}}/{{y}}");
            let kind = ResponseKind::TileJson { tiles, covers_layers: false };
            ("martin.tilejson", members, Extent::None, kind, format!("/{sources}"))
        }
        [sources, z, x, y] => {
            let members = members(sources)?;
            let y = y.strip_suffix(".pbf").or_else(|| y.strip_suffix(".mvt")).unwrap_or(y);
            let z = u32::try_from(uint(z, "z")?).map_err(|_| bad("z: too large"))?;
            let tile = TileCoord::new(z, uint(x, "x")?, uint(y, "y")?).map_err(|e| bad(e.to_string()))?;
            let at = format!("/{sources}/{}/{}/{}", tile.z(), tile.x(), tile.y());
            ("martin.tile", members, Extent::Tile(tile), ResponseKind::Mvt, at)
        }
        _ => {
            return Err(bad(format!(
                "`{}` is not served through the gateway; a martin path serves /{{sources}}, /{{sources}}/{{z}}/{{x}}/{{y}}, /catalog, /font/{{fontstack}}/{{start}}-{{end}} and /sprite/{{id}}.json|png",
                shown(req.rest)
            )))
        }
    };
    let kvp = Kvp::parse(req.query, Dialect::WMTS)?;
    check_allowed(&kvp, &[], &[], path, name)?;
    let parts = Parts::new(name, Tier::View, layers, extent, response);
    Ok(parts.into_classified(Forward { path: forward_path, query: kvp.encode(), body: ForwardBody::None }))
}

/// The members of `a,b`: each non-empty and given once (the policy checks coverage).
fn members(sources: &str) -> Result<Vec<String>, OgcError> {
    let mut out: Vec<String> = Vec::new();
    for m in sources.split(',') {
        if m.is_empty() {
            return Err(bad(format!("`{}`: a composite source is `a,b` with no empty member", shown(sources))));
        }
        if let Err(why) = check_source_id(m) {
            // martin's own routes (`/health`, `/metrics`, `/catalog`…) are never a source.
            return Err(bad(format!("`{}` is not a source id: {why}", shown(m))));
        }
        if out.iter().any(|o| o == m) {
            return Err(bad(format!("`{}`: source `{}` is named twice", shown(sources), shown(m))));
        }
        out.push(m.to_owned());
    }
    Ok(out)
}

/// `0-255`, `256-511`: two decimal numbers.
fn is_glyph_range(range: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    range.split_once('-').is_some_and(|(a, b)| digits(a) && digits(b))
}

/// `{id}.json`, `{id}.png`, `{id}@2x.json`, `{id}@2x.png` (`id` may be `a,b`: martin merges sprites).
fn is_sprite_file(file: &str) -> bool {
    let Some(stem) = file.strip_suffix(".json").or_else(|| file.strip_suffix(".png")) else { return false };
    let stem = stem.strip_suffix("@2x").unwrap_or(stem);
    !stem.is_empty()
        && !stem.starts_with('.')
        && stem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b',' | b'.'))
}

/// martin's `/catalog` trimmed to the covered sources: `tiles` keeps only covered
/// source ids (and of each entry `content_type`, `content_encoding`, `name`,
/// `description`), `sprites` and `fonts` are kept, everything else (`styles`, which the
/// gateway does not serve, anything unknown) is dropped.
///
/// ```
/// use tilegate::ogc::martin::rewrite_catalog;
/// let doc = br#"{"tiles":{"roads":{"content_type":"application/x-protobuf","x":1},"secret":{}},"styles":{"s":{}},"fonts":{}}"#;
/// let out = rewrite_catalog(doc, &["roads".to_owned()]).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), r#"{"fonts":{},"tiles":{"roads":{"content_type":"application/x-protobuf"}}}"#);
/// ```
pub fn rewrite_catalog(doc: &[u8], covered: &[String]) -> Result<Vec<u8>, CapabilitiesError> {
    let doc = crate::json::parse_strict(doc).map_err(CapabilitiesError::Json)?;
    let doc = doc.as_object().ok_or(CapabilitiesError::JsonRoot)?;
    let mut out = Map::new();
    if let Some(tiles) = doc.get("tiles").and_then(Value::as_object) {
        let kept: Map<String, Value> = tiles
            .iter()
            .filter(|(id, _)| covered.iter().any(|c| c == *id))
            .map(|(id, entry)| {
                let entry: Map<String, Value> = entry
                    .as_object()
                    .map(|e| {
                        e.iter()
                            .filter(|(k, v)| {
                                matches!(k.as_str(), "content_type" | "content_encoding" | "name" | "description")
                                    && v.is_string()
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                (id.clone(), Value::Object(entry))
            })
            .collect();
        out.insert("tiles".into(), Value::Object(kept));
    }
    for key in ["sprites", "fonts"] {
        if let Some(v @ Value::Object(_)) = doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    serde_json::to_vec(&Value::Object(out)).map_err(CapabilitiesError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::test_support::*;

    fn martin_path() -> PathConfig {
        let mut p = path();
        p.layers = vec!["roads".into(), "pois".into()];
        p
    }

    fn op(rest: &'static str) -> Result<Classified, OgcError> {
        crate::ogc::classify(&get(Protocol::Martin, rest, ""), &martin_path())
    }

    #[test]
    fn routes() {
        let c = op("/roads,pois/3/5/6").unwrap();
        assert_eq!(
            (c.op.name, c.op.layers.clone(), c.response.clone()),
            ("martin.tile", vec!["roads".to_owned(), "pois".to_owned()], ResponseKind::Mvt)
        );
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(3, 5, 6).unwrap()));
        assert_eq!(c.forward.path, "/roads,pois/3/5/6");
        assert_eq!(op("/roads/03/5/6.pbf").unwrap().forward.path, "/roads/3/5/6");
        let c = op("/roads").unwrap();
        assert_eq!(c.op.name, "martin.tilejson");
        assert_eq!(c.response, ResponseKind::TileJson { tiles: "/roads/{z}/{x}/{y}".into(), covers_layers: false });
        assert_eq!(op("/catalog").unwrap().response, ResponseKind::Capabilities(Protocol::Martin));
        assert_eq!(op("/font/Open Sans Bold/0-255").unwrap().op.name, "martin.font");
        for s in ["/sprite/icons.json", "/sprite/icons@2x.png", "/sprite/a,b.json"] {
            assert_eq!(op(s).unwrap().op.name, "martin.sprite", "{s}");
        }
        for c in [op("/roads/1/1/1").unwrap(), op("/catalog").unwrap(), op("/sprite/icons.png").unwrap()] {
            assert_eq!(c.op.tier, Tier::View);
        }
    }

    #[test]
    fn everything_else_martin_serves_is_refused() {
        for rest in [
            "",
            "/",
            "/health",
            "/metrics",
            "/_/metrics",
            "/style/basic",
            "/sdf_sprite/icons.json",
            "/tiles/roads/1/1/1",
            "/roads/1/1",
            "/roads/1/1/1/1",
            "/roads/1/2/0",
            "/roads/1/1/1.png",
            "/font/x/abc",
            "/sprite/icons.svg",
            "/sprite/..json",
            "/roads,,pois/1/1/1",
            "/roads,roads/1/1/1",
            "/,roads",
        ] {
            assert!(op(rest).is_err(), "{rest}");
        }
    }

    #[test]
    fn queries_need_allow_params_and_writes_are_405() {
        assert!(crate::ogc::classify(&get(Protocol::Martin, "/roads/1/1/1", "fn_arg=1"), &martin_path()).is_err());
        let mut req = get(Protocol::Martin, "/roads/1/1/1", "");
        req.method = &Method::POST;
        assert_eq!(crate::ogc::classify(&req, &martin_path()).unwrap_err().status(), 405);
    }

    #[test]
    fn only_unrestricted_tokens_negotiate() {
        let open = Obligations::default();
        assert_eq!(pinned_accept(&ResponseKind::Mvt, &open), None);
        let fenced = Obligations { properties: Some(vec!["name".to_owned()].into()), ..Obligations::default() };
        assert_eq!(pinned_accept(&ResponseKind::Mvt, &fenced), Some(MVT_ACCEPT));
        assert_eq!(pinned_accept(&ResponseKind::Capabilities(Protocol::Martin), &open), Some("application/json"));
    }

    #[test]
    fn catalog_keeps_only_covered_sources() {
        let doc = br#"{"tiles":{"roads":{"content_type":"application/x-protobuf","description":"r"},"secret":{"name":"s"}},
            "sprites":{"icons":{"images":["a"]}},"fonts":{"Open Sans":{}},"styles":{"st":{"path":"/etc/x"}},"other":1}"#;
        let out: Value = serde_json::from_slice(&rewrite_catalog(doc, &["roads".to_owned()]).unwrap()).unwrap();
        assert_eq!(out["tiles"].as_object().unwrap().keys().collect::<Vec<_>>(), ["roads"]);
        assert!(out.get("styles").is_none() && out.get("other").is_none());
        assert!(out["sprites"]["icons"].is_object());
        assert!(rewrite_catalog(b"[]", &[]).is_err());
    }
}
