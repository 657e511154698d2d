//! The access log as an operator reads it: the real `tilegate` binary with
//! `RUST_LOG=tilegate::access=info`, in `plain` and `json` formats. One line per
//! request, written when the body ended, with its outcome; never a token; the
//! request id in the log, upstream and on the response.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::ops::{cli, eventually, free_port, scrape};
use crate::support::{TestGateway, TestUpstream, CONFIG};
use tilegate::policy::Tier;

const LONG: Duration = Duration::from_secs(20);

/// `tilegate serve` with its stderr in a file and the given `RUST_LOG`.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    ops: SocketAddr,
    config: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// `extra` is appended to the standard test config (more paths).
    async fn start(format: &str, rust_log: &str, up: SocketAddr, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, ops_port) = (free_port(), free_port());
        let text = CONFIG.replace("{up}", &up.to_string()).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
            + extra
            + &format!("[ops]\nlisten = \"127.0.0.1:{ops_port}\"\n[log]\nformat = \"{format}\"\n");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).expect("write config");
        let stderr = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tilegate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .expect("spawn tilegate");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let gw = Gateway {
            child,
            addr,
            ops: format!("127.0.0.1:{ops_port}").parse().expect("addr"),
            config,
            stderr,
            _dir: dir,
        };
        eventually(LONG, "the binary to accept connections", || async {
            TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        gw
    }

    /// A token on `world` (osm and every test path below it), at viewPlus.
    fn token(&self) -> String {
        let out =
            cli(&self.config, &["token", "create", "--path", "world", "--tier", "viewPlus", "--description", "l"]);
        out.lines().next().expect("token line").to_owned()
    }

    fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    /// The access-log lines so far.
    fn lines(&self, format: &str) -> Vec<Line> {
        self.log().lines().filter_map(|l| Line::parse(format, l)).collect()
    }

    /// Waits until there are `n` access-log lines; returns them.
    async fn wait_lines(&self, format: &str, n: usize) -> Vec<Line> {
        eventually(LONG, &format!("{n} access-log lines"), || async {
            let lines = self.lines(format);
            (lines.len() >= n).then_some(lines)
        })
        .await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One access-log line, from either format.
#[derive(Debug, Clone)]
struct Line {
    raw: String,
    request_id: String,
    path: String,
    status: u16,
    outcome: String,
    bytes: u64,
    decision: String,
}

impl Line {
    fn parse(format: &str, line: &str) -> Option<Line> {
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            if v["target"] != "tilegate::access" {
                return None;
            }
            let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("`{k}` missing in {line}")).to_owned();
            let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("`{k}` missing in {line}"));
            Some(Line {
                raw: line.to_owned(),
                request_id: s("request.id"),
                path: s("path"),
                status: u16::try_from(n("status")).expect("status"),
                outcome: s("outcome"),
                bytes: n("bytes"),
                decision: s("decision"),
            })
        } else {
            if !line.contains(" tilegate::access: ") {
                return None;
            }
            let f = |k: &str| field(line, k).unwrap_or_else(|| panic!("`{k}` missing in {line}"));
            Some(Line {
                raw: line.to_owned(),
                request_id: f("request.id"),
                path: f("path"),
                status: f("status").parse().expect("status"),
                outcome: f("outcome"),
                bytes: f("bytes").parse().expect("bytes"),
                decision: f("decision"),
            })
        }
    }
}

/// `key=value` or `key="value"` from a plain log line (the last occurrence).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.rfind(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"')?].to_owned(),
        None => rest.split(' ').next()?.to_owned(),
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One request on a fresh connection; (status, headers), the body read to its end.
async fn send(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(LONG, client.request(req.body(Full::default()).expect("req")))
        .await
        .expect("answers in time")
        .expect("request");
    let (parts, body) = res.into_parts();
    let _ = body.collect().await.expect("body");
    (parts.status, parts.headers)
}

fn id_of(headers: &HeaderMap) -> String {
    headers.get("x-request-id").expect("the response carries X-Request-Id").to_str().expect("ascii").to_owned()
}

/// A request to send: method, path, headers, the status it must get.
type Probe<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>, StatusCode);

