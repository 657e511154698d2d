//! The delegation rule: a token may only mint tokens narrower than itself.
//!
//! Pure: takes the caller's grant, the paths and the requested access, and says
//! which rule each path breaks. For every requested path the caller must hold at
//! least `share` and at least the requested tier there; the new geofence must lie
//! inside the caller's, the new property fence inside the caller's, and the new
//! expiry be no later than the caller's. An omitted fence under a fenced caller
//! inherits the caller's, so "omitted" can never mean "wider".

use crate::paths::PathTable;
use crate::policy::{origin, Grant, OriginPattern, Tier};
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

/// The requested fence with each part it omits (tiles, maxZoom) taken from the
/// caller's fence: an omitted limit never means "no limit" under a limited caller.
fn inherit(child: &Fence, caller: &Fence) -> Result<Fence, crate::spatial::FenceError> {
    let (child_tiles, child_zoom) = child.to_parts();
    let (caller_tiles, caller_zoom) = caller.to_parts();
    let tiles: Option<Vec<(u32, u64, u64)>> =
        child_tiles.or(caller_tiles).map(|t| t.into_iter().map(|(z, x, y)| (z, u64::from(x), u64::from(y))).collect());
    Fence::new(tiles.as_deref(), child_zoom.or(caller_zoom))
}

