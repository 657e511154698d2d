//! WMTS 1.0 capabilities (KVP and RESTful): layers filtered by identifier, themes
//! trimmed, unreachable `ResourceURL` templates removed, and for fenced tokens
//! `TileMatrixSetLimits` written for Web Mercator quad sets. URLs are rewritten by the
//! shared pass in `mod.rs` afterwards. Pure code.

use crate::ogc::capabilities::bbox::{fence_item, Axes, Placement};
use crate::ogc::capabilities::url::{Mapped, UrlMap};
use crate::ogc::capabilities::{finish, CapabilitiesError, FenceView, Rewrite, TileLimits};
use crate::ogc::common::matrix::{is_quad_set, matrix_zoom, MAX_QUAD_ZOOM};
use crate::ogc::common::xml::{prefix, Doc, DocTypePolicy, Element};

/// One tile matrix of a set definition and the zoom it stands for: `None` when its
/// identifier names no zoom or its size is not that zoom's 2^z × 2^z.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matrix {
    id: String,
    zoom: Option<u8>,
}

/// A `<TileMatrixSet>` definition from `<Contents>`.
#[derive(Debug, Clone)]
struct MatrixSet {
    id: String,
    /// Named as a Web Mercator quad set: the policy maps its tiles to z/x/y, so the
    /// fence can be expressed in it. Other sets are not guessed from their definition,
    /// because a set the policy does not map would only advertise tiles it denies.
    quad: bool,
    matrices: Vec<Matrix>,
}

fn number<T: std::str::FromStr>(el: &Element, child: &str) -> Option<T> {
    el.child_text(child)?.parse().ok()
}

/// A matrix's zoom, when its identifier names one in `set` (the one parser the
/// classifier uses too) and its declared size agrees.
fn declared_zoom(set: &str, m: &Element) -> Option<u8> {
    let zoom = matrix_zoom(set, m.child_text("Identifier")?.trim())?;
    debug_assert!(zoom <= MAX_QUAD_ZOOM);
    let side = 1u64 << zoom;
    let fits = |name: &str| number::<u64>(m, name).is_none_or(|n| n == side);
    (fits("MatrixWidth") && fits("MatrixHeight")).then_some(zoom)
}

impl MatrixSet {
    fn read(el: &Element, extra_quad: &[String]) -> Option<MatrixSet> {
        let id = el.child_text("Identifier")?;
        let quad = is_quad_set(&id, extra_quad);
        let matrices = el
            .elements()
            .filter(|m| m.is("TileMatrix"))
            .map(|m| Matrix { id: m.child_text("Identifier").unwrap_or_default(), zoom: declared_zoom(&id, m) })
            .collect();
        Some(MatrixSet { id, quad, matrices })
    }
}

