//! The vector tile filter: re-encodes a Mapbox Vector Tile (2.1) without the
//! attributes outside a token's property fence, without the layers the path does
//! not cover, and — for a tile that only partly overlaps the token's geofence —
//! clipped to the fence, all in one pass ([`filter_tile_with`]).
//!
//! Clipping works in the tile's own integer coordinates (`0..extent`, y down),
//! against the fence as rectangles over the tile and its eight neighbours
//! ([`TileRects`]), so geometry in the tile's buffer that lies inside the fence
//! stays: points outside are dropped; lines and polygons whose bounding box lies in
//! one fence rectangle pass untouched, those that meet none are dropped, the rest
//! are cut with `geo`'s boolean operations (i_overlay: line clipping and polygon
//! intersection, even-odd, so rings need no classification on the way in) and
//! rounded back onto the integer grid (a cut vertex moves by at most half a unit).
//! Polygon rings are written back in the winding MVT 2.1 requires (exterior
//! clockwise on screen). A geometry the decoder cannot read is an error, never
//! passed on.
//!
//! [`filter_tile`] decodes the tile (gunzipping it first when it starts with the
//! gzip magic bytes, bounded by [`MAX_TILE_BYTES`]), drops from every feature the
//! tags whose key is not allowed, rebuilds each layer's `keys` and `values` tables
//! with only what the remaining tags use (indices remapped, order kept), and
//! encodes it again, gzipped again if it came gzipped. Geometry, ids, layer names,
//! versions and extents are untouched.
//!
//! [`only_layers`] reads only the layer names (no feature is decoded), so that a tile
//! whose layers a path covers, with no other filtering to do, is relayed as it came.
//!
//! The message types are written by hand from `vector_tile.proto` 2.1 (no build
//! script, no protoc). prost does not keep unknown fields or extensions: a tile
//! that uses them loses them here, which can only remove data, never reveal it.
//!
//! Pure code: no I/O, no logging. It must never re-encode a tag it could not check.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use geo::{BooleanOps, Coord, LineString, MultiLineString, MultiPolygon, Polygon};
use prost::Message;

use super::FilterError;
use crate::spatial::{Fence, TileCoord, TileRects};

/// The largest tile, once decompressed, the filter accepts.
pub const MAX_TILE_BYTES: usize = 64 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `Tile` from vector_tile.proto 2.1.
#[derive(Clone, PartialEq, Message)]
pub struct Tile {
    #[prost(message, repeated, tag = "3")]
    pub layers: Vec<Layer>,
}

/// `Tile.Layer`.
#[derive(Clone, PartialEq, Message)]
pub struct Layer {
    #[prost(uint32, required, tag = "15", default = "1")]
    pub version: u32,
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub features: Vec<Feature>,
    #[prost(string, repeated, tag = "3")]
    pub keys: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub values: Vec<Value>,
    #[prost(uint32, optional, tag = "5", default = "4096")]
    pub extent: Option<u32>,
}

/// `Tile.Feature`.
#[derive(Clone, PartialEq, Message)]
pub struct Feature {
    #[prost(uint64, optional, tag = "1", default = "0")]
    pub id: Option<u64>,
    /// Pairs of indices into the layer's `keys` and `values`.
    #[prost(uint32, repeated, packed = "true", tag = "2")]
    pub tags: Vec<u32>,
    #[prost(enumeration = "GeomType", optional, tag = "3", default = "Unknown")]
    pub r#type: Option<i32>,
    #[prost(uint32, repeated, packed = "true", tag = "4")]
    pub geometry: Vec<u32>,
}

/// `Tile.Value`: exactly one field is set in a well-formed tile.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub float_value: Option<f32>,
    #[prost(double, optional, tag = "3")]
    pub double_value: Option<f64>,
    #[prost(int64, optional, tag = "4")]
    pub int_value: Option<i64>,
    #[prost(uint64, optional, tag = "5")]
    pub uint_value: Option<u64>,
    #[prost(sint64, optional, tag = "6")]
    pub sint_value: Option<i64>,
    #[prost(bool, optional, tag = "7")]
    pub bool_value: Option<bool>,
}

/// `Tile.GeomType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GeomType {
    Unknown = 0,
    Point = 1,
    LineString = 2,
    Polygon = 3,
}

/// Re-encodes a tile showing only the attributes named in `allowed` (empty: none).
///
/// ```
/// use prost::Message;
/// use tilegate::filter::mvt::{filter_tile, Feature, Layer, Tile, Value};
///
/// let text = |s: &str| Value { string_value: Some(s.into()), ..Default::default() };
/// let tile = Tile { layers: vec![Layer {
///     version: 2, name: "roads".into(), extent: Some(4096),
///     keys: vec!["name".into(), "secret".into()],
///     values: vec![text("Main St"), text("s")],
///     features: vec![Feature { tags: vec![0, 0, 1, 1], geometry: vec![9, 2, 2], r#type: Some(1), id: Some(7) }],
/// }]};
/// let out = Tile::decode(filter_tile(&tile.encode_to_vec(), &["name".to_string()]).unwrap().as_slice()).unwrap();
/// assert_eq!(out.layers[0].keys, vec!["name"]);
/// assert_eq!(out.layers[0].features[0].tags, vec![0, 0]);
/// ```
pub fn filter_tile(data: &[u8], allowed: &[String]) -> Result<Vec<u8>, FilterError> {
    filter_tile_with(data, &TileFilter { allowed: Some(allowed), layers: None, clip: None })
}

