//! Reading PMTiles archives: one opened version of each archive (header, root
//! directory, identity), the bounded cache of leaf directories, and byte reads from a
//! file (on the blocking pool) or an `http(s)://` URL (range requests through the
//! gateway's own upstream pool and timeouts).
//!
//! An archive that changes under the reader never serves mixed data: a file is
//! re-stamped (inode, length, modification time) on every request and after every
//! read; an HTTP archive is read with `If-Match` on the ETag seen with the header (or
//! `If-Unmodified-Since` on its `Last-Modified`), and every answer's total length must
//! be the one the header was read with. A change drops the opened version and its
//! directories; the request reopens the archive once and starts over, and a second
//! change within one request is a 502.
//!
//! Must never: read a file on a reactor thread; hold a lock across an await; keep more
//! directories than `[pmtiles] cache_entries` / `cache_bytes`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt as _;

use super::format::{self, Entry, FormatError, Header, HEADER_LEN};
use crate::config::{Config, PmtilesCache};
use crate::paths::ArchiveSource;
use crate::proxy::Upstream;
use crate::respond::{Reject, UpstreamError};

/// How deep leaf directories may nest below the root.
const MAX_DEPTH: usize = 4;
/// The largest single read (a tile, a directory, a range answer).
pub const MAX_READ_BYTES: u64 = 32 << 20;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is not readable: {0}")]
    Format(#[from] FormatError),
    #[error("cannot read the archive file `{path}`: {message}")]
    File { path: String, message: String },
    #[error("the archive's upstream failed")]
    Upstream(#[from] UpstreamError),
    #[error("the archive's upstream answered {0} to a range request")]
    Status(StatusCode),
    /// The archive is not the version that was opened.
    #[error("the archive changed while it was read")]
    Changed,
}

impl From<ArchiveError> for Reject {
    fn from(e: ArchiveError) -> Reject {
        match e {
            ArchiveError::Upstream(u) => Reject::Upstream(u),
            ArchiveError::Status(s) if s.is_server_error() => Reject::UpstreamStatus(s),
            other => Reject::Upstream(UpstreamError::BadDocument(other.to_string())),
        }
    }
}

/// What identifies one version of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    File { inode: u64, len: u64, modified: Option<SystemTime> },
    Http { etag: Option<HeaderValue>, last_modified: Option<HeaderValue> },
}

/// One opened version of an archive.
pub struct Opened {
    pub generation: u64,
    pub source: ArchiveSource,
    pub header: Header,
    pub root: Arc<[Entry]>,
    /// The archive's length in bytes.
    pub size: u64,
    /// The gateway's own strong ETag for this version (range mode, `If-Range`).
    pub etag: String,
    stamp: Stamp,
    file: Option<Arc<std::fs::File>>,
    /// The decompressed metadata JSON, read once.
    metadata: tokio::sync::OnceCell<Arc<serde_json::Value>>,
    /// The tile-data index for range mode, built once.
    pub(super) index: tokio::sync::OnceCell<Arc<super::range::DataIndex>>,
}

/// The archives and their directory cache (one per gateway).
#[derive(Default)]
pub struct Archives {
    opened: Mutex<HashMap<ArchiveSource, Arc<Opened>>>,
    dirs: Mutex<DirCache>,
    generations: AtomicU64,
}

/// A cached directory and when it was last used.
type Cached = (Arc<[Entry]>, u64);

/// Leaf directories by (generation, absolute offset), least recently used out first.
#[derive(Default)]
struct DirCache {
    map: HashMap<(u64, u64), Cached>,
    bytes: usize,
    tick: u64,
}

impl DirCache {
    fn get(&mut self, key: (u64, u64)) -> Option<Arc<[Entry]>> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&key).map(|(dir, used)| {
            *used = tick;
            dir.clone()
        })
    }

    fn insert(&mut self, key: (u64, u64), dir: Arc<[Entry]>, bounds: PmtilesCache) {
        let cost = dir_cost(&dir);
        if cost > bounds.bytes {
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.map.insert(key, (dir, self.tick)) {
            self.bytes -= dir_cost(&old);
        }
        self.bytes += cost;
        while self.map.len() > bounds.entries || self.bytes > bounds.bytes {
            // INVARIANT: the loop runs only while the map holds more than the bounds allow,
            // so it is not empty.
            let Some((&oldest, _)) = self.map.iter().min_by_key(|(_, (_, used))| *used) else { break };
            if let Some((old, _)) = self.map.remove(&oldest) {
                self.bytes -= dir_cost(&old);
            }
        }
    }

    fn forget(&mut self, generation: u64) {
        let mut freed = 0;
        self.map.retain(|(g, _), (dir, _)| {
            let keep = *g != generation;
            if !keep {
                freed += dir_cost(dir);
            }
            keep
        });
        self.bytes -= freed;
    }
}

