//! OGC requests through the gateway with an in-process upstream: every deny path,
//! capabilities rewriting, and response filtering (GeoJSON, MVT) with bounded memory.

use bytes::Bytes;
use http::{Method, StatusCode};
use prost::Message as _;

use crate::support::TestGateway;
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;
use tilegate::store::{now_unix, AccessSpec};

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
layers = ["osm", "places"]
properties = ["name", "secret_note", "population"]
[path.upstream]
wms = "http://{up}/wms"
wfs = "http://{up}/wfs"
ogcapi = "http://{up}/api"
mvt = "http://{up}/mvt/{z}/{x}/{y}"
[[path]]
id = "broken"
parent = "maps"
kind = "vector"
layers = ["osm"]
[path.upstream]
wms = "http://{up}/plain"
mvt = "http://{up}/plain/{z}/{x}/{y}"
"#;

async fn gateway() -> TestGateway {
    TestGateway::with_config(CONFIG).await
}

async fn fenced_token(gw: &TestGateway, tier: Tier, fence: Fence, properties: Option<Vec<&str>>) -> String {
    let access = vec![AccessSpec {
        path_id: "roads".into(),
        tier,
        fence,
        properties: properties.map(|p| p.into_iter().map(String::from).collect()),
    }];
    let minted = tilegate::admin::mint(
        "tg",
        "t".into(),
        Scope::All,
        now_unix(),
        None,
        access,
        tilegate::admin::Minter { creator: None, client: "t".into() },
    )
    .expect("mint");
    gw.store().create(minted.row).await.expect("create");
    minted.secret.expose().to_owned()
}

const MAP: &str = "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:3857&BBOX=0,0,100000,100000&WIDTH=256&HEIGHT=256&FORMAT=image/png";

