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
