//! The GML filter on real MapServer 8 answers (`tests/fixtures/gml/`, captured with
//! `mapserv -nh` from `tests/fixtures/gml/test.map`) and on hostile shapes.

use std::sync::Arc;

use super::*;
use crate::ogc::common::xml::{DocTypePolicy, Hardened, Token};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/gml/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn allowed(names: &[&str]) -> Option<Arc<[String]>> {
    Some(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>().into())
}

/// Benelux (z6 tile 32/21: lon 0–5.6, lat 49.0–52.5) and, in the Arabian Sea, the tile
/// where Tromsø lands when its latitude-first coordinates are read longitude first.
fn fence() -> Option<Arc<Fence>> {
    Some(Arc::new(Fence::new(Some(&[(6, 32, 21), (6, 44, 28)]), None).expect("fence")))
}

const LONLAT: AnswerCrs = AnswerCrs::LonLat;
const LATLON: AnswerCrs = AnswerCrs::LatLon;
const UNKNOWN: AnswerCrs = AnswerCrs::Unknown;

fn run(filter: GmlFilter, doc: &[u8]) -> Result<String, FilterError> {
    filter.filter_all(doc).map(|out| String::from_utf8(out).expect("utf-8"))
}

/// Feeds `doc` in chunks of `size` bytes.
fn chunked(mut filter: GmlFilter, doc: &[u8], size: usize) -> Result<String, FilterError> {
    let mut out = Vec::new();
    for chunk in doc.chunks(size) {
        filter.push(chunk, &mut out)?;
    }
    filter.finish(&mut out)?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

/// The output is well-formed XML (through the hardened reader), and the local names of
/// its elements.
fn elements(out: &str) -> Vec<String> {
    let mut reader = Hardened::new(out.as_bytes(), DocTypePolicy::Refuse).expect("output sniffs");
    let mut names = Vec::new();
    loop {
        match reader.next().unwrap_or_else(|e| panic!("output is not well-formed: {e}\n{out}")) {
            Token::Start(e) | Token::Empty(e) => {
                names.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Token::Eof => return names,
            _ => {}
        }
    }
}

fn ids(out: &str) -> Vec<String> {
    out.split("<ms:places gml:id=\"places.").skip(1).map(|s| s.split('"').next().unwrap_or("").to_owned()).collect()
}

/// Inside the fence: Brussels and Amsterdam, Mumbai in the second tile, and the first
/// point of the Benelux zone (a polygon MapServer writes as points in a POINT layer).
const INSIDE: &[&str] = &["brussels", "amsterdam", "mumbai", "benelux_zone"];

#[test]
fn wfs20_mapserver_points_in_web_mercator_are_fenced() {
    let out = run(GmlFilter::new(allowed(&["name"]), fence(), UNKNOWN), &fixture("mapserver_wfs200_places_3857.xml"))
        .unwrap();
    assert_eq!(ids(&out), INSIDE);
    assert!(
        !out.contains("secret_note") && !out.contains("<ms:population>") && out.contains("<ms:name>Brussels</ms:name>")
    );
    assert!(out.contains(r#"numberMatched="unknown""#) && !out.contains("numberReturned"), "{}", &out[..900]);
    assert!(!out.contains("boundedBy>\n      \t<gml:Envelope srsName=\"urn:ogc:def:crs:EPSG::3857\">\n      \t\t<gml:lowerCorner>-11035457"));
    assert!(!out.contains("127.0.0.1"), "the upstream's schema location is dropped");
    assert!(out.contains("http://schemas.opengis.net/wfs/2.0/wfs.xsd"));
    let names = elements(&out);
    assert_eq!(names.iter().filter(|n| *n == "member").count(), INSIDE.len());
    // Attacker round 5: the indentation MapServer writes around each member stayed where
    // a dropped one had been, one blank line per feature outside the fence.
    let gaps: Vec<&str> = out.split("</wfs:member>").skip(1).map(|rest| &rest[..rest.find('<').unwrap_or(0)]).collect();
    assert!(gaps.iter().all(|g| g.is_empty()), "whitespace between members counts the dropped ones: {gaps:?}");
    assert!(!out.lines().any(|l| l.trim().is_empty()), "a blank line where a member was dropped");
}

#[test]
fn wfs11_mapserver_short_epsg_4326_is_latitude_first_and_refused() {
    // MapServer 8 writes `srsName="EPSG:4326"` latitude first in WFS 1.1 (Paris at
    // 48.85 2.35); read longitude first, Tromsø would land in the fence's second tile.
    let doc = fixture("mapserver_wfs110_places.xml");
    assert!(String::from_utf8_lossy(&doc).contains("<gml:pos>48.856600 2.352200</gml:pos>"));
    let e = run(GmlFilter::new(None, fence(), UNKNOWN), &doc).unwrap_err();
    assert!(matches!(&e, FilterError::InvalidGeometry { reason, .. } if reason.contains("axis order")), "{e}");
    // With only a property fence nothing is read as a coordinate.
    let out = run(GmlFilter::new(allowed(&["name"]), None, UNKNOWN), &doc).unwrap();
    assert_eq!(ids(&out).len(), 25);
    assert!(!out.contains("secret_note"));
}

#[test]
fn wfs10_mapserver_gml2_is_longitude_first() {
    let out =
        run(GmlFilter::new(allowed(&["name"]), fence(), LONLAT), &fixture("mapserver_wfs100_places.xml")).unwrap();
    let fids: Vec<&str> = out.split("<ms:places fid=\"places.").skip(1).filter_map(|s| s.split('"').next()).collect();
    assert_eq!(fids, INSIDE);
    for city in ["Brussels", "Amsterdam"] {
        assert!(out.contains(&format!("<ms:name>{city}</ms:name>")), "{city}");
    }
    for city in ["Tromso", "Paris", "Tokyo"] {
        assert!(!out.contains(&format!("<ms:name>{city}</ms:name>")), "{city}");
    }
    // The collection's GML 2 envelope is required: it becomes unknown.
    assert!(out.contains("<gml:boundedBy><gml:null>unknown</gml:null></gml:boundedBy>"), "{}", &out[..1200]);
    elements(&out);
}

#[test]
fn wfs11_and_wfs20_polygons_with_holes_read_in_urn_order() {
    // MapServer answers a WFS 1.1 request for the URN with `srsName="EPSG:4326"`,
    // latitude first: read in the order the request asked for.
    for name in ["mapserver_wfs110_lakes_urn.xml", "mapserver_wfs200_lakes.xml"] {
        let out = run(GmlFilter::new(allowed(&["name"]), fence(), LATLON), &fixture(name)).unwrap();
        assert!(out.contains("Brussels pond") && !out.contains("Arctic"), "{name}");
        assert!(!out.contains("owner") && !out.contains("<ms:depth>"), "{name}");
        assert!(out.contains("<gml:interior>") || out.contains("<gml:exterior>"), "{name}: geometry kept");
        elements(&out);
    }
}

#[test]
fn gml2_polygons_and_mapserver_dft_schemas() {
    let out = run(GmlFilter::new(allowed(&[]), fence(), LONLAT), &fixture("mapserver_wfs100_lakes.xml")).unwrap();
    assert!(out.contains("<gml:outerBoundaryIs>") && !out.contains("Arctic") && !out.contains("Brussels pond"));
    for xsd in ["mapserver_dft100.xsd", "mapserver_dft110.xsd", "mapserver_dft200.xsd"] {
        let trimmed = crate::filter::trim_describe_feature_type(&fixture(xsd), &["name".to_owned()]).unwrap();
        let trimmed = String::from_utf8(trimmed).unwrap();
        assert!(trimmed.contains(r#"name="msGeometry""#) && trimmed.contains(r#"name="name""#), "{xsd}");
        assert!(!trimmed.contains(r#"name="owner""#) && !trimmed.contains(r#"name="depth""#), "{xsd}");
        assert!(!trimmed.contains("secret_note"), "{xsd}");
    }
}

#[test]
fn chunking_does_not_change_the_output() {
    for name in ["mapserver_wfs200_places_3857.xml", "mapserver_wfs100_places.xml", "mapserver_wfs200_lakes.xml"] {
        let doc = fixture(name);
        let short = if name.contains("wfs100") { LONLAT } else { UNKNOWN };
        let whole = run(GmlFilter::new(allowed(&["name"]), fence(), short), &doc).unwrap();
        for size in [1, 7, 64, 4096] {
            let parts = chunked(GmlFilter::new(allowed(&["name"]), fence(), short), &doc, size).unwrap();
            assert_eq!(parts, whole, "{name} in chunks of {size}");
        }
    }
}

#[test]
fn property_fence_only_keeps_every_feature_and_count() {
    let out =
        run(GmlFilter::new(allowed(&["name"]), None, UNKNOWN), &fixture("mapserver_wfs200_places_count.xml")).unwrap();
    assert!(out.contains(r#"numberMatched="unknown" numberReturned="3""#), "as MapServer wrote them: {}", &out[..900]);
    assert_eq!(ids(&out).len(), 3);
    assert!(!out.contains("<ms:country>") && !out.contains("<ms:id>"));
}

#[test]
fn hits_and_empty_collections_pass() {
    let out = run(GmlFilter::new(None, fence(), UNKNOWN), &fixture("mapserver_wfs200_hits.xml")).unwrap();
    assert!(out.contains(r#"numberMatched="unknown""#) && out.trim_end().ends_with("</wfs:FeatureCollection>"));
    let out = run(
        GmlFilter::new(None, fence(), UNKNOWN),
        br#"<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" numberMatched="3" numberReturned="0"/>"#,
    )
    .unwrap();
    assert_eq!(out, r#"<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" numberMatched="unknown"/>"#);
}

struct Links;

impl LinkRewrite for Links {
    fn rewrite(&self, href: &str) -> Option<String> {
        href.strip_prefix("http://127.0.0.1:9/cgi-bin/mapserv").map(|rest| format!("https://gw/ogc/wfs/lakes{rest}"))
    }
    fn leaks(&self, href: &str) -> bool {
        href.contains("127.0.0.1")
    }
}

#[test]
fn schema_locations_and_next_links_are_mapped() {
    let doc = br#"<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:ms http://127.0.0.1:9/cgi-bin/mapserv?A=1&amp;B=2 urn:other http://other/x.xsd" next="http://127.0.0.1:9/cgi-bin/mapserv?STARTINDEX=10" previous="http://elsewhere/x"/>"#;
    let out = run(GmlFilter::new(allowed(&["name"]), None, UNKNOWN).with_links(Arc::new(Links)), doc).unwrap();
    assert!(out.contains(r#"xsi:schemaLocation="urn:ms https://gw/ogc/wfs/lakes?A=1&amp;B=2""#), "{out}");
    assert!(out.contains(r#"next="https://gw/ogc/wfs/lakes?STARTINDEX=10""#), "{out}");
    assert!(!out.contains("previous") && !out.contains("other"), "{out}");
    // Attacker round 6: under a fence `next` told whether more features lie beyond the
    // page, outside the fence included (`COUNT=1` walked over 23 hidden ones).
    let out = run(GmlFilter::new(None, fence(), UNKNOWN).with_links(Arc::new(Links)), doc).unwrap();
    assert!(out.contains(r#"xsi:schemaLocation="urn:ms https://gw/ogc/wfs/lakes?A=1&amp;B=2""#), "{out}");
    assert!(!out.contains("next=") && !out.contains("previous"), "{out}");
    // N8: in any case (a reader of the raw answer sees the link whatever it is called).
    let odd = String::from_utf8_lossy(doc).replace(" next=", " NEXT=").replace(" previous=", " Previous=");
    let out = run(GmlFilter::new(None, fence(), UNKNOWN).with_links(Arc::new(Links)), odd.as_bytes()).unwrap();
    assert!(odd.contains(" NEXT=") && out.contains("xsi:schemaLocation="), "{out}");
    assert!(!out.to_ascii_lowercase().contains("next=") && !out.to_ascii_lowercase().contains("previous"), "{out}");
}

const GML32: &str =
    r#"xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:ms="urn:ms""#;

fn point(lat: f64, lon: f64, owner: &str) -> String {
    format!(
        r#"<ms:p><ms:geom><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{lat} {lon}</gml:pos></gml:Point></ms:geom><ms:name>n</ms:name><ms:owner>{owner}</ms:owner></ms:p>"#
    )
}

#[test]
fn nested_collections_and_additional_objects_are_filtered_too() {
    let inside = point(50.85, 4.35, "in");
    let outside = point(69.65, 18.96, "out");
    let doc = format!(
        r#"<wfs:FeatureCollection {GML32} numberMatched="4" numberReturned="4"><wfs:member><wfs:FeatureCollection numberMatched="2" numberReturned="2"><wfs:member>{inside}</wfs:member><wfs:member>{outside}</wfs:member></wfs:FeatureCollection></wfs:member><wfs:additionalObjects><wfs:SimpleFeatureCollection><wfs:member>{outside}</wfs:member><wfs:member>{inside}</wfs:member></wfs:SimpleFeatureCollection></wfs:additionalObjects></wfs:FeatureCollection>"#
    );
    let out = run(GmlFilter::new(allowed(&["name"]), fence(), UNKNOWN), doc.as_bytes()).unwrap();
    assert!(!out.contains("69.65") && !out.contains("owner") && !out.contains("numberReturned"), "{out}");
    assert_eq!(out.matches("50.85 4.35").count(), 2, "{out}");
    assert_eq!(out.matches(r#"numberMatched="unknown""#).count(), 2, "{out}");
    elements(&out);
}

#[test]
fn gml31_feature_members_list_is_filtered() {
    let doc = format!(
        r#"<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs" xmlns:gml="http://www.opengis.net/gml" xmlns:ms="urn:ms" numberOfFeatures="2"><gml:featureMembers>{}{}</gml:featureMembers></wfs:FeatureCollection>"#,
        point(69.65, 18.96, "out"),
        point(50.85, 4.35, "in")
    );
    let out = run(GmlFilter::new(allowed(&["name"]), fence(), UNKNOWN), doc.as_bytes()).unwrap();
    assert!(out.contains("50.85 4.35") && !out.contains("69.65") && !out.contains("numberOfFeatures"), "{out}");
}

#[test]
fn a_feature_with_one_geometry_outside_the_fence_is_dropped() {
    let doc = format!(
        r#"<wfs:FeatureCollection {GML32}><wfs:member><ms:p><ms:a><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>50.85 4.35</gml:pos></gml:Point></ms:a><ms:b><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>69.65 18.96</gml:pos></gml:Point></ms:b></ms:p></wfs:member><wfs:member><ms:p><ms:name>no geometry</ms:name></ms:p></wfs:member><wfs:member><ms:p><ms:nested><ms:q><ms:g><gml:Point srsName="EPSG:3857"><gml:pos>0 0</gml:pos></gml:Point></ms:g></ms:q></ms:nested><ms:a><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>50.85 4.35</gml:pos></gml:Point></ms:a></ms:p></wfs:member></wfs:FeatureCollection>"#
    );
    let out = run(GmlFilter::new(None, fence(), UNKNOWN), doc.as_bytes()).unwrap();
    assert!(!out.contains("<wfs:member>"), "every feature holds something outside, or nothing: {out}");
}

#[test]
fn unreadable_answers_fail_closed() {
    let member = |inner: &str| {
        format!(r#"<wfs:FeatureCollection {GML32}><wfs:member>{inner}</wfs:member></wfs:FeatureCollection>"#)
    };
    let cases: Vec<(String, &str)> = vec![
        (
            r#"<!DOCTYPE x [<!ENTITY e "x">]><wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0"/>"#
                .into(),
            "DOCTYPE",
        ),
        (r#"<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1"/>"#.into(), "root"),
        (r#"<FeatureCollection xmlns="http://evil/wfs"/>"#.into(), "root"),
        (format!(r#"<wfs:FeatureCollection {GML32}>text<wfs:member/></wfs:FeatureCollection>"#), "text"),
        (format!(r#"<wfs:FeatureCollection {GML32}><ms:secret>1</ms:secret></wfs:FeatureCollection>"#), "member"),
        (format!(r#"<wfs:FeatureCollection {GML32}/><wfs:FeatureCollection {GML32}/>"#), "second root"),
        (format!(r#"<wfs:FeatureCollection {GML32}><wfs:member><ms:p/>"#), "ends"),
        (member(r#"<wfs:Tuple><wfs:member/></wfs:Tuple>"#), "feature"),
        (member(r#"<ms:p/><ms:q/>"#), "one feature"),
        (member(r#"<ms:p><ms:g><gml:Point><gml:pos>1 2</gml:pos></gml:Point></ms:g></ms:p>"#), "srsName"),
        (
            member(r#"<ms:p><ms:g><gml:Point srsName="EPSG:27700"><gml:pos>1 2</gml:pos></gml:Point></ms:g></ms:p>"#),
            "CRS",
        ),
        (
            member(
                r#"<ms:p><ms:g><gml:Curve srsName="EPSG:3857"><gml:segments><gml:Arc><gml:posList>0 0 1 1 2 0</gml:posList></gml:Arc></gml:segments></gml:Curve></ms:g></ms:p>"#,
            ),
            "Arc",
        ),
        (
            member(r#"<ms:p><ms:g><gml:Point srsName="EPSG:3857"><gml:pos>1 x</gml:pos></gml:Point></ms:g></ms:p>"#),
            "number",
        ),
        (
            member(r#"<ms:p><ms:g><gml:Point srsName="EPSG:3857"><gml:pos>&e;</gml:pos></gml:Point></ms:g></ms:p>"#),
            "entity",
        ),
        (member(r#"<ms:p><ms:a></ms:b></ms:p>"#), "well-formed"),
        (member(r#"<ms:p>loose text<ms:a/></ms:p>"#), "text"),
        (member(r#"<ms:p><![CDATA[owner: x]]><ms:a/></ms:p>"#), "text"),
    ];
    for (doc, what) in cases {
        let e = run(GmlFilter::new(allowed(&["name"]), fence(), UNKNOWN), doc.as_bytes()).unwrap_err();
        let _ = what;
        assert!(!matches!(e, FilterError::Poisoned), "{doc}: {e}");
    }
}

#[test]
fn a_feature_larger_than_the_bound_fails_closed() {
    let mut filter = GmlFilter::new(allowed(&["name"]), fence(), UNKNOWN);
    let mut out = Vec::new();
    filter.push(format!(r#"<wfs:FeatureCollection {GML32}><wfs:member><ms:p><ms:name>"#).as_bytes(), &mut out).unwrap();
    let block = vec![b'a'; 1 << 20];
    let mut result = Ok(());
    for _ in 0..17 {
        result = filter.push(&block, &mut out);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(FilterError::FeatureTooLarge { limit: MAX_FEATURE_BYTES, .. })), "{result:?}");
    assert!(out.len() < 4096, "nothing of the feature was sent");
    assert!(matches!(filter.push(b"x", &mut out), Err(FilterError::Poisoned)));
}

#[test]
fn hidden_properties_never_leave_whatever_their_namespace() {
    let doc = format!(
        r#"<wfs:FeatureCollection {GML32} xmlns:x="urn:x"><wfs:member><ms:p gml:id="p.1"><gml:name>hidden gml name</gml:name><x:owner>x</x:owner><ms:owner a="1">m</ms:owner><ms:name>kept</ms:name><ms:owner/></ms:p></wfs:member></wfs:FeatureCollection>"#
    );
    let out = run(GmlFilter::new(allowed(&["name"]), None, UNKNOWN), doc.as_bytes()).unwrap();
    assert!(!out.contains("owner") && !out.contains("hidden gml name"), "{out}");
    assert!(out.contains(r#"<ms:p gml:id="p.1"><ms:name>kept</ms:name></ms:p>"#), "{out}");
}

/// The fuzz target's oracle on the captured answers: filtering the output again
/// changes nothing (so nothing hidden or outside is left for a second pass to remove).
#[test]
fn filtering_twice_changes_nothing() {
    for name in [
        "mapserver_wfs100_lakes.xml",
        "mapserver_wfs100_places.xml",
        "mapserver_wfs110_lakes_urn.xml",
        "mapserver_wfs200_lakes.xml",
        "mapserver_wfs200_places_3857.xml",
        "mapserver_wfs200_two.xml",
    ] {
        let short = if name.contains("wfs100") { LONLAT } else { LATLON };
        for fenced in [None, fence()] {
            let once = GmlFilter::new(allowed(&["name"]), fenced.clone(), short).filter_all(&fixture(name)).unwrap();
            let twice = GmlFilter::new(allowed(&["name"]), fenced.clone(), short).filter_all(&once).unwrap();
            assert_eq!(String::from_utf8_lossy(&twice), String::from_utf8_lossy(&once), "{name}");
        }
    }
}

/// A WFS 2.0 answer of `n` point features (every third inside the fence), as MapServer
/// writes them.
fn big_answer(n: usize) -> Vec<u8> {
    let mut doc = format!(
        r#"<?xml version='1.0' encoding="UTF-8" ?><wfs:FeatureCollection {GML32} numberMatched="{n}" numberReturned="{n}">"#
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

/// Bounded memory: whatever the answer's size, the filter holds one feature (or one
/// container tag) and the chunk it was given, never the answer.
#[test]
fn memory_stays_bounded_by_one_feature_and_one_chunk() {
    let doc = big_answer(20_000);
    let mut filter = GmlFilter::new(allowed(&["name"]), fence(), LATLON);
    let (mut sent, mut most_held) = (0usize, 0usize);
    for chunk in doc.chunks(64 << 10) {
        let mut out = Vec::new();
        filter.push(chunk, &mut out).unwrap();
        sent += out.len();
        most_held = most_held.max(filter.buf.len());
    }
    let mut out = Vec::new();
    filter.finish(&mut out).unwrap();
    assert!(doc.len() > 5 << 20, "{}", doc.len());
    assert!(most_held < 70 << 10, "held {most_held} bytes of a {}-byte answer", doc.len());
    assert!(sent > 0 && sent < doc.len() / 2);
}

/// Attacker round 10: QGIS Server 3.22 writes WFS 2.0 geometries labelled with the URN
/// longitude first (and WFS 1.1 ones labelled `…/epsg.xml#4326` latitude first), so on
/// a server whose labels are not trusted a fence reads only EPSG:3857 and CRS84 ones.
#[test]
fn untrusted_labels_read_only_mercator_and_crs84_geometries() {
    let doc = |srs: &str, pos: &str| {
        format!(
            r#"<wfs:FeatureCollection {GML32}><wfs:member><ms:p><ms:g><gml:Point srsName="{srs}"><gml:pos>{pos}</gml:pos></gml:Point></ms:g><ms:name>n</ms:name></ms:p></wfs:member></wfs:FeatureCollection>"#
        )
    };
    // Tromsø as QGIS Server writes it: longitude first under a latitude-first label.
    let tromso = doc("urn:ogc:def:crs:EPSG::4326", "18.96 69.65");
    let trusted = run(GmlFilter::new(None, fence(), UNKNOWN), tromso.as_bytes()).unwrap();
    assert!(trusted.contains("18.96 69.65"), "read latitude first it lands in the fence: {trusted}");
    for srs in [
        "urn:ogc:def:crs:EPSG::4326",
        "http://www.opengis.net/gml/srs/epsg.xml#4326",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
    ] {
        let untrusted = GmlFilter::new(None, fence(), UNKNOWN).with_trusted_labels(false);
        let err = run(untrusted, doc(srs, "18.96 69.65").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("server"), "{srs}: {err}");
    }
    for (srs, pos, kept) in [
        ("urn:ogc:def:crs:OGC:1.3:CRS84", "4.35 50.85", true),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", "18.96 69.65", false),
        ("EPSG:3857", "484244 6584935", true),
    ] {
        let out =
            run(GmlFilter::new(None, fence(), UNKNOWN).with_trusted_labels(false), doc(srs, pos).as_bytes()).unwrap();
        assert_eq!(out.contains("<wfs:member>"), kept, "{srs} {pos}: {out}");
    }
}
