//! Several gateway nodes on one PostgreSQL store: tokens made on one work on the
//! others, revocations (cascades too) reach every node, a killed `LISTEN`
//! connection loses nothing, a kill -9 during a burst of creates loses no
//! acknowledged token, and a store outage is served from the cache for at most
//! `store.max_stale`, then refused with 503 `store_unavailable`.
//!
//! Every wait polls with a generous bound; nothing asserts a latency (that is
//! measured in `bench/revocation`).

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use tilegate::policy::Tier;

use crate::support::ops::{eventually, free_port, get, Binary};
use crate::support::{pg, TestGateway, CONFIG};

const API: &str = "/account/security/accessToken";
const TILE: &str = "/ogc/xyz/osm/1/0/0.png";
const LONG: Duration = Duration::from_secs(30);

/// The standard test config on the PostgreSQL store `url`, with `extra` `[store]` lines.
fn node_config(url: &str, extra: &str) -> String {
    CONFIG.replace("[store]\npath = \"tilegate.db\"", &format!("[store]\nurl = \"{url}\"\npool_size = 4\n{extra}"))
}

async fn nodes(url: &str, extra: &str, n: usize) -> Vec<TestGateway> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TestGateway::with_config(&node_config(url, extra)).await);
    }
    out
}

/// Creates a token through `node`'s API with `root`; (secret, id).
async fn create(node: &TestGateway, root: &str, tier: &str) -> (String, String) {
    let r = node
        .create(
            root,
            json!({
                "accessList": [{ "pathId": "osm", "access": { "accessTier": tier } }],
                "description": "partner"
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    (j["token"].as_str().expect("token").to_owned(), j["id"].as_str().expect("id").to_owned())
}

async fn revoke(node: &TestGateway, root: &str, id: &str) {
    let r = node.api(Method::DELETE, &format!("{API}/{id}"), root, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
}

async fn refused_everywhere(nodes: &[&TestGateway], token: &str, what: &str) {
    for (i, node) in nodes.iter().enumerate() {
        eventually(LONG, &format!("{what}: refused on node {i}"), || async {
            let r = node.get(TILE, token).await;
            (r.status == StatusCode::UNAUTHORIZED && r.reason() == "revoked_token").then_some(())
        })
        .await;
    }
}

/// The LISTEN connections of the nodes on database `db`.
async fn listeners(base: &str, db: &str) -> i64 {
    pg::query_i64(
        base,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = '{}'",
            tilegate::store::LISTEN_APPLICATION
        ),
    )
    .await
}

fn db_name(url: &str) -> String {
    let head = url.split('?').next().expect("url");
    head.rsplit('/').next().expect("db").to_owned()
}

#[tokio::test]
async fn three_nodes_share_tokens_and_revocations_reach_every_node() {
    let Some(base) = pg::base_url("three_nodes_share_tokens_and_revocations_reach_every_node") else { return };
    let url = pg::fresh_database(&base).await;
    // No backstop poll worth the name: only LISTEN/NOTIFY and the catch-up after
    // a reconnect can carry a revocation here.
    let n = nodes(&url, "poll_interval = \"1h\"\n", 3).await;
    let (a, b, c) = (&n[0], &n[1], &n[2]);
    let root = a.token(&[("world", Tier::Admin)]).await;

    // Made on A, works on B and C (and gets cached there).
    let (token, id) = create(a, &root, "view").await;
    for node in [a, b, c] {
        assert_eq!(node.get(TILE, &token).await.status, StatusCode::OK);
    }
    // Revoked on B: refused on A and C.
    revoke(b, &root, &id).await;
    refused_everywhere(&[a, c], &token, "revoked on B").await;

    // Cascade: a delegated admin on C makes a grandchild; revoking the middle
    // token on A refuses the grandchild everywhere.
    let (middle, middle_id) = create(c, &root, "admin").await;
    let (grand, _) = create(c, &middle, "view").await;
    for node in [a, b, c] {
        assert_eq!(node.get(TILE, &grand).await.status, StatusCode::OK);
    }
    revoke(a, &root, &middle_id).await;
    refused_everywhere(&[a, b, c], &grand, "cascade from A").await;

    // The LISTEN connections killed: a revocation made meanwhile is still seen
    // once they are back (catch-up from the last seen revision).
    let db = db_name(&url);
    eventually(LONG, "three LISTEN connections", || async { (listeners(&base, &db).await == 3).then_some(()) }).await;
    let (t2, id2) = create(a, &root, "view").await;
    for node in [a, b, c] {
        assert_eq!(node.get(TILE, &t2).await.status, StatusCode::OK);
    }
    pg::execute(
        &base,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = '{}'",
            tilegate::store::LISTEN_APPLICATION
        ),
    )
    .await;
    revoke(b, &root, &id2).await;
    refused_everywhere(&[a, c], &t2, "revoked while LISTEN was down").await;
    eventually(LONG, "the LISTEN connections to come back", || async {
        (listeners(&base, &db).await == 3).then_some(())
    })
    .await;

    // A node restarted (a new process state: empty cache) serves what exists and
    // refuses what was revoked.
    let d = TestGateway::with_config(&node_config(&url, "")).await;
    let (t3, _) = create(b, &root, "view").await;
    assert_eq!(d.get(TILE, &t3).await.status, StatusCode::OK);
    let r = d.get(TILE, &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "revoked_token"));
}

/// The node binary on `url`, with its own ops listener.
async fn binary(dir: &std::path::Path, name: &str, url: &str) -> (Binary, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let up = crate::support::TestUpstream::start().await;
    let text = node_config(url, "").replace("{up}", &up.addr.to_string()).replace("127.0.0.1:0", &addr.to_string());
    std::mem::forget(up); // lives for the test process
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text).expect("write config");
    (Binary::serve(&config, addr).await, addr)
}

