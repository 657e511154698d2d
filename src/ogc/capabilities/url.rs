//! Mapping one upstream URL to its public gateway URL.
//!
//! Owns the suffix rule (a URL under the upstream base keeps the part after the base),
//! the origin rule (any other URL on the upstream host and port is an endpoint reference
//! and maps to the public base with its query), query hygiene (`token` parameters the
//! upstream echoed and the upstream base's own query are dropped; the client's query
//! token is appended when asked) and finding upstream URLs inside free text.
//!
//! Pure string code: it never resolves names, never logs, and never puts the token
//! anywhere but the query of a URL it rewrote.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ogc::common::percent;
use crate::ogc::common::rel::Rel;

use super::CapabilitiesError;

/// Everything but RFC 3986 unreserved characters is encoded in an appended token value.
const TOKEN_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Characters that end a URL found inside free text (not a whole attribute value).
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`')
}

/// Punctuation that, at the very end of a URL found in free text, belongs to the sentence.
fn is_trailing_punctuation(c: char) -> bool {
    matches!(c, '.' | ',' | ';' | ':' | '!' | ')')
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The next URL-looking run in `text` at or after byte `from`: `http://`, `https://`,
/// or `//` after a delimiter, up to whitespace, a quote or an angle bracket, without
/// trailing sentence punctuation. Returns `(start, position of "//", end)`.
fn next_url(text: &str, mut from: usize) -> Option<(usize, usize, usize)> {
    while let Some(found) = text.get(from..)?.find("//") {
        let slashes = from + found;
        let before = &text[..slashes];
        let start = if ends_with_ignore_case(before, "https:") {
            slashes - 6
        } else if ends_with_ignore_case(before, "http:") {
            slashes - 5
        } else if before.chars().next_back().is_none_or(|c| ends_url(c) || matches!(c, '(' | '=' | ',')) {
            slashes
        } else {
            from = slashes + 2;
            continue;
        };
        let mut end = text[slashes..].find(ends_url).map_or(text.len(), |i| slashes + i);
        while end > slashes + 2 && text[..end].ends_with(is_trailing_punctuation) {
            end -= 1;
        }
        return Some((start, slashes, end));
    }
    None
}

/// Where a URL points, seen from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// Under the upstream base: the exact public counterpart.
    Under(String),
    /// On the upstream host and port but outside the base. `fallback` is the public base
    /// with the URL's query (right for KVP endpoints); `templated` says the path holds
    /// `{…}` placeholders, which the fallback cannot keep.
    Outside { fallback: String, templated: bool },
    /// Another server: left alone.
    Foreign,
}

impl Mapped {
    /// The public URL to write in place of an upstream one, whatever its kind.
    pub(crate) fn into_public(self) -> Option<String> {
        match self {
            Mapped::Under(url) | Mapped::Outside { fallback: url, .. } => Some(url),
            Mapped::Foreign => None,
        }
    }
}

/// The pieces of an absolute (or scheme-relative) http(s) URL.
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: &'a str,
    /// Path, query and fragment, as written.
    rest: &'a str,
}

fn split_url(s: &str) -> Option<Parts<'_>> {
    let (scheme, after) = if let Some(after) = s.strip_prefix("//") {
        (None, after)
    } else {
        let i = s.find("://")?;
        let scheme = &s[..i];
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        (Some(scheme), &s[i + 3..])
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    if authority.is_empty() {
        return None;
    }
    Some(Parts { scheme, authority, rest: &after[end..] })
}

fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// Host (lower case, IPv6 with brackets, no trailing root dot) and port of an
/// authority; userinfo is skipped.
fn host_port(authority: &str, scheme: &str) -> Option<(String, u16)> {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if hostport.starts_with('[') {
        let close = hostport.find(']')?;
        let port = hostport[close + 1..].strip_prefix(':');
        (&hostport[..=close], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => default_port(scheme),
        Some(p) => p.parse().ok()?,
    };
    Some((canonical_host(&host.to_ascii_lowercase()), port))
}

/// One spelling per host, so that another spelling of the upstream's address passes
/// neither the rewrite nor the leak guard: IPv4 in any form a resolver accepts
/// (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`, `2130706433`) becomes dotted decimal,
/// IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`) its IPv4, IPv6 its compressed form, and
/// every loopback spelling (`localhost`, `127.0.0.0/8`, `[::1]`) the one word
/// `loopback`: any of them reaches the same host as a loopback upstream.
///
/// ```text
/// 127.1, 0x7f.0.0.1, 2130706433, [::ffff:127.0.0.1], localhost, [::1] → loopback
/// 0xc0.0250.1 → 192.168.0.1; [2001:DB8::0:1] → [2001:db8::1]; maps.example.org → itself
/// ```
fn canonical_host(host: &str) -> String {
    let ip: Option<std::net::IpAddr> = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().ok().map(|v6| match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        })
    } else {
        inet_aton(host).map(std::net::IpAddr::V4)
    };
    match ip {
        Some(ip) if ip.is_loopback() => "loopback".to_owned(),
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        None if host == "localhost" || host.ends_with(".localhost") => "loopback".to_owned(),
        None => host.to_owned(),
    }
}

