//! WMS 1.1.1 and 1.3.0 capabilities: the layer tree filtered to the path's layers, the
//! 1.1.1 DOCTYPE kept safe, bounding boxes shrunk to a fence. URLs are rewritten by the
//! shared pass in `mod.rs` afterwards. Pure code.

use crate::ogc::capabilities::bbox::{fence_item, own_lonlat, Axes, Bounds, Box4, Placement};
use crate::ogc::capabilities::url::UrlMap;
use crate::ogc::capabilities::{finish, CapabilitiesError, Rewrite};
use crate::ogc::common::xml::{prefix, Doc, DocTypePolicy, Element};
use crate::ogc::wms::judged_crs;
use crate::ogc::DataFormat;

/// The DTD every WMS 1.1.1 document names; it replaces a DTD served by the upstream.
const WMS_111_DTD: &str = "http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd";

/// The OGC scale denominator of Web Mercator zoom 0 (256-pixel tiles, 0.28 mm pixels);
/// zoom z is this divided by 2^z, the same relation the policy's effective zoom uses.
const SCALE_DENOMINATOR_Z0: f64 = 559_082_264.028_717_8;

struct Ctx<'r, 'a> {
    rw: &'r Rewrite<'a>,
    bounds: Option<Bounds>,
    axes: Axes,
    /// WMS 1.3.0 with a fenced maxZoom: the smallest scale denominator a client may use.
    min_scale: Option<f64>,
}

fn filter(doc: &mut Doc, rw: &Rewrite<'_>, map: &UrlMap) -> Result<(), CapabilitiesError> {
    let axes = match doc.root.local() {
        "WMT_MS_Capabilities" => Axes::AlwaysXY,
        "WMS_Capabilities" => Axes::Authority,
        found => return Err(CapabilitiesError::WrongRoot { found: found.to_owned(), expected: "WMS" }),
    };
    if let Some(doctype) = doc.doctype_mut() {
        if axes != Axes::AlwaysXY {
            return Err(CapabilitiesError::DocType);
        }
        if map.leaks(doctype) {
            *doctype = canonical_doctype(doctype);
        }
    }
    let max_zoom = rw.limiting_fence().and_then(|f| f.max_zoom());
    let min_scale =
        max_zoom.filter(|_| axes == Axes::Authority).map(|z| SCALE_DENOMINATOR_Z0 / f64::from(1u32 << z.min(30)));
    let ctx = Ctx { rw, bounds: rw.bounds(), axes, min_scale };
    let Some(capability) = doc.root.child_mut("Capability") else {
        return Ok(());
    };
    let mut first = true;
    capability.retain_elements(|el| {
        if !el.is("Layer") {
            return true;
        }
        let keep = filter_layer(el, &ctx, None, true);
        // WMS needs its one root layer, even when nothing under it is left.
        let keep = keep || first;
        first = false;
        keep
    });
    if ctx.bounds.is_some() {
        limit_feature_info(capability);
    }
    Ok(())
}

/// For a token with fence tiles, feature answers pass the filter stage only as GeoJSON
/// (`proxy::filter::precheck` refuses the rest before forwarding), so other
/// GetFeatureInfo formats are not advertised; with none left, neither is GetFeatureInfo,
/// and no layer is `queryable`.
fn limit_feature_info(capability: &mut Element) {
    let mut none_left = false;
    if let Some(info) = capability.child_mut("Request").and_then(|r| r.child_mut("GetFeatureInfo")) {
        info.retain_elements(|f| !f.is("Format") || DataFormat::from_media_type(&f.text()) == DataFormat::Json);
        none_left = info.child("Format").is_none();
    }
    if !none_left {
        return;
    }
    if let Some(request) = capability.child_mut("Request") {
        request.retain_elements(|op| !op.is("GetFeatureInfo"));
    }
    capability.walk_mut(&mut |layer| {
        if layer.is("Layer") && layer.attr("queryable").is_some() {
            layer.set_attr("queryable", "0".to_owned());
        }
    });
}

/// The 1.1.1 DOCTYPE pointing at the OGC's DTD, keeping the internal subset (which
/// `Doc::parse` already checked holds no entity declarations).
fn canonical_doctype(doctype: &str) -> String {
    let subset = doctype.find('[').map(|i| &doctype[i..]).unwrap_or("");
    format!("WMT_MS_Capabilities SYSTEM \"{WMS_111_DTD}\" {subset}").trim_end().to_owned()
}

