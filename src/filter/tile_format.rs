//! Which vector tile format an upstream answered in, read from its `Content-Type`, and
//! whether the gateway expected it. No body is read here.
//!
//! MVT (`application/vnd.mapbox-vector-tile`, `application/x-protobuf`, martin's
//! label; `application/octet-stream` or no type, as some tile servers send) is what
//! the MVT filter reads. MLT (MapLibre Tiles, `application/vnd.maplibre-tile`, also
//! `application/vnd.maplibre-vector-tile`) is relayed only to a token that needs no
//! filtering: the gateway does not decode MLT, so a fenced or property-fenced token
//! never receives one (the gateway asks the upstream for MVT, and refuses an MLT
//! answer anyway). Anything else (images, JSON, HTML, text…) is refused: the gateway
//! does not pass a tile body it did not expect.

/// The vector tile format an answer declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorFormat {
    Mvt,
    Mlt,
}

/// Reads the answer's `Content-Type` (`None`: absent) as a vector tile format.
///
/// ```
/// use tilegate::filter::tile_format::{vector_format, VectorFormat};
/// assert_eq!(vector_format(Some("application/x-protobuf")), Ok(VectorFormat::Mvt));
/// assert_eq!(vector_format(Some("Application/Vnd.MapLibre-Tile; charset=x")), Ok(VectorFormat::Mlt));
/// assert_eq!(vector_format(None), Ok(VectorFormat::Mvt));
/// assert!(vector_format(Some("image/png")).is_err());
/// ```
pub fn vector_format(content_type: Option<&str>) -> Result<VectorFormat, String> {
    let Some(ct) = content_type else { return Ok(VectorFormat::Mvt) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/vnd.mapbox-vector-tile" | "application/x-protobuf" | "application/octet-stream" | "" => {
            Ok(VectorFormat::Mvt)
        }
        "application/vnd.maplibre-tile" | "application/vnd.maplibre-vector-tile" => Ok(VectorFormat::Mlt),
        _ => Err(format!("the upstream answered a vector tile request with `{}`", crate::ogc::common::shown(&essence))),
    }
}

/// Refuses an answer the gateway did not expect: any non-tile type, and MLT unless
/// `mlt_ok` (the token needs no filtering of this tile).
pub fn check(content_type: Option<&str>, mlt_ok: bool) -> Result<VectorFormat, String> {
    match vector_format(content_type)? {
        VectorFormat::Mlt if !mlt_ok => {
            Err("the upstream answered with an MLT tile, which the gateway cannot filter for this token".into())
        }
        f => Ok(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlt_only_when_no_filter_is_needed() {
        assert_eq!(check(Some("application/vnd.maplibre-tile"), true), Ok(VectorFormat::Mlt));
        assert!(check(Some("application/vnd.maplibre-tile"), false).is_err());
        assert!(check(Some("application/vnd.maplibre-vector-tile"), false).is_err());
        assert_eq!(check(Some("application/vnd.mapbox-vector-tile"), false), Ok(VectorFormat::Mvt));
        for t in ["image/png", "application/json", "text/html", "application/geo+json", "application/x-mlt"] {
            assert!(check(Some(t), true).is_err(), "{t}");
        }
    }
}
