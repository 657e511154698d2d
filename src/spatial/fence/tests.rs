//! Table tests for [`Fence`]: validation, tiles, bounding boxes, delegation,
//! geometries and bounds. Each case states what a user of the gateway would see.

use geo::{wkt, Geometry};

use super::*;
use crate::spatial::mercator::{lat_from_unit_y, unit_x_from_lon, unit_y_from_lat};
use crate::spatial::{effective_zoom, MAX_MERCATOR_LAT, MERCATOR_HALF_WORLD as H};

const OK: Result<(), FenceDenial> = Ok(());
const OUT: Result<(), FenceDenial> = Err(FenceDenial::OutsideGeofence);
const ZOOM: Result<(), FenceDenial> = Err(FenceDenial::ZoomAboveMax);

/// A fence tile as given: (zoom, x, y).
type Raw = (u32, u64, u64);

fn fence(tiles: &[Raw], max_zoom: Option<u32>) -> Fence {
    Fence::new(Some(tiles), max_zoom).unwrap()
}

fn t(z: u32, x: u64, y: u64) -> TileCoord {
    TileCoord::new(z, x, y).unwrap()
}

fn lonlat(min_x: f64, min_y: f64, max_x: f64, max_y: f64) -> BBox {
    BBox { crs: Crs::Wgs84, min_x, min_y, max_x, max_y }
}

fn merc(min_x: f64, min_y: f64, max_x: f64, max_y: f64) -> BBox {
    BBox { crs: Crs::WebMercator, min_x, min_y, max_x, max_y }
}

/// The tile at zoom `z` holding (13.4°E, 52.5°N), Berlin: in the top row at zoom 1,
/// on no edge of the world from zoom 2 on.
fn berlin(z: u32) -> (u64, u64) {
    let n = (1u64 << z) as f64;
    ((unit_x_from_lon(13.4) * n) as u64, (unit_y_from_lat(52.5) * n) as u64)
}

/// `bbox` pushed outward past one side by `by` (a fraction of the world), in its own CRS.
fn pushed(bbox: BBox, side: char, by: f64) -> BBox {
    let mut b = bbox;
    match (bbox.crs, side) {
        (Crs::WebMercator, 'w') => b.min_x -= by * 2.0 * H,
        (Crs::WebMercator, 'e') => b.max_x += by * 2.0 * H,
        (Crs::WebMercator, 'n') => b.max_y += by * 2.0 * H,
        (Crs::WebMercator, 's') => b.min_y -= by * 2.0 * H,
        (Crs::Wgs84, 'w') => b.min_x -= by * 360.0,
        (Crs::Wgs84, 'e') => b.max_x += by * 360.0,
        (Crs::Wgs84, 'n') => b.max_y = lat_from_unit_y(unit_y_from_lat(b.max_y) - by),
        (Crs::Wgs84, 's') => b.min_y = lat_from_unit_y(unit_y_from_lat(b.min_y) + by),
        _ => unreachable!("side {side}"),
    }
    b
}

// ---- validation and normalization ----

#[test]
fn new_refuses_invalid_fences_naming_the_tile() {
    let many: Vec<(u32, u64, u64)> = (0..10_001).map(|i| (14, i, 0)).collect();
    type Case<'a> = (&'a str, Option<&'a [Raw]>, Option<u32>, FenceError);
    let cases: Vec<Case> = vec![
        ("empty tiles", Some(&[]), Some(5), FenceError::EmptyTiles),
        ("zoom 25", Some(&[(3, 1, 1), (25, 0, 0)]), None, FenceError::ZoomTooHigh { index: 1, zoom: 25 }),
        ("x too big", Some(&[(2, 4, 0)]), None, FenceError::OutOfRange { index: 0, zoom: 2, x: 4, y: 0 }),
        ("y too big", Some(&[(0, 0, 1)]), None, FenceError::OutOfRange { index: 0, zoom: 0, x: 0, y: 1 }),
        ("huge x", Some(&[(24, u64::MAX, 0)]), None, FenceError::OutOfRange { index: 0, zoom: 24, x: u64::MAX, y: 0 }),
        (
            "tile deeper than maxZoom",
            Some(&[(4, 1, 1), (9, 1, 1)]),
            Some(8),
            FenceError::AboveMaxZoom { index: 1, zoom: 9, max_zoom: 8 },
        ),
        ("maxZoom 25", None, Some(25), FenceError::MaxZoomTooHigh(25)),
        ("maxZoom 25 with tiles", Some(&[(1, 0, 0)]), Some(25), FenceError::MaxZoomTooHigh(25)),
        ("10001 tiles", Some(&many), None, FenceError::TooManyTiles(10_001)),
    ];
    for (what, tiles, max_zoom, want) in cases {
        assert_eq!(Fence::new(tiles, max_zoom), Err(want), "{what}");
    }
}

