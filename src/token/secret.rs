//! `TokenSecret` and `TokenHash`: generation, format check, hashing, display key.

use std::fmt;

use sha2::{Digest, Sha256};

const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The longest token [`TokenSecret::parse`] accepts: a 16-character prefix, `_`, body, checksum.
const MAX_LEN: usize = 16 + 1 + BODY_LEN + CHECK_LEN;

/// A raw token. `Debug` and `Display` print `<redacted>`; [`TokenSecret::expose`] is
/// the one way to read it, used to show it once at creation and to hash it.
///
/// Held inline (no heap allocation): parsing the token of every request is on the
/// hot path.
#[derive(Clone)]
pub struct TokenSecret(Repr);

#[derive(Clone)]
enum Repr {
    /// INVARIANT: `buf[..len]` is ASCII (so valid UTF-8) and the rest is zero.
    Inline { len: u8, buf: [u8; MAX_LEN] },
    /// Only for a generated token whose prefix is longer than any valid prefix
    /// (config validation refuses those; kept so `generate` never fails on it).
    Heap(Box<str>),
}

impl PartialEq for TokenSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for TokenSecret {}

/// The SHA-256 of a whole token: what the store keeps and the cache is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// Why a string is not a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token is malformed: expected `<prefix>_` and 49 letters or digits with a valid checksum")]
pub struct Malformed;