fn dir_cost(dir: &[Entry]) -> usize {
    std::mem::size_of_val(dir) + 64
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a map operation: a poisoned lock holds a whole map.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a read needs besides the archive: the upstream pool, its timeouts, the path
/// (for its TLS pool) and the cache bounds.
pub struct Io<'a> {
    pub upstream: &'a Upstream,
    pub config: &'a Config,
    pub path_id: &'a str,
}

impl Archives {
    /// Leaf directories cached now, and their bytes (tests, diagnostics).
    pub fn cached_directories(&self) -> (usize, usize) {
        let dirs = lock(&self.dirs);
        (dirs.map.len(), dirs.bytes)
    }

    /// The current version of `source`, opening it (again) when it is new or changed.
    pub async fn open(&self, io: &Io<'_>, source: &ArchiveSource) -> Result<Arc<Opened>, ArchiveError> {
        let known = lock(&self.opened).get(source).cloned();
        if let Some(opened) = known {
            match &source {
                ArchiveSource::File(path) => {
                    let path = path.clone();
                    let now = blocking(move || file_stamp(&path)).await?;
                    if now == opened.stamp {
                        return Ok(opened);
                    }
                    self.drop_version(&opened);
                }
                // HTTP archives are checked by every read (If-Match, total length).
                ArchiveSource::Http(_) => return Ok(opened),
            }
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = Arc::new(open_source(io, source, generation).await?);
        lock(&self.opened).insert(source.clone(), opened.clone());
        Ok(opened)
    }

    /// Forgets a version found changed (its directories go with it).
    pub fn drop_version(&self, opened: &Opened) {
        let mut map = lock(&self.opened);
        if map.get(&opened.source).is_some_and(|o| o.generation == opened.generation) {
            map.remove(&opened.source);
        }
        drop(map);
        lock(&self.dirs).forget(opened.generation);
    }

    /// The bytes of tile `z/x/y` as stored (maybe gzip-compressed); `None`: the archive
    /// has no such tile.
    pub async fn tile(
        &self,
        io: &Io<'_>,
        opened: &Opened,
        z: u8,
        x: u32,
        y: u32,
    ) -> Result<Option<Bytes>, ArchiveError> {
        if z < opened.header.min_zoom || z > opened.header.max_zoom {
            return Ok(None);
        }
        let id = format::tile_id(z, x, y);
        let mut dir = opened.root.clone();
        for _ in 0..MAX_DEPTH {
            let Some(entry) = format::find(&dir, id) else { return Ok(None) };
            if entry.run_length > 0 {
                let offset = opened.header.data_offset + entry.offset;
                within(opened.header.data_length, entry.offset, u64::from(entry.length))?;
                return read(io, opened, offset, u64::from(entry.length)).await.map(Some);
            }
            dir = self.leaf(io, opened, entry).await?;
        }
        Err(FormatError::Directory("leaf directories nest deeper than 4 levels").into())
    }

    /// A leaf directory, from the cache or the archive.
    pub(super) async fn leaf(&self, io: &Io<'_>, opened: &Opened, entry: Entry) -> Result<Arc<[Entry]>, ArchiveError> {
        let h = &opened.header;
        within(h.leaf_length, entry.offset, u64::from(entry.length))?;
        let key = (opened.generation, h.leaf_offset + entry.offset);
        if let Some(dir) = lock(&self.dirs).get(key) {
            return Ok(dir);
        }
        let raw = read(io, opened, key.1, u64::from(entry.length)).await?;
        let dir: Arc<[Entry]> = decode_directory(h, &raw)?.into();
        lock(&self.dirs).insert(key, dir.clone(), io.config.pmtiles);
        Ok(dir)
    }

    /// The archive's metadata JSON (decompressed, parsed once per version).
    pub async fn metadata(&self, io: &Io<'_>, opened: &Opened) -> Result<Arc<serde_json::Value>, ArchiveError> {
        opened
            .metadata
            .get_or_try_init(|| async {
                let h = &opened.header;
                if h.metadata_length == 0 {
                    return Ok(Arc::new(serde_json::Value::Object(Default::default())));
                }
                if h.metadata_length > format::MAX_METADATA_BYTES {
                    return Err(FormatError::TooLarge(format::MAX_METADATA_BYTES).into());
                }
                let raw = read(io, opened, h.metadata_offset, h.metadata_length).await?;
                let bytes = format::decompress(h.internal_compression, &raw, format::MAX_METADATA_BYTES)?;
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|_| FormatError::Directory("the metadata is not JSON"))?;
                Ok(Arc::new(value))
            })
            .await
            .cloned()
    }
}

