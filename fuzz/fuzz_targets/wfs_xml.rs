//! WFS XML POST bodies through the classifier (`text/xml`): no panic, and on `Ok` the
//! body is forwarded in its canonical form, which is its own canonical form and classifies
//! as the body did; a data request names at least one feature type, and the forwarding
//! invariants of `classify` hold.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::{self, Protocol};

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
    let Some(xml) = c.forward_xml.as_deref() else { panic!("{}: an XML POST must forward its canonical form", c.name) };
    assert!(!c.forward_original && c.forward_form.is_none());
    assert_eq!(fuzzing::canonical_xml(xml.as_bytes(), true).as_deref(), Ok(xml), "the canonical form is not idempotent");
    let again = common::RawRequest { body: Some(xml.as_bytes()), ..raw };
    let judged = common::classify_checked(&again).expect("the forwarded body classifies");
    assert_eq!((judged.name, &judged.layers, &judged.properties, judged.bbox), (c.name, &c.layers, &c.properties, c.bbox));
    if c.name != "wfs.GetCapabilities" {
        assert!(!c.layers.is_empty(), "{} names no feature type", c.name);
    }
    // The same body reads the same way twice (no hidden state).
    assert_eq!(common::classify_checked(&raw).as_ref(), Some(&c));
});
