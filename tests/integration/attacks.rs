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
allow_params = ["CQL_FILTER", "FILTER"]
[path.upstream]
base = "http://{up}/roads/"
wms = "http://{up}/wms"
wmts = "http://{up}/wmts"
wfs = "http://{up}/wfs"
ogcapi = "http://{up}/api"
[[path]]
id = "partial"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/partial"
[[path]]
id = "empty"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/empty"
[[path]]
id = "err404"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/err404"
[[path]]
id = "jsonld"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/jsonld"
[[path]]
id = "other"
kind = "raster"
[path.upstream]
base = "http://{up}/other/"
[[path]]
id = "exc200"
kind = "raster"
layers = ["osm"]
[path.upstream]
wms = "http://{up}/exception200"
wmts = "http://{up}/exception200"
xyz = "http://{up}/t/{z}/{x}/{y}/exception200"
[[path]]
id = "lying"
kind = "vector"
layers = ["osm"]
[path.upstream]
wfs = "http://{up}/exception200-wfs"
[[path]]
id = "lyingraster"
kind = "raster"
layers = ["osm"]
[path.upstream]
xyz = "http://{up}/t/{z}/{x}/{y}/mislabelled.png"
wcs = "http://{up}/coded-xml"
[[path]]
id = "disguised"
kind = "raster"
layers = ["osm"]
[path.upstream]
xyz = "http://{up}/t/{z}/{x}/{y}/coded-image.png"
wcs = "http://{up}/plain-exception"
[[path]]
id = "untyped"
kind = "raster"
layers = ["osm"]
[path.upstream]
xyz = "http://{up}/t/{z}/{x}/{y}/untyped-exception"
[[path]]
id = "wfsjson"
kind = "vector"
layers = ["places"]
[path.upstream]
wfs = "http://{up}/collections/places/items"
[[path]]
id = "foreign"
kind = "vector"
layers = ["places"]
properties = ["name", "secret_note"]
[path.upstream]
wfs = "http://{up}/foreign-members"
[[path]]
id = "pagerels"
kind = "vector"
layers = ["places"]
[path.upstream]
wfs = "http://{up}/page-rels"
[[path]]
id = "exceptional"
kind = "raster"
layers = ["osm"]
[path.upstream]
wms = "http://{up}/exception400"
wmts = "http://{up}/exception400"
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
            // Lenient decoders read overlong UTF-8 as `.`; NFKC folds look-alike dots.
            get("overlong UTF-8 dots", "/path/roads/%C0%AE%C0%AE/other/", 400, "bad_request"),
            get("fullwidth dots", "/path/roads/%EF%BC%8E%EF%BC%8E/other/", 400, "bad_request"),
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

