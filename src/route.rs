//! The normalize and route stages: one normalized path, then which path id and
//! which endpoint family it addresses.
//!
//! The normalized path is the only form used afterwards, for routing, for the
//! decision and for the upstream URL, so no two stages can read the path
//! differently. The query never takes part in routing.

use crate::ogc::Protocol;
use crate::spatial::{TileCoord, TileError};

/// Why a request path is refused before routing (always a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("the path has an empty segment (`//`); remove the doubled slash")]
    EmptySegment,
    #[error("the path has a `.` or `..` segment; send the resolved path")]
    DotSegment,
    #[error("the path has an encoded `/`, `\\` or `.` (`%2F`, `%5C`, `%2E`); send it unencoded")]
    EncodedSeparator,
    #[error("the path has a NUL byte or a control character")]
    ControlCharacter,
    #[error("the path has a backslash; use `/`")]
    Backslash,
    #[error("the path has a malformed percent escape; `%` must be followed by two hex digits")]
    BadEscape,
    /// Servlet containers (Tomcat, Jetty) read `;…` as a path parameter and strip it,
    /// so `/..;/` is `/../` to them: a path the gateway would judge differently.
    #[error("the path has a `;` (or `%3B`); path parameters are not passed through the gateway")]
    PathParameter,
    /// An upstream that decodes twice would read `%252e` as `.`.
    #[error("the path has an encoded `%` (`%25`); send the name without it")]
    EncodedPercent,
    #[error("the tile address is not valid: {0}")]
    Tile(#[from] TileError),
    #[error("the tile address `{0}` is not numeric; use /ogc/xyz/{{pathId}}/{{z}}/{{x}}/{{y}}[.ext]")]
    TileNotNumeric(String),
}

/// Normalizes a request path: decodes `%XX` of unreserved characters (letters,
/// digits, `-`, `_`, `~`), upper-cases other escapes, percent-encodes non-ASCII
/// bytes (`é` → `%C3%A9`), and refuses anything that could be read two ways.
///
/// ```
/// use tilegate::route::{normalize, BadPath};
/// assert_eq!(normalize("/path/%6Fsm/a%2cb").unwrap(), "/path/osm/a%2Cb");
/// assert_eq!(normalize("/ogc/api/osm/").unwrap(), "/ogc/api/osm/");
/// assert_eq!(normalize("/path/osm/%2e%2e/x"), Err(BadPath::EncodedSeparator));
/// assert_eq!(normalize("/path/osm/../x"), Err(BadPath::DotSegment));
/// assert_eq!(normalize("/path//osm"), Err(BadPath::EmptySegment));
/// // what a servlet container or a double-decoding upstream would read another way
/// assert_eq!(normalize("/path/osm/..;/other"), Err(BadPath::PathParameter));
/// assert_eq!(normalize("/path/osm/a%3bb"), Err(BadPath::PathParameter));
/// assert_eq!(normalize("/path/osm/%252e%252e/x"), Err(BadPath::EncodedPercent));
/// ```
pub fn normalize(raw: &str) -> Result<String, BadPath> {
    let rest = raw.strip_prefix('/').ok_or(BadPath::NotAbsolute)?;
    let mut out = String::with_capacity(raw.len());
    if rest.is_empty() || is_normal(raw.as_bytes()) {
        out.push_str(raw);
        return Ok(out);
    }
    let mut segments = rest.split('/').peekable();
    let mut first = true;
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            // A trailing slash is meaningful to some upstream APIs (OGC API landing
            // pages); an empty segment anywhere else is ambiguous.
            if !first && segments.peek().is_none() {
                out.push('/');
                continue;
            }
            return Err(BadPath::EmptySegment);
        }
        first = false;
        out.push('/');
        let start = out.len();
        normalize_segment(segment, &mut out)?;
        if matches!(&out[start..], "." | "..") {
            return Err(BadPath::DotSegment);
        }
        check_decoded(&out[start..])?;
    }
    Ok(out)
}

/// True when `normalize` would return the path unchanged, judged in one pass:
/// printable ASCII without `%` or `\\`, no empty segment but a trailing slash, no
/// `.` or `..` segment. Anything else takes the slow path (which also reports
/// the errors). `raw` starts with `/` and is longer than one byte.
fn is_normal(raw: &[u8]) -> bool {
    let mut start = 1;
    for i in 1..=raw.len() {
        let b = raw.get(i).copied().unwrap_or(b'/');
        if b == b'/' {
            let ok = match &raw[start..i] {
                b"" => i == raw.len() && start > 1,
                b"." | b".." => false,
                _ => true,
            };
            if !ok {
                return false;
            }
            start = i + 1;
        } else if !(0x20..0x7f).contains(&b) || b == b'%' || b == b'\\' || b == b';' {
            return false;
        }
    }
    true
}

