//! What every OGC protocol module shares: the error shorthands, the KVP allowlist
//! check, operation-name matching, list splitting, rendered-format checks and XML
//! property names. The protocol modules (`wms`, `wmts`, `wfs`, `wcs`, `api`, `tiles`)
//! hold each protocol's own facts; anything two of them need lives here once.
//!
//! | module | owns |
//! |---|---|
//! | [`kvp`] | KVP parsing: case-insensitive names, aliases, duplicates refused, re-encoding |
//! | [`percent`] | the one strict percent decoder |
//! | [`xml`] | the one hardened XML reader and tree (capabilities, bodies) |
//! | [`matrix`] | the Web Mercator quad matrix-set table and matrix-id → zoom parser |
//! | [`geo`] | numbers, bounding boxes and CRS names in requests |
//! | [`expr`] | filter expressions: FES, CQL/ECQL, CQL2 text and JSON |
//! | [`rel`] | link relations: the one reader of a link's `rel` (paging, leading away) |
//!
//! Pure code: no I/O, no clocks, no logging.

pub mod expr;
pub mod geo;
pub mod kvp;
pub mod matrix;
pub mod percent;
pub mod rel;
pub mod xml;

use crate::paths::PathConfig;

use super::{DataFormat, OgcError};
use kvp::Kvp;

/// The GetCapabilities parameters of OWS Common (WMTS, WFS 1.1+/2.0, WCS 2.0).
pub(crate) const OWS_CAPABILITIES: &[&str] = &[
    "SERVICE",
    "VERSION",
    "REQUEST",
    "ACCEPTVERSIONS",
    "SECTIONS",
    "UPDATESEQUENCE",
    "ACCEPTFORMATS",
    "ACCEPTLANGUAGES",
];

/// Shorthand for a 400.
pub(crate) fn bad(message: impl Into<String>) -> OgcError {
    OgcError::BadRequest(message.into())
}

/// Shorthand for an unsupported-request 400.
pub(crate) fn unsupported(message: impl Into<String>) -> OgcError {
    OgcError::NotSupported(message.into())
}

