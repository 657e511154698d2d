//! `Fence`: a normalized set of tiles plus a maxZoom, and the checks against it.

use std::collections::HashSet;

use super::tile::{TileCoord, MAX_FENCE_ZOOM};

/// A tile geofence for one token on one path (DESIGN.md §5).
///
/// INVARIANT: `tiles` is normalized: no duplicates and no tile under another
/// fence tile; `levels` lists the zooms present in `tiles`, ascending.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fence {
    max_zoom: Option<u8>,
    tiles: Option<HashSet<TileCoord>>,
    levels: Vec<u8>,
}

/// Why a request falls outside a fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceDenial {
    /// The request's zoom is above the fence's maxZoom.
    ZoomAboveMax,
    /// The request's tile or area is not wholly inside the fence tiles.
    OutsideGeofence,
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
    #[error("{0} fence tiles; at most 10000 are allowed per path")]
    TooManyTiles(usize),
}

/// The most tiles one fence may hold per path.
pub const MAX_FENCE_TILES: usize = 10_000;

impl Fence {
    /// Validates and normalizes a fence given as `(zoom, x, y)` triples and an optional maxZoom.
    pub fn new(tiles: Option<&[(u32, u64, u64)]>, max_zoom: Option<u32>) -> Result<Fence, FenceError> {
        let max_zoom = match max_zoom {
            Some(z) if z > u32::from(MAX_FENCE_ZOOM) => return Err(FenceError::MaxZoomTooHigh(z)),
            Some(z) => Some(z as u8),
            None => None,
        };
        let Some(raw) = tiles else {
            return Ok(Fence { max_zoom, tiles: None, levels: Vec::new() });
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
        // Shallow tiles first, so a tile is dropped when an ancestor is already kept.
        parsed.sort_unstable();
        let mut kept: HashSet<TileCoord> = HashSet::with_capacity(parsed.len());
        let mut levels: Vec<u8> = Vec::new();
        for tile in parsed {
            let covered = levels.iter().any(|&z| tile.ancestor(z).is_some_and(|a| kept.contains(&a)));
            if !covered {
                if !levels.contains(&tile.z()) {
                    levels.push(tile.z());
                }
                kept.insert(tile);
            }
        }
        Ok(Fence { max_zoom, tiles: Some(kept), levels })
    }

    /// True when the fence limits nothing.
    pub fn is_unlimited(&self) -> bool {
        self.max_zoom.is_none() && self.tiles.is_none()
    }

    pub fn max_zoom(&self) -> Option<u8> {
        self.max_zoom
    }

    /// The normalized fence tiles, `None` when only maxZoom limits.
    pub fn tiles(&self) -> Option<impl Iterator<Item = TileCoord> + '_> {
        self.tiles.as_ref().map(|t| t.iter().copied())
    }

    /// Allows a tile when its zoom is at most maxZoom and some fence tile equals it or
    /// is its ancestor; a tile that only partly overlaps the fence is denied.
    /// Costs one hash lookup per fence zoom level.
    pub fn check_tile(&self, tile: TileCoord) -> Result<(), FenceDenial> {
        if self.max_zoom.is_some_and(|max| tile.z() > max) {
            return Err(FenceDenial::ZoomAboveMax);
        }
        let Some(tiles) = &self.tiles else {
            return Ok(());
        };
        let inside = self.levels.iter().any(|&z| tile.ancestor(z).is_some_and(|a| tiles.contains(&a)));
        if inside {
            Ok(())
        } else {
            Err(FenceDenial::OutsideGeofence)
        }
    }
}

impl Fence {
    /// Allows a bounding box only when the fence tiles cover it wholly and, when the
    /// request renders pixels, its effective zoom is at most maxZoom.
    pub fn check_bbox(&self, _bbox: &super::BBox, _zoom: Option<f64>) -> Result<(), FenceDenial> {
        // Deny by default until the bbox coverage rule lands (geofence issue).
        Err(FenceDenial::OutsideGeofence)
    }
}

impl Fence {
    /// True when a WGS 84 (lon/lat) geometry intersects the fence tiles (or the fence has no tiles).
    pub fn intersects_lonlat(&self, _geometry: &geo::Geometry<f64>) -> bool {
        // Deny by default until the geometry rule lands (property-fence issue).
        self.tiles.is_none()
    }
}
