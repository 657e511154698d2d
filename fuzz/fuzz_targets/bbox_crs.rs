//! The bbox and CRS parsers (`ogc/geo.rs`, `spatial::crs_from_identifier`), reached the
//! way requests reach them: a CRS name and four numbers put into WMS 1.1.1/1.3.0 GetMap,
//! WFS GetFeature, WCS GetCoverage and OGC API items requests. On `Ok` the judged box is
//! finite and ordered (min ≤ max on both axes; only a WGS 84 OGC API `bbox` may cross the
//! antimeridian), and the effective zoom is a number.
//!
//! Input: `CRS\nBBOX` (e.g. `EPSG:4326\n40,-10,50,10`).
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tilegate::fuzzing::{self, Crs, Protocol};

const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b',').remove(b'.').remove(b'-').remove(b':').remove(b'+');

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (crs, bbox) = text.split_once('\n').unwrap_or((text, ""));
    let _ = fuzzing::crs_from_identifier(crs);
    let c = utf8_percent_encode(crs, VALUE).to_string();
    let b = utf8_percent_encode(bbox, VALUE).to_string();
    let n: Vec<String> = bbox.split(',').map(|p| utf8_percent_encode(p, VALUE).to_string()).collect();
    let get = |i: usize| n.get(i).cloned().unwrap_or_default();
    let map = "LAYERS=osm&STYLES=&WIDTH=256&HEIGHT=256&FORMAT=image/png";
    let cases = [
        (Protocol::Wms, String::new(), format!("SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&{map}&SRS={c}&BBOX={b}")),
        (Protocol::Wms, String::new(), format!("SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&{map}&CRS={c}&BBOX={b}")),
        (Protocol::Wfs, String::new(), format!("SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&BBOX={b},{c}")),
        (Protocol::Wfs, String::new(), format!("SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature&TYPENAME=roads&SRSNAME={c}&BBOX={b}")),
        (
            Protocol::Wcs,
            String::new(),
            format!(
                "SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage&COVERAGEID=dem&SUBSETTINGCRS={c}&SUBSET=Long({},{})&SUBSET=Lat({},{})",
                get(0),
                get(2),
                get(1),
                get(3)
            ),
        ),
        (Protocol::Api, "/collections/roads/items".to_owned(), format!("bbox={b}&bbox-crs={c}")),
        (Protocol::Api, "/collections/roads/items".to_owned(), format!("bbox={b}")),
    ];
    for (protocol, rest, query) in cases {
        let raw = common::RawRequest {
            method: "GET",
            protocol,
            rest: &rest,
            query: &query,
            content_type: None,
            accept: None,
            body: None,
        };
        let Some(classified) = common::classify_checked(&raw) else { continue };
        let Some((bbox, zoom)) = classified.bbox else { continue };
        let all = [bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y];
        assert!(all.iter().all(|v| v.is_finite()), "{protocol:?} `{query}`: box {bbox:?} is not finite");
        assert!(bbox.min_y <= bbox.max_y, "{protocol:?} `{query}`: box {bbox:?} has min y above max y");
        let crosses = protocol == Protocol::Api && bbox.crs == Crs::Wgs84;
        assert!(crosses || bbox.min_x <= bbox.max_x, "{protocol:?} `{query}`: box {bbox:?} has min x above max x");
        if let Some(z) = zoom {
            assert!(!z.is_nan(), "{protocol:?} `{query}`: effective zoom is NaN for {bbox:?}");
        }
    }
});
