//! Tiles: the `/ogc/mvt/{pathId}/{z}/{x}/{y}` and `/ogc/xyz/{pathId}/{z}/{x}/{y}[.ext]`
//! routes, and the tile-matrix rules WMTS and OGC API Tiles share.
//!
//! A tile matrix set is judged as XYZ tiles only when it is a Web Mercator quad tree
//! ([`WEB_MERCATOR_MATRIX_SETS`] or the path's `webmercator_matrix_sets`); its matrix ids
//! name the zoom (`5`, `05`, `EPSG:3857:5`). Other sets give [`Extent::ForeignCrs`].
//! Pure code.

use http::Method;

use crate::config::PathConfig;
use crate::policy::{Extent, Tier};
use crate::spatial::TileCoord;

use super::geo::uint;
use super::{
    bad, check_allowed, shown, Classified, Dialect, Forward, ForwardBody, Kvp, OgcError, OgcRequest, Options, Parts,
    Protocol, ResponseKind, WEB_MERCATOR_MATRIX_SETS,
};

/// True when `name` is a Web Mercator quad matrix set for this path.
pub(crate) fn is_web_mercator_set(name: &str, opts: &Options<'_>) -> bool {
    WEB_MERCATOR_MATRIX_SETS.iter().any(|s| s.eq_ignore_ascii_case(name))
        || opts.webmercator_matrix_sets.iter().any(|s| s == name)
}

/// The zoom a Web Mercator matrix id names: the digits after the last `:`.
///
/// `"5"`, `"05"`, `"EPSG:3857:5"`, `"EPSG:900913:05"` → 5.
pub(crate) fn matrix_zoom(id: &str, param: &str) -> Result<u32, OgcError> {
    let digits = id.rsplit(':').next().unwrap_or(id);
    let z = uint(digits, param)
        .map_err(|_| bad(format!("{param}: `{}` is not a zoom level of a Web Mercator matrix set", shown(id))))?;
    u32::try_from(z).map_err(|_| bad(format!("{param}: `{}` is too large", shown(id))))
}

/// The extent of a tile addressed by matrix set, matrix, row and column.
pub(crate) fn matrix_tile_extent(
    set: &str,
    matrix: &str,
    row: &str,
    col: &str,
    params: [&str; 3],
    opts: &Options<'_>,
) -> Result<Extent, OgcError> {
    let row_n = uint(row, params[1])?;
    let col_n = uint(col, params[2])?;
    if !is_web_mercator_set(set, opts) {
        return Ok(Extent::ForeignCrs);
    }
    let z = matrix_zoom(matrix, params[0])?;
    let tile = TileCoord::new(z, col_n, row_n).map_err(|e| bad(format!("{}: {e}", params[0])))?;
    Ok(Extent::Tile(tile))
}

/// `/{z}/{x}/{y}` with an optional extension (`.pbf`/`.mvt` for MVT, any short
/// alphanumeric one for XYZ).
pub(super) fn classify(req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
    if !matches!(*req.method, Method::GET | Method::HEAD) {
        return Err(OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "GET, HEAD" });
    }
    let (name, response) = match req.protocol {
        Protocol::Mvt => ("mvt.tile", ResponseKind::Mvt),
        _ => ("xyz.tile", ResponseKind::Other),
    };
    let (tile, ext) = parse_zxy(req.rest, req.protocol)?;
    let kvp = Kvp::parse(req.query, Dialect::WMTS)?;
    check_allowed(&kvp, &[], &[], path, name)?;
    let parts = Parts::new(name, Tier::View, Vec::new(), Extent::Tile(tile), response).with_format(ext);
    Ok(parts.into_classified(Forward { path: String::new(), query: kvp.encode(), body: ForwardBody::None }))
}

