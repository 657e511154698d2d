//! Tests of the public rewrite functions against capabilities documents modelled on
//! what MapProxy (WMS 1.1.1/1.3.0, WMTS KVP and REST), GeoServer (WFS 2.0), MapServer
//! (WCS 2.0) and pygeoapi (OGC API) produce; fixtures live in
//! `tests/fixtures/capabilities/`.

use super::*;
use crate::ogc::api::capabilities::rewrite as rewrite_ogcapi_json;
use crate::ogc::common::xml::{Doc, DocTypePolicy, Element};
use crate::ogc::wcs::capabilities::rewrite as rewrite_wcs;
use crate::ogc::wfs::capabilities::rewrite as rewrite_wfs;
use crate::ogc::wms::capabilities::rewrite as rewrite_wms;
use crate::ogc::wmts::capabilities::rewrite as rewrite_wmts;

const PUBLIC_WMS: &str = "https://maps.example.org/ogc/wms/osm";
const PUBLIC_WMTS: &str = "https://maps.example.org/ogc/wmts/osm";
const MAPPROXY: &str = "127.0.0.1:9001";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/capabilities/", $name)).as_slice()
    };
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn text(out: &[u8]) -> String {
    String::from_utf8(out.to_vec()).expect("output is UTF-8")
}

/// Parses the output again (it must be well-formed) and returns its root.
fn reparse(out: &[u8]) -> Element {
    Doc::parse(out, DocTypePolicy::AllowWithoutEntities).expect("output parses again").root
}

fn assert_no_upstream(out: &[u8], origin: &str) {
    let s = String::from_utf8_lossy(out);
    assert!(!s.contains(origin), "upstream {origin} left in output:\n{s}");
}

/// Every element with this local name, in document order.
fn all<'e>(root: &'e Element, local_name: &str) -> Vec<&'e Element> {
    fn go<'e>(el: &'e Element, name: &str, out: &mut Vec<&'e Element>) {
        if el.is(name) {
            out.push(el);
        }
        for c in el.elements() {
            go(c, name, out);
        }
    }
    let mut out = Vec::new();
    go(root, local_name, &mut out);
    out
}

/// Every value of attributes with this local name, in document order.
fn attr_values(root: &Element, attr: &str) -> Vec<String> {
    let mut out = Vec::new();
    fn go(el: &Element, attr: &str, out: &mut Vec<String>) {
        if let Some(v) = el.attr(attr) {
            out.push(v.to_owned());
        }
        for c in el.elements() {
            go(c, attr, out);
        }
    }
    go(root, attr, &mut out);
    out
}

/// The `child` text of every `element`, in document order (`Layer`, `Name`).
fn child_texts(root: &Element, element: &str, child: &str) -> Vec<String> {
    all(root, element).into_iter().filter_map(|e| e.child_text(child)).collect()
}

/// Names of WMS layers (`Layer/Name`), in document order.
fn wms_layer_names(root: &Element) -> Vec<String> {
    child_texts(root, "Layer", "Name")
}

/// A fence of one tile plus an optional maxZoom, as `spatial::Fence` would describe it.
struct TileFence {
    z: u8,
    x: u32,
    y: u32,
    max_zoom: Option<u8>,
}

fn tile_lon(x: u32, z: u8) -> f64 {
    f64::from(x) / f64::from(1u32 << z) * 360.0 - 180.0
}

fn tile_lat(y: u32, z: u8) -> f64 {
    let n = std::f64::consts::PI * (1.0 - 2.0 * f64::from(y) / f64::from(1u32 << z));
    n.sinh().atan().to_degrees()
}

impl FenceView for TileFence {
    fn max_zoom(&self) -> Option<u8> {
        self.max_zoom
    }
    fn bounds_lonlat(&self) -> Option<[f64; 4]> {
        Some([
            tile_lon(self.x, self.z),
            tile_lat(self.y + 1, self.z),
            tile_lon(self.x + 1, self.z),
            tile_lat(self.y, self.z),
        ])
    }
    fn bounds_mercator(&self) -> Option<[f64; 4]> {
        None
    }
    fn tile_limits(&self, z: u8) -> TileLimits {
        if z < self.z {
            return TileLimits::Nothing;
        }
        let s = z - self.z;
        TileLimits::Range {
            min_col: self.x << s,
            max_col: ((self.x + 1) << s) - 1,
            min_row: self.y << s,
            max_row: ((self.y + 1) << s) - 1,
        }
    }
}

/// Tile 4/8/5: lon 0‥22.5, lat ≈ 40.98‥55.78 (central Europe), maxZoom 10.
fn europe() -> TileFence {
    TileFence { z: 4, x: 8, y: 5, max_zoom: Some(10) }
}

/// A fence with only a maxZoom.
struct ZoomOnly(u8);

impl FenceView for ZoomOnly {
    fn max_zoom(&self) -> Option<u8> {
        Some(self.0)
    }
    fn bounds_lonlat(&self) -> Option<[f64; 4]> {
        None
    }
    fn bounds_mercator(&self) -> Option<[f64; 4]> {
        None
    }
    fn tile_limits(&self, _z: u8) -> TileLimits {
        TileLimits::All
    }
}

fn close(a: &str, b: f64) -> bool {
    a.trim().parse::<f64>().is_ok_and(|a| (a - b).abs() < 1e-6)
}

// ---------------------------------------------------------------- WMS 1.1.1

