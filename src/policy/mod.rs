//! The decision stage: may this token make this request?
//!
//! [`decide`] is pure: it takes the token's [`Grant`], the classified target (its
//! [`Operation`] and path, see [`Judged`]) and the current time, and returns the
//! target wrapped in [`Permitted`] with its [`Permit`], or a [`Denial`]. It does no
//! I/O, locking or logging. Only this module can build a `Permitted`, and forwarding
//! requires one, so nothing reaches an upstream undecided or other than judged.

mod grant;
pub mod origin;
mod tier;

pub use grant::{Access, AccessList, Grant, Scope, TokenId};
pub use origin::OriginPattern;
pub use tier::{Tier, UnknownTier};

use std::sync::Arc;

use crate::paths::{Partial, PathConfig};
pub use crate::spatial::ClipArea;
use crate::spatial::{BBox, Fence, FenceDenial, Overlap, TileCoord};

/// Which family of endpoints a request came through; scope is judged on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `/ogc/…`: reachable with scope `ogc` or `all`.
    Ogc,
    /// `/path/{id}/…` and the token API: scope `all` only.
    Full,
}

/// What part of the map a request reaches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Extent {
    /// No map data: capabilities, legends, metadata. Allowed under any fence.
    None,
    /// One tile in the XYZ scheme.
    Tile(TileCoord),
    /// A bounding box, with the effective zoom when the request renders pixels (WMS).
    BBox { bbox: BBox, zoom: Option<f64> },
    /// Feature data with no spatial bound (WFS GetFeature without BBOX, OGC API items…).
    Unbounded,
    /// Feature data with no spatial bound whose answer the gateway filters by the
    /// fence's geometry (GeoJSON): allowed, with the fence as an obligation.
    GeometryFiltered,
    /// A request whose reach the gateway cannot judge (pass-through `/path/…`):
    /// refused for any token with a fence.
    Opaque,
    /// A bounding box in a CRS the gateway cannot judge: fine for an unfenced
    /// token, refused (`unsupported_crs`) for a fenced one.
    ForeignCrs,
}

/// A classified request: everything [`decide`] needs to know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// A stable name for logs and metrics, such as `xyz.tile` or `wms.GetMap`.
    pub name: &'static str,
    pub surface: Surface,
    /// The lowest tier that may perform it.
    pub tier: Tier,
    /// Upstream layer names the request names; each must be covered by the path.
    pub layers: Vec<String>,
    pub extent: Extent,
    /// Property names the request names (selects, filters, sorts); each must be
    /// inside the token's property fence.
    pub properties: Vec<String>,
    /// Whether the filter stage can clip the answer to a fence it only partly overlaps.
    pub clippable: Clippable,
    /// The request replaces or clears a feature's whole set of properties (OGC API
    /// PUT and DELETE, `"properties": null`, WFS-T `Replace` and `Delete`): it would
    /// erase what a property fence hides, so a property-fenced token may not send it.
    pub replaces_properties: bool,
}

impl Operation {
    /// An operation with no layers and no properties.
    pub fn simple(name: &'static str, surface: Surface, tier: Tier, extent: Extent) -> Self {
        Operation {
            name,
            surface,
            tier,
            layers: Vec::new(),
            extent,
            properties: Vec::new(),
            clippable: Clippable::No,
            replaces_properties: false,
        }
    }
}

/// What the answer to an operation is, as far as clipping to a fence goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clippable {
    /// Data the gateway cannot cut (features, coverages, metadata): a partial overlap
    /// is refused.
    #[default]
    No,
    /// A rendered image (PNG, JPEG, WebP): pixels outside the fence are masked.
    /// `background` is the request's own colour for opaque formats (WMS `BGCOLOR`).
    Image { background: Option<[u8; 3]> },
    /// A Mapbox vector tile: features outside are dropped, geometries cut at the fence.
    VectorTile,
    /// Features the filter stage bounds by geometry (WMTS GetFeatureInfo as GeoJSON):
    /// a tile partly inside is served, features outside the fence dropped; nothing
    /// else to clip.
    FeaturesFiltered,
}

/// The obligation to clip an answer that only partly overlaps the fence (the fence
/// itself is [`Obligations::fence`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clip {
    /// Where the answer lies: a Web Mercator tile, or a map's bounding box.
    pub area: ClipArea,
    /// Outside the fence in formats without transparency (JPEG).
    pub background: [u8; 3],
    /// A vector tile rather than an image.
    pub vector: bool,
}