/// IPv4 the way `inet_aton` reads it: one to four parts, each decimal, `0x` hex or
/// `0`-led octal, the last filling the remaining bytes.
fn inet_aton(host: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) = match part.strip_prefix("0x") {
            Some(hex) => (hex, 16),
            None if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
            None => (*part, 10),
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() { 0 } else { u64::from_str_radix(digits, radix).ok()? };
        values.push(value);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut n: u64 = *last;
    for (i, v) in head.iter().enumerate() {
        n |= v << (8 * (3 - i));
    }
    Some(std::net::Ipv4Addr::from(u32::try_from(n).ok()?))
}

/// Splits `path?query#fragment`.
fn split_rest(rest: &str) -> (&str, Option<&str>, &str) {
    let (before_fragment, fragment) = match rest.find('#') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query), fragment),
        None => (before_fragment, None, fragment),
    }
}

/// A query pair's name and value, percent-decoded, the name lower-cased.
fn decode_pair(pair: &str) -> (String, String) {
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    let decode = |s: &str| percent::decode_lossy(s, true).into_owned();
    (decode(name).to_lowercase(), decode(value))
}

/// True for a link target a browser's URL parser would read differently from its text,
/// or that leads nowhere a map client should go: ASCII tabs and line breaks (removed by
/// the parser: `ht<TAB>tp://evil` is `http://evil`), backslashes (read as `/`:
/// `/\evil` is `//evil`), other control characters, and schemes other than `http`,
/// `https` and `mailto` (`javascript:`, `data:`, `file:`…). Such a link is removed from
/// the documents the gateway relays (attacker round 5), whatever its relation.
///
/// ```
/// use tilegate::ogc::capabilities::is_misleading_href;
/// for bad in ["https:evil.example/x", "http:/evil.example/x", "http:///evil.example/x", "/\\evil.example/x", "\\\\evil/x", "http:\\\\evil/x", "ht\ttp://evil/x", "/\t/evil/x", "javascript:alert(1)", " data:text/html,x", "FILE:///etc/passwd"] {
///     assert!(is_misleading_href(bad), "{bad:?}");
/// }
/// for good in ["https://gw/ogc/api/obs/items?f=json", "items?offset=10", "/collections", "mailto:ops@example.org", "../x#y"] {
///     assert!(!is_misleading_href(good), "{good:?}");
/// }
/// ```
pub fn is_misleading_href(href: &str) -> bool {
    let t = href.trim_matches(|c: char| c == ' ' || c.is_ascii_control());
    if t.bytes().any(|b| b == b'\\' || b.is_ascii_control()) {
        return true;
    }
    let end = t.find(['/', '?', '#']).unwrap_or(t.len());
    match t[..end].find(':') {
        Some(colon) => {
            let scheme = &t[..colon];
            let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
            // `https:evil.example/x` and `http:/evil.example/x` have no `//` but a browser
            // on a page of the other scheme resolves them to evil.example (attacker round 6).
            // `http:///evil` is `http://evil` to a browser too (attacker round 7).
            let after = &t[colon + 1..];
            (web && (!after.starts_with("//") || after.starts_with("///")))
                || !(web || scheme.eq_ignore_ascii_case("mailto"))
        }
        None => false,
    }
}

