//! `ogc::Kvp::parse` in every protocol's dialect: on `Ok`, `encode()` re-parses to the
//! same pairs (what is judged is what is forwarded), and no two pairs share a folded
//! name unless the dialect lets that key repeat; two aliases of one key (`SRS`/`CRS`)
//! may both pass only with the same value (then they say one thing).
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use tilegate::fuzzing::{self, Protocol};

const DIALECTS: [Protocol; 5] = [Protocol::Wms, Protocol::Wmts, Protocol::Wfs, Protocol::Wcs, Protocol::Api];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    for protocol in DIALECTS {
        let Ok((pairs, encoded)) = fuzzing::kvp(input, protocol) else { continue };
        let again = common::reparse(&encoded, protocol);
        assert_eq!(pairs, again, "{protocol:?}: `{input}` encodes to `{encoded}`, which reads differently");
        let (_, twice) = fuzzing::kvp(&encoded, protocol).unwrap_or_default();
        assert_eq!(encoded, twice, "{protocol:?}: encoding is not stable");
        for (i, a) in pairs.iter().enumerate() {
            assert_eq!(a.key, a.key.to_ascii_uppercase(), "{protocol:?}: key `{}` is not folded", a.key);
            for b in &pairs[i + 1..] {
                let repeatable = protocol == Protocol::Wcs && a.key == "SUBSET";
                assert!(
                    !a.name.eq_ignore_ascii_case(&b.name) || repeatable,
                    "{protocol:?}: `{}` twice passes in `{input}`",
                    a.name
                );
                let twins = a.value == b.value && !a.name.eq_ignore_ascii_case(&b.name);
                assert!(
                    a.key != b.key || repeatable || twins,
                    "{protocol:?}: `{}` and `{}` disagree and both pass in `{input}`",
                    a.name,
                    b.name
                );
            }
        }
    }
});