#[test]
fn wms_111_urls_point_at_the_gateway() {
    let layers = names(&["osm", "roads"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers);
    let out = rewrite_wms(fixture!("wms_111_mapproxy.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, MAPPROXY);
    let root = reparse(&out);
    let hrefs = attr_values(&root, "href");
    let request_urls: Vec<&String> =
        hrefs.iter().filter(|h| h.as_str() == "https://maps.example.org/ogc/wms/osm?").collect();
    assert_eq!(request_urls.len(), 5, "service + 4 operations: {hrefs:?}");
    assert!(hrefs.contains(&"https://maps.example.org/ogc/wms/osm?styles=&layer=osm&service=WMS&format=image%2Fpng&sld_version=1.1.0&request=GetLegendGraphic&version=1.1.1".to_owned()));
    assert!(hrefs.contains(&"https://metadata.example.org/csw?id=osm".to_owned()), "foreign URLs stay");
    let s = text(&out);
    assert!(s.contains("served by MapProxy at https://maps.example.org/ogc/wms/osm for the intranet"));
    assert!(s.contains(
        "<!DOCTYPE WMT_MS_Capabilities SYSTEM \"http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd\""
    ));
    assert!(s.contains("<!-- end of DOCTYPE declaration -->"), "comments are kept");
    assert!(s.contains("Data &amp; maps &#169; OpenStreetMap"), "untouched text keeps its escaping");
}

#[test]
fn wms_111_token_is_appended_to_every_gateway_url_once() {
    let layers = names(&["osm", "roads"]);
    let rw = Rewrite {
        token_query: Some("tg_s3cret"),
        ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers)
    };
    let out = rewrite_wms(fixture!("wms_111_mapproxy.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    let gateway: Vec<String> = attr_values(&root, "href").into_iter().filter(|h| h.starts_with(PUBLIC_WMS)).collect();
    assert!(gateway.len() >= 6);
    for href in &gateway {
        assert_eq!(href.matches("token=").count(), 1, "{href}");
    }
    assert!(
        gateway.contains(&"https://maps.example.org/ogc/wms/osm?token=tg_s3cret&".to_owned()),
        "a KVP prefix stays a prefix"
    );
    assert!(
        attr_values(&root, "href").contains(&"https://metadata.example.org/csw?id=osm".to_owned()),
        "no token to other servers"
    );
}

#[test]
fn wms_111_uncovered_layers_go_and_groups_become_containers() {
    let layers = names(&["osm", "roads"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers);
    let out = rewrite_wms(fixture!("wms_111_mapproxy.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    assert_eq!(wms_layer_names(&root), ["osm", "roads"]);
    let titles: Vec<String> = child_texts(&root, "Layer", "Title");
    assert_eq!(titles, ["MapProxy WMS Proxy", "OpenStreetMap", "Layers", "Roads"]);
    let s = text(&out);
    assert!(!s.contains("layer=basemaps"), "the demoted group's legend is gone");
    assert!(!s.contains("Cadastre") && !s.contains("internal/cadastre"));
    assert!(!s.contains("hillshade"));
}

#[test]
fn wms_111_fence_shrinks_lat_lon_boxes_and_drops_crs_it_cannot_judge() {
    let layers = names(&["osm", "roads", "cadastre"]);
    let fence = europe();
    let rw = Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers) };
    let out = rewrite_wms(fixture!("wms_111_mapproxy.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    let osm = all(&root, "Layer").into_iter().find(|l| l.child_text("Name").as_deref() == Some("osm")).expect("osm");
    let ll = osm.child("LatLonBoundingBox").expect("box");
    assert!(close(ll.attr("minx").expect("minx"), 0.0));
    assert!(close(ll.attr("maxx").expect("maxx"), 22.5));
    assert!(close(ll.attr("miny").expect("miny"), tile_lat(6, 4)));
    assert!(close(ll.attr("maxy").expect("maxy"), tile_lat(5, 4)));
    // A fenced token's maps in EPSG:25832 are refused (`unsupported_crs`): not advertised.
    assert!(osm.elements().all(|e| e.attr("SRS") != Some("EPSG:25832")), "the UTM box is gone");
    assert!(all(&root, "SRS").iter().all(|e| e.text().trim() != "EPSG:25832"), "and the UTM CRS");
    let merc = osm.elements().find(|e| e.attr("SRS") == Some("EPSG:900913")).expect("mercator box");
    assert!(close(merc.attr("minx").expect("minx"), 0.0));
    assert!(close(merc.attr("maxx").expect("maxx"), crate::spatial::MERCATOR_HALF_WORLD / 8.0));
    assert_eq!(wms_layer_names(&root), ["osm", "roads", "cadastre"]);
}

#[test]
fn wms_root_layer_stays_when_nothing_is_covered() {
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    let out = rewrite_wms(fixture!("wms_111_mapproxy.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    let layers = all(&root, "Layer");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].child_text("Title").as_deref(), Some("MapProxy WMS Proxy"));
    assert!(layers[0].child("Name").is_none());
}

#[test]
fn wms_111_doctype_pointing_upstream_is_replaced_by_the_ogc_dtd() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE WMT_MS_Capabilities SYSTEM "http://127.0.0.1:9001/geoserver/schemas/wms/1.1.1/WMS_MS_Capabilities.dtd"><WMT_MS_Capabilities version="1.1.1"><Service><Name>OGC:WMS</Name><OnlineResource xmlns:xlink="http://www.w3.org/1999/xlink" xlink:type="simple" xlink:href="http://127.0.0.1:9001/geoserver/wms"/></Service><Capability><Layer><Title>GeoServer</Title></Layer></Capability></WMT_MS_Capabilities>"#;
    let rw = Rewrite::new("http://127.0.0.1:9001/geoserver/wms", PUBLIC_WMS, &[]);
    let out = rewrite_wms(xml, &rw).expect("rewrites");
    assert_no_upstream(&out, MAPPROXY);
    assert!(text(&out).contains(
        r#"<!DOCTYPE WMT_MS_Capabilities SYSTEM "http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd">"#
    ));
}

// ---------------------------------------------------------------- WMS 1.3.0

#[test]
fn wms_130_layers_urls_and_comments() {
    let layers = names(&["osm", "nz_coast"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers);
    let out = rewrite_wms(fixture!("wms_130_mapproxy.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, MAPPROXY);
    let root = reparse(&out);
    // The named root layer is not covered: it stays as an unnamed container.
    assert_eq!(wms_layer_names(&root), ["osm", "nz_coast"]);
    assert_eq!(all(&root, "Layer")[0].child_text("Title").as_deref(), Some("MapProxy WMS Proxy"));
    let s = text(&out);
    assert!(s.contains("<!-- served from https://maps.example.org/ogc/wms/osm -->"));
    assert!(!s.contains("secret_parcels") && !s.contains("parcels.csv"));
    assert!(s.contains(
        "xsi:schemaLocation=\"http://www.opengis.net/wms http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd"
    ));
    assert!(root.namespace_declared("").is_some_and(|ns| ns == "http://www.opengis.net/wms"));
}

#[test]
fn wms_130_fence_shrinks_boxes_in_lat_lon_order_and_drops_layers_outside() {
    let layers = names(&["osm", "nz_coast"]);
    let fence = europe();
    let rw = Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers) };
    let out = rewrite_wms(fixture!("wms_130_mapproxy.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    assert_eq!(wms_layer_names(&root), ["osm"], "New Zealand lies outside the fence");
    let osm = all(&root, "Layer").into_iter().find(|l| l.child_text("Name").as_deref() == Some("osm")).expect("osm");
    let ex = osm.child("EX_GeographicBoundingBox").expect("geographic box");
    assert!(close(&ex.child_text("westBoundLongitude").expect("w"), 0.0));
    assert!(close(&ex.child_text("eastBoundLongitude").expect("e"), 22.5));
    assert!(close(&ex.child_text("southBoundLatitude").expect("s"), tile_lat(6, 4)));
    assert!(close(&ex.child_text("northBoundLatitude").expect("n"), tile_lat(5, 4)));
    let epsg4326 = osm.elements().find(|e| e.attr("CRS") == Some("EPSG:4326")).expect("EPSG:4326 box");
    assert!(close(epsg4326.attr("minx").expect("minx"), tile_lat(6, 4)), "1.3.0 EPSG:4326 is lat,lon");
    assert!(close(epsg4326.attr("miny").expect("miny"), 0.0));
    assert!(close(epsg4326.attr("maxy").expect("maxy"), 22.5));
    let crs84 = osm.elements().find(|e| e.attr("CRS") == Some("CRS:84")).expect("CRS:84 box");
    assert!(close(crs84.attr("minx").expect("minx"), 0.0));
    assert!(close(crs84.attr("maxx").expect("maxx"), 22.5));
    let merc = osm.elements().find(|e| e.attr("CRS") == Some("EPSG:3857")).expect("mercator box");
    let h = crate::spatial::MERCATOR_HALF_WORLD;
    assert!(close(merc.attr("maxx").expect("maxx"), h / 8.0));
    assert!(close(merc.attr("miny").expect("miny"), h * 0.25));
    assert!(close(merc.attr("maxy").expect("maxy"), h * 0.375));
}

#[test]
fn wms_130_fenced_max_zoom_becomes_a_min_scale_denominator() {
    let layers = names(&["osm"]);
    let fence = ZoomOnly(12);
    let rw = Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &layers) };
    let out = rewrite_wms(fixture!("wms_130_mapproxy.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    let expected = 559_082_264.028_717_8 / 4096.0;
    for layer in all(&root, "Layer") {
        let min = layer.child_text("MinScaleDenominator").expect("every kept layer has one");
        assert!(close(&min, expected), "{min}");
    }
    let s = text(&out);
    let osm = &s[s.find("<Name>osm</Name>").expect("osm")..];
    let style_end = osm.find("</Style>").expect("style");
    let min = osm.find("<MinScaleDenominator>").expect("min scale");
    assert!(min > style_end && min < osm.find("</Layer>").expect("end"), "placed after Style, before the layer ends");
    // A root layer's scale limit comes before its sub-layers.
    assert!(s.find("<MinScaleDenominator>").expect("root") < s.find("<Name>osm</Name>").expect("osm"));
    // WMS 1.1.1 has no such element; nothing is added there.
    let out = rewrite_wms(fixture!("wms_111_mapproxy.xml"), &rw).expect("rewrites");
    assert!(!text(&out).contains("ScaleDenominator"));
}

#[test]
fn wms_130_with_a_doctype_is_refused() {
    let xml =
        b"<?xml version=\"1.0\"?><!DOCTYPE WMS_Capabilities SYSTEM \"x.dtd\"><WMS_Capabilities version=\"1.3.0\"/>";
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    assert!(matches!(rewrite_wms(xml, &rw), Err(CapabilitiesError::DocType)));
}

#[test]
fn entity_declarations_are_refused_even_in_wms_111() {
    let xml = br#"<?xml version="1.0"?><!DOCTYPE WMT_MS_Capabilities [ <!ENTITY a "aaaaaaaaaa"> <!ENTITY b "&a;&a;&a;&a;"> ]><WMT_MS_Capabilities version="1.1.1"><Service><Title>&b;</Title></Service></WMT_MS_Capabilities>"#;
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    assert!(matches!(rewrite_wms(xml, &rw), Err(CapabilitiesError::EntityDeclaration)));
}

#[test]
fn broken_and_foreign_documents_are_refused() {
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    let full = fixture!("wms_130_mapproxy.xml");
    assert!(rewrite_wms(&full[..full.len() / 2], &rw).is_err(), "truncated");
    assert!(rewrite_wms(b"<html><body>502 Bad Gateway</body></html>", &rw).is_err(), "HTML");
    assert!(rewrite_wms(b"", &rw).is_err(), "empty");
    assert!(matches!(
        rewrite_wms(br#"<ServiceExceptionReport version="1.3.0"><ServiceException>boom</ServiceException></ServiceExceptionReport>"#, &rw),
        Err(CapabilitiesError::WrongRoot { .. })
    ));
    assert!(matches!(rewrite_wms(fixture!("wfs_200_geoserver.xml"), &rw), Err(CapabilitiesError::WrongRoot { .. })));
    assert!(matches!(rewrite_wmts(fixture!("wcs_201_mapserver.xml"), &rw), Err(CapabilitiesError::WrongRoot { .. })));
    assert!(matches!(
        rewrite_wcs(fixture!("wmts_100_mapproxy_kvp.xml"), &rw),
        Err(CapabilitiesError::WrongRoot { .. })
    ));
    assert!(matches!(rewrite_wfs(fixture!("wms_111_mapproxy.xml"), &rw), Err(CapabilitiesError::DocType)));
}

#[test]
fn latin1_capabilities_stay_latin1() {
    let mut xml = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<WMS_Capabilities version=\"1.3.0\" xmlns=\"http://www.opengis.net/wms\" xmlns:xlink=\"http://www.w3.org/1999/xlink\"><Service><Title>Stadtplan K".to_vec();
    xml.extend_from_slice(b"\xf6ln</Title><OnlineResource xlink:href=\"http://127.0.0.1:9001/service?\"/></Service><Capability><Layer><Title>Wurzel</Title></Layer></Capability></WMS_Capabilities>");
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    let out = rewrite_wms(&xml, &rw).expect("rewrites");
    let koeln = b"K\xf6ln</Title>";
    assert!(out.windows(koeln.len()).any(|w| w == koeln), "umlaut is still one ISO-8859-1 byte");
    assert!(out.windows(PUBLIC_WMS.len()).any(|w| w == PUBLIC_WMS.as_bytes()));
}

// ---------------------------------------------------------------- WMTS

fn wmts_layer<'e>(root: &'e Element, id: &str) -> Option<&'e Element> {
    all(root, "Layer").into_iter().find(|l| l.child_text("Identifier").as_deref() == Some(id))
}

/// `(matrix, min_row, max_row, min_col, max_col)`, as written in `TileMatrixLimits`.
type MatrixLimits = (String, u32, u32, u32, u32);

/// The limits in a layer's link to `set`.
fn wmts_limits(layer: &Element, set: &str) -> Option<Vec<MatrixLimits>> {
    let link = layer
        .elements()
        .find(|l| l.is("TileMatrixSetLink") && l.child_text("TileMatrixSet").as_deref() == Some(set))?;
    let limits = link.child("TileMatrixSetLimits")?;
    Some(
        limits
            .elements()
            .map(|l| {
                let n = |k: &str| l.child_text(k).and_then(|v| v.parse().ok()).expect("number");
                (
                    l.child_text("TileMatrix").expect("matrix"),
                    n("MinTileRow"),
                    n("MaxTileRow"),
                    n("MinTileCol"),
                    n("MaxTileCol"),
                )
            })
            .collect(),
    )
}

fn matrix_ids(root: &Element, set: &str) -> Vec<String> {
    let contents = root.child("Contents").expect("contents");
    let set = contents
        .elements()
        .find(|s| s.is("TileMatrixSet") && s.child_text("Identifier").as_deref() == Some(set))
        .expect("set");
    set.elements().filter(|m| m.is("TileMatrix")).filter_map(|m| m.child_text("Identifier")).collect()
}

#[test]
fn wmts_kvp_operations_point_at_the_gateway_and_layers_are_filtered() {
    let layers = names(&["osm", "roads", "geodetic_only"]);
    let rw =
        Rewrite { token_query: Some("tg_k"), ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMTS, &layers) };
    let out = rewrite_wmts(fixture!("wmts_100_mapproxy_kvp.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, MAPPROXY);
    let root = reparse(&out);
    let gets: Vec<&str> = all(&root, "Get").into_iter().filter_map(|g| g.attr("href")).collect();
    assert_eq!(gets, ["https://maps.example.org/ogc/wmts/osm?token=tg_k&"; 3]);
    let ids: Vec<String> = child_texts(&root, "Layer", "Identifier");
    assert_eq!(ids, ["osm", "roads", "geodetic_only"]);
    assert_eq!(matrix_ids(&root, "GLOBAL_WEBMERCATOR").len(), 20, "no fence, no change");
    assert!(wmts_limits(wmts_layer(&root, "osm").expect("osm"), "GLOBAL_WEBMERCATOR").is_none());
}

#[test]
fn wmts_rest_templates_keep_the_suffix_after_the_wmts_base() {
    let layers = names(&["osm", "roads"]);
    let rw = Rewrite { token_query: Some("tg_r"), ..Rewrite::new("http://127.0.0.1:9001/wmts", PUBLIC_WMTS, &layers) };
    let out = rewrite_wmts(fixture!("wmts_100_mapproxy_rest.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, MAPPROXY);
    let root = reparse(&out);
    let templates = attr_values(&root, "template");
    // The FeatureInfo templates are gone: the gateway serves no RESTful GetFeatureInfo.
    assert_eq!(
        templates,
        [
            "https://maps.example.org/ogc/wmts/osm/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png?token=tg_r",
            "https://maps.example.org/ogc/wmts/osm/roads/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png?token=tg_r",
        ]
    );
    let metadata = all(&root, "ServiceMetadataURL")[0].attr("href").expect("href");
    assert_eq!(metadata, "https://maps.example.org/ogc/wmts/osm/1.0.0/WMTSCapabilities.xml?token=tg_r");
}

/// Attacker round 5: with the default REST template (`/{Layer}/{Style}/…/{TileRow}/
/// {TileCol}.{Format}`) MapProxy's templates were advertised and every tile then
/// answered 400. Only a template the path's REST route reads is advertised.
#[test]
fn wmts_rest_templates_the_gateway_would_refuse_are_not_advertised() {
    let layers = names(&["osm", "roads"]);
    let templates = |served: &str| {
        let rw =
            Rewrite { rest_template: Some(served), ..Rewrite::new("http://127.0.0.1:9001/wmts", PUBLIC_WMTS, &layers) };
        attr_values(&reparse(&rewrite_wmts(fixture!("wmts_100_mapproxy_rest.xml"), &rw).expect("rewrites")), "template")
    };
    assert!(templates(crate::ogc::wmts::DEFAULT_WMTS_REST_TEMPLATE).is_empty());
    assert!(
        templates("/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.{Format}").is_empty(),
        "row and column swapped"
    );
    assert_eq!(
        templates("/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}").len(),
        2,
        "MapProxy's form"
    );
}

#[test]
fn wmts_themes_lose_removed_layers_and_empty_themes() {
    let layers = names(&["osm", "roads"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/wmts", PUBLIC_WMTS, &layers);
    let out = rewrite_wmts(fixture!("wmts_100_mapproxy_rest.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    let refs: Vec<String> = all(&root, "LayerRef").iter().map(|r| r.text()).collect();
    assert_eq!(refs, ["osm", "roads"]);
    let themes: Vec<String> = child_texts(&root, "Theme", "Identifier");
    assert_eq!(themes, ["basemaps", "transport"]);
    let only_private = names(&["private"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/wmts", PUBLIC_WMTS, &only_private);
    let root = reparse(&rewrite_wmts(fixture!("wmts_100_mapproxy_rest.xml"), &rw).expect("rewrites"));
    let themes: Vec<String> = child_texts(&root, "Theme", "Identifier");
    assert_eq!(themes, ["basemaps", "internal"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/wmts", PUBLIC_WMTS, &[]);
    let root = reparse(&rewrite_wmts(fixture!("wmts_100_mapproxy_rest.xml"), &rw).expect("rewrites"));
    assert!(root.child("Themes").is_none(), "no theme left, no <Themes>");
}

#[test]
fn wmts_rest_templates_outside_the_upstream_base_are_removed() {
    // The endpoint forwards to MapProxy's KVP base; its REST URLs cannot be reached.
    let layers = names(&["osm"]);
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMTS, &layers);
    let out = rewrite_wmts(fixture!("wmts_100_mapproxy_rest.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, MAPPROXY);
    let root = reparse(&out);
    assert!(all(&root, "ResourceURL").is_empty());
    assert!(wmts_layer(&root, "osm").is_some());
}

#[test]
fn wmts_fence_writes_tile_matrix_limits_and_drops_deep_matrices() {
    let layers = names(&["osm", "roads", "geodetic_only"]);
    let fence = europe();
    let mapproxy_grid = names(&["GLOBAL_WEBMERCATOR"]);
    let rw = Rewrite {
        fence: Some(&fence),
        quad_matrix_sets: &mapproxy_grid,
        ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMTS, &layers)
    };
    let out = rewrite_wmts(fixture!("wmts_100_mapproxy_kvp.xml"), &rw).expect("rewrites");
    let root = reparse(&out);
    let osm = wmts_layer(&root, "osm").expect("osm stays");
    let limits = wmts_limits(osm, "GLOBAL_WEBMERCATOR").expect("limits written");
    let expected: Vec<MatrixLimits> = (4u8..=10)
        .map(|z| {
            let s = z - 4;
            (format!("{z:02}"), 5 << s, (6 << s) - 1, 8 << s, (9 << s) - 1)
        })
        .collect();
    assert_eq!(limits, expected, "zooms below the fence tile reach nothing; above maxZoom nothing");
    assert!(
        !osm.elements()
            .any(|l| l.is("TileMatrixSetLink") && l.child_text("TileMatrixSet").as_deref() == Some("GLOBAL_GEODETIC")),
        "links to grids the gateway cannot check go"
    );
    assert!(wmts_layer(&root, "geodetic_only").is_none(), "no link left, no layer");
    // Zooms 0‥3 lie above the fence tile (every tile only partly inside): not defined either.
    assert_eq!(matrix_ids(&root, "GLOBAL_WEBMERCATOR"), (4..=10).map(|z| format!("{z:02}")).collect::<Vec<_>>());
    assert_eq!(matrix_ids(&root, "GLOBAL_GEODETIC").len(), 8, "other sets keep their matrices");
    let bbox = osm.child("WGS84BoundingBox").expect("bbox");
    assert_eq!(bbox.child_text("LowerCorner").expect("lower").split(' ').next(), Some("0"));
    assert_eq!(bbox.child_text("UpperCorner").expect("upper").split(' ').next(), Some("22.5"));
    // Limits follow the link's own TileMatrixSet element, in the WMTS namespace.
    let s = text(&out);
    let generated = "<TileMatrixSet>GLOBAL_WEBMERCATOR</TileMatrixSet>
        <TileMatrixSetLimits>
          <TileMatrixLimits>
            <TileMatrix>04</TileMatrix>
            <MinTileRow>5</MinTileRow>
            <MaxTileRow>5</MaxTileRow>
            <MinTileCol>8</MinTileCol>
            <MaxTileCol>8</MaxTileCol>
          </TileMatrixLimits>
          <TileMatrixLimits>
            <TileMatrix>05</TileMatrix>";
    assert!(s.contains(generated), "{s}");
}

/// Regression: the classifier took MapProxy's `GLOBAL_WEBMERCATOR` as a quad grid
/// while the capabilities rewriter needed `webmercator_matrix_sets` to say so, so a
/// fenced token's capabilities lost every layer the gateway would in fact serve. Both
/// now read the one table in `ogc::common::matrix`.
#[test]
fn mapproxy_global_webmercator_gets_limits_without_webmercator_matrix_sets() {
    let layers = names(&["osm", "roads", "geodetic_only"]);
    let fence = europe();
    let rw = Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMTS, &layers) };
    let root = reparse(&rewrite_wmts(fixture!("wmts_100_mapproxy_kvp.xml"), &rw).expect("rewrites"));
    let osm = wmts_layer(&root, "osm").expect("osm stays");
    assert!(wmts_limits(osm, "GLOBAL_WEBMERCATOR").is_some_and(|l| !l.is_empty()), "limits written");
}

#[test]
fn wmts_upstream_limits_are_intersected_not_widened() {
    let layers = names(&["roads"]);
    let fence = ZoomOnly(5);
    let mapproxy_grid = names(&["GLOBAL_WEBMERCATOR"]);
    let rw = Rewrite {
        fence: Some(&fence),
        quad_matrix_sets: &mapproxy_grid,
        ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMTS, &layers)
    };
    let root = reparse(&rewrite_wmts(fixture!("wmts_100_mapproxy_kvp.xml"), &rw).expect("rewrites"));
    let roads = wmts_limits(wmts_layer(&root, "roads").expect("roads"), "GLOBAL_WEBMERCATOR").expect("limits");
    assert_eq!(roads.len(), 6);
    assert_eq!(roads[0], ("00".to_owned(), 0, 0, 0, 0));
    assert_eq!(roads[3], ("03".to_owned(), 0, 7, 0, 7), "a maxZoom-only fence allows the whole level");
    assert_eq!(roads[5], ("05".to_owned(), 10, 11, 16, 17), "the upstream's own limits are kept");
    assert_eq!(matrix_ids(&root, "GLOBAL_WEBMERCATOR").len(), 6);
}

#[test]
fn wmts_quad_sets_are_recognized_by_identifier_only() {
    let xml = br#"<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" version="1.0.0"><Contents>
<Layer><ows:Identifier>a</ows:Identifier><TileMatrixSetLink><TileMatrixSet>WebMercatorQuad</TileMatrixSet></TileMatrixSetLink><TileMatrixSetLink><TileMatrixSet>gm</TileMatrixSet></TileMatrixSetLink><TileMatrixSetLink><TileMatrixSet>mine</TileMatrixSet></TileMatrixSetLink><TileMatrixSetLink><TileMatrixSet>utm</TileMatrixSet></TileMatrixSetLink></Layer>
<TileMatrixSet><ows:Identifier>WebMercatorQuad</ows:Identifier><TileMatrix><ows:Identifier>0</ows:Identifier><MatrixWidth>1</MatrixWidth><MatrixHeight>1</MatrixHeight></TileMatrix><TileMatrix><ows:Identifier>1</ows:Identifier><MatrixWidth>3</MatrixWidth><MatrixHeight>3</MatrixHeight></TileMatrix><TileMatrix><ows:Identifier>2</ows:Identifier></TileMatrix></TileMatrixSet>
<TileMatrixSet><ows:Identifier>gm</ows:Identifier><WellKnownScaleSet>urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible</WellKnownScaleSet><TileMatrix><ows:Identifier>0</ows:Identifier></TileMatrix></TileMatrixSet>
<TileMatrixSet><ows:Identifier>mine</ows:Identifier><TileMatrix><ows:Identifier>mine:0</ows:Identifier></TileMatrix><TileMatrix><ows:Identifier>mine:1</ows:Identifier></TileMatrix><TileMatrix><ows:Identifier>mine:2</ows:Identifier></TileMatrix><TileMatrix><ows:Identifier>overview</ows:Identifier></TileMatrix></TileMatrixSet>
<TileMatrixSet><ows:Identifier>utm</ows:Identifier><ows:SupportedCRS>urn:ogc:def:crs:EPSG::25832</ows:SupportedCRS><TileMatrix><ows:Identifier>0</ows:Identifier></TileMatrix></TileMatrixSet>
</Contents></Capabilities>"#;
    let layers = names(&["a"]);
    let extra = names(&["mine"]);
    let fence = ZoomOnly(2);
    let rw = Rewrite {
        fence: Some(&fence),
        quad_matrix_sets: &extra,
        ..Rewrite::new("http://up/wmts", PUBLIC_WMTS, &layers)
    };
    let root = reparse(&rewrite_wmts(xml, &rw).expect("rewrites"));
    let a = wmts_layer(&root, "a").expect("layer");
    let ids = |set: &str| wmts_limits(a, set).map(|l| l.into_iter().map(|x| x.0).collect::<Vec<_>>());
    assert_eq!(ids("WebMercatorQuad"), Some(names(&["0", "2"])), "a 3×3 matrix is not zoom 1");
    assert_eq!(ids("mine"), Some(names(&["mine:0", "mine:1", "mine:2"])), "listed in the Rewrite");
    let linked: Vec<String> = a.elements().filter_map(|l| l.child_text("TileMatrixSet")).collect();
    assert_eq!(linked, ["WebMercatorQuad", "mine"], "the policy maps no other set, so none is offered");
    assert_eq!(matrix_ids(&root, "mine"), ["mine:0", "mine:1", "mine:2"], "a matrix without a zoom goes");
    assert_eq!(matrix_ids(&root, "gm"), ["0"], "definitions of other sets stay as they are");
}

// ---------------------------------------------------------------- WFS

const PUBLIC_WFS: &str = "https://maps.example.org/ogc/wfs/roads";

#[test]
fn wfs_200_operations_feature_types_and_parameter_lists() {
    let layers = names(&["osm:roads", "osm:buildings"]);
    let rw = Rewrite {
        token_query: Some("tg_w"),
        ..Rewrite::new("http://127.0.0.1:9002/geoserver/wfs", PUBLIC_WFS, &layers)
    };
    let out = rewrite_wfs(fixture!("wfs_200_geoserver.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, "127.0.0.1:9002");
    let root = reparse(&out);
    let ops: Vec<&str> =
        all(&root, "Get").into_iter().chain(all(&root, "Post")).filter_map(|e| e.attr("href")).collect();
    assert_eq!(ops.len(), 6);
    assert!(ops.iter().all(|h| *h == "https://maps.example.org/ogc/wfs/roads?token=tg_w"));
    let types: Vec<String> = child_texts(&root, "FeatureType", "Name");
    assert_eq!(types, ["osm:roads", "osm:buildings"]);
    let values: Vec<String> = all(&root, "Parameter")
        .into_iter()
        .filter(|p| p.attr("name") == Some("typeNames"))
        .flat_map(|p| all(p, "Value").into_iter().map(|v| v.text()).collect::<Vec<_>>())
        .collect();
    assert_eq!(values, ["osm:roads", "osm:buildings"]);
    let s = text(&out);
    assert!(!s.contains("private:parcels"));
    assert!(s.contains("<ows:Value>text/csv</ows:Value>"), "other parameter lists stay");
    assert!(s.contains("https://metadata.example.org/csw?id=roads"));
    // GeoServer's own schema location cannot be served by the gateway: the hint goes.
    assert_eq!(root.attr("schemaLocation"), None);
    assert_eq!(
        root.namespace_declared("private"),
        Some("http://internal.example.org/private"),
        "namespaces are names, untouched"
    );
    let only_parcels = names(&["private:parcels"]);
    let rw = Rewrite::new("http://127.0.0.1:9002/geoserver/wfs", PUBLIC_WFS, &only_parcels);
    let root = reparse(&rewrite_wfs(fixture!("wfs_200_geoserver.xml"), &rw).expect("rewrites"));
    let values: Vec<String> = all(&root, "Parameter")
        .into_iter()
        .filter(|p| p.attr("name") == Some("typeNames"))
        .flat_map(|p| all(p, "Value").into_iter().map(|v| v.text()).collect::<Vec<_>>())
        .collect();
    assert_eq!(values, ["private:parcels"]);
    let rw = Rewrite::new("http://127.0.0.1:9002/geoserver/wfs", PUBLIC_WFS, &[]);
    let root = reparse(&rewrite_wfs(fixture!("wfs_200_geoserver.xml"), &rw).expect("rewrites"));
    assert!(!all(&root, "Parameter").iter().any(|p| p.attr("name") == Some("typeNames")), "no empty value list");
}

#[test]
fn wfs_fence_drops_feature_types_outside_and_shrinks_the_rest() {
    let layers = names(&["osm:roads", "osm:buildings"]);
    let fence = europe();
    let rw =
        Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:9002/geoserver/wfs", PUBLIC_WFS, &layers) };
    let root = reparse(&rewrite_wfs(fixture!("wfs_200_geoserver.xml"), &rw).expect("rewrites"));
    let types: Vec<&Element> = all(&root, "FeatureType");
    assert_eq!(types.len(), 1, "New York buildings lie outside the fence");
    let bbox = types[0].child("WGS84BoundingBox").expect("bbox");
    assert_eq!(bbox.child_text("LowerCorner").as_deref(), Some("5.8 47.2"));
    let upper = bbox.child_text("UpperCorner").expect("upper");
    let mut upper = upper.split(' ');
    assert_eq!(upper.next(), Some("15.1"));
    assert!(close(upper.next().expect("lat"), 55.1));
}

#[test]
fn wfs_100_mapserver_style_typename_lists_and_online_resource_text() {
    let xml = br#"<?xml version='1.0' encoding="UTF-8" ?>
<WFS_Capabilities version="1.0.0" xmlns="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc">
<Service><Name>MapServer WFS</Name><Title>City WFS</Title><OnlineResource>http://127.0.0.1:9002/cgi-bin/mapserv?map=/srv/city.map&amp;</OnlineResource></Service>
<Capability><Request><GetFeature><ResultFormat><GML2/></ResultFormat><DCPType><HTTP><Get onlineResource="http://127.0.0.1:9002/cgi-bin/mapserv?map=/srv/city.map&amp;" /></HTTP></DCPType></GetFeature></Request></Capability>
<FeatureTypeList><Operations><Query/></Operations>
<FeatureType><Name>roads</Name><Title>Roads</Title><SRS>EPSG:4326</SRS><LatLongBoundingBox minx="5.8" miny="47.2" maxx="15.1" maxy="55.1" /></FeatureType>
<FeatureType><Name>parcels</Name><Title>Parcels</Title><SRS>EPSG:4326</SRS><LatLongBoundingBox minx="9.9" miny="53.4" maxx="10.3" maxy="53.7" /></FeatureType>
</FeatureTypeList></WFS_Capabilities>"#;
    let layers = names(&["roads"]);
    let rw = Rewrite {
        token_query: Some("t"),
        ..Rewrite::new("http://127.0.0.1:9002/cgi-bin/mapserv?map=/srv/city.map", PUBLIC_WFS, &layers)
    };
    let out = rewrite_wfs(xml, &rw).expect("rewrites");
    assert_no_upstream(&out, "127.0.0.1:9002");
    let s = text(&out);
    assert!(s.contains("<OnlineResource>https://maps.example.org/ogc/wfs/roads?token=t&amp;</OnlineResource>"), "{s}");
    assert!(s.contains(r#"<Get onlineResource="https://maps.example.org/ogc/wfs/roads?token=t&amp;"/>"#), "{s}");
    assert!(!s.contains("parcels") && !s.contains("city.map"));
}

// ---------------------------------------------------------------- WCS

#[test]
fn wcs_201_coverages_and_mapserver_map_parameter() {
    let layers = names(&["dem"]);
    let public = "https://maps.example.org/ogc/wcs/dem";
    let rw = Rewrite::new("http://127.0.0.1:9003/cgi-bin/mapserv?map=/srv/maps/dem.map", public, &layers);
    let out = rewrite_wcs(fixture!("wcs_201_mapserver.xml"), &rw).expect("rewrites");
    assert_no_upstream(&out, "127.0.0.1:9003");
    let root = reparse(&out);
    let ids: Vec<String> = child_texts(&root, "CoverageSummary", "CoverageId");
    assert_eq!(ids, ["dem"]);
    let gets: Vec<&str> = all(&root, "Get").into_iter().filter_map(|g| g.attr("href")).collect();
    assert_eq!(gets, ["https://maps.example.org/ogc/wcs/dem?"; 3], "the upstream map file is not revealed");
    assert_eq!(all(&root, "ProviderSite")[0].attr("href"), Some(public));
    assert!(!text(&out).contains("dem.map"));
    assert!(text(&out).contains("<ows:Profile>http://www.opengis.net/spec/WCS/2.0/conf/core</ows:Profile>"));
}

#[test]
fn wcs_fence_shrinks_ows_boxes_in_authority_axis_order() {
    let layers = names(&["dem", "dem_lidar_raw"]);
    // Tile 5/17/10: lon 11.25‥22.5, lat ≈ 48.92‥55.78.
    let fence = TileFence { z: 5, x: 17, y: 10, max_zoom: None };
    let rw = Rewrite {
        fence: Some(&fence),
        ..Rewrite::new("http://127.0.0.1:9003/cgi-bin/mapserv?map=/srv/maps/dem.map", "https://gw/ogc/wcs/dem", &layers)
    };
    let root = reparse(&rewrite_wcs(fixture!("wcs_201_mapserver.xml"), &rw).expect("rewrites"));
    let summaries = all(&root, "CoverageSummary");
    assert_eq!(summaries.len(), 1, "the lidar coverage lies west of the fence");
    let lat_lon = summaries[0].child("BoundingBox").expect("EPSG:4326 box");
    let lower = lat_lon.child_text("LowerCorner").expect("lower");
    let (lat, lon) = lower.split_once(' ').expect("two numbers");
    assert!(close(lat, tile_lat(11, 5)) && close(lon, 11.25), "{lower}");
    assert_eq!(lat_lon.child_text("UpperCorner").as_deref(), Some("55.1 15.1"));
    let wgs84 = summaries[0].child("WGS84BoundingBox").expect("WGS84 box");
    assert!(wgs84.child_text("LowerCorner").expect("lower").starts_with("11.25 "));
}

#[test]
fn wcs_100_and_110_coverages_are_filtered_too() {
    let wcs100 = br#"<?xml version="1.0" encoding="UTF-8"?>
<WCS_Capabilities xmlns="http://www.opengis.net/wcs" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.0.0">
  <Capability><Request><GetCoverage><DCPType><HTTP><Get><OnlineResource xlink:type="simple" xlink:href="http://127.0.0.1:9003/wcs?"/></Get></HTTP></DCPType></GetCoverage></Request></Capability>
  <ContentMetadata>
    <CoverageOfferingBrief><name>dem</name><label>DEM</label></CoverageOfferingBrief>
    <CoverageOfferingBrief><name>dem_lidar_raw</name><label>Raw lidar</label></CoverageOfferingBrief>
  </ContentMetadata>
</WCS_Capabilities>"#;
    let layers = names(&["dem"]);
    let rw = Rewrite::new("http://127.0.0.1:9003/wcs", "https://gw/ogc/wcs/dem", &layers);
    let out = rewrite_wcs(wcs100, &rw).expect("rewrites");
    assert_no_upstream(&out, "127.0.0.1:9003");
    assert_eq!(child_texts(&reparse(&out), "CoverageOfferingBrief", "name"), ["dem"]);

    // WCS 1.1 nests summaries: an uncovered group with a covered child stays unnamed.
    let wcs110 = br#"<Capabilities xmlns="http://www.opengis.net/wcs/1.1" xmlns:ows="http://www.opengis.net/ows/1.1" version="1.1.0">
  <Contents>
    <CoverageSummary><ows:Title>Terrain</ows:Title><Identifier>terrain</Identifier>
      <CoverageSummary><ows:Title>DEM</ows:Title><Identifier>dem</Identifier></CoverageSummary>
      <CoverageSummary><ows:Title>Raw</ows:Title><Identifier>dem_lidar_raw</Identifier></CoverageSummary>
    </CoverageSummary>
  </Contents>
</Capabilities>"#;
    let root = reparse(&rewrite_wcs(wcs110, &rw).expect("rewrites"));
    assert_eq!(child_texts(&root, "CoverageSummary", "Identifier"), ["dem"]);
    assert_eq!(child_texts(&root, "CoverageSummary", "Title"), ["Terrain", "DEM"]);
}

// ---------------------------------------------------------------- OGC API

const PYGEOAPI: &str = "127.0.0.1:5000";
const PUBLIC_API: &str = "https://maps.example.org/ogc/api/obs";

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).expect("output is JSON")
}

fn hrefs(v: &serde_json::Value) -> Vec<String> {
    v["links"].as_array().expect("links").iter().map(|l| l["href"].as_str().expect("href").to_owned()).collect()
}

#[test]
fn ogcapi_landing_page_links_point_at_the_gateway_in_order() {
    let layers = names(&["obs"]);
    let rw = Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &layers);
    let out = rewrite_ogcapi_json(fixture!("ogcapi_landing_pygeoapi.json"), &rw).expect("rewrites");
    assert_no_upstream(&out, PYGEOAPI);
    let v = json(&out);
    let h = hrefs(&v);
    assert_eq!(h[0], "https://example.org", "foreign links stay");
    assert_eq!(h[1], "https://maps.example.org/ogc/api/obs?f=json");
    // HTML and JSON-LD pages (406), /processes and /jobs (not served) are gone; the API
    // definition stays (served trimmed: QGIS reads it first).
    assert_eq!(
        h[2..],
        [
            "https://maps.example.org/ogc/api/obs/openapi",
            "https://maps.example.org/ogc/api/obs/conformance",
            "https://maps.example.org/ogc/api/obs/collections",
            "https://maps.example.org/ogc/api/obs/TileMatrixSets?f=json",
        ]
    );
    assert!(
        text(&out).starts_with(
            r#"{"links":[{"rel":"about","type":"text/html","title":"information","href":"https://example.org"}"#
        ),
        "key order kept"
    );
}

#[test]
fn ogcapi_token_is_appended_to_links() {
    let layers = names(&["obs"]);
    let rw = Rewrite { token_query: Some("tg_api"), ..Rewrite::new("http://127.0.0.1:5000/", PUBLIC_API, &layers) };
    let v = json(&rewrite_ogcapi_json(fixture!("ogcapi_landing_pygeoapi.json"), &rw).expect("rewrites"));
    let h = hrefs(&v);
    assert_eq!(h[0], "https://example.org");
    assert_eq!(h[1], "https://maps.example.org/ogc/api/obs?f=json&token=tg_api");
    assert_eq!(h[2], "https://maps.example.org/ogc/api/obs/openapi?token=tg_api");
    assert_eq!(h[3], "https://maps.example.org/ogc/api/obs/conformance?token=tg_api");
}

#[test]
fn ogcapi_collections_are_filtered_with_their_links() {
    let layers = names(&["obs", "lakes"]);
    let rw = Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &layers);
    let out = rewrite_ogcapi_json(fixture!("ogcapi_collections_pygeoapi.json"), &rw).expect("rewrites");
    assert_no_upstream(&out, PYGEOAPI);
    let v = json(&out);
    let ids: Vec<&str> =
        v["collections"].as_array().expect("array").iter().map(|c| c["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["obs", "lakes"]);
    let obs = hrefs(&v["collections"][0]);
    assert_eq!(obs.len(), 6, "the three HTML links and the two JSON-LD links are gone");
    assert!(obs.contains(&"https://maps.example.org/ogc/api/obs/collections/obs/items?f=json".to_owned()));
    assert!(!text(&out).contains("cadastre"));
}

/// Attacker round 4: pygeoapi's `server.url` (or GeoServer's proxy base) naming the
/// upstream by another host than the one the gateway reaches it at put that internal
/// host in every link; a client following them went around the gateway.
#[test]
fn ogcapi_service_links_on_a_third_host_are_removed() {
    let doc = br#"{"links":[
        {"rel":"self","href":"http://pygeoapi.internal:5000/?f=json"},
        {"rel":"next","href":"HTTP://pygeoapi.internal:5000/collections/obs/items?offset=10"},
        {"rel":"http://www.opengis.net/def/rel/ogc/1.0/conformance","href":"http://10.0.0.7/conformance"},
        {"rel":"license","href":"https://creativecommons.org/licenses/by/4.0/"},
        {"rel":"describedby","href":"https://example.org/about"},
        {"rel":"alternate","href":"https://maps.example.org/ogc/api/obs/collections?f=json"},
        {"rel":"data","href":"http://127.0.0.1:5000/collections"},
        {"rel":"next","href":"/\\evil.example/x"},
        {"rel":"self","href":"http:\\\\evil.example/x"},
        {"rel":"alternate","href":"ht\ttp://evil.example/x"},
        {"rel":"related","href":"javascript:alert(1)"},
        {"rel":"self","href":"https:evil.example/x"},
        {"rel":"next alternate","href":"http://evil.example/x"},
        {"rel":["license","next"],"href":"http://evil.example/y"},
        {"rel":"child","href":"http://evil.example/stac"},
        {"href":"http://evil.example/no-rel"},
        {"rel":"license describedby","href":"https://example.org/terms"},
        {"rel":"http://www.iana.org/assignments/relation/LICENSE","href":"https://example.org/iana"},
        {"rel":"http://evil.example/rel/license","href":"http://evil.example/ext"},
        {"rel":"license","rel":"self","href":"http://evil.example/twice"},
        {"rel":5,"href":"https://example.org/number"},
        {"rel":null,"href":"http://127.0.0.1:5000/collections"},
        {"rel":["license",7],"href":"https://example.org/mixed"}
    ]}"#;
    let layers = names(&["obs"]);
    let rw = Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &layers);
    let out = rewrite_ogcapi_json(doc, &rw).expect("rewrites");
    assert_eq!(
        hrefs(&json(&out)),
        [
            "https://creativecommons.org/licenses/by/4.0/",
            "https://example.org/about",
            "https://maps.example.org/ogc/api/obs/collections?f=json",
            "https://maps.example.org/ogc/api/obs/collections",
            "https://example.org/terms",
            "https://example.org/iana",
        ],
        "service links stay only on the gateway; links away by nature stay, in any registered spelling; \
         a rel that is no string nor array of strings (or given twice) keeps no link, even on the upstream"
    );
}

#[test]
fn ogcapi_links_into_uncovered_collections_are_removed() {
    let doc = br#"{"links":[
        {"rel":"self","href":"http://127.0.0.1:5000/collections/obs?f=json"},
        {"rel":"related","href":"http://127.0.0.1:5000/collections/cadastre/items"},
        {"rel":"related","href":"http://127.0.0.1:5000/collections/ca%64astre"},
        {"rel":"related","href":"collections/cadastre/items"},
        {"rel":"data","href":"http://127.0.0.1:5000/collections"}]}"#;
    let layers = names(&["obs"]);
    let rw = Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &layers);
    let v = json(&rewrite_ogcapi_json(doc, &rw).expect("rewrites"));
    assert_eq!(
        hrefs(&v),
        [
            "https://maps.example.org/ogc/api/obs/collections/obs?f=json",
            "https://maps.example.org/ogc/api/obs/collections"
        ]
    );
}

#[test]
fn ogcapi_fence_drops_collections_outside_and_shrinks_extents() {
    let layers = names(&["obs", "lakes", "nz_coast"]);
    let fence = europe();
    let rw = Rewrite { fence: Some(&fence), ..Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &layers) };
    let v = json(&rewrite_ogcapi_json(fixture!("ogcapi_collections_pygeoapi.json"), &rw).expect("rewrites"));
    let ids: Vec<&str> =
        v["collections"].as_array().expect("array").iter().map(|c| c["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["obs", "lakes"]);
    let lakes = v["collections"][1]["extent"]["spatial"]["bbox"][0].as_array().expect("bbox");
    let lakes: Vec<f64> = lakes.iter().map(|n| n.as_f64().expect("number")).collect();
    assert_eq!(lakes[0], 0.0);
    assert_eq!(lakes[2], 22.5);
    assert!((lakes[1] - tile_lat(6, 4)).abs() < 1e-9 && (lakes[3] - tile_lat(5, 4)).abs() < 1e-9);
    let obs = &v["collections"][0]["extent"]["spatial"]["bbox"][0];
    assert_eq!(obs[0].as_f64(), Some(5.8), "boxes inside the fence keep their numbers");
}

#[test]
fn ogcapi_tile_templates_keep_their_placeholders() {
    let layers = names(&["lakes"]);
    let rw = Rewrite {
        token_query: Some("t1"),
        ..Rewrite::new("http://127.0.0.1:5000", "https://maps.example.org/ogc/api/lakes", &layers)
    };
    let out = rewrite_ogcapi_json(fixture!("ogcapi_tilesets_pygeoapi.json"), &rw).expect("rewrites");
    assert_no_upstream(&out, PYGEOAPI);
    let v = json(&out);
    let h = hrefs(&v);
    assert_eq!(
        h[1],
        "https://maps.example.org/ogc/api/lakes/collections/lakes/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}?f=mvt&token=t1"
    );
    // A tile template on another server (pygeoapi's MVT-proxy provider: the tile server
    // behind it) names an internal host and leads around the gateway: removed (attacker
    // round 6; it was relayed untouched).
    assert!(h.iter().all(|href| !href.contains("127.0.0.1:5001")), "{h:?}");
    assert_eq!(
        v["tilesets"][0]["tileMatrixSetURI"],
        "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    );
}

#[test]
fn ogcapi_items_links_and_property_urls_are_rewritten() {
    let layers = names(&["obs"]);
    let rw = Rewrite { token_query: Some("tq"), ..Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &layers) };
    let out = rewrite_ogcapi_json(fixture!("ogcapi_items_pygeoapi.json"), &rw).expect("rewrites");
    assert_no_upstream(&out, PYGEOAPI);
    let v = json(&out);
    let h = hrefs(&v);
    // (The JSON-LD alternate is gone: 406.)
    assert_eq!(h[1], "https://maps.example.org/ogc/api/obs/collections/obs/items?offset=1&limit=1&token=tq");
    assert_eq!(h[2], "https://maps.example.org/ogc/api/obs/collections/obs?token=tq");
    assert_eq!(
        v["features"][0]["properties"]["photo"],
        "https://maps.example.org/ogc/api/obs/static/img/371.jpg?token=tq"
    );
    assert_eq!(v["features"][0]["properties"]["value"], 89.9);
}

#[test]
fn ogcapi_templated_links_outside_the_base_are_removed() {
    let doc = br#"{"links":[{"rel":"item","templated":true,"href":"http://127.0.0.1:5000/cache/{z}/{x}/{y}.pbf"},{"rel":"self","href":"http://127.0.0.1:5000/api/collections"}]}"#;
    let rw = Rewrite::new("http://127.0.0.1:5000/api", PUBLIC_API, &[]);
    let v = json(&rewrite_ogcapi_json(doc, &rw).expect("rewrites"));
    assert_eq!(hrefs(&v), ["https://maps.example.org/ogc/api/obs/collections"]);
}

#[test]
fn ogcapi_invalid_json_is_refused() {
    let rw = Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &[]);
    assert!(matches!(rewrite_ogcapi_json(b"{\"links\": [", &rw), Err(CapabilitiesError::Json(_))));
    assert!(matches!(rewrite_ogcapi_json(b"<html/>", &rw), Err(CapabilitiesError::Json(_))));
    assert!(matches!(rewrite_ogcapi_json(b"[1,2]", &rw), Err(CapabilitiesError::JsonRoot)));
    assert!(matches!(rewrite_ogcapi_json(b"{} {}", &rw), Err(CapabilitiesError::Json(_))));
}

// ---------------------------------------------------------------- shared

#[test]
fn rewrite_debug_never_prints_the_token() {
    let rw = Rewrite { token_query: Some("tg_do_not_print"), ..Rewrite::new("http://up/", PUBLIC_WMS, &[]) };
    assert!(!format!("{rw:?}").contains("tg_do_not_print"));
}

#[test]
fn errors_never_carry_the_token() {
    let rw = Rewrite {
        token_query: Some("tg_do_not_print"),
        ..Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[])
    };
    for bad in [&b"<a"[..], b"<WMS_Capabilities>&x;</WMS_Capabilities>", b"<x/>"] {
        let err = rewrite_wms(bad, &rw).expect_err("refused");
        assert!(!format!("{err} {err:?}").contains("tg_do_not_print"));
    }
}

#[test]
fn an_upstream_url_that_cannot_be_rewritten_fails_the_document() {
    // Percent-encoded inside a query: rewriting it blindly would corrupt the URL, and
    // passing it on would reveal the upstream, so the document is refused.
    let xml = br#"<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink"><Service><OnlineResource xlink:href="http://127.0.0.1:9001/service?sld=http%3A%2F%2F127.0.0.1%3A9001%2Fs.sld"/></Service></WMS_Capabilities>"#;
    let rw = Rewrite::new("http://127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    assert!(matches!(rewrite_wms(xml, &rw), Err(CapabilitiesError::Leak)));
    let json = br#"{"links":[{"href":"http://127.0.0.1:5000/x"}],"http://127.0.0.1:5000/":"key"}"#;
    let rw = Rewrite::new("http://127.0.0.1:5000", PUBLIC_API, &[]);
    assert!(matches!(rewrite_ogcapi_json(json, &rw), Err(CapabilitiesError::Leak)));
}

#[test]
fn misconfigured_urls_are_reported_before_parsing() {
    let rw = Rewrite::new("127.0.0.1:9001/service", PUBLIC_WMS, &[]);
    assert!(matches!(
        rewrite_wms(fixture!("wms_130_mapproxy.xml"), &rw),
        Err(CapabilitiesError::BadUrl { which: "upstream", .. })
    ));
}
