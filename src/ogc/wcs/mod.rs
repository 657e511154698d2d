//! WCS 2.0 KVP: GetCapabilities (view), DescribeCoverage and GetCoverage (viewPlus).
//!
//! `SUBSET` legitimately repeats, once per axis (the one exception to the duplicate
//! rule, see [`super::Dialect::WCS`]): `SUBSET=axis(low,high)`, `SUBSET=axis(point)`,
//! or the older `SUBSET=axis,crs(low,high)`. The extent of a GetCoverage:
//! - `Long`/`Lon`/`Lat` axes (subsetting CRS absent or WGS 84) → a WGS 84 box;
//! - `E`/`N`/`X`/`Y` axes with a Web Mercator subsetting CRS → a Web Mercator box
//!   (without one the axes are in the coverage's native CRS, which the gateway does not know);
//! - a missing horizontal axis spans the whole world on that axis;
//! - time axes (`time`, `ansi`, `t`, `date`) are ignored; any other axis → foreign CRS;
//! - no spatial subset at all → [`Extent::Unbounded`] (the whole coverage).
//!
//! WCS 1.x is refused (unsupported). Pure code.

use crate::paths::PathConfig;
use crate::policy::{Extent, Tier};
use crate::spatial::{crs_from_identifier, BBox, Crs, MERCATOR_HALF_WORLD};

use crate::ogc::capabilities::{CapabilitiesError, Rewrite};
use crate::ogc::common::geo::{number, uint};
use crate::ogc::common::kvp::Kvp;
use crate::ogc::common::{bad, check_allowed, name_list, request_name, shown, unsupported};
use crate::ogc::{OgcError, Parts, Protocol, ResponseKind};

pub mod capabilities;

#[cfg(test)]
mod agree_tests;

/// WCS 2.0: KVP GET and form POST at the endpoint itself.
pub struct Wcs;

impl Service for Wcs {
    fn endpoint(&self, upstream: &Upstreams, _rest: &str) -> Option<String> {
        upstream.wcs.as_ref().map(ToString::to_string)
    }

    fn classify(&self, req: &OgcRequest<'_>, path: &PathConfig) -> Result<Classified, OgcError> {
        kvp_only(req)?;
        kvp_endpoint(req, path, |kvp| classify_kvp(kvp, path), None)
    }

    fn rewrite_capabilities(&self, doc: &[u8], rw: &Rewrite<'_>) -> Option<Result<Vec<u8>, CapabilitiesError>> {
        Some(capabilities::rewrite(doc, rw))
    }
}

use crate::ogc::{kvp_endpoint, kvp_only, Service};
use crate::ogc::{Classified, OgcRequest};
use crate::paths::Upstreams;

const KNOWN: &[&str] = &["GetCapabilities", "DescribeCoverage", "GetCoverage"];
const VERSIONS: &[&str] = &["2.0.0", "2.0.1"];
/// OWS Common GetCapabilities parameters.
const CAPABILITIES: &[&str] = crate::ogc::common::OWS_CAPABILITIES;
const DESCRIBE: &[&str] = &["SERVICE", "VERSION", "REQUEST", "COVERAGEID"];
const GET_COVERAGE: &[&str] = &[
    "SERVICE",
    "VERSION",
    "REQUEST",
    "COVERAGEID",
    "FORMAT",
    "MEDIATYPE",
    "SUBSET",
    "SUBSETTINGCRS",
    "OUTPUTCRS",
    "SCALEFACTOR",
    "SCALEAXES",
    "SCALESIZE",
    "SCALEEXTENT",
    "RANGESUBSET",
    "INTERPOLATION",
];
/// GeoTIFF encoding options (`GEOTIFF:COMPRESSION`, `GEOTIFF:TILING`…).
const PREFIXES: &[&str] = &["GEOTIFF:"];

