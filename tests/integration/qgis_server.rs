//! QGIS Server 3.22 behind the gateway (attacker round 10), against the real server
//! (`qgis_mapserver`, Debian `qgis-server`; project from `tests/e2e/qgis_project.py`).
//!
//! QGIS Server writes answers differently from MapServer and GeoServer: WFS GeoJSON in
//! degrees whatever `SRSNAME` asks, OGC API `crs=…/EPSG/…/4326` longitude first, GML
//! axis orders its `srsName` labels do not say, and WMS 1.1.1 maps with non-square
//! pixels widened to square ones. A path declared `server = "qgis"` is read as QGIS
//! writes; a path that declares no server refuses fenced tokens what the servers write
//! differently. Each premise is checked against QGIS Server directly first.

use http::{Method, StatusCode};
use tilegate::policy::Tier;
use tilegate::spatial::Fence;

use crate::support::upstreams::{http_get, http_post, MapServer, QgisServer};
use crate::support::TestGateway;

async fn gateway() -> (TestGateway, &'static QgisServer) {
    let q = tokio::task::spawn_blocking(QgisServer::shared).await.expect("QGIS Server starts");
    let path = |id: &str, server: &str| {
        format!(
            r#"
[[path]]
id = "{id}"
kind = "vector"
layers = ["places"]
properties = ["id", "name", "population", "country", "secret_note"]
geometry_properties = ["geometry"]
{server}
[path.upstream]
wms = "{base}/"
wfs = "{base}/"
ogcapi = "{base}/wfs3"
"#,
            base = q.base
        )
    };
    let ms = tokio::task::spawn_blocking(MapServer::shared).await.expect("MapServer starts");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://maps.example.org\"\n[store]\npath = \"tilegate.db\"\n{}{}\n[[path]]\nid = \"ms\"\nkind = \"vector\"\nlayers = [\"places\"]\nserver = \"mapserver\"\n[path.upstream]\nwms = \"{}\"\n",
        path("qgis", "server = \"qgis\""),
        path("qgis_any", ""),
        ms.endpoint()
    );
    (TestGateway::with_config(&config).await, q)
}

/// Tile 2/2/1: longitude 0..90, latitude 0..66.51 (Mumbai inside; Tromsø, Tokyo outside).
fn fence() -> Fence {
    Fence::new(Some(&[(2, 2, 1)]), None).expect("fence")
}

const WFS: &str = "SERVICE=WFS&REQUEST=GetFeature&TYPENAME=places";

