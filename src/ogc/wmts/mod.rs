//! WMTS 1.0: KVP (GetCapabilities, GetTile, GetFeatureInfo) and RESTful
//! (`…/WMTSCapabilities.xml` and tiles through the upstream's ResourceURL template).
//!
//! | request | tier | layers | extent |
//! |---|---|---|---|
//! | GetCapabilities (KVP, `/1.0.0/WMTSCapabilities.xml`, `/WMTSCapabilities.xml`) | view | – | none |
//! | GetTile (KVP or REST) | view | LAYER | tile (Web Mercator sets) or foreign CRS |
//! | GetFeatureInfo (KVP) | viewPlus | LAYER | same as the tile |
//!
//! **REST template.** Servers disagree on the tile path: the OGC example and GeoServer
//! write `{TileMatrix}/{TileRow}/{TileCol}`, MapProxy `/{Layer}/{TileMatrixSet}/
//! {TileMatrix}/{TileCol}/{TileRow}.{Format}` (column first). Reading row and column the
//! wrong way round would judge another tile than the one served, so the template is a
//! per-path setting (proposed key `wmts_rest_template`, relative to the WMTS upstream
//! base), defaulting to [`DEFAULT_WMTS_REST_TEMPLATE`]. Placeholders are matched
//! case-insensitively; `Layer`, `TileMatrixSet`, `TileMatrix`, `TileRow` and `TileCol`
//! are required once each; any other placeholder (`{Time}`, `{Elevation}`, `{Style}`,
//! `{Format}`) is a dimension segment matched as an opaque non-empty value.
//! REST GetFeatureInfo is not supported (400). Pure code.

use http::Method;

use crate::paths::PathConfig;
use crate::policy::{Extent, Tier};

use crate::ogc::capabilities::{CapabilitiesError, Rewrite};
use crate::ogc::common::geo::uint;
use crate::ogc::common::kvp::{Dialect, Kvp};
use crate::ogc::common::{
    bad, check_allowed, decode_segment, rendered_format, request_name, shown, unsupported, Rendered,
};
use crate::ogc::tiles::matrix_tile_extent;
use crate::ogc::{
    AnswerCrs, Classified, DataFormat, Forward, ForwardBody, OgcError, OgcRequest, Parts, Protocol, ResponseKind,
};

pub mod capabilities;

#[cfg(test)]
mod agree_tests;

/// WMTS 1.0: KVP at the endpoint itself (`wmts`), RESTful capabilities and tiles below
/// it (`wmts_rest`, else `wmts`) in the path's `wmts_rest_template`.
pub struct Wmts;

impl Service for Wmts {
    fn endpoint(&self, upstream: &Upstreams, rest: &str) -> Option<String> {
        let rest_api = !matches!(rest, "" | "/");
        let base =
            if rest_api { upstream.wmts_rest.as_ref().or(upstream.wmts.as_ref()) } else { upstream.wmts.as_ref() };
        base.map(ToString::to_string)
    }

    fn classify(&self, req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
        if matches!(req.rest, "" | "/") {
            kvp_endpoint(req, path, |kvp| classify_kvp(kvp, path), None)
        } else {
            classify_rest(req, path)
        }
    }

    fn rewrite_capabilities(&self, doc: &[u8], rw: &Rewrite<'_>) -> Option<Result<Vec<u8>, CapabilitiesError>> {
        Some(capabilities::rewrite(doc, rw))
    }
}

use crate::ogc::{kvp_endpoint, Service};
use crate::paths::Upstreams;

/// The RESTful tile template used when the path sets none (the OGC WMTS 1.0 example form).
pub const DEFAULT_WMTS_REST_TEMPLATE: &str =
    "/{Layer}/{Style}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.{Format}";

const KNOWN: &[&str] = &["GetCapabilities", "GetTile", "GetFeatureInfo"];
/// OWS Common GetCapabilities parameters.
const CAPABILITIES: &[&str] = crate::ogc::common::OWS_CAPABILITIES;
const TILE: &[&str] = &[
    "SERVICE",
    "VERSION",
    "REQUEST",
    "LAYER",
    "STYLE",
    "FORMAT",
    "TILEMATRIXSET",
    "TILEMATRIX",
    "TILEROW",
    "TILECOL",
    "TIME",
    "ELEVATION",
];
const FEATURE_INFO: &[&str] = &[
    "SERVICE",
    "VERSION",
    "REQUEST",
    "LAYER",
    "STYLE",
    "FORMAT",
    "TILEMATRIXSET",
    "TILEMATRIX",
    "TILEROW",
    "TILECOL",
    "TIME",
    "ELEVATION",
    "I",
    "J",
    "INFOFORMAT",
];
const MATRIX_PARAMS: [&str; 3] = ["TILEMATRIX", "TILEROW", "TILECOL"];

