//! `Fence`: a tile geofence (a normalized set of Web Mercator tiles plus a maxZoom,
//! DESIGN.md §5) and every question asked of it: may this tile, this bounding box,
//! this feature geometry pass; does one fence lie inside another; what are its bounds.
//!
//! [`Fence::new`] is the one validation shared by the config loader and the token
//! API. Every check costs a bounded number of hash lookups or binary searches, never
//! a scan of the fence tiles. Pure code: no I/O, no clocks, no logging.

use std::collections::HashSet;

use geo::{BoundingRect, Intersects, Rect};

use super::mercator::{
    easting_from_unit_x, lat_from_unit_y, lon_from_unit_x, northing_from_unit_y, unit_x_from_easting, unit_x_from_lon,
    unit_y_from_lat, unit_y_from_northing,
};
use super::tile::{TileCoord, MAX_FENCE_ZOOM, MAX_TILE_ZOOM};
use super::union::{Coverage, TileRect, TileUnion};
use super::{BBox, Crs};

/// How far above maxZoom, in zoom levels, a bbox request's effective zoom may be:
/// HiDPI clients draw 1.5× or 2× maps whose zoom falls between integer levels.
pub const ZOOM_TOLERANCE: f64 = 0.5;

/// How far a bounding box may reach past the fence edge and still count as inside,
/// as a fraction of the world's width: 1e-9, about 4 cm at the equator (1/60 of a
/// zoom-24 tile). It absorbs the rounding of projecting a tile edge to degrees or
/// metres and back; it is far below anything a map could show.
pub const EDGE_TOLERANCE: f64 = 1e-9;

/// A fence as plain values, from [`Fence::to_parts`]: the tiles as `(zoom, x, y)`
/// sorted ascending (`None` when only maxZoom limits), and maxZoom.
pub type FenceParts = (Option<Vec<(u32, u32, u32)>>, Option<u32>);

/// The most tiles one fence may hold per path.
pub const MAX_FENCE_TILES: usize = 10_000;

/// Boxes further than this many world widths from the map are refused: their
/// position is no longer precise to a zoom-24 tile.
const MAX_WORLDS_AWAY: f64 = 1_000.0;

#[cfg(test)]
mod tests;

/// A tile geofence for one token on one path (DESIGN.md §5).
///
/// INVARIANT: `tiles` is normalized: no duplicates and no tile under another
/// fence tile; `levels` lists the zooms present in `tiles`, ascending; `union`
/// and `extent` are computed from `tiles` (empty and `None` when it is `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fence {
    max_zoom: Option<u8>,
    tiles: Option<HashSet<TileCoord>>,
    levels: Vec<u8>,
    union: TileUnion,
    extent: Option<Extent>,
}

/// The bounding rectangle of the fence tiles in zoom-24 tiles, half-open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Extent {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

/// Why a request falls outside a fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceDenial {
    /// The request's zoom is above the fence's maxZoom.
    ZoomAboveMax,
    /// The request's tile or area is not wholly inside the fence tiles.
    OutsideGeofence,
}

/// How a permitted request's area meets the fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// Wholly inside (or the fence has no tiles): the answer passes as it is.
    Inside,
    /// Partly inside: the answer may only be served clipped to the fence.
    Partial,
}

/// Why a fence as given is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    #[error("`tiles` is empty; omit it for no tile limit")]
    EmptyTiles,
    #[error("tiles[{index}]: zoom {zoom} is above the fence maximum of {MAX_FENCE_ZOOM}")]
    ZoomTooHigh { index: usize, zoom: u32 },
    #[error("tiles[{index}]: tile {x}/{y} does not exist at zoom {zoom}; x and y must be below 2^zoom")]
    OutOfRange { index: usize, zoom: u32, x: u64, y: u64 },
    #[error("tiles[{index}]: zoom {zoom} is above maxZoom {max_zoom}")]
    AboveMaxZoom { index: usize, zoom: u32, max_zoom: u8 },
    #[error("maxZoom {0} is above the maximum of {MAX_FENCE_ZOOM}")]
    MaxZoomTooHigh(u32),
    #[error("{0} fence tiles; at most {MAX_FENCE_TILES} are allowed per path")]
    TooManyTiles(usize),
}

