//! TiTiler (`titiler.application` 2.4, run with uvicorn from `.venv-titiler`) behind the
//! gateway at `/ogc/titiler/{pathId}/cog/…`: the `url=` dataset rule, the tile geofence,
//! the other endpoints and the per-token TileJSON, against the real server.
//!
//! The server is started once per test process by `tests/e2e/titiler_serve.py` over
//! the fixtures `scripts/e2e-setup` generates (`.venv-titiler/fixtures/cog.tif`, and
//! `secret.tif`, which the path does not declare). A missing venv fails the test:
//! nothing is skipped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::support::ops::free_port;
use crate::support::{upstreams, TestGateway};
use tilegate::policy::Tier;
use tilegate::spatial::Fence;

/// `$TILEGATE_TITILER_VENV` or `<repo>/.venv-titiler`.
fn venv() -> PathBuf {
    match std::env::var_os("TILEGATE_TITILER_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => upstreams::repo_root().join(".venv-titiler"),
    }
}

struct Titiler {
    base: String,
    fixtures: PathBuf,
    _child: Child,
    _stdin: ChildStdin,
}

impl Titiler {
    fn shared() -> &'static Titiler {
        static SHARED: OnceLock<Titiler> = OnceLock::new();
        SHARED.get_or_init(Titiler::start)
    }

    fn start() -> Titiler {
        let python = venv().join("bin").join("python");
        assert!(
            python.is_file(),
            "TiTiler's venv is missing at {} — run scripts/e2e-setup first (or set TILEGATE_TITILER_VENV)",
            venv().display()
        );
        let fixtures = venv().join("fixtures");
        let mut child = Command::new(&python)
            .arg(upstreams::e2e_dir().join("titiler_serve.py"))
            .arg("serve")
            .arg(&fixtures)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start TiTiler");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("TILEGATE_E2E_READY ") {
                    let _ = tx.send(port.trim().to_owned());
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(300)).expect("TiTiler listens within 300 s");
        Titiler { base: format!("http://127.0.0.1:{port}"), fixtures, _child: child, _stdin: stdin }
    }

    fn dataset(&self, name: &str) -> String {
        format!("file://{}", self.fixtures.join(name).display())
    }

    /// Straight to TiTiler, bypassing the gateway: what an attacker would get.
    fn direct(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        let url = format!("{}{path_and_query}", self.base);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("curl")
                .args(["-s", "-g", "-o", "-", "-w", "\n%{http_code}", &url])
                .output()
                .expect("curl runs");
            let mut body = out.stdout;
            let cut = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            let status: u16 = String::from_utf8_lossy(&body[cut + 1..]).trim().parse().unwrap_or(0);
            body.truncate(cut);
            if status != 0 || Instant::now() > deadline {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The gateway in front of the shared TiTiler; `public_url` is its own address so that
/// a client can follow the TileJSON's tile URLs.
async fn gateway() -> (TestGateway, &'static Titiler) {
    let t = tokio::task::spawn_blocking(Titiler::shared).await.expect("TiTiler starts");
    let port = free_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
path = "tilegate.db"
[[path]]
id = "dem"
kind = "raster"
titiler_datasets = ["{cog}", "file://{dir}/tiles/"]
[path.upstream]
titiler = "{base}"
"#,
        cog = t.dataset("cog.tif"),
        dir = t.fixtures.display(),
        base = t.base,
    );
    (TestGateway::with_config(&config).await, t)
}

/// The fence of these tests: tile 3/4/2 (longitude 0‥45, latitude 0‥41), maxZoom 5.
fn fence() -> Fence {
    Fence::new(Some(&[(3, 4, 2)]), Some(5)).expect("fence")
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn tile(z: u32, x: u32, y: u32, ext: &str, t: &Titiler, extra: &str) -> String {
    format!("/ogc/titiler/dem/cog/tiles/WebMercatorQuad/{z}/{x}/{y}{ext}?url={}{extra}", enc(&t.dataset("cog.tif")))
}

fn rgba(body: &[u8]) -> image::RgbaImage {
    image::load_from_memory(body).expect("an image").to_rgba8()
}

#[tokio::test]
async fn a_covered_url_passes_and_an_undeclared_one_is_refused_though_titiler_serves_it() {
    let (gw, t) = gateway().await;
    let open = gw.token(&[("dem", Tier::ViewPlus)]).await;
    let r = gw.get(&tile(3, 4, 2, ".png", t, ""), &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "image/png");
    // TiTiler itself opens any file it can read:
    let secret = t.dataset("secret.tif");
    let (status, _) = t.direct(&format!("/cog/point/10,50?url={}", enc(&secret)));
    assert_eq!(status, 200);
    let r = gw.get(&format!("/ogc/titiler/dem/cog/point/10,10?url={}", enc(&secret)), &open).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "dataset_not_covered"), "{}", r.text());
}