/// GeoTools evaluates filter functions: `property('owner')` reads a property by a name
/// the gateway never saw as a property, `env`, `querySingle` and the CVE-2023-25157 /
/// CVE-2024-36401 families reach further. Only the standard predicates pass.
#[tokio::test]
async fn filter_functions_that_read_hidden_properties() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("roads", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let wfs = "/ogc/wfs/roads?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=osm&OUTPUTFORMAT=application/json";
    let fes = r#"<fes:Filter xmlns:fes="http://www.opengis.net/fes/2.0"><fes:PropertyIsLike wildCard="*" singleChar="." escapeChar="!"><fes:Function name="property"><fes:Literal>owner</fes:Literal></fes:Function><fes:Literal>a*</fes:Literal></fes:PropertyIsLike></fes:Filter>"#;
    let post = r#"<wfs:GetFeature service="WFS" version="2.0.0" outputFormat="application/json" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"><wfs:Query typeNames="osm"><fes:Filter><fes:PropertyIsEqualTo><fes:Function name="property"><fes:Literal>owner</fes:Literal></fes:Function><fes:Literal>x</fes:Literal></fes:PropertyIsEqualTo></fes:Filter></wfs:Query></wfs:GetFeature>"#;
    refused_before_the_upstream(
        &gw,
        &token,
        vec![
            get(
                "CQL property()",
                format!("{wfs}&CQL_FILTER={}", enc("property('owner') LIKE 'a%'")),
                400,
                "bad_request",
            ),
            get("CQL env()", format!("{wfs}&CQL_FILTER={}", enc("env('x') = 'y'")), 400, "bad_request"),
            get(
                "CQL injection (CVE-2023-25157)",
                format!("{wfs}&CQL_FILTER={}", enc("strEndsWith(name,'x'') = true OR 1=1 --') = true")),
                400,
                "bad_request",
            ),
            get("FES Function in FILTER", format!("{wfs}&FILTER={}", enc(fes)), 400, "unsupported_request"),
            get(
                "OGC API filter property()",
                format!("/ogc/api/roads/collections/osm/items?f=json&filter={}", enc("property('owner') = 'x'")),
                400,
                "bad_request",
            ),
            get(
                "OGC API CQL2 JSON function()",
                format!(
                    "/ogc/api/roads/collections/osm/items?f=json&filter-lang=cql2-json&filter={}",
                    enc(r#"{"op":"=","args":[{"function":{"name":"property","args":["owner"]}},"x"]}"#)
                ),
                400,
                "bad_request",
            ),
            Case {
                class: "FES Function in an XML POST",
                method: Method::POST,
                path: "/ogc/wfs/roads".into(),
                content_type: Some("text/xml"),
                body: post,
                status: 400,
                reason: "unsupported_request",
            },
        ],
    )
    .await;
    // The standard predicates still pass (an unfenced token: the recording upstream
    // answers plain text, which the property filter would refuse), with their
    // properties fenced.
    let open = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let ok = gw.get(&format!("{wfs}&CQL_FILTER={}", enc("name LIKE 'a%' AND CASEI(name) = casei('x')")), &open).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    let hidden = gw.get(&format!("{wfs}&CQL_FILTER={}", enc("owner LIKE 'a%'")), &token).await;
    assert_eq!((hidden.status.as_u16(), hidden.reason().as_str()), (403, "property_fenced"));
}

/// #12 (decision 86): under any fence a feature keeps only what RFC 7946 makes it of
/// (and its links): what an upstream writes beside `properties` — attribute values in a
/// vendor member, JSON-FG's `place`, a nested collection — never reaches a fenced token.
#[tokio::test]
async fn attribute_values_and_geometries_beside_properties_never_reach_a_fenced_token() {
    let gw = TestGateway::with_config(CONFIG).await;
    let wfs =
        "/ogc/wfs/foreign?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=places&OUTPUTFORMAT=application/json";
    let fenced_props = gw.token_fenced("foreign", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let fenced_tiles =
        gw.token_fenced("foreign", Tier::ViewPlus, Fence::new(Some(&[(2, 2, 1)]), None).expect("fence"), None).await;
    for (who, token) in [("property fence", &fenced_props), ("tile fence", &fenced_tiles)] {
        let r = gw.get(wfs, token).await;
        assert_eq!(r.status.as_u16(), 200, "{who}: {}", r.text());
        let body = r.text();
        for hidden in ["hidden 2", "hidden 3", "hidden 4", "geometry_name", "120", "vendor", "attributes"] {
            assert!(!body.contains(hidden), "{who}: `{hidden}` reached the client: {body}");
        }
        let doc: serde_json::Value = serde_json::from_str(&body).expect("GeoJSON");
        let feature = &doc["features"][0];
        assert_eq!(feature["id"], "places.1", "{who}: {body}");
        assert_eq!(feature["properties"]["name"], "inside", "{who}: {body}");
        assert_eq!(
            feature.as_object().expect("a feature").keys().map(String::as_str).collect::<Vec<_>>(),
            ["geometry", "id", "properties", "type"],
            "{who}: nothing but what RFC 7946 makes a Feature of (serde_json sorts the keys)"
        );
    }
    // Without a fence the document is relayed as the upstream wrote it.
    let open = gw.token(&[("foreign", Tier::ViewPlus)]).await;
    let r = gw.get(wfs, &open).await;
    assert_eq!(r.text(), crate::support::upstream::FOREIGN_MEMBERS);
}

/// #12 (decision 87): a CQL2 JSON object is one of the standard's kinds, its members
/// spelled exactly. A member no kind has, or an object mixing kinds, is one an upstream
/// may read as something the gateway did not judge (pygeofilter picks the kind by its
/// own order of looking), so none reaches the upstream; the standard kinds still pass.
#[tokio::test]
async fn cql2_json_objects_outside_the_standard_kinds_never_reach_the_upstream() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("roads", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let items =
        |json: &str| format!("/ogc/api/roads/collections/osm/items?f=json&filter-lang=cql2-json&filter={}", enc(json));
    let cases = [
        ("a member in another case", r#"{"op":"=","args":[{"Property":"owner"},"x"]}"#),
        ("an upper-case member", r#"{"op":"=","args":[{"PROPERTY":"owner"},"x"]}"#),
        ("pygeofilter's lower()", r#"{"op":"=","args":[{"lower":{"property":"name"}},"x"]}"#),
        ("a filter wrapper", r#"{"filter":{"op":"=","args":[{"property":"name"},"x"]}}"#),
        ("a property beside an op", r#"{"op":"=","args":[{"property":"name","op":"like"},"x"]}"#),
        (
            "a geometry naming a property",
            r#"{"op":"s_intersects","args":[{"property":"name"},{"type":"Point","coordinates":[0,0],"property":"owner"}]}"#,
        ),
        (
            "a foreign member on a geometry",
            r#"{"op":"s_intersects","args":[{"property":"name"},{"type":"Point","coordinates":[0,0],"crs":"EPSG:3857"}]}"#,
        ),
        ("an unknown member", r#"{"op":"=","args":[{"property":"name"},"x"],"where":"1=1"}"#),
    ];
    refused_before_the_upstream(
        &gw,
        &token,
        cases.iter().map(|(class, json)| get(class, items(json), 400, "bad_request")).collect(),
    )
    .await;
    // Every standard kind passes, the property fence applied to what it names.
    let standard = r#"{"op":"and","args":[{"op":"=","args":[{"property":"name"},"x"]},
        {"op":"s_intersects","args":[{"property":"name"},{"bbox":[0,0,1,1]}]},
        {"op":"s_within","args":[{"property":"name"},{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}]},
        {"op":"t_after","args":[{"property":"name"},{"timestamp":"2020-01-01T00:00:00Z"}]},
        {"op":"t_during","args":[{"property":"name"},{"interval":["2020-01-01",".."]}]},
        {"op":">","args":[{"property":"name"},{"date":"2020-01-01"}]},
        {"op":"like","args":[{"op":"casei","args":[{"property":"name"}]},"a%"]}]}"#;
    let open = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let before = gw.upstream.seen().len();
    let ok = gw.get(&items(standard), &open).await;
    assert_eq!(ok.status.as_u16(), 200, "{}", ok.text());
    assert_eq!(gw.upstream.seen().len(), before + 1);
    let hidden = gw.get(&items(r#"{"op":"=","args":[{"property":"owner"},"x"]}"#), &token).await;
    assert_eq!((hidden.status.as_u16(), hidden.reason().as_str()), (403, "property_fenced"));
}

/// Regression: an upstream answering a filtered GeoJSON request with something else
/// (an error page sent with 200) got a 200 head and then a dropped connection; the
/// first frame is filtered before the head is sent, so it is a clean 502.
#[tokio::test]
async fn an_unfilterable_answer_is_a_502_not_a_dropped_connection() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("roads", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let r = gw
        .get(
            "/ogc/wfs/roads?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=osm&OUTPUTFORMAT=application/json",
            &token,
        )
        .await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (502, "upstream_bad_document"), "{}", r.text());
    // An empty answer (MapServer's RESULTTYPE=hits in GeoJSON) is a 502 too, not a
    // dropped connection.
    let empty = gw.token_fenced("empty", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let r = gw.get("/ogc/api/empty/collections/c/items?f=json", &empty).await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (502, "upstream_bad_document"), "{}", r.text());
}

/// Headers that would tell the upstream something else about the request (identity,
/// URL, method) or carry the token: none of them reaches it, in any spelling.
#[tokio::test]
async fn identity_override_and_token_carrying_headers_never_reach_the_upstream() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    let referer = format!("https://app.example.org/map?token={token}");
    let cookie = format!("session=1; tg={token}");
    let smuggled = [
        ("x_forwarded_for", "10.9.9.9"),
        ("X_Real_IP", "10.9.9.9"),
        ("x-forwarded_for", "10.9.9.9"),
        ("x.tilegate.tier", "admin"),
        ("x_tilegate_token_id", "00000000-0000-0000-0000-000000000000"),
        ("x-forwarded-prefix", "/admin"),
        ("x-forwarded-server", "internal"),
        ("x-forwarded-uri", "/other/secret"),
        ("x-original-url", "/other/secret"),
        ("x-rewrite-url", "/other/secret"),
        ("x-http-method-override", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-real-ip", "10.9.9.9"),
        ("true-client-ip", "10.9.9.9"),
        // Found by an outside attacker: httpoxy, header-auth identities, more
        // client-address and original-URL spellings, TLS client facts.
        ("proxy", "http://10.9.9.9:3128"),
        ("sec-username", "admin"),
        ("sec-roles", "ADMIN"),
        ("remote-user", "admin"),
        ("x-remote-user", "admin"),
        ("x-webauth-user", "admin"),
        ("x-auth-request-user", "admin"),
        ("client-ip", "10.9.9.9"),
        ("fastly-client-ip", "10.9.9.9"),
        ("x-remote-addr", "10.9.9.9"),
        ("forwarded-for", "10.9.9.9"),
        ("x-forwarded", "10.9.9.9"),
        ("x-original-uri", "/other/secret"),
        ("x-original-method", "DELETE"),
        ("x-envoy-original-path", "/other/secret"),
        ("front-end-https", "on"),
        ("ssl-client-cert", "x"),
        ("x-ssl-client-verify", "SUCCESS"),
    ];
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth), ("referer", &referer), ("cookie", &cookie)];
    headers.extend(smuggled);
    let r = gw.send(Method::GET, "/path/roads/x", &headers, Bytes::new()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let seen = gw.upstream.last();
    for (name, _) in smuggled {
        assert!(!seen.headers.contains_key(name), "{name} reached the upstream");
    }
    for (name, value) in &seen.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(&token), "{name} carries the token to the upstream");
        assert!(!value.contains("10.9.9.9") && !value.contains("DELETE"), "{name}: {value}");
    }
    assert_eq!(seen.headers["x-tilegate-tier"], "viewPlus", "the gateway's own identity headers are set");
}

/// Upstream addresses and internals reach clients through error pages and URL
/// headers: a 5xx body is replaced by the gateway's, absolute `Location`/`Link`
/// headers are dropped (a relative one stays).
#[tokio::test]
async fn upstream_error_pages_and_url_headers_do_not_reach_the_client() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let r = gw.get("/path/roads/fail500", &token).await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (500, "upstream_error"), "{}", r.text());
    assert!(!r.text().contains("10.0.0.5") && !r.text().contains("NullPointer"), "{}", r.text());
    let r = gw.get("/path/roads/redirect", &token).await;
    assert_eq!(r.status.as_u16(), 302);
    let up = gw.upstream.addr.to_string();
    for (name, value) in &r.headers {
        assert!(!String::from_utf8_lossy(value.as_bytes()).contains(&up), "{name} names the upstream");
    }
    assert!(r.headers.get("location").is_none() && r.headers.get("link").is_none(), "{:?}", r.headers);
    assert!(r.headers.get("server").is_none() && r.headers.get("x-powered-by").is_none(), "{:?}", r.headers);
    assert_eq!(r.headers["content-location"], "/osm/here", "a relative reference stays");
}

/// RFC 9112 §6.3: a request with both `Content-Length` and `Transfer-Encoding` is how
/// requests are smuggled. hyper reads it as chunked, removes `Content-Length` before
/// the gateway sees it, and closes the connection after answering, so the upstream
/// gets one request with one framing and the smuggled second request is never read.
#[tokio::test]
async fn a_request_with_two_framings_smuggles_nothing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::Edit)]).await;
    let before = gw.upstream.seen().len();
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.expect("connect");
    let request = format!(
        "POST /path/roads/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /path/other/ HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "one answer, then the connection closes: {answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    let seen = gw.upstream.seen();
    assert_eq!(seen.len(), before + 1, "exactly one request reached the upstream: {seen:?}");
    let last = seen.last().expect("one");
    assert!(last.uri.ends_with("/roads/x"), "{}", last.uri);
    assert!(!last.headers.contains_key("content-length"), "one framing upstream: {:?}", last.headers);
}

/// Found by an outside attacker: `Range` reached the upstream, and the filter relayed a
/// JSON root that is neither a FeatureCollection nor a Feature, so a property-fenced
/// token read slices of the unfiltered document; `Accept: application/ld+json` made
/// pygeoapi answer JSON-LD, whose flattened properties the filter does not see.
#[tokio::test]
async fn slices_and_other_media_types_of_a_filtered_answer_are_refused() {
    let gw = TestGateway::with_config(CONFIG).await;
    let mut tokens = Vec::new();
    for path in ["roads", "partial", "jsonld"] {
        tokens.push(gw.token_fenced(path, Tier::ViewPlus, Fence::default(), Some(&["name"])).await);
    }
    // The request side: neither `Range` nor the client's `Accept` reaches the upstream.
    let auth = format!("Bearer {}", tokens[0]);
    let _ = gw
        .send(
            Method::GET,
            "/ogc/api/roads/collections/osm/items?f=json&limit=3",
            &[("authorization", &auth), ("range", "bytes=10-50"), ("if-range", "x"), ("accept", "application/ld+json")],
            Bytes::new(),
        )
        .await;
    let seen = gw.upstream.last();
    assert!(!seen.headers.contains_key("range") && !seen.headers.contains_key("if-range"), "{:?}", seen.headers);
    assert!(seen.headers["accept"].to_str().unwrap_or("").starts_with("application/geo+json"), "{:?}", seen.headers);
    // The answer side: a 206 slice and a JSON-LD answer are 502, never relayed.
    for (token, path) in [(&tokens[1], "partial"), (&tokens[2], "jsonld")] {
        let r = gw.get(&format!("/ogc/api/{path}/collections/c/items?f=json"), token).await;
        assert_eq!((r.status.as_u16(), r.reason().as_str()), (502, "upstream_bad_document"), "{path}: {}", r.text());
        assert!(!r.text().contains("hidden"), "{path}");
    }
}

/// Found by an outside attacker: an upstream 3xx/4xx answer to a filtered request was
/// relayed unfiltered (hidden properties, features outside the fence); a token pasted
/// into a token-API field came back in the 422. (The OGC API definition the attacker
/// also fetched is now served trimmed: `e2e::the_api_definition_*`.)
#[tokio::test]
async fn error_answers_and_validation_messages_leak_nothing() {
    let gw = TestGateway::with_config(CONFIG).await;
    let fenced = gw.token_fenced("err404", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let r = gw.get("/ogc/api/err404/collections/c/items?f=json", &fenced).await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (404, "upstream_error"), "{}", r.text());
    assert!(!r.text().contains("hidden"), "{}", r.text());
    let r = gw.get("/ogc/api/err404/collections/c/items/7?f=json", &fenced).await;
    assert_eq!(
        (r.status.as_u16(), r.reason().as_str()),
        (404, "path_not_found"),
        "a missing feature answers like one outside the fence"
    );

    let admin = gw.token(&[("maps", Tier::Admin)]).await;
    let body = serde_json::json!({"description": "x", "accessList": [{"pathId": admin, "accessTier": admin}]});
    let r = gw.create(&admin, body).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text());
    assert!(!r.text().contains(&admin) && r.text().contains("<redacted>"), "{}", r.text());
}

