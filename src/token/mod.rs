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