/// Maps upstream URLs of one protocol endpoint to the gateway's public URL.
///
/// No `Debug`: it holds the client's token.
pub(crate) struct UrlMap {
    scheme: String,
    host: String,
    port: u16,
    /// The upstream base path, without a trailing `/` (empty for the root).
    base_path: String,
    /// The upstream base's own query pairs (decoded), dropped from rewritten URLs.
    base_query: Vec<(String, String)>,
    /// The public URL, without a trailing `/`.
    public: String,
    /// `token=<percent-encoded value>`, when the client sent its token in the query.
    token_pair: Option<String>,
    /// True when the public URL is on the upstream host and port (tests only, in practice).
    public_same_origin: bool,
}

impl UrlMap {
    pub(crate) fn new(upstream: &str, public: &str, token: Option<&str>) -> Result<UrlMap, CapabilitiesError> {
        let bad_upstream = || CapabilitiesError::BadUrl {
            which: "upstream",
            url: upstream.to_owned(),
            expected: "an absolute http(s) URL",
        };
        let parts = split_url(upstream.trim()).ok_or_else(bad_upstream)?;
        let scheme = parts.scheme.ok_or_else(bad_upstream)?.to_ascii_lowercase();
        let (host, port) = host_port(parts.authority, &scheme).ok_or_else(bad_upstream)?;
        let (path, query, _) = split_rest(parts.rest);
        let base_query = query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(decode_pair).collect();
        let public = public.trim().trim_end_matches('/');
        let public_parts = split_url(public)
            .filter(|p| p.scheme.is_some() && !p.rest.contains(['?', '#']))
            .ok_or_else(|| CapabilitiesError::BadUrl {
                which: "public",
                url: public.to_owned(),
                expected: "an absolute http(s) URL without query or fragment",
            })?;
        let public_same_origin =
            public_parts.scheme.and_then(|s| host_port(public_parts.authority, s)) == Some((host.clone(), port));
        Ok(UrlMap {
            scheme,
            host,
            port,
            base_path: path.trim_end_matches('/').to_owned(),
            base_query,
            public: public.to_owned(),
            token_pair: token.map(|t| format!("token={}", utf8_percent_encode(t, TOKEN_VALUE))),
            public_same_origin,
        })
    }

    /// True when `parts` names the upstream host and port.
    fn is_upstream_origin(&self, parts: &Parts<'_>) -> bool {
        let scheme = parts.scheme.unwrap_or(&self.scheme);
        host_port(parts.authority, scheme).is_some_and(|(h, p)| h == self.host && p == self.port)
    }

