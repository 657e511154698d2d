//! Criterion benches for the geofence hot path: ns per tile decision and per bbox
//! decision for fences of 1, 1,000 and 10,000 tiles (DESIGN.md §5: bounded cost,
//! never a scan of the fence tiles). Run with `cargo bench --bench fence`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use geo::{line_string, Geometry};
use tilegate::spatial::{BBox, Fence, TileCoord};

/// A fence of `cols × rows` adjacent tiles at zoom `z`, its north-west tile at (x0, y0).
struct Block {
    name: &'static str,
    fence: Fence,
    z: u32,
    x0: u64,
    y0: u64,
    cols: u64,
    rows: u64,
}

fn block(name: &'static str, z: u32, x0: u64, y0: u64, cols: u64, rows: u64) -> Block {
    let tiles: Vec<(u32, u64, u64)> = (0..cols).flat_map(|dx| (0..rows).map(move |dy| (z, x0 + dx, y0 + dy))).collect();
    let fence = Fence::new(Some(&tiles), None).expect("valid bench fence");
    Block { name, fence, z, x0, y0, cols, rows }
}

/// 10,000 tiles at zoom 24 spread over Europe: the deepest, least mergeable fence.
fn scattered() -> Fence {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (x0, y0) = (8_700_000u64, 5_400_000u64);
    let tiles: Vec<(u32, u64, u64)> = (0..10_000).map(|_| (24, x0 + next() % 400_000, y0 + next() % 400_000)).collect();
    Fence::new(Some(&tiles), None).expect("valid bench fence")
}

fn tile(z: u32, x: u64, y: u64) -> TileCoord {
    TileCoord::new(z, x, y).expect("valid bench tile")
}

/// The lon/lat box from the NW corner of tile (z, x0, y0) to the SE corner of (z, x1, y1).
fn span(z: u32, (x0, y0): (u64, u64), (x1, y1): (u64, u64)) -> BBox {
    let nw = tile(z, x0, y0).bounds_lonlat();
    let se = tile(z, x1, y1).bounds_lonlat();
    BBox { min_x: nw.min_x, max_y: nw.max_y, max_x: se.max_x, min_y: se.min_y, ..nw }
}

fn blocks() -> Vec<Block> {
    vec![
        block("1", 10, 550, 335, 1, 1),
        block("1k", 14, 8800, 5360, 40, 25),
        block("10k", 16, 35_200, 21_440, 100, 100),
    ]
}

fn tile_decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_tile");
    for b in blocks() {
        // A zoom-18 tile in the middle of the block, and one just east of it.
        let d = 18 - b.z;
        let inside = tile(18, (b.x0 + b.cols / 2) << d, (b.y0 + b.rows / 2) << d);
        let outside = tile(18, (b.x0 + b.cols) << d, b.y0 << d);
        group.bench_with_input(BenchmarkId::new("inside", b.name), &inside, |bench, t| {
            bench.iter(|| b.fence.check_tile(black_box(*t)))
        });
        group.bench_with_input(BenchmarkId::new("outside", b.name), &outside, |bench, t| {
            bench.iter(|| b.fence.check_tile(black_box(*t)))
        });
    }
    let fence = scattered();
    let miss = tile(24, 8_700_000 + 1, 5_400_000 + 1);
    group.bench_function(BenchmarkId::new("outside", "10k-scattered-z24"), |bench| {
        bench.iter(|| fence.check_tile(black_box(miss)))
    });
    group.finish();
}

fn bbox_decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_bbox");
    for b in blocks() {
        let (x1, y1) = (b.x0 + b.cols - 1, b.y0 + b.rows - 1);
        // Nearly the whole block, its border inside fence tiles: allowed.
        let whole = span(b.z, (b.x0, b.y0), (x1, y1));
        let (w, h) = (whole.max_x - whole.min_x, whole.max_y - whole.min_y);
        let most = BBox {
            min_x: whole.min_x + w * 0.01,
            max_x: whole.max_x - w * 0.01,
            min_y: whole.min_y + h * 0.01,
            max_y: whole.max_y - h * 0.01,
            ..whole
        };
        // A map-sized box (one zoom-18 tile) in the middle: allowed.
        let d = 18 - b.z;
        let small = tile(18, (b.x0 + b.cols / 2) << d, (b.y0 + b.rows / 2) << d).bounds_mercator();
        // The block and a sliver past its east edge: denied.
        let over = BBox { max_x: whole.max_x + w * 0.001, ..whole };
        let cases = [("most", most), ("small", small), ("over-edge", over)];
        for (what, bbox) in cases {
            group.bench_with_input(BenchmarkId::new(what, b.name), &bbox, |bench, bbox| {
                bench.iter(|| b.fence.check_bbox(black_box(bbox), Some(17.0)))
            });
        }
    }
    let fence = scattered();
    let one = tile(24, 8_700_000, 5_400_000).bounds_lonlat();
    let region = span(24, (8_700_000, 5_400_000), (9_100_000, 5_800_000));
    for (what, bbox) in [("small", one), ("over-edge", region)] {
        group.bench_with_input(BenchmarkId::new(what, "10k-scattered-z24"), &bbox, |bench, bbox| {
            bench.iter(|| fence.check_bbox(black_box(bbox), None))
        });
    }
    group.finish();
}

fn geometry_decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("intersects_lonlat");
    for b in blocks() {
        let whole = span(b.z, (b.x0, b.y0), (b.x0 + b.cols - 1, b.y0 + b.rows - 1));
        let (w, h) = (whole.max_x - whole.min_x, whole.max_y - whole.min_y);
        // A road crossing the block's west edge, and one running past its south-west corner.
        let crossing: Geometry<f64> = line_string![
            (x: whole.min_x - w, y: whole.min_y + h / 2.0),
            (x: whole.min_x + w / 2.0, y: whole.min_y + h / 2.0),
        ]
        .into();
        let missing: Geometry<f64> = line_string![
            (x: whole.min_x - w, y: whole.min_y + h / 2.0),
            (x: whole.min_x + w / 2.0, y: whole.min_y - h),
        ]
        .into();
        for (what, g) in [("crossing", crossing), ("missing", missing)] {
            group.bench_with_input(BenchmarkId::new(what, b.name), &g, |bench, g| {
                bench.iter(|| b.fence.intersects_lonlat(black_box(g)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, tile_decisions, bbox_decisions, geometry_decisions);
criterion_main!(benches);
