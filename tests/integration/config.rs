//! `tilegate check-config` on a file with several mistakes: every one is printed
//! in one run, and the exit code is 64.

/// Runs the binary on `text` written to a temporary `bad.toml`.
fn check_config(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write");
    std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("run tilegate")
}

#[test]
fn check_config_prints_every_unknown_key_and_bad_value_in_one_run() {
    let out = check_config(
        r#"
[server]
listen = "127.0.0.1:8080"
publc_url = "https://maps.example.org"
[[path]]
id = "osm"
kind = "raster"
[path.upstream]
xyz = "http://127.0.0.1:9000/{z}/{x}/{y}.png"
[[path]]
id = "roads"
kind = "vector"
parent = "basemap"
geoFence = "5/16/10"
[path.upstream]
wfs = "http://127.0.0.1:9000/wfs"
[path.upstream.tls]
server_nme = "maps.internal"
"#,
    );
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "4 configuration errors",
        "server.publc_url: `publc_url` is not a key of `server`; did you mean `public_url`?",
        "path[1].geoFence: `geoFence` is not a key of `path[1]`; valid: `id`, `kind`",
        "path[1].upstream.tls.server_nme: `server_nme` is not a key of `path[1].upstream.tls`; did you mean `server_name`?",
        "path[1].parent: `basemap` is not a declared path; declared: `osm`, `roads`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_single_misspelled_key_is_never_ignored() {
    // The regression this guards: an unknown key silently dropped would let a
    // config that means "fenced" start unfenced. Even alone it stops the start.
    let out = check_config("[tokens]\nallow_query_tokens = false\n");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens.allow_query_tokens: `allow_query_tokens` is not a key of `tokens`; did you mean `allow_query_token`?"),
        "{err}"
    );
}
