//! Token usage (`lastUsedAt`, `lastUsedFrom`, `requestCount`) and allowed origins
//! (`allowedOrigins`, 403 `origin_not_allowed`), through the real gateway.
//!
//! Usage is written by the flush task, so every check of it polls the token API
//! with a generous bound; what must *not* be counted is checked on the in-memory
//! recorder right after the answer (the request path records before it answers).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tilegate::policy::Tier;

use crate::support::ops::eventually;
use crate::support::{pg, Reply, TestGateway, CONFIG};

const API: &str = "/account/security/accessToken";
const TILE: &str = "/ogc/xyz/osm/1/0/0.png";
const LONG: Duration = Duration::from_secs(60);

/// The standard config with `extra` lines in `[store]`.
fn config(extra: &str) -> String {
    CONFIG.replace("[store]\npath = \"tilegate.db\"", &format!("[store]\npath = \"tilegate.db\"\n{extra}"))
}

fn body(extra: Value) -> Value {
    let mut b = json!({
        "accessList": [{ "pathId": "osm", "access": { "accessTier": "view", "geoFence": { "tiles": [{"tileX": 0, "tileY": 0, "zoom": 1}] } } }],
        "description": "browser app"
    });
    if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    b
}

/// Creates through the API; (secret, id, answer).
async fn create(gw: &TestGateway, root: &str, extra: Value) -> (String, String, Value) {
    let r = gw.create(root, body(extra)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    (j["token"].as_str().expect("token").to_owned(), j["id"].as_str().expect("id").to_owned(), j)
}

async fn read(gw: &TestGateway, root: &str, id: &str) -> Value {
    let r = gw.api(Method::GET, &format!("{API}/{id}"), root, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// Polls the token API until `id` shows `count` requests.
async fn count_reaches(gw: &TestGateway, root: &str, id: &str, count: u64) -> Value {
    eventually(LONG, &format!("requestCount of {id} to reach {count}"), || async {
        let t = read(gw, root, id).await;
        (t["requestCount"] == json!(count)).then_some(t)
    })
    .await
}

async fn get_with(gw: &TestGateway, path: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {token}");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    gw.send(Method::GET, path, &all, Bytes::new()).await
}

fn pending(gw: &TestGateway) -> u64 {
    gw.running.as_ref().expect("running").gateway.usage().pending()
}

#[tokio::test]
async fn usage_is_counted_for_live_tokens_and_visible_through_the_api() {
    let gw = TestGateway::with_config(&config("usage_flush_interval = \"200ms\"")).await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let (token, id, created) = create(&gw, &root, json!({})).await;
    assert_eq!(
        (&created["lastUsedAt"], &created["lastUsedFrom"], &created["requestCount"], &created["allowedOrigins"]),
        (&Value::Null, &Value::Null, &json!(0), &Value::Null),
        "a new token has never been used"
    );
    assert_eq!(gw.get(TILE, &token).await.status, StatusCode::OK);
    assert_eq!(gw.get("/ogc/xyz/osm/1/1/1.png", &token).await.status, StatusCode::FORBIDDEN, "outside the fence");
    assert_eq!(gw.get("/ogc/xyz/osm/2/0/0.png", &token).await.status, StatusCode::OK);
    let t = count_reaches(&gw, &root, &id, 3).await;
    assert_eq!(t["lastUsedFrom"], "127.0.0.1", "{t}");
    let at = time::OffsetDateTime::parse(
        t["lastUsedAt"].as_str().expect("lastUsedAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!((at.unix_timestamp() - tilegate::store::now_unix()).abs() <= 60, "{t}");
    // The list shows the same.
    let list = gw.api(Method::GET, API, &root, None).await.json();
    let listed =
        list["result"].as_array().expect("result").iter().find(|t| t["id"] == json!(id)).cloned().expect("listed");
    assert_eq!(listed["requestCount"], 3);

    // Never counted: a revoked or expired token (the request path records before it answers).
    let r = gw.api(Method::DELETE, &format!("{API}/{id}"), &root, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    eventually(LONG, "the root's own API calls to be flushed", || async { (pending(&gw) == 0).then_some(()) }).await;
    let r = gw.get(TILE, &token).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "revoked_token"));
    assert_eq!(pending(&gw), 0, "a revoked token's request is not counted");
    let (expired, _) = gw
        .token_with(
            &[("osm", Tier::View)],
            Default::default(),
            tilegate::policy::Scope::All,
            Some(tilegate::store::now_unix() - 1),
        )
        .await;
    let r = gw.get(TILE, &expired).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "expired_token"));
    assert_eq!(pending(&gw), 0, "an expired token's request is not counted");
    assert_eq!(read(&gw, &root, &id).await["requestCount"], 3);
}

/// Found while adding admission: an expired token could still list, read, create
/// and revoke through the token API (only the OGC pipeline's `decide` read expiry).
#[tokio::test]
async fn an_expired_token_cannot_use_the_token_api() {
    let gw = TestGateway::start().await;
    let (expired, _) = gw
        .token_with(
            &[("world", Tier::Admin)],
            Default::default(),
            tilegate::policy::Scope::All,
            Some(tilegate::store::now_unix() - 1),
        )
        .await;
    let r = gw.api(Method::GET, API, &expired, None).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "expired_token"), "{}", r.text());
    let r = gw.create(&expired, body(json!({}))).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::UNAUTHORIZED, "expired_token"), "{}", r.text());
}

