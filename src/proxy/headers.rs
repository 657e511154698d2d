//! Forwarding hygiene for headers (DESIGN.md §6).
//!
//! Hop-by-hop headers and those named in `Connection` are dropped both ways;
//! every credential header is dropped before the upstream; client-sent
//! `X-Tilegate-*` headers (any case, `_` or `-`) are dropped before the gateway
//! sets its own; `X-Forwarded-*` and `Forwarded` from the client are kept only
//! when the peer is a trusted proxy; `X-Request-Id` is the gateway's own id for
//! the request (a trusted proxy's sane one is kept, anyone else's replaced).

use std::io::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::ForwardContext;
use crate::policy::Permit;

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the usual legacy ones). Standard
/// names are `HeaderName` constants, so removing them parses nothing.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-access-token");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = header::FORWARDED;
/// Credentials and the client's `Host`, dropped before the upstream (bits 9–11 of
/// the mask that [`present`] returns).
static REQUEST_ONLY: [HeaderName; 3] = [header::AUTHORIZATION, X_ACCESS_TOKEN, header::HOST];

/// The identity headers the gateway sets for the upstream.
pub const TOKEN_ID_HEADER: &str = "x-tilegate-token-id";
pub const TIER_HEADER: &str = "x-tilegate-tier";
const TOKEN_ID_NAME: HeaderName = HeaderName::from_static(TOKEN_ID_HEADER);
const TIER_NAME: HeaderName = HeaderName::from_static(TIER_HEADER);

/// Which of `HOP_BY_HOP` (bits 0–8) and `REQUEST_ONLY` (bits 9–11) the map holds,
/// and whether it holds a name that is always dropped ([`always_dropped`]): one pass
/// over the names instead of a hash lookup per candidate.
fn present(headers: &HeaderMap) -> (u16, bool) {
    let mut mask = 0u16;
    let mut spoofed = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().chain(REQUEST_ONLY.iter()).position(|h| h == name) {
            mask |= 1 << i;
        } else if always_dropped(name) {
            spoofed = true;
        }
    }
    (mask, spoofed)
}

/// Request headers that override what the upstream serves or believes about the
/// request: servlet and framework rewrites (`X-Original-URL`, `X-Rewrite-URL`) and
/// method overrides. They are never forwarded.
const OVERRIDES: [&str; 24] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-method",
    "x-envoy-original-path",
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
    // httpoxy: CGI upstreams (MapServer, QGIS Server) turn `Proxy` into HTTP_PROXY.
    "proxy",
    // Identities that header-authenticating upstreams trust (GeoServer's header
    // proxy filter reads `sec-username`/`sec-roles` by default).
    "remote-user",
    "x-remote-user",
    "x-forwarded-user",
    "x-webauth-user",
    "x-user",
    "x-auth-user",
    "sec-username",
    "sec-roles",
    // TLS facts a terminating proxy would vouch for.
    "ssl-client-cert",
    "x-ssl-client-cert",
    "x-ssl-client-verify",
    "x-client-cert",
    "x-arr-ssl",
    "front-end-https",
    "x-url-scheme",
];

/// Name prefixes dropped from every client request, for the same reasons as
/// [`OVERRIDES`] (oauth2-proxy's `x-auth-request-*`, TLS client facts).
const OVERRIDE_PREFIXES: [&str; 3] = ["x-auth-request-", "x-ssl-client-", "x-client-cert-"];

/// Dropped from every client request whoever sent it:
/// - a name with `_` or `.`: CGI, WSGI and PHP upstreams fold `_`, `.` and `-`
///   together (`X_Forwarded_For` is `X-Forwarded-For` to them), so such a spelling
///   could smuggle any identity or override header past the checks below; nginx drops
///   them too by default (`underscores_in_headers off`);
/// - the gateway's own `x-tilegate-*` identity headers;
/// - the [`OVERRIDES`].
fn always_dropped(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.bytes().any(|b| b == b'_' || b == b'.')
        || is_gateway_identity(name)
        || OVERRIDES.contains(&n)
        || OVERRIDE_PREFIXES.iter().any(|p| n.starts_with(p))
}

