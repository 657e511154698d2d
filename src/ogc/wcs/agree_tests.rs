//! WCS capabilities and classifier agree: for the rewritten MapServer 2.0.1
//! capabilities, with and without a fence, every operation URL is served, every
//! advertised coverage answers DescribeCoverage, and GetCoverage in each advertised
//! format with `Lat`/`Long` subsets of its advertised (shrunk) WGS 84 box; an uncovered
//! coverage and a subset outside the fence are refused.

use crate::ogc::test_walk::{all, fence, fixture, get_hrefs, kvp, parse, path, texts, Walk};
use crate::ogc::Protocol;
use crate::paths::PathConfig;

/// MapServer's endpoint with the map file in its query, as configured upstream.
const UPSTREAM: &str = "http://127.0.0.1:9003/cgi-bin/mapserv?map=/srv/maps/dem.map";

fn wcs_path() -> PathConfig {
    path("dem", &["dem"])
}

fn walk(w: &Walk, out: &[u8]) -> Vec<String> {
    let root = parse(out);
    let mut describe = Vec::new();
    let mut get_coverage = Vec::new();
    for op in all(root.child("OperationsMetadata").expect("OperationsMetadata"), "Operation") {
        let hrefs = get_hrefs(op);
        match op.attr("name").expect("an operation name") {
            "GetCapabilities" => {
                for h in &hrefs {
                    let url = kvp(h, &[("SERVICE", "WCS"), ("REQUEST", "GetCapabilities")]);
                    assert_eq!(w.accepts(&url), "wcs.GetCapabilities");
                }
            }
            "DescribeCoverage" => describe = hrefs,
            "GetCoverage" => get_coverage = hrefs,
            other => panic!("unexpected operation {other}"),
        }
    }
    let formats = texts(root.child("ServiceMetadata").expect("ServiceMetadata"), "formatSupported");
    let mut ids = Vec::new();
    for summary in all(root.child("Contents").expect("Contents"), "CoverageSummary") {
        let Some(id) = summary.child_text("CoverageId") else { continue };
        let base = [("SERVICE", "WCS"), ("VERSION", "2.0.1")];
        for h in &describe {
            let mut pairs = base.to_vec();
            pairs.extend([("REQUEST", "DescribeCoverage"), ("COVERAGEID", id.as_str())]);
            assert_eq!(w.accepts(&kvp(h, &pairs)), "wcs.DescribeCoverage");
        }
        let wgs84 = summary.child("WGS84BoundingBox").expect("a WGS 84 box");
        let corner = |c: &str| -> Vec<String> {
            wgs84.child_text(c).expect("a corner").split_whitespace().map(str::to_owned).collect()
        };
        let (lo, hi) = (corner("LowerCorner"), corner("UpperCorner"));
        let (long, lat) = (format!("Long({},{})", lo[0], hi[0]), format!("Lat({},{})", lo[1], hi[1]));
        for h in &get_coverage {
            for format in &formats {
                let mut pairs = base.to_vec();
                pairs.extend([
                    ("REQUEST", "GetCoverage"),
                    ("COVERAGEID", id.as_str()),
                    ("FORMAT", format.as_str()),
                    ("SUBSET", long.as_str()),
                    ("SUBSET", lat.as_str()),
                    // A maxZoom-limited token must name the output grid (as GDAL does).
                    ("SCALESIZE", "Long(256),Lat(256)"),
                ]);
                assert_eq!(w.accepts(&kvp(h, &pairs)), "wcs.GetCoverage");
            }
        }
        ids.push(id);
    }
    ids
}

fn get_coverage(w: &Walk, id: &str, long: &str, lat: &str) -> String {
    kvp(
        &w.public,
        &[
            ("SERVICE", "WCS"),
            ("VERSION", "2.0.1"),
            ("REQUEST", "GetCoverage"),
            ("COVERAGEID", id),
            ("FORMAT", "image/tiff"),
            ("SUBSET", long),
            ("SUBSET", lat),
            ("SCALESIZE", "Long(256),Lat(256)"),
        ],
    )
}

#[test]
fn wcs_201_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wcs, wcs_path(), None);
    assert_eq!(walk(&w, &w.rewrite(&fixture("wcs_201_mapserver.xml"), UPSTREAM)), ["dem"]);
    let e = w.refuses(&kvp(
        &w.public,
        &[("SERVICE", "WCS"), ("VERSION", "2.0.1"), ("REQUEST", "DescribeCoverage"), ("COVERAGEID", "dem_lidar_raw")],
    ));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wcs_201_fenced_capabilities_advertise_only_what_the_fence_lets_through() {
    let w = Walk::new(Protocol::Wcs, wcs_path(), Some(fence()));
    assert_eq!(walk(&w, &w.rewrite(&fixture("wcs_201_mapserver.xml"), UPSTREAM)), ["dem"]);
    let e = w.refuses(&get_coverage(&w, "dem", "Long(5.8,15.1)", "Lat(47.2,55.1)"));
    assert!(e.contains("outside_geofence"), "the unshrunk box reaches south of the fence: {e}");
    let e = w.refuses(&get_coverage(&w, "dem_lidar_raw", "Long(9.9,10.3)", "Lat(53.4,53.7)"));
    assert!(e.contains("layer_not_covered"), "{e}");
}
