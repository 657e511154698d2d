//! Saturation (issue 19): under a slowloris flood a legitimate client still gets
//! in; one address cannot take the listener; request bodies that trickle are
//! cut, whoever reads them; the connection-limit warnings do not flood the log
//! while the metrics count every event; and shutdown does not wait for
//! half-sent request heads.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::support::ops::{eventually, free_port, scrape};
use crate::support::{TestGateway, CONFIG};
use tilegate::policy::Tier;

const LONG: Duration = Duration::from_secs(30);

/// The test config with `server` lines added to `[server]`, `rest` appended and an
/// ops listener. The upstream may take its time: a slow body is the client's, and
/// `upstream.response_timeout` would cut it first.
fn config(server: &str, rest: &str) -> String {
    CONFIG
        .replacen("[server]\n", &format!("[server]\n{server}\n"), 1)
        .replace("response_timeout = \"1s\"", "response_timeout = \"60s\"")
        + rest
        + "\n[ops]\nlisten = \"127.0.0.1:0\"\n"
}

fn ops(gw: &TestGateway) -> SocketAddr {
    gw.running.as_ref().expect("running").ops_addr.expect("ops listener")
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is all loopback).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(to).await
}

/// A slowloris attacker: keeps `conns` connections from `from`, each sending a
/// request head one header line at a time and never finishing it; a connection
/// the gateway closes is opened again at once (as the real tools do).
fn slowloris(to: SocketAddr, from: Ipv4Addr, conns: usize, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    (0..conns)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect_from(from, to).await else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                        continue;
                    }
                    let mut buf = [0u8; 256];
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        tokio::select! {
                            // Not a wait for a condition: the pause between header
                            // lines is the attack.
                            () = tokio::time::sleep(Duration::from_millis(200)) => {
                                i += 1;
                                if s.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes()).await.is_err() {
                                    break;
                                }
                            }
                            r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                        }
                    }
                }
            })
        })
        .collect()
}

/// One request on a new connection from 127.0.0.1; whether it was answered 200.
async fn legit_request(to: SocketAddr) -> bool {
    let attempt = async {
        let mut s = connect_from(Ipv4Addr::LOCALHOST, to).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(10), attempt).await.ok().flatten().unwrap_or(false)
}

#[tokio::test]
async fn a_slowloris_flood_above_max_connections_does_not_starve_a_client_opening_a_connection_per_request() {
    slowloris_flood("").await;
}

/// The same flood against per-core workers (decision 85), where each worker is one
/// thread: with per-core as the default, the whole suite under load once let only 20
/// of 40 legitimate connections in. Not reproduced since (38–40 of 40 under four busy
/// loops); the suspected cause, an accept loop taking a flood's backlog up to tokio's
/// budget of 128 before the legitimate connection's task reads its head, is closed by
/// one accept per turn. Again 28 of 40 in session 8, under the whole suite: victims are
/// now ranked by how many connections their address holds before age, so the lone
/// legitimate client goes last.
#[tokio::test]
async fn a_slowloris_flood_does_not_starve_a_legitimate_client_of_per_core_workers() {
    slowloris_flood("runtime = \"per-core\"\nworkers = 2").await;
}