#[test]
fn errors_name_the_field_and_the_valid_range() {
    let cases = [
        (Fence::new(Some(&[]), None), "`tiles` is empty; omit it for no tile limit"),
        (
            Fence::new(Some(&[(1, 0, 0), (3, 8, 1)]), None),
            "tiles[1]: tile 8/1 does not exist at zoom 3; x and y must be below 2^zoom",
        ),
        (Fence::new(Some(&[(30, 0, 0)]), None), "tiles[0]: zoom 30 is above the fence maximum of 24"),
        (Fence::new(Some(&[(9, 0, 0)]), Some(8)), "tiles[0]: zoom 9 is above maxZoom 8"),
        (Fence::new(None, Some(31)), "maxZoom 31 is above the maximum of 24"),
    ];
    for (result, want) in cases {
        assert_eq!(result.unwrap_err().to_string(), want);
    }
    let many: Vec<(u32, u64, u64)> = (0..10_001).map(|i| (14, i, 0)).collect();
    assert_eq!(
        Fence::new(Some(&many), None).unwrap_err().to_string(),
        "10001 fence tiles; at most 10000 are allowed per path"
    );
}

#[test]
fn new_accepts_the_limits() {
    let most: Vec<(u32, u64, u64)> = (0..10_000).map(|i| (24, i * 7, i * 3)).collect();
    let f = Fence::new(Some(&most), Some(24)).unwrap();
    assert_eq!(f.to_parts().0.unwrap().len(), 10_000);
    let corner = (1u64 << 24) - 1;
    assert!(Fence::new(Some(&[(24, corner, corner)]), Some(24)).is_ok());
    assert!(Fence::new(Some(&[(0, 0, 0)]), Some(0)).is_ok());
}