/// Every way of naming another dataset than the declared one, each refused (400 for
/// what cannot be judged, 403 `dataset_not_covered` for a well-formed other dataset),
/// and the shapes TiTiler really opens when asked directly.
#[tokio::test]
async fn every_url_bypass_shape_is_refused() {
    let (gw, t) = gateway().await;
    let open = gw.token(&[("dem", Tier::ViewPlus)]).await;
    let cog = t.dataset("cog.tif");
    let secret = t.dataset("secret.tif");
    let dir = t.fixtures.display().to_string();
    // What TiTiler answers directly: the last of two `url`s wins (Starlette), `vrt://`
    // and `/vsi…` paths open, so each is a real way around a prefix check.
    let (status, body) = t.direct(&format!("/cog/point/10,50?url={}&url={}", enc(&cog), enc(&secret)));
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("50.0"),
        "the second url was read: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(t.direct(&format!("/cog/point/10,10?url={}", enc(&format!("vrt://{dir}/secret.tif?bands=1")))).0, 200);
    let shapes = [
        format!("url={}&url={}", enc(&cog), enc(&secret)),
        format!("url={}&URL={}", enc(&cog), enc(&secret)),
        format!("URL={}", enc(&secret)),
        format!("url={}", enc(&format!("vrt://{dir}/cog.tif?bands=1"))),
        format!("url={}", enc(&format!("/vsicurl/{}/cog/info", t.base))),
        format!("url={}", enc(&format!("/vsizip/{dir}/a.zip/cog.tif"))),
        format!("url={}", enc(&format!("/vsigzip/{dir}/cog.tif"))),
        format!("url={}", enc(&format!("<VRTDataset><VRTRasterBand><SimpleSource><SourceFilename>{dir}/secret.tif</SourceFilename></SimpleSource></VRTRasterBand></VRTDataset>"))),
        format!("url={}", enc(&format!("file://{dir}/tiles/../secret.tif"))),
        format!("url={}", enc(&format!("file://{dir}/tiles/%2e%2e/secret.tif"))),
        format!("url={}", enc(&format!("file://{dir}/tiles/%252e%252e/secret.tif"))),
        format!("url=file://{dir}/tiles/%2e%2e/secret.tif"),
        format!("url={}", enc(&format!("{cog}?x=1"))),
        format!("url={}", enc(&format!("{cog}#x"))),
        format!("url={}", enc(&format!("file://{dir}/tiles"))),
        format!("url={}", enc(&format!("file://{dir}/tiles/"))),
        format!("url={}", enc(&format!("file://{dir}/tiles-secret/cog.tif"))),
        format!("url={}", enc(&format!("file://{dir}/tiles//cog.tif"))),
        format!("url={}", enc(&format!("file://localhost{dir}/cog.tif"))),
        format!("url={}", enc(&format!("zip+file://{dir}/a.zip!/cog.tif"))),
        format!("url={}", enc(&format!("GTIFF_DIR:1:{dir}/cog.tif"))),
        format!("url={}", enc(&format!("{cog}.aux.xml"))),
        format!("url={}", enc(&secret)),
        format!("url={}", enc(&format!("http://127.0.0.1:9/{}", "x.tif"))),
        "url=".to_owned(),
        String::new(),
    ];
    for q in &shapes {
        let r = gw.get(&format!("/ogc/titiler/dem/cog/point/10,10?{q}"), &open).await;
        assert!(matches!(r.status.as_u16(), 400 | 403), "{q}: {} {}", r.status, r.text());
        if r.status == StatusCode::FORBIDDEN {
            assert_eq!(r.reason(), "dataset_not_covered", "{q}");
        }
    }
    // Spellings of the declared dataset are the declared dataset.
    for url in [cog.clone(), cog.replacen("file://", "FILE://", 1), cog.trim_start_matches("file://").to_owned()] {
        let r = gw.get(&format!("/ogc/titiler/dem/cog/point/10,10?url={}", enc(&url)), &open).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text());
        assert!(r.text().contains("200.0"), "{}", r.text());
    }
}