/// The `allowedOrigins` to store: the caller's list bounds the new token's (a
/// caller without one: anything; with one: a non-empty list, each entry within
/// some entry of the caller's, see [`OriginPattern::within`]). `Err` names the
/// entry (or the missing list).
pub fn origins(caller: &Grant, asked: Option<Vec<OriginPattern>>) -> Result<Option<Vec<OriginPattern>>, String> {
    origin::narrow(caller.allowed_origins.as_deref(), asked)
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
        let fence = match req.fence.as_ref().map(|f| inherit(f, &held.fence)) {
            None => (*held.fence).clone(),
            Some(Ok(f)) if held.fence.contains_fence(&f) => f,
            Some(Err(e)) => {
                violations.push(v(format!(
                    "with the calling token's limits filled in, the geoFence on `{}` is invalid: {e}",
                    req.path_id
                )));
                continue;
            }
            Some(Ok(_)) => {
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
        // The new entry also reaches every path under this one. Where the caller holds
        // a narrower entry further down, the nearest-entry rule would let the new
        // token skip it, so the new entry must fit inside that one too (unless the
        // request gives that path its own entry, checked on its own).
        for below in &caller.access {
            let under = below.path_id != req.path_id
                && paths.get(&below.path_id).is_some_and(|p| p.lineage.iter().skip(1).any(|a| *a == req.path_id))
                && !requested.iter().any(|r| r.path_id == below.path_id);
            if !under {
                continue;
            }
            let fits = req.tier <= below.tier
                && below.fence.contains_fence(&fence)
                && match (&below.properties, &properties) {
                    (None, _) => true,
                    (Some(mine), Some(asked)) => asked.iter().all(|p| mine.contains(p)),
                    (Some(_), None) => false,
                };
            if !fits {
                violations.push(v(format!(
                    "the calling token's access to `{}` (under `{}`) is narrower than what is asked for `{}`; ask for less, or give `{}` an entry of its own",
                    below.path_id, req.path_id, req.path_id, below.path_id
                )));
            }
        }
        access.push(AccessSpec { path_id: req.path_id.clone(), tier: req.tier, fence, properties });
    }
    if violations.is_empty() {
        Ok((access, expires_at))
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    //! Property test: whatever `narrow` accepts is never wider than the caller on any
    //! (path, tier, tile, zoom, property). Deterministic pseudo-random cases.

    use std::sync::Arc;

    use super::*;
    use crate::paths::{PathConfig, PathId, PathKind};
    use crate::policy::{judge, Access, Extent, Operation, Scope, Surface, TokenId};
    use crate::spatial::TileCoord;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*: small, deterministic, good enough to spread cases.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const PROPS: [&str; 4] = ["a", "b", "c", "d"];

    fn paths() -> PathTable {
        let p = |id: &str, lineage: &[&str], kind| PathConfig {
            lineage: lineage.iter().map(|s| PathId::from(*s)).collect(),
            ..PathConfig::new(id, kind)
        };
        PathTable::new([
            p("world", &["world"], PathKind::Folder),
            p("osm", &["osm", "world"], PathKind::Raster),
            p("places", &["places", "world"], PathKind::Vector),
        ])
    }

    fn random_fence(rng: &mut Rng) -> Fence {
        let tiles: Option<Vec<(u32, u64, u64)>> = (rng.below(3) > 0).then(|| {
            (0..=rng.below(3))
                .map(|_| {
                    let z = rng.below(5) as u32;
                    (z, rng.below(1 << z), rng.below(1 << z))
                })
                .collect()
        });
        let max_zoom = (rng.below(2) == 0).then(|| 4 + rng.below(4) as u32);
        Fence::new(tiles.as_deref(), max_zoom).unwrap_or_default()
    }

    fn random_props(rng: &mut Rng) -> Option<Vec<String>> {
        (rng.below(2) == 0).then(|| PROPS.iter().filter(|_| rng.below(2) == 0).map(|s| (*s).to_owned()).collect())
    }

    fn random_tier(rng: &mut Rng) -> Tier {
        Tier::ALL[rng.below(7) as usize]
    }

    #[test]
    fn a_delegated_grant_is_never_wider_than_its_parent() {
        let paths = paths();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..3000 {
            let ids = ["world", "osm", "places"];
            let caller = Grant {
                token_id: TokenId::new_random(),
                scope: Scope::All,
                expires_at: (rng.below(2) == 0).then(|| 1000 + rng.below(1000) as i64),
                allowed_origins: None,
                access: (0..=rng.below(2))
                    .map(|i| Access {
                        path_id: ids[i as usize].into(),
                        tier: random_tier(&mut rng),
                        fence: Arc::new(random_fence(&mut rng)),
                        properties: random_props(&mut rng).map(Into::into),
                    })
                    .collect(),
            };
            let requested = vec![Requested {
                path_id: ids[rng.below(3) as usize].into(),
                tier: random_tier(&mut rng),
                fence: (rng.below(2) == 0).then(|| random_fence(&mut rng)),
                properties: random_props(&mut rng),
            }];
            let asked_expiry = (rng.below(2) == 0).then(|| 500 + rng.below(2000) as i64);
            let Ok((access, expires_at)) = narrow(&caller, &paths, &requested, asked_expiry) else { continue };
            accepted += 1;
            if let Some(limit) = caller.expires_at {
                assert!(expires_at.is_some_and(|e| e <= limit), "expiry widened");
            }
            let child = Grant {
                token_id: TokenId::new_random(),
                scope: Scope::All,
                expires_at,
                allowed_origins: None,
                access: access
                    .iter()
                    .map(|a| Access {
                        path_id: a.path_id.clone(),
                        tier: a.tier,
                        fence: Arc::new(a.fence.clone()),
                        properties: a.properties.clone().map(Into::into),
                    })
                    .collect(),
            };
            // Probe: every request the child may make, the parent may make too.
            for _ in 0..40 {
                let path = paths.get(["osm", "places"][rng.below(2) as usize]).expect("path");
                let z = rng.below(9) as u32;
                let tile = TileCoord::new(z, rng.below(1 << z), rng.below(1 << z)).expect("tile");
                let mut op = Operation::simple("probe", Surface::Ogc, random_tier(&mut rng), Extent::Tile(tile));
                op.properties = PROPS.iter().filter(|_| rng.below(3) == 0).map(|s| (*s).to_owned()).collect();
                let now = rng.below(1500) as i64;
                if let Ok(permit) = judge(&child, &op, path, now) {
                    assert!(judge(&caller, &op, path, now).is_ok(), "child wider than parent: {op:?} on {}", path.id);
                    let child_props = permit.obligations().properties.clone();
                    if let Some(parent_props) = caller.access_for(path).and_then(|a| a.properties.clone()) {
                        let child_props = child_props.expect("a fenced parent gives a fenced child");
                        assert!(child_props.iter().all(|p| parent_props.contains(p)), "property fence widened");
                    }
                }
            }
        }
        assert!(accepted > 200, "only {accepted} delegations accepted: the generator is too narrow to test much");
    }
}
