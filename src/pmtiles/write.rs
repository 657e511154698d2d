//! A PMTiles v3 writer for tests and fixtures: deduplicated contents, run-length
//! entries, leaf directories (a small `root_entries` forces them), gzip directories,
//! metadata and tiles. Not used to serve anything.

use std::collections::HashMap;
use std::io::Write as _;

use super::format::{tile_id, Entry, HEADER_LEN};

/// How to write an archive.
#[derive(Debug, Clone)]
pub struct Options {
    /// 1 mvt, 2 png, 3 jpeg, 4 webp, 5 avif, 0 unknown.
    pub tile_type: u8,
    /// Gzip each tile (tile compression 2) or not (1).
    pub gzip_tiles: bool,
    /// Gzip directories and metadata (internal compression 2) or not (1).
    pub gzip_internal: bool,
    /// At most this many entries in the root; more go to leaves of `leaf_entries`.
    pub root_entries: usize,
    pub leaf_entries: usize,
    pub metadata: serde_json::Value,
    pub bounds: [f64; 4],
    pub center: [f64; 2],
    pub center_zoom: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tile_type: 1,
            gzip_tiles: false,
            gzip_internal: true,
            root_entries: 4096,
            leaf_entries: 4096,
            metadata: serde_json::json!({}),
            bounds: [-180.0, -85.0, 180.0, 85.0],
            center: [0.0, 0.0],
            center_zoom: 0,
        }
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // INVARIANT: writing to a Vec cannot fail.
    e.write_all(b).expect("write to a Vec");
    e.finish().expect("write to a Vec")
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes a directory (uncompressed).
pub fn directory(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, entries.len() as u64);
    let mut last = 0;
    for e in entries {
        varint(&mut out, e.tile_id - last);
        last = e.tile_id;
    }
    for e in entries {
        varint(&mut out, u64::from(e.run_length));
    }
    for e in entries {
        varint(&mut out, u64::from(e.length));
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 && e.offset == entries[i - 1].offset + u64::from(entries[i - 1].length) {
            varint(&mut out, 0);
        } else {
            varint(&mut out, e.offset + 1);
        }
    }
    out
}

fn e7(v: f64) -> [u8; 4] {
    ((v * 10_000_000.0).round() as i32).to_le_bytes()
}

