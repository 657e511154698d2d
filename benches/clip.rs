//! Criterion benches for clipping (issue #14): CPU per clipped 256×256 PNG and JPEG
//! tile and per clipped MVT tile (extent 4096, 512-pixel tile, 600 features), against
//! the pass-through figures: a wholly inside tile costs one fence lookup (the policy's
//! `tile_overlap`) and is relayed without a decode; an MVT with a property fence is
//! re-encoded without clipping. Run with `cargo bench --bench clip`.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion};
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use prost::Message;
use tilegate::filter::mvt::{filter_tile, filter_tile_with, only_layers, Feature, Layer, Tile, TileFilter, Value};
use tilegate::filter::raster::clip_image;
use tilegate::policy::{Clip, ClipArea};
use tilegate::spatial::{Fence, PixelMask, TileCoord};

/// A map-like 256×256 tile: blocks of flat colour (land use), lines (roads), some
/// noise (hillshade), as rendering servers produce.
fn map_tile() -> RgbaImage {
    let mut seed: u32 = 0x1234_5678;
    RgbaImage::from_fn(256, 256, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let block = ((x / 32) * 7 + (y / 32) * 13) % 5;
        let road = x % 64 < 3 || (x + y) % 97 < 2;
        let n = (seed % 6) as u8;
        if road {
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
    })
}

fn encode(img: &RgbaImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let dynamic = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img.clone()).to_rgb8()),
        _ => DynamicImage::ImageRgba8(img.clone()),
    };
    dynamic.write_to(&mut Cursor::new(&mut out), format).expect("encode");
    out
}

/// A fence whose edge crosses tile 10/550/335 diagonally in steps: 20 zoom-14 tiles.
fn stepped_fence() -> Fence {
    let tiles: Vec<(u32, u64, u64)> =
        (0..16u64).flat_map(|i| (0..=i.min(15)).map(move |j| (14, 550 * 16 + i, 335 * 16 + j))).collect();
    Fence::new(Some(&tiles), None).expect("fence")
}

fn vector_tile() -> Vec<u8> {
    let zz = |v: i32| ((v << 1) ^ (v >> 31)) as u32;
    let mut features = Vec::new();
    let mut seed: u32 = 7;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 4096) as i32
    };
    for i in 0..600u32 {
        let (x, y) = (next(), next());
        let f = match i % 3 {
            0 => Feature {
                id: Some(u64::from(i)),
                tags: vec![0, i % 4],
                r#type: Some(1),
                geometry: vec![9, zz(x), zz(y)],
            },
            1 => {
                let mut g = vec![9, zz(x), zz(y), 2 | (8 << 3)];
                for _ in 0..8 {
                    g.extend([zz(next() / 16 - 128), zz(next() / 16 - 128)]);
                }
                Feature { id: Some(u64::from(i)), tags: vec![0, i % 4], r#type: Some(2), geometry: g }
            }
            _ => {
                let s = 200;
                let g = vec![9, zz(x), zz(y), 2 | (3 << 3), zz(s), 0, 0, zz(s), zz(-s), 0, 15];
                Feature { id: Some(u64::from(i)), tags: vec![0, i % 4, 1, 4], r#type: Some(3), geometry: g }
            }
        };
        features.push(f);
    }
    let s = |v: &str| Value { string_value: Some(v.into()), ..Value::default() };
    let layer = Layer {
        version: 2,
        name: "places".into(),
        keys: vec!["name".into(), "secret".into()],
        values: vec![s("a"), s("b"), s("c"), s("d"), s("hidden")],
        features,
        extent: Some(4096),
    };
    Tile { layers: vec![layer] }.encode_to_vec()
}

fn raster(c: &mut Criterion) {
    let fence = stepped_fence();
    let tile = TileCoord::new(10, 550, 335).expect("tile");
    let clip = Clip { area: ClipArea::Tile(tile), background: [255, 255, 255], vector: false };
    let img = map_tile();
    let png = encode(&img, ImageFormat::Png);
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let mut g = c.benchmark_group("raster_256");
    g.sample_size(30);
    g.bench_function("inside_passthrough_decision", |b| {
        let inside = TileCoord::new(14, 550 * 16 + 3, 335 * 16 + 1).expect("tile");
        b.iter(|| black_box(fence.tile_overlap(black_box(inside))))
    });
    g.bench_function("mask_only", |b| b.iter(|| black_box(PixelMask::new(&fence, &clip.area, 256, 256))));
    g.bench_function("png_clip", |b| {
        b.iter(|| black_box(clip_image(black_box(&png), &fence, &clip, 4096).expect("clip")))
    });
    g.bench_function("jpeg_clip", |b| {
        b.iter(|| black_box(clip_image(black_box(&jpeg), &fence, &clip, 4096).expect("clip")))
    });
    g.finish();
}

fn vector(c: &mut Criterion) {
    let fence = stepped_fence();
    let tile = TileCoord::new(10, 550, 335).expect("tile");
    let mvt = vector_tile();
    let names = vec!["name".to_owned()];
    let mut g = c.benchmark_group("mvt_600_features");
    g.sample_size(30);
    g.bench_function("property_fence_only", |b| {
        b.iter(|| black_box(filter_tile(black_box(&mvt), &names).expect("filter")))
    });
    g.bench_function("clip_and_property_fence", |b| {
        let filter = TileFilter { allowed: Some(&names), layers: None, clip: Some((&fence, tile)) };
        b.iter(|| black_box(filter_tile_with(black_box(&mvt), &filter).expect("clip")))
    });
    g.finish();
}

/// A path that declares `layers`, an unfenced token, a tile whose layers are all
/// covered: before, the tile was decoded and re-encoded to drop the other layers
/// (`reencode`); now its layer names are scanned and it is relayed (`scan`).
fn vector_layers(c: &mut Criterion) {
    let mvt = vector_tile();
    let layers = vec!["places".to_owned(), "roads".to_owned()];
    let mut g = c.benchmark_group("mvt_600_features_layers_only");
    g.sample_size(30);
    g.bench_function("reencode", |b| {
        let filter = TileFilter { allowed: None, layers: Some(&layers), clip: None };
        b.iter(|| black_box(filter_tile_with(black_box(&mvt), &filter).expect("filter")))
    });
    g.bench_function("scan", |b| b.iter(|| black_box(only_layers(black_box(&mvt), &layers).expect("scan"))));
    g.finish();
}

criterion_group!(benches, raster, vector, vector_layers);
criterion_main!(benches);
