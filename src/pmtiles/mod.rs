//! PMTiles v3 archives as upstreams (`[path.upstream] pmtiles`): a file on disk or an
//! `http(s)://` URL read with range requests.
//!
//! ```text
//! route ─► serve::ask (tile / TileJSON / range) ─► serve::classify (Target, from the header)
//!       ─► policy::decide ─► serve::answer ─► tile: the gateway's filter stage, as any tile
//!                                           └► TileJSON, range: the gateway's own answer
//! ```
//!
//! - [`format`]: the header, varint directories, Hilbert tile ids (pure);
//! - [`archive`]: opened versions, the bounded leaf-directory cache, reads off the
//!   reactor (files) or through the upstream pool (HTTP), change detection;
//! - [`range`]: range mode, which bytes a token may read;
//! - [`serve`]: the requests and answers;
//! - [`write`]: a small archive writer for tests and fixtures (not used to serve).
//!
//! Must never: decide (only `policy` does), or serve tile bytes the filter stage or
//! the range rules did not see.

pub mod archive;
pub mod format;
pub mod range;
pub mod serve;
#[doc(hidden)]
pub mod write;

pub use archive::{Archives, Io};
