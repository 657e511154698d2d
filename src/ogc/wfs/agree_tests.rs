//! WFS capabilities and classifier agree: for the rewritten GeoServer 2.0 and 1.1
//! capabilities, with and without a fence, every operation URL is served, every listed
//! feature type (and every `typeNames` value) answers DescribeFeatureType, and every
//! feature type answers GetFeature in each advertised output format inside its
//! advertised (shrunk) WGS 84 box, in both spellings clients use for it; an uncovered
//! type and a box outside the fence are refused.

use crate::ogc::common::xml::Element;
use crate::ogc::test_walk::{all, fence, fixture, get_hrefs, kvp, parse, path, Walk};
use crate::ogc::Protocol;
use crate::paths::{PathConfig, Server};

const UPSTREAM: &str = "http://127.0.0.1:9002/geoserver/wfs";

/// A path in front of the GeoServer the fixtures come from (it reads a `BBOX` named
/// `EPSG:4326` longitude first; MapServer latitude first, so an undeclared path refuses it
/// to a fenced token).
fn wfs_path() -> PathConfig {
    PathConfig { server: Server::GeoServer, ..path("osm", &["osm:roads", "osm:buildings"]) }
}

/// The values of `<ows:Parameter name="{name}">` (any case) under `op`.
fn parameter_values(op: &Element, name: &str) -> Vec<String> {
    all(op, "Parameter")
        .into_iter()
        .filter(|p| p.attr("name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .flat_map(|p| all(p, "Value"))
        .map(|v| v.text().trim().to_owned())
        .collect()
}

struct Seen {
    types: Vec<String>,
    features: usize,
}

fn walk(w: &Walk, out: &[u8]) -> Seen {
    let root = parse(out);
    let version = root.attr("version").expect("version").to_owned();
    let type_key = if version.starts_with("2.") { "TYPENAMES" } else { "TYPENAME" };
    let base = [("SERVICE", "WFS"), ("VERSION", version.as_str())];
    let mut describe = Vec::new();
    let mut get_feature = Vec::new();
    let mut formats = Vec::new();
    let mut listed = Vec::new();
    for op in all(root.child("OperationsMetadata").expect("OperationsMetadata"), "Operation") {
        let hrefs = get_hrefs(op);
        match op.attr("name").expect("an operation name") {
            "GetCapabilities" => {
                for h in &hrefs {
                    assert_eq!(
                        w.accepts(&kvp(h, &[("SERVICE", "WFS"), ("REQUEST", "GetCapabilities")])),
                        "wfs.GetCapabilities"
                    );
                }
            }
            "DescribeFeatureType" => {
                listed = parameter_values(op, "typeNames");
                listed.extend(parameter_values(op, "typeName"));
                describe = hrefs;
            }
            "GetFeature" => {
                formats = parameter_values(op, "outputFormat");
                get_feature = hrefs;
            }
            other => panic!("unexpected operation {other}"),
        }
    }
    assert!(!describe.is_empty() && !get_feature.is_empty(), "DescribeFeatureType and GetFeature are advertised");
    let list = root.child("FeatureTypeList").expect("FeatureTypeList");
    let mut seen = Seen { types: Vec::new(), features: 0 };
    for ft in list.elements().filter(|f| f.is("FeatureType")) {
        let name = ft.child_text("Name").expect("a type name");
        let wgs84 = ft.child("WGS84BoundingBox").expect("a WGS 84 box");
        let corner = |c: &str| -> Vec<String> {
            wgs84.child_text(c).expect("a corner").split_whitespace().map(str::to_owned).collect()
        };
        let (lo, hi) = (corner("LowerCorner"), corner("UpperCorner"));
        // x,y as GeoServer reads `EPSG:4326`; lat,lon as the URN says.
        let boxes = [
            format!("{},{},{},{},EPSG:4326", lo[0], lo[1], hi[0], hi[1]),
            format!("{},{},{},{},urn:ogc:def:crs:EPSG::4326", lo[1], lo[0], hi[1], hi[0]),
        ];
        for h in &get_feature {
            for bbox in &boxes {
                for format in &formats {
                    let mut pairs = base.to_vec();
                    pairs.extend([
                        ("REQUEST", "GetFeature"),
                        (type_key, &name),
                        ("BBOX", bbox),
                        ("OUTPUTFORMAT", format),
                    ]);
                    assert_eq!(w.accepts(&kvp(h, &pairs)), "wfs.GetFeature");
                    seen.features += 1;
                }
            }
        }
        seen.types.push(name);
    }
    for name in seen.types.iter().chain(&listed) {
        for h in &describe {
            let mut pairs = base.to_vec();
            pairs.extend([("REQUEST", "DescribeFeatureType"), (type_key, name.as_str())]);
            assert_eq!(w.accepts(&kvp(h, &pairs)), "wfs.DescribeFeatureType");
        }
    }
    seen
}

fn get_feature(w: &Walk, version: &str, type_name: &str, bbox: &str) -> String {
    let key = if version.starts_with("2.") { "TYPENAMES" } else { "TYPENAME" };
    kvp(
        &w.public,
        &[
            ("SERVICE", "WFS"),
            ("VERSION", version),
            ("REQUEST", "GetFeature"),
            (key, type_name),
            ("BBOX", bbox),
            ("OUTPUTFORMAT", "application/json"),
        ],
    )
}

#[test]
fn wfs_200_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wfs, wfs_path(), None);
    let seen = walk(&w, &w.rewrite(&fixture("wfs_200_geoserver.xml"), UPSTREAM));
    assert_eq!(seen.types, ["osm:roads", "osm:buildings"]);
    assert_eq!(seen.features, 12, "2 types × 2 boxes × 3 formats");
    let e = w.refuses(&get_feature(&w, "2.0.0", "private:parcels", "9.9,53.4,10.3,53.7,EPSG:4326"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wfs_200_fenced_capabilities_advertise_only_what_the_fence_lets_through() {
    let w = Walk::new(Protocol::Wfs, wfs_path(), Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wfs_200_geoserver.xml"), UPSTREAM));
    assert_eq!(seen.types, ["osm:roads"], "the New York buildings lie outside the fence");
    assert_eq!(seen.features, 4, "1 type × 2 boxes × GeoJSON and GML 3.2");
    let e = w.refuses(&get_feature(&w, "2.0.0", "osm:buildings", "-74.05,40.68,-73.9,40.88,EPSG:4326"));
    assert!(e.contains("outside_geofence"), "{e}");
    let e = w.refuses(&get_feature(&w, "2.0.0", "osm:roads", "5.8,47.2,15.1,55.1,EPSG:4326"));
    assert!(e.contains("outside_geofence"), "the unshrunk box reaches south of the fence: {e}");
    let e = w.refuses(&get_feature(&w, "2.0.0", "private:parcels", "9.9,53.4,10.3,53.7,EPSG:4326"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wfs_110_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wfs, wfs_path(), None);
    let seen = walk(&w, &w.rewrite(&fixture("wfs_110_geoserver.xml"), UPSTREAM));
    assert_eq!(seen.types, ["osm:roads", "osm:buildings"]);
    assert_eq!(seen.features, 20, "2 types × 2 boxes × 5 formats");
    let e = w.refuses(&get_feature(&w, "1.1.0", "private:parcels", "9.9,53.4,10.3,53.7,EPSG:4326"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wfs_110_fenced_capabilities_advertise_only_what_the_fence_lets_through() {
    let w = Walk::new(Protocol::Wfs, wfs_path(), Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wfs_110_geoserver.xml"), UPSTREAM));
    assert_eq!(seen.types, ["osm:roads"]);
    assert_eq!(seen.features, 6, "1 type × 2 boxes × GeoJSON, GML 2 and GML 3.1");
    let e = w.refuses(&get_feature(&w, "1.1.0", "osm:buildings", "-74.05,40.68,-73.9,40.88,EPSG:4326"));
    assert!(e.contains("outside_geofence"), "{e}");
}
