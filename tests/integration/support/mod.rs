//! Test support: the real gateway on `127.0.0.1:0` with a temporary store, an
//! in-process recording upstream, and a small HTTP client.

#![allow(dead_code)]

pub mod fixtures;
pub mod integrate;
pub mod ops;
pub mod pg;
pub mod upstream;
pub mod upstreams;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use tilegate::admin::{self, Minter};
use tilegate::policy::{Scope, Tier};
use tilegate::server::Running;
use tilegate::spatial::Fence;
use tilegate::store::{now_unix, AccessSpec, Store};

pub use upstream::TestUpstream;

/// The standard test configuration; `{up}` is the test upstream's address.
pub const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[upstream]
connect_timeout = "1s"
response_timeout = "1s"
[[path]]
id = "world"
kind = "folder"
[[path]]
id = "osm"
parent = "world"
kind = "raster"
layers = ["osm"]
[path.upstream]
base = "http://{up}/osm/"
xyz = "http://{up}/tiles/{z}/{x}/{y}.png"
[[path]]
id = "tms"
parent = "world"
kind = "raster"
[path.upstream]
xyz = "http://{up}/tms/{z}/{x}/{-y}.png"
[[path]]
id = "places"
parent = "world"
kind = "vector"
properties = ["name", "population", "secret_note"]
[path.upstream]
base = "http://{up}/places/"
[[path]]
id = "secret"
kind = "raster"
[path.upstream]
base = "http://{up}/secret/"
[[path]]
id = "down"
kind = "raster"
[path.upstream]
base = "http://127.0.0.1:9/"
"#;

/// A running gateway with its own temporary folder and store.
pub struct TestGateway {
    pub running: Option<Running>,
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub upstream: TestUpstream,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The refusal's `reason`: from the JSON body, or from the `code` / `exceptionCode`
    /// of an OGC exception document (the OGC KVP endpoints answer those).
    pub fn reason(&self) -> String {
        let xml = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("xml"));
        if xml {
            let text = self.text();
            return ["exceptionCode=\"", "code=\""]
                .iter()
                .find_map(|attr| {
                    text.split_once(attr).and_then(|(_, rest)| rest.split_once('"')).map(|(v, _)| v.to_owned())
                })
                .unwrap_or_default();
        }
        self.json()["reason"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::with_config(CONFIG).await
    }

    /// Starts with `config` (`{up}` replaced by the test upstream's address).
    pub async fn with_config(config: &str) -> TestGateway {
        let upstream = TestUpstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config.replace("{up}", &upstream.addr.to_string());
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, &text).expect("write config");
        let config = tilegate::config::load(&config_path).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let running = tilegate::server::start(config).await.expect("gateway starts");
        let addr = running.addr;
        TestGateway {
            running: Some(running),
            addr,
            dir,
            config_path,
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn store(&self) -> Store {
        self.running.as_ref().expect("running").gateway.cache().store().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a token directly in the store (as the CLI does).
    pub async fn token(&self, access: &[(&str, Tier)]) -> String {
        self.token_with(access, Fence::default(), Scope::All, None).await.0
    }

    /// Creates a token with a fence, scope and expiry; returns (secret, id).
    pub async fn token_with(
        &self,
        access: &[(&str, Tier)],
        fence: Fence,
        scope: Scope,
        expires_at: Option<i64>,
    ) -> (String, String) {
        let access = access
            .iter()
            .map(|(p, t)| AccessSpec { path_id: (*p).into(), tier: *t, fence: fence.clone(), properties: None })
            .collect();
        let minted = admin::mint(
            "tg",
            "test".into(),
            scope,
            now_unix(),
            expires_at,
            access,
            Minter { creator: None, client: "test".into() },
        )
        .expect("randomness");
        let record = self.store().create(minted.row).await.expect("create");
        (minted.secret.expose().to_owned(), record.id.to_string())
    }

    /// Creates a token with one access entry, a fence and an optional property fence;
    /// returns the secret.
    pub async fn token_fenced(&self, path: &str, tier: Tier, fence: Fence, properties: Option<&[&str]>) -> String {
        let access = vec![AccessSpec {
            path_id: path.into(),
            tier,
            fence,
            properties: properties.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
        }];
        let minted = admin::mint(
            "tg",
            "test".into(),
            Scope::All,
            now_unix(),
            None,
            access,
            Minter { creator: None, client: "test".into() },
        )
        .expect("randomness");
        self.store().create(minted.row).await.expect("create");
        minted.secret.expose().to_owned()
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, &[("authorization", &format!("Bearer {token}"))], Bytes::new()).await
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
        let mut req = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).expect("request");
        let res = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("gateway answers")
            .expect("request");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    /// Calls the token API with a JSON body (or none).
    pub async fn api(&self, method: Method, path: &str, token: &str, body: Option<serde_json::Value>) -> Reply {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        self.send(method, path, &headers, body).await
    }

    /// Creates a token through the API; returns the reply.
    pub async fn create(&self, token: &str, body: serde_json::Value) -> Reply {
        self.api(Method::POST, "/account/security/accessToken", token, Some(body)).await
    }

    /// Runs the `tilegate` binary with this gateway's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .expect("run tilegate")
    }
}
