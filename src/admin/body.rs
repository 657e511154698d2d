//! Reading a token API create request: JSON → a checked request, or every problem
//! at once with its location (`{"loc": ["body", "accessList", 0, "access",
//! "accessTier"], "msg": …, "type": …}`), in the shape FastAPI clients expect.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::delegate::Requested;
use crate::paths::{PathKind, PathTable};
use crate::policy::origin::MAX_ALLOWED_ORIGINS;
use crate::policy::{OriginPattern, Scope, Tier};
use crate::spatial::{Fence, FenceError, TileCoord, MAX_FENCE_TILES, MAX_FENCE_ZOOM};

/// The longest validity a token may be given: ten years.
pub const MAX_VALID_FOR: i64 = 10 * 365 * 24 * 3600;

/// One validation problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub loc: Vec<Value>,
    pub msg: String,
    pub kind: &'static str,
}

impl Problem {
    pub fn to_json(&self) -> Value {
        json!({ "loc": self.loc, "msg": self.msg, "type": self.kind })
    }
}

/// A create request that passed validation (delegation is checked after).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub requested: Vec<Requested>,
    pub description: String,
    pub scope: Scope,
    /// Unix seconds; `None` = no expiry asked for.
    pub expires_at: Option<i64>,
    /// `allowedOrigins`, normalised and without duplicates; `None` = any origin
    /// (under a creator with a list, delegation refuses that).
    pub allowed_origins: Option<Vec<OriginPattern>>,
}

/// Why a body was not accepted.
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON at all (400).
    Malformed(String),
    /// JSON, but invalid (422), every problem listed.
    Invalid(Vec<Problem>),
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn push(&mut self, loc: &[Value], msg: impl Into<String>, kind: &'static str) {
        let mut full = vec![json!("body")];
        full.extend_from_slice(loc);
        self.problems.push(Problem { loc: full, msg: msg.into(), kind });
    }

    fn extra_fields(&mut self, loc: &[Value], obj: &Map<String, Value>, allowed: &[&str]) {
        for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let mut l = loc.to_vec();
            l.push(json!(key));
            self.push(&l, format!("unknown field; valid: {}", allowed.join(", ")), "extra_forbidden");
        }
    }
}

fn loc(parts: &[Value], more: impl Into<Value>) -> Vec<Value> {
    let mut l = parts.to_vec();
    l.push(more.into());
    l
}

/// Parses and validates a create request body.
pub fn parse_create(body: &[u8], paths: &PathTable, now: i64) -> Result<CreateRequest, BodyError> {
    let value: Value = crate::json::parse_strict(body)
        .map_err(|e| BodyError::Malformed(format!("the body is not valid JSON: {e}")))?;
    check_create(&value, paths, now)
}

