//! martin as an upstream: the real gateway in front of a real martin (the binary that
//! `scripts/e2e-setup` installs into `$CARGO_HOME/bin`, or `$TILEGATE_MARTIN`), serving MBTiles fixtures this module generates with GDAL's
//! `ogr2ogr`/`gdal_translate` (two vector sources with several properties, one uncovered
//! vector source, one raster source), a sprite directory of SVGs and a DejaVu font.
//!
//! Each test starts its own martin on a free port (killed when dropped). The MapLibre
//! client path (TileJSON → `tiles` URL → tile) is read by GDAL's MVT driver.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use prost::Message as _;
use serde_json::Value;

use crate::support::ops::free_port;
use crate::support::TestGateway;
use tilegate::filter::mvt::Tile;
use tilegate::policy::Tier;
use tilegate::spatial::Fence;

/// The DejaVu font martin serves (Debian `fonts-dejavu-core`, installed by e2e-setup).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The martin binary: `$TILEGATE_MARTIN`, else where `scripts/e2e-setup` installs it
/// (`$CARGO_HOME/bin/martin`, default `~/.cargo/bin/martin`).
fn martin_bin() -> PathBuf {
    let bin = match std::env::var_os("TILEGATE_MARTIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => match std::env::var_os("CARGO_HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join("bin/martin"),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo/bin/martin"),
        },
    };
    assert!(
        bin.is_file(),
        "martin is not installed at {} — run scripts/martin-setup (or set TILEGATE_MARTIN)",
        bin.display()
    );
    bin
}

/// A running martin, killed on drop.
struct Martin {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Martin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Roads (three lines: Germany, Chile, across the prime meridian) and points of interest
/// (Frankfurt, Santiago, and Greenwich half a degree west of the prime meridian: in
/// the buffer GDAL writes around tile 1/1/0, 80/4096 of its width), each with a visible
/// `name` and hidden properties.
const ROADS: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"Rhine road","owner":"secret-co","lanes":2},"geometry":{"type":"LineString","coordinates":[[8,48],[9,50],[10,52]]}},
{"type":"Feature","properties":{"name":"Pampa road","owner":"secret-sa","lanes":1},"geometry":{"type":"LineString","coordinates":[[-70,-30],[-60,-35]]}},
{"type":"Feature","properties":{"name":"Meridian road","owner":"secret-x","lanes":4},"geometry":{"type":"LineString","coordinates":[[-20,30],[20,30]]}}]}"#;
const POIS: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"Frankfurt","secret":"s1"},"geometry":{"type":"Point","coordinates":[8.68,50.11]}},
{"type":"Feature","properties":{"name":"Santiago","secret":"s2"},"geometry":{"type":"Point","coordinates":[-70.6,-33.4]}},
{"type":"Feature","properties":{"name":"Greenwich","secret":"s3"},"geometry":{"type":"Point","coordinates":[-0.5,51.5]}}]}"#;
const SECRET: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"Bunker"},"geometry":{"type":"Point","coordinates":[9,50]}}]}"#;

/// One vector MBTiles source `{name}.mbtiles` with one layer `name`, zooms 0–7 (GDAL
/// writes gzip-compressed tiles, as tippecanoe does).
fn vector_source(dir: &Path, name: &str, geojson: &str) {
    let src = dir.join(format!("{name}.geojson"));
    std::fs::write(&src, geojson).expect("write geojson");
    run(Command::new("ogr2ogr").args(["-f", "MBTILES"]).arg(dir.join(format!("{name}.mbtiles"))).arg(&src).args([
        "-nln",
        name,
        "-dsco",
        "MINZOOM=0",
        "-dsco",
        "MAXZOOM=7",
    ]));
}