#[test]
fn normalization_drops_duplicates_and_tiles_under_another_whatever_the_order() {
    type Case = (&'static str, Vec<Raw>, Vec<(u32, u32, u32)>);
    let cases: Vec<Case> = vec![
        ("duplicate", vec![(5, 3, 4), (5, 3, 4)], vec![(5, 3, 4)]),
        ("child after parent", vec![(2, 1, 1), (3, 2, 3)], vec![(2, 1, 1)]),
        ("child before parent", vec![(3, 2, 3), (2, 1, 1)], vec![(2, 1, 1)]),
        ("deep descendant", vec![(24, 5 << 20, 6 << 20), (4, 5, 6)], vec![(4, 5, 6)]),
        ("grandchild and child", vec![(6, 8, 8), (5, 4, 4), (4, 2, 2)], vec![(4, 2, 2)]),
        ("neighbour kept", vec![(3, 2, 3), (2, 1, 1), (3, 4, 3)], vec![(2, 1, 1), (3, 4, 3)]),
        (
            "four children kept as given",
            vec![(1, 1, 1), (1, 0, 0), (1, 1, 0), (1, 0, 1)],
            vec![(1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)],
        ),
        ("world swallows all", vec![(9, 100, 100), (0, 0, 0), (24, 1, 1)], vec![(0, 0, 0)]),
    ];
    for (what, tiles, want) in cases {
        let f = fence(&tiles, None);
        assert_eq!(f.to_parts(), (Some(want.clone()), None), "{what}");
        assert_eq!(f.tiles().unwrap().count(), want.len(), "{what}");
    }
}

#[test]
fn to_parts_round_trips_through_new() {
    for (tiles, max_zoom) in [
        (Some(vec![(7, 68, 41), (3, 1, 2), (12, 2000, 1000)]), Some(14)),
        (None, Some(3)),
        (Some(vec![(0, 0, 0)]), None),
        (None, None),
    ] {
        let raw: Option<Vec<(u32, u64, u64)>> = tiles.clone();
        let original = Fence::new(raw.as_deref(), max_zoom).unwrap();
        let (parts, zoom) = original.to_parts();
        assert_eq!(zoom, max_zoom);
        let back: Option<Vec<(u32, u64, u64)>> =
            parts.map(|p| p.into_iter().map(|(z, x, y)| (z, x.into(), y.into())).collect());
        assert_eq!(Fence::new(back.as_deref(), zoom).unwrap(), original);
    }
}

#[test]
fn a_fence_is_unlimited_only_without_tiles_and_max_zoom() {
    assert!(Fence::new(None, None).unwrap().is_unlimited());
    assert!(Fence::default().is_unlimited());
    assert!(!Fence::new(None, Some(10)).unwrap().is_unlimited());
    assert!(!fence(&[(0, 0, 0)], None).is_unlimited());
}

// ---- check_tile ----

#[test]
fn check_tile_at_the_fence_boundary_for_every_fence_zoom() {
    for fz in 0..=24u32 {
        let (x, y) = berlin(fz);
        let f = fence(&[(fz, x, y)], None);
        let n = 1u64 << fz;
        let mut cases: Vec<(String, TileCoord, Result<(), FenceDenial>)> =
            vec![("the fence tile".into(), t(fz, x, y), OK)];
        for d in 1..=(30 - fz).min(6) {
            let z = fz + d;
            cases.push((format!("first descendant +{d}"), t(z, x << d, y << d), OK));
            let (last_x, last_y) = (((x + 1) << d) - 1, ((y + 1) << d) - 1);
            cases.push((format!("last descendant +{d} on the SE edge"), t(z, last_x, last_y), OK));
            if x + 1 < n {
                cases.push((format!("just east +{d}"), t(z, (x + 1) << d, y << d), OUT));
            }
            if y > 0 {
                cases.push((format!("just north +{d}"), t(z, x << d, (y << d) - 1), OUT));
            }
        }
        cases.push(("zoom-30 descendant".into(), t(30, x << (30 - fz), y << (30 - fz)), OK));
        for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1), (1, 1)] {
            let (nx, ny) = (x as i64 + dx, y as i64 + dy);
            if (0..n as i64).contains(&nx) && (0..n as i64).contains(&ny) {
                cases.push((format!("neighbour {dx},{dy}"), t(fz, nx as u64, ny as u64), OUT));
            }
        }
        if fz > 0 {
            cases.push(("parent".into(), t(fz - 1, x >> 1, y >> 1), OUT));
            cases.push(("the world".into(), t(0, 0, 0), OUT));
        }
        for (what, tile, want) in cases {
            assert_eq!(f.check_tile(tile), want, "fence zoom {fz}: {what} {tile}");
        }
    }
}

#[test]
fn check_tile_refuses_zoom_above_max_before_the_area() {
    for max in 0..=24u32 {
        let (x, y) = berlin(max);
        let f = fence(&[(max, x, y)], Some(max));
        assert_eq!(f.check_tile(t(max, x, y)), OK, "maxZoom {max}");
        assert_eq!(f.check_tile(t(max + 1, 2 * x, 2 * y)), ZOOM, "maxZoom {max}: inside, too deep");
        assert_eq!(f.check_tile(t(max + 1, 0, 0)), ZOOM, "maxZoom {max}: outside, too deep");
        let only_zoom = Fence::new(None, Some(max)).unwrap();
        assert_eq!(only_zoom.check_tile(t(max, 0, 0)), OK);
        assert_eq!(only_zoom.check_tile(t(max + 1, 0, 0)), ZOOM);
    }
}

#[test]
fn check_tile_with_fence_tiles_at_several_zooms() {
    // 2/1/1 plus 5/20/8 (inside 2/2/1) plus 9/0/0 in the NW corner.
    let f = fence(&[(2, 1, 1), (5, 20, 8), (9, 0, 0)], None);
    let cases = [
        (t(2, 1, 1), OK),
        (t(6, 40, 16), OK),
        (t(5, 20, 8), OK),
        (t(5, 21, 8), OUT),
        (t(2, 2, 1), OUT),
        (t(9, 0, 0), OK),
        (t(10, 1, 1), OK),
        (t(9, 1, 0), OUT),
        (t(8, 0, 0), OUT),
        (t(1, 0, 0), OUT),
    ];
    for (tile, want) in cases {
        assert_eq!(f.check_tile(tile), want, "{tile}");
    }
}

// ---- check_bbox ----

