//! Test support for the per-protocol *agree* tests (`{proto}/agree_tests.rs`): each
//! rewrites a real-world capabilities fixture, walks everything the rewritten document
//! advertises, and asks the gateway's own stages whether a client following it would be
//! served. What is advertised must be accepted, and a sample of what is not must be
//! refused, so the rewriter and the classifier cannot drift apart again (as they did
//! over MapProxy's `GLOBAL_WEBMERCATOR`).
//!
//! "Accepted" means exactly what the gateway does before forwarding (`gateway.rs`):
//! [`classify`](crate::ogc::classify), the GeoJSON `Unbounded → GeometryFiltered`
//! adjustment, [`judge`] with the token's grant, and the filter stage's
//! [`precheck`](crate::proxy::filter::precheck). Test-only code: it panics with the
//! URL and the reason on the first disagreement.

use std::sync::Arc;

use http::Method;

use crate::ogc::capabilities::{FenceView, Rewrite};
use crate::ogc::common::xml::{Doc, DocTypePolicy, Element};
use crate::ogc::{classify, OgcRequest, Protocol};
use crate::paths::PathConfig;
use crate::policy::{judge, Access, Grant, Obligations, Scope, Tier, TokenId};
use crate::proxy::filter::precheck;
use crate::spatial::Fence;

/// The gateway's `server.public_url` in every agree test.
pub const PUBLIC_URL: &str = "https://maps.example.org";

/// A fixture from `tests/fixtures/capabilities/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let file = format!("{}/tests/fixtures/capabilities/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The fence of the fenced walks: Web Mercator tiles 5/16/10 and 5/17/10 (lon 0‥22.5,
/// lat ≈ 48.92‥55.78: Germany, Denmark, Poland) and maxZoom 7. A rectangle, so that
/// WMTS `TileMatrixLimits` can state it exactly.
pub fn fence() -> Fence {
    Fence::new(Some(&[(5, 16, 10), (5, 17, 10)]), Some(7)).expect("a valid fence")
}

/// The highest zoom [`fence`] allows.
pub const MAX_ZOOM: u8 = 7;

/// `PathConfig` for path `id` covering `layers`.
pub fn path(id: &str, layers: &[&str]) -> PathConfig {
    PathConfig {
        layers: layers.iter().map(|l| (*l).to_owned()).collect(),
        ..PathConfig::new(id, crate::paths::PathKind::Vector)
    }
}

/// One walk: a path, a `viewPlus` grant on it (fenced or not) and the public URL of
/// the protocol endpoint on that path.
pub struct Walk {
    pub protocol: Protocol,
    pub path: PathConfig,
    pub fence: Option<Fence>,
    pub grant: Grant,
    /// `{PUBLIC_URL}/ogc/{proto}/{pathId}`.
    pub public: String,
}

impl Walk {
    pub fn new(protocol: Protocol, path: PathConfig, fence: Option<Fence>) -> Walk {
        let grant = Grant {
            token_id: TokenId::new_random(),
            scope: Scope::Ogc,
            expires_at: None,
            allowed_origins: None,
            access: vec![Access {
                path_id: path.id.as_str().to_owned(),
                tier: Tier::ViewPlus,
                fence: Arc::new(fence.clone().unwrap_or_default()),
                properties: None,
            }]
            .into(),
        };
        let public = format!("{PUBLIC_URL}/ogc/{}/{}", protocol.as_str(), path.id.as_str());
        Walk { protocol, path, fence, grant, public }
    }

    /// Rewrites `doc` as the gateway does for this walk's token, from `upstream`.
    pub fn rewrite(&self, doc: &[u8], upstream: &str) -> Vec<u8> {
        let clips = self.path.partial == crate::paths::Partial::Clip;
        let view = self.fence.as_ref().map(|fence| crate::proxy::filter::Clipping { fence, clips });
        let fence = view.as_ref().map(|v| v as &dyn FenceView);
        let rw = Rewrite {
            fence,
            quad_matrix_sets: &self.path.webmercator_matrix_sets,
            ..Rewrite::new(upstream, &self.public, &self.path.layers)
        };
        let out = crate::ogc::service(self.protocol)
            .rewrite_capabilities(doc, &rw)
            .expect("the protocol has capabilities")
            .unwrap_or_else(|e| panic!("the fixture rewrites: {e}"));
        let origin = upstream.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        assert!(!String::from_utf8_lossy(&out).contains(&origin), "an upstream URL is left");
        out
    }

