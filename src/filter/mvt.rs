//! The vector tile filter: re-encodes a Mapbox Vector Tile (2.1) without the
//! attributes outside a token's property fence.
//!
//! [`filter_tile`] decodes the tile (gunzipping it first when it starts with the
//! gzip magic bytes, bounded by [`MAX_TILE_BYTES`]), drops from every feature the
//! tags whose key is not allowed, rebuilds each layer's `keys` and `values` tables
//! with only what the remaining tags use (indices remapped, order kept), and
//! encodes it again, gzipped again if it came gzipped. Geometry, ids, layer names,
//! versions and extents are untouched.
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
use prost::Message;

use super::FilterError;

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
    let gzipped = data.starts_with(&GZIP_MAGIC);
    let raw;
    let protobuf = if gzipped {
        raw = gunzip(data)?;
        raw.as_slice()
    } else {
        data
    };
    let mut tile = Tile::decode(protobuf).map_err(FilterError::MvtDecode)?;
    for layer in &mut tile.layers {
        filter_layer(layer, allowed)?;
    }
    let encoded = tile.encode_to_vec();
    if gzipped {
        gzip(&encoded)
    } else {
        Ok(encoded)
    }
}

/// Drops hidden tags and compacts the layer's tables. Fails on a tag that points
/// outside them, before anything is changed in the layer.
fn filter_layer(layer: &mut Layer, allowed: &[String]) -> Result<(), FilterError> {
    const UNUSED: u32 = u32::MAX;
    let key_allowed: Vec<bool> = layer.keys.iter().map(|k| allowed.iter().any(|a| a == k)).collect();
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
}
