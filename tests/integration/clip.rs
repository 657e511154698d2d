//! Clip instead of refuse (issue #14): tiles, maps and vector tiles that straddle a
//! token's geofence are served clipped, through the real gateway.
//!
//! Raster: real MapProxy tiles (its debug source), compared pixel by pixel with what
//! MapProxy itself answers; a fake upstream for the corrupt image. Vector: a fake
//! upstream serving a crafted tile, read back with tilegate's decoder and with GDAL's
//! MVT driver (`ogrinfo`). GDAL's WMTS driver builds a 128×128 overview through the
//! gateway for a fenced token. OGC API Tiles: real pygeoapi's tilesets (vector tiles GDAL
//! wrote from the places) advertise the fence's footprint as `tileMatrixSetLimits`, and
//! every tile they advertise is served. (QGIS rendering the world for a small fence:
//! `clients.rs`.)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use image::{Rgba, RgbaImage};
use prost::Message as _;
use tokio::net::TcpListener;

use crate::support::upstreams::{self, MapProxy};
use crate::support::TestGateway;
use tilegate::filter::mvt::{Feature, Layer, Tile, Value};
use tilegate::policy::Tier;
use tilegate::spatial::Fence;

/// The fence of the raster tests: zoom-4 tile 4/8/4, the north-west quarter of tile
/// 3/4/2 (pixels x 0‥127, y 0‥127 of a 256-pixel tile). MapProxy's debug source
/// writes the tile's address across its top rows, so the fence edge cuts the text.
fn quarter_fence() -> Fence {
    Fence::new(Some(&[(4, 8, 4)]), Some(8)).expect("fence")
}

fn inside_quarter(x: u32, y: u32) -> bool {
    x < 128 && y < 128
}

async fn mapproxy_gateway() -> (TestGateway, &'static MapProxy) {
    let mp = tokio::task::spawn_blocking(MapProxy::shared).await.expect("MapProxy starts");
    // `public_url` is the gateway's real address: GDAL follows the capabilities' URLs.
    let port = crate::support::ops::free_port();
    let config = format!(
        r##"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
path = "tilegate.db"
[[path]]
id = "basemap"
kind = "raster"
layers = ["osm"]
webmercator_matrix_sets = ["GLOBAL_WEBMERCATOR"]
background = "#ff0000"
[path.upstream]
wms = "{mp}/service"
wmts = "{mp}/service"
xyz = "{mp}/tiles/osm/GLOBAL_WEBMERCATOR/{{z}}/{{x}}/{{y}}.png"
[[path]]
id = "basemap-deny"
kind = "raster"
layers = ["osm"]
partial = "deny"
[path.upstream]
xyz = "{mp}/tiles/osm/GLOBAL_WEBMERCATOR/{{z}}/{{x}}/{{y}}.png"
"##,
        mp = mp.base
    );
    (TestGateway::with_config(&config).await, mp)
}

fn upstream_body(mp: &MapProxy, path: &str) -> Vec<u8> {
    let r = upstreams::http_get(&mp.url(path)).expect("MapProxy answers");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.body
}

