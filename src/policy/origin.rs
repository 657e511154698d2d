//! Allowed origins: which web pages may use a browser token (`allowedOrigins`).
//!
//! An entry is an exact origin (`https://app.example.org`, `http://10.0.0.5:8080`)
//! or a wildcard over the labels left of a domain (`https://*.example.org`: one or
//! more labels, so `a.example.org` and `a.b.example.org`, never the bare
//! `example.org`). Entries are normalised when parsed — scheme and host lowercase,
//! the scheme's default port dropped, IPv6 written as `Ipv6Addr` prints it — so the
//! stored text compares byte for byte with the origin of a request.
//!
//! The request's origin is its `Origin` header or, without one, the origin of its
//! `Referer` ([`presented`]); [`check`] refuses a request whose origin matches no
//! entry, and one that names no origin at all (see ARCHITECTURE.md: a token with a
//! list is a browser token; curl, QGIS and a script that lifted the token send
//! neither header). Pure: no I/O, no clock, no logging.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

use super::Denial;

/// The most entries one token may list.
pub const MAX_ALLOWED_ORIGINS: usize = 64;

/// One `allowedOrigins` entry, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OriginPattern {
    scheme: Scheme,
    host: Host,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Host {
    /// A DNS name or an IP literal, as written in an origin (`[::1]` with brackets).
    Exact(String),
    /// `*.` + this suffix (at least two labels).
    Wildcard(String),
}

/// Why an entry is not an origin; the text says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` {why}")]
pub struct BadOrigin {
    pub entry: String,
    pub why: String,
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            Host::Exact(h) => h.clone(),
            Host::Wildcard(s) => format!("*.{s}"),
        };
        match self.port {
            Some(p) => write!(f, "{}://{host}:{p}", self.scheme.as_str()),
            None => write!(f, "{}://{host}", self.scheme.as_str()),
        }
    }
}

impl std::str::FromStr for OriginPattern {
    type Err = BadOrigin;
    fn from_str(s: &str) -> Result<Self, BadOrigin> {
        OriginPattern::parse(s)
    }
}