    /// The path of an upstream URL relative to the base (`""`, `/…`), when it is under it.
    fn suffix<'u>(&self, path: &'u str) -> Option<&'u str> {
        let rest = path.strip_prefix(self.base_path.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Maps one URL (the whole string must be the URL).
    ///
    /// ```text
    /// upstream http://up:9001/service    public https://gw/ogc/wms/osm
    /// http://up:9001/service?                      → https://gw/ogc/wms/osm?
    /// http://up:9001/service/x.png?a=1&token=old   → https://gw/ogc/wms/osm/x.png?a=1
    /// http://up:9001/other?SERVICE=WMS&            → https://gw/ogc/wms/osm?SERVICE=WMS&   (Outside)
    /// http://schemas.opengis.net/…                 → unchanged                             (Foreign)
    /// ```
    pub(crate) fn map(&self, url: &str) -> Mapped {
        let Some(parts) = split_url(url) else {
            return Mapped::Foreign;
        };
        if !self.is_upstream_origin(&parts) {
            return Mapped::Foreign;
        }
        let (path, query, fragment) = split_rest(parts.rest);
        let query = self.rebuild_query(query);
        match self.suffix(path) {
            Some(suffix) => Mapped::Under(format!("{}{suffix}{query}{fragment}", self.public)),
            None => {
                Mapped::Outside { fallback: format!("{}{query}{fragment}", self.public), templated: path.contains('{') }
            }
        }
    }

    /// The path below the upstream base of a URL that is under it (`""` or `/…`).
    /// True for an absolute URL on a third host: neither the upstream (any spelling of
    /// it) nor the gateway's public URL.
    pub(crate) fn is_elsewhere(&self, url: &str) -> bool {
        let on_public =
            url.strip_prefix(self.public.as_str()).is_some_and(|r| r.is_empty() || r.starts_with(['/', '?', '#']));
        split_url(url).is_some_and(|parts| !self.is_upstream_origin(&parts)) && !on_public
    }

    pub(crate) fn path_under_base<'u>(&self, url: &'u str) -> Option<&'u str> {
        let parts = split_url(url)?;
        if !self.is_upstream_origin(&parts) {
            return None;
        }
        self.suffix(split_rest(parts.rest).0)
    }

    /// `?…` (or nothing): the URL's query without `token` and upstream-base pairs, the
    /// client's token appended. A KVP prefix (ending in `?` or `&`) stays a prefix.
    fn rebuild_query(&self, query: Option<&str>) -> String {
        let is_prefix = query.is_some_and(|q| q.is_empty() || q.ends_with('&'));
        let mut pairs: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|pair| {
                if pair.is_empty() {
                    return false;
                }
                let decoded = decode_pair(pair);
                decoded.0 != "token" && !self.base_query.iter().any(|b| b.0 == decoded.0 && b.1 == decoded.1)
            })
            .collect();
        if let Some(token) = &self.token_pair {
            pairs.push(token);
        }
        match (pairs.is_empty(), is_prefix) {
            (true, false) => String::new(),
            (true, true) => "?".to_owned(),
            (false, false) => format!("?{}", pairs.join("&")),
            (false, true) => format!("?{}&", pairs.join("&")),
        }
    }

    /// Rewrites every upstream URL in a text or attribute value; `None` when nothing
    /// changed. A value without whitespace is one URL; otherwise URLs are found in the
    /// text and end at whitespace, quotes or angle brackets (trailing sentence
    /// punctuation excluded).
    pub(crate) fn rewrite_value(&self, value: &str) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return None;
        }
        if !trimmed.contains(char::is_whitespace) {
            if let Some(public) = self.map(trimmed).into_public() {
                let start = value.len() - value.trim_start().len();
                let end = start + trimmed.len();
                return Some(format!("{}{public}{}", &value[..start], &value[end..]));
            }
            // A longer token may still embed a URL, e.g. `(http://up/…)`.
        }
        self.rewrite_free_text(value)
    }

    /// Finds upstream URLs in free text and rewrites them. A URL of another server is
    /// searched on, so an upstream URL inside its query is found too.
    fn rewrite_free_text(&self, text: &str) -> Option<String> {
        let mut out = String::new();
        let mut copied = 0;
        let mut from = 0;
        while let Some((start, slashes, end)) = next_url(text, from) {
            match self.map(&text[start..end]).into_public() {
                Some(public) => {
                    out.push_str(&text[copied..start]);
                    out.push_str(&public);
                    copied = end;
                    from = end;
                }
                None => from = slashes + 2,
            }
        }
        if copied == 0 {
            return None;
        }
        out.push_str(&text[copied..]);
        Some(out)
    }

    /// True when `text` still names the upstream host and port after `//` anywhere,
    /// also inside another URL's query and also percent-encoded. Stricter than the
    /// rewrite on purpose: it is the last guard before a document leaves the gateway.
    /// Always false when the public URL shares that origin (the check would be
    /// meaningless).
    pub(crate) fn leaks(&self, text: &str) -> bool {
        if self.public_same_origin {
            return false;
        }
        if self.names_upstream(text) {
            return true;
        }
        text.contains('%') && self.names_upstream(&percent::decode_lossy(text, false))
    }

    fn names_upstream(&self, text: &str) -> bool {
        let is_authority =
            |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | ':' | '@' | '[' | ']' | '%');
        text.match_indices("//").any(|(i, _)| {
            let before = &text[..i];
            let scheme = if ends_with_ignore_case(before, "https:") {
                "https"
            } else if ends_with_ignore_case(before, "http:") {
                "http"
            } else {
                self.scheme.as_str()
            };
            let after = &text[i + 2..];
            let end = after.find(|c: char| !is_authority(c)).unwrap_or(after.len());
            let authority = after[..end].trim_end_matches('.');
            host_port(authority, scheme).is_some_and(|(h, p)| h == self.host && p == self.port)
        })
    }

    /// True when `url` (any form) is an upstream URL.
    pub(crate) fn is_upstream(&self, url: &str) -> bool {
        !matches!(self.map(url.trim()), Mapped::Foreign)
    }
}