/// Why a request is refused. A closed set: `respond` maps each to a status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No token in the request.
    MissingToken,
    /// Something token-shaped that fails the format or checksum check.
    MalformedToken,
    /// Two different tokens in one request.
    ConflictingTokens,
    /// A `token` query parameter while `tokens.allow_query_token` is off.
    QueryTokenDisabled,
    /// A well-formed token the store does not know.
    UnknownToken,
    Revoked,
    Expired,
    /// The path does not exist or the token cannot see it (indistinguishable on purpose).
    PathNotFound,
    /// An `ogc`-scoped token on a non-OGC endpoint.
    ScopeOgcOnly,
    /// The token's tier on this path is below what the operation needs.
    TierTooLow {
        needed: Tier,
        held: Tier,
    },
    /// The request names an upstream layer the path does not cover.
    LayerNotCovered(String),
    ZoomAboveMax,
    OutsideGeofence,
    /// A spatial request in a CRS the gateway cannot judge.
    UnsupportedCrs,
    /// A feature request with no spatial bound from a fenced token.
    UnboundedFeatureRequest,
    /// A request the gateway cannot bound spatially, from a fenced token.
    FenceUnverifiable,
    /// The request names a property outside the token's property fence.
    PropertyFenced(String),
    /// A property-fenced token replaces or clears a feature's whole set of properties.
    PropertiesReplaced,
    /// A TiTiler `url=` that is not one of the path's `titiler_datasets`.
    DatasetNotCovered(String),
    /// The token lists `allowedOrigins` and the request's `Origin` (or `Referer`)
    /// matches none of them, or it names no origin.
    OriginNotAllowed,
}

impl Denial {
    /// Every denial whose message never varies (the others name a tier, layer or
    /// property); their response bodies are built once.
    pub const FIXED: [Denial; 15] = [
        Denial::MissingToken,
        Denial::MalformedToken,
        Denial::ConflictingTokens,
        Denial::QueryTokenDisabled,
        Denial::UnknownToken,
        Denial::Revoked,
        Denial::Expired,
        Denial::PathNotFound,
        Denial::ScopeOgcOnly,
        Denial::ZoomAboveMax,
        Denial::OutsideGeofence,
        Denial::UnsupportedCrs,
        Denial::UnboundedFeatureRequest,
        Denial::FenceUnverifiable,
        Denial::OriginNotAllowed,
    ];

    /// The snake_case reason used in bodies, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::MissingToken => "missing_token",
            Denial::MalformedToken => "malformed_token",
            Denial::ConflictingTokens => "conflicting_tokens",
            Denial::QueryTokenDisabled => "query_token_disabled",
            Denial::UnknownToken => "unknown_token",
            Denial::Revoked => "revoked_token",
            Denial::Expired => "expired_token",
            Denial::PathNotFound => "path_not_found",
            Denial::ScopeOgcOnly => "scope_ogc_only",
            Denial::TierTooLow { .. } => "tier_too_low",
            Denial::LayerNotCovered(_) => "layer_not_covered",
            Denial::ZoomAboveMax => "zoom_above_max",
            Denial::OutsideGeofence => "outside_geofence",
            Denial::UnsupportedCrs => "unsupported_crs",
            Denial::UnboundedFeatureRequest => "unbounded_feature_request",
            Denial::FenceUnverifiable => "fence_unverifiable",
            Denial::PropertyFenced(_) | Denial::PropertiesReplaced => "property_fenced",
            Denial::DatasetNotCovered(_) => "dataset_not_covered",
            Denial::OriginNotAllowed => "origin_not_allowed",
        }
    }

    /// True when a token was sent and it was no good (malformed, unknown, revoked,
    /// expired): what the failed-authentication guard counts. A request without a
    /// token, or with two, is not an attempt; a refusal of a good token is not one
    /// either. Exhaustive on purpose: a new denial must decide here.
    pub fn is_failed_authentication(&self) -> bool {
        match self {
            Denial::MalformedToken | Denial::UnknownToken | Denial::Revoked | Denial::Expired => true,
            Denial::MissingToken
            | Denial::ConflictingTokens
            | Denial::QueryTokenDisabled
            | Denial::PathNotFound
            | Denial::ScopeOgcOnly
            | Denial::TierTooLow { .. }
            | Denial::LayerNotCovered(_)
            | Denial::ZoomAboveMax
            | Denial::OutsideGeofence
            | Denial::UnsupportedCrs
            | Denial::UnboundedFeatureRequest
            | Denial::FenceUnverifiable
            | Denial::PropertyFenced(_)
            | Denial::PropertiesReplaced
            | Denial::DatasetNotCovered(_)
            | Denial::OriginNotAllowed => false,
        }
    }
}

