//! `route::normalize` + `route::route`: a normalized path has no `.`, `..` or empty
//! segment (but a trailing slash), decodes no `%2F`/`%5C`/`%00` into a separator or NUL,
//! normalizing it again changes nothing, and routing never panics.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::{self, Route};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(normal) = fuzzing::normalize(raw) else { return };
    assert!(normal.starts_with('/'), "`{raw}` normalized to `{normal}`, not absolute");
    let inner = normal.strip_prefix('/').unwrap_or(&normal);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty() {
        for segment in inner.split('/') {
            assert!(!segment.is_empty(), "`{raw}` normalized to `{normal}` with an empty segment");
            assert!(segment != "." && segment != "..", "`{raw}` normalized to `{normal}` with a dot segment");
        }
    }
    assert!(!normal.contains('\\') && !normal.contains('\0'), "`{raw}` normalized to `{normal}`");
    assert!(
        normal.matches('/').count() <= raw.matches('/').count(),
        "`{raw}` normalized to `{normal}`: an escape was decoded into a separator"
    );
    for escape in ["%2F", "%5C", "%00", "%2E"] {
        // Left encoded is fine only if the raw path had no such escape (it is refused).
        assert!(!normal.to_ascii_uppercase().contains(escape), "`{raw}` normalized to `{normal}` keeps {escape}");
    }
    assert_eq!(fuzzing::normalize(&normal).as_deref(), Ok(normal.as_str()), "normalizing `{raw}` twice changes it");
    match fuzzing::route(&normal) {
        Ok(Route::Ogc { path_id, rest, .. }) => {
            assert!(!path_id.is_empty() && !path_id.contains('/'));
            assert!(rest.is_empty() || rest.starts_with('/'), "OGC rest `{rest}` of `{normal}`");
            assert!(common::no_dot_segments(rest));
        }
        Ok(Route::Path { path_id, rest }) => {
            assert!(!path_id.is_empty() && !path_id.contains('/'));
            assert!(common::no_dot_segments(rest));
        }
        Ok(_) | Err(_) => {}
    }
});
