//! `tilegate demo`: the gateway in front of a small built-in sample upstream, with
//! a temporary store, an admin token and a narrow token, and the requests that
//! show one allowed and several refused.
//!
//! The sample upstream serves XYZ raster tiles rendered as PNG on the fly and a
//! GeoJSON layer. Everything binds to loopback.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::admin::{self, Minter};
use crate::policy::{Scope, Tier};
use crate::spatial::Fence;
use crate::store::{now_unix, AccessSpec, Store};

/// The sample GeoJSON layer served by the demo upstream.
pub const PLACES: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","geometry":{"type":"Point","coordinates":[4.9,52.37]},"properties":{"name":"Amsterdam","population":921402,"note":"internal"}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[2.35,48.86]},"properties":{"name":"Paris","population":2102650,"note":"internal"}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[-74.0,40.71]},"properties":{"name":"New York","population":8258035,"note":"internal"}}]}"#;

/// Starts the sample upstream on a free loopback port.
pub async fn sample_upstream() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind the sample upstream")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(sample_response(req.uri().path()))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn sample_response(path: &str) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, ctype: &'static str, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
        r
    };
    if path == "/places.geojson" {
        return respond(StatusCode::OK, "application/geo+json", PLACES.as_bytes().to_vec());
    }
    let tile = path
        .strip_prefix("/tiles/")
        .and_then(|t| t.strip_suffix(".png"))
        .map(|t| t.split('/').filter_map(|n| n.parse::<u32>().ok()).collect::<Vec<_>>());
    match tile {
        Some(zxy) if zxy.len() == 3 => respond(StatusCode::OK, "image/png", png_tile(zxy[0], zxy[1], zxy[2])),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    }
}

/// A 256×256 PNG whose colour is derived from the tile address, with a dark border.
pub fn png_tile(z: u32, x: u32, y: u32) -> Vec<u8> {
    const SIZE: usize = 256;
    let colour = [(40 + z * 9) as u8, (x.wrapping_mul(37) % 200 + 40) as u8, (y.wrapping_mul(53) % 200 + 40) as u8];
    let mut raw = Vec::with_capacity(SIZE * (SIZE * 3 + 1));
    for row in 0..SIZE {
        raw.push(0); // filter: none
        for col in 0..SIZE {
            let border = row < 2 || col < 2 || row >= SIZE - 2 || col >= SIZE - 2;
            raw.extend_from_slice(if border { &[30, 30, 30] } else { &colour });
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    // INVARIANT: writing to a Vec cannot fail.
    z.write_all(&raw).expect("in-memory write");
    let idat = z.finish().expect("in-memory write");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(SIZE as u32).to_be_bytes());
    ihdr.extend_from_slice(&(SIZE as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &idat), (b"IEND", &[])] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    png
}

/// The demo configuration for a sample upstream at `upstream`.
pub fn demo_config(upstream: SocketAddr, port: u16, store: &std::path::Path) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
[store]
path = "{store}"
[[path]]
id = "world"
kind = "folder"
[[path]]
id = "osm"
parent = "world"
kind = "raster"
[path.upstream]
xyz = "http://{upstream}/tiles/{{z}}/{{x}}/{{y}}.png"
[[path]]
id = "places"
parent = "world"
kind = "vector"
properties = ["name", "population", "note"]
[path.upstream]
base = "http://{upstream}/"
"#,
        store = store.display()
    )
}

/// Runs the demo. With `once`, exits after the sample requests.
pub async fn run(port: u16, once: bool) -> Result<()> {
    let upstream = sample_upstream().await?;
    let dir = std::env::temp_dir().join(format!("tilegate-demo-{}-{}", std::process::id(), now_unix()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store_path: PathBuf = dir.join("demo.db");
    let config = crate::config::parse(&demo_config(upstream, port, &store_path), &dir)
        .map_err(|e| anyhow::anyhow!("the built-in demo config is invalid: {e}"))?;
    let prefix = config.tokens.prefix.clone();
    let running = crate::server::start(config)
        .await
        .with_context(|| format!("try another port with `tilegate demo --port {}`", port.wrapping_add(1)))?;
    let base = format!("http://{}", running.addr);
    let store = running.gateway.cache().store().clone();

    let admin = mint(
        &store,
        &prefix,
        "demo admin",
        vec![AccessSpec { path_id: "world".into(), tier: Tier::Admin, fence: Fence::default(), properties: None }],
    )
    .await?;
    let fence = Fence::new(Some(&[(2, 2, 1)]), Some(5)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let narrow = mint(
        &store,
        &prefix,
        "demo narrow: osm, view, maxZoom 5, fence 2/2/1",
        vec![AccessSpec { path_id: "osm".into(), tier: Tier::View, fence, properties: None }],
    )
    .await?;

    println!("tilegate demo: gateway on {base}, sample upstream on http://{upstream}");
    println!("  admin token (admin on folder `world`):            {admin}");
    println!("  narrow token (view on `osm`, maxZoom 5, tile 2/2/1): {narrow}\n");
    let checks = [
        ("allowed: a tile inside the fence", &narrow, "/ogc/xyz/osm/3/4/2.png"),
        ("refused: a tile outside the fence", &narrow, "/ogc/xyz/osm/3/0/0.png"),
        ("refused: zoom 6 is above maxZoom 5", &narrow, "/ogc/xyz/osm/6/33/21.png"),
        ("not found: a path the token cannot see", &narrow, "/path/places/places.geojson"),
        ("allowed: the admin token reads the vector layer", &admin, "/path/places/places.geojson"),
    ];
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for (what, token, path) in checks {
        let req = Request::get(format!("{base}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::new())?;
        let res = client.request(req).await.context("the demo request failed")?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        let summary = if status.is_success() {
            format!("{} bytes", body.len())
        } else {
            String::from_utf8_lossy(&body).into_owned()
        };
        println!(
            "# {what}\ncurl -i -H 'Authorization: Bearer {token}' {base}{path}\n  → {} {summary}\n",
            status.as_u16()
        );
    }
    if once {
        running.shutdown(Duration::from_secs(1)).await;
    } else {
        println!("serving until Ctrl-C; paste the curl lines above into another terminal");
        let _ = tokio::signal::ctrl_c().await;
        running.shutdown(Duration::from_secs(5)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn mint(store: &Store, prefix: &str, description: &str, access: Vec<AccessSpec>) -> Result<String> {
    let minted = admin::mint(
        prefix,
        description.into(),
        Scope::All,
        now_unix(),
        None,
        access,
        Minter { creator: None, client: "demo".into() },
    )
    .context("cannot read OS randomness")?;
    store.create(minted.row).await?;
    Ok(minted.secret.expose().to_owned())
}
