//! WFS (1.0, 1.1, 2.0) capabilities: feature types filtered to the path's layers,
//! `typename` value lists trimmed, bounding boxes shrunk to a fence. URLs are rewritten
//! by the shared pass in [`capabilities`](crate::ogc::capabilities) afterwards. Pure code.

use crate::ogc::capabilities::ows::{filter_parameter_values, inside_fence};
use crate::ogc::capabilities::{finish, CapabilitiesError, Rewrite};
use crate::ogc::common::xml::{Doc, DocTypePolicy, Element};
use crate::ogc::DataFormat;

fn filter_wfs(doc: &mut Doc, rw: &Rewrite<'_>) -> Result<(), CapabilitiesError> {
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
    if bounds.is_some() {
        if let Some(ops) = doc.root.child_mut("OperationsMetadata") {
            limit_feature_formats(ops);
        }
    }
    Ok(())
}

/// For a token with fence tiles, features pass the filter stage only as GeoJSON or GML
/// (`proxy::filter::precheck` refuses the rest before forwarding), so the feature
/// operations' `outputFormat` lists keep only GeoJSON and GML values; a list left empty goes
/// (an empty `AllowedValues` is not valid). Schemas (DescribeFeatureType) keep theirs.
fn limit_feature_formats(ops: &mut Element) {
    ops.retain_elements(|el| {
        if el.is("Operation") && el.attr("name") != Some("DescribeFeatureType") {
            limit_feature_formats(el);
            return true;
        }
        if !(el.is("Parameter") && el.attr("name").is_some_and(|n| n.eq_ignore_ascii_case("outputFormat"))) {
            return true;
        }
        el.walk_mut(&mut |e| {
            e.retain_elements(|v| {
                !v.is("Value") || matches!(DataFormat::from_media_type(&v.text()), DataFormat::Json | DataFormat::Xml)
            })
        });
        el.has_descendant("Value")
    });
}

/// Rewrites a WFS 1.0, 1.1 or 2.0 GetCapabilities document: `<FeatureType>`s are kept by
/// `<Name>` exactly as written (with its prefix), `typeName(s)` parameter value lists
/// are trimmed, and for fenced tokens boxes shrink, types outside the fence go, and the
/// feature operations' `outputFormat` lists keep only GeoJSON and GML (the formats the
/// gateway can filter by the fence).
pub fn rewrite(xml: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, CapabilitiesError> {
    let map = rw.url_map()?;
    let mut doc = Doc::parse(xml, DocTypePolicy::Refuse)?;
    filter_wfs(&mut doc, rw)?;
    finish(doc, &map)
}