fn classify_kvp(kvp: &Kvp, path: &PathConfig) -> Result<Parts, OgcError> {
    let request = request_name(kvp, "WMTS", KNOWN, &[])?;
    if request != "GetCapabilities" {
        if let Some(v) = kvp.get_nonempty("VERSION").filter(|v| *v != "1.0.0") {
            return Err(unsupported(format!("VERSION: WMTS `{}` is not supported; use 1.0.0", shown(v))));
        }
    }
    match request {
        "GetCapabilities" => {
            check_allowed(kvp, CAPABILITIES, &[], path, "wmts.GetCapabilities")?;
            Ok(Parts::new(
                "wmts.GetCapabilities",
                Tier::View,
                Vec::new(),
                Extent::None,
                ResponseKind::Capabilities(Protocol::Wmts),
            ))
        }
        "GetTile" => {
            check_allowed(kvp, TILE, &[], path, "wmts.GetTile")?;
            let (layer, extent) = tile_of(kvp, "wmts.GetTile", path)?;
            let response = tile_response(kvp.get_nonempty("FORMAT"), "FORMAT")?;
            Ok(Parts::new("wmts.GetTile", Tier::View, vec![layer], extent, response)
                .with_format(kvp.get_nonempty("FORMAT")))
        }
        _ => {
            let name = "wmts.GetFeatureInfo";
            check_allowed(kvp, FEATURE_INFO, &[], path, name)?;
            let (layer, extent) = tile_of(kvp, name, path)?;
            uint(kvp.require("I", name)?, "I")?;
            uint(kvp.require("J", name)?, "J")?;
            let info = kvp.require("INFOFORMAT", name)?;
            // The upstream answers in the tile matrix set's CRS (GeoServer's GWC and
            // MapProxy ask their WMS for the tile's box in it): metres for a Web
            // Mercator quad set, which is all a fenced token can ask for.
            let answer_crs =
                if matches!(extent, Extent::Tile(_)) { AnswerCrs::WebMercator } else { AnswerCrs::Unknown };
            Ok(Parts::new(
                name,
                Tier::ViewPlus,
                vec![layer],
                extent,
                ResponseKind::Features(DataFormat::from_media_type(info)),
            )
            // The tile's pixel size is not in the request, so the pixel cannot be
            // placed: a tile partly inside is answered with the features the GeoJSON
            // filter finds inside the fence (other formats are refused under a fence).
            .with_clippable(crate::policy::Clippable::FeaturesFiltered)
            .with_format(Some(info))
            .with_answer_crs(answer_crs))
        }
    }
}

fn tile_of(kvp: &Kvp, name: &str, path: &PathConfig) -> Result<(String, Extent), OgcError> {
    let layer = kvp.require("LAYER", name)?.to_owned();
    let extent = matrix_tile_extent(
        kvp.require("TILEMATRIXSET", name)?,
        kvp.require("TILEMATRIX", name)?,
        kvp.require("TILEROW", name)?,
        kvp.require("TILECOL", name)?,
        MATRIX_PARAMS,
        path,
    )?;
    Ok((layer, extent))
}