/// Found by an outside attacker: a server that echoes the stored feature after a write
/// handed a property-fenced editor the hidden properties of the answer. For a fenced
/// token the answer's body is dropped; status and headers stay.
#[tokio::test]
async fn write_answers_give_a_fenced_editor_no_data() {
    let gw = TestGateway::with_config(CONFIG).await;
    let fenced = gw.token_fenced("roads", Tier::Edit, Fence::default(), Some(&["name"])).await;
    let open = gw.token(&[("roads", Tier::Edit)]).await;
    let feature = r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"name":"x"}}"#;
    for (token, echoed) in [(&fenced, false), (&open, true)] {
        let r = gw
            .send(
                Method::POST,
                "/ogc/api/roads/collections/osm/items",
                &[("authorization", &format!("Bearer {token}")), ("content-type", "application/geo+json")],
                Bytes::from_static(feature.as_bytes()),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        assert_eq!(r.text().contains("secret_note"), echoed, "{}", r.text());
    }
}

/// Attacker round 9 (F2): a property-fenced editor erased the properties it cannot see
/// with a PUT of the visible ones, a PATCH or PUT of `"properties": null`, or a WFS-T
/// `Replace`. Each is refused before the upstream; a PATCH naming visible properties,
/// an insert and a WFS-T `Update` still pass, and an unfenced editor may replace.
#[tokio::test]
async fn a_property_fenced_editor_cannot_replace_or_clear_what_it_cannot_see() {
    let gw = TestGateway::with_config(CONFIG).await;
    let fenced = gw.token_fenced("roads", Tier::Edit, Fence::default(), Some(&["name"])).await;
    let item = "/ogc/api/roads/collections/osm/items/1";
    let visible = r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"name":"x"}}"#;
    let cleared = r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":null}"#;
    let replace = r#"<wfs:Transaction service="WFS" version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"><wfs:Replace><osm><name>x</name></osm><fes:Filter><fes:ResourceId rid="osm.1"/></fes:Filter></wfs:Replace></wfs:Transaction>"#;
    let case = |class, method, path: &str, ct, body| Case {
        class,
        method,
        path: path.into(),
        content_type: Some(ct),
        body,
        status: 403,
        reason: "property_fenced",
    };
    refused_before_the_upstream(
        &gw,
        &fenced,
        vec![
            case("PUT of the visible properties", Method::PUT, item, "application/geo+json", visible),
            case("PUT of null properties", Method::PUT, item, "application/geo+json", cleared),
            case(
                "PATCH of null properties",
                Method::PATCH,
                item,
                "application/merge-patch+json",
                r#"{"properties":null}"#,
            ),
            case("WFS-T Replace", Method::POST, "/ogc/wfs/roads", "text/xml", replace),
        ],
    )
    .await;
    let auth = format!("Bearer {fenced}");
    let send = |method: Method, path: &'static str, ct: &'static str, body: &'static str| {
        let auth = auth.clone();
        let gw = &gw;
        async move {
            gw.send(
                method,
                path,
                &[("authorization", auth.as_str()), ("content-type", ct)],
                Bytes::from_static(body.as_bytes()),
            )
            .await
            .status
            .as_u16()
        }
    };
    let update = r#"<wfs:Transaction service="WFS" version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"><wfs:Update typeName="osm"><wfs:Property><wfs:ValueReference>name</wfs:ValueReference><wfs:Value>y</wfs:Value></wfs:Property><fes:Filter><fes:ResourceId rid="osm.1"/></fes:Filter></wfs:Update></wfs:Transaction>"#;
    assert_eq!(
        send(
            Method::PATCH,
            "/ogc/api/roads/collections/osm/items/1",
            "application/merge-patch+json",
            r#"{"properties":{"name":"y"}}"#
        )
        .await,
        200
    );
    assert_eq!(send(Method::POST, "/ogc/wfs/roads", "text/xml", update).await, 200);
    let open = gw.token(&[("roads", Tier::Edit)]).await;
    let r = gw
        .send(
            Method::PUT,
            item,
            &[("authorization", &format!("Bearer {open}")), ("content-type", "application/geo+json")],
            Bytes::from_static(visible.as_bytes()),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
}

