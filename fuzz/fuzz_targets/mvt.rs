//! The MVT re-encoder (`filter/mvt.rs`) showing `name` and `kept` (odd-length inputs also
//! clipped to a fence that straddles the tile): on success the
//! output (gunzipped when it is gzip) decodes with prost, every layer's `keys` are
//! allowed, and every feature's tags are pairs of valid key and value indices.
#![no_main]

use std::io::Read;

use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tilegate::fuzzing::{self, MvtTile, ALLOWED_PROPERTIES};

fuzz_target!(|data: &[u8]| {
    let Ok(out) = fuzzing::mvt_filter(data) else { return };
    let raw = if out.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        if let Err(e) = MultiGzDecoder::new(out.as_slice()).read_to_end(&mut raw) {
            panic!("the re-encoded tile is gzip that does not decompress: {e}");
        }
        raw
    } else {
        out
    };
    let tile = match MvtTile::decode(raw.as_slice()) {
        Ok(t) => t,
        Err(e) => panic!("the re-encoded tile does not decode: {e}"),
    };
    for layer in &tile.layers {
        for key in &layer.keys {
            assert!(ALLOWED_PROPERTIES.contains(&key.as_str()), "layer `{}` keeps hidden key `{key}`", layer.name);
        }
        for feature in &layer.features {
            assert!(feature.tags.len() % 2 == 0, "layer `{}`: odd tag count", layer.name);
            for pair in feature.tags.chunks(2) {
                assert!((pair[0] as usize) < layer.keys.len(), "layer `{}`: key index out of range", layer.name);
                assert!((pair[1] as usize) < layer.values.len(), "layer `{}`: value index out of range", layer.name);
            }
        }
    }
});
