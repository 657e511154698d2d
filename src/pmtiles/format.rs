//! The PMTiles v3 format, read-only: the 127-byte header, varint directories, tile ids
//! on the Hilbert curve, compression. Pure functions over bytes (no I/O); the reader
//! ([`super::archive`]) fetches the bytes.
//!
//! Hand-written rather than the `pmtiles` crate: the crate's HTTP backend is reqwest
//! (a second HTTP stack beside the gateway's own pool and timeouts) and its async
//! reader owns the caching that the gateway must bound and invalidate itself; the
//! format is a header, a varint list and a curve (spec:
//! <https://github.com/protomaps/PMTiles/blob/main/spec/v3/spec.md>).
//!
//! Must never: trust a length or count from the archive without a bound.

use std::io::Read as _;

/// The fixed header length.
pub const HEADER_LEN: usize = 127;
/// The largest directory (compressed or not) the reader accepts.
pub const MAX_DIRECTORY_BYTES: u64 = 16 << 20;
/// The largest metadata document the reader accepts.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;
/// The deepest zoom a tile id may address (the spec's ids are u64; z ≤ 31).
pub const MAX_ZOOM: u8 = 30;

/// Why an archive cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a PMTiles archive (no `PMTiles` magic)")]
    Magic,
    #[error("PMTiles version {0} is not supported; only version 3 is")]
    Version(u8),
    #[error("the archive is shorter than its header says")]
    Truncated,
    #[error("a directory is malformed: {0}")]
    Directory(&'static str),
    #[error("compression `{0}` is not supported (gzip and none are)")]
    Compression(&'static str),
    #[error("a compressed part is over {0} bytes once decompressed")]
    TooLarge(u64),
    #[error("a compressed part does not decompress: {0}")]
    Decompress(String),
}

/// The archive's compression codes (internal and tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Unknown,
    None,
    Gzip,
    Brotli,
    Zstd,
}

impl Compression {
    fn from_byte(b: u8) -> Compression {
        match b {
            1 => Compression::None,
            2 => Compression::Gzip,
            3 => Compression::Brotli,
            4 => Compression::Zstd,
            _ => Compression::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Unknown => "unknown",
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Brotli => "brotli",
            Compression::Zstd => "zstd",
        }
    }
}

/// What the tiles are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileType {
    Unknown,
    Mvt,
    Png,
    Jpeg,
    Webp,
    Avif,
}

impl TileType {
    fn from_byte(b: u8) -> TileType {
        match b {
            1 => TileType::Mvt,
            2 => TileType::Png,
            3 => TileType::Jpeg,
            4 => TileType::Webp,
            5 => TileType::Avif,
            _ => TileType::Unknown,
        }
    }

    /// The media type tiles are served with.
    pub fn content_type(self) -> &'static str {
        match self {
            TileType::Mvt => "application/vnd.mapbox-vector-tile",
            TileType::Png => "image/png",
            TileType::Jpeg => "image/jpeg",
            TileType::Webp => "image/webp",
            TileType::Avif => "image/avif",
            TileType::Unknown => "application/octet-stream",
        }
    }

    /// The TileJSON `format` / file extension.
    pub fn extension(self) -> &'static str {
        match self {
            TileType::Mvt => "pbf",
            TileType::Png => "png",
            TileType::Jpeg => "jpg",
            TileType::Webp => "webp",
            TileType::Avif => "avif",
            TileType::Unknown => "bin",
        }
    }

    /// True for the image formats the raster clipper can decode (PNG, JPEG, WebP).
    pub fn clippable_image(self) -> bool {
        matches!(self, TileType::Png | TileType::Jpeg | TileType::Webp)
    }
}

/// The v3 header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub root_offset: u64,
    pub root_length: u64,
    pub metadata_offset: u64,
    pub metadata_length: u64,
    pub leaf_offset: u64,
    pub leaf_length: u64,
    pub data_offset: u64,
    pub data_length: u64,
    pub addressed_tiles: u64,
    pub tile_entries: u64,
    pub tile_contents: u64,
    pub clustered: bool,
    pub internal_compression: Compression,
    pub tile_compression: Compression,
    pub tile_type: TileType,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// min lon, min lat, max lon, max lat (degrees).
    pub bounds: [f64; 4],
    pub center_zoom: u8,
    /// lon, lat (degrees).
    pub center: [f64; 2],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn e7_at(b: &[u8], at: usize) -> f64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    f64::from(i32::from_le_bytes(a)) / 10_000_000.0
}