impl Fence {
    /// Validates and normalizes a fence given as `(zoom, x, y)` triples and an
    /// optional maxZoom.
    ///
    /// Refuses: `tiles: []` (omit `tiles` for no tile limit), more than
    /// [`MAX_FENCE_TILES`] tiles, a zoom above [`MAX_FENCE_ZOOM`], x or y outside
    /// `0..2^zoom`, a tile deeper than maxZoom. Errors name the offending index.
    /// Drops duplicates and tiles under another fence tile.
    ///
    /// ```
    /// use tilegate::spatial::{Fence, FenceError};
    /// let fence = Fence::new(Some(&[(3, 4, 2), (5, 17, 9), (3, 4, 2)]), Some(12)).unwrap();
    /// assert_eq!(fence.to_parts(), (Some(vec![(3, 4, 2)]), Some(12)));
    /// assert_eq!(Fence::new(Some(&[]), None), Err(FenceError::EmptyTiles));
    /// assert!(matches!(
    ///     Fence::new(Some(&[(1, 0, 0), (2, 4, 0)]), None),
    ///     Err(FenceError::OutOfRange { index: 1, .. })
    /// ));
    /// assert!(Fence::new(None, None).unwrap().is_unlimited());
    /// ```
    pub fn new(tiles: Option<&[(u32, u64, u64)]>, max_zoom: Option<u32>) -> Result<Fence, FenceError> {
        let max_zoom = match max_zoom {
            Some(z) if z > u32::from(MAX_FENCE_ZOOM) => return Err(FenceError::MaxZoomTooHigh(z)),
            // INVARIANT: z <= 24 here, so the cast is lossless.
            Some(z) => Some(z as u8),
            None => None,
        };
        let Some(raw) = tiles else {
            return Ok(Fence { max_zoom, ..Fence::default() });
        };
        if raw.is_empty() {
            return Err(FenceError::EmptyTiles);
        }
        if raw.len() > MAX_FENCE_TILES {
            return Err(FenceError::TooManyTiles(raw.len()));
        }
        let mut parsed = Vec::with_capacity(raw.len());
        for (index, &(zoom, x, y)) in raw.iter().enumerate() {
            if zoom > u32::from(MAX_FENCE_ZOOM) {
                return Err(FenceError::ZoomTooHigh { index, zoom });
            }
            if let Some(max_zoom) = max_zoom {
                if zoom > u32::from(max_zoom) {
                    return Err(FenceError::AboveMaxZoom { index, zoom, max_zoom });
                }
            }
            let tile = TileCoord::new(zoom, x, y).map_err(|_| FenceError::OutOfRange { index, zoom, x, y })?;
            parsed.push(tile);
        }
        // Shallow tiles first (TileCoord orders by z, then x, then y), so a tile is
        // dropped when an ancestor or an equal tile is already kept.
        parsed.sort_unstable();
        let mut kept: HashSet<TileCoord> = HashSet::with_capacity(parsed.len());
        let mut levels: Vec<u8> = Vec::new();
        for tile in parsed {
            if !has_tile_or_ancestor(&kept, &levels, tile) {
                if levels.last() != Some(&tile.z()) {
                    levels.push(tile.z());
                }
                kept.insert(tile);
            }
        }
        let union = TileUnion::new(kept.iter().copied());
        let extent = kept.iter().map(|&t| tile_extent(t)).reduce(|a, b| Extent {
            x0: a.x0.min(b.x0),
            y0: a.y0.min(b.y0),
            x1: a.x1.max(b.x1),
            y1: a.y1.max(b.y1),
        });
        Ok(Fence { max_zoom, tiles: Some(kept), levels, union, extent })
    }

    /// True when the fence limits nothing.
    pub fn is_unlimited(&self) -> bool {
        self.max_zoom.is_none() && self.tiles.is_none()
    }

    pub fn max_zoom(&self) -> Option<u8> {
        self.max_zoom
    }

