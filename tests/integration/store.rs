//! The store interface: one suite both backends pass (SQLite file, PostgreSQL
//! database), and the store faults readiness must tell the truth about: a SQLite
//! file locked by another process, a read-only file at start.

use std::time::{Duration, Instant};

use http::StatusCode;
use tilegate::admin::{self, Minter};
use tilegate::policy::{Scope, Tier, TokenId};
use tilegate::spatial::Fence;
use tilegate::store::{AccessSpec, Change, Lookup, NewToken, Page, State, Store};
use tilegate::token::TokenHash;

use crate::support::ops::{eventually, get};
use crate::support::{pg, TestGateway, CONFIG};

fn new_token(creator: Option<TokenId>, access: Vec<AccessSpec>) -> (NewToken, TokenHash) {
    let minted = admin::mint(
        "tg",
        "suite".into(),
        Scope::All,
        tilegate::store::now_unix(),
        None,
        access,
        Minter { creator, client: "test".into() },
    )
    .expect("randomness");
    let hash = minted.row.hash;
    (minted.row, hash)
}

/// A well-formed token that no store holds.
fn unknown_token() -> String {
    let minted =
        admin::mint("tg", "x".into(), Scope::All, 0, None, Vec::new(), Minter { creator: None, client: "t".into() })
            .expect("randomness");
    minted.secret.expose().to_owned()
}

fn spec(path: &str, tier: Tier) -> AccessSpec {
    AccessSpec { path_id: path.into(), tier, fence: Fence::default(), properties: None }
}

/// Everything the gateway asks of a store, on whichever backend `store` is.
async fn suite(store: Store) {
    let start_rev = store.revision().await.expect("revision");
    // Unknown.
    assert!(matches!(store.lookup(TokenHash([7; 32]), None).await.expect("lookup"), Lookup::Unknown));

    // Create with a fence and a property fence; read it back exactly.
    let fence = Fence::new(Some(&[(5, 16, 10), (6, 34, 20)]), Some(12)).expect("fence");
    let fenced = AccessSpec {
        path_id: "places".into(),
        tier: Tier::ViewPlus,
        fence: fence.clone(),
        properties: Some(vec!["name".into()]),
    };
    let (root, root_hash) = new_token(None, vec![spec("world", Tier::Admin), fenced.clone()]);
    let root_id = root.id;
    let record = store.create(root).await.expect("create");
    assert_eq!(record.id, root_id);
    let got = store.get(root_id).await.expect("get").expect("found");
    assert_eq!(got.access.len(), 2);
    assert!(got.access.contains(&fenced), "fence and property fence round-trip: {:?}", got.access);
    match store.lookup(root_hash, None).await.expect("lookup") {
        Lookup::Found(grant) => {
            assert_eq!(grant.token_id, root_id);
            assert_eq!(grant.access.len(), 2);
        }
        other => panic!("expected the grant, got {other:?}"),
    }

    // The change log: a create narrows nothing (SQLite lists it, PostgreSQL
    // does not spend a revision on it).
    let (rev, touched) = store.changes_since(start_rev, None).await.expect("changes");
    assert!(rev >= start_rev);
    assert!(touched.iter().all(|c| c == &Change { hash: root_hash, narrowing: false }), "{touched:?}");
    let (same, nothing) = store.changes_since(rev, None).await.expect("changes");
    assert_eq!((same, nothing.len()), (rev, 0), "nothing new since");

    // A chain: root → child → grandchild, and an unrelated token.
    let (child, child_hash) = new_token(Some(root_id), vec![spec("osm", Tier::View)]);
    let child_id = child.id;
    store.create(child).await.expect("create child");
    let (grand, grand_hash) = new_token(Some(child_id), vec![spec("osm", Tier::View)]);
    let grand_id = grand.id;
    store.create(grand).await.expect("create grandchild");
    let (other, other_hash) = new_token(None, vec![spec("secret", Tier::View)]);
    store.create(other).await.expect("create other");

    let mut below = store.descendants(root_id).await.expect("descendants");
    below.sort();
    let mut want = vec![child_id, grand_id];
    want.sort();
    assert_eq!(below, want);

    // Listing: pages in creation order, below a creator, granting a path.
    let all = store.list(Page::All { after: 0, limit: 100 }).await.expect("list");
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "creation order");
    let first = store.list(Page::All { after: 0, limit: 2 }).await.expect("page");
    let rest = store.list(Page::All { after: first[1].seq, limit: 100 }).await.expect("page");
    assert_eq!(first.len() + rest.len(), 4);
    let mine = store.list(Page::Below { creator: root_id, after: 0, limit: 100 }).await.expect("below");
    assert_eq!(mine.len(), 2);
    let granting = store.list(Page::Granting { paths: vec!["secret".into()], after: 0, limit: 100 }).await.expect("g");
    assert_eq!(granting.len(), 1);

    // Cascade revocation: the root and everything below, once.
    let before = store.revision().await.expect("revision");
    let revoked = store.revoke(root_id, None, "test".into()).await.expect("revoke");
    assert_eq!(revoked.len(), 3, "root, child, grandchild");
    for h in [root_hash, child_hash, grand_hash] {
        assert!(revoked.contains(&h));
        assert!(matches!(store.lookup(h, None).await.expect("lookup"), Lookup::Revoked));
    }
    assert!(matches!(store.lookup(other_hash, None).await.expect("lookup"), Lookup::Found(_)), "unrelated stays");
    let (after, touched) = store.changes_since(before, None).await.expect("changes");
    assert!(after > before);
    for h in [root_hash, child_hash, grand_hash] {
        assert!(touched.contains(&Change { hash: h, narrowing: true }), "every revoked token is in the change log");
    }
    assert!(
        store.revoke(root_id, None, "test".into()).await.expect("again").is_empty(),
        "revoking twice changes nothing"
    );
    // Nothing is made from a revoked token (a create racing the revocation).
    let (late, _) = new_token(Some(child_id), vec![spec("osm", Tier::View)]);
    let err = store.create(late).await.expect_err("refused");
    assert!(matches!(err, tilegate::store::StoreError::CreatorRevoked), "{err:?}");
    assert_eq!(store.revision().await.expect("revision"), after, "a revoke that changed nothing is no revision");

    // The audit trail.
    let audit = store.audit(Some(child_id), None).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["create", "create", "revoke"], "its own creation, the grandchild it made, its revocation");
    assert!(audit[2].detail.contains("\"cascade\":true"), "{}", audit[2].detail);
    assert_eq!(store.audit(None, None).await.expect("audit").len(), 4 + 3);

    // Health: reads and writes worked.
    store.probe_write(None).await.expect("write probe");
    let report = store.health().report();
    assert_eq!((report.read, report.write), (State::Ok, State::Ok));
}