impl Header {
    /// Reads the first [`HEADER_LEN`] bytes of an archive.
    ///
    /// ```
    /// use tilegate::pmtiles::format::{Header, FormatError};
    /// assert_eq!(Header::parse(b"nothing"), Err(FormatError::Truncated));
    /// assert_eq!(Header::parse(&[0u8; 127]), Err(FormatError::Magic));
    /// ```
    pub fn parse(b: &[u8]) -> Result<Header, FormatError> {
        if b.len() < HEADER_LEN {
            return Err(FormatError::Truncated);
        }
        if &b[0..7] != b"PMTiles" {
            return Err(FormatError::Magic);
        }
        if b[7] != 3 {
            return Err(FormatError::Version(b[7]));
        }
        Ok(Header {
            root_offset: u64_at(b, 8),
            root_length: u64_at(b, 16),
            metadata_offset: u64_at(b, 24),
            metadata_length: u64_at(b, 32),
            leaf_offset: u64_at(b, 40),
            leaf_length: u64_at(b, 48),
            data_offset: u64_at(b, 56),
            data_length: u64_at(b, 64),
            addressed_tiles: u64_at(b, 72),
            tile_entries: u64_at(b, 80),
            tile_contents: u64_at(b, 88),
            clustered: b[96] == 1,
            internal_compression: Compression::from_byte(b[97]),
            tile_compression: Compression::from_byte(b[98]),
            tile_type: TileType::from_byte(b[99]),
            min_zoom: b[100],
            max_zoom: b[101],
            bounds: [e7_at(b, 102), e7_at(b, 106), e7_at(b, 110), e7_at(b, 114)],
            center_zoom: b[118],
            center: [e7_at(b, 119), e7_at(b, 123)],
        })
    }

    /// The byte sections of the archive, in the header's terms.
    pub fn sections(&self) -> [(Section, u64, u64); 5] {
        [
            (Section::Header, 0, HEADER_LEN as u64),
            (Section::RootDirectory, self.root_offset, self.root_length),
            (Section::Metadata, self.metadata_offset, self.metadata_length),
            (Section::LeafDirectories, self.leaf_offset, self.leaf_length),
            (Section::TileData, self.data_offset, self.data_length),
        ]
    }
}

/// A part of the archive's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Header,
    RootDirectory,
    Metadata,
    LeafDirectories,
    TileData,
}

/// One directory entry: a run of tiles (`run_length` ≥ 1) stored at `offset` in the
/// tile data, or a leaf directory (`run_length` 0) at `offset` in the leaf section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tile_id: u64,
    pub offset: u64,
    pub length: u32,
    pub run_length: u32,
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64, FormatError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or(FormatError::Directory("a varint runs past the end"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FormatError::Directory("a varint is longer than 10 bytes"))
}

/// Decodes a decompressed directory. Entries come back in tile-id order.
pub fn parse_directory(b: &[u8]) -> Result<Vec<Entry>, FormatError> {
    let mut pos = 0;
    let n = varint(b, &mut pos)?;
    // Every entry takes at least 4 bytes: a count over that is a lie.
    if n > (b.len() as u64) / 4 + 1 {
        return Err(FormatError::Directory("more entries than bytes"));
    }
    let n = n as usize;
    let mut entries = vec![Entry { tile_id: 0, offset: 0, length: 0, run_length: 0 }; n];
    let mut last = 0u64;
    for e in &mut entries {
        last = last.checked_add(varint(b, &mut pos)?).ok_or(FormatError::Directory("tile id overflow"))?;
        e.tile_id = last;
    }
    for e in &mut entries {
        e.run_length = u32::try_from(varint(b, &mut pos)?).map_err(|_| FormatError::Directory("run length"))?;
    }
    for e in &mut entries {
        e.length = u32::try_from(varint(b, &mut pos)?).map_err(|_| FormatError::Directory("length"))?;
    }
    for i in 0..n {
        let v = varint(b, &mut pos)?;
        entries[i].offset = if v == 0 && i > 0 {
            entries[i - 1]
                .offset
                .checked_add(u64::from(entries[i - 1].length))
                .ok_or(FormatError::Directory("offset overflow"))?
        } else {
            v.checked_sub(1).ok_or(FormatError::Directory("the first offset is 0"))?
        };
    }
    Ok(entries)
}

/// Decompresses an internal part (directory, metadata) up to `limit` bytes.
pub fn decompress(compression: Compression, bytes: &[u8], limit: u64) -> Result<Vec<u8>, FormatError> {
    match compression {
        Compression::None => Ok(bytes.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(bytes).take(limit + 1);
            reader.read_to_end(&mut out).map_err(|e| FormatError::Decompress(e.to_string()))?;
            if out.len() as u64 > limit {
                return Err(FormatError::TooLarge(limit));
            }
            Ok(out)
        }
        other => Err(FormatError::Compression(other.as_str())),
    }
}

