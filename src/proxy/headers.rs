//! Forwarding hygiene for headers (DESIGN.md §6).
//!
//! Hop-by-hop headers and those named in `Connection` are dropped both ways;
//! every credential header is dropped before the upstream; client-sent
//! `X-Tilegate-*` headers (any case, `_` or `-`) are dropped before the gateway
//! sets its own; `X-Forwarded-*` and `Forwarded` from the client are kept only
//! when the peer is a trusted proxy.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::ForwardContext;
use crate::policy::Permit;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The identity headers the gateway sets for the upstream.
pub const TOKEN_ID_HEADER: &str = "x-tilegate-token-id";
pub const TIER_HEADER: &str = "x-tilegate-tier";

fn drop_hop_by_hop(headers: &mut HeaderMap) {
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
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// True for `x-tilegate-…` in any case and with `_` or `-` separators.
fn is_gateway_identity(name: &HeaderName) -> bool {
    let n = name.as_str().as_bytes();
    n.len() >= 11 && n[..11].iter().map(|b| if *b == b'_' { b'-' } else { *b }).eq(b"x-tilegate-".iter().copied())
}

/// Cleans a client request's headers for the upstream.
pub fn sanitize_request(headers: &mut HeaderMap) {
    drop_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-access-token");
    headers.remove(header::HOST);
    let spoofed: Vec<HeaderName> = headers.keys().filter(|n| is_gateway_identity(n)).cloned().collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-For/Proto/Host`, trusting the client's values only from a
/// configured proxy.
pub fn set_forwarded(headers: &mut HeaderMap, ctx: &ForwardContext<'_>) {
    let peer_ip = ctx.peer.ip();
    let trusted = ctx.config.server.trusted_proxies.iter().any(|net| net.contains(&peer_ip));
    let host = headers.get(header::HOST).cloned();
    if trusted {
        let prior: Vec<String> =
            headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        let chain = if prior.is_empty() { peer_ip.to_string() } else { format!("{}, {peer_ip}", prior.join(", ")) };
        set(headers, "x-forwarded-for", &chain);
        if !headers.contains_key("x-forwarded-proto") {
            set(headers, "x-forwarded-proto", if ctx.tls { "https" } else { "http" });
        }
    } else {
        headers.remove("forwarded");
        headers.remove("x-forwarded-host");
        headers.remove("x-forwarded-port");
        headers.remove("x-real-ip");
        set(headers, "x-forwarded-for", &peer_ip.to_string());
        set(headers, "x-forwarded-proto", if ctx.tls { "https" } else { "http" });
    }
    if !headers.contains_key("x-forwarded-host") {
        if let Some(host) = host {
            headers.insert("x-forwarded-host", host);
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

/// Adds the gateway's identity headers for the upstream (after spoofed ones were dropped).
pub fn set_identity(headers: &mut HeaderMap, permit: &Permit) {
    set(headers, TOKEN_ID_HEADER, &permit.token_id().to_string());
    headers.insert(TIER_HEADER, HeaderValue::from_static(permit.tier().as_str()));
}

/// Cleans an upstream response's headers for the client.
pub fn sanitize_response(headers: &mut HeaderMap) {
    drop_hop_by_hop(headers);
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
