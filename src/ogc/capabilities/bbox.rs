//! Shrinking advertised bounding boxes to a token's geofence.
//!
//! Knows the bounding-box elements of WMS 1.1.1/1.3.0 (`LatLonBoundingBox`,
//! `EX_GeographicBoundingBox`, `BoundingBox` with attributes), WFS 1.0
//! (`LatLongBoundingBox`) and OWS 1.x/2.0 (`ows:WGS84BoundingBox`, `ows:BoundingBox` with
//! corners). Geographic and Web Mercator boxes shrink to their intersection with the
//! fence; a box in any other CRS is left as declared (it only describes, the fence still
//! decides every request). Pure code.

use crate::spatial::{crs_from_identifier, mercator_from_lonlat, AxisOrder, Crs};

use super::xml::Element;
use super::FenceView;

/// `[min_x, min_y, max_x, max_y]`, x first (longitude or easting).
pub(crate) type Box4 = [f64; 4];

/// A fence's extent in both CRSs the gateway reasons about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    lonlat: Box4,
    mercator: Box4,
}

/// A lon/lat box in Web Mercator metres (latitudes clamped onto the square's edge).
fn lonlat_to_mercator(b: Box4) -> Box4 {
    let (min_x, min_y) = mercator_from_lonlat(b[0], b[1]);
    let (max_x, max_y) = mercator_from_lonlat(b[2], b[3]);
    [min_x, min_y, max_x, max_y]
}

impl Bounds {
    /// The fence's extent, `None` when it has no tiles (only a maxZoom).
    pub(crate) fn of(fence: &dyn FenceView) -> Option<Bounds> {
        let lonlat = fence.bounds_lonlat()?;
        let mercator = fence.bounds_mercator().unwrap_or_else(|| lonlat_to_mercator(lonlat));
        Some(Bounds { lonlat, mercator })
    }

    fn for_crs(&self, crs: Crs) -> Box4 {
        match crs {
            Crs::Wgs84 => self.lonlat,
            Crs::WebMercator => self.mercator,
        }
    }

    /// True when a lon/lat box touches the fence.
    pub(crate) fn intersects_lonlat(&self, b: Box4) -> bool {
        self.clip_lonlat(b).is_some()
    }

    /// A lon/lat box cut down to the fence; `None` when it lies outside.
    pub(crate) fn clip_lonlat(&self, b: Box4) -> Option<Box4> {
        intersect(b, self.lonlat)
    }
}

/// The intersection of two x-first boxes; `None` when they are disjoint. Boxes that only
/// touch, and degenerate (point) boxes, intersect.
fn intersect(a: Box4, b: Box4) -> Option<Box4> {
    let r = [a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])];
    (r[0] <= r[2] && r[1] <= r[3]).then_some(r)
}

/// Shortest decimal that reads back as the same number (`10`, `-20037508.342789244`).
fn fmt(v: f64) -> String {
    format!("{v}")
}

/// What happened to one bounding-box element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Shrunk to (or already inside) the fence.
    Shrunk,
    /// Wholly outside the fence; the caller removes it.
    Disjoint,
    /// A CRS we cannot reason about, or unreadable numbers: left as declared.
    Unknown,
}

/// One bounding-box element processed: whether it is geographic, and the outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxResult {
    pub geographic: bool,
    pub outcome: Outcome,
}

/// How a protocol reads axis order for a `BoundingBox` CRS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Axes {
    /// WMS 1.1.1: always x,y whatever the authority says.
    AlwaysXY,
    /// WMS 1.3.0 and OWS: the authority's order (EPSG:4326 is lat,lon).
    Authority,
}

/// Where a bounding-box element keeps its four numbers, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `minx miny maxx maxy` attributes (WMS, WFS 1.0).
    Attributes,
    /// `LowerCorner`/`UpperCorner` texts (OWS).
    Corners,
    /// WMS 1.3.0 `EX_GeographicBoundingBox` bound children.
    Bounds,
}

const ATTRIBUTES: [&str; 4] = ["minx", "miny", "maxx", "maxy"];
const GEOGRAPHIC_BOUNDS: [&str; 4] =
    ["westBoundLongitude", "southBoundLatitude", "eastBoundLongitude", "northBoundLatitude"];

/// A bounding box as an element declares it.
#[derive(Debug, Clone, Copy)]
struct Declared {
    crs: Crs,
    axis: AxisOrder,
    layout: Layout,
    /// The numbers in the order they are written.
    wire: Box4,
}

impl Declared {
    fn x_first(&self) -> Box4 {
        swap_axes(self.axis, self.wire)
    }
}