/// What [`filter_tile_with`] does to a tile.
#[derive(Clone, Copy, Debug, Default)]
pub struct TileFilter<'a> {
    /// The attributes shown; `None` shows every attribute.
    pub allowed: Option<&'a [String]>,
    /// The layers kept; `None` keeps every layer.
    pub layers: Option<&'a [String]>,
    /// The fence and the tile's address, for a tile that only partly overlaps it.
    pub clip: Option<(&'a Fence, TileCoord)>,
}

/// Re-encodes a tile: layers not in `filter.layers` dropped, attributes not in
/// `filter.allowed` dropped, and with `filter.clip` every feature clipped to the fence.
///
/// ```
/// use prost::Message;
/// use tilegate::filter::mvt::{filter_tile_with, Feature, Layer, Tile, TileFilter};
/// use tilegate::spatial::{Fence, TileCoord};
///
/// let point = |x: u32, y: u32| Feature { geometry: vec![9, x << 1, y << 1], r#type: Some(1), ..Default::default() };
/// let layer = |name: &str| Layer {
///     version: 2, name: name.into(), extent: Some(4096), keys: vec![], values: vec![],
///     features: vec![point(100, 100), point(3000, 100)],
/// };
/// let tile = Tile { layers: vec![layer("roads"), layer("secret")] };
/// // The fence is the western half of tile 1/0/0.
/// let fence = Fence::new(Some(&[(2, 0, 0), (2, 0, 1)]), None).unwrap();
/// let filter = TileFilter {
///     allowed: None,
///     layers: Some(&["roads".to_string()]),
///     clip: Some((&fence, TileCoord::new(1, 0, 0).unwrap())),
/// };
/// let out = Tile::decode(filter_tile_with(&tile.encode_to_vec(), &filter).unwrap().as_slice()).unwrap();
/// assert_eq!(out.layers.len(), 1);
/// assert_eq!(out.layers[0].features, vec![point(100, 100)]);
/// ```
pub fn filter_tile_with(data: &[u8], filter: &TileFilter<'_>) -> Result<Vec<u8>, FilterError> {
    let gzipped = data.starts_with(&GZIP_MAGIC);
    let raw;
    let protobuf = if gzipped {
        raw = gunzip(data)?;
        raw.as_slice()
    } else {
        data
    };
    let mut tile = Tile::decode(protobuf).map_err(FilterError::MvtDecode)?;
    if let Some(kept) = filter.layers {
        tile.layers.retain(|l| kept.contains(&l.name));
    }
    for layer in &mut tile.layers {
        if let Some((fence, address)) = filter.clip {
            clip_layer(layer, fence, address)?;
        }
        match filter.allowed {
            Some(allowed) => filter_layer(layer, |key| allowed.iter().any(|a| a == key))?,
            // Clipping dropped features: their values leave the tables with them.
            None if filter.clip.is_some() => filter_layer(layer, |_| true)?,
            None => {}
        }
    }
    tile.layers.retain(|l| !l.features.is_empty() || filter.clip.is_none());
    let encoded = tile.encode_to_vec();
    if gzipped {
        gzip(&encoded)
    } else {
        Ok(encoded)
    }
}