impl TokenSecret {
    /// A new token from 32 bytes of OS randomness.
    pub fn generate(prefix: &str) -> Result<TokenSecret, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_bytes(prefix, &bytes))
    }

    fn from_bytes(prefix: &str, bytes: &[u8; 32]) -> TokenSecret {
        let mut body = [0u8; BODY_LEN];
        base62_into(bytes, &mut body);
        let check = checksum(&body);
        let len = prefix.len() + 1 + BODY_LEN + CHECK_LEN;
        if len > MAX_LEN || !prefix.is_ascii() {
            // INVARIANT: base62 digits are ASCII.
            let (body, check) =
                (std::str::from_utf8(&body).unwrap_or_default(), std::str::from_utf8(&check).unwrap_or_default());
            return TokenSecret(Repr::Heap(format!("{prefix}_{body}{check}").into_boxed_str()));
        }
        let mut buf = [0u8; MAX_LEN];
        let p = prefix.len();
        buf[..p].copy_from_slice(prefix.as_bytes());
        buf[p] = b'_';
        buf[p + 1..p + 1 + BODY_LEN].copy_from_slice(&body);
        buf[p + 1 + BODY_LEN..len].copy_from_slice(&check);
        TokenSecret(Repr::Inline { len: len as u8, buf })
    }

    /// Checks the format and checksum (no store lookup). Any prefix of 1–16
    /// lowercase letters or digits is accepted, so tokens survive a prefix change.
    ///
    /// ```
    /// use tilegate::token::TokenSecret;
    /// let t = TokenSecret::generate("tg").unwrap();
    /// assert!(TokenSecret::parse(t.expose()).is_ok());
    /// let mut broken = t.expose().to_owned();
    /// let last = broken.pop().unwrap();
    /// broken.push(if last == 'a' { 'b' } else { 'a' });
    /// assert!(TokenSecret::parse(&broken).is_err());
    /// assert!(TokenSecret::parse("hello").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<TokenSecret, Malformed> {
        let (prefix, rest) = s.split_once('_').ok_or(Malformed)?;
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 16
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !prefix_ok || rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Malformed);
        }
        let (body, check) = rest.split_at(BODY_LEN);
        if checksum(body.as_bytes()) != check.as_bytes() {
            return Err(Malformed);
        }
        // The checks above bound the length to MAX_LEN and make it all ASCII.
        let mut buf = [0u8; MAX_LEN];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Ok(TokenSecret(Repr::Inline { len: s.len() as u8, buf }))
    }

    /// The raw token. Call only to show it once or to hash it.
    pub fn expose(&self) -> &str {
        match &self.0 {
            // INVARIANT: the inline bytes are ASCII (see `Repr`).
            Repr::Inline { len, buf } => std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.expose().as_bytes()).into())
    }

    /// A masked form safe to list and log, such as `tg_ab1...xyz9`.
    pub fn display_key(&self) -> String {
        let s = self.expose();
        let (prefix, rest) = s.split_once('_').unwrap_or(("", s));
        format!("{prefix}_{}...{}", &rest[..3.min(rest.len())], &rest[rest.len().saturating_sub(4)..])
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl fmt::Display for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl TokenHash {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// The base62 CRC32 of a token body (the same digits as `base62_into` of its
/// big-endian bytes).
fn checksum(body: &[u8]) -> [u8; CHECK_LEN] {
    let mut v = crc32fast::hash(body);
    let mut out = [0u8; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    out
}

/// Big-endian bytes (at most 32) as a fixed-width base62 number, left-padded with `0`,
/// written into `out` (whose length is the width). No allocation.
fn base62_into(bytes: &[u8], out: &mut [u8]) {
    let mut num = [0u8; 32];
    let num = &mut num[..bytes.len()];
    num.copy_from_slice(bytes);
    for slot in out.iter_mut().rev() {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_prefix_body_and_checksum() {
        let t = TokenSecret::generate("tg").expect("randomness");
        let s = t.expose();
        assert!(s.starts_with("tg_"));
        assert_eq!(s.len(), 3 + 43 + 6);
        assert!(s[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(TokenSecret::parse(s), Ok(t.clone()));
        assert_ne!(TokenSecret::generate("tg").expect("randomness"), t, "two tokens must differ");
    }

    #[test]
    fn the_largest_value_fits_43_base62_digits() {
        let t = TokenSecret::from_bytes("tg", &[0xff; 32]);
        assert_eq!(t.expose().len(), 52);
        let z = TokenSecret::from_bytes("tg", &[0; 32]);
        assert!(z.expose().starts_with(&format!("tg_{}", "0".repeat(43))));
        assert!(TokenSecret::parse(t.expose()).is_ok() && TokenSecret::parse(z.expose()).is_ok());
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let t = TokenSecret::from_bytes("tg", &[7; 32]);
        let s = t.expose();
        for i in 3..s.len() {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'x' { b'y' } else { b'x' };
            let changed = String::from_utf8(b).expect("ascii");
            assert_eq!(TokenSecret::parse(&changed), Err(Malformed), "position {i}");
        }
    }

    #[test]
    fn malformed_shapes_are_refused() {
        let good = TokenSecret::from_bytes("tg", &[1; 32]);
        let body = &good.expose()[3..];
        for bad in [
            "",
            "tg_",
            "tg",
            &format!("TG_{body}"),
            &format!("_{body}"),
            &format!("tg-{body}"),
            &format!("tg_{body}x"),
            &format!("tg_{}", &body[1..]),
            &format!("tg_{}!", &body[1..]),
        ] {
            assert_eq!(TokenSecret::parse(bad), Err(Malformed), "{bad}");
        }
        assert!(TokenSecret::parse(&format!("acme_{body}")).is_ok(), "other prefixes stay valid");
    }

    #[test]
    fn the_checksum_is_the_base62_of_the_crc_bytes() {
        for body in [&b""[..], b"a", b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg", &[0xff; 43]] {
            let mut want = [0u8; CHECK_LEN];
            base62_into(&crc32fast::hash(body).to_be_bytes(), &mut want);
            assert_eq!(checksum(body), want);
        }
    }

    #[test]
    fn a_long_generated_prefix_still_round_trips() {
        let t = TokenSecret::from_bytes("averyveryverylongprefix", &[3; 32]);
        assert!(t.expose().starts_with("averyveryverylongprefix_"));
        assert_eq!(t.expose().len(), 23 + 1 + 49);
        assert_eq!(t.clone(), t);
    }

    #[test]
    fn secrets_never_print() {
        let t = TokenSecret::from_bytes("tg", &[9; 32]);
        assert_eq!(format!("{t}"), "<redacted>");
        assert_eq!(format!("{t:?}"), "TokenSecret(<redacted>)");
        let key = t.display_key();
        assert!(key.starts_with("tg_") && key.contains("...") && key.len() == 3 + 3 + 3 + 4, "{key}");
        assert!(!format!("{:?}", t.hash()).contains(&t.expose()[3..10]));
    }
}
