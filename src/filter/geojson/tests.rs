//! Tests for the streaming GeoJSON filter.

use std::sync::Arc;

use geo::{BoundingRect, Geometry};

use super::*;

fn names(list: &[&str]) -> Option<Arc<[String]>> {
    Some(list.iter().map(|s| s.to_string()).collect::<Vec<_>>().into())
}

fn filter(doc: &str, allowed: &[&str]) -> String {
    let out = filter_geojson(doc.as_bytes(), names(allowed), None).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let text = String::from_utf8(out).expect("utf-8 output");
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("output is not JSON: {e}: {text}"));
    text
}

/// Features whose geometry lies west of longitude 10 pass.
fn west_of_10(geometry: &Geometry<f64>) -> bool {
    geometry.bounding_rect().is_some_and(|r| r.min().x < 10.0)
}

fn fenced(allowed: Option<Arc<[String]>>) -> GeoJsonFilter {
    GeoJsonFilter::with_test(allowed, Some(GeometryTest::Predicate(west_of_10)))
}

fn run(mut filter: GeoJsonFilter, doc: &[u8]) -> Result<Vec<u8>, FilterError> {
    let mut out = Vec::new();
    filter.push(doc, &mut out)?;
    filter.finish(&mut out)?;
    Ok(out)
}

fn run_fenced(doc: &str, allowed: Option<Arc<[String]>>) -> Result<String, FilterError> {
    let out = run(fenced(allowed), doc.as_bytes())?;
    let text = String::from_utf8(out).expect("utf-8 output");
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("output is not JSON: {e}: {text}"));
    Ok(text)
}

const COLLECTION: &str = r#"{
  "type": "FeatureCollection",
  "features": [
    {"type": "Feature", "id": 1, "geometry": {"type": "Point", "coordinates": [1.5, 2]},
     "properties": {"name": "Main St", "secret": "s1", "lanes": 2, "owner": {"name": "x"}}},
    {"type": "Feature", "id": 2, "geometry": {"type": "Point", "coordinates": [20, 2]},
     "properties": {"secret": [1, {"a": "}"}], "name": "Side \"St\"", "lanes": null}}
  ],
  "numberMatched": 2
}"#;

#[test]
fn hidden_properties_are_removed_and_member_values_are_copied() {
    let out = filter(COLLECTION, &["name", "lanes"]);
    // The root and each feature are re-emitted member by member; values are copied.
    let expected = r#"{"type":"FeatureCollection","features":[
    {"type":"Feature","id":1,"geometry":{"type": "Point", "coordinates": [1.5, 2]},"properties":{"name":"Main St","lanes":2}},
    {"type":"Feature","id":2,"geometry":{"type": "Point", "coordinates": [20, 2]},"properties":{"name":"Side \"St\"","lanes":null}}
  ],"numberMatched":2}"#;
    assert_eq!(out, expected);
}

