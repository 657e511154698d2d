//! A zoomed-out map session for a fenced token (issue #14): a client with a 1280×1024
//! view (5×4 tiles of 256 pixels) centred on a city-sized fence (2×2 zoom-12 tiles)
//! zooms from level 4 to 16 and pans one tile each way at every level, asking for
//! every tile in view. Each tile is judged (`Fence::tile_overlap`), then relayed when
//! wholly inside (a copy of the upstream's bytes), clipped when it straddles the fence
//! (decode, mask, encode RGBA PNG: `raster::clip_image`), refused when outside.
//! `pass` sends the same tiles through as an unfenced token gets them: judged and
//! relayed, never decoded. The HTTP side of a request (about 62k instructions through
//! the gateway, README's profile) is the same in both and not counted here.
//!
//! `cargo bench --bench clip_session` prints the tile counts, the time per session,
//! the CPU per clipped tile and tiles/s on one core for both modes (the median and the
//! fastest of the rounds). `bench/clip-session` runs it and, when valgrind is there,
//! counts instructions per session under callgrind (stable on a loaded machine).
//! Arguments (after `--`): `clip` or `pass` runs only that mode once (for callgrind),
//! `--rounds N` (default 7).

use std::hint::black_box;
use std::io::Cursor;
use std::time::Instant;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use tilegate::filter::raster::clip_image;
use tilegate::policy::{Clip, ClipArea};
use tilegate::spatial::{Fence, Overlap, TileCoord};

/// The fence: zoom-12 tiles 2100‥2101 × 1360‥1361, maxZoom 18.
const FENCE_Z: u32 = 12;
const FENCE_X: u64 = 2100;
const FENCE_Y: u64 = 1360;
const VIEW_COLS: i64 = 5;
const VIEW_ROWS: i64 = 4;

/// A map-like 256×256 PNG: flat land-use blocks, roads, a little noise.
fn map_png() -> Vec<u8> {
    let mut seed: u32 = 0x1234_5678;
    let img = RgbaImage::from_fn(256, 256, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let block = ((x / 32) * 7 + (y / 32) * 13) % 5;
        let n = (seed % 6) as u8;
        if x % 64 < 3 || (x + y) % 97 < 2 {
            Rgba([250, 250, 250, 255])
        } else {
            [
                Rgba([200 + n, 230, 180, 255]),
                Rgba([170, 200 + n, 240, 255]),
                Rgba([230, 220 + n, 200, 255]),
                Rgba([190, 190, 190 + n, 255]),
                Rgba([220 + n, 180, 160, 255]),
            ][block as usize]
        }
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgba8(img).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).expect("encode");
    out
}

/// Every tile request of the session, in order (repeats included: a pan asks again).
fn session() -> Vec<TileCoord> {
    let mut tiles = Vec::new();
    for z in 4u8..=16 {
        // The fence's centre in tile units at zoom z.
        let centre = |v: u64| (v as f64 + 1.0) * 2f64.powi(i32::from(z) - FENCE_Z as i32);
        let (cx, cy) = (centre(FENCE_X), centre(FENCE_Y));
        let n = 1i64 << z;
        for (dx, dy) in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)] {
            let x0 = (cx - VIEW_COLS as f64 / 2.0).floor() as i64 + dx;
            let y0 = (cy - VIEW_ROWS as f64 / 2.0).floor() as i64 + dy;
            for y in y0..y0 + VIEW_ROWS {
                for x in x0..x0 + VIEW_COLS {
                    if (0..n).contains(&x) && (0..n).contains(&y) {
                        tiles.push(TileCoord::new(u32::from(z), x as u64, y as u64).expect("tile"));
                    }
                }
            }
        }
    }
    tiles
}

#[derive(Default, Debug)]
struct Counts {
    inside: usize,
    clipped: usize,
    refused: usize,
}

fn run(tiles: &[TileCoord], fence: &Fence, png: &[u8], clip: bool) -> Counts {
    let mut c = Counts::default();
    for &tile in tiles {
        if !clip {
            black_box(png.to_vec());
            c.inside += 1;
            continue;
        }
        match fence.tile_overlap(tile) {
            Ok(Overlap::Inside) => {
                black_box(png.to_vec());
                c.inside += 1;
            }
            Ok(Overlap::Partial) => {
                let obligation = Clip { area: ClipArea::Tile(tile), background: [255, 255, 255], vector: false };
                black_box(clip_image(png, fence, &obligation, 4096).expect("clips"));
                c.clipped += 1;
            }
            Err(_) => c.refused += 1,
        }
    }
    c
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rounds =
        args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse::<usize>().ok()).unwrap_or(7);
    let fence = Fence::new(
        Some(&[
            (FENCE_Z, FENCE_X, FENCE_Y),
            (FENCE_Z, FENCE_X + 1, FENCE_Y),
            (FENCE_Z, FENCE_X, FENCE_Y + 1),
            (FENCE_Z, FENCE_X + 1, FENCE_Y + 1),
        ]),
        Some(18),
    )
    .expect("fence");
    let png = map_png();
    let tiles = session();
    if let Some(mode) = args.iter().find(|a| *a == "clip" || *a == "pass") {
        // One session, for instruction counts (valgrind --tool=callgrind).
        let c = run(&tiles, &fence, &png, mode == "clip");
        println!("{mode}: {} tiles, {c:?}", tiles.len());
        return;
    }
    let c = run(&tiles, &fence, &png, true);
    println!(
        "session: {} tile requests (zoom 4..16, 5 views of 5x4 tiles each): {} wholly inside, {} clipped, {} refused outside; tile {} bytes",
        tiles.len(),
        c.inside,
        c.clipped,
        c.refused,
        png.len()
    );
    for (mode, clip) in [("pass", false), ("clip", true)] {
        let mut times: Vec<f64> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                black_box(run(&tiles, &fence, &png, clip));
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let (median, best) = (times[times.len() / 2], times[0]);
        let served = if clip { c.inside + c.clipped } else { tiles.len() };
        println!(
            "{mode}: session median {:.2} ms (fastest {:.2} ms) over {rounds} rounds; {:.0} tiles/s on one core (median), {:.1} µs per served tile",
            median * 1e3,
            best * 1e3,
            tiles.len() as f64 / median,
            median * 1e6 / served as f64,
        );
        if clip {
            println!(
                "clip: {:.2} ms per clipped tile (median session / clipped tiles)",
                median * 1e3 / c.clipped as f64
            );
        }
    }
}