fn filter(doc: &mut Doc, rw: &Rewrite<'_>, map: &UrlMap) -> Result<(), CapabilitiesError> {
    let is_wmts = doc.root.is("Capabilities")
        && doc.root_namespace().is_some_and(|ns| ns.starts_with("http://www.opengis.net/wmts/1.0"));
    if !is_wmts {
        return Err(CapabilitiesError::WrongRoot { found: doc.root.name.clone(), expected: "WMTS 1.0" });
    }
    let fence = rw.limiting_fence();
    let bounds = rw.bounds();
    let mut kept: Vec<String> = Vec::new();
    if let Some(contents) = doc.root.child_mut("Contents") {
        let sets: Vec<MatrixSet> = contents
            .elements()
            .filter(|e| e.is("TileMatrixSet"))
            .filter_map(|e| MatrixSet::read(e, rw.quad_matrix_sets))
            .collect();
        contents.retain_elements(|layer| {
            if !layer.is("Layer") {
                return true;
            }
            let Some(id) = layer.child_text("Identifier").filter(|id| rw.covers(id)) else {
                return false;
            };
            // A template outside the upstream base cannot be reached through the gateway,
            // and the classifier serves RESTful tiles only (REST GetFeatureInfo is a 400).
            // A tile template the gateway's REST route does not read would be advertised
            // and then refused: removed too.
            let unserved = |t: &str| {
                rw.rest_template.is_some_and(|served| {
                    !map.path_under_base(t.trim()).is_some_and(|suffix| super::serves_resource_template(served, suffix))
                })
            };
            layer.retain_elements(|c| {
                !(c.is("ResourceURL")
                    && (c.attr("resourceType").is_some_and(|t| t != "tile")
                        || c.attr("template")
                            .is_some_and(|t| matches!(map.map(t.trim()), Mapped::Outside { .. }) || unserved(t))))
            });
            if bounds.is_some_and(|b| fence_item(layer, &b, Axes::Authority) == Placement::Outside) {
                return false;
            }
            if let Some(fence) = fence {
                limit_links(layer, fence, &sets);
                if layer.child("TileMatrixSetLink").is_none() {
                    return false;
                }
            }
            kept.push(id);
            true
        });
        if let Some(fence) = fence {
            let max = fence.max_zoom().unwrap_or(MAX_QUAD_ZOOM);
            // A matrix above maxZoom, or at a zoom where the fence lets no tile through
            // (above every fence tile), could only be asked for tiles that are refused.
            let usable = |z: u8| z <= max && fence.tile_limits(z) != TileLimits::Nothing;
            for set_el in contents.elements_mut().filter(|e| e.is("TileMatrixSet")) {
                let Some(set) = set_el.child_text("Identifier").and_then(|id| sets.iter().find(|s| s.id == id)) else {
                    continue;
                };
                if !set.quad {
                    continue;
                }
                set_el.retain_elements(|m| {
                    !m.is("TileMatrix")
                        || m.child_text("Identifier")
                            .is_some_and(|mid| set.matrices.iter().any(|x| x.id == mid && x.zoom.is_some_and(usable)))
                });
            }
        }
    }
    filter_themes(&mut doc.root, &kept);
    Ok(())
}

/// Inclusive tile index limits of one matrix: `(min_col, max_col, min_row, max_row)`.
type Limits = (u32, u32, u32, u32);

/// The upstream's own limits in a link, by matrix identifier.
fn declared_limits(link: &Element) -> Option<Vec<(String, Limits)>> {
    let limits = link.child("TileMatrixSetLimits")?;
    Some(
        limits
            .elements()
            .filter(|l| l.is("TileMatrixLimits"))
            .filter_map(|l| {
                Some((
                    l.child_text("TileMatrix")?,
                    (
                        number(l, "MinTileCol")?,
                        number(l, "MaxTileCol")?,
                        number(l, "MinTileRow")?,
                        number(l, "MaxTileRow")?,
                    ),
                ))
            })
            .collect(),
    )
}

