//! TiTiler's `url=` judgement (`ogc::titiler::canonical_dataset`, `covers`): the
//! canonical form is a fixed point, has no dot or empty segment and no character GDAL
//! reads specially, and a covered URL lies on a declared dataset or below a declared
//! prefix on a segment boundary.
//!
//! Input: `DECLARED\nREQUESTED` (e.g. `https://b.example/cogs/\nhttps://B.example/cogs/a.tif`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::{canonical_dataset, covers};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (declared, requested) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(c) = canonical_dataset(requested, false) else { return };
    assert_eq!(canonical_dataset(&c, false).as_deref(), Ok(c.as_str()), "not a fixed point: {requested:?}");
    let path = &c[c.find("://").expect("scheme") + 3..];
    let path = &path[path.find('/').expect("path")..];
    for seg in path[1..].split('/') {
        assert!(!seg.is_empty() && seg != "." && seg != "..", "{c:?} has a dot or empty segment");
    }
    assert!(!c.contains(['?', '#', '%', '+', '!', ' ', '\\']), "{c:?}");
    assert!(!path.to_ascii_lowercase().starts_with("/vsi"), "{c:?}");
    let Ok(d) = canonical_dataset(declared, declared.ends_with('/')) else { return };
    if covers(std::slice::from_ref(&d), &c) {
        assert!(c == d || (d.ends_with('/') && c.starts_with(&d)), "{c:?} covered by {d:?}");
    }
});
