//! WFS (1.0, 1.1, 2.0) and WCS (1.0, 1.1, 2.0) capabilities: feature types and coverages
//! filtered to the path's layers, parameter value lists trimmed, bounding boxes shrunk
//! to a fence. URLs are rewritten by the shared pass in `mod.rs` afterwards. Pure code.

use super::bbox::{fence_item, Axes, Bounds, Placement};
use super::xml::{Doc, Element};
use super::{CapabilitiesError, Rewrite};

/// True when the item may stay as far as the fence is concerned (shrinking its boxes).
fn inside_fence(item: &mut Element, bounds: Option<&Bounds>) -> bool {
    bounds.is_none_or(|b| fence_item(item, b, Axes::Authority) != Placement::Outside)
}

/// Keeps only covered names in `<ows:Parameter name="…">` value lists for these
/// (lower-case) parameter names, e.g. MapServer's `typename` list. A parameter left
/// without values is removed (an empty `AllowedValues` is not valid).
fn filter_parameter_values(el: &mut Element, rw: &Rewrite<'_>, parameters: &[&str]) {
    el.retain_elements(|child| {
        let listed = child.is("Parameter")
            && child.attr("name").is_some_and(|n| parameters.contains(&n.to_ascii_lowercase().as_str()));
        if !listed {
            filter_parameter_values(child, rw, parameters);
            return true;
        }
        child.walk_mut(&mut |e| e.retain_elements(|v| !v.is("Value") || rw.covers(v.text().trim())));
        child.has_descendant("Value")
    });
}

pub(super) fn filter_wfs(doc: &mut Doc, rw: &Rewrite<'_>) -> Result<(), CapabilitiesError> {
    if !doc.root.is("WFS_Capabilities") {
        return Err(CapabilitiesError::WrongRoot { found: doc.root.name.clone(), expected: "WFS" });
    }
    let bounds = rw.bounds();
    if let Some(list) = doc.root.child_mut("FeatureTypeList") {
        list.retain_elements(|ft| {
            !ft.is("FeatureType")
                || (ft.child_text("Name").is_some_and(|n| rw.covers(&n)) && inside_fence(ft, bounds.as_ref()))
        });
    }
    filter_parameter_values(&mut doc.root, rw, &["typename", "typenames"]);
    Ok(())
}

pub(super) fn filter_wcs(doc: &mut Doc, rw: &Rewrite<'_>) -> Result<(), CapabilitiesError> {
    let is_wcs = doc.root.is("WCS_Capabilities")
        || (doc.root.is("Capabilities")
            && doc.root_namespace().is_some_and(|ns| ns.starts_with("http://www.opengis.net/wcs/")));
    if !is_wcs {
        return Err(CapabilitiesError::WrongRoot { found: doc.root.name.clone(), expected: "WCS" });
    }
    let bounds = rw.bounds();
    // WCS 1.0: <ContentMetadata><CoverageOfferingBrief><name>.
    if let Some(meta) = doc.root.child_mut("ContentMetadata") {
        meta.retain_elements(|c| !c.is("CoverageOfferingBrief") || c.child_text("name").is_some_and(|n| rw.covers(&n)));
    }
    // WCS 1.1 and 2.0: <Contents><CoverageSummary> by CoverageId (2.0) or Identifier (1.1).
    if let Some(contents) = doc.root.child_mut("Contents") {
        contents.retain_elements(|c| !c.is("CoverageSummary") || filter_coverage(c, rw, bounds.as_ref()));
    }
    filter_parameter_values(&mut doc.root, rw, &["coverageid", "identifier", "identifiers", "coverage"]);
    Ok(())
}

/// One coverage summary (WCS 1.1 nests them); true when it stays. An uncovered summary
/// with covered children stays as an unnamed group.
fn filter_coverage(summary: &mut Element, rw: &Rewrite<'_>, bounds: Option<&Bounds>) -> bool {
    let id = summary.child_text("CoverageId").or_else(|| summary.child_text("Identifier"));
    let inside = inside_fence(summary, bounds);
    let covered = inside && id.as_deref().is_some_and(|i| rw.covers(i));
    let mut any_child = false;
    summary.retain_elements(|c| {
        if !c.is("CoverageSummary") {
            return true;
        }
        let keep = filter_coverage(c, rw, bounds);
        any_child |= keep;
        keep
    });
    if !covered && id.is_some() && any_child {
        summary.retain_elements(|c| !c.is("CoverageId") && !c.is("Identifier"));
    }
    covered || any_child
}