/// Found by an outside attacker (L5, #12): a copy of the token in another query value,
/// a path segment or a judged body was forwarded, so the upstream (and its logs) saw
/// the credential. Every spelling the upstream would decode is refused, before it.
#[tokio::test]
async fn a_copy_of_the_token_never_reaches_the_upstream() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::Admin)]).await;
    let percent: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let json: String = token.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let xml: String = token.chars().map(|c| format!("&#{};", c as u32)).collect();
    let styles = MAP.replace("STYLES=", &format!("STYLES={token}"));
    let post = format!(
        r#"<wfs:GetFeature service="WFS" version="2.0.0" outputFormat="application/json" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"><wfs:Query typeNames="osm"><fes:Filter><fes:PropertyIsEqualTo><fes:ValueReference>name</fes:ValueReference><fes:Literal>{xml}</fes:Literal></fes:PropertyIsEqualTo></fes:Filter></wfs:Query></wfs:GetFeature>"#
    );
    let feature = format!(
        r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[1,2]}},"properties":{{"name":"{json}"}}}}"#
    );
    // Attacker round 2: split by markup every XML reader joins across.
    let (head, tail) = token.split_at(20);
    let cdata = post.replace(&xml, &format!("{head}<![CDATA[{tail}]]>"));
    let comment = post.replace(&xml, &format!("{head}<!--x-->{tail}"));
    let cases: Vec<(&str, Method, String, &str, String)> = vec![
        ("split by CDATA in a WFS XML body", Method::POST, "/ogc/wfs/roads".into(), "application/xml", cdata),
        ("split by a comment in a WFS XML body", Method::POST, "/ogc/wfs/roads".into(), "application/xml", comment),
        ("another query value", Method::GET, format!("/path/roads/x?q={token}"), "", String::new()),
        ("percent-encoded", Method::GET, format!("/path/roads/x?q={percent}"), "", String::new()),
        ("a path segment", Method::GET, format!("/path/roads/{token}/x"), "", String::new()),
        ("an OGC parameter value", Method::GET, format!("/ogc/wms/roads?{styles}"), "", String::new()),
        ("a WFS XML body", Method::POST, "/ogc/wfs/roads".into(), "application/xml", post),
        (
            "an OGC API item",
            Method::POST,
            "/ogc/api/roads/collections/osm/items".into(),
            "application/geo+json",
            feature,
        ),
    ];
    let auth = format!("Bearer {token}");
    for (class, method, path, content_type, body) in cases {
        let before = gw.upstream.seen().len();
        let mut headers = vec![("authorization", auth.as_str())];
        if !content_type.is_empty() {
            headers.push(("content-type", content_type));
        }
        let r = gw.send(method, &path, &headers, Bytes::from(body)).await;
        assert_eq!((r.status.as_u16(), r.reason().as_str()), (400, "token_in_request"), "{class}: {}", r.text());
        assert!(!r.text().contains(&token), "{class}: the refusal echoes no token");
        assert_eq!(gw.upstream.seen().len(), before, "{class}: the upstream must see nothing");
    }
    // Attacker round 2: the token as the Host, which an upstream sees as X-Forwarded-Host.
    let before = gw.upstream.seen().len();
    let r = gw
        .send(Method::GET, "/path/roads/x", &[("authorization", auth.as_str()), ("host", token.as_str())], Bytes::new())
        .await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (400, "token_in_request"), "Host: {}", r.text());
    assert_eq!(gw.upstream.seen().len(), before, "Host: the upstream must see nothing");
    // In its own places the token works, and is not forwarded.
    let r = gw.send(Method::GET, &format!("/path/roads/x?token={token}&q=1"), &[], Bytes::new()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert!(!gw.upstream.last().uri.contains(&token));
}

