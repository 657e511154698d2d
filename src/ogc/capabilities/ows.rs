//! OWS Common pieces of capabilities filtering that WFS and WCS share: the fence
//! test for one listed item and the trimming of `<ows:Parameter>` value lists. Pure code.

use super::bbox::{fence_item, Axes, Bounds, Placement};
use super::Rewrite;
use crate::ogc::common::xml::Element;

/// True when the item may stay as far as the fence is concerned (shrinking its boxes).
pub(crate) fn inside_fence(item: &mut Element, bounds: Option<&Bounds>) -> bool {
    bounds.is_none_or(|b| fence_item(item, b, Axes::Authority) != Placement::Outside)
}

/// Keeps only covered names in `<ows:Parameter name="…">` value lists for these
/// (lower-case) parameter names, e.g. MapServer's `typename` list. A parameter left
/// without values is removed (an empty `AllowedValues` is not valid).
pub(crate) fn filter_parameter_values(el: &mut Element, rw: &Rewrite<'_>, parameters: &[&str]) {
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
