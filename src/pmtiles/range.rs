//! Range mode (`pmtiles_range = true`): which bytes of an archive a token may read.
//!
//! Every byte of an archive belongs to one section. Header, root directory, metadata
//! and leaf directories are served to every token that may read the path in range
//! mode (the directories say where tiles exist and how large they are, everywhere:
//! the documented leak, decision in ARCHITECTURE.md; protomaps JS and the `pmtiles`
//! CLI cannot find a tile without them). A byte of tile data is served only when the
//! tile content it belongs to is one the token may fetch whole: a deduplicated content
//! referenced by several tile ids (and run-length entries, one content for a run of
//! ids) is allowed when **any** of those tiles lies wholly inside the token's fence
//! and at or below its maxZoom, because the bytes are then exactly a tile the token
//! may see. A tile only partly inside is not (raw bytes cannot be clipped). Bytes in
//! no section and tile data no entry points at are refused.
//!
//! A range is answered with its longest allowed prefix (a shorter `206`; clients read
//! `Content-Range`), and refused when its first byte is not allowed.
//!
//! Must never: serve a byte of tile data without judging the content it belongs to.

use std::sync::Arc;

use super::archive::{ArchiveError, Archives, Io, Opened};
use super::format::{self, Entry, FormatError, Header, Section};
use crate::policy::Denial;
use crate::respond::Reject;
use crate::spatial::{Fence, Overlap, TileCoord};

/// The most tile entries an archive may have for range mode with a fenced token.
pub const MAX_INDEX_ENTRIES: usize = 1_000_000;
/// The most tile ids judged for one request (long runs of ocean tiles).
pub const MAX_JUDGED_TILES: u64 = 1 << 22;

/// One stored tile content: where it lies in the tile data section, and the runs of
/// tile ids that reference it (`refs[start..start + count]`).
#[derive(Debug, Clone, Copy)]
struct Content {
    offset: u64,
    length: u32,
    start: u32,
    count: u32,
}

/// Every tile content of one archive version, sorted by offset (contents never
/// overlap: the index refuses an archive whose do).
#[derive(Debug, Default)]
pub struct DataIndex {
    contents: Vec<Content>,
    /// (first tile id, run length).
    refs: Vec<(u64, u32)>,
}

impl DataIndex {
    /// Walks every directory of `opened` (leaves through the cache).
    pub async fn build(archives: &Archives, io: &Io<'_>, opened: &Opened) -> Result<DataIndex, ArchiveError> {
        let mut tiles: Vec<Entry> = Vec::new();
        let mut pending: Vec<(Arc<[Entry]>, usize)> = vec![(opened.root.clone(), 0)];
        while let Some((dir, depth)) = pending.pop() {
            for e in dir.iter() {
                if e.run_length > 0 {
                    tiles.push(*e);
                    if tiles.len() > MAX_INDEX_ENTRIES {
                        return Err(FormatError::Directory("too many tile entries for range mode").into());
                    }
                } else if depth >= 3 {
                    return Err(FormatError::Directory("leaf directories nest deeper than 4 levels").into());
                } else {
                    pending.push((archives.leaf(io, opened, *e).await?, depth + 1));
                }
            }
        }
        Self::from_entries(tiles)
    }

    fn from_entries(mut tiles: Vec<Entry>) -> Result<DataIndex, ArchiveError> {
        tiles.sort_unstable_by_key(|e| (e.offset, e.length, e.tile_id));
        let mut index = DataIndex::default();
        for e in tiles {
            let id = (e.tile_id, e.run_length);
            match index.contents.last_mut() {
                Some(c) if c.offset == e.offset && c.length == e.length => {
                    index.refs.push(id);
                    c.count += 1;
                }
                Some(c) if c.offset + u64::from(c.length) > e.offset => {
                    return Err(FormatError::Directory("two tile contents overlap").into());
                }
                _ => {
                    let start =
                        u32::try_from(index.refs.len()).map_err(|_| FormatError::Directory("too many tiles"))?;
                    index.refs.push(id);
                    index.contents.push(Content { offset: e.offset, length: e.length, start, count: 1 });
                }
            }
        }
        Ok(index)
    }

    /// The tile contents indexed (tests).
    pub fn len(&self) -> usize {
        self.contents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.contents.is_empty()
    }

    /// How far from `start` (relative to the tile data) up to `end` the token may read.
    fn allowed_until(&self, start: u64, end: u64, fence: &Fence, budget: &mut u64) -> (u64, Option<Stop>) {
        let mut i = self.contents.partition_point(|c| c.offset + u64::from(c.length) <= start);
        let mut pos = start;
        while pos < end {
            let Some(c) = self.contents.get(i) else { return (pos, Some(Stop::Unmapped)) };
            if c.offset > pos {
                return (pos, Some(Stop::Unmapped));
            }
            if let Err(stop) = self.allowed(c, fence, budget) {
                return (pos, Some(stop));
            }
            pos = c.offset + u64::from(c.length);
            i += 1;
        }
        (end, None)
    }