/// #12 (9, the rest): an upstream's 4xx exception document on an image request
/// (MapServer's `msDrawMap(): … (/srv/secret/roads.shp)`, a `schemaLocation` on the
/// upstream) was relayed as it was. Its status stays; the body is the gateway's, in the
/// request's exception format.
#[tokio::test]
async fn an_upstream_exception_on_an_image_request_is_replaced() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("exceptional", Tier::View)]).await;
    let fenced =
        gw.token_fenced("exceptional", Tier::View, Fence::new(Some(&[(1, 1, 0)]), None).expect("fence"), None).await;
    let up = gw.upstream.addr.to_string();
    for (who, t) in [("open", &token), ("fenced", &fenced)] {
        for path in [
            format!("/ogc/wms/exceptional?{MAP}"),
            "/ogc/wmts/exceptional?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=GoogleMapsCompatible&TILEMATRIX=1&TILEROW=0&TILECOL=1&FORMAT=image/png".to_owned(),
        ] {
            let r = gw.get(&path, t).await;
            let text = r.text();
            assert_eq!((r.status.as_u16(), r.reason().as_str()), (400, "upstream_error"), "{who} {path}: {text}");
            assert!(!text.contains(&up) && !text.contains("/srv/secret"), "{who} {path}: {text}");
            assert!(text.contains("ExceptionReport"), "in the OGC format: {text}");
        }
    }
}

