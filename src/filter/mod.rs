//! Response bodies only: the property fence and the geometry filter of DESIGN.md §5,
//! applied to what comes back from an upstream. (What a *request's* filter expression
//! names is read by [`ogc::common::expr`](crate::ogc::common::expr).)
//!
//! - [`geojson`]: a streaming GeoJSON filter that drops hidden keys from every
//!   feature's `properties` and, under a tile fence, drops features outside it.
//! - [`gml`]: a streaming GML filter for WFS `FeatureCollection` answers (GML 2, 3.1,
//!   3.2): hidden property elements and, under a tile fence, features outside it go.
//! - [`mvt`]: re-encodes a Mapbox Vector Tile without the hidden attributes and the
//!   layers the path does not cover, clipped to the fence when it straddles it.
//! - [`raster`]: masks the pixels of a PNG, JPEG or WebP tile or map outside the fence.
//! - [`schema`]: trims DescribeFeatureType XML and OGC API queryables/schema JSON.
//! - [`tile_format`]: which vector tile format (MVT, MLT) an answer declares, and
//!   whether the token may receive it.
//!
//! This is the "filter response" stage. Everything here is pure: bytes in, bytes
//! out, no I/O, no clocks, no logging, decoding bounded in size and depth. It must
//! never pass on data it could not read:
//! every unreadable input is a [`FilterError`] (the gateway answers 502), never a
//! best-effort pass-through.

pub mod geojson;
pub mod gml;
pub mod mvt;
pub mod raster;
pub mod schema;
pub mod tile_format;

pub use geojson::{filter_geojson, GeoJsonFilter, LinkRewrite, MAX_DEPTH, MAX_FEATURE_BYTES, MAX_HREF_BYTES};
pub use gml::GmlFilter;
pub use mvt::{filter_tile, MAX_TILE_BYTES};
pub use schema::{trim_describe_feature_type, trim_json_schema, trim_queryables};

/// Why an upstream response could not be filtered. The response is not forwarded.
///
/// Every variant except [`FilterError::FeatureOutsideFence`] means the upstream sent
/// something the gateway cannot vouch for (answer 502); `FeatureOutsideFence` means
/// the one feature asked for is outside the token's geofence (answer 404, so that
/// its existence is not revealed).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("upstream response is not valid JSON at byte {offset}: {reason}")]
    InvalidJson { offset: u64, reason: &'static str },
    #[error("upstream response ends after {offset} bytes, inside a JSON value")]
    TruncatedJson { offset: u64 },
    #[error("upstream response nests deeper than {limit} levels at byte {offset}")]
    TooDeep { offset: u64, limit: usize },
    #[error("upstream response is not GeoJSON the filter understands at byte {offset}: {reason}")]
    NotGeoJson { offset: u64, reason: &'static str },
    #[error(
        "upstream feature starting at byte {offset} is larger than {limit} bytes; \
         the geometry filter holds one whole feature in memory"
    )]
    FeatureTooLarge { offset: u64, limit: usize },
    #[error("upstream feature starting at byte {offset} has a `geometry` the filter cannot read: {reason}")]
    InvalidGeometry { offset: u64, reason: String },
    #[error("the requested feature lies outside the token's geofence")]
    FeatureOutsideFence,
    #[error("upstream link `href` starting at byte {offset} is longer than {limit} bytes")]
    LinkTooLong { offset: u64, limit: usize },
    #[error(
        "upstream link `href` starting at byte {offset} still names the upstream server after \
         rewriting; refusing to pass it on"
    )]
    UpstreamLink { offset: u64 },
    #[error("upstream vector tile is gzip data that does not decompress: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("upstream vector tile decompresses to more than {limit} bytes")]
    TileTooLarge { limit: usize },
    #[error("upstream vector tile is not a Mapbox Vector Tile 2.1 protobuf: {0}")]
    MvtDecode(#[source] prost::DecodeError),
    #[error("upstream vector tile layer `{layer}` feature {feature}: {reason}")]
    MvtTags { layer: String, feature: usize, reason: String },
    #[error("upstream image cannot be clipped to the geofence: {0}")]
    Image(String),
    #[error("upstream vector tile layer `{layer}` feature {feature} has geometry the clipper cannot read: {reason}")]
    MvtGeometry { layer: String, feature: usize, reason: String },
    #[error("upstream schema is not readable XML at byte {offset}: {reason}")]
    InvalidXml { offset: u64, reason: String },
    #[error("upstream schema is not valid JSON: {0}")]
    InvalidSchemaJson(#[source] serde_json::Error),
    #[error("upstream schema is not a JSON object")]
    SchemaNotObject,
    #[error("upstream response is not a GML feature collection the filter understands at byte {offset}: {reason}")]
    NotGml { offset: u64, reason: String },
    #[error("the filter cannot continue after an earlier error on this response")]
    Poisoned,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_follow_the_style_guide() {
        let errors = [
            FilterError::InvalidJson { offset: 12, reason: "expected a value" },
            FilterError::TruncatedJson { offset: 3 },
            FilterError::TooDeep { offset: 9, limit: MAX_DEPTH },
            FilterError::NotGeoJson { offset: 0, reason: "the document root is not a JSON object" },
            FilterError::FeatureTooLarge { offset: 40, limit: MAX_FEATURE_BYTES },
            FilterError::InvalidGeometry { offset: 40, reason: "it has no `coordinates`".into() },
            FilterError::FeatureOutsideFence,
            FilterError::LinkTooLong { offset: 7, limit: MAX_HREF_BYTES },
            FilterError::UpstreamLink { offset: 7 },
            FilterError::TileTooLarge { limit: MAX_TILE_BYTES },
            FilterError::MvtTags { layer: "roads".into(), feature: 2, reason: "key index 9 is out of range".into() },
            FilterError::InvalidXml { offset: 5, reason: "unexpected end".into() },
            FilterError::SchemaNotObject,
            FilterError::NotGml { offset: 3, reason: "a DOCTYPE".into() },
            FilterError::Poisoned,
        ];
        for error in errors {
            let message = error.to_string();
            assert!(message.starts_with(char::is_lowercase), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
        assert_eq!(
            FilterError::InvalidJson { offset: 12, reason: "expected a value" }.to_string(),
            "upstream response is not valid JSON at byte 12: expected a value"
        );
    }

    #[test]
    fn the_streaming_filter_can_cross_await_points() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<GeoJsonFilter>();
    }
}