/// Whether every layer of the tile is one of `layers`, read from the layer names
/// alone, without decoding a feature: then a tile that needs no other filtering can
/// be relayed as the upstream sent it.
///
/// It walks the tile message's top-level fields (field 3, `layers`) and in each layer
/// only its field 1 (`name`), skipping every other field by its wire type. Anything it
/// does not read with certainty answers `false`, and the caller re-encodes the tile
/// (where a malformed tile is an error): a top-level field other than `layers`
/// (unknown fields and extensions would be relayed unread), a layer without a name or
/// with two (a protobuf reader takes the last; the first could pass here while a client
/// reads the other), group wire types, a truncated field. A gzipped tile is gunzipped
/// (bounded by [`MAX_TILE_BYTES`]) to be read.
///
/// ```
/// use prost::Message;
/// use tilegate::filter::mvt::{only_layers, Layer, Tile};
///
/// let layer = |name: &str| Layer { version: 2, name: name.into(), extent: Some(4096), ..Default::default() };
/// let tile = Tile { layers: vec![layer("roads"), layer("water")] }.encode_to_vec();
/// assert!(only_layers(&tile, &["roads".into(), "water".into()]).unwrap());
/// assert!(!only_layers(&tile, &["roads".into()]).unwrap());
/// ```
pub fn only_layers(data: &[u8], layers: &[String]) -> Result<bool, FilterError> {
    let raw;
    let mut rest = if data.starts_with(&GZIP_MAGIC) {
        raw = gunzip(data)?;
        raw.as_slice()
    } else {
        data
    };
    while !rest.is_empty() {
        let Some((key, body, after)) = next_field(rest) else { return Ok(false) };
        rest = after;
        // Field 3, length-delimited: a layer. Anything else is not read here.
        let Some(layer) = body.filter(|_| key == ((3 << 3) | 2)) else { return Ok(false) };
        match layer_name(layer) {
            Some(name) if layers.iter().any(|l| l.as_bytes() == name) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// A layer message's one `name` (field 1); `None` without one, with two, or when a
/// field does not read.
fn layer_name(mut layer: &[u8]) -> Option<&[u8]> {
    let mut name = None;
    while !layer.is_empty() {
        let (key, body, after) = next_field(layer)?;
        layer = after;
        if key >> 3 == 0 {
            return None;
        }
        if key >> 3 == 1 {
            if name.is_some() || key & 7 != 2 {
                return None;
            }
            name = body;
        }
    }
    name
}

/// One protobuf field: its key, its bytes when length-delimited, and what follows.
type Field<'a> = (u64, Option<&'a [u8]>, &'a [u8]);

/// The next protobuf field of `data`; `None` for a truncated field, a bad varint or a
/// group (wire types 3 and 4).
fn next_field(data: &[u8]) -> Option<Field<'_>> {
    let (key, rest) = varint(data)?;
    match key & 7 {
        0 => varint(rest).map(|(_, after)| (key, None, after)),
        1 => rest.get(8..).map(|after| (key, None, after)),
        5 => rest.get(4..).map(|after| (key, None, after)),
        2 => {
            let (len, rest) = varint(rest)?;
            let len = usize::try_from(len).ok()?;
            (len <= rest.len()).then(|| (key, Some(&rest[..len]), &rest[len..]))
        }
        _ => None,
    }
}

/// A base-128 varint (at most 10 bytes) and what follows it.
fn varint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

/// Drops hidden tags and compacts the layer's tables. Fails on a tag that points
/// outside them, before anything is changed in the layer.
fn filter_layer(layer: &mut Layer, allowed: impl Fn(&str) -> bool) -> Result<(), FilterError> {
    const UNUSED: u32 = u32::MAX;
    let key_allowed: Vec<bool> = layer.keys.iter().map(|k| allowed(k)).collect();
    let mut key_map = vec![UNUSED; layer.keys.len()];
    let mut value_map = vec![UNUSED; layer.values.len()];
    for (index, feature) in layer.features.iter().enumerate() {
        let bad = |reason: String| FilterError::MvtTags { layer: layer.name.clone(), feature: index, reason };
        if feature.tags.len() % 2 != 0 {
            return Err(bad(format!("{} tag indices; they must come in key/value pairs", feature.tags.len())));
        }
        for pair in feature.tags.chunks_exact(2) {
            let (key, value) = (pair[0] as usize, pair[1] as usize);
            if key >= layer.keys.len() {
                return Err(bad(format!("key index {key} is out of range; the layer has {} keys", layer.keys.len())));
            }
            if value >= layer.values.len() {
                return Err(bad(format!(
                    "value index {value} is out of range; the layer has {} values",
                    layer.values.len()
                )));
            }
            if key_allowed[key] {
                key_map[key] = 0;
                value_map[value] = 0;
            }
        }
    }
    let keys = compact(std::mem::take(&mut layer.keys), &mut key_map);
    let values = compact(std::mem::take(&mut layer.values), &mut value_map);
    layer.keys = keys;
    layer.values = values;
    for feature in &mut layer.features {
        let mut kept = Vec::with_capacity(feature.tags.len());
        for pair in feature.tags.chunks_exact(2) {
            let key = key_map[pair[0] as usize];
            if key != UNUSED {
                // INVARIANT: a used key marks its value used, so the value is mapped too.
                kept.extend_from_slice(&[key, value_map[pair[1] as usize]]);
            }
        }
        feature.tags = kept;
    }
    Ok(())
}

/// Clips every feature of `layer` to the fence around tile `address`; features left
/// with no geometry are dropped.
fn clip_layer(layer: &mut Layer, fence: &Fence, address: TileCoord) -> Result<(), FilterError> {
    let extent = f64::from(layer.extent.unwrap_or(4096).max(1));
    let rects = TileRects::new(fence, address, extent);
    let mut region: Option<MultiPolygon<f64>> = None;
    let features = std::mem::take(&mut layer.features);
    let mut kept = Vec::with_capacity(features.len());
    for (index, mut feature) in features.into_iter().enumerate() {
        let bad = |reason: String| FilterError::MvtGeometry { layer: layer.name.clone(), feature: index, reason };
        let kind = feature.r#type.unwrap_or(0);
        let parts = decode_geometry(&feature.geometry, kind).map_err(bad)?;
        let Some(bounds) = bounds(&parts) else { continue };
        if rects.holds(bounds) {
            kept.push(feature);
            continue;
        }
        if !rects.meets(bounds) {
            continue;
        }
        let region = region.get_or_insert_with(|| {
            let cells: Vec<Polygon<f64>> =
                rects.rects.iter().map(|r| geo::Rect::new((r[0], r[1]), (r[2], r[3])).to_polygon()).collect();
            geo::unary_union(&cells)
        });
        let clipped = match GeomType::try_from(kind) {
            Ok(GeomType::Point) => {
                let points: Vec<(i64, i64)> =
                    parts.into_iter().flatten().filter(|&(x, y)| rects.contains(x as f64, y as f64)).collect();
                if points.is_empty() {
                    continue;
                }
                encode_points(&points)
            }
            Ok(GeomType::LineString) => {
                let lines = MultiLineString::new(parts.iter().map(|p| line_string(p)).collect());
                let cut = region.clip(&lines, false);
                let parts: Vec<Vec<(i64, i64)>> =
                    cut.0.iter().map(|l| snap(l.coords())).filter(|p| p.len() >= 2).collect();
                if parts.is_empty() {
                    continue;
                }
                encode_parts(&parts, false)
            }
            Ok(GeomType::Polygon) => {
                // Each ring as a polygon of its own: the even-odd rule makes holes holes.
                let rings = MultiPolygon::new(parts.iter().map(|p| Polygon::new(line_string(p), vec![])).collect());
                let cut = region.intersection(&rings);
                let mut rings_out = Vec::new();
                for polygon in &cut.0 {
                    if let Some(ring) = oriented_ring(polygon.exterior(), true) {
                        rings_out.push(ring);
                        rings_out.extend(polygon.interiors().iter().filter_map(|r| oriented_ring(r, false)));
                    }
                }
                if rings_out.is_empty() {
                    continue;
                }
                encode_parts(&rings_out, true)
            }
            // An unknown geometry type cannot be judged against the fence.
            _ => return Err(bad(format!("geometry type {kind} cannot be clipped"))),
        };
        feature.geometry = clipped;
        kept.push(feature);
    }
    layer.features = kept;
    Ok(())
}

/// The parts of an MVT geometry in tile coordinates: one per MoveTo for lines and
/// polygon rings (rings without the closing point), all points in one for points.
fn decode_geometry(geometry: &[u32], kind: i32) -> Result<Vec<Vec<(i64, i64)>>, String> {
    let zigzag = |v: u32| i64::from((v >> 1) as i32 ^ -((v & 1) as i32));
    let (mut x, mut y) = (0i64, 0i64);
    let mut parts: Vec<Vec<(i64, i64)>> = Vec::new();
    let mut i = 0;
    while i < geometry.len() {
        let (command, count) = (geometry[i] & 7, (geometry[i] >> 3) as usize);
        i += 1;
        match command {
            1 | 2 => {
                if geometry.len() - i < 2 * count {
                    return Err("the geometry ends inside a command".into());
                }
                if command == 2 && parts.is_empty() {
                    return Err("LineTo before any MoveTo".into());
                }
                for pair in geometry[i..i + 2 * count].chunks_exact(2) {
                    x += zigzag(pair[0]);
                    y += zigzag(pair[1]);
                    if command == 1 && (kind != GeomType::Point as i32 || parts.is_empty()) {
                        parts.push(Vec::new());
                    }
                    // INVARIANT: a part was pushed above or before.
                    if let Some(part) = parts.last_mut() {
                        part.push((x, y));
                    }
                }
                i += 2 * count;
            }
            7 if count == 1 => {}
            other => return Err(format!("command {other} with count {count} is not MVT 2.1")),
        }
    }
    Ok(parts)
}

/// `[min_x, min_y, max_x, max_y]` of every vertex, `None` for no vertex.
fn bounds(parts: &[Vec<(i64, i64)>]) -> Option<[f64; 4]> {
    let mut points = parts.iter().flatten();
    let &(x, y) = points.next()?;
    let mut b = [x, y, x, y];
    for &(x, y) in points {
        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
    }
    Some(b.map(|v| v as f64))
}

fn line_string(part: &[(i64, i64)]) -> LineString<f64> {
    LineString::new(part.iter().map(|&(x, y)| Coord { x: x as f64, y: y as f64 }).collect())
}

/// Coordinates rounded onto the integer grid, repeated points removed.
fn snap<'c>(coords: impl Iterator<Item = &'c Coord<f64>>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for c in coords {
        let p = (c.x.round() as i64, c.y.round() as i64);
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// A ring on the integer grid without its closing point, wound as MVT 2.1 wants it
/// (exterior: positive area in y-down coordinates); `None` when it collapsed.
fn oriented_ring(ring: &LineString<f64>, exterior: bool) -> Option<Vec<(i64, i64)>> {
    let mut points = snap(ring.coords());
    if points.len() > 1 && points.first() == points.last() {
        points.pop();
    }
    if points.len() < 3 {
        return None;
    }
    let area: i128 = (0..points.len())
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % points.len()]);
            i128::from(a.0) * i128::from(b.1) - i128::from(b.0) * i128::from(a.1)
        })
        .sum();
    if area == 0 {
        return None;
    }
    if (area > 0) != exterior {
        points.reverse();
    }
    Some(points)
}