#[tokio::test]
async fn tiles_inside_pass_outside_and_above_max_zoom_are_refused_straddling_ones_are_clipped() {
    let (gw, t) = gateway().await;
    let fenced = gw.token_fenced("dem", Tier::View, fence(), None).await;
    let open = gw.token(&[("dem", Tier::View)]).await;
    // Inside: relayed byte for byte.
    let r = gw.get(&tile(4, 8, 4, ".png", t, ""), &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let direct = t.direct(&format!("/cog/tiles/WebMercatorQuad/4/8/4.png?url={}", enc(&t.dataset("cog.tif"))));
    assert_eq!((200, r.body.to_vec()), direct);
    for (z, x, y, reason) in
        [(3, 6, 1, "outside_geofence"), (4, 12, 4, "outside_geofence"), (6, 32, 16, "zoom_above_max")]
    {
        let r = gw.get(&tile(z, x, y, ".png", t, ""), &fenced).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, reason), "{z}/{x}/{y}");
    }
    // A 512-pixel tile at z 5 shows zoom-6 detail.
    let r = gw.get(&tile(5, 16, 8, ".png", t, "&tilesize=512"), &fenced).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "zoom_above_max"));
    // Straddling: tile 2/2/1 holds the fence in its north-west quarter.
    for ext in [".png", ".webp"] {
        let r = gw.get(&tile(2, 2, 1, ext, t, ""), &fenced).await;
        assert_eq!(r.status, StatusCode::OK, "{ext}: {}", r.text());
        let img = rgba(&r.body);
        assert_eq!(img.dimensions(), (256, 256));
        assert_eq!(img.get_pixel(64, 64).0[3], 255, "{ext}: inside is kept");
        for (x, y) in [(192, 64), (64, 192), (192, 192), (130, 130)] {
            assert_eq!(img.get_pixel(x, y).0[3], 0, "{ext}: ({x},{y}) outside is masked");
        }
    }
    // JPEG has no alpha: outside is the path's background (white).
    let r = gw.get(&tile(2, 2, 1, ".jpg", t, ""), &fenced).await;
    assert_eq!(r.status, StatusCode::OK);
    let img = rgba(&r.body);
    assert!(img.get_pixel(200, 200).0[..3].iter().all(|&c| c > 240), "{:?}", img.get_pixel(200, 200));
    // A buffer reaches beyond the tile: the border outside the fence is masked.
    let r = gw.get(&tile(3, 4, 2, ".png", t, "&buffer=16"), &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let img = rgba(&r.body);
    assert_eq!(img.dimensions(), (288, 288));
    assert_eq!(img.get_pixel(144, 144).0[3], 255);
    assert_eq!(img.get_pixel(280, 144).0[3], 0);
    // Formats the clipper cannot read (raw values, so `viewPlus`): whole tiles inside
    // pass, straddling ones are refused.
    let fenced_plus = gw.token_fenced("dem", Tier::ViewPlus, fence(), None).await;
    let r = gw.get(&tile(4, 8, 4, ".tif", t, ""), &fenced_plus).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for ext in [".tif", ".npy"] {
        let r = gw.get(&tile(2, 2, 1, ext, t, ""), &fenced_plus).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"), "{ext}");
    }
    // An algorithm may crop the image's border, so the mask would not line up: refused.
    let r = gw.get(&tile(2, 2, 1, ".png", t, "&algorithm=hillshade"), &fenced).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "outside_geofence"));
    // An open token gets the straddling tile whole.
    let r = gw.get(&tile(2, 2, 1, ".png", t, ""), &open).await;
    let direct = t.direct(&format!("/cog/tiles/WebMercatorQuad/2/2/1.png?url={}", enc(&t.dataset("cog.tif"))));
    assert_eq!((200, r.body.to_vec()), direct);
    // Other tile matrix sets cannot be judged against a fence.
    let r = gw
        .get(
            &format!("/ogc/titiler/dem/cog/tiles/WorldCRS84Quad/2/3/1.png?url={}", enc(&t.dataset("cog.tif"))),
            &fenced,
        )
        .await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "unsupported_crs"));
}