/// What becomes of one link target (an OGC API `href`), see [`LinkMap::map`].
///
/// No `Debug`: a rewritten URL carries the client's token when it came in the query.
#[derive(Clone, PartialEq, Eq)]
pub enum LinkMapped {
    /// Not an upstream URL (another server, a relative reference): leave it as it is.
    Unchanged,
    /// An upstream URL, and the public URL that replaces it.
    Rewritten(String),
    /// An upstream URL no gateway URL reaches: a template (`{…}` in the path) on the
    /// upstream host and port but outside the upstream base. `fallback` is the public
    /// base with the URL's query; it names no upstream, but it is not the same resource.
    Unreachable { fallback: String },
}

/// Maps the links of OGC API documents that the gateway streams (feature pages) to the
/// gateway's public URL, one URL at a time, with the same rules as the capabilities
/// rewrite (see [`super::Rewrite`]): a URL under the upstream base keeps its suffix,
/// any other URL on the upstream host and port maps to the public base with its query,
/// echoed `token` pairs and the upstream base's own query pairs are dropped, and the
/// client's query token is appended when there is one.
///
/// No `Debug`: it holds the client's token.
///
/// ```
/// use tilegate::ogc::capabilities::{LinkMap, LinkMapped};
///
/// let links = LinkMap::new("http://up:5000", "https://gw/ogc/api/obs", Some("tg_1"))?;
/// let next = links.map("http://up:5000/collections/obs/items?offset=10&token=old");
/// assert!(next == LinkMapped::Rewritten("https://gw/ogc/api/obs/collections/obs/items?offset=10&token=tg_1".into()));
/// assert!(links.map("https://schemas.opengis.net/x.json") == LinkMapped::Unchanged);
/// assert!(links.map("../items?offset=10") == LinkMapped::Unchanged);
/// # Ok::<(), tilegate::ogc::capabilities::CapabilitiesError>(())
/// ```
pub struct LinkMap {
    map: UrlMap,
    /// Page links (`next`, `prev`…) are kept ([`LinkMap::without_paging`] drops them).
    paging: bool,
}

impl LinkMap {
    /// A mapper from the upstream base URL of an endpoint to the gateway URL that stands
    /// for it; `token_query` is the client's token when it came in the query.
    pub fn new(upstream: &str, public: &str, token_query: Option<&str>) -> Result<LinkMap, CapabilitiesError> {
        UrlMap::new(upstream, public, token_query).map(|map| LinkMap { map, paging: true })
    }

    /// Drops page links: under a fence a WFS answer's `next` tells whether the upstream
    /// holds more features, outside the fence included (attacker round 6).
    pub fn without_paging(mut self) -> LinkMap {
        self.paging = false;
        self
    }

    /// Whether a link of relation `rel` may be sent: not when the `rel` cannot be read
    /// (decision 82), nor a page link in any spelling without paging.
    pub fn keeps_rel(&self, rel: &Rel<'_>) -> bool {
        *rel != Rel::Unreadable && (self.paging || !rel.is_paging())
    }

    /// Maps one link target. Surrounding whitespace is ignored (and not kept in a
    /// rewritten URL). A URL of another server that embeds an upstream URL (say in its
    /// query) has the embedded URL rewritten, as in capabilities documents.
    pub fn map(&self, url: &str) -> LinkMapped {
        match self.map.map(url.trim()) {
            Mapped::Under(public) => LinkMapped::Rewritten(public),
            Mapped::Outside { fallback, templated: false } => LinkMapped::Rewritten(fallback),
            Mapped::Outside { fallback, templated: true } => LinkMapped::Unreachable { fallback },
            Mapped::Foreign => match self.map.rewrite_free_text(url) {
                Some(rewritten) => LinkMapped::Rewritten(rewritten),
                None => LinkMapped::Unchanged,
            },
        }
    }

    /// True for an absolute URL on a third host: neither the upstream nor the gateway.
    pub fn is_elsewhere(&self, url: &str) -> bool {
        self.map.is_elsewhere(url.trim())
    }

    /// True when `text` still names the upstream host and port, also inside another
    /// URL's query and percent-encoded: the last check before a link leaves the gateway.
    pub fn leaks(&self, text: &str) -> bool {
        self.map.leaks(text)
    }

