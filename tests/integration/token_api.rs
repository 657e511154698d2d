//! The token API: create, list, read, revoke; delegation only narrows; every
//! validation problem is a 422 with its location; durability.

use std::collections::HashSet;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestGateway;
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;
use tilegate::store::now_unix;

const API: &str = "/account/security/accessToken";

fn access(path: &str, tier: &str) -> Value {
    json!({ "pathId": path, "access": { "accessTier": tier } })
}

fn body(list: Vec<Value>) -> Value {
    json!({ "accessList": list, "description": "partner" })
}

#[tokio::test]
async fn create_use_list_and_delete() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let r = gw
        .create(&root, json!({
            "accessList": [{ "pathId": "osm", "access": { "accessTier": "view", "geoFence": { "tiles": [{"tileX": 2, "tileY": 1, "zoom": 2}, {"tileX": 4, "tileY": 2, "zoom": 3}], "maxZoom": 8 } } }],
            "description": "a partner app",
            "validFor": 3600,
            "scope": "ogc"
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    let token = created["token"].as_str().expect("token").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["scope"], "ogc");
    assert_eq!(
        created["accessList"][0]["access"]["geoFence"],
        json!({ "tiles": [{"tileX": 2, "tileY": 1, "zoom": 2}], "maxZoom": 8 }),
        "normalized: 3/4/2 lies in 2/2/1"
    );
    let expires = time::OffsetDateTime::parse(
        created["expiresAt"].as_str().expect("expiresAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    assert!((expires.unix_timestamp() - now_unix() - 3600).abs() <= 5);

    assert_eq!(gw.get("/ogc/xyz/osm/3/4/2.png", &token).await.status, StatusCode::OK);
    assert_eq!(gw.get("/ogc/xyz/osm/3/0/0.png", &token).await.status, StatusCode::FORBIDDEN);

    let list = gw.api(Method::GET, API, &root, None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text().contains(&token[3..]), "no secret in the list");
    let listed = &list.json()["result"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["displayKey"], created["displayKey"]);
    let key = listed["displayKey"].as_str().expect("displayKey");
    assert!(key.starts_with(&token[..6]) && key.ends_with(&token[token.len() - 4..]), "{key}");
    assert!(listed.get("token").is_none());
    let one = gw.api(Method::GET, &format!("{API}/{id}"), &root, None).await;
    assert_eq!((one.status, one.json()["id"].as_str()), (StatusCode::OK, Some(id.as_str())));

    let del = gw.api(Method::DELETE, &format!("{API}/{id}"), &root, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text());
    let r = gw.get("/ogc/xyz/osm/3/4/2.png", &token).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "revoked_token"),
        "the very next request is refused"
    );
    let audit = gw.store().audit(Some(id.parse().expect("id")), None).await.expect("audit");
    assert_eq!(audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "revoke"]);
    assert!(audit.iter().all(|e| e.client == "127.0.0.1"));
}