/// Validates a create request already parsed as JSON: the one set of rules for
/// the token API and `tilegate token create` (see [`super::cli`]).
pub fn check_create(value: &Value, paths: &PathTable, now: i64) -> Result<CreateRequest, BodyError> {
    let mut c = Checker { problems: Vec::new() };
    let Some(obj) = value.as_object() else {
        c.push(&[], "the body must be a JSON object", "type_error.dict");
        return Err(BodyError::Invalid(c.problems));
    };
    c.extra_fields(&[], obj, &["accessList", "description", "validFor", "expiresAt", "scope", "allowedOrigins"]);

    let description = match obj.get("description") {
        None => {
            c.push(&[json!("description")], "field required", "missing");
            String::new()
        }
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if !(1..=128).contains(&n) {
                c.push(
                    &[json!("description")],
                    format!("must be 1 to 128 characters; got {n}"),
                    "value_error.str_length",
                );
            } else if s.chars().any(crate::admin::unprintable) {
                // Attacker round 9: `\r\u001b[2K` wiped the operator's `token list` row.
                c.push(
                    &[json!("description")],
                    "must not hold control or bidirectional-override characters (line breaks, escapes, U+202E…)",
                    "value_error.str_chars",
                );
            }
            s.clone()
        }
        Some(_) => {
            c.push(&[json!("description")], "must be a string", "type_error.str");
            String::new()
        }
    };

    let scope = match obj.get("scope") {
        None => Scope::All,
        Some(Value::String(s)) => Scope::parse(s).unwrap_or_else(|| {
            c.push(&[json!("scope")], format!("`{s}` is not a scope; valid: all, ogc"), "value_error.enum");
            Scope::All
        }),
        Some(_) => {
            c.push(&[json!("scope")], "must be a string: all or ogc", "type_error.str");
            Scope::All
        }
    };

    let expires_at = match (obj.get("validFor"), obj.get("expiresAt")) {
        (Some(_), Some(_)) => {
            c.push(&[json!("expiresAt")], "give either validFor or expiresAt, not both", "value_error.conflict");
            None
        }
        (Some(v), None) => match v.as_i64() {
            Some(s) if (1..=MAX_VALID_FOR).contains(&s) && v.is_i64() => Some(now + s),
            _ => {
                c.push(
                    &[json!("validFor")],
                    format!("must be a whole number of seconds from 1 to {MAX_VALID_FOR} (ten years)"),
                    "value_error.number",
                );
                None
            }
        },
        (None, Some(v)) => {
            let parsed = v
                .as_str()
                .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok());
            match parsed.map(|t| t.unix_timestamp()) {
                Some(t) if t > now && t <= now + MAX_VALID_FOR => Some(t),
                Some(_) => {
                    c.push(
                        &[json!("expiresAt")],
                        "must be in the future and at most ten years away",
                        "value_error.datetime",
                    );
                    None
                }
                None => {
                    c.push(
                        &[json!("expiresAt")],
                        "must be an RFC 3339 date-time such as 2027-01-31T12:00:00Z",
                        "type_error.datetime",
                    );
                    None
                }
            }
        }
        (None, None) => None,
    };

    let mut requested = Vec::new();
    match obj.get("accessList") {
        None => c.push(&[json!("accessList")], "field required", "missing"),
        Some(Value::Array(list)) if list.is_empty() => {
            c.push(&[json!("accessList")], "must grant at least one path", "value_error.list.min_items")
        }
        Some(Value::Array(list)) => {
            let mut seen = HashSet::new();
            for (i, entry) in list.iter().enumerate() {
                let at = [json!("accessList"), json!(i)];
                if let Some(r) = access_entry(&mut c, &at, entry, paths) {
                    if !seen.insert(r.path_id.clone()) {
                        c.push(
                            &loc(&at, "pathId"),
                            format!("`{}` appears twice in accessList", r.path_id),
                            "value_error.duplicate",
                        );
                    } else {
                        requested.push(r);
                    }
                }
            }
        }
        Some(_) => c.push(&[json!("accessList")], "must be a list", "type_error.list"),
    }

    let allowed_origins = allowed_origins(&mut c, obj.get("allowedOrigins"));

    if c.problems.is_empty() {
        Ok(CreateRequest { requested, description, scope, expires_at, allowed_origins })
    } else {
        Err(BodyError::Invalid(c.problems))
    }
}

/// `allowedOrigins`: absent or null = any origin; else 1 to
/// [`MAX_ALLOWED_ORIGINS`] origins, each checked by [`OriginPattern::parse`].
fn allowed_origins(c: &mut Checker, value: Option<&Value>) -> Option<Vec<OriginPattern>> {
    let at = [json!("allowedOrigins")];
    let list = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(list)) => list,
        Some(_) => {
            c.push(
                &at,
                "must be a list of origins such as https://app.example.org, or null for any origin",
                "type_error.list",
            );
            return None;
        }
    };
    if list.is_empty() {
        c.push(
            &at,
            "must list at least one origin; leave it out (or null) for a token usable from anywhere",
            "value_error.list.min_items",
        );
        return None;
    }
    if list.len() > MAX_ALLOWED_ORIGINS {
        c.push(
            &at,
            format!(
                "{} origins; at most {MAX_ALLOWED_ORIGINS} are allowed (use a wildcard such as https://*.example.org)",
                list.len()
            ),
            "value_error.list.max_items",
        );
        return None;
    }
    let mut out: Vec<OriginPattern> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match item.as_str().map(OriginPattern::parse) {
            Some(Ok(p)) => {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Some(Err(e)) => c.push(&loc(&at, i), e.to_string(), "value_error.origin"),
            None => c.push(&loc(&at, i), "must be a string such as https://app.example.org", "type_error.str"),
        }
    }
    Some(out)
}

