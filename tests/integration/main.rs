//! The one integration test binary: the real gateway over real sockets.
//!
//! Each module starts its own gateway on `127.0.0.1:0` with a temporary SQLite
//! store and an in-process upstream (see `support`).

mod support;

mod access_log;
mod attacks;
mod cli;
mod clients;
mod clip;
mod config;
mod console;
mod documents;
mod e2e;
mod foundation;
mod gml;
mod limits;
mod martin;
mod metrics;
mod ogc;
mod per_core;
mod pmtiles;
mod pool;
mod qgis_server;
mod reload;
mod saturation;
mod store;
mod store_nodes;
mod titiler;
mod tls;
mod token_api;
mod usage;
