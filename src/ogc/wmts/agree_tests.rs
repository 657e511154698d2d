//! WMTS capabilities and classifier agree: every operation URL, layer, style, format,
//! tile matrix set and tile matrix the rewritten MapProxy capabilities (KVP and
//! RESTful) advertise is served through the gateway, one tile per corner of every
//! advertised `TileMatrixLimits` (or of the whole matrix where no limits are given);
//! an uncovered layer, a matrix above maxZoom and a tile just outside the limits are
//! refused.

use crate::ogc::common::xml::Element;
use crate::ogc::test_walk::{all, fence, fixture, get_hrefs, kvp, parse, path, texts, Walk, MAX_ZOOM};
use crate::ogc::Protocol;
use crate::paths::PathConfig;

const KVP_UPSTREAM: &str = "http://127.0.0.1:9001/service";
const REST_UPSTREAM: &str = "http://127.0.0.1:9001/wmts";
/// MapProxy's RESTful tile path (column before row, no style).
const MAPPROXY_TEMPLATE: &str = "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png";

/// Covers two Web Mercator layers and the geodetic-only one, not `private`.
fn wmts_path() -> PathConfig {
    PathConfig {
        wmts_rest_template: Some(MAPPROXY_TEMPLATE.to_owned()),
        ..path("osm", &["osm", "roads", "geodetic_only"])
    }
}

/// `(matrix id, min_col, max_col, min_row, max_row)`, inclusive.
type Range = (String, u64, u64, u64, u64);

/// The tile ranges a client reads from one `TileMatrixSetLink`: its `TileMatrixLimits`,
/// or every matrix of the set's definition in full.
fn ranges(link: &Element, contents: &Element) -> Vec<Range> {
    let set = link.child_text("TileMatrixSet").expect("a link names its set");
    let definition = contents
        .elements()
        .find(|s| s.is("TileMatrixSet") && s.child_text("Identifier").as_deref() == Some(set.as_str()))
        .unwrap_or_else(|| panic!("link to `{set}`, which the document does not define"));
    let defined: Vec<(String, u64, u64)> = definition
        .elements()
        .filter(|m| m.is("TileMatrix"))
        .map(|m| {
            let n = |c: &str| m.child_text(c).and_then(|v| v.trim().parse::<u64>().ok()).expect("matrix size");
            (m.child_text("Identifier").expect("matrix id"), n("MatrixWidth"), n("MatrixHeight"))
        })
        .collect();
    match link.child("TileMatrixSetLimits") {
        Some(limits) => {
            let listed: Vec<String> =
                all(limits, "TileMatrixLimits").iter().filter_map(|l| l.child_text("TileMatrix")).collect();
            for (id, ..) in &defined {
                // Clients read a defined matrix without limits as wholly available.
                assert!(listed.contains(id), "`{set}` defines matrix `{id}`, which the link's limits leave out");
            }
            all(limits, "TileMatrixLimits")
                .into_iter()
                .map(|l| {
                    let id = l.child_text("TileMatrix").expect("limits name a matrix");
                    assert!(
                        defined.iter().any(|(d, ..)| *d == id),
                        "limits for `{id}`, which `{set}` no longer defines"
                    );
                    let n = |c: &str| l.child_text(c).and_then(|v| v.trim().parse::<u64>().ok()).expect("a limit");
                    (id, n("MinTileCol"), n("MaxTileCol"), n("MinTileRow"), n("MaxTileRow"))
                })
                .collect()
        }
        None => defined.into_iter().map(|(id, w, h)| (id, 0, w - 1, 0, h - 1)).collect(),
    }
}

fn corners(r: &Range) -> [(u64, u64); 4] {
    [(r.1, r.3), (r.2, r.4), (r.1, r.4), (r.2, r.3)]
}

/// One tile a client would request, as `(layer, style, format, set, matrix, col, row)`.
struct Tile<'a> {
    layer: &'a str,
    style: &'a str,
    format: &'a str,
    set: &'a str,
    matrix: &'a str,
    col: u64,
    row: u64,
}

fn kvp_tile(endpoint: &str, t: &Tile<'_>) -> String {
    let (col, row) = (t.col.to_string(), t.row.to_string());
    kvp(
        endpoint,
        &[
            ("SERVICE", "WMTS"),
            ("REQUEST", "GetTile"),
            ("VERSION", "1.0.0"),
            ("LAYER", t.layer),
            ("STYLE", t.style),
            ("FORMAT", t.format),
            ("TILEMATRIXSET", t.set),
            ("TILEMATRIX", t.matrix),
            ("TILEROW", &row),
            ("TILECOL", &col),
        ],
    )
}

fn fill(template: &str, t: &Tile<'_>) -> String {
    template
        .replace("{TileMatrixSet}", t.set)
        .replace("{TileMatrix}", t.matrix)
        .replace("{TileCol}", &t.col.to_string())
        .replace("{TileRow}", &t.row.to_string())
        .replace("{Style}", t.style)
        .replace("{I}", "0")
        .replace("{J}", "0")
}

