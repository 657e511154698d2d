//! TiTiler (PyPI `titiler.application`, checked against 2.4.0) as a dynamic-tiler
//! upstream: `/ogc/titiler/{pathId}/cog/…` is classified here and forwarded under the
//! path's `upstream.titiler`.
//!
//! **The dataset is a request parameter.** TiTiler opens whatever `url=` names with
//! rasterio/GDAL: local files, `/vsicurl/`, `/vsis3/`, `/vsizip//vsicurl/…`, `vrt://`,
//! inline VRT XML, driver prefixes (`GTIFF_DIR:`, `NETCDF:`…). A path therefore declares
//! the datasets it serves (`titiler_datasets`: exact URLs, or prefixes ending in `/`),
//! and [`canonical_dataset`] reads both the declaration and the request into one
//! canonical form: a scheme (`file`, `http`, `https`, `s3`) and a path of plain
//! segments, scheme and host lower-cased, default ports removed; anything that form
//! cannot say (escapes, queries, fragments, `..`, empty segments, `+`, `!`, `:` in the
//! path, user info, non-ASCII, `/vsi…`) is refused rather than judged. A prefix matches
//! on a segment boundary only (`…/cogs/` never matches `…/cogs-secret/…`). The
//! canonical URL is what is forwarded, so TiTiler opens exactly what was judged.
//!
//! **Parameters are an allowlist per endpoint, compared exactly** (FastAPI reads
//! names case-sensitively, and TiTiler's `LowerCaseQueryStringMiddleware` would read
//! `URL=` as `url=`: so only the lower-case names pass); a repeated name is refused
//! except the list parameters (`bidx`, `rescale`, `p`, `c`). The query is decoded as
//! Starlette decodes it (`+` is a space) and re-encoded from the judged pairs.
//! `expression` is limited to band names, numbers, operators and numexpr functions.
//!
//! **Endpoints** (everything else, `/stac`, `/mosaicjson`, `/zarr` included, is
//! `unsupported_request`: their documents name further datasets the gateway cannot see):
//!
//! | route | tier | judged as |
//! |---|---|---|
//! | `GET /cog/tiles/{tms}/{z}/{x}/{y}[.{fmt}]` | view | a tile (`WebMercatorQuad`; other sets: foreign CRS); `tilesize`/`buffer` make it the box and zoom it really covers |
//! | `GET /cog/{tms}/tilejson.json` | view | metadata, rewritten per token ([`rewrite_tilejson`]) |
//! | `GET /cog/bbox/{minx},{miny},{maxx},{maxy}[/{w}x{h}].{fmt}` | view | a map of that box (EPSG:4326 or 3857), zoom from its pixels |
//! | `POST /cog/feature[/{w}x{h}][.{fmt}]` | view | a map of the GeoJSON body's bounding box |
//! | `GET /cog/point/{lon},{lat}` | viewPlus | the point (like GetFeatureInfo) |
//! | `GET /cog/preview…`, `/cog/info`, `/cog/info.geojson`, `/cog/statistics` | view / viewPlus | the whole dataset: refused for fenced tokens (`fence_unverifiable`) |
//!
//! Images in a raw-value format (`tif`, `jp2`, `npy`, `pngraw`: the bands' values, not a
//! picture) need `viewPlus` on every image route, as `point` and `statistics` do; the
//! query's pixel sizes are bounded (`width`, `height`, `max_size` at 4096, `padding` at
//! 256; [`PIXEL_LIMITS`]).
//!
//! Pure code: no I/O, no clock, no logging.

use std::fmt::Write as _;

use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ogc::capabilities::{CapabilitiesError, LinkMap, LinkMapped, Rewrite};
use crate::ogc::common::percent;
use crate::ogc::common::{bad, shown};
use crate::ogc::{Classified, Forward, ForwardBody, OgcError, OgcRequest, Parts, Protocol, ResponseKind, Service};
use crate::paths::{PathConfig, Upstreams};
use crate::policy::{Clippable, Extent, Tier};
use crate::spatial::{effective_zoom, BBox, Crs, TileCoord};

/// The TiTiler service (`/ogc/titiler/{pathId}/…`).
pub struct Titiler;

impl Service for Titiler {
    fn endpoint(&self, upstream: &Upstreams, _rest: &str) -> Option<String> {
        upstream.titiler.as_ref().map(ToString::to_string)
    }

    fn classify(&self, req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
        classify(req, path)
    }

    fn rewrite_capabilities(&self, doc: &[u8], rw: &Rewrite<'_>) -> Option<Result<Vec<u8>, CapabilitiesError>> {
        Some(rewrite_tilejson(doc, rw))
    }
}

/// The URL schemes a dataset may have.
const SCHEMES: [&str; 4] = ["file", "http", "https", "s3"];

/// The canonical form of a dataset URL, or why it has none. `prefix` allows a trailing
/// `/` (a declaration covering everything below it); a requested `url` never ends in one.
///
/// ```
/// use tilegate::ogc::titiler::canonical_dataset as c;
/// assert_eq!(c("FILE:///data/cog.tif", false).unwrap(), "file:///data/cog.tif");
/// assert_eq!(c("/data/cog.tif", false).unwrap(), "file:///data/cog.tif");
/// assert_eq!(c("https://Bucket.Example:443/cogs/a.tif", false).unwrap(), "https://bucket.example/cogs/a.tif");
/// assert_eq!(c("https://bucket.example/cogs/", true).unwrap(), "https://bucket.example/cogs/");
/// for bad in ["/vsicurl/https://x/a.tif", "vrt:///data/cog.tif", "file:///data/../etc/x", "file:///data/%2e%2e/x",
///             "https://b/a.tif?x=1", "https://b/a.tif#f", "zip+https://b/a.zip!/a.tif", "<VRTDataset>",
///             "https://u@b/a.tif", "file:///data//a.tif", "GTIFF_DIR:1:/data/a.tif", "https://b/cogs/"] {
///     assert!(c(bad, false).is_err(), "{bad}");
/// }
/// ```
pub fn canonical_dataset(raw: &str, prefix: bool) -> Result<String, &'static str> {
    if raw.is_empty() || raw.len() > 2048 {
        return Err("is not a dataset URL: empty or longer than 2048 characters");
    }
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':')) {
        return Err("is not a dataset URL the gateway can judge: only letters, digits, `-._~/` and the `:` of `scheme://` or a port may appear (no escapes, query, fragment, `+`, `!`, spaces)");
    }
    if raw.to_ascii_lowercase().starts_with("/vsi") {
        return Err("names a GDAL virtual file system (`/vsi…`); declare the dataset by its URL");
    }
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None if raw.starts_with('/') => ("file".to_owned(), raw),
        None => return Err("is not a dataset URL: write `file:///…`, `http(s)://host/…` or `s3://bucket/…`"),
    };
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err("has a scheme the gateway does not serve; use `file`, `http`, `https` or `s3`");
    }
    let (authority, path) = if scheme == "file" {
        if !rest.starts_with('/') {
            return Err("is a `file:` URL with a host; write `file:///absolute/path`");
        }
        (String::new(), rest)
    } else {
        let cut = rest.find('/').ok_or("has no path after its host")?;
        (authority(&scheme, &rest[..cut])?, &rest[cut..])
    };
    if path.to_ascii_lowercase().starts_with("/vsi") {
        return Err("names a GDAL virtual file system (`/vsi…`); declare the dataset by its URL");
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if seg.is_empty() && !(last && prefix) {
            return Err(if last {
                "ends with `/`; name a dataset, not a folder"
            } else {
                "has an empty path segment (`//`)"
            });
        }
        if matches!(*seg, "." | "..") {
            return Err("has a `.` or `..` segment");
        }
        if seg.contains(':') {
            return Err("has a `:` in its path");
        }
    }
    let canonical = format!("{scheme}://{authority}{path}");
    // The bound holds for the form forwarded too (a bare path grows by `file://`), so
    // the canonical form is accepted again as it is (fuzz target `titiler_url`).
    if canonical.len() > 2048 {
        return Err("is not a dataset URL: empty or longer than 2048 characters");
    }
    Ok(canonical)
}

