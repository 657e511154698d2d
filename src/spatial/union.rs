//! `TileUnion`: the union of a fence's tiles as sorted Morton (Z-order) ranges,
//! and the quadtree descents that ask how a tile or a rectangle of tiles meets it.
//!
//! Every tile at zoom ≤ 24 is one contiguous range of zoom-24 Morton keys, and a
//! tile's range is the concatenation of its four children's. Fence tiles are
//! disjoint once normalized, so the union is a short sorted list of disjoint
//! ranges (adjacent ones merged): "is this tile wholly inside the union" and "does
//! it touch the union at all" are one binary search each, and four sibling fence
//! tiles cover their parent without any special case. Pure code, no I/O.

use super::tile::{TileCoord, MAX_FENCE_ZOOM};

/// How a tile meets the union.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// No fence tile overlaps it.
    Empty,
    /// Some of it is fenced, some not.
    Partial,
    /// All of it lies in the union.
    Full,
}

/// An inclusive rectangle of tiles `x0..=x1 × y0..=y1` at [`TileUnion::deepest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileRect {
    pub x0: u32,
    pub x1: u32,
    pub y0: u32,
    pub y1: u32,
}

/// The union of a set of disjoint tiles of zoom ≤ 24.
///
/// INVARIANT: `ranges` is sorted, its ranges are half-open, non-empty, disjoint and
/// not adjacent (adjacent ones are merged); `deepest` is the highest zoom of any
/// tile it was built from (0 when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TileUnion {
    ranges: Vec<(u64, u64)>,
    deepest: u8,
}

impl TileUnion {
    /// The union of `tiles`, which must be disjoint (no tile under another) and at
    /// zoom ≤ [`MAX_FENCE_ZOOM`].
    pub fn new(tiles: impl IntoIterator<Item = TileCoord>) -> TileUnion {
        let mut deepest = 0;
        let mut ranges: Vec<(u64, u64)> = tiles
            .into_iter()
            .map(|t| {
                deepest = deepest.max(t.z());
                morton_range(t.z(), t.x(), t.y())
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if last.1 >= start => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged.shrink_to_fit();
        TileUnion { ranges: merged, deepest }
    }

    /// The deepest zoom at which the union has detail; at this zoom and below every
    /// tile is either [`Coverage::Full`] or [`Coverage::Empty`].
    pub fn deepest(&self) -> u8 {
        self.deepest
    }

    /// How tile `z/x/y` (z ≤ 24) meets the union: one binary search.
    pub fn coverage(&self, z: u8, x: u32, y: u32) -> Coverage {
        let (start, end) = morton_range(z, x, y);
        let i = self.ranges.partition_point(|r| r.1 <= start);
        match self.ranges.get(i) {
            Some(&(s, e)) if s <= start && e >= end => Coverage::Full,
            Some(&(s, _)) if s < end => Coverage::Partial,
            _ => Coverage::Empty,
        }
    }

    /// True when every tile of `rect` (at zoom [`deepest`](Self::deepest)) lies in
    /// the union.
    ///
    /// Descends the quadtree from the root, visiting only tiles that overlap `rect`
    /// and are partly fenced; a tile wholly inside `rect` is answered by its own
    /// coverage without descending. The tiles visited are those straddling the
    /// rectangle's border, at most 24 levels deep.
    pub fn covers_rect(&self, rect: TileRect) -> bool {
        self.covers_from(0, 0, 0, &rect)
    }

    fn covers_from(&self, z: u8, x: u32, y: u32, rect: &TileRect) -> bool {
        match self.coverage(z, x, y) {
            Coverage::Full => return true,
            Coverage::Empty => return false,
            Coverage::Partial => {}
        }
        // A partly fenced tile has fence tiles deeper than itself, so z < deepest;
        // checked anyway so the recursion is bounded whatever the data.
        if z >= self.deepest {
            return false;
        }
        let shift = self.deepest - z;
        let (tx0, tx1) = (x << shift, ((x + 1) << shift) - 1);
        let (ty0, ty1) = (y << shift, ((y + 1) << shift) - 1);
        if rect.x0 <= tx0 && tx1 <= rect.x1 && rect.y0 <= ty0 && ty1 <= rect.y1 {
            // The whole tile is asked for and part of it is outside the fence.
            return false;
        }
        let child_shift = shift - 1;
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let (cx, cy) = (2 * x + dx, 2 * y + dy);
            let (cx0, cx1) = (cx << child_shift, ((cx + 1) << child_shift) - 1);
            let (cy0, cy1) = (cy << child_shift, ((cy + 1) << child_shift) - 1);
            let overlaps = cx0 <= rect.x1 && rect.x0 <= cx1 && cy0 <= rect.y1 && rect.y0 <= cy1;
            if overlaps && !self.covers_from(z + 1, cx, cy, rect) {
                return false;
            }
        }
        true
    }
}

/// The half-open range of zoom-24 Morton keys that tile `z/x/y` (z ≤ 24) spans.
pub(crate) fn morton_range(z: u8, x: u32, y: u32) -> (u64, u64) {
    debug_assert!(z <= MAX_FENCE_ZOOM);
    let shift = 2 * u32::from(MAX_FENCE_ZOOM - z);
    let start = (spread_bits(x) | (spread_bits(y) << 1)) << shift;
    (start, start + (1u64 << shift))
}

/// Moves bit i of `v` to bit 2i.
fn spread_bits(v: u32) -> u64 {
    let mut b = u64::from(v);
    b = (b | (b << 16)) & 0x0000_FFFF_0000_FFFF;
    b = (b | (b << 8)) & 0x00FF_00FF_00FF_00FF;
    b = (b | (b << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    b = (b | (b << 2)) & 0x3333_3333_3333_3333;
    (b | (b << 1)) & 0x5555_5555_5555_5555
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u32, x: u64, y: u64) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    fn rect(x0: u32, x1: u32, y0: u32, y1: u32) -> TileRect {
        TileRect { x0, x1, y0, y1 }
    }

    #[test]
    fn morton_ranges_nest_and_children_are_contiguous() {
        assert_eq!(morton_range(0, 0, 0), (0, 1 << 48));
        assert_eq!(morton_range(24, 0, 0), (0, 1));
        let (ps, pe) = morton_range(5, 17, 9);
        let kids: Vec<_> =
            [(34, 18), (35, 18), (34, 19), (35, 19)].iter().map(|&(x, y)| morton_range(6, x, y)).collect();
        assert_eq!(kids[0].0, ps);
        assert_eq!(kids[3].1, pe);
        for pair in kids.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "children must be contiguous in Z-order");
        }
        let deepest = (1u32 << 24) - 1;
        assert_eq!(morton_range(24, deepest, deepest), ((1 << 48) - 1, 1 << 48));
    }

