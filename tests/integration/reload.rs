//! Live reload and signals: config edits apply without a restart and without
//! failing requests in flight, broken edits are refused, symlink swaps (as a
//! Kubernetes ConfigMap does them) are seen, SIGHUP reloads, and SIGTERM drains.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::support::ops::{cli, eventually, free_port, mint, scrape, send, Binary};
use crate::support::{TestGateway, TestUpstream, CONFIG};
use tilegate::policy::Tier;

/// The standard config with room for slow upstreams and an ops listener.
fn base() -> String {
    CONFIG.replace("response_timeout = \"1s\"", "response_timeout = \"10s\"") + "\n[ops]\nlisten = \"127.0.0.1:0\"\n"
}

const FRESH: &str = r#"
[[path]]
id = "fresh"
parent = "world"
kind = "vector"
[path.upstream]
base = "http://{up}/fresh/"
"#;

#[tokio::test]
async fn an_edited_config_adds_a_path_on_the_next_request_while_a_slow_request_finishes() {
    let gw = TestGateway::with_config(&base()).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops");
    let token = gw.token(&[("world", Tier::ViewPlus)]).await;
    assert_eq!(gw.get("/path/fresh/x", &token).await.status, StatusCode::NOT_FOUND);

    let slow = {
        let (addr, token) = (gw.addr, token.clone());
        tokio::spawn(async move {
            send(addr, Method::GET, "/path/osm/slow", &[("authorization", &format!("Bearer {token}"))]).await
        })
    };
    eventually(Duration::from_secs(5), "the slow request to reach the upstream", || async {
        gw.upstream.seen().iter().any(|s| s.uri.ends_with("/slow")).then_some(())
    })
    .await;

    let edited =
        base().replace("{up}", &gw.upstream.addr.to_string()) + &FRESH.replace("{up}", &gw.upstream.addr.to_string());
    std::fs::write(&gw.config_path, edited).expect("edit");
    eventually(Duration::from_secs(10), "the new path to answer", || async {
        (gw.get("/path/fresh/x", &token).await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(gw.upstream.last().uri, "/fresh/x");

    let (status, body) = slow.await.expect("task");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream saw /osm/slow"), "the request in flight finished");
    assert!(scrape(ops).await.get("tilegate_config_reloads_total{result=\"ok\"}") >= 1.0);
}

#[tokio::test]
async fn a_broken_edit_is_refused_and_the_old_config_keeps_serving_until_a_good_one_arrives() {
    let gw = TestGateway::with_config(&base()).await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops");
    let token = gw.token(&[("world", Tier::ViewPlus)]).await;
    let up = gw.upstream.addr.to_string();

    let broken =
        base().replace("{up}", &up) + &FRESH.replace("{up}", &up).replace("kind = \"vector\"", "kind = \"lake\"");
    std::fs::write(&gw.config_path, broken).expect("edit");
    eventually(Duration::from_secs(10), "the failed reload in /metrics", || async {
        (scrape(ops).await.get("tilegate_config_reloads_total{result=\"failed\"}") >= 1.0).then_some(())
    })
    .await;
    assert_eq!(gw.get("/path/osm/a", &token).await.status, StatusCode::OK, "the old config still serves");
    assert_eq!(gw.get("/path/fresh/a", &token).await.status, StatusCode::NOT_FOUND);
    let reloads_ok = scrape(ops).await.get("tilegate_config_reloads_total{result=\"ok\"}");

    let fixed = base().replace("{up}", &up) + &FRESH.replace("{up}", &up);
    std::fs::write(&gw.config_path, fixed).expect("fix");
    eventually(Duration::from_secs(10), "the fixed config to apply", || async {
        (gw.get("/path/fresh/a", &token).await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(scrape(ops).await.get("tilegate_config_reloads_total{result=\"ok\"}"), reloads_ok + 1.0);
}

/// `dir/config.toml → ..data/config.toml`, `..data → <version>`: a ConfigMap volume.
#[cfg(unix)]
fn configmap_version(dir: &Path, version: &str, text: &str) {
    let versioned = dir.join(version);
    std::fs::create_dir_all(&versioned).expect("dir");
    std::fs::write(versioned.join("config.toml"), text).expect("write");
    let next = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(version, &next).expect("symlink");
    std::fs::rename(&next, dir.join("..data")).expect("atomic swap");
    if std::fs::symlink_metadata(dir.join("config.toml")).is_err() {
        std::os::unix::fs::symlink("..data/config.toml", dir.join("config.toml")).expect("symlink");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_configmap_style_symlink_swap_is_picked_up() {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let up = upstream.addr.to_string();
    let store = dir.path().join("tilegate.db");
    let v1 = base().replace("{up}", &up).replace("path = \"tilegate.db\"", &format!("path = \"{}\"", store.display()));
    configmap_version(dir.path(), "..2026_01_01_v1", &v1);
    let config = tilegate::config::load(&dir.path().join("config.toml")).expect("valid");
    let running = tilegate::server::start(config).await.expect("starts");
    let token = mint(running.gateway.cache().store(), &[("world", Tier::ViewPlus)]).await;
    let auth = format!("Bearer {token}");
    let get = |addr: SocketAddr, path: &'static str| {
        let auth = auth.clone();
        async move { send(addr, Method::GET, path, &[("authorization", &auth)]).await.0 }
    };
    assert_eq!(get(running.addr, "/path/fresh/x").await, StatusCode::NOT_FOUND);

    // Same file name, same folder: only the `..data` link moves to a new version.
    configmap_version(dir.path(), "..2026_01_02_v2", &(v1.clone() + &FRESH.replace("{up}", &up)));
    eventually(Duration::from_secs(10), "the swapped config to apply", || async {
        (get(running.addr, "/path/fresh/x").await == StatusCode::OK).then_some(())
    })
    .await;
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_closes_what_is_still_open_when_the_grace_period_ends() {
    let mut gw = TestGateway::with_config(&base()).await;
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    let slow = {
        let (addr, token) = (gw.addr, token.clone());
        tokio::spawn(async move {
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
            let req = http::Request::get(format!("http://{addr}/path/osm/slow"))
                .header("authorization", format!("Bearer {token}"))
                .body(Default::default())
                .expect("request");
            client.request(req).await.map(|r| r.status())
        })
    };
    eventually(Duration::from_secs(5), "the slow request to reach the upstream", || async {
        gw.upstream.seen().iter().any(|s| s.uri.ends_with("/slow")).then_some(())
    })
    .await;
    let running = gw.running.take().expect("running");
    tokio::time::timeout(Duration::from_secs(10), running.shutdown(Duration::from_millis(200)))
        .await
        .expect("shutdown returns once the grace period is over");
    let outcome = slow.await.expect("task");
    assert!(outcome.is_err(), "the request still in flight after the grace period was cut: {outcome:?}");
}

fn binary_config(dir: &Path, port: u16, up: &str, extra_server: &str) -> std::path::PathBuf {
    let text = base()
        .replace("{up}", up)
        .replace(
            "listen = \"127.0.0.1:0\"\npublic_url",
            &format!("listen = \"127.0.0.1:{port}\"\n{extra_server}\npublic_url"),
        )
        .replace("[ops]\nlisten = \"127.0.0.1:0\"\n", "");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[tokio::test]
async fn sighup_reloads_the_config_when_file_watching_is_off() {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let up = upstream.addr.to_string();
    let config = binary_config(dir.path(), port, &up, "watch_config = false");
    let token = cli(&config, &["token", "create", "--path", "world", "--tier", "viewPlus", "--description", "hup"]);
    let auth = format!("Bearer {}", token.lines().next().expect("token line"));
    let bin = Binary::serve(&config, bin_addr(port)).await;
    let status = || async { send(bin.addr, Method::GET, "/path/fresh/x", &[("authorization", &auth)]).await.0 };
    assert_eq!(status().await, StatusCode::NOT_FOUND);

    // A witness with watching on gets the same edit: once it has applied it, a
    // watching gateway has had its chance, so the unwatched one still refusing is
    // the outcome, not a matter of having waited long enough.
    let witness_dir = tempfile::tempdir().expect("tempdir");
    let witness_port = free_port();
    let witness_config = binary_config(witness_dir.path(), witness_port, &up, "watch_config = true");
    let witness_token =
        cli(&witness_config, &["token", "create", "--path", "world", "--tier", "viewPlus", "--description", "witness"]);
    let witness_auth = format!("Bearer {}", witness_token.lines().next().expect("token line"));
    let witness = Binary::serve(&witness_config, bin_addr(witness_port)).await;
    let witness_status =
        || async { send(witness.addr, Method::GET, "/path/fresh/x", &[("authorization", &witness_auth)]).await.0 };
    assert_eq!(witness_status().await, StatusCode::NOT_FOUND);

    for file in [&config, &witness_config] {
        let text = std::fs::read_to_string(file).expect("read") + &FRESH.replace("{up}", &up);
        std::fs::write(file, text).expect("edit");
    }
    eventually(Duration::from_secs(30), "the watching witness to apply the edit", || async {
        (witness_status().await == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(status().await, StatusCode::NOT_FOUND, "with watching off, an edit alone changes nothing");

    bin.signal("HUP");
    eventually(Duration::from_secs(10), "SIGHUP to apply the edit", || async {
        (status().await == StatusCode::OK).then_some(())
    })
    .await;
    assert!(bin.log().contains("config reloaded"), "{}", bin.log());
}

fn bin_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_and_refuses_new_connections() {
    let upstream = TestUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = binary_config(dir.path(), port, &upstream.addr.to_string(), "shutdown_grace = \"20s\"");
    let token = cli(&config, &["token", "create", "--path", "osm", "--tier", "viewPlus", "--description", "term"]);
    let auth = format!("Bearer {}", token.lines().next().expect("token line"));
    let mut bin = Binary::serve(&config, bin_addr(port)).await;

    let slow = {
        let (addr, auth) = (bin.addr, auth.clone());
        tokio::spawn(async move { send(addr, Method::GET, "/path/osm/slow", &[("authorization", &auth)]).await })
    };
    eventually(Duration::from_secs(5), "the slow request to reach the upstream", || async {
        upstream.seen().iter().any(|s| s.uri.ends_with("/slow")).then_some(())
    })
    .await;

    bin.signal("TERM");
    eventually(Duration::from_secs(5), "new connections to be refused", || async {
        tokio::net::TcpStream::connect(bin.addr).await.is_err().then_some(())
    })
    .await;
    let (status, body) = slow.await.expect("task");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream saw /osm/slow"), "the request in flight completed");

    let exit = eventually(Duration::from_secs(20), "the process to exit", || {
        let s = bin.child.try_wait().expect("wait");
        async move { s }
    })
    .await;
    assert!(exit.success(), "exit {exit:?}: {}", bin.log());
    assert!(bin.log().contains("shutting down"), "{}", bin.log());
}