/// Keeps only links to Web Mercator quad sets, each with the fence's limits.
fn limit_links(layer: &mut Element, fence: &dyn FenceView, sets: &[MatrixSet]) {
    let max_zoom = fence.max_zoom().unwrap_or(MAX_QUAD_ZOOM).min(MAX_QUAD_ZOOM);
    layer.retain_elements(|link| {
        if !link.is("TileMatrixSetLink") {
            return true;
        }
        let set = link.child_text("TileMatrixSet").and_then(|id| sets.iter().find(|s| s.id == id));
        let Some(set) = set.filter(|s| s.quad) else {
            return false;
        };
        let declared = declared_limits(link);
        let p = prefix(&link.name).to_owned();
        let mut limits = Element::new(format!("{p}TileMatrixSetLimits"));
        let levels = set.matrices.iter().filter_map(|m| Some((m, m.zoom.filter(|z| *z <= max_zoom)?)));
        for (matrix, zoom) in levels {
            let last = (1u32 << zoom) - 1;
            let mut lim: Limits = match fence.tile_limits(zoom) {
                TileLimits::All => (0, last, 0, last),
                TileLimits::Range { min_col, max_col, min_row, max_row } => {
                    if min_col > last || min_row > last {
                        continue;
                    }
                    (min_col, max_col.min(last), min_row, max_row.min(last))
                }
                TileLimits::Nothing => continue,
            };
            if let Some(declared) = &declared {
                // The upstream offers nothing outside its own limits.
                let Some((_, d)) = declared.iter().find(|(id, _)| id == &matrix.id) else {
                    continue;
                };
                lim = (lim.0.max(d.0), lim.1.min(d.1), lim.2.max(d.2), lim.3.min(d.3));
            }
            if lim.0 > lim.1 || lim.2 > lim.3 {
                continue;
            }
            let mut entry = Element::new(format!("{p}TileMatrixLimits"));
            entry.push(Element::with_text(format!("{p}TileMatrix"), &matrix.id));
            for (name, v) in
                [("MinTileRow", lim.2), ("MaxTileRow", lim.3), ("MinTileCol", lim.0), ("MaxTileCol", lim.1)]
            {
                entry.push(Element::with_text(format!("{p}{name}"), &v.to_string()));
            }
            limits.push(entry);
        }
        if limits.children.is_empty() {
            return false;
        }
        link.retain_elements(|c| !c.is("TileMatrixSetLimits"));
        match link.position_of(&["TileMatrixSet"]) {
            Some(at) => link.insert_after(at, limits),
            None => link.append_element(limits),
        }
        true
    });
}

/// Drops `LayerRef`s to removed layers and themes left with neither layers nor themes.
fn filter_themes(root: &mut Element, kept: &[String]) {
    fn keep_theme(theme: &mut Element, kept: &[String]) -> bool {
        theme.retain_elements(|c| {
            if c.is("LayerRef") {
                kept.iter().any(|k| k == c.text().trim())
            } else if c.is("Theme") {
                keep_theme(c, kept)
            } else {
                true
            }
        });
        theme.elements().any(|c| c.is("LayerRef") || c.is("Theme"))
    }
    let mut empty = false;
    if let Some(themes) = root.child_mut("Themes") {
        themes.retain_elements(|t| !t.is("Theme") || keep_theme(t, kept));
        empty = themes.child("Theme").is_none();
    }
    if empty {
        root.retain_elements(|e| !e.is("Themes"));
    }
}

/// Rewrites a WMTS 1.0 GetCapabilities document (KVP and RESTful).
///
/// Layers are kept by `<ows:Identifier>`; `<Themes>` lose references to removed layers
/// and themes left empty. `ResourceURL` templates are rewritten, or removed when the
/// gateway cannot reach them or serve them (any `resourceType` but `tile`: the classifier
/// refuses RESTful GetFeatureInfo). For fenced tokens: links to Web Mercator quad sets (by
/// identifier, see [`WEB_MERCATOR_QUAD_SETS`](crate::ogc::common::matrix::WEB_MERCATOR_QUAD_SETS)) get `TileMatrixSetLimits` (one
/// `TileMatrixLimits` per matrix at or below maxZoom that the fence reaches, intersected
/// with limits the upstream declared; matrices the fence does not reach are left out),
/// links to other sets are removed (the policy cannot check their tiles), layers left
/// without a link or outside the fence are removed, and quad set definitions lose
/// matrices above maxZoom and those at zooms where the fence lets no tile through. A matrix's zoom is [`matrix_zoom`](crate::ogc::common::matrix::matrix_zoom) of its identifier,
/// provided its `MatrixWidth`/`MatrixHeight` are 2^zoom.
pub fn rewrite(xml: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, CapabilitiesError> {
    let map = rw.url_map()?;
    let mut doc = Doc::parse(xml, DocTypePolicy::Refuse)?;
    filter(&mut doc, rw, &map)?;
    finish(doc, &map)
}