/// `host[:port]`, lower-cased, without the scheme's default port.
fn authority(scheme: &str, raw: &str) -> Result<String, &'static str> {
    let (host, port) = match raw.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (raw, None),
    };
    let host = host.to_ascii_lowercase();
    let labels_ok = host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if host.is_empty() || !labels_ok {
        return Err("has a host that is not a plain DNS name or IPv4 address");
    }
    let port = match port {
        None => None,
        Some(p) if scheme != "s3" && !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u32 = p.parse().map_err(|_| "has a bad port")?;
            match (scheme, n) {
                ("http", 80) | ("https", 443) => None,
                (_, 1..=65535) => Some(n),
                _ => return Err("has a bad port"),
            }
        }
        Some(_) => return Err("has a bad port"),
    };
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// True when the canonical `url` is one of `datasets` or lies under one of its prefixes.
///
/// ```
/// use tilegate::ogc::titiler::covers;
/// let d = vec!["https://b.example/cogs/".to_owned(), "file:///data/cog.tif".to_owned()];
/// assert!(covers(&d, "https://b.example/cogs/a/b.tif"));
/// assert!(covers(&d, "file:///data/cog.tif"));
/// assert!(!covers(&d, "https://b.example/cogs-secret/a.tif"));
/// assert!(!covers(&d, "file:///data/cog.tif.ovr"));
/// ```
pub fn covers(datasets: &[String], url: &str) -> bool {
    datasets.iter().any(|d| d == url || (d.ends_with('/') && url.starts_with(d.as_str()) && url.len() > d.len()))
}

/// Parameters every dataset-reading endpoint takes.
const READ: &[&str] = &["url", "bidx", "expression", "nodata", "unscale", "resampling", "reproject"];
/// Rendering parameters of image endpoints.
const RENDER: &[&str] =
    &["rescale", "color_formula", "return_mask", "colormap_name", "colormap", "algorithm", "algorithm_params"];
/// Parameters that may repeat (FastAPI lists).
const MULTI: &[&str] = &["bidx", "rescale", "p", "c"];

/// The formats that carry the dataset's values rather than a rendered picture (GeoTIFF,
/// JPEG 2000 and NumPy arrays of the bands; `pngraw` packs them into PNG channels): the
/// same data as `point` and `statistics`, so the same tier (attacker round 9: a view
/// token read the raw band array of a tile as `.npy`).
const RAW_FORMATS: &[&str] = &["tif", "jp2", "npy", "pngraw"];

/// The tier an image in format `ext` needs: `view` for a picture, `viewPlus` for values.
fn format_tier(ext: Option<&str>) -> Tier {
    if ext.is_some_and(|e| RAW_FORMATS.contains(&e)) {
        Tier::ViewPlus
    } else {
        Tier::View
    }
}

/// Query parameters that set an output size in pixels, with the most each may ask:
/// the path's `{w}x{h}` is bounded at [`MAX_SIDE`] a side, and TiTiler allocates what these
/// ask for (attacker round 9: `width=8500&height=8500` made one request take 1.9 GB,
/// `width=30000` would take about 25 GB). `tilesize` and `buffer` are checked where
/// they are read.
const PIXEL_LIMITS: &[(&str, u32)] =
    &[("width", MAX_SIDE), ("height", MAX_SIDE), ("max_size", MAX_SIDE), ("padding", 256)];

/// The longest side of any image (the path's `{w}x{h}` and the query's sizes), and of a
/// tile (`tilesize`). Attacker round 10: at 8192 a side one `view` request took TiTiler
/// 15–20 s of CPU and 1.5–2.9 GB (`/cog/feature`, a 3-operation `expression`, the
/// `contours` algorithm), so sides and values ([`MAX_VALUES`]) were cut.
const MAX_SIDE: u32 = 4096;
const MAX_TILE_SIZE: u32 = 1024;

/// The most output bands one request may ask for: `bidx` values (repeated) or
/// `;`-separated `expression`s. Each band is a full array of the output size in
/// TiTiler (attacker round 9b: 300 copies of `b1` at `tilesize=512` took TiTiler from
/// 231 MB to 1.2 GB), so sizes are bounded together with bands too ([`MAX_VALUES`]).
const MAX_BANDS: usize = 16;

/// The most pixel values (pixels × output bands) one image may ask for: a 2048-pixel map
/// of one band, a 1024-pixel tile of four (round 10: 2^26, an 8192-pixel map, was
/// seconds of CPU and gigabytes per request). Where only one side is given (`max_size`,
/// a lone `width`), the image is counted as square.
const MAX_VALUES: u64 = 1 << 22;

/// How many plain values one value of an `algorithm`'s output counts for: terrain
/// algorithms compute in 64-bit floats over a buffered window (attacker round 11: a
/// 2048-pixel `hillshade` took TiTiler 1.13 s and +217 MB, against 0.19 s and +18 MB
/// without), so an algorithm's image is at most 1024 pixels square.
const ALGORITHM_COST: u64 = 4;

/// The most operations (operators and function calls) all of a request's
/// `expression`s may hold together: each is a pass over the image's arrays (round 10:
/// 120 nested `sin` calls at 8192 pixels took 75 s of CPU, after the gateway's 504).
const MAX_EXPRESSION_OPERATIONS: usize = 32;

/// The most numbers a `/cog/feature` body may hold: 10,000 two-dimensional vertices.
const MAX_FEATURE_NUMBERS: usize = 20_000;

/// The most histogram bins a `statistics` request may ask for, as a count or as a list
/// of edges (attacker round 9b: `histogram_bins=1000000` was a 45 MB answer and 500 MB
/// in TiTiler, and the cost grows with the number).
const MAX_HISTOGRAM_BINS: usize = 1024;

/// The most operations a `color_formula` may chain, and the most entries a `colormap`
/// may hold: each is a full pass over the image in TiTiler (attacker round 9c: 272
/// chained `gamma` operations made one tile 185 times the work, and TiTiler went on
/// after the gateway's 504).
const MAX_COLOR_OPERATIONS: usize = 8;
const MAX_COLORMAP_ENTRIES: usize = 256;

/// The image formats TiTiler writes (`ImageType`), and whether the clipper reads them.
fn image_format(ext: &str) -> Result<bool, OgcError> {
    match ext {
        "png" | "jpeg" | "jpg" | "webp" => Ok(true),
        raw if RAW_FORMATS.contains(&raw) => Ok(false),
        other => Err(bad(format!(
            "`{}` is not a TiTiler image format; use png, jpeg, jpg, webp, tif, jp2, npy or pngraw",
            shown(other)
        ))),
    }
}