#[test]
fn check_bbox_at_the_fence_edge_for_every_fence_zoom() {
    for fz in 0..=24u32 {
        let (x, y) = berlin(fz);
        let tile = t(fz, x, y);
        let f = fence(&[(fz, x, y)], None);
        for exact in [tile.bounds_mercator(), tile.bounds_lonlat()] {
            let crs = exact.crs;
            assert_eq!(f.check_bbox(&exact, None), OK, "z{fz} {crs:?}: the tile exactly");
            let (w, h) = (exact.max_x - exact.min_x, exact.max_y - exact.min_y);
            let inner = BBox {
                min_x: exact.min_x + w * 0.25,
                max_x: exact.max_x - w * 0.25,
                min_y: exact.min_y + h * 0.25,
                max_y: exact.max_y - h * 0.25,
                ..exact
            };
            assert_eq!(f.check_bbox(&inner, None), OK, "z{fz} {crs:?}: inside");
            for side in ['w', 'e', 'n', 's'] {
                // At zoom 0 the fence is the world; the box is clamped or wraps into it.
                let north_edge = y == 0 && side == 'n';
                let want = if fz == 0 || north_edge { OK } else { OUT };
                let out = pushed(exact, side, 1e-8);
                assert_eq!(f.check_bbox(&out, None), want, "z{fz} {crs:?}: 40 cm past {side}");
                let within = pushed(exact, side, EDGE_TOLERANCE / 10.0);
                assert_eq!(f.check_bbox(&within, None), OK, "z{fz} {crs:?}: 4 mm past {side}");
            }
            let edge_point = BBox { max_x: exact.min_x, min_y: exact.max_y, ..exact };
            assert_eq!(f.check_bbox(&edge_point, None), OK, "z{fz} {crs:?}: NW corner point");
            let centre = BBox { min_x: inner.max_x, min_y: inner.max_y, ..inner };
            assert_eq!(f.check_bbox(&centre, None), OK, "z{fz} {crs:?}: a point inside");
            if fz > 0 {
                let east = pushed(exact, 'e', 1e-8).max_x;
                let outside_point = BBox { min_x: east, max_x: east, ..centre };
                assert_eq!(f.check_bbox(&outside_point, None), OUT, "z{fz} {crs:?}: point east");
            }
        }
    }
}

#[test]
fn check_bbox_is_covered_by_the_union_of_adjacent_tiles() {
    let z4 = |x: u64, y: u64| t(4, x, y).bounds_lonlat();
    let span = |a: BBox, b: BBox| lonlat(a.min_x, b.min_y, b.max_x, a.max_y);
    let pair = fence(&[(4, 8, 5), (4, 9, 5)], None);
    let gap = fence(&[(4, 8, 5), (4, 10, 5)], None);
    let mixed = fence(&[(3, 4, 2), (4, 10, 4), (4, 10, 5)], None); // 3/4/2 = 4/8..9/4..5
    let children = fence(&[(4, 8, 4), (4, 9, 4), (4, 8, 5), (4, 9, 5)], None);
    let cases = [
        ("both adjacent tiles", &pair, span(z4(8, 5), z4(9, 5)), OK),
        ("straddling their shared edge", &pair, lonlat(21.0, 45.0, 24.0, 50.0), OK),
        ("one tile too far", &pair, span(z4(8, 5), z4(10, 5)), OUT),
        ("across a gap", &gap, span(z4(8, 5), z4(10, 5)), OUT),
        ("inside one side of a gap", &gap, z4(10, 5), OK),
        ("the gap itself", &gap, z4(9, 5), OUT),
        ("zoom 3 and two zoom-4 tiles", &mixed, span(z4(8, 4), z4(10, 5)), OK),
        ("and a row too far south", &mixed, span(z4(8, 4), z4(10, 6)), OUT),
        ("four children cover the parent", &children, t(3, 4, 2).bounds_lonlat(), OK),
        ("but not the grandparent", &children, t(2, 2, 1).bounds_lonlat(), OUT),
    ];
    for (what, f, bbox, want) in cases {
        assert_eq!(f.check_bbox(&bbox, None), want, "{what}");
    }
    // The tile rule is stricter than the bbox rule: the parent tile itself is refused.
    assert_eq!(children.check_tile(t(3, 4, 2)), OUT);
}