#[tokio::test]
async fn the_store_suite_passes_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.db")).expect("open");
    suite(store).await;
}

#[tokio::test]
async fn the_store_suite_passes_on_postgres() {
    let Some(base) = pg::base_url("the_store_suite_passes_on_postgres") else { return };
    let url = pg::fresh_database(&base).await;
    let store = connect(&url, "").await;
    suite(store).await;
}

/// A PostgreSQL store from a `[store]` table (`url` plus `extra` lines).
async fn connect(url: &str, extra: &str) -> Store {
    let text = format!("[store]\nurl = \"{url}\"\npool_size = 4\n{extra}");
    let config = tilegate::config::parse(&text, std::path::Path::new(".")).expect("config");
    Store::connect(&config.store).await.unwrap_or_else(|e| panic!("connect: {}", tilegate::respond::ErrorChain(&e)))
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let Some(base) = pg::base_url("nodes_starting_together_migrate_once") else { return };
    let url = pg::fresh_database(&base).await;
    let stores = futures_util::future::join_all((0..6).map(|_| connect(&url, ""))).await;
    assert_eq!(stores.len(), 6);
    assert_eq!(pg::query_i64(&url, "SELECT count(*) FROM tilegate_schema").await, 1);
    assert_eq!(pg::query_i64(&url, "SELECT count(*) FROM revision").await, 1);
}

#[tokio::test]
async fn tls_to_postgres_verifies_the_server_certificate() {
    let Some(base) = pg::base_url("tls_to_postgres_verifies_the_server_certificate") else { return };
    let url = pg::fresh_database(&base).await.replace("sslmode=disable", "sslmode=require");
    let dir = tempfile::tempdir().expect("tempdir");
    // Without the cluster's certificate as a root, the connection is refused.
    let text = format!("[store]\nurl = \"{url}\"\n");
    let config = tilegate::config::parse(&text, dir.path()).expect("config");
    let err = Store::connect(&config.store).await.err().expect("an unknown certificate is refused");
    let chain = tilegate::respond::ErrorChain(&err).to_string();
    assert!(chain.contains("store.url"), "{chain}");
    let ca = std::env::var("TILEGATE_TEST_PG_CA")
        .expect("TILEGATE_TEST_PG_CA (the test cluster's CA; scripts/test sets it with TILEGATE_TEST_PG_URL)");
    let store = connect(&url, &format!("ca_file = \"{ca}\"\n")).await;
    suite(store).await;
}