/// The judged query: pairs in order, decoded as Starlette decodes them.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str, allowed: &[&[&str]], endpoint: &str) -> Result<Query, OgcError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (n, v) = piece.split_once('=').unwrap_or((piece, ""));
            let name = percent::decode(n, true).map_err(|e| bad(format!("a parameter name: {e}")))?;
            let value = percent::decode(v, true).map_err(|e| bad(format!("`{}`: {e}", shown(&name))))?;
            if !allowed.iter().any(|set| set.contains(&name.as_ref())) {
                return Err(bad(format!(
                    "`{}` is not a parameter the gateway passes to TiTiler's {endpoint} (names are case-sensitive)",
                    shown(&name)
                )));
            }
            if value.chars().any(char::is_control) || value.len() > 4096 {
                return Err(bad(format!("`{name}`: control characters or longer than 4096 characters")));
            }
            if !MULTI.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!("`{name}` is given twice; send it once")));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        let query = Query(pairs);
        if let Some(e) = query.get("expression") {
            check_expression(e)?;
        }
        query.check_work()?;
        Ok(query)
    }

    /// The bounds on how much work one request asks of TiTiler: output sizes, bands,
    /// colour passes and histogram bins (attacker rounds 9, 9b, 9c).
    fn check_work(&self) -> Result<(), OgcError> {
        for &(name, most) in PIXEL_LIMITS {
            if self.uint(name)?.is_some_and(|n| n > most) {
                return Err(bad(format!("`{name}` is at most {most} pixels")));
            }
        }
        let (w, h, m) = (self.uint("width")?, self.uint("height")?, self.uint("max_size")?);
        if let Some(side) = w.or(h).or(m) {
            self.check_values(w.or(m).unwrap_or(side), h.or(m).unwrap_or(side))?;
        }
        if self.bands() > MAX_BANDS {
            return Err(bad(format!(
                "at most {MAX_BANDS} output bands (`bidx` values or `;`-separated expressions) per request"
            )));
        }
        if let Some(formula) = self.get("color_formula") {
            let operations = formula
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| ["gamma", "sigmoidal", "saturation"].iter().any(|op| w.eq_ignore_ascii_case(op)))
                .count();
            if operations > MAX_COLOR_OPERATIONS {
                return Err(bad(format!("`color_formula` chains at most {MAX_COLOR_OPERATIONS} operations")));
            }
        }
        if let Some(map) = self.get("colormap") {
            let entries = match crate::json::parse_strict(map.as_bytes()) {
                Ok(serde_json::Value::Object(o)) => o.len(),
                Ok(serde_json::Value::Array(a)) => a.len(),
                _ => return Err(bad("`colormap` must be a JSON object or array")),
            };
            if entries > MAX_COLORMAP_ENTRIES {
                return Err(bad(format!("`colormap` holds at most {MAX_COLORMAP_ENTRIES} entries")));
            }
        }
        if let Some(bins) = self.get("histogram_bins") {
            let items: Vec<&str> = bins.split(',').collect();
            let too_many = match items[..] {
                [one] => digits(one).is_none_or(|n| n as usize > MAX_HISTOGRAM_BINS),
                _ => items.len() > MAX_HISTOGRAM_BINS + 1,
            };
            if too_many {
                return Err(bad(format!(
                    "`histogram_bins` is a count of at most {MAX_HISTOGRAM_BINS}, or at most {} bin edges",
                    MAX_HISTOGRAM_BINS + 1
                )));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The output bands asked for: `bidx` values, or the `;`-separated expressions
    /// (at least one: the dataset's own bands are not known here, so a request naming
    /// none is counted as one).
    fn bands(&self) -> usize {
        let bidx = self.0.iter().filter(|(n, _)| n == "bidx").count();
        let expressions = self.get("expression").map_or(0, |e| e.split(';').filter(|p| !p.trim().is_empty()).count());
        bidx.max(expressions).max(1)
    }

    /// Refuses an image of `w` × `h` pixels whose values (pixels × bands, × [`ALGORITHM_COST`]
    /// with an `algorithm`) exceed [`MAX_VALUES`].
    fn check_values(&self, w: u32, h: u32) -> Result<(), OgcError> {
        let bands = self.bands();
        let cost = if self.get("algorithm").is_some() { ALGORITHM_COST } else { 1 };
        if u64::from(w) * u64::from(h) * bands as u64 * cost > MAX_VALUES {
            let with = if cost > 1 { format!(" (an algorithm counts {cost} times)") } else { String::new() };
            return Err(bad(format!(
                "{w}x{h} pixels of {bands} bands is more than {MAX_VALUES} values{with}; ask for fewer bands or a smaller image"
            )));
        }
        Ok(())
    }

    fn set(&mut self, name: &str, value: String) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// A positive integer parameter, if given.
    fn uint(&self, name: &str) -> Result<Option<u32>, OgcError> {
        self.get(name)
            .map(|v| digits(v).filter(|&n| n > 0).ok_or_else(|| bad(format!("`{name}` must be a positive integer"))))
            .transpose()
    }

    /// Checks `url`, replaces it by its canonical form; the dataset must be covered.
    fn judge_dataset(&mut self, path: &PathConfig) -> Result<(), OgcError> {
        let raw = self.get("url").ok_or_else(|| bad("`url` is required: the dataset to read"))?;
        let url = canonical_dataset(raw, false).map_err(|e| bad(format!("url: `{}` {e}", shown(raw))))?;
        if !covers(&path.titiler_datasets, &url) {
            return Err(OgcError::DatasetNotCovered(shown(&url)));
        }
        self.set("url", url);
        Ok(())
    }

    /// The query to forward, re-encoded from the judged pairs.
    fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            let _ = write!(out, "{}={}", utf8_percent_encode(n, KEEP), utf8_percent_encode(v, KEEP));
        }
        out
    }
}

/// Unreserved characters stay; everything else is escaped.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// numexpr functions rio-tiler expressions may call.
const FUNCTIONS: &[&str] = &[
    "where", "sqrt", "abs", "log", "log10", "log1p", "exp", "expm1", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
    "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "real", "imag", "conj", "floor", "ceil",
    "mean", "min", "max", "sum", "prod",
];

/// An `expression` is band names (`b1`), numbers, operators, parentheses, `;` between
/// outputs and numexpr functions; nothing that names an attribute or a module.
fn check_expression(e: &str) -> Result<(), OgcError> {
    let refuse = |why: &str| Err(bad(format!("expression: {why}")));
    let bytes = e.as_bytes();
    let mut i = 0;
    let mut operations = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &e[start..i];
            let band = word.len() > 1 && word.starts_with('b') && word[1..].bytes().all(|c| c.is_ascii_digit());
            if !band && !FUNCTIONS.contains(&word) {
                return refuse(&format!("`{}` is neither a band (`b1`) nor a known function", shown(word)));
            }
            operations += usize::from(!band);
            continue;
        }
        if b.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            continue;
        }
        if !matches!(
            b,
            b' ' | b'+'
                | b'-'
                | b'*'
                | b'/'
                | b'%'
                | b'('
                | b')'
                | b','
                | b';'
                | b'<'
                | b'>'
                | b'='
                | b'!'
                | b'&'
                | b'|'
                | b'~'
        ) {
            return refuse(&format!("`{}` is not allowed", char::from(b)));
        }
        operations += usize::from(!matches!(b, b' ' | b'(' | b')' | b',' | b';'));
        i += 1;
    }
    if operations > MAX_EXPRESSION_OPERATIONS {
        return refuse(&format!("at most {MAX_EXPRESSION_OPERATIONS} operators and function calls in all"));
    }
    Ok(())
}

/// ASCII digits (at most 9) as a number.
fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// A plain decimal number (`-12.5`): what both Rust and Python read alike.
fn number(s: &str, what: &str) -> Result<f64, OgcError> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    let ok = !int.is_empty()
        && !frac.is_empty()
        && int.len() + frac.len() <= 24
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    let n: f64 =
        if ok { s.parse().map_err(|_| bad(format!("{what}: `{}` is not a number", shown(s))))? } else { f64::NAN };
    if !n.is_finite() {
        return Err(bad(format!("{what}: `{}` is not a plain decimal number", shown(s))));
    }
    Ok(n)
}

/// `coord_crs` (or `dst_crs`): the CRS of the box or point, EPSG:4326 (longitude first,
/// as rasterio reads it) when absent; `None` for one the gateway cannot judge.
fn crs_param(q: &Query, name: &str) -> Option<Crs> {
    match q.get(name) {
        None => Some(Crs::Wgs84),
        Some(v) => crate::spatial::crs_from_identifier(v).map(|(crs, _)| crs),
    }
}