/// Writes an archive of `tiles` (`z, x, y, content`). Tiles with equal contents share
/// their bytes; consecutive ids with equal contents become one run.
pub fn archive(tiles: &[(u8, u32, u32, Vec<u8>)], o: &Options) -> Vec<u8> {
    let mut sorted: Vec<(u64, &Vec<u8>)> = tiles.iter().map(|(z, x, y, b)| (tile_id(*z, *x, *y), b)).collect();
    sorted.sort_by_key(|t| t.0);
    let mut data = Vec::new();
    let mut seen: HashMap<&Vec<u8>, (u64, u32)> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    for (id, content) in &sorted {
        let (offset, length) = *seen.entry(*content).or_insert_with(|| {
            let stored = if o.gzip_tiles { gzip(content) } else { (*content).clone() };
            let at = data.len() as u64;
            data.extend_from_slice(&stored);
            (at, stored.len() as u32)
        });
        match entries.last_mut() {
            Some(e) if e.offset == offset && e.tile_id + u64::from(e.run_length) == *id => e.run_length += 1,
            _ => entries.push(Entry { tile_id: *id, offset, length, run_length: 1 }),
        }
    }
    let internal = |b: Vec<u8>| if o.gzip_internal { gzip(&b) } else { b };
    let (root, leaves) = if entries.len() <= o.root_entries {
        (internal(directory(&entries)), Vec::new())
    } else {
        let mut leaves = Vec::new();
        let mut root_entries = Vec::new();
        for chunk in entries.chunks(o.leaf_entries.max(1)) {
            let leaf = internal(directory(chunk));
            root_entries.push(Entry {
                tile_id: chunk[0].tile_id,
                offset: leaves.len() as u64,
                length: leaf.len() as u32,
                run_length: 0,
            });
            leaves.extend_from_slice(&leaf);
        }
        (internal(directory(&root_entries)), leaves)
    };
    let metadata = internal(serde_json::to_vec(&o.metadata).unwrap_or_default());
    let root_offset = HEADER_LEN as u64;
    let metadata_offset = root_offset + root.len() as u64;
    let leaf_offset = metadata_offset + metadata.len() as u64;
    let data_offset = leaf_offset + leaves.len() as u64;
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(b"PMTiles");
    h.push(3);
    for v in [
        root_offset,
        root.len() as u64,
        metadata_offset,
        metadata.len() as u64,
        leaf_offset,
        leaves.len() as u64,
        data_offset,
        data.len() as u64,
        sorted.len() as u64,
        entries.len() as u64,
        seen.len() as u64,
    ] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    let clustered = entries.windows(2).all(|w| w[1].offset >= w[0].offset);
    h.push(u8::from(clustered));
    h.push(if o.gzip_internal { 2 } else { 1 });
    h.push(if o.gzip_tiles { 2 } else { 1 });
    h.push(o.tile_type);
    let min_zoom = tiles.iter().map(|t| t.0).min().unwrap_or(0);
    let max_zoom = tiles.iter().map(|t| t.0).max().unwrap_or(0);
    h.push(min_zoom);
    h.push(max_zoom);
    for v in o.bounds {
        h.extend_from_slice(&e7(v));
    }
    h.push(o.center_zoom);
    h.extend_from_slice(&e7(o.center[0]));
    h.extend_from_slice(&e7(o.center[1]));
    debug_assert_eq!(h.len(), HEADER_LEN);
    let mut out = h;
    out.extend_from_slice(&root);
    out.extend_from_slice(&metadata);
    out.extend_from_slice(&leaves);
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::super::format::{self, Header};
    use super::*;

    #[test]
    fn written_archives_read_back_with_leaves_runs_and_dedup() {
        let mut tiles = Vec::new();
        for z in 0..=4u8 {
            for x in 0..(1u32 << z) {
                for y in 0..(1u32 << z) {
                    let content = if z == 4 { b"sea".to_vec() } else { format!("{z}/{x}/{y}").into_bytes() };
                    tiles.push((z, x, y, content));
                }
            }
        }
        let o = Options { root_entries: 8, leaf_entries: 10, gzip_tiles: true, ..Options::default() };
        let bytes = archive(&tiles, &o);
        let h = Header::parse(&bytes).expect("header");
        assert!(h.leaf_length > 0);
        assert_eq!(h.addressed_tiles, tiles.len() as u64);
        let root_raw = &bytes[h.root_offset as usize..(h.root_offset + h.root_length) as usize];
        let root =
            format::parse_directory(&format::decompress(h.internal_compression, root_raw, 1 << 20).unwrap()).unwrap();
        assert!(root.iter().all(|e| e.run_length == 0));
        // z4 is one content in one run of 256 ids.
        let leaf_of = |id: u64| {
            let e = format::find(&root, id).unwrap();
            let raw =
                &bytes[(h.leaf_offset + e.offset) as usize..(h.leaf_offset + e.offset + u64::from(e.length)) as usize];
            format::parse_directory(&format::decompress(h.internal_compression, raw, 1 << 20).unwrap()).unwrap()
        };
        let e = format::find(&leaf_of(format::tile_id(4, 9, 9)), format::tile_id(4, 9, 9)).unwrap();
        assert_eq!(e.run_length, 256);
        let e = format::find(&leaf_of(format::tile_id(2, 1, 3)), format::tile_id(2, 1, 3)).unwrap();
        let stored =
            &bytes[(h.data_offset + e.offset) as usize..(h.data_offset + e.offset + u64::from(e.length)) as usize];
        assert_eq!(format::decompress(format::Compression::Gzip, stored, 100).unwrap(), b"2/1/3");
    }
}