#[tokio::test]
async fn the_password_comes_from_a_file_or_the_environment_and_is_never_shown() {
    let Some(base) = pg::base_url("the_password_comes_from_a_file_or_the_environment") else { return };
    let url = pg::fresh_database(&base).await;
    let (head, rest) = url.split_once('@').expect("user@host");
    let (user, password) = head.trim_start_matches("postgres://").split_once(':').expect("user:password");
    let bare = format!("postgres://{user}@{rest}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pw"), format!("{password}\n")).expect("write");
    let text = format!("[store]\nurl = \"{bare}\"\npassword_file = \"pw\"\n");
    let config = tilegate::config::parse(&text, dir.path()).expect("config");
    assert!(!format!("{config:?}").contains(password), "Debug never shows the password");
    Store::connect(&config.store).await.expect("connect with the password file");
    // SAFETY (test): the variable name is unique to this test.
    unsafe { std::env::set_var("TILEGATE_TEST_PG_PASSWORD_ENV", password) };
    let text = format!("[store]\nurl = \"{bare}\"\npassword_env = \"TILEGATE_TEST_PG_PASSWORD_ENV\"\n");
    let config = tilegate::config::parse(&text, dir.path()).expect("config");
    let store = Store::connect(&config.store).await.expect("connect with the env password");
    assert!(!store.describe().contains(password), "{}", store.describe());
    // A wrong password names the keys to check, and never the password.
    let text = format!("[store]\nurl = \"postgres://{user}:wrong-{password}@{rest}\"\n");
    let config = tilegate::config::parse(&text, dir.path()).expect("config");
    let err = Store::connect(&config.store).await.err().expect("refused");
    let chain = tilegate::respond::ErrorChain(&err).to_string();
    assert!(chain.contains("store.url") && chain.contains("store.password_file"), "{chain}");
    assert!(!chain.contains(password), "{chain}");
}

#[test]
fn store_config_errors_name_the_key_and_never_echo_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = |text: &str| tilegate::config::parse(text, dir.path()).expect_err("refused").to_string();
    let both = err("[store]\npath = \"a.db\"\nurl = \"postgres://u@h/db\"\n");
    assert!(both.contains("store.path") && both.contains("keep one"), "{both}");
    let bad = err("[store]\nurl = \"mysql://u:hunter2@h/db\"\n");
    assert!(bad.contains("store.url") && !bad.contains("hunter2"), "{bad}");
    let twice = err("[store]\nurl = \"postgres://u:hunter2@h/db\"\npassword_env = \"X\"\n");
    assert!(twice.contains("more than once") && !twice.contains("hunter2"), "{twice}");
    let stray = err("[store]\npath = \"a.db\"\npassword_file = \"pw\"\n");
    assert!(stray.contains("store.password_file") && stray.contains("only used with `store.url`"), "{stray}");
    let stale = err("[store]\nmax_stale = \"0s\"\n");
    assert!(stale.contains("store.max_stale"), "{stale}");
}

