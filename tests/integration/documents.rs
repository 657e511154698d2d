//! What the documents the gateway serves advertise, against real pygeoapi, and what
//! real clients (GDAL/OGR) show of a refusal:
//!
//! - every link of every OGC API document (landing, conformance, collections,
//!   collection, items, queryables, schema, tile matrix sets, the API definition and
//!   its paths, JSON-LD `@id`, `$id`) answers through the gateway, or is not advertised;
//! - the API definition names only the path's collections and the token's properties;
//! - a geometry-filtered page counts what is on it (`numberReturned`), and
//!   `ogrinfo -so` reports the features the token gets;
//! - GDAL prints the gateway's reason for a refused OAPIF, WFS and WMS request.

use std::collections::{BTreeSet, VecDeque};
use std::process::{Command, Output};

use http::StatusCode;
use serde_json::Value;

use crate::support::upstreams::PyGeoApi;
use crate::support::TestGateway;
use tilegate::policy::Tier;
use tilegate::spatial::Fence;

/// A gateway in front of the shared pygeoapi (`places`), `public_url` its own address.
/// `hidden` covers no pygeoapi collection; `wms`/`wfs` name an upstream that is never
/// reached (every request there is refused first). `extra` is appended to the config.
async fn gateway(extra: &str) -> (TestGateway, &'static PyGeoApi) {
    let pg = tokio::task::spawn_blocking(PyGeoApi::shared).await.expect("pygeoapi starts");
    let port = crate::support::ops::free_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
path = "tilegate.db"
[[path]]
id = "places"
kind = "vector"
layers = ["places"]
properties = ["name", "population", "country", "secret_note"]
[path.upstream]
ogcapi = "{pg}"
[[path]]
id = "hidden"
kind = "vector"
layers = ["elsewhere"]
[path.upstream]
ogcapi = "{pg}"
[[path]]
id = "maps"
kind = "vector"
layers = ["lakes"]
[path.upstream]
wms = "http://127.0.0.1:1/wms"
wfs = "http://127.0.0.1:1/wfs"
{extra}
"#,
        pg = pg.base
    );
    (TestGateway::with_config(&config).await, pg)
}

/// Every URL on the gateway that `doc` names: `href`s, `$id`, `@id` and any other
/// string that starts with the gateway's address (templates left out).
fn gateway_urls(doc: &Value, base: &str, out: &mut Vec<String>) {
    match doc {
        Value::String(s) if s.starts_with(base) && !s.contains('{') => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| gateway_urls(i, base, out)),
        Value::Object(map) => map.values().for_each(|v| gateway_urls(v, base, out)),
        _ => {}
    }
}