/// A value shortened for an error message (values are user input and may be long).
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// The lower-cased media type without parameters (`""` when absent).
pub(crate) fn media_essence(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The canonical name of a KVP `REQUEST` value among `known` (matched ASCII
/// case-insensitively). `refused` lists real operations the gateway does not pass.
pub(crate) fn request_name(
    kvp: &Kvp,
    service: &str,
    known: &[&'static str],
    refused: &[(&str, &str)],
) -> Result<&'static str, OgcError> {
    let request = kvp
        .get_nonempty("REQUEST")
        .ok_or_else(|| bad(format!("REQUEST is required; {service} requests: {}", known.join(", "))))?;
    if let Some(name) = known.iter().find(|k| k.eq_ignore_ascii_case(request)) {
        return Ok(name);
    }
    if let Some((name, why)) = refused.iter().find(|(k, _)| k.eq_ignore_ascii_case(request)) {
        return Err(unsupported(format!("{service} {name} is not supported by the gateway: {why}")));
    }
    Err(bad(format!(
        "REQUEST: `{}` is not a {service} request the gateway knows; known: {}",
        shown(request),
        known.join(", ")
    )))
}

/// Parameters that read or filter data (or make the upstream fetch URLs) and are only
/// passed when the path's `allow_params` names them.
const DATA_READING: &[&str] = &[
    "CQL_FILTER",
    "FILTER",
    "VIEWPARAMS",
    "ENV",
    "SLD",
    "SLD_BODY",
    "FEATUREID",
    "RESOURCEID",
    "STOREDQUERY_ID",
    "RESOLVE",
    "MAP",
    "FORMAT_OPTIONS",
    "SORTBY",
    "PROPERTYNAME",
];

/// Refuses any pair whose name is not allowed for this operation: in `allowed`, starting
/// with one of `prefixes`, or listed in the path's `allow_params`.
pub(crate) fn check_allowed(
    kvp: &Kvp,
    allowed: &[&str],
    prefixes: &[&str],
    path: &PathConfig,
    op_name: &str,
) -> Result<(), OgcError> {
    for pair in kvp.pairs() {
        let key = pair.key();
        if allowed.contains(&key)
            || prefixes.iter().any(|p| key.starts_with(p))
            || path_allows(path, key)
            || path_allows(path, &pair.name().to_ascii_uppercase())
        {
            continue;
        }
        let hint = match key {
            "NAMESPACES" => {
                "it rebinds type name prefixes to namespaces the gateway cannot check, and is refused unless the path's `allow_params` lists it"
            }
            k if DATA_READING.contains(&k) => {
                "it can read or filter data and is refused unless the path's `allow_params` lists it"
            }
            _ => "not in the operation's parameters and not in the path's `allow_params`",
        };
        return Err(bad(format!("parameter `{}` is not allowed for {op_name}: {hint}", pair.name())));
    }
    Ok(())
}

/// True when the path's `allow_params` lists this (upper-case) name.
pub(crate) fn path_allows(path: &PathConfig, upper: &str) -> bool {
    path.allow_params.iter().any(|a| a.eq_ignore_ascii_case(upper))
}

/// Splits a comma list of layer-like names; empty items are an error.
pub(crate) fn name_list(value: &str, param: &str) -> Result<Vec<String>, OgcError> {
    value
        .split(',')
        .map(|n| {
            if n.is_empty() {
                Err(bad(format!("{param}: `{}` has an empty name", shown(value))))
            } else {
                Ok(n.to_owned())
            }
        })
        .collect()
}

/// Refuses a name list that names one name twice, in any case (attacker rounds 10 and
/// 10b: QGIS Server answers every repeat of a WFS type name, and draws every repeat of a
/// WMS layer, in full; and a name in another case is another layer to some servers and
/// the same to others), or more than `most` names.
pub(crate) fn distinct_names(names: &[String], most: usize, param: &str) -> Result<(), OgcError> {
    // The count first: the pairwise check is quadratic (30,000 names fit in a URL).
    if names.len() > most {
        return Err(bad(format!("{param}: more than {most} names; send them in several requests")));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(bad(format!("{param}: `{}` is named twice", shown(name))));
        }
    }
    Ok(())
}

/// Splits a WFS 2.0 parenthesised list `(a,b)(c)` into its groups; a value without a
/// leading `(` is one group.
///
/// Unbalanced or nested parentheses are an error.
pub(crate) fn paren_groups<'v>(value: &'v str, param: &str) -> Result<Vec<&'v str>, OgcError> {
    if !value.starts_with('(') {
        if value.contains(['(', ')']) {
            return Err(bad(format!("{param}: unbalanced parentheses in `{}`", shown(value))));
        }
        return Ok(vec![value]);
    }
    let mut groups = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .filter(|(g, _)| !g.contains('('))
            .ok_or_else(|| bad(format!("{param}: unbalanced parentheses in `{}`", shown(value))))?;
        groups.push(inner.0);
        rest = inner.1;
    }
    Ok(groups)
}

/// What a rendering operation (WMS GetMap/GetLegendGraphic, WMTS GetTile, map tiles)
/// may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rendered {
    Image,
    Mvt,
}

/// Raster image subtypes (`image/<subtype>`) and bare format keywords a rendering
/// operation may return. Vector image formats (SVG, PDF) carry the features' geometry
/// and often their attributes, so they count as data, not as rendered output.
const RASTER_SUBTYPES: &[&str] = &[
    "png",
    "png8",
    "png24",
    "png32",
    "jpeg",
    "jpg",
    "gif",
    "webp",
    "tiff",
    "tif",
    "geotiff",
    "bmp",
    "vnd.jpeg-png",
    "vnd.jpeg-png8",
];

