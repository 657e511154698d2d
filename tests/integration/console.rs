//! The browser console (`/admin/`) and the endpoint it reads its tree from
//! (`/account/security/paths`): the files and their security headers, which listener
//! serves them, what the tree shows to whom, that every Integrate URL the console
//! offers is served through the real gateway in front of MapProxy and pygeoapi, and the
//! browser flows in real headless Chromium (`tests/e2e/console_flows.py`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::support::upstreams::{self, MapProxy, PyGeoApi};
use crate::support::{fixtures, TestGateway};
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;
use tilegate::store::now_unix;

const SMALL: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[admin]
enabled = true
[[path]]
id = "world"
kind = "folder"
[[path]]
id = "osm"
parent = "world"
kind = "raster"
layers = ["osm"]
[path.upstream]
xyz = "http://{up}/tiles/{z}/{x}/{y}.png"
wms = "http://{up}/wms"
[[path]]
id = "places"
parent = "world"
kind = "vector"
layers = ["places"]
properties = ["name", "secret_note"]
[path.upstream]
ogcapi = "http://{up}/api"
wfs = "http://{up}/wfs"
[[path]]
id = "private"
kind = "raster"
[path.upstream]
xyz = "http://{up}/private/{z}/{x}/{y}.png"
"#;

fn header<'a>(r: &'a crate::support::Reply, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn console_files_carry_a_strict_csp_and_an_etag_and_revalidate() {
    let gw = TestGateway::with_config(SMALL).await;
    let page = gw.send(Method::GET, "/admin/", &[], Bytes::new()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let csp = header(&page, "content-security-policy");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("img-src 'self' data: blob:") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert!(page.headers.get("set-cookie").is_none(), "no cookies");
    assert!(page.text().contains("<script src=\"console.js\" defer>"));
    for (asset, kind) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("map.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("land-110m.json", "application/json"),
    ] {
        let r = gw.send(Method::GET, &format!("/admin/{asset}"), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert_eq!(header(&r, "content-type"), kind, "{asset}");
        let etag = header(&r, "etag").to_owned();
        assert!(etag.starts_with('"'), "{asset}: {etag}");
        let again = gw.send(Method::GET, &format!("/admin/{asset}"), &[("if-none-match", &etag)], Bytes::new()).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{asset}");
        assert!(again.body.is_empty());
    }
    let bare = gw.send(Method::GET, "/admin", &[], Bytes::new()).await;
    assert_eq!(bare.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&bare, "location"), "/admin/");
    for missing in ["/admin/nothing.js", "/admin/../config.toml", "/admin/a/b"] {
        let r = gw.send(Method::GET, missing, &[], Bytes::new()).await;
        assert!(r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST, "{missing}: {}", r.status);
    }
    let post = gw.send(Method::POST, "/admin/", &[], Bytes::new()).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn console_is_off_unless_enabled() {
    let gw = TestGateway::with_config(&SMALL.replace("[admin]\nenabled = true\n", "")).await;
    assert_eq!(gw.send(Method::GET, "/admin/", &[], Bytes::new()).await.status, StatusCode::NOT_FOUND);
    assert_eq!(gw.send(Method::GET, "/admin/console.js", &[], Bytes::new()).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn console_lives_on_the_api_listener_when_it_has_its_own() {
    let port = crate::support::ops::free_port();
    let gw =
        TestGateway::with_config(&SMALL.replace("[admin]", &format!("[api]\nlisten = \"127.0.0.1:{port}\"\n[admin]")))
            .await;
    assert_eq!(gw.send(Method::GET, "/admin/", &[], Bytes::new()).await.status, StatusCode::NOT_FOUND);
    let token = gw.token(&[("world", Tier::Admin)]).await;
    assert_eq!(gw.get("/account/security/paths", &token).await.status, StatusCode::NOT_FOUND);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (status, body) = crate::support::ops::get(addr, "/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("tilegate console"));
}

#[tokio::test]
async fn paths_shows_only_what_the_token_sees_and_never_an_upstream() {
    let gw = TestGateway::with_config(SMALL).await;
    let token = gw.token_fenced("places", Tier::ViewPlus, Fence::default(), Some(&["name"])).await;
    let r = gw.get("/account/security/paths", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(header(&r, "cache-control"), "no-store");
    let text = r.text();
    assert!(!text.contains(&gw.upstream.addr.to_string()), "an upstream address: {text}");
    let v = r.json();
    let paths = v["paths"].as_array().expect("paths");
    let ids: Vec<&str> = paths.iter().map(|p| p["id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids, ["places"], "only the granted layer, not its folder or the private path");
    let places = &paths[0];
    assert_eq!(places["parent"], Value::Null, "the folder it cannot see is not named");
    assert_eq!(places["kind"], "vector");
    assert_eq!(places["access"]["accessTier"], "viewPlus");
    assert_eq!(places["properties"], serde_json::json!(["name"]), "a hidden property's name is not told");
    assert!(!text.contains("secret_note"));
    let urls: Vec<&str> =
        places["integrate"].as_array().expect("urls").iter().map(|u| u["url"].as_str().unwrap_or("")).collect();
    assert_eq!(urls, ["https://maps.example.org/ogc/wfs/places", "https://maps.example.org/ogc/api/places"]);
    assert_eq!(v["token"]["scope"], "all");

    // A view token cannot read features: WFS (GetFeature needs viewPlus) is not offered;
    // the OGC API stays, its tiles and landing page are view-tier.
    let view = gw.token(&[("places", Tier::View)]).await;
    let v = gw.get("/account/security/paths", &view).await.json();
    let protocols: Vec<&str> = v["paths"][0]["integrate"]
        .as_array()
        .expect("urls")
        .iter()
        .map(|u| u["protocol"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(protocols, ["ogcapi"]);

    // A folder grant shows the folder and everything under it, parents first.
    let admin = gw.token(&[("world", Tier::Admin)]).await;
    let v = gw.get("/account/security/paths", &admin).await.json();
    let ids: Vec<&str> = v["paths"].as_array().expect("paths").iter().map(|p| p["id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids, ["world", "osm", "places"]);
    assert_eq!(v["paths"][1]["parent"], "world");
    assert_eq!(v["paths"][1]["access"]["grantedOn"], "world");
}

#[tokio::test]
async fn paths_is_judged_like_the_token_api() {
    let gw = TestGateway::with_config(SMALL).await;
    let (ogc, _) = gw.token_with(&[("osm", Tier::View)], Fence::default(), Scope::Ogc, None).await;
    let r = gw.get("/account/security/paths", &ogc).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.reason(), "scope_ogc_only");
    let (expired, _) = gw.token_with(&[("osm", Tier::Admin)], Fence::default(), Scope::All, Some(now_unix() - 1)).await;
    let r = gw.get("/account/security/paths", &expired).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.reason(), "expired_token");
    let r = gw.send(Method::GET, "/account/security/paths", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let token = gw.token(&[("osm", Tier::View)]).await;
    let r = gw.api(Method::POST, "/account/security/paths", &token, Some(serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// The gateway of `tests/integration/e2e.rs` (MapProxy and pygeoapi), with the console on.
async fn real_gateway() -> (TestGateway, &'static MapProxy, &'static PyGeoApi) {
    let (mp, pg) =
        tokio::task::spawn_blocking(|| (MapProxy::shared(), PyGeoApi::shared())).await.expect("servers start");
    let port = crate::support::ops::free_port();
    let config = format!(
        "{}[admin]\nenabled = true\n[[path]]\nid = \"maps\"\nkind = \"folder\"\n{}{}",
        fixtures::server_at(port),
        fixtures::mapproxy_basemap("maps", &mp.base),
        fixtures::pygeoapi_places(None, &pg.base)
    );
    (TestGateway::with_config(&config).await, mp, pg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_integrate_url_the_console_offers_is_served_through_the_gateway() {
    let (gw, mp, pg) = real_gateway().await;
    let token = gw.token(&[("maps", Tier::View), ("places", Tier::View)]).await;
    let checked = crate::support::integrate::every_integrate_url_answers(&gw, &token, &[&mp.base, &pg.base]).await;
    assert_eq!(checked, ["ogcapi", "wms", "wmts", "xyz"], "every protocol the paths configure");
}

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The browser flows of issue 17 in real headless Chromium, driven by Selenium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_flows_in_headless_chromium() {
    let driver = chromedriver().unwrap_or_else(|| {
        panic!("chromium-driver is not installed: run scripts/e2e-setup (it installs chromium and chromium-driver)")
    });
    let (gw, _, _) = real_gateway().await;
    let root = gw.token(&[("maps", Tier::Admin), ("places", Tier::Admin)]).await;
    let viewer = gw.token(&[("maps", Tier::View), ("places", Tier::ViewPlus)]).await;
    let shots = upstreams::repo_root().join("target").join("console-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let script = upstreams::e2e_dir().join("console_flows.py");
    let base = gw.url("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(upstreams::venv_python())
            .arg(&script)
            .env("TG_BASE", base)
            .env("TG_ROOT", root)
            .env("TG_VIEWER", viewer)
            .env("TG_SHOTS", &shots)
            .env("TG_CHROMEDRIVER", driver)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .output()
            .expect("run console_flows.py")
    })
    .await
    .expect("browser flows run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "console flows failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ALL FLOWS PASSED"), "{stdout}\n{stderr}");
}

#[test]
fn a_console_without_the_token_api_is_a_config_error_naming_both_keys() {
    let text = SMALL.replace("{up}", "127.0.0.1:9").replace("[admin]", "[api]\nenabled = false\n[admin]");
    let err = tilegate::config::parse(&text, std::path::Path::new("/tmp")).expect_err("refused").to_string();
    assert!(err.contains("admin.enabled") && err.contains("api.enabled = true"), "{err}");
    let text = SMALL.replace("{up}", "127.0.0.1:9");
    let config = tilegate::config::parse(&text, std::path::Path::new("/tmp")).expect("valid");
    assert!(config.admin.enabled);
    let off = tilegate::config::parse(&text.replace("[admin]\nenabled = true\n", ""), std::path::Path::new("/tmp"))
        .expect("valid");
    assert!(!off.admin.enabled, "the console is off by default");
}
