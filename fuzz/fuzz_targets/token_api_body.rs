//! The token API create body parser and validator (`admin/body.rs`): never panics; a
//! body refused as malformed is not strict JSON (or repeats a member); a refused body
//! lists at least one problem; an accepted one has a 1–128 character
//! description, grants at least one declared path, each once, any expiry in the future
//! and at most ten years away, and property fences without empty or repeated names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::{self, CreateFailure, DECLARED_PATHS, MAX_VALID_FOR, NOW};

fuzz_target!(|data: &[u8]| {
    let body = match fuzzing::parse_create(data) {
        Ok(body) => body,
        Err(CreateFailure::Invalid(problems)) => {
            assert!(problems > 0, "a body refused as invalid lists no problem");
            return;
        }
        Err(CreateFailure::Malformed(_)) => {
            // Not JSON, or JSON with a repeated member name (refused at any depth, since
            // parsers differ on which of the two wins).
            assert!(tilegate::json::parse_strict(data).is_err(), "strict JSON refused as not JSON");
            return;
        }
    };
    let chars = body.description.chars().count();
    assert!((1..=128).contains(&chars), "description of {chars} characters accepted");
    assert!(!body.path_ids.is_empty(), "a token granting no path accepted");
    for (i, id) in body.path_ids.iter().enumerate() {
        assert!(DECLARED_PATHS.contains(&id.as_str()), "undeclared path `{id}` accepted");
        assert!(!body.path_ids[..i].contains(id), "path `{id}` granted twice");
    }
    if let Some(at) = body.expires_at {
        assert!(at > NOW && at <= NOW + MAX_VALID_FOR, "expiry {at} accepted at {NOW}");
    }
    for names in body.property_fences.iter().flatten() {
        for (i, name) in names.iter().enumerate() {
            assert!(!name.is_empty() && !names[..i].contains(name), "property fence {names:?} accepted");
        }
    }
});
