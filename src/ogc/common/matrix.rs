//! The one table of Web Mercator quad tile matrix sets and the one matrix-id → zoom
//! parser. The WMTS and OGC API Tiles classifiers map tiles with them, and the WMTS
//! capabilities rewriter decides with them which sets get `TileMatrixSetLimits`, so
//! what is enforced and what is advertised cannot drift apart.
//!
//! Pure code.

/// Tile matrix set identifiers always taken as the Web Mercator quad tree with
/// 256-pixel tiles, matrix `n` = zoom `n`, rows counted from the north: the OGC names,
/// the EPSG codes, and MapProxy's `GLOBAL_WEBMERCATOR`. Compared ASCII
/// case-insensitively. Paths add more with `webmercator_matrix_sets` (compared exactly).
pub const WEB_MERCATOR_QUAD_SETS: &[&str] =
    &["GoogleMapsCompatible", "WebMercatorQuad", "EPSG:3857", "EPSG:900913", "GLOBAL_WEBMERCATOR"];

/// The deepest zoom a quad matrix id may name (tile indices stay within `u32`).
pub const MAX_QUAD_ZOOM: u8 = 30;

/// True when `set` is a Web Mercator quad set: one of [`WEB_MERCATOR_QUAD_SETS`] (any
/// case) or one the path lists in `webmercator_matrix_sets` (exactly).
///
/// ```
/// use tilegate::ogc::common::matrix::is_quad_set;
/// assert!(is_quad_set("GLOBAL_WEBMERCATOR", &[]));
/// assert!(is_quad_set("webmercatorquad", &[]));
/// assert!(is_quad_set("osm_grid", &["osm_grid".to_string()]));
/// assert!(!is_quad_set("OSM_GRID", &["osm_grid".to_string()]));
/// assert!(!is_quad_set("EPSG:4326", &[]));
/// ```
pub fn is_quad_set(set: &str, extra: &[String]) -> bool {
    WEB_MERCATOR_QUAD_SETS.iter().any(|s| s.eq_ignore_ascii_case(set)) || extra.iter().any(|s| s == set)
}

/// The zoom a matrix identifier of `set` names: plain digits (`5`, `05`), or the set's
/// own identifier, a `:`, and digits (`EPSG:3857:5` in set `EPSG:3857`, GeoServer's
/// style). Anything else names no zoom: `foo:3` in set `EPSG:3857` is not zoom 3.
///
/// ```
/// use tilegate::ogc::common::matrix::matrix_zoom;
/// assert_eq!(matrix_zoom("GoogleMapsCompatible", "05"), Some(5));
/// assert_eq!(matrix_zoom("EPSG:3857", "EPSG:3857:12"), Some(12));
/// assert_eq!(matrix_zoom("EPSG:900913", "epsg:900913:3"), Some(3));
/// assert_eq!(matrix_zoom("EPSG:3857", "foo:3"), None);
/// assert_eq!(matrix_zoom("EPSG:3857", "level-a"), None);
/// assert_eq!(matrix_zoom("EPSG:3857", "31"), None);
/// assert_eq!(matrix_zoom("EPSG:3857", "+3"), None);
/// ```
pub fn matrix_zoom(set: &str, matrix: &str) -> Option<u8> {
    let digits = match matrix.rsplit_once(':') {
        None => matrix,
        Some((prefix, digits)) if prefix.eq_ignore_ascii_case(set) => digits,
        Some(_) => return None,
    };
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|z| *z <= MAX_QUAD_ZOOM)
}