/// Every way a token can be sent, each logged once and never the token itself.
async fn one_line_per_request_and_never_a_token(format: &str) {
    let up = TestUpstream::start().await;
    let gw = Gateway::start(format, "tilegate::access=info", up.addr, "").await;
    let token = gw.token();
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("qgis:{token}")));
    let unknown = tilegate::token::TokenSecret::generate("tg").expect("randomness").expose().to_owned();
    let unknown_bearer = format!("Bearer {unknown}");
    let in_query = format!("/ogc/xyz/osm/1/1/1.png?token={token}");
    let in_path = format!("/path/osm/{token}/a.txt");
    let requests: Vec<Probe> = vec![
        (Method::GET, "/ogc/xyz/osm/1/0/0.png", vec![("authorization", &bearer)], StatusCode::OK),
        (Method::GET, "/ogc/xyz/osm/1/0/1.png", vec![("x-access-token", &token)], StatusCode::OK),
        (Method::GET, "/ogc/xyz/osm/1/1/0.png", vec![("authorization", &basic)], StatusCode::OK),
        (Method::GET, &in_query, vec![], StatusCode::OK),
        // A copy of the token in the path would reach the upstream: refused (400
        // `token_in_request`), and logged redacted.
        (Method::GET, &in_path, vec![("authorization", &bearer)], StatusCode::BAD_REQUEST),
        (Method::HEAD, "/path/osm/head.txt", vec![("authorization", &bearer)], StatusCode::OK),
        (Method::GET, "/ogc/xyz/osm/1/0/0.png", vec![("authorization", &unknown_bearer)], StatusCode::UNAUTHORIZED),
        (Method::GET, "/healthz", vec![], StatusCode::OK),
    ];
    let mut ids = Vec::new();
    for (i, (method, path, headers, want)) in requests.iter().enumerate() {
        let (status, res) = send(gw.addr, method.clone(), path, headers).await;
        assert_eq!(status, *want, "request {i} {method} {path}");
        let id = id_of(&res);
        if status == StatusCode::OK && *path != "/healthz" {
            let seen = up.last();
            assert_eq!(seen.headers.get("x-request-id").map(|v| v.to_str().expect("ascii")), Some(id.as_str()));
        }
        ids.push(id);
    }
    let lines = gw.wait_lines(format, ids.len()).await;
    // A last request: once its line is there, any duplicate of an earlier one would be too.
    let (_, res) = send(gw.addr, Method::GET, "/healthz", &[]).await;
    ids.push(id_of(&res));
    let lines = gw.wait_lines(format, lines.len().max(ids.len())).await;
    let logged: Vec<&str> = lines.iter().map(|l| l.request_id.as_str()).collect();
    assert_eq!(logged, ids, "one line per request, in order, named by the id the client got:\n{}", gw.log());
    for l in &lines {
        assert_eq!(l.outcome, "complete", "{}", l.raw);
    }
    let head = &lines[5];
    assert_eq!((head.status, head.bytes), (200, 0), "HEAD: one line, no body: {}", head.raw);
    assert!(lines[0].bytes > 0, "the tile's bytes are counted: {}", lines[0].raw);
    assert_eq!(lines[4].path, "/path/osm/<redacted>/a.txt", "{}", lines[4].raw);
    assert_eq!(lines[6].decision, "deny", "{}", lines[6].raw);

    let log = gw.log();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("qgis:{token}"));
    let secret_part = token.split('_').nth(1).expect("token body");
    for (what, secret) in [("token", token.as_str()), ("unknown token", &unknown), ("basic", &b64)] {
        assert!(!log.contains(secret), "the {what} reached the log:\n{log}");
    }
    assert!(!log.contains(secret_part), "part of the token reached the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_access_log_has_one_line_per_request_and_never_a_token() {
    one_line_per_request_and_never_a_token("plain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_has_one_line_per_request_and_never_a_token() {
    one_line_per_request_and_never_a_token("json").await;
}

/// An upstream that answers 200 with one chunk of a chunked body, then closes.
async fn dying_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let partial =
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
                let _ = stream.write_all(partial).await;
                let _ = stream.flush().await;
                // Closing without the last chunk: the body is cut.
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_dies_mid_body_is_logged_as_cut_not_as_a_clean_200() {
    let up = TestUpstream::start().await;
    let dying = dying_upstream().await;
    let extra = format!(
        "[[path]]\nid = \"dying\"\nparent = \"world\"\nkind = \"raster\"\n[path.upstream]\nbase = \"http://{dying}/\"\n"
    );
    let gw = Gateway::start("json", "tilegate::access=info", up.addr, &extra).await;
    let token = gw.token();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(format!("http://{}/path/dying/file.txt", gw.addr))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .expect("req");
    let res = tokio::time::timeout(LONG, client.request(req)).await.expect("in time").expect("head");
    assert_eq!(res.status(), StatusCode::OK, "the head was already sent when the upstream died");
    let id = id_of(res.headers());
    let body = tokio::time::timeout(LONG, res.into_body().collect()).await.expect("in time");
    assert!(body.is_err(), "the client sees the body cut, not a short clean body");

    let lines = gw.wait_lines("json", 1).await;
    assert_eq!(lines.len(), 1, "{}", gw.log());
    let line = &lines[0];
    assert_eq!(
        (line.status, line.outcome.as_str(), line.request_id.as_str()),
        (200, "cut", id.as_str()),
        "{}",
        line.raw
    );
    assert!(line.bytes <= 5, "{}", line.raw);
    let metrics = scrape(gw.ops).await;
    assert_eq!(metrics.get("tilegate_responses_cut_total{path_id=\"dying\"}"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_during_a_large_body_is_logged_as_cut() {
    let up = TestUpstream::start().await;
    let gw = Gateway::start("plain", "tilegate::access=info", up.addr, "").await;
    let token = gw.token();
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    let req = format!(
        "GET /path/osm/big/8388608 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nx-request-id: from-a-stranger\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < 128 * 1024 {
        let n = tokio::time::timeout(LONG, stream.read(&mut buf)).await.expect("data in time").expect("read");
        assert!(n > 0, "the gateway closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got[..64]));
    drop(stream);

    let lines = gw.wait_lines("plain", 1).await;
    up.release();
    let line = &lines[0];
    assert_eq!((line.status, line.outcome.as_str()), (200, "cut"), "{}", line.raw);
    assert!(line.bytes < 8388608, "{}", line.raw);
    assert_ne!(line.request_id, "from-a-stranger", "an untrusted client's id is not kept: {}", line.raw);
    let metrics = scrape(gw.ops).await;
    assert_eq!(metrics.get("tilegate_responses_cut_total{path_id=\"osm\"}"), 1.0);
    assert_eq!(gw.lines("plain").len(), 1, "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_inside_a_request_names_the_request_and_its_connection() {
    let up = TestUpstream::start().await;
    let extra = "[[path]]\nid = \"gone\"\nparent = \"world\"\nkind = \"raster\"\n[path.upstream]\nbase = \"http://127.0.0.1:9/\"\n";
    let gw = Gateway::start("plain", "info", up.addr, extra).await;
    let token = gw.token();
    let (status, res) =
        send(gw.addr, Method::GET, "/path/gone/x", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let id = id_of(&res);
    let warning = eventually(LONG, "the `request failed` warning", || async {
        gw.log().lines().find(|l| l.contains("request failed")).map(str::to_owned)
    })
    .await;
    for want in [format!("request.id=\"{id}\""), "path.id=\"gone\"".into(), "peer.addr=127.0.0.1:".into()] {
        assert!(warning.contains(&want), "`{want}` missing in: {warning}");
    }
}

fn trusted_config() -> String {
    CONFIG.replacen("[server]\n", "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n", 1)
}

#[tokio::test]
async fn an_untrusted_clients_request_id_is_replaced_before_the_upstream() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let auth = format!("Bearer {token}");
    let r = gw
        .send(
            Method::GET,
            "/ogc/xyz/osm/1/0/0.png",
            &[("authorization", &auth), ("x-request-id", "forged")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let id = id_of(&r.headers);
    assert_ne!(id, "forged");
    let seen = gw.upstream.last();
    let upstream: Vec<&str> = seen.headers.get_all("x-request-id").iter().map(|v| v.to_str().expect("ascii")).collect();
    assert_eq!(upstream, [id.as_str()], "the upstream gets the gateway's id, never the client's");
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept_and_an_odd_one_replaced() {
    let gw = TestGateway::with_config(&trusted_config()).await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let auth = format!("Bearer {token}");
    let r = gw
        .send(
            Method::GET,
            "/ogc/xyz/osm/1/0/0.png",
            &[("authorization", &auth), ("x-request-id", "lb-7f3a")],
            Bytes::new(),
        )
        .await;
    assert_eq!((r.status, id_of(&r.headers).as_str()), (StatusCode::OK, "lb-7f3a"));
    assert_eq!(gw.upstream.last().headers.get("x-request-id").expect("forwarded"), "lb-7f3a");

    let long = "x".repeat(129);
    let r = gw
        .send(Method::GET, "/ogc/xyz/osm/1/0/0.png", &[("authorization", &auth), ("x-request-id", &long)], Bytes::new())
        .await;
    let id = id_of(&r.headers);
    assert_ne!(id, long, "over 128 characters is not a request id");
    assert_eq!(gw.upstream.last().headers.get("x-request-id").expect("forwarded"), id.as_str());

    let denied =
        gw.send(Method::GET, "/ogc/xyz/osm/1/0/0.png", &[("x-request-id", "lb-8"), ("x", "y")], Bytes::new()).await;
    assert_eq!(
        (denied.status, id_of(&denied.headers).as_str()),
        (StatusCode::UNAUTHORIZED, "lb-8"),
        "a denial carries it too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_the_response_head_is_logged_once_as_499_cut() {
    let up = TestUpstream::start().await;
    let gw = Gateway::start("json", "tilegate::access=info", up.addr, "").await;
    let token = gw.token();
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    let req = format!("GET /path/osm/slow HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("send");
    eventually(LONG, "the request to reach the upstream", || async {
        up.seen().iter().any(|s| s.uri.ends_with("/slow")).then_some(())
    })
    .await;
    drop(stream);

    let lines = gw.wait_lines("json", 1).await;
    let line = &lines[0];
    assert_eq!((line.status, line.outcome.as_str()), (499, "cut"), "{}", line.raw);
    // Attacker round 10: an allowed request the client left was logged `public`.
    assert_eq!(line.decision, "allow", "{}", line.raw);
    let metrics = scrape(gw.ops).await;
    assert_eq!(metrics.get("tilegate_responses_cut_total{path_id=\"osm\"}"), 1.0);
    // A later request's line comes after it, and no second line for the first.
    let (_, res) = send(gw.addr, Method::GET, "/healthz", &[]).await;
    let lines = gw.wait_lines("json", 2).await;
    let ids: Vec<&str> = lines.iter().map(|l| l.request_id.as_str()).collect();
    assert_eq!(ids, [line.request_id.as_str(), id_of(&res).as_str()], "{}", gw.log());
}
