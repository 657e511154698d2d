//! PMTiles archives as upstreams (issue #18): tiles, TileJSON and range mode through
//! the real gateway, from a file and from a range-capable HTTP server, judged for
//! every kind of token; the PyPI `pmtiles` reader reads the archive through the
//! gateway's range mode.
//!
//! Fixtures are written by `tilegate::pmtiles::write` (checked against the reference
//! reader below): a vector archive (two layers, properties, gzip tiles, leaf
//! directories, metadata with `vector_layers` and `tilestats`) and a raster archive
//! (PNG tiles, zoom 4 one deduplicated content in one run of 256 ids, leaves).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use image::{Rgba, RgbaImage};
use prost::Message as _;
use tokio::net::TcpListener;

use crate::support::{upstreams, TestGateway};
use tilegate::filter::mvt::{Feature, Layer, Tile, Value};
use tilegate::pmtiles::format::{self, Header};
use tilegate::pmtiles::write::{self, Options};
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;

/// A vector tile like the clip tests' crafted one, named by its address: layer
/// `places` (a point west and one east, a line and a polygon across x = 2048) and
/// layer `private`.
fn vector_tile(z: u8, x: u32, y: u32) -> Vec<u8> {
    let zz = |v: i32| ((v << 1) ^ (v >> 31)) as u32;
    let s = |v: &str| Value { string_value: Some(v.into()), ..Value::default() };
    let feature =
        |kind: i32, geometry: Vec<u32>, tags: Vec<u32>| Feature { id: None, tags, r#type: Some(kind), geometry };
    let places = Layer {
        version: 2,
        name: "places".into(),
        keys: vec!["name".into(), "secret".into()],
        values: vec![s(&format!("west {z}/{x}/{y}")), s("east"), s("hidden")],
        features: vec![
            feature(1, vec![9, zz(100), zz(100)], vec![0, 0, 1, 2]),
            feature(1, vec![9, zz(3000), zz(100)], vec![0, 1, 1, 2]),
            feature(2, vec![9, zz(1000), zz(500), 10, zz(2000), 0], vec![0, 0]),
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

/// A plain 256-pixel PNG, encoded once per colour for the whole binary (the debug
/// build's encoder is slow, and every fixture needs ~90 of them).
fn png(colour: [u8; 4]) -> Vec<u8> {
    static MEMO: Mutex<Option<std::collections::HashMap<[u8; 4], Vec<u8>>>> = Mutex::new(None);
    let mut memo = MEMO.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    memo.get_or_insert_with(Default::default)
        .entry(colour)
        .or_insert_with(|| {
            let img = RgbaImage::from_pixel(256, 256, Rgba(colour));
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png).expect("png");
            out.into_inner()
        })
        .clone()
}

/// z0‥3 every tile but 3/7/7 (missing), each its own content.
fn vector_archive() -> Vec<u8> {
    let mut tiles = Vec::new();
    for z in 0..=3u8 {
        for x in 0..(1u32 << z) {
            for y in 0..(1u32 << z) {
                if (z, x, y) != (3, 7, 7) {
                    tiles.push((z, x, y, vector_tile(z, x, y)));
                }
            }
        }
    }
    let metadata = serde_json::json!({
        "name": "fixture",
        "attribution": "© test",
        "vector_layers": [
            {"id": "places", "fields": {"name": "String", "secret": "String"}},
            {"id": "private", "fields": {"owner": "String"}}
        ],
        "tilestats": {"layers": [{"attributes": [{"attribute": "secret", "values": ["hidden"]}]}]}
    });
    let o =
        Options { gzip_tiles: true, root_entries: 8, leaf_entries: 12, metadata, center_zoom: 2, ..Options::default() };
    write::archive(&tiles, &o)
}

/// z0‥3 each tile its own colour; z4 one "sea" content for all 256 tiles.
fn raster_archive(tile_type: u8, shade: u8) -> Vec<u8> {
    let mut tiles = Vec::new();
    for z in 0..=4u8 {
        for x in 0..(1u32 << z) {
            for y in 0..(1u32 << z) {
                let content =
                    if z == 4 { png([0, 0, 200, 255]) } else { png([z * 40 + shade, x as u8 * 30, y as u8 * 30, 255]) };
                tiles.push((z, x, y, content));
            }
        }
    }
    let o = Options { tile_type, gzip_tiles: false, root_entries: 6, leaf_entries: 20, ..Options::default() };
    write::archive(&tiles, &o)
}

/// Where tile `z/x/y`'s stored bytes lie in `archive` (absolute offset, length).
fn locate(archive: &[u8], z: u8, x: u32, y: u32) -> (u64, u64) {
    let h = Header::parse(archive).expect("header");
    let id = format::tile_id(z, x, y);
    let dir_at = |off: u64, len: u64| {
        let raw = &archive[off as usize..(off + len) as usize];
        format::parse_directory(&format::decompress(h.internal_compression, raw, 1 << 24).expect("dir")).expect("dir")
    };
    let mut dir = dir_at(h.root_offset, h.root_length);
    loop {
        let e = format::find(&dir, id).expect("tile exists");
        if e.run_length > 0 {
            return (h.data_offset + e.offset, u64::from(e.length));
        }
        dir = dir_at(h.leaf_offset + e.offset, u64::from(e.length));
    }
}

/// A range-capable HTTP server for one archive: `ETag` per version, `If-Match`
/// (412 when the archive changed), single `bytes=a-b` ranges. `replace` swaps the
/// archive (a new version).
#[derive(Clone)]
struct RangeServer {
    addr: SocketAddr,
    state: Arc<Mutex<(Bytes, u32)>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RangeServer {
    async fn start(archive: Vec<u8>) -> RangeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server =
            RangeServer { addr, state: Arc::new(Mutex::new((Bytes::from(archive), 1))), requests: Arc::default() };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(s.answer(&req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    fn answer(&self, req: &http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
        let (bytes, version) = self.state.lock().expect("lock").clone();
        let etag = format!("\"v{version}\"");
        let range = req.headers().get("range").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let if_match = req.headers().get("if-match").and_then(|v| v.to_str().ok()).unwrap_or("");
        self.requests.lock().expect("lock").push(format!("{range} if-match:{if_match}"));
        let mut res = http::Response::new(Full::new(Bytes::new()));
        res.headers_mut().insert("etag", etag.parse().expect("etag"));
        if req.headers().get("if-match").is_some_and(|v| v.as_bytes() != etag.as_bytes()) {
            *res.status_mut() = StatusCode::PRECONDITION_FAILED;
            return res;
        }
        let Some((a, b)) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-')) else {
            *res.body_mut() = Full::new(bytes);
            return res;
        };
        let size = bytes.len() as u64;
        let a: u64 = a.parse().expect("start");
        let b: u64 = b.parse::<u64>().expect("end").min(size - 1);
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        res.headers_mut().insert("content-range", format!("bytes {a}-{b}/{size}").parse().expect("cr"));
        *res.body_mut() = Full::new(bytes.slice(a as usize..=b as usize));
        res
    }

    fn replace(&self, archive: Vec<u8>) {
        let mut s = self.state.lock().expect("lock");
        *s = (Bytes::from(archive), s.1 + 1);
    }
}

struct Fixture {
    gw: TestGateway,
    /// Holds the archive files.
    dir: tempfile::TempDir,
    vector: Vec<u8>,
    raster: Vec<u8>,
    http: RangeServer,
}

async fn fixture() -> Fixture {
    fixture_with("").await
}

async fn fixture_with(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let vector = vector_archive();
    let raster = raster_archive(2, 0);
    for (name, bytes) in [
        ("vector.pmtiles", vector.clone()),
        ("raster.pmtiles", raster.clone()),
        ("avif.pmtiles", raster_archive(5, 0)),
        ("unknown.pmtiles", raster_archive(0, 0)),
    ] {
        std::fs::write(dir.path().join(name), bytes).expect("write fixture");
    }
    let http = RangeServer::start(raster.clone()).await;
    let d = dir.path().display();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[tokens]
allow_query_token = true
[store]
path = "tilegate.db"
{extra}
[[path]]
id = "vec"
kind = "vector"
layers = ["places"]
properties = ["name", "secret"]
[path.upstream]
pmtiles = "file://{d}/vector.pmtiles"
[[path]]
id = "vecall"
kind = "vector"
pmtiles_range = true
[path.upstream]
pmtiles = "{d}/vector.pmtiles"
[[path]]
id = "ras"
kind = "raster"
pmtiles_range = true
[path.upstream]
pmtiles = "file://{d}/raster.pmtiles"
[[path]]
id = "web"
kind = "raster"
pmtiles_range = true
[path.upstream]
pmtiles = "http://{http}/raster.pmtiles"
[[path]]
id = "avif"
kind = "raster"
[path.upstream]
pmtiles = "file://{d}/avif.pmtiles"
[[path]]
id = "unknown"
kind = "raster"
[path.upstream]
pmtiles = "file://{d}/unknown.pmtiles"
"#,
        http = http.addr
    );
    let gw = TestGateway::with_config(&config).await;
    Fixture { gw, dir, vector, raster, http }
}

/// The west half of the world below zoom 1 (tiles 2/0/0, 2/0/1… as the clip tests).
fn west_of_tile_1_0_0() -> Fence {
    Fence::new(Some(&[(2, 0, 0), (2, 0, 1)]), Some(3)).expect("fence")
}

async fn range(gw: &TestGateway, path: &str, token: &str, range: &str) -> crate::support::Reply {
    let auth = format!("Bearer {token}");
    gw.send(Method::GET, path, &[("authorization", &auth), ("range", range)], Bytes::new()).await
}

#[tokio::test]
async fn vector_tiles_from_a_file_archive_are_fenced_clipped_and_property_filtered() {
    let f = fixture().await;
    let open = f.gw.token(&[("vec", Tier::View)]).await;
    let r = f.gw.get("/ogc/mvt/vec/1/0/0", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/vnd.mapbox-vector-tile");
    let tile = Tile::decode(r.body.as_ref()).expect("a plain (gunzipped) vector tile");
    assert_eq!(tile.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["places"], "the path's layers only");
    assert_eq!(tile.layers[0].keys, ["name", "secret"]);
    // The same tile through /ogc/xyz.
    assert_eq!(f.gw.get("/ogc/xyz/vec/1/0/0.pbf", &open).await.body, r.body);

    let fenced = f.gw.token_fenced("vec", Tier::View, west_of_tile_1_0_0(), Some(&["name"])).await;
    let r = f.gw.get("/ogc/mvt/vec/1/0/0", &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tile = Tile::decode(r.body.as_ref()).expect("tile");
    assert_eq!(tile.layers.len(), 1);
    assert_eq!(tile.layers[0].keys, ["name"], "the property fence applies");
    assert_eq!(tile.layers[0].features.len(), 3, "the point east of the fence is cut away");
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains("hidden") && !text.contains("someone") && !text.contains("east"));
    assert_eq!(r.headers["cache-control"], "private, no-store");
    // Inside whole, outside, above maxZoom.
    assert_eq!(f.gw.get("/ogc/mvt/vec/2/0/1", &fenced).await.status, StatusCode::OK);
    let r = f.gw.get("/ogc/mvt/vec/1/1/0", &fenced).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    let r = f.gw.get("/ogc/mvt/vec/4/0/0", &fenced).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "zoom_above_max"));
    // Missing tiles: 204 inside the fence (and beyond the archive's zooms), 403 outside.
    let r = f.gw.get("/ogc/mvt/vec/3/7/7", &open).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NO_CONTENT, 0));
    assert_eq!(f.gw.get("/ogc/mvt/vec/9/0/0", &open).await.status, StatusCode::NO_CONTENT);
    let r = f.gw.get("/ogc/mvt/vec/3/7/7", &fenced).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a missing tile outside the fence is not told apart");
    // A token for another path does not learn the path exists.
    let other = f.gw.token(&[("ras", Tier::View)]).await;
    let r = f.gw.get("/ogc/mvt/vec/1/0/0", &other).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::NOT_FOUND, "path_not_found"));
    // Regression: a malformed tile address was a 400 before the path's visibility was known.
    let r = f.gw.get("/ogc/mvt/vec/1/0", &other).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::NOT_FOUND, "path_not_found"));
    assert_eq!(f.gw.get("/ogc/mvt/vec/1/0", &open).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn raster_tiles_are_relayed_inside_clipped_across_and_refused_outside_from_file_and_http() {
    let f = fixture().await;
    let quarter = Fence::new(Some(&[(2, 0, 0)]), Some(4)).expect("fence");
    for path in ["ras", "web"] {
        let token = f.gw.token_fenced(path, Tier::View, quarter.clone(), None).await;
        let (off, len) = locate(&f.raster, 3, 1, 1);
        let r = f.gw.get(&format!("/ogc/xyz/{path}/3/1/1.png"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.body.as_ref(), &f.raster[off as usize..(off + len) as usize], "{path}: inside is byte for byte");
        // 1/0/0 straddles: its north-west quarter is inside.
        let r = f.gw.get(&format!("/ogc/xyz/{path}/1/0/0.png"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let img = image::load_from_memory(&r.body).expect("png").to_rgba8();
        assert_eq!(img.get_pixel(10, 10)[3], 255, "{path}: inside stays");
        assert_eq!(img.get_pixel(200, 200)[3], 0, "{path}: outside is transparent");
        let r = f.gw.get(&format!("/ogc/xyz/{path}/2/3/3.png"), &token).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    }
    assert!(f.http.requests.lock().expect("lock").iter().all(|r| r.starts_with("bytes=")), "only range reads");
}

#[tokio::test]
async fn an_http_archive_replaced_under_the_gateway_is_reread_never_mixed() {
    let f = fixture().await;
    let token = f.gw.token(&[("web", Tier::View)]).await;
    let (off, len) = locate(&f.raster, 3, 2, 5);
    let r = f.gw.get("/ogc/xyz/web/3/2/5.png", &token).await;
    assert_eq!(r.body.as_ref(), &f.raster[off as usize..(off + len) as usize]);
    // A new version with other colours (and so other offsets).
    // Every read after the header names the version it was read with.
    let seen = f.http.requests.lock().expect("lock").clone();
    assert!(seen.len() >= 3 && seen[1..].iter().all(|r| r.ends_with("if-match:\"v1\"")), "{seen:?}");
    let new = raster_archive(2, 17);
    f.http.replace(new.clone());
    let (off, len) = locate(&new, 3, 2, 5);
    let r = f.gw.get("/ogc/xyz/web/3/2/5.png", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body.as_ref(), &new[off as usize..(off + len) as usize], "the tile of the new version, whole");
}

#[tokio::test]
async fn a_file_archive_replaced_under_the_gateway_is_reread() {
    let f = fixture().await;
    let token = f.gw.token(&[("ras", Tier::View)]).await;
    assert_eq!(f.gw.get("/ogc/xyz/ras/3/2/5.png", &token).await.status, StatusCode::OK);
    let new = raster_archive(2, 17);
    let file = f.dir.path().join("raster.pmtiles");
    // Written beside and renamed over, as tools replace files.
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, &new).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    let (off, len) = locate(&new, 3, 2, 5);
    let r = f.gw.get("/ogc/xyz/ras/3/2/5.png", &token).await;
    assert_eq!(r.body.as_ref(), &new[off as usize..(off + len) as usize]);
}

#[tokio::test]
async fn tile_types_the_filters_cannot_judge_are_refused_when_a_fence_needs_them() {
    let f = fixture().await;
    let quarter = Fence::new(Some(&[(2, 0, 0)]), Some(4)).expect("fence");
    // AVIF: inside relayed, straddling refused (it cannot be clipped).
    let token = f.gw.token_fenced("avif", Tier::View, quarter.clone(), None).await;
    let r = f.gw.get("/ogc/xyz/avif/3/1/1", &token).await;
    assert_eq!((r.status, r.headers["content-type"].to_str().ok()), (StatusCode::OK, Some("image/avif")));
    let r = f.gw.get("/ogc/xyz/avif/1/0/0", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    // Unknown tile type: any fence refuses; an open token gets the bytes.
    let token = f.gw.token_fenced("unknown", Tier::View, quarter, None).await;
    let r = f.gw.get("/ogc/xyz/unknown/3/1/1", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    let open = f.gw.token(&[("unknown", Tier::View)]).await;
    assert_eq!(f.gw.get("/ogc/xyz/unknown/3/1/1", &open).await.status, StatusCode::OK);
    // A raster archive has no /ogc/mvt.
    let open = f.gw.token(&[("ras", Tier::View)]).await;
    assert_eq!(f.gw.get("/ogc/mvt/ras/1/0/0", &open).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_tilejson_is_built_from_the_archive_and_narrowed_to_the_token() {
    let f = fixture().await;
    let open = f.gw.token(&[("vec", Tier::View)]).await;
    let r = f.gw.get("/ogc/mvt/vec/tilejson.json", &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["tiles"][0], "https://maps.example.org/ogc/mvt/vec/{z}/{x}/{y}");
    assert_eq!((j["minzoom"].as_u64(), j["maxzoom"].as_u64()), (Some(0), Some(3)));
    assert_eq!(j["attribution"], "© test");
    assert!(j.get("tilestats").is_none(), "tilestats list attribute values: never served");
    let layers: Vec<&str> =
        j["vector_layers"].as_array().expect("layers").iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(layers, ["places"], "only the path's layers");

    let fenced =
        f.gw.token_fenced("vec", Tier::View, Fence::new(Some(&[(1, 0, 0)]), Some(2)).expect("fence"), Some(&["name"]))
            .await;
    let r = f.gw.send(Method::GET, &format!("/ogc/xyz/vec/tilejson.json?token={fenced}"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["tiles"][0], format!("https://maps.example.org/ogc/xyz/vec/{{z}}/{{x}}/{{y}}.pbf?token={fenced}"));
    assert_eq!(j["maxzoom"].as_u64(), Some(2), "zooms end at the fence's maxZoom");
    let b: Vec<f64> = serde_json::from_value(j["bounds"].clone()).expect("bounds");
    assert!(b[0] >= -180.0 && b[2] <= 0.0 + 1e-9 && b[1] >= -1e-9, "bounds shrink to the fence: {b:?}");
    let fields = j["vector_layers"][0]["fields"].as_object().expect("fields");
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["name"], "fields follow the property fence");
    assert!(!r.text().contains("secret"));
}

#[tokio::test]
async fn range_reads_serve_directories_and_only_tiles_wholly_inside_the_fence() {
    let f = fixture().await;
    let size = f.raster.len() as u64;
    let h = Header::parse(&f.raster).expect("header");
    let quarter = Fence::new(Some(&[(2, 0, 0)]), Some(4)).expect("fence");
    let token = f.gw.token_fenced("ras", Tier::View, quarter.clone(), None).await;
    let url = "/path/ras/archive.pmtiles";
    // The header and the directories (the documented leak), whatever the fence.
    let r = range(&f.gw, url, &token, "bytes=0-126").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{}", r.text());
    assert_eq!(r.body.as_ref(), &f.raster[..127]);
    assert_eq!(r.headers["content-range"], format!("bytes 0-126/{size}"));
    assert!(r.headers["etag"].to_str().expect("etag").starts_with("\"pm-"));
    // Up to the metadata, which a fenced token may not read raw (attacker round 4:
    // `tilestats` listed attribute values of features outside the fence); the leaf
    // directories after it are served.
    let dirs_end = h.data_offset;
    let r = range(&f.gw, url, &token, &format!("bytes=0-{}", dirs_end - 1)).await;
    assert_eq!((r.status, r.body.len() as u64), (StatusCode::PARTIAL_CONTENT, h.metadata_offset));
    let r = range(&f.gw, url, &token, &format!("bytes={}-{}", h.metadata_offset, h.metadata_offset)).await;
    assert_eq!((r.status.as_u16(), r.reason().as_str()), (403, "fence_unverifiable"), "{}", r.text());
    if h.leaf_length > 0 {
        let (lo, ll) = (h.leaf_offset, h.leaf_length);
        let r = range(&f.gw, url, &token, &format!("bytes={lo}-{}", lo + ll - 1)).await;
        assert_eq!((r.status, r.body.len() as u64), (StatusCode::PARTIAL_CONTENT, ll), "leaf directories");
    }
    let open = f.gw.token(&[("ras", Tier::View)]).await;
    let r = range(&f.gw, url, &open, &format!("bytes=0-{}", dirs_end - 1)).await;
    assert_eq!((r.status, r.body.len() as u64), (StatusCode::PARTIAL_CONTENT, dirs_end), "an unfenced token");
    // A tile wholly inside; one outside; one straddling (cannot be clipped raw).
    let (off, len) = locate(&f.raster, 3, 1, 1);
    let r = range(&f.gw, url, &token, &format!("bytes={off}-{}", off + len - 1)).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{}", r.text());
    assert_eq!(r.body.as_ref(), &f.raster[off as usize..(off + len) as usize]);
    let (off, len) = locate(&f.raster, 3, 7, 7);
    let r = range(&f.gw, url, &token, &format!("bytes={off}-{}", off + len - 1)).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    // One byte into the middle of a refused tile is refused too.
    let r = range(&f.gw, url, &token, &format!("bytes={}-{}", off + 7, off + 7)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (off, len) = locate(&f.raster, 1, 0, 0);
    let r = range(&f.gw, url, &token, &format!("bytes={off}-{}", off + len - 1)).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    // The 16 KiB read protomaps JS starts with: header and root directory, cut where
    // the metadata starts (the first byte a fenced token may not read raw).
    let r = range(&f.gw, url, &token, "bytes=0-16383").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let served = r.body.len() as u64;
    assert_eq!(served, h.metadata_offset, "{served}");
    assert_eq!(r.headers["content-range"], format!("bytes 0-{}/{size}", served - 1));
    assert_eq!(r.body.as_ref(), &f.raster[..served as usize]);
    // A range from an allowed tile across a refused one is cut where the refused one starts.
    let (a, alen) = locate(&f.raster, 3, 1, 1);
    let r = range(&f.gw, url, &token, &format!("bytes={a}-{}", a + alen + 5000)).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body.len() as u64 >= alen && (r.body.len() as u64) < alen + 5001);
}

#[tokio::test]
async fn a_deduplicated_run_is_served_when_any_of_its_tiles_is_inside_and_under_max_zoom() {
    let f = fixture().await;
    let url = "/path/ras/archive.pmtiles";
    // Zoom 4: one content for all 256 tiles.
    let (off, len) = locate(&f.raster, 4, 15, 15);
    assert_eq!(locate(&f.raster, 4, 0, 0), (off, len), "one content for the whole zoom");
    let spec = format!("bytes={off}-{}", off + len - 1);
    let corner = f.gw.token_fenced("ras", Tier::View, Fence::new(Some(&[(3, 0, 0)]), Some(4)).expect("f"), None).await;
    let r = range(&f.gw, url, &corner, &spec).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "the bytes are a tile this token may fetch: {}", r.text());
    let low = f.gw.token_fenced("ras", Tier::View, Fence::new(Some(&[(3, 0, 0)]), Some(3)).expect("f"), None).await;
    let r = range(&f.gw, url, &low, &spec).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "zoom_above_max"));
}

#[tokio::test]
async fn range_request_forms_multi_suffix_open_unsatisfiable_if_range_and_head() {
    let f = fixture().await;
    let size = f.raster.len() as u64;
    let url = "/path/ras/archive.pmtiles";
    let open = f.gw.token(&[("ras", Tier::View)]).await;
    let fenced = f.gw.token_fenced("ras", Tier::View, Fence::new(Some(&[(2, 0, 0)]), Some(4)).expect("f"), None).await;
    // Multi-part, overlapping or not: refused, for every token.
    for spec in ["bytes=0-10,20-30", "bytes=0-10,5-20", "bytes=10-5", "lines=0-5"] {
        let r = range(&f.gw, url, &open, spec).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_REQUEST, "bad_request"), "{spec}");
    }
    // Suffix and open-ended ranges end at the archive's end: the last tile is z4's sea.
    let r = range(&f.gw, url, &open, "bytes=-500").await;
    assert_eq!((r.status, r.body.as_ref()), (StatusCode::PARTIAL_CONTENT, &f.raster[size as usize - 500..]));
    let r = range(&f.gw, url, &open, &format!("bytes={}-", size - 10)).await;
    assert_eq!(r.headers["content-range"], format!("bytes {}-{}/{size}", size - 10, size - 1));
    // Unsatisfiable.
    let r = range(&f.gw, url, &open, &format!("bytes={size}-")).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers["content-range"], format!("bytes */{size}"));
    // No Range: the whole archive for an open token, refused under a fence.
    let r = f.gw.get(url, &open).await;
    assert_eq!((r.status, r.body.len() as u64), (StatusCode::OK, size));
    let etag = r.headers["etag"].to_str().expect("etag").to_owned();
    assert_eq!(f.gw.get(url, &fenced).await.status, StatusCode::FORBIDDEN);
    // If-Range: the current ETag keeps the range; another means the whole archive.
    let auth = format!("Bearer {fenced}");
    let r =
        f.gw.send(
            Method::GET,
            url,
            &[("authorization", &auth), ("range", "bytes=0-126"), ("if-range", &etag)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let r =
        f.gw.send(
            Method::GET,
            url,
            &[("authorization", &auth), ("range", "bytes=0-126"), ("if-range", "\"old\"")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the whole archive is not the fenced token's");
    // HEAD: the size, no body.
    let r = f.gw.send(Method::HEAD, url, &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(
        (r.status, r.headers["content-length"].to_str().ok()),
        (StatusCode::OK, Some(size.to_string().as_str()))
    );
    assert_eq!(r.headers["accept-ranges"], "bytes");
}

#[tokio::test]
async fn range_mode_is_refused_where_raw_bytes_would_say_too_much() {
    let f = fixture().await;
    // Property-fenced tokens: raw tiles cannot be filtered.
    let token = f.gw.token_fenced("vecall", Tier::View, Fence::default(), Some(&["name"])).await;
    let r = range(&f.gw, "/path/vecall/archive.pmtiles", &token, "bytes=0-126").await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    // A path without pmtiles_range has no archive URL.
    let token = f.gw.token(&[("vec", Tier::View)]).await;
    assert_eq!(range(&f.gw, "/path/vec/archive.pmtiles", &token, "bytes=0-126").await.status, StatusCode::NOT_FOUND);
    // `/path/…` is scope `all`: an `ogc` token reads tiles, not the archive.
    let (ogc, _) = f.gw.token_with(&[("ras", Tier::View)], Fence::default(), Scope::Ogc, None).await;
    let r = range(&f.gw, "/path/ras/archive.pmtiles", &ogc, "bytes=0-126").await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "scope_ogc_only"));
    // Writes are not reads.
    let auth = format!("Bearer {}", f.gw.token(&[("ras", Tier::Admin)]).await);
    let r =
        f.gw.send(Method::PUT, "/path/ras/archive.pmtiles", &[("authorization", &auth)], Bytes::from_static(b"x"))
            .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_directory_cache_stays_within_its_bounds() {
    let f = fixture_with("[pmtiles]\ncache_entries = 16\ncache_bytes = 1048576\n").await;
    let token = f.gw.token(&[("ras", Tier::View)]).await;
    // Every tile of zooms 0‥4 (341 tiles across ~17 leaves).
    for z in 0..=4u32 {
        for x in 0..(1u32 << z) {
            for y in (0..(1u32 << z)).step_by(3) {
                assert_eq!(f.gw.get(&format!("/ogc/xyz/ras/{z}/{x}/{y}.png"), &token).await.status, StatusCode::OK);
            }
        }
    }
    let gateway = &f.gw.running.as_ref().expect("running").gateway;
    let (entries, bytes) = gateway.archives().cached_directories();
    assert!(entries > 0 && entries <= 16 && bytes <= 1 << 20, "{entries} directories, {bytes} bytes");
}

#[test]
fn config_refuses_range_mode_with_layers_and_bad_archive_locations() {
    let text = r#"
[server]
listen = "127.0.0.1:0"
[store]
path = "t.db"
[[path]]
id = "a"
kind = "vector"
layers = ["places"]
pmtiles_range = true
[path.upstream]
pmtiles = "ftp://x/a.pmtiles"
[[path]]
id = "b"
kind = "raster"
pmtiles_range = true
[path.upstream]
xyz = "http://127.0.0.1:1/{z}/{x}/{y}.png"
[pmtiles]
cache_entries = 1
"#;
    let e = tilegate::config::parse(text, std::path::Path::new(".")).expect_err("invalid");
    let e = e.to_string();
    assert!(e.contains("path[0].upstream.pmtiles: `ftp://x/a.pmtiles`"), "{e}");
    assert!(e.contains("path[0].pmtiles_range") && e.contains("declares `layers`"), "{e}");
    assert!(e.contains("path[1].pmtiles_range") && e.contains("no `[path.upstream] pmtiles`"), "{e}");
    assert!(e.contains("pmtiles.cache_entries: `1`"), "{e}");
}

/// The reference reader (PyPI `pmtiles`) over HTTP range requests through the gateway.
#[tokio::test]
async fn the_pypi_pmtiles_reader_reads_the_archive_through_range_mode() {
    let f = fixture().await;
    let open = f.gw.token(&[("vecall", Tier::View)]).await;
    let fenced =
        f.gw.token_fenced("vecall", Tier::View, Fence::new(Some(&[(1, 0, 0)]), Some(3)).expect("f"), None).await;
    let script = r#"
import sys, urllib.request, urllib.error, json
from pmtiles.reader import Reader
url, token = sys.argv[1], sys.argv[2]
def get_bytes(offset, length):
    req = urllib.request.Request(url, headers={"Range": f"bytes={offset}-{offset + length - 1}", "Authorization": "Bearer " + token})
    with urllib.request.urlopen(req) as r:
        return r.read()
reader = Reader(get_bytes)
h = reader.header()
out = {"max_zoom": h["max_zoom"], "tiles": {}, "errors": {}}
try:
    out["metadata_layers"] = [l["id"] for l in reader.metadata().get("vector_layers", [])]
except urllib.error.HTTPError as e:
    out["metadata_error"] = e.code
for z, x, y in [(0, 0, 0), (1, 0, 0), (1, 1, 1), (3, 1, 2), (3, 6, 6)]:
    try:
        t = reader.get(z, x, y)
        out["tiles"][f"{z}/{x}/{y}"] = None if t is None else t.hex()
    except urllib.error.HTTPError as e:
        out["errors"][f"{z}/{x}/{y}"] = e.code
print(json.dumps(out))
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("read.py");
    std::fs::write(&file, script).expect("script");
    let url = f.gw.url("/path/vecall/archive.pmtiles");
    let run = |token: String| {
        let (file, url) = (file.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(upstreams::venv_python())
                .arg(&file)
                .arg(&url)
                .arg(&token)
                .output()
                .expect("python runs");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
        })
    };
    let stored = |z, x, y| {
        let (off, len) = locate(&f.vector, z, x, y);
        f.vector[off as usize..(off + len) as usize].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let all = run(open).await.expect("reader");
    assert_eq!(all["max_zoom"], 3);
    assert_eq!(all["metadata_layers"], serde_json::json!(["places", "private"]));
    for (key, (z, x, y)) in [("0/0/0", (0, 0, 0)), ("1/1/1", (1, 1, 1)), ("3/6/6", (3, 6, 6))] {
        assert_eq!(all["tiles"][key].as_str(), Some(stored(z, x, y).as_str()), "{key}: the stored bytes");
    }
    let some = run(fenced).await.expect("reader");
    // The raw metadata names what lies outside the fence (tilestats values, bounds):
    // a fenced token reads the narrowed TileJSON instead (attacker round 4).
    assert_eq!(some["metadata_error"], 403, "{some}");
    // The header and directories are read; no vector tile is, not even one inside the
    // fence: its buffer reaches beyond its edges, and raw bytes cannot be clipped
    // (attacker round 9). Fenced clients read /ogc/mvt tiles, which are clipped; a
    // raster archive is still read tile by tile (protomaps_pmtiles_js_… below).
    assert_eq!(some["max_zoom"], 3, "{some}");
    for key in ["1/0/0", "3/1/2", "0/0/0", "1/1/1", "3/6/6"] {
        assert_eq!(some["errors"][key], 403, "{key}: {some}");
    }
}

/// protomaps' PMTiles JS reader (npm `pmtiles` 4.5, what MapLibre's `pmtiles://` protocol
/// runs) under Node, through range mode: its first read is `bytes=0-16383`, which under a
/// fence is answered shorter (the directories only), and it must still find every tile.
#[tokio::test]
async fn protomaps_pmtiles_js_reads_the_archive_through_range_mode() {
    let dir = upstreams::repo_root().join("tests/e2e/pmtiles-js");
    assert!(
        dir.join("node_modules/pmtiles/package.json").exists(),
        "the PMTiles JS reader is not installed: run scripts/e2e-setup"
    );
    let f = fixture().await;
    let url = f.gw.url("/path/ras/archive.pmtiles");
    let run = |token: String| {
        let (dir, url) = (dir.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("node")
                .arg(dir.join("client.mjs"))
                .args([url.as_str(), token.as_str(), "0/0/0", "2/0/0", "3/1/1", "3/6/6", "4/2/2", "4/9/9"])
                .output()
                .expect("node runs (Node >= 18)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
        })
    };
    let stored = |z, x, y| {
        let (off, len) = locate(&f.raster, z, x, y);
        f.raster[off as usize..(off + len) as usize].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let open = run(f.gw.token(&[("ras", Tier::View)]).await).await.expect("reader");
    assert_eq!(
        (open["minZoom"].as_u64(), open["maxZoom"].as_u64(), open["tileType"].as_u64()),
        (Some(0), Some(4), Some(2))
    );
    for key in ["0/0/0", "2/0/0", "3/1/1", "3/6/6", "4/2/2", "4/9/9"] {
        let (z, x, y) = {
            let v: Vec<u32> = key.split('/').map(|s| s.parse().expect("n")).collect();
            (v[0] as u8, v[1], v[2])
        };
        assert_eq!(open["tiles"][key].as_str(), Some(stored(z, x, y).as_str()), "{key}: {open}");
    }
    // The north-west quarter (2/0/0), to zoom 4.
    let fenced = f.gw.token_fenced("ras", Tier::View, Fence::new(Some(&[(2, 0, 0)]), Some(4)).expect("f"), None).await;
    let some = run(fenced).await.expect("reader");
    assert_eq!(some["maxZoom"].as_u64(), Some(4), "the header reads under a fence: {some}");
    assert_eq!(some["tiles"]["2/0/0"].as_str(), Some(stored(2, 0, 0).as_str()), "{some}");
    assert_eq!(some["tiles"]["3/1/1"].as_str(), Some(stored(3, 1, 1).as_str()), "{some}");
    // Zoom 4's one content is a tile inside (4/2/2): served under any of its ids.
    assert_eq!(some["tiles"]["4/9/9"].as_str(), Some(stored(4, 9, 9).as_str()), "{some}");
    for key in ["0/0/0", "3/6/6"] {
        assert!(some["errors"][key].as_str().is_some_and(|e| e.contains("403")), "{key}: {some}");
    }
}

#[tokio::test]
async fn every_integrate_url_the_console_offers_for_archives_answers() {
    let f = fixture().await;
    let token =
        f.gw.token(&[("vec", Tier::View), ("vecall", Tier::View), ("ras", Tier::View), ("web", Tier::View)]).await;
    let checked = crate::support::integrate::every_integrate_url_answers_under(
        &f.gw,
        "https://maps.example.org",
        &token,
        &[&f.http.addr.to_string()],
    )
    .await;
    // A TileJSON per archive path, and the archive itself where range mode is on.
    assert_eq!(
        checked,
        ["pmtiles", "pmtiles", "pmtiles", "pmtiles", "pmtiles_range", "pmtiles_range", "pmtiles_range"]
    );
}
