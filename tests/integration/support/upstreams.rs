//! Real OGC upstream servers for tilegate's end-to-end tests.
//!
//! [`MapProxy`] (WMS 1.1.1/1.3.0, WMTS KVP + REST, TMS, all rendered by its
//! `debug` source), [`PyGeoApi`] (OGC API Features, collection `places`) and
//! [`MapServer`] (WMS and WFS 1.0/1.1/2.0 over the same places, Debian's `mapserv`)
//! run from the Python virtual environment that `scripts/e2e-setup` creates
//! (`$TILEGATE_E2E_VENV`, default `<repo>/.venv-e2e`), each launched by
//! `tests/e2e/serve.py` under waitress on a free loopback port it binds
//! itself, with its own temporary directory, so any number can run at once
//! (parallel test threads included).
//!
//! A server stops when its value is dropped (the child is killed and
//! reaped). It also exits by itself when the test process dies without
//! running destructors: its stdin is a pipe from this process and it quits
//! on EOF. That is what makes [`MapProxy::shared`] / [`PyGeoApi::shared`]
//! (one server per test process, never dropped) safe.
//!
//! Every request that reaches a server is recorded; [`MapProxy::requests`]
//! / [`PyGeoApi::requests`] return them, so a test can check what the
//! gateway forwarded (headers included) or that it forwarded nothing.
//!
//! Uses std, serde/serde_json and tempfile only. Blocking: call from plain
//! `#[test]`s, or via `tokio::task::spawn_blocking` from async tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Marker line printed by `tests/e2e/serve.py` once the server listens.
const READY: &str = "TILEGATE_E2E_READY ";

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/e2e`: fixtures and Python client scripts.
pub fn e2e_dir() -> PathBuf {
    repo_root().join("tests").join("e2e")
}

/// The e2e virtual environment: `$TILEGATE_E2E_VENV` or `<repo>/.venv-e2e`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("TILEGATE_E2E_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => repo_root().join(".venv-e2e"),
    }
}

/// True when `scripts/e2e-setup` has completed (the venv and its stamp exist).
pub fn venv_available() -> bool {
    let v = venv_dir();
    v.join("bin").join("python").is_file() && v.join(".tilegate-e2e-stamp").is_file()
}

/// The venv's Python interpreter, for running client scripts.
///
/// Panics with "run scripts/e2e-setup first" when the venv is missing.
pub fn venv_python() -> PathBuf {
    let py = venv_dir().join("bin").join("python");
    if !venv_available() {
        panic!(
            "the e2e Python environment is missing or incomplete at {} — \
             run scripts/e2e-setup first (or set TILEGATE_E2E_VENV)",
            venv_dir().display()
        );
    }
    py
}

/// Environment shared by every Python process we start: no bytecode files
/// in the source tree, unbuffered output, and never a proxy for loopback.
fn python_command() -> Command {
    let mut cmd = Command::new(venv_python());
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_PROXY", no_proxy())
        .env("no_proxy", no_proxy());
    cmd
}

fn no_proxy() -> String {
    let old = std::env::var("NO_PROXY").or_else(|_| std::env::var("no_proxy")).unwrap_or_default();
    if old.is_empty() {
        "127.0.0.1,localhost,::1".to_string()
    } else {
        format!("{old},127.0.0.1,localhost,::1")
    }
}

/// Runs `tests/e2e/<script>` with the venv's Python and returns its output
/// (status, stdout, stderr). E.g.
/// `run_client("owslib_client.py", &["wms-layers", &url, "--header", "Authorization: Bearer X"])`.
pub fn run_client(script: &str, args: &[&str]) -> Output {
    let path = e2e_dir().join(script);
    assert!(path.is_file(), "no such e2e client script: {}", path.display());
    python_command()
        .arg(&path)
        .args(args)
        .current_dir(e2e_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

/// How long a server may take to answer after it was started:
/// `$TILEGATE_E2E_START_TIMEOUT` seconds, default 60.
fn start_timeout() -> Duration {
    let secs = std::env::var("TILEGATE_E2E_START_TIMEOUT").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// One request as seen by an upstream (a line of its access log).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UpstreamRequest {
    pub method: String,
    /// Path without the query string, e.g. `/service` or `/collections/places/items`.
    pub path: String,
    /// Raw query string (no `?`), possibly empty.
    pub query: String,
    /// Status the upstream answered with.
    pub status: u16,
    /// Request headers, names lower-cased (`authorization`, `host`, ...).
    pub headers: BTreeMap<String, String>,
}

/// A running `tests/e2e/serve.py` child. Dropping it stops the server.
struct Server {
    kind: &'static str,
    child: Child,
    /// Held open so the server can notice (EOF) when this process dies.
    stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(kind: &'static str, extra: &[&str], probe_path: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tilegate-e2e-{kind}-"))
            .tempdir()
            .expect("cannot create a temporary directory");
        let stdout_path = dir.path().join("stdout.log");
        let stderr_path = dir.path().join("stderr.log");
        let stdout = fs::File::create(&stdout_path).expect("create stdout.log");
        let stderr = fs::File::create(&stderr_path).expect("create stderr.log");
        let workdir = dir.path().join("work");

        let started = Instant::now();
        let mut cmd = python_command();
        cmd.arg(e2e_dir().join("serve.py"))
            .arg(kind)
            .arg("--workdir")
            .arg(&workdir)
            .arg("--port")
            .arg("0")
            .arg("--exit-on-stdin-eof")
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            // Own process group: a Ctrl-C meant for cargo does not hit the
            // server mid-test; it still exits when we do (stdin EOF).
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {kind}: {e}"));
        let stdin = child.stdin.take();

        let deadline = started + start_timeout();
        let mut server = Server { kind, child, stdin, port: 0, dir };

        // 1. Wait for the READY line (the port is only known then).
        let base = loop {
            if let Some(line) = fs::read_to_string(&stdout_path)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(READY).map(str::to_string))
            {
                break line.trim().to_string();
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                server.fail(&format!("exited early with {status}"));
            }
            if Instant::now() > deadline {
                server.fail(&format!("not ready after {:?}", start_timeout()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        server.port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| server.fail(&format!("bad READY line: {base}")));

        // 2. Wait until it really answers HTTP.
        loop {
            match http_get(&format!("{base}{probe_path}")) {
                Ok(resp) if resp.status == 200 => break,
                Ok(resp) if Instant::now() > deadline => server.fail(&format!("{probe_path} answered {}", resp.status)),
                Err(e) if Instant::now() > deadline => server.fail(&format!("{probe_path}: {e}")),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        if std::env::var_os("TILEGATE_E2E_VERBOSE").is_some() {
            eprintln!("upstreams: {kind} ready at {base} in {:?}", started.elapsed());
        }
        server
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn requests(&self) -> Vec<UpstreamRequest> {
        let text = fs::read_to_string(self.dir.path().join("work").join("access.log")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad access.log line {l:?}: {e}")))
            .collect()
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "e2e upstream {} failed to start: {why}\n--- its stderr ({}) ---\n{}\n--- end of stderr ---",
            self.kind,
            self.dir.path().join("stderr.log").display(),
            self.stderr()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// MapProxy with the `debug` source (`tests/e2e/mapproxy.yaml`).
///
/// Layers `osm` ("OSM debug") and `aerial` ("Aerial debug"): black text on
/// transparent tiles; `opaque` ("Opaque debug"): the same on opaque white (RGB PNG),
/// so a client's render shows where tiles were drawn. One grid
/// `GLOBAL_WEBMERCATOR` (EPSG:3857). WMS SRS: EPSG:3857, EPSG:4326, CRS:84.
/// Endpoints, relative to [`MapProxy::base`]:
/// - WMS 1.1.1/1.3.0 and WMTS KVP: `/service` (also `/ows`)
/// - WMTS REST: `/wmts/1.0.0/WMTSCapabilities.xml`,
///   `/wmts/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png`;
///   TileMatrix ids are `00`..`19` in the capabilities, `5` and `05` both work
/// - TMS: `/tms/1.0.0/`, `/tms/1.0.0/{layer}/GLOBAL_WEBMERCATOR/{z}/{x}/{y}.png`,
///   strict "global-mercator" profile: TMS `z` = WMTS TileMatrix − 1 (level
///   0 has 2×2 tiles, z 0..18) and rows count from the south
/// - XYZ-like: `/tiles/{layer}/GLOBAL_WEBMERCATOR/{z}/{x}/{y}.png`, `z` =
///   WMTS TileMatrix, rows from the north (`?origin=sw` flips)
///
/// So WMTS 5/col 16/row 10 = TMS 4/16/21 = `/tiles` 5/16/10 (debug tiles
/// print their bbox and resolution). Capabilities documents advertise URLs
/// built from the request's `Host` header (and `X-Script-Name` for a path
/// prefix). An unknown WMS layer answers 500 with an XML ServiceException.
pub struct MapProxy {
    pub port: u16,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    server: Server,
}

impl MapProxy {
    /// Starts a fresh MapProxy; blocks until it answers GetCapabilities.
    pub fn start() -> MapProxy {
        let server = Server::start("mapproxy", &[], "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0");
        MapProxy { port: server.port, base: server.base(), server }
    }

    /// One MapProxy for the whole test process, started on first use and
    /// never dropped (it exits with the process). Its request log is shared
    /// by every test that uses it.
    pub fn shared() -> &'static MapProxy {
        static SHARED: OnceLock<MapProxy> = OnceLock::new();
        SHARED.get_or_init(MapProxy::start)
    }

    /// `base` + `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// The WMS / WMTS KVP endpoint: `{base}/service`.
    pub fn service_url(&self) -> String {
        self.url("/service")
    }

    /// Requests that reached this server so far, oldest first.
    pub fn requests(&self) -> Vec<UpstreamRequest> {
        self.server.requests()
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// pygeoapi serving collection `places` from `tests/e2e/places.geojson`
/// (`tests/e2e/pygeoapi.yml`): 22 cities (Points) and 2 zones (Polygons)
/// with properties `name` (string), `population` (integer), `country`
/// (string, ISO 3166 alpha-2), `secret_note` (string); feature ids are
/// strings such as `paris`, `benelux_zone`. Paths: `/`, `/conformance`,
/// `/openapi`, `/collections`, `/collections/places`,
/// `/collections/places/items`, `/collections/places/items/{id}`,
/// `/collections/places/queryables` (add `?f=json`; default page size 50), and OGC
/// API Tiles of the same places (`MVT-tippecanoe` provider over vector tiles GDAL's
/// MVT driver writes when the server starts, zoom 0..6, layer `places`):
/// `/collections/places/tiles`, `/collections/places/tiles/WebMercatorQuad` (no
/// `tileMatrixSetLimits`), `/collections/places/tiles/WebMercatorQuad/{z}/{row}/{col}?f=mvt`
/// (204 where GDAL wrote no tile).
pub struct PyGeoApi {
    pub port: u16,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    server: Server,
}

impl PyGeoApi {
    /// Starts a fresh pygeoapi whose `server.url` (used in every link it
    /// writes) is its own base URL; blocks until it answers `/?f=json`.
    pub fn start() -> PyGeoApi {
        Self::start_inner(None)
    }

    /// Like [`PyGeoApi::start`], but pygeoapi writes `public_url` (e.g. the
    /// gateway's URL) into its links instead of its own address.
    pub fn start_with_public_url(public_url: &str) -> PyGeoApi {
        Self::start_inner(Some(public_url))
    }

    fn start_inner(public_url: Option<&str>) -> PyGeoApi {
        let mut extra = Vec::new();
        if let Some(u) = public_url {
            extra.push("--url");
            extra.push(u);
        }
        let server = Server::start("pygeoapi", &extra, "/?f=json");
        PyGeoApi { port: server.port, base: server.base(), server }
    }

    /// One pygeoapi for the whole test process (see [`MapProxy::shared`]).
    pub fn shared() -> &'static PyGeoApi {
        static SHARED: OnceLock<PyGeoApi> = OnceLock::new();
        SHARED.get_or_init(PyGeoApi::start)
    }

    /// `base` + `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// Requests that reached this server so far, oldest first.
    pub fn requests(&self) -> Vec<UpstreamRequest> {
        self.server.requests()
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// MapServer 8 (Debian `cgi-mapserver`) serving `tests/e2e/mapserver.map`: WMS 1.1.1 /
/// 1.3.0 and WFS 1.0 / 1.1 / 2.0 at `/mapserv` (the CGI run once per request by
/// `serve.py`). Layers `places` (the 23 Points of `places.geojson`) and `zones` (its 2
/// Polygons); WFS type names `ms:places`, `ms:zones`; fields `id`, `name`, `population`,
/// `country`, `secret_note`, geometry `msGeometry`; GetFeature formats GML and `geojson`.
/// Capabilities advertise `http://127.0.0.1:PORT/mapserv?`.
pub struct MapServer {
    pub port: u16,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    server: Server,
}

impl MapServer {
    /// Starts a fresh MapServer; blocks until it answers a WMS GetCapabilities. Panics
    /// (never skips) when `mapserv` is missing: run `scripts/e2e-setup`.
    pub fn start() -> MapServer {
        let server = Server::start("mapserver", &[], "/mapserv?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0");
        MapServer { port: server.port, base: server.base(), server }
    }

    /// One MapServer for the whole test process (see [`MapProxy::shared`]).
    pub fn shared() -> &'static MapServer {
        static SHARED: OnceLock<MapServer> = OnceLock::new();
        SHARED.get_or_init(MapServer::start)
    }

    /// The WMS / WFS endpoint: `{base}/mapserv`.
    pub fn endpoint(&self) -> String {
        format!("{}/mapserv", self.base)
    }

    /// Requests that reached this server so far, oldest first.
    pub fn requests(&self) -> Vec<UpstreamRequest> {
        self.server.requests()
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// A response read by [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Minimal blocking HTTP/1.0 GET over std (no TLS), for readiness probes and
/// quick checks against an upstream directly. `url` is `http://host:port/...`.
pub fn http_get(url: &str) -> std::io::Result<HttpResponse> {
    http_get_with(url, &[])
}

/// [`http_get`] with extra request headers, e.g. `[("Authorization", "Bearer X")]`.
pub fn http_get_with(url: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
    http_request("GET", url, headers, b"")
}

/// A POST of `body` straight to an upstream (no gateway), e.g. to show what it does
/// with a body the gateway would have re-written.
pub fn http_post(url: &str, content_type: &str, body: &[u8]) -> std::io::Result<HttpResponse> {
    http_request("POST", url, &[("Content-Type", content_type)], body)
}

fn http_request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<HttpResponse> {
    use std::io::{Error, ErrorKind};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("not an http:// URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("cannot resolve {authority}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;

    let bad = |m: &str| Error::new(ErrorKind::InvalidData, format!("{url}: {m}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse { status, headers, body: raw[split + 4..].to_vec() })
}

/// QGIS Server 3.22 (`qgis_mapserver`, Debian `qgis-server`) serving a project that
/// `tests/e2e/qgis_project.py` writes from `places.geojson` (layers `places`, `zones`):
/// WMS, WFS and OGC API Features (at `/wfs3`).
pub struct QgisServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    _child: Child,
    /// Held open: the wrapper shell stops the server when this process dies (EOF).
    _stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl QgisServer {
    /// Starts QGIS Server; blocks until it answers a WMS GetCapabilities. Panics (never
    /// skips) when `qgis_mapserver` is missing: run `scripts/e2e-setup`.
    pub fn start() -> QgisServer {
        let dir = tempfile::Builder::new().prefix("tilegate-e2e-qgis-").tempdir().expect("tempdir");
        let made = Command::new("/usr/bin/python3")
            .arg(e2e_dir().join("qgis_project.py"))
            .arg(dir.path())
            .env("QT_QPA_PLATFORM", "offscreen")
            .output()
            .expect("run qgis_project.py (python3-qgis)");
        assert!(made.status.success(), "qgis_project.py: {}", String::from_utf8_lossy(&made.stderr));
        let port = crate::support::ops::free_port();
        let log = fs::File::create(dir.path().join("server.log")).expect("server.log");
        // `qgis_mapserver` does not notice its parent's death: the shell stops it at EOF.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"qgis_mapserver "127.0.0.1:$1" & pid=$!; cat >/dev/null; kill "$pid""#)
            .arg("sh")
            .arg(port.to_string())
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("QGIS_PROJECT_FILE", dir.path().join("project.qgs"))
            .env("QGIS_SERVER_LOG_LEVEL", "2")
            .env("QGIS_SERVER_LOG_STDERR", "1")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start qgis_mapserver (Debian qgis-server; run scripts/e2e-setup)");
        let stdin = child.stdin.take();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + start_timeout();
        loop {
            match http_get(&format!("{base}/?SERVICE=WMS&REQUEST=GetCapabilities")) {
                Ok(r) if r.status == 200 && r.text().contains("WMS_Capabilities") => break,
                _ if Instant::now() > deadline => panic!(
                    "QGIS Server did not answer within {:?}: {}",
                    start_timeout(),
                    fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                ),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        QgisServer { base, _child: child, _stdin: stdin, _dir: dir }
    }

    /// One QGIS Server for the whole test process (see [`MapProxy::shared`]).
    pub fn shared() -> &'static QgisServer {
        static SHARED: OnceLock<QgisServer> = OnceLock::new();
        SHARED.get_or_init(QgisServer::start)
    }
}