#[tokio::test]
async fn other_endpoints_are_judged_against_the_fence_or_refused() {
    let (gw, t) = gateway().await;
    let url = enc(&t.dataset("cog.tif"));
    let fenced = gw.token_fenced("dem", Tier::ViewPlus, fence(), None).await;
    let open_view = gw.token(&[("dem", Tier::View)]).await;
    let open = gw.token(&[("dem", Tier::ViewPlus)]).await;
    let at = |rest: &str| format!("/ogc/titiler/dem/cog/{rest}?url={url}");
    // The whole dataset: fine without a fence, refused under one.
    for rest in ["info", "info.geojson", "statistics", "preview.png", "preview/64x64.png"] {
        let r = gw.get(&at(rest), &open).await;
        assert_eq!(r.status, StatusCode::OK, "{rest}: {}", r.text());
        let r = gw.get(&at(rest), &fenced).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "fence_unverifiable"), "{rest}");
    }
    let r = gw.get(&at("statistics"), &open_view).await;
    assert_eq!(r.reason(), "tier_too_low");
    // A point is judged where it is, like GetFeatureInfo (viewPlus), and read at native
    // resolution: refused under any maxZoom (attacker round 9: a grid of points rebuilt
    // the raster finer than maxZoom).
    let tiles_only =
        gw.token_fenced("dem", Tier::ViewPlus, Fence::new(Some(&[(3, 4, 2)]), None).expect("f"), None).await;
    let r = gw.get(&at("point/10,50"), &tiles_only).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(gw.get(&at("point/100,50"), &tiles_only).await.reason(), "outside_geofence");
    assert_eq!(gw.get(&at("point/10,50"), &fenced).await.reason(), "zoom_above_max");
    let zoom_only = gw.token_fenced("dem", Tier::ViewPlus, Fence::new(None, Some(12)).expect("f"), None).await;
    assert_eq!(gw.get(&at("point/10,50"), &zoom_only).await.reason(), "zoom_above_max");
    assert_eq!(gw.get(&at("point/10,50"), &open_view).await.reason(), "tier_too_low");
    // A bbox map is judged at its zoom; one straddling the fence is clipped.
    let r = gw.get(&at("bbox/5,45,40,60/64x64.png"), &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = gw.get(&at("bbox/0,42,90,66/128x64.png"), &fenced).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let img = rgba(&r.body);
    assert_eq!(img.get_pixel(10, 32).0[3], 255);
    assert_eq!(img.get_pixel(110, 32).0[3], 0);
    assert_eq!(gw.get(&at("bbox/5,45,40,60/2048x1024.png"), &fenced).await.reason(), "zoom_above_max");
    assert_eq!(gw.get(&at("bbox/50,45,60,60/64x64.png"), &fenced).await.reason(), "outside_geofence");
    // A feature (POST GeoJSON) is judged by its bounding box.
    let feature = |x: f64| {
        Bytes::from(format!(
            r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Polygon","coordinates":[[[5,45],[{x},45],[{x},60],[5,60],[5,45]]]}}}}"#
        ))
    };
    let auth = format!("Bearer {fenced}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let r = gw.send(Method::POST, &at("feature/64x64.png"), &headers, feature(30.0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = gw.send(Method::POST, &at("feature/64x64.png"), &headers, feature(120.0)).await;
    assert_eq!(r.status, StatusCode::OK, "straddling features are clipped: {}", r.text());
    assert_eq!(rgba(&r.body).get_pixel(60, 30).0[3], 0);
    // Everything else is refused, for every token.
    for rest in ["map", "WebMercatorQuad/map.html", "WebMercatorQuad/WMTSCapabilities.xml", "validate", "tiles", "stac"]
    {
        let r = gw.get(&at(rest), &open).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_REQUEST, "unsupported_request"), "{rest}");
    }
    for rest in [
        "/ogc/titiler/dem/stac/info",
        "/ogc/titiler/dem/mosaicjson/info",
        "/ogc/titiler/dem/docs",
        "/ogc/titiler/dem/api",
    ] {
        let r = gw.get(&format!("{rest}?url={url}"), &open).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{rest}");
    }
}

