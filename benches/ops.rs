//! Criterion benches for the per-request ops hooks: ns per `Metrics::request`
//! record (an existing series, the steady state), ns per latency observation
//! (this crate's lock-free histogram against prometheus-client's, which takes a
//! mutex), and ns per rate-limit admit (an existing token bucket and an existing
//! per-IP bucket, on governor). Run with `cargo bench --bench ops`.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tilegate::config::Rate;
use tilegate::ops::metrics::Histogram;
use tilegate::ops::{Limiter, Metrics, Outcome, RequestLabels};
use tilegate::policy::TokenId;

fn labels() -> RequestLabels {
    RequestLabels { path_id: "osm".into(), operation: "xyz.tile", outcome: Outcome::Allowed, status: 200 }
}

fn record(c: &mut Criterion) {
    let m = Metrics::new();
    m.request(labels(), Duration::from_millis(3), Some(Duration::from_millis(2)));
    c.bench_function("metrics/request (existing series)", |b| {
        b.iter(|| m.request(black_box(labels()), Duration::from_millis(3), Some(Duration::from_millis(2))))
    });
    let ours = Histogram::default();
    c.bench_function("metrics/histogram observe (tilegate, atomics)", |b| {
        b.iter(|| ours.observe(black_box(Duration::from_millis(3))))
    });
    let theirs = prometheus_client::metrics::histogram::Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]);
    c.bench_function("metrics/histogram observe (prometheus-client, mutex)", |b| {
        b.iter(|| theirs.observe(black_box(Duration::from_millis(3)).as_secs_f64()))
    });
}

fn admit(c: &mut Criterion) {
    let l = Limiter::new();
    // A rate no bench run can exhaust, so every call takes the allow path.
    let rate = Rate { per_second: 1e6, burst: u32::MAX };
    let token = TokenId::new_random();
    let ip: IpAddr = "192.0.2.7".parse().expect("ip");
    c.bench_function("limits/admit token (existing bucket)", |b| b.iter(|| l.take_token("*", black_box(token), rate)));
    c.bench_function("limits/admit ip (existing bucket)", |b| b.iter(|| l.take_ip("*", black_box(ip), rate)));
}

criterion_group!(benches, record, admit);
criterion_main!(benches);