/// What must still happen to a permitted request on its way back.
#[derive(Clone, Debug, Default)]
pub struct Obligations {
    /// Properties the response may show; `None` = all.
    pub properties: Option<Arc<[String]>>,
    /// The fence features must intersect; `None` = no geometry filter.
    pub fence: Option<Arc<Fence>>,
    /// The answer only partly overlaps `fence` and must be clipped to it.
    pub clip: Option<Clip>,
}

impl Obligations {
    /// True when what the token is shown may differ from the upstream's answer (a
    /// property fence, a geofence or a clip): such an answer is the token's own
    /// (`private, no-store`) and a write's echo is withheld.
    pub fn shape_the_answer(&self) -> bool {
        self.properties.is_some() || self.fence.is_some() || self.clip.is_some()
    }
}

/// Proof that [`decide`] allowed a request. Cannot be built outside this module.
#[derive(Clone, Debug)]
pub struct Permit {
    token_id: TokenId,
    tier: Tier,
    obligations: Obligations,
}

impl Permit {
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }
    /// The tier the token holds on the path (for `X-Tilegate-Tier`).
    pub fn tier(&self) -> Tier {
        self.tier
    }
    pub fn obligations(&self) -> &Obligations {
        &self.obligations
    }
}

/// What [`decide`] judges: a classified request on one path. The gateway's forward
/// target implements it, so the permit comes back wrapped around exactly the target
/// that was judged.
pub trait Judged {
    fn operation(&self) -> &Operation;
    fn path(&self) -> &PathConfig;
}

/// A target that [`decide`] allowed, with its [`Permit`] (linkerd2-proxy's
/// `Permitted<T>`). Only `decide` builds one and forwarding requires one, so nothing
/// is forwarded but the target that was judged, and nothing undecided.
#[derive(Debug)]
pub struct Permitted<T> {
    target: T,
    permit: Permit,
}

impl<T> Permitted<T> {
    pub fn target(&self) -> &T {
        &self.target
    }

    pub fn permit(&self) -> &Permit {
        &self.permit
    }
}

/// The checks on the token itself, before the request is classified (and before
/// the token API): expiry, then the origin ([`origin::check`]). The request's
/// headers are read only for a token that lists `allowedOrigins`.
pub fn admit(grant: &Grant, headers: &http::HeaderMap, now: i64) -> Result<(), Denial> {
    if grant.expires_at.is_some_and(|at| at <= now) {
        return Err(Denial::Expired);
    }
    match &grant.allowed_origins {
        None => Ok(()),
        Some(list) => origin::check(Some(list), &origin::presented(headers)),
    }
}

/// Decides one request: [`judge`] on the target's operation and path, the permit
/// wrapped around the target. `now` is unix seconds.
pub fn decide<T: Judged>(grant: &Grant, target: T, now: i64) -> Result<Permitted<T>, Denial> {
    let permit = judge(grant, target.operation(), target.path(), now)?;
    Ok(Permitted { target, permit })
}

