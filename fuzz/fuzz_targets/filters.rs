//! The filter readers (`filter/props.rs`): CQL2 text, CQL2 JSON and FES XML. No panic,
//! no stack overflow and bounded time (libFuzzer's `-timeout`) also on deep nesting: a
//! short input is also read repeated up to ~48 KB, so `((((`, `[[[[` and `<a><a>` reach
//! thousands of levels. On `Ok` the names are non-empty and listed once each.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing;

fn check(text: &str) {
    for (language, result) in
        [("CQL2 text", fuzzing::cql2_text(text)), ("CQL2 JSON", fuzzing::cql2_json(text)), ("FES", fuzzing::fes(text))]
    {
        let Ok(names) = result else { continue };
        for (i, name) in names.iter().enumerate() {
            assert!(!name.is_empty(), "{language}: an empty property name from `{text}`");
            assert!(!names[..i].contains(name), "{language}: `{name}` listed twice");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    if !text.is_empty() && text.len() <= 16 {
        check(&text.repeat(48 * 1024 / text.len()));
    }
});
