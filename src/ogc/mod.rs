//! OGC protocols: KVP parsing, request classification, capabilities rewriting.

pub mod capabilities;