    /// The normalized fence tiles in no particular order, `None` when only maxZoom
    /// limits. [`to_parts`](Self::to_parts) gives them sorted.
    pub fn tiles(&self) -> Option<impl Iterator<Item = TileCoord> + '_> {
        self.tiles.as_ref().map(|t| t.iter().copied())
    }

    /// The normalized fence as plain values for storage and serialization: the tiles
    /// as `(zoom, x, y)` sorted ascending, and maxZoom. Feeding them back to
    /// [`Fence::new`] gives an equal fence.
    ///
    /// ```
    /// use tilegate::spatial::Fence;
    /// let fence = Fence::new(Some(&[(4, 9, 3), (2, 1, 1), (4, 4, 5)]), None).unwrap();
    /// let (tiles, max_zoom) = fence.to_parts();
    /// assert_eq!(tiles, Some(vec![(2, 1, 1), (4, 9, 3)]));
    /// let again: Vec<(u32, u64, u64)> =
    ///     tiles.unwrap().iter().map(|&(z, x, y)| (z, x.into(), y.into())).collect();
    /// assert_eq!(Fence::new(Some(&again), max_zoom).unwrap(), fence);
    /// ```
    pub fn to_parts(&self) -> FenceParts {
        let tiles = self.tiles.as_ref().map(|tiles| {
            let mut sorted: Vec<TileCoord> = tiles.iter().copied().collect();
            sorted.sort_unstable();
            sorted.into_iter().map(|t| (u32::from(t.z()), t.x(), t.y())).collect()
        });
        (tiles, self.max_zoom.map(u32::from))
    }

    /// Allows a tile when its zoom is at most maxZoom and some fence tile equals it or
    /// is its ancestor; a tile that only partly overlaps the fence is denied (a
    /// pass-through proxy cannot clip). Costs one hash lookup per fence zoom level.
    ///
    /// ```
    /// use tilegate::spatial::{Fence, FenceDenial, TileCoord};
    /// let fence = Fence::new(Some(&[(10, 550, 335)]), Some(16)).unwrap();
    /// let tile = |z, x, y| TileCoord::new(z, x, y).unwrap();
    /// assert_eq!(fence.check_tile(tile(10, 550, 335)), Ok(()));
    /// assert_eq!(fence.check_tile(tile(12, 2201, 1343)), Ok(()));
    /// assert_eq!(fence.check_tile(tile(9, 275, 167)), Err(FenceDenial::OutsideGeofence));
    /// assert_eq!(fence.check_tile(tile(10, 551, 335)), Err(FenceDenial::OutsideGeofence));
    /// assert_eq!(fence.check_tile(tile(17, 70400, 42880)), Err(FenceDenial::ZoomAboveMax));
    /// ```
    pub fn check_tile(&self, tile: TileCoord) -> Result<(), FenceDenial> {
        if self.max_zoom.is_some_and(|max| tile.z() > max) {
            return Err(FenceDenial::ZoomAboveMax);
        }
        match &self.tiles {
            None => Ok(()),
            Some(tiles) if has_tile_or_ancestor(tiles, &self.levels, tile) => Ok(()),
            Some(_) => Err(FenceDenial::OutsideGeofence),
        }
    }

    /// Like [`check_tile`](Self::check_tile), but tells a tile that only partly
    /// overlaps the union of the fence tiles ([`Overlap::Partial`]) from one wholly
    /// inside it; a tile that touches no fence tile is outside. A tile covered by
    /// several smaller fence tiles together is inside. One binary search.
    ///
    /// ```
    /// use tilegate::spatial::{Fence, FenceDenial, Overlap, TileCoord};
    /// let fence = Fence::new(Some(&[(10, 550, 335)]), Some(16)).unwrap();
    /// let tile = |z, x, y| TileCoord::new(z, x, y).unwrap();
    /// assert_eq!(fence.tile_overlap(tile(12, 2201, 1343)), Ok(Overlap::Inside));
    /// assert_eq!(fence.tile_overlap(tile(9, 275, 167)), Ok(Overlap::Partial));
    /// assert_eq!(fence.tile_overlap(tile(0, 0, 0)), Ok(Overlap::Partial));
    /// assert_eq!(fence.tile_overlap(tile(10, 551, 335)), Err(FenceDenial::OutsideGeofence));
    /// assert_eq!(fence.tile_overlap(tile(17, 70400, 42880)), Err(FenceDenial::ZoomAboveMax));
    /// ```
    pub fn tile_overlap(&self, tile: TileCoord) -> Result<Overlap, FenceDenial> {
        if self.max_zoom.is_some_and(|max| tile.z() > max) {
            return Err(FenceDenial::ZoomAboveMax);
        }
        if self.tiles.is_none() {
            return Ok(Overlap::Inside);
        }
        if tile.z() > MAX_FENCE_ZOOM {
            // Below the deepest fence zoom a tile is wholly in one fence tile or outside.
            return self.check_tile(tile).map(|()| Overlap::Inside);
        }
        match self.union.coverage(tile.z(), tile.x(), tile.y()) {
            Coverage::Full => Ok(Overlap::Inside),
            Coverage::Partial => Ok(Overlap::Partial),
            Coverage::Empty => Err(FenceDenial::OutsideGeofence),
        }
    }

    /// Like [`check_bbox`](Self::check_bbox), but a box that is not wholly inside and
    /// still meets the union of the fence tiles is [`Overlap::Partial`]. maxZoom is
    /// judged first, as there. A box that only touches the fence's edge counts as
    /// partial (its clipped answer is empty).
    ///
    /// ```
    /// use tilegate::spatial::{BBox, Crs, Fence, FenceDenial, Overlap};
    /// let fence = Fence::new(Some(&[(1, 1, 0)]), Some(10)).unwrap(); // 0..180°E, 0..85°N
    /// let lonlat = |min_x, min_y, max_x, max_y| BBox { crs: Crs::Wgs84, min_x, min_y, max_x, max_y };
    /// assert_eq!(fence.bbox_overlap(&lonlat(10.0, 10.0, 20.0, 20.0), None), Ok(Overlap::Inside));
    /// assert_eq!(fence.bbox_overlap(&lonlat(-10.0, 10.0, 20.0, 20.0), None), Ok(Overlap::Partial));
    /// assert_eq!(fence.bbox_overlap(&lonlat(-20.0, 10.0, -10.0, 20.0), None), Err(FenceDenial::OutsideGeofence));
    /// // Across the antimeridian, reaching into the fence from the east.
    /// assert_eq!(fence.bbox_overlap(&lonlat(170.0, 10.0, -170.0, 20.0), None), Ok(Overlap::Partial));
    /// assert_eq!(fence.bbox_overlap(&lonlat(-10.0, 10.0, 20.0, 20.0), Some(11.0)), Err(FenceDenial::ZoomAboveMax));
    /// ```
    pub fn bbox_overlap(&self, bbox: &BBox, effective_zoom: Option<f64>) -> Result<Overlap, FenceDenial> {
        match self.check_bbox(bbox, effective_zoom) {
            Ok(()) => Ok(Overlap::Inside),
            Err(FenceDenial::OutsideGeofence) if self.meets_bbox(bbox) => Ok(Overlap::Partial),
            Err(denial) => Err(denial),
        }
    }

    /// True when `bbox` meets the union of the fence tiles (edges included).
    fn meets_bbox(&self, bbox: &BBox) -> bool {
        let coords = [bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y];
        if !coords.iter().all(|v| v.is_finite()) || bbox.min_y > bbox.max_y {
            return false;
        }
        let (west, south, east, north) = match bbox.crs {
            Crs::Wgs84 => (bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y),
            Crs::WebMercator => {
                if bbox.min_x > bbox.max_x {
                    return false;
                }
                let (w, s) = super::lonlat_from_mercator(bbox.min_x, bbox.min_y);
                let (e, n) = super::lonlat_from_mercator(bbox.max_x, bbox.max_y);
                (w, s, e, n)
            }
        };
        let rect = |w: f64, e: f64| geo::Geometry::Rect(Rect::new((w, south), (e, north)));
        if west > east {
            // Across the antimeridian (WGS 84 only): both halves.
            self.intersects_lonlat(&rect(west, 180.0)) || self.intersects_lonlat(&rect(-180.0, east))
        } else {
            self.intersects_lonlat(&rect(west, east))
        }
    }

    /// The zoom of the finest fence tiles, `None` when the fence has no tiles. At this
    /// zoom every tile is wholly inside the fence or wholly outside it
    /// ([`covers_cell`](Self::covers_cell)).
    pub fn cell_zoom(&self) -> Option<u8> {
        self.tiles.as_ref().map(|_| self.union.deepest())
    }

    /// True when tile `x`, `y` at [`cell_zoom`](Self::cell_zoom) lies inside the fence
    /// (also true for any tile when the fence has no tiles). One binary search.
    pub fn covers_cell(&self, x: u32, y: u32) -> bool {
        self.tiles.is_none() || self.union.coverage(self.union.deepest(), x, y) == Coverage::Full
    }

    /// How tile `z/x/y` (z ≤ 24) meets the fence tiles (for the clippers' descents).
    pub(crate) fn coverage(&self, z: u8, x: u32, y: u32) -> Coverage {
        if self.tiles.is_none() {
            return Coverage::Full;
        }
        self.union.coverage(z, x, y)
    }

    /// Allows a bounding box only when the union of the fence tiles covers it wholly
    /// and, when the request renders pixels (`effective_zoom` is `Some`, see
    /// [`effective_zoom`](super::effective_zoom)), that zoom is at most maxZoom +
    /// [`ZOOM_TOLERANCE`].
    ///
    /// The box is brought to Web Mercator tile space with latitudes clamped to
    /// ±[`MAX_MERCATOR_LAT`](super::MAX_MERCATOR_LAT). A WGS 84 box with
    /// `min_x > max_x` crosses the antimeridian and both halves must be covered;
    /// longitudes beyond ±180° (and eastings beyond the Mercator square) wrap around
    /// the world the same way. Unlike [`check_tile`](Self::check_tile), coverage is
    /// by the union: a box straddling two adjacent fence tiles is inside. A box may
    /// reach [`EDGE_TOLERANCE`] past the fence edge. A degenerate box (a point or a
    /// line) is inside when it lies in the closed union, edges included. Non-finite
    /// coordinates or zoom, an inverted box (`min_y > max_y`, or `min_x > max_x` in
    /// Web Mercator), and a box more than 1000 worlds away are outside.
    ///
    /// Cost: a quadtree descent from the root to the deepest fence zoom that visits
    /// only tiles straddling the box border and partly fenced, one binary search over
    /// the merged fence ranges each.
    ///
    /// ```
    /// use tilegate::spatial::{BBox, Crs, Fence, FenceDenial};
    /// // Tiles 1/0/0 and 1/1/0: the northern hemisphere.
    /// let fence = Fence::new(Some(&[(1, 0, 0), (1, 1, 0)]), Some(10)).unwrap();
    /// let lonlat = |min_x, min_y, max_x, max_y| BBox { crs: Crs::Wgs84, min_x, min_y, max_x, max_y };
    /// // Straddles the two fence tiles, zoom below maxZoom + 0.5.
    /// assert_eq!(fence.check_bbox(&lonlat(-10.0, 40.0, 10.0, 50.0), Some(10.5)), Ok(()));
    /// assert_eq!(
    ///     fence.check_bbox(&lonlat(-10.0, 40.0, 10.0, 50.0), Some(10.6)),
    ///     Err(FenceDenial::ZoomAboveMax)
    /// );
    /// // Reaches south of the equator.
    /// assert_eq!(
    ///     fence.check_bbox(&lonlat(-10.0, -1.0, 10.0, 50.0), None),
    ///     Err(FenceDenial::OutsideGeofence)
    /// );
    /// // Crosses the antimeridian: 170°E to 170°W.
    /// assert_eq!(fence.check_bbox(&lonlat(170.0, 10.0, -170.0, 20.0), None), Ok(()));
    /// ```
    pub fn check_bbox(&self, bbox: &BBox, effective_zoom: Option<f64>) -> Result<(), FenceDenial> {
        let coords = [bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y];
        if !coords.iter().all(|v| v.is_finite()) || effective_zoom.is_some_and(|z| !z.is_finite()) {
            return Err(FenceDenial::OutsideGeofence);
        }
        if let (Some(zoom), Some(max)) = (effective_zoom, self.max_zoom) {
            if zoom > f64::from(max) + ZOOM_TOLERANCE {
                return Err(FenceDenial::ZoomAboveMax);
            }
        }
        if self.tiles.is_none() {
            return Ok(());
        }
        let area = TileArea::of(bbox, self.union.deepest()).ok_or(FenceDenial::OutsideGeofence)?;
        if area.is_covered_by(&self.union) {
            Ok(())
        } else {
            Err(FenceDenial::OutsideGeofence)
        }
    }

    /// True when every request `child` allows is also allowed by `self`, so a token
    /// may delegate `child` from `self`: child maxZoom ≤ parent maxZoom (a parent
    /// without one limits nothing; a child without one under a parent with one is
    /// not contained) and every child tile equals or lies under some parent tile (a
    /// child without tiles under a parent with tiles is not contained).
    ///
    /// Tiles are judged one by one, as [`check_tile`](Self::check_tile) does: a
    /// child tile covered only by several smaller parent tiles is not contained,
    /// because the child could then fetch it whole.
    ///
    /// ```
    /// use tilegate::spatial::Fence;
    /// let parent = Fence::new(Some(&[(4, 8, 5)]), Some(14)).unwrap();
    /// let narrower = Fence::new(Some(&[(6, 33, 21)]), Some(12)).unwrap();
    /// let wider = Fence::new(Some(&[(3, 4, 2)]), Some(12)).unwrap();
    /// let deeper = Fence::new(Some(&[(6, 33, 21)]), Some(15)).unwrap();
    /// assert!(parent.contains_fence(&narrower));
    /// assert!(!parent.contains_fence(&wider));
    /// assert!(!parent.contains_fence(&deeper));
    /// assert!(!parent.contains_fence(&Fence::default()));
    /// assert!(Fence::default().contains_fence(&parent));
    /// ```
    pub fn contains_fence(&self, child: &Fence) -> bool {
        let zoom_inside = match (self.max_zoom, child.max_zoom) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(parent), Some(child)) => child <= parent,
        };
        let tiles_inside = match (&self.tiles, &child.tiles) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(parent), Some(tiles)) => tiles.iter().all(|&t| has_tile_or_ancestor(parent, &self.levels, t)),
        };
        zoom_inside && tiles_inside
    }

    /// True when a WGS 84 (lon/lat) geometry intersects the union of the fence tiles,
    /// edges included, or the fence has no tiles. Used to drop GeoJSON features that
    /// lie outside the fence. An empty geometry, or one with non-finite coordinates,
    /// intersects nothing. Latitudes beyond ±[`MAX_MERCATOR_LAT`](super::MAX_MERCATOR_LAT)
    /// count as lying on the nearest edge row of tiles, as [`check_bbox`](Self::check_bbox)
    /// clamps them.
    ///
    /// Cost: a quadtree descent that only enters partly fenced tiles touched by the
    /// geometry's bounding box; the exact geometry test runs only on tiles that do
    /// not contain that whole bounding box.
    ///
    /// ```
    /// use geo::{line_string, point, Geometry};
    /// use tilegate::spatial::Fence;
    /// let fence = Fence::new(Some(&[(1, 1, 0)]), None).unwrap(); // 0..180°E, 0..85°N
    /// assert!(fence.intersects_lonlat(&Geometry::Point(point!(x: 10.0, y: 50.0))));
    /// assert!(!fence.intersects_lonlat(&Geometry::Point(point!(x: -10.0, y: 50.0))));
    /// let crossing = line_string![(x: -10.0, y: 50.0), (x: 10.0, y: 50.0)];
    /// assert!(fence.intersects_lonlat(&Geometry::LineString(crossing)));
    /// ```
    pub fn intersects_lonlat(&self, geometry: &geo::Geometry<f64>) -> bool {
        if self.tiles.is_none() {
            return true;
        }
        let Some(bounds) = geometry.bounding_rect() else {
            return false;
        };
        let (min, max) = (bounds.min(), bounds.max());
        if ![min.x, min.y, max.x, max.y].iter().all(|v| v.is_finite()) {
            return false;
        }
        self.intersects_from(0, 0, 0, geometry, &bounds)
    }

    fn intersects_from(&self, z: u8, x: u32, y: u32, geometry: &geo::Geometry<f64>, bounds: &Rect<f64>) -> bool {
        let coverage = self.union.coverage(z, x, y);
        if coverage == Coverage::Empty {
            return false;
        }
        let rect = lonlat_rect(z, x, y);
        if !rects_overlap(&rect, bounds) {
            return false;
        }
        // A tile holding the whole bounding box holds the (non-empty) geometry too.
        let holds_bounds = rect_contains(&rect, bounds);
        if !holds_bounds && !geometry.intersects(&rect) {
            return false;
        }
        if coverage == Coverage::Full {
            return true;
        }
        // A partly fenced tile lies above the deepest fence zoom; checked anyway so
        // the recursion is bounded whatever the data.
        if z >= self.union.deepest() {
            return false;
        }
        [(0, 0), (1, 0), (0, 1), (1, 1)]
            .into_iter()
            .any(|(dx, dy)| self.intersects_from(z + 1, 2 * x + dx, 2 * y + dy, geometry, bounds))
    }

    /// The WGS 84 bounding box of the fence tiles, `None` when the fence has no tiles.
    /// Fence tiles never wrap, so `min_x <= max_x`; a fence on both sides of the
    /// antimeridian gets a box spanning the whole width between them.
    ///
    /// ```
    /// use tilegate::spatial::Fence;
    /// let fence = Fence::new(Some(&[(2, 2, 1), (3, 6, 3)]), None).unwrap();
    /// let b = fence.bounds_lonlat().unwrap();
    /// assert_eq!((b.min_x, b.max_x), (0.0, 135.0));
    /// assert!(b.min_y.abs() < 1e-9 && (b.max_y - 66.51326044311186).abs() < 1e-9);
    /// assert_eq!(Fence::new(None, Some(3)).unwrap().bounds_lonlat(), None);
    /// ```
    pub fn bounds_lonlat(&self) -> Option<BBox> {
        let (u0, v0, u1, v1) = self.unit_extent()?;
        Some(BBox {
            crs: Crs::Wgs84,
            min_x: lon_from_unit_x(u0),
            min_y: lat_from_unit_y(v1),
            max_x: lon_from_unit_x(u1),
            max_y: lat_from_unit_y(v0),
        })
    }

    /// The EPSG:3857 bounding box of the fence tiles, `None` when the fence has no tiles.
    ///
    /// ```
    /// use tilegate::spatial::{Fence, MERCATOR_HALF_WORLD as H};
    /// let fence = Fence::new(Some(&[(1, 1, 1)]), None).unwrap();
    /// let b = fence.bounds_mercator().unwrap();
    /// assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (0.0, -H, H, 0.0));
    /// ```
    pub fn bounds_mercator(&self) -> Option<BBox> {
        let (u0, v0, u1, v1) = self.unit_extent()?;
        Some(BBox {
            crs: Crs::WebMercator,
            min_x: easting_from_unit_x(u0),
            min_y: northing_from_unit_y(v1),
            max_x: easting_from_unit_x(u1),
            max_y: northing_from_unit_y(v0),
        })
    }

    /// `(min_col, max_col, min_row, max_row)` of the tiles at zoom `z` that overlap the
    /// fence tiles, inclusive, XYZ rows (for WMTS `TileMatrixSetLimits`). `None` when
    /// the fence has no tiles, or `z` is above [`MAX_TILE_ZOOM`]. Above the fence
    /// tiles' zoom the limits include tiles that only partly overlap the fence (and
    /// that [`check_tile`](Self::check_tile) denies); maxZoom is not applied.
    ///
    /// ```
    /// use tilegate::spatial::Fence;
    /// let fence = Fence::new(Some(&[(3, 2, 5), (3, 4, 6)]), None).unwrap();
    /// assert_eq!(fence.tile_limits(3), Some((2, 4, 5, 6)));
    /// assert_eq!(fence.tile_limits(1), Some((0, 1, 1, 1)));
    /// assert_eq!(fence.tile_limits(4), Some((4, 9, 10, 13)));
    /// assert_eq!(Fence::new(None, Some(8)).unwrap().tile_limits(3), None);
    /// ```
    pub fn tile_limits(&self, z: u8) -> Option<(u32, u32, u32, u32)> {
        let e = self.extent?;
        if z > MAX_TILE_ZOOM {
            return None;
        }
        Some(if z <= MAX_FENCE_ZOOM {
            let s = MAX_FENCE_ZOOM - z;
            (e.x0 >> s, (e.x1 - 1) >> s, e.y0 >> s, (e.y1 - 1) >> s)
        } else {
            // x1, y1 <= 2^24 and s <= 6, so nothing overflows.
            let s = z - MAX_FENCE_ZOOM;
            (e.x0 << s, (e.x1 << s) - 1, e.y0 << s, (e.y1 << s) - 1)
        })
    }

    /// The extent on the unit square: `(west, north, east, south)`.
    fn unit_extent(&self) -> Option<(f64, f64, f64, f64)> {
        let e = self.extent?;
        let n = f64::from(1u32 << MAX_FENCE_ZOOM);
        Some((f64::from(e.x0) / n, f64::from(e.y0) / n, f64::from(e.x1) / n, f64::from(e.y1) / n))
    }
}