/// The decision itself, on a bare operation. `now` is unix seconds.
///
/// The order is fixed and deliberate (DESIGN.md §5):
/// 1. expiry first, so an expired token learns nothing else;
/// 2. path visibility before anything path-specific, answering "not found" so that a
///    token cannot probe which paths exist;
/// 3. scope, then tier: coarse refusals before request details;
/// 4. layers, then the geofence, then the property fence: the detailed checks, each
///    of which assumes the ones before it passed.
pub fn judge(grant: &Grant, op: &Operation, path: &PathConfig, now: i64) -> Result<Permit, Denial> {
    if grant.expires_at.is_some_and(|at| at <= now) {
        return Err(Denial::Expired);
    }
    let access = grant.access_for(path).ok_or(Denial::PathNotFound)?;
    if op.surface == Surface::Full && grant.scope == Scope::Ogc {
        return Err(Denial::ScopeOgcOnly);
    }
    if access.tier < op.tier {
        return Err(Denial::TierTooLow { needed: op.tier, held: access.tier });
    }
    if let Some(layer) = op.layers.iter().find(|l| !path.covers_layer(l)) {
        return Err(Denial::LayerNotCovered(layer.clone()));
    }
    let clip = match check_extent(&access.fence, &op.extent)? {
        // A vector tile carries a buffer of geometry beyond its edges (martin and
        // PostGIS 64/4096, tippecanoe 5/256): a tile inside the fence may still hold
        // features outside it (attacker round 9: London in tile 2/2/1's buffer). Under a
        // tile fence every vector tile is clipped, whatever `partial` says; the clipper
        // passes features that lie in one fence rectangle untouched.
        Overlap::Inside if op.clippable == Clippable::VectorTile && access.fence.tiles().is_some() => {
            match op.extent {
                Extent::Tile(tile) => {
                    Some(Clip { area: ClipArea::Tile(tile), background: path.background, vector: true })
                }
                // Vector data not addressed as a tile (a WMS GetMap in MVT) cannot be clipped.
                _ => return Err(Denial::FenceUnverifiable),
            }
        }
        Overlap::Inside => None,
        Overlap::Partial if op.clippable == Clippable::FeaturesFiltered && path.partial == Partial::Clip => None,
        Overlap::Partial => Some(clip_of(op, path).ok_or(Denial::OutsideGeofence)?),
    };
    // The pass-through (`/path/`) relays its answers unread: they cannot be
    // property-filtered any more than geofenced (attacker round 4: a property-fenced
    // token read every hidden property through `/path/`). OGC operations with an
    // opaque extent (item writes) judge their properties and drop fenced answers.
    if access.properties.is_some() && op.surface == Surface::Full && matches!(op.extent, Extent::Opaque) {
        return Err(Denial::FenceUnverifiable);
    }
    if let Some(allowed) = &access.properties {
        if let Some(hidden) = op.properties.iter().find(|p| !allowed.iter().any(|a| a == *p)) {
            return Err(Denial::PropertyFenced(hidden.clone()));
        }
        // Attacker round 9: a PUT of the visible properties, or `"properties": null`,
        // erased the hidden ones.
        if op.replaces_properties {
            return Err(Denial::PropertiesReplaced);
        }
    }
    Ok(Permit {
        token_id: grant.token_id,
        tier: access.tier,
        obligations: Obligations {
            properties: access.properties.clone(),
            fence: (!access.fence.is_unlimited()).then(|| access.fence.clone()),
            clip,
        },
    })
}

/// The clip obligation for an answer that partly overlaps the fence, or `None` when
/// it must be refused: the path says `partial = "deny"`, or the answer is not one the
/// filter stage can cut.
fn clip_of(op: &Operation, path: &PathConfig) -> Option<Clip> {
    if path.partial == Partial::Deny {
        return None;
    }
    let area = match op.extent {
        Extent::Tile(tile) => ClipArea::Tile(tile),
        Extent::BBox { bbox, .. } => ClipArea::BBox(bbox),
        _ => return None,
    };
    match op.clippable {
        Clippable::No | Clippable::FeaturesFiltered => None,
        Clippable::Image { background } => {
            Some(Clip { area, background: background.unwrap_or(path.background), vector: false })
        }
        // A vector tile is cut in its own tile coordinates: only a tile can be.
        Clippable::VectorTile => {
            matches!(area, ClipArea::Tile(_)).then_some(Clip { area, background: path.background, vector: true })
        }
    }
}

