//! Limits: slow and silent clients are disconnected, idle keep-alive
//! connections closed, rate limits answer 429 with Retry-After, repeated bad
//! tokens lock a client out for a while, and request bodies are capped.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestGateway, CONFIG};
use tilegate::policy::Tier;

fn config(extra_server: &str, rest: &str) -> String {
    CONFIG.replacen("[server]\n", &format!("[server]\n{extra_server}\n"), 1) + rest
}

/// Reads until the peer closes (Ok(bytes)) or 10 s pass (Err).
async fn read_until_closed(stream: &mut TcpStream) -> Result<Vec<u8>, Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return Err(seen),
        }
    }
}

#[tokio::test]
async fn a_slowloris_client_and_a_silent_one_are_disconnected_after_the_header_read_timeout() {
    let gw = TestGateway::with_config(&config("header_read_timeout = \"300ms\"", "")).await;

    // Sends a request head one header line at a time, never finishing it.
    let mut slow = TcpStream::connect(gw.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let dripping = async {
        for i in 0..100 {
            // Not a wait for a condition: the pause between header lines is the
            // attack (a head that never completes, however long the client drips).
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    };
    dripping.await;
    let answer = read_until_closed(&mut slow).await.expect("the gateway closed the slow connection");
    assert!(!String::from_utf8_lossy(&answer).contains(" 200 "), "the unfinished request was never served");

    // Connects and sends nothing at all.
    let mut silent = TcpStream::connect(gw.addr).await.expect("connect");
    read_until_closed(&mut silent).await.expect("the gateway closed the silent connection");

    // A normal request still works.
    assert_eq!(gw.send(Method::GET, "/healthz", &[], Bytes::new()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let gw = TestGateway::with_config(&config("idle_timeout = \"300ms\"", "")).await;
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let answer = read_until_closed(&mut conn).await.expect("closed once idle");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "the request was answered before the idle close: {answer}");
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_and_overridden_paths_do_not() {
    let text = config(
        "",
        r#"
[limits]
per_token = { rate = 0.1, burst = 2 }
[[path]]
id = "busy"
kind = "raster"
[path.limits]
per_token = { rate = 100, burst = 50 }
[path.upstream]
xyz = "http://{up}/busy/{z}/{x}/{y}.png"
"#,
    );
    let gw = TestGateway::with_config(&text).await;
    let token = gw.token(&[("osm", Tier::View), ("busy", Tier::View)]).await;
    let other = gw.token(&[("osm", Tier::View)]).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &token).await.status, StatusCode::OK);
    }
    let seen = gw.upstream.seen().len();
    let r = gw.get("/ogc/xyz/osm/0/0/0", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    let retry: u64 = r.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert_eq!(gw.upstream.seen().len(), seen, "a limited request never reaches the upstream");
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &other).await.status, StatusCode::OK, "each token has its own bucket");
    for _ in 0..10 {
        assert_eq!(gw.get("/ogc/xyz/busy/0/0/0", &token).await.status, StatusCode::OK, "`busy` sets its own limit");
    }
}

#[tokio::test]
async fn one_client_address_over_its_rate_gets_429_before_its_token_is_looked_up() {
    let gw = TestGateway::with_config(&config("", "[limits]\nper_ip = { rate = 0.1, burst = 3 }\n")).await;
    let a = gw.token(&[("osm", Tier::View)]).await;
    let b = gw.token(&[("osm", Tier::View)]).await;
    for t in [&a, &b, &a] {
        assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", t).await.status, StatusCode::OK);
    }
    let r = gw.get("/ogc/xyz/osm/0/0/0", &b).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    let r = gw.send(Method::GET, "/healthz", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "health checks are not rate limited");
}