#[tokio::test]
async fn usage_survives_a_restart_and_token_list_shows_it() {
    // A flush interval far longer than the test: only the shutdown flush writes.
    let mut gw = TestGateway::with_config(&config("usage_flush_interval = \"10m\"")).await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let (token, id, _) = create(&gw, &root, json!({})).await;
    for _ in 0..5 {
        assert_eq!(gw.get(TILE, &token).await.status, StatusCode::OK);
    }
    assert_eq!(pending(&gw), 6, "five tiles and the create");
    let running = gw.running.take().expect("running");
    running.shutdown(Duration::from_secs(5)).await;
    let config = tilegate::config::load(&gw.config_path).expect("config");
    let running = tilegate::server::start(config).await.expect("restarts");
    gw.addr = running.addr;
    gw.running = Some(running);
    let t = read(&gw, &root, &id).await;
    assert_eq!(t["requestCount"], 5, "written at shutdown: {t}");
    assert_eq!(t["lastUsedFrom"], "127.0.0.1");
    let out = gw.cli(&["token", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().expect("header");
    assert!(
        header.contains("lastUsed") && header.contains("requests") && header.contains("allowedOrigins"),
        "{header}"
    );
    let line = text.lines().find(|l| l.starts_with(&id)).expect("the token is listed");
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(line.split_whitespace().any(|w| w == "5"), "{line}");
}

/// `store.usage_flush_interval` is read at every wake-up of the flush task: a reload
/// from 10 minutes to 200 ms applies at once, not after the 10 minutes.
#[tokio::test]
async fn a_reloaded_flush_interval_applies_without_a_restart() {
    let gw = TestGateway::with_config(&config("usage_flush_interval = \"10m\"")).await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let (token, id, _) = create(&gw, &root, json!({})).await;
    for _ in 0..3 {
        assert_eq!(gw.get(TILE, &token).await.status, StatusCode::OK);
    }
    assert_eq!(read(&gw, &root, &id).await["requestCount"], 0, "nothing written yet under 10m");
    let text = std::fs::read_to_string(&gw.config_path).expect("config");
    std::fs::write(&gw.config_path, text.replace("usage_flush_interval = \"10m\"", "usage_flush_interval = \"200ms\""))
        .expect("edit");
    count_reaches(&gw, &root, &id, 3).await;
}

/// The store refuses writes (another process holds SQLite's write lock): counts are
/// kept in memory and arrive once the store takes writes again, none lost or doubled;
/// requests are served throughout.
#[tokio::test]
async fn a_store_outage_keeps_the_counts_until_the_store_recovers() {
    let gw = TestGateway::with_config(&config("usage_flush_interval = \"200ms\"\nquery_timeout = \"1s\"")).await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let (token, id, _) = create(&gw, &root, json!({})).await;
    assert_eq!(gw.get(TILE, &token).await.status, StatusCode::OK);
    count_reaches(&gw, &root, &id, 1).await;

    let db = gw.dir.path().join("tilegate.db");
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('holding', flush=True)\n\
             sys.stdin.read()\n",
        )
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(writer.stdout.as_mut().expect("stdout")), &mut line)
        .expect("read");
    assert_eq!(line.trim(), "holding");
    for _ in 0..4 {
        assert_eq!(gw.get(TILE, &token).await.status, StatusCode::OK, "requests are served during the outage");
    }
    let usage = gw.running.as_ref().expect("running").gateway.usage().clone();
    // (Not `pending()`: a failing flush holds its batch for the busy timeout, gives it
    // back and the next one takes it again, so it is mostly in flight.)
    eventually(LONG, "a flush to fail", || async { usage.is_failing().then_some(()) }).await;
    assert_eq!(read(&gw, &root, &id).await["requestCount"], 1, "nothing written during the outage");

    drop(writer.stdin.take());
    let _ = writer.wait();
    count_reaches(&gw, &root, &id, 5).await;
    // Settled: one more flush interval adds nothing twice.
    eventually(LONG, "everything flushed", || async { (pending(&gw) == 0).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(&gw, &root, &id).await["requestCount"], 5);
}

/// Two nodes on one PostgreSQL store: each adds its own count, the last use is the
/// newest of the two.
#[tokio::test]
async fn two_postgres_nodes_add_up_their_counts() {
    let Some(base) = pg::base_url("two_postgres_nodes_add_up_their_counts") else { return };
    let url = pg::fresh_database(&base).await;
    let node_config = CONFIG.replace(
        "[store]\npath = \"tilegate.db\"",
        &format!("[store]\nurl = \"{url}\"\npool_size = 4\nusage_flush_interval = \"200ms\""),
    );
    let a = TestGateway::with_config(&node_config).await;
    let b = TestGateway::with_config(&node_config).await;
    let root = a.token(&[("world", Tier::Admin)]).await;
    let (token, id, _) = create(&a, &root, json!({})).await;
    for _ in 0..3 {
        assert_eq!(a.get(TILE, &token).await.status, StatusCode::OK);
    }
    let on_b = eventually(LONG, "the token to work on node b", || async {
        (b.get(TILE, &token).await.status == StatusCode::OK).then_some(())
    });
    on_b.await;
    for _ in 0..3 {
        assert_eq!(b.get(TILE, &token).await.status, StatusCode::OK);
    }
    // At least 7 (b may have needed more than one try before the token reached it);
    // exactly what both nodes recorded.
    eventually(LONG, "both nodes flushed", || async { (pending(&a) == 0 && pending(&b) == 0).then_some(()) }).await;
    let t = eventually(LONG, "the count on both nodes to add up", || async {
        let t = read(&b, &root, &id).await;
        (t["requestCount"].as_u64().is_some_and(|n| n >= 7)).then_some(t)
    })
    .await;
    let stored = pg::query_i64(&url, &format!("SELECT request_count FROM token_usage WHERE token_id = '{id}'")).await;
    assert_eq!(t["requestCount"], json!(stored));
    assert_eq!(read(&a, &root, &id).await["requestCount"], json!(stored), "both nodes read the same sum");
}

#[tokio::test]
async fn allowed_origins_admit_only_their_pages() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let (token, id, created) =
        create(&gw, &root, json!({ "allowedOrigins": ["HTTPS://App.Example.org:443", "https://*.maps.example.org"] }))
            .await;
    assert_eq!(
        created["allowedOrigins"],
        json!(["https://app.example.org", "https://*.maps.example.org"]),
        "normalised"
    );
    assert_eq!(read(&gw, &root, &id).await["allowedOrigins"], created["allowedOrigins"]);
    for (headers, status) in [
        (vec![("origin", "https://app.example.org")], StatusCode::OK),
        (vec![("origin", "https://a.b.maps.example.org")], StatusCode::OK),
        (vec![("referer", "https://app.example.org/map.html")], StatusCode::OK),
        (vec![("origin", "https://maps.example.org")], StatusCode::FORBIDDEN),
        (vec![("origin", "https://evil.example"), ("referer", "https://app.example.org/")], StatusCode::FORBIDDEN),
        (vec![("origin", "null")], StatusCode::FORBIDDEN),
        (vec![], StatusCode::FORBIDDEN),
    ] {
        let r = get_with(&gw, TILE, &token, &headers).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.text());
        if status == StatusCode::FORBIDDEN {
            assert_eq!(r.reason(), "origin_not_allowed", "{headers:?}");
        }
    }
    // Before anything path-specific: a path the token cannot see says the same, so
    // a foreign page learns nothing about paths.
    let r = get_with(&gw, "/ogc/xyz/secret/1/0/0.png", &token, &[("origin", "https://evil.example")]).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "origin_not_allowed"));
    // A preflight is no way around it: OPTIONS without the token is 401, and with a
    // query token it is judged like any request.
    let r = gw
        .send(
            Method::OPTIONS,
            TILE,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = gw
        .send(Method::OPTIONS, &format!("{TILE}?token={token}"), &[("origin", "https://evil.example")], Bytes::new())
        .await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "origin_not_allowed"));
    assert!(!gw.upstream.seen().iter().any(|s| s.method == Method::OPTIONS), "no preflight reached the upstream");
}