fn command(id: u32, count: usize) -> u32 {
    // INVARIANT: counts come from geometries decoded from u32 commands, far below 2^29.
    (id & 7) | ((count as u32) << 3)
}

fn zigzag(v: i64) -> u32 {
    // INVARIANT: deltas between tile coordinates that came from i32 deltas, rounded.
    let v = v as i32;
    ((v << 1) ^ (v >> 31)) as u32
}

fn encode_points(points: &[(i64, i64)]) -> Vec<u32> {
    let mut out = vec![command(1, points.len())];
    let mut cursor = (0i64, 0i64);
    for &p in points {
        out.extend([zigzag(p.0 - cursor.0), zigzag(p.1 - cursor.1)]);
        cursor = p;
    }
    out
}

/// Lines (`close` false) or polygon rings (`close` true) as MVT commands.
fn encode_parts(parts: &[Vec<(i64, i64)>], close: bool) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cursor = (0i64, 0i64);
    for part in parts {
        let Some((&first, rest)) = part.split_first() else { continue };
        out.extend([command(1, 1), zigzag(first.0 - cursor.0), zigzag(first.1 - cursor.1)]);
        cursor = first;
        out.push(command(2, rest.len()));
        for &p in rest {
            out.extend([zigzag(p.0 - cursor.0), zigzag(p.1 - cursor.1)]);
            cursor = p;
        }
        if close {
            out.push(command(7, 1));
        }
    }
    out
}