/// Converts between wire order and x-first order (the swap is its own inverse).
fn swap_axes(axis: AxisOrder, b: Box4) -> Box4 {
    match axis {
        AxisOrder::XY => b,
        AxisOrder::YX => [b[1], b[0], b[3], b[2]],
    }
}

fn parse4(values: [Option<&str>; 4]) -> Option<Box4> {
    let mut out = [0.0; 4];
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = value?.trim().parse().ok().filter(|v: &f64| v.is_finite())?;
    }
    Some(out)
}

fn read_numbers(el: &Element, layout: Layout) -> Option<Box4> {
    match layout {
        Layout::Attributes => parse4(ATTRIBUTES.map(|k| el.attr(k))),
        Layout::Bounds => {
            let t = GEOGRAPHIC_BOUNDS.map(|k| el.child_text(k));
            parse4([t[0].as_deref(), t[1].as_deref(), t[2].as_deref(), t[3].as_deref()])
        }
        Layout::Corners => {
            let (lower, upper) = (el.child_text("LowerCorner")?, el.child_text("UpperCorner")?);
            let (mut l, mut u) = (lower.split_whitespace(), upper.split_whitespace());
            let b = parse4([l.next(), l.next(), u.next(), u.next()])?;
            (l.next().is_none() && u.next().is_none()).then_some(b)
        }
    }
}

fn write_numbers(el: &mut Element, layout: Layout, b: Box4) {
    match layout {
        Layout::Attributes => {
            for (key, v) in ATTRIBUTES.iter().zip(b) {
                el.set_attr(key, fmt(v));
            }
        }
        Layout::Bounds => {
            for (key, v) in GEOGRAPHIC_BOUNDS.iter().zip(b) {
                if let Some(c) = el.child_mut(key) {
                    c.set_text(&fmt(v));
                }
            }
        }
        Layout::Corners => {
            if let Some(c) = el.child_mut("LowerCorner") {
                c.set_text(&format!("{} {}", fmt(b[0]), fmt(b[1])));
            }
            if let Some(c) = el.child_mut("UpperCorner") {
                c.set_text(&format!("{} {}", fmt(b[2]), fmt(b[3])));
            }
        }
    }
}

/// Reads a bounding-box element: `None` when `el` is not one, `Some(None)` when it is
/// one we cannot reason about (unknown CRS, unreadable numbers).
fn read_box(el: &Element, axes: Axes) -> Option<Option<Declared>> {
    let geographic = |layout| {
        Some(read_numbers(el, layout).map(|wire| Declared { crs: Crs::Wgs84, axis: AxisOrder::XY, layout, wire }))
    };
    match el.local() {
        "LatLonBoundingBox" | "LatLongBoundingBox" => geographic(Layout::Attributes),
        "EX_GeographicBoundingBox" => geographic(Layout::Bounds),
        "WGS84BoundingBox" => geographic(Layout::Corners),
        "BoundingBox" => {
            let layout = if el.child("LowerCorner").is_some() { Layout::Corners } else { Layout::Attributes };
            let crs = el.attr("CRS").or_else(|| el.attr("SRS")).or_else(|| el.attr("crs"));
            Some(crs.and_then(crs_from_identifier).and_then(|(crs, authority_axis)| {
                let axis = if axes == Axes::AlwaysXY { AxisOrder::XY } else { authority_axis };
                Some(Declared { crs, axis, layout, wire: read_numbers(el, layout)? })
            }))
        }
        _ => None,
    }
}

/// Shrinks `el` to the fence when it is a bounding-box element; `None` when it is not one.
pub(crate) fn fence_box(el: &mut Element, bounds: &Bounds, axes: Axes) -> Option<BoxResult> {
    let Some(declared) = read_box(el, axes)? else {
        return Some(BoxResult { geographic: false, outcome: Outcome::Unknown });
    };
    let x_first = declared.x_first();
    let outcome = match intersect(x_first, bounds.for_crs(declared.crs)) {
        None => Outcome::Disjoint,
        Some(r) => {
            if r != x_first {
                write_numbers(el, declared.layout, swap_axes(declared.axis, r));
            }
            Outcome::Shrunk
        }
    };
    Some(BoxResult { geographic: declared.crs == Crs::Wgs84, outcome })
}

/// Whether an item (layer, feature type, coverage) lies in the fence, judged by its own
/// geographic boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Some geographic box of its own touches the fence.
    Inside,
    /// Every geographic box of its own is outside the fence.
    Outside,
    /// It declares no readable geographic box (WMS layers then inherit their parent's).
    Unknown,
}

