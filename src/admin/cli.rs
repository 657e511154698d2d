//! `tilegate token create`: the command-line flags become the token API's create
//! body (`POST /account/security/accessToken`) and go through the API's own
//! validation ([`body::check_create`]) and delegation rule ([`delegate::narrow`])
//! as an all-powerful root caller, so every rule the API enforces holds for the
//! CLI too. Problems come back with the API's message text, each prefixed by the
//! flag it is about (`--tile `5/40/3`: tile 40/3 does not exist at zoom 5; …`).
//!
//! Pure: no store, no randomness, no printing (`main` mints and prints).
//!
//! `tilegate store migrate` ([`store_migrate`]): the flags become a `[store]`
//! table checked like the config's, then the store module copies (no SQL here).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::body::{self, BodyError, Problem};
use super::delegate;
use crate::paths::PathTable;
use crate::policy::{Access, Grant, OriginPattern, Scope, Tier, TokenId};
use crate::spatial::Fence;
use crate::store::AccessSpec;

/// The flags of `token create`, as typed.
#[derive(Debug, Clone, Default)]
pub struct CreateFlags {
    pub paths: Vec<String>,
    pub tiers: Vec<String>,
    pub scope: String,
    pub valid_for: Option<u64>,
    pub expires_at: Option<String>,
    pub max_zoom: Option<u32>,
    pub tiles: Vec<String>,
    pub properties: Vec<String>,
    pub no_properties: bool,
    pub description: String,
    /// `--allowed-origin` (repeatable): the token's `allowedOrigins`; none = any.
    pub allowed_origins: Vec<String>,
}

/// A checked root token request, ready to mint.
#[derive(Debug, Clone)]
pub struct RootToken {
    pub description: String,
    pub scope: Scope,
    pub expires_at: Option<i64>,
    pub access: Vec<AccessSpec>,
    /// Set on the minted row (`Minted::row.allowed_origins`); `None` = any origin.
    pub allowed_origins: Option<Vec<OriginPattern>>,
}

/// Checks the flags with the token API's rules; every problem at once, each
/// naming its flag.
pub fn check_create(flags: &CreateFlags, paths: &PathTable, now: i64) -> Result<RootToken, Vec<String>> {
    let mut problems = Vec::new();
    if flags.paths.len() != flags.tiers.len() {
        problems.push(format!(
            "{} --path but {} --tier; give one --tier after each --path",
            flags.paths.len(),
            flags.tiers.len()
        ));
    }
    // `Z/X/Y` is the CLI's own syntax; the API takes {zoom, tileX, tileY}. `tiles`
    // keeps the text of each parsed tile, so API problems can quote it back.
    let mut tiles = Vec::new();
    for t in &flags.tiles {
        match parse_zxy(t) {
            Some(zxy) => tiles.push((t.as_str(), zxy)),
            None => problems.push(format!("--tile `{t}` is not Z/X/Y with whole numbers, such as 5/16/10")),
        }
    }
    let request_body = request_body(flags, &tiles);
    let checked = match body::check_create(&request_body, paths, now) {
        Ok(r) => Some(r),
        Err(BodyError::Invalid(list)) => {
            problems.extend(list.iter().map(|p| flag_message(p, flags, &tiles, paths)));
            None
        }
        // Only bytes can be malformed; kept for completeness.
        Err(BodyError::Malformed(m)) => {
            problems.push(m);
            None
        }
    };
    let (checked, access, expires_at) = match checked {
        Some(r) if problems.is_empty() => {
            match delegate::narrow(&root_grant(paths), paths, &r.requested, r.expires_at) {
                Ok((access, expires_at)) => (r, access, expires_at),
                Err(violations) => {
                    problems.extend(violations.iter().map(|v| format!("--path `{}`: {}", v.path_id, v.message)));
                    return Err(dedup(problems));
                }
            }
        }
        _ => return Err(dedup(problems)),
    };
    // A root caller has no list, so any list (or none) is within it.
    let allowed_origins = checked.allowed_origins;
    Ok(RootToken { description: checked.description, scope: checked.scope, expires_at, access, allowed_origins })
}

