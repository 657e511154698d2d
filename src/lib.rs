//! tilegate: an authorization gateway for map tile and feature servers.
#![forbid(unsafe_code)]

pub mod config;
pub mod filter;
pub mod ogc;
pub mod policy;
pub mod spatial;