#[tokio::test]
async fn revoking_a_token_revokes_everything_created_from_it() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let child = gw.create(&root, body(vec![access("world", "share")])).await.json();
    let child_token = child["token"].as_str().expect("token").to_owned();
    let grandchild = gw.create(&child_token, body(vec![access("osm", "view")])).await;
    assert_eq!(grandchild.status, StatusCode::CREATED, "{}", grandchild.text());
    let grandchild_token = grandchild.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &grandchild_token).await.status, StatusCode::OK);
    let listed = gw.api(Method::GET, API, &root, None).await.json();
    assert_eq!(listed["result"].as_array().map(Vec::len), Some(2), "the root lists its child and grandchild");

    let r = gw.api(Method::DELETE, &format!("{API}/{}", child["id"].as_str().expect("id")), &root, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &grandchild_token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &child_token).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn delegation_can_only_narrow() {
    let gw = TestGateway::start().await;
    let fence = Fence::new(Some(&[(2, 2, 1)]), Some(10)).expect("fence");
    let (caller, _) = gw
        .token_with(&[("osm", Tier::Edit), ("places", Tier::Share)], fence, Scope::All, Some(now_unix() + 3600))
        .await;
    let pc = tilegate::store::AccessSpec {
        path_id: "places".into(),
        tier: Tier::Share,
        fence: Fence::default(),
        properties: Some(vec!["name".into(), "population".into()]),
    };
    // A property-fenced caller on a second layer.
    let minted = tilegate::admin::mint(
        "tg",
        "props".into(),
        Scope::All,
        now_unix(),
        None,
        vec![pc],
        tilegate::admin::Minter { creator: None, client: "t".into() },
    )
    .expect("mint");
    gw.store().create(minted.row).await.expect("create");
    let props_caller = minted.secret.expose().to_owned();
    let (viewer, _) = gw.token_with(&[("osm", Tier::View)], Fence::default(), Scope::All, None).await;

    let osm = |tier: &str, geo: Value| json!({ "pathId": "osm", "access": { "accessTier": tier, "geoFence": geo } });
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        ("needs share", &viewer, body(vec![access("osm", "view")]), 403, "needs tier `share`"),
        ("tier above caller", &caller, body(vec![access("osm", "admin")]), 403, "above the calling token's `edit`"),
        (
            "tier at caller",
            &caller,
            body(vec![osm("edit", json!({"tiles": [{"tileX": 4, "tileY": 2, "zoom": 3}]}))]),
            201,
            "",
        ),
        (
            "fence outside",
            &caller,
            body(vec![osm("view", json!({"tiles": [{"tileX": 0, "tileY": 0, "zoom": 2}]}))]),
            403,
            "not inside the calling token's",
        ),
        (
            "maxZoom higher",
            &caller,
            body(vec![osm("view", json!({"tiles": [{"tileX": 2, "tileY": 1, "zoom": 2}], "maxZoom": 12}))]),
            403,
            "not inside",
        ),
        (
            "fence inside",
            &caller,
            body(vec![osm("view", json!({"tiles": [{"tileX": 8, "tileY": 5, "zoom": 4}], "maxZoom": 9}))]),
            201,
            "",
        ),
        ("no access to path", &caller, body(vec![access("secret", "view")]), 403, "no access to `secret`"),
        (
            "property outside",
            &props_caller,
            body(vec![json!({"pathId": "places", "access": {"accessTier": "view", "propertyFence": ["secret_note"]}})]),
            403,
            "`secret_note`",
        ),
        (
            "property inside",
            &props_caller,
            body(vec![json!({"pathId": "places", "access": {"accessTier": "view", "propertyFence": ["name"]}})]),
            201,
            "",
        ),
        (
            "expiry later",
            &caller,
            json!({"accessList": [osm("view", Value::Null)], "description": "x", "validFor": 7200}),
            403,
            "outlive",
        ),
        (
            "expiry earlier",
            &caller,
            json!({"accessList": [osm("view", Value::Null)], "description": "x", "validFor": 60}),
            201,
            "",
        ),
    ];
    for (name, token, b, status, needle) in cases {
        let r = gw.create(token, b).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text());
        assert!(r.text().contains(needle), "{name}: {}", r.text());
    }

    // Omitted fences and expiry are inherited, never widened.
    let r = gw.create(&caller, body(vec![access("osm", "view")])).await.json();
    assert_eq!(
        r["accessList"][0]["access"]["geoFence"],
        json!({"tiles": [{"tileX": 2, "tileY": 1, "zoom": 2}], "maxZoom": 10})
    );
    assert!(r["expiresAt"].is_string());
    let child = r["token"].as_str().expect("token");
    assert_eq!(gw.get("/ogc/xyz/osm/3/0/0.png", child).await.status, StatusCode::FORBIDDEN);
    let r = gw
        .create(&props_caller, body(vec![json!({"pathId": "places", "access": {"accessTier": "view"}})]))
        .await
        .json();
    assert_eq!(r["accessList"][0]["access"]["propertyFence"], json!(["name", "population"]));
}

