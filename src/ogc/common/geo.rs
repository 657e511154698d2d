//! Numbers, bounding boxes and axis orders as OGC requests write them.
//!
//! Every protocol funnels its coordinates through [`bbox`], which applies the axis order
//! the protocol rule chose and stores the box x-first ([`BBox`]). Malformed numbers
//! (NaN, infinities, wrong counts, min > max) are a 400. Pure code.

use crate::paths::Server;
use crate::spatial::{crs_from_identifier, AxisOrder, BBox, Crs};

use super::{bad, shown};
use crate::ogc::OgcError;

/// A finite decimal number.
///
/// Leading and trailing ASCII spaces are allowed (a `+` in a query decodes to one).
pub(crate) fn number(raw: &str, param: &str) -> Result<f64, OgcError> {
    let s = raw.trim_matches(' ');
    let n: f64 = s.parse().map_err(|_| bad(format!("{param}: `{}` is not a number", shown(raw))))?;
    if !n.is_finite() {
        return Err(bad(format!("{param}: `{}` is not a finite number", shown(raw))));
    }
    Ok(n)
}

/// Exactly `N` comma-separated finite numbers.
pub(crate) fn numbers<const N: usize>(raw: &str, param: &str) -> Result<[f64; N], OgcError> {
    let mut out = [0.0; N];
    let mut count = 0;
    for part in raw.split(',') {
        if count == N {
            return Err(bad(format!("{param}: expected {N} numbers, got more in `{}`", shown(raw))));
        }
        out[count] = number(part, param)?;
        count += 1;
    }
    if count != N {
        return Err(bad(format!("{param}: expected {N} numbers, got {count} in `{}`", shown(raw))));
    }
    Ok(out)
}

/// A non-negative integer written with ASCII digits only.
pub(crate) fn uint(raw: &str, param: &str) -> Result<u64, OgcError> {
    if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("{param}: `{}` is not a non-negative integer", shown(raw))));
    }
    raw.parse().map_err(|_| bad(format!("{param}: `{}` is too large", shown(raw))))
}

/// Builds an x-first [`BBox`] from four numbers written in `order`
/// (`XY`: minx,miny,maxx,maxy; `YX`: miny,minx,maxy,maxx).
///
/// `antimeridian`: allow west > east for [`Crs::Wgs84`] (OGC API `bbox`); any other
/// min > max is a 400.
pub(crate) fn bbox(crs: Crs, order: AxisOrder, v: [f64; 4], antimeridian: bool, param: &str) -> Result<BBox, OgcError> {
    let (min_x, min_y, max_x, max_y) = match order {
        AxisOrder::XY => (v[0], v[1], v[2], v[3]),
        AxisOrder::YX => (v[1], v[0], v[3], v[2]),
    };
    if min_y > max_y {
        return Err(bad(format!("{param}: the minimum {} is above the maximum", axis_name(crs, 'y'))));
    }
    if min_x > max_x && !(antimeridian && crs == Crs::Wgs84) {
        return Err(bad(format!("{param}: the minimum {} is above the maximum", axis_name(crs, 'x'))));
    }
    Ok(BBox { crs, min_x, min_y, max_x, max_y })
}

fn axis_name(crs: Crs, axis: char) -> &'static str {
    match (crs, axis) {
        (Crs::Wgs84, 'x') => "longitude",
        (Crs::Wgs84, _) => "latitude",
        (Crs::WebMercator, 'x') => "easting",
        (Crs::WebMercator, _) => "northing",
    }
}

/// For a box in a CRS the gateway does not know, still refuse min > max on either pair.
pub(crate) fn check_ordered(v: [f64; 4], param: &str) -> Result<(), OgcError> {
    if v[0] > v[2] || v[1] > v[3] {
        return Err(bad(format!("{param}: a minimum is above its maximum")));
    }
    Ok(())
}

/// The CRS and axis order of a WFS (1.0/1.1/2.0) CRS identifier.
///
/// The short `EPSG:nnnn` form is read longitude/easting first in every WFS version, as
/// GeoServer and MapServer do; URN and `http://www.opengis.net/def/crs/…` forms follow
/// the authority (EPSG:4326 latitude first); the old GML form
/// `http://www.opengis.net/gml/srs/epsg.xml#4326` is longitude first.
pub(crate) fn wfs_crs(id: &str) -> Option<(Crs, AxisOrder)> {
    let (crs, order) = crs_from_identifier(id)?;
    if id.trim().get(..5).is_some_and(|p| p.eq_ignore_ascii_case("epsg:")) {
        Some((crs, AxisOrder::XY))
    } else {
        Some((crs, order))
    }
}

/// The CRS and axis order `server` reads a WFS box in, named `id` (a KVP `BBOX`'s fifth
/// element, a filter `Envelope`'s `srsName`) in WFS `version`. GeoServer follows
/// [`wfs_crs`]; MapServer 8 reads the short `EPSG:4326`, in any case, latitude first in
/// WFS 1.1 and 2.0, KVP and XML alike (as it writes it; checked against `mapserv` in
/// `tests/integration/clients.rs`). Another server, or none declared: only where those
/// two agree, else `None` (a foreign CRS: refused to a fenced token). QGIS Server's KVP
/// reading is `ogc::wfs::qgis_bbox_crs`.
pub(crate) fn wfs_box_crs(id: &str, version: &str, server: Server) -> Option<(Crs, AxisOrder)> {
    let geoserver = wfs_crs(id)?;
    let short = id.trim().get(..5).is_some_and(|p| p.eq_ignore_ascii_case("epsg:"));
    let mapserver = if short && geoserver.0 == Crs::Wgs84 && !version.starts_with("1.0") {
        (Crs::Wgs84, AxisOrder::YX)
    } else {
        geoserver
    };
    match server {
        Server::MapServer => Some(mapserver),
        Server::GeoServer => Some(geoserver),
        _ => (mapserver == geoserver).then_some(geoserver),
    }
}