    /// Whether an OGC API link, as sent (`href` already on the gateway), leads to
    /// something the gateway answers: not an HTML page (406), not a route it does not
    /// serve, not features in another format than GeoJSON (406: JSON-LD, CSV). Links
    /// elsewhere are kept.
    ///
    /// ```
    /// use tilegate::ogc::capabilities::LinkMap;
    /// let links = LinkMap::new("http://up:5000", "https://gw/ogc/api/obs", None)?;
    /// assert!(links.serves_link("https://gw/ogc/api/obs/collections/c/items?f=json", Some("application/geo+json")));
    /// assert!(!links.serves_link("https://gw/ogc/api/obs/collections/c/items?f=html", None));
    /// assert!(!links.serves_link("https://gw/ogc/api/obs/collections/c/items?f=jsonld", None));
    /// assert!(!links.serves_link("https://gw/ogc/api/obs/processes", Some("application/json")));
    /// assert!(links.serves_link("https://gw/ogc/api/obs/collections/c", Some("application/json")));
    /// assert!(links.serves_link("https://example.org/about", Some("text/html")));
    /// # Ok::<(), tilegate::ogc::capabilities::CapabilitiesError>(())
    /// ```
    pub fn serves_link(&self, href: &str, media_type: Option<&str>) -> bool {
        let href = href.trim();
        let Some(rest) = href.strip_prefix(self.map.public.as_str()) else { return true };
        if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
            return true;
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q.split('#').next().unwrap_or("")),
            None => (rest.split('#').next().unwrap_or(""), ""),
        };
        let f = query.split('&').find_map(|p| p.strip_prefix("f=")).map(|f| f.to_ascii_lowercase());
        let media = media_type.map(|t| t.trim().to_ascii_lowercase());
        let html = matches!(f.as_deref(), Some("html" | "jsonld"))
            || media.as_deref().is_some_and(|m| m.starts_with("text/html") || m.starts_with("application/ld+json"));
        if html || !crate::ogc::api::serves_route(path) {
            return false;
        }
        if crate::ogc::api::is_feature_route(path) {
            let geojson = match (f.as_deref(), media.as_deref()) {
                (Some(f), _) => matches!(f, "json" | "geojson") || f.contains("json") && !f.contains("ld"),
                (None, Some(m)) => m.starts_with("application/geo+json") || m.starts_with("application/json"),
                (None, None) => true,
            };
            return geojson;
        }
        true
    }
}

