//! `server.runtime = "per-core"` with two workers: each worker thread accepts on its
//! own `SO_REUSEPORT` listener, so these tests open a fresh connection per request
//! (the kernel spreads connections, not requests) and check, through
//! `Running::accepted_per_worker`, that both workers took part in what is asserted:
//! every request answered, a revocation and a reload seen by both, a drain that
//! finishes the requests in flight on both.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::ops::{eventually, send};
use crate::support::TestGateway;
use tilegate::policy::Tier;

/// Connections opened for each burst: the chance that the kernel's hash puts all of
/// them on one of two listeners is 2^-47.
const BURST: usize = 48;

/// The standard config, served by two per-core workers, with room for slow upstreams.
fn per_core() -> String {
    crate::support::CONFIG
        .replacen("[server]\n", "[server]\nruntime = \"per-core\"\nworkers = 2\n", 1)
        .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"")
}

/// `BURST` requests at once, each over its own connection: their statuses and bodies.
async fn burst(gw: &TestGateway, path: &str, token: &str) -> Vec<(StatusCode, String)> {
    let auth = format!("Bearer {token}");
    let tasks: Vec<_> = (0..BURST)
        .map(|_| {
            let (addr, path, auth) = (gw.addr, path.to_owned(), auth.clone());
            tokio::spawn(async move { send(addr, Method::GET, &path, &[("authorization", &auth)]).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

fn accepted(gw: &TestGateway) -> Vec<u64> {
    gw.running.as_ref().expect("running").accepted_per_worker()
}

/// What each worker accepted between two readings.
fn since(before: &[u64], after: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

#[tokio::test]
async fn two_workers_answer_every_request_over_many_connections_and_both_serve() {
    let gw = TestGateway::with_config(&per_core()).await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let before = accepted(&gw);
    assert_eq!(before.len(), 2, "one count per worker");
    let answers = burst(&gw, "/path/osm/tile", &token).await;
    for (status, body) in &answers {
        assert_eq!((*status, body.as_str()), (StatusCode::OK, "upstream saw /osm/tile"));
    }
    let served = since(&before, &accepted(&gw));
    assert_eq!(served.iter().sum::<u64>(), BURST as u64, "one connection per request: {served:?}");
    assert!(served.iter().all(|&n| n > 0), "both workers accepted connections: {served:?}");
}

#[tokio::test]
async fn a_revocation_through_one_worker_is_seen_by_every_worker_on_the_next_request() {
    let gw = TestGateway::with_config(&per_core()).await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let created = gw
        .create(&root, json!({ "accessList": [{ "pathId": "osm", "access": { "accessTier": "viewPlus" } }], "description": "app" }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let (token, id) = (created.json()["token"].as_str().expect("token").to_owned(), created.json()["id"].clone());
    assert!(burst(&gw, "/path/osm/x", &token).await.iter().all(|(s, _)| *s == StatusCode::OK));

    let auth = format!("Bearer {root}");
    let (status, body) = send(
        gw.addr,
        Method::DELETE,
        &format!("/account/security/accessToken/{}", id.as_str().expect("id")),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let before = accepted(&gw);
    for (status, body) in burst(&gw, "/path/osm/x", &token).await {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("revoked_token"), "{body}");
    }
    let served = since(&before, &accepted(&gw));
    assert!(served.iter().all(|&n| n > 0), "both workers refused the revoked token: {served:?}");
}

#[tokio::test]
async fn a_reload_reaches_every_worker() {
    let gw = TestGateway::with_config(&per_core()).await;
    let token = gw.token(&[("world", Tier::ViewPlus)]).await;
    assert!(burst(&gw, "/path/fresh/x", &token).await.iter().all(|(s, _)| *s == StatusCode::NOT_FOUND));

    let up = gw.upstream.addr.to_string();
    let fresh = format!("\n[[path]]\nid = \"fresh\"\nparent = \"world\"\nkind = \"vector\"\n[path.upstream]\nbase = \"http://{up}/fresh/\"\n");
    std::fs::write(&gw.config_path, per_core().replace("{up}", &up) + &fresh).expect("edit");
    gw.running.as_ref().expect("running").reload().await.expect("the edited config is valid");
    let before = accepted(&gw);
    for (status, body) in burst(&gw, "/path/fresh/x", &token).await {
        assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream saw /fresh/x"));
    }
    let served = since(&before, &accepted(&gw));
    assert!(served.iter().all(|&n| n > 0), "both workers served the new path: {served:?}");
}

#[tokio::test]
async fn shutdown_drains_the_requests_in_flight_on_every_worker_then_stops_accepting() {
    let mut gw = TestGateway::with_config(&per_core()).await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    // Each `/slow` answer takes the upstream 3 s: all of them are in flight together.
    let before = accepted(&gw);
    let slow: Vec<_> = (0..BURST)
        .map(|_| {
            let (addr, auth) = (gw.addr, auth.clone());
            tokio::spawn(async move { send(addr, Method::GET, "/path/osm/slow", &[("authorization", &auth)]).await })
        })
        .collect();
    eventually(Duration::from_secs(20), "every slow request to reach the upstream", || async {
        (gw.upstream.seen().iter().filter(|s| s.uri.ends_with("/slow")).count() == BURST).then_some(())
    })
    .await;
    let served = since(&before, &accepted(&gw));
    assert!(served.iter().all(|&n| n > 0), "both workers hold slow requests: {served:?}");

    let addr = gw.addr;
    let running = gw.running.take().expect("running");
    tokio::time::timeout(Duration::from_secs(30), running.shutdown(Duration::from_secs(20)))
        .await
        .expect("shutdown returns once the requests in flight finished");
    for t in slow {
        let (status, body) = t.await.expect("request task");
        assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream saw /osm/slow"), "drained, not cut");
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no worker listens after the shutdown");
}

/// `server.runtime = "multi-thread"`, the runtime before per-core became the default.
fn multi_thread() -> String {
    per_core().replace("runtime = \"per-core\"\nworkers = 2\n", "runtime = \"multi-thread\"\nworkers = 2\n")
}

#[tokio::test]
async fn the_multi_thread_runtime_still_answers_reloads_and_drains() {
    let mut gw = TestGateway::with_config(&multi_thread()).await;
    assert_eq!(accepted(&gw).len(), 1, "one runtime, one count");
    let token = gw.token(&[("world", Tier::ViewPlus)]).await;
    for (status, body) in burst(&gw, "/path/osm/tile", &token).await {
        assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream saw /osm/tile"));
    }
    assert_eq!(accepted(&gw), [BURST as u64]);

    let up = gw.upstream.addr.to_string();
    let fresh = format!("\n[[path]]\nid = \"fresh\"\nparent = \"world\"\nkind = \"vector\"\n[path.upstream]\nbase = \"http://{up}/fresh/\"\n");
    std::fs::write(&gw.config_path, multi_thread().replace("{up}", &up) + &fresh).expect("edit");
    gw.running.as_ref().expect("running").reload().await.expect("the edited config is valid");
    assert!(burst(&gw, "/path/fresh/x", &token).await.iter().all(|(s, _)| *s == StatusCode::OK));

    let auth = format!("Bearer {token}");
    let slow = {
        let (addr, auth) = (gw.addr, auth.clone());
        tokio::spawn(async move { send(addr, Method::GET, "/path/osm/slow", &[("authorization", &auth)]).await })
    };
    eventually(Duration::from_secs(20), "the slow request to reach the upstream", || async {
        gw.upstream.seen().iter().any(|s| s.uri.ends_with("/slow")).then_some(())
    })
    .await;
    let running = gw.running.take().expect("running");
    tokio::time::timeout(Duration::from_secs(30), running.shutdown(Duration::from_secs(20)))
        .await
        .expect("shutdown returns once the request in flight finished");
    assert_eq!(slow.await.expect("task"), (StatusCode::OK, "upstream saw /osm/slow".to_owned()), "drained, not cut");
}
