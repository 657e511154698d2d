//! Each capabilities rewriter (`ogc::capabilities::rewrite_wms/wmts/wfs/wcs/ogcapi_json`),
//! unfenced and fenced, with the upstream the fixtures come from. On success the output
//! re-parses (XML well-formed with matching end tags, or JSON) and none of its texts,
//! attribute values (namespace declarations aside), comments, PIs, CDATA, JSON keys or
//! strings names the upstream `host:port` after `//` — plain or percent-encoded. This is
//! the leak guard's invariant, checked by a separate reading of the output.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::Value;
use tilegate::fuzzing::{self, Capabilities};

/// True when `text` names `authority` after a `//` (userinfo skipped, case-insensitive).
fn names(text: &str, authority: &str) -> bool {
    let check = |t: &str| {
        let lower = t.to_ascii_lowercase();
        lower.match_indices("//").any(|(i, _)| {
            let after = &lower[i + 2..];
            let end = after
                .find(|c: char| {
                    !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | ':' | '@' | '%' | '[' | ']'))
                })
                .unwrap_or(after.len());
            let host = after[..end].rsplit('@').next().unwrap_or("").trim_end_matches('.');
            host == authority
        })
    };
    check(text) || check(&percent_decode_str(text).decode_utf8_lossy())
}

fn leak(kind: Capabilities, what: &str, text: &str, doc: &str) {
    assert!(!names(text, kind.upstream_authority()), "{kind:?}: {what} `{text}` names the upstream in {doc}");
}

fn check_xml(kind: Capabilities, out: &[u8]) {
    let head = String::from_utf8_lossy(&out[..out.len().min(200)]).to_ascii_lowercase();
    let text: Cow<'_, str> = if head.contains("iso-8859-1") {
        Cow::Owned(out.iter().map(|&b| char::from(b)).collect())
    } else {
        match std::str::from_utf8(out.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(out)) {
            Ok(t) => Cow::Borrowed(t),
            Err(e) => panic!("{kind:?}: the output is not UTF-8: {e}"),
        }
    };
    let doc = text.as_ref();
    let mut reader = Reader::from_str(doc);
    let mut pending = String::new();
    let mut depth = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => panic!("{kind:?}: the output does not re-parse at {}: {e}\n{doc}", reader.error_position()),
        };
        if !matches!(event, Event::Text(_) | Event::GeneralRef(_)) && !pending.is_empty() {
            leak(kind, "text", &pending, doc);
            pending.clear();
        }
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
                for attr in e.attributes() {
                    let attr = attr.unwrap_or_else(|err| panic!("{kind:?}: a bad attribute: {err}\n{doc}"));
                    let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    if key == "xmlns" || key.starts_with("xmlns:") {
                        continue;
                    }
                    let value =
                        attr.unescape_value().unwrap_or_else(|err| panic!("{kind:?}: attribute `{key}`: {err}"));
                    leak(kind, "attribute", &value, doc);
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => pending.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match String::from_utf8_lossy(&r).as_ref() {
                        "amp" => "&".to_owned(),
                        "lt" => "<".to_owned(),
                        "gt" => ">".to_owned(),
                        "quot" => "\"".to_owned(),
                        "apos" => "'".to_owned(),
                        other => panic!("{kind:?}: the output uses the undeclared entity `&{other};`\n{doc}"),
                    },
                };
                pending.push_str(&resolved);
            }
            Event::CData(c) => leak(kind, "CDATA", &String::from_utf8_lossy(&c), doc),
            Event::Comment(c) => leak(kind, "comment", &String::from_utf8_lossy(&c), doc),
            Event::PI(p) => leak(kind, "processing instruction", &String::from_utf8_lossy(&p), doc),
            Event::DocType(d) => leak(kind, "DOCTYPE", &String::from_utf8_lossy(&d), doc),
            Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    assert_eq!(depth, 0, "{kind:?}: the output ends inside an element\n{doc}");
}

fn check_json(kind: Capabilities, value: &Value, doc: &str) {
    match value {
        Value::String(s) => leak(kind, "string", s, doc),
        Value::Array(items) => items.iter().for_each(|v| check_json(kind, v, doc)),
        Value::Object(map) => {
            for (k, v) in map {
                leak(kind, "key", k, doc);
                check_json(kind, v, doc);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    for kind in Capabilities::ALL {
        for fenced in [false, true] {
            let Ok(out) = fuzzing::rewrite_capabilities(kind, data, fenced) else { continue };
            if kind == Capabilities::OgcApiJson {
                let doc = String::from_utf8_lossy(&out);
                match serde_json::from_slice::<Value>(&out) {
                    Ok(value) => check_json(kind, &value, &doc),
                    Err(e) => panic!("{kind:?}: the output is not JSON: {e}\n{doc}"),
                }
            } else {
                check_xml(kind, &out);
            }
        }
    }
});