#[tokio::test]
async fn fenced_features_are_read_as_qgis_server_writes_them_or_refused() {
    let (gw, q) = gateway().await;
    // The premises: degrees for EPSG:3857 GeoJSON, longitude first for the EPSG URI.
    let direct = http_get(&format!(
        "{}/?{WFS}&VERSION=1.1.0&OUTPUTFORMAT=application/json&SRSNAME=EPSG:3857&FEATUREID=places.0",
        q.base
    ))
    .expect("QGIS answers");
    assert!(direct.text().contains("[18.9553,69.6496]"), "Tromsø in degrees: {}", direct.text());
    let uri = "crs=http://www.opengis.net/def/crs/EPSG/9.6.2/4326";
    let direct = http_get(&format!("{}/wfs3/collections/places/items/0?f=json&{uri}", q.base)).expect("QGIS answers");
    assert!(direct.text().contains("[18.9553,69.6496]"), "Tromsø longitude first: {}", direct.text());

    let token = gw.token_fenced("qgis", Tier::ViewPlus, fence(), None).await;
    let any = gw.token_fenced("qgis_any", Tier::ViewPlus, fence(), None).await;
    // F1: GeoJSON asked in EPSG:3857 comes in degrees; read as metres every place with
    // positive coordinates lay near 0°,0°, inside the fence.
    let ids = "FEATUREID=places.0,places.16,places.18";
    let r = gw
        .get(
            &format!("/ogc/wfs/qgis?{WFS}&VERSION=1.1.0&OUTPUTFORMAT=application/json&SRSNAME=EPSG:3857&{ids}"),
            &token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Mumbai") && !r.text().contains("Tromso") && !r.text().contains("Tokyo"), "{}", r.text());
    let r = gw
        .get(
            &format!("/ogc/wfs/qgis_any?{WFS}&VERSION=1.1.0&OUTPUTFORMAT=application/json&SRSNAME=EPSG:3857&{ids}"),
            &any,
        )
        .await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "unsupported_crs".to_owned()), "{}", r.text());
    // The same in an XML body.
    let post = r#"<wfs:GetFeature service="WFS" version="1.1.0" outputFormat="application/json" xmlns:wfs="http://www.opengis.net/wfs"><wfs:Query typeName="places" srsName="EPSG:3857"/></wfs:GetFeature>"#;
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "text/xml")];
    let r = gw.send(Method::POST, "/ogc/wfs/qgis", &headers, bytes::Bytes::from_static(post.as_bytes())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names: Vec<String> = r.json()["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["properties"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        names.contains(&"Mumbai".to_owned())
            && !names.iter().any(|n| ["Tromso", "Tokyo", "Seoul"].contains(&n.as_str())),
        "{names:?}"
    );
    let direct = http_post(&format!("{}/", q.base), "text/xml", post.as_bytes()).expect("QGIS answers");
    assert!(direct.text().contains("Tokyo"), "the upstream answered the whole quadrant: {}", direct.text());

    // F2: OGC API `crs=…/EPSG/9.6.2/4326` is longitude first on QGIS Server.
    let r = gw.get(&format!("/ogc/api/qgis/collections/places/items/0?f=json&{uri}"), &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "Tromsø is outside: {}", r.text());
    let r = gw.get(&format!("/ogc/api/qgis/collections/places/items/18?f=json&{uri}"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "Mumbai is inside: {}", r.text());
    assert!(r.text().contains("Mumbai"), "{}", r.text());
    let r = gw.get(&format!("/ogc/api/qgis_any/collections/places/items/0?f=json&{uri}"), &any).await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "unsupported_crs".to_owned()), "{}", r.text());

    // F3: GML labelled EPSG:4326 says no axis order here: it fails closed; EPSG:3857 is read.
    let r = gw
        .get(
            &format!(
                "/ogc/wfs/qgis?{WFS}&VERSION=2.0.0&SRSNAME=urn:ogc:def:crs:EPSG::4326&FEATUREID=places.0,places.18"
            ),
            &token,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(!r.text().contains("Tromso"), "{}", r.text());
    let r = gw
        .get(&format!("/ogc/wfs/qgis?{WFS}&VERSION=1.1.0&SRSNAME=EPSG:3857&FEATUREID=places.0,places.18"), &token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Mumbai") && !r.text().contains("Tromso"), "{}", r.text());
}

/// The places inside [`fence`], by name.
const INSIDE: [&str; 10] =
    ["Amsterdam", "Brussels", "Frankfurt", "Luxembourg", "Lyon", "Mumbai", "Paris", "Rome", "Strasbourg", "Zurich"];

fn names(body: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = body["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["properties"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

/// A fenced token's feature query is asked of QGIS Server within the fence, in the
/// CRS and axis order QGIS reads a `BBOX` in (round 10: the latitude-first URN box
/// QGIS read longitude first, so Mumbai went missing, and with `SRSNAME=EPSG:3857`
/// every answer was empty). Checked on the paging: the first three features upstream
/// are Tromsø, Paris, Brussels, so only a narrowed query fills a page of three.
#[tokio::test]
async fn fenced_feature_queries_are_narrowed_as_qgis_server_reads_a_bbox() {
    let (gw, q) = gateway().await;
    let json = "OUTPUTFORMAT=application/json";
    // The premises: without SRSNAME the URN's latitude-first numbers are read longitude
    // first; with it, latitude first; `epsg:4326` (lower case) is latitude first too.
    let direct = |query: &str| {
        let r = http_get(&format!("{}/?{WFS}&{json}&{query}", q.base)).expect("QGIS answers");
        names(&serde_json::from_slice(&r.body).expect("GeoJSON"))
    };
    let urn = "urn:ogc:def:crs:EPSG::4326";
    assert_eq!(direct(&format!("VERSION=2.0.0&BBOX=60,0,90,180,{urn}")), ["Mumbai"]);
    assert_eq!(direct(&format!("VERSION=2.0.0&SRSNAME={urn}&BBOX=60,0,90,180,{urn}")), ["Tromso"]);
    assert_eq!(direct("VERSION=2.0.0&SRSNAME=epsg:4326&BBOX=60,0,90,180"), ["Tromso"]);
    assert_eq!(direct("VERSION=1.1.0&MAXFEATURES=3"), ["Brussels", "Paris", "Tromso"]);

    let token = gw.token_fenced("qgis", Tier::ViewPlus, fence(), None).await;
    for srs in ["EPSG:4326", "epsg:4326", urn, "EPSG:3857", "http://www.opengis.net/def/crs/EPSG/0/4326", "CRS:84"] {
        let r = gw.get(&format!("/ogc/wfs/qgis?{WFS}&{json}&VERSION=2.0.0&SRSNAME={srs}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{srs}: {}", r.text());
        assert_eq!(names(&r.json()), INSIDE, "{srs}");
        let r = gw.get(&format!("/ogc/wfs/qgis?{WFS}&{json}&VERSION=1.1.0&SRSNAME={srs}&MAXFEATURES=3"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{srs}: {}", r.text());
        assert_eq!(names(&r.json()).len(), 3, "{srs}: a full page: {}", r.text());
    }
    // A BBOX of the request's own (wholly inside the fence, as WFS boxes must be), read
    // as QGIS reads it.
    for (query, want) in [
        (format!("SRSNAME={urn}&BBOX=0,60,30,90,{urn}"), vec!["Mumbai"]),
        ("SRSNAME=EPSG:4326&BBOX=60,0,90,30".to_owned(), vec!["Mumbai"]),
        ("SRSNAME=EPSG:4326&BBOX=60,0,90,30,EPSG:4326".to_owned(), vec!["Mumbai"]),
        (format!("SRSNAME={urn}&BBOX=40,0,60,20"), INSIDE.iter().copied().filter(|n| *n != "Mumbai").collect()),
    ] {
        let r = gw.get(&format!("/ogc/wfs/qgis?{WFS}&{json}&VERSION=2.0.0&{query}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        assert_eq!(names(&r.json()), want, "{query}");
    }
    // Without SRSNAME QGIS reads the box in the layer's CRS (here EPSG:4326) x first: not
    // narrowed, and the answer still filtered.
    let r = gw.get(&format!("/ogc/wfs/qgis?{WFS}&{json}&VERSION=2.0.0&BBOX=60,0,90,30,{urn}"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(names(&r.json()), ["Mumbai"]);
    let r = gw.get(&format!("/ogc/wfs/qgis?{WFS}&{json}&VERSION=2.0.0"), &token).await;
    assert_eq!(names(&r.json()), INSIDE);
    // A fifth element unlike SRSNAME QGIS reprojects and then swaps by another rule.
    let r =
        gw.get(&format!("/ogc/wfs/qgis?{WFS}&{json}&VERSION=2.0.0&SRSNAME=EPSG:3857&BBOX=0,0,1,1,{urn}"), &token).await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "unsupported_crs".to_owned()), "{}", r.text());
}

/// Round 10, F4: QGIS Server draws a WMS 1.1.1 map with non-square pixels over the box
/// widened to square ones, so a box inside the fence showed Tromsø from beyond it;
/// MapServer stretches the map over the box, so on a path declared `mapserver` the same
/// map is judged on its box.
#[tokio::test]
async fn non_square_wms_111_maps_are_judged_on_what_the_server_draws() {
    let (gw, q) = gateway().await;
    let query = |bbox: &str, w: u32, h: u32| {
        format!("SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=places&STYLES=&FORMAT=image/png&TRANSPARENT=true&SRS=EPSG:3857&BBOX={bbox}&WIDTH={w}&HEIGHT={h}")
    };
    let opaque =
        |png: &[u8]| image::load_from_memory(png).expect("a PNG").to_rgba8().pixels().filter(|p| p.0[3] > 0).count();
    // The premises: no place lies in the box; QGIS draws Tromsø (beyond it) anyway,
    // MapServer draws nothing.
    let thin = query("0,9000000,10018754,10000000", 256, 128);
    let direct = http_get(&format!("{}/?{thin}", q.base)).expect("QGIS answers");
    assert!(opaque(&direct.body) > 0, "QGIS Server widens the box");
    let ms = MapServer::shared();
    let direct = http_get(&format!("{}?{thin}", ms.endpoint())).expect("MapServer answers");
    assert_eq!(opaque(&direct.body), 0, "MapServer stretches the map over the box");

    // Round 10b: one pixel high, the box half a square pixel; QGIS drew London.
    let one_row = query("0,6672406.24,10018754,6750677.76", 256, 1);
    for path in ["qgis", "qgis_any"] {
        let view = gw.token_fenced(path, Tier::View, fence(), None).await;
        let r = gw.get(&format!("/ogc/wms/{path}?{one_row}"), &view).await;
        let direct = http_get(&format!("{}/?{one_row}", q.base)).expect("QGIS answers");
        assert!(opaque(&direct.body) > 0, "the premise: QGIS draws the widened strip");
        assert!(r.status != StatusCode::OK || r.body != direct.body, "{path}: relayed unclipped");
        let r = gw.get(&format!("/ogc/wms/{path}?{thin}"), &view).await;
        assert_eq!(
            (r.status, r.reason()),
            (StatusCode::FORBIDDEN, "outside_geofence".to_owned()),
            "{path}: {}",
            r.text()
        );
        let r = gw.get(&format!("/ogc/wms/{path}?{}", query("0,0,10018754,10018754", 256, 256)), &view).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: the fence tile itself: {}", r.text());
        assert_eq!(r.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
    }
    // Round 11: a full-width map 512×100 is drawn over 720°, the world a strip in its
    // middle, Tokyo in pixels a mask for the stretched map keeps: refused, not clipped.
    let wide = query("-20037508,-20037508,20037508,20037508", 512, 100);
    let direct = http_get(&format!("{}/?{wide}", q.base)).expect("QGIS answers");
    assert!(opaque(&direct.body) > 0, "the premise: QGIS draws the places");
    for path in ["qgis", "qgis_any"] {
        let view = gw.token_fenced(path, Tier::View, fence(), None).await;
        let r = gw.get(&format!("/ogc/wms/{path}?{wide}"), &view).await;
        assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "outside_geofence".to_owned()), "{path}");
    }
    let view = gw.token_fenced("ms", Tier::View, fence(), None).await;
    let r = gw.get(&format!("/ogc/wms/ms?{wide}"), &view).await;
    assert_eq!(r.status, StatusCode::OK, "MapServer stretches: clipped: {}", r.text());
    let r = gw.get(&format!("/ogc/wms/ms?{thin}"), &view).await;
    assert_eq!(r.status, StatusCode::OK, "judged on its box: {}", r.text());
    assert_eq!(opaque(&r.body), 0);
}

/// Round 11: a property-fenced `edit` token wrote a hidden property on QGIS Server, by
/// WFS-T (a `Name` wrapped in another element: QGIS takes the first at any depth) and
/// by OGC API PATCH in QGIS's own `{"modify":{…}}` format. Both are judged now, and a
/// delete, which erases the hidden properties too, is refused.
#[tokio::test]
async fn a_property_fenced_editor_writes_only_what_it_sees_on_qgis_server() {
    let (gw, q) = gateway().await;
    let item = |name: &str| -> serde_json::Value {
        let r = http_get(&format!("{}/wfs3/collections/places/items/16?f=json", q.base)).expect("QGIS answers");
        let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("GeoJSON");
        assert_eq!(doc["properties"]["name"], "Tokyo");
        doc["properties"][name].clone()
    };
    let (note, population) = (item("secret_note"), item("population"));
    let token = gw.token_fenced("qgis", Tier::Edit, Fence::default(), Some(&["id", "name", "population"])).await;
    let auth = format!("Bearer {token}");
    let wfs = |action: &str| {
        format!(
            r#"<wfs:Transaction service="WFS" version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc" xmlns:x="urn:x">{action}</wfs:Transaction>"#
        )
    };
    let filter = r#"<ogc:Filter><ogc:FeatureId fid="places.16"/></ogc:Filter>"#;
    let xml = [("authorization", auth.as_str()), ("content-type", "text/xml")];
    let wrapped = wfs(&format!(
        r#"<wfs:Update typeName="places"><wfs:Property><x:Bar><wfs:Name>secret_note</wfs:Name></x:Bar><wfs:Name>name</wfs:Name><wfs:Value>PWNED</wfs:Value></wfs:Property>{filter}</wfs:Update>"#
    ));
    let r = gw.send(Method::POST, "/ogc/wfs/qgis", &xml, bytes::Bytes::from(wrapped)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let hidden = wfs(&format!(
        r#"<wfs:Update typeName="places"><wfs:Property><wfs:Name>population</wfs:Name><wfs:Value><x:Name>secret_note</x:Name>1</wfs:Value></wfs:Property>{filter}</wfs:Update>"#
    ));
    let r = gw.send(Method::POST, "/ogc/wfs/qgis", &xml, bytes::Bytes::from(hidden)).await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "property_fenced".to_owned()), "{}", r.text());
    let delete = wfs(&format!(r#"<wfs:Delete typeName="places">{filter}</wfs:Delete>"#));
    let r = gw.send(Method::POST, "/ogc/wfs/qgis", &xml, bytes::Bytes::from(delete)).await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "property_fenced".to_owned()), "{}", r.text());

    let json = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let item_path = "/ogc/api/qgis/collections/places/items/16";
    let patch = |body: String| gw.send(Method::PATCH, item_path, &json, bytes::Bytes::from(body));
    let r = patch(r#"{"modify":{"secret_note":"PWNED"}}"#.to_owned()).await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "property_fenced".to_owned()), "{}", r.text());
    let r = patch(r#"{"modify":{"population":1},"changes":{"secret_note":"PWNED"}}"#.to_owned()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = gw.send(Method::DELETE, item_path, &json, bytes::Bytes::new()).await;
    assert_eq!((r.status, r.reason()), (StatusCode::FORBIDDEN, "property_fenced".to_owned()), "{}", r.text());
    // A visible property is written in QGIS's format (its own value again: the data is shared).
    let r = patch(format!(r#"{{"modify":{{"population":{population}}}}}"#)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!((item("secret_note"), item("population")), (note, population), "nothing hidden changed");
}

/// Round 10, F5: QGIS Server answers every repeat of a type name in full.
#[tokio::test]
async fn a_type_name_named_twice_is_refused() {
    let (gw, _q) = gateway().await;
    let token = gw.token(&[("qgis", Tier::ViewPlus)]).await;
    // Round 10b: the same for WMS layers (8,000 repeats took QGIS Server 13 s).
    let map = "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&STYLES=&FORMAT=image/png&CRS=EPSG:3857&BBOX=0,0,1000,1000&WIDTH=64&HEIGHT=64";
    let r = gw.get(&format!("/ogc/wms/qgis?{map}&LAYERS=places,Places"), &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("named twice"), "{}", r.text());
    for names in ["places,places", "places,PLACES"] {
        let r = gw
            .get(&format!("/ogc/wfs/qgis?SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature&TYPENAME={names}"), &token)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{names}: {}", r.text());
        assert!(r.text().contains("named twice"), "{}", r.text());
    }
}