fn access_entry(c: &mut Checker, at: &[Value], entry: &Value, paths: &PathTable) -> Option<Requested> {
    let Some(obj) = entry.as_object() else {
        c.push(at, "must be an object with pathId and access", "type_error.dict");
        return None;
    };
    c.extra_fields(at, obj, &["pathId", "access"]);
    let path = match obj.get("pathId") {
        None => {
            c.push(&loc(at, "pathId"), "field required", "missing");
            None
        }
        Some(Value::String(id)) => match paths.get(id) {
            Some(p) => Some(p.clone()),
            None => {
                c.push(&loc(at, "pathId"), format!("`{id}` is not a declared path"), "value_error.path");
                None
            }
        },
        Some(_) => {
            c.push(&loc(at, "pathId"), "must be a string", "type_error.str");
            None
        }
    };
    let access_at = loc(at, "access");
    let Some(access) = obj.get("access") else {
        c.push(&access_at, "field required", "missing");
        return None;
    };
    let Some(access) = access.as_object() else {
        c.push(&access_at, "must be an object with accessTier", "type_error.dict");
        return None;
    };
    c.extra_fields(&access_at, access, &["accessTier", "geoFence", "propertyFence"]);
    let tier = match access.get("accessTier") {
        None => {
            c.push(&loc(&access_at, "accessTier"), "field required", "missing");
            None
        }
        Some(Value::String(t)) => match t.parse::<Tier>() {
            Ok(t) => Some(t),
            Err(e) => {
                c.push(&loc(&access_at, "accessTier"), e.to_string(), "value_error.enum");
                None
            }
        },
        Some(_) => {
            c.push(&loc(&access_at, "accessTier"), "must be a string", "type_error.str");
            None
        }
    };
    let fence = match access.get("geoFence") {
        None | Some(Value::Null) => None,
        Some(v) => geofence(c, &loc(&access_at, "geoFence"), v),
    };
    let fence_ok = !matches!(access.get("geoFence"), Some(v) if !v.is_null()) || fence.is_some();
    let properties = match access.get("propertyFence") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let at = loc(&access_at, "propertyFence");
            let mut names = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 256 => {
                        if !names.iter().any(|n: &String| n == s) {
                            names.push(s.to_owned());
                        }
                    }
                    _ => c.push(&loc(&at, j), "must be a non-empty property name", "type_error.str"),
                }
            }
            if let Some(path) = &path {
                if path.kind != PathKind::Vector {
                    c.push(
                        &at,
                        format!(
                            "`{}` is a {} path; propertyFence applies to vector layers",
                            path.id,
                            path.kind.as_str()
                        ),
                        "value_error.path_kind",
                    );
                } else if let Some(known) = &path.properties {
                    for n in names.iter().filter(|n| !known.contains(n)) {
                        c.push(
                            &at,
                            format!("`{n}` is not a property of `{}`; known: {}", path.id, known.join(", ")),
                            "value_error.property",
                        );
                    }
                }
            }
            Some(names)
        }
        Some(_) => {
            c.push(&loc(&access_at, "propertyFence"), "must be a list of property names", "type_error.list");
            None
        }
    };
    Some(Requested {
        path_id: path?.id.to_string(),
        tier: tier?,
        fence: if fence_ok { fence } else { return None },
        properties,
    })
}