/// The box an upstream feature query of a fenced token is narrowed to, in `crs` and x,y
/// order: the fence's bounding box, outward by a hair (so that a feature on its edge is
/// still asked for), intersected with the request's own box `given` when there is one.
/// `None`: no fence tiles, a `given` box crossing the antimeridian, or nothing in common.
pub(crate) fn fence_box_within(fence: &crate::spatial::Fence, crs: Crs, given: Option<[f64; 4]>) -> Option<[f64; 4]> {
    let fenced = match crs {
        Crs::Wgs84 => fence.bounds_lonlat()?,
        Crs::WebMercator => fence.bounds_mercator()?,
    };
    let pad = if crs == Crs::Wgs84 { 1e-9 } else { 1e-4 };
    let b = [fenced.min_x - pad, fenced.min_y - pad, fenced.max_x + pad, fenced.max_y + pad];
    let Some(xy) = given else { return Some(b) };
    if xy[0] > xy[2] {
        return None;
    }
    let b = [b[0].max(xy[0]), b[1].max(xy[1]), b[2].min(xy[2]), b[3].min(xy[3])];
    (b[0] <= b[2] && b[1] <= b[3]).then_some(b)
}

/// The smallest box holding both (same CRS, neither crossing the antimeridian).
pub(crate) fn union(a: BBox, b: BBox) -> Option<BBox> {
    if a.crs != b.crs || a.min_x > a.max_x || b.min_x > b.max_x {
        return None;
    }
    Some(BBox {
        crs: a.crs,
        min_x: a.min_x.min(b.min_x),
        min_y: a.min_y.min(b.min_y),
        max_x: a.max_x.max(b.max_x),
        max_y: a.max_y.max(b.max_y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_refuse_nan_infinity_and_wrong_counts() {
        assert_eq!(numbers::<4>("1,-2.5,3e2, 4", "BBOX").unwrap(), [1.0, -2.5, 300.0, 4.0]);
        for raw in
            ["1,2,3", "1,2,3,4,5", "1,2,NaN,4", "1,2,inf,4", "1,2,-infinity,4", "1,,3,4", "a,b,c,d", "1,2,3,1e999"]
        {
            assert!(numbers::<4>(raw, "BBOX").is_err(), "{raw}");
        }
    }

    #[test]
    fn uints() {
        assert_eq!(uint("007", "Z").unwrap(), 7);
        for raw in ["", "-1", "+1", "1.0", " 1", "99999999999999999999"] {
            assert!(uint(raw, "Z").is_err(), "{raw}");
        }
    }

    #[test]
    fn axis_order_swaps_into_x_first() {
        let b = bbox(Crs::Wgs84, AxisOrder::YX, [50.0, 5.0, 51.0, 6.0], false, "BBOX").unwrap();
        assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (5.0, 50.0, 6.0, 51.0));
        let b = bbox(Crs::Wgs84, AxisOrder::XY, [5.0, 50.0, 6.0, 51.0], false, "BBOX").unwrap();
        assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (5.0, 50.0, 6.0, 51.0));
    }

    #[test]
    fn min_above_max_is_refused_except_across_the_antimeridian() {
        assert!(bbox(Crs::Wgs84, AxisOrder::XY, [170.0, 0.0, -170.0, 1.0], false, "B").is_err());
        let b = bbox(Crs::Wgs84, AxisOrder::XY, [170.0, 0.0, -170.0, 1.0], true, "B").unwrap();
        assert!(b.min_x > b.max_x);
        assert!(bbox(Crs::Wgs84, AxisOrder::XY, [0.0, 2.0, 1.0, 1.0], true, "B").is_err());
        assert!(bbox(Crs::WebMercator, AxisOrder::XY, [2.0, 0.0, 1.0, 1.0], true, "B").is_err());
    }

    #[test]
    fn wfs_identifier_forms() {
        assert_eq!(wfs_crs("EPSG:4326"), Some((Crs::Wgs84, AxisOrder::XY)));
        assert_eq!(wfs_crs("epsg:4326"), Some((Crs::Wgs84, AxisOrder::XY)));
        assert_eq!(wfs_crs("urn:ogc:def:crs:EPSG::4326"), Some((Crs::Wgs84, AxisOrder::YX)));
        assert_eq!(wfs_crs("urn:x-ogc:def:crs:EPSG:4326"), Some((Crs::Wgs84, AxisOrder::YX)));
        assert_eq!(wfs_crs("http://www.opengis.net/def/crs/EPSG/0/4326"), Some((Crs::Wgs84, AxisOrder::YX)));
        assert_eq!(wfs_crs("http://www.opengis.net/gml/srs/epsg.xml#4326"), Some((Crs::Wgs84, AxisOrder::XY)));
        assert_eq!(wfs_crs("urn:ogc:def:crs:EPSG::3857"), Some((Crs::WebMercator, AxisOrder::XY)));
        assert_eq!(wfs_crs("EPSG:28992"), None);
    }
}
