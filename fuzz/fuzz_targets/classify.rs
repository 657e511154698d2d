//! `ogc::classify_with` for every protocol with any method, path, query, content type
//! and body: no panic; on `Ok` the forwarded path has no dot segment and the forwarded
//! query re-parses and holds no pair the classifier did not see (see `common`).
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(raw) = common::RawRequest::read(data) else { return };
    let _ = common::classify_checked(&raw);
});