/// Checks that a rendering operation asks for a raster image or, when `allow_mvt`, a
/// vector tile. The media type is parsed exactly (`type/subtype` tokens, then
/// `;`-separated `name=value` parameters): `image/../application/json` and
/// `image/svg+xml` are not images. Servers also render GeoJSON, UTFGrid, KML, SVG, PDF
/// or vector tiles through GetMap/GetTile, which would hand raw attributes to a `view`
/// token; those formats are refused.
///
/// ```text
/// image/png, image/png; mode=8bit, IMAGE/JPEG, png8 → image
/// image/svg+xml, application/pdf, image/../application/json, image/png/x → refused
/// ```
pub(crate) fn rendered_format(format: &str, param: &str, op_name: &str, allow_mvt: bool) -> Result<Rendered, OgcError> {
    let lower = format.trim().to_ascii_lowercase();
    if is_raster_image(&lower) {
        return Ok(Rendered::Image);
    }
    if allow_mvt && DataFormat::from_media_type(&lower) == DataFormat::Mvt {
        return Ok(Rendered::Mvt);
    }
    let what = if allow_mvt { "a raster image or vector tile" } else { "a raster image" };
    Err(bad(format!("{param}: `{}` is not {what} format; {op_name} serves rendered output only", shown(format))))
}

/// True for `image/<raster subtype>` with well-formed parameters, or a bare raster keyword.
fn is_raster_image(lower: &str) -> bool {
    let mut parts = lower.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let params_ok = parts.all(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = v.trim().trim_matches('"');
        is_token(k.trim()) && !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:+".contains(&b))
    });
    let subtype = match essence.split_once('/') {
        Some(("image", sub)) => sub,
        Some(_) => return false,
        None => essence,
    };
    params_ok && RASTER_SUBTYPES.contains(&subtype)
}

/// An RFC 9110 token (media type and parameter names).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Strictly percent-decodes one path segment that names something (layer, collection,
/// matrix set, feature id): see [`percent::decode_name`].
pub(crate) fn decode_segment(segment: &str, what: &str) -> Result<String, OgcError> {
    percent::decode_name(segment)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| bad(format!("{what}: `{}` is not a valid name ({e})", shown(segment))))
}

/// A WFS/FES property reference reduced to the property name: one namespace prefix is
/// dropped (`topp:NAME` → `NAME`); XPath steps, attributes and predicates are refused,
/// because the gateway cannot judge what they reach.
///
/// ```text
/// "NAME" → NAME; "topp:NAME" → NAME; "a/b", "@gml:id", "a[1]" → refused
/// ```
pub(crate) fn xml_property(raw: &str, param: &str) -> Result<String, OgcError> {
    let name = raw.trim();
    let local = match name.split_once(':') {
        Some((prefix, local)) if is_ncname(prefix) => local,
        _ => name,
    };
    if !is_ncname(local) {
        return Err(bad(format!(
            "{param}: `{}` is not a plain property name; the gateway cannot judge XPath expressions",
            shown(raw)
        )));
    }
    Ok(local.to_owned())
}

fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod format_tests {
    use super::*;

    /// Regression: `FORMAT` was a prefix match, so `image/../application/json` and
    /// `image/svg+xml` (vector output with the features' geometry) passed as images.
    #[test]
    fn rendered_formats_are_parsed_exactly() {
        for ok in ["image/png", "image/png; mode=8bit", "IMAGE/JPEG", "png8", "image/vnd.jpeg-png", "image/webp"] {
            assert_eq!(rendered_format(ok, "FORMAT", "wms.GetMap", false).unwrap(), Rendered::Image, "{ok}");
        }
        for refused in [
            "image/svg+xml",
            "image/svg",
            "application/pdf",
            "image/../application/json",
            "image/png/x",
            "image/png;",
            "image/png; a=<b>",
            "image/",
            "image/x-anything",
            "application/json",
            "text/html",
        ] {
            assert!(rendered_format(refused, "FORMAT", "wms.GetMap", false).is_err(), "{refused}");
        }
        assert_eq!(
            rendered_format("application/vnd.mapbox-vector-tile", "FORMAT", "wmts.GetTile", true).unwrap(),
            Rendered::Mvt
        );
    }
}
