//! Capabilities and OGC API link rewriting (owned by the capabilities work).