fn classify_kvp(kvp: &Kvp, path: &PathConfig) -> Result<Parts, OgcError> {
    let request = request_name(kvp, "WCS", KNOWN, &[])?;
    if request == "GetCapabilities" {
        check_allowed(kvp, CAPABILITIES, &[], path, "wcs.GetCapabilities")?;
        return Ok(Parts::new(
            "wcs.GetCapabilities",
            Tier::View,
            Vec::new(),
            Extent::None,
            ResponseKind::Capabilities(Protocol::Wcs),
        ));
    }
    let name = if request == "DescribeCoverage" { "wcs.DescribeCoverage" } else { "wcs.GetCoverage" };
    let version = kvp.require("VERSION", name)?;
    if !VERSIONS.contains(&version) {
        return Err(unsupported(format!("VERSION: WCS `{}` is not supported; use 2.0.1", shown(version))));
    }
    let coverages = name_list(kvp.require("COVERAGEID", name)?, "COVERAGEID")?;
    if name == "wcs.DescribeCoverage" {
        check_allowed(kvp, DESCRIBE, &[], path, name)?;
        return Ok(Parts::new(name, Tier::ViewPlus, coverages, Extent::None, ResponseKind::Other));
    }
    check_allowed(kvp, GET_COVERAGE, PREFIXES, path, name)?;
    if coverages.len() != 1 {
        return Err(bad("COVERAGEID: GetCoverage takes exactly one coverage"));
    }
    let extent = with_scale(subset_extent(kvp)?, kvp)?;
    let format = kvp.get_nonempty("FORMAT");
    Ok(Parts::new(name, Tier::ViewPlus, coverages, extent, ResponseKind::Other).with_format(format))
}

/// The zoom a GetCoverage is judged at when its output resolution is relative to the
/// coverage's native one (`SCALEFACTOR`, `SCALEAXES`, an axis left unscaled, no
/// scaling at all), which the gateway does not know: finer than any maxZoom, so a
/// maxZoom-limited token is refused (`zoom_above_max`) and any other token is not
/// concerned.
const UNKNOWN_RESOLUTION_ZOOM: f64 = 99.0;

/// Adds the effective zoom to a GetCoverage's extent, as WMS does from WIDTH/HEIGHT:
/// the output grid is `SCALESIZE=x(w),y(h)` or `SCALEEXTENT=x(lo:hi),y(lo:hi)` on both
/// horizontal axes; anything else gives [`UNKNOWN_RESOLUTION_ZOOM`]. A GetCoverage with
/// no spatial subset is the whole coverage: judged as the whole world in WGS 84.
fn with_scale(extent: Extent, kvp: &Kvp) -> Result<Extent, OgcError> {
    let bbox = match extent {
        Extent::BBox { bbox, .. } => bbox,
        Extent::Unbounded => BBox { crs: Crs::Wgs84, min_x: -180.0, min_y: -90.0, max_x: 180.0, max_y: 90.0 },
        other => return Ok(other),
    };
    let relative = kvp.contains("SCALEFACTOR") || kvp.contains("SCALEAXES");
    let size = match (kvp.get_nonempty("SCALESIZE"), kvp.get_nonempty("SCALEEXTENT")) {
        (Some(_), Some(_)) => return Err(bad("SCALESIZE and SCALEEXTENT: give one of them")),
        (Some(v), None) => grid_size(v, "SCALESIZE", false)?,
        (None, Some(v)) => grid_size(v, "SCALEEXTENT", true)?,
        (None, None) => None,
    };
    let zoom = match size {
        Some((w, h)) if !relative => crate::spatial::effective_zoom(&bbox, w, h),
        _ => UNKNOWN_RESOLUTION_ZOOM,
    };
    Ok(Extent::BBox { bbox, zoom: Some(zoom) })
}

