//! A fixed-rate HTTP/1.1 load generator for M2 (added latency at a fixed rate), in the
//! spirit of wrk2 / `oha -q … --latency-correction`, with nothing but std.
//!
//! `loadgen --addr HOST:PORT --path P [--header 'K: V']... [--rate 10000] [--connections 32]
//!          [--duration 10] [--warmup 1] [--expect 200] [--tokens FILE] [--requests N]`
//!
//! `--tokens FILE` sends `Authorization: Bearer <line>` rotating over the file's lines.
//! `--rate 0 --requests N` is a closed loop instead: every connection sends as soon as it
//! is idle, N requests in all, then it exits (the M4 fill: each of N tokens exactly once).
//!
//! Request k is due at `t0 + k / rate`. A due request goes out on the next idle keep-alive
//! connection; when none is idle it waits, and its latency still counts from the time it
//! was due (latency correction, so a stalled server cannot hide behind the schedule).
//! One thread busy-polls non-blocking sockets: timers would round to the millisecond,
//! and the load generator owns its core (taskset -c 0) anyway. Prints one JSON object.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Conn {
    stream: TcpStream,
    /// When the in-flight request was due; `None` when idle.
    due: Option<Instant>,
    buf: Vec<u8>,
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// `Some((status, total_len))` once `buf` holds a whole response.
fn complete(buf: &[u8]) -> Option<(u16, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let mut len = None;
    let mut chunked = false;
    for line in head.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    if chunked {
        return buf[head_end..].ends_with(b"0\r\n\r\n").then_some((status, buf.len()));
    }
    let total = head_end + len.unwrap_or(0);
    (buf.len() >= total).then_some((status, total))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut path, mut headers) = (String::new(), String::from("/"), Vec::<String>::new());
    let (mut rate, mut conns, mut duration, mut warmup, mut expect) = (10_000f64, 32usize, 10f64, 1f64, 200u16);
    let (mut tokens, mut max_requests) = (None::<String>, u64::MAX);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--addr" => addr = v,
            "--path" => path = v,
            "--header" => headers.push(v),
            "--rate" => rate = v.parse().expect("--rate"),
            "--connections" => conns = v.parse().expect("--connections"),
            "--duration" => duration = v.parse().expect("--duration"),
            "--warmup" => warmup = v.parse().expect("--warmup"),
            "--expect" => expect = v.parse().expect("--expect"),
            "--tokens" => tokens = Some(v),
            "--requests" => max_requests = v.parse().expect("--requests"),
            _ => panic!("unknown argument {a}"),
        }
    }
    let build = |extra: Option<&str>| -> Vec<u8> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for h in headers.iter().map(String::as_str).chain(extra) {
            request.push_str(h);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.into_bytes()
    };
    let requests: Vec<Vec<u8>> = match &tokens {
        Some(file) => std::fs::read_to_string(file)
            .expect("--tokens")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|t| build(Some(&format!("Authorization: Bearer {t}"))))
            .collect(),
        None => vec![build(None)],
    };
    let closed_loop = rate <= 0.0;
    if closed_loop {
        warmup = 0.0;
        duration = 3600.0;
    }

    let mut pool: Vec<Conn> = (0..conns)
        .map(|_| Conn { stream: connect(&addr).expect("connect"), due: None, buf: Vec::with_capacity(4096) })
        .collect();
    let period = if closed_loop { Duration::ZERO } else { Duration::from_secs_f64(1.0 / rate) };
    let t0 = if closed_loop { Instant::now() } else { Instant::now() + Duration::from_millis(20) };
    let measure_from = t0 + Duration::from_secs_f64(warmup);
    let stop_sending = measure_from + Duration::from_secs_f64(duration);
    let mut next = 0u64;
    let mut lat_ns: Vec<u64> = Vec::with_capacity((rate * duration * 1.1) as usize);
    let (mut ok, mut bad_status, mut errors, mut sent) = (0u64, 0u64, 0u64, 0u64);
    let mut chunk = [0u8; 65536];
    let mut idle: Vec<usize> = (0..conns).collect();
    loop {
        let now = Instant::now();
        // Hand every due request to an idle connection.
        while now < stop_sending && sent < max_requests {
            let due = if closed_loop { now } else { t0 + period * (next as u32) };
            if due > now || idle.is_empty() {
                break;
            }
            let i = idle.pop().expect("idle");
            let c = &mut pool[i];
            match c.stream.write_all(&requests[(next % requests.len() as u64) as usize]) {
                Ok(()) => {
                    c.due = Some(due);
                    sent += 1;
                    next += 1;
                }
                Err(_) => {
                    errors += 1;
                    c.stream = connect(&addr).expect("reconnect");
                    idle.push(i);
                }
            }
        }
        let busy = conns - idle.len();
        if now >= stop_sending && (busy == 0 || now > stop_sending + Duration::from_secs(2)) {
            break;
        }
        if sent >= max_requests && busy == 0 {
            break;
        }
        for (i, c) in pool.iter_mut().enumerate() {
            let Some(due) = c.due else { continue };
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    errors += 1;
                    c.due = None;
                    c.buf.clear();
                    c.stream = connect(&addr).expect("reconnect");
                    idle.push(i);
                }
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    if let Some((status, total)) = complete(&c.buf) {
                        let done = Instant::now();
                        if due >= measure_from {
                            lat_ns.push(done.duration_since(due).as_nanos() as u64);
                            if status == expect {
                                ok += 1;
                            } else {
                                bad_status += 1;
                            }
                        }
                        c.buf.drain(..total);
                        c.due = None;
                        idle.push(i);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    errors += 1;
                    c.due = None;
                    c.buf.clear();
                    c.stream = connect(&addr).expect("reconnect");
                    idle.push(i);
                }
            }
        }
    }
    lat_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_ns.is_empty() {
            return f64::NAN;
        }
        let idx = ((p / 100.0) * (lat_ns.len() as f64)).ceil() as usize;
        lat_ns[idx.clamp(1, lat_ns.len()) - 1] as f64 / 1e6
    };
    let measured = lat_ns.len() as f64;
    let elapsed = t0.elapsed().as_secs_f64() - warmup;
    if closed_loop {
        duration = elapsed;
    }
    let lost = if closed_loop { 0 } else { (rate * duration) as i64 - measured as i64 };
    println!(
        "{{\"rate\":{rate},\"connections\":{conns},\"duration_s\":{duration},\"sent\":{sent},\"measured\":{},\"ok\":{ok},\"bad_status\":{bad_status},\"errors\":{errors},\"unsent_or_late\":{lost},\"p50_ms\":{:.4},\"p90_ms\":{:.4},\"p99_ms\":{:.4},\"p999_ms\":{:.4},\"max_ms\":{:.4},\"achieved_rps\":{:.1}}}",
        lat_ns.len(),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0),
        measured / duration
    );
}
