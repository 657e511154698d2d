//! `Grant`: what one token holds, as loaded from the store and cached.
//!
//! A grant is data, never a decision: expiry and every check are evaluated per
//! request by [`decide`](super::decide).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;

use crate::paths::PathConfig;
use crate::spatial::Fence;

use super::{OriginPattern, Tier};

/// A token's public id (a UUID). Safe to log; the secret is never in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub uuid::Uuid);

impl TokenId {
    pub fn new_random() -> Self {
        TokenId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TokenId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(TokenId)
    }
}

/// Which endpoints a token may use at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only `/ogc/…`.
    Ogc,
    /// Everything its tiers allow, including the token API.
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ogc => "ogc",
            Scope::All => "all",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "ogc" => Some(Scope::Ogc),
            "all" => Some(Scope::All),
            _ => None,
        }
    }
}

/// Access to one path (and, by inheritance, everything under it).
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub path_id: String,
    pub tier: Tier,
    /// The tile geofence; [`Fence::is_unlimited`] when absent.
    pub fence: Arc<Fence>,
    /// Visible properties; `None` = all, empty = geometry only.
    pub properties: Option<Arc<[String]>>,
}

/// Everything one token holds.
#[derive(Clone, Debug)]
pub struct Grant {
    pub token_id: TokenId,
    pub scope: Scope,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
    pub access: AccessList,
    /// `allowedOrigins`: the web origins the token may be used from; `None` = any
    /// (checked by [`origin::check`](super::origin::check) before anything else).
    pub allowed_origins: Option<Arc<[OriginPattern]>>,
}

/// A token's access entries: a slice behind an `Arc`, so the grant cache can let
/// every cached grant with the same list share one copy (100k cached tokens of a
/// few kinds then cost ~80 bytes each instead of ~200). Reads like a slice
/// (`iter`, indexing, `for a in &list`); built with `collect()` or from a `Vec`;
/// writes (`list[0].tier = …`) copy the list first if it is shared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessList(Arc<[Access]>);

impl AccessList {
    /// True when both lists are the same allocation.
    pub fn ptr_eq(&self, other: &AccessList) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for AccessList {
    type Target = [Access];
    fn deref(&self) -> &[Access] {
        &self.0
    }
}

impl DerefMut for AccessList {
    fn deref_mut(&mut self) -> &mut [Access] {
        Arc::make_mut(&mut self.0)
    }
}

impl FromIterator<Access> for AccessList {
    fn from_iter<I: IntoIterator<Item = Access>>(iter: I) -> Self {
        AccessList(iter.into_iter().collect())
    }
}

impl From<Vec<Access>> for AccessList {
    fn from(v: Vec<Access>) -> Self {
        AccessList(v.into())
    }
}

impl<'a> IntoIterator for &'a AccessList {
    type Item = &'a Access;
    type IntoIter = std::slice::Iter<'a, Access>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Grant {
    /// The access that applies to `path`: the entry on the path itself or, failing
    /// that, on its nearest ancestor folder. The most specific entry wins, so a
    /// narrower grant on a layer is never widened by a broader one on its folder.
    pub fn access_for(&self, path: &PathConfig) -> Option<&Access> {
        path.lineage().find_map(|id| self.access.iter().find(|a| a.path_id == id))
    }
}
