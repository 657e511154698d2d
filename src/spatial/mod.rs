//! Tile and bounding-box geometry: tile coordinates, CRSs, and the tile geofence.
//!
//! Pure code: no I/O, no clocks, no logging. The policy stage asks a [`Fence`]
//! whether a tile or a bounding box lies inside it; the token API asks whether one
//! fence lies inside another (delegation may only narrow).

mod clip;
mod fence;
mod mercator;
mod tile;
mod union;

pub use clip::{ClipArea, PixelMask, TileRects};
pub use fence::{Fence, FenceDenial, FenceError, FenceParts, Overlap, EDGE_TOLERANCE, MAX_FENCE_TILES, ZOOM_TOLERANCE};
pub use mercator::{mercator_from_lonlat, MAX_MERCATOR_LAT};
pub use tile::{TileCoord, TileError, MAX_FENCE_ZOOM, MAX_TILE_ZOOM};

/// A coordinate reference system the gateway can reason about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Crs {
    /// WGS 84 geographic degrees; in a [`BBox`] always x = longitude, y = latitude.
    Wgs84,
    /// Web Mercator (EPSG:3857, EPSG:900913) metres.
    WebMercator,
}

/// The axis order in which an identifier's coordinates are written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisOrder {
    /// Easting/longitude first.
    XY,
    /// Northing/latitude first (EPSG:4326 under WMS 1.3.0 and URN forms).
    YX,
}

/// A bounding box, always stored x-first (longitude or easting first), whatever
/// the order it arrived in. For [`Crs::Wgs84`] `min_x > max_x` means the box
/// crosses the antimeridian; in every other case `min <= max` holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub crs: Crs,
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

/// The coordinates the answer's geometries are written in, as the request asked for
/// them (OGC API `crs`, WFS `SRSNAME`). The geometry filter reads the answer in this
/// order; a fenced token's request for anything else is refused (`unsupported_crs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnswerCrs {
    /// Longitude, latitude (RFC 7946 GeoJSON, CRS84, the default).
    #[default]
    LonLat,
    /// Latitude, longitude (EPSG:4326 in its authority's axis order: pygeoapi with
    /// `crs=…/EPSG/0/4326`, WFS with a URN `SRSNAME`).
    LatLon,
    /// EPSG:3857 easting, northing in metres.
    WebMercator,
    /// A CRS or axis order the gateway cannot read.
    Unknown,
}

impl AnswerCrs {
    /// The answer CRS a CRS identifier names, with the identifier's axis order.
    pub fn from_crs(resolved: Option<(Crs, AxisOrder)>) -> AnswerCrs {
        match resolved {
            Some((Crs::Wgs84, AxisOrder::XY)) => AnswerCrs::LonLat,
            Some((Crs::Wgs84, AxisOrder::YX)) => AnswerCrs::LatLon,
            Some((Crs::WebMercator, _)) => AnswerCrs::WebMercator,
            None => AnswerCrs::Unknown,
        }
    }
}

/// True when `srs` names OGC CRS84 (`CRS:84`, its URN or URI, any case), which every
/// server writes longitude first.
pub fn names_crs84(srs: &str) -> bool {
    let lower = srs.trim().to_ascii_lowercase();
    lower.contains("crs84") || lower == "crs:84"
}

/// EPSG:3857 easting and northing in metres to longitude and latitude in degrees.
///
/// ```
/// use tilegate::spatial::lonlat_from_mercator;
/// let (lon, lat) = lonlat_from_mercator(20_037_508.342_789_244, 0.0);
/// assert!((lon - 180.0).abs() < 1e-9 && lat.abs() < 1e-9);
/// ```
pub fn lonlat_from_mercator(x: f64, y: f64) -> (f64, f64) {
    (
        mercator::lon_from_unit_x(mercator::unit_x_from_easting(x)),
        mercator::lat_from_unit_y(mercator::unit_y_from_northing(y)),
    )
}

