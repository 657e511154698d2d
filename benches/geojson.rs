//! Throughput of the streaming GeoJSON filter (DESIGN.md §5, property fence).
//!
//! A FeatureCollection of features with 10 properties (strings, numbers, a bool,
//! a null, a nested object) and a polygon geometry, filtered to 3 allowed
//! properties, fed in 16 KiB chunks as hyper would deliver them. Reported as
//! input bytes per second. `fenced` adds the geometry filter (every feature held,
//! its geometry parsed and tested against a one-tile fence). `links_only` is what
//! every OGC API items page costs: no fence, links rewritten to the gateway, on the
//! same collection with a `self` link per feature (every one rewritten).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tilegate::filter::GeoJsonFilter;
use tilegate::ogc::capabilities::LinkMap;
use tilegate::spatial::Fence;

const CHUNK: usize = 16 * 1024;

fn collection(target_bytes: usize) -> Vec<u8> {
    let mut doc = String::from(r#"{"type":"FeatureCollection","features":["#);
    let mut i = 0u64;
    while doc.len() < target_bytes {
        if i > 0 {
            doc.push(',');
        }
        let (x, y) = (((i * 7919) % 3600) as f64 / 10.0 - 180.0, ((i * 104_729) % 1700) as f64 / 10.0 - 85.0);
        doc.push_str(&format!(
            concat!(
                r#"{{"type":"Feature","id":{i},"geometry":{{"type":"Polygon","coordinates":[[[{x:.6},{y:.6}],"#,
                r#"[{x1:.6},{y:.6}],[{x1:.6},{y1:.6}],[{x:.6},{y1:.6}],[{x:.6},{y:.6}]]]}},"#,
                r#""properties":{{"name":"Feature number {i}","kind":"building","height":{h:.2},"levels":{l},"#,
                r#""owner":"Owner \"{i}\" & Sons","built":"1987-06-0{d}","area_m2":{a:.3},"verified":true,"#,
                r#""note":null,"address":{{"street":"Main St","number":{l}}}}}}}"#
            ),
            i = i,
            x = x,
            y = y,
            x1 = x + 0.0001,
            y1 = y + 0.0001,
            h = (i % 500) as f64 / 3.0,
            l = i % 40,
            d = i % 9 + 1,
            a = (i % 10_000) as f64 * 1.25,
        ));
        i += 1;
    }
    doc.push_str(r#"],"numberMatched":"#);
    doc.push_str(&i.to_string());
    doc.push('}');
    doc.into_bytes()
}

fn run(doc: &[u8], properties: Option<Arc<[String]>>, fence: Option<Arc<Fence>>, out: &mut Vec<u8>) {
    let mut filter = GeoJsonFilter::new(properties, fence);
    for chunk in doc.chunks(CHUNK) {
        out.clear();
        filter.push(chunk, out).expect("valid GeoJSON");
        black_box(&out);
    }
    filter.finish(out).expect("complete GeoJSON");
}

/// The collection with an upstream `self` link in every feature.
fn with_links(doc: &[u8]) -> Vec<u8> {
    let doc = std::str::from_utf8(doc).expect("UTF-8");
    doc.replace(
        r#"{"type":"Feature","id":"#,
        r#"{"type":"Feature","links":[{"rel":"self","href":"http://127.0.0.1:5000/oapi/collections/obs/items?f=json"}],"id":"#,
    )
    .into_bytes()
}

fn run_links(doc: &[u8], links: &Arc<LinkMap>, out: &mut Vec<u8>) {
    let mut filter = GeoJsonFilter::new(None, None).with_links(links.clone());
    for chunk in doc.chunks(CHUNK) {
        out.clear();
        filter.push(chunk, out).expect("valid GeoJSON");
        black_box(&out);
    }
    filter.finish(out).expect("complete GeoJSON");
}

fn bench(c: &mut Criterion) {
    let keep: Arc<[String]> = ["name", "height", "address"].iter().map(|s| s.to_string()).collect::<Vec<_>>().into();
    let fence = Arc::new(Fence::new(Some(&[(4, 8, 5)]), None).expect("valid fence"));
    let links = Arc::new(
        LinkMap::new("http://127.0.0.1:5000/oapi", "https://maps.example.org/ogc/api/obs", Some("tg_1"))
            .expect("valid urls"),
    );
    let mut group = c.benchmark_group("geojson");
    for (label, size) in [("32KB", 32 * 1024), ("10MB", 10 * 1024 * 1024)] {
        let doc = collection(size);
        let mut out = Vec::with_capacity(2 * CHUNK);
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_with_input(BenchmarkId::new("keep_3_of_10", label), &doc, |b, doc| {
            b.iter(|| run(doc, Some(keep.clone()), None, &mut out))
        });
        group.bench_with_input(BenchmarkId::new("all_properties", label), &doc, |b, doc| {
            b.iter(|| run(doc, None, None, &mut out))
        });
        group.bench_with_input(BenchmarkId::new("fenced_keep_3_of_10", label), &doc, |b, doc| {
            b.iter(|| run(doc, Some(keep.clone()), Some(fence.clone()), &mut out))
        });
        let linked = with_links(&doc);
        group.throughput(Throughput::Bytes(linked.len() as u64));
        group.bench_with_input(BenchmarkId::new("links_only", label), &linked, |b, doc| {
            b.iter(|| run_links(doc, &links, &mut out))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