/// The output width and height from `axis(n)` (`SCALESIZE`) or `axis(lo:hi)`
/// (`SCALEEXTENT`) items; `None` unless both horizontal axes are given.
fn grid_size(value: &str, param: &str, extent: bool) -> Result<Option<(u32, u32)>, OgcError> {
    let (mut w, mut h) = (None, None);
    for item in value.split(',') {
        let malformed =
            || bad(format!("{param}: `{}` is not `axis({})`", shown(item), if extent { "low:high" } else { "n" }));
        let (axis, rest) = item.trim().split_once('(').ok_or_else(malformed)?;
        let inner = rest.strip_suffix(')').ok_or_else(malformed)?;
        let n = if extent {
            let (lo, hi) = inner.split_once(':').ok_or_else(malformed)?;
            let (lo, hi) = (uint(lo.trim(), param)?, uint(hi.trim(), param)?);
            hi.checked_sub(lo).map(|d| d + 1).ok_or_else(malformed)?
        } else {
            uint(inner.trim(), param)?
        };
        let n = u32::try_from(n)
            .ok()
            .filter(|n| (1..=1 << 20).contains(n))
            .ok_or_else(|| bad(format!("{param}: `{}` is not an image size between 1 and 1048576", shown(item))))?;
        let slot = match axis.trim().to_ascii_lowercase().as_str() {
            "long" | "lon" | "longitude" | "e" | "x" | "i" => &mut w,
            "lat" | "latitude" | "n" | "y" | "j" => &mut h,
            _ => continue,
        };
        if slot.replace(n).is_some() {
            return Err(bad(format!("{param}: axis `{}` is given twice", shown(axis.trim()))));
        }
    }
    Ok(w.zip(h))
}

/// One `SUBSET` value.
struct Subset<'v> {
    axis: &'v str,
    crs: Option<&'v str>,
    low: &'v str,
    high: &'v str,
}

fn parse_subset(raw: &str) -> Result<Subset<'_>, OgcError> {
    let malformed = || bad(format!("SUBSET: `{}` is not `axis(low,high)` or `axis(point)`", shown(raw)));
    let (head, inner) = raw
        .strip_suffix(')')
        .and_then(|r| r.split_once('('))
        .filter(|(_, inner)| !inner.contains(['(', ')']))
        .ok_or_else(malformed)?;
    let (axis, crs) = match head.split_once(',') {
        Some((axis, crs)) => (axis.trim(), Some(crs.trim())),
        None => (head.trim(), None),
    };
    if axis.is_empty() {
        return Err(malformed());
    }
    let (low, high) = match inner.split_once(',') {
        Some((low, high)) if !high.contains(',') => (low.trim(), high.trim()),
        Some(_) => return Err(malformed()),
        None => (inner.trim(), inner.trim()),
    };
    Ok(Subset { axis, crs, low, high })
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    X,
    Y,
}

