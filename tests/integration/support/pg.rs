//! PostgreSQL for the store tests: the cluster `scripts/test` starts
//! (`scripts/pg-cluster`, URL in `TILEGATE_TEST_PG_URL`), a fresh database per
//! test, and private clusters for the tests that stop the server.
//!
//! Without `TILEGATE_TEST_PG_URL` the PostgreSQL tests fail and say how to get
//! one (`scripts/test` always sets it): a test that passes without running proves
//! nothing.

use std::path::PathBuf;
use std::process::Command;

/// The test cluster's URL; a test without one fails, naming how to get one.
///
/// (`Option` so the call sites read `let Some(base) = … else { return }`; it is
/// never `None`.)
pub fn base_url(test: &str) -> Option<String> {
    match std::env::var("TILEGATE_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => panic!(
            "{test} needs PostgreSQL: run it through scripts/test, which starts a throwaway \
             cluster (scripts/pg-cluster), or set TILEGATE_TEST_PG_URL (and TILEGATE_TEST_PG_CA)"
        ),
    }
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let head = match head.rfind('/') {
        Some(i) if i > "postgres://".len() => &head[..i],
        _ => head,
    };
    match query {
        Some(q) => format!("{head}/{db}?{q}"),
        None => format!("{head}/{db}"),
    }
}

/// Runs SQL on `url` (a short-lived connection).
pub async fn execute(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    drop(client);
    let _ = task.await;
}

/// One value from a query on `url`.
pub async fn query_i64(url: &str, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    let task = tokio::spawn(conn);
    let v: i64 = client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("`{sql}`: {e}")).get(0);
    drop(client);
    let _ = task.await;
    v
}

/// A new, empty database on the test cluster; its URL.
pub async fn fresh_database(base: &str) -> String {
    let name = format!("tg_{}", uuid::Uuid::new_v4().simple());
    execute(base, &format!("CREATE DATABASE {name}")).await;
    with_database(base, &name)
}

/// A private cluster (for tests that stop the server); stopped and removed on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster")
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("tg-pg-{}", uuid::Uuid::new_v4().simple()));
        let out = Command::new(script()).arg("start").arg(&dir).output().expect("run scripts/pg-cluster");
        assert!(out.status.success(), "pg-cluster start: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Cluster { dir, url }
    }

    fn run(&self, what: &str) {
        let out = Command::new(script()).arg(what).arg(&self.dir).output().expect("run scripts/pg-cluster");
        assert!(out.status.success(), "pg-cluster {what}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server (the data stays).
    pub fn pause(&self) {
        self.run("pause");
    }

    pub fn resume(&self) {
        self.run("resume");
    }

    /// The cluster's CA certificate (the root to trust for TLS).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
    }
}

/// True when PostgreSQL binaries are here (the private-cluster tests need them).
pub fn binaries() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|mut d| d.next().is_some())
        || Command::new("initdb").arg("--version").output().is_ok()
}