/// Classifies one TiTiler request.
pub fn classify(req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
    let segments: Vec<String> = req
        .rest
        .strip_prefix('/')
        .unwrap_or(req.rest)
        .split('/')
        .map(|s| percent::decode(s, false).map(|c| c.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("the path: {e}")))?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = matches!(*req.method, Method::GET | Method::HEAD);
    let not_get = || OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "GET, HEAD" };
    match segs.as_slice() {
        ["cog", "tiles", tms, z, x, y] => {
            if !get {
                return Err(not_get());
            }
            tile(req, path, tms, z, x, y)
        }
        ["cog", tms, "tilejson.json"] => {
            if !get {
                return Err(not_get());
            }
            tilejson(req, path, tms)
        }
        ["cog", "bbox", coords, rest @ ..] if matches!(rest.len(), 0 | 1) => {
            if !get {
                return Err(not_get());
            }
            bbox(req, path, coords, rest.first().copied())
        }
        ["cog", "feature", rest @ ..] if rest.len() <= 1 => feature(req, path, rest.first().copied()),
        ["cog", last] if last.starts_with("feature.") => feature(req, path, Some(last)),
        ["cog", "point", coords] => {
            if !get {
                return Err(not_get());
            }
            point(req, path, coords)
        }
        ["cog", "preview", ..] | ["cog", "info" | "info.geojson" | "statistics"] => whole_dataset(req, path, &segs),
        ["cog", last] if last.starts_with("preview.") => whole_dataset(req, path, &segs),
        ["stac" | "mosaicjson" | "zarr", ..] => Err(OgcError::NotSupported(format!(
            "TiTiler's /{} endpoints read documents that name further datasets; only /cog is served through the gateway",
            segs[0]
        ))),
        _ => Err(OgcError::NotSupported(format!(
            "`{}` is not a TiTiler endpoint the gateway serves; served: /cog/tiles, /cog/{{tms}}/tilejson.json, /cog/bbox, /cog/feature, /cog/point, /cog/preview, /cog/info, /cog/statistics",
            shown(req.rest)
        ))),
    }
}

/// `{name}.{ext}` → (name, ext).
fn split_ext(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('.') {
        Some((n, e)) => (n, Some(e)),
        None => (s, None),
    }
}

/// `{w}x{h}`.
fn size(s: &str) -> Result<(u32, u32), OgcError> {
    let (w, h) =
        s.split_once('x').ok_or_else(|| bad(format!("`{}` is not a size `{{width}}x{{height}}`", shown(s))))?;
    match (digits(w), digits(h)) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE => Ok((w, h)),
        _ => Err(bad(format!("`{}` is not a size of 1 to {MAX_SIDE} pixels per side", shown(s)))),
    }
}

fn forward(path: String, q: &Query, body: ForwardBody) -> Forward {
    Forward { path, query: q.encode(), body }
}

/// An `algorithm` may crop its own border from the image (hillshade and slope drop
/// `algorithm_params.buffer` pixels), so the image no longer spans the judged area and a
/// mask computed for that area would be shifted: such answers are not clipped (a
/// straddling one is refused; one wholly inside passes).
fn crops(q: &Query) -> bool {
    q.get("algorithm").is_some()
}

fn image_parts(name: &'static str, extent: Extent, clippable: bool, ext: Option<&str>) -> Parts {
    let parts = Parts::new(name, format_tier(ext), Vec::new(), extent, ResponseKind::Image).with_format(ext);
    if clippable {
        parts
    } else {
        parts.with_clippable(Clippable::No)
    }
}

fn tile(req: &OgcRequest<'_>, path: &PathConfig, tms: &str, z: &str, x: &str, y: &str) -> Result<Classified, OgcError> {
    let mut q = Query::parse(req.query, &[READ, RENDER, &["tilesize", "buffer", "padding"]], "tiles")?;
    q.judge_dataset(path)?;
    let (y, ext) = split_ext(y);
    let clippable = ext.map(image_format).transpose()?.unwrap_or(true);
    let (Some(z), Some(x), Some(y)) = (digits(z), digits(x), digits(y)) else {
        return Err(bad("a tile address is /cog/tiles/{tileMatrixSetId}/{z}/{x}/{y}[.{format}], numbers only"));
    };
    if !tms.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') || tms.is_empty() {
        return Err(bad(format!("`{}` is not a tile matrix set id", shown(tms))));
    }
    let tilesize = q.uint("tilesize")?.unwrap_or(256);
    if tilesize > MAX_TILE_SIZE {
        return Err(bad(format!("`tilesize` is at most {MAX_TILE_SIZE}")));
    }
    let buffer = match q.get("buffer") {
        None => 0.0,
        Some(b) => {
            let n = number(b, "buffer")?;
            if n <= 0.0 || n > 256.0 || (n * 2.0).fract() != 0.0 {
                return Err(bad("`buffer` is a positive multiple of 0.5, at most 256"));
            }
            n
        }
    };
    q.uint("padding")?;
    let side = (f64::from(tilesize) + 2.0 * buffer).ceil() as u32;
    q.check_values(side, side)?;
    let ext_part = ext.map(|e| format!(".{e}")).unwrap_or_default();
    let fwd = format!("/cog/tiles/{tms}/{z}/{x}/{y}{ext_part}");
    if tms != "WebMercatorQuad" {
        // The gateway judges Web Mercator quad tiles only (other sets have other grids).
        let parts = image_parts("titiler.tile", Extent::ForeignCrs, false, ext);
        return Ok(parts.into_classified(forward(fwd, &q, ForwardBody::None)));
    }
    let tile = TileCoord::new(z, u64::from(x), u64::from(y)).map_err(|e| bad(e.to_string()))?;
    let extent = if tilesize == 256 && buffer == 0.0 {
        Extent::Tile(tile)
    } else {
        // A larger tile shows finer detail, a buffer reaches beyond the tile: judged as
        // the box and zoom the image really covers.
        let b = tile.bounds_mercator();
        let margin = (b.max_x - b.min_x) * buffer / f64::from(tilesize);
        let bbox = BBox {
            min_x: b.min_x - margin,
            min_y: b.min_y - margin,
            max_x: b.max_x + margin,
            max_y: b.max_y + margin,
            ..b
        };
        Extent::BBox { bbox, zoom: Some(effective_zoom(&bbox, side, side)) }
    };
    let parts = image_parts("titiler.tile", extent, clippable && !crops(&q), ext);
    Ok(parts.into_classified(forward(fwd, &q, ForwardBody::None)))
}

fn tilejson(req: &OgcRequest<'_>, path: &PathConfig, tms: &str) -> Result<Classified, OgcError> {
    let mut q = Query::parse(
        req.query,
        &[READ, RENDER, &["tilesize", "buffer", "padding", "tile_format", "minzoom", "maxzoom"]],
        "tilejson.json",
    )?;
    q.judge_dataset(path)?;
    if tms != "WebMercatorQuad" {
        return Err(OgcError::NotSupported("TileJSON is served for the `WebMercatorQuad` tile matrix set only".into()));
    }
    if let Some(f) = q.get("tile_format") {
        image_format(f)?;
    }
    // TiTiler's TileJSON defaults to 512-pixel tiles (a zoom finer than the tile's z);
    // ask for 256 unless the client chose, so its tiles are judged as plain XYZ tiles.
    if q.get("tilesize").is_none() {
        q.set("tilesize", "256".into());
    }
    q.uint("tilesize")?;
    q.uint("minzoom")?;
    q.uint("maxzoom")?;
    let parts = Parts::new(
        "titiler.tilejson",
        Tier::View,
        Vec::new(),
        Extent::None,
        ResponseKind::Capabilities(Protocol::Titiler),
    );
    Ok(parts.into_classified(forward(format!("/cog/{tms}/tilejson.json"), &q, ForwardBody::None)))
}

/// The output size of a bbox or feature map: `{w}x{h}` in the path, or `width`/
/// `height`/`max_size` in the query; `None` when TiTiler would read at native resolution.
fn output_size(q: &Query, in_path: Option<(u32, u32)>) -> Result<Option<(u32, u32)>, OgcError> {
    if let Some(s) = in_path {
        return Ok(Some(s));
    }
    let (w, h, m) = (q.uint("width")?, q.uint("height")?, q.uint("max_size")?);
    Ok(match (w, h, m) {
        (Some(w), Some(h), _) => Some((w, h)),
        // One side given: the other follows the box's aspect, at most the larger of both.
        (Some(a), None, m) | (None, Some(a), m) => Some((a.max(m.unwrap_or(0)), a.max(m.unwrap_or(0)))),
        (None, None, Some(m)) => Some((m, m)),
        (None, None, None) => None,
    })
}