/// What one walk saw, for the converse checks.
#[derive(Default)]
struct Seen {
    tiles: usize,
    layers: Vec<String>,
    /// `(layer, set, matrix range)` of every advertised Web Mercator range.
    ranges: Vec<(String, String, Range)>,
}

/// Walks a rewritten document; `rest` says whether tiles are requested through the
/// `ResourceURL` templates (RESTful) or the GetTile operation URL (KVP).
fn walk(w: &Walk, out: &[u8], rest: bool) -> Seen {
    let root = parse(out);
    let mut seen = Seen::default();
    let mut get_tile = Vec::new();
    let mut feature_info = Vec::new();
    for op in all(&root, "Operation") {
        let hrefs = get_hrefs(op);
        match op.attr("name") {
            Some("GetCapabilities") => {
                for h in &hrefs {
                    w.accepts(&kvp(h, &[("SERVICE", "WMTS"), ("REQUEST", "GetCapabilities")]));
                }
            }
            Some("GetTile") => get_tile = hrefs,
            Some("GetFeatureInfo") => feature_info = hrefs,
            other => panic!("unexpected operation {other:?}"),
        }
    }
    for meta in all(&root, "ServiceMetadataURL") {
        assert_eq!(w.accepts(meta.attr("href").expect("href")), "wmts.GetCapabilities");
    }
    let contents = root.child("Contents").expect("Contents");
    for layer in contents.elements().filter(|l| l.is("Layer")) {
        let id = layer.child_text("Identifier").expect("layer id");
        let styles: Vec<String> =
            layer.elements().filter(|s| s.is("Style")).filter_map(|s| s.child_text("Identifier")).collect();
        let formats = texts(layer, "Format");
        let info_formats = texts(layer, "InfoFormat");
        let templates: Vec<(String, String, String)> = layer
            .elements()
            .filter(|r| r.is("ResourceURL"))
            .map(|r| {
                let attr = |a: &str| r.attr(a).unwrap_or_default().to_owned();
                (attr("resourceType"), attr("format"), attr("template"))
            })
            .collect();
        assert!(!rest || !templates.is_empty(), "RESTful layer `{id}` has no ResourceURL");
        for link in layer.elements().filter(|l| l.is("TileMatrixSetLink")) {
            let set = link.child_text("TileMatrixSet").expect("set");
            for range in ranges(link, contents) {
                for (col, row) in corners(&range) {
                    for style in &styles {
                        let base = Tile { layer: &id, style, format: "", set: &set, matrix: &range.0, col, row };
                        if rest {
                            for (kind, format, template) in &templates {
                                assert_eq!(
                                    w.accepts(&fill(template, &Tile { format, ..base })),
                                    kind_op(kind),
                                    "{template}"
                                );
                            }
                        } else {
                            for format in &formats {
                                for endpoint in &get_tile {
                                    assert_eq!(
                                        w.accepts(&kvp_tile(endpoint, &Tile { format, ..base })),
                                        "wmts.GetTile"
                                    );
                                }
                            }
                            for info in &info_formats {
                                for endpoint in &feature_info {
                                    let mut url = kvp_tile(endpoint, &Tile { format: &formats[0], ..base });
                                    url = url.replace("REQUEST=GetTile", "REQUEST=GetFeatureInfo");
                                    url.push_str(&format!(
                                        "&I=0&J=0&INFOFORMAT={}",
                                        crate::ogc::test_walk::encode(info)
                                    ));
                                    assert_eq!(w.accepts(&url), "wmts.GetFeatureInfo");
                                }
                            }
                        }
                        seen.tiles += 1;
                    }
                }
                if crate::ogc::common::matrix::is_quad_set(&set, &w.path.webmercator_matrix_sets) {
                    seen.ranges.push((id.clone(), set.clone(), range));
                }
            }
        }
        seen.layers.push(id);
    }
    seen
}

fn kind_op(resource_type: &str) -> &'static str {
    match resource_type {
        "tile" => "wmts.GetTile",
        "FeatureInfo" => "wmts.GetFeatureInfo",
        other => panic!("unexpected ResourceURL type `{other}`"),
    }
}