#[tokio::test]
async fn tilejson_is_written_for_each_token_and_its_tiles_answer() {
    let (gw, t) = gateway().await;
    let url = enc(&t.dataset("cog.tif"));
    let fenced = gw.token_fenced("dem", Tier::View, fence(), None).await;
    let open = gw.token(&[("dem", Tier::View)]).await;
    let path = format!("/ogc/titiler/dem/cog/WebMercatorQuad/tilejson.json?url={url}&maxzoom=12");
    // The open token: the dataset as TiTiler describes it, URLs on the gateway.
    let r = gw.get(&path, &open).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["maxzoom"], 12);
    assert!(!r.text().contains(&t.base), "{}", r.text());
    let template = doc["tiles"][0].as_str().expect("a tile URL").to_owned();
    assert!(template.starts_with(&gw.url("/ogc/titiler/dem/cog/tiles/WebMercatorQuad/{z}/{x}/{y}?")), "{template}");
    // The fenced token, sent in the query as a browser map would: its zoom and bounds.
    let r = gw.send(Method::GET, &format!("{path}&token={fenced}"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["maxzoom"], 5);
    let b: Vec<f64> = doc["bounds"].as_array().expect("bounds").iter().filter_map(|v| v.as_f64()).collect();
    assert!(b[0] >= 0.0 && b[1] >= 40.9 && b[2] <= 45.0 + 1e-6 && b[3] <= 66.52, "{b:?}");
    assert!(doc.get("minmax").is_none());
    let template = doc["tiles"][0].as_str().expect("a tile URL").to_owned();
    assert!(template.contains(&format!("token={fenced}")), "{template}");
    // What a map client does next: fill the template and fetch tiles.
    let fill = |z: u32, x: u32, y: u32| {
        template.replace("{z}", &z.to_string()).replace("{x}", &x.to_string()).replace("{y}", &y.to_string())
    };
    let local = |u: String| u.strip_prefix(&gw.url("")).expect("on the gateway").to_owned();
    let r = gw.send(Method::GET, &local(fill(5, 16, 8)), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = gw.send(Method::GET, &local(fill(6, 32, 16)), &[], Bytes::new()).await;
    assert_eq!(r.reason(), "zoom_above_max");
}

/// A TiTiler path without datasets would open any `url=`; datasets without TiTiler mean
/// nothing; a declaration the canonical form cannot hold is named with its key.
#[test]
fn titiler_paths_must_declare_their_datasets_in_canonical_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = |path: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://maps.example.org\"\n[store]\npath = \"t.db\"\n[[path]]\nid = \"dem\"\nkind = \"raster\"\n{path}"
        );
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).expect("write");
        tilegate::config::load(&file).map(|_| ()).map_err(|e| e.to_string())
    };
    let e = load("[path.upstream]\ntitiler = \"http://127.0.0.1:8000\"\n").expect_err("no datasets");
    assert!(e.contains("path[0].titiler_datasets: a TiTiler path must list the datasets"), "{e}");
    let e = load(
        "titiler_datasets = [\"file:///data/a.tif\"]\n[path.upstream]\nxyz = \"http://127.0.0.1:9/{z}/{x}/{y}.png\"\n",
    )
    .expect_err("no titiler");
    assert!(e.contains("add `upstream.titiler`"), "{e}");
    let e = load(
        "titiler_datasets = [\"file:///data/ok/\", \"/vsicurl/https://x/a.tif\", \"https://b.example/a%20b.tif\"]\n[path.upstream]\ntitiler = \"http://127.0.0.1:8000\"\n",
    )
    .expect_err("bad entries");
    assert!(
        e.contains("path[0].titiler_datasets[1]: `/vsicurl/https://x/a.tif` names a GDAL virtual file system"),
        "{e}"
    );
    assert!(e.contains("path[0].titiler_datasets[2]:"), "{e}");
    assert!(!e.contains("titiler_datasets[0]"), "{e}");
    load("titiler_datasets = [\"file:///data/ok/\", \"S3://Bucket/cogs/\"]\n[path.upstream]\ntitiler = \"http://127.0.0.1:8000\"\n")
        .expect("valid");
}

#[tokio::test]
async fn every_integrate_url_the_console_offers_for_titiler_answers() {
    let (gw, t) = gateway().await;
    let token = gw.token(&[("dem", Tier::View)]).await;
    let checked = crate::support::integrate::every_integrate_url_answers(&gw, &token, &[&t.base]).await;
    // The declared dataset; the `…/tiles/` prefix names no single dataset to offer.
    assert_eq!(checked, ["titiler"]);
}