#[tokio::test]
async fn a_delegated_list_must_lie_within_the_creators() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let share = |origins: Value| {
        json!({
            "accessList": [{ "pathId": "osm", "access": { "accessTier": "share" } }],
            "description": "browser parent",
            "allowedOrigins": origins
        })
    };
    let r = gw.create(&root, share(json!(["https://*.example.org", "https://app.partner.net"]))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let parent = r.json()["token"].as_str().expect("token").to_owned();
    let origin = [("origin", "https://app.partner.net"), ("content-type", "application/json")];
    let create_as_parent = |origins: Value| {
        let auth = format!("Bearer {parent}");
        let body = Bytes::from(share(origins).to_string());
        let gw = &gw;
        async move {
            let mut headers = vec![("authorization", auth.as_str())];
            headers.extend_from_slice(&origin);
            gw.send(Method::POST, API, &headers, body).await
        }
    };
    let r =
        create_as_parent(json!(["https://a.example.org", "https://*.b.example.org", "https://app.partner.net"])).await;
    assert_eq!(r.status, StatusCode::CREATED, "within: {}", r.text());
    for (asked, names) in [
        (Value::Null, "must list allowedOrigins"),
        (json!(["https://example.org"]), "`https://example.org` is not within"),
        (json!(["https://a.example.org", "https://*.partner.net"]), "`https://*.partner.net` is not within"),
        (json!(["http://a.example.org"]), "`http://a.example.org` is not within"),
    ] {
        let r = create_as_parent(asked.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{asked}: {}", r.text());
        let problem = &r.json()["detail"][0];
        assert_eq!(problem["loc"], json!(["body", "allowedOrigins"]), "{}", r.text());
        assert!(problem["msg"].as_str().is_some_and(|m| m.contains(names)), "{asked}: {}", r.text());
    }
    // The parent's own list applies to its use of the token API too.
    let r = gw.api(Method::GET, API, &parent, None).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::FORBIDDEN, "origin_not_allowed"));
}

