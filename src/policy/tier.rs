//! Access tiers: the ordered ladder of what a token may do on a path.
//!
//! A higher tier includes every lower one, so comparisons are plain `Ord`.
//! This module only names and orders tiers; which operation needs which tier is
//! decided by the classifiers (`route`, `ogc`) that build an [`Operation`](super::Operation).

use std::fmt;
use std::str::FromStr;

/// One rung of the access ladder (DESIGN.md §2), lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Rendered output: tiles, maps, legends, capabilities, collection metadata.
    View,
    /// Raw data: features, feature info, coverages, downloads.
    ViewPlus,
    /// May create tokens for the path, never above its own tier.
    Share,
    /// Writes: WFS-T, feature POST/PUT/PATCH/DELETE, write methods on `/path/…`.
    Edit,
    /// May list and read every token that grants the path.
    FullView,
    /// Structural changes upstream.
    EditPlus,
    /// Everything, including revoking any token that grants the path.
    Admin,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 7] =
        [Tier::View, Tier::ViewPlus, Tier::Share, Tier::Edit, Tier::FullView, Tier::EditPlus, Tier::Admin];

    /// The wire name (`view`, `viewPlus`, …), as in the token API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::View => "view",
            Tier::ViewPlus => "viewPlus",
            Tier::Share => "share",
            Tier::Edit => "edit",
            Tier::FullView => "fullView",
            Tier::EditPlus => "editPlus",
            Tier::Admin => "admin",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a tier name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an access tier; valid: view, viewPlus, share, edit, fullView, editPlus, admin")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    /// Parses the wire name exactly (tiers are case-sensitive, as in Ellipsis Drive).
    ///
    /// ```
    /// use tilegate::policy::Tier;
    /// assert_eq!("viewPlus".parse::<Tier>().unwrap(), Tier::ViewPlus);
    /// assert!("viewplus".parse::<Tier>().is_err());
    /// assert!(Tier::Admin > Tier::Edit);
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownTier(s.to_owned()))
    }
}