#[test]
fn check_bbox_finds_a_hole_inside_a_large_box() {
    let mut tiles: Vec<(u32, u64, u64)> = Vec::new();
    for x in 1000..1100 {
        for y in 2000..2100 {
            tiles.push((18, x, y));
        }
    }
    let full = fence(&tiles, None);
    tiles.retain(|&tile| tile != (18, 1050, 2050));
    let holed = fence(&tiles, None);
    let whole = lonlat(
        t(18, 1000, 2000).bounds_lonlat().min_x,
        t(18, 1099, 2099).bounds_lonlat().min_y,
        t(18, 1099, 2099).bounds_lonlat().max_x,
        t(18, 1000, 2000).bounds_lonlat().max_y,
    );
    assert_eq!(full.check_bbox(&whole, None), OK);
    assert_eq!(holed.check_bbox(&whole, None), OUT);
    let corner = t(18, 1000, 2000).bounds_lonlat();
    assert_eq!(holed.check_bbox(&corner, None), OK);
    assert_eq!(holed.check_bbox(&t(18, 1050, 2050).bounds_mercator(), None), OUT);
    let small_box_in_hole = t(20, 4201, 8201).bounds_lonlat();
    assert_eq!(holed.check_bbox(&small_box_in_hole, None), OUT);
}

#[test]
fn check_bbox_splits_boxes_across_the_antimeridian() {
    // Zoom-2 row 1 (0°..66.5°N): column 0 is 180°W..90°W, column 3 is 90°E..180°E.
    let both = fence(&[(2, 0, 1), (2, 3, 1)], None);
    let east = fence(&[(2, 3, 1)], None);
    let west = fence(&[(2, 0, 1)], None);
    let across = lonlat(170.0, 10.0, -170.0, 20.0);
    let cases = [
        ("both halves fenced", &both, across, OK),
        ("only the eastern half", &east, across, OUT),
        ("only the western half", &west, across, OUT),
        ("east half alone", &east, lonlat(170.0, 10.0, 180.0, 20.0), OK),
        ("longitudes past 180 wrap", &both, lonlat(170.0, 10.0, 190.0, 20.0), OK),
        ("and need the west", &east, lonlat(170.0, 10.0, 190.0, 20.0), OUT),
        ("longitudes below -180 wrap", &east, lonlat(-190.0, 10.0, -180.0, 20.0), OK),
        ("a whole world of longitude", &both, lonlat(-180.0, 10.0, 180.0, 20.0), OUT),
        ("more than a world", &both, lonlat(100.0, 10.0, 99.0, 20.0), OUT),
        ("point on the antimeridian, east fence", &east, lonlat(180.0, 10.0, 180.0, 10.0), OK),
        ("point on the antimeridian, west fence", &west, lonlat(180.0, 10.0, 180.0, 10.0), OK),
        ("point at -180, east fence", &east, lonlat(-180.0, 10.0, -180.0, 10.0), OK),
        ("mercator past the east edge", &both, merc(H - 1000.0, 1e6, H + 1000.0, 2e6), OK),
        ("and without the west", &east, merc(H - 1000.0, 1e6, H + 1000.0, 2e6), OUT),
        ("mercator a world away", &east, merc(3.0 * H - 1000.0, 1e6, 3.0 * H, 2e6), OK),
        ("absurdly far away", &both, lonlat(360.0e6, 10.0, 360.0e6 + 1.0, 11.0), OUT),
    ];
    for (what, f, bbox, want) in cases {
        assert_eq!(f.check_bbox(&bbox, None), want, "{what}");
    }
    let world = fence(&[(0, 0, 0)], None);
    assert_eq!(world.check_bbox(&lonlat(100.0, -10.0, 99.0, 10.0), None), OK);
}

#[test]
fn check_bbox_clamps_latitude_to_the_mercator_edge() {
    let north = fence(&[(1, 0, 0), (1, 1, 0)], None);
    let south = fence(&[(1, 0, 1), (1, 1, 1)], None);
    let cases = [
        ("to the pole over the northern tiles", &north, lonlat(-10.0, 10.0, 10.0, 90.0), OK),
        ("above the square over the northern tiles", &north, lonlat(-10.0, 86.0, 10.0, 89.0), OK),
        ("above the square over the southern tiles", &south, lonlat(-10.0, 86.0, 10.0, 89.0), OUT),
        ("to the south pole", &south, lonlat(-10.0, -90.0, 10.0, -10.0), OK),
        ("the whole world needs both", &north, lonlat(-180.0, -90.0, 180.0, 90.0), OUT),
        ("mercator beyond the top", &north, merc(0.0, 1e6, 1e6, 3.0 * H), OK),
    ];
    for (what, f, bbox, want) in cases {
        assert_eq!(f.check_bbox(&bbox, None), want, "{what}");
    }
}

