//! The fence as the clippers see it: which pixels of an image lie inside it
//! ([`PixelMask`]), and the fence as rectangles in a vector tile's own coordinates
//! ([`TileRects`]).
//!
//! A fence is a union of Web Mercator quadtree tiles, so in the pixel space of a Web
//! Mercator tile, of an EPSG:3857 map and of an EPSG:4326 / CRS:84 map (whose rows
//! are latitude lines, columns longitude lines) it is a union of axis-aligned
//! rectangles: every pixel column falls in one column of fence cells (the tiles at
//! the fence's finest zoom), every pixel row in one row of them. The mask is exact:
//! **a pixel is inside when its centre is**, computed in integers for tiles and in
//! `f64` for maps, with no resampling. Pure code: no I/O, no logging.

use super::mercator::{unit_x_from_easting, unit_x_from_lon, unit_y_from_lat, unit_y_from_northing};
use super::union::Coverage;
use super::{BBox, Crs, Fence, TileCoord, MAX_FENCE_ZOOM};

/// The area an answer to be clipped covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClipArea {
    /// A Web Mercator quadtree tile (XYZ, WMTS and OGC API Tiles in a quad set).
    Tile(TileCoord),
    /// A map's bounding box (WMS GetMap), x first; the image's column 0 is at
    /// `min_x`, its row 0 at `max_y`.
    BBox(BBox),
}

/// Which pixels of a `width`×`height` image lie inside the fence, row by row as
/// half-open column spans. Rows that fall in the same row of fence cells share
/// their spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixelMask {
    width: u32,
    /// For each pixel row, the index of its spans in `spans`.
    rows: Vec<u32>,
    spans: Vec<Vec<(u32, u32)>>,
}

impl PixelMask {
    /// The mask of an image of `width`×`height` pixels over `area`. `None` when the
    /// fence has no tiles (nothing to mask) or the image is empty.
    ///
    /// ```
    /// use tilegate::spatial::{ClipArea, Fence, PixelMask, TileCoord};
    /// // The fence is the north-west quarter of tile 1/0/0.
    /// let fence = Fence::new(Some(&[(2, 0, 0)]), None).unwrap();
    /// let mask = PixelMask::new(&fence, &ClipArea::Tile(TileCoord::new(1, 0, 0).unwrap()), 256, 256).unwrap();
    /// assert_eq!(mask.row(0), &[(0, 128)]);
    /// assert!(mask.is_inside(127, 127) && !mask.is_inside(128, 127) && !mask.is_inside(127, 128));
    /// ```
    pub fn new(fence: &Fence, area: &ClipArea, width: u32, height: u32) -> Option<PixelMask> {
        let d = fence.cell_zoom()?;
        if width == 0 || height == 0 {
            return None;
        }
        let cells = 1u64 << d;
        let (cols, rows): (Vec<u32>, Vec<u32>) = match area {
            ClipArea::Tile(tile) => {
                (tile_cells(tile.x(), tile.z(), d, width), tile_cells(tile.y(), tile.z(), d, height))
            }
            ClipArea::BBox(b) => {
                let (span_x, x_at) = match b.crs {
                    Crs::Wgs84 => {
                        let span = if b.min_x > b.max_x { b.max_x + 360.0 - b.min_x } else { b.max_x - b.min_x };
                        (span, unit_x_from_lon as fn(f64) -> f64)
                    }
                    Crs::WebMercator => (b.max_x - b.min_x, unit_x_from_easting as fn(f64) -> f64),
                };
                let y_at: fn(f64) -> f64 = match b.crs {
                    Crs::Wgs84 => unit_y_from_lat,
                    Crs::WebMercator => unit_y_from_northing,
                };
                let cols = (0..width)
                    .map(|px| {
                        let x = b.min_x + (f64::from(px) + 0.5) / f64::from(width) * span_x;
                        unit_cell(x_at(x).rem_euclid(1.0), cells)
                    })
                    .collect();
                let rows = (0..height)
                    .map(|py| {
                        let y = b.max_y - (f64::from(py) + 0.5) / f64::from(height) * (b.max_y - b.min_y);
                        unit_cell(y_at(y), cells)
                    })
                    .collect();
                (cols, rows)
            }
        };
        let mut mask = PixelMask { width, rows: Vec::with_capacity(rows.len()), spans: Vec::new() };
        let mut last: Option<(u32, u32)> = None;
        for cy in rows {
            let index = match last {
                Some((prev, index)) if prev == cy => index,
                _ => {
                    mask.spans.push(row_spans(fence, &cols, cy));
                    // INVARIANT: at most one entry per pixel row, and rows are u32.
                    let index = (mask.spans.len() - 1) as u32;
                    last = Some((cy, index));
                    index
                }
            };
            mask.rows.push(index);
        }
        Some(mask)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        // INVARIANT: built from a u32 height.
        self.rows.len() as u32
    }

