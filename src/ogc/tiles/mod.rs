//! Tiles: the `/ogc/mvt/{pathId}/{z}/{x}/{y}` and `/ogc/xyz/{pathId}/{z}/{x}/{y}[.ext]`
//! routes, and the tile-matrix rules WMTS and OGC API Tiles share.
//!
//! A tile matrix set is judged as XYZ tiles only when it is a Web Mercator quad tree
//! ([`matrix::WEB_MERCATOR_QUAD_SETS`] or the path's `webmercator_matrix_sets`); its
//! matrix ids name the zoom (`5`, `05`, `EPSG:3857:5` in set `EPSG:3857`). Other sets
//! give [`Extent::ForeignCrs`].
//! Pure code.

use http::Method;

use crate::paths::PathConfig;
use crate::policy::{Extent, Tier};
use crate::spatial::TileCoord;

use crate::ogc::capabilities::{CapabilitiesError, Rewrite};
use crate::ogc::common::geo::uint;
use crate::ogc::common::kvp::{Dialect, Kvp};
use crate::ogc::common::matrix;
use crate::ogc::common::{bad, check_allowed, shown};
use crate::ogc::{Classified, Forward, ForwardBody, OgcError, OgcRequest, Parts, Protocol, ResponseKind};

/// Vector tiles at `/ogc/mvt/{pathId}/{z}/{x}/{y}`, forwarded through the `mvt` template.
pub struct Mvt;

/// Raster tiles at `/ogc/xyz/{pathId}/{z}/{x}/{y}[.ext]`, forwarded through the `xyz`
/// template (`{-y}` for TMS rows).
pub struct Xyz;

impl Service for Mvt {
    fn endpoint(&self, upstream: &Upstreams, _rest: &str) -> Option<String> {
        upstream.mvt.as_ref().map(|t| t.0.clone())
    }

    fn classify(&self, req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
        classify_tile(req, path)
    }

    fn rewrite_capabilities(&self, _doc: &[u8], _rw: &Rewrite<'_>) -> Option<Result<Vec<u8>, CapabilitiesError>> {
        None
    }
}

impl Service for Xyz {
    fn endpoint(&self, upstream: &Upstreams, _rest: &str) -> Option<String> {
        upstream.xyz.as_ref().map(|t| t.0.clone())
    }

    fn classify(&self, req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
        classify_tile(req, path)
    }

    fn rewrite_capabilities(&self, _doc: &[u8], _rw: &Rewrite<'_>) -> Option<Result<Vec<u8>, CapabilitiesError>> {
        None
    }
}

use crate::ogc::Service;
use crate::paths::Upstreams;

/// The extent of a tile addressed by matrix set, matrix, row and column (WMTS, OGC API
/// Tiles): a z/x/y tile in a Web Mercator quad set ([`matrix::is_quad_set`], with the
/// matrix's zoom from [`matrix::matrix_zoom`], the same two functions the WMTS
/// capabilities rewriter uses), [`Extent::ForeignCrs`] in any other set.
pub(crate) fn matrix_tile_extent(
    set: &str,
    matrix_id: &str,
    row: &str,
    col: &str,
    params: [&str; 3],
    path: &PathConfig,
) -> Result<Extent, OgcError> {
    let row_n = uint(row, params[1])?;
    let col_n = uint(col, params[2])?;
    if !matrix::is_quad_set(set, &path.webmercator_matrix_sets) {
        return Ok(Extent::ForeignCrs);
    }
    let z = matrix::matrix_zoom(set, matrix_id).ok_or_else(|| {
        bad(format!(
            "{}: `{}` is not a zoom level of the Web Mercator matrix set `{}`",
            params[0],
            shown(matrix_id),
            shown(set)
        ))
    })?;
    let tile = TileCoord::new(u32::from(z), col_n, row_n).map_err(|e| bad(format!("{}: {e}", params[0])))?;
    Ok(Extent::Tile(tile))
}

/// `/{z}/{x}/{y}` with an optional extension (`.pbf`/`.mvt` for MVT, any short
/// alphanumeric one for XYZ).
fn classify_tile(req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
    if !matches!(*req.method, Method::GET | Method::HEAD) {
        return Err(OgcError::MethodNotAllowed { method: req.method.to_string(), allowed: "GET, HEAD" });
    }
    let (name, response) = match req.protocol {
        Protocol::Mvt => ("mvt.tile", ResponseKind::Mvt),
        _ => ("xyz.tile", ResponseKind::Image),
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
    use super::*;
    use crate::ogc::test_support::*;
    use crate::ogc::{classify, OgcError, Protocol, ResponseKind};

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
    fn matrix_ids_name_the_zoom_only_in_their_own_set() {
        let names = ["TILEMATRIX", "TILEROW", "TILECOL"];
        let at = |set: &str, id: &str| matrix_tile_extent(set, id, "0", "0", names, &path());
        for (set, id, z) in [
            ("EPSG:3857", "5", 5),
            ("EPSG:3857", "05", 5),
            ("EPSG:3857", "EPSG:3857:5", 5),
            ("EPSG:900913", "EPSG:900913:12", 12),
        ] {
            assert_eq!(at(set, id).unwrap(), Extent::Tile(TileCoord::new(z, 0, 0).unwrap()), "{id}");
        }
        for id in ["", "z5", "EPSG:3857:", "5.0", "-1", "foo:3", "EPSG:4326:3"] {
            assert!(at("EPSG:3857", id).is_err(), "{id}");
        }
    }

    #[test]
    fn matrix_sets() {
        let names = ["TILEMATRIX", "TILEROW", "TILECOL"];
        let mut p = path();
        assert_eq!(matrix_tile_extent("osm_grid", "2", "1", "3", names, &p).unwrap(), Extent::ForeignCrs);
        p.webmercator_matrix_sets = vec!["osm_grid".to_owned()];
        assert_eq!(
            matrix_tile_extent("osm_grid", "2", "1", "3", names, &p).unwrap(),
            Extent::Tile(TileCoord::new(2, 3, 1).unwrap())
        );
        assert_eq!(
            matrix_tile_extent("global_webmercator", "2", "1", "3", names, &p).unwrap(),
            Extent::Tile(TileCoord::new(2, 3, 1).unwrap())
        );
        assert_eq!(matrix_tile_extent("EPSG:4326", "2", "1", "3", names, &p).unwrap(), Extent::ForeignCrs);
        assert!(matrix_tile_extent("EPSG:4326", "2", "-1", "3", names, &p).is_err());
        assert!(matrix_tile_extent("WebMercatorQuad", "2", "4", "0", names, &p).is_err());
    }
}
