//! tilegate: an authorization gateway for map tile and feature servers.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod demo;
pub mod filter;
pub mod gateway;
pub mod ogc;
pub mod ops;
pub mod policy;
pub mod proxy;
pub mod respond;
pub mod route;
pub mod server;
pub mod spatial;
pub mod store;
pub mod token;
