//! Token administration: minting tokens (shared by the CLI and the token API).
//!
//! Minting returns the raw secret exactly once, next to the record that holds
//! only its hash. Nothing here logs or stores a secret.

pub mod api;
pub(crate) mod body;
pub mod cli;
pub mod delegate;
pub mod integrate;

use crate::policy::{Scope, TokenId};
use crate::store::{AccessSpec, NewToken};
use crate::token::TokenSecret;

/// Who is minting, for the audit trail.
#[derive(Debug, Clone)]
pub struct Minter {
    /// The creating token; `None` for the CLI (a root token).
    pub creator: Option<TokenId>,
    /// The client address, or `cli`.
    pub client: String,
}

/// A freshly minted token: the secret (show once) and the row to insert.
pub struct Minted {
    pub secret: TokenSecret,
    pub row: NewToken,
}

/// Generates a secret and the store row for it.
pub fn mint(
    prefix: &str,
    description: String,
    scope: Scope,
    created_at: i64,
    expires_at: Option<i64>,
    access: Vec<AccessSpec>,
    minter: Minter,
) -> Result<Minted, getrandom::Error> {
    let secret = TokenSecret::generate(prefix)?;
    let row = NewToken {
        id: TokenId::new_random(),
        hash: secret.hash(),
        display_key: secret.display_key(),
        description,
        scope,
        created_at,
        expires_at,
        creator: minter.creator,
        access,
        // Set by the caller when asked for (`allowedOrigins`); any origin by default.
        allowed_origins: None,
        actor: minter.creator,
        client: minter.client,
    };
    Ok(Minted { secret, row })
}

/// Characters a token description may not hold: controls (line breaks, terminal escape
/// sequences) and the bidirectional overrides and isolates, which reorder what a
/// terminal or a page shows around them.
pub fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` as a terminal line may show it: unprintable characters (see [`unprintable`])
/// written as escapes, so a description stored before they were refused, or any text
/// from the store, cannot move the cursor or rewrite what is printed.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(unprintable) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars().map(|c| if unprintable(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect(),
    )
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn unprintable_characters_are_shown_as_escapes() {
        assert_eq!(printable("partner app é"), "partner app é");
        assert_eq!(printable("\r\u{1b}[2Kx"), "\\u{d}\\u{1b}[2Kx");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert!(!printable("a\nb\tc\u{7f}").chars().any(unprintable));
    }
}