/// The entry that holds `tile_id` in a sorted directory: a tile run containing it,
/// or the leaf directory to descend into. `None`: no such tile.
pub fn find(entries: &[Entry], tile_id: u64) -> Option<Entry> {
    let i = entries.partition_point(|e| e.tile_id <= tile_id).checked_sub(1)?;
    let e = entries[i];
    if e.run_length == 0 {
        return Some(e);
    }
    // `tile_id ≥ e.tile_id` here; subtracting cannot overflow where adding could.
    (tile_id - e.tile_id < u64::from(e.run_length)).then_some(e)
}

fn rotate(n: u64, x: &mut u64, y: &mut u64, rx: u64, ry: u64) {
    if ry == 0 {
        if rx == 1 {
            // Only the bits below `n` matter: wrap as the reference implementations do.
            *x = n.wrapping_sub(1).wrapping_sub(*x);
            *y = n.wrapping_sub(1).wrapping_sub(*y);
        }
        std::mem::swap(x, y);
    }
}

/// The id of tile `z/x/y` (XYZ rows): the tiles of the zooms above, then the
/// position on zoom `z`'s Hilbert curve.
///
/// ```
/// use tilegate::pmtiles::format::{tile_id, tile_of};
/// assert_eq!(tile_id(0, 0, 0), 0);
/// assert_eq!([tile_id(1, 0, 0), tile_id(1, 0, 1), tile_id(1, 1, 1), tile_id(1, 1, 0)], [1, 2, 3, 4]);
/// assert_eq!(tile_id(2, 0, 0), 5);
/// assert_eq!(tile_of(tile_id(12, 3423, 1763)), Some((12, 3423, 1763)));
/// ```
pub fn tile_id(z: u8, x: u32, y: u32) -> u64 {
    let acc = ((1u64 << (2 * u32::from(z))) - 1) / 3;
    let n = 1u64 << z;
    let (mut tx, mut ty) = (u64::from(x), u64::from(y));
    let mut d = 0u64;
    let mut s = n / 2;
    while s > 0 {
        let rx = u64::from(tx & s > 0);
        let ry = u64::from(ty & s > 0);
        d += s * s * ((3 * rx) ^ ry);
        rotate(s, &mut tx, &mut ty, rx, ry);
        s /= 2;
    }
    acc + d
}

/// The tile `(z, x, y)` of an id; `None` past [`MAX_ZOOM`].
pub fn tile_of(id: u64) -> Option<(u8, u32, u32)> {
    let mut acc = 0u64;
    for z in 0..=MAX_ZOOM {
        let count = 1u64 << (2 * u32::from(z));
        if id < acc + count {
            let mut t = id - acc;
            let n = 1u64 << z;
            let (mut tx, mut ty) = (0u64, 0u64);
            let mut s = 1u64;
            while s < n {
                let rx = 1 & (t / 2);
                let ry = 1 & (t ^ rx);
                rotate(s, &mut tx, &mut ty, rx, ry);
                tx += s * rx;
                ty += s * ry;
                t /= 4;
                s *= 2;
            }
            return Some((z, u32::try_from(tx).ok()?, u32::try_from(ty).ok()?));
        }
        acc += count;
    }
    None
}

/// The first id of zoom `z`.
pub fn first_id(z: u8) -> u64 {
    ((1u64 << (2 * u32::from(z))) - 1) / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_ids_round_trip_on_every_low_zoom() {
        for z in 0..=6u8 {
            for x in 0..(1u32 << z) {
                for y in 0..(1u32 << z) {
                    assert_eq!(tile_of(tile_id(z, x, y)), Some((z, x, y)));
                }
            }
        }
        assert_eq!(tile_id(30, 0, 0), first_id(30));
        // Ids from the reference implementation (PyPI `pmtiles` 3.8, `zxy_to_tileid`).
        assert_eq!([tile_id(12, 3423, 1763), tile_id(4, 9, 9), tile_id(5, 31, 0)], [19078479, 215, 1364]);
    }

    #[test]
    fn a_directory_with_lying_counts_is_refused() {
        assert!(parse_directory(&[0xff, 0xff, 0x7f]).is_err());
        assert!(parse_directory(&[0x80]).is_err());
        assert_eq!(parse_directory(&[0]), Ok(vec![]));
    }

    #[test]
    fn find_honours_runs_and_leaves() {
        let e = |tile_id, run_length| Entry { tile_id, offset: 0, length: 1, run_length };
        let dir = [e(0, 1), e(5, 3), e(20, 0)];
        assert_eq!(find(&dir, 0).map(|e| e.tile_id), Some(0));
        assert_eq!(find(&dir, 3), None);
        assert_eq!(find(&dir, 7).map(|e| e.tile_id), Some(5));
        assert_eq!(find(&dir, 8), None);
        assert_eq!(find(&dir, 99).map(|e| e.run_length), Some(0));
    }
}