#[tokio::test]
async fn every_validation_problem_is_a_422_with_its_location() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin), ("secret", Tier::Admin)]).await;
    let tile = |x: u64, y: u64, z: u64| json!({"tileX": x, "tileY": y, "zoom": z});
    let many: Vec<Value> = (0..10_001u64).map(|i| tile(i % 1024, i / 1024, 10)).collect();
    let geo = |g: Value| vec![json!({"pathId": "osm", "access": {"accessTier": "view", "geoFence": g}})];
    let cases: Vec<(&str, Value, Vec<Value>)> = vec![
        ("unknown pathId", body(vec![access("nope", "view")]), vec![json!(["body", "accessList", 0, "pathId"])]),
        (
            "unknown tier",
            body(vec![access("osm", "viewer")]),
            vec![json!(["body", "accessList", 0, "access", "accessTier"])],
        ),
        (
            "tile out of range",
            body(geo(json!({"tiles": [tile(4, 0, 2)]}))),
            vec![json!(["body", "accessList", 0, "access", "geoFence", "tiles", 0])],
        ),
        (
            "zoom above 24",
            body(geo(json!({"tiles": [tile(0, 0, 25)]}))),
            vec![json!(["body", "accessList", 0, "access", "geoFence", "tiles", 0, "zoom"])],
        ),
        (
            "empty tiles",
            body(geo(json!({"tiles": []}))),
            vec![json!(["body", "accessList", 0, "access", "geoFence", "tiles"])],
        ),
        (
            "tile above maxZoom",
            body(geo(json!({"tiles": [tile(0, 0, 6)], "maxZoom": 5}))),
            vec![json!(["body", "accessList", 0, "access", "geoFence", "tiles", 0, "zoom"])],
        ),
        (
            "too many tiles",
            body(geo(json!({"tiles": many}))),
            vec![json!(["body", "accessList", 0, "access", "geoFence", "tiles"])],
        ),
        (
            "propertyFence on raster",
            body(vec![json!({"pathId": "osm", "access": {"accessTier": "view", "propertyFence": ["a"]}})]),
            vec![json!(["body", "accessList", 0, "access", "propertyFence"])],
        ),
        (
            "unknown property",
            body(vec![json!({"pathId": "places", "access": {"accessTier": "view", "propertyFence": ["colour"]}})]),
            vec![json!(["body", "accessList", 0, "access", "propertyFence"])],
        ),
        (
            "empty description",
            json!({"accessList": [access("osm", "view")], "description": ""}),
            vec![json!(["body", "description"])],
        ),
        (
            "long description",
            json!({"accessList": [access("osm", "view")], "description": "x".repeat(129)}),
            vec![json!(["body", "description"])],
        ),
        // Attacker round 9: a description that rewrote the operator's `token list` line.
        (
            "terminal escape in the description",
            json!({"accessList": [access("osm", "view")], "description": "\r\u{1b}[2K"}),
            vec![json!(["body", "description"])],
        ),
        (
            "line break in the description",
            json!({"accessList": [access("osm", "view")], "description": "a\nfake row"}),
            vec![json!(["body", "description"])],
        ),
        (
            "bidirectional override in the description",
            json!({"accessList": [access("osm", "view")], "description": "a\u{202e}b"}),
            vec![json!(["body", "description"])],
        ),
        (
            "validFor zero",
            json!({"accessList": [access("osm", "view")], "description": "x", "validFor": 0}),
            vec![json!(["body", "validFor"])],
        ),
        (
            "validFor eleven years",
            json!({"accessList": [access("osm", "view")], "description": "x", "validFor": 11 * 365 * 86400}),
            vec![json!(["body", "validFor"])],
        ),
        (
            "validFor fraction",
            json!({"accessList": [access("osm", "view")], "description": "x", "validFor": 1.5}),
            vec![json!(["body", "validFor"])],
        ),
        (
            "both expiries",
            json!({"accessList": [access("osm", "view")], "description": "x", "validFor": 60, "expiresAt": "2030-01-01T00:00:00Z"}),
            vec![json!(["body", "expiresAt"])],
        ),
        (
            "bad scope",
            json!({"accessList": [access("osm", "view")], "description": "x", "scope": "some"}),
            vec![json!(["body", "scope"])],
        ),
        (
            "duplicate pathId",
            body(vec![access("osm", "view"), access("osm", "edit")]),
            vec![json!(["body", "accessList", 1, "pathId"])],
        ),
        (
            "unknown field",
            json!({"accessList": [{"pathId": "osm", "access": {"accessTier": "view", "geofence": {}}}], "description": "x", "colour": 1}),
            vec![json!(["body", "colour"]), json!(["body", "accessList", 0, "access", "geofence"])],
        ),
        ("missing fields", json!({}), vec![json!(["body", "description"]), json!(["body", "accessList"])]),
        (
            "everything at once",
            json!({"accessList": [access("nope", "viewer")], "description": "", "scope": 3}),
            vec![
                json!(["body", "description"]),
                json!(["body", "scope"]),
                json!(["body", "accessList", 0, "pathId"]),
                json!(["body", "accessList", 0, "access", "accessTier"]),
            ],
        ),
    ];
    for (name, b, locs) in cases {
        let r = gw.create(&root, b).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {}", r.text());
        let detail = r.json()["detail"].as_array().cloned().expect("detail list");
        let got: Vec<Value> = detail.iter().map(|d| d["loc"].clone()).collect();
        for loc in &locs {
            assert!(got.contains(loc), "{name}: missing {loc} in {got:?}");
        }
        assert_eq!(got.len(), locs.len(), "{name}: {got:?}");
        assert!(detail.iter().all(|d| d["msg"].is_string() && d["type"].is_string()), "{name}");
    }
    assert!(
        gw.api(Method::GET, API, &root, None).await.json()["result"].as_array().expect("list").is_empty(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_and_oversized_413() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let auth = format!("Bearer {root}");
    let r = gw
        .send(
            Method::POST,
            API,
            &[("authorization", &auth), ("content-type", "application/json")],
            Bytes::from_static(b"{nope"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = gw
        .send(
            Method::POST,
            API,
            &[("authorization", &auth), ("content-type", "text/plain")],
            Bytes::from(body(vec![access("osm", "view")]).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("application/json"));
    let big = Bytes::from(vec![b' '; 1024 * 1024 + 1]);
    let r = gw.send(Method::POST, API, &[("authorization", &auth), ("content-type", "application/json")], big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = gw.send(Method::POST, API, &[("content-type", "application/json")], Bytes::from_static(b"{}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (ogc, _) = gw.token_with(&[("world", Tier::Admin)], Fence::default(), Scope::Ogc, None).await;
    assert_eq!(gw.create(&ogc, body(vec![access("osm", "view")])).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_while_tokens_are_created() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    for i in 0..25 {
        let r = gw.create(&root, json!({"accessList": [access("osm", "view")], "description": format!("t{i}")})).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut start: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &start {
            Some(s) => format!("{API}?pageSize=10&pageStart={s}"),
            None => format!("{API}?pageSize=10"),
        };
        let page = gw.api(Method::GET, &q, &root, None).await.json();
        pages += 1;
        for t in page["result"].as_array().expect("result") {
            seen.push(t["description"].as_str().expect("d").to_owned());
        }
        if pages == 1 {
            // Created while paging: must appear once, at the end.
            for i in 25..30 {
                gw.create(&root, json!({"accessList": [access("osm", "view")], "description": format!("t{i}")})).await;
            }
        }
        match page["nextPageStart"].as_str() {
            Some(s) => start = Some(s.to_owned()),
            None => break,
        }
    }
    let want: Vec<String> = (0..30).map(|i| format!("t{i}")).collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 3);
    let r = gw.api(Method::GET, &format!("{API}?pageSize=101"), &root, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["query", "pageSize"]));
}

#[tokio::test]
async fn listing_by_path_needs_full_view_and_others_tokens_stay_hidden() {
    let gw = TestGateway::start().await;
    let a = gw.token(&[("world", Tier::Share)]).await;
    let b = gw.token(&[("world", Tier::Share)]).await;
    let auditor = gw.token(&[("osm", Tier::FullView)]).await;
    let admin = gw.token(&[("osm", Tier::Admin)]).await;
    let made = gw.create(&a, body(vec![access("osm", "view")])).await.json();
    let id = made["id"].as_str().expect("id");

    let r = gw.api(Method::GET, &format!("{API}?pathId=osm"), &b, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = gw.api(Method::GET, &format!("{API}?pathId=osm"), &auditor, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: HashSet<String> =
        r.json()["result"].as_array().expect("r").iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect();
    assert!(ids.contains(id), "the token made for osm");
    // The auditor, the admin and the token made for osm; not `a` and `b`, which grant
    // the whole `world` folder and which the auditor cannot read one by one.
    assert_eq!(ids.len(), 3, "{ids:?}");

    for other in [&b, &auditor] {
        let r = gw.api(Method::DELETE, &format!("{API}/{id}"), other, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "deleting someone else's token");
    }
    let r = gw.api(Method::DELETE, &format!("{API}/00000000-0000-0000-0000-000000000000"), &a, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(gw.api(Method::GET, &format!("{API}/{id}"), &b, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(gw.api(Method::GET, &format!("{API}/{id}"), &auditor, None).await.status, StatusCode::OK);
    let r = gw.api(Method::DELETE, &format!("{API}/{id}"), &admin, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "admin on every path the token grants may revoke it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_creates_all_succeed() {
    let gw = std::sync::Arc::new(TestGateway::start().await);
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let gw = gw.clone();
            let root = root.clone();
            tokio::spawn(async move {
                gw.create(&root, json!({"accessList": [access("osm", "view")], "description": format!("c{i}")})).await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        tokens.push(r.json()["token"].as_str().expect("token").to_owned());
    }
    let mut listed = 0;
    let mut start = String::new();
    loop {
        let page = gw.api(Method::GET, &format!("{API}?pageSize=100{start}"), &root, None).await.json();
        listed += page["result"].as_array().expect("r").len();
        match page["nextPageStart"].as_str() {
            Some(s) => start = format!("&pageStart={s}"),
            None => break,
        }
    }
    assert_eq!(listed, 200);
    for t in tokens.iter().step_by(10) {
        assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", t).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_created_token_survives_kill_9() {
    use crate::support::ops::{cli, free_port, Binary};
    let dir = tempfile::tempdir().expect("tempdir");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = format!("[server]\nlisten = \"{addr}\"\n[store]\npath = \"t.db\"\n[[path]]\nid = \"osm\"\nkind = \"raster\"\n[path.upstream]\nbase = \"http://127.0.0.1:9/\"\n");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config).expect("write");
    let root = cli(&config_path, &["token", "create", "--path", "osm", "--tier", "admin", "--description", "root"]);
    let root = root.lines().next().expect("token").to_owned();
    let mut server = Binary::serve(&config_path, addr).await;
    let req = http::Request::post(format!("http://{addr}{API}"))
        .header("authorization", format!("Bearer {root}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body(vec![access("osm", "view")]).to_string())))
        .expect("req");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client.request(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::CREATED);
    use http_body_util::BodyExt as _;
    let created: Value =
        serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes()).expect("json");
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    let id = created["id"].as_str().expect("id");
    let listed = cli(&config_path, &["token", "list"]);
    assert!(listed.contains(id), "the token whose create returned 201 is in the store after kill -9");
}

#[tokio::test]
async fn the_token_api_can_live_on_its_own_loopback_listener() {
    let config = crate::support::CONFIG.replace("[store]", "[api]\nlisten = \"127.0.0.1:0\"\n[store]");
    let gw = TestGateway::with_config(&config).await;
    let api_addr = gw.running.as_ref().and_then(|r| r.api_addr).expect("api listener");
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let r = gw.create(&root, body(vec![access("osm", "view")])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "the main listener no longer serves the token API");
    assert_eq!(gw.send(Method::GET, "/openapi.json", &[], Bytes::new()).await.status, StatusCode::NOT_FOUND);

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let send = |method: Method, path: &str, body: Option<Value>| {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{api_addr}{path}"))
            .header("authorization", format!("Bearer {root}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .expect("req");
        client.request(req)
    };
    let r = send(Method::POST, API, Some(body(vec![access("osm", "view")]))).await.expect("response");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = send(Method::GET, "/ogc/xyz/osm/0/0/0", None).await.expect("response");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the API listener serves nothing else");
    assert_eq!(send(Method::GET, "/readyz", None).await.expect("response").status(), StatusCode::OK);
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", &root).await.status, StatusCode::OK);
}

/// Regression: `?pathId=osm` with fullView on `osm` listed tokens granting the whole
/// parent folder `world`, with their access lists, although `GET /{id}` answers 404 for
/// each. A list shows exactly what the caller could read one by one.
#[tokio::test]
async fn a_path_listing_shows_only_tokens_the_caller_could_read_one_by_one() {
    let gw = TestGateway::start().await;
    let caller = gw.token(&[("osm", Tier::FullView)]).await;
    let (_, folder_id) = gw.token_with(&[("world", Tier::View)], Fence::default(), Scope::All, None).await;
    let (_, osm_id) = gw.token_with(&[("osm", Tier::View)], Fence::default(), Scope::All, None).await;
    let r = gw.api(Method::GET, "/account/security/accessToken?pathId=osm", &caller, None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let ids: Vec<String> = r.json()["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(ids.contains(&osm_id), "{ids:?}");
    assert!(!ids.contains(&folder_id), "the folder token is not readable one by one: {ids:?}");
    let one = gw.api(Method::GET, &format!("/account/security/accessToken/{folder_id}"), &caller, None).await;
    assert_eq!(one.status.as_u16(), 404, "and indeed GET /{{id}} hides it");
}
