//! The upstream connection pool through the real gateway: keep-alive reuse, an
//! upstream that closes idle connections, and no second send of a request that may
//! have reached the upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tilegate::policy::Tier;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::support::TestGateway;

/// What the raw upstream does after answering a request.
#[derive(Clone, Copy, PartialEq)]
enum After {
    /// Keeps the connection open (keep-alive).
    KeepOpen,
    /// Closes it without saying so (no `Connection: close`), as an upstream's idle timeout does.
    Close,
}

/// A raw HTTP/1.1 upstream: answers `200 ok`, except to a request whose path holds
/// `drop`, which it reads whole and then closes the connection on without answering.
struct Raw {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn raw(after: After) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = Raw {
        addr: listener.local_addr().expect("addr"),
        accepted: Arc::default(),
        closed: Arc::default(),
        requests: Arc::default(),
    };
    let (accepted, closed, requests) = (up.accepted.clone(), up.closed.clone(), up.requests.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (closed, requests) = (closed.clone(), requests.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                'conn: loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            break;
                        }
                        buf.drain(..end + 4 + len);
                        let line = head.lines().next().unwrap_or_default().to_owned();
                        requests.lock().expect("lock").push(line.clone());
                        if line.contains("drop") {
                            break 'conn;
                        }
                        if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
                            break 'conn;
                        }
                        if after == After::Close {
                            break 'conn;
                        }
                    }
                }
                drop(s);
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    up
}

fn config(up: std::net::SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[upstream]
connect_timeout = "1s"
response_timeout = "2s"
[[path]]
id = "osm"
kind = "raster"
[path.upstream]
base = "http://{up}/osm/"
"#
    )
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn open(gw: &TestGateway) -> usize {
    gw.running.as_ref().expect("running").gateway.upstream().open_connections().iter().map(|(_, n)| n).sum()
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let up = raw(After::KeepOpen).await;
    let gw = TestGateway::with_config(&config(up.addr)).await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    for i in 0..20 {
        let r = gw.get(&format!("/path/osm/t{i}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "twenty requests, one upstream connection");
    assert_eq!(open(&gw), 1);
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_gets_a_new_one() {
    let up = raw(After::Close).await;
    let gw = TestGateway::with_config(&config(up.addr)).await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    for i in 1..=3 {
        let r = gw.get("/path/osm/t", &token).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        until("the upstream to close its connection", || up.closed.load(Ordering::SeqCst) == i).await;
        // The closed connection is not handed out again.
        until("the gateway to see the close", || open(&gw) == 0).await;
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_request_that_reached_the_upstream_is_never_sent_again() {
    let up = raw(After::KeepOpen).await;
    let gw = TestGateway::with_config(&config(up.addr)).await;
    let token = gw.token(&[("osm", Tier::Edit)]).await;
    let auth = format!("Bearer {token}");
    // A pooled connection first, so the next requests go out on a reused one.
    assert_eq!(gw.get("/path/osm/warm", &token).await.status, StatusCode::OK);
    let r = gw
        .send(Method::POST, "/path/osm/drop-post", &[("authorization", &auth)], Bytes::from_static(b"{\"a\":1}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(gw.get("/path/osm/warm2", &token).await.status, StatusCode::OK);
    let r = gw.get("/path/osm/drop-get", &token).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    let seen = up.requests.lock().expect("lock").clone();
    assert_eq!(seen.iter().filter(|l| l.contains("drop-post")).count(), 1, "the POST went out once: {seen:?}");
    assert_eq!(seen.iter().filter(|l| l.contains("drop-get")).count(), 1, "a sent GET is not resent either: {seen:?}");
}