/// The streaming GeoJSON filter's view of a [`LinkMap`]. A link the gateway cannot reach
/// gets the fallback rather than being removed, unlike in whole documents: by the time
/// a streamed link's `href` is read, the members before it have been sent.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::geojson::LinkRewrite;

    /// Regression: other spellings of the upstream host passed both the rewrite and
    /// the leak guard.
    #[test]
    fn every_spelling_of_a_loopback_upstream_is_the_upstream() {
        let map = UrlMap::new("http://127.0.0.1:9001/service", "https://gw/ogc/wms/osm", None).expect("map");
        for url in [
            "http://localhost:9001/x",
            "http://LOCALHOST:9001/x",
            "http://localhost.:9001/x",
            "http://127.1:9001/x",
            "http://0x7f.0.0.1:9001/x",
            "http://0177.0.0.1:9001/x",
            "http://2130706433:9001/x",
            "http://[::ffff:127.0.0.1]:9001/x",
            "http://[::1]:9001/x",
            "http://127.0.0.2:9001/x",
        ] {
            assert!(map.is_upstream(url), "{url}");
            assert!(map.leaks(url), "{url}");
        }
        assert!(!map.is_upstream("http://127.0.0.1:9002/x"), "another port is another server");
        assert!(!map.is_upstream("http://maps.example.org:9001/x"));
    }

    #[test]
    fn hosts_have_one_spelling() {
        for (host, canonical) in [
            ("0xc0.0250.1", "192.168.0.1"),
            ("3232235521", "192.168.0.1"),
            ("192.168.0.1", "192.168.0.1"),
            ("[2001:db8::0:1]", "[2001:db8::1]"),
            ("maps.example.org", "maps.example.org"),
            ("1.2.3.4.5", "1.2.3.4.5"),
            ("256.1.1.1", "256.1.1.1"),
            ("08.1.1.1", "08.1.1.1"),
        ] {
            assert_eq!(canonical_host(host), canonical, "{host}");
        }
    }

    fn map(token: Option<&str>) -> UrlMap {
        UrlMap::new("http://127.0.0.1:9001/service", "https://maps.example.org/ogc/wms/osm/", token)
            .expect("valid urls")
    }

    #[test]
    fn kvp_prefix_keeps_its_question_mark() {
        assert_eq!(
            map(None).map("http://127.0.0.1:9001/service?"),
            Mapped::Under("https://maps.example.org/ogc/wms/osm?".into())
        );
    }

    #[test]
    fn token_goes_into_a_kvp_prefix_and_keeps_it_a_prefix() {
        let m = map(Some("tg_abc"));
        assert_eq!(
            m.map("http://127.0.0.1:9001/service?").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm?token=tg_abc&")
        );
        assert_eq!(
            m.map("http://127.0.0.1:9001/service?SERVICE=WMS&").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm?SERVICE=WMS&token=tg_abc&")
        );
        assert_eq!(
            m.map("http://127.0.0.1:9001/service").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm?token=tg_abc")
        );
        assert_eq!(
            m.map("http://127.0.0.1:9001/service/a.png?f=png#top").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm/a.png?f=png&token=tg_abc#top")
        );
    }

    #[test]
    fn token_value_is_percent_encoded() {
        let m = map(Some("a b&c=d"));
        assert_eq!(
            m.map("http://127.0.0.1:9001/service").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm?token=a%20b%26c%3Dd")
        );
    }

    #[test]
    fn echoed_tokens_are_dropped_before_appending() {
        let m = map(Some("tg_new"));
        assert_eq!(
            m.map("http://127.0.0.1:9001/service?TOKEN=old&a=1&token=x").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm?a=1&token=tg_new")
        );
        assert_eq!(
            map(None).map("http://127.0.0.1:9001/service?token=old").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm")
        );
    }

    #[test]
    fn origin_matches_case_insensitively_and_with_default_ports() {
        let m = UrlMap::new("http://Up.Internal/wms", "https://gw/ogc/wms/a", None).expect("valid");
        assert!(m.is_upstream("HTTP://up.internal:80/wms?"));
        assert!(m.is_upstream("//up.internal/wms"));
        assert!(m.is_upstream("http://UP.internal.:80/wms"), "a trailing root dot names the same host");
        assert!(!m.is_upstream("http://up.internal:8080/wms"));
        assert!(!m.is_upstream("http://up.internal.evil.org/wms"));
        assert!(!m.is_upstream("http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd"));
    }

    #[test]
    fn path_prefix_needs_a_segment_boundary() {
        let m = map(None);
        assert!(matches!(m.map("http://127.0.0.1:9001/services"), Mapped::Outside { .. }));
        assert_eq!(
            m.map("http://127.0.0.1:9001/servicex?SERVICE=WMS&").into_public().as_deref(),
            Some("https://maps.example.org/ogc/wms/osm?SERVICE=WMS&")
        );
    }

    #[test]
    fn templates_outside_the_base_are_flagged() {
        let m = UrlMap::new("http://up:9001/service", "https://gw/ogc/wmts/osm", None).expect("valid");
        assert!(matches!(
            m.map("http://up:9001/wmts/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png"),
            Mapped::Outside { templated: true, .. }
        ));
    }

    #[test]
    fn rest_templates_under_the_base_keep_their_suffix() {
        let m = UrlMap::new("http://up:9001/wmts", "https://gw/ogc/wmts/osm", Some("t1")).expect("valid");
        assert_eq!(
            m.map("http://up:9001/wmts/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png")
                .into_public()
                .as_deref(),
            Some("https://gw/ogc/wmts/osm/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png?token=t1")
        );
    }

    #[test]
    fn upstream_base_query_is_not_leaked() {
        let m =
            UrlMap::new("http://up/cgi-bin/mapserv?map=/data/osm.map", "https://gw/ogc/wms/osm", None).expect("valid");
        assert_eq!(
            m.map("http://up/cgi-bin/mapserv?map=%2Fdata%2Fosm.map&SERVICE=WMS&").into_public().as_deref(),
            Some("https://gw/ogc/wms/osm?SERVICE=WMS&")
        );
    }

    #[test]
    fn urls_inside_free_text_are_found() {
        let m = map(None);
        assert_eq!(
            m.rewrite_value("See http://127.0.0.1:9001/service?x=1. Or (http://other.org/a).").as_deref(),
            Some("See https://maps.example.org/ogc/wms/osm?x=1. Or (http://other.org/a).")
        );
        assert_eq!(
            m.rewrite_value("  http://127.0.0.1:9001/service\n").as_deref(),
            Some("  https://maps.example.org/ogc/wms/osm\n")
        );
        assert_eq!(m.rewrite_value("http://other.org/service"), None);
        assert!(m.leaks("text http://127.0.0.1:9001/x"));
        assert!(!m.leaks("text http://127.0.0.1:9002/x"));
    }

    #[test]
    fn upstream_urls_inside_other_urls_are_rewritten() {
        assert_eq!(
            map(None).rewrite_value("http://other.org/proxy?url=http://127.0.0.1:9001/service").as_deref(),
            Some("http://other.org/proxy?url=https://maps.example.org/ogc/wms/osm")
        );
    }

    #[test]
    fn leak_check_sees_nested_and_encoded_upstream_urls() {
        let m = map(None);
        assert!(m.leaks("https://gw/x?sld=http://127.0.0.1:9001/s.sld"));
        assert!(m.leaks("https://gw/x?sld=http%3A%2F%2F127.0.0.1%3A9001%2Fs.sld"));
        assert!(m.leaks("see (//127.0.0.1:9001)."));
        assert!(!m.leaks("https://127.0.0.1/x"), "another port");
        assert!(!m.leaks("https://gw/x?sld=http%3A%2F%2Fother%3A9001%2Fs.sld"));
    }

    fn links(token: Option<&str>) -> LinkMap {
        LinkMap::new("http://up:5000/oapi", "https://gw/ogc/api/obs", token).expect("valid urls")
    }

    /// The URL a link maps to, `None` when it is left alone, `Err` with the fallback
    /// when it is unreachable.
    fn link(map: &LinkMap, url: &str) -> Result<Option<String>, String> {
        match map.map(url) {
            LinkMapped::Unchanged => Ok(None),
            LinkMapped::Rewritten(public) => Ok(Some(public)),
            LinkMapped::Unreachable { fallback } => Err(fallback),
        }
    }

    #[test]
    fn feature_page_links_map_like_capabilities_urls() {
        let m = links(Some("tg"));
        let cases: [(&str, Result<Option<&str>, &str>); 8] = [
            (
                "http://up:5000/oapi/collections/obs/items?offset=10&token=old",
                Ok(Some("https://gw/ogc/api/obs/collections/obs/items?offset=10&token=tg")),
            ),
            (" http://UP:5000/oapi/collections\n", Ok(Some("https://gw/ogc/api/obs/collections?token=tg"))),
            ("//up:5000/oapi", Ok(Some("https://gw/ogc/api/obs?token=tg"))),
            ("http://up:5000/elsewhere?f=json", Ok(Some("https://gw/ogc/api/obs?f=json&token=tg"))),
            ("http://up:5000/tiles/{z}/{x}/{y}?f=mvt", Err("https://gw/ogc/api/obs?f=mvt&token=tg")),
            (
                "https://other.org/p?u=http://up:5000/oapi/x",
                Ok(Some("https://other.org/p?u=https://gw/ogc/api/obs/x?token=tg")),
            ),
            ("https://other.org/oapi/x", Ok(None)),
            ("../items?offset=10", Ok(None)),
        ];
        for (url, expected) in cases {
            let expected = expected.map(|o| o.map(str::to_owned)).map_err(str::to_owned);
            assert_eq!(link(&m, url), expected, "{url}");
        }
    }

    #[test]
    fn the_filter_sees_an_unreachable_link_as_its_fallback() {
        let m = links(None);
        assert_eq!(
            LinkRewrite::rewrite(&m, "http://up:5000/tiles/{z}/{x}/{y}").as_deref(),
            Some("https://gw/ogc/api/obs")
        );
        assert_eq!(LinkRewrite::rewrite(&m, "https://other.org/x"), None);
        assert!(LinkRewrite::leaks(&m, "https://other.org/p?u=http%3A%2F%2Fup%3A5000%2Fx"));
        assert!(!LinkRewrite::leaks(&m, "https://gw/ogc/api/obs/collections"));
    }

    #[test]
    fn bad_configuration_urls_are_errors() {
        assert!(UrlMap::new("up:9001/service", "https://gw/x", None).is_err());
        assert!(UrlMap::new("http://up/service", "https://gw/x?a=1", None).is_err());
        assert!(UrlMap::new("ftp://up/service", "https://gw/x", None).is_err());
    }
}