fn normalize_segment(segment: &str, out: &mut String) -> Result<(), BadPath> {
    let bytes = segment.as_bytes();
    // Plain visible ASCII is copied in runs; `run` is where the current run starts.
    // INVARIANT: when `run < i`, bytes[run..i] are ASCII, so both ends are char boundaries.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                if run < i {
                    out.push_str(&segment[run..i]);
                }
                let hex = bytes.get(i + 1..i + 3).ok_or(BadPath::BadEscape)?;
                let value = (hex_value(hex[0]).ok_or(BadPath::BadEscape)? << 4)
                    | hex_value(hex[1]).ok_or(BadPath::BadEscape)?;
                match value {
                    b'/' | b'\\' | b'.' => return Err(BadPath::EncodedSeparator),
                    b';' => return Err(BadPath::PathParameter),
                    b'%' => return Err(BadPath::EncodedPercent),
                    0..=0x1f | 0x7f => return Err(BadPath::ControlCharacter),
                    v if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || v == b'~' => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(v >> 4)]));
                        out.push(char::from(HEX[usize::from(v & 0xf)]));
                    }
                }
                i += 3;
                run = i;
            }
            b'\\' => return Err(BadPath::Backslash),
            b';' => return Err(BadPath::PathParameter),
            0..=0x1f | 0x7f => return Err(BadPath::ControlCharacter),
            0x80.. => {
                // hyper admits UTF-8 in the path; each byte of it is percent-encoded, so
                // the result is ASCII and normalizing it again changes nothing.
                if run < i {
                    out.push_str(&segment[run..i]);
                }
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    if run < bytes.len() {
        out.push_str(&segment[run..]);
    }
    Ok(())
}