/// Attacker round 3: in a WFS XML body the property named by a spatial operator
/// (`BBOX`, `Intersects`…, either operand) was never judged, so a property-fenced
/// token could select features by a hidden property, and an undeclared or XPath name
/// reached the upstream. KVP `FILTER` and CQL2 already judged it; now XML does too.
#[tokio::test]
async fn a_spatial_operator_on_a_hidden_property_in_a_wfs_xml_body_is_refused() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("roads", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let body = |op: &str, operand: &str| -> &'static str {
        format!(
            r#"<wfs:GetFeature service="WFS" version="2.0.0" outputFormat="application/json" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0" xmlns:gml="http://www.opengis.net/gml/3.2"><wfs:Query typeNames="osm"><fes:Filter><fes:{op}>{operand}<gml:Envelope srsName="urn:ogc:def:crs:EPSG::4326"><gml:lowerCorner>0 0</gml:lowerCorner><gml:upperCorner>1 1</gml:upperCorner></gml:Envelope></fes:{op}></fes:Filter></wfs:Query></wfs:GetFeature>"#
        )
        .leak()
    };
    let post = |class, body, status, reason| Case {
        class,
        method: Method::POST,
        path: "/ogc/wfs/roads".into(),
        content_type: Some("text/xml"),
        body,
        status,
        reason,
    };
    let owner = "<fes:ValueReference>owner</fes:ValueReference>";
    refused_before_the_upstream(
        &gw,
        &token,
        vec![
            post("BBOX on a hidden property", body("BBOX", owner), 403, "property_fenced"),
            post("Intersects on a hidden property", body("Intersects", owner), 403, "property_fenced"),
            post(
                "a hidden property as the second operand",
                body(
                    "Intersects",
                    "<fes:ValueReference>name</fes:ValueReference><fes:ValueReference>owner</fes:ValueReference>",
                ),
                403,
                "property_fenced",
            ),
            post(
                "BBOX on an undeclared property",
                body("BBOX", "<fes:ValueReference>zzz_undeclared</fes:ValueReference>"),
                403,
                "property_fenced",
            ),
            post(
                "BBOX on an XPath",
                body("BBOX", r#"<fes:ValueReference>osm[owner="a"]/geom</fes:ValueReference>"#),
                400,
                "bad_request",
            ),
        ],
    )
    .await;
}

/// #12 (exceptions in a 200): MapServer answers a failed GetMap with a 200
/// `application/vnd.ogc.se_xml` naming its mapfile, layers and host; GeoServer does the
/// same for WMS 1.1.1. It was relayed as the map. Now it is the upstream error it is:
/// a 502 `upstream_error` in the exception format the client asked for, and the client's
/// `EXCEPTIONS` (`INIMAGE` would have had the upstream draw the message into a map) is
/// not forwarded.
#[tokio::test]
async fn an_exception_document_in_a_200_on_an_image_request_is_replaced() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("exc200", Tier::View)]).await;
    let up = gw.upstream.addr.to_string();
    let wms111 = "SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=osm&STYLES=&SRS=EPSG:3857&BBOX=0,0,39135.76,39135.76&WIDTH=256&HEIGHT=256&FORMAT=image/png";
    for (path, format) in [
        (format!("/ogc/wms/exc200?{MAP}"), "ServiceExceptionReport"),
        (format!("/ogc/wms/exc200?{wms111}&EXCEPTIONS=application/vnd.ogc.se_xml"), "ServiceExceptionReport"),
        (format!("/ogc/wms/exc200?{wms111}&EXCEPTIONS=application/vnd.ogc.se_inimage"), "PNG"),
        (
            "/ogc/wmts/exc200?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=GoogleMapsCompatible&TILEMATRIX=1&TILEROW=0&TILECOL=1&FORMAT=image/png".to_owned(),
            "ExceptionReport",
        ),
        ("/ogc/xyz/exc200/1/1/0.png".to_owned(), "upstream_error"),
    ] {
        let r = gw.get(&path, &token).await;
        let text = r.text();
        assert_eq!(r.status.as_u16(), 502, "{path}: {text}");
        assert!(!text.contains(&up) && !text.contains("/srv/secret") && !text.contains("secret_roads"), "{path}: {text}");
        assert!(text.contains(format), "{path}: in the client's format: {text}");
        assert!(!gw.upstream.last().uri.to_ascii_uppercase().contains("EXCEPTIONS"), "{path}: not forwarded");
    }
}

/// Attacker round 4: answers relayed unread were relayed whatever they held. A WFS
/// exception report answered 200 (MapServer, GeoServer: map file, data paths, the
/// upstream's host in `schemaLocation`) reached an unrestricted token as if it were the
/// features or the schema; GeoServer gzips its XML, exceptions too; an error page
/// labelled `image/png` went out as the tile. Each is now the upstream error it is.
#[tokio::test]
async fn an_answer_that_is_not_what_it_says_is_the_upstream_error() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw
        .token(&[
            ("lying", Tier::ViewPlus),
            ("lyingraster", Tier::ViewPlus),
            ("disguised", Tier::ViewPlus),
            ("untyped", Tier::ViewPlus),
        ])
        .await;
    let up = gw.upstream.addr.to_string();
    for path in [
        // Attacker round 5: the same exception gzip-coded as `image/png`, untyped, and
        // as `text/plain` to a WCS request.
        "/ogc/xyz/disguised/1/1/0.png",
        "/ogc/xyz/untyped/1/1/0.png",
        "/ogc/wcs/disguised?SERVICE=WCS&VERSION=2.0.1&REQUEST=DescribeCoverage&COVERAGEID=osm",
        "/ogc/wfs/lying?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=osm",
        "/ogc/wfs/lying?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=osm&OUTPUTFORMAT=application/json",
        "/ogc/wfs/lying?SERVICE=WFS&VERSION=2.0.0&REQUEST=DescribeFeatureType&TYPENAMES=osm",
        "/ogc/wcs/lyingraster?SERVICE=WCS&VERSION=2.0.1&REQUEST=DescribeCoverage&COVERAGEID=osm",
        "/ogc/xyz/lyingraster/1/1/0.png",
    ] {
        let r = gw.get(path, &token).await;
        let text = r.text();
        assert_eq!(r.status.as_u16(), 502, "{path}: {text}");
        assert_eq!(r.reason(), "upstream_error", "{path}");
        for secret in [up.as_str(), "/srv/secret", "roads.map", "tiles-3.internal", "java.io"] {
            assert!(!text.contains(secret), "{path}: {text}");
        }
    }
}