    /// The part of an advertised URL after `/ogc/{proto}/{pathId}`: `(rest, query)`.
    /// Panics when the URL does not point at this gateway endpoint.
    pub fn split<'u>(&self, url: &'u str) -> (&'u str, &'u str) {
        let after = url
            .strip_prefix(self.public.as_str())
            .unwrap_or_else(|| panic!("advertised URL `{url}` is not under {}", self.public));
        let (rest, query) = after.split_once('?').unwrap_or((after, ""));
        assert!(rest.is_empty() || rest.starts_with('/'), "`{url}` runs on past the path id");
        (rest, query)
    }

    /// What the gateway answers a GET of `url`: `Ok` with the operation name when it
    /// would forward it, `Err` with the refusal otherwise.
    pub fn verdict(&self, url: &str) -> Result<&'static str, String> {
        let (rest, query) = self.split(url);
        let req = OgcRequest {
            protocol: self.protocol,
            method: &Method::GET,
            rest,
            query,
            content_type: None,
            accept: None,
            body: None,
        };
        let c = classify(&req, &self.path).map_err(|e| format!("classify: {e}"))?;
        let op = c.op;
        let permit = judge(&self.grant, &op, &self.path, 0).map_err(|d| format!("judge: {}", d.reason()))?;
        let obligations: &Obligations = permit.obligations();
        precheck(&c.response, c.answer_crs, obligations).map_err(|r| format!("precheck: {}", r.reason()))?;
        Ok(op.name)
    }

    /// Asserts the gateway serves `url`; returns the operation name.
    #[track_caller]
    pub fn accepts(&self, url: &str) -> &'static str {
        self.verdict(url).unwrap_or_else(|e| panic!("advertised but refused: {url}\n  {e}"))
    }

    /// Asserts the gateway refuses `url`; returns the refusal.
    #[track_caller]
    pub fn refuses(&self, url: &str) -> String {
        match self.verdict(url) {
            Ok(name) => panic!("not advertised but served as {name}: {url}"),
            Err(e) => e,
        }
    }
}

/// A KVP endpoint URL as advertised (`…/osm?`, `…/osm?map=x&`) with `pairs` appended,
/// as a client builds it.
pub fn kvp(endpoint: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = endpoint.to_owned();
    if !url.contains('?') {
        url.push('?');
    } else if !url.ends_with('?') && !url.ends_with('&') {
        url.push('&');
    }
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    url.push_str(&encoded.join("&"));
    url
}

/// Percent-encodes a KVP value the way clients do (unreserved characters and `:,/` stay).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:,/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a rewritten document again (it must be well-formed) and returns its root.
pub fn parse(out: &[u8]) -> Element {
    Doc::parse(out, DocTypePolicy::AllowWithoutEntities).expect("the rewritten document parses").root
}

/// Every element with this local name below (and including) `root`, in document order.
pub fn all<'e>(root: &'e Element, local_name: &str) -> Vec<&'e Element> {
    fn go<'e>(el: &'e Element, name: &str, out: &mut Vec<&'e Element>) {
        if el.is(name) {
            out.push(el);
        }
        for c in el.elements() {
            go(c, name, out);
        }
    }
    let mut out = Vec::new();
    go(root, local_name, &mut out);
    out
}

/// The trimmed texts of every `child` of `el`.
pub fn texts(el: &Element, child: &str) -> Vec<String> {
    el.elements().filter(|c| c.is(child)).map(|c| c.text().trim().to_owned()).collect()
}

/// The `xlink:href` of every `Get` (OWS) element under `el`.
pub fn get_hrefs(el: &Element) -> Vec<String> {
    all(el, "Get").into_iter().filter_map(|g| g.attr("href").map(str::to_owned)).collect()
}