/// The token API request body the flags stand for.
fn request_body(flags: &CreateFlags, tiles: &[(&str, (u32, u64, u64))]) -> Value {
    let mut access = Map::new();
    let mut fence = Map::new();
    if let Some(z) = flags.max_zoom {
        fence.insert("maxZoom".into(), json!(z));
    }
    // Unparseable tiles were reported above; with none left, leave `tiles` out
    // rather than have the API report an empty list too.
    if !tiles.is_empty() {
        let list: Vec<Value> =
            tiles.iter().map(|(_, (z, x, y))| json!({ "zoom": z, "tileX": x, "tileY": y })).collect();
        fence.insert("tiles".into(), Value::Array(list));
    }
    if !fence.is_empty() {
        access.insert("geoFence".into(), Value::Object(fence));
    }
    if flags.no_properties {
        access.insert("propertyFence".into(), json!([]));
    } else if !flags.properties.is_empty() {
        access.insert("propertyFence".into(), json!(flags.properties));
    }
    let list: Vec<Value> = flags
        .paths
        .iter()
        .zip(&flags.tiers)
        .map(|(path, tier)| {
            let mut a = access.clone();
            a.insert("accessTier".into(), json!(tier));
            json!({ "pathId": path, "access": a })
        })
        .collect();
    let mut out = json!({
        "accessList": list,
        "description": flags.description.trim(),
        "scope": flags.scope,
    });
    if let Some(s) = flags.valid_for {
        out["validFor"] = json!(s);
    }
    if let Some(t) = &flags.expires_at {
        out["expiresAt"] = json!(t);
    }
    if !flags.allowed_origins.is_empty() {
        out["allowedOrigins"] = json!(flags.allowed_origins);
    }
    out
}

/// A caller that holds `admin`, unfenced and forever, on every declared path: the
/// CLI mints root tokens, limited only by what the API accepts from anyone.
fn root_grant(paths: &PathTable) -> Grant {
    Grant {
        // No such token exists; `narrow` never reads the caller's id.
        token_id: TokenId(uuid::Uuid::nil()),
        scope: Scope::All,
        expires_at: None,
        allowed_origins: None,
        access: paths
            .iter()
            .map(|p| Access {
                path_id: p.id.to_string(),
                tier: Tier::Admin,
                fence: Arc::new(Fence::default()),
                properties: None,
            })
            .collect(),
    }
}

/// The API's problem as a CLI message: the flag its `loc` points at, then its text.
fn flag_message(p: &Problem, flags: &CreateFlags, tiles: &[(&str, (u32, u64, u64))], paths: &PathTable) -> String {
    let loc: Vec<&Value> = p.loc.iter().skip(1).collect();
    let key = |i: usize| loc.get(i).and_then(|v| v.as_str());
    let index = |i: usize| loc.get(i).and_then(|v| v.as_u64()).map(|n| n as usize);
    let flag = match key(0) {
        Some("description") => "--description".to_owned(),
        Some("scope") => format!("--scope `{}`", flags.scope),
        Some("validFor") => "--valid-for".to_owned(),
        Some("expiresAt") => "--expires-at".to_owned(),
        Some("accessList") => match (index(1), key(2), key(3), key(4)) {
            (Some(i), Some("pathId"), _, _) => format!("--path `{}`", flags.paths.get(i).map_or("", String::as_str)),
            (Some(i), Some("access"), Some("accessTier"), _) => {
                format!("--tier `{}`", flags.tiers.get(i).map_or("", String::as_str))
            }
            (Some(_), Some("access"), Some("geoFence"), Some("maxZoom")) => "--max-zoom".to_owned(),
            (Some(_), Some("access"), Some("geoFence"), Some("tiles")) => match index(5).and_then(|j| tiles.get(j)) {
                Some((text, _)) => format!("--tile `{text}`"),
                None => "--tile".to_owned(),
            },
            (Some(_), Some("access"), Some("propertyFence"), _) => "--property".to_owned(),
            _ => "--path".to_owned(),
        },
        Some("allowedOrigins") => match index(1).and_then(|i| flags.allowed_origins.get(i)) {
            Some(o) => format!("--allowed-origin `{o}`"),
            None => "--allowed-origin".to_owned(),
        },
        _ => {
            p.loc.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect::<Vec<_>>().join(".")
        }
    };
    let mut message = format!("{flag}: {}", p.msg);
    if p.kind == "value_error.path" {
        // The API does not list the declared paths (a caller may not see them all);
        // the operator at the CLI may.
        let mut ids: Vec<&str> = paths.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(|i| format!("`{i}`")).collect();
        message.push_str(&format!("; declared: {}", ids.join(", ")));
    }
    message
}

