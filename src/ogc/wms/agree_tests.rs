//! WMS capabilities and classifier agree: for the rewritten MapProxy 1.1.1 and 1.3.0
//! capabilities, with and without a fence, every operation URL is served, every named
//! layer answers a GetMap in each advertised CRS and format inside its advertised
//! (shrunk) bounding box, every legend URL answers, and every queryable layer answers a
//! GetFeatureInfo in each advertised info format; an uncovered layer, a map above
//! maxZoom and a layer outside the fence are refused.

use crate::ogc::common::xml::Element;
use crate::ogc::test_walk::{all, fence, fixture, kvp, parse, path, texts, Walk};
use crate::ogc::Protocol;
use crate::paths::PathConfig;

const UPSTREAM: &str = "http://127.0.0.1:9001/service";

/// What a layer inherits from its parents: CRSs (additive) and bounding boxes by CRS.
#[derive(Clone, Default)]
struct Inherited {
    crs: Vec<String>,
    /// `(crs, [minx, miny, maxx, maxy])` as written (1.3.0: the CRS's axis order).
    boxes: Vec<(String, [String; 4])>,
}

/// The endpoints and formats of the `Capability/Request` operations.
#[derive(Default)]
struct Ops {
    map: Vec<String>,
    map_formats: Vec<String>,
    info: Vec<String>,
    info_formats: Vec<String>,
}

struct Seen {
    maps: usize,
    layers: Vec<String>,
}

fn hrefs(op: &Element) -> Vec<String> {
    all(op, "Get")
        .into_iter()
        .flat_map(|g| all(g, "OnlineResource"))
        .filter_map(|r| r.attr("href").map(str::to_owned))
        .collect()
}

fn walk(w: &Walk, out: &[u8]) -> Seen {
    let root = parse(out);
    let version = root.attr("version").expect("version").to_owned();
    let wms13 = version == "1.3.0";
    let crs_key = if wms13 { "CRS" } else { "SRS" };
    let service = root.child("Service").and_then(|s| s.child("OnlineResource")).and_then(|r| r.attr("href"));
    w.split(service.expect("a service URL"));
    let capability = root.child("Capability").expect("Capability");
    let mut ops = Ops::default();
    for op in capability.child("Request").expect("Request").elements() {
        let endpoints = hrefs(op);
        assert!(!endpoints.is_empty(), "{} has no URL", op.name);
        match op.local() {
            "GetCapabilities" => {
                for e in &endpoints {
                    let url = kvp(e, &[("SERVICE", "WMS"), ("REQUEST", "GetCapabilities"), ("VERSION", &version)]);
                    assert_eq!(w.accepts(&url), "wms.GetCapabilities");
                }
            }
            "GetMap" => (ops.map, ops.map_formats) = (endpoints, texts(op, "Format")),
            "GetFeatureInfo" => (ops.info, ops.info_formats) = (endpoints, texts(op, "Format")),
            // Legends are walked through each style's LegendURL.
            "GetLegendGraphic" => {}
            other => panic!("unexpected operation {other}"),
        }
    }
    let mut seen = Seen { maps: 0, layers: Vec::new() };
    for layer in capability.elements().filter(|l| l.is("Layer")) {
        walk_layer(w, layer, &Inherited::default(), &ops, &version, crs_key, &mut seen);
    }
    seen
}

