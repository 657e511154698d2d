//! The streaming GeoJSON filter (`filter/geojson.rs`) with a property fence
//! (`name`, `kept`), without and with a geometry fence, the input cut into chunks chosen
//! by its first byte. On success the output is valid JSON, no feature's `properties`
//! (nor the root's) holds a hidden key, and the chunking does not change the output (nor
//! whether it succeeds).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tilegate::fuzzing::{self, ALLOWED_PROPERTIES};

fn assert_no_hidden(properties: Option<&Value>, doc: &str) {
    if let Some(Value::Object(props)) = properties {
        for key in props.keys() {
            assert!(ALLOWED_PROPERTIES.contains(&key.as_str()), "hidden property `{key}` passed in {doc}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, document)) = data.split_first() else { return };
    for fenced in [false, true] {
        let whole = fuzzing::geojson_filter(&[document], fenced);
        let pieces = common::chunks(document, u64::from(seed) + 1, 1 + usize::from(seed % 64));
        let chunked = fuzzing::geojson_filter(&pieces, fenced);
        match (&whole, &chunked) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "fenced={fenced}: chunking changed the output"),
            (Err(_), Err(_)) => {}
            _ => panic!("fenced={fenced}: whole {whole:?} but chunked {chunked:?}"),
        }
        let Ok(out) = whole else { continue };
        let shown = String::from_utf8_lossy(&out);
        let value: Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            // RFC 8259 puts no limit on numbers (`22E841`) and the filter copies their
            // spelling; serde_json refuses only after reading a well-formed one. Such an
            // output is not checked for hidden keys (a known gap of this oracle).
            Err(e) if e.to_string().starts_with("number out of range") => continue,
            Err(e) => panic!("fenced={fenced}: the output is not JSON ({e}): {shown}"),
        };
        assert_no_hidden(value.get("properties"), &shown);
        if let Some(Value::Array(features)) = value.get("features") {
            for feature in features {
                assert_no_hidden(feature.get("properties"), &shown);
            }
        }
    }
});
