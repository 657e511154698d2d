//! WMS 1.1.1 and 1.3.0 capabilities: the layer tree filtered to the path's layers, the
//! 1.1.1 DOCTYPE kept safe, bounding boxes shrunk to a fence. URLs are rewritten by the
//! shared pass in `mod.rs` afterwards. Pure code.

use super::bbox::{fence_item, own_lonlat, Axes, Bounds, Box4, Placement};
use super::url::UrlMap;
use super::xml::{Doc, Element};
use super::{CapabilitiesError, Rewrite};

/// The DTD every WMS 1.1.1 document names; it replaces a DTD served by the upstream.
const WMS_111_DTD: &str = "http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd";

struct Ctx<'r, 'a> {
    rw: &'r Rewrite<'a>,
    bounds: Option<Bounds>,
    axes: Axes,
}

pub(super) fn filter(
    doc: &mut Doc,
    rw: &Rewrite<'_>,
    map: &UrlMap,
) -> Result<(), CapabilitiesError> {
    let axes = match doc.root.local() {
        "WMT_MS_Capabilities" => Axes::AlwaysXY,
        "WMS_Capabilities" => Axes::Authority,
        found => {
            return Err(CapabilitiesError::WrongRoot {
                found: found.to_owned(),
                expected: "WMS",
            })
        }
    };
    if let Some(doctype) = doc.doctype_mut() {
        if axes != Axes::AlwaysXY {
            return Err(CapabilitiesError::DocType);
        }
        if map.leaks(doctype) {
            *doctype = canonical_doctype(doctype);
        }
    }
    let ctx = Ctx {
        rw,
        bounds: rw.bounds(),
        axes,
    };
    let Some(capability) = doc.root.child_mut("Capability") else {
        return Ok(());
    };
    let mut first = true;
    capability.retain_elements(|el| {
        if !el.is("Layer") {
            return true;
        }
        let keep = filter_layer(el, &ctx, None);
        // WMS needs its one root layer, even when nothing under it is left.
        let keep = keep || first;
        first = false;
        keep
    });
    Ok(())
}

/// The 1.1.1 DOCTYPE pointing at the OGC's DTD, keeping the internal subset (which
/// `Doc::parse` already checked holds no entity declarations).
fn canonical_doctype(doctype: &str) -> String {
    let subset = doctype.find('[').map(|i| &doctype[i..]).unwrap_or("");
    format!("WMT_MS_Capabilities SYSTEM \"{WMS_111_DTD}\" {subset}")
        .trim_end()
        .to_owned()
}

/// Filters one layer and its sub-layers; true when it stays.
fn filter_layer(layer: &mut Element, ctx: &Ctx<'_, '_>, inherited: Option<Box4>) -> bool {
    // Read before shrinking: children inherit the declared extent.
    let extent = own_lonlat(layer, ctx.axes).or(inherited);
    let inside = match &ctx.bounds {
        None => true,
        Some(bounds) => match fence_item(layer, bounds, ctx.axes) {
            Placement::Inside => true,
            Placement::Outside => false,
            Placement::Unknown => extent.is_none_or(|e| bounds.intersects_lonlat(e)),
        },
    };
    let name = layer.child_text("Name");
    let covered = inside && name.as_deref().is_some_and(|n| ctx.rw.covers(n));
    let mut any_child = false;
    layer.retain_elements(|child| {
        if !child.is("Layer") {
            return true;
        }
        let keep = filter_layer(child, ctx, extent);
        any_child |= keep;
        keep
    });
    if !covered && name.is_some() {
        // An uncovered group layer that only holds covered layers: it may not be
        // requested itself, and its styles (legends) describe it, so both go.
        layer.retain_elements(|c| !c.is("Name") && !c.is("Style"));
    }
    covered || any_child
}