/// Attacker round 6: WFS GeoJSON `links` (MapServer writes a `next`) were relayed as the
/// upstream wrote them, its address included, to every token; under a fence `next` told
/// whether more features lie beyond the page, outside the fence included.
#[tokio::test]
async fn wfs_geojson_links_name_no_upstream_and_no_page_under_a_fence() {
    let gw = TestGateway::with_config(CONFIG).await;
    let up = gw.upstream.addr.to_string();
    let query =
        "/ogc/wfs/wfsjson?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=places&OUTPUTFORMAT=application/json";
    let open = gw.token(&[("wfsjson", Tier::ViewPlus)]).await;
    let r = gw.get(query, &open).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert!(!r.text().contains(&up), "the upstream's address: {}", &r.text()[..300.min(r.text().len())]);
    assert!(r.json()["links"].as_array().is_some_and(|l| l.iter().any(|l| l["rel"] == "next")), "kept, mapped");
    let fenced =
        gw.token_fenced("wfsjson", Tier::ViewPlus, Fence::new(Some(&[(1, 1, 0)]), None).expect("fence"), None).await;
    let r = gw.get(query, &fenced).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let doc = r.json();
    assert!(!r.text().contains(&up));
    assert!(doc["links"].as_array().is_none_or(|l| l.iter().all(|l| l["rel"] != "next")), "{}", doc["links"]);
}

/// Attacker round 7 (N8): under a fence page links were dropped only when `rel` was one
/// string naming `next`, `prev`… in that case; an array, another case, an IANA or OGC URI
/// or an extension URI kept the link, and a `rel` that was no string at all kept it too.
#[tokio::test]
async fn no_spelling_of_a_page_link_survives_a_fence() {
    let gw = TestGateway::with_config(CONFIG).await;
    let query =
        "/ogc/wfs/pagerels?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=places&OUTPUTFORMAT=application/json";
    let hrefs = |doc: &serde_json::Value| -> Vec<String> {
        doc["links"].as_array().into_iter().flatten().filter_map(|l| l["href"].as_str()).map(str::to_owned).collect()
    };
    let fenced =
        gw.token_fenced("pagerels", Tier::ViewPlus, Fence::new(Some(&[(1, 1, 0)]), None).expect("fence"), None).await;
    let r = gw.get(query, &fenced).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["features"].as_array().map(Vec::len), Some(1), "the place inside stays: {doc}");
    let kept = hrefs(&doc);
    assert!(kept.iter().all(|h| !h.contains("#page-")), "a page link survived the fence: {kept:?}");
    assert!(kept.iter().any(|h| h.ends_with("#keep-1")) && kept.iter().any(|h| h.ends_with("#keep-2")), "{kept:?}");
    // Without a fence the page links stay (mapped to the gateway), but a `rel` that is
    // no string nor array of strings keeps no link for any token.
    let open = gw.token(&[("pagerels", Tier::ViewPlus)]).await;
    let r = gw.get(query, &open).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let kept = hrefs(&r.json());
    for i in 0..12 {
        assert!(kept.iter().any(|h| h.ends_with(&format!("#page-{i}"))), "page link {i} dropped: {kept:?}");
    }
    for i in 12..16 {
        assert!(!kept.iter().any(|h| h.ends_with(&format!("#page-{i}"))), "unreadable rel {i} kept: {kept:?}");
    }
    assert!(!r.text().contains(&gw.upstream.addr.to_string()), "{}", r.text());
}

/// #12 (response headers): an upstream's session cookie (`JSESSIONID`, a load
/// balancer's sticky cookie) was handed to every token holder, its own `Basic` challenge
/// (realm and all) and `Alt-Svc` relayed; an upstream 401 reached the client, whose
/// browser would then offer its password for the upstream's realm.
#[tokio::test]
async fn upstream_sessions_challenges_and_identity_do_not_reach_the_client() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let r = gw.get("/path/roads/session", &token).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    for name in ["set-cookie", "set-cookie2", "www-authenticate", "alt-svc", "x-backend-server"] {
        assert!(r.headers.get(name).is_none(), "{name}: {:?}", r.headers);
    }
    let r = gw.get("/path/roads/auth401", &token).await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (502, "upstream_error"), "{}", r.text());
    assert!(r.headers.get("www-authenticate").is_none(), "{:?}", r.headers);
    assert!(!r.text().contains("GeoServer"), "{}", r.text());
}