fn drop_hop_by_hop(headers: &mut HeaderMap, mask: u16) {
    if mask & 1 != 0 {
        drop_connection_named(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if mask & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Drops the headers that `Connection` names.
fn drop_connection_named(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::CONNECTION).iter();
    let (first, more) = (values.next().cloned(), values.next().is_some());
    match first {
        // The usual case: one `Connection` header. Its value is cloned (a reference
        // count), and each name is removed by `&str` (parsed in place, no allocation).
        Some(value) if !more => {
            for name in value.to_str().into_iter().flat_map(|v| v.split(',')) {
                let name = name.trim();
                // `keep-alive` (the usual value) is hop-by-hop anyway: dropped by the caller.
                if !name.eq_ignore_ascii_case("keep-alive") {
                    headers.remove(name);
                }
            }
        }
        _ => {
            let named: Vec<HeaderName> = headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect();
            for name in named {
                headers.remove(name);
            }
        }
    }
}

/// True for `x-tilegate-…` in any case and with `_` or `-` separators.
fn is_gateway_identity(name: &HeaderName) -> bool {
    let n = name.as_str().as_bytes();
    n.len() >= 11 && n[..11].iter().map(|b| if *b == b'_' { b'-' } else { *b }).eq(b"x-tilegate-".iter().copied())
}

/// Cleans a client request's headers for the upstream.
pub fn sanitize_request(headers: &mut HeaderMap) {
    let (mask, spoofed) = present(headers);
    drop_hop_by_hop(headers, mask);
    for (i, name) in REQUEST_ONLY.iter().enumerate() {
        if mask & (1 << (HOP_BY_HOP.len() + i)) != 0 {
            headers.remove(name);
        }
    }
    if spoofed {
        let spoofed: Vec<HeaderName> = headers.keys().filter(|n| always_dropped(n)).cloned().collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
}

/// Sets `X-Forwarded-For/Proto/Host`, trusting the client's values only from a
/// configured proxy.
///
/// `host` is the Host the client asked for (read before [`sanitize_request`] drops it).
pub fn set_forwarded(headers: &mut HeaderMap, ctx: &ForwardContext<'_>, host: Option<HeaderValue>) {
    let peer_ip = ctx.peer.ip();
    let trusted = ctx.config.server.trusted_proxies.iter().any(|net| net.contains(&peer_ip));
    let proto = HeaderValue::from_static(if ctx.tls { "https" } else { "http" });
    if trusted {
        let prior: Vec<String> =
            headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        let chain = if prior.is_empty() { peer_ip.to_string() } else { format!("{}, {peer_ip}", prior.join(", ")) };
        set(headers, X_FORWARDED_FOR, &chain);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, proto);
        }
    } else {
        // One pass over the (few) names; removal only when one is there.
        if headers.keys().any(is_client_forwarding) {
            let names: Vec<HeaderName> = headers.keys().filter(|n| is_client_forwarding(n)).cloned().collect();
            for name in names {
                headers.remove(name);
            }
        }
        if let Some(v) = ip_value(peer_ip) {
            headers.insert(X_FORWARDED_FOR, v);
        }
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
}

/// What only a trusted proxy may tell the upstream about the client and the URL it
/// used: `Forwarded`, every `X-Forwarded-*` (`-Host`, `-Port`, `-Prefix`, `-Server`,
/// `-Uri`, `-Scheme`, `-Ssl`…; `-For` and `-Proto` are then set by the gateway), and
/// the client-address headers upstreams and their frameworks read.
fn is_client_forwarding(name: &HeaderName) -> bool {
    const OTHERS: [&str; 12] = [
        "x-real-ip",
        "x-client-ip",
        "client-ip",
        "true-client-ip",
        "x-cluster-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-remote-addr",
        "forwarded-for",
        "x-forwarded",
        "x-original-host",
        "x-host",
    ];
    let n = name.as_str();
    name == FORWARDED || n.starts_with("x-forwarded-") || OTHERS.contains(&n)
}

/// Removes every header whose value holds a copy of the request's token (a
/// `Referer` with `?token=…`, a `Cookie`, a custom header), however escaped
/// ([`holds_copy`]): the upstream never receives it, in any header.
pub fn drop_token_copies(headers: &mut HeaderMap, token: &str) {
    if token.is_empty() {
        return;
    }
    // Escaped and compatibility spellings too (a `Referer` holds the URL percent-encoded).
    let holds = |v: &HeaderValue| holds_copy(v.as_bytes(), token);
    if headers.values().any(holds) {
        let names: Vec<HeaderName> = headers.iter().filter(|(_, v)| holds(v)).map(|(n, _)| n.clone()).collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// nearest `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(headers: &HeaderMap, peer: std::net::IpAddr, trusted: &[ipnet::IpNet]) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut chain: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    while let Some(ip) = chain.pop() {
        if !is_trusted(&ip) {
            return ip;
        }
    }
    peer
}

/// The address as a header value, formatted on the stack (`Display` goes through
/// the formatting machinery, ~1000 instructions for an IPv4 address).
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    // An address is at most 45 characters (IPv6 with an embedded IPv4).
    let mut buf = [0u8; 64];
    let len = match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            n
        }
        IpAddr::V6(_) => {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            write!(cursor, "{ip}").ok()?;
            cursor.position() as usize
        }
    };
    HeaderValue::from_bytes(&buf[..len]).ok()
}

/// Settles the request's id and writes it into `headers` (which become the
/// upstream request's): a client's `X-Request-Id` is kept only from a trusted proxy
/// and only when [sane](crate::access::sane_request_id); otherwise a new id
/// replaces it, so an untrusted client's value never reaches the upstream.
pub fn request_id(headers: &mut HeaderMap, trusted_peer: bool) -> HeaderValue {
    let mut values = headers.get_all(crate::access::REQUEST_ID).iter();
    let kept = match (values.next(), values.next()) {
        (Some(v), None) if trusted_peer && crate::access::sane_request_id(v.as_bytes()) => Some(v.clone()),
        _ => None,
    };
    match kept {
        Some(v) => v,
        None => {
            let id = crate::access::new_request_id();
            headers.insert(crate::access::REQUEST_ID, id.clone());
            id
        }
    }
}