    #[test]
    fn four_siblings_merge_into_their_parent() {
        let union = TileUnion::new([t(3, 2, 2), t(3, 3, 2), t(3, 2, 3), t(3, 3, 3)]);
        assert_eq!(union.ranges.len(), 1);
        assert_eq!(union.coverage(2, 1, 1), Coverage::Full);
        assert_eq!(union.coverage(1, 0, 0), Coverage::Partial);
        assert_eq!(union.coverage(2, 0, 1), Coverage::Empty);
        assert_eq!(union.coverage(5, 8, 8), Coverage::Full);
    }

    #[test]
    fn coverage_of_tiles_around_a_single_fence_tile() {
        let union = TileUnion::new([t(4, 5, 6)]);
        let cases = [
            ((4, 5, 6), Coverage::Full),
            ((6, 20, 24), Coverage::Full),
            ((6, 23, 27), Coverage::Full),
            ((6, 24, 24), Coverage::Empty),
            ((4, 6, 6), Coverage::Empty),
            ((4, 5, 5), Coverage::Empty),
            ((3, 2, 3), Coverage::Partial),
            ((0, 0, 0), Coverage::Partial),
            ((24, 5 << 20, 6 << 20), Coverage::Full),
            ((24, (6 << 20) - 1, (7 << 20) - 1), Coverage::Full),
            ((24, 6 << 20, 6 << 20), Coverage::Empty),
            ((24, 5 << 20, (6 << 20) - 1), Coverage::Empty),
        ];
        for ((z, x, y), want) in cases {
            assert_eq!(union.coverage(z, x, y), want, "{z}/{x}/{y}");
        }
    }

    #[test]
    fn covers_rect_needs_every_tile() {
        // Fence: 2/1/1 and 2/2/1 side by side, and 3/6/0 alone, deepest = 3.
        let union = TileUnion::new([t(2, 1, 1), t(2, 2, 1), t(3, 6, 0)]);
        assert_eq!(union.deepest(), 3);
        let cases = [
            (rect(2, 5, 2, 3), true),  // both zoom-2 tiles exactly
            (rect(3, 4, 2, 2), true),  // straddles their shared edge
            (rect(2, 6, 2, 3), false), // one column too far east
            (rect(6, 6, 0, 0), true),  // the lone zoom-3 tile
            (rect(6, 7, 0, 0), false), // it and its missing neighbour
            (rect(5, 6, 1, 2), false), // the gap between them
            (rect(0, 7, 0, 7), false), // the world
        ];
        for (r, want) in cases {
            assert_eq!(union.covers_rect(r), want, "{r:?}");
        }
    }

    #[test]
    fn an_empty_union_covers_nothing() {
        let union = TileUnion::new([]);
        assert_eq!(union.coverage(0, 0, 0), Coverage::Empty);
        assert!(!union.covers_rect(rect(0, 0, 0, 0)));
    }

    #[test]
    fn the_whole_world_covers_everything() {
        let union = TileUnion::new([t(0, 0, 0)]);
        assert!(union.covers_rect(rect(0, 0, 0, 0)));
        assert_eq!(union.coverage(24, 123, 456), Coverage::Full);
    }
}
