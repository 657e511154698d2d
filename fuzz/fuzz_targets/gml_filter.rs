//! The streaming GML filter (`filter/gml.rs`) with a property fence (`name`, `kept`),
//! without and with a geometry fence, the input cut into chunks chosen by its first
//! byte. On success the chunking did not change the output (nor whether it succeeds),
//! and filtering the output again changes nothing: the second pass reads it through the
//! hardened reader (so it is well-formed GML the filter understands) and would remove
//! any hidden property or outside feature that had passed.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, document)) = data.split_first() else { return };
    for fenced in [false, true] {
        let whole = fuzzing::gml_filter(&[document], fenced);
        let pieces = common::chunks(document, u64::from(seed) + 1, 1 + usize::from(seed % 64));
        let chunked = fuzzing::gml_filter(&pieces, fenced);
        match (&whole, &chunked) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "fenced={fenced}: chunking changed the output"),
            (Err(_), Err(_)) => {}
            _ => panic!("fenced={fenced}: whole {whole:?} but chunked {chunked:?}"),
        }
        let Ok(out) = whole else { continue };
        let again = fuzzing::gml_filter(&[&out], fenced);
        let shown = String::from_utf8_lossy(&out);
        assert_eq!(again.as_deref(), Ok(&out[..]), "fenced={fenced}: filtering the output again changed it: {shown}");
    }
});
