//! Token extraction from headers and the query (`token/extract.rs`): never panics, and a
//! token never comes back from somewhere it was not: a token reported as from a header
//! is in a header (as written, or inside a Basic credential's password), one reported
//! from the query is in the decoded query, and with query tokens off none comes from
//! the query.
//!
//! Input: lines `name: value` (headers) and at most one `?query` line.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use tilegate::fuzzing::{self, ExtractFailure};

fuzz_target!(|data: &[u8]| {
    let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
    let mut query = None;
    for line in data.split(|&b| b == b'\n') {
        if let Some(q) = line.strip_prefix(b"?") {
            let Ok(q) = std::str::from_utf8(q) else { return };
            query = Some(q);
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let value = &line[colon + 1..];
            headers.push((&line[..colon], value.strip_prefix(b" ").unwrap_or(value)));
        }
    }
    // Where a token could honestly come from.
    let mut from_headers: Vec<String> = Vec::new();
    for (_, value) in &headers {
        let value = String::from_utf8_lossy(value).into_owned();
        if let Some((_, credentials)) = value.trim().split_once(' ') {
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials.trim()) {
                from_headers.push(String::from_utf8_lossy(&decoded).into_owned());
            }
        }
        from_headers.push(value);
    }
    let from_query = query.map(|q| percent_decode_str(&q.replace('+', " ")).decode_utf8_lossy().into_owned());
    for allow_query in [false, true] {
        let found = match fuzzing::extract_token(&headers, query, allow_query) {
            Ok(found) => found,
            Err(ExtractFailure::NotAHeader) => return,
            Err(ExtractFailure::Denied(_)) => continue,
        };
        let Some((token, in_query)) = found else { continue };
        assert!(!token.is_empty());
        assert!(allow_query || !in_query, "a query token came back with query tokens off");
        let in_a_header = from_headers.iter().any(|h| h.contains(&token));
        let in_the_query = from_query.as_deref().is_some_and(|q| q.contains(&token));
        if in_query {
            assert!(in_the_query, "token `{token}` reported from the query, which does not hold it");
        } else {
            assert!(in_a_header, "token `{token}` reported from a header, which does not hold it");
        }
    }
});
