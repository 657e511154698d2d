//! The extract stage: find the one token a request carries.
//!
//! Accepted: `Authorization: Bearer <t>`, `x-access-token: <t>`,
//! `Authorization: Basic base64(any:<t>)` and, when allowed, a `token` query
//! parameter (name matched case-insensitively). Two different tokens are refused.
//! The caller removes every one of these from the request before forwarding.

use std::borrow::Cow;

use base64::Engine as _;
use http::{HeaderMap, HeaderName};
use percent_encoding::percent_decode_str;

use super::TokenSecret;
use crate::policy::Denial;

/// The token a request carries, and whether it came in the query (capabilities
/// rewriting then appends it to the URLs it writes, so desktop clients keep it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub secret: TokenSecret,
    pub from_query: bool,
}

const X_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-access-token");

/// Finds the request's token. `Ok(None)` when there is none.
pub fn extract(headers: &HeaderMap, query: Option<&str>, allow_query: bool) -> Result<Option<Extracted>, Denial> {
    let mut found: Option<Extracted> = None;
    let mut take = |raw: &str, from_query: bool| -> Result<(), Denial> {
        let secret = TokenSecret::parse(raw.trim()).map_err(|_| Denial::MalformedToken)?;
        match &found {
            Some(prev) if prev.secret != secret => Err(Denial::ConflictingTokens),
            Some(prev) => {
                let from_query = prev.from_query || from_query;
                found = Some(Extracted { secret, from_query });
                Ok(())
            }
            None => {
                found = Some(Extracted { secret, from_query });
                Ok(())
            }
        }
    };
    for value in headers.get_all(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Denial::MalformedToken)?;
        let (scheme, credentials) = value.trim().split_once(' ').ok_or(Denial::MalformedToken)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            take(credentials, false)?;
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .map_err(|_| Denial::MalformedToken)?;
            let decoded = String::from_utf8(decoded).map_err(|_| Denial::MalformedToken)?;
            let (_user, password) = decoded.split_once(':').ok_or(Denial::MalformedToken)?;
            take(password, false)?;
        } else {
            return Err(Denial::MalformedToken);
        }
    }
    for value in headers.get_all(&X_ACCESS_TOKEN) {
        take(value.to_str().map_err(|_| Denial::MalformedToken)?, false)?;
    }
    if let Some(query) = query {
        for (name, value) in query.split('&').filter_map(|pair| pair.split_once('=').or(Some((pair, "")))) {
            if is_token_name(name) {
                if !allow_query {
                    // Refuse rather than ignore: forwarding it would leak the secret upstream.
                    return Err(Denial::QueryTokenDisabled);
                }
                let value = percent_decode_str(&value.replace('+', " "))
                    .decode_utf8()
                    .map_err(|_| Denial::MalformedToken)?
                    .into_owned();
                take(&value, true)?;
            }
        }
    }
    Ok(found)
}

fn is_token_name(raw_name: &str) -> bool {
    // Percent-encoded names (`%74oken`) count too: the upstream would decode them.
    raw_name.len() <= 15 && percent_decode_str(raw_name).decode_utf8().is_ok_and(|n| n.eq_ignore_ascii_case("token"))
}

/// The query without any `token` parameter; borrowed when there was none.
///
/// ```
/// use tilegate::token::strip_token_param;
/// assert_eq!(strip_token_param("a=1&token=x&b=2"), "a=1&b=2");
/// assert_eq!(strip_token_param("TOKEN=x"), "");
/// assert_eq!(strip_token_param("layers=a"), "layers=a");
/// ```
pub fn strip_token_param(query: &str) -> Cow<'_, str> {
    let has = query.split('&').any(|pair| is_token_name(pair.split_once('=').map_or(pair, |p| p.0)));
    if !has {
        return Cow::Borrowed(query);
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !is_token_name(pair.split_once('=').map_or(pair, |p| p.0)))
        .collect();
    Cow::Owned(kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn token() -> String {
        TokenSecret::generate("tg").expect("randomness").expose().to_owned()
    }

    /// `t` with its last character changed, so the checksum no longer matches.
    fn corrupt(t: &str) -> String {
        let last = if t.ends_with('A') { 'B' } else { 'A' };
        format!("{}{last}", &t[..t.len() - 1])
    }

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn extraction_table() {
        let a = token();
        let b = token();
        let enc_a = a.clone();
        type Case<'a> = (&'a str, Vec<(&'a str, String)>, Option<String>, bool, Result<Option<(String, bool)>, Denial>);
        let cases: Vec<Case> = vec![
            ("none", vec![], None, true, Ok(None)),
            ("bearer", vec![("authorization", format!("Bearer {a}"))], None, true, Ok(Some((a.clone(), false)))),
            (
                "bearer any case",
                vec![("authorization", format!("bEaReR {a}"))],
                None,
                true,
                Ok(Some((a.clone(), false))),
            ),
            ("x-access-token", vec![("x-access-token", a.clone())], None, true, Ok(Some((a.clone(), false)))),
            ("basic", vec![("authorization", basic("qgis", &a))], None, true, Ok(Some((a.clone(), false)))),
            ("basic empty user", vec![("authorization", basic("", &a))], None, true, Ok(Some((a.clone(), false)))),
            ("query", vec![], Some(format!("layers=x&token={enc_a}")), true, Ok(Some((a.clone(), true)))),
            ("query upper name", vec![], Some(format!("TOKEN={a}")), true, Ok(Some((a.clone(), true)))),
            ("query encoded name", vec![], Some(format!("%74oken={a}")), true, Ok(Some((a.clone(), true)))),
            ("query disabled", vec![], Some(format!("token={a}")), false, Err(Denial::QueryTokenDisabled)),
            (
                "same twice",
                vec![("authorization", format!("Bearer {a}")), ("x-access-token", a.clone())],
                Some(format!("token={a}")),
                true,
                Ok(Some((a.clone(), true))),
            ),
            (
                "conflicting headers",
                vec![("authorization", format!("Bearer {a}")), ("x-access-token", b.clone())],
                None,
                true,
                Err(Denial::ConflictingTokens),
            ),
            (
                "conflicting query",
                vec![("authorization", format!("Bearer {a}"))],
                Some(format!("token={b}")),
                true,
                Err(Denial::ConflictingTokens),
            ),
            ("two query tokens", vec![], Some(format!("token={a}&token={b}")), true, Err(Denial::ConflictingTokens)),
            (
                "malformed bearer",
                vec![("authorization", "Bearer nope".into())],
                None,
                true,
                Err(Denial::MalformedToken),
            ),
            ("bad checksum", vec![("x-access-token", corrupt(&a))], None, true, Err(Denial::MalformedToken)),
            ("unknown scheme", vec![("authorization", "Digest abc".into())], None, true, Err(Denial::MalformedToken)),
            (
                "basic no colon",
                vec![("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("abc")))],
                None,
                true,
                Err(Denial::MalformedToken),
            ),
            ("basic not base64", vec![("authorization", "Basic !!!".into())], None, true, Err(Denial::MalformedToken)),
        ];
        for (name, hs, query, allow, want) in cases {
            let got = extract(&headers(&hs), query.as_deref(), allow)
                .map(|o| o.map(|e| (e.secret.expose().to_owned(), e.from_query)));
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn stripping_keeps_other_parameters_verbatim() {
        assert_eq!(strip_token_param("A=1&Token=x&b=%20"), "A=1&b=%20");
        assert_eq!(strip_token_param("tokens=1"), "tokens=1");
        assert_eq!(strip_token_param("token"), "");
        assert_eq!(strip_token_param("x=1&&token=2&"), "x=1");
    }
}