/// Recognizes a CRS identifier and the axis order its authority defines for it.
///
/// Accepts `EPSG:code`, the OGC URNs (`urn:ogc:def:crs:EPSG:[version]:code`, also
/// `urn:x-ogc:`), the OGC http(s) URIs (`http://www.opengis.net/def/crs/EPSG/0/code`),
/// the old GML `…/epsg.xml#code` form, and the CRS84 spellings; case-insensitive,
/// surrounding whitespace ignored. Only WGS 84 geographic and Web Mercator are known.
/// Protocol rules (WMS 1.1.1 is always x,y; WMS 1.3.0 follows the authority) are
/// applied by the OGC classifiers on top of this.
///
/// ```
/// use tilegate::spatial::{crs_from_identifier, AxisOrder, Crs};
/// assert_eq!(crs_from_identifier("EPSG:4326"), Some((Crs::Wgs84, AxisOrder::YX)));
/// assert_eq!(crs_from_identifier("CRS:84"), Some((Crs::Wgs84, AxisOrder::XY)));
/// assert_eq!(crs_from_identifier("epsg:3857"), Some((Crs::WebMercator, AxisOrder::XY)));
/// assert_eq!(
///     crs_from_identifier("urn:ogc:def:crs:EPSG:6.3:4326"),
///     Some((Crs::Wgs84, AxisOrder::YX))
/// );
/// assert_eq!(
///     crs_from_identifier("http://www.opengis.net/def/crs/OGC/1.3/CRS84"),
///     Some((Crs::Wgs84, AxisOrder::XY))
/// );
/// assert_eq!(
///     crs_from_identifier("http://www.opengis.net/gml/srs/epsg.xml#4326"),
///     Some((Crs::Wgs84, AxisOrder::XY))
/// );
/// assert_eq!(crs_from_identifier("EPSG:27700"), None);
/// assert_eq!(crs_from_identifier("EPSG:43260"), None);
/// ```
pub fn crs_from_identifier(id: &str) -> Option<(Crs, AxisOrder)> {
    let lower = id.trim().to_ascii_lowercase();
    let id = lower.as_str();
    if let Some(code) = id.strip_prefix("epsg:") {
        return epsg(code);
    }
    // The old GML form is written longitude first by every server in use.
    if let Some(code) = id.strip_prefix("http://www.opengis.net/gml/srs/epsg.xml#") {
        return match epsg(code)? {
            (Crs::Wgs84, _) => Some((Crs::Wgs84, AxisOrder::XY)),
            known => Some(known),
        };
    }
    if matches!(id, "crs:84" | "ogc:crs84") {
        return Some((Crs::Wgs84, AxisOrder::XY));
    }
    // urn:ogc:def:crs:{authority}:{version}:{code}, version possibly empty.
    let urn = id.strip_prefix("urn:ogc:def:crs:").or_else(|| id.strip_prefix("urn:x-ogc:def:crs:"));
    if let Some(rest) = urn {
        let (authority, rest) = rest.split_once(':')?;
        let (version, code) = rest.rsplit_once(':').unwrap_or(("", rest));
        return authority_code(authority, version, code);
    }
    // http(s)://www.opengis.net/def/crs/{authority}/{version}/{code}
    let uri = id
        .strip_prefix("http://www.opengis.net/def/crs/")
        .or_else(|| id.strip_prefix("https://www.opengis.net/def/crs/"));
    if let Some(rest) = uri {
        let mut parts = rest.split('/');
        return match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(authority), Some(version), Some(code), None) => authority_code(authority, version, code),
            _ => None,
        };
    }
    None
}

fn authority_code(authority: &str, version: &str, code: &str) -> Option<(Crs, AxisOrder)> {
    if !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    match (authority, code) {
        ("epsg", code) => epsg(code),
        ("ogc", "crs84" | "84") => Some((Crs::Wgs84, AxisOrder::XY)),
        _ => None,
    }
}

/// An EPSG code (lowercased, no prefix) with the axis order of the EPSG database.
fn epsg(code: &str) -> Option<(Crs, AxisOrder)> {
    match code {
        "4326" => Some((Crs::Wgs84, AxisOrder::YX)),
        // 3785 is the deprecated code and 900913 the unofficial one for 3857;
        // 102100 and 102113 are the Esri codes that ArcGIS clients send as EPSG.
        "3857" | "900913" | "3785" | "102100" | "102113" => Some((Crs::WebMercator, AxisOrder::XY)),
        _ => None,
    }
}

/// Half the Web Mercator world width in metres.
pub const MERCATOR_HALF_WORLD: f64 = 20_037_508.342_789_244;
/// Metres per pixel at zoom 0 for 256-pixel tiles.
pub const MERCATOR_RESOLUTION_Z0: f64 = 156_543.033_928_040_97;

