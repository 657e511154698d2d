//! The ops listener: Prometheus `/metrics` that moves as requests are made,
//! `/healthz` and `/readyz`; and nothing of it on the public listener.

use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::ops::{eventually, get, scrape, Scrape};
use crate::support::{TestGateway, CONFIG};
use tilegate::policy::Tier;

fn with_ops() -> String {
    format!("{CONFIG}\n[ops]\nlisten = \"127.0.0.1:0\"\n")
}

fn requests(m: &Scrape, path: &str, op: &str, decision: &str, reason: &str, status: u16) -> f64 {
    m.get(&format!(
        "tilegate_requests_total{{path_id=\"{path}\",operation=\"{op}\",decision=\"{decision}\",reason=\"{reason}\",status=\"{status}\"}}"
    ))
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_every_request_by_outcome() {
    let gw = TestGateway::with_config(&with_ops()).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops listener");
    let token = gw.token(&[("osm", Tier::View)]).await;
    let before = scrape(ops).await;
    assert_eq!(before.types.get("tilegate_request_duration_seconds").map(String::as_str), Some("histogram"));

    for _ in 0..2 {
        assert_eq!(gw.get("/ogc/xyz/osm/1/0/0.png", &token).await.status, StatusCode::OK);
    }
    assert_eq!(gw.get("/path/osm/x", &token).await.status, StatusCode::FORBIDDEN, "view cannot read raw data");
    assert_eq!(gw.get("/ogc/xyz/osm/1/0/0.png", "tg_notatoken").await.status, StatusCode::UNAUTHORIZED);
    let down = gw.token(&[("down", Tier::ViewPlus)]).await;
    assert_eq!(gw.get("/path/down/x", &down).await.status, StatusCode::BAD_GATEWAY);

    let after = scrape(ops).await;
    // A labelled family is declared once it has a series (prometheus-client omits empty families).
    assert_eq!(after.types.get("tilegate_requests_total").map(String::as_str), Some("counter"));
    let delta = |path, op, decision, reason, status| {
        requests(&after, path, op, decision, reason, status) - requests(&before, path, op, decision, reason, status)
    };
    assert_eq!(delta("osm", "xyz.tile", "allow", "-", 200), 2.0);
    assert_eq!(delta("osm", "path.read", "deny", "tier_too_low", 403), 1.0);
    assert_eq!(delta("-", "-", "deny", "malformed_token", 401), 1.0);
    assert_eq!(delta("down", "path.read", "error", "upstream_unavailable", 502), 1.0);
    let moved = |series: &str| after.get(series) - before.get(series);
    assert_eq!(moved("tilegate_upstream_errors_total{path_id=\"down\",kind=\"unavailable\"}"), 1.0);
    assert_eq!(moved("tilegate_request_duration_seconds_count"), 5.0);
    assert_eq!(moved("tilegate_upstream_duration_seconds_count{path_id=\"osm\"}"), 2.0);
    assert!(moved("tilegate_grant_cache_hits_total") >= 1.0, "the second tile request was a cache hit");
    assert!(moved("tilegate_grant_cache_misses_total") >= 1.0);
    assert!(after.get("tilegate_connections_total") >= 1.0);
    assert_eq!(after.get("tilegate_config_paths"), 6.0);

    let (_, text) = get(ops, "/metrics").await;
    assert!(!text.contains(&token) && !text.contains(&token[3..20]), "a token never appears in the metrics");
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_ops_listener_and_metrics_stay_off_the_public_one() {
    let gw = TestGateway::with_config(&with_ops()).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops listener");
    let (status, body) = get(ops, "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"status":"ok"}"#));
    let (status, body) = get(ops, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (ready["store"]["read"].as_str(), ready["store"]["write"].as_str()),
        (Some("ok"), Some("ok")),
        "{ready}"
    );
    assert_eq!(ready["config"]["paths"], 6);
    assert_eq!(get(ops, "/nothing").await.0, StatusCode::NOT_FOUND);

    let public = gw.send(http::Method::GET, "/metrics", &[], bytes::Bytes::new()).await;
    assert_eq!(public.status, StatusCode::NOT_FOUND, "metrics are only on the ops listener");
}

#[tokio::test]
async fn health_and_readiness_bodies_are_the_same_on_both_listeners() {
    let gw = TestGateway::with_config(&with_ops()).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops listener");
    for path in ["/healthz", "/readyz"] {
        let main = gw.send(http::Method::GET, path, &[], bytes::Bytes::new()).await;
        let (status, body) = get(ops, path).await;
        assert_eq!((main.status, main.text()), (status, body), "{path} answers alike on both listeners");
    }
    let main = gw.send(http::Method::GET, "/readyz", &[], bytes::Bytes::new()).await;
    assert_eq!(main.json()["config"]["paths"], 6, "the main listener's /readyz carries the config state too");
}

/// Reads an HTTP/1.1 answer until the server closes the connection; (status, body).
async fn answer_until_closed(conn: &mut TcpStream) -> (u16, String) {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut seen))
        .await
        .expect("the gateway answers and closes in time")
        .expect("read");
    let text = String::from_utf8_lossy(&seen).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn readyz_is_503_while_draining_and_a_half_sent_check_does_not_hold_the_drain() {
    // The upstream's `/slow` takes 3 s; let it, so a request stays in flight.
    let mut gw =
        TestGateway::with_config(&with_ops().replace("response_timeout = \"1s\"", "response_timeout = \"20s\"")).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops listener");
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let mut in_flight = TcpStream::connect(gw.addr).await.expect("connect");
    in_flight
        .write_all(
            format!("GET /path/osm/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    // A load balancer's check that is under way when shutdown begins: connected,
    // its request head not yet finished. It holds no request, so the drain closes
    // it at once (issue 19: half-sent heads held shutdown for header_read_timeout);
    // the balancer counts a failed check, as it would a 503.
    let mut check = TcpStream::connect(gw.addr).await.expect("connect");
    check.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    eventually(Duration::from_secs(10), "the gateway to accept both connections", || async {
        (scrape(ops).await.get("tilegate_connections_open") >= 2.0).then_some(())
    })
    .await;

    let running = gw.running.take().expect("running");
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(20)));
    let (_, on_ops) = eventually(Duration::from_secs(10), "shutdown to begin draining", || async {
        let (status, body) = get(ops, "/readyz").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some((status, body))
    })
    .await;
    let ready: serde_json::Value = serde_json::from_str(&on_ops).expect("json");
    assert_eq!(ready["status"], "shutting down");

    let mut seen = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), check.read_to_end(&mut seen)).await;
    assert!(closed.is_ok() && seen.is_empty(), "the half-sent check was closed without an answer");
    let (status, _) = answer_until_closed(&mut in_flight).await;
    assert_eq!(status, 200, "the request in flight finished during the drain");
    tokio::time::timeout(Duration::from_secs(20), shutdown).await.expect("shutdown ends").expect("task");
}

#[tokio::test]
async fn the_ops_listener_is_off_unless_configured() {
    let gw = TestGateway::start().await;
    assert!(gw.running.as_ref().expect("running").ops_addr.is_none());
}
