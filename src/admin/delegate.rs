//! The delegation rule: a token may only mint tokens narrower than itself.
//!
//! Pure: takes the caller's grant, the paths and the requested access, and says
//! which rule each path breaks. For every requested path the caller must hold at
//! least `share` and at least the requested tier there; the new geofence must lie
//! inside the caller's, the new property fence inside the caller's, and the new
//! expiry be no later than the caller's. An omitted fence under a fenced caller
//! inherits the caller's, so "omitted" can never mean "wider".

use crate::config::PathTable;
use crate::policy::{Grant, Tier};
use crate::spatial::Fence;
use crate::store::AccessSpec;

/// One broken rule, naming the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path_id: String,
    pub message: String,
}

/// What the caller asked for on one path, before inheritance.
#[derive(Debug, Clone)]
pub struct Requested {
    pub path_id: String,
    pub tier: Tier,
    /// `None`: inherit the caller's fence.
    pub fence: Option<Fence>,
    /// `None`: inherit the caller's property fence.
    pub properties: Option<Vec<String>>,
}

/// Checks every requested path and returns the access to store, or every violation.
pub fn narrow(
    caller: &Grant,
    paths: &PathTable,
    requested: &[Requested],
    expires_at: Option<i64>,
) -> Result<(Vec<AccessSpec>, Option<i64>), Vec<Violation>> {
    let mut violations = Vec::new();
    let mut access = Vec::with_capacity(requested.len());
    let expires_at = match (caller.expires_at, expires_at) {
        (Some(limit), None) => Some(limit),
        (Some(limit), Some(asked)) if asked > limit => {
            violations.push(Violation {
                path_id: "*".into(),
                message: "the new token would outlive the calling token; ask for an earlier expiry".into(),
            });
            Some(asked)
        }
        (_, asked) => asked,
    };
    for req in requested {
        let v = |message: String| Violation { path_id: req.path_id.clone(), message };
        let Some(path) = paths.get(&req.path_id) else {
            violations.push(v(format!("`{}` is not a declared path", req.path_id)));
            continue;
        };
        let Some(held) = caller.access_for(path) else {
            violations.push(v(format!("the calling token has no access to `{}`", req.path_id)));
            continue;
        };
        if held.tier < Tier::Share {
            violations.push(v(format!(
                "sharing `{}` needs tier `share` or higher; the calling token has `{}`",
                req.path_id, held.tier
            )));
        }
        if req.tier > held.tier {
            violations.push(v(format!(
                "tier `{}` on `{}` is above the calling token's `{}`",
                req.tier, req.path_id, held.tier
            )));
        }
        let fence = match &req.fence {
            None => (*held.fence).clone(),
            Some(f) if held.fence.contains_fence(f) => f.clone(),
            Some(_) => {
                violations.push(v(format!(
                    "the geoFence on `{}` is not inside the calling token's (every tile inside a caller tile, maxZoom no higher)",
                    req.path_id
                )));
                continue;
            }
        };
        let properties = match (&held.properties, &req.properties) {
            (None, asked) => asked.clone(),
            (Some(mine), None) => Some(mine.to_vec()),
            (Some(mine), Some(asked)) => {
                if let Some(extra) = asked.iter().find(|p| !mine.contains(p)) {
                    violations.push(v(format!(
                        "property `{extra}` on `{}` is outside the calling token's propertyFence",
                        req.path_id
                    )));
                    continue;
                }
                Some(asked.clone())
            }
        };
        access.push(AccessSpec { path_id: req.path_id.clone(), tier: req.tier, fence, properties });
    }
    if violations.is_empty() {
        Ok((access, expires_at))
    } else {
        Err(violations)
    }
}
