//! End to end: the real gateway in front of real MapProxy (WMS, WMTS KVP and REST,
//! XYZ and TMS tiles from its debug source) and real pygeoapi (OGC API Features),
//! with OWSLib as the client. `scripts/e2e-setup` (run by `scripts/test`) installs them.

use std::process::Output;

use http::StatusCode;
use serde_json::Value;

use crate::support::upstreams::{self, MapProxy, PyGeoApi};
use crate::support::{fixtures, TestGateway};
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;

/// A gateway in front of the shared MapProxy and pygeoapi, with `public_url` equal to
/// its real address (OWSLib follows the URLs in the capabilities it reads).
async fn gateway() -> (TestGateway, &'static MapProxy, &'static PyGeoApi) {
    let (mp, pg) =
        tokio::task::spawn_blocking(|| (MapProxy::shared(), PyGeoApi::shared())).await.expect("servers start");
    let port = crate::support::ops::free_port();
    let config = format!(
        "{}[[path]]\nid = \"maps\"\nkind = \"folder\"\n{}{}{}",
        fixtures::server_at(port),
        fixtures::mapproxy_basemap("maps", &mp.base),
        format_args!(
            "[[path]]\nid = \"basemap-tms\"\nparent = \"maps\"\nkind = \"raster\"\n[path.upstream]\nxyz = \"{}/tiles/osm/GLOBAL_WEBMERCATOR/{{z}}/{{x}}/{{-y}}.png?origin=sw\"\n",
            mp.base
        ),
        fixtures::pygeoapi_places(None, &pg.base)
    );
    (TestGateway::with_config(&config).await, mp, pg)
}

async fn client(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        upstreams::run_client("owslib_client.py", &args)
    })
    .await
    .expect("client runs")
}