/// The zoom a map at native resolution is judged at: above every maxZoom.
const NATIVE_ZOOM: f64 = 64.0;

/// The extent of a map over `bbox` (in `coord_crs`), drawn at `pixels`; clippable only
/// when it is drawn in the CRS it was asked in.
fn map_extent(q: &Query, coords: [f64; 4], pixels: Option<(u32, u32)>) -> (Extent, bool) {
    let (Some(crs), Some(dst)) =
        (crs_param(q, "coord_crs"), q.get("dst_crs").map_or(crs_param(q, "coord_crs"), |_| crs_param(q, "dst_crs")))
    else {
        return (Extent::ForeignCrs, false);
    };
    let bbox = BBox { crs, min_x: coords[0], min_y: coords[1], max_x: coords[2], max_y: coords[3] };
    // No size: native resolution, unknown here, so finer than any maxZoom. (Not +∞:
    // the fence reads an infinite zoom as "outside", and a box that meets the fence
    // would then be clipped and served at native resolution.)
    let zoom = pixels.map_or(NATIVE_ZOOM, |(w, h)| effective_zoom(&bbox, w, h));
    (Extent::BBox { bbox, zoom: Some(zoom) }, crs == dst)
}

fn bbox(req: &OgcRequest<'_>, path: &PathConfig, coords: &str, sized: Option<&str>) -> Result<Classified, OgcError> {
    let mut q =
        Query::parse(req.query, &[READ, RENDER, &["coord_crs", "dst_crs", "max_size", "width", "height"]], "bbox")?;
    q.judge_dataset(path)?;
    let (coords, in_path, ext) = match sized {
        None => {
            let (c, e) = split_ext(coords);
            (c, None, e)
        }
        Some(s) => {
            let (s, e) = split_ext(s);
            (coords, Some(size(s)?), e)
        }
    };
    let ext = ext.ok_or_else(|| bad("a bbox address ends in `.{format}`"))?;
    let clippable = image_format(ext)?;
    let parts: Vec<&str> = coords.split(',').collect();
    let [minx, miny, maxx, maxy] = parts.as_slice() else {
        return Err(bad("a bbox is `{minx},{miny},{maxx},{maxy}`"));
    };
    let c = [number(minx, "minx")?, number(miny, "miny")?, number(maxx, "maxx")?, number(maxy, "maxy")?];
    if c[0] >= c[2] || c[1] >= c[3] {
        return Err(bad("a bbox needs minx < maxx and miny < maxy"));
    }
    let pixels = output_size(&q, in_path)?;
    if let Some((w, h)) = pixels {
        q.check_values(w, h)?;
    }
    let (extent, same_crs) = map_extent(&q, c, pixels);
    let fwd = match in_path {
        Some((w, h)) => format!("/cog/bbox/{minx},{miny},{maxx},{maxy}/{w}x{h}.{ext}"),
        None => format!("/cog/bbox/{minx},{miny},{maxx},{maxy}.{ext}"),
    };
    let parts = image_parts("titiler.bbox", extent, clippable && same_crs && !crops(&q), Some(ext));
    Ok(parts.into_classified(forward(fwd, &q, ForwardBody::None)))
}

fn feature(req: &OgcRequest<'_>, path: &PathConfig, last: Option<&str>) -> Result<Classified, OgcError> {
    if *req.method != Method::POST {
        return Err(OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "POST" });
    }
    let media = crate::ogc::common::media_essence(req.content_type);
    if !matches!(media.as_str(), "application/json" | "application/geo+json") {
        return Err(OgcError::UnsupportedMediaType(
            "a TiTiler feature body must be GeoJSON (`application/json`)".into(),
        ));
    }
    let mut q =
        Query::parse(req.query, &[READ, RENDER, &["coord_crs", "dst_crs", "max_size", "width", "height"]], "feature")?;
    q.judge_dataset(path)?;
    let (in_path, ext) = match last {
        None => (None, None),
        Some(s) if s.starts_with("feature.") => (None, s.strip_prefix("feature.")),
        Some(s) => {
            let (s, e) = split_ext(s);
            (Some(size(s)?), Some(e.ok_or_else(|| bad("a sized feature address ends in `.{format}`"))?))
        }
    };
    let clippable = ext.map(image_format).transpose()?.unwrap_or(true);
    let body = req.body.unwrap_or_default();
    // Round 10b: TiTiler rasterises every vertex (200,000 took 3 s against 0.11 s).
    let numbers = crate::ogc::common::expr::count_numbers(body);
    if numbers > MAX_FEATURE_NUMBERS {
        return Err(bad(format!("the GeoJSON body holds {numbers} numbers, more than {MAX_FEATURE_NUMBERS}")));
    }
    let doc = crate::json::parse_strict(body).map_err(|e| bad(format!("the GeoJSON body: {e}")))?;
    let c = geojson_bounds(&doc).ok_or_else(|| bad("the body must be one GeoJSON Feature with a geometry"))?;
    let pixels = output_size(&q, in_path)?;
    if let Some((w, h)) = pixels {
        q.check_values(w, h)?;
    }
    let (extent, same_crs) = map_extent(&q, c, pixels);
    let fwd = match (in_path, ext) {
        (Some((w, h)), Some(e)) => format!("/cog/feature/{w}x{h}.{e}"),
        (None, Some(e)) => format!("/cog/feature.{e}"),
        _ => "/cog/feature".to_owned(),
    };
    let parts = image_parts("titiler.feature", extent, clippable && same_crs && !crops(&q), ext);
    Ok(parts.into_classified(forward(fwd, &q, ForwardBody::Original)))
}

/// The bounding box of a GeoJSON Feature's geometry (TiTiler's `/feature` takes one
/// Feature); `None` for anything else.
fn geojson_bounds(doc: &serde_json::Value) -> Option<[f64; 4]> {
    if doc.get("type")?.as_str()? != "Feature" {
        return None;
    }
    let geometry = doc.get("geometry")?;
    let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    fn walk(v: &serde_json::Value, b: &mut [f64; 4], depth: u8) -> Option<()> {
        let arr = v.as_array()?;
        if depth > 6 {
            return None;
        }
        if arr.first().is_some_and(serde_json::Value::is_number) {
            let (x, y) = (arr.first()?.as_f64()?, arr.get(1)?.as_f64()?);
            *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            return Some(());
        }
        arr.iter().try_for_each(|c| walk(c, b, depth + 1))
    }
    if !matches!(
        geometry.get("type")?.as_str()?,
        "Point" | "MultiPoint" | "LineString" | "MultiLineString" | "Polygon" | "MultiPolygon"
    ) {
        return None;
    }
    walk(geometry.get("coordinates")?, &mut b, 0)?;
    (b.iter().all(|v| v.is_finite()) && b[0] <= b[2] && b[1] <= b[3]).then_some(b)
}

fn point(req: &OgcRequest<'_>, path: &PathConfig, coords: &str) -> Result<Classified, OgcError> {
    let mut q = Query::parse(req.query, &[READ, &["coord_crs"]], "point")?;
    q.judge_dataset(path)?;
    let (lon, lat) = coords.split_once(',').ok_or_else(|| bad("a point is `/cog/point/{lon},{lat}`"))?;
    let (x, y) = (number(lon, "lon")?, number(lat, "lat")?);
    // A point is read at native resolution, like a map without a size: finer than any
    // maxZoom (attacker round 9: a maxZoom-1 token sampled values 0.4° apart, and a grid
    // of points rebuilds the raster).
    let extent = match crs_param(&q, "coord_crs") {
        Some(crs) => {
            Extent::BBox { bbox: BBox { crs, min_x: x, min_y: y, max_x: x, max_y: y }, zoom: Some(NATIVE_ZOOM) }
        }
        None => Extent::ForeignCrs,
    };
    let parts = Parts::new("titiler.point", Tier::ViewPlus, Vec::new(), extent, ResponseKind::Other);
    Ok(parts.into_classified(forward(format!("/cog/point/{lon},{lat}"), &q, ForwardBody::None)))
}