/// Regression: a bbox map without a size (TiTiler reads it at native resolution) was
/// judged at an infinite zoom, which the fence reads as "outside"; a box meeting the
/// fence then counted as straddling it and was served clipped, at native resolution,
/// past the token's maxZoom.
#[tokio::test]
async fn a_bbox_without_a_size_was_served_clipped_at_native_resolution() {
    let (gw, t) = gateway().await;
    let url = enc(&t.dataset("cog.tif"));
    let fenced = gw.token_fenced("dem", Tier::View, fence(), None).await;
    for rest in ["bbox/5,45,40,60.png", "bbox/0,42,90,66.png"] {
        let r = gw.get(&format!("/ogc/titiler/dem/cog/{rest}?url={url}"), &fenced).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "zoom_above_max"), "{rest}");
    }
    // Without a maxZoom the same map inside the tile fence is served.
    let tiles_only =
        gw.token_fenced("dem", Tier::View, Fence::new(Some(&[(3, 4, 2)]), None).expect("fence"), None).await;
    let r = gw.get(&format!("/ogc/titiler/dem/cog/bbox/5,45,40,60.png?url={url}"), &tiles_only).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Attacker round 9: a `view` token got the raw band values of a tile as `.npy` (what
/// `point` and `statistics` give only to `viewPlus`), and `width`/`height` in the query
/// made TiTiler allocate 1.9 GB for one map. Raw formats need `viewPlus`; query sizes
/// are bounded as the path's are, refused by the gateway before TiTiler sees them.
#[tokio::test]
async fn raw_values_need_view_plus_and_query_sizes_are_bounded() {
    let (gw, t) = gateway().await;
    let view = gw.token(&[("dem", Tier::View)]).await;
    let plus = gw.token(&[("dem", Tier::ViewPlus)]).await;
    for ext in [".npy", ".tif", ".pngraw"] {
        let r = gw.get(&tile(3, 4, 2, ext, t, ""), &view).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "tier_too_low"), "{ext}: {}", r.text());
        let r = gw.get(&tile(3, 4, 2, ext, t, ""), &plus).await;
        assert_eq!(r.status, StatusCode::OK, "{ext}: {}", r.text());
    }
    let r = gw.get(&tile(3, 4, 2, ".png", t, ""), &view).await;
    assert_eq!(r.status, StatusCode::OK, "a picture stays view: {}", r.text());
    let bbox = |q: &str| format!("/ogc/titiler/dem/cog/bbox/0,0,10,10.jpg?url={}{q}", enc(&t.dataset("cog.tif")));
    // The gateway's own refusal (its message), so nothing was forwarded.
    for q in ["&width=8500&height=8500", "&width=30000&height=10", "&max_size=9000"] {
        let r = gw.get(&bbox(q), &view).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text());
        assert!(r.text().contains("at most 4096 pixels"), "{q}: {}", r.text());
    }
    let r = gw.get(&tile(3, 4, 2, ".png", t, "&padding=100000"), &view).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = gw.get(&bbox("&width=512&height=512"), &view).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Round 9b: bands multiply the size (300 expressions took TiTiler to 1.2 GB), and
    // histogram bins are bounded.
    let exprs = vec!["b1"; 300].join(";");
    let r = gw.get(&tile(5, 16, 10, ".png", t, &format!("&tilesize=512&expression={}", enc(&exprs))), &view).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("output bands"), "{}", r.text());
    let r = gw.get(&tile(5, 16, 10, ".png", t, &"&bidx=1".repeat(500)), &view).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // Round 10: at 8192 pixels a side one view request took TiTiler 15–20 s of CPU and
    // 1.5–2.9 GB, and 120 nested calls in an expression 75 s: sides, values and
    // operations are bounded.
    let cog = enc(&t.dataset("cog.tif"));
    for big in [
        format!("bbox/0,0,10,10/8192x8192.png?url={cog}&bidx=1"),
        format!("bbox/0,0,10,10/4096x4096.png?url={cog}&bidx=1"),
    ] {
        let r = gw.get(&format!("/ogc/titiler/dem/cog/{big}"), &view).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{big}: {}", r.text());
    }
    let sines = |n: usize| enc(&vec!["sin(b1)"; n].join("+"));
    let r = gw.get(&tile(5, 16, 10, ".png", t, &format!("&expression={}", sines(17))), &view).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("operators and function calls"), "{}", r.text());
    let r = gw.get(&tile(5, 16, 10, ".png", t, &format!("&expression={}&rescale=-16,16", sines(8))), &view).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stats = |bins: &str| {
        format!("/ogc/titiler/dem/cog/statistics?url={}&histogram_bins={bins}", enc(&t.dataset("cog.tif")))
    };
    let r = gw.get(&stats("1000000"), &plus).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = gw.get(&stats("16"), &plus).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