/// Filters one layer and its sub-layers; true when it stays.
fn filter_layer(layer: &mut Element, ctx: &Ctx<'_, '_>, inherited: Option<Box4>, root: bool) -> bool {
    if ctx.rw.limiting_fence().is_some() {
        drop_foreign_crs(layer, ctx.axes);
    }
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
        let keep = filter_layer(child, ctx, extent, false);
        any_child |= keep;
        keep
    });
    if !covered && name.is_some() {
        // An uncovered group layer that only holds covered layers: it may not be
        // requested itself, and what describes it (styles and legends, abstract,
        // keywords, metadata and data links, attribution, identifiers) names what the
        // token does not cover, so it all goes; the required Title becomes neutral.
        const DESCRIBING: [&str; 10] = [
            "Name",
            "Style",
            "Abstract",
            "KeywordList",
            "MetadataURL",
            "DataURL",
            "FeatureListURL",
            "Attribution",
            "AuthorityURL",
            "Identifier",
        ];
        // The root layer's title and abstract describe the service, and stay.
        let describing: &[&str] = if root { &DESCRIBING[..2] } else { &DESCRIBING };
        layer.retain_elements(|c| !describing.iter().any(|d| c.is(d)));
        if let (false, Some(title)) = (root, layer.child_mut("Title")) {
            title.set_text("Layers");
        }
    }
    let keep = covered || any_child;
    if let (true, Some(min_scale)) = (keep, ctx.min_scale) {
        limit_scale(layer, min_scale);
    }
    keep
}

/// A fenced token's maps in a CRS the gateway cannot judge are refused
/// (`unsupported_crs`), so such CRSs and their bounding boxes are not advertised to it:
/// a client then reprojects from one it may use instead of failing on every map.
fn drop_foreign_crs(layer: &mut Element, axes: Axes) {
    let wms13 = axes == Axes::Authority;
    let judged = |id: &str| judged_crs(id.trim(), wms13).is_some();
    layer.retain_elements(|el| {
        if el.is("SRS") || el.is("CRS") {
            // WMS 1.1.1 allows several identifiers in one element, space-separated.
            let text = el.text();
            let kept: Vec<&str> = text.split_whitespace().filter(|id| judged(id)).collect();
            if kept.len() != text.split_whitespace().count() && !kept.is_empty() {
                el.set_text(&kept.join(" "));
            }
            !kept.is_empty()
        } else if el.is("BoundingBox") {
            el.attr("SRS").or(el.attr("CRS")).is_none_or(judged)
        } else {
            true
        }
    });
}

/// Raises (or adds) a WMS 1.3.0 layer's `MinScaleDenominator` so clients stop
/// requesting maps above the fence's maxZoom. Written before `MaxScaleDenominator` and
/// sub-layers, where the schema wants it.
fn limit_scale(layer: &mut Element, min_scale: f64) {
    if let Some(existing) = layer.child_mut("MinScaleDenominator") {
        if existing.text().trim().parse::<f64>().map_or(true, |v| v < min_scale) {
            existing.set_text(&min_scale.to_string());
        }
        return;
    }
    let el = Element::with_text(format!("{}MinScaleDenominator", prefix(&layer.name)), &min_scale.to_string());
    match layer.position_of(&["MaxScaleDenominator", "Layer"]) {
        Some(at) => layer.insert_before(at, el),
        None => layer.append_element(el),
    }
}

/// Rewrites a WMS 1.1.1 or 1.3.0 GetCapabilities document.
///
/// Layers: a layer whose `<Name>` is covered stays (its children are judged on their
/// own). A layer that is not covered but has covered descendants stays as an unnamed
/// container (its `<Name>` and `<Style>`s removed, so it cannot be requested and names
/// no legend); otherwise it is removed. The root layer always stays (WMS needs one).
/// With a fence, bounding boxes shrink and layers whose geographic extent (own or
/// inherited) lies outside the fence count as not covered, and WMS 1.3.0 layers get a
/// `MinScaleDenominator` matching maxZoom, and CRSs the gateway cannot judge (with
/// their bounding boxes) are not advertised. With fence tiles, GetFeatureInfo keeps only
/// its GeoJSON formats (the only ones the gateway can filter), or goes when it has none.
///
/// ```
/// use tilegate::ogc::capabilities::Rewrite;
/// use tilegate::ogc::wms::capabilities::rewrite;
///
/// let layers = vec!["osm".to_owned()];
/// let rw = Rewrite {
///     token_query: Some("tg_abc"),
///     ..Rewrite::new("http://127.0.0.1:9001/service", "https://maps.example.org/ogc/wms/osm", &layers)
/// };
/// let upstream = br#"<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms"
///     xmlns:xlink="http://www.w3.org/1999/xlink">
///   <Service><OnlineResource xlink:href="http://127.0.0.1:9001/service?"/></Service>
///   <Capability><Layer><Title>root</Title>
///     <Layer><Name>osm</Name><Title>OSM</Title></Layer>
///     <Layer><Name>secret</Name><Title>Secret</Title></Layer>
///   </Layer></Capability>
/// </WMS_Capabilities>"#;
/// let out = String::from_utf8(rewrite(upstream, &rw)?).expect("UTF-8 in, UTF-8 out");
/// assert!(out.contains(r#"xlink:href="https://maps.example.org/ogc/wms/osm?token=tg_abc&amp;""#));
/// assert!(out.contains("<Name>osm</Name>") && !out.contains("secret"));
/// # Ok::<(), tilegate::ogc::capabilities::CapabilitiesError>(())
/// ```
pub fn rewrite(xml: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, CapabilitiesError> {
    let map = rw.url_map()?;
    let mut doc = Doc::parse(xml, DocTypePolicy::AllowWithoutEntities)?;
    filter(&mut doc, rw, &map)?;
    finish(doc, &map)
}