/// Issue 19 (6): another process holds the SQLite WAL lock bytes. `/readyz` must
/// answer 503 at once (the probe is not waited for), cached tokens keep being
/// served (within `store.max_stale`), an unknown token is 503 — not 401.
#[tokio::test]
async fn readyz_answers_at_once_while_another_process_locks_the_sqlite_file() {
    let gw = TestGateway::with_config(&format!("{CONFIG}[ops]\nlisten = \"127.0.0.1:0\"\n").replace(
        "[store]\npath = \"tilegate.db\"",
        "[store]\npath = \"tilegate.db\"\nmax_stale = \"10m\"\nquery_timeout = \"500ms\"",
    ))
    .await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops listener");
    let token = gw.token(&[("osm", Tier::View)]).await;
    assert_eq!(gw.get("/ogc/xyz/osm/1/0/0.png", &token).await.status, StatusCode::OK, "cached now");
    let (status, _) = get(ops, "/readyz").await;
    assert_eq!(status, StatusCode::OK);

    let shm = gw.dir.path().join("tilegate.db-shm");
    assert!(shm.exists(), "WAL mode keeps a shared-memory file");
    let mut locker = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl, os, sys, time\n\
             fd = os.open(sys.argv[1], os.O_RDWR)\n\
             fcntl.lockf(fd, fcntl.LOCK_EX, 8, 120, 0)\n\
             print('locked', flush=True)\n\
             time.sleep(600)\n",
        )
        .arg(&shm)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(locker.stdout.as_mut().expect("stdout")), &mut line)
        .expect("read");
    assert_eq!(line.trim(), "locked");

    // Readiness turns 503 and every answer comes at once.
    let body = eventually(Duration::from_secs(30), "/readyz to report the store unreadable", || async {
        let t = Instant::now();
        let (status, body) = get(ops, "/readyz").await;
        assert!(t.elapsed() < Duration::from_secs(1), "/readyz took {:?}", t.elapsed());
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_ne!(json["store"]["read"], "ok", "{json}");
    assert_eq!(json["status"], "store unavailable", "{json}");

    // The cached token is still served; an unknown one is 503, not 401.
    assert_eq!(gw.get("/ogc/xyz/osm/1/0/0.png", &token).await.status, StatusCode::OK, "cached grant served");
    let stranger = unknown_token();
    let r = gw.get("/ogc/xyz/osm/1/0/0.png", &stranger).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"), "{}", r.text());

    // The metrics count the failures by kind.
    let scrape = crate::support::ops::scrape(ops).await;
    let failures: f64 = scrape
        .series
        .iter()
        .filter(|(k, _)| k.starts_with("tilegate_store_failures_total{op=\"read\""))
        .map(|(_, v)| v)
        .sum();
    assert!(failures >= 1.0, "store failures are counted: {:?}", scrape.series.keys().collect::<Vec<_>>());

    let _ = locker.kill();
    let _ = locker.wait();
    eventually(Duration::from_secs(60), "/readyz to recover once the lock is gone", || async {
        (get(ops, "/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
}

/// Issue 19 (8): a read-only store file stops the start with an error naming
/// `store.path` and what to fix.
#[tokio::test]
async fn a_read_only_store_file_names_store_path_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ro.db");
    drop(Store::open(&db).expect("create"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n", db.display()))
        .expect("write");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"));
    cmd.arg("--config").arg(&config).arg("serve");
    let out = if is_root() {
        // root may write a read-only file: run as `nobody`, who may not.
        let _ = std::process::Command::new("chmod").arg("755").arg(dir.path()).status();
        let _ = std::process::Command::new("chmod").arg("444").arg(&db).status();
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_tilegate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .output()
            .expect("run")
    } else {
        let _ = std::process::Command::new("chmod").arg("444").arg(&db).status();
        cmd.output().expect("run")
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a read-only store must not start: {stderr}");
    assert!(stderr.contains("store.path"), "the error names the key: {stderr}");
    assert!(stderr.contains("writable"), "and the fix: {stderr}");
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Issue 19 (7): the store can be read but not written (here another process holds
/// SQLite's write lock, as a full disk or a stuck writer would leave it). `/readyz`
/// must say so (`store.write` failing while `store.read` is ok) instead of `ok`, a
/// create answers 503 and writes nothing, and tokens keep working.
#[tokio::test]
async fn readyz_reports_a_store_that_can_be_read_but_not_written() {
    let gw = TestGateway::with_config(
        &format!("{CONFIG}[ops]\nlisten = \"127.0.0.1:0\"\n")
            .replace("[store]\npath = \"tilegate.db\"", "[store]\npath = \"tilegate.db\"\nquery_timeout = \"500ms\""),
    )
    .await;
    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops listener");
    let root = gw.token(&[("world", Tier::Admin)]).await;
    assert_eq!(gw.get("/ogc/xyz/osm/1/0/0.png", &root).await.status, StatusCode::OK);
    let (status, _) = get(ops, "/readyz").await;
    assert_eq!(status, StatusCode::OK);

    let db = gw.dir.path().join("tilegate.db");
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('holding', flush=True)\n\
             time.sleep(600)\n",
        )
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(writer.stdout.as_mut().expect("stdout")), &mut line)
        .expect("read");
    assert_eq!(line.trim(), "holding");

    let before: i64 = count_tokens(&db);
    let body = serde_json::json!({ "accessList": [{ "pathId": "osm", "access": { "accessTier": "view" } }], "description": "during the lock" });
    let r = gw.api(http::Method::POST, "/account/security/accessToken", &root, Some(body)).await;
    assert_eq!((r.status, r.reason().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"), "{}", r.text());

    let json = eventually(Duration::from_secs(30), "/readyz to report the store unwritable", || async {
        let (status, body) = get(ops, "/readyz").await;
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        (status == StatusCode::SERVICE_UNAVAILABLE && json["store"]["write"] != "ok").then_some(json)
    })
    .await;
    assert_eq!(json["store"]["read"], "ok", "reads still work: {json}");
    assert_eq!(gw.get("/ogc/xyz/osm/1/0/0.png", &root).await.status, StatusCode::OK, "tokens keep working");

    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(count_tokens(&db), before, "the refused create wrote nothing");
    eventually(Duration::from_secs(60), "/readyz to recover once the writer is gone", || async {
        (get(ops, "/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
}

fn count_tokens(db: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(db).expect("open");
    c.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    c.query_row("SELECT count(*) FROM tokens", [], |r| r.get(0)).expect("count")
}