impl OriginPattern {
    /// Parses and normalises an `allowedOrigins` entry.
    ///
    /// ```
    /// use tilegate::policy::OriginPattern;
    /// let p = OriginPattern::parse("HTTPS://App.Example.org:443").unwrap();
    /// assert_eq!(p.to_string(), "https://app.example.org");
    /// assert_eq!(OriginPattern::parse("https://*.example.org:8443").unwrap().to_string(), "https://*.example.org:8443");
    /// assert!(OriginPattern::parse("https://example.org/").is_err(), "a path");
    /// assert!(OriginPattern::parse("https://a.*.example.org").is_err(), "`*` not leftmost");
    /// assert!(OriginPattern::parse("null").is_err());
    /// ```
    pub fn parse(entry: &str) -> Result<OriginPattern, BadOrigin> {
        let bad = |why: &str| BadOrigin { entry: entry.to_owned(), why: why.to_owned() };
        if entry.eq_ignore_ascii_case("null") {
            return Err(bad(
                "is the opaque origin of sandboxed frames and local files: it names no site, so it cannot be allowed",
            ));
        }
        if entry == "*" {
            return Err(bad(
                "would allow every origin; leave allowedOrigins out (or null) for a token usable anywhere",
            ));
        }
        let Some((scheme, rest)) = entry.split_once("://") else {
            return Err(bad("is not an origin; write scheme://host[:port], such as https://app.example.org"));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(bad("has a scheme other than http or https")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(bad("has a path, query or fragment; an origin is scheme://host[:port] only (no trailing `/`)"));
        }
        if rest.contains('@') {
            return Err(bad("has user information (`user@`); an origin is scheme://host[:port] only"));
        }
        let (host, port) = split_port(rest).map_err(|why| bad(&why))?;
        let port = port.filter(|p| *p != scheme.default_port());
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = dns_name(suffix).map_err(|why| bad(&why))?;
            if suffix.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
                return Err(bad(
                    "is a wildcard over an IP address; wildcards are for domain names, list IP origins one by one",
                ));
            }
            if suffix.split('.').count() < 2 {
                return Err(bad(
                    "is a wildcard over a whole top-level domain; a wildcard needs at least two labels after `*.`, such as https://*.example.org",
                ));
            }
            Host::Wildcard(suffix)
        } else if host.contains('*') {
            return Err(bad("has `*` elsewhere than as the whole leftmost label (`https://*.example.org`)"));
        } else {
            Host::Exact(host_name(host).map_err(|why| bad(&why))?)
        };
        Ok(OriginPattern { scheme, host, port })
    }

    /// True when `origin` (already normalised by [`RequestOrigin::parse`]) matches.
    pub fn matches(&self, origin: &RequestOrigin) -> bool {
        if self.scheme != origin.scheme || self.port != origin.port {
            return false;
        }
        match &self.host {
            Host::Exact(h) => *h == origin.host,
            Host::Wildcard(suffix) => is_below(&origin.host, suffix),
        }
    }

    /// True when every origin this entry matches is matched by `wider` too (the
    /// delegation rule): exact within an equal exact or a wildcard above it; a
    /// wildcard within an equal or wider wildcard; never a wildcard within an exact.
    ///
    /// ```
    /// use tilegate::policy::OriginPattern;
    /// let p = |s: &str| OriginPattern::parse(s).unwrap();
    /// assert!(p("https://a.example.org").within(&p("https://*.example.org")));
    /// assert!(p("https://*.a.example.org").within(&p("https://*.example.org")));
    /// assert!(!p("https://example.org").within(&p("https://*.example.org")));
    /// assert!(!p("https://*.example.org").within(&p("https://a.example.org")));
    /// assert!(!p("http://a.example.org").within(&p("https://*.example.org")));
    /// ```
    pub fn within(&self, wider: &OriginPattern) -> bool {
        if self.scheme != wider.scheme || self.port != wider.port {
            return false;
        }
        match (&self.host, &wider.host) {
            (Host::Exact(a), Host::Exact(b)) => a == b,
            (Host::Exact(a), Host::Wildcard(s)) => is_below(a, s),
            (Host::Wildcard(a), Host::Wildcard(s)) => a == s || is_below(a, s),
            (Host::Wildcard(_), Host::Exact(_)) => false,
        }
    }
}

/// True when `host` is one or more labels followed by `.suffix`.
fn is_below(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        && !host.starts_with('[')
}

/// `host[:port]` → (host, port); the port must be 1–65535 in decimal.
fn split_port(rest: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if rest.starts_with('[') {
        match rest.find(']') {
            Some(end) => {
                let after = &rest[end + 1..];
                match after.strip_prefix(':') {
                    Some(p) => (&rest[..=end], Some(p)),
                    None if after.is_empty() => (&rest[..=end], None),
                    None => return Err("has text after the IPv6 address; write https://[::1]:8443".into()),
                }
            }
            None => return Err("has an unclosed `[`".into()),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("has port `{p}`; a port is a whole number from 1 to 65535")),
        },
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    Ok((host, port))
}

/// A host as an origin writes it: a DNS name (lowercase), an IPv4 address, or a
/// bracketed IPv6 address.
fn host_name(host: &str) -> Result<String, String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|a| format!("[{a}]"))
            .map_err(|_| format!("`{host}` is not an IPv6 address"));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host.parse::<Ipv4Addr>().map(|a| a.to_string()).map_err(|_| format!("`{host}` is not an IPv4 address"));
    }
    dns_name(host)
}

/// A DNS name: labels of letters, digits and `-` (not at either end), 1–63
/// characters each, 253 in all; non-ASCII names in their `xn--` form.
fn dns_name(name: &str) -> Result<String, String> {
    if !name.is_ascii() {
        return Err("has a non-ASCII host; write its punycode (`xn--…`) form, as browsers send it".into());
    }
    let name = name.to_ascii_lowercase();
    if name.len() > 253 {
        return Err("has a host longer than 253 characters".into());
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "has host label `{label}`; labels are 1 to 63 letters, digits or `-` (not first or last), separated by single dots"
            ));
        }
    }
    Ok(name)
}

/// The origin a request names, normalised like an [`OriginPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOrigin {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
}