fn walk_layer(w: &Walk, layer: &Element, parent: &Inherited, ops: &Ops, version: &str, crs_key: &str, seen: &mut Seen) {
    let mut here = parent.clone();
    for crs in texts(layer, crs_key) {
        if !here.crs.contains(&crs) {
            here.crs.push(crs);
        }
    }
    for b in layer.elements().filter(|b| b.is("BoundingBox")) {
        let crs = b.attr(crs_key).expect("a BoundingBox names its CRS").to_owned();
        let n = ["minx", "miny", "maxx", "maxy"].map(|a| b.attr(a).expect("a bound").trim().to_owned());
        here.boxes.retain(|(c, _)| *c != crs);
        here.boxes.push((crs, n));
    }
    if let Some(name) = layer.child_text("Name") {
        let mut crs_seen = 0;
        for crs in &here.crs {
            let Some((_, b)) = here.boxes.iter().find(|(c, _)| c == crs) else {
                continue;
            };
            crs_seen += 1;
            let bbox = b.join(",");
            for format in &ops.map_formats {
                for endpoint in &ops.map {
                    let url = get_map(endpoint, version, crs_key, &name, crs, &bbox, format);
                    assert_eq!(w.accepts(&url), "wms.GetMap");
                    seen.maps += 1;
                }
            }
            if layer.attr("queryable") == Some("1") {
                for format in &ops.info_formats {
                    for endpoint in &ops.info {
                        let url = get_map(endpoint, version, crs_key, &name, crs, &bbox, &ops.map_formats[0])
                            .replace("REQUEST=GetMap", "REQUEST=GetFeatureInfo");
                        let (i, j) = if version == "1.3.0" { ("I", "J") } else { ("X", "Y") };
                        let url = kvp(&url, &[("QUERY_LAYERS", &name), (i, "60"), (j, "60"), ("INFO_FORMAT", format)]);
                        assert_eq!(w.accepts(&url), "wms.GetFeatureInfo");
                    }
                }
            }
        }
        assert!(crs_seen > 0, "layer `{name}` advertises no bounding box in any of its CRSs");
        for legend in layer.elements().filter(|s| s.is("Style")).flat_map(|s| all(s, "LegendURL")) {
            let href = legend.child("OnlineResource").and_then(|r| r.attr("href")).expect("a legend URL");
            assert_eq!(w.accepts(href), "wms.GetLegendGraphic");
        }
        seen.layers.push(name);
    }
    for child in layer.elements().filter(|l| l.is("Layer")) {
        walk_layer(w, child, &here, ops, version, crs_key, seen);
    }
}

/// A GetMap as a client asks for it: 256 pixels wide and as high as keeps the pixels
/// square (a 1.1.1 map with other proportions is judged on the box QGIS Server draws).
fn get_map(endpoint: &str, version: &str, crs_key: &str, layer: &str, crs: &str, bbox: &str, format: &str) -> String {
    let v: Vec<f64> = bbox.split(',').map(|n| n.parse().expect("a number")).collect();
    let (span_x, span_y) =
        if version == "1.3.0" && crs == "EPSG:4326" { (v[3] - v[1], v[2] - v[0]) } else { (v[2] - v[0], v[3] - v[1]) };
    let height = ((256.0 * span_y / span_x).round() as u32).clamp(1, 4096).to_string();
    kvp(
        endpoint,
        &[
            ("SERVICE", "WMS"),
            ("VERSION", version),
            ("REQUEST", "GetMap"),
            ("LAYERS", layer),
            ("STYLES", ""),
            (crs_key, crs),
            ("BBOX", bbox),
            ("WIDTH", "256"),
            ("HEIGHT", &height),
            ("FORMAT", format),
        ],
    )
}

/// Tile 9/272/168 in EPSG:3857 metres: inside the fence (5/17/10), at zoom 9 in 256 px.
const Z9_INSIDE: &str = "1252344.271424327,6809621.975869782,1330615.788388349,6887893.4928338025";

fn wms111_path() -> PathConfig {
    path("osm", &["osm", "roads", "hillshade"])
}

fn wms130_path() -> PathConfig {
    path("osm", &["osm", "nz_coast"])
}