#[test]
fn an_empty_fence_keeps_geometry_only() {
    let out = filter(COLLECTION, &[]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    for feature in value["features"].as_array().unwrap() {
        assert_eq!(feature["properties"], serde_json::json!({}));
        assert!(feature["geometry"].is_object());
    }
}

#[test]
fn no_property_fence_passes_the_document_through() {
    let out = filter_geojson(COLLECTION.as_bytes(), None, None).unwrap();
    assert_eq!(out, COLLECTION.as_bytes());
}

#[test]
fn escaped_keys_are_compared_after_unescaping() {
    let cases: &[(&str, &[&str], &str)] = &[
        (r#"{"n\u0061me":1,"\u0073ecret":2}"#, &["name"], r#"{"n\u0061me":1}"#),
        (r#"{"na\"me":1,"na\\me":2,"na/me":3}"#, &["na\"me", "na/me"], r#"{"na\"me":1,"na/me":3}"#),
        (r#"{"\/x":1,"\t":2}"#, &["/x", "\t"], r#"{"\/x":1,"\t":2}"#),
        (r#"{"\ud83d\ude00":1,"\ud83d":2,"\ude00":3}"#, &["😀"], r#"{"\ud83d\ude00":1}"#),
        (r#"{"\u00e9t\u00C9":1,"été":2}"#, &["étÉ"], r#"{"\u00e9t\u00C9":1}"#),
        (r#"{"PROPERTIES":1,"Name":2}"#, &["name"], r#"{}"#),
    ];
    for (props, allowed, expected) in cases {
        let doc = format!(r#"{{"type":"Feature","properties":{props},"geometry":null}}"#);
        let out = filter(&doc, allowed);
        assert_eq!(out, format!(r#"{{"type":"Feature","properties":{expected},"geometry":null}}"#), "{props}");
    }
}

#[test]
fn escaped_member_names_still_find_features_and_properties() {
    let doc = r#"{"type":"FeatureCollection","fe\u0061tures":[{"prop\u0065rties":{"secret":1,"ok":2}}]}"#;
    assert_eq!(filter(doc, &["ok"]), r#"{"type":"FeatureCollection","fe\u0061tures":[{"prop\u0065rties":{"ok":2}}]}"#);
}

#[test]
fn nested_values_of_allowed_keys_pass_whole_and_hidden_ones_vanish_whole() {
    let doc =
        r#"{"properties":{"a":{"secret":[1,{"b":"]}"}],"c":{}},"secret":{"a":[[[]]],"x":"\"}"},"b":[{"secret":1}]}}"#;
    assert_eq!(filter(doc, &["a", "b"]), r#"{"properties":{"a":{"secret":[1,{"b":"]}"}],"c":{}},"b":[{"secret":1}]}}"#);
}

#[test]
fn unicode_passes_unchanged() {
    let doc = r#"{"properties":{"名前":"東京 🗼","секрет":"нет","ok":"ü\u00fc"}}"#;
    assert_eq!(filter(doc, &["名前", "ok"]), r#"{"properties":{"名前":"東京 🗼","ok":"ü\u00fc"}}"#);
}

#[test]
fn null_properties_stay_null_and_other_non_objects_are_refused() {
    let doc = r#"{"type":"Feature","properties":null,"geometry":null}"#;
    assert_eq!(filter(doc, &["a"]), doc);
    for bad in [r#"{"properties":[1]}"#, r#"{"properties":"x"}"#, r#"{"properties":1}"#] {
        let err = filter_geojson(bad.as_bytes(), names(&["a"]), None).unwrap_err();
        assert!(matches!(err, FilterError::NotGeoJson { .. }), "{bad}: {err}");
    }
    // Without a property fence the filter does not care what `properties` holds.
    assert!(filter_geojson(br#"{"properties":[1]}"#, None, None).is_ok());
}

#[test]
fn huge_numbers_pass_as_written() {
    let doc = r#"{"properties":{"big":123456789012345678901234567890.000000000000000000001e-999999,"n":-0,"f":1E+2,"g":0.5e1}}"#;
    assert_eq!(filter(doc, &["big", "n", "f", "g"]), doc);
}

#[test]
fn a_key_named_properties_inside_properties_is_just_a_key() {
    let doc = r#"{"properties":{"properties":{"secret":1,"ok":2},"secret":3,"ok":4}}"#;
    assert_eq!(filter(doc, &["ok"]), r#"{"properties":{"ok":4}}"#);
    assert_eq!(filter(doc, &["properties"]), r#"{"properties":{"properties":{"secret":1,"ok":2}}}"#);
}

#[test]
fn members_may_come_in_any_order() {
    let doc =
        r#"{"features":[{"properties":{"s":1,"a":2},"geometry":null,"type":"Feature"}],"type":"FeatureCollection"}"#;
    assert_eq!(
        filter(doc, &["a"]),
        r#"{"features":[{"properties":{"a":2},"geometry":null,"type":"Feature"}],"type":"FeatureCollection"}"#
    );
}

#[test]
fn duplicate_properties_members_are_each_filtered() {
    let doc = r#"{"type":"Feature","properties":{"s":1},"properties":{"s":2,"a":3}}"#;
    assert_eq!(filter(doc, &["a"]), r#"{"type":"Feature","properties":{},"properties":{"a":3}}"#);
}

#[test]
fn properties_outside_features_are_not_touched() {
    let doc = r#"{"type":"FeatureCollection","links":[{"properties":{"s":1}}],"features":[{"links":[{"properties":{"s":2}}],"properties":{"s":3}}]}"#;
    assert_eq!(
        filter(doc, &[]),
        r#"{"type":"FeatureCollection","links":[{"properties":{"s":1}}],"features":[{"links":[{"properties":{"s":2}}],"properties":{}}]}"#
    );
}

#[test]
fn a_single_feature_root_is_filtered() {
    let doc = r#"{"type": "Feature", "id": "a.1", "properties": {"name": "x", "secret": 1}, "geometry": null}"#;
    assert_eq!(filter(doc, &["name"]), r#"{"type":"Feature","id":"a.1","properties":{"name":"x"},"geometry":null}"#);
}

/// Regression (an outside attacker, with `Range`): a root that is neither a
/// FeatureCollection nor a Feature was relayed whole under a property or geometry
/// fence, so `{"name":"far","secret":"S2"}` (a slice of a collection) leaked hidden
/// data. Under a fence it is refused; with no fence (links only) it passes unchanged.
#[test]
fn a_root_without_features_or_properties_is_refused_under_a_fence() {
    let doc = "{\n  \"id\": \"roads\",\n  \"links\": [{\"href\": \"x\", \"rel\": \"items\"}],\n  \"extent\": {\"spatial\": {\"bbox\": [[-180, -90, 180, 90]]}}\n}\n";
    let unfenced = GeoJsonFilter::new(None, None).filter_all(doc.as_bytes()).expect("passes");
    assert_eq!(unfenced, doc.as_bytes());
    let slice = r#"{"name": "far", "secret": "S2", "pop": 7}"#;
    for d in [doc, slice] {
        let err = filter_geojson(d.as_bytes(), names(&["name"]), None).unwrap_err();
        assert!(matches!(err, FilterError::NotGeoJson { .. }), "{d}: {err}");
        assert!(run_fenced(d, names(&[])).is_err(), "{d}");
    }
}

#[test]
fn non_object_roots_are_refused() {
    for doc in ["[]", "[{\"properties\":{\"s\":1}}]", "1", "\"x\"", "null"] {
        let err = filter_geojson(doc.as_bytes(), names(&[]), None).unwrap_err();
        assert!(matches!(err, FilterError::NotGeoJson { .. }), "{doc}: {err}");
    }
}

#[test]
fn odd_features_members_are_refused() {
    for doc in [r#"{"features":[1]}"#, r#"{"features":[[]]}"#, r#"{"features":{"a":{}}}"#, r#"{"features":"x"}"#] {
        let err = filter_geojson(doc.as_bytes(), names(&[]), None).unwrap_err();
        assert!(matches!(err, FilterError::NotGeoJson { .. }), "{doc}: {err}");
    }
    assert_eq!(filter(r#"{"features":null}"#, &[]), r#"{"features":null}"#);
    assert_eq!(filter(r#"{"features":[ ]}"#, &[]), r#"{"features":[ ]}"#);
    assert_eq!(run_fenced(r#"{"features":[ ]}"#, None).unwrap(), r#"{"features":[]}"#);
}

#[test]
fn invalid_json_is_refused() {
    let cases = [
        r#"{"properties":{"a":1,}}"#,
        r#"{"properties":{"a" 1}}"#,
        r#"{"properties":{"a":tru}}"#,
        r#"{"properties":{"a":nul}}"#,
        r#"{"properties":{"a":01}}"#,
        r#"{"properties":{"a":1.}}"#,
        r#"{"properties":{"a":-}}"#,
        r#"{"properties":{"a":1e}}"#,
        r#"{"properties":{"a":.5}}"#,
        r#"{"properties":{"a":+1}}"#,
        r#"{"properties":{"a":"\x"}}"#,
        r#"{"properties":{"a":"\u12g4"}}"#,
        "{\"properties\":{\"a\":\"line\nbreak\"}}",
        r#"{"properties":{"a":[1,]}}"#,
        r#"{"properties":{"a":[1}}"#,
        r#"{"properties":{"a":{]}}"#,
        r#"{"properties":{a:1}}"#,
        r#"{"properties":{"a":1}} x"#,
        r#"{"properties":{"a":1}}{}"#,
        r#"{"properties":{'a':1}}"#,
        r#"{"a":NaN}"#,
        r#"{,}"#,
        "",
        "   ",
    ];
    for doc in cases {
        assert!(filter_geojson(doc.as_bytes(), names(&["a"]), None).is_err(), "{doc} should be refused");
        assert!(filter_geojson(doc.as_bytes(), None, None).is_err(), "{doc} should be refused");
    }
}

#[test]
fn invalid_utf8_is_refused_even_across_chunks() {
    let mut doc = br#"{"properties":{"a":"x"#.to_vec();
    doc.extend_from_slice(&[0xE2, 0x28, 0xA1]);
    doc.extend_from_slice(br#""}}"#);
    assert!(filter_geojson(&doc, names(&["a"]), None).is_err());
    // A valid three-byte character split across chunks is fine.
    let doc = r#"{"properties":{"a":"€"}}"#.as_bytes();
    let euro = doc.iter().position(|&b| b == 0xE2).unwrap();
    for cut in [euro + 1, euro + 2] {
        let mut f = GeoJsonFilter::new(names(&["a"]), None);
        let mut out = Vec::new();
        f.push(&doc[..cut], &mut out).unwrap();
        f.push(&doc[cut..], &mut out).unwrap();
        f.finish(&mut out).unwrap();
        assert_eq!(out, doc);
    }
    // A truncated character at the end of the body is refused.
    let mut f = GeoJsonFilter::new(None, None);
    let mut out = Vec::new();
    f.push(b"{\"a\":\"\xE2\x82", &mut out).unwrap();
    assert!(f.finish(&mut out).is_err());
}

#[test]
fn a_truncated_body_is_an_error_at_finish() {
    let doc = COLLECTION.as_bytes();
    for cut in [1, 10, doc.len() / 2, doc.len() - 1] {
        let mut f = GeoJsonFilter::new(names(&["name"]), None);
        let mut out = Vec::new();
        f.push(&doc[..cut], &mut out).unwrap();
        assert!(matches!(f.finish(&mut out), Err(FilterError::TruncatedJson { .. })), "cut at {cut}");
    }
}

#[test]
fn a_failed_filter_stays_failed() {
    let mut f = GeoJsonFilter::new(None, None);
    let mut out = Vec::new();
    assert!(f.push(b"{]", &mut out).is_err());
    assert!(matches!(f.push(b"}", &mut out), Err(FilterError::Poisoned)));
    assert!(matches!(f.finish(&mut out), Err(FilterError::Poisoned)));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    let err = filter_geojson(deep.as_bytes(), None, None).unwrap_err();
    assert!(matches!(err, FilterError::TooDeep { .. }), "{err}");
    let ok = format!("{{\"a\":{}{}}}", "[".repeat(MAX_DEPTH - 2), "]".repeat(MAX_DEPTH - 2));
    assert!(filter_geojson(ok.as_bytes(), None, None).is_ok());
}

#[test]
fn error_offsets_point_at_the_bad_byte() {
    let mut f = GeoJsonFilter::new(None, None);
    let mut out = Vec::new();
    f.push(b"{\"a\":", &mut out).unwrap();
    match f.push(b" x", &mut out) {
        Err(FilterError::InvalidJson { offset, .. }) => assert_eq!(offset, 6),
        other => panic!("{other:?}"),
    }
}

/// Every way of cutting `doc` in two gives the same output as one push.
fn assert_split_invariant(doc: &[u8], make: impl Fn() -> GeoJsonFilter) {
    let whole = run(make(), doc);
    for cut in 0..=doc.len() {
        let mut f = make();
        let mut out = Vec::new();
        let result = f
            .push(&doc[..cut], &mut out)
            .and_then(|()| f.push(&doc[cut..], &mut out))
            .and_then(|()| f.finish(&mut out));
        match (&whole, result) {
            (Ok(expected), Ok(())) => assert_eq!(&out, expected, "cut at {cut}"),
            (Err(_), Err(_)) => {}
            (expected, got) => panic!("cut at {cut}: whole gave {expected:?}, split gave {got:?}"),
        }
    }
}

const TRICKY: &str = r#" {"type" : "FeatureCollection", "features" : [ {"type":"Feature","properties" : {"n\u0061me" : "a\"b\\", "secret" : {"x":[1,2,{"y":"}"}]}, "big":-1.5e+300, "ok":true, "no":false, "nil":null, "\ud83d\ude00":"é"} , "geometry":{"type":"Point","coordinates":[1,2]}} ,{"properties":null,"geometry":null}, {"geometry":{"type":"Point","coordinates":[30,2]},"properties":{"secret":"😀","name":"z"}} ] , "links" : [] } "#;

#[test]
fn any_split_into_two_chunks_gives_the_same_output() {
    assert_split_invariant(TRICKY.as_bytes(), || GeoJsonFilter::new(names(&["name", "big", "ok", "nil", "😀"]), None));
    assert_split_invariant(TRICKY.as_bytes(), || GeoJsonFilter::new(None, None));
    assert_split_invariant(TRICKY.as_bytes(), || fenced(names(&["name"])));
    assert_split_invariant(COLLECTION.as_bytes(), || fenced(None));
    assert_split_invariant(br#"{"properties":{"a":1,}}"#, || GeoJsonFilter::new(names(&["a"]), None));
}

#[test]
fn random_chunkings_give_the_same_output() {
    let doc = TRICKY;
    let expected = run(GeoJsonFilter::new(names(&["name", "ok"]), None), doc.as_bytes()).unwrap();
    let expected_fenced = run(fenced(names(&["name", "ok"])), doc.as_bytes()).unwrap();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..300 {
        for (make, expected) in [
            (GeoJsonFilter::new(names(&["name", "ok"]), None), &expected),
            (fenced(names(&["name", "ok"])), &expected_fenced),
        ] {
            let mut f = make;
            let mut out = Vec::new();
            let mut rest = doc.as_bytes();
            while !rest.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let take = (seed % 9) as usize % (rest.len() + 1);
                f.push(&rest[..take], &mut out).unwrap();
                rest = &rest[take..];
            }
            f.finish(&mut out).unwrap();
            assert_eq!(&out, expected);
        }
    }
}

#[test]
fn tricky_document_filters_as_expected() {
    let out = run(GeoJsonFilter::new(names(&["name", "ok", "😀"]), None), TRICKY.as_bytes()).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value["features"][0]["properties"], serde_json::json!({"name": "a\"b\\", "ok": true, "😀": "é"}));
    assert_eq!(value["features"][1]["properties"], serde_json::Value::Null);
    assert_eq!(value["features"][2]["properties"], serde_json::json!({"name": "z"}));
    assert_eq!(value["links"], serde_json::json!([]));
}

#[test]
fn the_geometry_filter_drops_features_outside_and_keeps_commas_valid() {
    let doc = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","geometry":{"type":"Point","coordinates":[50,0]},"properties":{"i":0}},
        {"type":"Feature","geometry":{"type":"Point","coordinates":[1,0]},"properties":{"i":1}},
        {"type":"Feature","geometry":{"type":"Point","coordinates":[60,0]},"properties":{"i":2}},
        {"type":"Feature","geometry":{"type":"LineString","coordinates":[[5,0],[50,1]]},"properties":{"i":3}},
        {"type":"Feature","geometry":null,"properties":{"i":4}},
        {"type":"Feature","properties":{"i":5}},
        {"type":"Feature","geometry":{"type":"Point","coordinates":[70,0]},"properties":{"i":6}}
    ],"numberReturned":7}"#;
    let out = run_fenced(doc, None).unwrap();
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kept: Vec<i64> =
        value["features"].as_array().unwrap().iter().map(|f| f["properties"]["i"].as_i64().unwrap()).collect();
    assert_eq!(kept, vec![1, 3]);
    assert!(out.ends_with(r#"],"numberReturned":2}"#), "{out}");
}

#[test]
fn the_geometry_filter_can_drop_every_feature() {
    let doc = r#"{"features":[{"geometry":{"type":"Point","coordinates":[50,0]}},{"geometry":null}],"type":"FeatureCollection"}"#;
    assert_eq!(run_fenced(doc, None).unwrap(), r#"{"features":[],"type":"FeatureCollection"}"#);
}

#[test]
fn the_geometry_filter_reads_every_geometry_type() {
    let geometries = [
        (r#"{"type":"Point","coordinates":[1,2,3]}"#, true),
        (r#"{"type":"MultiPoint","coordinates":[[50,0],[1,0]]}"#, true),
        (r#"{"type":"LineString","coordinates":[[50,0],[51,0]]}"#, false),
        (r#"{"type":"MultiLineString","coordinates":[[[50,0],[51,0]],[[5,0],[6,0]]]}"#, true),
        (
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]],[[0.1,0.1],[0.2,0.1],[0.2,0.2],[0.1,0.1]]]}"#,
            true,
        ),
        (r#"{"type":"MultiPolygon","coordinates":[[[[50,0],[51,0],[51,1],[50,0]]]]}"#, false),
        (
            r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[50,0]},{"type":"Point","coordinates":[0,0]}]}"#,
            true,
        ),
        (r#"{"type":"Polygon","coordinates":[]}"#, false),
    ];
    for (geometry, kept) in geometries {
        let doc = format!(r#"{{"features":[{{"geometry":{geometry},"properties":{{}}}}]}}"#);
        let out = run_fenced(&doc, None).unwrap();
        assert_eq!(out == doc, kept, "{geometry}: {out}");
    }
}

#[test]
fn unreadable_geometries_are_errors() {
    for geometry in [
        r#"{"type":"Point"}"#,
        r#"{"type":"Point","coordinates":[1]}"#,
        r#"{"type":"Point","coordinates":["1","2"]}"#,
        r#"{"type":"Circle","coordinates":[1,2]}"#,
        r#"{"coordinates":[1,2]}"#,
        r#"{"type":"Point","coordinates":[1e999,2]}"#,
        r#"{"type":"GeometryCollection","geometries":[null]}"#,
        r#"[1,2]"#,
        r#""POINT(1 2)""#,
    ] {
        let doc = format!(r#"{{"features":[{{"geometry":{geometry}}}]}}"#);
        let err = run_fenced(&doc, None).unwrap_err();
        assert!(matches!(err, FilterError::InvalidGeometry { .. }), "{geometry}: {err}");
    }
}

#[test]
fn a_duplicated_geometry_must_pass_in_every_copy() {
    let doc = r#"{"features":[{"geometry":{"type":"Point","coordinates":[1,0]},"geometry":{"type":"Point","coordinates":[50,0]}}]}"#;
    assert_eq!(run_fenced(doc, None).unwrap(), r#"{"features":[]}"#);
    let doc = r#"{"features":[{"geometry":{"type":"Point","coordinates":[1,0]},"geometry":{"type":"Point","coordinates":[2,0]}}]}"#;
    assert_eq!(run_fenced(doc, None).unwrap(), doc);
}

#[test]
fn the_geometry_filter_and_the_property_filter_work_together() {
    let out = run_fenced(COLLECTION, names(&["name"])).unwrap();
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["features"].as_array().unwrap().len(), 1);
    assert_eq!(value["features"][0]["properties"], serde_json::json!({"name": "Main St"}));
    assert!(value.get("numberMatched").is_none(), "{out}");
}

/// Regression (#13.5, #12 M3): a fenced page of 3, 0, 0 features kept the upstream's
/// `numberMatched: 7` and `numberReturned: 3, 3, 1`, so `ogrinfo -so` reported 7
/// features and a token could count features outside its fence.
#[test]
fn counts_under_a_geometry_filter_say_what_is_on_the_page() {
    let features = r#"[{"geometry":{"type":"Point","coordinates":[1,0]}},{"geometry":{"type":"Point","coordinates":[50,0]}},{"geometry":{"type":"Point","coordinates":[2,0]}}]"#;
    for doc in [
        format!(
            r#"{{"type":"FeatureCollection","numberMatched":7,"numberReturned":3,"features":{features},"links":[]}}"#
        ),
        format!(r#"{{"type":"FeatureCollection","features":{features},"numberMatched":7,"numberReturned":3}}"#),
        format!(
            r#"{{ "totalFeatures" : 7 , "features" : {features} , "numberMatched" : 7 , "numberReturned" : 3 , "crs" : null }}"#
        ),
    ] {
        let out = run_fenced(&doc, None).unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["features"].as_array().unwrap().len(), 2, "{out}");
        assert_eq!(value["numberReturned"], 2, "{out}");
        assert!(value.get("numberMatched").is_none() && value.get("totalFeatures").is_none(), "{out}");
        assert_split_invariant(doc.as_bytes(), || fenced(None));
    }
    // No count upstream, none invented; a page the fence empties says 0.
    let out = run_fenced(&format!(r#"{{"features":{features}}}"#), None).unwrap();
    assert!(!out.contains("number"), "{out}");
    let out =
        run_fenced(r#"{"numberReturned":1,"features":[{"geometry":{"type":"Point","coordinates":[50,0]}}]}"#, None)
            .unwrap();
    assert_eq!(out, r#"{"features":[],"numberReturned":0}"#);
    // Without a geometry filter no feature goes, and the counts stay exact.
    let out = filter(r#"{"numberMatched":7,"features":[{"properties":{"a":1}}],"numberReturned":1}"#, &["a"]);
    assert_eq!(out, r#"{"numberMatched":7,"features":[{"properties":{"a":1}}],"numberReturned":1}"#);
}

#[test]
fn collection_members_before_features_are_not_lost_under_a_fence() {
    let doc = r#"{"type":"FeatureCollection","title":"t","geometry":{"type":"Point","coordinates":[1,0]},"features":[{"geometry":{"type":"Point","coordinates":[1,1]},"properties":{"s":1}}],"links":[]}"#;
    assert_eq!(
        run_fenced(doc, names(&[])).unwrap(),
        r#"{"type":"FeatureCollection","title":"t","geometry":{"type":"Point","coordinates":[1,0]},"features":[{"geometry":{"type":"Point","coordinates":[1,1]},"properties":{}}],"links":[]}"#
    );
    assert_split_invariant(doc.as_bytes(), || fenced(names(&[])));
}

/// #12 (nested counts): under a geometry filter a count nested in another root member
/// (`"context":{"matched":…}` of the OGC API drafts, `"meta":{…}`), a collection
/// `bbox` or a root geometry outside the fence told what lies outside it. Only the
/// allow-listed root members are relayed, whatever they are called.
#[test]
fn under_a_geometry_filter_only_known_root_members_are_relayed() {
    let features =
        r#"[{"geometry":{"type":"Point","coordinates":[1,0]}},{"geometry":{"type":"Point","coordinates":[50,0]}}]"#;
    for doc in [
        format!(
            r#"{{"type":"FeatureCollection","context":{{"returned":2,"matched":7,"limit":10}},"features":{features}}}"#
        ),
        format!(
            r#"{{"meta":{{"numberMatched":7}},"features":{features},"bbox":[1,0,50,0],"totalCount":{{"value":7}}}}"#
        ),
        format!(r#"{{"features":{features},"geometry":{{"type":"Point","coordinates":[50,0]}},"x-count":7}}"#),
    ] {
        let out = run_fenced(&doc, None).unwrap();
        assert!(!out.contains('7') && !out.contains("50"), "{out}");
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["features"].as_array().unwrap().len(), 1, "{out}");
        assert_split_invariant(doc.as_bytes(), || fenced(None));
    }
    // A root geometry before `features`, outside the fence: the document is refused.
    let doc = format!(r#"{{"geometry":{{"type":"Point","coordinates":[50,0]}},"features":{features}}}"#);
    assert!(run_fenced(&doc, None).is_err());
    // Without a geometry filter no feature is dropped: the counts and bbox stay.
    let doc = r#"{"numberMatched":7,"features":[{"properties":{"a":1}}],"bbox":[1,0,50,0],"totalFeatures":7}"#;
    assert_eq!(filter(doc, &["a"]), doc);
}

#[test]
fn a_single_feature_outside_the_fence_is_refused() {
    let inside = r#"{"type":"Feature","properties":{"s":1,"a":2},"geometry":{"type":"Point","coordinates":[1,1]}}"#;
    assert_eq!(
        run_fenced(inside, names(&["a"])).unwrap(),
        r#"{"type":"Feature","properties":{"a":2},"geometry":{"type":"Point","coordinates":[1,1]}}"#
    );
    let outside = r#"{"type":"Feature","properties":{"a":2},"geometry":{"type":"Point","coordinates":[50,1]}}"#;
    assert!(matches!(run_fenced(outside, None), Err(FilterError::FeatureOutsideFence)));
    let no_geometry = r#"{"type":"Feature","properties":{"a":2}}"#;
    assert!(matches!(run_fenced(no_geometry, None), Err(FilterError::FeatureOutsideFence)));
}

#[test]
fn a_feature_larger_than_the_limit_is_refused_under_a_fence() {
    let big = "x".repeat(MAX_FEATURE_BYTES / 4);
    let mut f = fenced(None);
    let mut out = Vec::new();
    f.push(br#"{"features":[{"properties":{"pad":""#, &mut out).unwrap();
    let mut result = Ok(());
    for _ in 0..5 {
        result = f.push(big.as_bytes(), &mut out);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(FilterError::FeatureTooLarge { offset: 13, .. })), "{result:?}");
    // Without a fence the same feature streams.
    let mut f = GeoJsonFilter::new(names(&["pad"]), None);
    let mut out = Vec::new();
    f.push(br#"{"features":[{"properties":{"pad":""#, &mut out).unwrap();
    for _ in 0..5 {
        out.clear();
        f.push(big.as_bytes(), &mut out).unwrap();
        assert_eq!(out.len(), big.len(), "streams without holding the feature");
    }
}

#[test]
fn a_fence_without_tiles_filters_no_geometry() {
    let fence = Arc::new(Fence::new(None, Some(12)).unwrap());
    let out = filter_geojson(COLLECTION.as_bytes(), None, Some(fence)).unwrap();
    assert_eq!(out, COLLECTION.as_bytes());
}

#[test]
fn long_keys_never_match_and_never_grow_memory() {
    let long = "k".repeat(10_000);
    let doc = format!(r#"{{"properties":{{"{long}":1,"a":2}}}}"#);
    assert_eq!(filter(&doc, &["a"]), r#"{"properties":{"a":2}}"#);
    let f = {
        let mut f = GeoJsonFilter::new(names(&["a"]), None);
        f.push(doc.as_bytes(), &mut Vec::new()).unwrap();
        f
    };
    assert!(f.key.capacity() <= 4 * MIN_KEY_CAP, "key buffer grew to {}", f.key.capacity());
}

/// The fence is the tile z1 (0,0): the north-west quarter of the world.
#[test]
fn a_real_fence_keeps_features_in_its_tiles() {
    let fence = Arc::new(Fence::new(Some(&[(1, 0, 0)]), None).unwrap());
    let doc = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","geometry":{"type":"Point","coordinates":[-100,40]},"properties":{"i":0}},
        {"type":"Feature","geometry":{"type":"Point","coordinates":[100,40]},"properties":{"i":1}},
        {"type":"Feature","geometry":{"type":"Point","coordinates":[-100,-40]},"properties":{"i":2}},
        {"type":"Feature","geometry":{"type":"LineString","coordinates":[[-100,-40],[-100,40]]},"properties":{"i":3}}
    ]}"#;
    let out = filter_geojson(doc.as_bytes(), None, Some(fence)).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let kept: Vec<i64> =
        value["features"].as_array().unwrap().iter().map(|f| f["properties"]["i"].as_i64().unwrap()).collect();
    assert_eq!(kept, vec![0, 3]);
}

#[test]
fn a_real_fence_never_shows_a_feature_it_cannot_place() {
    // Holds with the deny-by-default stub and with the real rule alike.
    let fence = Arc::new(Fence::new(Some(&[(1, 0, 0)]), None).unwrap());
    let doc = r#"{"type":"FeatureCollection","features":[{"geometry":null,"properties":{}},{"properties":{}}]}"#;
    let out = filter_geojson(doc.as_bytes(), None, Some(fence)).unwrap();
    assert_eq!(out, br#"{"type":"FeatureCollection","features":[]}"#);
}

/// A small xorshift generator, so that the random tests are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const KEYS: &[&str] = &["name", "secret", "a\"b", "ü", "😀", "properties", "features", "geometry", "x y", "\n", "\\"];

fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::{json, Value};
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64 / 1024),
        3 => json!((rng.next() % 100_000) as f64 / 7.0),
        4 => Value::String(["", "x", "\"}]", "ü😀", "\\u0041", "\u{1}\t"][rng.below(6)].to_string()),
        5 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => random_object(rng, depth + 1),
    }
}

fn random_object(rng: &mut Rng, depth: usize) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for _ in 0..rng.below(6) {
        map.insert(KEYS[rng.below(KEYS.len())].to_string(), random_value(rng, depth));
    }
    serde_json::Value::Object(map)
}

fn random_feature(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    let mut feature = serde_json::Map::new();
    feature.insert("type".into(), json!("Feature"));
    feature.insert("id".into(), json!(rng.below(1000)));
    let x = rng.below(40) as f64 - 10.0;
    let geometry = match rng.below(4) {
        0 => serde_json::Value::Null,
        _ => json!({"type": "Point", "coordinates": [x, 1.25]}),
    };
    feature.insert("geometry".into(), geometry);
    let properties = if rng.below(8) == 0 { serde_json::Value::Null } else { random_object(rng, 0) };
    feature.insert("properties".into(), properties);
    if rng.below(3) == 0 {
        feature.insert("links".into(), json!([{"properties": {"secret": 1}}]));
    }
    serde_json::Value::Object(feature)
}

/// What the filter should produce, computed on the parsed document.
fn reference(mut doc: serde_json::Value, allowed: &[&str], fence: bool) -> serde_json::Value {
    fn trim(properties: &mut serde_json::Value, allowed: &[&str]) {
        if let Some(map) = properties.as_object_mut() {
            map.retain(|k, _| allowed.contains(&k.as_str()));
        }
    }
    fn admitted(feature: &serde_json::Value) -> bool {
        feature["geometry"]["coordinates"][0].as_f64().is_some_and(|x| x < 10.0)
    }
    if let Some(properties) = doc.get_mut("properties") {
        trim(properties, allowed);
    }
    let mut kept = None;
    if let Some(features) = doc.get_mut("features").and_then(|f| f.as_array_mut()) {
        if fence {
            features.retain(admitted);
            kept = Some(features.len());
        }
        for feature in features {
            if let Some(properties) = feature.get_mut("properties") {
                trim(properties, allowed);
            }
        }
    }
    if let (Some(kept), Some(root)) = (kept, doc.as_object_mut()) {
        if root.remove("numberReturned").is_some() {
            root.insert("numberReturned".into(), kept.into());
        }
    }
    doc
}

#[test]
fn matches_a_reference_filter_on_random_documents() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let allowed = ["name", "😀", "properties", "x y"];
    for round in 0..1000 {
        let features: Vec<serde_json::Value> = (0..rng.below(6)).map(|_| random_feature(&mut rng)).collect();
        let doc = if rng.below(4) == 0 && !features.is_empty() {
            features[0].clone()
        } else {
            serde_json::json!({"type": "FeatureCollection", "features": features, "numberReturned": features.len()})
        };
        let mut text =
            if rng.below(2) == 0 { serde_json::to_string(&doc) } else { serde_json::to_string_pretty(&doc) }.unwrap();
        if rng.below(2) == 0 {
            text = text.replace("\"name\"", "\"n\\u0061me\"").replace("\"properties\"", "\"propert\\u0069es\"");
        }
        let is_feature = doc.get("features").is_none();
        for fence in [false, true] {
            let mut filter = if fence { fenced(names(&allowed)) } else { GeoJsonFilter::new(names(&allowed), None) };
            let mut out = Vec::new();
            let mut rest = text.as_bytes();
            let mut result = Ok(());
            while !rest.is_empty() && result.is_ok() {
                let take = (1 + rng.below(64)).min(rest.len());
                result = filter.push(&rest[..take], &mut out);
                rest = &rest[take..];
            }
            let result = result.and_then(|()| filter.finish(&mut out));
            if fence && is_feature && !doc["geometry"]["coordinates"][0].as_f64().is_some_and(|x| x < 10.0) {
                assert!(matches!(result, Err(FilterError::FeatureOutsideFence)), "round {round}: {result:?}");
                continue;
            }
            result.unwrap_or_else(|e| panic!("round {round}: {e}\n{text}"));
            let got: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("round {round}: {e}"));
            // Parsed from the text, so that floats read the same way on both sides.
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(got, reference(parsed, &allowed, fence), "round {round} fence {fence}\n{text}");
        }
    }
}

// Links: every `href` outside feature properties is rewritten to the gateway.

const UPSTREAM: &str = "http://127.0.0.1:5000/oapi";
const PUBLIC: &str = "https://maps.example.org/ogc/api/obs";

/// The gateway's link mapper, keeping every link (what it drops is tested on its own:
/// `links_the_gateway_does_not_serve_are_dropped_from_links_arrays`).
struct KeepAll(crate::ogc::capabilities::LinkMap);

impl LinkRewrite for KeepAll {
    fn rewrite(&self, href: &str) -> Option<String> {
        LinkRewrite::rewrite(&self.0, href)
    }
    fn leaks(&self, href: &str) -> bool {
        self.0.leaks(href)
    }
}

fn link_map(token: Option<&str>) -> Arc<KeepAll> {
    Arc::new(KeepAll(crate::ogc::capabilities::LinkMap::new(UPSTREAM, PUBLIC, token).expect("valid urls")))
}

/// Regression (#13.1): items pages advertised their HTML and JSON-LD alternates, which
/// the gateway answers 406. Under any filter, in any chunking, they are dropped.
#[test]
fn links_the_gateway_does_not_serve_are_dropped_from_links_arrays() {
    let doc = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"a":1},"links":[{"rel":"alternate","type":"text/html","href":"http://127.0.0.1:5000/oapi/collections/obs/items/1?f=html"},{"rel":"self","href":"http://127.0.0.1:5000/oapi/collections/obs/items/1?f=json"}]}],
      "links" : [ {"rel":"self","type":"application/geo+json","href":"http://127.0.0.1:5000/oapi/collections/obs/items?f=json"},
        {"rel":"alternate","type":"application/ld+json","href":"http://127.0.0.1:5000/oapi/collections/obs/items?f=jsonld"},
        {"rel":"alternate","type":"text/html","href":"http://127.0.0.1:5000/oapi/collections/obs/items?f=html"},
        {"rel":"processes","href":"http://127.0.0.1:5000/oapi/processes"},
        {"rel":"license","type":"text/html","href":"https://creativecommons.org/licenses/by/4.0/"},
        {"rel":"collection","type":"application/json","href":"http://127.0.0.1:5000/oapi/collections/obs"} ],
      "numberMatched": 1}"#;
    let map = || Arc::new(crate::ogc::capabilities::LinkMap::new(UPSTREAM, PUBLIC, None).expect("valid urls"));
    let makers: [Box<dyn Fn() -> GeoJsonFilter>; 3] = [
        Box::new(move || GeoJsonFilter::new(None, None).with_links(map())),
        Box::new(move || GeoJsonFilter::new(names(&["a"]), None).with_links(map())),
        Box::new(move || fenced(names(&["a"])).with_links(map())),
    ];
    for make in makers {
        let out = run(make(), doc.as_bytes()).expect("filters");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let rels: Vec<&str> =
            value["links"].as_array().expect("links").iter().map(|l| l["rel"].as_str().expect("rel")).collect();
        assert_eq!(rels, ["self", "license", "collection"], "{}", String::from_utf8_lossy(&out));
        let feature_links = value["features"][0]["links"].as_array().expect("feature links");
        assert_eq!(feature_links.len(), 1, "{}", String::from_utf8_lossy(&out));
        assert_split_invariant(doc.as_bytes(), &make);
    }
}

fn linked(allowed: Option<Arc<[String]>>, token: Option<&str>) -> GeoJsonFilter {
    GeoJsonFilter::new(allowed, None).with_links(link_map(token))
}

fn run_text(filter: GeoJsonFilter, doc: &str) -> Result<String, FilterError> {
    let out = run(filter, doc.as_bytes())?;
    let text = String::from_utf8(out).expect("utf-8 output");
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("output is not JSON: {e}: {text}"));
    Ok(text)
}

/// An OGC API Features items page as pygeoapi writes it (upstream base `/oapi`).
const ITEMS_PAGE: &str = r#"{
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "id": 7, "geometry": {"type": "Point", "coordinates": [1.5, 2]},
         "properties": {"name": "a", "secret": 1, "href": "http://127.0.0.1:5000/oapi/data/7"},
         "links": [{"href": "http://127.0.0.1:5000/oapi/collections/obs/items/7?f=json", "rel": "self"}]},
        {"type": "Feature", "id": 8, "geometry": {"type": "Point", "coordinates": [20, 2]},
         "properties": {"name": "b", "secret": 2},
         "links": [{"rel": "self", "href": "http://127.0.0.1:5000/oapi/collections/obs/items/8?f=json"}]}
    ],
    "links": [
        {"type": "application/geo+json", "rel": "self", "title": "This document as GeoJSON",
         "href": "http://127.0.0.1:5000/oapi/collections/obs/items?f=json&offset=10"},
        {"rel": "next", "href": "http://127.0.0.1:5000/oapi/collections/obs/items?offset=20&limit=10&token=tg_old"},
        {"rel": "prev", "href": "http://127.0.0.1:5000/oapi/collections/obs/items?offset=0&limit=10"},
        {"rel": "collection", "href": "http://127.0.0.1:5000/oapi/collections/obs"},
        {"rel": "license", "href": "https://creativecommons.org/licenses/by/4.0/"}
    ],
    "numberMatched": 40,
    "numberReturned": 2
}"#;

/// What every link of [`ITEMS_PAGE`] becomes; the rest stays byte for byte.
fn items_page_rewritten(token: &str) -> String {
    let amp = if token.is_empty() { String::new() } else { format!("&{token}") };
    let q = if token.is_empty() { String::new() } else { format!("?{token}") };
    ITEMS_PAGE
        .replace(
            "http://127.0.0.1:5000/oapi/collections/obs/items/7?f=json\"",
            &format!("{PUBLIC}/collections/obs/items/7?f=json{amp}\""),
        )
        .replace(
            "http://127.0.0.1:5000/oapi/collections/obs/items/8?f=json\"",
            &format!("{PUBLIC}/collections/obs/items/8?f=json{amp}\""),
        )
        .replace(
            "http://127.0.0.1:5000/oapi/collections/obs/items?f=json&offset=10\"",
            &format!("{PUBLIC}/collections/obs/items?f=json&offset=10{amp}\""),
        )
        .replace(
            "http://127.0.0.1:5000/oapi/collections/obs/items?offset=20&limit=10&token=tg_old\"",
            &format!("{PUBLIC}/collections/obs/items?offset=20&limit=10{amp}\""),
        )
        .replace(
            "http://127.0.0.1:5000/oapi/collections/obs/items?offset=0&limit=10\"",
            &format!("{PUBLIC}/collections/obs/items?offset=0&limit=10{amp}\""),
        )
        .replace("http://127.0.0.1:5000/oapi/collections/obs\"", &format!("{PUBLIC}/collections/obs{q}\""))
}

#[test]
fn top_level_and_feature_links_point_at_the_gateway() {
    let out = run_text(linked(None, None), ITEMS_PAGE).unwrap();
    assert_eq!(out, items_page_rewritten(""));
    // The `href` property of feature 7 is data: it names the upstream and stays.
    assert!(out.contains(r#""href": "http://127.0.0.1:5000/oapi/data/7""#), "{out}");
    assert_eq!(out.matches("127.0.0.1").count(), 1, "{out}");
}

#[test]
fn the_query_token_is_appended_and_an_echoed_one_dropped() {
    let out = run_text(linked(None, Some("tg_new")), ITEMS_PAGE).unwrap();
    assert_eq!(out, items_page_rewritten("token=tg_new"));
    assert!(!out.contains("tg_old"), "{out}");
    assert!(out.contains("https://creativecommons.org/licenses/by/4.0/\""), "foreign links get no token: {out}");
}

#[test]
fn href_members_inside_properties_are_data() {
    let doc = r#"{"type":"Feature","properties":{"href":"http://127.0.0.1:5000/oapi/x","links":[{"href":"http://127.0.0.1:5000/oapi/y"}],"n":{"href":"http://127.0.0.1:5000/oapi/z"}},"geometry":null}"#;
    assert_eq!(run_text(linked(None, None), doc).unwrap(), doc);
    assert_eq!(run_text(linked(names(&["href", "links", "n"]), None), doc).unwrap(), doc);
    assert_eq!(
        run_text(linked(names(&["n"]), None), doc).unwrap(),
        r#"{"type":"Feature","properties":{"n":{"href":"http://127.0.0.1:5000/oapi/z"}},"geometry":null}"#
    );
    // A root-level `properties` of a collection is feature data as well.
    let doc = r#"{"properties":{"href":"http://127.0.0.1:5000/oapi/x"},"features":[],"links":[{"href":"http://127.0.0.1:5000/oapi"}]}"#;
    assert_eq!(
        run_text(linked(None, None), doc).unwrap(),
        r#"{"properties":{"href":"http://127.0.0.1:5000/oapi/x"},"features":[],"links":[{"href":"https://maps.example.org/ogc/api/obs"}]}"#
    );
}

#[test]
fn escaped_link_targets_are_read_unescaped_and_written_plainly() {
    let cases = [
        (r#""http:\/\/127.0.0.1:5000\/oapi\/collections?f=json""#, format!(r#""{PUBLIC}/collections?f=json""#)),
        (r#""\u0068ttp://127.0.0.1:5000/oapi""#, format!(r#""{PUBLIC}""#)),
        (r##""http://127.0.0.1:5000/oapi/a%20b?q=\"x\"#f\u0001""##, format!(r##""{PUBLIC}/a%20b?q=\"x\"#f\u0001""##)),
        (r#""http://127.0.0.1:5000/oapi/\u00e9\ud83d\ude00""#, format!(r#""{PUBLIC}/é😀""#)),
        (r#""http://127.0.0.1:5000/oapi/\ud800x""#, format!(r#""{PUBLIC}/�x""#)),
    ];
    for (href, expected) in cases {
        for key in ["href", r"hr\u0065f"] {
            let doc = format!(r#"{{"links":[{{"{key}":{href},"rel":"self"}}],"features":[]}}"#);
            assert_eq!(
                run_text(linked(None, None), &doc).unwrap(),
                format!(r#"{{"links":[{{"{key}":{expected},"rel":"self"}}],"features":[]}}"#),
                "{doc}"
            );
        }
    }
}

#[test]
fn foreign_and_relative_link_targets_pass_byte_for_byte() {
    let doc = r#"{"type":"FeatureCollection","features":[],"links":[
        {"href": "https:\/\/schemas.opengis.net\/ogcapi\/features", "rel": "conformance"},
        {"href": "http://127.0.0.1:5001/oapi/x", "rel": "other port"},
        {"href": "http://evil.127.0.0.1:5000/oapi/x"},
        {"href": "../items?offset=10\u0026f=json", "rel": "next"},
        {"href": "", "rel": "empty"},
        {"href": null}, {"href": 5}, {"href": ["http://127.0.0.1:5000/oapi/in/an/array"]},
        {"href": {"href": "http://127.0.0.1:5000/oapi/nested"}}
    ]}"#;
    // A string inside an array under `href` is no link target; only the nested
    // link object's own `href` is.
    let expected = doc.replace(r#""http://127.0.0.1:5000/oapi/nested""#, &format!(r#""{PUBLIC}/nested""#));
    assert_eq!(run(linked(None, None), doc.as_bytes()).unwrap(), expected.as_bytes());
}

/// Decision 81: a link that does not read as one JSON value keeps no place in the answer
/// (a lone surrogate anywhere in it, two `rel` members: readers disagree on what it says,
/// and under a fence it could be a page link); the others stay.
#[test]
fn links_that_do_not_read_as_one_value_are_dropped() {
    for odd in [
        r#"{"href": "\ud800", "rel": "self"}"#,
        r#"{"href": "/x", "rel": "next", "title": "\ud800"}"#,
        r#"{"rel": "license", "rel": "next", "href": "/y"}"#,
        r#"{"href": "/a", "href": "/b", "rel": "self"}"#,
    ] {
        let doc = format!(r#"{{"links":[{odd},{{"href":"/keep","rel":"self"}}],"features":[]}}"#);
        assert_eq!(
            run_text(linked(None, None), &doc).unwrap(),
            r#"{"links":[{"href":"/keep","rel":"self"}],"features":[]}"#,
            "{odd}"
        );
    }
}

#[test]
fn links_outside_links_arrays_are_rewritten_too() {
    let doc = r#"{"href":"http://127.0.0.1:5000/oapi/a","type":"Feature","geometry":null,"href":"x","foreign":{"deep":[{"href":"http://127.0.0.1:5000/oapi/b"}]},"properties":{}}"#;
    assert_eq!(
        run_text(linked(None, None), doc).unwrap(),
        format!(
            r#"{{"href":"{PUBLIC}/a","type":"Feature","geometry":null,"href":"x","foreign":{{"deep":[{{"href":"{PUBLIC}/b"}}]}},"properties":{{}}}}"#
        )
    );
}

#[test]
fn an_unreachable_template_points_at_the_public_base() {
    // A template on the upstream host but outside the upstream base: no gateway URL
    // reaches it. The link stays (its `rel` was already sent) and names the gateway.
    let doc = r#"{"features":[],"links":[{"rel":"tiles","templated":true,"href":"http://127.0.0.1:5000/tiles/{z}/{x}/{y}?f=mvt"}]}"#;
    assert_eq!(
        run_text(linked(None, Some("t1")), doc).unwrap(),
        format!(r#"{{"features":[],"links":[{{"rel":"tiles","templated":true,"href":"{PUBLIC}?f=mvt&token=t1"}}]}}"#)
    );
    // A plain URL outside the base maps to the public base with its query, too.
    let doc = r#"{"features":[],"links":[{"href":"http://127.0.0.1:5000/other?a=1"}]}"#;
    assert_eq!(
        run_text(linked(None, None), doc).unwrap(),
        format!(r#"{{"features":[],"links":[{{"href":"{PUBLIC}?a=1"}}]}}"#)
    );
}

#[test]
fn a_link_that_still_names_the_upstream_abandons_the_response() {
    // Percent-encoded inside a foreign URL: not rewritten, so refused.
    let doc = r#"{"features":[],"links":[{"href":"https://other.org/p?u=http%3A%2F%2F127.0.0.1%3A5000%2Foapi"}]}"#;
    let err = run(linked(None, None), doc.as_bytes()).unwrap_err();
    assert!(matches!(err, FilterError::UpstreamLink { offset: 32 }), "{err}");
    // Written plainly inside a foreign URL, it is rewritten in place.
    let doc = r#"{"features":[],"links":[{"href":"https://other.org/p?u=http://127.0.0.1:5000/oapi/x"}]}"#;
    assert_eq!(
        run_text(linked(None, None), doc).unwrap(),
        format!(r#"{{"features":[],"links":[{{"href":"https://other.org/p?u={PUBLIC}/x"}}]}}"#)
    );

    /// A rewriter that gets it wrong: the guard still holds.
    struct Broken;
    impl LinkRewrite for Broken {
        fn rewrite(&self, href: &str) -> Option<String> {
            Some(href.replace("oapi", "v2"))
        }
        fn leaks(&self, href: &str) -> bool {
            href.contains("//127.0.0.1:5000")
        }
    }
    let doc = r#"{"features":[],"links":[{"href":"http://127.0.0.1:5000/oapi"}]}"#;
    let mut f = GeoJsonFilter::new(None, None).with_links(Arc::new(Broken));
    let mut out = Vec::new();
    assert!(matches!(f.push(doc.as_bytes(), &mut out), Err(FilterError::UpstreamLink { .. })));
    assert!(!String::from_utf8_lossy(&out).contains("127.0.0.1"), "nothing of the link was sent");
    assert!(matches!(f.finish(&mut out), Err(FilterError::Poisoned)));
}

#[test]
fn a_link_longer_than_the_limit_is_refused_and_memory_stays_bounded() {
    let mut f = linked(None, None);
    let mut out = Vec::new();
    f.push(br#"{"links":[{"href":"http://127.0.0.1:5000/oapi/"#, &mut out).unwrap();
    let pad = vec![b'a'; 4096];
    let mut result = Ok(());
    for _ in 0..(MAX_HREF_BYTES / pad.len() + 1) {
        result = f.push(&pad, &mut out);
        if result.is_err() {
            break;
        }
        assert!(f.href.len() <= MAX_HREF_BYTES);
    }
    assert!(matches!(result, Err(FilterError::LinkTooLong { offset: 18, .. })), "{result:?}");
    // The same length inside feature properties is data and streams.
    let mut f = linked(None, None);
    let mut out = Vec::new();
    f.push(br#"{"type":"Feature","properties":{"href":""#, &mut out).unwrap();
    for _ in 0..(MAX_HREF_BYTES / pad.len() + 1) {
        out.clear();
        f.push(&pad, &mut out).unwrap();
        assert_eq!(out, pad);
    }
}

#[test]
fn any_split_of_a_page_with_links_gives_the_same_output() {
    let doc = ITEMS_PAGE.replace(
        "http://127.0.0.1:5000/oapi/collections/obs\"",
        r#"http:\/\/127.0.0.1:5000\/oapi\/collections\/obs\u00e9""#,
    );
    assert_split_invariant(doc.as_bytes(), || linked(None, Some("tg")));
    assert_split_invariant(doc.as_bytes(), || linked(names(&["name"]), None));
    assert_split_invariant(doc.as_bytes(), || fenced(names(&["name"])).with_links(link_map(Some("tg"))));
    assert_split_invariant(TRICKY.as_bytes(), || linked(names(&["name"]), None));
    let whole = run(linked(None, Some("tg")), doc.as_bytes()).unwrap();
    assert!(!String::from_utf8(whole).unwrap().contains("127.0.0.1:5000/oapi/coll"));
}

#[test]
fn links_combine_with_the_property_fence_and_the_geometry_fence() {
    // Root members before `features` are held with the root under a fence (a
    // GeoJSON 2008 linked `crs`); a member outside the allow-list is dropped.
    let doc = format!(
        r#"{{"crs":{{"href":"{UPSTREAM}/collections/obs","rel":"up"}},"collection":{{"href":"{UPSTREAM}/x"}},{}"#,
        &ITEMS_PAGE.trim_start()[1..]
    );
    let out = run_text(fenced(names(&["name"])).with_links(link_map(Some("tg"))), &doc).unwrap();
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["crs"]["href"], format!("{PUBLIC}/collections/obs?token=tg"));
    assert!(value.get("collection").is_none(), "{out}");
    let features = value["features"].as_array().unwrap();
    assert_eq!(features.len(), 1, "feature 8 is east of the fence: {out}");
    assert_eq!(features[0]["properties"], serde_json::json!({"name": "a"}));
    assert_eq!(features[0]["links"][0]["href"], format!("{PUBLIC}/collections/obs/items/7?f=json&token=tg"));
    assert_eq!(value["links"][1]["href"], format!("{PUBLIC}/collections/obs/items?offset=20&limit=10&token=tg"));
    assert!(!out.contains("127.0.0.1"), "{out}");

    // A single feature (`/items/{id}`), inside and outside the fence.
    let single = r#"{"type":"Feature","id":7,"links":[{"href":"http://127.0.0.1:5000/oapi/collections/obs/items/7"}],"properties":{"secret":1,"name":"a"},"geometry":{"type":"Point","coordinates":[1,1]}}"#;
    assert_eq!(
        run_text(fenced(names(&["name"])).with_links(link_map(None)), single).unwrap(),
        format!(
            r#"{{"type":"Feature","id":7,"links":[{{"href":"{PUBLIC}/collections/obs/items/7"}}],"properties":{{"name":"a"}},"geometry":{{"type":"Point","coordinates":[1,1]}}}}"#
        )
    );
    let outside = single.replace("[1,1]", "[50,1]");
    assert!(matches!(
        run(fenced(None).with_links(link_map(None)), outside.as_bytes()),
        Err(FilterError::FeatureOutsideFence)
    ));
}

#[test]
fn without_upstream_links_the_document_passes_unchanged() {
    for doc in [COLLECTION, TRICKY] {
        assert_eq!(run(linked(None, None), doc.as_bytes()).unwrap(), doc.as_bytes());
    }
    assert_eq!(
        run(linked(names(&["name"]), None), COLLECTION.as_bytes()).unwrap(),
        filter_geojson(COLLECTION.as_bytes(), names(&["name"]), None).unwrap()
    );
}

/// What the filter should produce with links: `href` strings outside feature
/// properties mapped, computed on the parsed document.
fn reference_links(value: &mut serde_json::Value, links: &crate::ogc::capabilities::LinkMap, data: bool) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), &mut *child) {
                    ("href", Value::String(href)) if !data => {
                        if let Some(url) = LinkRewrite::rewrite(links, href) {
                            *href = url;
                        }
                    }
                    _ => reference_links(child, links, data),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| reference_links(item, links, data)),
        _ => {}
    }
}

#[test]
fn links_match_a_reference_on_random_documents() {
    let links = link_map(Some("tg"));
    let hrefs = [
        "http://127.0.0.1:5000/oapi/collections/obs/items?offset=10",
        "http://127.0.0.1:5000/elsewhere?x=1&token=old",
        "https://other.org/x",
        "relative/path",
        "http://127.0.0.1:5000/oapi/ü\"x",
    ];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let allowed = ["name", "href", "links"];
    for round in 0..500 {
        let link = |rng: &mut Rng| serde_json::json!({"href": hrefs[rng.below(hrefs.len())], "rel": "x"});
        let features: Vec<serde_json::Value> = (0..rng.below(5))
            .map(|_| {
                let mut f = random_feature(&mut rng);
                f["links"] = serde_json::json!([link(&mut rng), link(&mut rng)]);
                if rng.below(2) == 0 {
                    f["properties"] = serde_json::json!({"href": hrefs[0], "links": [link(&mut rng)], "name": 1});
                }
                f
            })
            .collect();
        let doc = serde_json::json!({"type": "FeatureCollection", "links": [link(&mut rng), link(&mut rng)], "features": features});
        let mut text = serde_json::to_string(&doc).unwrap();
        if rng.below(2) == 0 {
            text = text.replace('/', "\\/");
        }
        for fence in [false, true] {
            let filter = if fence { fenced(names(&allowed)) } else { GeoJsonFilter::new(names(&allowed), None) };
            let mut filter = filter.with_links(links.clone());
            let mut out = Vec::new();
            let mut rest = text.as_bytes();
            while !rest.is_empty() {
                let take = (1 + rng.below(64)).min(rest.len());
                filter.push(&rest[..take], &mut out).unwrap_or_else(|e| panic!("round {round}: {e}\n{text}"));
                rest = &rest[take..];
            }
            filter.finish(&mut out).unwrap();
            let got: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut expected = reference(parsed, &allowed, fence);
            if let Some(features) = expected["features"].as_array_mut() {
                for feature in features {
                    let properties = feature.as_object_mut().and_then(|f| f.remove("properties"));
                    reference_links(feature, &links.0, false);
                    if let Some(properties) = properties {
                        feature["properties"] = properties;
                    }
                }
            }
            reference_links(&mut expected["links"], &links.0, false);
            assert_eq!(got, expected, "round {round} fence {fence}\n{text}");
        }
    }
}

/// #12: a property fence does not stop at `properties`. Whatever else a feature (or a
/// single-Feature root) holds — a server's foreign members, JSON-FG `place`/`time`, a
/// collection nested in a feature — is dropped under any fence, however it is split.
#[test]
fn under_any_fence_features_keep_only_the_members_the_filter_reads() {
    let doc = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","id":"p.1","geometry_name":"the_geom","secret_note":"s1",
       "geometry":{"type":"Point","coordinates":[1,1]},"place":{"type":"Point","coordinates":[50,50]},
       "time":{"instant":"2020"},"properties":{"name":"a","secret_note":"s2"},"bbox":[1,1,1,1],
       "features":[{"type":"Feature","properties":{"secret_note":"s3"},"geometry":{"type":"Point","coordinates":[1,1]}}],
       "links":[{"href":"https://example.org/x","rel":"self"}]}],
      "ext":{"secret_note":"s4"}}"#;
    let expected = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","id":"p.1","geometry":{"type":"Point","coordinates":[1,1]},"properties":{"name":"a"},"bbox":[1,1,1,1],"links":[{"href":"https://example.org/x","rel":"self"}]}]}"#;
    assert_eq!(filter(doc, &["name"]), expected);
    assert_split_invariant(doc.as_bytes(), || GeoJsonFilter::new(names(&["name"]), None));
    // Under a geometry filter alone too: the feature inside keeps only what was read.
    let out = run_fenced(doc, None).unwrap();
    assert_eq!(out.matches("secret_note").count(), 1, "{out}");
    assert!(!out.contains("s1") && !out.contains("s3") && !out.contains("s4") && !out.contains("50"), "{out}");
    assert!(out.contains(r#""secret_note":"s2""#), "properties are not filtered without a property fence: {out}");
    assert_split_invariant(doc.as_bytes(), || fenced(None));
    // A single Feature root: the same members.
    let single =
        r#"{"type":"Feature","id":1,"secret_note":"s1","properties":{"name":"a"},"geometry":null,"extra":[1]}"#;
    assert_eq!(filter(single, &["name"]), r#"{"type":"Feature","id":1,"properties":{"name":"a"},"geometry":null}"#);
    // Without any fence the document passes byte for byte.
    let open = GeoJsonFilter::new(None, None);
    assert_eq!(open.filter_all(doc.as_bytes()).unwrap(), doc.as_bytes());
}
