//! The request path end to end: tokens, paths, tiers, scope, tile fence,
//! forwarding hygiene, upstream failures and streaming.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::support::TestGateway;
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;
use tilegate::store::now_unix;

#[tokio::test]
async fn an_allowed_tile_reaches_the_upstream_template() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let r = gw.get("/ogc/xyz/osm/3/4/2.png", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(gw.upstream.last().uri, "/tiles/3/4/2.png");
}

#[tokio::test]
async fn tms_templates_get_the_flipped_row() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("tms", Tier::View)]).await;
    assert_eq!(gw.get("/ogc/xyz/tms/3/4/2.png", &token).await.status, StatusCode::OK);
    assert_eq!(gw.upstream.last().uri, "/tms/3/4/5.png");
}

#[tokio::test]
async fn missing_malformed_unknown_expired_and_revoked_tokens_are_401() {
    let gw = TestGateway::start().await;
    let r = gw.send(Method::GET, "/ogc/xyz/osm/0/0/0", &[], Bytes::new()).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "missing_token"));
    let challenges: Vec<&str> = r.headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(challenges, ["Bearer realm=\"tilegate\"", "Basic realm=\"tilegate\", charset=\"UTF-8\""]);

    let r = gw.get("/ogc/xyz/osm/0/0/0", "tg_notatoken").await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "malformed_token"));

    let unknown = tilegate::token::TokenSecret::generate("tg").expect("random");
    for _ in 0..2 {
        // The second time comes from the negative cache; the answer must not change.
        let r = gw.get("/ogc/xyz/osm/0/0/0", unknown.expose()).await;
        assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "unknown_token"));
    }

    let (expired, _) = gw.token_with(&[("osm", Tier::View)], Fence::default(), Scope::All, Some(now_unix() - 1)).await;
    let r = gw.get("/ogc/xyz/osm/0/0/0", &expired).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "expired_token"));

    let (revoked, id) = gw.token_with(&[("osm", Tier::View)], Fence::default(), Scope::All, None).await;
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &revoked).await.status, StatusCode::OK);
    let hashes = gw.store().revoke(id.parse().expect("id"), None, "test".into()).await.expect("revoke");
    gw.running.as_ref().expect("running").gateway.cache().evict(&hashes);
    let r = gw.get("/ogc/xyz/osm/0/0/0", &revoked).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "revoked_token"));
    assert!(!r.text().contains(&revoked), "the body never echoes a token");
}

#[tokio::test]
async fn a_path_the_token_cannot_see_is_404_like_a_missing_one() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::Admin)]).await;
    let invisible = gw.get("/path/secret/x", &token).await;
    let missing = gw.get("/path/nonexistent/x", &token).await;
    assert_eq!(invisible.status, StatusCode::NOT_FOUND);
    assert_eq!(invisible.body, missing.body, "existence of paths is not revealed");
    assert!(gw.upstream.seen().is_empty());
}