    /// The inside column spans of pixel row `y` (half-open, ascending); empty past the end.
    pub fn row(&self, y: u32) -> &[(u32, u32)] {
        self.rows.get(y as usize).map_or(&[], |&i| self.spans[i as usize].as_slice())
    }

    pub fn is_inside(&self, x: u32, y: u32) -> bool {
        self.row(y).iter().any(|&(a, b)| a <= x && x < b)
    }

    /// True when no pixel is inside.
    pub fn is_empty(&self) -> bool {
        self.spans.iter().all(Vec::is_empty)
    }

    /// True when every pixel is inside.
    pub fn is_full(&self) -> bool {
        self.spans.iter().all(|s| s.as_slice() == [(0, self.width)])
    }
}

/// The fence cell (at zoom `d`) of the centre of each of `pixels` pixels along one
/// axis of tile index `i` at zoom `z`: `(i << s) + floor((2p + 1)·2^s / 2n)`, with
/// `s = d − z`, in integers. A tile at or below the cell zoom is one cell.
fn tile_cells(i: u32, z: u8, d: u8, pixels: u32) -> Vec<u32> {
    if z >= d {
        let cell = i >> (z - d);
        return vec![cell; pixels as usize];
    }
    let s = u32::from(d - z);
    let n = u64::from(pixels);
    (0..n)
        .map(|p| {
            let offset = ((2 * p + 1) << s) / (2 * n);
            // INVARIANT: offset < 2^s and i < 2^z, so the cell is below 2^d ≤ 2^24.
            ((u64::from(i) << s) + offset) as u32
        })
        .collect()
}

/// The cell of unit coordinate `u` among `cells`, clamped onto the map (latitudes
/// beyond the Mercator square land on its edge rows, as the policy clamps them).
fn unit_cell(u: f64, cells: u64) -> u32 {
    let c = (u * cells as f64).floor();
    // INVARIANT: clamped into 0..cells ≤ 2^24 before the cast.
    c.clamp(0.0, (cells - 1) as f64) as u32
}

/// The inside spans of one pixel row in fence-cell row `cy`; consecutive pixels in
/// the same cell column are judged once.
fn row_spans(fence: &Fence, cols: &[u32], cy: u32) -> Vec<(u32, u32)> {
    let mut spans: Vec<(u32, u32)> = Vec::new();
    let mut judged: Option<(u32, bool)> = None;
    for (px, &cx) in cols.iter().enumerate() {
        let inside = match judged {
            Some((c, inside)) if c == cx => inside,
            _ => {
                let inside = fence.covers_cell(cx, cy);
                judged = Some((cx, inside));
                inside
            }
        };
        if inside {
            // INVARIANT: px < width, a u32.
            let px = px as u32;
            match spans.last_mut() {
                Some(last) if last.1 == px => last.1 = px + 1,
                _ => spans.push((px, px + 1)),
            }
        }
    }
    spans
}

/// The fence as rectangles in the coordinates of a vector tile: `0..extent` across
/// the tile on each axis, y down, over the tile and its eight neighbours (a tile's
/// buffer reaches into them). Each rectangle is `[min_x, min_y, max_x, max_y]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TileRects {
    pub rects: Vec<[f64; 4]>,
}