/// True when `tile` or one of its ancestors is in `tiles`; `levels` are the zooms
/// present in `tiles`. One hash lookup per level at or above the tile's zoom.
fn has_tile_or_ancestor(tiles: &HashSet<TileCoord>, levels: &[u8], tile: TileCoord) -> bool {
    levels.iter().map_while(|&z| tile.ancestor(z)).any(|a| tiles.contains(&a))
}

/// A fence tile's extent in zoom-24 tiles.
fn tile_extent(t: TileCoord) -> Extent {
    let s = MAX_FENCE_ZOOM - t.z();
    Extent { x0: t.x() << s, y0: t.y() << s, x1: (t.x() + 1) << s, y1: (t.y() + 1) << s }
}

/// Tile `z/x/y` in degrees, grown by [`EDGE_TOLERANCE`]; the top and bottom rows
/// reach the poles, as latitudes are clamped onto them.
fn lonlat_rect(z: u8, x: u32, y: u32) -> Rect<f64> {
    let slack = EDGE_TOLERANCE * 360.0;
    let n = f64::from(1u32 << z);
    let (fx, fy) = (f64::from(x), f64::from(y));
    let west = lon_from_unit_x(fx / n) - slack;
    let east = lon_from_unit_x((fx + 1.0) / n) + slack;
    let north = if y == 0 { 90.0 } else { lat_from_unit_y(fy / n) + slack };
    let south = if fy + 1.0 == n { -90.0 } else { lat_from_unit_y((fy + 1.0) / n) - slack };
    Rect::new((west, south), (east, north))
}