fn args(parts: &[&str], token: &str) -> Vec<String> {
    let mut v: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
    v.push("--header".into());
    v.push(format!("Authorization: Bearer {token}"));
    v
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, status: u16) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("HTTP {status}")), "expected HTTP {status}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_reads_wms_through_the_gateway_and_sees_only_covered_layers() {
    let (gw, mp, _) = gateway().await;
    let token = gw.token(&[("basemap", Tier::View)]).await;
    let wms = gw.url("/ogc/wms/basemap");
    for version in ["1.1.1", "1.3.0"] {
        let layers = ok(&client(args(&["wms-layers", &wms, "--version", version], &token)).await);
        let names: Vec<&str> = layers.lines().collect();
        assert!(names.contains(&"osm"), "{version}: {names:?}");
        assert!(!names.contains(&"aerial"), "{version}: a layer the path does not cover is hidden: {names:?}");
    }
    let out = std::env::temp_dir().join(format!("tg-e2e-{}.png", std::process::id()));
    let out_s = out.to_string_lossy().into_owned();
    ok(&client(args(&["wms-getmap", &wms, "osm", "0,40,10,50", "EPSG:4326", &out_s, "--version", "1.3.0"], &token))
        .await);
    let png = std::fs::read(&out).expect("map written");
    assert!(png.starts_with(b"\x89PNG"), "a real map came back");
    let _ = std::fs::remove_file(&out);
    let via_gateway = mp.requests().iter().filter(|r| r.query.contains("GetMap")).count();
    assert!(via_gateway >= 1, "OWSLib's GetMap went to MapProxy through the rewritten URL");

    // The capabilities document carries no upstream address.
    let caps = gw.get("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0", &token).await;
    assert_eq!(caps.status, StatusCode::OK);
    let text = caps.text();
    assert!(!text.contains(&format!("127.0.0.1:{}", mp.port)), "upstream URL left in WMS capabilities");
    assert!(text.contains(&gw.url("/ogc/wms/basemap")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_reads_wmts_and_a_tile_and_the_token_travels_in_the_query_too() {
    let (gw, mp, _) = gateway().await;
    let token = gw.token(&[("basemap", Tier::View)]).await;
    let wmts = gw.url("/ogc/wmts/basemap");
    let layers = ok(&client(args(&["wmts-layers", &wmts], &token)).await);
    assert_eq!(layers.lines().collect::<Vec<_>>(), ["osm"]);
    let out = std::env::temp_dir().join(format!("tg-e2e-wmts-{}.png", std::process::id()));
    let out_s = out.to_string_lossy().into_owned();
    ok(&client(args(&["wmts-tile", &wmts, "osm", "GLOBAL_WEBMERCATOR", "05", "10", "16", &out_s], &token)).await);
    assert!(std::fs::read(&out).expect("tile").starts_with(b"\x89PNG"));
    let _ = std::fs::remove_file(&out);

    // A desktop client that can only put the token in the URL gets it back in every URL.
    let caps = gw
        .send(
            http::Method::GET,
            &format!("/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetCapabilities&token={token}"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(caps.status, StatusCode::OK);
    let text = caps.text();
    assert!(text.contains(&format!("token={token}")), "the token is appended to rewritten URLs");
    assert!(!text.contains(&format!("127.0.0.1:{}", mp.port)));
    assert!(!mp.requests().iter().any(|r| r.query.contains(&token[3..20])), "MapProxy never sees the token");

    // REST capabilities and a REST tile.
    let rest = gw.get("/ogc/wmts/basemap/1.0.0/WMTSCapabilities.xml", &token).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text());
    assert!(rest.text().contains(&gw.url("/ogc/wmts/basemap/osm/")), "{}", rest.text());
    assert!(!rest.text().contains(&format!("127.0.0.1:{}", mp.port)));
    let tile = gw.get("/ogc/wmts/basemap/osm/GLOBAL_WEBMERCATOR/05/16/10.png", &token).await;
    assert_eq!(tile.status, StatusCode::OK, "{}", tile.text());
    assert!(tile.body.starts_with(b"\x89PNG"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_reads_ogc_api_features_and_refusals_reach_the_client() {
    let (gw, _, pg) = gateway().await;
    let reader = gw.token(&[("places", Tier::ViewPlus)]).await;
    let api = gw.url("/ogc/api/places");
    let out = ok(&client(args(&["features", &api, "places", "--limit", "100"], &reader)).await);
    let items: Value = serde_json::from_str(&out).expect("items JSON");
    let features = items["features"].as_array().expect("features");
    assert!(features.len() >= 20, "{}", features.len());
    assert!(!out.contains(&format!("127.0.0.1:{}", pg.port)), "no pygeoapi URL reaches the client");

    let viewer = gw.token(&[("places", Tier::View)]).await;
    refused(&client(args(&["features", &api, "places"], &viewer)).await, 403);
    let elsewhere = gw.token(&[("basemap", Tier::Admin)]).await;
    refused(&client(args(&["features", &api, "places"], &elsewhere)).await, 404);
    refused(&client(args(&["wms-layers", &gw.url("/ogc/wms/basemap")], &viewer)).await, 404);

    let landing = gw.get("/ogc/api/places/?f=json", &reader).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.text());
    assert!(!landing.text().contains(&format!("127.0.0.1:{}", pg.port)), "{}", landing.text());
    for html in ["/ogc/api/places/?f=html", "/ogc/api/places/collections/places/items?f=html"] {
        let r = gw.get(html, &reader).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::NOT_ACCEPTABLE, "not_acceptable"), "{html}");
        assert!(!r.text().contains(&format!("127.0.0.1:{}", pg.port)));
    }
    let collections = gw.get("/ogc/api/places/collections?f=json", &reader).await;
    assert!(collections.text().contains(&gw.url("/ogc/api/places/collections/places")), "{}", collections.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_token_gets_tiles_inside_and_403_outside_on_every_protocol() {
    let (gw, _, _) = gateway().await;
    // Tile 2/2/1 covers lon 0..90, lat 0..66.5; maxZoom 6.
    let fence = Fence::new(Some(&[(2, 2, 1)]), Some(6)).expect("fence");
    let (token, _) = gw.token_with(&[("maps", Tier::View)], fence, Scope::Ogc, None).await;
    let cases: &[(&str, u16)] = &[
        ("/ogc/xyz/basemap/3/4/2.png", 200),
        ("/ogc/xyz/basemap/3/0/0.png", 403),
        ("/ogc/xyz/basemap/7/64/40.png", 403),
        // TMS rows count from the south: XYZ 3/4/2 is TMS 3/4/5.
        ("/ogc/xyz/basemap-tms/3/4/2.png", 200),
        ("/ogc/xyz/basemap-tms/3/4/6.png", 403),
        ("/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=GLOBAL_WEBMERCATOR&TILEMATRIX=03&TILEROW=2&TILECOL=4&FORMAT=image/png", 200),
        ("/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=GLOBAL_WEBMERCATOR&TILEMATRIX=03&TILEROW=2&TILECOL=1&FORMAT=image/png", 403),
        ("/ogc/wmts/basemap/osm/GLOBAL_WEBMERCATOR/03/4/2.png", 200),
        ("/ogc/wmts/basemap/osm/GLOBAL_WEBMERCATOR/03/2/4.png", 403),
        // Each box is inside the fence (lon 0..90, lat 0..66.5) only under the right
        // axis order: WMS 1.3.0 EPSG:4326 is lat,lon; 1.1.1 is lon,lat.
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&LAYERS=osm&STYLES=&CRS=EPSG:4326&BBOX=10,70,20,80&WIDTH=256&HEIGHT=256&FORMAT=image/png", 200),
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&LAYERS=osm&STYLES=&CRS=EPSG:4326&BBOX=70,10,80,20&WIDTH=256&HEIGHT=256&FORMAT=image/png", 403),
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&LAYERS=osm&STYLES=&CRS=CRS:84&BBOX=70,10,80,20&WIDTH=256&HEIGHT=256&FORMAT=image/png", 200),
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1&LAYERS=osm&STYLES=&SRS=EPSG:4326&BBOX=70,10,80,20&WIDTH=256&HEIGHT=256&FORMAT=image/png", 200),
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1&LAYERS=osm&STYLES=&SRS=EPSG:4326&BBOX=10,70,20,80&WIDTH=256&HEIGHT=256&FORMAT=image/png", 403),
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1&LAYERS=osm&STYLES=&SRS=EPSG:3857&BBOX=1113194,1118890,2226389,2273030&WIDTH=256&HEIGHT=256&FORMAT=image/png", 200),
        // Inside, but 0.01° across 256 px is zoom 17, above maxZoom 6.
        ("/ogc/wms/basemap?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1&LAYERS=osm&STYLES=&SRS=EPSG:4326&BBOX=5,40,5.01,40.01&WIDTH=256&HEIGHT=256&FORMAT=image/png", 403),
    ];
    for (path, status) in cases {
        let r = gw.get(path, &token).await;
        assert_eq!(
            r.status.as_u16(),
            *status,
            "{path}: {}",
            if r.status.is_success() { String::new() } else { r.text() }
        );
        if *status == 200 {
            assert!(r.body.starts_with(b"\x89PNG"), "{path}");
        }
    }
    let caps = gw.get("/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetCapabilities", &token).await.text();
    assert!(caps.contains("TileMatrixSetLimits"), "a fenced token's WMTS capabilities show its limits");
    assert!(caps.contains("<MinTileRow>2</MinTileRow>") || caps.contains("MinTileRow>2<"), "{caps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_fenced_token_sees_only_its_properties() {
    let (gw, _, pg) = gateway().await;
    let token = gw
        .token_fenced(
            "places",
            Tier::ViewPlus,
            Fence::new(Some(&[(2, 2, 1)]), None).expect("fence"),
            Some(&["name", "population"]),
        )
        .await;

    let items = gw.get("/ogc/api/places/collections/places/items?f=json&limit=100", &token).await;
    assert_eq!(items.status, StatusCode::OK, "{}", items.text());
    let doc = items.json();
    let features = doc["features"].as_array().expect("features");
    assert!(!features.is_empty());
    for f in features {
        let keys: Vec<&String> = f["properties"].as_object().expect("properties").keys().collect();
        assert!(keys.iter().all(|k| *k == "name" || *k == "population"), "hidden keys leaked: {keys:?}");
        // Every feature intersects the fence tile (lon 0..90, lat 0..66.5).
        let c = &f["geometry"]["coordinates"];
        if f["geometry"]["type"] == "Point" {
            let (lon, lat) = (c[0].as_f64().expect("lon"), c[1].as_f64().expect("lat"));
            assert!((0.0..=90.0).contains(&lon) && (0.0..=66.6).contains(&lat), "feature outside the fence: {f}");
        }
    }
    assert!(!items.text().contains("secret_note"));

    let q = gw.get("/ogc/api/places/collections/places/queryables?f=json", &token).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text());
    assert!(
        q.text().contains("population") && !q.text().contains("secret_note") && !q.text().contains("country"),
        "{}",
        q.text()
    );

    for path in [
        "/ogc/api/places/collections/places/items?f=json&bbox=0,40,10,50&sortby=secret_note",
        "/ogc/api/places/collections/places/items?f=json&bbox=0,40,10,50&country=FR",
        "/ogc/api/places/collections/places/items?f=json&bbox=0,40,10,50&filter=secret_note%3D%27x%27",
        "/ogc/api/places/collections/places/items?f=json&bbox=0,40,10,50&properties=name,country",
    ] {
        let r = gw.get(path, &token).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "property_fenced"), "{path}");
    }
    let r = gw.get("/ogc/api/places/collections/places/items?f=html", &token).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::FORBIDDEN, "unbounded_feature_request"),
        "HTML cannot be filtered by geometry"
    );
    // A bbox no other test uses, to find this request in the shared server's log.
    let r = gw.get("/ogc/api/places/collections/places/items?f=html&bbox=5.4321,40,10,50", &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "HTML cannot be filtered: {}", r.text());
    assert!(!pg.requests().iter().any(|q| q.query.contains("5.4321")), "refused before anything reached pygeoapi");
    assert!(r.text().contains("application/geo+json"), "{}", r.text());
}

/// Regression (HIGH): with `crs=…/EPSG/0/4326` pygeoapi answers latitude first, and the
/// geometry filter read it longitude first, so a feature outside the fence (Tromsø,
/// north of the fence tile) was delivered and one inside (Mumbai) dropped. The filter
/// now reads the answer in the CRS the request asked for; a CRS it cannot read is
/// refused for a fenced token.
#[tokio::test]
async fn a_fenced_token_gets_the_same_features_whatever_crs_it_asks_for() {
    let (gw, _, _) = gateway().await;
    let fence = Fence::new(Some(&[(2, 2, 1)]), None).expect("fence");
    let (token, _) = gw.token_with(&[("places", Tier::ViewPlus)], fence, Scope::All, None).await;
    let names = |crs: &str| {
        let path = format!("/ogc/api/places/collections/places/items?f=json&limit=100{crs}");
        let gw = &gw;
        let token = token.clone();
        async move {
            let r = gw.get(&path, &token).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
            let mut names: Vec<String> = r.json()["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f["properties"]["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    let lonlat = names("").await;
    assert!(lonlat.contains(&"Mumbai".to_owned()) && !lonlat.contains(&"Tromso".to_owned()), "{lonlat:?}");
    for crs in [
        "&crs=http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "&crs=http://www.opengis.net/def/crs/EPSG/0/4326",
        "&crs=http://www.opengis.net/def/crs/EPSG/0/3857",
    ] {
        assert_eq!(names(crs).await, lonlat, "{crs}");
    }
    let outside = gw
        .get(
            "/ogc/api/places/collections/places/items/tromso?f=json&crs=http://www.opengis.net/def/crs/EPSG/0/4326",
            &token,
        )
        .await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND, "{}", outside.text());
    let inside = gw
        .get(
            "/ogc/api/places/collections/places/items/mumbai?f=json&crs=http://www.opengis.net/def/crs/EPSG/0/4326",
            &token,
        )
        .await;
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.text());
    let r = gw
        .get("/ogc/api/places/collections/places/items?f=json&crs=http://www.opengis.net/def/crs/EPSG/0/27700", &token)
        .await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "unsupported_crs"), "{}", r.text());
}