#[test]
fn check_bbox_points_and_lines_on_edges_count_as_inside() {
    let f = fence(&[(2, 1, 1)], None); // 90°W..0°, 0°..66.5°N
    let top = t(2, 1, 1).bounds_lonlat().max_y;
    let cases = [
        ("point inside", lonlat(-45.0, 30.0, -45.0, 30.0), OK),
        ("point on the east edge", lonlat(0.0, 30.0, 0.0, 30.0), OK),
        ("point on the west edge", lonlat(-90.0, 30.0, -90.0, 30.0), OK),
        ("point on the NE corner", lonlat(0.0, top, 0.0, top), OK),
        ("point on the equator", lonlat(-45.0, 0.0, -45.0, 0.0), OK),
        ("point just east", lonlat(0.001, 30.0, 0.001, 30.0), OUT),
        ("point just south", lonlat(-45.0, -0.001, -45.0, -0.001), OUT),
        ("line along the east edge", lonlat(0.0, 10.0, 0.0, 20.0), OK),
        ("line along the east edge, too long", lonlat(0.0, 10.0, 0.0, 70.0), OUT),
        ("line along the equator", lonlat(-80.0, 0.0, -10.0, 0.0), OK),
        ("line crossing the east edge", lonlat(-10.0, 30.0, 10.0, 30.0), OUT),
    ];
    for (what, bbox, want) in cases {
        assert_eq!(f.check_bbox(&bbox, None), want, "{what}");
    }
}

#[test]
fn check_bbox_refuses_what_it_cannot_judge() {
    let fences = [fence(&[(0, 0, 0)], Some(24)), Fence::new(None, Some(24)).unwrap()];
    let good = lonlat(1.0, 1.0, 2.0, 2.0);
    for f in &fences {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for i in 0..4 {
                let mut b = good;
                *[&mut b.min_x, &mut b.min_y, &mut b.max_x, &mut b.max_y][i] = bad;
                assert_eq!(f.check_bbox(&b, None), OUT, "coordinate {i} = {bad}");
            }
            assert_eq!(f.check_bbox(&good, Some(bad)), OUT, "zoom {bad}");
        }
        assert_eq!(f.check_bbox(&good, Some(3.0)), OK);
    }
    let f = &fences[0];
    assert_eq!(f.check_bbox(&lonlat(1.0, 2.0, 2.0, 1.0), None), OUT, "inverted latitudes");
    assert_eq!(f.check_bbox(&merc(2.0, 1.0, 1.0, 2.0), None), OUT, "inverted eastings");
}

#[test]
fn check_bbox_with_a_max_zoom_only_fence_checks_only_the_zoom() {
    let f = Fence::new(None, Some(12)).unwrap();
    let cases = [
        (lonlat(-180.0, -90.0, 180.0, 90.0), None, OK),
        (lonlat(170.0, -5.0, -170.0, 5.0), Some(12.0), OK),
        (merc(0.0, 0.0, 1.0, 1.0), Some(12.5), OK),
        (merc(0.0, 0.0, 1.0, 1.0), Some(12.500_001), ZOOM),
        (merc(0.0, 0.0, 1.0, 1.0), Some(-3.0), OK),
    ];
    for (bbox, zoom, want) in cases {
        assert_eq!(f.check_bbox(&bbox, zoom), want, "{bbox:?} at {zoom:?}");
    }
}

#[test]
fn effective_zoom_is_allowed_up_to_half_a_level_above_max_zoom() {
    let tile = t(10, 550, 335);
    let f = fence(&[(10, 550, 335)], Some(10));
    let only_zoom = Fence::new(None, Some(10)).unwrap();
    for bbox in [tile.bounds_mercator(), tile.bounds_lonlat()] {
        // 256 px per zoom-10 tile is zoom 10; 362 px is 10.4998, 363 px is 10.5038.
        let cases = [(256, OK), (362, OK), (363, ZOOM), (512, ZOOM), (128, OK)];
        for (pixels, want) in cases {
            let zoom = effective_zoom(&bbox, pixels, pixels);
            assert_eq!(f.check_bbox(&bbox, Some(zoom)), want, "{:?} {pixels} px = z{zoom}", bbox.crs);
            assert_eq!(only_zoom.check_bbox(&bbox, Some(zoom)), want, "{pixels} px, zoom only");
        }
    }
    assert_eq!(f.check_bbox(&tile.bounds_mercator(), Some(10.0 + ZOOM_TOLERANCE)), OK);
    assert_eq!(f.check_bbox(&tile.bounds_mercator(), Some(10.0 + ZOOM_TOLERANCE + 1e-9)), ZOOM);
    // Zoom is judged before area.
    assert_eq!(f.check_bbox(&lonlat(-100.0, -10.0, -90.0, 0.0), Some(11.0)), ZOOM);
    assert_eq!(f.check_bbox(&lonlat(-100.0, -10.0, -90.0, 0.0), Some(10.0)), OUT);
}

