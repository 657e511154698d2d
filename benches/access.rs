//! Criterion benches for the logging phase: what one request pays for its access
//! line, metrics, request id and spans, with the access log off and on. Run with
//! `cargo bench --bench access`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, Response};
use hyper::body::Body as _;
use tilegate::access::{self, RequestLog};
use tilegate::ops::{Ops, RequestLabels};
use tilegate::respond;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://maps.example.org"
[store]
path = "tilegate.db"
[[path]]
id = "osm"
kind = "raster"
[path.upstream]
xyz = "http://127.0.0.1:1/tiles/{z}/{x}/{y}.png"
"#;

/// One request's logging phase: id, log, span, response, body drained to its end.
///
/// `headers` is the request's (reused, as hyper's parse would fill it); the
/// response carries a content type, as a tile does.
fn phase(ops: &Arc<Ops>, config: &Arc<tilegate::config::Config>, peer: SocketAddr, headers: &mut HeaderMap) {
    let id = tilegate::proxy::headers::request_id(headers, false);
    let mut log = RequestLog::new(&Method::GET, peer, peer.ip(), id, ops.clone(), config.clone());
    let span = log.span();
    let uri = http::Uri::from_static("/ogc/xyz/osm/1/0/0.png");
    let response = log.respond(Ok(tile()), &span, &uri);
    let mut response = access::finish(response, log);
    let body = response.body_mut();
    while let Some(frame) = next_ready_frame(body) {
        black_box(frame);
    }
}

fn tile() -> Response<respond::Body> {
    let mut res = Response::new(respond::full(&b"tile bytes"[..]));
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("image/png"));
    res
}

/// Polls a ready body frame by frame without a runtime (every bench body is ready).
fn next_ready_frame(body: &mut respond::Body) -> Option<bytes::Bytes> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(body).poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
        _ => None,
    }
}

fn benches(c: &mut Criterion) {
    let config = Arc::new(tilegate::config::parse(CONFIG, std::path::Path::new(".")).expect("bench config"));
    let ops = Arc::new(Ops::new());
    let peer: SocketAddr = "203.0.113.7:40000".parse().expect("addr");
    let mut headers = HeaderMap::new();
    for (k, v) in [("host", "maps.example.org"), ("accept", "image/png"), ("user-agent", "QGIS/3.34")] {
        headers.insert(k, http::HeaderValue::from_static(v));
    }

    // What the gateway did before the logging phase moved to the body's end: the
    // metrics record and the access-log check, with the response passed through.
    c.bench_function("logging_phase/before_log_off", |b| {
        b.iter(|| {
            let started = std::time::Instant::now();
            let response = tile();
            let labels = RequestLabels {
                path_id: "-".into(),
                operation: "-",
                outcome: tilegate::ops::Outcome::Public,
                status: response.status().as_u16(),
            };
            black_box(access::access_log_enabled());
            ops.record(&config, labels, started.elapsed(), None, peer.ip());
            let mut response = black_box(response);
            while let Some(frame) = next_ready_frame(response.body_mut()) {
                black_box(frame);
            }
        })
    });
    c.bench_function("request_id/new", |b| b.iter(|| black_box(access::new_request_id())));
    c.bench_function("logging_phase/log_off", |b| b.iter(|| phase(&ops, &config, peer, &mut headers)));

    let sink = tracing_subscriber::fmt()
        .with_env_filter("tilegate::access=info")
        .with_writer(std::io::sink)
        .json()
        .flatten_event(true)
        .finish();
    tracing::subscriber::with_default(sink, || {
        c.bench_function("logging_phase/access_log_json", |b| b.iter(|| phase(&ops, &config, peer, &mut headers)));
    });

    let info = tracing_subscriber::fmt().with_env_filter("info").with_writer(std::io::sink).finish();
    tracing::subscriber::with_default(info, || {
        c.bench_function("logging_phase/info_spans_and_access_log_plain", |b| {
            b.iter(|| phase(&ops, &config, peer, &mut headers))
        });
    });
}

criterion_group!(group, benches);
criterion_main!(group);
