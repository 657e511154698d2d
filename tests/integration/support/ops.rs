//! Helpers for the operations tests: a one-shot HTTP client for the ops
//! listener, a small Prometheus text parser, waiting for a condition, and the
//! real `tilegate` binary as a subprocess.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// GET `path` from `addr` over a fresh cleartext connection; (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    send(addr, Method::GET, path, &[]).await
}

/// One request over a fresh cleartext connection; (status, body).
pub async fn send(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(Duration::from_secs(20), client.request(req.body(Full::default()).expect("req")))
        .await
        .expect("answers in time")
        .expect("request");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits until `check` returns `Some`, polling every 50 ms, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A parsed Prometheus text exposition: series (`name{labels}` exactly as
/// written) → value, and metric name → declared type.
#[derive(Debug, Default)]
pub struct Scrape {
    pub series: HashMap<String, f64>,
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// Parses and checks the text format: `# HELP`/`# TYPE` comments, then
    /// `name{label="value",…} number` lines whose metric family was declared;
    /// histogram buckets are cumulative and end with `+Inf` equal to `_count`.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut out = Scrape::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                            return Err(format!("line {n}: unknown type `{kind}`"));
                        }
                        out.types.insert(name.to_owned(), kind.to_owned());
                    }
                    (Some("HELP"), Some(_), _) => {}
                    _ => return Err(format!("line {n}: malformed comment `{line}`")),
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').ok_or_else(|| format!("line {n}: no value: `{line}`"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| format!("line {n}: `{v}` is not a number"))?,
            };
            let name = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').ok_or_else(|| format!("line {n}: unclosed labels"))?;
                    for pair in split_labels(labels) {
                        let (k, v) = pair.split_once('=').ok_or_else(|| format!("line {n}: bad label `{pair}`"))?;
                        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                            return Err(format!("line {n}: bad label name `{k}`"));
                        }
                        if !(v.len() >= 2 && v.starts_with('"') && v.ends_with('"')) {
                            return Err(format!("line {n}: label value not quoted: `{v}`"));
                        }
                    }
                    name
                }
                None => series,
            };
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| out.types.contains_key(*f))
                .unwrap_or(name);
            if !out.types.contains_key(family) && !out.types.contains_key(name) {
                return Err(format!("line {n}: `{name}` has no # TYPE line before it"));
            }
            if out.series.insert(series.to_owned(), value).is_some() {
                return Err(format!("line {n}: series `{series}` appears twice"));
            }
        }
        out.check_histograms()?;
        Ok(out)
    }

    fn check_histograms(&self) -> Result<(), String> {
        let mut buckets: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        for (series, value) in &self.series {
            let Some((name, labels)) = series.split_once("_bucket{") else { continue };
            let labels = split_labels(labels.trim_end_matches('}'));
            let le = labels
                .iter()
                .find_map(|l| l.strip_prefix("le=\""))
                .map(|v| v.trim_end_matches('"'))
                .ok_or_else(|| format!("`{series}` has no le label"))?;
            let le: f64 =
                if le == "+Inf" { f64::INFINITY } else { le.parse().map_err(|_| format!("bad le in `{series}`"))? };
            let others: Vec<&str> = labels.into_iter().filter(|l| !l.starts_with("le=")).collect();
            let key = format!("{name}{{{}}}", others.join(","));
            buckets.entry(key).or_default().push((le, *value));
        }
        for (key, mut b) in buckets {
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            if b.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("histogram `{key}` buckets are not cumulative: {b:?}"));
            }
            if b.last().map(|l| l.0) != Some(f64::INFINITY) {
                return Err(format!("histogram `{key}` has no +Inf bucket"));
            }
        }
        Ok(())
    }

    /// The value of a series, 0 when absent (a counter not yet incremented).
    pub fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }
}

fn split_labels(labels: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

/// Scrapes `/metrics` from an ops listener.
pub async fn scrape(ops: SocketAddr) -> Scrape {
    let (status, text) = get(ops, "/metrics").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    Scrape::parse(&text).unwrap_or_else(|e| panic!("/metrics is not valid Prometheus text: {e}\n{text}"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The real `tilegate serve` as a subprocess.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub stderr: PathBuf,
}

impl Binary {
    /// Runs `tilegate --config CONFIG serve` and waits until it accepts connections.
    pub async fn serve(config: &Path, addr: SocketAddr) -> Binary {
        let stderr = config.with_extension("stderr.log");
        let log = std::fs::File::create(&stderr).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tilegate"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tilegate");
        let bin = Binary { child, addr, config: config.to_path_buf(), stderr };
        eventually(Duration::from_secs(20), "the binary to accept connections", || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        bin
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{name} failed");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `tilegate` command with `config`; its stdout (panics on failure).
pub fn cli(config: &Path, args: &[&str]) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_tilegate")).arg("--config").arg(config).args(args).output().expect("run");
    assert!(out.status.success(), "tilegate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// Creates a root token in `store` granting `access`; the secret.
pub async fn mint(store: &tilegate::store::Store, access: &[(&str, tilegate::policy::Tier)]) -> String {
    use tilegate::admin::{mint, Minter};
    use tilegate::store::{now_unix, AccessSpec};
    let access = access
        .iter()
        .map(|(p, t)| AccessSpec { path_id: (*p).into(), tier: *t, fence: Default::default(), properties: None })
        .collect();
    let minted = mint(
        "tg",
        "test".into(),
        tilegate::policy::Scope::All,
        now_unix(),
        None,
        access,
        Minter { creator: None, client: "test".into() },
    )
    .expect("randomness");
    store.create(minted.row).await.expect("create");
    minted.secret.expose().to_owned()
}
