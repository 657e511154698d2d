//! The normalize and route stages: one normalized path, then which path id and
//! which endpoint family it addresses.
//!
//! The normalized path is the only form used afterwards, for routing, for the
//! decision and for the upstream URL, so no two stages can read the path
//! differently. The query never takes part in routing.

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
    #[error("the tile address is not valid: {0}")]
    Tile(#[from] TileError),
    #[error("the tile address `{0}` is not numeric; use /ogc/xyz/{{pathId}}/{{z}}/{{x}}/{{y}}[.ext]")]
    TileNotNumeric(String),
}

/// Normalizes a request path: decodes `%XX` of unreserved characters (letters,
/// digits, `-`, `_`, `~`), upper-cases other escapes, and refuses anything that
/// could be read two ways.
///
/// ```
/// use tilegate::route::{normalize, BadPath};
/// assert_eq!(normalize("/path/%6Fsm/a%2cb").unwrap(), "/path/osm/a%2Cb");
/// assert_eq!(normalize("/ogc/api/osm/").unwrap(), "/ogc/api/osm/");
/// assert_eq!(normalize("/path/osm/%2e%2e/x"), Err(BadPath::EncodedSeparator));
/// assert_eq!(normalize("/path/osm/../x"), Err(BadPath::DotSegment));
/// assert_eq!(normalize("/path//osm"), Err(BadPath::EmptySegment));
/// ```
pub fn normalize(raw: &str) -> Result<String, BadPath> {
    let rest = raw.strip_prefix('/').ok_or(BadPath::NotAbsolute)?;
    let mut out = String::with_capacity(raw.len());
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            // A trailing slash is meaningful to some upstream APIs (OGC API landing
            // pages); an empty segment anywhere else is ambiguous.
            if i == last && i > 0 {
                out.push('/');
                continue;
            }
            if raw == "/" {
                out.push('/');
                return Ok(out);
            }
            return Err(BadPath::EmptySegment);
        }
        out.push('/');
        let start = out.len();
        normalize_segment(segment, &mut out)?;
        if matches!(&out[start..], "." | "..") {
            return Err(BadPath::DotSegment);
        }
    }
    Ok(out)
}

fn normalize_segment(segment: &str, out: &mut String) -> Result<(), BadPath> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(BadPath::BadEscape)?;
                let value = (hex_value(hex[0]).ok_or(BadPath::BadEscape)? << 4)
                    | hex_value(hex[1]).ok_or(BadPath::BadEscape)?;
                match value {
                    b'/' | b'\\' | b'.' => return Err(BadPath::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(BadPath::ControlCharacter),
                    v if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || v == b'~' => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(v >> 4)]));
                        out.push(char::from(HEX[usize::from(v & 0xf)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(BadPath::Backslash),
            0..=0x1f | 0x7f => return Err(BadPath::ControlCharacter),
            _ => {
                // hyper only admits visible ASCII in the path, so this is a char.
                out.push(char::from(b));
                i += 1;
            }
        }
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

/// The OGC endpoint families under `/ogc/{family}/{pathId}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OgcFamily {
    Wms,
    Wmts,
    Wfs,
    Wcs,
    Api,
    Mvt,
}

impl OgcFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            OgcFamily::Wms => "wms",
            OgcFamily::Wmts => "wmts",
            OgcFamily::Wfs => "wfs",
            OgcFamily::Wcs => "wcs",
            OgcFamily::Api => "api",
            OgcFamily::Mvt => "mvt",
        }
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
        family: OgcFamily,
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
                _ => Route::Unknown,
            },
            _ => Route::Unknown,
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
            let family = match family {
                "xyz" => return xyz(path_id, rest.unwrap_or("")),
                "wms" => OgcFamily::Wms,
                "wmts" => OgcFamily::Wmts,
                "wfs" => OgcFamily::Wfs,
                "wcs" => OgcFamily::Wcs,
                "api" => OgcFamily::Api,
                "mvt" => OgcFamily::Mvt,
                _ => return Ok(Route::Unknown),
            };
            // `rest` keeps its leading slash so OGC API paths read naturally.
            let rest = &after[path_id.len()..];
            Route::Ogc { family, path_id, rest }
        }
        _ => Route::Unknown,
    })
}

fn split_first(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

fn xyz<'a>(path_id: &'a str, rest: &'a str) -> Result<Route<'a>, BadPath> {
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
    let mut parts = rest.split('/');
    let (Some(z), Some(x), Some(y_ext), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(BadPath::TileNotNumeric(rest.to_owned()));
    };
    let (y, ext) = match y_ext.split_once('.') {
        Some((y, ext)) if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric()) => (y, Some(ext)),
        Some(_) => return Err(BadPath::TileNotNumeric(rest.to_owned())),
        None => (y_ext, None),
    };
    let num = |s: &str| -> Result<u64, BadPath> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadPath::TileNotNumeric(rest.to_owned()));
        }
        s.parse().map_err(|_| BadPath::TileNotNumeric(rest.to_owned()))
    };
    let z = num(z)?;
    let tile = TileCoord::new(u32::try_from(z).unwrap_or(u32::MAX), num(x)?, num(y)?)?;
    Ok((tile, ext))
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
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), want.as_ref().map(|s| *s), "{input}");
        }
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
        assert_eq!(route("/ogc/wms/osm").unwrap(), Route::Ogc { family: OgcFamily::Wms, path_id: "osm", rest: "" });
        assert_eq!(
            route("/ogc/api/osm/collections/a/items").unwrap(),
            Route::Ogc { family: OgcFamily::Api, path_id: "osm", rest: "/collections/a/items" }
        );
        assert_eq!(route("/ogc/nope/osm").unwrap(), Route::Unknown);
        assert_eq!(route("/ogc/wms").unwrap(), Route::Unknown);
    }
}