fn check_extent(fence: &Fence, extent: &Extent) -> Result<Overlap, Denial> {
    if fence.is_unlimited() {
        return Ok(Overlap::Inside);
    }
    let verdict = match extent {
        Extent::None => Ok(Overlap::Inside),
        Extent::Tile(tile) => fence.tile_overlap(*tile),
        Extent::BBox { bbox, zoom } => fence.bbox_overlap(bbox, *zoom),
        // Only tiles bound space; a maxZoom-only fence has nothing to bound features by.
        Extent::Unbounded if fence.tiles().is_none() => Ok(Overlap::Inside),
        Extent::Unbounded => return Err(Denial::UnboundedFeatureRequest),
        Extent::GeometryFiltered => Ok(Overlap::Inside),
        Extent::Opaque => return Err(Denial::FenceUnverifiable),
        Extent::ForeignCrs => return Err(Denial::UnsupportedCrs),
    };
    verdict.map_err(|d| match d {
        FenceDenial::ZoomAboveMax => Denial::ZoomAboveMax,
        FenceDenial::OutsideGeofence => Denial::OutsideGeofence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{PathId, PathKind};

    fn path(id: &str, lineage: &[&str], layers: &[&str]) -> PathConfig {
        PathConfig {
            lineage: lineage.iter().map(|s| PathId::from(*s)).collect(),
            layers: layers.iter().map(|s| (*s).to_owned()).collect(),
            ..PathConfig::new(id, PathKind::Raster)
        }
    }

    fn grant(entries: &[(&str, Tier)], fence: Fence, scope: Scope) -> Grant {
        Grant {
            token_id: TokenId::new_random(),
            scope,
            expires_at: None,
            allowed_origins: None,
            access: entries
                .iter()
                .map(|(p, t)| Access {
                    path_id: (*p).into(),
                    tier: *t,
                    fence: Arc::new(fence.clone()),
                    properties: None,
                })
                .collect(),
        }
    }

    fn tile(z: u32, x: u64, y: u64) -> Extent {
        Extent::Tile(TileCoord::new(z, x, y).expect("tile"))
    }

    #[test]
    fn every_tier_against_every_operation() {
        let osm = path("osm", &["osm", "world"], &["osm"]);
        let ops = [
            Operation::simple("xyz.tile", Surface::Ogc, Tier::View, tile(1, 0, 0)),
            Operation::simple("path.read", Surface::Full, Tier::ViewPlus, Extent::Opaque),
            Operation::simple("path.write", Surface::Full, Tier::Edit, Extent::Opaque),
            Operation::simple("tokens.list_path", Surface::Full, Tier::FullView, Extent::None),
            Operation::simple("manage", Surface::Full, Tier::EditPlus, Extent::None),
            Operation::simple("revoke_any", Surface::Full, Tier::Admin, Extent::None),
            Operation::simple("share", Surface::Full, Tier::Share, Extent::None),
        ];
        for held in Tier::ALL {
            let g = grant(&[("osm", held)], Fence::default(), Scope::All);
            for op in &ops {
                let got = judge(&g, op, &osm, 0);
                if held >= op.tier {
                    let permit = got.unwrap_or_else(|d| panic!("{held} on {}: {d:?}", op.name));
                    assert_eq!(permit.tier(), held);
                } else {
                    assert_eq!(got.err(), Some(Denial::TierTooLow { needed: op.tier, held }), "{held} on {}", op.name);
                }
            }
        }
    }

    #[test]
    fn the_check_order_is_expiry_visibility_scope_tier_layers_fence() {
        let osm = path("osm", &["osm", "world"], &["osm"]);
        let fence = Fence::new(Some(&[(1, 0, 0)]), Some(3)).expect("fence");
        let mut g = grant(&[("osm", Tier::View)], fence, Scope::Ogc);
        let mut op = Operation::simple("path.write", Surface::Full, Tier::Edit, tile(1, 1, 1));
        op.layers = vec!["other".into()];
        g.expires_at = Some(10);
        assert_eq!(judge(&g, &op, &osm, 10).err(), Some(Denial::Expired));
        g.expires_at = Some(11);
        let elsewhere = path("secret", &["secret"], &[]);
        assert_eq!(judge(&g, &op, &elsewhere, 10).err(), Some(Denial::PathNotFound));
        assert_eq!(judge(&g, &op, &osm, 10).err(), Some(Denial::ScopeOgcOnly));
        op.surface = Surface::Ogc;
        assert!(matches!(judge(&g, &op, &osm, 10), Err(Denial::TierTooLow { .. })));
        op.tier = Tier::View;
        assert_eq!(judge(&g, &op, &osm, 10).err(), Some(Denial::LayerNotCovered("other".into())));
        op.layers = vec!["osm".into()];
        assert_eq!(judge(&g, &op, &osm, 10).err(), Some(Denial::OutsideGeofence));
        op.extent = tile(4, 0, 0);
        assert_eq!(judge(&g, &op, &osm, 10).err(), Some(Denial::ZoomAboveMax));
        op.extent = tile(3, 1, 1);
        assert!(judge(&g, &op, &osm, 10).is_ok());
    }

    #[test]
    fn folder_grants_are_inherited_and_the_nearest_wins() {
        let osm = path("osm", &["osm", "world"], &[]);
        let op = Operation::simple("path.read", Surface::Full, Tier::ViewPlus, Extent::Opaque);
        assert!(judge(&grant(&[("world", Tier::ViewPlus)], Fence::default(), Scope::All), &op, &osm, 0).is_ok());
        let narrowed = grant(&[("world", Tier::Admin), ("osm", Tier::View)], Fence::default(), Scope::All);
        assert!(matches!(judge(&narrowed, &op, &osm, 0), Err(Denial::TierTooLow { .. })));
    }

    #[test]
    fn fence_extents_are_judged_only_for_fenced_tokens() {
        let osm = path("osm", &["osm"], &[]);
        let fenced =
            grant(&[("osm", Tier::Admin)], Fence::new(Some(&[(1, 0, 0)]), Some(5)).expect("fence"), Scope::All);
        let zoom_only = grant(&[("osm", Tier::Admin)], Fence::new(None, Some(5)).expect("fence"), Scope::All);
        let unbounded = Operation::simple("x", Surface::Ogc, Tier::View, Extent::Unbounded);
        assert!(judge(&zoom_only, &unbounded, &osm, 0).is_ok(), "a maxZoom-only fence bounds no features");
        let filtered = Operation::simple("x", Surface::Ogc, Tier::View, Extent::GeometryFiltered);
        let permit = judge(&fenced, &filtered, &osm, 0).expect("filtered by geometry");
        assert!(permit.obligations().fence.is_some(), "the fence becomes the filter's obligation");
        let open = grant(&[("osm", Tier::Admin)], Fence::default(), Scope::All);
        for (extent, denial) in [
            (Extent::Unbounded, Denial::UnboundedFeatureRequest),
            (Extent::Opaque, Denial::FenceUnverifiable),
            (Extent::ForeignCrs, Denial::UnsupportedCrs),
        ] {
            let op = Operation::simple("x", Surface::Ogc, Tier::View, extent);
            assert_eq!(judge(&fenced, &op, &osm, 0).err(), Some(denial));
            assert!(judge(&open, &op, &osm, 0).is_ok());
        }
        let op = Operation::simple("x", Surface::Ogc, Tier::View, Extent::None);
        assert!(judge(&fenced, &op, &osm, 0).is_ok(), "capabilities and legends pass any fence");
    }

    /// Attacker round 4: a property-fenced token read every hidden property through
    /// `/path/`, whose answer is relayed unread. An opaque answer is refused under a
    /// property fence exactly as under a geofence; a judged one still passes.
    #[test]
    fn an_opaque_answer_is_refused_under_a_property_fence() {
        let vec = path("vec", &["vec"], &[]);
        let mut g = grant(&[("vec", Tier::Admin)], Fence::default(), Scope::All);
        g.access[0].properties = Some(Arc::from(vec!["name".to_owned()]));
        let opaque = Operation::simple("path", Surface::Full, Tier::ViewPlus, Extent::Opaque);
        assert_eq!(judge(&g, &opaque, &vec, 0).err(), Some(Denial::FenceUnverifiable));
        let judged = Operation::simple("items", Surface::Ogc, Tier::View, Extent::GeometryFiltered);
        assert!(judge(&g, &judged, &vec, 0).is_ok());
        let write = Operation::simple("api.createItem", Surface::Ogc, Tier::Edit, Extent::Opaque);
        assert!(judge(&g, &write, &vec, 0).is_ok(), "an item write judges its properties itself");
    }

    /// The admission table: the token's `allowedOrigins` against what the request
    /// sends (`Origin`, `Referer`), and expiry before the origin.
    #[test]
    fn admission_by_expiry_then_allowed_origins() {
        let list = |l: &[&str]| -> Option<Arc<[OriginPattern]>> {
            Some(l.iter().map(|s| OriginPattern::parse(s).expect("origin")).collect())
        };
        let site = list(&["https://app.example.org", "https://*.maps.example.org", "http://localhost:3000"]);
        let ok = Ok(());
        let no = Err(Denial::OriginNotAllowed);
        type Row<'a> = (Option<Arc<[OriginPattern]>>, Option<&'a str>, Option<&'a str>, Result<(), Denial>);
        #[rustfmt::skip]
        let table: &[Row] = &[
            // (allowedOrigins, Origin, Referer, verdict)
            (None, None, None, ok.clone()),                                              // no list: curl, QGIS
            (None, Some("https://evil.example"), None, ok.clone()),                      // no list: any site
            (site.clone(), Some("https://app.example.org"), None, ok.clone()),
            (site.clone(), Some("HTTPS://APP.EXAMPLE.ORG:443"), None, ok.clone()),       // normalised
            (site.clone(), Some("https://a.maps.example.org"), None, ok.clone()),
            (site.clone(), Some("https://a.b.maps.example.org"), None, ok.clone()),
            (site.clone(), Some("http://localhost:3000"), None, ok.clone()),
            (site.clone(), None, Some("https://app.example.org/map.html?x=1"), ok.clone()), // <img> tiles
            (site.clone(), Some("https://maps.example.org"), None, no.clone()),          // the bare domain
            (site.clone(), Some("http://app.example.org"), None, no.clone()),            // scheme
            (site.clone(), Some("https://app.example.org:8443"), None, no.clone()),      // port
            (site.clone(), Some("http://localhost:3001"), None, no.clone()),
            (site.clone(), Some("https://app.example.org.evil.example"), None, no.clone()),
            (site.clone(), Some("https://evil.example"), Some("https://app.example.org/"), no.clone()), // Origin wins
            (site.clone(), Some("null"), Some("https://app.example.org/"), no.clone()),  // sandboxed frame
            (site.clone(), None, Some("file:///home/me/map.html"), no.clone()),
            (site.clone(), None, None, no.clone()),                                      // curl, QGIS, a lifted token
            (site.clone(), Some("https://app.example.org/path"), None, no.clone()),      // not an origin
        ];
        for (allowed, origin, referer, verdict) in table {
            let mut g = grant(&[("osm", Tier::View)], Fence::default(), Scope::All);
            g.allowed_origins = allowed.clone();
            let mut headers = http::HeaderMap::new();
            if let Some(o) = origin {
                headers.insert(http::header::ORIGIN, o.parse().expect("header"));
            }
            if let Some(r) = referer {
                headers.insert(http::header::REFERER, r.parse().expect("header"));
            }
            assert_eq!(admit(&g, &headers, 0), *verdict, "{allowed:?} Origin {origin:?} Referer {referer:?}");
            g.expires_at = Some(0);
            assert_eq!(admit(&g, &headers, 0), Err(Denial::Expired), "expiry is judged first");
        }
    }

    #[test]
    fn writing_a_shared_access_list_copies_it() {
        let a = grant(&[("osm", Tier::View)], Fence::default(), Scope::All);
        let mut b = a.clone();
        assert!(a.access.ptr_eq(&b.access));
        b.access[0].tier = Tier::Admin;
        assert!(!a.access.ptr_eq(&b.access));
        assert_eq!((a.access[0].tier, b.access[0].tier), (Tier::View, Tier::Admin));
        assert_eq!((&a.access).into_iter().count(), 1);
    }

    #[test]
    fn the_property_fence_refuses_hidden_names_and_becomes_an_obligation() {
        let places = path("places", &["places"], &[]);
        let mut g = grant(&[("places", Tier::ViewPlus)], Fence::default(), Scope::All);
        g.access[0].properties = Some(vec!["name".to_owned()].into());
        let mut op = Operation::simple("x", Surface::Ogc, Tier::ViewPlus, Extent::None);
        op.properties = vec!["name".into(), "secret".into()];
        assert_eq!(judge(&g, &op, &places, 0).err(), Some(Denial::PropertyFenced("secret".into())));
        op.properties = vec!["name".into()];
        let permit = judge(&g, &op, &places, 0).expect("permit");
        assert_eq!(permit.obligations().properties.as_deref(), Some(&["name".to_owned()][..]));
    }

    #[test]
    fn a_partial_overlap_is_clipped_when_the_answer_can_be_and_the_path_allows_it() {
        let mut osm = path("osm", &["osm"], &[]);
        let fence = Fence::new(Some(&[(3, 4, 2)]), Some(10)).expect("fence");
        let g = grant(&[("osm", Tier::View)], fence, Scope::All);
        let mut op = Operation::simple("xyz.tile", Surface::Ogc, Tier::View, tile(1, 1, 0));
        assert_eq!(judge(&g, &op, &osm, 0).err(), Some(Denial::OutsideGeofence), "data is never clipped");
        op.clippable = Clippable::Image { background: None };
        let permit = judge(&g, &op, &osm, 0).expect("clipped");
        let clip = permit.obligations().clip.expect("a clip obligation");
        assert_eq!(clip.area, ClipArea::Tile(TileCoord::new(1, 1, 0).expect("tile")));
        assert_eq!((clip.background, clip.vector), ([255, 255, 255], false));
        op.clippable = Clippable::Image { background: Some([1, 2, 3]) };
        assert_eq!(judge(&g, &op, &osm, 0).expect("clipped").obligations().clip.map(|c| c.background), Some([1, 2, 3]));
        op.extent = tile(3, 4, 2);
        assert!(judge(&g, &op, &osm, 0).expect("inside").obligations().clip.is_none(), "inside: relayed as is");
        op.extent = tile(1, 0, 0);
        assert_eq!(judge(&g, &op, &osm, 0).err(), Some(Denial::OutsideGeofence), "wholly outside");
        op.extent = tile(11, 1024, 512);
        assert_eq!(judge(&g, &op, &osm, 0).err(), Some(Denial::ZoomAboveMax));
        op.extent = tile(1, 1, 0);
        osm.partial = Partial::Deny;
        assert_eq!(judge(&g, &op, &osm, 0).err(), Some(Denial::OutsideGeofence), "partial = deny");
    }

    #[test]
    fn a_vector_tile_is_clipped_only_as_a_tile() {
        let osm = path("osm", &["osm"], &[]);
        let fence = Fence::new(Some(&[(3, 4, 2)]), None).expect("fence");
        let g = grant(&[("osm", Tier::View)], fence, Scope::All);
        let mut op = Operation::simple("mvt.tile", Surface::Ogc, Tier::View, tile(2, 2, 1));
        op.clippable = Clippable::VectorTile;
        assert!(judge(&g, &op, &osm, 0).expect("clipped").obligations().clip.is_some_and(|c| c.vector));
        let bbox = BBox { crs: crate::spatial::Crs::Wgs84, min_x: -10.0, min_y: 0.0, max_x: 100.0, max_y: 80.0 };
        op.extent = Extent::BBox { bbox, zoom: None };
        assert_eq!(judge(&g, &op, &osm, 0).err(), Some(Denial::OutsideGeofence));
    }

    /// Attacker round 9: a vector tile's buffer reaches past its edges, so a tile inside
    /// the fence is clipped too, even where partial overlaps are denied; vector data
    /// inside the fence but not addressed as a tile cannot be, and is refused.
    #[test]
    fn a_vector_tile_inside_the_fence_is_clipped_for_its_buffer() {
        let mut osm = path("osm", &["osm"], &[]);
        let fence = Fence::new(Some(&[(2, 2, 1)]), None).expect("fence");
        let g = grant(&[("osm", Tier::View)], fence, Scope::All);
        let mut op = Operation::simple("mvt.tile", Surface::Ogc, Tier::View, tile(3, 4, 2));
        op.clippable = Clippable::VectorTile;
        for partial in [Partial::Clip, Partial::Deny] {
            osm.partial = partial;
            let clip = judge(&g, &op, &osm, 0).expect("inside").obligations().clip;
            assert!(clip.is_some_and(|c| c.vector && c.area == ClipArea::Tile(TileCoord::new(3, 4, 2).unwrap())));
        }
        // A raster tile inside has no buffer: relayed as it is.
        op.clippable = Clippable::Image { background: None };
        assert_eq!(judge(&g, &op, &osm, 0).expect("inside").obligations().clip, None);
        // A maxZoom-only fence bounds no space: nothing to clip.
        let zoom_only = grant(&[("osm", Tier::View)], Fence::new(None, Some(5)).expect("fence"), Scope::All);
        op.clippable = Clippable::VectorTile;
        assert_eq!(judge(&zoom_only, &op, &osm, 0).expect("inside").obligations().clip, None);
        let bbox = BBox { crs: crate::spatial::Crs::Wgs84, min_x: 10.0, min_y: 10.0, max_x: 20.0, max_y: 20.0 };
        op.extent = Extent::BBox { bbox, zoom: None };
        assert_eq!(judge(&g, &op, &osm, 0).err(), Some(Denial::FenceUnverifiable));
    }
}