impl RequestOrigin {
    /// An `Origin` value, or a `Referer` URL (its path and query are ignored).
    /// `None` for anything that is not an http(s) origin (`null`, `file://`, junk).
    pub fn parse(value: &str, referer: bool) -> Option<RequestOrigin> {
        let (scheme, rest) = value.split_once("://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return None,
        };
        let authority = if referer {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            &rest[..end]
        } else {
            rest
        };
        if authority.contains(['@', '/', '?', '#', '*']) {
            return None;
        }
        let (host, port) = split_port(authority).ok()?;
        let host = host_name(host).ok()?;
        let port = port.filter(|p| *p != scheme.default_port());
        Some(RequestOrigin { scheme, host, port })
    }
}

/// What a request says about where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    /// Neither `Origin` nor `Referer`.
    Nothing,
    /// A header that names no http(s) origin (`Origin: null`, a `file://` referrer,
    /// several values).
    Unreadable,
    Origin(RequestOrigin),
}

/// The request's origin: `Origin`, else the origin of `Referer`. Only called for a
/// token that has a list, so requests with other tokens pay nothing.
pub fn presented(headers: &HeaderMap) -> Presented {
    let one = |name: http::header::HeaderName| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().ok()),
            // Two values: which one a server reads is a guess.
            (Some(_), Some(_)) => Some(None),
        }
    };
    let (value, referer) = match (one(http::header::ORIGIN), one(http::header::REFERER)) {
        (Some(v), _) => (v, false),
        (None, Some(v)) => (v, true),
        (None, None) => return Presented::Nothing,
    };
    match value.and_then(|v| RequestOrigin::parse(v.trim(), referer)) {
        Some(o) => Presented::Origin(o),
        None => Presented::Unreadable,
    }
}

/// The origin check: `allowed` is the token's list (`None`: any origin).
///
/// A request that names no origin is refused for a token with a list: the list
/// makes it a browser token, every browser request for a map (fetch, XHR, `<img>`
/// tiles, CSS) carries `Origin` or `Referer` unless the page opted out with
/// `Referrer-Policy: no-referrer`, and what does not send either — curl, QGIS,
/// GDAL, a script that lifted the token from a page — is exactly what the list is
/// there to keep out. (It cannot keep out a client that forges the header; it
/// keeps other web sites, whose visitors' browsers cannot forge it, from using
/// the token.)
pub fn check(allowed: Option<&[OriginPattern]>, presented: &Presented) -> Result<(), Denial> {
    let Some(allowed) = allowed else { return Ok(()) };
    match presented {
        Presented::Origin(o) if allowed.iter().any(|p| p.matches(o)) => Ok(()),
        _ => Err(Denial::OriginNotAllowed),
    }
}

/// Checks a delegated list against the creator's: `Ok` with the list to store, or
/// the message naming the entry that does not fit.
pub fn narrow(
    creator: Option<&[OriginPattern]>,
    asked: Option<Vec<OriginPattern>>,
) -> Result<Option<Vec<OriginPattern>>, String> {
    let Some(mine) = creator else { return Ok(asked) };
    let Some(asked) = asked else {
        return Err(format!(
            "the calling token may only be used from {}; the new token must list allowedOrigins within them",
            list_text(mine)
        ));
    };
    if let Some(wide) = asked.iter().find(|a| !mine.iter().any(|m| a.within(m))) {
        return Err(format!("`{wide}` is not within the calling token's allowedOrigins ({})", list_text(mine)));
    }
    Ok(Some(asked))
}

