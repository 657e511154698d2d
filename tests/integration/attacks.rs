//! The standing attack corpus, organised by class: each case is one instance of a way
//! around the gateway that a mainstream upstream would read differently from the
//! gateway. Every case asserts what the client got **and** that the recording upstream
//! received nothing (or exactly the judged request), not only the status code.
//!
//! Add a case here for every new bypass class, named after what it would have broken.

use bytes::Bytes;
use http::Method;

use crate::support::TestGateway;
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[[path]]
id = "maps"
kind = "folder"
[[path]]
id = "roads"
parent = "maps"
kind = "vector"
layers = ["osm"]
properties = ["name", "owner"]
[path.upstream]
base = "http://{up}/roads/"
wms = "http://{up}/wms"
wmts = "http://{up}/wmts"
wfs = "http://{up}/wfs"
ogcapi = "http://{up}/api"
[[path]]
id = "other"
kind = "raster"
[path.upstream]
base = "http://{up}/other/"
"#;

const MAP: &str = "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:3857&BBOX=0,0,39135.76,39135.76&WIDTH=256&HEIGHT=256&FORMAT=image/png";

struct Case {
    class: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: &'static str,
    status: u16,
    reason: &'static str,
}

fn get(class: &'static str, path: impl Into<String>, status: u16, reason: &'static str) -> Case {
    Case { class, method: Method::GET, path: path.into(), content_type: None, body: "", status, reason }
}

/// Sends each case and checks the answer and that the upstream saw nothing.
async fn refused_before_the_upstream(gw: &TestGateway, token: &str, cases: Vec<Case>) {
    let auth = format!("Bearer {token}");
    for case in cases {
        let before = gw.upstream.seen().len();
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = case.content_type {
            headers.push(("content-type", ct));
        }
        let r = gw.send(case.method.clone(), &case.path, &headers, Bytes::from_static(case.body.as_bytes())).await;
        assert_eq!(r.status.as_u16(), case.status, "{}: {} → {}", case.class, case.path, r.text());
        assert_eq!(r.reason(), case.reason, "{}: {}", case.class, case.path);
        assert_eq!(gw.upstream.seen().len(), before, "{}: the upstream must see nothing of {}", case.class, case.path);
    }
}

#[tokio::test]
async fn path_segments_an_upstream_would_read_as_another_path() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::Admin)]).await;
    refused_before_the_upstream(
        &gw,
        &token,
        vec![
            // Tomcat and Jetty strip `;…` path parameters: `/..;/` is `/../` to them.
            get("servlet path parameter", "/path/roads/..;/..;/other/", 400, "bad_request"),
            get("servlet path parameter", "/path/roads/.;/x", 400, "bad_request"),
            get("servlet path parameter", "/path/roads;jsessionid=1/x", 400, "bad_request"),
            get("encoded path parameter", "/path/roads/a%3Bb", 400, "bad_request"),
            get(
                "WMTS REST segment",
                "/ogc/wmts/roads/osm;x/default/GoogleMapsCompatible/0/0/0.png",
                400,
                "bad_request",
            ),
            get("OGC API item id", "/ogc/api/roads/collections/osm/items/1;x", 400, "bad_request"),
            // A double-decoding upstream reads `%252e` as `.`.
            get("double encoding", "/path/roads/%252e%252e/other/", 400, "bad_request"),
            // Encoded separators and dot segments (the earlier classes, kept here).
            get("encoded dot segment", "/path/roads/%2e%2e/other/", 400, "bad_request"),
            get("encoded slash", "/path/roads%2F..%2Fother/", 400, "bad_request"),
            get("dot segment", "/path/roads/../other/", 400, "bad_request"),
            get("backslash", "/path/roads/..\\other/", 400, "bad_request"),
        ],
    )
    .await;
}

#[tokio::test]
async fn formats_that_are_not_rendered_output() {
    let gw = TestGateway::with_config(CONFIG).await;
    let viewer = gw.token(&[("roads", Tier::View)]).await;
    let map = |format: &str| format!("/ogc/wms/roads?{}", MAP.replace("FORMAT=image/png", &format!("FORMAT={format}")));
    refused_before_the_upstream(
        &gw,
        &viewer,
        vec![
            // `FORMAT` was a prefix match on `image/`.
            get("format prefix", map("image/../application/json"), 400, "bad_request"),
            get("vector image", map("image/svg%2Bxml"), 400, "bad_request"),
            get("vector document", map("application/pdf"), 400, "bad_request"),
            get("data format", map("application/json"), 400, "bad_request"),
        ],
    )
    .await;
    let r = gw.get(&map("image/png;%20mode=8bit"), &viewer).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
}

#[tokio::test]
async fn parameters_that_change_what_the_upstream_renders() {
    let gw = TestGateway::with_config(CONFIG).await;
    let fence = Fence::new(None, Some(10)).expect("fence");
    let (zoom10, _) = gw.token_with(&[("roads", Tier::ViewPlus)], fence, Scope::All, None).await;
    let at_10 = format!("/ogc/wms/roads?{MAP}");
    assert_eq!(gw.get(&at_10, &zoom10).await.status.as_u16(), 200, "zoom 10 is allowed");
    refused_before_the_upstream(
        &gw,
        &zoom10,
        vec![
            // A low DPI renders zoom-11 detail from a zoom-10 box.
            get("dpi", format!("{at_10}&DPI=45"), 403, "zoom_above_max"),
            get("map resolution", format!("{at_10}&MAP_RESOLUTION=45"), 403, "zoom_above_max"),
            get("format options dpi", format!("{at_10}&FORMAT_OPTIONS=dpi:45"), 403, "zoom_above_max"),
            // WMTS matrix ids name a zoom only as digits or `<set>:<digits>`.
            get(
                "matrix id prefix",
                "/ogc/wmts/roads?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=EPSG:3857&TILEMATRIX=foo:3&TILEROW=0&TILECOL=0&FORMAT=image/png",
                400,
                "bad_request",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn json_bodies_with_a_repeated_member() {
    let gw = TestGateway::with_config(CONFIG).await;
    let editor = gw.token(&[("roads", Tier::Edit)]).await;
    let feature = r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"owner":"x"},"properties":{"name":"a"}}"#;
    refused_before_the_upstream(
        &gw,
        &editor,
        vec![Case {
            class: "duplicate JSON member",
            method: Method::POST,
            path: "/ogc/api/roads/collections/osm/items".into(),
            content_type: Some("application/geo+json"),
            body: feature,
            status: 400,
            reason: "bad_request",
        }],
    )
    .await;
    let r = gw
        .send(
            Method::POST,
            "/account/security/accessToken",
            &[("authorization", &format!("Bearer {editor}")), ("content-type", "application/json")],
            Bytes::from_static(br#"{"description":"a","description":"b","accessList":[]}"#),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text());
}

#[tokio::test]
async fn a_token_in_the_wrong_place_is_never_echoed() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::ViewPlus)]).await;
    for path in [
        format!("/ogc/wms/roads?{}", MAP.replace("LAYERS=osm", &format!("LAYERS={token}"))),
        format!("/ogc/wms/roads?{}", MAP.replace("BBOX=0,0,39135.76,39135.76", &format!("BBOX={token}"))),
        format!("/ogc/wms/roads?{MAP}&{token}=1"),
        format!("/ogc/api/roads/collections/{token}/items"),
    ] {
        let r = gw.get(&path, &token).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
        assert!(!r.text().contains(&token), "{path}: the body echoes the token: {}", r.text());
    }
}