fn rects_overlap(a: &Rect<f64>, b: &Rect<f64>) -> bool {
    a.min().x <= b.max().x && b.min().x <= a.max().x && a.min().y <= b.max().y && b.min().y <= a.max().y
}

fn rect_contains(outer: &Rect<f64>, inner: &Rect<f64>) -> bool {
    outer.min().x <= inner.min().x
        && inner.max().x <= outer.max().x
        && outer.min().y <= inner.min().y
        && inner.max().y <= outer.max().y
}

/// A bounding box as tiles at one zoom: what must be covered for it to be inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TileArea {
    x: Axis,
    y: Axis,
    zoom: u8,
}

/// One axis of a [`TileArea`], in tile indices at its zoom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    /// Every index in these inclusive spans (two when the box wraps the antimeridian).
    All((u32, u32), Option<(u32, u32)>),
    /// The box is a line on this axis, within tolerance. It lies on this index or,
    /// when it runs along a tile edge, on either of the two; either suffices.
    Either(u32, Option<u32>),
}

impl Axis {
    /// The ways this axis can be inside: for some alternative, every span must be.
    fn alternatives(self) -> impl Iterator<Item = [Option<(u32, u32)>; 2]> {
        let (first, second) = match self {
            Axis::All(a, b) => ([Some(a), b], None),
            Axis::Either(c, d) => ([Some((c, c)), None], d.map(|d| [Some((d, d)), None])),
        };
        [Some(first), second].into_iter().flatten()
    }