#[tokio::test]
async fn folder_access_is_inherited_and_the_nearest_entry_wins() {
    let gw = TestGateway::start().await;
    let folder = gw.token(&[("world", Tier::ViewPlus)]).await;
    assert_eq!(gw.get("/ogc/xyz/osm/1/0/0", &folder).await.status, StatusCode::OK);
    assert_eq!(gw.get("/path/places/data.json", &folder).await.status, StatusCode::OK);
    assert_eq!(gw.get("/path/secret/x", &folder).await.status, StatusCode::NOT_FOUND, "secret is not under world");

    let mixed = gw.token(&[("world", Tier::Admin), ("places", Tier::View)]).await;
    let r = gw.get("/path/places/data.json", &mixed).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::FORBIDDEN, "tier_too_low"),
        "the layer entry narrows the folder's"
    );
    assert_eq!(gw.get("/path/osm/data.json", &mixed).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tiers_gate_reads_and_writes() {
    let gw = TestGateway::start().await;
    let view = gw.token(&[("osm", Tier::View)]).await;
    let r = gw.get("/path/osm/data", &view).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "tier_too_low"));
    assert!(r.text().contains("viewPlus"), "{}", r.text());

    let reader = gw.token(&[("osm", Tier::ViewPlus)]).await;
    assert_eq!(gw.get("/path/osm/data", &reader).await.status, StatusCode::OK);
    let auth = format!("Bearer {reader}");
    let r = gw.send(Method::POST, "/path/osm/data", &[("authorization", &auth)], Bytes::from_static(b"{}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let editor = gw.token(&[("osm", Tier::Edit)]).await;
    let auth = format!("Bearer {editor}");
    let r = gw.send(Method::DELETE, "/path/osm/feature/1", &[("authorization", &auth)], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(gw.upstream.last().method, Method::DELETE);
}

#[tokio::test]
async fn an_ogc_scoped_token_is_refused_outside_ogc() {
    let gw = TestGateway::start().await;
    let (token, _) = gw.token_with(&[("osm", Tier::Admin)], Fence::default(), Scope::Ogc, None).await;
    let r = gw.get("/path/osm/data", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "scope_ogc_only"));
    assert_eq!(gw.get("/ogc/xyz/osm/2/1/1.png", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_tile_fence_and_max_zoom_hold_on_xyz() {
    let gw = TestGateway::start().await;
    let fence = Fence::new(Some(&[(2, 2, 1)]), Some(5)).expect("fence");
    let (token, _) = gw.token_with(&[("osm", Tier::View)], fence, Scope::All, None).await;
    let cases = [
        ("/ogc/xyz/osm/2/2/1.png", 200, ""),
        ("/ogc/xyz/osm/3/4/2.png", 200, ""),
        ("/ogc/xyz/osm/5/19/15.png", 200, ""),
        ("/ogc/xyz/osm/6/38/30.png", 403, "zoom_above_max"),
        ("/ogc/xyz/osm/3/6/2.png", 403, "outside_geofence"),
        // These contain the fence and reach beyond it: forwarded to be clipped
        // (tests/integration/clip.rs), and this upstream's text answer is no image.
        ("/ogc/xyz/osm/1/1/0.png", 502, "upstream_bad_document"),
        ("/ogc/xyz/osm/0/0/0.png", 502, "upstream_bad_document"),
    ];
    for (path, status, reason) in cases {
        let r = gw.get(path, &token).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text());
        if status != 200 {
            assert_eq!(r.reason(), reason, "{path}");
        }
    }
    let r = gw.get("/path/osm/anything", &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a fenced token cannot use the opaque pass-through");
}

#[tokio::test]
async fn the_token_never_reaches_the_upstream() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    let r = gw
        .send(
            Method::GET,
            &format!("/path/osm/q?layers=a&token={token}&b=2"),
            &[("authorization", &auth), ("x-access-token", &token)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/osm/q?layers=a&b=2");
    assert!(!seen.headers.contains_key("authorization"));
    assert!(!seen.headers.contains_key("x-access-token"));
    for (name, value) in &seen.headers {
        assert!(!value.to_str().unwrap_or_default().contains(&token[3..20]), "{name} carries the token");
    }
    let basic = format!("Basic {}", base64_encode(&format!("qgis:{token}")));
    let r = gw.send(Method::GET, "/path/osm/basic", &[("authorization", &basic)], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!gw.upstream.last().headers.contains_key("authorization"));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn two_different_tokens_are_a_400() {
    let gw = TestGateway::start().await;
    let a = gw.token(&[("osm", Tier::View)]).await;
    let b = gw.token(&[("osm", Tier::View)]).await;
    let auth = format!("Bearer {a}");
    let r = gw
        .send(Method::GET, "/ogc/xyz/osm/0/0/0", &[("authorization", &auth), ("x-access-token", &b)], Bytes::new())
        .await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_REQUEST, "conflicting_tokens"));
}

#[tokio::test]
async fn spoofed_identity_and_hop_by_hop_headers_are_stripped() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-tilegate-tier", "admin"),
        ("X-Tilegate-Token-Id", "someone-else"),
        ("x_tilegate_tier", "admin"),
        ("connection", "x-private-hop"),
        ("x-private-hop", "1"),
        ("te", "trailers"),
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("accept", "application/json"),
    ];
    let r = gw.send(Method::GET, "/path/osm/h", &headers, Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-tilegate-tier"], "viewPlus");
    assert_eq!(seen.headers.get_all("x-tilegate-tier").iter().count(), 1);
    assert_ne!(seen.headers["x-tilegate-token-id"], "someone-else");
    assert!(!seen.headers.contains_key("x_tilegate_tier"));
    assert!(!seen.headers.contains_key("x-private-hop"));
    assert!(!seen.headers.contains_key("te"));
    assert!(!seen.headers.contains_key("forwarded"));
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1", "an untrusted client's X-Forwarded-For is replaced");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], gw.addr.to_string().as_str(), "the Host the client asked for");
    assert_eq!(seen.headers["host"], gw.upstream.addr.to_string().as_str(), "the upstream gets its own Host");
    assert_eq!(seen.headers["accept"], "application/json");
    assert!(!r.headers.contains_key("keep-alive"), "hop-by-hop headers from the upstream are dropped too");
    // Custom upstream headers are not relayed: only an allowlist leaves (attacker round 4).
    assert!(!r.headers.contains_key("x-upstream"), "{:?}", r.headers);
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_kept() {
    let config = crate::support::CONFIG.replace(
        "public_url = \"https://maps.example.org\"",
        "public_url = \"https://maps.example.org\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let gw = TestGateway::with_config(&config).await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    let headers =
        [("authorization", auth.as_str()), ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")];
    assert_eq!(gw.send(Method::GET, "/path/osm/h", &headers, Bytes::new()).await.status, StatusCode::OK);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn ambiguous_paths_are_refused_before_anything_else() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("world", Tier::Admin)]).await;
    for path in [
        "/path/osm/%2e%2e/secret",
        "/path/osm%2Fx/y",
        "/path//osm/x",
        "/path/osm/./x",
        "/path/osm/%5c",
        "/path/osm/a%00",
    ] {
        let r = gw.get(path, &token).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text());
    }
    let r = gw.get("/path/%6fsm/a%2cb", &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(gw.upstream.last().uri, "/osm/a%2Cb", "the decision and the upstream use the same normalized path");
    assert_eq!(gw.upstream.seen().len(), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("down", Tier::ViewPlus), ("osm", Tier::ViewPlus)]).await;
    let r = gw.get("/path/down/x", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_GATEWAY, "upstream_unavailable"));
    assert!(!r.text().contains("127.0.0.1:9"), "no upstream detail in the body");
    let r = gw.get("/path/osm/slow", &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"));
}

#[tokio::test]
async fn a_50_mb_response_streams_through() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let req = http::Request::get(gw.url("/path/osm/big/52428800"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("req");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client.request(req).await.expect("response head");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut received = 0usize;
    let mut released = false;
    use http_body_util::BodyExt as _;
    while let Some(frame) =
        tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("data keeps flowing")
    {
        received += frame.expect("frame").data_ref().map_or(0, |d| d.len());
        // The upstream holds its last chunk until we have seen 1 MB: a gateway that
        // buffered the whole response would never deliver it.
        if !released && received >= 1 << 20 {
            gw.upstream.release();
            released = true;
        }
    }
    assert!(released);
    assert_eq!(received, 52_428_800);
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let gw = TestGateway::start().await;
    let r = gw.send(Method::GET, "/healthz", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = gw.send(Method::GET, "/readyz", &[], Bytes::new()).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (StatusCode::OK, Some("ok")));
    let r = gw.send(Method::GET, "/nothing-here", &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_token_in_the_query_is_refused_when_disabled() {
    let config = crate::support::CONFIG.replace("[store]", "[tokens]\nallow_query_token = false\n[store]");
    let gw = TestGateway::with_config(&config).await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let r = gw.send(Method::GET, &format!("/ogc/xyz/osm/0/0/0?token={token}"), &[], Bytes::new()).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::BAD_REQUEST, "query_token_disabled"));
    assert!(gw.upstream.seen().is_empty());
}

#[tokio::test]
async fn cleartext_http2_is_served_too() {
    let gw = TestGateway::start().await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<Bytes>>();
    let req = http::Request::get(gw.url("/ogc/xyz/osm/1/1/1.png"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())
        .expect("req");
    let res = client.request(req).await.expect("h2c response");
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(gw.upstream.last().uri, "/tiles/1/1/1.png");
}