/// Found by an outside attacker: with `Accept: application/ld+json` pygeoapi answered
/// JSON-LD, with the properties flattened to the top level where the property filter
/// did not look. The gateway now asks the upstream for the format it judged.
#[tokio::test]
async fn an_accept_header_cannot_choose_a_format_the_filter_does_not_read() {
    let (gw, _, _) = gateway().await;
    let token = gw.token_fenced("places", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let auth = format!("Bearer {token}");
    for path in ["/ogc/api/places/collections/places/items/paris", "/ogc/api/places/collections/places/items?limit=5"] {
        let r = gw
            .send(
                http::Method::GET,
                path,
                &[("authorization", &auth), ("accept", "application/ld+json")],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let text = r.text();
        assert!(
            !text.contains("secret_note") && !text.contains("population") && !text.contains("rendezvous"),
            "{path}: {text}"
        );
        assert!(!text.contains("\"@context\""), "{path}: JSON-LD came through: {text}");
    }
}

/// Found by an outside attacker: `/TileMatrixSets` links and the `$id` of queryables and
/// schemas named pygeoapi's own address. Every OGC API JSON document is rewritten.
#[tokio::test]
async fn ogc_api_schemas_and_tile_matrix_sets_name_no_upstream() {
    let (gw, _, pg) = gateway().await;
    let token = gw.token(&[("places", Tier::ViewPlus)]).await;
    let upstream = pg.base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    for path in [
        "/ogc/api/places/TileMatrixSets?f=json",
        "/ogc/api/places/collections/places/queryables?f=json",
        "/ogc/api/places/collections/places/schema?f=json",
    ] {
        let r = gw.get(path, &token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert!(!r.text().contains(&upstream), "{path} names the upstream {upstream}: {}", r.text());
    }
}

/// #12 (paging under a fence): pygeoapi paged over the whole collection, so a fenced
/// token walking `next` got pages the filter emptied and `next` links past its last
/// visible feature, which told it that the upstream holds more features (outside its
/// fence) for the same query. The gateway now asks pygeoapi only for the fence's
/// bounding box: with a one-tile fence every page is full and `next` ends with the
/// last feature inside. Measured on the 25 places, fence lon 0..90 / lat 0..66.5,
/// `limit=2`: before, 13 pages of 1, 2, 2, 2, 1, 1, 0, 0, 0, 1, 0, 1, 0 features (five
/// emptied by the filter, the last one too); now 6 full pages holding the same 11.
#[tokio::test]
async fn paging_under_a_fence_walks_only_the_fence() {
    let (gw, _, pg) = gateway().await;
    let fence = Fence::new(Some(&[(2, 2, 1)]), None).expect("fence");
    let (token, _) = gw.token_with(&[("places", Tier::ViewPlus)], fence, Scope::All, None).await;
    let public = gw.url("");
    let mut next = Some("/ogc/api/places/collections/places/items?f=json&limit=2".to_owned());
    let (mut pages, mut names) = (Vec::new(), Vec::new());
    while let Some(path) = next.take() {
        assert!(pages.len() < 30, "paging does not end: {pages:?}");
        let r = gw.get(&path, &token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let doc = r.json();
        let features = doc["features"].as_array().expect("features");
        pages.push(features.len());
        names.extend(features.iter().map(|f| f["properties"]["name"].as_str().unwrap_or("").to_owned()));
        next = doc["links"].as_array().into_iter().flatten().find(|l| l["rel"] == "next").map(|l| {
            let href = l["href"].as_str().expect("href");
            href.strip_prefix(public.trim_end_matches('/')).unwrap_or(href).to_owned()
        });
    }
    names.sort();
    let expected = [
        "Amsterdam",
        "Benelux zone",
        "Brussels",
        "Frankfurt",
        "Luxembourg",
        "Lyon",
        "Mumbai",
        "Paris",
        "Rome",
        "Strasbourg",
        "Zurich",
    ];
    assert_eq!(names, expected, "pages {pages:?}");
    assert!(pages.iter().all(|n| *n > 0), "no page the fence emptied: {pages:?}");
    assert_eq!(pages.len(), 6, "one page per two features inside, and no further `next`: {pages:?}");
    // What pygeoapi was asked: the fence's box, never the whole collection.
    let asked: Vec<String> =
        pg.requests().into_iter().filter(|q| q.query.contains("limit=2")).map(|q| q.query).collect();
    assert!(!asked.is_empty() && asked.iter().all(|q| q.contains("bbox=")), "{asked:?}");
}