fn geofence(c: &mut Checker, at: &[Value], v: &Value) -> Option<Fence> {
    let Some(obj) = v.as_object() else {
        c.push(at, "must be an object with tiles and/or maxZoom", "type_error.dict");
        return None;
    };
    c.extra_fields(at, obj, &["tiles", "maxZoom"]);
    let before = c.problems.len();
    let max_zoom = match obj.get("maxZoom") {
        None | Some(Value::Null) => None,
        Some(z) => match z.as_u64().filter(|z| *z <= u64::from(MAX_FENCE_ZOOM)) {
            Some(z) => Some(z as u32),
            None => {
                c.push(
                    &loc(at, "maxZoom"),
                    format!("must be a whole number from 0 to {MAX_FENCE_ZOOM}"),
                    "value_error.number",
                );
                None
            }
        },
    };
    let tiles: Option<Vec<(u32, u64, u64)>> = match obj.get("tiles") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if list.is_empty() => {
            c.push(&loc(at, "tiles"), "must not be empty; omit tiles for no tile limit", "value_error.list.min_items");
            None
        }
        Some(Value::Array(list)) if list.len() > MAX_FENCE_TILES => {
            c.push(
                &loc(at, "tiles"),
                format!("{} tiles; at most {MAX_FENCE_TILES} are allowed per path", list.len()),
                "value_error.list.max_items",
            );
            None
        }
        Some(Value::Array(list)) => {
            let at = loc(at, "tiles");
            let mut out = Vec::with_capacity(list.len());
            for (i, t) in list.iter().enumerate() {
                if let Some(t) = fence_tile(c, &loc(&at, i), t, max_zoom) {
                    out.push(t);
                }
            }
            Some(out)
        }
        Some(_) => {
            c.push(&loc(at, "tiles"), "must be a list of {tileX, tileY, zoom}", "type_error.list");
            None
        }
    };
    if c.problems.len() > before {
        return None;
    }
    // Per-tile problems were reported above; what remains is normalization.
    Fence::new(tiles.as_deref(), max_zoom)
        .map_err(|e| {
            let (l, kind) = match &e {
                FenceError::TooManyTiles(_) | FenceError::EmptyTiles => (loc(at, "tiles"), "value_error.list"),
                FenceError::MaxZoomTooHigh(_) => (loc(at, "maxZoom"), "value_error.number"),
                _ => (loc(at, "tiles"), "value_error.tile"),
            };
            c.push(&l, e.to_string(), kind);
        })
        .ok()
}

fn fence_tile(c: &mut Checker, at: &[Value], t: &Value, max_zoom: Option<u32>) -> Option<(u32, u64, u64)> {
    let Some(obj) = t.as_object() else {
        c.push(at, "must be an object {tileX, tileY, zoom}", "type_error.dict");
        return None;
    };
    c.extra_fields(at, obj, &["tileX", "tileY", "zoom"]);
    let mut num = |name: &str| match obj.get(name).map(|v| v.as_u64()) {
        Some(Some(n)) => Some(n),
        Some(None) => {
            c.push(&loc(at, name), "must be a whole number ≥ 0", "type_error.integer");
            None
        }
        None => {
            c.push(&loc(at, name), "field required", "missing");
            None
        }
    };
    let (x, y, zoom) = (num("tileX"), num("tileY"), num("zoom"));
    let (x, y, zoom) = (x?, y?, zoom?);
    if zoom > u64::from(MAX_FENCE_ZOOM) {
        c.push(
            &loc(at, "zoom"),
            format!("zoom {zoom} is above the fence maximum of {MAX_FENCE_ZOOM}"),
            "value_error.number",
        );
        return None;
    }
    if let Some(max) = max_zoom {
        if zoom > u64::from(max) {
            c.push(&loc(at, "zoom"), format!("zoom {zoom} is above maxZoom {max}"), "value_error.number");
            return None;
        }
    }
    if TileCoord::new(zoom as u32, x, y).is_err() {
        c.push(
            at,
            format!("tile {x}/{y} does not exist at zoom {zoom}; tileX and tileY must be below {}", 1u64 << zoom),
            "value_error.tile",
        );
        return None;
    }
    Some((zoom as u32, x, y))
}
