//! Response filters and property references: GeoJSON and MVT filtering by property
//! and geometry, schema trimming, and finding the properties a filter expression names.

pub mod props;