// ---- contains_fence ----

#[test]
fn contains_fence_only_when_delegation_narrows() {
    let unlimited = Fence::default();
    let zoom_only = |z| Fence::new(None, Some(z)).unwrap();
    let parent = fence(&[(4, 8, 5), (6, 0, 0)], Some(14));
    let z14 = zoom_only(14);
    let cases: Vec<(&str, &Fence, Fence, bool)> = vec![
        ("unlimited parent holds anything", &unlimited, fence(&[(0, 0, 0)], None), true),
        ("unlimited parent, unlimited child", &unlimited, Fence::default(), true),
        ("same fence", &parent, parent.clone(), true),
        ("equal tile, lower zoom", &parent, fence(&[(4, 8, 5)], Some(10)), true),
        ("descendants of both tiles", &parent, fence(&[(9, 256, 160), (8, 3, 3)], Some(14)), true),
        ("a tile one step outside", &parent, fence(&[(4, 9, 5)], Some(14)), false),
        ("the parent of a fence tile", &parent, fence(&[(3, 4, 2)], Some(14)), false),
        ("one good tile, one bad", &parent, fence(&[(4, 8, 5), (5, 0, 0)], Some(14)), false),
        ("deeper maxZoom", &parent, fence(&[(4, 8, 5)], Some(15)), false),
        ("no maxZoom under a maxZoom", &parent, fence(&[(4, 8, 5)], None), false),
        ("no tiles under tiles", &parent, zoom_only(10), false),
        ("unlimited under a fence", &parent, Fence::default(), false),
        ("tiles under a maxZoom-only parent", &z14, fence(&[(4, 8, 5)], Some(12)), true),
        ("tiles, no maxZoom, under maxZoom-only", &z14, fence(&[(4, 8, 5)], None), false),
        ("equal maxZoom-only", &z14, zoom_only(14), true),
        ("higher maxZoom-only", &z14, zoom_only(15), false),
    ];
    for (what, parent, child, want) in cases {
        assert_eq!(parent.contains_fence(&child), want, "{what}");
    }
    // Covered only by the union of smaller parent tiles: the child could fetch 3/4/2 whole.
    let quarters = fence(&[(4, 8, 4), (4, 9, 4), (4, 8, 5), (4, 9, 5)], None);
    assert!(!quarters.contains_fence(&fence(&[(3, 4, 2)], None)));
}

// ---- intersects_lonlat ----

#[test]
fn intersects_lonlat_keeps_features_touching_the_fence() {
    // 5/16/11 and 5/17/11: 0°..22.5°E, 40.98°N..48.92°N.
    let f = fence(&[(5, 16, 11), (5, 17, 11)], None);
    let north = t(5, 16, 11).bounds_lonlat().max_y;
    let cases: Vec<(&str, Geometry<f64>, bool)> = vec![
        ("point inside", wkt!(POINT(10.0 45.0)).into(), true),
        ("point outside", wkt!(POINT(30.0 45.0)).into(), false),
        ("point on the west edge", wkt!(POINT(0.0 45.0)).into(), true),
        ("point just west", wkt!(POINT(-0.0001 45.0)).into(), false),
        ("point on the north edge", Geometry::Point(geo::point!(x: 5.0, y: north)), true),
        ("point just south", wkt!(POINT(10.0 40.9)).into(), false),
        ("line crossing the fence", wkt!(LINESTRING(-10.0 45.0,40.0 45.0)).into(), true),
        ("line crossing a corner", wkt!(LINESTRING(-1.0 40.0,1.0 42.0)).into(), true),
        ("line passing a corner", wkt!(LINESTRING(-1.0 41.5,0.5 40.0)).into(), false),
        ("line far away", wkt!(LINESTRING(100.0 0.0,120.0 10.0)).into(), false),
        ("polygon around the fence", wkt!(POLYGON((-50.0 0.0,60.0 0.0,60.0 80.0,-50.0 80.0,-50.0 0.0))).into(), true),
        (
            "polygon with the fence in its hole",
            wkt!(POLYGON(
                (-50.0 0.0,60.0 0.0,60.0 80.0,-50.0 80.0,-50.0 0.0),
                (-10.0 30.0,30.0 30.0,30.0 60.0,-10.0 60.0,-10.0 30.0)
            ))
            .into(),
            false,
        ),
        (
            "polygon overlapping an edge",
            wkt!(POLYGON((20.0 44.0,30.0 44.0,30.0 46.0,20.0 46.0,20.0 44.0))).into(),
            true,
        ),
        ("polygon beside the fence", wkt!(POLYGON((23.0 44.0,30.0 44.0,30.0 46.0,23.0 46.0,23.0 44.0))).into(), false),
        ("multipoint with one inside", wkt!(MULTIPOINT(100.0 0.0,10.0 45.0)).into(), true),
        ("multipoint all outside", wkt!(MULTIPOINT(100.0 0.0,-10.0 45.0)).into(), false),
        ("empty collection", Geometry::GeometryCollection(Default::default()), false),
        ("point with NaN", Geometry::Point(geo::point!(x: f64::NAN, y: 45.0)), false),
    ];
    for (what, geometry, want) in cases {
        assert_eq!(f.intersects_lonlat(&geometry), want, "{what}");
    }
}