    /// Whether any tile referencing `c` is wholly inside the fence, at or below maxZoom.
    fn allowed(&self, c: &Content, fence: &Fence, budget: &mut u64) -> Result<(), Stop> {
        let refs = &self.refs[c.start as usize..(c.start + c.count) as usize];
        let max_zoom = fence.max_zoom();
        let mut under_max = false;
        for &(first, run) in refs {
            for id in first..first + u64::from(run) {
                if *budget == 0 {
                    return Err(Stop::Budget);
                }
                *budget -= 1;
                let Some((z, x, y)) = format::tile_of(id) else { continue };
                if max_zoom.is_some_and(|m| z > m) {
                    // Ids grow with zoom: the rest of this run is deeper still.
                    break;
                }
                under_max = true;
                if fence.tiles().is_none() {
                    return Ok(());
                }
                let Ok(tile) = TileCoord::new(u32::from(z), u64::from(x), u64::from(y)) else { continue };
                if fence.tile_overlap(tile) == Ok(Overlap::Inside) {
                    return Ok(());
                }
            }
        }
        Err(Stop::Denied(if under_max { Denial::OutsideGeofence } else { Denial::ZoomAboveMax }))
    }
}

/// Why a range stops being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Tile data the token may not read.
    Denied(Denial),
    /// Bytes in no section, or tile data no entry points at.
    Unmapped,
    /// More tiles than [`MAX_JUDGED_TILES`] to judge.
    Budget,
}

impl From<Stop> for Reject {
    fn from(s: Stop) -> Reject {
        match s {
            Stop::Denied(d) => Reject::Denied(d),
            Stop::Unmapped => {
                Reject::Forbidden("the range starts in bytes of the archive no tile or directory owns".into())
            }
            Stop::Budget => Reject::Forbidden(format!(
                "the range covers more than {MAX_JUDGED_TILES} tiles to judge; ask for a shorter range"
            )),
        }
    }
}

/// The end (exclusive) of the longest prefix of `start..end` the token may read, and
/// why it stops there when it stops short. `index` is needed only under a fence.
pub fn allowed_prefix(
    header: &Header,
    start: u64,
    end: u64,
    fence: Option<&Fence>,
    index: Option<&DataIndex>,
) -> (u64, Option<Stop>) {
    let Some(fence) = fence else { return (end, None) };
    let mut budget = MAX_JUDGED_TILES;
    let mut pos = start;
    while pos < end {
        let section = header.sections().into_iter().find(|&(_, off, len)| len > 0 && off <= pos && pos < off + len);
        match section {
            None => return (pos, Some(Stop::Unmapped)),
            Some((Section::TileData, off, len)) => {
                let Some(index) = index else { return (pos, Some(Stop::Unmapped)) };
                let stop = end.min(off + len);
                let (until, why) = index.allowed_until(pos - off, stop - off, fence, &mut budget);
                if why.is_some() {
                    return (off + until, why);
                }
                pos = stop;
            }
            // The metadata names what lies outside the fence too (`tilestats` lists
            // attribute values, `bounds` the whole extent; attacker round 4): a fenced
            // token reads the narrowed TileJSON instead.
            Some((Section::Metadata, ..)) => return (pos, Some(Stop::Denied(Denial::FenceUnverifiable))),
            Some((_, off, len)) => pos = end.min(off + len),
        }
    }
    (end, None)
}

/// True when `start..end` reaches into the tile data (the index is needed then).
pub fn touches_tile_data(header: &Header, start: u64, end: u64) -> bool {
    header.data_length > 0 && start < header.data_offset + header.data_length && end > header.data_offset
}

/// What a `Range` header asks of an archive of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// No usable `Range`: the whole archive.
    Whole,
    /// Bytes `start..end` (end exclusive, within the archive).
    Range { start: u64, end: u64 },
    /// A range that lies past the end (416).
    Unsatisfiable,
}