#[tokio::test]
async fn malformed_allowed_origins_are_422_naming_the_entry() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    for (origins, loc, says) in [
        (json!(["https://a.example.org/"]), json!(["body", "allowedOrigins", 0]), "path"),
        (
            json!(["https://ok.example.org", "https://user@a.example.org"]),
            json!(["body", "allowedOrigins", 1]),
            "user information",
        ),
        (json!(["https://a.*.example.org"]), json!(["body", "allowedOrigins", 0]), "leftmost"),
        (json!(["null"]), json!(["body", "allowedOrigins", 0]), "opaque"),
        (json!(["*"]), json!(["body", "allowedOrigins", 0]), "every origin"),
        (json!([7]), json!(["body", "allowedOrigins", 0]), "string"),
        (json!([]), json!(["body", "allowedOrigins"]), "at least one"),
        (json!("https://a.example.org"), json!(["body", "allowedOrigins"]), "list"),
    ] {
        let r = gw.create(&root, body(json!({ "allowedOrigins": origins }))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{origins}: {}", r.text());
        let problem = &r.json()["detail"][0];
        assert_eq!(problem["loc"], loc, "{origins}: {}", r.text());
        assert!(problem["msg"].as_str().is_some_and(|m| m.contains(says)), "{origins}: {}", r.text());
    }
}

#[tokio::test]
async fn the_cli_creates_and_lists_allowed_origins() {
    let gw = TestGateway::start().await;
    let out = gw.cli(&[
        "token",
        "create",
        "--path",
        "osm",
        "--tier",
        "view",
        "--description",
        "browser",
        "--allowed-origin",
        "https://App.example.org",
        "--allowed-origin",
        "https://*.maps.example.org",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = stdout.lines();
    let (token, id) = (lines.next().expect("token").to_owned(), lines.next().expect("id").to_owned());
    assert_eq!(get_with(&gw, TILE, &token, &[("origin", "https://app.example.org")]).await.status, StatusCode::OK);
    assert_eq!(get_with(&gw, TILE, &token, &[]).await.reason(), "origin_not_allowed");
    let list = gw.cli(&["token", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    let line = text.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(line.contains("https://app.example.org,https://*.maps.example.org"), "{line}");
    let bad = gw.cli(&[
        "token",
        "create",
        "--path",
        "osm",
        "--tier",
        "view",
        "--description",
        "x",
        "--allowed-origin",
        "https://a.org/x",
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--allowed-origin `https://a.org/x`: `https://a.org/x` has a path"), "{stderr}");
}