async fn slowloris_flood(runtime: &str) {
    // Several attacking addresses (each below the per-address cap, together far
    // above max_connections) and one greedy address above the cap.
    let gw = TestGateway::with_config(&config(
        &format!(
            "max_connections = 40\nmax_connections_per_ip = 12\nheader_read_timeout = \"30s\"\nidle_timeout = \"60s\"\n{runtime}"
        ),
        "",
    ))
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut attack = Vec::new();
    for n in 2..=7u8 {
        attack.extend(slowloris(gw.addr, Ipv4Addr::new(127, 0, 0, n), 12, stop.clone()));
    }
    attack.extend(slowloris(gw.addr, Ipv4Addr::new(127, 0, 0, 8), 40, stop.clone()));
    let ops = ops(&gw);
    eventually(LONG, "the flood to fill the listener and go beyond it", || async {
        let m = scrape(ops).await;
        let beyond =
            m.get("tilegate_connections_shed_total{state=\"head\"}") + m.get("tilegate_connections_refused_total");
        (m.get("tilegate_connections_open") >= 40.0 && beyond >= 20.0).then_some(())
    })
    .await;

    let tries = 40;
    let mut ok = 0;
    for _ in 0..tries {
        if legit_request(gw.addr).await {
            ok += 1;
        }
    }
    let m = scrape(ops).await;
    stop.store(true, Ordering::Relaxed);
    for t in attack {
        t.abort();
    }
    println!("{ok} of {tries} legitimate requests succeeded during the flood ({runtime})");
    assert!(ok * 10 >= tries * 8, "only {ok} of {tries} legitimate requests succeeded during the flood ({runtime})");
    assert!(m.get("tilegate_connections_shed_total{state=\"head\"}") > 0.0, "the flood was shed");
    assert!(m.get("tilegate_connections_refused_per_ip_total") > 0.0, "the greedy address was capped");
}

#[tokio::test]
async fn a_trusted_proxy_is_not_capped_per_address() {
    let gw = TestGateway::with_config(&config(
        "max_connections_per_ip = 2\ntrusted_proxies = [\"127.0.0.9\"]\nheader_read_timeout = \"30s\"",
        "",
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 9), gw.addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        held.push(s);
    }
    for _ in 0..3 {
        held.push(connect_from(Ipv4Addr::new(127, 0, 0, 10), gw.addr).await.expect("connect"));
    }
    let ops = ops(&gw);
    let m = eventually(LONG, "every connection to be admitted or refused", || async {
        let m = scrape(ops).await;
        (m.get("tilegate_connections_total") + m.get("tilegate_connections_refused_per_ip_total") >= 9.0).then_some(m)
    })
    .await;
    assert_eq!(m.get("tilegate_connections_refused_per_ip_total"), 1.0, "only the third from 127.0.0.10");
    assert_eq!(m.get("tilegate_connections_total"), 8.0, "all six from the trusted proxy");
}

