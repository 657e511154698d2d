//! Heap allocations per forwarded request on the pass-through hot path, counted with a
//! counting global allocator (a count, not a timing: it is the same on a busy machine).
//!
//! The gateway runs on its own tokio runtime whose threads are the only ones counted;
//! the client and the upstream are plain `std` threads with reused buffers, so what is
//! counted is the gateway's work: hyper's server and client, the pipeline, the pool.
//! The pinned numbers are what the code does today; a change that adds an allocation
//! per request fails here and has to say why (and move the pin) in the same commit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

use tilegate::admin::{self, Minter};
use tilegate::policy::{Scope, Tier};
use tilegate::spatial::Fence;
use tilegate::store::{now_unix, AccessSpec};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the gateway runtime's threads (workers and the blocking pool).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged; counting touches no memory
// the allocator hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The upstream: 200 with a fixed 256-byte body on every request, keep-alive, no
/// allocation per request (one buffer per connection).
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut answer =
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 256\r\n\r\n".to_vec();
                answer.extend_from_slice(&[7u8; 256]);
                let mut buf = vec![0u8; 16 << 10];
                let mut filled = 0;
                loop {
                    match stream.read(&mut buf[filled..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    // GETs only: a request is its head.
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        if stream.write_all(&answer).is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                    }
                }
            });
        }
    });
    addr
}

/// A keep-alive client on one connection, with one reused buffer.
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Client {
    fn new(addr: SocketAddr, path: &str, token: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the gateway");
        stream.set_nodelay(true).expect("nodelay");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
        Client { stream, request: request.into_bytes(), buf: vec![0u8; 16 << 10] }
    }

    /// Sends the request once and reads the whole answer; returns its status.
    fn get(&mut self) -> u16 {
        self.stream.write_all(&self.request).expect("send");
        let mut filled = 0;
        loop {
            let n = self.stream.read(&mut self.buf[filled..]).expect("read");
            assert!(n > 0, "the gateway closed the connection");
            filled += n;
            let Some(head) = self.buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let text = std::str::from_utf8(&self.buf[..head]).expect("ASCII head");
            let len: usize = text
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .expect("a Content-Length");
            if filled >= head + 4 + len {
                assert_eq!(filled, head + 4 + len, "one answer per request");
                return text[9..12].parse().expect("status");
            }
        }
    }
}

// The multi-thread runtime, whose threads `on_thread_start` marks as counted: per-core
// worker threads are not that runtime's, so their allocations would go uncounted.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
runtime = "multi-thread"
workers = 1
public_url = "http://127.0.0.1"
[store]
path = "tilegate.db"
[[path]]
id = "world"
kind = "folder"
[[path]]
id = "osm"
parent = "world"
kind = "raster"
layers = ["osm"]
[path.upstream]
xyz = "http://{up}/tile.pbf?z={z}&x={x}&y={y}"
base = "http://{up}/"
"#;

/// Allocations per request on `path` (a warm cache, a warm upstream pool), over `n`
/// requests after a warm-up.
fn allocations_per_request(path: &str, n: u64) -> f64 {
    let up = upstream();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, CONFIG.replace("{up}", &up.to_string())).expect("write config");
    let config = tilegate::config::load(&config_path).unwrap_or_else(|e| panic!("config: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .build()
        .expect("runtime");
    let running = runtime.block_on(tilegate::server::start(config)).expect("gateway starts");
    let access = vec![AccessSpec {
        path_id: "osm".into(),
        tier: Tier::View,
        fence: Fence::new(Some(&[(5, 16, 10)]), Some(18)).expect("fence"),
        properties: None,
    }];
    let minted = admin::mint(
        "tg",
        "alloc".into(),
        Scope::All,
        now_unix(),
        None,
        access,
        Minter { creator: None, client: "test".into() },
    )
    .expect("randomness");
    let store = running.gateway.cache().store().clone();
    runtime.block_on(store.create(minted.row)).expect("create token");
    let mut client = Client::new(running.addr, path, minted.secret.expose());
    for _ in 0..500 {
        assert_eq!(client.get(), 200);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..n {
        assert_eq!(client.get(), 200);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    drop(client);
    runtime.block_on(running.shutdown(std::time::Duration::from_secs(1)));
    (after - before) as f64 / n as f64
}

/// XYZ tiles, the benchmark's request: token, cache, path, scope, tier, tile fence,
/// header hygiene, forward, relay.
#[test]
fn a_forwarded_tile_request_allocates_no_more_than_pinned() {
    let per_request = allocations_per_request("/ogc/xyz/osm/14/8292/5170.pbf", 2000);
    eprintln!("allocations per forwarded tile request: {per_request:.2}");
    // The background revocation poll (every 250 ms) adds a few per second; the
    // rounding absorbs it.
    assert!(per_request >= 4.0, "the counter must see hyper's own allocations: {per_request:.2}");
    assert!(per_request <= PINNED_XYZ + 0.5, "{per_request:.2} allocations per request, pinned at {PINNED_XYZ}");
}

/// 16 per forwarded tile request on the pool branch (25 with hyper-util's legacy client before the pool;
/// callgrind's malloc call counts agree). hyper's own: the two read buffers (`BytesMut`
/// split and reserve, server and client side: 4), the header-read timer (`TokioTimer`
/// boxes a `Sleep`), the server dispatcher's response future, the client's send
/// callback, one `Vec` growth (8 in all). The gateway's: the tile URL (`String`, then
/// `Uri`'s copy: 2), the normalised path, the request id, `X-Forwarded-For`, the
/// `X-Tilegate-Token-Id` value, the relayed body's box and the logging body's box (8).
/// 17 since the merge of the admission, store, clipping and error-format branches
/// (measured 17.01; the pool branch alone measured 16.03): the 17th is not yet attributed, so
/// it is pinned here rather than hidden, and is the first thing the next profile looks at.
/// 18 since the pipeline's future is boxed (decision 89): one allocation instead of
/// moving a state machine of several KB by value (~10k fewer instructions per request).
const PINNED_XYZ: f64 = 18.0;
