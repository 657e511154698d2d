//! `TileCoord`: a checked z/x/y tile address in the Web Mercator quad tree, and
//! the area each tile covers. Pure code, no I/O.

use std::fmt;

use super::mercator::{easting_from_unit_x, lat_from_unit_y, lon_from_unit_x, northing_from_unit_y};
use super::{BBox, Crs};

/// The deepest zoom a tile request may name.
pub const MAX_TILE_ZOOM: u8 = 30;
/// The deepest zoom a fence tile may have.
pub const MAX_FENCE_ZOOM: u8 = 24;

/// A tile in the XYZ (slippy map) scheme: y counts from the north.
///
/// Constructed only through [`TileCoord::new`], so `x, y < 2^z` and `z <= 30` always hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileCoord {
    z: u8,
    x: u32,
    y: u32,
}

/// Why a tile address is not a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("zoom {0} is above the maximum of {MAX_TILE_ZOOM}")]
    ZoomTooHigh(u32),
    #[error("tile {x}/{y} does not exist at zoom {z}; x and y must be below {}", 1u64 << .z)]
    OutOfRange { z: u8, x: u64, y: u64 },
}

impl TileCoord {
    /// A tile, checked.
    ///
    /// ```
    /// use tilegate::spatial::TileCoord;
    /// assert!(TileCoord::new(0, 0, 0).is_ok());
    /// assert!(TileCoord::new(1, 2, 0).is_err());
    /// assert!(TileCoord::new(31, 0, 0).is_err());
    /// ```
    pub fn new(z: u32, x: u64, y: u64) -> Result<Self, TileError> {
        if z > u32::from(MAX_TILE_ZOOM) {
            return Err(TileError::ZoomTooHigh(z));
        }
        // INVARIANT: z <= 30, so the cast is lossless, and below x, y < 2^30 fit in u32.
        let z = z as u8;
        let n = 1u64 << z;
        if x >= n || y >= n {
            return Err(TileError::OutOfRange { z, x, y });
        }
        Ok(TileCoord { z, x: x as u32, y: y as u32 })
    }

    /// A tile given in the TMS scheme, where y counts from the south.
    ///
    /// ```
    /// use tilegate::spatial::TileCoord;
    /// assert_eq!(TileCoord::from_tms(1, 0, 1).unwrap(), TileCoord::new(1, 0, 0).unwrap());
    /// ```
    pub fn from_tms(z: u32, x: u64, y: u64) -> Result<Self, TileError> {
        let checked = TileCoord::new(z, x, y)?;
        let flipped = (1u64 << checked.z) - 1 - y;
        TileCoord::new(z, x, flipped)
    }

    pub fn z(self) -> u8 {
        self.z
    }
    pub fn x(self) -> u32 {
        self.x
    }
    pub fn y(self) -> u32 {
        self.y
    }

    /// The tile at zoom `z` that contains this one, or `None` when `z` is deeper.
    ///
    /// ```
    /// use tilegate::spatial::TileCoord;
    /// let t = TileCoord::new(3, 5, 6).unwrap();
    /// assert_eq!(t.ancestor(1), Some(TileCoord::new(1, 1, 1).unwrap()));
    /// assert_eq!(t.ancestor(3), Some(t));
    /// assert_eq!(t.ancestor(4), None);
    /// ```
    pub fn ancestor(self, z: u8) -> Option<TileCoord> {
        if z > self.z {
            return None;
        }
        let shift = self.z - z;
        Some(TileCoord { z, x: self.x >> shift, y: self.y >> shift })
    }

    /// The tile's area in EPSG:3857 metres.
    ///
    /// ```
    /// use tilegate::spatial::{TileCoord, MERCATOR_HALF_WORLD};
    /// let world = TileCoord::new(0, 0, 0).unwrap().bounds_mercator();
    /// assert_eq!((world.min_x, world.max_y), (-MERCATOR_HALF_WORLD, MERCATOR_HALF_WORLD));
    /// let ne = TileCoord::new(1, 1, 0).unwrap().bounds_mercator();
    /// assert_eq!((ne.min_x, ne.min_y, ne.max_x), (0.0, 0.0, MERCATOR_HALF_WORLD));
    /// ```
    pub fn bounds_mercator(self) -> BBox {
        let (u0, v0, u1, v1) = self.unit_bounds();
        BBox {
            crs: Crs::WebMercator,
            min_x: easting_from_unit_x(u0),
            min_y: northing_from_unit_y(v1),
            max_x: easting_from_unit_x(u1),
            max_y: northing_from_unit_y(v0),
        }
    }

