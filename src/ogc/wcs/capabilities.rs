//! WCS (1.0, 1.1, 2.0) capabilities: coverages filtered to the path's layers,
//! coverage id value lists trimmed, bounding boxes shrunk to a fence. URLs are
//! rewritten by the shared pass in [`capabilities`](crate::ogc::capabilities)
//! afterwards. Pure code.

use crate::ogc::capabilities::bbox::Bounds;
use crate::ogc::capabilities::ows::{filter_parameter_values, inside_fence};
use crate::ogc::capabilities::{finish, CapabilitiesError, Rewrite};
use crate::ogc::common::xml::{Doc, DocTypePolicy, Element};

fn filter_wcs(doc: &mut Doc, rw: &Rewrite<'_>) -> Result<(), CapabilitiesError> {
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

/// Rewrites a WCS 2.0 (also 1.0 and 1.1) GetCapabilities document: coverages are kept by
/// `<wcs:CoverageId>` (2.0), `<ows:Identifier>` (1.1) or `<name>` (1.0); for fenced
/// tokens OWS boxes shrink and coverages outside the fence go.
pub fn rewrite(xml: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, CapabilitiesError> {
    let map = rw.url_map()?;
    let mut doc = Doc::parse(xml, DocTypePolicy::Refuse)?;
    filter_wcs(&mut doc, rw)?;
    finish(doc, &map)
}