/// RESTful WMTS: capabilities documents and tiles through the path's template.
fn classify_rest(req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
    if !matches!(*req.method, Method::GET | Method::HEAD) {
        return Err(OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "GET, HEAD" });
    }
    let kvp = Kvp::parse(req.query, Dialect::WMTS)?;
    let forward = Forward { path: req.rest.to_owned(), query: kvp.encode(), body: ForwardBody::None };
    if matches!(req.rest, "/1.0.0/WMTSCapabilities.xml" | "/WMTSCapabilities.xml") {
        // OWSLib appends `?service=WMTS&request=GetCapabilities&version=1.0.0` to the
        // RESTful URL: parameters that merely restate what the URL is are accepted.
        restates(&kvp, &[("SERVICE", "WMTS"), ("REQUEST", "GetCapabilities"), ("VERSION", "1.0.0")])?;
        check_allowed(&kvp, &["SERVICE", "REQUEST", "VERSION"], &[], path, "wmts.GetCapabilities")?;
        let parts = Parts::new(
            "wmts.GetCapabilities",
            Tier::View,
            Vec::new(),
            Extent::None,
            ResponseKind::Capabilities(Protocol::Wmts),
        );
        return Ok(parts.into_classified(forward));
    }
    let template_text = path.wmts_rest_template.as_deref().unwrap_or(DEFAULT_WMTS_REST_TEMPLATE);
    let template = Template::parse(template_text)
        .map_err(|e| unsupported(format!("the path's WMTS REST template is invalid: {e}")))?;
    let values = template
        .matches(req.rest)
        .ok_or_else(|| bad(format!("`{}` is not a WMTS tile path; expected `{template_text}`", shown(req.rest))))?;
    // Only a `format` query (GeoServer's REST form) may accompany a tile.
    check_allowed(&kvp, &["FORMAT"], &[], path, "wmts.GetTile")?;
    let value =
        |name: &str| values.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v).unwrap_or_default();
    let layer = decode_segment(value("Layer"), "Layer")?;
    let set = decode_segment(value("TileMatrixSet"), "TileMatrixSet")?;
    let matrix = decode_segment(value("TileMatrix"), "TileMatrix")?;
    let extent = matrix_tile_extent(
        &set,
        &matrix,
        value("TileRow"),
        value("TileCol"),
        ["TileMatrix", "TileRow", "TileCol"],
        path,
    )?;
    let ext = values.iter().find(|(n, _)| n.eq_ignore_ascii_case("Format")).map(|(_, v)| *v);
    let query_format = kvp.get_nonempty("FORMAT");
    let response = tile_response(ext, "Format")?;
    if query_format.is_some() && tile_response(query_format, "FORMAT")? != response {
        return Err(bad("FORMAT: the query format and the path's extension disagree"));
    }
    let parts = Parts::new("wmts.GetTile", Tier::View, vec![layer], extent, response).with_format(query_format.or(ext));
    Ok(parts.into_classified(forward))
}

/// Refuses a parameter among `expected` whose value differs (case-insensitively) from
/// what the RESTful URL already says.
fn restates(kvp: &Kvp, expected: &[(&str, &str)]) -> Result<(), OgcError> {
    for (key, value) in expected {
        if let Some(v) = kvp.get(key) {
            if !v.eq_ignore_ascii_case(value) {
                return Err(bad(format!("{key}: `{}` contradicts the RESTful capabilities URL (`{value}`)", shown(v))));
            }
        }
    }
    Ok(())
}

/// The response of a tile in `format`: an image, or a vector tile to filter. Other
/// formats (GeoJSON, UTFGrid…) would hand raw attributes to a `view` token.
fn tile_response(format: Option<&str>, param: &str) -> Result<ResponseKind, OgcError> {
    Ok(match format.map(|f| rendered_format(f, param, "wmts.GetTile", true)).transpose()? {
        None | Some(Rendered::Image) => ResponseKind::Image,
        Some(Rendered::Mvt) => ResponseKind::Mvt,
    })
}

/// Checks a RESTful tile template as a config validator would; the error says what is wrong.
///
/// ```
/// use tilegate::ogc::{validate_rest_template, DEFAULT_WMTS_REST_TEMPLATE};
/// assert!(validate_rest_template(DEFAULT_WMTS_REST_TEMPLATE).is_ok());
/// // MapProxy's default: column before row, no style.
/// assert!(validate_rest_template("/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}").is_ok());
/// assert!(validate_rest_template("/{Layer}/{TileMatrix}/{TileRow}/{TileCol}.png").is_err()); // no TileMatrixSet
/// assert!(validate_rest_template("/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileRow}{TileCol}").is_err());
/// ```
pub fn validate_rest_template(template: &str) -> Result<(), String> {
    Template::parse(template).map(|_| ())
}

#[derive(Debug)]
enum Piece<'t> {
    Lit(&'t str),
    Var(&'t str),
}

/// Whether a tile `ResourceURL` template of the upstream's capabilities (`suffix`: its
/// part below the upstream REST base, placeholders in braces) is one the gateway's
/// `template` serves: same segments, and every placeholder of the upstream's lands on the
/// placeholder of the same name (`{TileCol}` where the gateway reads `TileRow` would
/// fetch the wrong tiles). Attacker round 5: with the default template, MapProxy's
/// `…/{TileCol}/{TileRow}.png` was advertised and every tile then answered 400.
pub(crate) fn serves_resource_template(template: &str, suffix: &str) -> bool {
    let Ok(template) = Template::parse(template) else { return false };
    let suffix = if suffix.starts_with('/') { suffix.to_owned() } else { format!("/{suffix}") };
    let path = suffix.split(['?', '#']).next().unwrap_or("");
    template.matches(path).is_some_and(|values| {
        values.iter().all(|(name, value)| match value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            Some(inner) => inner.eq_ignore_ascii_case(name),
            None => !value.contains(['{', '}']),
        })
    })
}