impl TileRects {
    /// The fence around `tile` in units of `extent` per tile.
    ///
    /// ```
    /// use tilegate::spatial::{Fence, TileCoord, TileRects};
    /// let fence = Fence::new(Some(&[(2, 1, 1)]), None).unwrap();
    /// let r = TileRects::new(&fence, TileCoord::new(1, 0, 0).unwrap(), 4096.0);
    /// assert_eq!(r.rects, vec![[2048.0, 2048.0, 4096.0, 4096.0]]);
    /// ```
    pub fn new(fence: &Fence, tile: TileCoord, extent: f64) -> TileRects {
        let mut rects = Vec::new();
        let z = tile.z();
        let n = 1i64 << z;
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (x, y) = (i64::from(tile.x()) + dx, i64::from(tile.y()) + dy);
                if x < 0 || y < 0 || x >= n || y >= n {
                    continue;
                }
                let origin = (dx as f64 * extent, dy as f64 * extent);
                // INVARIANT: 0 <= x, y < 2^z, so they fit in u32.
                descend(fence, z, x as u32, y as u32, origin, extent, &mut rects);
            }
        }
        TileRects { rects }
    }

    /// True when point `x`, `y` lies in some rectangle, edges included.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        self.rects.iter().any(|r| r[0] <= x && x <= r[2] && r[1] <= y && y <= r[3])
    }

    /// True when the box `[min_x, min_y, max_x, max_y]` lies inside one rectangle.
    pub fn holds(&self, b: [f64; 4]) -> bool {
        self.rects.iter().any(|r| r[0] <= b[0] && b[2] <= r[2] && r[1] <= b[1] && b[3] <= r[3])
    }

    /// True when the box meets some rectangle (edges included).
    pub fn meets(&self, b: [f64; 4]) -> bool {
        self.rects.iter().any(|r| r[0] <= b[2] && b[0] <= r[2] && r[1] <= b[3] && b[1] <= r[3])
    }
}