impl Martin {
    fn start() -> Martin {
        let bin = martin_bin();
        assert!(Path::new(FONT).is_file(), "{FONT} is missing — run scripts/e2e-setup (fonts-dejavu-core)");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        vector_source(d, "roads", ROADS);
        vector_source(d, "pois", POIS);
        vector_source(d, "secret", SECRET);
        run(Command::new("gdal_create")
            .args(["-of", "GTiff", "-outsize", "256", "256", "-bands", "3", "-burn", "200", "-ot", "Byte"])
            .args(["-a_srs", "EPSG:3857", "-a_ullr", "-20037508.34", "20037508.34", "20037508.34", "-20037508.34"])
            .arg(d.join("raster.tif")));
        run(Command::new("gdal_translate")
            .args(["-q", "-of", "MBTILES"])
            .arg(d.join("raster.tif"))
            .arg(d.join("raster.mbtiles")));
        let icons = d.join("icons");
        std::fs::create_dir(&icons).expect("mkdir");
        std::fs::write(
            icons.join("marker.svg"),
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="6" fill="red"/></svg>"#,
        )
        .expect("write svg");
        let port = free_port();
        let child = Command::new(bin)
            .arg("--listen-addresses")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--sprite")
            .arg(&icons)
            .arg("--font")
            .arg(FONT)
            .args(["roads.mbtiles", "pois.mbtiles", "secret.mbtiles", "raster.mbtiles"].map(|f| d.join(f)))
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("martin starts");
        let martin = Martin { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if crate::support::upstreams::http_get(&format!("{}/health", martin.base)).is_ok_and(|r| r.status == 200) {
                return martin;
            }
            assert!(Instant::now() < deadline, "martin did not answer /health within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// martin and a gateway in front of it (public URL = its real address, so clients can
/// follow the URLs the TileJSON names). Path `tiles` covers sources `roads` and `pois`
/// (not `secret`), path `raster` covers martin's raster source as if it were vector.
async fn setup() -> (TestGateway, Martin) {
    let martin = tokio::task::spawn_blocking(Martin::start).await.expect("martin");
    let port = free_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
path = "tilegate.db"
[[path]]
id = "tiles"
kind = "vector"
layers = ["roads", "pois"]
[path.upstream]
martin = "{m}"
[[path]]
id = "raster"
kind = "vector"
layers = ["raster"]
[path.upstream]
martin = "{m}"
"#,
        m = martin.base
    );
    (TestGateway::with_config(&config).await, martin)
}

/// The north-east quarter of the world (z1 tile x=1, y=0), maxZoom 6.
fn ne_fence() -> Fence {
    Fence::new(Some(&[(1, 1, 0)]), Some(6)).expect("fence")
}

async fn get_with(gw: &TestGateway, path: &str, token: &str, headers: &[(&str, &str)]) -> crate::support::Reply {
    let auth = format!("Bearer {token}");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    gw.send(Method::GET, path, &all, bytes::Bytes::new()).await
}

/// Layer name → (feature names, property keys) of an MVT body.
fn read_mvt(body: &[u8]) -> Vec<(String, Vec<String>, Vec<String>)> {
    let tile = Tile::decode(body).expect("the body is an MVT");
    tile.layers
        .iter()
        .map(|l| {
            let name_key = l.keys.iter().position(|k| k == "name");
            let names = l
                .features
                .iter()
                .filter_map(|f| {
                    let i = f.tags.chunks(2).find(|kv| Some(kv[0] as usize) == name_key)?[1] as usize;
                    l.values.get(i)?.string_value.clone()
                })
                .collect();
            (l.name.clone(), names, l.keys.clone())
        })
        .collect()
}

fn content_type(r: &crate::support::Reply) -> &str {
    r.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tilejson_is_rewritten_per_token_and_gdal_reads_the_tiles_it_names() {
    let (gw, martin) = setup().await;
    let open = gw.token(&[("tiles", Tier::View)]).await;
    let r = gw.get("/ogc/martin/tiles/roads", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!r.text().contains(&martin.base), "the upstream's address leaks: {}", r.text());
    let tj = r.json();
    assert_eq!(tj["tiles"], serde_json::json!([gw.url("/ogc/martin/tiles/roads/{z}/{x}/{y}")]));
    assert_eq!(tj["maxzoom"], 7);
    let fields = &tj["vector_layers"][0]["fields"];
    assert!(fields.get("owner").is_some() && fields.get("lanes").is_some(), "{tj}");

    let fenced = gw.token_fenced("tiles", Tier::View, ne_fence(), Some(&["name"])).await;
    // The token in the query: the TileJSON's tile URL carries it (MapLibre has no headers).
    let r = gw.send(Method::GET, &format!("/ogc/martin/tiles/roads?token={fenced}"), &[], bytes::Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tj = r.json();
    let tiles = tj["tiles"][0].as_str().expect("tiles").to_owned();
    assert_eq!(tiles, format!("{}?token={fenced}", gw.url("/ogc/martin/tiles/roads/{z}/{x}/{y}")));
    assert_eq!(tj["maxzoom"], 6, "limited to the fence's maxZoom: {tj}");
    let b: Vec<f64> = tj["bounds"].as_array().expect("bounds").iter().filter_map(Value::as_f64).collect();
    assert!(b[0] >= 0.0 && b[1] >= 0.0, "bounds inside the fence: {b:?}");
    assert_eq!(tj["vector_layers"][0]["fields"], serde_json::json!({"name": "String"}));

    // HEAD says the length a GET gets (regression: it said 0 for a filtered tile, and
    // GDAL's /vsicurl, which sizes a file by HEAD first, read an empty tile).
    let path = format!("/ogc/martin/tiles/roads/1/1/0?token={fenced}");
    let head = gw.send(Method::HEAD, &path, &[], bytes::Bytes::new()).await;
    let got = gw.send(Method::GET, &path, &[], bytes::Bytes::new()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.headers.get(http::header::CONTENT_LENGTH), got.headers.get(http::header::CONTENT_LENGTH));
    assert!(!got.body.is_empty());

    // A MapLibre-style client: the tile URL from the TileJSON, read by GDAL's MVT driver.
    let url = tiles.replace("{z}", "1").replace("{x}", "1").replace("{y}", "0");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("ogrinfo").args(["-ro", "-al", "-q"]).arg(format!("MVT:/vsicurl/{url}")).output()
    })
    .await
    .expect("join")
    .expect("ogrinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ogrinfo: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Rhine road"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("secret-co") && !text.contains("owner"), "hidden properties reach the client: {text}");
    assert!(!text.contains("Pampa road"), "a feature outside the fence: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_inside_outside_above_max_zoom_and_straddling() {
    let (gw, _martin) = setup().await;
    let fenced = gw.token_fenced("tiles", Tier::View, ne_fence(), Some(&["name"])).await;
    let r = gw.get("/ogc/martin/tiles/roads/1/1/0", &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.headers.get(http::header::CONTENT_ENCODING).is_none());
    let layers = read_mvt(&r.body);
    assert_eq!(layers.len(), 1);
    assert!(layers[0].1.contains(&"Rhine road".to_owned()), "{layers:?}");
    assert_eq!(layers[0].2, ["name"], "only the visible property: {layers:?}");

    let r = gw.get("/ogc/martin/tiles/roads/1/0/1", &fenced).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    // Zoom 7 inside the fence, above its maxZoom 6.
    let r = gw.get("/ogc/martin/tiles/roads/7/68/43", &fenced).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // The world tile straddles the fence: clipped, Chile's road is gone.
    let r = gw.get("/ogc/martin/tiles/roads/0/0/0", &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names = &read_mvt(&r.body)[0].1;
    assert!(names.contains(&"Rhine road".to_owned()) && !names.contains(&"Pampa road".to_owned()), "{names:?}");

    // gzip: martin's MBTiles tiles are gzip-compressed; the client asks for gzip too.
    let r = get_with(&gw, "/ogc/martin/tiles/pois/1/1/0", &fenced, &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status, StatusCode::OK);
    // Gzip as HTTP coding or inside the body (the MVT filter keeps a tile's own framing).
    let gzipped = r.headers.get(http::header::CONTENT_ENCODING).is_some_and(|v| v == "gzip");
    let body = if gzipped || r.body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut out).expect("gunzip");
        out
    } else {
        r.body.to_vec()
    };
    let layers = read_mvt(&body);
    // Tile 1/1/0 is the fence itself, but martin's tile carries Greenwich in its buffer,
    // west of the fence: clipped away (attacker round 9), as the open token shows it is there.
    assert_eq!((layers[0].1.clone(), layers[0].2.clone()), (vec!["Frankfurt".to_owned()], vec!["name".to_owned()]));
    let open = gw.token(&[("tiles", Tier::View)]).await;
    let r = gw.get("/ogc/martin/tiles/pois/1/1/0", &open).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut plain = Vec::new();
    let body = if r.body.starts_with(&[0x1f, 0x8b]) {
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain).expect("gunzip");
        &plain[..]
    } else {
        &r.body[..]
    };
    assert!(read_mvt(body)[0].1.contains(&"Greenwich".to_owned()), "the premise: martin's tile has a buffer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composites_catalog_and_what_martin_serves_besides() {
    let (gw, _martin) = setup().await;
    let open = gw.token(&[("tiles", Tier::View)]).await;
    let r = gw.get("/ogc/martin/tiles/roads,pois/0/0/0", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut names: Vec<String> = read_mvt(&r.body).into_iter().map(|l| l.0).collect();
    names.sort();
    assert_eq!(names, ["pois", "roads"]);
    // A composite with an uncovered member, and the uncovered source alone.
    for p in ["/ogc/martin/tiles/roads,secret/0/0/0", "/ogc/martin/tiles/secret/0/0/0", "/ogc/martin/tiles/secret"] {
        let r = gw.get(p, &open).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}: {}", r.text());
        assert!(!r.text().contains("Bunker"));
    }
    let r = gw.get("/ogc/martin/tiles/catalog", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cat = r.json();
    let mut sources: Vec<&String> = cat["tiles"].as_object().expect("tiles").keys().collect();
    sources.sort();
    assert_eq!(sources, ["pois", "roads"], "{cat}");
    assert!(cat["sprites"].get("icons").is_some(), "{cat}");
    // Fonts and sprites are view-tier assets, for a fenced token too.
    let fenced = gw.token_fenced("tiles", Tier::View, ne_fence(), Some(&["name"])).await;
    for (p, ty) in [
        ("/ogc/martin/tiles/sprite/icons.json", "application/json"),
        ("/ogc/martin/tiles/sprite/icons@2x.png", "image/png"),
        ("/ogc/martin/tiles/font/DejaVu%20Sans%20Book/0-255", "application/x-protobuf"),
    ] {
        let r = gw.get(p, &fenced).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.text());
        assert!(content_type(&r).starts_with(ty), "{p}: {}", content_type(&r));
    }
    // Everything else martin serves is refused, for every token.
    for p in ["/health", "/metrics", "/_/metrics", "/style/x", "/tiles/roads/0/0/0", "/sdf_sprite/icons.json", "/"] {
        let r = gw.get(&format!("/ogc/martin/tiles{p}"), &open).await;
        assert!(r.status.is_client_error(), "{p}: {} {}", r.status, r.text());
    }
    let r = gw.get("/ogc/martin/tiles/roads/0/0/0?fn=1", &open).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a query martin would hand to a function source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlt_only_for_unrestricted_tokens_and_unexpected_formats_fail_closed() {
    let (gw, _martin) = setup().await;
    let mlt = [("accept", "application/vnd.maplibre-tile")];
    let open = gw.token(&[("tiles", Tier::View)]).await;
    let r = get_with(&gw, "/ogc/martin/tiles/roads/0/0/0", &open, &mlt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(content_type(&r), "application/vnd.maplibre-tile");
    assert!(r.headers.get_all(http::header::VARY).iter().any(|v| v.to_str().is_ok_and(|v| v.contains("accept"))));
    assert!(Tile::decode(&r.body[..]).map_or(true, |t| t.layers.is_empty()), "an MLT body, not MVT");

    // Property-fenced, fenced (wholly inside), both: MVT, filtered, whatever they ask for.
    let props = gw.token_fenced("tiles", Tier::View, Fence::default(), Some(&["name"])).await;
    let fence = gw.token_fenced("tiles", Tier::View, ne_fence(), None).await;
    for (token, tile) in [(&props, "0/0/0"), (&fence, "1/1/0"), (&fence, "0/0/0")] {
        for accept in ["application/vnd.maplibre-tile", "application/vnd.maplibre-vector-tile, */*;q=0.1"] {
            let r = get_with(&gw, &format!("/ogc/martin/tiles/roads/{tile}"), token, &[("accept", accept)]).await;
            assert_eq!(r.status, StatusCode::OK, "{tile} {accept}: {}", r.text());
            assert!(
                content_type(&r).contains("protobuf") || content_type(&r).contains("mapbox"),
                "{}",
                content_type(&r)
            );
            let layers = read_mvt(&r.body);
            assert!(!layers.is_empty() && !layers[0].1.is_empty(), "{layers:?}");
            if token == &props {
                assert_eq!(layers[0].2, ["name"]);
            }
        }
    }
    // martin's raster source on a vector path: a PNG is no vector tile, for any token.
    let raster_open = gw.token(&[("raster", Tier::View)]).await;
    let r = gw.get("/ogc/martin/raster/raster/0/0/0", &raster_open).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_GATEWAY, "upstream_bad_document"), "{}", r.text());
}

/// What the gateway asks a martin upstream for, seen by the in-process recording
/// upstream (no martin needed): a fenced or property-fenced token's `Accept` is pinned
/// to MVT whatever it sent; an unrestricted token's passes; JSON documents are asked as JSON.
#[tokio::test]
async fn fenced_tokens_ask_martin_for_mvt_whatever_they_accept() {
    let gw = TestGateway::with_config(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://gw.example"
[store]
path = "tilegate.db"
[[path]]
id = "m"
kind = "vector"
layers = ["roads"]
[path.upstream]
martin = "http://{up}/mvt"
"#,
    )
    .await;
    let mlt = [("accept", "application/vnd.maplibre-tile")];
    let open = gw.token(&[("m", Tier::View)]).await;
    let props = gw.token_fenced("m", Tier::View, Fence::default(), Some(&["name"])).await;
    let fenced = gw.token_fenced("m", Tier::View, Fence::new(Some(&[(0, 0, 0)]), Some(3)).expect("fence"), None).await;
    let accept_seen = |gw: &TestGateway| {
        let last = gw.upstream.last();
        assert!(last.uri.ends_with("/mvt/roads/1/1/1"), "{}", last.uri);
        last.headers.get(http::header::ACCEPT).map(|v| v.to_str().unwrap_or("").to_owned())
    };
    let r = get_with(&gw, "/ogc/martin/m/roads/1/1/1", &open, &mlt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(accept_seen(&gw).as_deref(), Some("application/vnd.maplibre-tile"));
    for token in [&props, &fenced] {
        let r = get_with(&gw, "/ogc/martin/m/roads/1/1/1", token, &mlt).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(accept_seen(&gw).as_deref(), Some(tilegate::ogc::martin::MVT_ACCEPT));
        assert!(r.headers.get_all(http::header::VARY).iter().any(|v| v == "accept"));
    }
    // Any path below the martin base other than the routes it reads never reaches it.
    let before = gw.upstream.seen().len();
    // `%2C` is a comma to martin (actix decodes the segment): `roads%2Cother` would be a composite.
    for p in [
        "/health",
        "/metrics",
        "/_/metrics",
        "/style/x",
        "/roads/1/1/1/1",
        "/roads,roads/0/0/0",
        "/catalog/x",
        "/roads%2Cother/0/0/0",
        "/roads%2cother",
    ] {
        let r = gw.get(&format!("/ogc/martin/m{p}"), &open).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{p}: {}", r.text());
    }
    let r = gw.get("/ogc/martin/m/other/0/0/0", &open).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "layer_not_covered"));
    assert_eq!(gw.upstream.seen().len(), before, "refused requests reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_integrate_url_the_console_offers_for_martin_answers() {
    let (gw, martin) = setup().await;
    let token = gw.token(&[("tiles", Tier::View), ("raster", Tier::View)]).await;
    let checked = crate::support::integrate::every_integrate_url_answers(&gw, &token, &[&martin.base]).await;
    // One TileJSON per covered source: roads and pois on `tiles`, raster on `raster`.
    assert_eq!(checked, ["martin", "martin", "martin"]);
}
