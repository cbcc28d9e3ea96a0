"""Soak run of `mmnet kafka` (benches/soak.sh): broker, a rate-limited producer and the
operator for a fixed time; every 10 s the operator's RSS and CPU, the consumer lag, the p99
of the batch latency over the last 10 s and the throughput go to soak.csv. Afterwards:
soak.png (four panels) and summary.md with the figures docs/RELIABILITY.md quotes:
RSS growth after warm-up, records in vs scored (nothing lost), p99 over time."""

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TANSU = ROOT / ".tools/bin/tansu"
WARMUP_S = 300  # RSS growth is measured from here: allocator and librdkafka queues fill first


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listening on {port}")


def scrape(addr):
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric_sum(text, name):
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(value)
                seen = True
    return total if seen else None


def buckets(text, name):
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rpartition(" ")[2])
    return out


def p99(prev, cur):
    """The p99 of the observations between two scrapes of a cumulative histogram."""
    les = sorted(cur)
    delta = [cur[le] - prev.get(le, 0.0) for le in les]
    n = delta[-1] if delta else 0
    if n <= 0:
        return None
    for le, c in zip(les, delta):
        if c >= 0.99 * n:
            return le
    return les[-1]


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return rss, ticks / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mmnet", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=4000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=10)
    # The producer's linger.ms. Tansu's fetch lists every stored batch of a partition (see
    # docs/BENCHMARKS.md), so its CPU grows with the number of batches, not of records: a
    # producer sending 2-3 records a batch (librdkafka's 5 ms at 2,000/s over 4 partitions)
    # saturated the broker within the soak. 100 ms (~50 records a batch) is what a batching
    # gateway sends; --produce-linger-ms 5 repeats the earlier runs.
    ap.add_argument("--produce-linger-ms", type=int, default=100)
    ap.add_argument("--from-csv", action="store_true",
                    help="only redraw soak.png and summary.md from OUT/soak.csv "
                         "(with --produced and --scored)")
    ap.add_argument("--produced", type=int)
    ap.add_argument("--scored", type=int)
    ap.add_argument("--dead", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    if a.from_csv:
        with open(out / "soak.csv") as f:
            rows = [[float(x) if x not in ("",) else "" for x in r] for r in list(csv.reader(f))[1:]]
        summarise(out, rows, a, a.produced, a.scored, a.dead, 0)
        return
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mmnet-soak-"))
    procs = []
    try:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        broker = subprocess.Popen(
            [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=open(work / "tansu.log", "w"))
        procs.append(broker)
        wait_port(port)
        brokers = f"127.0.0.1:{port}"
        for t in ("soak-in", "soak-out", "soak-dlq"):
            subprocess.run([str(TANSU), "topic", "create", "--broker", url, "--partitions", "4", t],
                           check=True, capture_output=True)
        model = work / "model"
        subprocess.run([a.mmnet, "train", "--data", str(ROOT / "data/spambase.parquet"),
                        "--out", str(model), "--epochs", "5", "--seed", "7"],
                       check=True, capture_output=True)
        metrics = f"127.0.0.1:{free_port()}"
        op = subprocess.Popen(
            [a.mmnet, "kafka", "--model", str(model), "--brokers", brokers,
             "--input-topic", "soak-in", "--output-topic", "soak-out", "--dlq-topic", "soak-dlq",
             "--group", "soak", "--metrics-listen", metrics],
            stdout=subprocess.DEVNULL, stderr=open(work / "operator.log", "w"))
        procs.append(op)
        time.sleep(3)
        # --limit ends the run; --repeat only has to be large enough whatever the table's size.
        rows = int(a.rate * a.minutes * 60)
        repeat = rows
        prod = subprocess.Popen(
            [a.mmnet, "produce", "--data", str(ROOT / "data/spambase.parquet"), "--brokers", brokers,
             "--topic", "soak-in", "--rate", str(a.rate), "--repeat", str(repeat),
             "--limit", str(rows), "-X", f"linger.ms={a.produce_linger_ms}"],
            stdout=open(work / "produce.out", "w"), stderr=open(work / "produce.log", "w"))
        procs.append(prod)

        start = time.time()
        prev_hist, prev_cpu, prev_out, prev_t = {}, None, 0.0, start
        prev_batches, prev_bcpu = (0.0, 0.0), None
        rows_csv = []
        with open(out / "soak.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "rss_mib", "cpu_pct", "lag", "p99_batch_latency_ms",
                        "scored_per_s", "records_out", "broker_rss_mib", "rows_per_batch",
                        "broker_cpu_pct"])
            while prod.poll() is None or time.time() - start < a.minutes * 60:
                time.sleep(a.interval)
                now = time.time()
                text = scrape(metrics)
                if op.poll() is not None:
                    sys.exit(f"operator exited with {op.returncode}; see {work}/operator.log")
                rss, cpu = proc_stats(op.pid)
                brss, bcpu = proc_stats(broker.pid)
                # Rows per scored batch in this window: smaller batches at the same rate mean
                # more per-batch work (a slower broker hands out smaller fetches).
                bsum = metric_sum(text, "mmnet_batch_rows_sum") or 0.0
                bcnt = metric_sum(text, "mmnet_batch_rows_count") or 0.0
                dcnt = bcnt - prev_batches[1]
                per_batch = round((bsum - prev_batches[0]) / dcnt, 1) if dcnt > 0 else ""
                hist = buckets(text, "mmnet_batch_latency_seconds")
                q = p99(prev_hist, hist)
                recs = metric_sum(text, "mmnet_records_out_total") or 0.0
                lag = metric_sum(text, "mmnet_consumer_lag")
                row = [round(now - start, 1), round(rss, 1),
                       round(100 * (cpu - prev_cpu) / (now - prev_t), 1) if prev_cpu is not None else "",
                       int(lag) if lag is not None else "",
                       round(q * 1000, 2) if q is not None else "",
                       round((recs - prev_out) / (now - prev_t), 1), int(recs), round(brss, 1),
                       per_batch,
                       round(100 * (bcpu - prev_bcpu) / (now - prev_t), 1) if prev_bcpu is not None else ""]
                w.writerow(row)
                f.flush()
                rows_csv.append(row)
                prev_hist, prev_cpu, prev_out, prev_t = hist, cpu, recs, now
                prev_batches, prev_bcpu = (bsum, bcnt), bcpu
                if prod.poll() is not None and now - start > a.minutes * 60 + 120:
                    break
        # Drain: every produced row scored (or dead-lettered), then stop the operator. What
        # was produced is what `mmnet produce` reports having had acknowledged.
        produced = None
        if prod.returncode == 0:
            text = (work / "produce.out").read_text()
            produced = int(text.split("produced ", 1)[1].split(" ", 1)[0])
        end = time.time() + 300
        text = scrape(metrics)
        while time.time() < end:
            text = scrape(metrics)
            done = (metric_sum(text, "mmnet_records_out_total") or 0) + (
                metric_sum(text, "mmnet_dead_letters_total") or 0)
            if produced is not None and done >= produced:
                break
            time.sleep(2)
        scored = metric_sum(text, "mmnet_records_out_total") or 0
        dead = metric_sum(text, "mmnet_dead_letters_total") or 0
        op.send_signal(signal.SIGTERM)
        op.wait(timeout=60)
        summarise(out, rows_csv, a, produced, scored, dead, prod.returncode)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.copy(work / "operator.log", out / "operator.log") if (work / "operator.log").exists() else None
        shutil.rmtree(work, ignore_errors=True)


def summarise(out, rows, a, produced, scored, dead, prod_rc):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] / 60 for r in rows]
    series = {
        "operator RSS (MiB)": [r[1] for r in rows],
        "CPU (% of one core)": [r[2] if r[2] != "" else None for r in rows],
        "consumer lag (records)": [r[3] if r[3] != "" else None for r in rows],
        "p99 batch latency, last 10 s (ms)": [r[4] if r[4] != "" else None for r in rows],
    }
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    for ax, (name, ys) in zip(axes, series.items()):
        ax.plot(t, [y if y is not None else float("nan") for y in ys], lw=1)
        ax.set_ylabel(name, fontsize=8)
        ax.axvline(WARMUP_S / 60, color="grey", ls=":", lw=0.8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(f"mmnet kafka soak: {a.rate} records/s for {a.minutes:g} min on Tansu (2 cores)")
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)

    # The traffic period: up to the last sample that scored anything (the producer may end
    # before the sampling does).
    busy = [r[0] for r in rows if r[5] not in ("", 0, 0.0)]
    traffic_end = max(busy, default=0)
    after = [r for r in rows if WARMUP_S <= r[0] <= traffic_end]
    rss0 = after[0][1] if after else float("nan")
    rss1 = after[-1][1] if after else float("nan")
    rss_max = max((r[1] for r in after), default=float("nan"))
    p99s = [r[4] for r in after if r[4] != ""]
    half = len(p99s) // 2
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else float("nan")
    cpu = [r[2] for r in after if r[2] != ""]
    lines = [
        f"# Soak: {a.rate} records/s for {a.minutes:g} min (producer linger.ms {a.produce_linger_ms})",
        "",
        f"- produced: {produced if produced is not None else f'producer failed ({prod_rc})'}; "
        f"scored: {int(scored)}; dead letters: {int(dead)}; "
        f"lost: {produced - int(scored) - int(dead) if produced is not None else 'n/a'}",
        f"- operator RSS after {WARMUP_S // 60} min warm-up: {rss0:.1f} MiB -> {rss1:.1f} MiB at the end "
        f"({100 * (rss1 - rss0) / rss0:+.1f} %), max {rss_max:.1f} MiB",
        f"- p99 batch latency per 10 s window (after warm-up): median {med(p99s):.2f} ms; "
        f"first half median {med(p99s[:half]):.2f} ms, second half {med(p99s[half:]):.2f} ms; "
        f"max {max(p99s, default=float('nan')):.2f} ms",
        f"- operator CPU: median {med(cpu):.1f} % of one core",
        f"- traffic for {traffic_end / 60:.1f} min; figures below cover minute {WARMUP_S // 60} to the end of traffic",
        f"- samples: {len(rows)} (every {a.interval:g} s); data in soak.csv, plot soak.png",
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