/// Adds the gateway's identity headers for the upstream (after spoofed ones were dropped).
pub fn set_identity(headers: &mut HeaderMap, permit: &Permit) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = permit.token_id().0.hyphenated().encode_lower(&mut buf);
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(TOKEN_ID_NAME, v);
    }
    headers.insert(TIER_NAME, HeaderValue::from_static(permit.tier().as_str()));
}

/// Response headers that can carry an upstream URL: dropped when they hold an
/// absolute one (`scheme://` or `//host`), which would tell the client the upstream's
/// address and send it around the gateway.
static URL_HEADERS: [HeaderName; 4] =
    [header::LOCATION, header::CONTENT_LOCATION, header::LINK, HeaderName::from_static("refresh")];

/// True when a header value may name another origin: anything with a `:` before its
/// first `/` (a scheme; browsers read `http:/\host` as absolute), `//` or `\`
/// anywhere (network-path references, backslashes browsers read as slashes), read as a
/// browser's URL parser reads it: without the tabs and line breaks it removes first
/// (`/<TAB>/evil.example` is `//evil.example`; attacker round 5).
fn names_an_origin(value: &HeaderValue) -> bool {
    let raw = value.as_bytes();
    let cleaned: Vec<u8>;
    let v = if raw.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        cleaned = raw.iter().copied().filter(|b| !matches!(b, b'\t' | b'\n' | b'\r')).collect();
        &cleaned[..]
    } else {
        raw
    };
    let scheme = v.iter().position(|b| *b == b':').is_some_and(|c| !v[..c].contains(&b'/'));
    scheme || v.windows(2).any(|w| w == b"//") || v.contains(&b'\\')
}

/// Whether an upstream response header is one the gateway relays: the representation
/// (`Content-*`, `Accept-Ranges`), caching and validators (cleaned by
/// [`cache_for_token`]), `Date`, `Retry-After`, `Allow`, `Warning`, OGC API's
/// `Content-Crs`, CORS (`Access-Control-*`) and the browser protections an upstream may
/// add. Every other header is dropped: an upstream's custom headers name its hosts,
/// proxies and paths. The hop-by-hop, identity, URL and front-proxy families are
/// handled by their own rules in [`sanitize_response`].
fn is_relayed(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "content-type"
            | "content-length"
            | "content-encoding"
            | "content-language"
            | "content-range"
            | "content-disposition"
            | "content-crs"
            | "accept-ranges"
            | "cache-control"
            | "etag"
            | "last-modified"
            | "vary"
            | "date"
            | "retry-after"
            | "allow"
            | "warning"
            | "x-content-type-options"
            | "x-frame-options"
            | "referrer-policy"
            | "permissions-policy"
            | "cross-origin-resource-policy"
            | "cross-origin-opener-policy"
            | "cross-origin-embedder-policy"
            | "x-request-id"
    ) || n.starts_with("access-control-")
}