/// The fence and property flags apply to every `--path`, so the API reports
/// their problems once per path; the CLI says each once.
fn dedup(problems: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(problems.len());
    for p in problems {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn parse_zxy(s: &str) -> Option<(u32, u64, u64)> {
    let mut it = s.split('/');
    let z = it.next()?.parse().ok()?;
    let x = it.next()?.parse().ok()?;
    let y = it.next()?.parse().ok()?;
    it.next().is_none().then_some((z, x, y))
}

/// The flags of `tilegate store migrate`, as typed.
#[derive(Debug, Clone, Default)]
pub struct MigrateFlags {
    /// `sqlite:PATH`
    pub from: String,
    /// `postgres://USER@HOST:PORT/DATABASE?sslmode=…`
    pub to: String,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
}

/// Runs `tilegate store migrate`: checks the flags (the `--to` URL with the same
/// rules and messages as `store.url`, named by flag), copies and verifies.
/// Re-runnable: a second run copies only what is new.
pub async fn store_migrate(flags: &MigrateFlags) -> Result<crate::store::MigrateReport, String> {
    let Some(from) = flags.from.strip_prefix("sqlite:") else {
        return Err(format!("--from `{}` is not `sqlite:PATH`", flags.from));
    };
    let raw = crate::config::raw::RawStore {
        url: Some(flags.to.clone()),
        password_file: flags.password_file.clone(),
        password_env: flags.password_env.clone(),
        ca_file: flags.ca_file.clone(),
        ..Default::default()
    };
    let cwd = std::path::PathBuf::from(".");
    let store = crate::config::validate_store(&raw, &cwd).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| {
                let flag = match e.key.as_str() {
                    "store.url" => "--to",
                    "store.password_file" => "--password-file",
                    "store.password_env" => "--password-env",
                    "store.ca_file" => "--ca-file",
                    other => other,
                };
                format!("{flag}: {}", e.message)
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let Some(pg) = store.postgres else {
        return Err("--to must be a postgres:// URL".into());
    };
    crate::store::migrate_sqlite_to_postgres(
        std::path::Path::new(from),
        &pg,
        store.query_timeout.max(std::time::Duration::from_secs(30)),
    )
    .await
    .map_err(|e| crate::respond::ErrorChain(&e).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{PathConfig, PathKind};

    fn paths() -> PathTable {
        PathTable::new([PathConfig::new("osm", PathKind::Raster), PathConfig::new("roads", PathKind::Vector)])
    }

    fn flags(path: &str, tier: &str) -> CreateFlags {
        CreateFlags {
            paths: vec![path.into()],
            tiers: vec![tier.into()],
            scope: "all".into(),
            description: "partner".into(),
            ..CreateFlags::default()
        }
    }

    #[test]
    fn flags_the_api_accepts_become_a_root_token() {
        let f = CreateFlags { max_zoom: Some(12), tiles: vec!["5/16/10".into()], ..flags("osm", "view") };
        let t = check_create(&f, &paths(), 1_000).expect("valid");
        assert_eq!(t.access.len(), 1);
        assert_eq!(t.access[0].fence.max_zoom(), Some(12));
        assert_eq!(t.expires_at, None);
        assert_eq!(t.description, "partner");
    }

    #[test]
    fn api_problems_name_the_flag_once_with_the_api_text() {
        let f = CreateFlags {
            paths: vec!["osm".into(), "nope".into()],
            tiers: vec!["view".into(), "viewer".into()],
            tiles: vec!["5/40/3".into(), "x".into()],
            valid_for: Some(0),
            ..flags("", "")
        };
        let e = check_create(&f, &paths(), 1_000).expect_err("invalid");
        assert!(e.contains(&"--tile `x` is not Z/X/Y with whole numbers, such as 5/16/10".to_owned()), "{e:#?}");
        assert!(e
            .iter()
            .any(|m| m.starts_with("--path `nope`: `nope` is not a declared path; declared: `osm`, `roads`")));
        assert!(e.iter().any(|m| m.starts_with("--tier `viewer`: ")), "{e:#?}");
        assert!(e.iter().any(|m| m.starts_with("--valid-for: must be a whole number of seconds")), "{e:#?}");
        let tile = "--tile `5/40/3`: tile 40/3 does not exist at zoom 5; tileX and tileY must be below 32";
        assert_eq!(e.iter().filter(|m| *m == tile).count(), 1, "{e:#?}");
    }

    #[test]
    fn allowed_origins_are_checked_and_normalised_like_the_api() {
        let f = CreateFlags {
            allowed_origins: vec!["https://App.Example.org:443".into(), "https://*.example.org".into()],
            ..flags("osm", "view")
        };
        let t = check_create(&f, &paths(), 1_000).expect("valid");
        let stored: Vec<String> = t.allowed_origins.expect("a list").iter().map(ToString::to_string).collect();
        assert_eq!(stored, ["https://app.example.org", "https://*.example.org"]);
        let bad = CreateFlags { allowed_origins: vec!["https://a.example.org/app".into()], ..flags("osm", "view") };
        let e = check_create(&bad, &paths(), 1_000).expect_err("a path");
        assert!(
            e[0].starts_with("--allowed-origin `https://a.example.org/app`: `https://a.example.org/app` has a path"),
            "{e:#?}"
        );
    }
}