/// The zoom level at which a map of `width`×`height` pixels over `bbox` would be drawn
/// with 256-pixel Web Mercator tiles: `log2(MERCATOR_RESOLUTION_Z0 / resolution)`,
/// taking the finer of the two axes' resolutions (an image stretched on one axis
/// shows that axis's detail).
///
/// Web Mercator spans are used as they are. Degrees are converted to Mercator metres
/// at the box's centre latitude (clamped to ±[`MAX_MERCATOR_LAT`]): a degree of
/// longitude is `MERCATOR_HALF_WORLD / 180` metres everywhere, a degree of latitude
/// that divided by cos(latitude). An antimeridian box (`min_x > max_x` in WGS 84)
/// spans `max_x + 360 − min_x` degrees. A zero width or height gives `+∞` (a point
/// is infinitely detailed); an inverted box gives NaN. [`Fence::check_bbox`] denies
/// both. A width or height of 0 pixels counts as 1.
///
/// ```
/// use tilegate::spatial::{effective_zoom, BBox, Crs, MERCATOR_HALF_WORLD as H};
/// let world = BBox { crs: Crs::WebMercator, min_x: -H, min_y: -H, max_x: H, max_y: H };
/// assert!(effective_zoom(&world, 256, 256).abs() < 1e-9);
/// assert!((effective_zoom(&world, 512, 512) - 1.0).abs() < 1e-9);
/// // A zoom-10 tile's worth of degrees at the equator, drawn at 256 px: zoom 10.
/// let d = 360.0 / 1024.0;
/// let tile = BBox { crs: Crs::Wgs84, min_x: 0.0, min_y: -d / 2.0, max_x: d, max_y: d / 2.0 };
/// assert!((effective_zoom(&tile, 256, 256) - 10.0).abs() < 1e-3);
/// // The same box across the antimeridian has the same zoom.
/// let across = BBox { min_x: 180.0 - d / 2.0, max_x: -180.0 + d / 2.0, ..tile };
/// assert!((effective_zoom(&across, 256, 256) - 10.0).abs() < 1e-3);
/// ```
pub fn effective_zoom(bbox: &BBox, width: u32, height: u32) -> f64 {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let (dx, dy) = match bbox.crs {
        Crs::WebMercator => (bbox.max_x - bbox.min_x, bbox.max_y - bbox.min_y),
        Crs::Wgs84 => {
            let span_x =
                if bbox.min_x > bbox.max_x { bbox.max_x + 360.0 - bbox.min_x } else { bbox.max_x - bbox.min_x };
            let centre = ((bbox.min_y + bbox.max_y) / 2.0).clamp(-MAX_MERCATOR_LAT, MAX_MERCATOR_LAT);
            let metres_per_degree = MERCATOR_HALF_WORLD / 180.0;
            // Mercator stretches north-south by 1/cos(lat) away from the equator.
            (span_x * metres_per_degree, (bbox.max_y - bbox.min_y) * metres_per_degree / centre.to_radians().cos())
        }
    };
    let (rx, ry) = (dx / w, dy / h);
    if rx.is_nan() || ry.is_nan() || rx < 0.0 || ry < 0.0 {
        return f64::NAN;
    }
    (MERCATOR_RESOLUTION_Z0 / rx.min(ry)).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crs_identifiers_in_every_spelling_clients_send() {
        use AxisOrder::{XY, YX};
        use Crs::{WebMercator as M, Wgs84 as G};
        let cases: &[(&str, Option<(Crs, AxisOrder)>)] = &[
            ("EPSG:4326", Some((G, YX))),
            ("  epsg:4326 ", Some((G, YX))),
            ("urn:ogc:def:crs:EPSG::4326", Some((G, YX))),
            ("urn:ogc:def:crs:EPSG:6.6:4326", Some((G, YX))),
            ("urn:ogc:def:crs:EPSG:8.9.1:4326", Some((G, YX))),
            ("urn:ogc:def:crs:EPSG:4326", Some((G, YX))),
            ("urn:x-ogc:def:crs:EPSG:4326", Some((G, YX))),
            ("urn:x-ogc:def:crs:EPSG:6.6:4326", Some((G, YX))),
            ("http://www.opengis.net/def/crs/EPSG/0/4326", Some((G, YX))),
            ("https://www.opengis.net/def/crs/EPSG/0/4326", Some((G, YX))),
            ("http://www.opengis.net/gml/srs/epsg.xml#4326", Some((G, XY))),
            ("CRS:84", Some((G, XY))),
            ("OGC:CRS84", Some((G, XY))),
            ("urn:ogc:def:crs:OGC:1.3:CRS84", Some((G, XY))),
            ("urn:ogc:def:crs:OGC::CRS84", Some((G, XY))),
            ("urn:ogc:def:crs:OGC:2:84", Some((G, XY))),
            ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", Some((G, XY))),
            ("EPSG:3857", Some((M, XY))),
            ("EPSG:900913", Some((M, XY))),
            ("EPSG:3785", Some((M, XY))),
            ("EPSG:102100", Some((M, XY))),
            ("urn:ogc:def:crs:EPSG::3857", Some((M, XY))),
            ("http://www.opengis.net/def/crs/EPSG/0/3857", Some((M, XY))),
            ("http://www.opengis.net/gml/srs/epsg.xml#900913", Some((M, XY))),
            // Unknown or malformed: denied by the classifiers as unsupported.
            ("EPSG:25832", None),
            ("EPSG:4326x", None),
            ("EPSG: 4326", None),
            ("EPSG::4326", None),
            ("4326", None),
            ("", None),
            ("CRS:83", None),
            ("urn:ogc:def:crs:EPSG:v1:4326", None),
            ("urn:ogc:def:crs:EPSG:6.6:4326:extra", None),
            ("urn:ogc:def:crs:OGC:1.3:CRS83", None),
            ("urn:ogc:def:crs:ESRI::102100", None),
            ("http://www.opengis.net/def/crs/EPSG/0/4326/", None),
            ("http://www.opengis.net/def/crs/EPSG/4326", None),
            ("http://example.com/def/crs/EPSG/0/4326", None),
        ];
        for &(id, want) in cases {
            assert_eq!(crs_from_identifier(id), want, "{id:?}");
        }
    }

    #[test]
    fn effective_zoom_of_tile_sized_boxes() {
        let merc = |z: i32, px: u32| {
            let side = 2.0 * MERCATOR_HALF_WORLD / 2f64.powi(z);
            let bbox = BBox {
                crs: Crs::WebMercator,
                min_x: 1000.0,
                min_y: -3000.0,
                max_x: 1000.0 + side,
                max_y: -3000.0 + side,
            };
            effective_zoom(&bbox, px, px)
        };
        for z in 0..=24 {
            assert!((merc(z, 256) - f64::from(z)).abs() < 1e-9, "z{z}");
            assert!((merc(z, 512) - f64::from(z) - 1.0).abs() < 1e-9, "z{z} at 512 px");
        }
        // A HiDPI client drawing a zoom-10 tile's area at 1.5× is at zoom 10.58.
        assert!((merc(10, 384) - 10.584_962_500_721_156).abs() < 1e-9);
    }

    #[test]
    fn effective_zoom_in_degrees_uses_the_centre_latitude() {
        // A zoom-12 tile near 60°N is about half as tall in degrees as it is wide.
        let (z, lat) = (12, 60.0_f64);
        let width = 360.0 / 2f64.powi(z);
        let height = width * lat.to_radians().cos();
        let bbox = BBox {
            crs: Crs::Wgs84,
            min_x: 10.0,
            min_y: lat - height / 2.0,
            max_x: 10.0 + width,
            max_y: lat + height / 2.0,
        };
        assert!((effective_zoom(&bbox, 256, 256) - 12.0).abs() < 1e-6);
        // Twice the pixels one way only: the finer axis decides.
        assert!((effective_zoom(&bbox, 512, 256) - 13.0).abs() < 1e-6);
        assert!((effective_zoom(&bbox, 256, 512) - 13.0).abs() < 1e-6);
        // The poles do not divide by zero.
        let polar = BBox { min_y: 89.0, max_y: 90.0, ..bbox };
        assert!(effective_zoom(&polar, 256, 256).is_finite());
    }

    #[test]
    fn effective_zoom_of_degenerate_and_inverted_boxes() {
        let point = BBox { crs: Crs::WebMercator, min_x: 5.0, min_y: 5.0, max_x: 5.0, max_y: 5.0 };
        assert_eq!(effective_zoom(&point, 256, 256), f64::INFINITY);
        let inverted = BBox { min_y: 6.0, max_y: 5.0, max_x: 10.0, ..point };
        assert!(effective_zoom(&inverted, 256, 256).is_nan());
        let world = BBox {
            crs: Crs::WebMercator,
            min_x: -MERCATOR_HALF_WORLD,
            min_y: -MERCATOR_HALF_WORLD,
            max_x: MERCATOR_HALF_WORLD,
            max_y: MERCATOR_HALF_WORLD,
        };
        assert_eq!(effective_zoom(&world, 0, 0), effective_zoom(&world, 1, 1));
    }
}