#[test]
fn wms_111_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wms, wms111_path(), None);
    let seen = walk(&w, &w.rewrite(&fixture("wms_111_mapproxy.xml"), UPSTREAM));
    assert_eq!(seen.layers, ["osm", "roads", "hillshade"]);
    assert!(seen.maps >= 12, "{} maps", seen.maps);
    let e = w.refuses(&get_map(&w.public, "1.1.1", "SRS", "cadastre", "EPSG:4326", "9.9,53.4,10.3,53.7", "image/png"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wms_111_fenced_capabilities_advertise_only_what_the_fence_lets_through() {
    let w = Walk::new(Protocol::Wms, wms111_path(), Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wms_111_mapproxy.xml"), UPSTREAM));
    assert_eq!(seen.layers, ["osm", "roads", "hillshade"]);
    let e = w.refuses(&get_map(&w.public, "1.1.1", "SRS", "osm", "EPSG:3857", Z9_INSIDE, "image/png"));
    assert!(e.contains("zoom_above_max"), "{e}");
    let e = w.refuses(&get_map(&w.public, "1.1.1", "SRS", "osm", "EPSG:4326", "-10,40,0,45", "image/png"));
    assert!(e.contains("outside_geofence"), "{e}");
    let e = w.refuses(&get_map(&w.public, "1.1.1", "SRS", "cadastre", "EPSG:4326", "9.9,53.4,10.3,53.7", "image/png"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wms_130_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wms, wms130_path(), None);
    let seen = walk(&w, &w.rewrite(&fixture("wms_130_mapproxy.xml"), UPSTREAM));
    assert_eq!(seen.layers, ["osm", "nz_coast"]);
    let e = w.refuses(&get_map(&w.public, "1.3.0", "CRS", "secret_parcels", "CRS:84", "0,0,1,1", "image/png"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wms_130_fenced_capabilities_advertise_only_what_the_fence_lets_through() {
    let w = Walk::new(Protocol::Wms, wms130_path(), Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wms_130_mapproxy.xml"), UPSTREAM));
    assert_eq!(seen.layers, ["osm"], "New Zealand lies outside the fence");
    let e =
        w.refuses(&get_map(&w.public, "1.3.0", "CRS", "nz_coast", "EPSG:4326", "-47.3,166.3,-34.4,178.6", "image/png"));
    assert!(e.contains("outside_geofence"), "{e}");
    let e = w.refuses(&get_map(&w.public, "1.3.0", "CRS", "osm", "EPSG:3857", Z9_INSIDE, "image/png"));
    assert!(e.contains("zoom_above_max"), "{e}");
    let e = w.refuses(&get_map(&w.public, "1.3.0", "CRS", "secret_parcels", "CRS:84", "5,50,6,51", "image/png"));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wms_fenced_maps_straddling_the_fence_are_served_clipped_in_every_judged_crs() {
    // A zoomed-out map of Europe reaches past the fence (lon 0‥22.5, lat 48.9‥55.8):
    // served clipped under `partial = "clip"`, refused under `deny`; a map wholly
    // outside stays refused.
    let maps = [
        ("1.3.0", "CRS", "EPSG:3857", "-2000000,4000000,5000000,9000000"),
        ("1.3.0", "CRS", "EPSG:4326", "35,-20,70,40"),
        ("1.3.0", "CRS", "CRS:84", "-20,35,40,70"),
        ("1.1.1", "SRS", "EPSG:4326", "-20,35,40,70"),
    ];
    let deny = PathConfig { partial: crate::paths::Partial::Deny, ..wms130_path() };
    for (clips, path) in [(true, wms130_path()), (false, deny)] {
        let w = Walk::new(Protocol::Wms, path, Some(fence()));
        for (version, key, crs, bbox) in maps {
            let url = get_map(&w.public, version, key, "osm", crs, bbox, "image/png");
            if clips {
                assert_eq!(w.accepts(&url), "wms.GetMap", "{url}");
            } else {
                assert!(w.refuses(&url).contains("outside_geofence"), "{url}");
            }
        }
        let e = w.refuses(&get_map(&w.public, "1.3.0", "CRS", "osm", "CRS:84", "-40,-40,-20,-20", "image/png"));
        assert!(e.contains("outside_geofence"), "{e}");
    }
}