#[tokio::test]
async fn every_ogc_deny_path() {
    let gw = gateway().await;
    let reader = gw.token(&[("roads", Tier::ViewPlus)]).await;
    let viewer = gw.token(&[("roads", Tier::View)]).await;
    let other = gw.token(&[("broken", Tier::Admin)]).await;
    let fenced = fenced_token(&gw, Tier::ViewPlus, Fence::new(Some(&[(1, 1, 0)]), None).expect("fence"), None).await;
    let cases: Vec<(&str, String, &String, u16, &str)> = vec![
        ("allowed map", MAP.to_owned(), &viewer, 200, ""),
        ("duplicate parameter", "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&layers=osm&STYLES=&CRS=EPSG:3857&BBOX=0,0,1,1&WIDTH=1&HEIGHT=1&FORMAT=image/png".to_owned(), &viewer, 400, "bad_request"),
        ("unknown request", "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetSecrets".to_owned(), &viewer, 400, ""),
        ("layer not covered", MAP.replace("LAYERS=osm", "LAYERS=osm,secret"), &viewer, 403, "layer_not_covered"),
        ("tier too low", "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetFeatureInfo&LAYERS=osm&QUERY_LAYERS=osm&STYLES=&CRS=EPSG:3857&BBOX=0,0,100000,100000&WIDTH=256&HEIGHT=256&I=1&J=1&INFO_FORMAT=application/json&FORMAT=image/png".to_owned(), &viewer, 403, "tier_too_low"),
        ("vendor parameter", format!("{MAP}&CQL_FILTER=name='x'"), &viewer, 400, "bad_request"),
        ("unknown parameter", format!("{MAP}&FOO=1"), &viewer, 400, "bad_request"),
        ("invisible path hides malformed requests", "REQUEST=Nonsense&&&".to_owned(), &other, 404, "path_not_found"),
        ("unknown CRS, fenced", MAP.replace("EPSG:3857", "EPSG:27700"), &fenced, 403, "unsupported_crs"),
        ("unknown CRS, unfenced", MAP.replace("EPSG:3857", "EPSG:27700"), &reader, 200, ""),
        ("malformed bbox", MAP.replace("BBOX=0,0,100000,100000", "BBOX=0,0,NaN,1"), &reader, 400, "bad_request"),
        ("image too large", MAP.replace("WIDTH=256", "WIDTH=5000"), &reader, 400, "bad_request"),
    ];
    for (name, query, token, status, reason) in cases {
        let r = gw.get(&format!("/ogc/wms/roads?{query}"), token).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text());
        if !reason.is_empty() {
            assert_eq!(r.reason(), reason, "{name}");
        }
    }
    assert_eq!(
        gw.get("/ogc/wcs/roads?SERVICE=WCS&REQUEST=GetCapabilities", &reader).await.status,
        StatusCode::NOT_FOUND,
        "a protocol the path does not configure"
    );

    let auth = format!("Bearer {reader}");
    let transaction = r#"<wfs:Transaction service="WFS" version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"><wfs:Delete typeName="osm"><fes:Filter><fes:ResourceId rid="osm.1"/></fes:Filter></wfs:Delete></wfs:Transaction>"#;
    let r = gw
        .send(
            Method::POST,
            "/ogc/wfs/roads",
            &[("authorization", &auth), ("content-type", "text/xml")],
            Bytes::from(transaction),
        )
        .await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "tier_too_low"), "{}", r.text());
    let r = gw
        .send(
            Method::POST,
            "/ogc/wfs/roads",
            &[("authorization", &auth), ("content-type", "text/xml")],
            Bytes::from_static(b"<wfs:GetFeature"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let editor = gw.token(&[("roads", Tier::Edit)]).await;
    let auth = format!("Bearer {editor}");
    let r = gw
        .send(
            Method::POST,
            "/ogc/wfs/roads",
            &[("authorization", &auth), ("content-type", "text/xml")],
            Bytes::from(transaction),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = gw.upstream.last();
    assert_eq!((seen.method, seen.uri.as_str()), (Method::POST, "/wfs"), "the judged XML body went upstream");

    let (ogc_only, _) = gw.token_with(&[("roads", Tier::View)], Fence::default(), Scope::Ogc, None).await;
    assert_eq!(
        gw.get(&format!("/ogc/wms/roads?{MAP}"), &ogc_only).await.status,
        StatusCode::OK,
        "ogc scope works on /ogc"
    );
}

#[tokio::test]
async fn capabilities_point_at_the_gateway_and_hide_other_layers() {
    let gw = gateway().await;
    let token = gw.token(&[("roads", Tier::View)]).await;
    let r = gw.get("/ogc/wms/roads?SERVICE=WMS&REQUEST=GetCapabilities", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    assert!(!text.contains(&gw.upstream.addr.to_string()), "upstream address left: {text}");
    assert!(text.contains("https://maps.example.org/ogc/wms/roads?"), "{text}");
    assert!(text.contains("<Name>osm</Name>") && !text.contains("<Name>secret</Name>"), "{text}");
    let seen = gw.upstream.last();
    assert!(
        !seen.headers.contains_key("x-forwarded-host") && !seen.headers.contains_key("x-forwarded-proto"),
        "the upstream is asked for its own URLs where the gateway rewrites them"
    );
    assert!(seen.headers.contains_key("x-forwarded-for"));

    let r = gw
        .send(
            Method::GET,
            &format!("/ogc/wms/roads?SERVICE=WMS&REQUEST=GetCapabilities&token={token}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert!(r.text().contains(&format!("https://maps.example.org/ogc/wms/roads?token={token}")), "{}", r.text());
    assert!(!gw.upstream.last().uri.contains("token"), "the upstream never sees the token");

    let r =
        gw.get("/ogc/wms/broken?SERVICE=WMS&REQUEST=GetCapabilities", &gw.token(&[("broken", Tier::View)]).await).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::BAD_GATEWAY, "upstream_bad_document"),
        "a document that does not parse is never passed through"
    );
}

#[tokio::test]
async fn vector_tiles_lose_hidden_properties_and_broken_tiles_are_502() {
    let gw = gateway().await;
    let open = gw.token(&[("roads", Tier::View)]).await;
    let fenced = fenced_token(&gw, Tier::View, Fence::default(), Some(vec!["name"])).await;
    let keys = |body: &Bytes| {
        let tile = tilegate::filter::mvt::Tile::decode(body.as_ref()).expect("a valid tile");
        tile.layers[0].keys.clone()
    };
    let r = gw.get("/ogc/mvt/roads/3/4/2", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(keys(&r.body), ["name", "secret_note", "population"]);
    let r = gw.get("/ogc/mvt/roads/3/4/2", &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(keys(&r.body), ["name"]);
    assert_eq!(r.headers["content-length"], r.body.len().to_string().as_str());
    // A client negotiating MLT (MapLibre): a tile the gateway reads — under a property
    // fence, or on a path that declares its layers (`roads` does), whatever the token —
    // is asked for as MVT, which it can read, not MLT (a 502 for every such token).
    let mlt = "application/vnd.maplibre-vector-tile, application/vnd.mapbox-vector-tile;q=0.5";
    for (token, expected) in [(&fenced, tilegate::ogc::martin::MVT_ACCEPT), (&open, tilegate::ogc::martin::MVT_ACCEPT)]
    {
        let r = gw
            .send(
                Method::GET,
                "/ogc/mvt/roads/3/4/2",
                &[("authorization", &format!("Bearer {token}")), ("accept", mlt)],
                Bytes::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(gw.upstream.last().headers["accept"], expected);
    }

    let broken = gw.token_with(&[("broken", Tier::View)], Fence::default(), Scope::All, None).await.0;
    let minted = tilegate::admin::mint(
        "tg",
        "t".into(),
        Scope::All,
        now_unix(),
        None,
        vec![AccessSpec {
            path_id: "broken".into(),
            tier: Tier::View,
            fence: Fence::default(),
            properties: Some(vec![]),
        }],
        tilegate::admin::Minter { creator: None, client: "t".into() },
    )
    .expect("mint");
    gw.store().create(minted.row).await.expect("create");
    let r = gw.get("/ogc/mvt/broken/3/4/2", minted.secret.expose()).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "a tile that does not decode is never passed through");
    assert_eq!(
        gw.get("/ogc/mvt/broken/3/4/2", &broken).await.status,
        StatusCode::BAD_GATEWAY,
        "a path that declares its layers reads every tile to drop the others, so an unreadable one is refused"
    );
}

#[tokio::test]
async fn geojson_items_lose_hidden_properties() {
    let gw = gateway().await;
    let fenced = fenced_token(&gw, Tier::ViewPlus, Fence::default(), Some(vec!["name", "population"])).await;
    let r = gw.get("/ogc/api/roads/collections/osm/items?limit=50", &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.headers.get("content-length").is_none() || r.headers["content-length"] == r.body.len().to_string().as_str()
    );
    let doc = r.json();
    let features = doc["features"].as_array().expect("features");
    assert_eq!(features.len(), 50);
    for f in features {
        let keys: Vec<&String> = f["properties"].as_object().expect("props").keys().collect();
        assert_eq!(keys, ["name", "population"]);
    }
    let r = gw.get("/ogc/api/roads/collections/osm/items?limit=5&sortby=secret_note", &fenced).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "property_fenced"));
    let r = gw.get("/ogc/api/roads/collections/osm/items?limit=5&colour=red", &fenced).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::FORBIDDEN, "property_fenced"),
        "names outside the layer's schema are refused too"
    );
}

/// The gateway as a separate process, so its own peak memory can be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_far_larger_than_the_filter_buffers_streams_in_bounded_memory() {
    let upstream = crate::support::TestUpstream::start().await;
    use crate::support::ops::{cli, free_port, Binary};
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config =
        CONFIG.replace("{up}", &upstream.addr.to_string()).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config).expect("write");
    let token = cli(
        &config_path,
        &["token", "create", "--path", "roads", "--tier", "viewPlus", "--property", "name", "--description", "mem"],
    );
    let token = token.lines().next().expect("token").to_owned();
    let server = Binary::serve(&config_path, format!("127.0.0.1:{port}").parse().expect("addr")).await;
    let pid = server.child.id();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    // ~95 MB of GeoJSON, generated as it streams.
    let req = http::Request::get(format!("http://127.0.0.1:{port}/ogc/api/roads/collections/osm/items?limit=700000"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())
        .expect("req");
    let res = client.request(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let (mut received, mut tail) = (0usize, Vec::new());
    use http_body_util::BodyExt as _;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            received += data.len();
            assert!(!data.windows(6).any(|w| w == b"secret"), "a hidden property leaked");
            tail = data.to_vec();
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM");
    drop(server);
    assert!(received > 40_000_000, "{received} bytes came through");
    assert!(tail.ends_with(b"]}"), "the document ends properly");
    assert!(
        peak_kb < 64 * 1024,
        "the gateway's peak memory was {peak_kb} kB while filtering ~95 MB: it must not grow with the response"
    );
}

/// Regression: a gzip or deflate GeoJSON answer through the filter arrived as an empty
/// 200 (the decompressor was never finished); a coding the gateway cannot undo must
/// be a 502, never the body as it is.
#[tokio::test]
async fn compressed_geojson_answers_are_filtered_whole() {
    let config = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[[path]]
id = "gz"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/gzip"
[[path]]
id = "zlib"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/deflate"
[[path]]
id = "br"
kind = "vector"
layers = ["c"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/coded/br"
"#;
    let gw = TestGateway::with_config(config).await;
    for path in ["gz", "zlib", "br"] {
        let access = vec![AccessSpec {
            path_id: path.into(),
            tier: Tier::ViewPlus,
            fence: Fence::new(Some(&[(1, 1, 0)]), None).expect("fence"),
            properties: Some(vec!["name".into()]),
        }];
        let minted = tilegate::admin::mint(
            "tg",
            "t".into(),
            Scope::All,
            now_unix(),
            None,
            access,
            tilegate::admin::Minter { creator: None, client: "t".into() },
        )
        .expect("mint");
        gw.store().create(minted.row).await.expect("create");
        let token = minted.secret.expose().to_owned();
        let r = gw.get(&format!("/ogc/api/{path}/collections/c/items?f=json"), &token).await;
        if path == "br" {
            assert_eq!(r.status.as_u16(), 502, "{path}: {}", r.text());
            assert!(!r.text().contains("secret_note"), "{path}");
            continue;
        }
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text());
        assert!(r.headers.get("content-encoding").is_none(), "{path}: the answer is sent decoded");
        let doc = r.json();
        let features = doc["features"].as_array().expect("features");
        // Points at lon 0.5..89.5, lat 0.5..59.5: all inside tile 1/1/0 (lon 0..180, lat 0..85).
        assert_eq!(features.len(), 2000, "{path}: every feature, decoded to the end");
        assert!(!r.text().contains("secret_note"), "{path}: hidden property filtered");
    }
}
