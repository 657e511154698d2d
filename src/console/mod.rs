//! The browser console at `/admin/` (`[admin] enabled`): static files compiled into
//! the binary, served on the token API's listener before any token is read.
//!
//! The console is plain JavaScript that talks to the token API with the pasted token
//! (`Authorization: Bearer`, kept in `sessionStorage`, no cookies); this module only
//! serves its files. Every answer carries a strict `Content-Security-Policy` (no inline
//! script or style, nothing from another origin), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`, and an `ETag`.
//!
//! Must never: read or answer with a token, fetch anything from the network, or serve
//! a name that is not in [`ASSETS`].

use std::sync::OnceLock;

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::respond::{self, Body, Reject};

/// The console's files: name under `/admin/`, content type, bytes.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    ("", "text/html; charset=utf-8", include_bytes!("assets/index.html")),
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("assets/console.js")),
    ("map.js", "text/javascript; charset=utf-8", include_bytes!("assets/map.js")),
    ("console.css", "text/css; charset=utf-8", include_bytes!("assets/console.css")),
    // Natural Earth 1:110m land (public domain) as TopoJSON, from npm `world-atlas`
    // 2.0.2 (ISC, `land-110m.LICENSE`): the base map when the token views no raster layer.
    ("land-110m.json", "application/json", include_bytes!("assets/land-110m.json")),
    ("land-110m.LICENSE", "text/plain; charset=utf-8", include_bytes!("assets/land-110m.LICENSE")),
];

/// The console's Content-Security-Policy: its own files only; tiles of the base map
/// are fetched by script and shown as `blob:` images.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves `/admin` (a redirect to `/admin/`) and `/admin/{asset}`.
pub fn serve(
    config: &Config,
    asset: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response<Body>, Reject> {
    if !config.admin.enabled {
        return Err(Reject::NotFound);
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(Reject::MethodNotAllowed("GET or HEAD"));
    }
    let Some(name) = asset else {
        let mut res = Response::new(respond::full(""));
        *res.status_mut() = StatusCode::MOVED_PERMANENTLY;
        res.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/admin/"));
        secure(res.headers_mut());
        return Ok(res);
    };
    let index = ASSETS.iter().position(|(n, _, _)| *n == name).ok_or(Reject::NotFound)?;
    let (_, content_type, bytes) = ASSETS[index];
    let etag = &etags()[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        let mut res = Response::new(respond::full(""));
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(respond::full(bytes));
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (a new binary has new files); no token is in them.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    Ok(res)
}

fn secure(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
}

/// One strong ETag per asset (a SHA-256 prefix of its bytes), computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, bytes)| {
                let d = Sha256::digest(bytes);
                let hex: String = d.iter().take(12).map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let page = std::str::from_utf8(ASSETS[0].2).unwrap();
        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("style="), "inline style attribute");
        assert!(!page.contains("<style"), "inline style element");
        assert!(
            !page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("//"),
            "a URL off the gateway"
        );
        for (name, _, bytes) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js") || n.ends_with(".css")) {
            let text = std::str::from_utf8(bytes).unwrap();
            assert!(!text.contains("https://") && !text.contains("@import"), "{name} reaches off the gateway");
            assert!(!text.contains("eval(") && !text.contains("innerHTML"), "{name} builds markup from strings");
        }
    }

    #[test]
    fn etags_differ_per_asset() {
        let e = etags();
        assert_eq!(e.len(), ASSETS.len());
        assert!(e.iter().all(|t| t.starts_with('"') && t.len() == 26));
        assert_ne!(e[0], e[1]);
    }
}