#[derive(Debug)]
struct Template<'t> {
    segments: Vec<Vec<Piece<'t>>>,
}

impl<'t> Template<'t> {
    fn parse(text: &'t str) -> Result<Template<'t>, String> {
        let body = text.strip_prefix('/').ok_or("the template must start with `/`")?;
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for segment in body.split('/') {
            if segment.is_empty() {
                return Err("the template has an empty segment".into());
            }
            let mut pieces = Vec::new();
            let mut rest = segment;
            while !rest.is_empty() {
                if let Some(after) = rest.strip_prefix('{') {
                    let (name, tail) = after.split_once('}').ok_or("a `{` is not closed")?;
                    if name.is_empty() || name.contains('{') {
                        return Err(format!("`{{{name}}}` is not a placeholder"));
                    }
                    if matches!(pieces.last(), Some(Piece::Var(_))) {
                        return Err(format!("`{{{name}}}` follows another placeholder with no text between them"));
                    }
                    if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                        return Err(format!("`{{{name}}}` appears twice"));
                    }
                    names.push(name);
                    pieces.push(Piece::Var(name));
                    rest = tail;
                } else {
                    let end = rest.find('{').unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if literal.contains('}') {
                        return Err(format!("`{literal}` has a `}}` without `{{`"));
                    }
                    pieces.push(Piece::Lit(literal));
                    rest = &rest[end..];
                }
            }
            segments.push(pieces);
        }
        for needed in ["Layer", "TileMatrixSet", "TileMatrix", "TileRow", "TileCol"] {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(needed)) {
                return Err(format!("the template has no `{{{needed}}}`"));
            }
        }
        Ok(Template { segments })
    }

    /// The placeholder values when `path` matches, raw (still percent-encoded).
    fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&'t str, &'p str)>> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (pieces, text) in self.segments.iter().zip(segments) {
            let mut rest = text;
            for (i, piece) in pieces.iter().enumerate() {
                match piece {
                    Piece::Lit(lit) => rest = rest.strip_prefix(lit)?,
                    Piece::Var(name) => {
                        let len = match pieces.get(i + 1) {
                            Some(Piece::Lit(next)) => rest.find(next)?,
                            _ => rest.len(),
                        };
                        if len == 0 {
                            return None;
                        }
                        values.push((*name, &rest[..len]));
                        rest = &rest[len..];
                    }
                }
            }
            if !rest.is_empty() {
                return None;
            }
        }
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::test_support::*;
    use crate::ogc::{OgcError, Protocol, ResponseKind};
    use crate::spatial::TileCoord;

    const OWSLIB_GETTILE: &str = "SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=roads&STYLE=default&TILEMATRIXSET=GoogleMapsCompatible&TILEMATRIX=3&TILEROW=2&TILECOL=5&FORMAT=image%2Fpng";

    #[test]
    fn owslib_gettile_is_a_tile() {
        let c = ok(Protocol::Wmts, OWSLIB_GETTILE);
        assert_eq!(c.op.name, "wmts.GetTile");
        assert_eq!(c.op.tier, Tier::View);
        assert_eq!(c.op.layers, vec!["roads"]);
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(3, 5, 2).unwrap()));
        assert_eq!(c.format.as_deref(), Some("image/png"));
    }

    #[test]
    fn geoserver_matrix_ids_and_foreign_sets() {
        let c = ok(
            Protocol::Wmts,
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=EPSG:900913&TILEMATRIX=EPSG:900913:04&TILEROW=1&TILECOL=15",
        );
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(4, 15, 1).unwrap()));
        let c = ok(
            Protocol::Wmts,
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=EPSG:4326&TILEMATRIX=EPSG:4326:4&TILEROW=1&TILECOL=31",
        );
        assert_eq!(c.op.extent, Extent::ForeignCrs);
        let p = PathConfig { webmercator_matrix_sets: vec!["GLOBAL_MERCATOR_NW".to_owned()], ..path() };
        let q = "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=GLOBAL_MERCATOR_NW&TILEMATRIX=01&TILEROW=1&TILECOL=0";
        let c = classify(&get(Protocol::Wmts, "", q), &p).unwrap();
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(1, 0, 1).unwrap()));
    }

    #[test]
    fn bad_gettiles() {
        for q in [
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=3&TILEROW=8&TILECOL=0",
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=x&TILEROW=0&TILECOL=0",
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=3&TILEROW=-1&TILECOL=0",
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=3&TILECOL=0",
            "REQUEST=GetTile&LAYERS=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=3&TILEROW=0&TILECOL=0",
            "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=3&TILEROW=0&TILECOL=0&LAYER=x",
            "REQUEST=GetTile&VERSION=2.0.0&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=3&TILEROW=0&TILECOL=0",
        ] {
            assert!(run(Protocol::Wmts, q).is_err(), "{q}");
        }
    }

    #[test]
    fn wmts_getfeatureinfo_is_view_plus() {
        let c = ok(
            Protocol::Wmts,
            "SERVICE=WMTS&REQUEST=GetFeatureInfo&VERSION=1.0.0&LAYER=roads&STYLE=default&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=1&TILEROW=0&TILECOL=1&FORMAT=image/png&I=3&J=4&INFOFORMAT=application/json",
        );
        assert_eq!((c.op.name, c.op.tier), ("wmts.GetFeatureInfo", Tier::ViewPlus));
        assert_eq!(c.response, ResponseKind::Features(DataFormat::Json));
        assert!(run(
            Protocol::Wmts,
            "REQUEST=GetFeatureInfo&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=1&TILEROW=0&TILECOL=1&I=3&J=4"
        )
        .is_err());
    }

    #[test]
    fn wmts_capabilities_kvp_and_rest() {
        let c = ok(Protocol::Wmts, "SERVICE=WMTS&REQUEST=GetCapabilities");
        assert_eq!(c.response, ResponseKind::Capabilities(Protocol::Wmts));
        for rest in ["/1.0.0/WMTSCapabilities.xml", "/WMTSCapabilities.xml"] {
            let c = classify(&get(Protocol::Wmts, rest, ""), &path()).unwrap();
            assert_eq!((c.op.name, c.op.extent), ("wmts.GetCapabilities", Extent::None));
            assert_eq!(c.forward.path, rest);
        }
    }

    fn classify(req: &OgcRequest<'_>, p: &PathConfig) -> Result<Classified, OgcError> {
        super::super::classify(req, p)
    }

    #[test]
    fn rest_tile_with_the_default_template() {
        let c = classify(&get(Protocol::Wmts, "/roads/default/WebMercatorQuad/3/2/5.png", ""), &path()).unwrap();
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(3, 5, 2).unwrap()));
        assert_eq!(c.op.layers, vec!["roads"]);
        assert_eq!(c.format.as_deref(), Some("png"));
        assert_eq!(c.forward.path, "/roads/default/WebMercatorQuad/3/2/5.png");
        // GeoServer style: format in the query.
        let c = classify(
            &get(Protocol::Wmts, "/roads/default/EPSG:900913/EPSG:900913:3/2/5.png", "format=image/png"),
            &path(),
        )
        .unwrap();
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(3, 5, 2).unwrap()));
        assert_eq!(c.forward.query, "format=image/png");
        // Encoded names are decoded for judging, forwarded as received.
        let c = classify(&get(Protocol::Wmts, "/ns%3Aroads/default/WebMercatorQuad/0/0/0.png", ""), &path()).unwrap();
        assert_eq!(c.op.layers, vec!["ns:roads"]);
        assert_eq!(c.forward.path, "/ns%3Aroads/default/WebMercatorQuad/0/0/0.png");
        for rest in [
            "/roads/WebMercatorQuad/3/2/5.png",
            "/roads/default/WebMercatorQuad/3/2/5",
            "/roads/default/WebMercatorQuad/3/2/.png",
            "/roads/default/WebMercatorQuad/3/9/5.png",
            "/roads/default/WebMercatorQuad/3/2/5.png/x",
        ] {
            assert!(classify(&get(Protocol::Wmts, rest, ""), &path()).is_err(), "{rest}");
        }
        assert!(classify(&get(Protocol::Wmts, "/roads/default/WebMercatorQuad/3/2/5.png", "cql_filter=x"), &path())
            .is_err());
    }

    /// The same URL under MapProxy's template (column before row) is another tile.
    #[test]
    fn rest_tile_with_mapproxys_template_swaps_row_and_col() {
        let p = PathConfig {
            wmts_rest_template: Some("/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}".into()),
            ..path()
        };
        let c = classify(&get(Protocol::Wmts, "/roads/GLOBAL_WEBMERCATOR/03/5/2.png", ""), &p).unwrap();
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(3, 5, 2).unwrap()));
        // The default (6 segments) does not match MapProxy's 5-segment URL at all.
        assert!(classify(&get(Protocol::Wmts, "/roads/GLOBAL_WEBMERCATOR/03/5/2.png", ""), &path()).is_err());
    }

    #[test]
    fn rest_dimension_segments_are_tolerated_when_templated() {
        let p = PathConfig {
            wmts_rest_template: Some(
                "/{Layer}/{Style}/{Time}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.png".into(),
            ),
            ..path()
        };
        let c = classify(&get(Protocol::Wmts, "/roads/default/2024-01-01/WebMercatorQuad/1/1/0.png", ""), &p).unwrap();
        assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(1, 0, 1).unwrap()));
        assert!(classify(&get(Protocol::Wmts, "/roads/default/WebMercatorQuad/1/1/0.png", ""), &p).is_err());
    }

    #[test]
    fn rest_post_is_405() {
        let mut req = get(Protocol::Wmts, "/1.0.0/WMTSCapabilities.xml", "");
        req.method = &Method::POST;
        assert_eq!(classify(&req, &path()).unwrap_err().status(), 405);
        let mut req = get(Protocol::Wmts, "", "REQUEST=GetCapabilities");
        req.method = &Method::POST;
        assert_eq!(classify(&req, &path()).unwrap_err().status(), 405);
    }

    #[test]
    fn templates() {
        for bad in [
            "",
            "{Layer}",
            "/{Layer}//{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}",
            "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}/{layer}",
            "/{Layer/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}",
            "/{}/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}",
            "/x}/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}",
        ] {
            assert!(validate_rest_template(bad).is_err(), "{bad}");
        }
        let t =
            Template::parse("/tile/1.0.0/{layer}/{style}/{tilematrixset}/{tilematrix}/{tilerow}/{tilecol}").unwrap();
        let v = t.matches("/tile/1.0.0/a/b/c/d/1/2").unwrap();
        assert_eq!(v.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec!["a", "b", "c", "d", "1", "2"]);
        assert!(t.matches("/tile/1.0.1/a/b/c/d/1/2").is_none());
    }

    #[test]
    fn tile_formats_other_than_images_and_vector_tiles_are_refused() {
        let base = "REQUEST=GetTile&LAYER=roads&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=0&TILEROW=0&TILECOL=0";
        let c = ok(Protocol::Wmts, format!("{base}&FORMAT=application/vnd.mapbox-vector-tile").leak());
        assert_eq!(c.response, ResponseKind::Mvt);
        assert_eq!(ok(Protocol::Wmts, format!("{base}&FORMAT=image/jpeg").leak()).response, ResponseKind::Image);
        for format in ["application/json;type=geojson", "application/json;type=utfgrid", "text/html"] {
            assert!(run(Protocol::Wmts, format!("{base}&FORMAT={format}").leak()).is_err(), "{format}");
        }
        let c = classify(&get(Protocol::Wmts, "/roads/default/WebMercatorQuad/0/0/0.pbf", ""), &path()).unwrap();
        assert_eq!(c.response, ResponseKind::Mvt);
        assert!(classify(&get(Protocol::Wmts, "/roads/default/WebMercatorQuad/0/0/0.geojson", ""), &path()).is_err());
        assert!(classify(
            &get(
                Protocol::Wmts,
                "/roads/default/WebMercatorQuad/0/0/0.png",
                "format=application/vnd.mapbox-vector-tile"
            ),
            &path()
        )
        .is_err());
    }

    /// Regression (OWSLib on the RESTful capabilities URL): parameters that restate
    /// what the URL is were a 400; parameters that contradict it still are.
    #[test]
    fn rest_capabilities_accept_parameters_that_restate_the_url() {
        let c = classify(
            &get(Protocol::Wmts, "/1.0.0/WMTSCapabilities.xml", "service=WMTS&request=GetCapabilities&version=1.0.0"),
            &path(),
        )
        .unwrap();
        assert_eq!(c.op.name, "wmts.GetCapabilities");
        for q in ["service=WMS", "request=GetTile", "version=2.0.0", "foo=1"] {
            assert!(classify(&get(Protocol::Wmts, "/1.0.0/WMTSCapabilities.xml", q), &path()).is_err(), "{q}");
        }
    }
}