fn list_text(list: &[OriginPattern]) -> String {
    list.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> OriginPattern {
        OriginPattern::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn o(s: &str) -> RequestOrigin {
        RequestOrigin::parse(s, false).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn entries_are_normalised() {
        for (given, stored) in [
            ("https://APP.example.ORG", "https://app.example.org"),
            ("HTTP://a.example.org:80", "http://a.example.org"),
            ("https://a.example.org:80", "https://a.example.org:80"),
            ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
            ("https://[0:0:0:0:0:0:0:1]:443", "https://[::1]"),
            ("https://*.Example.org", "https://*.example.org"),
            ("http://localhost:3000", "http://localhost:3000"),
        ] {
            assert_eq!(p(given).to_string(), stored, "{given}");
        }
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        for (entry, says) in [
            ("https://a.example.org/", "path"),
            ("https://a.example.org/app", "path"),
            ("https://a.example.org?x=1", "path"),
            ("https://user@a.example.org", "user information"),
            ("https://a.*.example.org", "leftmost"),
            ("https://*example.org", "leftmost"),
            ("https://**.example.org", "label"),
            ("https://*.org", "two labels"),
            ("null", "opaque"),
            ("*", "every origin"),
            ("a.example.org", "scheme://host"),
            ("ftp://a.example.org", "scheme"),
            ("chrome-extension://abcdef", "scheme"),
            ("https://a.example.org:0", "port"),
            ("https://a.example.org:99999", "port"),
            ("https://a.example.org:+1", "port"),
            ("https://", "no host"),
            ("https://-a.example.org", "label"),
            ("https://a..example.org", "label"),
            ("https://bücher.example", "punycode"),
            ("https://[::1", "unclosed"),
            ("https://999.1.1.1", "IPv4"),
            ("https://*.10.0.0.1", "IP address"),
        ] {
            let e = OriginPattern::parse(entry).expect_err(entry);
            assert!(e.to_string().contains(says), "{entry}: {e}");
        }
    }

    #[test]
    fn wildcards_match_one_or_more_labels_never_the_bare_domain() {
        let w = p("https://*.example.org");
        assert!(w.matches(&o("https://a.example.org")));
        assert!(w.matches(&o("https://a.b.example.org")));
        assert!(!w.matches(&o("https://example.org")));
        assert!(!w.matches(&o("https://evilexample.org")));
        assert!(!w.matches(&o("https://a.example.org.evil.com")));
        assert!(!w.matches(&o("http://a.example.org")), "scheme");
        assert!(!w.matches(&o("https://a.example.org:8443")), "port");
        assert!(w.matches(&o("https://a.example.org:443")), "default port");
    }

    #[test]
    fn the_referer_gives_its_origin_and_junk_gives_none() {
        assert_eq!(
            RequestOrigin::parse("https://App.example.org/maps/?x=1#y", true),
            Some(o("https://app.example.org"))
        );
        assert_eq!(RequestOrigin::parse("https://app.example.org/maps", false), None, "Origin has no path");
        for junk in ["null", "file:///home/a.html", "https://", "https://a@b.org", "https://*.example.org", ""] {
            assert_eq!(RequestOrigin::parse(junk, true), None, "{junk}");
        }
    }

    #[test]
    fn presented_prefers_origin_and_refuses_two_values() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), Presented::Nothing);
        h.insert(http::header::REFERER, "https://b.example.org/page".parse().expect("value"));
        assert_eq!(presented(&h), Presented::Origin(o("https://b.example.org")));
        h.insert(http::header::ORIGIN, "https://a.example.org".parse().expect("value"));
        assert_eq!(presented(&h), Presented::Origin(o("https://a.example.org")));
        h.append(http::header::ORIGIN, "https://c.example.org".parse().expect("value"));
        assert_eq!(presented(&h), Presented::Unreadable);
        h.remove(http::header::ORIGIN);
        h.insert(http::header::ORIGIN, "null".parse().expect("value"));
        assert_eq!(presented(&h), Presented::Unreadable, "Origin: null is not replaced by the Referer");
    }

    #[test]
    fn delegated_lists_lie_within_the_creators() {
        let mine = vec![p("https://*.example.org"), p("https://app.partner.net")];
        assert_eq!(narrow(None, None), Ok(None));
        assert_eq!(narrow(None, Some(vec![p("https://x.org")])), Ok(Some(vec![p("https://x.org")])));
        assert!(narrow(Some(&mine), None).expect_err("any origin is wider").contains("must list"));
        let ok = vec![p("https://a.example.org"), p("https://*.b.example.org"), p("https://app.partner.net")];
        assert_eq!(narrow(Some(&mine), Some(ok.clone())), Ok(Some(ok)));
        for wide in
            ["https://example.org", "https://*.partner.net", "http://a.example.org", "https://a.example.org:8443"]
        {
            let e = narrow(Some(&mine), Some(vec![p("https://a.example.org"), p(wide)])).expect_err(wide);
            assert!(e.starts_with(&format!("`{wide}` is not within")), "{e}");
        }
    }
}
