//! OGC API documents and classifier agree: every link `href` the rewritten pygeoapi
//! landing page, collections list, collection and tilesets documents keep on the
//! gateway is served (templated tile links filled with a tile inside the fence), with
//! and without a fence; no HTML link is kept (the gateway answers 406 to OGC API HTML
//! pages); an uncovered collection, a tile above maxZoom and a tile outside the fence
//! are refused.

use serde_json::Value;

use crate::ogc::test_walk::{fence, fixture, path, Walk, PUBLIC_URL};
use crate::ogc::Protocol;
use crate::paths::PathConfig;

const UPSTREAM: &str = "http://127.0.0.1:5000";

fn api_path() -> PathConfig {
    path("osm", &["obs", "lakes", "nz_coast"])
}

/// Every `links[]` entry anywhere in the document.
fn links(doc: &Value) -> Vec<&serde_json::Map<String, Value>> {
    fn go<'v>(v: &'v Value, out: &mut Vec<&'v serde_json::Map<String, Value>>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Array(ls)) = o.get("links") {
                    out.extend(ls.iter().filter_map(Value::as_object));
                }
                o.values().for_each(|c| go(c, out));
            }
            Value::Array(items) => items.iter().for_each(|c| go(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(doc, &mut out);
    out
}

/// Tile 5/16/10 (row 10, column 16) lies in the fence.
fn fill(href: &str) -> String {
    href.replace("{tileMatrixSetId}", "WebMercatorQuad")
        .replace("{tileMatrix}", "5")
        .replace("{tileRow}", "10")
        .replace("{tileCol}", "16")
}

/// Walks every link of one rewritten document; returns how many point at the gateway.
fn walk(w: &Walk, doc: &[u8]) -> usize {
    let out = w.rewrite(doc, UPSTREAM);
    let doc: Value = serde_json::from_slice(&out).expect("the rewritten document is JSON");
    let mut on_gateway = 0;
    for link in links(&doc) {
        let href = link.get("href").and_then(Value::as_str).expect("a link has an href");
        if !href.starts_with(PUBLIC_URL) {
            assert!(!href.starts_with(UPSTREAM), "upstream link kept: {href}");
            continue;
        }
        assert_ne!(
            link.get("type").and_then(Value::as_str),
            Some("text/html"),
            "the gateway answers 406 to OGC API HTML pages, yet {href} is advertised"
        );
        w.accepts(&fill(href));
        on_gateway += 1;
    }
    on_gateway
}

fn collection(id: &str) -> Vec<u8> {
    let all: Value = serde_json::from_slice(&fixture("ogcapi_collections_pygeoapi.json")).expect("JSON");
    let one = all["collections"].as_array().expect("collections").iter().find(|c| c["id"] == id).expect("collection");
    serde_json::to_vec(one).expect("JSON")
}

fn every_document(w: &Walk) -> usize {
    walk(w, &fixture("ogcapi_landing_pygeoapi.json"))
        + walk(w, &fixture("ogcapi_collections_pygeoapi.json"))
        + walk(w, &collection("obs"))
        + walk(w, &fixture("ogcapi_tilesets_pygeoapi.json"))
}

#[test]
fn ogcapi_documents_link_only_to_what_the_gateway_serves() {
    let w = Walk::new(Protocol::Api, api_path(), None);
    let n = every_document(&w);
    assert!(n >= 20, "{n} links walked");
    // pygeoapi's tiling-schemes link (`/TileMatrixSets`, capital T) is served, so it stays.
    let landing = String::from_utf8(w.rewrite(&fixture("ogcapi_landing_pygeoapi.json"), UPSTREAM)).expect("UTF-8");
    assert!(landing.contains(&format!("{}/TileMatrixSets?f=json", w.public)), "{landing}");
    let e = w.refuses(&format!("{}/collections/cadastre/items?f=json", w.public));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn ogcapi_fenced_documents_link_only_to_what_the_fence_lets_through() {
    let w = Walk::new(Protocol::Api, api_path(), Some(fence()));
    let n = every_document(&w);
    assert!(n >= 15, "{n} links walked");
    let e = w.refuses(&format!("{}/collections/lakes/tiles/WebMercatorQuad/8/80/128?f=mvt", w.public));
    assert!(e.contains("zoom_above_max"), "{e}");
    let e = w.refuses(&format!("{}/collections/lakes/tiles/WebMercatorQuad/5/10/18?f=mvt", w.public));
    assert!(e.contains("outside_geofence"), "{e}");
    let e = w.refuses(&format!("{}/collections/cadastre/tiles/WebMercatorQuad/5/10/16?f=mvt", w.public));
    assert!(e.contains("layer_not_covered"), "{e}");
}

#[test]
fn ogcapi_fenced_tiles_are_served_at_every_zoom_to_max_zoom() {
    // `partial = "clip"`: above the fence tiles' zoom a tile straddling the fence is
    // served clipped, so a client zooming out from the fence still gets a map. One
    // tile per zoom, the fence tile 5/16/10's ancestor or descendant; at maxZoom + 1
    // it is refused.
    let w = Walk::new(Protocol::Api, api_path(), Some(fence()));
    for z in 0..=crate::ogc::test_walk::MAX_ZOOM {
        let (col, row) = if z <= 5 { (16 >> (5 - z), 10 >> (5 - z)) } else { (16 << (z - 5), 10 << (z - 5)) };
        for kind in ["", "/map"] {
            let url = format!("{}/collections/lakes{kind}/tiles/WebMercatorQuad/{z}/{row}/{col}", w.public);
            assert_eq!(w.accepts(&url), if kind.is_empty() { "api.tile" } else { "api.mapTile" }, "{url}");
        }
    }
    let path = PathConfig { partial: crate::paths::Partial::Deny, ..api_path() };
    let w = Walk::new(Protocol::Api, path, Some(fence()));
    let e = w.refuses(&format!("{}/collections/lakes/tiles/WebMercatorQuad/4/5/8", w.public));
    assert!(e.contains("outside_geofence"), "partial = deny: {e}");
}