#[test]
fn intersects_lonlat_without_tiles_keeps_everything_and_clamps_the_poles() {
    let anything: Geometry<f64> = wkt!(POINT(-170.0 - 80.0)).into();
    assert!(Fence::default().intersects_lonlat(&anything));
    assert!(Fence::new(None, Some(3)).unwrap().intersects_lonlat(&anything));
    let top_row = fence(&[(3, 4, 0)], None); // 0°..45°E, 79.17°N..85.05°N
    assert!(top_row.intersects_lonlat(&wkt!(POINT(10.0 89.0)).into()));
    assert!(!top_row.intersects_lonlat(&wkt!(POINT(50.0 89.0)).into()));
    let deep = fence(&[(20, 563_000, 343_000)], None);
    let inside = t(22, 563_000 * 4 + 1, 343_000 * 4 + 2).bounds_lonlat();
    let centre = geo::point!(x: (inside.min_x + inside.max_x) / 2.0, y: (inside.min_y + inside.max_y) / 2.0);
    assert!(deep.intersects_lonlat(&Geometry::Point(centre)));
    let beside = t(20, 563_001, 343_000).bounds_lonlat();
    let beside = geo::point!(x: (beside.min_x + beside.max_x) / 2.0, y: (beside.min_y + beside.max_y) / 2.0);
    assert!(!deep.intersects_lonlat(&Geometry::Point(beside)));
}

// ---- bounds ----

#[test]
fn bounds_and_tile_limits_describe_the_fence_extent() {
    let single = fence(&[(7, 68, 41)], None);
    assert_eq!(single.bounds_lonlat(), Some(t(7, 68, 41).bounds_lonlat()));
    assert_eq!(single.bounds_mercator(), Some(t(7, 68, 41).bounds_mercator()));
    let cases = [
        (0, Some((0, 0, 0, 0))),
        (6, Some((34, 34, 20, 20))),
        (7, Some((68, 68, 41, 41))),
        (8, Some((136, 137, 82, 83))),
        (24, Some((68 << 17, (69 << 17) - 1, 41 << 17, (42 << 17) - 1))),
        (30, Some((68 << 23, (69 << 23) - 1, 41 << 23, (42 << 23) - 1))),
        (31, None),
    ];
    for (z, want) in cases {
        assert_eq!(single.tile_limits(z), want, "zoom {z}");
    }
    let world = fence(&[(0, 0, 0)], None);
    assert_eq!(world.tile_limits(30), Some((0, (1 << 30) - 1, 0, (1 << 30) - 1)));
    let b = world.bounds_mercator().unwrap();
    assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (-H, -H, H, H));

    let corners = fence(&[(24, 0, 0), (24, (1 << 24) - 1, 5)], None);
    assert_eq!(corners.tile_limits(24), Some((0, (1 << 24) - 1, 0, 5)));
    let b = corners.bounds_lonlat().unwrap();
    assert_eq!((b.min_x, b.max_x), (-180.0, 180.0));
    assert!((b.max_y - MAX_MERCATOR_LAT).abs() < 1e-12);

    let none = Fence::new(None, Some(9)).unwrap();
    assert_eq!((none.bounds_lonlat(), none.bounds_mercator(), none.tile_limits(3)), (None, None, None));
}