/// What an upstream that decodes the segment would see: it must be UTF-8 (an overlong
/// `%C0%AE` is a `.` to lenient decoders), and not a dot segment spelled with
/// look-alike dots that Unicode normalisation (NFKC) folds into `.` (`．．`, `‥`, `﹒`),
/// and without a look-alike `/` or `\`.
fn check_decoded(segment: &str) -> Result<(), BadPath> {
    if !segment.contains('%') {
        return Ok(());
    }
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().map_err(|_| BadPath::BadEscape)?;
    // Look-alike separators NFKC folds into `/` or `\` (`／`, `＼`, `﹨`, and `℀ ℁ ℅ ℆`,
    // which fold to `a/c`…): a normalising upstream would split the segment there.
    if decoded
        .chars()
        .any(|c| matches!(c, '\u{FF0F}' | '\u{FF3C}' | '\u{FE68}' | '\u{2100}' | '\u{2101}' | '\u{2105}' | '\u{2106}'))
    {
        return Err(BadPath::EncodedSeparator);
    }
    let dots: usize = decoded
        .chars()
        .map(|c| match c {
            '.' | '\u{FF0E}' | '\u{2024}' | '\u{FE52}' => Some(1),
            '\u{2025}' => Some(2),
            _ => None,
        })
        .sum::<Option<usize>>()
        .unwrap_or(0);
    if matches!(dots, 1 | 2) {
        return Err(BadPath::DotSegment);
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// What a normalized path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Healthz,
    Readyz,
    OpenApi,
    /// `/account/security/accessToken[/{id}]`
    TokenApi {
        id: Option<&'a str>,
    },
    /// `/account/security/paths`: the paths the calling token can see (the console's tree).
    AccountPaths,
    /// `/admin` and `/admin/{asset}`: the browser console's static files (`asset` is
    /// `None` for `/admin` without the slash, `Some("")` for the page itself).
    Console {
        asset: Option<&'a str>,
    },
    /// `/path/{pathId}/{rest}`: pass-through to `upstream.base`.
    Path {
        path_id: &'a str,
        rest: &'a str,
    },
    /// `/ogc/xyz/{pathId}/{z}/{x}/{y}[.ext]`
    Xyz {
        path_id: &'a str,
        tile: TileCoord,
        ext: Option<&'a str>,
    },
    /// `/ogc/{family}/{pathId}[/rest]`: classified by the OGC module.
    Ogc {
        family: Protocol,
        path_id: &'a str,
        rest: &'a str,
    },
    /// Nothing lives here.
    Unknown,
}

/// Routes a normalized path.
///
/// ```
/// use tilegate::route::{route, Route};
/// assert_eq!(route("/path/osm/a/b").unwrap(), Route::Path { path_id: "osm", rest: "a/b" });
/// assert!(matches!(route("/ogc/xyz/osm/3/1/2.png").unwrap(), Route::Xyz { path_id: "osm", ext: Some("png"), .. }));
/// assert!(route("/ogc/xyz/osm/1/2/0").is_err());
/// assert_eq!(route("/nothing").unwrap(), Route::Unknown);
/// assert_eq!(route("/admin/").unwrap(), Route::Console { asset: Some("") });
/// assert_eq!(route("/admin/a/b").unwrap(), Route::Unknown);
/// assert_eq!(route("/account/security/paths").unwrap(), Route::AccountPaths);
/// ```
pub fn route(path: &str) -> Result<Route<'_>, BadPath> {
    let rest = &path[1..];
    let (first, tail) = split_first(rest);
    Ok(match first {
        "healthz" if tail.is_none() => Route::Healthz,
        "readyz" if tail.is_none() => Route::Readyz,
        "openapi.json" if tail.is_none() => Route::OpenApi,
        "account" => match tail.map(split_first) {
            Some(("security", Some(t))) => match split_first(t) {
                ("accessToken", None) => Route::TokenApi { id: None },
                ("accessToken", Some(id)) if !id.is_empty() && !id.contains('/') => Route::TokenApi { id: Some(id) },
                ("paths", None) => Route::AccountPaths,
                _ => Route::Unknown,
            },
            _ => Route::Unknown,
        },
        "admin" => match tail {
            None => Route::Console { asset: None },
            Some(asset) if !asset.contains('/') => Route::Console { asset: Some(asset) },
            Some(_) => Route::Unknown,
        },
        "path" => match tail.map(split_first) {
            Some((path_id, rest)) if !path_id.is_empty() => Route::Path { path_id, rest: rest.unwrap_or("") },
            _ => Route::Unknown,
        },
        "ogc" => {
            let Some((family, Some(after))) = tail.map(split_first) else {
                return Ok(Route::Unknown);
            };
            let (path_id, rest) = split_first(after);
            if path_id.is_empty() {
                return Ok(Route::Unknown);
            }
            let family = match Protocol::from_segment(family) {
                Some(Protocol::Xyz) => return xyz(path_id, rest.unwrap_or("")),
                Some(p) => p,
                None => return Ok(Route::Unknown),
            };
            // `rest` keeps its leading slash so OGC API paths read naturally.
            let rest = &after[path_id.len()..];
            Route::Ogc { family, path_id, rest }
        }
        _ => Route::Unknown,
    })
}