/// #12 (write bodies): `/path/` write bodies stream to the upstream and were never
/// read, so a copy of the token in one (a JSON note, a form field, percent-encoded or
/// in fullwidth letters) reached the upstream and its logs. Each frame is scanned
/// before it is forwarded, with the seam to the one before: the request is refused and
/// the upstream never gets the frame that completes the copy, nor a complete body.
#[tokio::test]
async fn a_copy_of_the_token_in_a_streamed_write_body_never_reaches_the_upstream_whole() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::Edit)]).await;
    let percent: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let fullwidth: String =
        token.chars().map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).expect("fullwidth")).collect();
    let pad = "x".repeat(4000);
    let send = |first: String, second: String| {
        let (addr, token) = (gw.addr, token.clone());
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST /path/roads/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.expect("head");
            stream.write_all(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes()).await.expect("first");
            stream.flush().await.expect("flush");
            // Two frames at the gateway (not a timing assertion: one frame is found too).
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let _ = stream.write_all(format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len()).as_bytes()).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    for spelling in [token.clone(), percent, fullwidth] {
        let before = gw.upstream.seen().len();
        let cut = spelling.char_indices().nth(spelling.chars().count() / 2).map(|(i, _)| i).expect("half");
        let answer =
            send(format!(r#"{{"pad":"{pad}","note":"{}"#, &spelling[..cut]), format!(r#"{}"}}"#, &spelling[cut..]))
                .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{spelling}: {answer}");
        assert!(answer.contains("token_in_request") && !answer.contains(&token), "{answer}");
        // What reached the upstream, if anything: never the whole body, never the copy.
        for _ in 0..100 {
            if gw.upstream.seen().len() > before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for seen in &gw.upstream.seen()[before..] {
            assert!(!seen.complete, "{spelling}: the upstream got a complete body");
            let body = String::from_utf8_lossy(&seen.body);
            assert!(!body.contains(&spelling) && !body.contains(&token), "{spelling}: {body}");
        }
    }
    // A compressed body cannot be scanned (and the upstream may inflate it): refused.
    let before = gw.upstream.seen().len();
    let r = gw
        .send(
            Method::POST,
            "/path/roads/upload",
            &[("authorization", &format!("Bearer {token}")), ("content-encoding", "gzip")],
            Bytes::from_static(b"\x1f\x8b\x08\x00"),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (415, "unsupported_media_type"), "{}", r.text());
    assert_eq!(gw.upstream.seen().len(), before, "the upstream sees nothing");
    // The same body without a copy streams through whole.
    let answer = send(format!(r#"{{"pad":"{pad}","note":"#), r#"hello"}"#.to_owned()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = gw.upstream.last();
    assert!(seen.complete && seen.body.ends_with(b"hello\"}"), "{:?}", String::from_utf8_lossy(&seen.body));
}

/// Attacker round (leaks): request trailers are a header section after the body, which
/// no header hygiene read: a chunked `/path/` write could end with a trailer holding
/// the token or an identity header. Two things keep them from the upstream today, and
/// this fails only if both go: `Trailer` is hop-by-hop (dropped, so hyper's client
/// sends no trailers) and the streamed body ends at its trailers (`LimitedBody`).
#[tokio::test]
async fn request_trailers_never_reach_the_upstream() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::Edit)]).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.expect("connect");
    let request = format!(
        "POST /path/roads/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Remote-User\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Remote-User: admin\r\nX-Note: {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = gw.upstream.last();
    assert!(seen.complete && seen.body == b"hello", "{:?}", String::from_utf8_lossy(&seen.body));
    assert!(seen.trailers.is_none(), "trailers reached the upstream: {:?}", seen.trailers);
}

/// Attacker round 4 (high): a page relayed through `/path/` ran as the gateway's
/// origin, which also serves the console. It registered a service worker for `/`
/// (the upstream sent `Service-Worker-Allowed: /`) that read every later console
/// call's `Authorization` header, or simply read the console's `sessionStorage` in
/// the same tab. Headers that give an answer power over the origin are dropped, and
/// active content (HTML, XML, SVG, scripts) is sandboxed into an opaque origin.
#[tokio::test]
async fn an_upstream_page_never_runs_as_the_gateways_origin() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token(&[("roads", Tier::ViewPlus)]).await;
    for path in ["/path/roads/page.html", "/path/roads/worker.js"] {
        let r = gw.get(path, &token).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text());
        for name in ["service-worker-allowed", "clear-site-data", "report-to"] {
            assert!(r.headers.get(name).is_none(), "{path} {name}: {:?}", r.headers);
        }
        assert_eq!(r.headers["content-security-policy"], "sandbox", "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
    }
    // Inert answers (a tile) are left as they are.
    let r = gw.get("/path/roads/session", &token).await;
    assert!(r.headers.get("content-security-policy").is_none(), "{:?}", r.headers);
}

/// Attacker round 4 (high): a property-fenced token read every hidden property
/// through `/path/`, whose answers are relayed unread (a geofenced one was already
/// refused there). An answer the gateway cannot filter is refused under a property
/// fence too, and the console offers no pass-through URL to such a token.
#[tokio::test]
async fn a_property_fenced_token_cannot_read_around_its_fence_through_the_pass_through() {
    let gw = TestGateway::with_config(CONFIG).await;
    let token = gw.token_fenced("roads", Tier::ViewPlus, tilegate::spatial::Fence::default(), Some(&["name"])).await;
    let before = gw.upstream.seen().len();
    let r = gw.get("/path/roads/collections/roads/items?f=json", &token).await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (403, "fence_unverifiable"), "{}", r.text());
    assert_eq!(gw.upstream.seen().len(), before, "the upstream saw the refused request");
    let v = gw.get("/account/security/paths", &token).await.json();
    let offered: Vec<&str> = v["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .flat_map(|p| p["integrate"].as_array().expect("integrate").iter())
        .filter_map(|i| i["protocol"].as_str())
        .collect();
    assert!(!offered.contains(&"path"), "the console offers the pass-through: {offered:?}");
    let open = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let v = gw.get("/account/security/paths", &open).await.json();
    assert!(v.to_string().contains("\"protocol\":\"path\""), "an unfenced viewPlus token is offered it: {v}");
}

/// Attacker round 4 (low): conditional headers reached the upstream for answers the
/// gateway filters, so a property-fenced token got a 304 for a guess of the
/// unfiltered answer's `ETag`: an oracle on hidden content. They are removed for
/// every answer the gateway reads; relayed ones keep them.
#[tokio::test]
async fn conditional_requests_never_reach_the_upstream_for_filtered_answers() {
    let gw = TestGateway::with_config(CONFIG).await;
    let fenced = gw.token_fenced("roads", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let conditionals = [
        ("if-none-match", "\"unfiltered-etag\""),
        ("if-modified-since", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ("if-match", "*"),
        ("if-unmodified-since", "Tue, 01 Dec 2026 00:00:00 GMT"),
    ];
    let bearer = format!("Bearer {fenced}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(conditionals);
    let r = gw.send(Method::GET, "/ogc/api/roads/collections/osm/items?f=json", &headers, Bytes::new()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let seen = gw.upstream.last();
    assert!(seen.uri.contains("/collections/osm/items"), "{}", seen.uri);
    for (name, _) in conditionals {
        assert!(seen.headers.get(name).is_none(), "{name} reached the upstream: {:?}", seen.headers);
    }
}