/// Regression (#13.1, #13.4): the landing page linked the API definition (403),
/// `/processes`, `/jobs` and `/TileMatrixSets` (400), and conformance and JSON-LD
/// documents kept upstream URLs. Walks every link of every document reachable from
/// the landing page, and every path of the API definition, for an open, a fenced and
/// a property-fenced token: each answers below 400 and names no upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_link_an_ogc_api_document_advertises_answers_through_the_gateway() {
    let (gw, pg) = gateway("").await;
    let open = gw.token(&[("places", Tier::ViewPlus)]).await;
    let fenced =
        gw.token_fenced("places", Tier::ViewPlus, Fence::new(Some(&[(2, 2, 1)]), None).expect("fence"), None).await;
    let props = gw.token_fenced("places", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let base = gw.url("/ogc/api/places");
    let upstream = format!("127.0.0.1:{}", pg.port);
    for token in [&open, &fenced, &props] {
        let mut queue: VecDeque<(String, String)> = VecDeque::from([(format!("{base}/?f=json"), "start".to_owned())]);
        let mut seen = BTreeSet::new();
        let mut dead_upstream_links = BTreeSet::new();
        let mut definition = None;
        while let Some((url, from)) = queue.pop_front() {
            if !seen.insert(url.clone()) || seen.len() > 200 {
                continue;
            }
            let path = url.strip_prefix(&gw.url("")).expect("a gateway URL");
            let r = gw.get(path, token).await;
            if r.status.as_u16() >= 400 && r.reason() == "upstream_error" {
                // pygeoapi's own dead links (its `/TileMatrixSets` names itself
                // `/tileMatrixSets`, which it answers 404): the gateway passes the
                // upstream's status on; only a link the upstream answers is the gateway's
                // to keep working.
                let upstream_path = path.strip_prefix("/ogc/api/places").expect("under the path");
                let direct = status_of(pg.port, upstream_path).await;
                assert_eq!(direct, r.status.as_u16(), "{path} (linked from {from}): the upstream answers {direct}");
                dead_upstream_links.insert(upstream_path.to_owned());
                continue;
            }
            assert!(r.status.as_u16() < 400, "{path} (linked from {from}) answers {}: {}", r.status, r.text());
            for name in [http::header::LOCATION, http::header::LINK, http::header::CONTENT_LOCATION] {
                for v in r.headers.get_all(&name) {
                    assert!(!v.to_str().unwrap_or("").contains(&upstream), "{path}: {name}: {v:?}");
                }
            }
            let text = r.text();
            assert!(!text.contains(&upstream), "{path} names the upstream: {text}");
            let Ok(doc) = serde_json::from_slice::<Value>(&r.body) else { continue };
            if doc.get("openapi").is_some() {
                definition = Some(doc.clone());
            }
            let mut urls = Vec::new();
            gateway_urls(&doc, &base, &mut urls);
            queue.extend(urls.into_iter().map(|u| (u, path.to_owned())));
        }
        let definition = definition.expect("the landing page links the API definition (QGIS reads it first)");
        assert_eq!(definition["servers"][0]["url"], base, "the API definition's server is the gateway");
        for (path, item) in definition["paths"].as_object().expect("paths") {
            if path.contains('{') || item.get("get").is_none() {
                continue;
            }
            let r = gw.get(&format!("/ogc/api/places{path}?f=json"), token).await;
            assert!(r.status.as_u16() < 400, "API definition path {path} answers {}: {}", r.status, r.text());
        }
        assert!(
            dead_upstream_links.iter().all(|p: &String| p.starts_with("/tileMatrixSets")),
            "{dead_upstream_links:?}"
        );
        assert!(seen.iter().any(|u| u.contains("/conformance")), "{seen:?}");
        assert!(seen.iter().any(|u| u.contains("/collections/places/items")), "{seen:?}");
    }
}

