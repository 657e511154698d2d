//! WMTS 1.0 capabilities (KVP and RESTful): layers filtered by identifier, themes
//! trimmed, unreachable `ResourceURL` templates removed, and for fenced tokens
//! `TileMatrixSetLimits` written for Web Mercator quad sets. URLs are rewritten by the
//! shared pass in `mod.rs` afterwards. Pure code.

use crate::spatial::{crs_from_identifier, Crs, MERCATOR_HALF_WORLD};

use super::bbox::{fence_item, Axes, Placement};
use super::url::{Mapped, UrlMap};
use super::xml::{prefix, Doc, Element};
use super::{CapabilitiesError, FenceView, Rewrite, TileLimits, WEB_MERCATOR_QUAD_SETS};

/// The deepest quad zoom whose tile indices fit the arithmetic below.
const MAX_QUAD_ZOOM: u8 = 30;

/// One tile matrix of a set definition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matrix {
    id: String,
    zoom: u8,
}

/// A `<TileMatrixSet>` definition from `<Contents>`.
#[derive(Debug, Clone)]
struct MatrixSet {
    id: String,
    /// A Web Mercator quad set: matrix zoom z has 2^z × 2^z tiles from the NW corner.
    quad: bool,
    matrices: Vec<Matrix>,
}

fn number<T: std::str::FromStr>(el: &Element, child: &str) -> Option<T> {
    el.child_text(child)?.parse().ok()
}

/// True when a matrix has the shape of Web Mercator quad level `log2(width)`.
fn quad_shape(m: &Element) -> Option<u8> {
    let width: u64 = number(m, "MatrixWidth")?;
    let height: u64 = number(m, "MatrixHeight")?;
    let corner = m.child_text("TopLeftCorner")?;
    let mut xy = corner.split_whitespace().map(|v| v.parse::<f64>().ok());
    let (x, y) = (xy.next()??, xy.next()??);
    let near = |a: f64, b: f64| (a - b).abs() < 1.0;
    let zoom = u8::try_from(width.trailing_zeros()).ok()?;
    (width == height
        && width.is_power_of_two()
        && near(x, -MERCATOR_HALF_WORLD)
        && near(y, MERCATOR_HALF_WORLD))
    .then_some(zoom)
}

/// The digits after a matrix identifier's last `:` (`05`, `EPSG:3857:5`).
fn zoom_from_identifier(id: &str) -> Option<u8> {
    let digits = id.rsplit(':').next()?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl MatrixSet {
    fn read(el: &Element, extra_quad: &[String]) -> Option<MatrixSet> {
        let id = el.child_text("Identifier")?;
        let shapes: Vec<(String, Option<u8>)> = el
            .elements()
            .filter(|m| m.is("TileMatrix"))
            .map(|m| {
                (
                    m.child_text("Identifier").unwrap_or_default(),
                    quad_shape(m),
                )
            })
            .collect();
        let named =
            WEB_MERCATOR_QUAD_SETS.contains(&id.as_str()) || extra_quad.iter().any(|q| q == &id);
        let well_known = el
            .child_text("WellKnownScaleSet")
            .is_some_and(|s| s.to_ascii_lowercase().contains("googlemapscompatible"));
        let mercator = el
            .child_text("SupportedCRS")
            .and_then(|c| crs_from_identifier(&c))
            .is_some_and(|(crs, _)| crs == Crs::WebMercator);
        let shaped = !shapes.is_empty() && shapes.iter().all(|(_, z)| z.is_some());
        let quad = named || well_known || (mercator && shaped);
        let matrices = shapes
            .into_iter()
            .enumerate()
            .filter_map(|(index, (mid, shape))| {
                let zoom = shape
                    .or_else(|| zoom_from_identifier(&mid))
                    .or_else(|| u8::try_from(index).ok())?;
                Some(Matrix { id: mid, zoom })
            })
            .collect();
        Some(MatrixSet { id, quad, matrices })
    }
}

pub(super) fn filter(
    doc: &mut Doc,
    rw: &Rewrite<'_>,
    map: &UrlMap,
) -> Result<(), CapabilitiesError> {
    let is_wmts = doc.root.is("Capabilities")
        && doc
            .root_namespace()
            .is_some_and(|ns| ns.starts_with("http://www.opengis.net/wmts/1.0"));
    if !is_wmts {
        return Err(CapabilitiesError::WrongRoot {
            found: doc.root.name.clone(),
            expected: "WMTS 1.0",
        });
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
            // A template outside the upstream base cannot be reached through the gateway.
            layer.retain_elements(|c| {
                !(c.is("ResourceURL")
                    && c.attr("template")
                        .is_some_and(|t| matches!(map.map(t.trim()), Mapped::Outside { .. })))
            });
            if bounds.is_some_and(|b| fence_item(layer, &b, Axes::Authority) == Placement::Outside)
            {
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
        if let Some(max) = fence.and_then(|f| f.max_zoom()) {
            for set_el in contents.elements_mut().filter(|e| e.is("TileMatrixSet")) {
                let Some(set) = set_el
                    .child_text("Identifier")
                    .and_then(|id| sets.iter().find(|s| s.id == id))
                else {
                    continue;
                };
                if !set.quad {
                    continue;
                }
                set_el.retain_elements(|m| {
                    !m.is("TileMatrix")
                        || m.child_text("Identifier").is_none_or(|mid| {
                            set.matrices.iter().any(|x| x.id == mid && x.zoom <= max)
                        })
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
        let set = link
            .child_text("TileMatrixSet")
            .and_then(|id| sets.iter().find(|s| s.id == id));
        let Some(set) = set.filter(|s| s.quad) else {
            return false;
        };
        let declared = declared_limits(link);
        let p = prefix(&link.name).to_owned();
        let mut limits = Element::new(format!("{p}TileMatrixSetLimits"));
        for matrix in set.matrices.iter().filter(|m| m.zoom <= max_zoom) {
            let last = (1u32 << matrix.zoom) - 1;
            let mut lim: Limits = match fence.tile_limits(matrix.zoom) {
                TileLimits::All => (0, last, 0, last),
                TileLimits::Range {
                    min_col,
                    max_col,
                    min_row,
                    max_row,
                } => {
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
                lim = (
                    lim.0.max(d.0),
                    lim.1.min(d.1),
                    lim.2.max(d.2),
                    lim.3.min(d.3),
                );
            }
            if lim.0 > lim.1 || lim.2 > lim.3 {
                continue;
            }
            let mut entry = Element::new(format!("{p}TileMatrixLimits"));
            entry.push(Element::with_text(format!("{p}TileMatrix"), &matrix.id));
            for (name, v) in [
                ("MinTileRow", lim.2),
                ("MaxTileRow", lim.3),
                ("MinTileCol", lim.0),
                ("MaxTileCol", lim.1),
            ] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_zoom_comes_from_the_identifier_when_the_shape_says_nothing() {
        assert_eq!(zoom_from_identifier("05"), Some(5));
        assert_eq!(zoom_from_identifier("EPSG:3857:12"), Some(12));
        assert_eq!(zoom_from_identifier("level-a"), None);
        assert_eq!(zoom_from_identifier(""), None);
    }
}
