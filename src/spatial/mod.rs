//! Tile and bounding-box geometry: tile coordinates, CRSs, and the tile geofence.
//!
//! Pure code: no I/O, no clocks, no logging. The policy stage asks a [`Fence`]
//! whether a tile or a bounding box lies inside it; the token API asks whether one
//! fence lies inside another (delegation may only narrow).

mod fence;
mod tile;

pub use fence::{Fence, FenceDenial, FenceError};
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

/// Recognizes a CRS identifier and the axis order its authority defines for it.
///
/// Protocol rules (WMS 1.1.1 is always x,y; WMS 1.3.0 follows the authority) are
/// applied by the OGC classifiers on top of this.
///
/// ```
/// use tilegate::spatial::{crs_from_identifier, AxisOrder, Crs};
/// assert_eq!(crs_from_identifier("EPSG:4326"), Some((Crs::Wgs84, AxisOrder::YX)));
/// assert_eq!(crs_from_identifier("CRS:84"), Some((Crs::Wgs84, AxisOrder::XY)));
/// assert_eq!(crs_from_identifier("epsg:3857"), Some((Crs::WebMercator, AxisOrder::XY)));
/// assert_eq!(crs_from_identifier("EPSG:27700"), None);
/// ```
pub fn crs_from_identifier(id: &str) -> Option<(Crs, AxisOrder)> {
    let id = id.trim();
    let lower = id.to_ascii_lowercase();
    let code = lower
        .strip_prefix("epsg:")
        .or_else(|| lower.strip_prefix("urn:ogc:def:crs:epsg::"))
        .or_else(|| lower.strip_prefix("urn:ogc:def:crs:epsg:6.6:"))
        .or_else(|| lower.strip_prefix("urn:x-ogc:def:crs:epsg:"))
        .or_else(|| lower.strip_prefix("http://www.opengis.net/def/crs/epsg/0/"))
        .or_else(|| lower.strip_prefix("https://www.opengis.net/def/crs/epsg/0/"));
    if let Some(code) = code {
        return match code {
            "4326" => Some((Crs::Wgs84, AxisOrder::YX)),
            "3857" | "900913" | "3785" | "102100" | "102113" => Some((Crs::WebMercator, AxisOrder::XY)),
            _ => None,
        };
    }
    match lower.as_str() {
        "crs:84"
        | "ogc:crs84"
        | "urn:ogc:def:crs:ogc:1.3:crs84"
        | "urn:ogc:def:crs:ogc::crs84"
        | "http://www.opengis.net/def/crs/ogc/1.3/crs84"
        | "https://www.opengis.net/def/crs/ogc/1.3/crs84" => Some((Crs::Wgs84, AxisOrder::XY)),
        // The old GML form is written longitude first by every server in use.
        "http://www.opengis.net/gml/srs/epsg.xml#4326" => Some((Crs::Wgs84, AxisOrder::XY)),
        "http://www.opengis.net/gml/srs/epsg.xml#3857" | "http://www.opengis.net/gml/srs/epsg.xml#900913" => {
            Some((Crs::WebMercator, AxisOrder::XY))
        }
        _ => None,
    }
}

/// Half the Web Mercator world width in metres.
pub const MERCATOR_HALF_WORLD: f64 = 20_037_508.342_789_244;
/// Metres per pixel at zoom 0 for 256-pixel tiles.
pub const MERCATOR_RESOLUTION_Z0: f64 = 156_543.033_928_040_97;

/// The zoom level at which a map of `width`×`height` pixels over `bbox` would be drawn
/// with 256-pixel Web Mercator tiles. Degrees are converted at the box's centre latitude.
pub fn effective_zoom(bbox: &BBox, width: u32, height: u32) -> f64 {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let (dx, dy) = match bbox.crs {
        Crs::WebMercator => (bbox.max_x - bbox.min_x, bbox.max_y - bbox.min_y),
        Crs::Wgs84 => {
            let span_x =
                if bbox.min_x > bbox.max_x { bbox.max_x + 360.0 - bbox.min_x } else { bbox.max_x - bbox.min_x };
            let lat = ((bbox.min_y + bbox.max_y) / 2.0).to_radians();
            let metres_per_degree = MERCATOR_HALF_WORLD / 180.0;
            // Mercator stretches by 1/cos(lat) away from the equator.
            (span_x * metres_per_degree, (bbox.max_y - bbox.min_y) * metres_per_degree / lat.cos().max(1e-9))
        }
    };
    let resolution = (dx / w).min(dy / h);
    (MERCATOR_RESOLUTION_Z0 / resolution).log2()
}
