#!/usr/bin/env python3
"""Turns bench/run's raw measurements into one table (stdout) and one JSON file.

report.py META.json RAW.jsonl OUT.json

Every figure is the median over rounds with min–max; a ratio to nginx is computed within
each round first (so slow and fast rounds do not mix), then summarised the same way.
Exit status 1 when a run answered with the wrong status or had socket errors.
"""
import json
import re
import statistics
import sys

CONTENDERS = ["direct", "nginx", "haproxy", "tilegate"]
PROXIES = ["nginx", "haproxy", "tilegate"]


def parse_wrk(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"requests": 0, "duration_s": None, "rps": None, "non2xx": 0, "socket_errors": 0, "latency_ms": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["duration_s"] = to_seconds(float(m.group(2)), m.group(3))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
    for p, v, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        out["latency_ms"][p] = to_seconds(float(v), unit) * 1000
    return out


def to_seconds(v, unit):
    return v * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit, 1.0)


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(s, digits=2, unit=""):
    if s is None:
        return "n/a"
    if s["n"] == 1 or abs(s["max"] - s["min"]) < 10 ** -digits:
        return f"{s['median']:.{digits}f}{unit}"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def main():
    meta = json.load(open(sys.argv[1]))
    rows = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
    out_path = sys.argv[3]
    problems = []
    data = {}  # (scenario, contender, round) -> measurement
    for r in rows:
        key = (r["scenario"], r["contender"], r["round"])
        if r["kind"] == "wrk":
            w = parse_wrk(r["out"])
            w["cpu_s_per_100k"] = r["cpu_ns"] / 1e9 / w["requests"] * 1e5 if w["requests"] else None
            t = r.get("user_ticks", 0) + r.get("sys_ticks", 0)
            w["sys_share_pct"] = 100.0 * r.get("sys_ticks", 0) / t if t else None
            bad = (w["non2xx"] != 0) if r["expect"] == 200 else (w["non2xx"] != w["requests"])
            if w["requests"] == 0 or bad or w["socket_errors"]:
                problems.append(f"{r['contender']} {r['scenario']} round {r['round']}: {w['requests']} requests, "
                                f"{w['non2xx']} non-2xx, {w['socket_errors']} socket errors (want all {r['expect']})")
            data[key] = w
        else:
            try:
                f = json.load(open(r["out"]))
            except (OSError, ValueError):
                f = {"measured": 0, "bad_status": 0, "errors": 1}
            f["cpu_s_per_100k"] = r["cpu_ns"] / 1e9 / f["measured"] * 1e5 if f.get("measured") else None
            f["kept_up"] = f.get("measured", 0) >= 0.95 * meta["fixed_rate"] * meta["duration_s"]
            if f.get("bad_status") or f.get("errors") or not f.get("measured"):
                problems.append(f"{r['contender']} fixed-rate round {r['round']}: {f.get('measured')} measured, "
                                f"{f.get('bad_status')} wrong status, {f.get('errors')} errors")
            data[key] = f
    rounds = sorted({r["round"] for r in rows})
    if any(r["contender"] == "baseline" for r in rows):
        CONTENDERS.append("baseline")

    def per_round(scen, c, field):
        return [data[(scen, c, rd)].get(field) if (scen, c, rd) in data else None for rd in rounds]

    def ratio(scen, c, field, base="nginx", base_scen=None):
        vals = []
        for rd in rounds:
            a, b = data.get((scen, c, rd)), data.get((base_scen or scen, base, rd))
            if a and b and a.get(field) and b.get(field):
                vals.append(a[field] / b[field])
        return summary(vals)

    def added(c, pct):
        vals = []
        for rd in rounds:
            a, d = data.get(("fixed", c, rd)), data.get(("fixed", "direct", rd))
            if a and d and a.get(pct) is not None and d.get(pct) is not None:
                vals.append(a[pct] - d[pct])
        return vals

    res = {"meta": meta, "problems": problems, "figures": {}}
    fig = res["figures"]
    for scen in ["pass", "reject", "many", "fence1k", "nofence"]:
        for c in CONTENDERS:
            if any((scen, c, rd) in data for rd in rounds):
                fig.setdefault(f"{scen}_cpu_s_per_100k", {})[c] = summary(per_round(scen, c, "cpu_s_per_100k"))
                fig.setdefault(f"{scen}_rps", {})[c] = summary(per_round(scen, c, "rps"))
                fig.setdefault(f"{scen}_sys_share_pct", {})[c] = summary(per_round(scen, c, "sys_share_pct"))
    for c in CONTENDERS:
        if not any(("fixed", c, rd) in data for rd in rounds):
            continue
        for pct in ["p50_ms", "p99_ms", "p999_ms"]:
            fig.setdefault(f"fixed_{pct}", {})[c] = summary(per_round("fixed", c, pct))
            if c != "direct":
                fig.setdefault(f"fixed_added_{pct}", {})[c] = summary(added(c, pct))
        fig.setdefault("fixed_kept_up", {})[c] = all(per_round("fixed", c, "kept_up"))

    def added_ratio(c, pct):
        a, b = added(c, pct), added("nginx", pct)
        vals = [x / y for x, y in zip(a, b) if y > 0]
        return summary(vals)

    hwm = meta["hwm_kb"]
    mb = lambda kb: round(kb / 1024, 1)
    m7 = []
    for rd in rounds:
        a, b = data.get(("fence1k", "tilegate", rd)), data.get(("nofence", "tilegate", rd))
        if a and b and a.get("cpu_s_per_100k") and b.get("cpu_s_per_100k"):
            m7.append((a["cpu_s_per_100k"] / b["cpu_s_per_100k"] - 1) * 100)
    try:
        m4_fill = json.load(open(meta["m4_fill"]))
    except (OSError, ValueError):
        m4_fill = {"ok": 0, "bad_status": 0, "errors": 1}
    if m4_fill.get("ok", 0) < meta["m4_tokens"] or m4_fill.get("bad_status") or m4_fill.get("errors"):
        problems.append(f"M4 fill: {m4_fill.get('ok')} answered 200, {m4_fill.get('bad_status')} other status, "
                        f"{m4_fill.get('errors')} errors (want all {meta['m4_tokens']} 200)")

    flat = {
        "m1_cpu_s_per_100k": fig["pass_cpu_s_per_100k"],
        "m1_ratio_to_nginx": ratio("pass", "tilegate", "cpu_s_per_100k"),
        "m1_haproxy_ratio_to_nginx": ratio("pass", "haproxy", "cpu_s_per_100k"),
        "m2_added_p50_ms": fig["fixed_added_p50_ms"],
        "m2_added_p99_ms": fig["fixed_added_p99_ms"],
        "m2_added_p999_ms": fig["fixed_added_p999_ms"],
        "m2_p99_added_ms_ratio_to_nginx": added_ratio("tilegate", "p99_ms"),
        "m2_rate_rps": meta["fixed_rate"],
        "m2_kept_up": fig["fixed_kept_up"],
        "m3_rps": fig["pass_rps"],
        "m3_ratio_to_nginx": ratio("pass", "tilegate", "rps"),
        "m4_tilegate_idle_mb": mb(hwm["tilegate_fresh_idle"]),
        "m4_tilegate_100k_tokens_mb": mb(hwm["tilegate_fresh_after_m4"]),
        "m4_tokens": meta["m4_tokens"],
        "m4_tilegate_after_rounds_mb": mb(hwm["tilegate_after_rounds"]),
        "m4_nginx_mb": mb(hwm["nginx_after_rounds"]),
        "m4_haproxy_mb": mb(hwm["haproxy_after_rounds"]),
        "m5_cpu_s_per_100k": fig["reject_cpu_s_per_100k"],
        "m5_ratio_to_nginx": ratio("reject", "tilegate", "cpu_s_per_100k"),
        "m5_rps_ratio_to_nginx": ratio("reject", "tilegate", "rps"),
        "m6_cpu_s_per_100k": fig["many_cpu_s_per_100k"],
        "m6_rps": fig["many_rps"],
        "m6_ratio_to_nginx": ratio("many", "tilegate", "cpu_s_per_100k"),
        "m7_fence1k_cpu_s_per_100k": fig["fence1k_cpu_s_per_100k"]["tilegate"],
        "m7_nofence_cpu_s_per_100k": fig["nofence_cpu_s_per_100k"]["tilegate"],
        "m7_fence1k_overhead_pct": summary(m7),
        "m7_geojson_filter_mb_s": None,
    }
    if "baseline" in CONTENDERS:
        flat["baseline_m1_tilegate_ratio"] = ratio("pass", "tilegate", "cpu_s_per_100k", base="baseline")
        flat["baseline_m5_tilegate_ratio"] = ratio("reject", "tilegate", "cpu_s_per_100k", base="baseline")
        flat["baseline_m3_tilegate_ratio"] = ratio("pass", "tilegate", "rps", base="baseline")
    res.update(flat)
    targets = {
        "m1_le_0.8x_nginx": le(flat["m1_ratio_to_nginx"], 0.8),
        "m2_p99_added_le_nginx": le(flat["m2_p99_added_ms_ratio_to_nginx"], 1.0),
        "m5_le_0.7x_nginx": le(flat["m5_ratio_to_nginx"], 0.7),
        "m4_100k_tokens_lt_30mb": flat["m4_tilegate_100k_tokens_mb"] < 30 if meta["m4_tokens"] >= 100000 else None,
        "m7_fence1k_lt_2pct": le(flat["m7_fence1k_overhead_pct"], 2.0),
    }
    res["targets_met"] = targets
    with open(out_path, "w") as fh:
        json.dump(res, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print_table(meta, fig, flat, targets, m4_fill, rounds)
    print(f"\nresults: {out_path}")
    if problems:
        print("\nPROBLEMS (exit 1):")
        for p in problems:
            print(f"  - {p}")
        sys.exit(1)


def le(s, limit):
    return None if s is None else s["median"] <= limit


def print_table(meta, fig, flat, targets, m4_fill, rounds):
    mch = meta["machine"]
    print(f"\ntilegate benchmark — {meta['stamp']} ({meta['mode']}): {len(rounds)} round(s) × {meta['duration_s']} s, "
          f"{meta['connections']} connections, 256-byte tile")
    print(f"machine: {mch['nproc']} CPUs, {mch['cpu']}, kernel {mch['kernel']}; nginx {mch['nginx']}, "
          f"HAProxy {mch['haproxy']}, wrk {mch['wrk']}; tilegate {mch['tilegate_commit']}")
    print("medians over rounds (min–max); ratios are tilegate ÷ nginx within each round\n")
    head = ["figure", "direct", "nginx", "HAProxy", "tilegate", "tilegate/nginx"]
    if "baseline" in CONTENDERS:
        head.insert(5, "baseline")
    lines = []

    def row(name, key, digits=2, ratio=None, unit=""):
        d = fig.get(key, {})
        lines.append([name] + [fmt(d.get(c), digits, unit) if d.get(c) else "—" for c in CONTENDERS]
                     + [fmt(ratio, 2, "×") if ratio else "—"])

    def fixed(cells):
        # Rows written by hand have the four standard columns; pad the baseline one.
        return cells[:5] + (["—"] if "baseline" in CONTENDERS else []) + cells[5:]

    row("M1 CPU-s / 100k req (pass)", "pass_cpu_s_per_100k", 2, flat["m1_ratio_to_nginx"])
    row("M1 kernel share of that CPU", "pass_sys_share_pct", 0, None, " %")
    row("M2 added p50 ms @ %d rps" % meta["fixed_rate"], "fixed_added_p50_ms", 3)
    row("M2 added p99 ms", "fixed_added_p99_ms", 3, flat["m2_p99_added_ms_ratio_to_nginx"])
    row("M2 added p99.9 ms", "fixed_added_p999_ms", 3)
    row("M2 (absolute p99 ms)", "fixed_p99_ms", 3)
    row("M3 req/s, 32 conns", "pass_rps", 0, flat["m3_ratio_to_nginx"])
    lines.append(fixed(["M4 peak memory MB (VmHWM)", "—", f"{flat['m4_nginx_mb']}", f"{flat['m4_haproxy_mb']}",
                  f"{flat['m4_tilegate_idle_mb']} idle; {flat['m4_tilegate_100k_tokens_mb']} @ {meta['m4_tokens']} tokens",
                  "—"]))
    row("M5 reject CPU-s / 100k", "reject_cpu_s_per_100k", 2, flat["m5_ratio_to_nginx"])
    row("M5 reject req/s", "reject_rps", 0, flat["m5_rps_ratio_to_nginx"])
    row("M6 %d tokens CPU-s / 100k" % meta["m6_tokens"], "many_cpu_s_per_100k", 2, flat["m6_ratio_to_nginx"])
    row("M6 req/s", "many_rps", 0)
    lines.append(fixed(["M7 1k-tile fence CPU-s / 100k", "—", "—", "—",
                  f"{fmt(flat['m7_fence1k_cpu_s_per_100k'])} vs {fmt(flat['m7_nofence_cpu_s_per_100k'])} unfenced", "—"]))
    lines.append(fixed(["M7 fence overhead", "—", "—", "—", fmt(flat["m7_fence1k_overhead_pct"], 1, " %"), "—"]))
    lines.append(fixed(["M7 GeoJSON property filter", "—", "—", "—", "cargo bench --bench geojson", "—"]))
    widths = [max(len(str(l[i])) for l in lines + [head]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(l, widths)) + " |")
    kept = fig.get("fixed_kept_up", {})
    lagging = [c for c, ok in kept.items() if not ok]
    if lagging:
        print(f"\nnote: did not sustain {meta['fixed_rate']} rps in every M2 run: {', '.join(lagging)}")
    if "baseline" in CONTENDERS:
        for key, what in [("baseline_m1_tilegate_ratio", "M1 CPU"), ("baseline_m5_tilegate_ratio", "M5 reject CPU"),
                          ("baseline_m3_tilegate_ratio", "M3 req/s")]:
            print(f"tilegate ÷ baseline, {what}: {fmt(flat.get(key), 2, '×')}")
    print("\ntargets (BENCHMARK.md):")
    for k, v in targets.items():
        print(f"  {k:28s} {'n/a' if v is None else ('met' if v else 'NOT met')}")


if __name__ == "__main__":
    main()