fn split_first(s: &str) -> (&str, Option<&str>) {
    // A plain loop: the segments are short, so memchr's setup costs more than it saves.
    match s.bytes().position(|b| b == b'/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

fn xyz<'a>(path_id: &'a str, rest: &'a str) -> Result<Route<'a>, BadPath> {
    // A TileJSON beside the tiles (PMTiles paths, src/pmtiles).
    if rest == "tilejson.json" {
        return Ok(Route::Ogc { family: Protocol::Xyz, path_id, rest: "/tilejson.json" });
    }
    let (tile, ext) = parse_zxy(rest)?;
    Ok(Route::Xyz { path_id, tile, ext })
}

/// Parses `{z}/{x}/{y}[.ext]` into a checked tile (XYZ row order).
///
/// ```
/// use tilegate::route::parse_zxy;
/// let (t, ext) = parse_zxy("2/3/1.pbf").unwrap();
/// assert_eq!((t.z(), t.x(), t.y(), ext), (2, 3, 1, Some("pbf")));
/// assert!(parse_zxy("2/4/1").is_err());
/// assert!(parse_zxy("2/+3/1").is_err());
/// ```
pub fn parse_zxy(rest: &str) -> Result<(TileCoord, Option<&str>), BadPath> {
    let bad = || BadPath::TileNotNumeric(rest.to_owned());
    let (z, after_z) = split_first(rest);
    let (x, after_x) = split_first(after_z.ok_or_else(bad)?);
    let (y_ext, None) = split_first(after_x.ok_or_else(bad)?) else {
        return Err(bad());
    };
    let (y, ext) = match y_ext.bytes().position(|b| b == b'.').map(|i| (&y_ext[..i], &y_ext[i + 1..])) {
        Some((y, ext)) if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric()) => (y, Some(ext)),
        Some(_) => return Err(bad()),
        None => (y_ext, None),
    };
    let (Some(z), Some(x), Some(y)) = (decimal(z), decimal(x), decimal(y)) else {
        return Err(bad());
    };
    let tile = TileCoord::new(u32::try_from(z).unwrap_or(u32::MAX), x, y)?;
    Ok((tile, ext))
}

/// 1 to 10 ASCII digits as a number (no sign, no spaces).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Fills `{z}`, `{x}`, `{y}` and `{-y}` (the TMS row) in a tile URL template, in one
/// pass and one allocation. Gives the same string as replacing the four
/// placeholders one after another (the values are digits, so no replacement can
/// form a new placeholder); `None` when the result is not a valid URI.
///
/// ```
/// use tilegate::route::fill_tile_template;
/// use tilegate::spatial::TileCoord;
/// let t = TileCoord::new(3, 5, 1).unwrap();
/// let uri = fill_tile_template("http://up/{z}/{x}/{y}.png?tms={-y}&{q}", t).unwrap();
/// assert_eq!(uri, "http://up/3/5/1.png?tms=6&{q}");
/// ```
pub fn fill_tile_template(template: &str, tile: TileCoord) -> Option<http::Uri> {
    let tms_y = (1u64 << tile.z()) - 1 - u64::from(tile.y());
    let mut out = String::with_capacity(template.len() + 24);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let (value, len) = if after.starts_with("{z}") {
            (u64::from(tile.z()), 3)
        } else if after.starts_with("{x}") {
            (u64::from(tile.x()), 3)
        } else if after.starts_with("{y}") {
            (u64::from(tile.y()), 3)
        } else if after.starts_with("{-y}") {
            (tms_y, 4)
        } else {
            out.push('{');
            rest = &after[1..];
            continue;
        };
        push_decimal(&mut out, value);
        rest = &after[len..];
    }
    out.push_str(rest);
    http::Uri::try_from(out).ok()
}

fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let cases: &[(&str, Result<&str, BadPath>)] = &[
            ("/", Ok("/")),
            ("/path/osm/tiles/1.png", Ok("/path/osm/tiles/1.png")),
            ("/path/%6f%73%6D/x", Ok("/path/osm/x")),
            ("/path/osm/%7e%2D%5f", Ok("/path/osm/~-_")),
            ("/path/osm/a%2cb%3A", Ok("/path/osm/a%2Cb%3A")),
            ("/path/osm/%c3%a9", Ok("/path/osm/%C3%A9")),
            ("/path/osm/", Ok("/path/osm/")),
            ("/path/osm/a.b", Ok("/path/osm/a.b")),
            ("/path/osm/..a", Ok("/path/osm/..a")),
            ("/path/osm/%2e%2e", Err(BadPath::EncodedSeparator)),
            ("/path/osm/%2E%2E/secret", Err(BadPath::EncodedSeparator)),
            ("/path/osm/.%2e", Err(BadPath::EncodedSeparator)),
            ("/path/osm%2Fother/x", Err(BadPath::EncodedSeparator)),
            ("/path/osm%2fother", Err(BadPath::EncodedSeparator)),
            ("/path/osm%5Cother", Err(BadPath::EncodedSeparator)),
            ("/path/osm%5cother", Err(BadPath::EncodedSeparator)),
            ("/path/osm\\other", Err(BadPath::Backslash)),
            ("/path//osm", Err(BadPath::EmptySegment)),
            ("//path/osm", Err(BadPath::EmptySegment)),
            ("/path/osm//", Err(BadPath::EmptySegment)),
            ("/path/./osm", Err(BadPath::DotSegment)),
            ("/path/osm/..", Err(BadPath::DotSegment)),
            ("/path/osm/../../etc", Err(BadPath::DotSegment)),
            ("/path/osm/%00", Err(BadPath::ControlCharacter)),
            ("/path/osm/%0a", Err(BadPath::ControlCharacter)),
            ("/path/osm/%zz", Err(BadPath::BadEscape)),
            ("/path/osm/%4", Err(BadPath::BadEscape)),
            ("path/osm", Err(BadPath::NotAbsolute)),
            // Servlet path parameters: Tomcat and Jetty strip `;…`, so `..;` is `..`.
            ("/path/osm/..;/..;/other/", Err(BadPath::PathParameter)),
            ("/path/osm/.;/x", Err(BadPath::PathParameter)),
            ("/path/osm;jsessionid=1/x", Err(BadPath::PathParameter)),
            ("/ogc/wmts/osm/osm;x/default/g/0/0/0.png", Err(BadPath::PathParameter)),
            ("/path/osm/%3B", Err(BadPath::PathParameter)),
            // A double-decoding upstream would read `%252e%252e` as `..`.
            ("/path/osm/%252e%252e/other", Err(BadPath::EncodedPercent)),
            ("/path/osm/100%25", Err(BadPath::EncodedPercent)),
            // Found by an outside attacker: look-alike dots and overlong UTF-8 dots.
            ("/path/osm/%C0%AE%C0%AE/x", Err(BadPath::BadEscape)),
            ("/path/osm/%EF%BC%8E%EF%BC%8E/x", Err(BadPath::DotSegment)),
            ("/path/osm/%E2%80%A5/x", Err(BadPath::DotSegment)),
            ("/path/osm/%EF%BC%8E/x", Err(BadPath::DotSegment)),
            ("/path/osm/a%EF%BC%8Eb/x", Ok("/path/osm/a%EF%BC%8Eb/x")),
            // Attacker round 2: fullwidth solidus and reverse solidus (NFKC `/`, `\`).
            ("/path/osm/..%EF%BC%8F..%EF%BC%8Fother/x", Err(BadPath::EncodedSeparator)),
            ("/path/osm/a%EF%BC%BCb", Err(BadPath::EncodedSeparator)),
            ("/path/osm/a%EF%B9%A8b", Err(BadPath::EncodedSeparator)),
            ("/path/osm/%E2%84%85", Err(BadPath::EncodedSeparator)),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), want.as_ref().map(|s| *s), "{input}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_slow_one() {
        let paths = [
            "/",
            "/a",
            "/a/",
            "/a//",
            "//a",
            "/a/./b",
            "/a/../b",
            "/a/.",
            "/a/..",
            "/a/.../b",
            "/.a/b.",
            "/a b/c",
            "/ogc/xyz/osm/14/8292/5170.pbf",
            "/path/osm/a%2cb",
            "/x\\y",
            "/a/\u{e9}",
            "/a\u{7f}",
            "/a/~-_.!$&'()*+,=:@",
            "/a/b;c",
        ];
        for p in paths {
            let mut slow = String::new();
            let slow = (|| -> Result<String, BadPath> {
                for (i, seg) in p[1..].split('/').enumerate() {
                    let last = i == p[1..].split('/').count() - 1;
                    if seg.is_empty() {
                        if p == "/" || (last && i > 0) {
                            slow.push('/');
                            continue;
                        }
                        return Err(BadPath::EmptySegment);
                    }
                    slow.push('/');
                    let start = slow.len();
                    normalize_segment(seg, &mut slow)?;
                    if matches!(&slow[start..], "." | "..") {
                        return Err(BadPath::DotSegment);
                    }
                }
                Ok(slow.clone())
            })();
            assert_eq!(normalize(p), slow, "{p}");
        }
    }

    #[test]
    fn non_ascii_path_was_mangled_and_changed_on_each_normalization() {
        // Found by the `normalize_route` fuzz target: each UTF-8 byte became one char, so
        // `é` turned into `Ã©` upstream and normalizing the result changed it again.
        // hyper does hand such paths over:
        let uri: http::Uri = "/path/osm/caf\u{e9}".parse().expect("http accepts UTF-8 paths");
        assert_eq!(uri.path(), "/path/osm/caf\u{e9}");
        assert_eq!(normalize(uri.path()).unwrap(), "/path/osm/caf%C3%A9");
        assert_eq!(normalize("/a/\u{e9}x/b%41").unwrap(), "/a/%C3%A9x/bA");
        assert_eq!(normalize("/\u{e9}").unwrap(), "/%C3%A9");
        let once = normalize("/path\u{450}sm/a%2c/c").unwrap();
        assert_eq!(normalize(&once).unwrap(), once);
    }

    #[test]
    fn filling_a_template_equals_replacing_each_placeholder() {
        let templates = [
            "http://127.0.0.1:9000/tiles/{z}/{x}/{y}.png",
            "http://up/tms/{z}/{x}/{-y}.png",
            "http://up/t?z={z}&x={x}&y={y}&z2={z}",
            "http://up/{{z}}/{-{y}}/{x}{y}{z}/{q}/{",
            "http://up/{x}/{y}/{z}/}{-y}}",
        ];
        for template in templates {
            for (z, x, y) in [(0, 0, 0), (3, 5, 1), (14, 8292, 5170), (30, (1 << 30) - 1, 12345)] {
                let tile = TileCoord::new(z, x, y).expect("tile");
                let tms_y = (1u64 << tile.z()) - 1 - u64::from(tile.y());
                let want = template
                    .replace("{z}", &tile.z().to_string())
                    .replace("{x}", &tile.x().to_string())
                    .replace("{-y}", &tms_y.to_string())
                    .replace("{y}", &tile.y().to_string());
                let got = fill_tile_template(template, tile);
                assert_eq!(
                    got.map(|u| u.to_string()),
                    want.parse::<http::Uri>().ok().map(|u| u.to_string()),
                    "{template}"
                );
            }
        }
        assert!(fill_tile_template("http://up/a b/{z}", TileCoord::new(0, 0, 0).expect("tile")).is_none());
    }

    #[test]
    fn tile_numbers_parse_like_before() {
        for ok in ["0/0/0", "1/1/1.png", "30/0/1073741823", "2/03/1", "0000000002/1/1.pbf"] {
            assert!(parse_zxy(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1/0", "1/0/0/0", "1/+1/0", "1/ 1/0", "1/1/0.", "1/1/0.p-g", "00000000002/1/1", "a/1/1", "1//1"]
        {
            assert!(matches!(parse_zxy(bad), Err(BadPath::TileNotNumeric(_))), "{bad}");
        }
        assert!(matches!(parse_zxy("31/0/0"), Err(BadPath::Tile(_))));
        assert!(matches!(parse_zxy("9999999999/0/0"), Err(BadPath::Tile(_))));
    }

    #[test]
    fn routing_table() {
        let t = |z, x, y| TileCoord::new(z, x, y).expect("tile");
        assert_eq!(route("/healthz").unwrap(), Route::Healthz);
        assert_eq!(route("/healthz/x").unwrap(), Route::Unknown);
        assert_eq!(route("/account/security/accessToken").unwrap(), Route::TokenApi { id: None });
        assert_eq!(route("/account/security/accessToken/abc").unwrap(), Route::TokenApi { id: Some("abc") });
        assert_eq!(route("/account/security/accessToken/a/b").unwrap(), Route::Unknown);
        assert_eq!(route("/path/osm").unwrap(), Route::Path { path_id: "osm", rest: "" });
        assert_eq!(route("/path/osm/").unwrap(), Route::Path { path_id: "osm", rest: "" });
        assert_eq!(route("/path/").unwrap(), Route::Unknown);
        assert_eq!(route("/ogc/xyz/osm/0/0/0").unwrap(), Route::Xyz { path_id: "osm", tile: t(0, 0, 0), ext: None });
        assert_eq!(
            route("/ogc/xyz/osm/30/0/1073741823.png").unwrap(),
            Route::Xyz { path_id: "osm", tile: t(30, 0, (1 << 30) - 1), ext: Some("png") }
        );
        assert!(matches!(route("/ogc/xyz/osm/31/0/0"), Err(BadPath::Tile(_))));
        assert!(matches!(route("/ogc/xyz/osm/1/0"), Err(BadPath::TileNotNumeric(_))));
        assert!(matches!(route("/ogc/xyz/osm/1/0/0/0"), Err(BadPath::TileNotNumeric(_))));
        assert!(matches!(route("/ogc/xyz/osm/1/-1/0"), Err(BadPath::TileNotNumeric(_))));
        assert!(matches!(route("/ogc/xyz/osm/1/0/0."), Err(BadPath::TileNotNumeric(_))));
        assert_eq!(route("/ogc/wms/osm").unwrap(), Route::Ogc { family: Protocol::Wms, path_id: "osm", rest: "" });
        assert_eq!(
            route("/ogc/api/osm/collections/a/items").unwrap(),
            Route::Ogc { family: Protocol::Api, path_id: "osm", rest: "/collections/a/items" }
        );
        assert_eq!(route("/ogc/nope/osm").unwrap(), Route::Unknown);
        assert_eq!(route("/ogc/wms").unwrap(), Route::Unknown);
    }
}