/// An entry's `offset`/`length` lie inside its section of `len` bytes.
fn within(len: u64, offset: u64, length: u64) -> Result<(), FormatError> {
    match offset.checked_add(length) {
        Some(end) if end <= len && length <= MAX_READ_BYTES => Ok(()),
        _ => Err(FormatError::Directory("an entry points outside its section")),
    }
}

pub(super) fn decode_directory(h: &Header, raw: &[u8]) -> Result<Vec<Entry>, FormatError> {
    let bytes = format::decompress(h.internal_compression, raw, format::MAX_DIRECTORY_BYTES)?;
    format::parse_directory(&bytes)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ArchiveError::File { path: String::new(), message: format!("the read task failed: {e}") })
    })
}

fn file_error(path: &std::path::Path, e: &std::io::Error) -> ArchiveError {
    ArchiveError::File { path: path.display().to_string(), message: e.to_string() }
}

fn stamp_of(m: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        m.ino() ^ m.dev().rotate_left(32)
    };
    #[cfg(not(unix))]
    let inode = 0;
    Stamp::File { inode, len: m.len(), modified: m.modified().ok() }
}

fn file_stamp(path: &std::path::Path) -> Result<Stamp, ArchiveError> {
    std::fs::metadata(path).map(|m| stamp_of(&m)).map_err(|e| file_error(path, &e))
}

fn etag_of(stamp: &Stamp, size: u64) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    match stamp {
        Stamp::File { inode, len, modified } => {
            h.update(inode.to_le_bytes());
            h.update(len.to_le_bytes());
            let nanos =
                modified.and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            h.update(nanos.to_le_bytes());
        }
        Stamp::Http { etag, last_modified } => {
            h.update(etag.as_ref().map_or(&b""[..], |v| v.as_bytes()));
            h.update(b"\0");
            h.update(last_modified.as_ref().map_or(&b""[..], |v| v.as_bytes()));
        }
    }
    h.update(size.to_le_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"pm-{hex}\"")
}

/// Opens one version: header and root directory (one read of the first 16 KiB
/// covers both in archives written by the usual tools).
async fn open_source(io: &Io<'_>, source: &ArchiveSource, generation: u64) -> Result<Opened, ArchiveError> {
    const FIRST: u64 = 16384;
    let (first, size, stamp, file) = match source {
        ArchiveSource::File(path) => {
            let path = path.clone();
            blocking(move || {
                let file = std::fs::File::open(&path).map_err(|e| file_error(&path, &e))?;
                let meta = file.metadata().map_err(|e| file_error(&path, &e))?;
                let len = meta.len().min(FIRST);
                let mut buf = vec![0u8; len as usize];
                read_at(&file, &mut buf, 0).map_err(|e| file_error(&path, &e))?;
                Ok((Bytes::from(buf), meta.len(), stamp_of(&meta), Some(Arc::new(file))))
            })
            .await?
        }
        ArchiveSource::Http(uri) => {
            let (bytes, total, stamp) = http_range(io, uri, 0, FIRST, None).await?;
            (bytes, total, stamp, None)
        }
    };
    let header = Header::parse(&first)?;
    if header.root_length > format::MAX_DIRECTORY_BYTES {
        return Err(FormatError::TooLarge(format::MAX_DIRECTORY_BYTES).into());
    }
    for (_, offset, len) in header.sections() {
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(FormatError::Truncated.into());
        }
    }
    let etag = etag_of(&stamp, size);
    let mut opened = Opened {
        generation,
        source: source.clone(),
        header,
        root: Arc::from(Vec::new()),
        size,
        etag,
        stamp,
        file,
        metadata: tokio::sync::OnceCell::new(),
        index: tokio::sync::OnceCell::new(),
    };
    let (ro, rl) = (opened.header.root_offset, opened.header.root_length);
    let raw = if ro + rl <= first.len() as u64 && ro >= HEADER_LEN as u64 {
        first.slice(ro as usize..(ro + rl) as usize)
    } else {
        read(io, &opened, ro, rl).await?
    };
    opened.root = decode_directory(&opened.header, &raw)?.into();
    Ok(opened)
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// Reads `len` bytes at `offset` of this version, or [`ArchiveError::Changed`].
pub async fn read(io: &Io<'_>, opened: &Opened, offset: u64, len: u64) -> Result<Bytes, ArchiveError> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    if len > MAX_READ_BYTES || offset.checked_add(len).is_none_or(|end| end > opened.size) {
        return Err(FormatError::Directory("a read past the end of the archive").into());
    }
    match (&opened.source, &opened.file) {
        (ArchiveSource::File(path), Some(file)) => {
            let (path, file, stamp) = (path.clone(), file.clone(), opened.stamp.clone());
            blocking(move || {
                let mut buf = vec![0u8; len as usize];
                read_at(&file, &mut buf, offset).map_err(|e| file_error(&path, &e))?;
                // Rewritten in place while read (same inode): the bytes may be mixed.
                let after = file.metadata().map_err(|e| file_error(&path, &e))?;
                if stamp_of(&after) != stamp {
                    return Err(ArchiveError::Changed);
                }
                Ok(Bytes::from(buf))
            })
            .await
        }
        (ArchiveSource::Http(uri), _) => {
            let Stamp::Http { etag, last_modified } = &opened.stamp else {
                return Err(ArchiveError::Changed);
            };
            let (bytes, total, stamp) =
                http_range(io, uri, offset, len, Some((etag.as_ref(), last_modified.as_ref()))).await?;
            if total != opened.size || bytes.len() as u64 != len {
                return Err(ArchiveError::Changed);
            }
            if etag.is_some() && stamp != opened.stamp {
                return Err(ArchiveError::Changed);
            }
            Ok(bytes)
        }
        (ArchiveSource::File(_), None) => Err(ArchiveError::Changed),
    }
}