/// The converse for a fenced walk: a tile just outside each advertised range, a matrix
/// above maxZoom and the uncovered layer are refused.
fn refuse_unadvertised(w: &Walk, seen: &Seen, rest: bool, endpoint: &str) {
    let url = |layer: &str, set: &str, matrix: &str, col: u64, row: u64| {
        let t = Tile { layer, style: "default", format: "image/png", set, matrix, col, row };
        if rest {
            fill(&format!("{}/{layer}/{{TileMatrixSet}}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png", w.public), &t)
        } else {
            kvp_tile(endpoint, &t)
        }
    };
    let mut outside = 0;
    for (layer, set, r) in &seen.ranges {
        let side = 1u64 << crate::ogc::common::matrix::matrix_zoom(set, &r.0).expect("a quad zoom");
        let mut beyond = vec![(r.2 + 1, r.3), (r.1, r.4 + 1)];
        if r.1 > 0 {
            beyond.push((r.1 - 1, r.3));
        }
        if r.3 > 0 {
            beyond.push((r.1, r.3 - 1));
        }
        for (col, row) in beyond.into_iter().filter(|(c, r)| *c < side && *r < side) {
            let e = w.refuses(&url(layer, set, &r.0, col, row));
            assert!(e.contains("outside_geofence"), "{e}");
            outside += 1;
        }
    }
    assert!(outside > 0, "some range has a neighbour inside the world");
    // Zoom maxZoom + 1, inside the fence (tile 8/136/84 lies in 5/17/10).
    let above = format!("{:02}", MAX_ZOOM + 1);
    let e = w.refuses(&url("osm", "GLOBAL_WEBMERCATOR", &above, 136, 84));
    assert!(e.contains("zoom_above_max"), "{e}");
    let e = w.refuses(&url("private", "GLOBAL_WEBMERCATOR", "05", 16, 10));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn wmts_kvp_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wmts, wmts_path(), None);
    let seen = walk(&w, &w.rewrite(&fixture("wmts_100_mapproxy_kvp.xml"), KVP_UPSTREAM), false);
    assert_eq!(seen.layers, ["osm", "roads", "geodetic_only"]);
    assert!(seen.tiles > 40, "{} tiles", seen.tiles);
    let e = w.refuses(&kvp_tile(
        &w.public,
        &Tile {
            layer: "private",
            style: "default",
            format: "image/png",
            set: "GLOBAL_WEBMERCATOR",
            matrix: "03",
            col: 0,
            row: 0,
        },
    ));
    assert!(e.contains("layer_not_covered"), "{e}");
}

/// The zooms of the advertised Web Mercator ranges of layer `osm`, ascending, distinct.
fn zooms(seen: &Seen) -> Vec<u8> {
    let mut z: Vec<u8> =
        seen.ranges.iter().filter(|(l, ..)| l == "osm").filter_map(|(_, _, r)| r.0.parse::<u8>().ok()).collect();
    z.sort_unstable();
    z.dedup();
    z
}

#[test]
fn wmts_kvp_fenced_capabilities_advertise_every_zoom_to_max_zoom_clipped() {
    // `partial = "clip"` (the default): zooms 0‥4 hold tiles that straddle the fence,
    // served clipped, so every matrix up to maxZoom is advertised (gdal_translate
    // builds its overviews from them), limited to the fence's footprint, and a
    // corner tile of each is served.
    let w = Walk::new(Protocol::Wmts, wmts_path(), Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wmts_100_mapproxy_kvp.xml"), KVP_UPSTREAM), false);
    assert_eq!(seen.layers, ["osm", "roads"], "the geodetic-only layer cannot be fenced");
    assert_eq!(zooms(&seen), (0..=MAX_ZOOM).collect::<Vec<_>>());
    refuse_unadvertised(&w, &seen, false, &format!("{}?", w.public));
}

#[test]
fn wmts_kvp_fenced_capabilities_with_partial_deny_advertise_only_tiles_inside_the_fence() {
    let path = PathConfig { partial: crate::paths::Partial::Deny, ..wmts_path() };
    let w = Walk::new(Protocol::Wmts, path, Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wmts_100_mapproxy_kvp.xml"), KVP_UPSTREAM), false);
    assert_eq!(seen.layers, ["osm", "roads"]);
    assert_eq!(zooms(&seen), (5..=MAX_ZOOM).collect::<Vec<_>>());
    refuse_unadvertised(&w, &seen, false, &format!("{}?", w.public));
}

#[test]
fn wmts_rest_capabilities_advertise_only_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Wmts, wmts_path(), None);
    let seen = walk(&w, &w.rewrite(&fixture("wmts_100_mapproxy_rest.xml"), REST_UPSTREAM), true);
    assert_eq!(seen.layers, ["osm", "roads", "geodetic_only"]);
    assert!(seen.tiles > 40, "{} tiles", seen.tiles);
}

#[test]
fn wmts_rest_fenced_capabilities_advertise_only_tiles_inside_the_fence() {
    let w = Walk::new(Protocol::Wmts, wmts_path(), Some(fence()));
    let seen = walk(&w, &w.rewrite(&fixture("wmts_100_mapproxy_rest.xml"), REST_UPSTREAM), true);
    assert_eq!(seen.layers, ["osm", "roads"]);
    assert_eq!(zooms(&seen), (0..=MAX_ZOOM).collect::<Vec<_>>(), "clipped: every zoom to maxZoom");
    refuse_unadvertised(&w, &seen, true, "");
}
