#!/usr/bin/env python3
"""Turns bench/run-x's raw measurements into one table (stdout) and one JSON file.

report_x.py META.json RAW.jsonl OUT.json

Figures (medians over rounds with min–max; ratios to nginx taken within each round):
  H0   plain HTTP/1.1 keep-alive CPU-s / 100k requests (bench/run's M1, in the same rounds)
  T1   TLS 1.3 keep-alive CPU-s / 100k requests, ECDSA and RSA; and T1 − H0 (what TLS adds)
  T2   full handshakes per second per core = handshakes ÷ the server's CPU-seconds
  H1   HTTP/2, 100 streams on one connection: CPU-s / 100k requests, h2c and h2 over TLS
  F1   MB (10^6 bytes) of upstream GeoJSON per CPU-second of the proxy
Exit status 1 when a run answered with the wrong status or errors, or did nothing.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, parse_wrk, summary  # noqa: E402

PROXIES = ["nginx", "haproxy", "tilegate"]


def parse_h2load(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"requests": 0, "ok": 0, "not_ok": 0, "failed": 0, "rps": None}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    if m:
        out["requests"] = int(m.group(3))
        out["failed"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        out["ok"] = int(m.group(1))
        out["not_ok"] = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    if m:
        out["rps"] = float(m.group(1))
    return out


def parse_stime(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    counts = re.findall(r"^(\d+) connections in (\d+) real seconds", text, re.M)
    return {"handshakes": sum(int(n) for n, _ in counts), "clients": len(counts),
            "errors": len(re.findall(r"^ERROR|error", text, re.M)),
            "wall_s": max((int(s) for _, s in counts), default=0)}


def main():
    meta = json.load(open(sys.argv[1]))
    rows = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
    out_path = sys.argv[3]
    tls = [json.loads(line) for line in open(meta["tls_file"]) if line.strip()] if os.path.exists(meta["tls_file"]) else []
    problems, data = [], {}
    for r in rows:
        key, cpu_s = (r["scenario"], r["contender"], r["round"]), r["cpu_ns"] / 1e9
        t = r.get("user_ticks", 0) + r.get("sys_ticks", 0)
        sys_share = 100.0 * r.get("sys_ticks", 0) / t if t else None
        if r["kind"] == "wrk":
            w = parse_wrk(r["out"])
            if w["requests"] == 0 or w["non2xx"] or w["socket_errors"]:
                problems.append(f"{r['contender']} {r['scenario']} round {r['round']}: {w['requests']} requests, "
                                f"{w['non2xx']} non-2xx, {w['socket_errors']} socket errors")
            m = {"n": w["requests"], "rps": w["rps"], "p99_ms": w["latency_ms"].get("99")}
        elif r["kind"] == "h2load":
            h = parse_h2load(r["out"])
            # h2load counts a stream answered as the time ran out in "2xx" but not in "done".
            if h["requests"] == 0 or h["failed"] or h["not_ok"] or h["ok"] < h["requests"]:
                problems.append(f"{r['contender']} {r['scenario']} round {r['round']}: {h['requests']} done, "
                                f"{h['ok']} 2xx, {h['not_ok']} other status, {h['failed']} failed")
            m = {"n": h["requests"], "rps": h["rps"]}
        else:
            s = parse_stime(r["out"])
            if s["handshakes"] == 0 or s["clients"] != meta["handshake_clients"]:
                problems.append(f"{r['contender']} {r['scenario']} round {r['round']}: {s['handshakes']} handshakes "
                                f"from {s['clients']} of {meta['handshake_clients']} s_time clients")
            m = {"n": s["handshakes"], "rps": s["handshakes"] / s["wall_s"] if s["wall_s"] else None}
        m["cpu_s"], m["sys_share_pct"] = cpu_s, sys_share
        m["cpu_s_per_100k"] = cpu_s / m["n"] * 1e5 if m["n"] else None
        if r["scenario"].startswith("hs-"):
            m["per_core_per_s"] = m["n"] / cpu_s if cpu_s else None
            m["cpu_us_each"] = cpu_s / m["n"] * 1e6 if m["n"] else None
        if r["scenario"].startswith("filter-"):
            m["mb_per_cpu_s"] = m["n"] * meta["filter_body_bytes"] / 1e6 / cpu_s if cpu_s else None
        data[key] = m
    rounds = sorted({r["round"] for r in rows})

    def series(scen, c, field):
        return [data[(scen, c, rd)].get(field) for rd in rounds if (scen, c, rd) in data]

    def ratio(scen, c, field, base="nginx"):
        vals = []
        for rd in rounds:
            a, b = data.get((scen, c, rd)), data.get((scen, base, rd))
            if a and b and a.get(field) and b.get(field):
                vals.append(a[field] / b[field])
        return summary(vals)

    def diff(scen, base_scen, c, field):
        vals = []
        for rd in rounds:
            a, b = data.get((scen, c, rd)), data.get((base_scen, c, rd))
            if a and b and a.get(field) is not None and b.get(field) is not None:
                vals.append(a[field] - b[field])
        return summary(vals)

    fig = {}
    scenarios = sorted({r["scenario"] for r in rows})
    for scen in scenarios:
        for c in sorted({r["contender"] for r in rows if r["scenario"] == scen}):
            for field in ["cpu_s_per_100k", "rps", "sys_share_pct", "per_core_per_s", "cpu_us_each", "mb_per_cpu_s", "p99_ms"]:
                vals = series(scen, c, field)
                if any(v is not None for v in vals):
                    fig.setdefault(f"{scen}.{field}", {})[c] = summary(vals)
    ratios = {}
    for scen in scenarios:
        field = "per_core_per_s" if scen.startswith("hs-") else "mb_per_cpu_s" if scen.startswith("filter-") else "cpu_s_per_100k"
        if scen.startswith("filter-"):
            continue
        for c in ["haproxy", "tilegate"]:
            ratios[f"{scen}.{field}.{c}_over_nginx"] = ratio(scen, c, field)
    tls_added = {}
    for k in ["ecdsa", "rsa"]:
        for c in PROXIES:
            s = diff(f"tls-{k}", "h1", c, "cpu_s_per_100k")
            if s:
                tls_added[f"{k}.{c}"] = s
    filt = {}
    for scen in ["pass", "props", "geom"]:
        vals = []
        for rd in rounds:
            a, b = data.get((f"filter-{scen}", "tilegate", rd)), data.get(("filter-pass", "nginx", rd))
            if a and b and a.get("mb_per_cpu_s") and b.get("mb_per_cpu_s"):
                vals.append(a["mb_per_cpu_s"] / b["mb_per_cpu_s"])
        filt[f"tilegate_{scen}_over_nginx_pass"] = summary(vals)
        vals = []
        for rd in rounds:
            a, b = data.get((f"filter-{scen}", "tilegate", rd)), data.get(("filter-pass", "tilegate", rd))
            if a and b and a.get("mb_per_cpu_s") and b.get("mb_per_cpu_s"):
                vals.append(a["mb_per_cpu_s"] / b["mb_per_cpu_s"])
        filt[f"tilegate_{scen}_over_tilegate_pass"] = summary(vals)

    res = {"meta": meta, "problems": problems, "tls_negotiated": tls, "figures": fig, "ratios": ratios,
           "tls_added_cpu_s_per_100k": tls_added, "filter_ratios": filt,
           "runs": {f"{s}|{c}|{rd}": v for (s, c, rd), v in sorted(data.items())}}
    with open(out_path, "w") as fh:
        json.dump(res, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print_table(meta, fig, ratios, tls_added, filt, tls, rounds)
    print(f"\nresults: {out_path}")
    if problems or not rows:
        print("\nPROBLEMS (exit 1):")
        for p in problems or ["nothing was measured"]:
            print(f"  - {p}")
        sys.exit(1)


def print_table(meta, fig, ratios, tls_added, filt, tls, rounds):
    mch = meta["machine"]
    print(f"\ntilegate TLS / HTTP/2 / filter figures — {meta['stamp']} ({meta['mode']}): {len(rounds)} round(s) × "
          f"{meta['duration_s']} s")
    print(f"machine: {mch['nproc']} CPUs, {mch['cpu']}, kernel {mch['kernel']}; nginx {mch['nginx']}, HAProxy "
          f"{mch['haproxy']}, OpenSSL {mch['openssl']}, wrk {mch['wrk']}, h2load {mch['h2load']}; tilegate "
          f"{mch['tilegate_commit']}; load average at the end {mch['loadavg_at_end']}")
    for t in tls:
        print(f"  {t['contender']:8s} {t['cert']:5s} {t['cipher']}, {t['group']}, {t['signature']}, "
              f"{t['tickets']} ticket(s) sent, resumption {'accepted' if t['resumes'] == 'yes' else 'refused'}")
    print("medians over rounds (min–max); ratios are contender ÷ nginx within each round\n")
    head = ["figure", "nginx", "HAProxy", "tilegate", "HAProxy/nginx", "tilegate/nginx"]
    lines = []

    def row(name, key, digits=2, unit="", r=None):
        d = fig.get(key)
        if not d:
            return
        cells = [fmt(d.get(c), digits, unit) if d.get(c) else "—" for c in PROXIES]
        rr = [fmt(ratios.get(f"{key}.{c}_over_nginx"), 2, "×") if ratios.get(f"{key}.{c}_over_nginx") else "—"
              for c in ["haproxy", "tilegate"]]
        lines.append([name] + cells + rr)

    row("H0 HTTP/1.1 CPU-s / 100k req", "h1.cpu_s_per_100k")
    for k, name in [("ecdsa", "ECDSA P-256"), ("rsa", "RSA-2048")]:
        row(f"T1 TLS keep-alive CPU-s / 100k, {name}", f"tls-{k}.cpu_s_per_100k")
        if any(f"{k}.{c}" in tls_added for c in PROXIES):
            lines.append([f"T1 − H0 (what TLS adds), {name}"]
                         + [fmt(tls_added.get(f"{k}.{c}")) if tls_added.get(f"{k}.{c}") else "—" for c in PROXIES]
                         + ["—", "—"])
        row(f"T1 req/s, {name}", f"tls-{k}.rps", 0)
    for k, name in [("ecdsa", "ECDSA P-256"), ("rsa", "RSA-2048")]:
        row(f"T2 full handshakes / s / core, {name}", f"hs-{k}.per_core_per_s", 0)
        row(f"T2 server CPU µs / handshake, {name}", f"hs-{k}.cpu_us_each", 0)
        row(f"T2 handshakes / s achieved, {name}", f"hs-{k}.rps", 0)
    row(f"H1 h2c, {meta['h2_streams']} streams, CPU-s / 100k", "h2c.cpu_s_per_100k")
    row("H1 h2c req/s", "h2c.rps", 0)
    row(f"H1 h2 over TLS (ECDSA), {meta['h2_streams']} streams, CPU-s / 100k", "h2tls.cpu_s_per_100k")
    row("H1 h2 over TLS req/s", "h2tls.rps", 0)
    for scen, name in [("pass", "pass-through"), ("props", "3 of 10 properties"), ("geom", "3 of 10 + tile fence")]:
        d = fig.get(f"filter-{scen}.mb_per_cpu_s")
        if not d:
            continue
        r1, r2 = filt.get(f"tilegate_{scen}_over_nginx_pass"), filt.get(f"tilegate_{scen}_over_tilegate_pass")
        lines.append([f"F1 MB/s per core, {name}", fmt(d.get("nginx"), 0) if d.get("nginx") else "—", "—",
                      fmt(d.get("tilegate"), 0) if d.get("tilegate") else "—", "—",
                      (fmt(r1, 2, "×") if r1 else "—") + (f" ({fmt(r2, 2, '×')} of tilegate pass)" if r2 and scen != "pass" else "")])
    widths = [max(len(str(l[i])) for l in lines + [head]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(l, widths)) + " |")
    ob = meta["filter_out_bytes"]
    print(f"\nF1 body: {meta['filter_body_bytes']} bytes upstream; answered {ob['nginx_pass']} (nginx), "
          f"{ob['tilegate_pass']} (tilegate pass), {ob['tilegate_props']} (properties), {ob['tilegate_geom']} (fence)")


if __name__ == "__main__":
    main()