/// Shrinks the bounding boxes that are direct children of `item`, removes the ones
/// wholly outside the fence, and says where the item lies.
pub(crate) fn fence_item(item: &mut Element, bounds: &Bounds, axes: Axes) -> Placement {
    let (mut geo, mut geo_outside) = (0usize, 0usize);
    item.retain_elements(|child| match fence_box(child, bounds, axes) {
        None => true,
        Some(r) => {
            if r.geographic && r.outcome != Outcome::Unknown {
                geo += 1;
                geo_outside += usize::from(r.outcome == Outcome::Disjoint);
            }
            r.outcome != Outcome::Disjoint
        }
    });
    match (geo, geo_outside) {
        (0, _) => Placement::Unknown,
        (g, o) if g == o => Placement::Outside,
        _ => Placement::Inside,
    }
}

/// The geographic (lon/lat) extent an item declares itself, read without changing it.
pub(crate) fn own_lonlat(item: &Element, axes: Axes) -> Option<Box4> {
    item.elements()
        .filter_map(|child| read_box(child, axes).flatten())
        .find(|d| d.crs == Crs::Wgs84)
        .map(|d| d.x_first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::common::xml::{Doc, DocTypePolicy};
    use crate::spatial::MERCATOR_HALF_WORLD;

    fn bounds() -> Bounds {
        // Fence tile 1/1/0 at zoom 1: the north-east quarter of the world.
        Bounds {
            lonlat: [0.0, 0.0, 180.0, 85.0511287798066],
            mercator: [0.0, 0.0, MERCATOR_HALF_WORLD, MERCATOR_HALF_WORLD],
        }
    }

    fn element(xml: &str) -> Element {
        Doc::parse(xml.as_bytes(), DocTypePolicy::Refuse).expect("parses").root
    }

    #[test]
    fn wms_130_epsg_4326_is_read_and_written_lat_lon() {
        let mut el = element(r#"<BoundingBox CRS="EPSG:4326" minx="-60" miny="-170" maxx="70" maxy="170"/>"#);
        let r = fence_box(&mut el, &bounds(), Axes::Authority).expect("a box");
        assert_eq!(r.outcome, Outcome::Shrunk);
        assert_eq!(
            ["minx", "miny", "maxx", "maxy"].map(|k| el.attr(k).expect("attr").to_owned()),
            ["0", "0", "70", "170"]
        );
    }

    #[test]
    fn wms_111_epsg_4326_stays_lon_lat() {
        let mut el = element(r#"<BoundingBox SRS="EPSG:4326" minx="-170" miny="-60" maxx="170" maxy="70"/>"#);
        fence_box(&mut el, &bounds(), Axes::AlwaysXY).expect("a box");
        assert_eq!(
            ["minx", "miny", "maxx", "maxy"].map(|k| el.attr(k).expect("attr").to_owned()),
            ["0", "0", "170", "70"]
        );
    }

    #[test]
    fn ows_corners_and_mercator_shrink() {
        let mut el = element(
            "<ows:BoundingBox crs=\"urn:ogc:def:crs:EPSG::3857\"><ows:LowerCorner>-20037508.342789244 -20037508.342789244</ows:LowerCorner><ows:UpperCorner>20037508.342789244 20037508.342789244</ows:UpperCorner></ows:BoundingBox>",
        );
        let r = fence_box(&mut el, &bounds(), Axes::Authority).expect("a box");
        assert!(!r.geographic);
        assert_eq!(el.child_text("LowerCorner").as_deref(), Some("0 0"));
        assert_eq!(el.child_text("UpperCorner").as_deref(), Some("20037508.342789244 20037508.342789244"));
    }

    #[test]
    fn disjoint_boxes_are_reported_and_unknown_crs_is_left_alone() {
        let mut west = element(r#"<LatLonBoundingBox minx="-20" miny="10" maxx="-5" maxy="20"/>"#);
        assert_eq!(fence_box(&mut west, &bounds(), Axes::AlwaysXY).map(|r| r.outcome), Some(Outcome::Disjoint));
        let mut utm = element(r#"<BoundingBox CRS="EPSG:25832" minx="1" miny="2" maxx="3" maxy="4"/>"#);
        assert_eq!(fence_box(&mut utm, &bounds(), Axes::Authority).map(|r| r.outcome), Some(Outcome::Unknown));
        assert_eq!(utm.attr("minx"), Some("1"));
    }

    #[test]
    fn mercator_bounds_are_derived_from_lon_lat() {
        let m = lonlat_to_mercator([-180.0, -85.0511287798066, 180.0, 85.0511287798066]);
        for (got, want) in
            m.iter().zip([-MERCATOR_HALF_WORLD, -MERCATOR_HALF_WORLD, MERCATOR_HALF_WORLD, MERCATOR_HALF_WORLD])
        {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }
}
