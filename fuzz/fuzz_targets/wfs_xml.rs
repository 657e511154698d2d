//! WFS XML POST bodies through the classifier (`text/xml`): no panic, and on `Ok` the
//! body is forwarded as received, a data request names at least one feature type, and
//! the forwarding invariants of `classify` hold.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::Protocol;

fuzz_target!(|data: &[u8]| {
    let raw = common::RawRequest {
        method: "POST",
        protocol: Protocol::Wfs,
        rest: "",
        query: "",
        content_type: Some("text/xml"),
        accept: None,
        body: Some(data),
    };
    let Some(c) = common::classify_checked(&raw) else { return };
    assert!(c.forward_original, "{}: an XML POST must forward its body unchanged", c.name);
    assert!(c.forward_form.is_none());
    if c.name != "wfs.GetCapabilities" {
        assert!(!c.layers.is_empty(), "{} names no feature type", c.name);
    }
    // The same body reads the same way twice (no hidden state).
    assert_eq!(common::classify_checked(&raw).as_ref(), Some(&c));
});