fn rgba(png: &[u8]) -> RgbaImage {
    image::load_from_memory(png).expect("an image").to_rgba8()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapproxy_tile_straddling_the_fence_is_transparent_outside_and_pixel_identical_inside() {
    let (gw, mp) = mapproxy_gateway().await;
    let token = gw.token_fenced("basemap", Tier::View, quarter_fence(), None).await;
    let upstream = rgba(&upstream_body(mp, "/tiles/osm/GLOBAL_WEBMERCATOR/3/4/2.png"));

    let r = gw.get("/ogc/xyz/basemap/3/4/2.png", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "image/png");
    if let Some(out) = std::env::var_os("TILEGATE_WRITE_CLIPPED_TILE") {
        // How docs/clipped-tile.png (the README's picture) is made.
        std::fs::write(out, &r.body).expect("write the clipped tile");
    }
    let clipped = rgba(&r.body);
    assert_eq!(clipped.dimensions(), upstream.dimensions());
    let (mut inside, mut drawn_inside, mut hidden) = (0, 0, 0);
    for (x, y, p) in clipped.enumerate_pixels() {
        if inside_quarter(x, y) {
            assert_eq!(p, upstream.get_pixel(x, y), "inside pixel {x},{y} is MapProxy's");
            inside += 1;
            drawn_inside += usize::from(p[3] > 0);
        } else {
            assert_eq!(p, &Rgba([0, 0, 0, 0]), "outside pixel {x},{y} is transparent");
            hidden += usize::from(upstream.get_pixel(x, y)[3] > 0);
        }
    }
    assert_eq!(inside, 128 * 128);
    assert!(drawn_inside > 100 && hidden > 100, "the fence edge cuts MapProxy's text: {drawn_inside} / {hidden}");
    // The edge, pinned: column 127 and row 127 in, column 128 and row 128 out.
    assert_eq!(clipped.get_pixel(127, 127), upstream.get_pixel(127, 127));
    assert_eq!(clipped.get_pixel(128, 127)[3], 0);
    assert_eq!(clipped.get_pixel(127, 128)[3], 0);

    // The same tile through WMTS KVP is clipped the same way.
    let r = gw
        .get(
            "/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&FORMAT=image/png&TILEMATRIXSET=GLOBAL_WEBMERCATOR&TILEMATRIX=03&TILEROW=2&TILECOL=4",
            &token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let wmts = rgba(&r.body);
    assert_eq!(wmts.as_raw(), clipped.as_raw(), "WMTS and XYZ clip the same tile the same way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_wholly_inside_are_relayed_byte_for_byte_and_wholly_outside_stay_refused() {
    let (gw, mp) = mapproxy_gateway().await;
    let token = gw.token_fenced("basemap", Tier::View, quarter_fence(), None).await;
    let r = gw.get("/ogc/xyz/basemap/5/16/8.png", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.as_ref(), upstream_body(mp, "/tiles/osm/GLOBAL_WEBMERCATOR/5/16/8.png").as_slice());
    let r = gw.get("/ogc/xyz/basemap/3/0/0.png", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    let r = gw.get("/ogc/xyz/basemap/9/256/160.png", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "zoom_above_max"));
    // `partial = "deny"` refuses the straddling tile, as before clipping existed.
    let deny = gw.token_fenced("basemap-deny", Tier::View, quarter_fence(), None).await;
    let r = gw.get("/ogc/xyz/basemap-deny/3/4/2.png", &deny).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jpeg_map_gets_the_background_outside_the_fence() {
    let (gw, mp) = mapproxy_gateway().await;
    let token = gw.token_fenced("basemap", Tier::View, quarter_fence(), None).await;
    // Tile 3/4/2 in EPSG:3857 metres: x 0‥5009377.09, y 5009377.09‥10018754.17.
    let q = "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:3857&BBOX=0,5009377.085697312,5009377.085697312,10018754.171394624&WIDTH=256&HEIGHT=256&FORMAT=image/jpeg";
    let upstream = image::load_from_memory(&upstream_body(mp, &format!("/service?{q}"))).expect("jpeg").to_rgb8();
    let near = |a: &image::Rgb<u8>, b: &image::Rgb<u8>| a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) <= 24);
    for (query, background) in [(q.to_owned(), [255, 0, 0]), (format!("{q}&BGCOLOR=0x0000FF"), [0, 0, 255])] {
        let r = gw.get(&format!("/ogc/wms/basemap?{query}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.headers["content-type"], "image/jpeg");
        let map = image::load_from_memory(&r.body).expect("jpeg").to_rgb8();
        // Away from the edge (JPEG blocks blur it), outside is the background.
        for (x, y) in [(200, 60), (250, 250), (20, 200), (200, 120)] {
            assert!(near(map.get_pixel(x, y), &image::Rgb(background)), "{x},{y}: {:?}", map.get_pixel(x, y));
        }
        for (x, y) in [(20, 100), (100, 60), (60, 120)] {
            assert!(near(map.get_pixel(x, y), upstream.get_pixel(x, y)), "{x},{y} inside is the map");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_builds_a_wmts_overview_for_a_fenced_token() {
    let (gw, _) = mapproxy_gateway().await;
    let token = gw.token_fenced("basemap", Tier::View, quarter_fence(), None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("overview.png");
    let source = format!("WMTS:{}", gw.url("/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetCapabilities"));
    let out_s = out.to_string_lossy().into_owned();
    let header = format!("Authorization: Bearer {token}");
    let cache = dir.path().join("gdalwmscache");
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("gdal_translate")
            .args(["-q", "-of", "PNG", "-outsize", "128", "128", &source, &out_s])
            .env("GDAL_HTTP_HEADERS", header)
            // GDAL caches WMTS tiles under ./gdalwmscache unless told otherwise.
            .env("GDAL_DEFAULT_WMS_CACHE_PATH", &cache)
            .env("GDAL_HTTP_TIMEOUT", "60")
            .output()
            .expect("gdal_translate runs (Debian gdal-bin)")
    })
    .await
    .expect("joined");
    assert!(
        run.status.success(),
        "gdal_translate failed: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let img = rgba(&std::fs::read(&out).expect("the overview is written"));
    assert_eq!(img.dimensions(), (128, 128));
}

/// A fake upstream answering every request with `body` as `content_type`.
async fn fixed_upstream(content_type: &'static str, body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = Bytes::from(body);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let mut res = http::Response::new(Full::new(body));
                        res.headers_mut().insert("content-type", http::HeaderValue::from_static(content_type));
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn fake_gateway(up: SocketAddr) -> TestGateway {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[[path]]
id = "tiles"
kind = "raster"
[path.upstream]
xyz = "http://{up}/tiles/{{z}}/{{x}}/{{y}}.png"
[[path]]
id = "vector"
kind = "vector"
layers = ["places"]
properties = ["name", "secret"]
[path.upstream]
mvt = "http://{up}/mvt/{{z}}/{{x}}/{{y}}"
[[path]]
id = "api"
kind = "vector"
layers = ["places"]
[path.upstream]
ogcapi = "http://{up}/ogcapi"
"#
    );
    TestGateway::with_config(&config).await
}

#[tokio::test]
async fn an_image_the_gateway_cannot_decode_is_a_502_never_passed_unclipped() {
    for body in [b"<ServiceExceptionReport>no</ServiceExceptionReport>".to_vec(), b"\x89PNG\r\n\x1a\ncorrupt".to_vec()]
    {
        let gw = fake_gateway(fixed_upstream("image/png", body.clone()).await).await;
        let token = gw.token_fenced("tiles", Tier::View, quarter_fence(), None).await;
        let r = gw.get("/ogc/xyz/tiles/3/4/2.png", &token).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_GATEWAY, "upstream_bad_document"));
        assert!(!r.body.windows(4).any(|w| w == b"PNG\r" || w == b"Serv"), "nothing of the upstream body leaks");
        // Wholly inside, an image is relayed untouched (never decoded) once its first
        // bytes are an image's; a document labelled `image/png` is not relayed at all
        // (`proxy::sniff`, attacker round 4).
        let r = gw.get("/ogc/xyz/tiles/5/16/8.png", &token).await;
        if body.starts_with(b"\x89PNG") {
            assert_eq!((r.status, r.body.as_ref()), (StatusCode::OK, body.as_slice()));
        } else {
            assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_GATEWAY, "upstream_error"));
            assert!(!r.body.windows(4).any(|w| w == b"Serv"), "nothing of the upstream body leaks");
        }
    }
}

/// Tile 1/0/0 with a covered layer `places` (a point inside and one outside the
/// fence, a line and a polygon crossing its edge at x = 2048) and an uncovered
/// layer `private`. The fence is the west half of the tile.
fn crafted_tile() -> Vec<u8> {
    let zz = |v: i32| ((v << 1) ^ (v >> 31)) as u32;
    let s = |v: &str| Value { string_value: Some(v.into()), ..Value::default() };
    let feature =
        |kind: i32, geometry: Vec<u32>, tags: Vec<u32>| Feature { id: None, tags, r#type: Some(kind), geometry };
    let places = Layer {
        version: 2,
        name: "places".into(),
        keys: vec!["name".into(), "secret".into()],
        values: vec![s("west"), s("east"), s("hidden")],
        features: vec![
            feature(1, vec![9, zz(100), zz(100)], vec![0, 0, 1, 2]),
            feature(1, vec![9, zz(3000), zz(100)], vec![0, 1, 1, 2]),
            feature(2, vec![9, zz(1000), zz(500), 10, zz(2000), 0], vec![0, 0]),
            // Clockwise square 1000‥3000 × 1000‥2000.
            feature(3, vec![9, zz(1000), zz(1000), 26, zz(2000), 0, 0, zz(1000), zz(-2000), 0, 15], vec![0, 0]),
        ],
        extent: Some(4096),
    };
    let private = Layer {
        version: 2,
        name: "private".into(),
        keys: vec!["owner".into()],
        values: vec![s("someone")],
        features: vec![feature(1, vec![9, zz(10), zz(10)], vec![0, 0])],
        extent: Some(4096),
    };
    Tile { layers: vec![places, private] }.encode_to_vec()
}

#[tokio::test]
async fn a_vector_tile_straddling_the_fence_is_cut_at_the_fence_and_reads_in_gdal() {
    let gw = fake_gateway(fixed_upstream("application/vnd.mapbox-vector-tile", crafted_tile()).await).await;
    let west = Fence::new(Some(&[(2, 0, 0), (2, 0, 1)]), None).expect("fence");
    let token = gw.token_fenced("vector", Tier::View, west, Some(&["name"])).await;
    let r = gw.get("/ogc/mvt/vector/1/0/0", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tile = Tile::decode(r.body.as_ref()).expect("a valid tile");
    assert_eq!(tile.layers.len(), 1, "the uncovered layer is gone");
    let places = &tile.layers[0];
    assert_eq!(places.name, "places");
    assert_eq!(places.keys, ["name"], "hidden properties are gone");
    assert_eq!(places.values, [Value { string_value: Some("west".into()), ..Value::default() }]);
    assert_eq!(places.features.len(), 3, "the point outside is gone");
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains("hidden") && !text.contains("someone") && !text.contains("east"));

    // A real MVT reader: GDAL's driver georeferences a `z/x/y.pbf` file by its name.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("1/0/0.pbf");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &r.body).expect("write");
    let out = std::process::Command::new("ogrinfo")
        .args(["-ro", "-al", "-q"])
        .arg(&file)
        .output()
        .expect("ogrinfo runs (Debian gdal-bin)");
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ogrinfo failed: {info}{}", String::from_utf8_lossy(&out.stderr));
    assert!(info.contains("places") && !info.contains("private"), "{info}");
    assert!(!info.contains("secret") && !info.contains("hidden"), "{info}");
    assert!(info.contains("LINESTRING") && info.contains("POLYGON"), "{info}");
    // Tile 1/0/0 spans x −20037508‥0 m; the fence ends at its middle, −10018754 m.
    let xs = eastings(&info);
    assert!(!xs.is_empty(), "{info}");
    assert!(xs.iter().all(|&x| x <= -10_018_754.0 + 5_000.0), "every vertex ends at the fence: {xs:?}");
    assert!(xs.iter().any(|&x| (x + 10_018_754.0).abs() < 5_000.0), "the crossing geometries reach the fence: {xs:?}");
}

/// The x coordinate of every vertex in ogrinfo's WKT output.
fn eastings(info: &str) -> Vec<f64> {
    let mut xs = Vec::new();
    for line in info.lines().map(str::trim) {
        let Some(open) = line.find('(') else { continue };
        if !["POINT", "LINESTRING", "POLYGON", "MULTI"].iter().any(|k| line.starts_with(k)) {
            continue;
        }
        let coords = line[open..].replace(['(', ')'], "");
        for pair in coords.split(',') {
            if let Some(x) = pair.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
                xs.push(x);
            }
        }
    }
    xs
}

/// A HEAD on a straddling tile used to be a 502: the upstream's HEAD answer has no
/// body, and the clipper (or the MVT re-encoder) read that as a broken image. Now a
/// HEAD of an answer the gateway filters is asked upstream as GET, so it carries the
/// clipped tile's type and length; wholly inside tiles are relayed as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_a_straddling_tile_answers_the_clipped_tiles_headers_instead_of_502() {
    let (gw, _) = mapproxy_gateway().await;
    let token = gw.token_fenced("basemap", Tier::View, quarter_fence(), None).await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let wmts = "/ogc/wmts/basemap?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&FORMAT=image/png&TILEMATRIXSET=GLOBAL_WEBMERCATOR&TILEMATRIX=03&TILEROW=2&TILECOL=4";
    for path in ["/ogc/xyz/basemap/3/4/2.png", wmts] {
        let r = gw.send(http::Method::HEAD, path, &auth, Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK, "HEAD {path}: {}", r.text());
        assert_eq!(r.headers["content-type"], "image/png", "HEAD {path}");
        assert!(r.body.is_empty());
        // The GET that follows is the clipped tile, of the type and length HEAD named
        // (GDAL's /vsicurl sizes a file by HEAD first).
        let get = gw.get(path, &token).await;
        assert_eq!(
            (get.status, &get.headers["content-type"]),
            (StatusCode::OK, &r.headers["content-type"]),
            "GET {path}: {}",
            get.text()
        );
        assert_eq!(r.headers["content-length"].to_str().unwrap(), get.body.len().to_string(), "HEAD {path}");
    }
    // Wholly inside: the upstream's HEAD answer, its length included. MapProxy's
    // server (waitress) sends the body on a HEAD too; a pooled connection reused after
    // it read those bytes as the next answer (502 `upstream_unavailable` for the GET
    // after it, every other time): each pair here is a HEAD then a GET.
    for _ in 0..6 {
        let r = gw.send(http::Method::HEAD, "/ogc/xyz/basemap/5/16/8.png", &auth, Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK);
        let inside = gw.get("/ogc/xyz/basemap/5/16/8.png", &token).await;
        assert_eq!(inside.status, StatusCode::OK, "GET after HEAD: {}", inside.text());
        assert_eq!(
            r.headers.get("content-length").map(|v| v.to_str().unwrap().to_owned()),
            Some(inside.body.len().to_string())
        );
    }
    // Wholly outside is still refused.
    let r = gw.send(http::Method::HEAD, "/ogc/xyz/basemap/3/0/0.png", &auth, Bytes::new()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Vector tiles and OGC API tiles (a fake upstream answering HEAD like GET, body
    // left out by its HTTP server).
    let gw = fake_gateway(fixed_upstream("application/vnd.mapbox-vector-tile", crafted_tile()).await).await;
    let west = Fence::new(Some(&[(2, 0, 0), (2, 0, 1)]), None).expect("fence");
    for (path, pid, kind) in [
        ("/ogc/mvt/vector/1/0/0", "vector", "application/vnd.mapbox-vector-tile"),
        (
            "/ogc/api/api/collections/places/tiles/WebMercatorQuad/1/0/0?f=mvt",
            "api",
            "application/vnd.mapbox-vector-tile",
        ),
    ] {
        let token = gw.token_fenced(pid, Tier::View, west.clone(), None).await;
        let bearer = format!("Bearer {token}");
        let r = gw.send(http::Method::HEAD, path, &[("authorization", bearer.as_str())], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK, "HEAD {path}: {}", r.text());
        assert_eq!(r.headers["content-type"], kind, "HEAD {path}");
        let get = gw.get(path, &token).await;
        assert_eq!(get.status, StatusCode::OK, "GET {path}: {}", get.text());
        assert!(Tile::decode(get.body.as_ref()).is_ok(), "GET {path} is a tile");
        assert_eq!(r.headers["content-length"].to_str().unwrap(), get.body.len().to_string(), "HEAD {path}");
    }
    let gw = fake_gateway(fixed_upstream("image/png", upstream_png()).await).await;
    let token = gw.token_fenced("api", Tier::View, quarter_fence(), None).await;
    let bearer = format!("Bearer {token}");
    let path = "/ogc/api/api/collections/places/map/tiles/WebMercatorQuad/3/2/4?f=png";
    let r = gw.send(http::Method::HEAD, path, &[("authorization", bearer.as_str())], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "HEAD {path}: {}", r.text());
    assert_eq!(r.headers["content-type"], "image/png");
    let get = gw.get(path, &token).await;
    assert_eq!(
        (get.status, &get.headers["content-type"]),
        (StatusCode::OK, &r.headers["content-type"]),
        "{}",
        get.text()
    );
}

/// A 256×256 opaque grey PNG.
fn upstream_png() -> Vec<u8> {
    let img = RgbaImage::from_pixel(256, 256, Rgba([90, 90, 90, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode");
    out.into_inner()
}

/// A path that declares `layers` used to decode and re-encode every vector tile, even
/// for an unfenced token, to drop the layers it does not cover. A tile whose layers
/// are all covered is now relayed as the upstream sent it (its layer names read
/// without decoding a feature); one with another layer is still re-encoded without it.
#[tokio::test]
async fn a_vector_tile_whose_layers_are_all_covered_is_relayed_byte_for_byte() {
    let mut only_places = Tile::decode(crafted_tile().as_slice()).expect("tile");
    only_places.layers.retain(|l| l.name == "places");
    // Written with a field order prost would not produce (extent before name), so a
    // re-encoded tile could not come out byte-identical by chance.
    let mut raw = Vec::new();
    for layer in &only_places.layers {
        let mut l = Vec::new();
        prost::encoding::uint32::encode(5, &4096, &mut l);
        let mut rest = layer.clone();
        rest.extent = None;
        l.extend(rest.encode_to_vec());
        prost::encoding::encode_key(3, prost::encoding::WireType::LengthDelimited, &mut raw);
        prost::encoding::encode_varint(l.len() as u64, &mut raw);
        raw.extend(l);
    }
    assert_ne!(raw, only_places.encode_to_vec());
    let gw = fake_gateway(fixed_upstream("application/vnd.mapbox-vector-tile", raw.clone()).await).await;
    let token = gw.token(&[("vector", Tier::View)]).await;
    let r = gw.get("/ogc/mvt/vector/1/0/0", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.as_ref(), raw.as_slice(), "relayed as it came");

    let gw = fake_gateway(fixed_upstream("application/vnd.mapbox-vector-tile", crafted_tile()).await).await;
    let token = gw.token(&[("vector", Tier::View)]).await;
    let r = gw.get("/ogc/mvt/vector/1/0/0", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tile = Tile::decode(r.body.as_ref()).expect("tile");
    assert_eq!(tile.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["places"], "`private` is dropped");
}

/// The fence of the OGC API Tiles walk: zoom-4 tile 4/8/5 and the east half of its
/// western neighbour (zoom-5 tiles 5/15/10 and 5/15/11): lon −11.25..22.5, lat
/// 40.98..55.78, from Lyon and Rome to Amsterdam. Two zooms, one rectangle, so every
/// tile inside the advertised limits meets the fence.
const TILESET_FENCE: [(u32, u64, u64); 3] = [(4, 8, 5), (5, 15, 10), (5, 15, 11)];
/// pygeoapi's tiles (`tests/e2e/pygeoapi.yml`) go to zoom 6; the fence too.
const TILESET_MAX_ZOOM: u32 = 6;

fn tileset_fence() -> Fence {
    Fence::new(Some(&TILESET_FENCE), Some(TILESET_MAX_ZOOM)).expect("fence")
}

/// The fence's footprint at zoom `z`, `[min_col, max_col, min_row, max_row]`, from its
/// tiles alone (a tile above a fence tile is its ancestor, below it its descendants).
fn footprint_at(z: u32) -> [u64; 4] {
    let mut lim = [u64::MAX, 0, u64::MAX, 0];
    for (fz, x, y) in TILESET_FENCE {
        let (x0, x1, y0, y1) = if z <= fz {
            let s = fz - z;
            (x >> s, x >> s, y >> s, y >> s)
        } else {
            let s = z - fz;
            (x << s, ((x + 1) << s) - 1, y << s, ((y + 1) << s) - 1)
        };
        lim = [lim[0].min(x0), lim[1].max(x1), lim[2].min(y0), lim[3].max(y1)];
    }
    lim
}

/// The tile of zoom `z` holding lon/lat (Web Mercator, rows from the north).
fn tile_of(lon: f64, lat: f64, z: u32) -> (u64, u64) {
    let n = f64::from(1u32 << z);
    let y = (1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0;
    (((lon + 180.0) / 360.0 * n) as u64, (y * n) as u64)
}

/// The points of a decoded MVT layer, as fractions of the world (0..1, from the
/// north-west), for tile `z/x/y`.
fn world_points(layer: &Layer, z: u32, x: u64, y: u64) -> Vec<(f64, f64)> {
    let extent = f64::from(layer.extent.unwrap_or(4096));
    let n = f64::from(1u32 << z);
    let unzz = |v: u32| ((v >> 1) as i32) ^ -((v & 1) as i32);
    let mut out = Vec::new();
    for f in layer.features.iter().filter(|f| f.r#type == Some(1)) {
        let (mut cx, mut cy, mut g) = (0i32, 0i32, f.geometry.iter());
        while let Some(cmd) = g.next() {
            assert_eq!(cmd & 7, 1, "a point is MoveTo only");
            for _ in 0..cmd >> 3 {
                cx += unzz(*g.next().expect("dx"));
                cy += unzz(*g.next().expect("dy"));
                out.push(((x as f64 + f64::from(cx) / extent) / n, (y as f64 + f64::from(cy) / extent) / n));
            }
        }
    }
    out
}

/// A gateway whose path `places` is real pygeoapi's `places` collection, on a fixed port
/// that is also its public URL (so clients can follow the URLs its documents name).
async fn pygeoapi_places(pg: &upstreams::PyGeoApi) -> TestGateway {
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
properties = ["id", "name", "population", "country", "secret_note"]
[path.upstream]
ogcapi = "{pg}"
"#,
        pg = pg.base
    );
    TestGateway::with_config(&config).await
}

/// #14 against real pygeoapi (its `MVT-tippecanoe` provider over tiles GDAL's MVT
/// driver wrote from `places.geojson`, zoom 0..6): pygeoapi's tileset documents have no
/// `tileMatrixSetLimits`; through the gateway a fenced token's have the fence's
/// footprint at every zoom 0..=maxZoom, one column or row further is refused, and a
/// client walking what is advertised (the tileset's own `item` link template) never
/// meets a 403: the tiles holding Paris at each zoom and the four corners of every
/// matrix's limits answer 200 (a tile, clipped above zoom 4: every point it keeps lies in
/// the fence) or 204 where pygeoapi has no tile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ogc_api_tilesets_from_pygeoapi_advertise_the_fence_footprint_and_every_advertised_tile_is_served() {
    let pg = tokio::task::spawn_blocking(upstreams::PyGeoApi::shared).await.expect("pygeoapi starts");
    let gw = pygeoapi_places(pg).await;
    let token = gw.token_fenced("places", Tier::View, tileset_fence(), None).await;
    let unfenced = gw.token(&[("places", Tier::View)]).await;
    let tileset = "/ogc/api/places/collections/places/tiles/WebMercatorQuad?f=json";

    // pygeoapi itself advertises no limits, and an unfenced token gets none either.
    let upstream = upstreams::http_get(&pg.url("/collections/places/tiles/WebMercatorQuad?f=json")).expect("pygeoapi");
    assert_eq!(upstream.status, 200, "{}", upstream.text());
    assert!(!upstream.text().contains("tileMatrixSetLimits"), "{}", upstream.text());
    let r = gw.get(tileset, &unfenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json().get("tileMatrixSetLimits").is_none(), "{}", r.text());

    // The fenced token's tileset document and the collection's `tilesets` list.
    let r = gw.get(tileset, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let doc = r.json();
    let list = gw.get("/ogc/api/places/collections/places/tiles?f=json", &token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let list = list.json();
    let entry = &list["tilesets"][0];
    assert!(entry["tileMatrixSetURI"].as_str().is_some_and(|u| u.ends_with("/WebMercatorQuad")), "{list}");
    for limits in [&doc["tileMatrixSetLimits"], &entry["tileMatrixSetLimits"]] {
        let got: Vec<(u32, [u64; 4])> = limits
            .as_array()
            .unwrap_or_else(|| panic!("no tileMatrixSetLimits: {doc}"))
            .iter()
            .map(|l| {
                let n = |k: &str| l[k].as_u64().unwrap_or_else(|| panic!("{k} in {l}"));
                let z = l["tileMatrix"].as_str().and_then(|z| z.parse().ok()).unwrap_or_else(|| panic!("{l}"));
                (z, [n("minTileCol"), n("maxTileCol"), n("minTileRow"), n("maxTileRow")])
            })
            .collect();
        let want: Vec<(u32, [u64; 4])> = (0..=TILESET_MAX_ZOOM).map(|z| (z, footprint_at(z))).collect();
        assert_eq!(got, want, "the limits are the fence's footprint at every zoom 0..=maxZoom");
    }

    // The tile URL template the tileset advertises, at the gateway.
    let template = doc["links"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["rel"] == "item")
        .and_then(|l| l["href"].as_str())
        .unwrap_or_else(|| panic!("no item link: {doc}"))
        .to_owned();
    let base = gw.url("/ogc/api/places/");
    assert!(template.starts_with(&base), "the item link is the gateway's: {template}");
    let tile_path = |z: u32, col: u64, row: u64| {
        let url = template
            .replace("{tileMatrix}", &z.to_string())
            .replace("{tileRow}", &row.to_string())
            .replace("{tileCol}", &col.to_string());
        url[base.len() - "/ogc/api/places/".len()..].to_owned()
    };
    // The fence as fractions of the world, for the points a tile keeps.
    let [w, e, n, s] = {
        let [c0, c1, r0, r1] = footprint_at(5);
        [c0 as f64 / 32.0, (c1 + 1) as f64 / 32.0, r0 as f64 / 32.0, (r1 + 1) as f64 / 32.0]
    };
    let slack = 1.0 / 4096.0;
    let (mut served, mut empty) = (0, 0);
    for z in 0..=TILESET_MAX_ZOOM {
        let [c0, c1, r0, r1] = footprint_at(z);
        let paris = tile_of(2.3522, 48.8566, z);
        for (col, row) in [paris, (c0, r0), (c1, r0), (c0, r1), (c1, r1)] {
            let path = tile_path(z, col, row);
            let r = gw.get(&path, &token).await;
            match r.status {
                StatusCode::OK => {
                    served += 1;
                    let tile = Tile::decode(r.body.as_ref()).unwrap_or_else(|e| panic!("{path}: not a tile: {e}"));
                    let places =
                        tile.layers.iter().find(|l| l.name == "places").unwrap_or_else(|| panic!("{path}: {tile:?}"));
                    let points = world_points(places, z, col, row);
                    assert!(
                        points
                            .iter()
                            .all(|&(x, y)| x >= w - slack && x <= e + slack && y >= n - slack && y <= s + slack),
                        "{path}: every point kept lies in the fence: {points:?}"
                    );
                    if (col, row) == paris {
                        assert!(!points.is_empty(), "{path}: Paris is there");
                    }
                }
                StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => empty += 1,
                other => panic!("{path}: an advertised tile answered {other}: {}", r.text()),
            }
        }
        // One column or row beyond the limits is refused: they are the footprint, not more.
        let last = (1u64 << z) - 1;
        let beyond = [
            (c0.checked_sub(1), Some(r0)),
            ((c1 < last).then_some(c1 + 1), Some(r1)),
            (Some(c0), r0.checked_sub(1)),
            (Some(c1), (r1 < last).then_some(r1 + 1)),
        ];
        for (col, row) in beyond.into_iter().filter_map(|(c, r)| Some((c?, r?))) {
            let path = tile_path(z, col, row);
            let r = gw.get(&path, &token).await;
            assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"), "{path}");
        }
    }
    eprintln!("tileset walk: {served} tiles served, {empty} empty (204/404)");
    assert!(served >= 7, "{served} tiles served, {empty} empty");
    // Above maxZoom nothing is advertised and nothing is served.
    let (col, row) = tile_of(2.3522, 48.8566, 7);
    let r = gw.get(&tile_path(7, col, row), &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "zoom_above_max"));
    // Unfenced, the tile is pygeoapi's, byte for byte (its one layer is covered).
    let (col, row) = tile_of(2.3522, 48.8566, 3);
    let r = gw.get(&tile_path(3, col, row), &unfenced).await;
    let direct =
        upstreams::http_get(&pg.url(&format!("/collections/places/tiles/WebMercatorQuad/3/{row}/{col}?f=mvt")))
            .expect("pygeoapi");
    assert_eq!((r.status, r.body.as_ref()), (StatusCode::OK, direct.body.as_slice()));
}

/// Attacker round 9b: pygeoapi's TileJSON (`/tiles/WebMercatorQuad/metadata?f=tilejson`)
/// was relayed whole, listing every field (the hidden `secret_note`) and the whole
/// dataset's bounds and zooms. It is rewritten per token now: the gateway's tile URL,
/// fields inside the property fence, bounds and maxzoom inside the fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pygeoapi_tilejson_is_narrowed_to_each_token() {
    let pg = tokio::task::spawn_blocking(upstreams::PyGeoApi::shared).await.expect("pygeoapi starts");
    let gw = pygeoapi_places(pg).await;
    let upstream = upstreams::http_get(&pg.url("/collections/places/tiles/WebMercatorQuad/metadata?f=tilejson"))
        .expect("pygeoapi");
    assert_eq!(upstream.status, 200, "{}", upstream.text());
    assert!(upstream.text().contains("secret_note"), "the premise: pygeoapi lists every field: {}", upstream.text());
    let url = "/ogc/api/places/collections/places/tiles/WebMercatorQuad/metadata?f=tilejson";
    let props = gw.token_fenced("places", Tier::View, Fence::default(), Some(&["name"])).await;
    let r = gw.get(url, &props).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!r.text().contains("secret_note") && !r.text().contains("population"), "{}", r.text());
    let doc = r.json();
    let template = doc["tiles"][0].as_str().unwrap_or_else(|| panic!("no tiles: {doc}")).to_owned();
    assert!(template.starts_with(&gw.url("/ogc/api/places/collections/places/tiles/WebMercatorQuad/")), "{template}");
    assert!(!template.contains(&pg.base), "{template}");
    // The advertised template answers (Paris at zoom 3: x 4, y 2).
    let tile = template.replace("{z}", "3").replace("{x}", "4").replace("{y}", "2");
    let tile = &tile[gw.url("").len()..];
    let r = gw.get(tile, &props).await;
    assert!(matches!(r.status.as_u16(), 200 | 204), "{tile}: {} {}", r.status, r.text());

    let fenced = gw.token_fenced("places", Tier::View, tileset_fence(), None).await;
    let r = gw.get(url, &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let doc = r.json();
    let bounds: Vec<f64> =
        doc["bounds"].as_array().unwrap_or_else(|| panic!("{doc}")).iter().filter_map(|v| v.as_f64()).collect();
    let fence = tileset_fence().bounds_lonlat().expect("tiles");
    assert!(bounds[0] >= fence.min_x - 1e-6 && bounds[2] <= fence.max_x + 1e-6, "{bounds:?} within {fence:?}");
    assert!(doc["maxzoom"].as_u64().is_some_and(|z| z <= u64::from(TILESET_MAX_ZOOM)), "{doc}");
    // Other tile matrix sets or map tiles in TileJSON cannot be narrowed: refused.
    let r = gw.get("/ogc/api/places/collections/places/tiles/WorldCRS84Quad/metadata?f=tilejson", &props).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}