    /// The tile's area in WGS 84 degrees (longitude first); the top and bottom rows
    /// end at ±[`MAX_MERCATOR_LAT`](super::MAX_MERCATOR_LAT).
    ///
    /// ```
    /// use tilegate::spatial::TileCoord;
    /// let b = TileCoord::new(1, 0, 0).unwrap().bounds_lonlat();
    /// assert_eq!((b.min_x, b.max_x), (-180.0, 0.0));
    /// assert!(b.min_y.abs() < 1e-12 && (b.max_y - 85.0511287798).abs() < 1e-9);
    /// ```
    pub fn bounds_lonlat(self) -> BBox {
        let (u0, v0, u1, v1) = self.unit_bounds();
        BBox {
            crs: Crs::Wgs84,
            min_x: lon_from_unit_x(u0),
            min_y: lat_from_unit_y(v1),
            max_x: lon_from_unit_x(u1),
            max_y: lat_from_unit_y(v0),
        }
    }

    /// `(west, north, east, south)` on the unit square; exact, since z ≤ 30.
    pub(crate) fn unit_bounds(self) -> (f64, f64, f64, f64) {
        let n = (1u64 << self.z) as f64;
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        (x / n, y / n, (x + 1.0) / n, (y + 1.0) / n)
    }
}

impl fmt::Display for TileCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::MERCATOR_HALF_WORLD as H;

    fn t(z: u32, x: u64, y: u64) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn neighbouring_tiles_share_their_edges() {
        for z in [1, 5, 12, 24, 30] {
            let n = 1u64 << z;
            let (x, y) = (n / 3, n / 3);
            for bounds in [TileCoord::bounds_lonlat, TileCoord::bounds_mercator] {
                let here = bounds(t(z, x, y));
                let east = bounds(t(z, x + 1, y));
                let south = bounds(t(z, x, y + 1));
                assert_eq!(here.max_x, east.min_x, "z{z}");
                assert_eq!(here.min_y, south.max_y, "z{z}");
                assert!(here.min_x < here.max_x && here.min_y < here.max_y, "z{z}");
            }
        }
    }

    #[test]
    fn the_corners_of_the_world() {
        let last = (1u64 << 30) - 1;
        let se = t(30, last, last).bounds_lonlat();
        assert_eq!(se.max_x, 180.0);
        assert!((se.min_y + 85.051_128_779_806_59).abs() < 1e-6);
        let nw = t(30, 0, 0).bounds_mercator();
        assert_eq!((nw.min_x, nw.max_y), (-H, H));
    }

    #[test]
    fn tms_rows_count_from_the_south() {
        for (z, y_tms, y_xyz) in [(0, 0, 0), (1, 0, 1), (3, 2, 5), (30, 0, (1 << 30) - 1)] {
            assert_eq!(TileCoord::from_tms(z, 0, y_tms), TileCoord::new(z, 0, y_xyz), "z{z}");
        }
        assert!(TileCoord::from_tms(2, 0, 4).is_err());
    }

    #[test]
    fn new_refuses_tiles_that_do_not_exist() {
        assert_eq!(TileCoord::new(31, 0, 0), Err(TileError::ZoomTooHigh(31)));
        assert_eq!(TileCoord::new(u32::MAX, 0, 0), Err(TileError::ZoomTooHigh(u32::MAX)));
        assert_eq!(TileCoord::new(3, 8, 0), Err(TileError::OutOfRange { z: 3, x: 8, y: 0 }));
        assert_eq!(TileCoord::new(3, 0, u64::MAX), Err(TileError::OutOfRange { z: 3, x: 0, y: u64::MAX }));
        assert!(TileCoord::new(30, (1 << 30) - 1, 0).is_ok());
    }
}