#[tokio::test]
async fn repeated_bad_tokens_lock_the_client_out_for_the_cooldown() {
    let text = config("", "[limits]\nfailed_auth = { max = 3, window = \"1m\", cooldown = \"2m\" }\n");
    let gw = TestGateway::with_config(&text).await;
    let good = gw.token(&[("osm", Tier::View)]).await;
    for _ in 0..5 {
        let r = gw.send(Method::GET, "/ogc/xyz/osm/0/0/0", &[], Bytes::new()).await;
        assert_eq!(r.reason(), "missing_token", "requests without a token are not failed attempts");
    }
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &good).await.status, StatusCode::OK);
    for _ in 0..3 {
        let guess = tilegate::token::TokenSecret::generate("tg").expect("random");
        assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", guess.expose()).await.status, StatusCode::UNAUTHORIZED);
    }
    let seen = gw.upstream.seen().len();
    let r = gw.get("/ogc/xyz/osm/0/0/0", &good).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::TOO_MANY_REQUESTS, "too_many_failed_authentications"));
    let retry: u64 = r.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((100..=120).contains(&retry), "about the 2-minute cooldown: {retry}");
    let guess = tilegate::token::TokenSecret::generate("tg").expect("random");
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", guess.expose()).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(gw.upstream.seen().len(), seen, "nothing reaches the upstream during the cooldown");
}

#[tokio::test]
async fn an_exempt_network_behind_one_address_is_not_locked_out_by_one_clients_bad_tokens() {
    // An office NAT: one client floods bad tokens, a colleague behind the same
    // address keeps working because the operator exempted the network.
    let text = config("", "[limits]\nfailed_auth = { max = 3, cooldown = \"2m\", exempt = [\"127.0.0.0/8\"] }\n");
    let gw = TestGateway::with_config(&text).await;
    let good = gw.token(&[("osm", Tier::View)]).await;
    for _ in 0..6 {
        let guess = tilegate::token::TokenSecret::generate("tg").expect("random");
        assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", guess.expose()).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        gw.get("/ogc/xyz/osm/0/0/0", &good).await.status,
        StatusCode::OK,
        "the exempt network is not locked out"
    );
    let err = tilegate::config::parse(
        &text.replace("127.0.0.0/8", "127.0.0.0/40").replace("{up}", "127.0.0.1:9"),
        std::path::Path::new("."),
    )
    .err()
    .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("limits.failed_auth.exempt[0]: `127.0.0.0/40`")),
        "a bad network names its key: {err:?}"
    );
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused_whether_declared_or_streamed() {
    let text = config(
        "",
        r#"
[limits]
max_body_bytes = 1000
[[path]]
id = "uploads"
kind = "vector"
[path.limits]
max_body_bytes = 100000
[path.upstream]
base = "http://{up}/uploads/"
"#,
    );
    let gw = TestGateway::with_config(&text).await;
    let token = gw.token(&[("places", Tier::Edit), ("uploads", Tier::Edit)]).await;
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];

    let r = gw.send(Method::POST, "/path/places/items", &headers, Bytes::from(vec![b'x'; 1000])).await;
    assert_eq!(r.status, StatusCode::OK, "a body at the limit passes");
    let seen = gw.upstream.seen().len();
    let r = gw.send(Method::POST, "/path/places/items", &headers, Bytes::from(vec![b'x'; 1001])).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(gw.upstream.seen().len(), seen, "a declared oversize body never reaches the upstream");
    let r = gw.send(Method::POST, "/path/uploads/items", &headers, Bytes::from(vec![b'x'; 50_000])).await;
    assert_eq!(r.status, StatusCode::OK, "`uploads` allows more");

    // No Content-Length: the body streams (chunked) and is cut at the limit.
    let body = Chunks(20).boxed();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req =
        http::Request::post(gw.url("/path/places/items")).header("authorization", &auth).body(body).expect("request");
    let res =
        tokio::time::timeout(Duration::from_secs(20), client.request(req)).await.expect("in time").expect("response");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "a streamed oversize body is cut and refused");
}

/// A body of `n` chunks with no declared length, so it goes out chunked.
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'y'; 200])))))
    }
}
