//! The one percent decoder of the OGC layer.
//!
//! Strict where the gateway judges client input (KVP names and values, path segments
//! naming layers, collections, matrix sets and features): a `%` not followed by two hex
//! digits, invalid UTF-8 or a NUL is refused, so that the gateway never judges a value
//! the upstream would decode differently. Lossy only where the gateway reads what an
//! upstream wrote and errs on the safe side with the result (the leak guard looks for
//! upstream URLs in the decoded text; a link segment that does not decode names no
//! covered collection).
//!
//! Must never: pass a malformed escape through to a judgement, or decode twice.

use std::borrow::Cow;

/// Why a value does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("malformed percent-encoding")]
    Escape,
    #[error("not valid UTF-8 once decoded")]
    Utf8,
    #[error("contains a NUL character")]
    Nul,
}

/// Strictly decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in
/// `application/x-www-form-urlencoded` and OGC KVP).
///
/// ```
/// use tilegate::ogc::common::percent::{decode, Malformed};
/// assert_eq!(decode("a%20b+c", true).unwrap(), "a b c");
/// assert_eq!(decode("a+b", false).unwrap(), "a+b");
/// assert_eq!(decode("%zz", false), Err(Malformed::Escape));
/// assert_eq!(decode("%4", false), Err(Malformed::Escape));
/// assert_eq!(decode("%ff", false), Err(Malformed::Utf8));
/// assert_eq!(decode("a%00", false), Err(Malformed::Nul));
/// assert_eq!(decode("a\0b", true), Err(Malformed::Nul));
/// ```
pub fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, Malformed> {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == 0 || (plus_is_space && b == b'+')) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hi, lo) else { return Err(Malformed::Escape) };
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    if out.contains(&0) {
        return Err(Malformed::Nul);
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| Malformed::Utf8)
}

/// Decodes what an upstream wrote, replacing what does not decode (for the leak
/// guard and other checks that err on the safe side with the result).
pub fn decode_lossy(raw: &str, plus_is_space: bool) -> Cow<'_, str> {
    if plus_is_space && raw.contains('+') {
        let spaced = raw.replace('+', " ");
        return Cow::Owned(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned());
    }
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
}

/// Strictly decodes one path segment that names something (a layer, collection,
/// matrix set or feature): it must decode, be non-empty, and hold no `/`, `\` or
/// control character.
///
/// ```
/// use tilegate::ogc::common::percent::decode_name;
/// assert_eq!(decode_name("ne%3Aroads").unwrap(), "ne:roads");
/// assert!(decode_name("a%2Fb").is_err());
/// assert!(decode_name("").is_err());
/// assert!(decode_name("a%0Ab").is_err());
/// ```
pub fn decode_name(segment: &str) -> Result<Cow<'_, str>, Malformed> {
    let decoded = decode(segment, false)?;
    if decoded.is_empty() || decoded.contains(['/', '\\']) || decoded.chars().any(char::is_control) {
        return Err(Malformed::Escape);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_when_there_is_nothing_to_decode() {
        assert!(matches!(decode("plain", true), Ok(Cow::Borrowed("plain"))));
    }

    /// Regression (found by fuzz/classify): a raw NUL with no `%` in the value took the
    /// no-escape fast path and passed, so the forwarded query did not re-parse.
    #[test]
    fn a_raw_nul_is_refused_without_any_escape() {
        assert_eq!(decode("EPSG!\0\0\x006", true), Err(Malformed::Nul));
    }

    #[test]
    fn multibyte_utf8_decodes() {
        assert_eq!(decode("%C3%A9", false).unwrap(), "é");
    }

    #[test]
    fn lossy_decoding_never_fails() {
        assert_eq!(decode_lossy("%ff%41", false), "\u{fffd}A");
        assert_eq!(decode_lossy("a+b", true), "a b");
    }
}