/// Preview, info and statistics read the whole dataset: the fence cannot bound them.
fn whole_dataset(req: &OgcRequest<'_>, path: &PathConfig, segs: &[&str]) -> Result<Classified, OgcError> {
    if !matches!(*req.method, Method::GET | Method::HEAD) {
        return Err(OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "GET, HEAD" });
    }
    let last = segs.last().copied().unwrap_or_default();
    let mut sized = None;
    let (name, tier, response, fwd, extra): (&'static str, Tier, ResponseKind, String, &[&str]) = match segs {
        ["cog", "info"] | ["cog", "info.geojson"] => {
            ("titiler.info", Tier::View, ResponseKind::Other, format!("/cog/{last}"), &[])
        }
        ["cog", "statistics"] => (
            "titiler.statistics",
            Tier::ViewPlus,
            ResponseKind::Other,
            "/cog/statistics".into(),
            &["max_size", "categorical", "c", "p", "histogram_bins", "histogram_range"],
        ),
        ["cog", "preview"] => (
            "titiler.preview",
            Tier::View,
            ResponseKind::Image,
            "/cog/preview".into(),
            &["max_size", "width", "height", "dst_crs"],
        ),
        ["cog", p] => {
            let ext = p.strip_prefix("preview.").unwrap_or_default();
            image_format(ext)?;
            (
                "titiler.preview",
                format_tier(Some(ext)),
                ResponseKind::Image,
                format!("/cog/preview.{ext}"),
                &["max_size", "width", "height", "dst_crs"],
            )
        }
        ["cog", "preview", s] => {
            let (s, e) = split_ext(s);
            let (w, h) = size(s)?;
            sized = Some((w, h));
            let ext = e.ok_or_else(|| bad("a sized preview ends in `.{format}`"))?;
            image_format(ext)?;
            (
                "titiler.preview",
                format_tier(Some(ext)),
                ResponseKind::Image,
                format!("/cog/preview/{w}x{h}.{ext}"),
                &["dst_crs"],
            )
        }
        _ => {
            return Err(OgcError::NotSupported(format!(
                "`{}` is not a TiTiler endpoint the gateway serves",
                shown(req.rest)
            )))
        }
    };
    let sets: &[&[&str]] = if response == ResponseKind::Image { &[READ, RENDER, extra] } else { &[READ, extra] };
    let mut q = Query::parse(req.query, sets, name)?;
    q.judge_dataset(path)?;
    // TiTiler reads the whole dataset at `max_size` 1024 unless told otherwise.
    let (w, h) = output_size(&q, sized)?.unwrap_or((1024, 1024));
    q.check_values(w, h)?;
    let parts = Parts::new(name, tier, Vec::new(), Extent::Opaque, response).with_clippable(Clippable::No);
    Ok(parts.into_classified(forward(fwd, &q, ForwardBody::None)))
}

/// The TileJSON document for one token: the shared rewriter ([`crate::ogc::tilejson`])
/// with TiTiler's tile URL mapped onto the gateway (its `url=` and `tilesize` kept, the
/// token appended when it came in the query; a URL that cannot be mapped is dropped) and
/// `maxzoom` kept below the token's maxZoom by the extra zoom of tiles larger than 256
/// pixels. Whole-dataset members such as `minmax` are dropped with every other member
/// the rewriter does not know.
pub fn rewrite_tilejson(doc: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, CapabilitiesError> {
    let invalid = |m: &str| CapabilitiesError::Write(m.to_owned());
    let json: serde_json::Value = serde_json::from_slice(doc).map_err(CapabilitiesError::Json)?;
    let links = LinkMap::new(rw.upstream, rw.public, rw.token_query)?;
    let tiles = json
        .get("tiles")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| invalid("TileJSON has no `tiles` array"))?
        .iter()
        .find_map(|t| match links.map(t.as_str()?) {
            LinkMapped::Rewritten(url) => Some(url),
            LinkMapped::Unchanged | LinkMapped::Unreachable { .. } => None,
        })
        .ok_or_else(|| invalid("TileJSON names no tile URL on the upstream"))?;
    let size = tiles.split(['?', '&']).find_map(|p| p.strip_prefix("tilesize=")).and_then(digits).unwrap_or(256);
    let view = crate::ogc::tilejson::TileJsonView {
        tiles: &tiles,
        // LinkMap already appended the query token to the mapped URL.
        token_query: None,
        fence: rw.limiting_fence(),
        properties: None,
        layers: None,
        zoom_offset: zoom_steps(size),
    };
    let out = crate::ogc::tilejson::rewrite_value(&json, &view).map_err(|e| invalid(&format!("TileJSON: {e}")))?;
    let out = serde_json::to_vec(&out).map_err(|e| invalid(&format!("TileJSON: {e}")))?;
    if links.leaks(&String::from_utf8_lossy(&out)) {
        return Err(CapabilitiesError::Leak);
    }
    Ok(out)
}

