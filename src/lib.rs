//! tilegate: an authorization gateway for map tile and feature servers.
//!
//! Every request carries an opaque access token. tilegate looks it up in a local
//! SQLite store (through a cache that never delays a revocation), decides whether
//! this token may make this request, forwards what is allowed and filters what must
//! be filtered on the way back.
//!
//! ```text
//! accept ─► TLS (rustls, optional) ─► normalize path ─► route (path id, endpoint family)
//!    ─► extract token ─► lookup grant (cache → SQLite) ─► classify (Target: Operation, uri)
//!    ─► decide (pure) ──Denial──► respond (status + JSON)
//!            │ Permitted<Target> (the permit around the judged target)
//!            ▼
//!    forward (pooled hyper-util client) ─► filter (capabilities, GeoJSON, MVT, schemas) ─► respond
//!    ─► access log line and metrics when the response body ends
//! ```
//!
//! `ARCHITECTURE.md` at the repository root is the design: module map, invariants,
//! where each protocol's facts live, and the decisions with their reasons.
//!
//! Modules in pipeline order:
//!
//! | stage | module |
//! |---|---|
//! | accept loop, TLS, limits, shutdown | [`server`] |
//! | the pipeline, top to bottom | [`gateway`] |
//! | normalize and route | [`route`] |
//! | token format and extraction | [`token`] |
//! | store and grant cache | [`store`] |
//! | token usage (last used, request count), flushed in batches | [`usage`] |
//! | OGC request classification, capabilities rewriting | [`ogc`] |
//! | the decision: tiers, scope, fences | [`policy`], [`spatial`] |
//! | forwarding hygiene and the filter stage | [`proxy`], [`filter`] |
//! | status codes and error bodies | [`respond`] |
//! | the token API and minting | [`admin`] |
//! | the logging phase: access log, request ids | [`access`] |
//! | metrics, rate limits, reload | [`ops`] |
//! | declared paths (folders, layers, upstream endpoints) | [`paths`] |
//! | configuration | [`config`] |
//! | strict JSON for judged bodies (duplicate members refused) | [`json`] |
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod config;
pub mod console;
pub mod demo;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod json;
pub mod ogc;
pub mod ops;
pub mod paths;
pub mod pmtiles;
pub mod policy;
pub mod proxy;
pub mod respond;
pub mod route;
pub mod server;
pub mod spatial;
pub mod store;
pub mod token;
pub mod usage;
