//! Tokens: the secret format, its hash and display key, and finding the token in
//! a request.
//!
//! A token is `<prefix>_<43 base62 chars of 32 random bytes><6-char base62 CRC32>`.
//! The checksum lets a malformed token be refused without touching the store and
//! lets secret scanners recognise leaked tokens. Only the SHA-256 of the whole
//! token is stored. This module must never log or format a secret.

mod extract;
mod secret;

pub use extract::{extract, strip_token_param, Extracted};
pub use secret::{Malformed, TokenHash, TokenSecret};

/// Replaces anything token-shaped in `text` with `<redacted>`: a run of lower-case
/// letters and digits (a prefix), `_`, and at least 40 ASCII letters and digits. The
/// checksum is not required, so a mistyped or truncated token is hidden too. Error
/// bodies and log lines echo user input (a token pasted into `LAYERS=` or a path
/// segment); they go through this first.
///
/// ```
/// use tilegate::token::redact;
/// let t = "tg_0123456789abcdefghijABCDEFGHIJ0123456789abcdef";
/// assert_eq!(redact(&format!("layer `{t}` is not part of this path")), "layer `<redacted>` is not part of this path");
/// assert_eq!(redact("layer `roads` is fine"), "layer `roads` is fine");
/// assert_eq!(redact("snake_case_words_are_kept"), "snake_case_words_are_kept");
/// assert_eq!(redact(&format!("parameter `FOO_{t}` is not allowed")), "parameter `FOO_<redacted>` is not allowed");
/// ```
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    const MIN_BODY: usize = 40;
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // A candidate starts at a word boundary with a lower-case prefix and `_`.
        // `_` counts as a boundary: `FOO_tg_…` (a token glued to a parameter name).
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if !boundary || !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let prefix_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit()).count();
        let body = bytes.get(prefix_end + 1..).unwrap_or_default();
        let body_len = body.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        if bytes.get(prefix_end) == Some(&b'_') && prefix_end - i <= 16 && body_len >= MIN_BODY {
            let end = prefix_end + 1 + body_len;
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[copied..i]);
            buf.push_str("<redacted>");
            copied = end;
            i = end;
        } else {
            i = prefix_end.max(i + 1);
        }
    }
    match out {
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            std::borrow::Cow::Owned(buf)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
}