/// Keeps the entries marked used (`map[i] != u32::MAX`), in order, and rewrites
/// `map` to give each kept entry its new index.
fn compact<T>(entries: Vec<T>, map: &mut [u32]) -> Vec<T> {
    let mut kept = Vec::new();
    for (entry, slot) in entries.into_iter().zip(map.iter_mut()) {
        if *slot != u32::MAX {
            // INVARIANT: fewer than u32::MAX entries, since indices into them are u32.
            *slot = kept.len() as u32;
            kept.push(entry);
        }
    }
    kept
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, FilterError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(MAX_TILE_BYTES));
    MultiGzDecoder::new(data).take(MAX_TILE_BYTES as u64 + 1).read_to_end(&mut out).map_err(FilterError::Gzip)?;
    if out.len() > MAX_TILE_BYTES {
        return Err(FilterError::TileTooLarge { limit: MAX_TILE_BYTES });
    }
    Ok(out)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, FilterError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 2), Compression::default());
    encoder.write_all(data).map_err(FilterError::Gzip)?;
    encoder.finish().map_err(FilterError::Gzip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value { string_value: Some(s.into()), ..Default::default() }
    }

    fn allowed(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Two layers with every value type, values shared between features and keys.
    fn fixture() -> Tile {
        let values = vec![
            text("Main St"),                                            // 0
            Value { float_value: Some(1.5), ..Default::default() },     // 1
            Value { double_value: Some(2.25), ..Default::default() },   // 2
            Value { int_value: Some(-3), ..Default::default() },        // 3
            Value { uint_value: Some(u64::MAX), ..Default::default() }, // 4
            Value { sint_value: Some(-4), ..Default::default() },       // 5
            Value { bool_value: Some(true), ..Default::default() },     // 6
            text("secret"),                                             // 7
        ];
        let roads = Layer {
            version: 2,
            name: "roads".into(),
            keys: allowed(&["name", "width", "area", "delta", "big", "offset", "paved", "owner"]),
            values,
            extent: Some(4096),
            features: vec![
                Feature {
                    id: Some(1),
                    tags: vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7],
                    r#type: Some(GeomType::LineString as i32),
                    geometry: vec![9, 4, 4, 10, 2, 2],
                },
                // Shares the value "Main St" under the hidden key, and `paved` with the first.
                Feature {
                    id: Some(2),
                    tags: vec![7, 0, 6, 6],
                    r#type: Some(GeomType::Point as i32),
                    geometry: vec![9, 8, 8],
                },
                Feature { id: None, tags: vec![], r#type: Some(GeomType::Point as i32), geometry: vec![9, 1, 1] },
            ],
        };
        let pois = Layer {
            version: 2,
            name: "pois".into(),
            keys: allowed(&["owner", "name"]),
            values: vec![text("x"), text("Cafe")],
            extent: Some(512),
            features: vec![Feature {
                id: Some(9),
                tags: vec![0, 0, 1, 1],
                r#type: Some(GeomType::Point as i32),
                geometry: vec![9, 2, 2],
            }],
        };
        Tile { layers: vec![roads, pois] }
    }

    /// Each feature's attributes as (key, value) pairs, resolved through the tables.
    fn attributes(layer: &Layer) -> Vec<Vec<(String, Value)>> {
        layer
            .features
            .iter()
            .map(|f| {
                f.tags
                    .chunks_exact(2)
                    .map(|p| (layer.keys[p[0] as usize].clone(), layer.values[p[1] as usize].clone()))
                    .collect()
            })
            .collect()
    }

    fn run(tile: &Tile, names: &[&str]) -> Tile {
        let out = filter_tile(&tile.encode_to_vec(), &allowed(names)).unwrap();
        Tile::decode(out.as_slice()).unwrap()
    }

    #[test]
    fn hidden_attributes_are_removed_and_tables_compacted() {
        let input = fixture();
        let out = run(&input, &["name", "width", "big", "paved"]);
        let roads = &out.layers[0];
        assert_eq!(roads.keys, allowed(&["name", "width", "big", "paved"]));
        assert_eq!(
            roads.values,
            vec![
                text("Main St"),
                Value { float_value: Some(1.5), ..Default::default() },
                Value { uint_value: Some(u64::MAX), ..Default::default() },
                Value { bool_value: Some(true), ..Default::default() },
            ]
        );
        let expected: Vec<Vec<(String, Value)>> = attributes(&input.layers[0])
            .into_iter()
            .map(|f| f.into_iter().filter(|(k, _)| ["name", "width", "big", "paved"].contains(&k.as_str())).collect())
            .collect();
        assert_eq!(attributes(roads), expected);
        let pois = &out.layers[1];
        assert_eq!(pois.keys, allowed(&["name"]));
        assert_eq!(pois.values, vec![text("Cafe")]);
        assert_eq!(pois.features[0].tags, vec![0, 0]);
    }

    #[test]
    fn geometry_and_layer_metadata_are_untouched() {
        let input = fixture();
        let out = run(&input, &["name"]);
        for (a, b) in input.layers.iter().zip(&out.layers) {
            assert_eq!((a.version, &a.name, a.extent), (b.version, &b.name, b.extent));
            for (fa, fb) in a.features.iter().zip(&b.features) {
                assert_eq!((fa.id, fa.r#type, &fa.geometry), (fb.id, fb.r#type, &fb.geometry));
            }
        }
    }

    #[test]
    fn every_value_type_survives_a_round_trip() {
        let names = ["name", "width", "area", "delta", "big", "offset", "paved", "owner"];
        let input = fixture();
        let out = run(&input, &names);
        assert_eq!(attributes(&out.layers[0]), attributes(&input.layers[0]));
        assert_eq!(out, input);
    }

    #[test]
    fn an_empty_fence_keeps_geometry_only() {
        let out = run(&fixture(), &[]);
        for layer in &out.layers {
            assert!(layer.keys.is_empty() && layer.values.is_empty());
            assert!(layer.features.iter().all(|f| f.tags.is_empty() && !f.geometry.is_empty()));
        }
        assert_eq!(out.layers[0].features.len(), 3);
    }

    #[test]
    fn gzipped_tiles_come_back_gzipped() {
        let raw = fixture().encode_to_vec();
        let out = filter_tile(&gzip(&raw).unwrap(), &allowed(&["name"])).unwrap();
        assert_eq!(&out[..2], &GZIP_MAGIC);
        let decoded = Tile::decode(gunzip(&out).unwrap().as_slice()).unwrap();
        assert_eq!(decoded, run(&fixture(), &["name"]));
    }

    #[test]
    fn out_of_range_and_odd_tags_are_refused() {
        for tags in [vec![8, 0], vec![0, 8], vec![0, 0, 1], vec![u32::MAX, 0]] {
            let mut tile = fixture();
            tile.layers[0].features[1].tags = tags.clone();
            let err = filter_tile(&tile.encode_to_vec(), &allowed(&["name"])).unwrap_err();
            assert!(
                matches!(err, FilterError::MvtTags { ref layer, feature: 1, .. } if layer == "roads"),
                "{tags:?}: {err}"
            );
        }
        // Even a hidden key must point inside the table.
        let mut tile = fixture();
        tile.layers[1].features[0].tags = vec![0, 5];
        assert!(filter_tile(&tile.encode_to_vec(), &allowed(&["name"])).is_err());
    }

    #[test]
    fn what_does_not_decode_is_refused() {
        let err = filter_tile(b"\x1a\xff\xff\xff", &allowed(&["name"])).unwrap_err();
        assert!(matches!(err, FilterError::MvtDecode(_)), "{err}");
        let err = filter_tile(b"\x1f\x8b\x08\x00garbage", &allowed(&["name"])).unwrap_err();
        assert!(matches!(err, FilterError::Gzip(_)), "{err}");
        let mut gz = gzip(&fixture().encode_to_vec()).unwrap();
        gz.truncate(gz.len() - 10);
        assert!(filter_tile(&gz, &allowed(&["name"])).is_err());
    }

    #[test]
    fn an_empty_tile_stays_empty() {
        assert_eq!(filter_tile(b"", &allowed(&["name"])).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn decompression_is_bounded() {
        // Gzip members concatenate: 65 members of 1 MiB each inflate past the limit.
        let member = gzip(&vec![0u8; 1 << 20]).unwrap();
        let bomb = member.repeat((MAX_TILE_BYTES >> 20) + 1);
        let err = filter_tile(&bomb, &allowed(&["name"])).unwrap_err();
        assert!(matches!(err, FilterError::TileTooLarge { .. }), "{err}");
    }

    /// Fence: the western half of tile 1/0/0 (zoom-2 tiles 0/0 and 0/1), so in that
    /// tile's coordinates x < 2048 is inside.
    fn west_half() -> (Fence, TileCoord) {
        (Fence::new(Some(&[(2, 0, 0), (2, 0, 1)]), None).unwrap(), TileCoord::new(1, 0, 0).unwrap())
    }

    fn clip_run(tile: &Tile, fence: &Fence, at: TileCoord, allowed: Option<&[String]>) -> Tile {
        let filter = TileFilter { allowed, layers: None, clip: Some((fence, at)) };
        Tile::decode(filter_tile_with(&tile.encode_to_vec(), &filter).unwrap().as_slice()).unwrap()
    }

    fn layer_of(features: Vec<Feature>, keys: &[&str], values: Vec<Value>) -> Layer {
        Layer { version: 2, name: "l".into(), features, keys: allowed(keys), values, extent: Some(4096) }
    }

    fn line(points: &[(i64, i64)]) -> Feature {
        Feature {
            geometry: encode_parts(&[points.to_vec()], false),
            r#type: Some(GeomType::LineString as i32),
            ..Default::default()
        }
    }

    fn polygon(ring: &[(i64, i64)]) -> Feature {
        Feature {
            geometry: encode_parts(&[ring.to_vec()], true),
            r#type: Some(GeomType::Polygon as i32),
            ..Default::default()
        }
    }

    fn vertices(f: &Feature) -> Vec<(i64, i64)> {
        decode_geometry(&f.geometry, f.r#type.unwrap()).unwrap().into_iter().flatten().collect()
    }

    #[test]
    fn a_line_crossing_the_fence_ends_at_the_fence() {
        let (fence, at) = west_half();
        let tile = Tile { layers: vec![layer_of(vec![line(&[(1000, 100), (3000, 100)])], &[], vec![])] };
        let out = clip_run(&tile, &fence, at, None);
        assert_eq!(vertices(&out.layers[0].features[0]), vec![(1000, 100), (2048, 100)]);
    }

    #[test]
    fn a_polygon_crossing_the_fence_is_cut_and_keeps_mvt_winding() {
        let (fence, at) = west_half();
        // Clockwise on screen (y down): exterior.
        let square = [(1000, 1000), (3000, 1000), (3000, 2000), (1000, 2000)];
        let tile = Tile { layers: vec![layer_of(vec![polygon(&square)], &[], vec![])] };
        let out = clip_run(&tile, &fence, at, None);
        let f = &out.layers[0].features[0];
        let ring = decode_geometry(&f.geometry, GeomType::Polygon as i32).unwrap().remove(0);
        assert!(ring.iter().all(|&(x, _)| (1000..=2048).contains(&x)), "{ring:?}");
        assert!(ring.contains(&(2048, 1000)) && ring.contains(&(2048, 2000)));
        let area: i64 = (0..ring.len())
            .map(|i| {
                let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        assert_eq!(area, 2 * 1048 * 1000, "exterior: positive area in y-down coordinates");
    }

    #[test]
    fn features_outside_are_dropped_with_their_values() {
        let (fence, at) = west_half();
        let pt = |x: i64, y: i64, tags: Vec<u32>| Feature {
            geometry: encode_points(&[(x, y)]),
            r#type: Some(GeomType::Point as i32),
            tags,
            id: None,
        };
        let features = vec![
            pt(100, 100, vec![0, 0]),
            pt(3000, 100, vec![0, 1]),
            line(&[(2500, 10), (4000, 10)]),
            polygon(&[(2500, 10), (3500, 10), (3500, 900), (2500, 900)]),
        ];
        let tile = Tile { layers: vec![layer_of(features, &["name"], vec![text("inside"), text("outside secret")])] };
        let out = clip_run(&tile, &fence, at, None);
        let l = &out.layers[0];
        assert_eq!(l.features.len(), 1);
        assert_eq!(vertices(&l.features[0]), vec![(100, 100)]);
        assert_eq!(l.values, vec![text("inside")], "an outside feature's values leave with it");
        // The property fence runs in the same pass.
        let out = clip_run(&tile, &fence, at, Some(&[]));
        assert!(out.layers[0].keys.is_empty() && out.layers[0].values.is_empty());
    }

    #[test]
    fn the_buffer_keeps_what_lies_inside_the_fence_next_door() {
        // Fence 1/1/0 is the tile east of 1/0/0: the buffer past x = 4096 is inside it.
        let fence = Fence::new(Some(&[(1, 0, 0), (1, 1, 0)]), None).unwrap();
        let at = TileCoord::new(2, 1, 0).unwrap(); // inside 1/0/0, at its east edge
        let tile = Tile { layers: vec![layer_of(vec![line(&[(4000, 100), (4150, 100)])], &[], vec![])] };
        let out = clip_run(&tile, &fence, at, None);
        assert_eq!(vertices(&out.layers[0].features[0]), vec![(4000, 100), (4150, 100)]);
        // With only 2/1/0 fenced, the buffer east of the tile is cut off.
        let fence = Fence::new(Some(&[(2, 1, 0), (3, 2, 2)]), None).unwrap();
        let out = clip_run(&tile, &fence, at, None);
        assert_eq!(vertices(&out.layers[0].features[0]), vec![(4000, 100), (4096, 100)]);
    }

    #[test]
    fn layers_the_path_does_not_cover_are_dropped() {
        let filter = TileFilter { allowed: None, layers: Some(&["pois".to_string()]), clip: None };
        let out = Tile::decode(filter_tile_with(&fixture().encode_to_vec(), &filter).unwrap().as_slice()).unwrap();
        assert_eq!(out.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["pois"]);
        assert_eq!(out.layers[0], fixture().layers[1], "a kept layer is untouched");
    }

    #[test]
    fn geometry_that_does_not_decode_is_refused_when_clipping() {
        let (fence, at) = west_half();
        for geometry in
            [vec![9, 4], vec![10, 2, 2], vec![(1 << 3) | 3], vec![(2 << 3) | 7], vec![9, 4000, 4000, 3 << 3 | 2, 1, 1]]
        {
            let mut f = line(&[(0, 0), (1, 1)]);
            f.geometry = geometry.clone();
            let tile = Tile { layers: vec![layer_of(vec![f], &[], vec![])] };
            let filter = TileFilter { allowed: None, layers: None, clip: Some((&fence, at)) };
            let err = filter_tile_with(&tile.encode_to_vec(), &filter).unwrap_err();
            assert!(matches!(err, FilterError::MvtGeometry { .. }), "{geometry:?}: {err}");
        }
    }

    #[test]
    fn the_clipper_survives_every_fuzz_seed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/mvt");
        let fence = Fence::new(Some(&[(3, 4, 2)]), None).unwrap();
        let at = TileCoord::new(2, 2, 1).unwrap();
        let names = allowed(&["name"]);
        let mut seeds = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let filter = TileFilter { allowed: Some(&names), layers: None, clip: Some((&fence, at)) };
            if let Ok(out) = filter_tile_with(&data, &filter) {
                let raw = if out.starts_with(&GZIP_MAGIC) { gunzip(&out).unwrap() } else { out };
                Tile::decode(raw.as_slice()).expect("a clipped tile decodes");
            }
            seeds += 1;
        }
        assert!(seeds > 0);
    }
}

#[cfg(test)]
mod layer_scan_tests {
    use super::*;

    fn layer(name: &str) -> Layer {
        Layer {
            version: 2,
            name: name.into(),
            extent: Some(4096),
            keys: vec!["k".into()],
            values: vec![Value { string_value: Some("v".into()), ..Default::default() }],
            features: vec![Feature { id: Some(1), tags: vec![0, 0], r#type: Some(1), geometry: vec![9, 4, 4] }],
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn covered_layers_are_read_from_their_names_alone() {
        let tile = Tile { layers: vec![layer("roads"), layer("water"), layer("roads")] }.encode_to_vec();
        assert!(only_layers(&tile, &names(&["roads", "water"])).unwrap());
        assert!(!only_layers(&tile, &names(&["roads"])).unwrap());
        assert!(!only_layers(&tile, &names(&[])).unwrap());
        assert!(only_layers(&Tile::default().encode_to_vec(), &names(&["roads"])).unwrap(), "an empty tile");
        assert!(only_layers(&gzip(&tile).unwrap(), &names(&["roads", "water"])).unwrap(), "gzipped");
        assert!(!only_layers(&gzip(&tile).unwrap(), &names(&["water"])).unwrap(), "gzipped");
    }

    #[test]
    fn a_second_name_in_a_layer_is_not_read_as_the_first() {
        // prost (and every protobuf reader) takes the last `name`: `private` here.
        let mut l = layer("roads").encode_to_vec();
        l.extend(Layer { name: "private".into(), ..Default::default() }.encode_to_vec().iter().copied().take(9));
        let decoded = Layer::decode(l.as_slice()).unwrap();
        assert_eq!(decoded.name, "private");
        let mut tile = vec![(3 << 3) | 2];
        prost::encoding::encode_varint(l.len() as u64, &mut tile);
        tile.extend(&l);
        assert!(!only_layers(&tile, &names(&["roads"])).unwrap());
        // Re-encoded instead: the layer is read as `private` and dropped.
        let filter = TileFilter { allowed: None, layers: Some(&names(&["roads"])), clip: None };
        assert!(Tile::decode(filter_tile_with(&tile, &filter).unwrap().as_slice()).unwrap().layers.is_empty());
    }

    #[test]
    fn what_the_scan_cannot_read_goes_to_the_decoder() {
        let tile = Tile { layers: vec![layer("roads")] }.encode_to_vec();
        let covered = names(&["roads"]);
        // An unknown top-level field (an extension would be relayed unread).
        let mut extra = tile.clone();
        extra.extend([16 << 3, 1]);
        assert!(!only_layers(&extra, &covered).unwrap());
        // Truncated, a group wire type, a layer without a name, garbage.
        assert!(!only_layers(&tile[..tile.len() - 1], &covered).unwrap());
        assert!(!only_layers(&[(3 << 3) | 3, 0], &covered).unwrap());
        // A layer holding only `version = 2` (field 15, varint).
        assert!(!only_layers(&[(3 << 3) | 2, 2, 15 << 3, 2], &names(&[""])).unwrap());
        assert!(!only_layers(b"<html>not a tile</html>", &covered).unwrap());
        assert!(only_layers(b"\x1f\x8bnot gzip", &covered).is_err(), "a broken gzip stream is an error");
    }
}