    /// The columns a box from unit x `a` to `b` (`a <= b`, unwrapped) touches.
    fn wrapping(a: f64, b: f64, n: i64, tolerance: f64) -> Option<Axis> {
        if b - a >= 1.0 {
            return Some(Axis::All((0, last_index(n)?), None));
        }
        if a.abs() > MAX_WORLDS_AWAY {
            return None;
        }
        let nf = n as f64;
        // The float-to-int casts saturate; |a|, |b| <= 1001 keeps them exact enough.
        let lo = (a * nf + tolerance).floor() as i64;
        let hi = (b * nf - tolerance).ceil() as i64 - 1;
        if hi < lo {
            let c = (a + b) / 2.0 * nf;
            let first = ((c - tolerance).floor() as i64).rem_euclid(n);
            let second = ((c + tolerance).floor() as i64).rem_euclid(n);
            return Some(Axis::Either(index(first)?, (second != first).then(|| index(second)).flatten()));
        }
        if hi - lo + 1 >= n {
            return Some(Axis::All((0, last_index(n)?), None));
        }
        let width = hi - lo;
        let lo = lo.rem_euclid(n);
        let hi = lo + width;
        Some(if hi < n {
            Axis::All((index(lo)?, index(hi)?), None)
        } else {
            Axis::All((index(lo)?, last_index(n)?), Some((0, index(hi - n)?)))
        })
    }