async fn status(addr: SocketAddr, token: &str) -> StatusCode {
    crate::support::ops::send(addr, Method::GET, TILE, &[("authorization", &format!("Bearer {token}"))]).await.0
}

#[tokio::test]
async fn kill_9_during_a_burst_of_creates_loses_no_acknowledged_token() {
    let Some(base) = pg::base_url("kill_9_during_a_burst_of_creates_loses_no_acknowledged_token") else { return };
    let url = pg::fresh_database(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, a_addr) = binary(dir.path(), "a", &url).await;
    let (b, b_addr) = binary(dir.path(), "b", &url).await;
    let root = crate::support::ops::cli(
        &a.config,
        &["token", "create", "--path", "world", "--tier", "admin", "--description", "root"],
    );
    let root = root.lines().next().expect("token").to_owned();

    // A burst of creates on A (eight clients in a loop); kill -9 in the middle.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = json!({"accessList": [{"pathId": "osm", "access": {"accessTier": "view"}}], "description": "burst"})
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, root, body) = (client.clone(), root.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            loop {
                let req = http::Request::post(format!("http://{a_addr}{API}"))
                    .header("authorization", format!("Bearer {root}"))
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                    .expect("request");
                let Ok(Ok(res)) = tokio::time::timeout(Duration::from_secs(20), client.request(req)).await else {
                    return acknowledged; // the node is gone
                };
                if res.status() != StatusCode::CREATED {
                    continue;
                }
                let Ok(bytes) = http_body_util::BodyExt::collect(res.into_body()).await else { return acknowledged };
                let j: serde_json::Value = serde_json::from_slice(&bytes.to_bytes()).expect("json");
                acknowledged.push(j["token"].as_str().expect("token").to_owned());
            }
        }));
    }
    eventually(LONG, "some creates acknowledged", || async {
        (pg::query_i64(&url, "SELECT count(*) FROM tokens").await >= 10).then_some(())
    })
    .await;
    a.signal("KILL");
    let _ = a.child.wait();
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("task"));
    }
    assert!(!acknowledged.is_empty(), "some creates were acknowledged before the kill");
    for token in &acknowledged {
        assert_eq!(status(b_addr, token).await, StatusCode::OK, "an acknowledged token works on B");
    }
    // A restarted serves them too.
    let config = a.config.clone();
    drop(a);
    let a2 = Binary::serve(&config, a_addr).await;
    for token in acknowledged.iter().take(20) {
        assert_eq!(status(a2.addr, token).await, StatusCode::OK, "and on A after its restart");
    }
    drop(b);
}