/// Reads a `Range` header (one `bytes` range; `a-b`, `a-`, `-n`).
///
/// ```
/// use tilegate::pmtiles::range::{parse_range, Asked};
/// assert_eq!(parse_range("bytes=0-99", 1000), Ok(Asked::Range { start: 0, end: 100 }));
/// assert_eq!(parse_range("bytes=900-", 1000), Ok(Asked::Range { start: 900, end: 1000 }));
/// assert_eq!(parse_range("bytes=-100", 1000), Ok(Asked::Range { start: 900, end: 1000 }));
/// assert_eq!(parse_range("bytes=990-5000", 1000), Ok(Asked::Range { start: 990, end: 1000 }));
/// assert_eq!(parse_range("bytes=1000-", 1000), Ok(Asked::Unsatisfiable));
/// assert_eq!(parse_range("bytes=-0", 1000), Ok(Asked::Unsatisfiable));
/// assert!(parse_range("bytes=0-10,20-30", 1000).is_err());
/// assert!(parse_range("bytes=10-5", 1000).is_err());
/// assert!(parse_range("items=0-5", 1000).is_err());
/// ```
pub fn parse_range(value: &str, size: u64) -> Result<Asked, String> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .or_else(|| value.trim().strip_prefix("BYTES="))
        .ok_or_else(|| format!("`{value}` is not a byte range; write `bytes=start-end`"))?
        .trim();
    if spec.contains(',') {
        return Err("multi-part ranges are not served; ask for one range per request".into());
    }
    let (a, b) = spec.split_once('-').ok_or_else(|| format!("`{value}` is not a byte range"))?;
    let num = |s: &str| -> Result<u64, String> {
        let s = s.trim();
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("`{value}` is not a byte range"));
        }
        s.parse().map_err(|_| format!("`{value}` is not a byte range"))
    };
    if a.trim().is_empty() {
        let n = num(b)?;
        if n == 0 || size == 0 {
            return Ok(Asked::Unsatisfiable);
        }
        return Ok(Asked::Range { start: size.saturating_sub(n), end: size });
    }
    let start = num(a)?;
    let last = if b.trim().is_empty() { None } else { Some(num(b)?) };
    if last.is_some_and(|l| l < start) {
        return Err(format!("`{value}` ends before it starts"));
    }
    if start >= size {
        return Ok(Asked::Unsatisfiable);
    }
    let end = last.map_or(size, |l| l.saturating_add(1).min(size));
    Ok(Asked::Range { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tile_id: u64, offset: u64, length: u32, run_length: u32) -> Entry {
        Entry { tile_id, offset, length, run_length }
    }

    fn fence(tiles: &[(u32, u64, u64)], max: Option<u32>) -> Fence {
        Fence::new(Some(tiles), max).expect("fence")
    }

    #[test]
    fn a_deduplicated_content_is_allowed_when_any_of_its_tiles_is_inside() {
        let inside = format::tile_id(1, 0, 0);
        let outside = format::tile_id(1, 1, 1);
        let index = DataIndex::from_entries(vec![
            entry(inside, 0, 10, 1),
            entry(outside, 0, 10, 1),
            entry(outside + 1, 10, 5, 1),
        ])
        .expect("index");
        assert_eq!(index.len(), 2);
        let f = fence(&[(1, 0, 0)], None);
        let mut budget = 100;
        assert_eq!(index.allowed_until(0, 10, &f, &mut budget), (10, None));
        // The second content belongs to tile 1/1/0 only: outside.
        assert_eq!(index.allowed_until(0, 15, &f, &mut budget), (10, Some(Stop::Denied(Denial::OutsideGeofence))));
    }

    #[test]
    fn a_run_is_judged_tile_by_tile_and_max_zoom_first() {
        // One content for every z2 tile (a run of 16 ids).
        let index = DataIndex::from_entries(vec![entry(format::first_id(2), 0, 8, 16)]).expect("index");
        let mut budget = 100;
        assert_eq!(index.allowed_until(0, 8, &fence(&[(2, 3, 3)], None), &mut budget), (8, None));
        assert_eq!(
            index.allowed_until(0, 8, &fence(&[(1, 1, 1)], Some(1)), &mut budget),
            (0, Some(Stop::Denied(Denial::ZoomAboveMax)))
        );
        // A fence smaller than every tile of the run: each is only partly inside.
        assert_eq!(
            index.allowed_until(0, 8, &fence(&[(4, 0, 0)], None), &mut budget),
            (0, Some(Stop::Denied(Denial::OutsideGeofence)))
        );
    }

    #[test]
    fn gaps_and_overlaps_fail_closed() {
        let index = DataIndex::from_entries(vec![entry(0, 0, 4, 1), entry(1, 8, 4, 1)]).expect("index");
        let f = Fence::new(None, Some(5)).expect("fence");
        assert_eq!(index.allowed_until(0, 12, &f, &mut 100), (4, Some(Stop::Unmapped)));
        assert!(DataIndex::from_entries(vec![entry(0, 0, 4, 1), entry(1, 2, 4, 1)]).is_err());
    }

    #[test]
    fn the_budget_stops_long_runs() {
        let index = DataIndex::from_entries(vec![entry(format::first_id(10), 0, 8, 1 << 20)]).expect("index");
        let f = fence(&[(3, 7, 7)], None);
        let mut budget = 1000;
        assert_eq!(index.allowed_until(0, 8, &f, &mut budget), (0, Some(Stop::Budget)));
    }
}