fn parse_zxy(rest: &str, protocol: Protocol) -> Result<(TileCoord, Option<&str>), OgcError> {
    let usage = match protocol {
        Protocol::Mvt => "/{z}/{x}/{y}[.pbf|.mvt]",
        _ => "/{z}/{x}/{y}[.ext]",
    };
    let not_a_tile = || bad(format!("`{}` is not a tile path; expected {usage}", shown(rest)));
    let mut segments = rest.strip_prefix('/').ok_or_else(not_a_tile)?.split('/');
    let (Some(z), Some(x), Some(last), None) = (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(not_a_tile());
    };
    let (y, ext) = match last.split_once('.') {
        Some((y, ext)) => {
            let ok = match protocol {
                Protocol::Mvt => matches!(ext, "pbf" | "mvt"),
                _ => !ext.is_empty() && ext.len() <= 5 && ext.bytes().all(|b| b.is_ascii_alphanumeric()),
            };
            if !ok {
                return Err(not_a_tile());
            }
            (y, Some(ext))
        }
        None => (last, None),
    };
    let z = uint(z, "z")?;
    let z = u32::try_from(z).map_err(|_| bad("z: too large"))?;
    let tile = TileCoord::new(z, uint(x, "x")?, uint(y, "y")?).map_err(|e| bad(e.to_string()))?;
    Ok((tile, ext))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{classify, OgcError, Protocol, ResponseKind};
    use super::*;

    fn tile(protocol: Protocol, rest: &'static str) -> Result<TileCoord, OgcError> {
        let c = classify(&get(protocol, rest, ""), &path())?;
        match c.op.extent {
            Extent::Tile(t) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mvt_and_xyz_paths() {
        assert_eq!(tile(Protocol::Mvt, "/3/5/6").unwrap(), TileCoord::new(3, 5, 6).unwrap());
        assert_eq!(tile(Protocol::Mvt, "/3/5/6.pbf").unwrap(), TileCoord::new(3, 5, 6).unwrap());
        assert_eq!(tile(Protocol::Xyz, "/03/5/6.png").unwrap(), TileCoord::new(3, 5, 6).unwrap());
        for rest in ["/3/8/0", "/3/5", "/3/5/6/7", "", "/a/1/1", "/1/-1/0", "/31/0/0", "/3/5/6.png", "/3/5/6."] {
            assert!(tile(Protocol::Mvt, rest).is_err(), "{rest}");
        }
        assert!(tile(Protocol::Xyz, "/3/5/6.toolong").is_err());
    }

    #[test]
    fn mvt_is_view_tier_and_filtered() {
        let c = classify(&get(Protocol::Mvt, "/0/0/0", ""), &path()).unwrap();
        assert_eq!((c.op.name, c.op.tier, c.response), ("mvt.tile", Tier::View, ResponseKind::Mvt));
        assert_eq!(c.forward.path, "");
    }

    #[test]
    fn tile_queries_need_allow_params() {
        assert!(classify(&get(Protocol::Xyz, "/0/0/0.png", "v=2"), &path()).is_err());
        let mut p = path();
        p.allow_params = vec!["V".into()];
        let c = classify(&get(Protocol::Xyz, "/0/0/0.png", "v=2"), &p).unwrap();
        assert_eq!(c.forward.query, "v=2");
    }

    #[test]
    fn post_is_405() {
        let mut req = get(Protocol::Mvt, "/0/0/0", "");
        req.method = &Method::POST;
        assert_eq!(classify(&req, &path()).unwrap_err().status(), 405);
    }

    #[test]
    fn matrix_ids_name_the_zoom() {
        for (id, z) in [("5", 5), ("05", 5), ("EPSG:3857:5", 5), ("EPSG:900913:12", 12)] {
            assert_eq!(matrix_zoom(id, "TILEMATRIX").unwrap(), z, "{id}");
        }
        for id in ["", "z5", "EPSG:3857:", "5.0", "-1"] {
            assert!(matrix_zoom(id, "TILEMATRIX").is_err(), "{id}");
        }
    }

    #[test]
    fn matrix_sets() {
        let opts = Options::default();
        assert!(is_web_mercator_set("GoogleMapsCompatible", &opts));
        assert!(is_web_mercator_set("webmercatorquad", &opts));
        assert!(is_web_mercator_set("EPSG:900913", &opts));
        assert!(!is_web_mercator_set("EPSG:4326", &opts));
        let extra = vec!["osm_grid".to_owned()];
        let opts = Options { webmercator_matrix_sets: &extra, ..Options::default() };
        assert!(is_web_mercator_set("osm_grid", &opts));
        let names = ["TILEMATRIX", "TILEROW", "TILECOL"];
        assert_eq!(
            matrix_tile_extent("osm_grid", "2", "1", "3", names, &opts).unwrap(),
            Extent::Tile(TileCoord::new(2, 3, 1).unwrap())
        );
        assert_eq!(matrix_tile_extent("EPSG:4326", "2", "1", "3", names, &opts).unwrap(), Extent::ForeignCrs);
        assert!(matrix_tile_extent("EPSG:4326", "2", "-1", "3", names, &opts).is_err());
        assert!(matrix_tile_extent("WebMercatorQuad", "2", "4", "0", names, &opts).is_err());
    }
}