/// How many zoom levels finer than its z a tile of `size` pixels is drawn (rounded up).
fn zoom_steps(size: u32) -> u8 {
    let mut steps = 0u8;
    while (256u64 << steps) < u64::from(size) && steps < 8 {
        steps += 1;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::test_support::get;
    use crate::paths::PathKind;

    fn path() -> PathConfig {
        let mut p = PathConfig::new("dem", PathKind::Raster);
        p.titiler_datasets = vec!["file:///data/cog.tif".into(), "https://bucket.example/cogs/".into()];
        p
    }

    fn run(rest: &'static str, query: &'static str) -> Result<Classified, OgcError> {
        classify(&get(Protocol::Titiler, rest, query), &path())
    }

    const T: &str = "/cog/tiles/WebMercatorQuad/3/4/2.png";

    /// Found by the `titiler_url` fuzz target: a bare path of 2046 bytes passed the
    /// length bound, and its canonical form (`file://` + it) did not pass it again.
    #[test]
    fn the_canonical_form_keeps_the_length_bound() {
        let long = format!("/{}", "a".repeat(2045));
        assert!(canonical_dataset(&long, false).is_err());
        let ok = format!("/{}", "a".repeat(2030));
        let c = canonical_dataset(&ok, false).expect("fits");
        assert_eq!(canonical_dataset(&c, false), Ok(c.clone()));
    }

    /// Attacker round 9: raw values are `viewPlus` on every image route, pictures `view`.
    #[test]
    fn raw_value_formats_need_view_plus_everywhere() {
        let u = "url=file:///data/cog.tif";
        for rest in [
            "/cog/tiles/WebMercatorQuad/3/4/2.npy",
            "/cog/tiles/WebMercatorQuad/3/4/2.tif",
            "/cog/tiles/WebMercatorQuad/3/4/2.pngraw",
            "/cog/tiles/WebMercatorQuad/3/4/2.jp2",
            "/cog/tiles/WorldCRS84Quad/3/4/2.npy",
            "/cog/bbox/0,0,10,10.npy",
            "/cog/bbox/0,0,10,10/256x256.tif",
            "/cog/preview.npy",
            "/cog/preview/256x256.tif",
        ] {
            assert_eq!(run(rest, u).map(|c| c.op.tier), Ok(Tier::ViewPlus), "{rest}");
        }
        for rest in [
            "/cog/tiles/WebMercatorQuad/3/4/2.png",
            "/cog/tiles/WebMercatorQuad/3/4/2",
            "/cog/bbox/0,0,10,10.webp",
            "/cog/preview.jpg",
        ] {
            assert_eq!(run(rest, u).map(|c| c.op.tier), Ok(Tier::View), "{rest}");
        }
    }

    /// Attacker round 9b: bands multiply every size; histogram bins are bounded too.
    #[test]
    fn bands_and_histogram_bins_are_bounded() {
        let u = "url=file:///data/cog.tif";
        let many = |n: usize, sep: &str| vec!["b1"; n].join(sep);
        let exprs = format!("{u}&expression={}", many(17, ";"));
        assert!(run(T, Box::leak(exprs.into_boxed_str())).is_err());
        let bidx = format!("{u}{}", "&bidx=1".repeat(17));
        assert!(run(T, Box::leak(bidx.into_boxed_str())).is_err());
        let ok = format!("{u}&expression={}", many(16, ";"));
        assert!(run(T, Box::leak(ok.into_boxed_str())).is_ok());
        // Bands times pixels: a 1024-pixel tile of 5 bands, a 2048-pixel map of 2.
        let big = format!("{u}&tilesize=1024&expression={}", many(5, ";"));
        assert!(run(T, Box::leak(big.into_boxed_str())).is_err());
        let big = format!("{u}&tilesize=1024&expression={}", many(4, ";"));
        assert!(run(T, Box::leak(big.into_boxed_str())).is_ok());
        assert!(run(T, "url=file:///data/cog.tif&tilesize=1025").is_err());
        assert!(run("/cog/bbox/0,0,10,10/2048x2048.png", "url=file:///data/cog.tif&bidx=1&bidx=2").is_err());
        assert!(run("/cog/bbox/0,0,10,10/2048x2048.png", "url=file:///data/cog.tif&bidx=1").is_ok());
        assert!(run("/cog/preview/2048x2048.png", "url=file:///data/cog.tif&bidx=1&bidx=2").is_err());
        // Round 10: 8192 a side, and sizes given in the query, count too.
        assert!(run("/cog/bbox/0,0,10,10/8192x8192.png", "url=file:///data/cog.tif&bidx=1").is_err());
        assert!(run("/cog/bbox/0,0,10,10/4096x1024.png", "url=file:///data/cog.tif&bidx=1").is_ok());
        assert!(run("/cog/preview.png", "url=file:///data/cog.tif&bidx=1&max_size=4096").is_err());
        assert!(run("/cog/preview.png", "url=file:///data/cog.tif&bidx=1&max_size=2048").is_ok());
        assert!(run("/cog/bbox/0,0,10,10.png", "url=file:///data/cog.tif&bidx=1&width=4096&height=1024").is_ok());
        assert!(run("/cog/bbox/0,0,10,10.png", "url=file:///data/cog.tif&bidx=1&width=4096").is_err());
        // Round 11: an algorithm's image counts four times (hillshade computes in 64-bit floats).
        let terrain = "url=file:///data/cog.tif&bidx=1&algorithm=hillshade";
        assert!(run("/cog/bbox/0,0,10,10/2048x2048.png", terrain).is_err());
        assert!(run("/cog/bbox/0,0,10,10/1024x1024.png", terrain).is_ok());
        assert!(run(T, "url=file:///data/cog.tif&algorithm=hillshade&tilesize=1024").is_ok());
        // Round 10: every operator and function call in an expression is a pass.
        let ops = |n: usize| format!("{u}&expression={}", vec!["sin(b1)"; n].join("%2B"));
        assert!(run(T, Box::leak(ops(16).into_boxed_str())).is_ok(), "16 calls and 15 additions");
        assert!(run(T, Box::leak(ops(17).into_boxed_str())).is_err(), "17 calls and 16 additions");
        for q in ["url=file:///data/cog.tif&histogram_bins=1025", "url=file:///data/cog.tif&histogram_bins=100000000"] {
            assert!(run("/cog/statistics", q).is_err(), "{q}");
        }
        assert!(run("/cog/statistics", "url=file:///data/cog.tif&histogram_bins=20").is_ok());
        assert!(run("/cog/statistics", "url=file:///data/cog.tif&histogram_bins=0,10,20,30").is_ok());
        // Round 9c: chained colour operations and long colormaps multiply the work too.
        let formula = format!("{u}&color_formula={}", ["gamma%20rgb%201.01"; 9].join("%20"));
        assert!(run(T, Box::leak(formula.into_boxed_str())).is_err());
        assert!(run(T, "url=file:///data/cog.tif&color_formula=Gamma%20RGB%201.2%20Saturation%201.1").is_ok());
        let entries: Vec<String> = (0..257).map(|i| format!("\"{i}\":[0,0,0,255]")).collect();
        let long = format!(
            "{u}&colormap={}",
            percent_encoding::utf8_percent_encode(&format!("{{{}}}", entries.join(",")), NON_ALPHANUMERIC)
        );
        assert!(run(T, Box::leak(long.into_boxed_str())).is_err());
        assert!(run(T, "url=file:///data/cog.tif&colormap=%7B%221%22%3A%5B0%2C0%2C0%2C255%5D%7D").is_ok());
        assert!(run(T, "url=file:///data/cog.tif&colormap=nope").is_err());
    }

    /// Attacker round 9: query sizes are bounded as the path's `{w}x{h}` is.
    #[test]
    fn pixel_sizes_in_the_query_are_bounded() {
        for q in [
            "url=file:///data/cog.tif&width=8193&height=10",
            "url=file:///data/cog.tif&height=30000",
            "url=file:///data/cog.tif&max_size=100000",
        ] {
            assert!(run("/cog/bbox/0,0,10,10.jpg", q).is_err(), "{q}");
            assert!(run("/cog/preview.png", q).is_err(), "{q}");
        }
        assert!(run(T, "url=file:///data/cog.tif&padding=100000").is_err());
        assert!(run(T, "url=file:///data/cog.tif&padding=256").is_ok());
        assert!(run("/cog/bbox/0,0,10,10.jpg", "url=file:///data/cog.tif&width=2048&height=2048").is_ok());
    }

    #[test]
    fn a_covered_dataset_passes_and_is_forwarded_canonical() {
        for url in ["file:///data/cog.tif", "FILE:///data/cog.tif", "/data/cog.tif", "file%3A%2F%2F%2Fdata%2Fcog.tif"] {
            let q: &'static str = Box::leak(format!("url={url}").into_boxed_str());
            let c = run(T, q).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(c.forward.query, "url=file%3A%2F%2F%2Fdata%2Fcog.tif", "{url}");
            assert_eq!(c.forward.path, "/cog/tiles/WebMercatorQuad/3/4/2.png");
            assert_eq!(c.op.extent, Extent::Tile(TileCoord::new(3, 4, 2).unwrap()));
        }
        assert!(run(T, "url=https://bucket.example/cogs/a/b.tif").is_ok());
        assert!(run(T, "url=https://BUCKET.example:443/cogs/a.tif").is_ok());
    }

    #[test]
    fn every_bypass_shape_is_refused() {
        let cases = [
            "url=/vsicurl/https://evil.example/a.tif",
            "url=/vsizip//vsicurl/https://bucket.example/cogs/a.zip/a.tif",
            "url=/VSIS3/bucket/a.tif",
            "url=vrt:///data/cog.tif?bands=1",
            "url=%3CVRTDataset%3E%3C/VRTDataset%3E",
            "url=file:///data/../etc/passwd",
            "url=file:///data/%2e%2e/etc/passwd",
            "url=file:///data/%252e%252e/etc/passwd",
            "url=https://bucket.example/cogs/a.tif%3Fx%3D1",
            "url=https://bucket.example/cogs/a.tif%23frag",
            "url=https://bucket.example/cogs-secret/a.tif",
            "url=https://bucket.example/cogs",
            "url=https://bucket.example/cogs/",
            "url=https://bucket.example@evil.example/cogs/a.tif",
            "url=https://bucket.example./cogs/a.tif",
            "url=file:///data/cog.tif.ovr",
            "url=file://localhost/data/cog.tif",
            "url=zip+https://bucket.example/cogs/a.zip!/a.tif",
            "url=GTIFF_DIR:1:/data/cog.tif",
            "url=file:///data/cog.tif+",
            "url=file:///data/cog.tif&url=file:///etc/x",
            "URL=file:///etc/x",
            "url=file:///data/cog.tif&URL=file:///etc/x",
            "Url=file:///etc/x",
            "",
            "url=",
            "url=s3://bucket.example/cogs/a.tif",
            "url=file:///DATA/cog.tif",
            "url=file:///data/cog.tif%00",
            "url=%ff",
        ];
        for q in cases {
            let e = run(T, q).expect_err(q);
            assert!(matches!(e.status(), 400 | 403), "{q}: {e}");
        }
        assert_eq!(run(T, "url=https://bucket.example/cogs-secret/a.tif").unwrap_err().reason(), "dataset_not_covered");
    }

    #[test]
    fn parameters_are_an_allowlist() {
        assert!(run(T, "url=/data/cog.tif&bidx=1&bidx=2&rescale=0,100&colormap_name=viridis").is_ok());
        for q in [
            "url=/data/cog.tif&reader=x",
            "url=/data/cog.tif&env=GDAL_HTTP_PROXY",
            "url=/data/cog.tif&GDAL_DISABLE_READDIR_ON_OPEN=NO",
            "url=/data/cog.tif&colormap_name=a&colormap_name=b",
            "url=/data/cog.tif&expression=__import__('os')",
            "url=/data/cog.tif&expression=b1.real",
            "url=/data/cog.tif&expression=open(b1)",
        ] {
            assert!(run(T, q).is_err(), "{q}");
        }
        let c = run(T, "url=/data/cog.tif&expression=where(b1>0,b1*2,0);b2").unwrap();
        assert!(c.forward.query.contains("expression=where%28b1%3E0%2Cb1%2A2%2C0%29%3Bb2"), "{}", c.forward.query);
    }

    #[test]
    fn larger_tiles_and_buffers_are_judged_as_what_they_cover() {
        let c = run(T, "url=/data/cog.tif&tilesize=512").unwrap();
        match c.op.extent {
            Extent::BBox { zoom: Some(z), .. } => assert!((z - 4.0).abs() < 1e-6, "{z}"),
            other => panic!("{other:?}"),
        }
        let c = run(T, "url=/data/cog.tif&buffer=64").unwrap();
        let Extent::BBox { bbox, .. } = c.op.extent else { panic!() };
        let t = TileCoord::new(3, 4, 2).unwrap().bounds_mercator();
        assert!(bbox.min_x < t.min_x && bbox.max_y > t.max_y);
        assert!(run(T, "url=/data/cog.tif&buffer=0.3").is_err());
        let c = run("/cog/tiles/WorldCRS84Quad/3/4/2.png", "url=/data/cog.tif").unwrap();
        assert_eq!(c.op.extent, Extent::ForeignCrs);
    }

    #[test]
    fn formats_the_clipper_cannot_read_are_not_clippable() {
        assert!(matches!(run(T, "url=/data/cog.tif").unwrap().op.clippable, Clippable::Image { .. }));
        assert_eq!(run(T, "url=/data/cog.tif&algorithm=hillshade").unwrap().op.clippable, Clippable::No);
        let c = run("/cog/tiles/WebMercatorQuad/3/4/2.tif", "url=/data/cog.tif").unwrap();
        assert_eq!(c.op.clippable, Clippable::No);
        assert!(run("/cog/tiles/WebMercatorQuad/3/4/2.svg", "url=/data/cog.tif").is_err());
        assert!(run("/cog/tiles/WebMercatorQuad/3/8/2.png", "url=/data/cog.tif").is_err());
        assert!(run("/cog/tiles/WebMercatorQuad/3/+4/2.png", "url=/data/cog.tif").is_err());
    }

    #[test]
    fn endpoints_are_judged_or_refused() {
        let c = run("/cog/bbox/0,0,10,10/256x256.png", "url=/data/cog.tif").unwrap();
        assert!(matches!(c.op.extent, Extent::BBox { zoom: Some(z), .. } if z.is_finite()));
        let c = run("/cog/bbox/0,0,10,10.png", "url=/data/cog.tif").unwrap();
        assert!(matches!(c.op.extent, Extent::BBox { zoom: Some(z), .. } if z == NATIVE_ZOOM));
        let c = run("/cog/bbox/0,0,10,10.png", "url=/data/cog.tif&dst_crs=EPSG:32631").unwrap();
        assert_eq!(c.op.clippable, Clippable::No);
        assert!(run("/cog/bbox/0,0,1e3,10.png", "url=/data/cog.tif").is_err());
        let c = run("/cog/point/1.5,2", "url=/data/cog.tif").unwrap();
        assert_eq!((c.op.tier, c.response), (Tier::ViewPlus, ResponseKind::Other));
        for rest in ["/cog/info", "/cog/statistics", "/cog/preview.png", "/cog/preview/100x100.png", "/cog/preview"] {
            assert_eq!(run(rest, "url=/data/cog.tif").unwrap().op.extent, Extent::Opaque, "{rest}");
        }
        for rest in [
            "/cog/map",
            "/cog/WebMercatorQuad/map.html",
            "/cog/validate",
            "/cog/stac",
            "/stac/info",
            "/mosaicjson/info",
            "/cog/tiles",
            "/api",
            "/docs",
            "/cog/WebMercatorQuad/WMTSCapabilities.xml",
        ] {
            assert!(run(rest, "url=/data/cog.tif").is_err(), "{rest}");
        }
        let c = run("/cog/WebMercatorQuad/tilejson.json", "url=/data/cog.tif").unwrap();
        assert_eq!(c.forward.query, "url=file%3A%2F%2F%2Fdata%2Fcog.tif&tilesize=256");
    }

    #[test]
    fn feature_bodies_are_bounded() {
        let body = br#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[1,2],[3,2],[3,4],[1,2]]]}}"#;
        let req = OgcRequest {
            method: &Method::POST,
            content_type: Some("application/json"),
            body: Some(body),
            ..get(Protocol::Titiler, "/cog/feature/256x256.png", "url=/data/cog.tif")
        };
        let c = classify(&req, &path()).unwrap();
        let Extent::BBox { bbox, .. } = c.op.extent else { panic!() };
        assert_eq!([bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y], [1.0, 2.0, 3.0, 4.0]);
        let req = OgcRequest { body: Some(br#"{"type":"FeatureCollection","features":[]}"#), ..req };
        assert!(classify(&req, &path()).is_err());
    }

    #[test]
    fn tilejson_is_narrowed_to_the_fence() {
        use crate::spatial::Fence;
        struct View(Fence);
        impl crate::ogc::capabilities::FenceView for View {
            fn max_zoom(&self) -> Option<u8> {
                self.0.max_zoom()
            }
            fn bounds_lonlat(&self) -> Option<[f64; 4]> {
                Some([0.0, 0.0, 45.0, 40.0])
            }
            fn bounds_mercator(&self) -> Option<[f64; 4]> {
                None
            }
            fn tile_limits(&self, _z: u8) -> crate::ogc::capabilities::TileLimits {
                unimplemented!()
            }
        }
        let view = View(Fence::new(None, Some(6)).unwrap());
        let doc = br#"{"tilejson":"3.0.0","tiles":["http://127.0.0.1:8000/cog/tiles/WebMercatorQuad/{z}/{x}/{y}?url=file%3A%2F%2F%2Fdata%2Fcog.tif&tilesize=256","http://other.example/x"],"minzoom":0,"maxzoom":12,"bounds":[-10,-10,20,20],"center":[5,5,0],"minmax":[[0,9]]}"#;
        let rw = Rewrite {
            fence: Some(&view),
            token_query: Some("tg_x"),
            ..Rewrite::new("http://127.0.0.1:8000/", "https://gw/ogc/titiler/dem", &[])
        };
        let out: serde_json::Value = serde_json::from_slice(&rewrite_tilejson(doc, &rw).unwrap()).unwrap();
        assert_eq!(
            out["tiles"],
            serde_json::json!(["https://gw/ogc/titiler/dem/cog/tiles/WebMercatorQuad/{z}/{x}/{y}?url=file%3A%2F%2F%2Fdata%2Fcog.tif&tilesize=256&token=tg_x"])
        );
        assert_eq!((out["maxzoom"].as_u64(), out["minzoom"].as_u64()), (Some(6), Some(0)));
        assert_eq!(out["bounds"], serde_json::json!([0.0, 0.0, 20.0, 20.0]));
        assert!(out.get("minmax").is_none());
        assert_eq!(zoom_steps(512), 1);
    }
}
