//! Web Mercator projection onto the unit square that XYZ tiles divide.
//!
//! The unit square runs x = 0 (180° W) to x = 1 (180° E) and y = 0 (north edge,
//! [`MAX_MERCATOR_LAT`]) to y = 1 (south edge), so tile (z, x, y) is the square
//! `[x, x + 1] / 2^z × [y, y + 1] / 2^z`. Pure f64 math, no I/O; callers decide what
//! to do with non-finite input.

use std::f64::consts::{FRAC_PI_4, PI};

use super::MERCATOR_HALF_WORLD;

/// The latitude of the north edge of the Web Mercator square, `atan(sinh(π))` in
/// degrees; latitudes beyond ±this value are clamped onto the edge.
///
/// ```
/// use tilegate::spatial::MAX_MERCATOR_LAT;
/// assert!((MAX_MERCATOR_LAT - 85.0511287798).abs() < 1e-9);
/// ```
pub const MAX_MERCATOR_LAT: f64 = 85.051_128_779_806_59;

/// Longitude in degrees to unit x. Not wrapped: 190° gives a value above 1.
pub(crate) fn unit_x_from_lon(lon: f64) -> f64 {
    (lon + 180.0) / 360.0
}

/// EPSG:3857 easting in metres to unit x. Not wrapped.
pub(crate) fn unit_x_from_easting(x: f64) -> f64 {
    (x + MERCATOR_HALF_WORLD) / (2.0 * MERCATOR_HALF_WORLD)
}

/// Latitude in degrees to unit y, clamped into `[0, 1]`.
pub(crate) fn unit_y_from_lat(lat: f64) -> f64 {
    // The edges exactly, whatever the rounding of tan and ln.
    if lat >= MAX_MERCATOR_LAT {
        return 0.0;
    }
    if lat <= -MAX_MERCATOR_LAT {
        return 1.0;
    }
    let phi = lat.to_radians();
    let v = (1.0 - (FRAC_PI_4 + phi / 2.0).tan().ln() / PI) / 2.0;
    v.clamp(0.0, 1.0)
}

/// EPSG:3857 northing in metres to unit y, clamped into `[0, 1]`.
pub(crate) fn unit_y_from_northing(y: f64) -> f64 {
    ((MERCATOR_HALF_WORLD - y) / (2.0 * MERCATOR_HALF_WORLD)).clamp(0.0, 1.0)
}

/// Longitude and latitude in degrees to EPSG:3857 easting and northing in metres.
/// Latitudes beyond ±[`MAX_MERCATOR_LAT`] land on the edge of the square; longitudes
/// are not wrapped.
///
/// ```
/// use tilegate::spatial::{mercator_from_lonlat, MAX_MERCATOR_LAT, MERCATOR_HALF_WORLD as H};
/// assert_eq!(mercator_from_lonlat(0.0, 0.0), (0.0, 0.0));
/// assert_eq!(mercator_from_lonlat(180.0, 90.0), (H, H));
/// assert_eq!(mercator_from_lonlat(-180.0, -MAX_MERCATOR_LAT), (-H, -H));
/// let (x, y) = mercator_from_lonlat(13.4, 52.5);
/// assert!((x - 1_491_681.18).abs() < 0.01 && (y - 6_891_041.72).abs() < 0.01);
/// ```
pub fn mercator_from_lonlat(lon: f64, lat: f64) -> (f64, f64) {
    (easting_from_unit_x(unit_x_from_lon(lon)), northing_from_unit_y(unit_y_from_lat(lat)))
}

pub(crate) fn lon_from_unit_x(u: f64) -> f64 {
    u * 360.0 - 180.0
}

pub(crate) fn lat_from_unit_y(v: f64) -> f64 {
    (PI * (1.0 - 2.0 * v)).sinh().atan().to_degrees()
}

pub(crate) fn easting_from_unit_x(u: f64) -> f64 {
    u * 2.0 * MERCATOR_HALF_WORLD - MERCATOR_HALF_WORLD
}

pub(crate) fn northing_from_unit_y(v: f64) -> f64 {
    MERCATOR_HALF_WORLD - v * 2.0 * MERCATOR_HALF_WORLD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_lat_is_the_edge_of_the_square() {
        assert!((MAX_MERCATOR_LAT - PI.sinh().atan().to_degrees()).abs() < 1e-12);
        assert_eq!(unit_y_from_lat(MAX_MERCATOR_LAT), 0.0);
        assert_eq!(unit_y_from_lat(-MAX_MERCATOR_LAT), 1.0);
        assert!(unit_y_from_lat(85.0511287) > 0.0);
        assert_eq!(unit_y_from_lat(90.0), 0.0);
        assert_eq!(unit_y_from_lat(-90.0), 1.0);
    }

    #[test]
    fn projections_round_trip() {
        for &(lon, lat) in &[(0.0, 0.0), (-180.0, 60.0), (179.5, -33.3), (13.4, 52.5)] {
            let (u, v) = (unit_x_from_lon(lon), unit_y_from_lat(lat));
            assert!((lon_from_unit_x(u) - lon).abs() < 1e-9, "{lon}");
            assert!((lat_from_unit_y(v) - lat).abs() < 1e-9, "{lat}");
            let (e, n) = (easting_from_unit_x(u), northing_from_unit_y(v));
            assert!((unit_x_from_easting(e) - u).abs() < 1e-12);
            assert!((unit_y_from_northing(n) - v).abs() < 1e-12);
        }
    }

    #[test]
    fn the_equator_and_prime_meridian_are_the_centre() {
        assert_eq!(unit_x_from_lon(0.0), 0.5);
        assert!((unit_y_from_lat(0.0) - 0.5).abs() < 1e-15);
        assert_eq!(unit_x_from_easting(0.0), 0.5);
        assert_eq!(unit_y_from_northing(0.0), 0.5);
        assert_eq!(unit_y_from_northing(3.0 * MERCATOR_HALF_WORLD), 0.0);
    }
}