/// One range request to an HTTP archive: the bytes, the archive's total length (from
/// `Content-Range`) and its identity (`ETag`, `Last-Modified`).
async fn http_range(
    io: &Io<'_>,
    uri: &http::Uri,
    offset: u64,
    len: u64,
    expect: Option<(Option<&HeaderValue>, Option<&HeaderValue>)>,
) -> Result<(Bytes, u64, Stamp), ArchiveError> {
    let mut req = Request::get(uri.clone());
    req = req.header(http::header::RANGE, format!("bytes={}-{}", offset, offset + len - 1));
    req = req.header(http::header::ACCEPT_ENCODING, "identity");
    match expect {
        Some((Some(etag), _)) => req = req.header(http::header::IF_MATCH, etag.clone()),
        Some((None, Some(modified))) => req = req.header(http::header::IF_UNMODIFIED_SINCE, modified.clone()),
        _ => {}
    }
    let req = req.body(crate::respond::full(Bytes::new())).map_err(|e| UpstreamError::Protocol(Box::new(e)))?;
    let timeout = io.config.upstream.response_timeout;
    let exchange = async {
        let res = io.upstream.send(req, timeout, io.path_id).await?;
        let status = res.status();
        if status == StatusCode::PRECONDITION_FAILED {
            return Err(ArchiveError::Changed);
        }
        let headers = res.headers().clone();
        let total = match status {
            StatusCode::PARTIAL_CONTENT => headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_total)
                .ok_or(FormatError::Directory("a 206 answer without a readable Content-Range"))?,
            // A server that ignores Range sends the whole archive: fine for a small one.
            StatusCode::OK => headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .filter(|&n| n <= MAX_READ_BYTES)
                .ok_or(ArchiveError::Status(status))?,
            other => return Err(ArchiveError::Status(other)),
        };
        let limit = usize::try_from(if status == StatusCode::OK { total } else { len }).unwrap_or(usize::MAX);
        let body = http_body_util::Limited::new(res.into_body(), limit)
            .collect()
            .await
            .map_err(UpstreamError::Protocol)?
            .to_bytes();
        let body = if status == StatusCode::OK {
            let end = usize::try_from((offset + len).min(body.len() as u64)).unwrap_or(usize::MAX);
            body.slice(usize::try_from(offset).unwrap_or(usize::MAX).min(end)..end)
        } else {
            body
        };
        let stamp = Stamp::Http {
            etag: headers.get(http::header::ETAG).filter(|v| !v.as_bytes().starts_with(b"W/")).cloned(),
            last_modified: headers.get(http::header::LAST_MODIFIED).cloned(),
        };
        Ok((body, total, stamp))
    };
    match tokio::time::timeout(timeout * 2, exchange).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(timeout * 2).into()),
    }
}

/// The total length in `Content-Range: bytes a-b/total`.
///
/// ```
/// use tilegate::pmtiles::archive::content_range_total;
/// assert_eq!(content_range_total("bytes 0-99/1234"), Some(1234));
/// assert_eq!(content_range_total("bytes 0-99/*"), None);
/// ```
pub fn content_range_total(v: &str) -> Option<u64> {
    v.strip_prefix("bytes ")?.split_once('/')?.1.parse().ok()
}