/// The API definition for a path names only the path's collections, and for a
/// property-fenced token no hidden property (pygeoapi lists each as a parameter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_definition_is_trimmed_to_the_path_and_the_token() {
    let (gw, pg) = gateway("").await;
    let open = gw.token(&[("places", Tier::View)]).await;
    let r = gw.get("/ogc/api/places/openapi?f=json", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let doc = r.json();
    assert!(doc["paths"].get("/collections/places/items").is_some(), "{doc}");
    assert!(doc["paths"].get("/jobs").is_none(), "routes the gateway does not serve are not advertised");
    assert!(r.text().contains("secret_note"), "an open token sees every queryable");

    let props = gw.token_fenced("places", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let r = gw.get("/ogc/api/places/openapi", &props).await;
    assert_eq!(r.status, StatusCode::OK, "QGIS's Accept gets JSON: {}", r.text());
    assert!(!r.text().contains("secret_note") && !r.text().contains("population"), "{}", r.text());

    let elsewhere = gw.token(&[("hidden", Tier::View)]).await;
    let r = gw.get("/ogc/api/hidden/openapi?f=json", &elsewhere).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    assert!(!text.contains("/collections/places") && !text.contains("Places"), "{text}");
    assert!(!text.contains(&format!("127.0.0.1:{}", pg.port)), "{text}");
}

/// The status pygeoapi itself answers for `path_and_query` (HTTP/1.0, no keep-alive).
async fn status_of(port: u16, path_and_query: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("pygeoapi listens");
    let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut head = vec![0u8; 12];
    stream.read_exact(&mut head).await.expect("status line");
    String::from_utf8_lossy(&head[9..12]).parse().expect("a status code")
}

fn gdal(program: &str, args: &[&str], token: &str) -> Output {
    Command::new(program)
        .args(args)
        .env("GDAL_HTTP_HEADERS", format!("Authorization: Bearer {token}"))
        .env("GDAL_HTTP_MAX_RETRY", "0")
        .env("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", "none")
        .env("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap_or_else(|e| panic!("`{program}` (gdal-bin, installed by scripts/e2e-setup) does not run: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Regression (#13.5, #12 M3): with a fenced token pages of 3, 0, 0 features kept
/// `numberMatched: 7` and `numberReturned: 3, 3, 1`, so `ogrinfo -so OAPIF:` reported
/// 7 features while `ogr2ogr` got 3, and the token learnt how many lie outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_page_counts_what_is_on_it_and_ogrinfo_agrees() {
    let (gw, _) = gateway("").await;
    // Tile 2/2/1: lon 0..90, lat 0..66.5.
    let fenced =
        gw.token_fenced("places", Tier::ViewPlus, Fence::new(Some(&[(2, 2, 1)]), None).expect("fence"), None).await;
    let open = gw.token(&[("places", Tier::ViewPlus)]).await;
    let all = gw.get("/ogc/api/places/collections/places/items?f=json&limit=1000", &open).await.json();
    let total = all["features"].as_array().expect("features").len();
    let mut inside = 0;
    for offset in (0..total).step_by(5) {
        let page =
            gw.get(&format!("/ogc/api/places/collections/places/items?f=json&limit=5&offset={offset}"), &fenced).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let doc = page.json();
        let on_page = doc["features"].as_array().expect("features").len();
        assert_eq!(doc["numberReturned"], on_page, "offset {offset}: {doc}");
        assert!(doc.get("numberMatched").is_none(), "offset {offset}: the upstream's count leaks: {doc}");
        inside += on_page;
    }
    assert!(inside > 0 && inside < total, "the fence keeps some features: {inside} of {total}");

    let url = format!("OAPIF:{}", gw.url("/ogc/api/places"));
    let out = tokio::task::spawn_blocking(move || gdal("ogrinfo", &["-ro", "-so", &url, "places"], &fenced))
        .await
        .expect("ogrinfo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(&format!("Feature Count: {inside}")),
        "ogrinfo counts what the token gets ({inside}): {text}"
    );
}

/// Regression (#13.8): GDAL printed `HTTP error code : 403` and nothing else. OAPIF
/// shows the problem document of any status; GDAL's WFS and WMS (GetMap) drivers read
/// an exception only from a 200, which `ogc.exception_status = "ok"` gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_shows_the_gateways_reason_for_a_refusal() {
    let (gw, _) = gateway("[ogc]\nexception_status = \"ok\"").await;
    let viewer = gw.token(&[("places", Tier::View)]).await;
    let oapif = format!("OAPIF:{}", gw.url("/ogc/api/places"));
    let wfs = format!("WFS:{}?SERVICE=WFS&VERSION=2.0.0", gw.url("/ogc/wfs/maps"));
    let wms = format!(
        "WMS:{}?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=lakes&SRS=EPSG:4326&BBOX=0,0,10,10",
        gw.url("/ogc/wms/maps")
    );
    let (outs, viewer) = tokio::task::spawn_blocking(move || {
        let outs = [
            ("ogrinfo", gdal("ogrinfo", &["-ro", "-al", "-so", &oapif, "places"], &viewer), "tier_too_low"),
            ("ogrinfo", gdal("ogrinfo", &["-ro", "-so", &wfs], &viewer), "path_not_found"),
            (
                "gdal_translate",
                gdal("gdal_translate", &["-q", "-outsize", "64", "64", &wms, "/vsimem/tg.tif"], &viewer),
                "path_not_found",
            ),
        ];
        (outs, viewer)
    })
    .await
    .expect("gdal runs");
    for (program, out, reason) in &outs {
        let err = stderr(out);
        assert!(!out.status.success() || err.contains("ERROR"), "{program}: {err}");
        let shown = err.contains(&format!("reason: {reason}")) || err.contains(&format!(r#""reason":"{reason}""#));
        assert!(shown, "{program} shows the reason `{reason}`: {err}");
    }
    // The status stays for the token API and OGC API; only OGC exceptions are 200.
    let r = gw.get("/ogc/wfs/maps?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities", &viewer).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::OK, "path_not_found"), "{}", r.text());
    let r = gw.get("/ogc/api/places/collections/places/items?f=json", &viewer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.headers[http::header::CONTENT_TYPE], "application/problem+json");
}

/// By default an OGC exception keeps the refusal's status, in the protocol's format.
#[tokio::test]
async fn ogc_exceptions_keep_the_refusal_status_by_default() {
    let gw = TestGateway::with_config(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[[path]]
id = "maps"
kind = "raster"
layers = ["osm"]
[path.upstream]
wms = "http://{up}/wms"
wmts = "http://{up}/wmts"
"#,
    )
    .await;
    let fenced = gw.token_fenced("maps", Tier::View, Fence::new(Some(&[(3, 4, 2)]), None).expect("fence"), None).await;
    let map = "/ogc/wms/maps?SERVICE=WMS&REQUEST=GetMap&LAYERS=osm&STYLES=&FORMAT=image/png&WIDTH=256&HEIGHT=256";
    let cases = [
        (format!("{map}&VERSION=1.1.1&SRS=EPSG:4326&BBOX=-170,-80,-160,-70"), "application/vnd.ogc.se_xml", "ServiceExceptionReport version=\"1.1.1\""),
        (format!("{map}&VERSION=1.3.0&CRS=CRS:84&BBOX=-170,-80,-160,-70"), "text/xml", "xmlns=\"http://www.opengis.net/ogc\""),
        (
            "/ogc/wmts/maps?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=GoogleMapsCompatible&TILEMATRIX=3&TILEROW=0&TILECOL=0&FORMAT=image/png".to_owned(),
            "application/xml",
            "http://www.opengis.net/ows/1.1",
        ),
    ];
    for (path, media, marker) in &cases {
        let before = gw.upstream.seen().len();
        let r = gw.get(path, &fenced).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text());
        assert_eq!(r.headers[http::header::CONTENT_TYPE], *media, "{path}");
        assert!(r.text().contains(marker), "{path}: {}", r.text());
        assert_eq!(r.reason(), "outside_geofence", "{path}: {}", r.text());
        assert_eq!(gw.upstream.seen().len(), before, "refused before the upstream");
    }
    // EXCEPTIONS=INIMAGE: a PNG of the map's size, same status.
    let r = gw.get(&format!("{map}&VERSION=1.3.0&CRS=CRS:84&BBOX=-170,-80,-160,-70&EXCEPTIONS=INIMAGE"), &fenced).await;
    assert_eq!(
        (r.status, r.headers[http::header::CONTENT_TYPE].to_str().ok()),
        (StatusCode::FORBIDDEN, Some("image/png"))
    );
    assert!(r.body.starts_with(b"\x89PNG") && r.body[16..24] == [0, 0, 1, 0, 0, 0, 1, 0], "256×256");
    // No token: still the 401 challenge, in the exception format.
    let r = gw.send(http::Method::GET, &format!("{map}&VERSION=1.1.1"), &[], bytes::Bytes::new()).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "missing_token"));
    assert_eq!(r.headers.get_all(http::header::WWW_AUTHENTICATE).iter().count(), 2);
}