/// Upstream response headers that describe the upstream's software and the proxies in
/// front of it, or hand the client upstream state: the client learns nothing about
/// what is behind the gateway, and no token holder gets the upstream's session.
///
/// - `Set-Cookie`/`Set-Cookie2`: an upstream session (GeoServer's `JSESSIONID`, a
///   load balancer's sticky cookie) would be handed to every token holder, and sent
///   back by browsers on every request to the gateway's host; no OGC service tilegate
///   fronts needs one (GeoServer's web admin, which does, is not served);
/// - `WWW-Authenticate`, `Authentication-Info`: the upstream's own authentication
///   (`Basic realm="GeoServer Realm"`); the gateway's challenge is its own;
/// - `Alt-Svc`: would send the client to another host or port for this origin;
/// - software and timing: `Server`, `X-Powered-By`, `Via`, `Server-Timing`,
///   `X-AspNet-Version`, `X-AspNetMvc-Version`, `X-Runtime`, `X-Generator`,
///   `X-Backend-Server`, `X-Served-By`.
static UPSTREAM_IDENTITY: [HeaderName; 15] = [
    header::SERVER,
    HeaderName::from_static("x-powered-by"),
    header::VIA,
    header::SET_COOKIE,
    HeaderName::from_static("set-cookie2"),
    header::WWW_AUTHENTICATE,
    HeaderName::from_static("authentication-info"),
    HeaderName::from_static("alt-svc"),
    HeaderName::from_static("server-timing"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
    HeaderName::from_static("x-runtime"),
    HeaderName::from_static("x-generator"),
    HeaderName::from_static("x-backend-server"),
    HeaderName::from_static("x-served-by"),
];

// The masks of `sanitize_response` hold one bit per entry.
const _: () =
    assert!(HOP_BY_HOP.len() + REQUEST_ONLY.len() <= 16 && UPSTREAM_IDENTITY.len() <= 16 && URL_HEADERS.len() <= 8);

/// Cleans an upstream response's headers for the client.
///
/// One pass over the names finds what is there (the client-request checks of
/// [`present`] do not apply to answers); only those are looked up again.
pub fn sanitize_response(headers: &mut HeaderMap) {
    // Bit i of each mask: entry i of HOP_BY_HOP, UPSTREAM_IDENTITY, URL_HEADERS is
    // present, so only those are looked up again (an answer usually carries `Server`
    // and `Connection`, and removing all 15 identity names cost 1.5k instructions).
    let (mut mask, mut identity, mut urls, mut front, mut unknown) = (0u16, 0u16, 0u8, false, false);
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            mask |= 1 << i;
        } else if is_front_directive(name) {
            front = true;
        } else if let Some(i) = UPSTREAM_IDENTITY.iter().position(|h| h == name) {
            identity |= 1 << i;
        } else if let Some(i) = URL_HEADERS.iter().position(|h| h == name) {
            urls |= 1 << i;
        } else if !is_relayed(name) {
            unknown = true;
        }
    }
    if unknown {
        // Only what a client of a map server reads leaves (attacker round 4:
        // `X-Forwarded-Server: int.corp`, `X-Internal-Url` and the like passed a
        // denylist). Collected only when there is one: no allocation otherwise.
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|n| {
                !is_relayed(n)
                    && !HOP_BY_HOP.contains(n)
                    && !is_front_directive(n)
                    && !UPSTREAM_IDENTITY.contains(n)
                    && !URL_HEADERS.contains(n)
            })
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
    if headers
        .get_all(header::CONTENT_DISPOSITION)
        .iter()
        .any(|v| v.as_bytes().iter().any(|b| matches!(b, b'/' | b'\\')))
    {
        // A file name with a path names the upstream's file system.
        headers.remove(header::CONTENT_DISPOSITION);
    }
    drop_hop_by_hop(headers, mask);
    if front {
        let names: Vec<HeaderName> = headers.keys().filter(|n| is_front_directive(n)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
    for (i, name) in UPSTREAM_IDENTITY.iter().enumerate() {
        if identity & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for (i, name) in URL_HEADERS.iter().enumerate() {
        if urls & (1 << i) != 0 && headers.get_all(name).iter().any(names_an_origin) {
            headers.remove(name);
        }
    }
    confine_active_content(headers);
}

/// Cache rules for every answer the gateway relays under a token.
///
/// Every relayed answer was judged for one token, so no shared cache (a CDN, a
/// proxy in front of the gateway) may store it: with a header or Basic token the
/// URL is the same for every caller, tokenless ones included. MapProxy's tiles come
/// with `public, s-maxage=259200`; `public`, `s-maxage` and `proxy-revalidate` are
/// removed and `private` added, the other directives (`max-age`, `no-cache`, …)
/// stay. `Vary: Authorization, X-Access-Token` keeps a private cache from answering one
/// credential with another's answer. An answer filtered for the token (property fence,
/// geometry filter, clipping) is `private, no-store`: QGIS 3.22's cache reuses an
/// answer by URL alone, and gave a fenced token's layer an unrestricted token's
/// features.
pub fn cache_for_token(headers: &mut HeaderMap, filtered: bool) {
    // The directives caches obey before `Cache-Control` are already gone
    // ([`sanitize_response`]), so this is the only rule an answer leaves with.
    if filtered {
        headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    } else if let Some(kept) = shared_cache_directives_removed(headers) {
        headers.insert(http::header::CACHE_CONTROL, kept);
    }
    // Both headers a token arrives in (`?token=` is in the URL a cache keys on).
    let (mut authorization, mut access_token) = (false, false);
    for v in headers.get_all(http::header::VARY).iter().filter_map(|v| v.to_str().ok()) {
        for d in v.split(',').map(str::trim) {
            let any = d == "*";
            authorization |= any || d.eq_ignore_ascii_case("authorization");
            access_token |= any || d.eq_ignore_ascii_case("x-access-token");
        }
    }
    match (authorization, access_token) {
        (false, false) => headers.append(http::header::VARY, HeaderValue::from_static("authorization, x-access-token")),
        (false, true) => headers.append(http::header::VARY, HeaderValue::from_static("authorization")),
        (true, false) => headers.append(http::header::VARY, HeaderValue::from_static("x-access-token")),
        (true, true) => false,
    };
}

/// The answer's `Cache-Control` without what lets a shared cache store it, plus
/// `private`; `None` when it is already private and has nothing to remove.
fn shared_cache_directives_removed(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(http::header::CACHE_CONTROL).iter().peekable();
    if values.peek().is_none() {
        return Some(HeaderValue::from_static("private"));
    }
    let mut kept = String::from("private");
    let (mut changed, mut private) = (false, false);
    for value in values {
        // A value that is not text cannot be read: replaced by `private` alone.
        let Ok(text) = value.to_str() else {
            changed = true;
            continue;
        };
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let name = directive.split('=').next().unwrap_or(directive).trim();
            if name.eq_ignore_ascii_case("private") {
                private = true;
            } else if ["public", "s-maxage", "proxy-revalidate"].iter().any(|n| name.eq_ignore_ascii_case(n)) {
                changed = true;
            } else {
                kept.push_str(", ");
                kept.push_str(directive);
            }
        }
    }
    if private && !changed {
        return None;
    }
    HeaderValue::from_str(&kept).ok().or(Some(HeaderValue::from_static("private")))
}

/// A header the upstream has no business giving to whatever stands in front of the
/// gateway: directives to a front proxy (nginx `X-Accel-Redirect` serves an internal
/// location, Apache/lighttpd `X-Sendfile` a file), and the cache directives CDNs and
/// proxies obey before `Cache-Control` (RFC 9213 `CDN-Cache-Control` and its vendor
/// forms, `Surrogate-Control`, nginx's `X-Accel-Expires`, Akamai's `Edge-Control`,
/// HTTP/1.0's `Expires`/`Pragma`, `Age`), which would override [`cache_for_token`].
fn is_front_directive(name: &HeaderName) -> bool {
    let n = name.as_str();
    is_origin_power(n)
        || n.starts_with("x-accel-")
        || matches!(
            n,
            "x-sendfile" | "x-lighttpd-send-file" | "surrogate-control" | "edge-control" | "expires" | "pragma" | "age"
        )
        || n.ends_with("cdn-cache-control")
}

/// Upstream response headers that give an answer power over the gateway's origin in
/// a browser (attacker round 4: a page relayed through `/path/` registered a service
/// worker for `/` with `Service-Worker-Allowed: /` and read the console's token API
/// calls): service-worker scope, wiping the origin's storage, the upstream's own
/// content policy (the gateway sets its own, [`confine_active_content`]), and
/// reporting endpoints that would make browsers send reports to a URL of the
/// upstream's choosing.
fn is_origin_power(n: &str) -> bool {
    matches!(
        n,
        "service-worker-allowed"
            | "clear-site-data"
            | "content-security-policy"
            | "content-security-policy-report-only"
            | "report-to"
            | "reporting-endpoints"
            | "nel"
            | "speculation-rules"
            | "origin-agent-cluster"
            | "x-xss-protection"
    )
}

/// Whether an answer of this `Content-Type` is inert in a browser: images (not SVG),
/// tiles, JSON and binary downloads. Anything else (HTML, XML, which browsers render
/// with scripts and stylesheets, SVG, JavaScript, text a browser might sniff, no type
/// at all) is active content.
fn is_inert(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let is = |t: &str| essence.eq_ignore_ascii_case(t);
    (essence.len() > 6 && essence[..6].eq_ignore_ascii_case("image/") && !is("image/svg+xml"))
        || is("application/json")
        || is("application/geo+json")
        || is("application/vnd.mapbox-vector-tile")
        || is("application/vnd.maplibre-tile")
        || is("application/x-protobuf")
        || is("application/octet-stream")
        || is("application/vnd.pmtiles")
}

/// Sandboxes active content an upstream answers with (HTML, XML, SVG, scripts): it is
/// relayed under the gateway's origin, which also serves the console and the token
/// API, so it must not run as that origin. `Content-Security-Policy: sandbox` gives
/// the document an opaque origin with no scripts (no `sessionStorage`, no service
/// worker, no same-origin `fetch`), and `nosniff` keeps a browser from reading an
/// inert-looking answer as HTML. Called by [`sanitize_response`] after the
/// upstream's own policy was removed.
fn confine_active_content(headers: &mut HeaderMap) {
    if !is_inert(headers.get(header::CONTENT_TYPE)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_control(h: &HeaderMap) -> Vec<&str> {
        h.get_all(http::header::CACHE_CONTROL).iter().map(|v| v.to_str().expect("text")).collect()
    }

    #[test]
    fn cdn_and_front_proxy_directives_never_leave_with_an_answer() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("cdn-cache-control", "public, max-age=86400"),
            ("cloudflare-cdn-cache-control", "max-age=86400"),
            ("surrogate-control", "max-age=86400"),
            ("x-accel-expires", "86400"),
            ("edge-control", "cache-maxage=86400"),
            ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ("pragma", "cache"),
            ("age", "5"),
            ("x-accel-redirect", "/internal/secret"),
            ("x-sendfile", "/etc/passwd"),
            ("content-type", "image/png"),
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        sanitize_response(&mut h);
        cache_for_token(&mut h, true);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["cache-control", "content-type", "vary"]);
    }

    #[test]
    fn mapproxy_public_tiles_are_made_private_and_vary_on_authorization() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=259200, s-maxage=259200"));
        cache_for_token(&mut h, false);
        assert_eq!(cache_control(&h), ["private, max-age=259200"]);
        // Attacker round 5: a token in `x-access-token` is a credential a private cache
        // must key on too.
        assert_eq!(h[http::header::VARY], "authorization, x-access-token");
    }

    #[test]
    fn an_answer_without_cache_headers_is_private() {
        let mut h = HeaderMap::new();
        cache_for_token(&mut h, false);
        assert_eq!(cache_control(&h), ["private"]);
        assert_eq!(h[http::header::VARY], "authorization, x-access-token");
    }

    #[test]
    fn a_filtered_answer_is_never_stored() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
        h.insert(http::header::VARY, HeaderValue::from_static("Accept-Encoding, Authorization"));
        cache_for_token(&mut h, true);
        assert_eq!(cache_control(&h), ["private, no-store"]);
        let vary: Vec<&str> = h.get_all(http::header::VARY).iter().map(|v| v.to_str().unwrap_or("")).collect();
        assert_eq!(vary, ["Accept-Encoding, Authorization", "x-access-token"], "Authorization is already there");
    }

    #[test]
    fn split_and_odd_cache_control_values_lose_every_shared_directive() {
        let mut h = HeaderMap::new();
        h.append(http::header::CACHE_CONTROL, HeaderValue::from_static("max-age=10"));
        h.append(http::header::CACHE_CONTROL, HeaderValue::from_static("PUBLIC, S-MAXAGE=99, Proxy-Revalidate"));
        cache_for_token(&mut h, false);
        assert_eq!(cache_control(&h), ["private, max-age=10"]);
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=5"));
        cache_for_token(&mut h, false);
        assert_eq!(cache_control(&h), ["private, max-age=5"], "already private: left as it is");
    }

    #[test]
    fn identity_headers_are_recognised_in_every_spelling() {
        for name in ["x-tilegate-tier", "X-Tilegate-Token-Id", "x_tilegate_tier", "X_TILEGATE-x", "x-tilegate_tier"] {
            assert!(is_gateway_identity(&HeaderName::from_bytes(name.as_bytes()).expect("name")), "{name}");
        }
        for name in ["x-tilegat", "x-tilegatex", "tilegate-tier", "x-forwarded-for"] {
            assert!(!is_gateway_identity(&HeaderName::from_bytes(name.as_bytes()).expect("name")), "{name}");
        }
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_nearest_untrusted_forwarded_address() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.1, 10.0.0.7"));
        let lb: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(client_ip(&h, lb, &trusted), "198.51.100.1".parse::<std::net::IpAddr>().expect("ip"));
        let stranger: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(client_ip(&h, stranger, &trusted), stranger, "a forwarded header from anyone else is ignored");
        assert_eq!(client_ip(&HeaderMap::new(), lb, &trusted), lb);
    }

    #[test]
    fn a_request_id_is_kept_only_from_a_trusted_proxy_and_only_when_sane() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-request-id", HeaderValue::from_static(v));
            h
        };
        let mut h = with("lb-1234");
        assert_eq!(request_id(&mut h, true), "lb-1234");
        assert_eq!(h.get("x-request-id").expect("kept"), "lb-1234");

        let mut h = with("client-chosen");
        let id = request_id(&mut h, false);
        assert_ne!(id, "client-chosen");
        assert_eq!(h.get_all("x-request-id").iter().collect::<Vec<_>>(), [&id], "replaced, not added");

        let mut h = with("has space");
        assert_ne!(request_id(&mut h, true), "has space", "an odd id from a trusted proxy is replaced too");

        let mut h = with("a");
        h.append("x-request-id", HeaderValue::from_static("b"));
        let id = request_id(&mut h, true);
        assert_eq!(h.get_all("x-request-id").iter().collect::<Vec<_>>(), [&id], "two ids are one too many");

        let mut h = HeaderMap::new();
        let id = request_id(&mut h, false);
        assert_eq!(h.get("x-request-id"), Some(&id));
    }

    #[test]
    fn addresses_format_as_display_does() {
        for ip in
            ["0.0.0.0", "127.0.0.1", "10.20.3.255", "203.0.113.7", "::1", "2001:db8::8:800:200c:417a", "::ffff:1.2.3.4"]
        {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(ip_value(ip).expect("value").to_str().expect("ascii"), ip.to_string());
        }
    }

    /// Attacker round 5: `Location: /<TAB>/evil.example/x` passed as relative; browsers
    /// and urllib drop the tab and follow `//evil.example/x`.
    #[test]
    fn a_url_header_names_an_origin_as_a_browser_reads_it() {
        for v in [
            "//evil.example/x",
            "/\\evil.example/x",
            "/\t/evil.example/x",
            "ht\ttp://evil.example/",
            "javascript:alert(1)",
            "http:/\\evil",
        ] {
            let value = HeaderValue::from_bytes(v.as_bytes()).expect("value");
            assert!(names_an_origin(&value), "{v:?}");
        }
        for v in ["/osm/here", "items?offset=10", "../x", "/a/b?c=d:e"] {
            assert!(!names_an_origin(&HeaderValue::from_static(v)), "{v:?}");
        }
    }

    #[test]
    fn upstream_sessions_challenges_and_software_never_reach_the_client() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("set-cookie", "JSESSIONID=0123; Path=/geoserver; HttpOnly"),
            ("set-cookie2", "a=b; Version=1"),
            ("www-authenticate", "Basic realm=\"GeoServer Realm\""),
            ("authentication-info", "nextnonce=\"x\""),
            ("alt-svc", "h2=\"10.0.0.5:8443\""),
            ("server", "Jetty(9.4)"),
            ("x-powered-by", "pygeoapi 0.21"),
            ("server-timing", "db;dur=53"),
            ("x-aspnet-version", "4.0"),
            ("x-runtime", "0.1"),
            ("x-backend-server", "geo-3.internal"),
            ("content-type", "image/png"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        h.append(header::SET_COOKIE, HeaderValue::from_static("lb=7"));
        sanitize_response(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type"]);
    }

    #[test]
    fn response_hop_by_hop_headers_go_and_the_rest_stays() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.append("connection", HeaderValue::from_static("x-a"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("content-type", HeaderValue::from_static("image/png"));
        h.insert("x-tilegate-tier", HeaderValue::from_static("view"));
        // Attacker round 4: custom upstream headers naming its hosts and paths passed.
        h.insert("x-forwarded-server", HeaderValue::from_static("int.corp"));
        h.insert("x-internal-url", HeaderValue::from_static("http://10.0.0.5/"));
        h.insert("content-disposition", HeaderValue::from_static("inline; filename=/srv/secret/path.png"));
        h.insert("etag", HeaderValue::from_static("\"e\""));
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        sanitize_response(&mut h);
        let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["access-control-allow-origin", "content-type", "etag"]);
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        h.insert("x-access-token", HeaderValue::from_static("x"));
        h.insert("x_tilegate_tier", HeaderValue::from_static("admin"));
        h.insert("accept", HeaderValue::from_static("image/png"));
        sanitize_request(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }
}

/// True when what the gateway is about to forward holds a copy of the request's token:
/// in the upstream URL (a path segment, another query parameter) or in a judged body
/// (a WFS XML POST, a form, an OGC API item), as written or once or twice decoded
/// (percent escapes, XML character references, JSON `\u` escapes). The token's own
/// places (headers, the `token` parameter) are removed before this is asked; a
/// streamed body (`/path/…` writes) is not read.
///
/// The client's `Host` (and the HTTP/2 `:authority`) is asked too: an upstream sees
/// it as `X-Forwarded-Host` and builds URLs from it.
pub fn carries_token(uri: &http::Uri, client: &http::request::Parts, body: &super::Outgoing, token: &str) -> bool {
    let in_host = client.headers.get_all(http::header::HOST).iter().any(|h| holds_copy(h.as_bytes(), token))
        || client.uri.authority().is_some_and(|a| holds_copy(a.as_str().as_bytes(), token));
    in_host || in_request(uri, body, token)
}

fn in_request(uri: &http::Uri, body: &super::Outgoing, token: &str) -> bool {
    let in_body = match body {
        super::Outgoing::Judged(bytes, _) => holds_copy(bytes, token),
        super::Outgoing::Stream(_) | super::Outgoing::Empty => false,
    };
    in_body || uri.path_and_query().is_some_and(|pq| holds_copy(pq.as_str().as_bytes(), token))
}

/// `haystack` holds `token`, as written or after up to two rounds of decoding, and
/// in its NFKC form when it has non-ASCII bytes (`ｔｇ＿…` in fullwidth letters is
/// the token to anyone who reads the upstream's log, and to any layer that folds
/// compatibility characters; ASCII text is never normalised, so it costs nothing).
pub(crate) fn holds_copy(haystack: &[u8], token: &str) -> bool {
    holds_copy_from(haystack, token, 0)
}

fn holds_copy_from(haystack: &[u8], token: &str, first_round: usize) -> bool {
    let needle = token.as_bytes();
    if needle.is_empty() {
        return false;
    }
    let mut text = std::borrow::Cow::Borrowed(haystack);
    for round in first_round..3 {
        if text.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        if !text.is_ascii() {
            // NFKC is idempotent: the normalised text normalises to itself, so this
            // recursion is one level deep per round.
            if let Some(folded) = nfkc(&text) {
                if folded.as_bytes() != &*text && holds_copy_from(folded.as_bytes(), token, round) {
                    return true;
                }
            }
        }
        match decode_once(&text) {
            Some(decoded) => text = std::borrow::Cow::Owned(decoded),
            None => return false,
        }
    }
    false
}

/// The NFKC form of `text`, when it is text: UTF-8 but for at most a character cut at
/// each end (a streamed frame's boundaries; those bytes read as U+FFFD). Binary data
/// (an uploaded file) is not normalised: it is not text any reader folds.
fn nfkc(text: &[u8]) -> Option<String> {
    use unicode_normalization::UnicodeNormalization as _;
    if text.utf8_chunks().filter(|c| !c.invalid().is_empty()).nth(2).is_some() {
        return None;
    }
    Some(String::from_utf8_lossy(text).nfkc().collect())
}

/// One round of `%XX`, `&#NN;` / `&#xHH;` and `\uXXXX` decoding, and of removing the
/// XML markup a reader joins text across (`<!--…-->`, `<?…?>`, the `<![CDATA[` and
/// `]]>` delimiters: `tg_…<![CDATA[…]]>` is the token to every XML parser); `None`
/// when there is nothing to decode.
fn decode_once(text: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| u32::from_str_radix(s, 16).ok());
    let find = |hay: &[u8], end: &[u8]| hay.windows(end.len()).position(|w| w == end);
    if !text.iter().any(|b| matches!(b, b'%' | b'&' | b'\\' | b'<' | b']')) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        // Markup a reader drops between two halves of a text: skipped whole.
        let markup = if rest.starts_with(b"<![CDATA[") {
            Some(9)
        } else if rest.starts_with(b"]]>") {
            Some(3)
        } else if rest.starts_with(b"<!--") {
            find(&rest[4..], b"-->").map(|end| 4 + end + 3)
        } else if rest.starts_with(b"<?") {
            find(&rest[2..], b"?>").map(|end| 2 + end + 2)
        } else {
            None
        };
        if let Some(len) = markup {
            changed = true;
            i += len;
            continue;
        }
        if let [b'%', a, b, ..] = rest {
            // A percent escape is a byte (of UTF-8, for a non-ASCII character), not a
            // code point.
            if let Some(byte) = hex(&[*a, *b]) {
                out.push(byte as u8);
                changed = true;
                i += 3;
                continue;
            }
        }
        let decoded = match rest {
            [b'\\', b'u', ..] if rest.len() >= 6 => hex(&rest[2..6]).map(|c| (c, 6)),
            [b'&', b'#', ..] => rest.iter().position(|b| *b == b';').filter(|end| *end <= 12).and_then(|end| {
                let digits = &rest[2..end];
                let code = match digits.first() {
                    Some(b'x' | b'X') => hex(&digits[1..]),
                    _ => std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()),
                };
                code.map(|c| (c, end + 1))
            }),
            _ => None,
        };
        match decoded.and_then(|(c, len)| char::from_u32(c).map(|c| (c, len))) {
            Some((c, len)) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                changed = true;
                i += len;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    const T: &str = "tg_0123456789abcdefghijABCDEFGHIJ0123456789abcdef";

    #[test]
    fn a_copy_of_the_token_is_found_however_it_is_escaped() {
        let encoded: String = T.bytes().map(|b| format!("%{b:02X}")).collect();
        let twice = encoded.replace('%', "%25");
        let xml: String = T.chars().map(|c| format!("&#{};", c as u32)).collect();
        let xml_hex: String = T.chars().map(|c| format!("&#x{:x};", c as u32)).collect();
        let json: String = T.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        for text in [
            format!("/wms?STYLES={T}"),
            format!("/x/{T}/y"),
            format!("a=%74{}", &T[1..]),
            encoded,
            twice,
            format!("<fes:Literal>{xml}</fes:Literal>"),
            xml_hex,
            format!(r#"{{"properties":{{"note":"{json}"}}}}"#),
            // Attacker round 2: split by markup every XML reader joins across.
            format!("<fes:Literal>{}<![CDATA[{}]]></fes:Literal>", &T[..20], &T[20..]),
            format!("<fes:Literal>{}<!--x-->{}</fes:Literal>", &T[..20], &T[20..]),
            format!("<fes:Literal>{}<?x y?>{}</fes:Literal>", &T[..20], &T[20..]),
            format!("FILTER=%3Cfes%3ALiteral%3E{}%3C%21--x--%3E{}", &T[..20], &T[20..]),
        ] {
            assert!(holds_copy(text.as_bytes(), T), "{text}");
        }
        // #12: compatibility spellings (NFKC folds them to the token), also escaped.
        let fullwidth: String =
            T.chars().map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).expect("fullwidth")).collect();
        let mixed = format!("{}{}", &T[..10], fullwidth.chars().skip(10).collect::<String>());
        let escaped: String = fullwidth.bytes().map(|b| format!("%{b:02X}")).collect();
        let math: String = T.chars().map(|c| if c == 'a' { '\u{1D41A}' } else { c }).collect();
        for text in [fullwidth, mixed, escaped, math] {
            assert!(holds_copy(text.as_bytes(), T), "{text}");
        }
        for text in ["/wms?LAYERS=osm", "tg_0123456789", "%zz&#;\\u12", "ｔｇ＿０１２"] {
            assert!(!holds_copy(text.as_bytes(), T), "{text}");
        }
        assert!(!holds_copy(b"anything", ""));
    }
}
