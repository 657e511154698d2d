//! Helpers shared by the fuzz targets (included with `mod common;`).
#![allow(dead_code)]

use tilegate::fuzzing::{self, KvpPair, Protocol};

/// True when no `/`-separated segment of `path` is `.` or `..`.
pub fn no_dot_segments(path: &str) -> bool {
    path.split('/').all(|s| s != "." && s != "..")
}

/// The KVP pairs of `query` as (name, value), or a panic naming the query: a forwarded
/// query must always re-parse.
pub fn reparse(query: &str, protocol: Protocol) -> Vec<KvpPair> {
    match fuzzing::kvp(query, protocol) {
        Ok((pairs, _)) => pairs,
        Err(e) => panic!("forwarded query `{query}` does not re-parse: {e}"),
    }
}

/// A small deterministic generator for chunk boundaries.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0 | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `data` cut into pieces of 1..=max bytes chosen by `seed`.
pub fn chunks(data: &[u8], seed: u64, max: usize) -> Vec<&[u8]> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = 1 + (rng.next() as usize % max.max(1));
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// One request as the `classify`-family seeds write it:
///
/// ```text
/// METHOD PROTO REST[?QUERY]
/// content-type: …        (optional header lines)
/// accept: …
///
/// BODY                   (everything after the first blank line)
/// ```
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub protocol: Protocol,
    pub rest: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub body: Option<&'a [u8]>,
}

pub fn protocol_named(name: &str) -> Option<Protocol> {
    fuzzing::PROTOCOLS.into_iter().find(|p| p.as_str() == name)
}

impl<'a> RawRequest<'a> {
    pub fn read(data: &'a [u8]) -> Option<RawRequest<'a>> {
        let (head, body) = match find(data, b"\n\n") {
            Some(i) => (&data[..i], Some(&data[i + 2..])),
            None => (data, None),
        };
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.lines();
        let mut first = lines.next()?.splitn(3, ' ');
        let method = first.next()?;
        let protocol = protocol_named(first.next()?)?;
        let target = first.next().unwrap_or("");
        let (rest, query) = target.split_once('?').unwrap_or((target, ""));
        let mut req = RawRequest { method, protocol, rest, query, content_type: None, accept: None, body };
        for line in lines {
            match line.split_once(':') {
                Some((n, v)) if n.eq_ignore_ascii_case("content-type") => req.content_type = Some(v.trim()),
                Some((n, v)) if n.eq_ignore_ascii_case("accept") => req.accept = Some(v.trim()),
                _ => {}
            }
        }
        Some(req)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Classifies `raw` the way the gateway does: normalize and route the whole path, strip
/// the token from the query, classify. Checks the forwarding invariants on `Ok`:
/// the forwarded path has no dot segment, and the forwarded query (or form) re-parses
/// and holds only pairs the classifier was given (plus the `SERVICE` it adds).
pub fn classify_checked(raw: &RawRequest<'_>) -> Option<fuzzing::Classified> {
    let full = format!("/ogc/{}/{}{}", raw.protocol.as_str(), fuzzing::PATH_ID, raw.rest);
    let normal = fuzzing::normalize(&full).ok()?;
    let prefix_len = format!("/ogc/{}/{}", raw.protocol.as_str(), fuzzing::PATH_ID).len();
    let rest = match fuzzing::route(&normal) {
        Ok(fuzzing::Route::Ogc { path_id, rest, .. }) if path_id == fuzzing::PATH_ID => rest.to_owned(),
        Ok(fuzzing::Route::Xyz { .. }) => normal.get(prefix_len..)?.to_owned(),
        _ => return None,
    };
    let query = fuzzing::strip_token_param(raw.query);
    let req = fuzzing::Request {
        protocol: raw.protocol,
        method: raw.method,
        rest: &rest,
        query: &query,
        content_type: raw.content_type,
        accept: raw.accept,
        body: raw.body,
    };
    let c = fuzzing::classify(&req).ok()?;
    assert!(no_dot_segments(&c.forward_path), "forwarded path `{}` has a dot segment", c.forward_path);
    assert!(c.forward_path.is_empty() || c.forward_path == rest, "forwarded path `{}` is not `{rest}`", c.forward_path);
    // What the classifier saw: the query's pairs and, for a form, the body's.
    let mut seen: Vec<(String, String)> = Vec::new();
    let dialect = raw.protocol;
    if let Ok((pairs, _)) = fuzzing::kvp(&query, dialect) {
        seen.extend(pairs.into_iter().map(|p| (p.name, p.value)));
    }
    if let Some(body) = raw.body.and_then(|b| std::str::from_utf8(b).ok()) {
        if let Ok((pairs, _)) = fuzzing::kvp(body, dialect) {
            seen.extend(pairs.into_iter().map(|p| (p.name, p.value)));
        }
    }
    let service = raw.protocol.as_str().to_ascii_uppercase();
    let mut forwarded = reparse(&c.forward_query, dialect);
    if let Some(form) = &c.forward_form {
        assert!(c.forward_query.is_empty(), "a form POST also forwards the query `{}`", c.forward_query);
        forwarded.extend(reparse(form, dialect));
    }
    for pair in forwarded {
        let added_service = pair.name == "SERVICE" && pair.value == service;
        // A FES `FILTER` is forwarded in the canonical form that was judged.
        let same = |n: &String, v: &String| {
            *n == pair.name
                && (*v == pair.value
                    || (n.eq_ignore_ascii_case("FILTER")
                        && fuzzing::canonical_filter(v).is_ok_and(|c| c == pair.value)))
        };
        assert!(
            added_service || seen.iter().any(|(n, v)| same(n, v)),
            "{} forwards `{}={}`, which it was not given (query `{query}`)",
            c.name,
            pair.name,
            pair.value
        );
    }
    Some(c)
}
