//! The PMTiles v3 reader (`pmtiles::format`, `pmtiles::range`) on hostile bytes: an
//! archive on object storage is only as trusted as the bucket. The header parses or is
//! refused; a directory decodes into entries in tile-id order in which every entry's
//! own tile id is found again; tile ids and `(z, x, y)` round-trip; a `Range` header
//! either is refused or names bytes inside the archive.
//!
//! Input: any bytes (read as a header, a directory, a tile id and, as text, a `Range`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::{
    pmtiles_directory, pmtiles_find, pmtiles_range, pmtiles_tile_id, pmtiles_tile_of, PmtilesAsked, PmtilesHeader,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = PmtilesHeader::parse(data) {
        let _ = h.sections();
    }
    if let Ok(entries) = pmtiles_directory(data) {
        assert!(entries.windows(2).all(|w| w[0].tile_id <= w[1].tile_id), "entries out of order");
        for e in entries.iter().take(256) {
            assert!(pmtiles_find(&entries, e.tile_id).is_some(), "entry {e:?} not found again");
        }
    }
    if data.len() >= 8 {
        let raw = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        // Every id below the first of zoom 27 is a tile of zoom 0..=26.
        let id = raw % (((1u64 << 54) - 1) / 3);
        let (z, x, y) = pmtiles_tile_of(id).expect("a tile");
        assert_eq!(pmtiles_tile_id(z, x, y), id, "round trip of {id}");
        let size = raw >> 8;
        if let Ok(text) = std::str::from_utf8(&data[8..]) {
            if let Ok(PmtilesAsked::Range { start, end }) = pmtiles_range(text, size) {
                assert!(start < end && end <= size, "{text:?} of {size}: {start}..{end}");
            }
        }
    }
});