/// Sends a request head declaring `len` body bytes, then the body one byte every
/// 200 ms. Returns how many body bytes were sent when the gateway closed the
/// connection (or `None` if it was still open after 20 s), and what it answered.
async fn trickle(to: SocketAddr, head: String, len: usize) -> (Option<usize>, String) {
    let mut s = TcpStream::connect(to).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write head");
    let (mut rd, mut wr) = s.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        for _ in 0..len {
            // The pause is the attack: one byte every 200 ms.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut answer)).await.is_ok();
    writer.abort();
    (closed.then(|| sent.load(Ordering::Relaxed)), String::from_utf8_lossy(&answer).into_owned())
}

const SLOW_BODY: &str = "body_read_timeout = \"1s\"\nbody_min_rate = 100";
const ROADS: &str = r#"
[[path]]
id = "roads"
kind = "vector"
layers = ["osm"]
[path.upstream]
wfs = "http://{up}/wfs"
"#;

#[tokio::test]
async fn request_bodies_trickling_one_byte_at_a_time_are_cut_whoever_reads_them() {
    let gw = TestGateway::with_config(&config(SLOW_BODY, ROADS)).await;
    let ops = ops(&gw);
    // A view-tier token is enough to send a WFS POST (read whole and judged).
    let viewer = gw.token(&[("roads", Tier::View)]).await;
    let wfs = format!(
        "POST /ogc/wfs/roads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {viewer}\r\nContent-Type: text/xml\r\nContent-Length: 400\r\n\r\n"
    );
    // The token API (read whole by the API).
    let admin = gw.token(&[("world", Tier::Admin)]).await;
    let api = format!(
        "POST /account/security/accessToken HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    );
    // A body streamed upstream as it arrives.
    let editor = gw.token(&[("places", Tier::Edit)]).await;
    let stream = format!(
        "POST /path/places/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {editor}\r\nContent-Length: 400\r\n\r\n"
    );
    let (a, b, c) = tokio::join!(trickle(gw.addr, wfs, 400), trickle(gw.addr, api, 400), trickle(gw.addr, stream, 400));
    for (name, (sent, answer)) in [("WFS POST", a), ("token API", b), ("streamed body", c)] {
        let sent = sent.unwrap_or_else(|| panic!("{name}: the trickling connection was still open after 20 s"));
        assert!(sent < 400, "{name}: cut before the body was complete ({sent} bytes sent): {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains("\"request_body_timeout\""),
            "{name}: the client is told why: {answer}"
        );
    }
    let m = scrape(ops).await;
    assert_eq!(m.get("tilegate_request_body_timeouts_total"), 3.0);
}

#[tokio::test]
async fn a_body_sent_steadily_above_the_minimum_rate_is_not_cut() {
    let gw = TestGateway::with_config(&config("body_read_timeout = \"2s\"\nbody_min_rate = 10", "")).await;
    let editor = gw.token(&[("places", Tier::Edit)]).await;
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let len = 20 * 100;
    s.write_all(
        format!("POST /path/places/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {editor}\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("head");
    for _ in 0..20 {
        // 1000 bytes a second, a hundred times the minimum rate, over two seconds.
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(&[b'x'; 100]).await.expect("the gateway keeps reading");
    }
    let mut answer = Vec::new();
    tokio::time::timeout(LONG, s.read_to_end(&mut answer)).await.expect("answered").expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = gw.upstream.last();
    assert_eq!((seen.method, seen.uri.as_str()), (http::Method::POST, "/places/items"), "forwarded once read whole");
}

#[tokio::test]
async fn shutdown_with_half_sent_request_heads_does_not_wait_for_the_header_read_timeout() {
    let mut gw = TestGateway::with_config(&config("header_read_timeout = \"30s\"\nidle_timeout = \"60s\"", "")).await;
    let ops = ops(&gw);
    let mut heads = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(gw.addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ").await.expect("write");
        heads.push(s);
    }
    // And one idle keep-alive after a served request.
    let mut idle = TcpStream::connect(gw.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    eventually(LONG, "six connections open", || async {
        (scrape(ops).await.get("tilegate_connections_open") >= 6.0).then_some(())
    })
    .await;

    let running = gw.running.take().expect("running");
    tokio::time::timeout(Duration::from_secs(10), running.shutdown(Duration::from_secs(60)))
        .await
        .expect("shutdown finished well within header_read_timeout (30 s) and the grace (60 s)");
    for mut s in heads.into_iter().chain([idle]) {
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("closed");
        assert!(matches!(r, Ok(0) | Err(_)), "the connection was closed without an answer");
    }
}

/// `tilegate serve` with its stderr in a file.
struct Binary {
    child: Child,
    addr: SocketAddr,
    ops: SocketAddr,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    async fn start(server: &str) -> Binary {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, ops_port) = (free_port(), free_port());
        let text = CONFIG.replace("{up}", "127.0.0.1:9").replacen(
            "[server]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n"),
            1,
        ) + &format!("[ops]\nlisten = \"127.0.0.1:{ops_port}\"\n");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).expect("write config");
        let stderr = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tilegate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .expect("spawn tilegate");
        let ops: SocketAddr = format!("127.0.0.1:{ops_port}").parse().expect("addr");
        eventually(LONG, "the binary to serve", || async { TcpStream::connect(ops).await.ok().map(|_| ()) }).await;
        Binary { child, addr: format!("127.0.0.1:{port}").parse().expect("addr"), ops, stderr, _dir: dir }
    }

    fn lines(&self, needle: &str) -> Vec<String> {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        // Without the colour codes (`count=149` is written with them between).
        let mut plain = String::new();
        let mut in_escape = false;
        for c in log.chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (false, c) => plain.push(c),
                _ => {}
            }
        }
        plain.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_connection_limit_warnings_are_summarised_while_the_metrics_count_every_event() {
    let gw = Binary::start("max_connections = 5\nmax_connections_per_ip = 3\nheader_read_timeout = \"30s\"").await;
    // 3 held from one address, 150 more refused by the per-address cap.
    let mut held = Vec::new();
    for _ in 0..153 {
        if let Ok(s) = connect_from(Ipv4Addr::new(127, 0, 0, 20), gw.addr).await {
            held.push(s);
        }
    }
    // Every one of them judged before the next batch: with several workers the accept
    // order across batches is the kernel's, and a shed connection of the first batch
    // would free its address's place for a later one.
    eventually(LONG, "the first batch judged", || async {
        let m = scrape(gw.ops).await;
        (m.get("tilegate_connections_total") + m.get("tilegate_connections_refused_per_ip_total") >= 153.0)
            .then_some(())
    })
    .await;
    // 200 from other addresses: each beyond max_connections sheds one.
    for i in 0..200u32 {
        // One connection per address, so the per-address cap never applies to them.
        let from = Ipv4Addr::new(127, 0, 1 + (i / 200) as u8, (i % 200) as u8 + 1);
        if let Ok(mut s) = connect_from(from, gw.addr).await {
            let _ = s.write_all(b"GET / HTTP/1.1\r\n").await;
            held.push(s);
        }
    }
    let m = eventually(LONG, "every connection counted", || async {
        let m = scrape(gw.ops).await;
        let seen = m.get("tilegate_connections_total") + m.get("tilegate_connections_refused_per_ip_total");
        (seen >= 353.0).then_some(m)
    })
    .await;
    assert_eq!(m.get("tilegate_connections_refused_per_ip_total"), 150.0, "every refusal counted");
    // 203 admitted into 5 places: every one after the fifth shed one.
    assert_eq!(m.get("tilegate_connections_shed_total{state=\"head\"}"), 198.0, "every shed counted");

    let per_ip = gw.lines("per-address connection limit reached");
    let shed = gw.lines("connection limit reached; shed");
    assert!(
        (1..=2).contains(&per_ip.len()) && (1..=2).contains(&shed.len()),
        "one line, and at most one summary, per interval: {per_ip:#?} {shed:#?}"
    );
    // The events held back are written as one summary line with their count.
    let summary = eventually(LONG, "the summary line", || async {
        gw.lines("summary of the last interval").into_iter().find(|l| l.contains("per-address"))
    })
    .await;
    assert!(summary.contains("count=149"), "the first was written at once, the other 149 summarised: {summary}");
    drop(held);
    let status = crate::support::ops::get(gw.ops, "/healthz").await.0;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn at_the_limit_an_idle_keep_alive_is_shed_and_a_request_in_flight_never_is() {
    let gw = TestGateway::with_config(&config("max_connections = 2\nidle_timeout = \"60s\"", "")).await;
    let ops = ops(&gw);
    let token = gw.token(&[("osm", Tier::ViewPlus)]).await;
    // A: a request in flight (the upstream's `/slow` answers after 3 s).
    let mut busy = TcpStream::connect(gw.addr).await.expect("connect");
    busy.write_all(
        format!("GET /path/osm/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    // B: an idle keep-alive after one answered request.
    let mut idle = TcpStream::connect(gw.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    eventually(LONG, "both connections open", || async {
        (scrape(ops).await.get("tilegate_connections_open") >= 2.0).then_some(())
    })
    .await;
    // C: a new client at the limit is served; B made room.
    assert!(legit_request(gw.addr).await, "the newcomer was admitted");
    let r = tokio::time::timeout(LONG, idle.read(&mut buf)).await.expect("B closed");
    assert!(matches!(r, Ok(0) | Err(_)), "the idle keep-alive was shed");
    let m = scrape(ops).await;
    assert_eq!(m.get("tilegate_connections_shed_total{state=\"idle\"}"), 1.0);
    let mut answer = Vec::new();
    tokio::time::timeout(LONG, busy.read_to_end(&mut answer)).await.expect("answered").expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "the request in flight finished: {}",
        String::from_utf8_lossy(&answer)
    );
}