/// PostgreSQL stopped for less than `store.max_stale`: cached grants served,
/// unknown tokens and creates 503 (nothing written); stopped for longer: cached
/// grants 503 too and `/readyz` says so; back: served again.
#[tokio::test]
async fn a_postgres_outage_is_served_from_the_cache_for_at_most_max_stale() {
    if pg::base_url("a_postgres_outage_is_served_from_the_cache_for_at_most_max_stale").is_none() || !pg::binaries() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(pg::Cluster::start).await.expect("cluster");
    let url = cluster.url.clone();
    let config =
        node_config(&url, "max_stale = \"8s\"\nquery_timeout = \"2s\"\n") + "[ops]\nlisten = \"127.0.0.1:0\"\n";
    let gw = TestGateway::with_config(&config).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops");
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let (cached, _) = create(&gw, &root, "view").await;
    assert_eq!(gw.get(TILE, &cached).await.status, StatusCode::OK);
    let tokens_before = pg::query_i64(&url, "SELECT count(*) FROM tokens").await;

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.pause();
        cluster
    })
    .await
    .expect("pause");
    // Less than max_stale: the cached grant is served; what needs the store is 503.
    let r = gw.get(TILE, &cached).await;
    assert_eq!(r.status, StatusCode::OK, "cached grant served during a short outage: {}", r.text());
    let stranger = {
        let m = tilegate::admin::mint(
            "tg",
            "x".into(),
            tilegate::policy::Scope::All,
            0,
            None,
            Vec::new(),
            tilegate::admin::Minter { creator: None, client: "t".into() },
        )
        .expect("rand");
        m.secret.expose().to_owned()
    };
    let r = gw.get(TILE, &stranger).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"), "{}", r.text());
    let r = gw
        .create(&root, json!({"accessList": [{"pathId": "osm", "access": {"accessTier": "view"}}], "description": "x"}))
        .await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"), "{}", r.text());

    // Longer than max_stale: the cached grant is refused, readiness says why.
    let r = eventually(LONG, "the cached grant to be refused after max_stale", || async {
        let r = gw.get(TILE, &cached).await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
    })
    .await;
    assert_eq!(r.reason(), "store_unavailable");
    let (status, body) = get(ops, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(j["store"]["stale"], true, "{j}");

    // Back: served again, and the refused create wrote nothing.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.resume();
        cluster
    })
    .await
    .expect("resume");
    eventually(LONG, "the cached grant served again", || async {
        (gw.get(TILE, &cached).await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(
        pg::query_i64(&url, "SELECT count(*) FROM tokens").await,
        tokens_before,
        "the refused create wrote nothing"
    );
    eventually(LONG, "/readyz ready again", || async { (get(ops, "/readyz").await.0 == StatusCode::OK).then_some(()) })
        .await;
    drop(gw);
    drop(cluster);
}

#[tokio::test]
async fn store_migrate_copies_a_sqlite_store_and_can_run_again() {
    let Some(base) = pg::base_url("store_migrate_copies_a_sqlite_store_and_can_run_again") else { return };
    let url = pg::fresh_database(&base).await;
    // A SQLite node with a root, a delegated token and a revoked one.
    let sq = TestGateway::start().await;
    let root = sq.token(&[("world", Tier::Admin)]).await;
    let (kept, _) = create(&sq, &root, "view").await;
    let (gone, gone_id) = create(&sq, &root, "view").await;
    let (later, later_id) = create(&sq, &root, "view").await;
    revoke(&sq, &root, &gone_id).await;
    let db = sq.dir.path().join("tilegate.db");
    let password = url.split('@').next().and_then(|h| h.rsplit(':').next()).expect("password").to_owned();
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"))
            .args(["store", "migrate", "--from"])
            .arg(format!("sqlite:{}", db.display()))
            .arg("--to")
            .arg(&url)
            .output()
            .expect("run");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(!text.contains(&password), "the password is never printed: {text}");
        text
    };
    let first = run();
    assert!(first.contains("copied 4 token row(s) and 5 audit row(s)"), "{first}");
    assert!(first.contains("all 4 token(s) (1 revoked)"), "{first}");
    // A revocation in SQLite after the first run is carried by the second.
    revoke(&sq, &root, &later_id).await;
    let second = run();
    assert!(second.contains("copied 1 token row(s) and 1 audit row(s)"), "{second}");
    assert!(second.contains("(2 revoked)"), "{second}");
    let third = run();
    assert!(third.contains("copied 0 token row(s) and 0 audit row(s)"), "a re-run copies nothing twice: {third}");
    // A PostgreSQL node serves the migrated tokens.
    let node = TestGateway::with_config(&node_config(&url, "")).await;
    assert_eq!(node.get(TILE, &kept).await.status, StatusCode::OK);
    let r = node.get(TILE, &gone).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "revoked_token"));
    let r = node.get(TILE, &later).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "revoked_token"));
    assert_eq!(node.get(TILE, &root).await.status, StatusCode::OK);
    // The migrated audit trail reads back through the PostgreSQL store.
    assert_eq!(node.store().audit(None, None).await.expect("audit").len(), 4 + 2);
}
