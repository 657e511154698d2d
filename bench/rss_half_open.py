#!/usr/bin/env python3
"""Resident memory per half-open connection (issue 19 item 5).

Starts `tilegate serve` (default: target/release/tilegate) with a long
header_read_timeout, opens N connections that each send half a request head
(cleartext, or over TLS with `--tls`), waits until the gateway counts them open
(`tilegate_connections_open` on the ops listener), and prints VmRSS before and
after, and the difference per connection. Not a timing: a memory measurement.

    bench/rss_half_open.py [--bin PATH] [--tls] [--head-bytes B] [-n 500] [-n 2000]
"""

import argparse
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_count(ops):
    text = urllib.request.urlopen(f"http://{ops}/metrics", timeout=5).read().decode()
    m = re.search(r"^tilegate_connections_open (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def wait_for(what, check, limit=60):
    start = time.time()
    while time.time() - start < limit:
        if check():
            return
        time.sleep(0.1)
    sys.exit(f"gave up waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tilegate")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("-n", type=int, action="append")
    ap.add_argument("--head-bytes", type=int, default=0,
                    help="send this many bytes of header line before stopping (a large half head)")
    args = ap.parse_args()
    counts = args.n or [500, 2000]
    with tempfile.TemporaryDirectory() as d:
        port, ops = free_port(), free_port()
        tls = ""
        if args.tls:
            subprocess.run([args.bin, "certs", "dev", "--out", f"{d}/certs"], check=True, capture_output=True)
            tls = f'[server.tls]\ncert = "{d}/certs/cert.pem"\nkey = "{d}/certs/key.pem"\nhandshake_timeout = "600s"\n'
            if not os.path.exists(f"{d}/certs/cert.pem"):
                names = os.listdir(f"{d}/certs")
                cert = next(n for n in names if "key" not in n and n.endswith(".pem"))
                key = next(n for n in names if "key" in n)
                tls = tls.replace("cert.pem", cert).replace("key.pem", key)
        config = f"""
[server]
listen = "127.0.0.1:{port}"
header_read_timeout = "600s"
idle_timeout = "600s"
max_connections = 100000
{tls}
[store]
path = "{d}/tilegate.db"
[ops]
listen = "127.0.0.1:{ops}"
[[path]]
id = "osm"
kind = "raster"
[path.upstream]
xyz = "http://127.0.0.1:9/{{z}}/{{x}}/{{y}}.png"
"""
        with open(f"{d}/config.toml", "w") as f:
            f.write(config)
        proc = subprocess.Popen([args.bin, "--config", f"{d}/config.toml", "serve"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for("the ops listener", lambda: _try(lambda: open_count(f"127.0.0.1:{ops}") == 0))
            time.sleep(0.5)
            base = rss_kib(proc.pid)
            print(f"{'tls' if args.tls else 'cleartext'}, {args.head_bytes} extra head bytes: idle gateway VmRSS {base} KiB")
            held = []
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            for n in counts:
                while len(held) < n:
                    s = socket.create_connection(("127.0.0.1", port))
                    if args.tls:
                        s = ctx.wrap_socket(s, server_hostname="localhost")
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: " + b"a" * args.head_bytes)
                    held.append(s)
                wait_for(f"{n} open", lambda: open_count(f"127.0.0.1:{ops}") >= n)
                time.sleep(0.5)
                rss = rss_kib(proc.pid)
                print(f"  {n:6} half-open: VmRSS {rss} KiB, +{rss - base} KiB, {(rss - base) * 1024 / n / 1024:.1f} KiB per connection")
            for s in held:
                s.close()
        finally:
            proc.kill()
            proc.wait()


def _try(f):
    try:
        return f()
    except Exception:
        return False


if __name__ == "__main__":
    main()
