//! The console's Integrate URLs, checked through the gateway: every `check` URL that
//! `GET /account/security/paths` offers a token answers 2xx for it, in the header form
//! and in the `?token=` form, and never names an upstream.

use bytes::Bytes;
use http::Method;

use super::TestGateway;

/// Fetches every Integrate `check` URL the token is offered; returns the protocols
/// checked, sorted. `upstreams` are base URLs that must not appear in any answer.
pub async fn every_integrate_url_answers(gw: &TestGateway, token: &str, upstreams: &[&str]) -> Vec<String> {
    every_integrate_url_answers_under(gw, &gw.url(""), token, upstreams).await
}

/// [`every_integrate_url_answers`] for a gateway whose `server.public_url` is `public`.
pub async fn every_integrate_url_answers_under(
    gw: &TestGateway,
    public: &str,
    token: &str,
    upstreams: &[&str],
) -> Vec<String> {
    let v = gw.get("/account/security/paths", token).await.json();
    let mut checked = Vec::new();
    for p in v["paths"].as_array().expect("paths") {
        for u in p["integrate"].as_array().expect("integrate") {
            let check = u["check"].as_str().expect("check");
            let path = check.strip_prefix(public).unwrap_or_else(|| panic!("not under the public URL: {check}"));
            let r = gw.get(path, token).await;
            assert!(r.status.is_success(), "{} {check}: {} {}", u["protocol"], r.status, r.text());
            // The `?token=` form the console shows, for clients that cannot send headers.
            let sep = if path.contains('?') { '&' } else { '?' };
            let q = gw.send(Method::GET, &format!("{path}{sep}token={token}"), &[], Bytes::new()).await;
            assert!(q.status.is_success(), "query form of {check}: {}", q.status);
            for up in upstreams {
                assert!(!r.text().contains(up), "{check} leaks the upstream {up}");
            }
            checked.push(u["protocol"].as_str().unwrap_or("").to_owned());
        }
    }
    checked.sort();
    checked
}