    /// The rows a box from unit y `top` to `bottom` (both in `[0, 1]`) touches.
    fn clamped(top: f64, bottom: f64, n: i64, tolerance: f64) -> Option<Axis> {
        let nf = n as f64;
        let lo = (top * nf + tolerance).floor() as i64;
        let hi = (bottom * nf - tolerance).ceil() as i64 - 1;
        if hi < lo {
            let c = (top + bottom) / 2.0 * nf;
            let first = ((c - tolerance).floor() as i64).clamp(0, n - 1);
            let second = ((c + tolerance).floor() as i64).clamp(0, n - 1);
            return Some(Axis::Either(index(first)?, (second != first).then(|| index(second)).flatten()));
        }
        Some(Axis::All((index(lo.clamp(0, n - 1))?, index(hi.clamp(0, n - 1))?), None))
    }
}

fn index(i: i64) -> Option<u32> {
    u32::try_from(i).ok()
}

fn last_index(n: i64) -> Option<u32> {
    index(n - 1)
}

impl TileArea {
    /// The tiles at `zoom` that `bbox` touches, or `None` for a box that cannot be
    /// judged (inverted, or absurdly far off the map).
    fn of(bbox: &BBox, zoom: u8) -> Option<TileArea> {
        if bbox.min_y > bbox.max_y {
            return None;
        }
        let (west, east, north, south) = match bbox.crs {
            Crs::Wgs84 => {
                let span =
                    if bbox.min_x > bbox.max_x { bbox.max_x + 360.0 - bbox.min_x } else { bbox.max_x - bbox.min_x };
                let west = unit_x_from_lon(bbox.min_x);
                (west, west + span / 360.0, unit_y_from_lat(bbox.max_y), unit_y_from_lat(bbox.min_y))
            }
            Crs::WebMercator => {
                if bbox.min_x > bbox.max_x {
                    return None;
                }
                (
                    unit_x_from_easting(bbox.min_x),
                    unit_x_from_easting(bbox.max_x),
                    unit_y_from_northing(bbox.max_y),
                    unit_y_from_northing(bbox.min_y),
                )
            }
        };
        let n = 1i64 << zoom;
        let tolerance = EDGE_TOLERANCE * n as f64;
        Some(TileArea {
            x: Axis::wrapping(west, east, n, tolerance)?,
            y: Axis::clamped(north, south, n, tolerance)?,
            zoom,
        })
    }

    /// True when `union` (whose deepest zoom is this area's zoom) covers the area.
    fn is_covered_by(&self, union: &TileUnion) -> bool {
        debug_assert_eq!(self.zoom, union.deepest());
        self.x.alternatives().any(|xs| {
            self.y.alternatives().any(|ys| {
                xs.iter().flatten().all(|&(x0, x1)| {
                    ys.iter().flatten().all(|&(y0, y1)| union.covers_rect(TileRect { x0, x1, y0, y1 }))
                })
            })
        })
    }
}