/// Collects the fenced parts of tile `z/x/y`, drawn `size` units wide at `origin`.
fn descend(fence: &Fence, z: u8, x: u32, y: u32, origin: (f64, f64), size: f64, out: &mut Vec<[f64; 4]>) {
    let coverage = if z > MAX_FENCE_ZOOM {
        match TileCoord::new(u32::from(z), u64::from(x), u64::from(y)).ok().and_then(|t| t.ancestor(MAX_FENCE_ZOOM)) {
            Some(a) => fence.coverage(MAX_FENCE_ZOOM, a.x(), a.y()),
            None => Coverage::Empty,
        }
    } else {
        fence.coverage(z, x, y)
    };
    match coverage {
        Coverage::Empty => {}
        Coverage::Full => out.push([origin.0, origin.1, origin.0 + size, origin.1 + size]),
        Coverage::Partial => {
            // A partly fenced tile is above the deepest fence zoom (≤ 24): bounded.
            if z >= MAX_FENCE_ZOOM {
                return;
            }
            let half = size / 2.0;
            for (cx, cy) in [(0u32, 0u32), (1, 0), (0, 1), (1, 1)] {
                let o = (origin.0 + f64::from(cx) * half, origin.1 + f64::from(cy) * half);
                descend(fence, z + 1, 2 * x + cx, 2 * y + cy, o, half, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::MERCATOR_HALF_WORLD as H;

    fn tile(z: u32, x: u64, y: u64) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn a_tile_edge_falls_exactly_on_a_pixel_boundary() {
        // Fence 4/9/9 inside tile 2/2/2 (zoom-4 tiles 8‥11 on each axis): its west
        // edge is at 1/4 of the tile width (x pixel 64 of 256), its north edge at 1/4
        // of the height (row 64), its east and south edges at pixel 128.
        let fence = Fence::new(Some(&[(4, 9, 9)]), None).unwrap();
        let mask = PixelMask::new(&fence, &ClipArea::Tile(tile(2, 2, 2)), 256, 256).unwrap();
        assert!(!mask.is_inside(63, 64), "the last pixel west of the edge is out");
        assert!(mask.is_inside(64, 64), "the first pixel east of it is in");
        assert!(mask.is_inside(127, 127));
        assert!(!mask.is_inside(128, 64), "east edge at pixel 128");
        assert!(!mask.is_inside(64, 63) && !mask.is_inside(64, 128));
        assert_eq!(mask.row(100), &[(64, 128)]);
        assert_eq!(mask.row(0), &[] as &[(u32, u32)]);
        // The same tile at 512 pixels: the edges double.
        let mask = PixelMask::new(&fence, &ClipArea::Tile(tile(2, 2, 2)), 512, 512).unwrap();
        assert_eq!(mask.row(128), &[(128, 256)]);
        assert_eq!(mask.row(127), &[] as &[(u32, u32)]);
    }

    #[test]
    fn an_edge_inside_a_pixel_goes_by_the_pixel_centre() {
        // Fence tile 11/1/0 in tile 0/0/0 at 256 px: its west edge is at 256/2048 of
        // a pixel... i.e. pixels are 8 cells wide; cell 1 is in pixel 0, whose centre
        // (cell 4) is outside it.
        let fence = Fence::new(Some(&[(11, 1, 0)]), None).unwrap();
        let mask = PixelMask::new(&fence, &ClipArea::Tile(tile(0, 0, 0)), 256, 256).unwrap();
        assert!(mask.is_empty());
        // Cell 4 holds the centre of pixel 0.
        let fence = Fence::new(Some(&[(11, 4, 4)]), None).unwrap();
        let mask = PixelMask::new(&fence, &ClipArea::Tile(tile(0, 0, 0)), 256, 256).unwrap();
        assert_eq!(mask.row(0), &[(0, 1)]);
        assert_eq!(mask.row(1), &[] as &[(u32, u32)]);
    }

    #[test]
    fn mercator_and_degree_maps_agree_with_the_tile_mask() {
        // Fence: the eastern half of the northern hemisphere's western half.
        let fence = Fence::new(Some(&[(2, 1, 0), (2, 1, 1)]), None).unwrap();
        let merc = BBox { crs: Crs::WebMercator, min_x: -H, min_y: 0.0, max_x: 0.0, max_y: H };
        let m = PixelMask::new(&fence, &ClipArea::BBox(merc), 200, 100).unwrap();
        assert_eq!(m.row(0), &[(100, 200)]);
        assert_eq!(m.row(99), &[(100, 200)]);
        // In degrees: lon −180‥0 over 180 px, the fence from −90°: pixel 90 on.
        let deg = BBox { crs: Crs::Wgs84, min_x: -180.0, min_y: 0.0, max_x: 0.0, max_y: 80.0 };
        let m = PixelMask::new(&fence, &ClipArea::BBox(deg), 180, 80).unwrap();
        assert_eq!(m.row(40), &[(90, 180)]);
        // Rows are latitude lines: tile row 0/1 at zoom 2 splits at 66.51°N.
        let fence = Fence::new(Some(&[(2, 1, 1)]), None).unwrap();
        let m = PixelMask::new(&fence, &ClipArea::BBox(deg), 180, 80).unwrap();
        // Row r spans lat 80−r‥79−r; its centre 79.5−r is below 66.513 from r = 13.
        assert_eq!(m.row(12), &[] as &[(u32, u32)]);
        assert_eq!(m.row(13), &[(90, 180)]);
    }

    #[test]
    fn maps_across_the_antimeridian_wrap() {
        let fence = Fence::new(Some(&[(1, 0, 0)]), None).unwrap(); // west, north
        let across = BBox { crs: Crs::Wgs84, min_x: 170.0, min_y: 10.0, max_x: -170.0, max_y: 20.0 };
        let m = PixelMask::new(&fence, &ClipArea::BBox(across), 20, 10).unwrap();
        assert_eq!(m.row(5), &[(10, 20)]);
    }

    #[test]
    fn vector_tile_rects_cover_the_neighbours_and_stop_at_the_cells() {
        let fence = Fence::new(Some(&[(3, 2, 2), (3, 4, 2)]), None).unwrap();
        // Tile 2/1/1 holds 3/2/2 (its north-west quarter); 3/4/2 is in the east neighbour.
        let r = TileRects::new(&fence, tile(2, 1, 1), 4096.0);
        assert!(r.rects.contains(&[0.0, 0.0, 2048.0, 2048.0]));
        assert!(r.rects.contains(&[4096.0, 0.0, 6144.0, 2048.0]));
        assert_eq!(r.rects.len(), 2);
        assert!(r.contains(2048.0, 2048.0) && !r.contains(2049.0, 10.0));
        assert!(r.holds([10.0, 10.0, 20.0, 20.0]) && !r.holds([10.0, 10.0, 3000.0, 20.0]));
    }
}
