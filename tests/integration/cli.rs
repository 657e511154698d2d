//! The `tilegate` binary: token create/list/revoke, check-config, and revocation
//! by another process reaching a running gateway.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use tilegate::policy::Tier;

use crate::support::TestGateway;

#[tokio::test]
async fn cli_create_prints_the_token_then_the_id_and_list_never_shows_it() {
    let gw = TestGateway::start().await;
    let out = gw.cli(&[
        "token",
        "create",
        "--path",
        "osm",
        "--tier",
        "view",
        "--max-zoom",
        "5",
        "--tile",
        "2/2/1",
        "--description",
        "partner",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let mut lines = stdout.lines();
    let token = lines.next().expect("token line").to_owned();
    let id = lines.next().expect("id line").to_owned();
    assert!(token.starts_with("tg_") && token.len() == 52, "{token}");
    assert_eq!(id.len(), 36);
    assert_eq!(gw.get("/ogc/xyz/osm/3/4/2.png", &token).await.status, StatusCode::OK);
    assert_eq!(gw.get("/ogc/xyz/osm/3/0/0.png", &token).await.status, StatusCode::FORBIDDEN);

    let out = gw.cli(&["token", "list"]);
    let listed = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        listed.contains(&id) && listed.contains("partner") && listed.contains("osm:view maxZoom=5 tiles=1"),
        "{listed}"
    );
    assert!(!listed.contains(&token[3..]), "the list never shows a secret");
    let out = gw.cli(&["audit", "--token", &id]);
    let audit = String::from_utf8(out.stdout).expect("utf8");
    assert!(audit.contains("create") && audit.contains(&id), "{audit}");
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    // `tilegate token list | head -n1`: the reader goes away before the list is written.
    // The read end is closed before the child has opened its store, so its first write
    // meets a closed pipe (Rust ignores SIGPIPE, so the write fails with EPIPE).
    let gw = TestGateway::start().await;
    for args in [&["token", "list"][..], &["audit"], &["check-config"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"))
            .arg("--config")
            .arg(&gw.config_path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tilegate");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !stderr.contains("panicked"), "tilegate {args:?}: {:?} {stderr}", out.status);
    }
}

#[tokio::test]
async fn a_token_revoked_by_the_cli_is_refused_by_a_running_gateway() {
    // How fast the revocation arrives (250 ms by design) is a benchmark figure, not
    // a test assertion: on a loaded machine any bound here would be flaky. The test
    // checks that it arrives at all, while the gateway holds the token as valid.
    let gw = TestGateway::start().await;
    let out = gw.cli(&["token", "create", "--path", "osm", "--tier", "view", "--description", "soon revoked"]);
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let (token, id) = stdout.split_once('\n').expect("two lines");
    let id = id.trim();
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", token).await.status, StatusCode::OK, "cached as valid first");
    let out = gw.cli(&["token", "revoke", id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let revoked_at = Instant::now();
    loop {
        let status = gw.get("/ogc/xyz/osm/0/0/0", token).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(30), "still {status} 30 s after the CLI revoked it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.get("/ogc/xyz/osm/0/0/0", token).await.reason(), "revoked_token");
}

#[tokio::test]
async fn token_create_refuses_what_the_token_api_refuses_with_the_same_message() {
    let gw = TestGateway::start().await;
    let root = gw.token(&[("world", Tier::Admin)]).await;
    let tile = |z: u64, x: u64, y: u64| json!({ "zoom": z, "tileX": x, "tileY": y });
    let cases: Vec<(&str, Vec<&str>, serde_json::Value)> = vec![
        ("a tile outside its zoom", vec!["--tile", "5/40/3"], json!({ "geoFence": { "tiles": [tile(5, 40, 3)] } })),
        ("maxZoom above the fence maximum", vec!["--max-zoom", "31"], json!({ "geoFence": { "maxZoom": 31 } })),
        (
            "a tile above maxZoom",
            vec!["--max-zoom", "3", "--tile", "5/1/1"],
            json!({ "geoFence": { "maxZoom": 3, "tiles": [tile(5, 1, 1)] } }),
        ),
        ("a property fence on a raster path", vec!["--property", "name"], json!({ "propertyFence": ["name"] })),
    ];
    for (name, flags, fence) in cases {
        let mut access = fence;
        access["accessTier"] = json!("view");
        let api = gw
            .create(&root, json!({ "accessList": [{ "pathId": "osm", "access": access }], "description": "x" }))
            .await;
        assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {}", api.text());
        let msg = api.json()["detail"][0]["msg"].as_str().expect("msg").to_owned();
        let mut args = vec!["token", "create", "--path", "osm", "--tier", "view", "--description", "x"];
        args.extend(flags);
        let out = gw.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&msg), "{name}: the CLI does not say {msg:?}:\n{err}");
        assert!(out.stdout.is_empty(), "{name}: no token is printed");
    }

    // Body-level rules: an unknown path and an expiry in the past.
    let api = gw
        .create(&root, json!({ "accessList": [{ "pathId": "nope", "access": { "accessTier": "view" } }], "description": "x", "expiresAt": "2020-01-01T00:00:00Z" }))
        .await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.text());
    let out = gw.cli(&[
        "token",
        "create",
        "--path",
        "nope",
        "--tier",
        "view",
        "--expires-at",
        "2020-01-01T00:00:00Z",
        "--description",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for problem in api.json()["detail"].as_array().expect("problems") {
        let msg = problem["msg"].as_str().expect("msg");
        assert!(err.contains(msg), "the CLI does not say {msg:?}:\n{err}");
    }
    assert!(err.contains("--expires-at: must be in the future"), "{err}");
    assert!(err.contains("--path `nope`: `nope` is not a declared path"), "{err}");
}

#[tokio::test]
async fn cli_input_errors_are_exit_2_and_config_errors_exit_64() {
    let gw = TestGateway::start().await;
    let out =
        gw.cli(&["token", "create", "--path", "nope", "--tier", "viewplus", "--tile", "1/2/0", "--description", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--path `nope`: `nope` is not a declared path; declared: `down`, `osm`"), "{err}");
    assert!(err.contains("--tier `viewplus`: `viewplus` is not an access tier"), "{err}");
    assert!(err.contains("--tile `1/2/0`: tile 2/0 does not exist at zoom 1"), "{err}");

    let out = gw.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&gw.config_path, "[server]\nlisten = \"nowhere\"\n[[path]]\nid = \"a\"\nkind = \"lake\"\n")
        .expect("write");
    let out = gw.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listen: `nowhere`") && err.contains("path[0].kind: `lake`"), "{err}");
}

#[test]
fn the_demo_shows_an_allowed_and_a_refused_request() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"))
        .args(["demo", "--once", "--port", "0"])
        .output()
        .expect("run demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("→ 200"), "{text}");
    assert!(text.contains("→ 403 {\"detail\":\"the requested area is not wholly inside the token's geofence\",\"reason\":\"outside_geofence\"}"), "{text}");
    assert!(text.contains("→ 404"), "{text}");
    assert!(text.contains("curl -i -H 'Authorization: Bearer tg_"), "{text}");
}
