//! The `tilegate` binary: token create/list/revoke, check-config, and revocation
//! by another process reaching a running gateway.

use std::time::{Duration, Instant};

use http::StatusCode;

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
async fn cli_revocation_reaches_a_running_gateway_within_a_second() {
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
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "still {status} one second after the CLI revoked it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cli_input_errors_are_exit_2_and_config_errors_exit_64() {
    let gw = TestGateway::start().await;
    let out =
        gw.cli(&["token", "create", "--path", "nope", "--tier", "viewplus", "--tile", "1/2/0", "--description", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`nope` is not declared"), "{err}");
    assert!(err.contains("`viewplus` is not an access tier"), "{err}");
    assert!(err.contains("tiles[0]"), "{err}");

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
