//! Throughput of the streaming GML filter (WFS GetFeature answers, `src/filter/gml.rs`).
//!
//! A WFS 2.0 / GML 3.2 `FeatureCollection` of point features with four properties, as
//! MapServer 8 writes them (one `wfs:member` each, the collection's start tag carrying
//! the namespace bindings), filtered to one allowed property, fed in 64 KiB chunks.
//! `fenced` adds the geofence (every geometry read, a third of the features kept).
//! Reported as input bytes per second; compare with `cargo bench --bench geojson`.
//! Run with `cargo bench --bench gml`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tilegate::filter::GmlFilter;
use tilegate::spatial::{AnswerCrs, Fence};

const CHUNK: usize = 64 << 10;

/// The collection's start tag names what MapServer's does: WFS, GML, the layer
/// namespace, XLink, XSI and a schema location.
fn answer(n: usize) -> Vec<u8> {
    let mut doc = format!(
        concat!(
            r#"<?xml version='1.0' encoding="UTF-8" ?><wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" "#,
            r#"xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:ms="http://mapserver.gis.umn.edu/mapserver" "#,
            r#"xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" "#,
            r#"xsi:schemaLocation="http://www.opengis.net/wfs/2.0 http://schemas.opengis.net/wfs/2.0/wfs.xsd http://www.opengis.net/gml/3.2 http://schemas.opengis.net/gml/3.2.1/gml.xsd" "#,
            r#"timeStamp="2026-12-01T12:00:00" numberMatched="{n}" numberReturned="{n}">"#
        ),
        n = n
    );
    for i in 0..n {
        let (lat, lon) = if i % 3 == 0 { (50.85, 4.35) } else { (-33.9, 151.2) };
        doc.push_str(&format!(
            "\n    <wfs:member>\n      <ms:p gml:id=\"p.{i}\">\n        <ms:geom><gml:Point gml:id=\"p.{i}.1\" srsName=\"urn:ogc:def:crs:EPSG::4326\"><gml:pos>{lat} {lon}</gml:pos></gml:Point></ms:geom>\n        <ms:name>place {i}</ms:name>\n        <ms:owner>hidden {i}</ms:owner>\n        <ms:population>{i}</ms:population>\n      </ms:p>\n    </wfs:member>"
        ));
    }
    doc.push_str("\n</wfs:FeatureCollection>\n");
    doc.into_bytes()
}

fn filter(doc: &[u8], fence: Option<Arc<Fence>>) -> usize {
    let allowed: Arc<[String]> = Arc::from(vec!["name".to_owned()]);
    let mut filter = GmlFilter::new(Some(allowed), fence, AnswerCrs::LatLon);
    let mut out = Vec::with_capacity(CHUNK * 2);
    let mut sent = 0;
    for chunk in doc.chunks(CHUNK) {
        filter.push(chunk, &mut out).expect("filters");
        sent += out.len();
        out.clear();
    }
    filter.finish(&mut out).expect("ends");
    sent
}

fn gml(c: &mut Criterion) {
    let doc = answer(10_000);
    // Benelux (z6 tile 32/21): the features at 50.85 N 4.35 E are inside.
    let fence = Arc::new(Fence::new(Some(&[(6, 32, 21)]), None).expect("fence"));
    let mut g = c.benchmark_group("gml_filter");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("property_fence", |b| b.iter(|| black_box(filter(black_box(&doc), None))));
    g.bench_function("fenced", |b| b.iter(|| black_box(filter(black_box(&doc), Some(fence.clone())))));
    g.finish();
}

criterion_group!(benches, gml);
criterion_main!(benches);