fn subset_extent(kvp: &Kvp) -> Result<Extent, OgcError> {
    let subsets = kvp.all("SUBSET").map(parse_subset).collect::<Result<Vec<_>, _>>()?;
    let mut seen: Vec<String> = Vec::new();
    let mut spatial: Vec<(Axis, bool, Subset<'_>)> = Vec::new(); // (axis, geographic, subset)
    let mut foreign = false;
    for s in subsets {
        let lower = s.axis.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(bad(format!("SUBSET: axis `{}` is subset twice", shown(s.axis))));
        }
        seen.push(lower.clone());
        match lower.as_str() {
            "long" | "lon" | "longitude" => spatial.push((Axis::X, true, s)),
            "lat" | "latitude" => spatial.push((Axis::Y, true, s)),
            "e" | "x" => spatial.push((Axis::X, false, s)),
            "n" | "y" => spatial.push((Axis::Y, false, s)),
            "time" | "ansi" | "t" | "date" => {}
            _ => foreign = true,
        }
    }
    if spatial.is_empty() {
        return Ok(if foreign { Extent::ForeignCrs } else { Extent::Unbounded });
    }
    // Every spatial axis must be read in one CRS the gateway knows.
    let subsetting = kvp.get_nonempty("SUBSETTINGCRS");
    let mut crs: Option<Crs> = None;
    for (_, geographic, s) in &spatial {
        let named = s.crs.or(subsetting).map(crs_from_identifier);
        let this = match (geographic, named) {
            (true, None) => Some(Crs::Wgs84),
            (true, Some(Some((Crs::Wgs84, _)))) => Some(Crs::Wgs84),
            (false, Some(Some((Crs::WebMercator, _)))) => Some(Crs::WebMercator),
            _ => None,
        };
        match (this, crs) {
            (None, _) => foreign = true,
            (Some(c), None) => crs = Some(c),
            (Some(c), Some(prev)) if c != prev => foreign = true,
            _ => {}
        }
    }
    let mut values = Vec::with_capacity(spatial.len());
    for (axis, _, s) in &spatial {
        let low = number(s.low, "SUBSET")?;
        let high = number(s.high, "SUBSET")?;
        if low > high {
            return Err(bad(format!("SUBSET: on axis `{}` the low bound is above the high bound", shown(s.axis))));
        }
        values.push((*axis, low, high));
    }
    let Some(crs) = crs.filter(|_| !foreign) else {
        return Ok(Extent::ForeignCrs);
    };
    let (world_x, world_y) = match crs {
        Crs::Wgs84 => (180.0, 90.0),
        Crs::WebMercator => (MERCATOR_HALF_WORLD, MERCATOR_HALF_WORLD),
    };
    let mut bbox = BBox { crs, min_x: -world_x, min_y: -world_y, max_x: world_x, max_y: world_y };
    for (axis, low, high) in values {
        match axis {
            Axis::X => (bbox.min_x, bbox.max_x) = (low, high),
            Axis::Y => (bbox.min_y, bbox.max_y) = (low, high),
        }
    }
    Ok(Extent::BBox { bbox, zoom: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::test_support::*;
    use crate::ogc::{OgcError, Protocol};

    const BASE: &str = "SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage&COVERAGEID=roads";

    fn q(extra: &str) -> &'static str {
        format!("{BASE}&{extra}").leak()
    }

    #[test]
    fn operations() {
        let c = ok(Protocol::Wcs, "SERVICE=WCS&REQUEST=GetCapabilities");
        assert_eq!((c.op.name, c.op.tier), ("wcs.GetCapabilities", Tier::View));
        let c = ok(Protocol::Wcs, "SERVICE=WCS&VERSION=2.0.1&REQUEST=DescribeCoverage&COVERAGEID=roads,dem");
        assert_eq!(
            (c.op.name, c.op.tier, c.op.layers.clone()),
            ("wcs.DescribeCoverage", Tier::ViewPlus, vec!["roads".to_string(), "dem".to_string()])
        );
        let c = ok(Protocol::Wcs, q("FORMAT=image/tiff&GEOTIFF:COMPRESSION=LZW"));
        let world = BBox { crs: Crs::Wgs84, min_x: -180.0, min_y: -90.0, max_x: 180.0, max_y: 90.0 };
        let whole = Extent::BBox { bbox: world, zoom: Some(UNKNOWN_RESOLUTION_ZOOM) };
        assert_eq!((c.op.name, c.op.tier, c.op.extent), ("wcs.GetCoverage", Tier::ViewPlus, whole));
        assert_eq!(c.format.as_deref(), Some("image/tiff"));
        assert!(matches!(
            run(Protocol::Wcs, "SERVICE=WCS&VERSION=1.0.0&REQUEST=GetCoverage&COVERAGE=roads"),
            Err(OgcError::NotSupported(_))
        ));
        assert!(run(Protocol::Wcs, "SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage").is_err());
        assert!(run(Protocol::Wcs, "SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage&COVERAGEID=a,b").is_err());
        assert!(run(Protocol::Wcs, q("CQL_FILTER=x")).is_err());
    }

    #[test]
    fn lat_long_subsets_are_a_wgs84_box() {
        let c = ok(Protocol::Wcs, q("SUBSET=Lat(50,51)&SUBSET=Long(5,6)"));
        let b = bbox_of(&c);
        assert_eq!((b.crs, [b.min_x, b.min_y, b.max_x, b.max_y]), (Crs::Wgs84, [5.0, 50.0, 6.0, 51.0]));
        // One axis only: the other spans the world.
        let b = bbox_of(&ok(Protocol::Wcs, q("subset=Long(5,6)&subset=time(\"2020-01-01\")")));
        assert_eq!([b.min_x, b.min_y, b.max_x, b.max_y], [5.0, -90.0, 6.0, 90.0]);
        // A slice is a degenerate box.
        let b = bbox_of(&ok(Protocol::Wcs, q("SUBSET=Lat(50.5)&SUBSET=Long(5.5)")));
        assert_eq!([b.min_x, b.min_y, b.max_x, b.max_y], [5.5, 50.5, 5.5, 50.5]);
        // The old axis,crs form.
        let b = bbox_of(&ok(Protocol::Wcs, q("SUBSET=Lat,http://www.opengis.net/def/crs/EPSG/0/4326(50,51)")));
        assert_eq!([b.min_y, b.max_y], [50.0, 51.0]);
    }

    #[test]
    fn easting_northing_need_a_web_mercator_subsetting_crs() {
        let b = bbox_of(&ok(
            Protocol::Wcs,
            q("SUBSET=E(0,100)&SUBSET=N(200,300)&SUBSETTINGCRS=http://www.opengis.net/def/crs/EPSG/0/3857"),
        ));
        assert_eq!((b.crs, [b.min_x, b.min_y, b.max_x, b.max_y]), (Crs::WebMercator, [0.0, 200.0, 100.0, 300.0]));
        assert_eq!(ok(Protocol::Wcs, q("SUBSET=E(0,100)&SUBSET=N(200,300)")).op.extent, Extent::ForeignCrs);
        assert_eq!(
            ok(Protocol::Wcs, q("SUBSET=Lat(0,1)&SUBSETTINGCRS=http://www.opengis.net/def/crs/EPSG/0/3857")).op.extent,
            Extent::ForeignCrs
        );
        assert_eq!(ok(Protocol::Wcs, q("SUBSET=i(0,10)")).op.extent, Extent::ForeignCrs);
        assert_eq!(ok(Protocol::Wcs, q("SUBSET=Lat(0,1)&SUBSET=elevation(0,10)")).op.extent, Extent::ForeignCrs);
    }

    #[test]
    fn malformed_subsets() {
        for bad in [
            "SUBSET=Lat(1,2",
            "SUBSET=Lat(1,2,3)",
            "SUBSET=Lat(2,1)",
            "SUBSET=Lat(NaN,1)",
            "SUBSET=(1,2)",
            "SUBSET=Lat(1,2)&SUBSET=lat(3,4)",
            "SUBSET=Lat((1,2))",
        ] {
            assert!(run(Protocol::Wcs, q(bad)).is_err(), "{bad}");
        }
    }

    /// Regression: `SCALESIZE`, `SCALEFACTOR`, `SCALEAXES`, `SCALEEXTENT` (and no scaling)
    /// passed a maxZoom-limited token whatever resolution they asked for.
    #[test]
    fn the_output_grid_gives_the_effective_zoom() {
        let zoom = |extra: &'static str| match ok(Protocol::Wcs, extra).op.extent {
            Extent::BBox { zoom: Some(z), .. } => z,
            other => panic!("{other:?}"),
        };
        // 1°×1° at 256 px is about zoom 8.5; at 4096 px about zoom 12.5.
        let box1 = "SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage&COVERAGEID=roads&SUBSET=Long(5,6)&SUBSET=Lat(50,51)";
        let small = zoom(Box::leak(format!("{box1}&SCALESIZE=Long(256),Lat(256)").into_boxed_str()));
        let large = zoom(Box::leak(format!("{box1}&SCALESIZE=Long(4096),Lat(4096)").into_boxed_str()));
        assert!((large - small - 4.0).abs() < 0.01, "{small} {large}");
        let extent = zoom(Box::leak(format!("{box1}&SCALEEXTENT=i(0:255),j(0:255)").into_boxed_str()));
        assert!((extent - small).abs() < 1e-9);
        for relative in ["&SCALEFACTOR=2", "&SCALEAXES=Long(2),Lat(2)", "&SCALESIZE=Long(256)", ""] {
            let z = zoom(Box::leak(format!("{box1}{relative}").into_boxed_str()));
            assert_eq!(z, UNKNOWN_RESOLUTION_ZOOM, "{relative}: the native resolution cannot be judged");
        }
        for bad_size in [
            "&SCALESIZE=Long(0),Lat(1)",
            "&SCALESIZE=Long(x)",
            "&SCALEEXTENT=i(5:1),j(0:1)",
            "&SCALESIZE=Long(1),Long(2)",
        ] {
            assert!(run(Protocol::Wcs, Box::leak(format!("{box1}{bad_size}").into_boxed_str())).is_err(), "{bad_size}");
        }
    }
}
