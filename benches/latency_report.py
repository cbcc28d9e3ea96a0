#!/usr/bin/env python3
"""Summarises benches/latency.sh: OUT/results.md, printed too. Standard library only.

usage: latency_report.py OUT RATE ROUNDS ROUNDS_LAT N
"""
import json
import os
import statistics
import sys

out, rate, rounds, rounds_lat, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
# The profiles benches/latency.sh ran (its PROFILES).
PROFILES = os.environ.get("PROFILES", "throughput low-latency").split()


def j(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def histogram_quantile(path, q, metric="mmnet_record_latency_seconds"):
    """Prometheus-style quantile from cumulative buckets (linear within the bucket), in ms."""
    buckets = []
    for line in open(path):
        if line.startswith(metric + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return float("nan"), 0
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le * 1e3, total
            return (prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)) * 1e3, total
        prev_le, prev_c = le, c
    return float("nan"), total


med = statistics.median
lines = [f"# Latency and the ceiling: `mmnet kafka` against a no-op pipe (Tansu, {os.cpu_count()} cores)", ""]
checks = []
# A run with ROUNDS_LAT=0 or ROUNDS=0 (benches/latency.sh) skips that part.
if rounds_lat > 0:
    lines += [f"## End-to-end latency at {rate} records/s (producer timestamp to reader arrival; median of {rounds_lat} rounds)", ""]
    lines += ["| profile | pipe p50 ms | pipe p99 ms | mmnet p50 ms | mmnet p99 ms | mmnet - pipe, p50 ms | mmnet input age p50 ms | mmnet_record_latency_seconds p50 ms | p99 ms | all arrived |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for p in PROFILES:
        lat = {w: [j(f"lat_{p}_{w}_{r}.json") for r in range(1, rounds_lat + 1)] for w in ("pipe", "mmnet")}
        q = {w: (med([x["p50_ms"] for x in lat[w]]), med([x["p99_ms"] for x in lat[w]])) for w in lat}
        hist = [histogram_quantile(os.path.join(out, f"metrics_{p}_mmnet_{r}.txt"), qq) for r in range(1, rounds_lat + 1) for qq in (0.5, 0.99)]
        h50 = med([h[0] for h in hist[0::2]])
        h99 = med([h[0] for h in hist[1::2]])
        age = med([histogram_quantile(os.path.join(out, f"metrics_{p}_mmnet_{r}.txt"), 0.5,
                                      "mmnet_record_input_age_seconds")[0] for r in range(1, rounds_lat + 1)])
        complete = all(x["complete"] for w in lat for x in lat[w])
        gap = q["mmnet"][0] - q["pipe"][0]
        lines.append(f"| {p} | {q['pipe'][0]:.1f} | {q['pipe'][1]:.1f} | {q['mmnet'][0]:.1f} | {q['mmnet'][1]:.1f} | {gap:+.1f} | {age:.1f} | {h50:.2f} | {h99:.2f} | {complete} |")
        if p == "low-latency":
            checks += [("mmnet_record_latency_seconds p50 <= 2 ms (low-latency)", h50, 2.0, "<="),
                       ("mmnet_record_latency_seconds p99 <= 10 ms (low-latency)", h99, 10.0, "<="),
                       ("end-to-end p50 within 5 ms of the pipe (low-latency)", gap, 5.0, "<=")]
    lines += ["", "Input age: producer timestamp to the operator's receipt (`mmnet_record_input_age_seconds`,",
              "millisecond timestamps); `mmnet_record_latency_seconds`: receipt to the acknowledgement of the",
              "score record; the rest of the end-to-end figure is the acknowledged record reaching the reader.", ""]
if rounds > 0:
    lines += [f"## Throughput ({n} records waiting; median of {rounds} rounds, pipe and mmnet alternating)", "",
              "| profile | pipe records/s | mmnet records/s | mmnet / pipe | rounds (pipe; mmnet) |", "|---|---|---|---|---|"]
    for p in PROFILES:
        t = {w: [j(f"tput_{p}_{w}_{r}.json") for r in range(1, rounds + 1)] for w in ("pipe", "mmnet")}
        rs = {w: [x.get("records_per_s", 0.0) for x in t[w]] for w in t}
        ratio = med(rs["mmnet"]) / max(med(rs["pipe"]), 1e-9)
        fmt = lambda v: ", ".join(f"{x:,.0f}" for x in v)
        lines.append(f"| {p} | {med(rs['pipe']):,.0f} | {med(rs['mmnet']):,.0f} | {ratio:.2f} | {fmt(rs['pipe'])}; {fmt(rs['mmnet'])} |")
        if p == "throughput":
            checks.append(("mmnet >= 90 % of the pipe's records/s (throughput profile)", ratio, 0.9, ">="))
lines += ["", "## Targets (issue 20), from this run", "", "| target | measured | met |", "|---|---|---|"]
for name, v, t, op in checks:
    met = v <= t if op == "<=" else v >= t
    lines.append(f"| {name} | {v:.2f} | {'yes' if met else '**no**'} |")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "results.md"), "w").write(text)
print(text)
