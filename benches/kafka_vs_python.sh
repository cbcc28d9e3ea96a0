#!/usr/bin/env bash
# make bench-kafka: `mmnet kafka` next to a Python consumer (confluent-kafka + numpy, the same
# weights) on one Tansu broker, in one run. A benchmark, not a test: it prints numbers and
# ratios and writes them to $OUT/results.md.
#
#   1. throughput: N JSON records are waiting on a 3-partition topic; each operator scores all
#      of them; a reader on the score topic times first to last arrival (group join excluded).
#      ROUNDS rounds, mmnet and Python alternating, each into a fresh score topic and group;
#      the medians are reported (one round's window is about a second for mmnet, and on a
#      shared 2-core machine single rounds of the same binary ranged from ~95k to ~175k/s).
#   2. latency: records offered at RATE/s while the operator is running; p50/p99 of arrival
#      time minus the input's timestamp (both operators copy it onto their score records),
#      after the first 10 % (the producer's own start-up holds its first records ~1 s).
#   3. agreement: numpy recomputes mmnet's scores from the input messages (max |diff| <= 1e-4).
set -euo pipefail
MMNET=${1:-target/release/mmnet}
OUT=${2:-out/bench-kafka}
N=${N:-100000}
RATE=${RATE:-2000}
SECONDS_AT_RATE=${SECONDS_AT_RATE:-15}
ROUNDS=${ROUNDS:-9}
TANSU=.tools/bin/tansu
VENV=.tools/bench-venv
rm -rf "$OUT" && mkdir -p "$OUT"
say() { printf '\n== %s\n' "$*"; }

if [[ ! -x $VENV/bin/python ]]; then
  say "python baseline environment ($VENV): confluent-kafka, numpy, safetensors"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'confluent-kafka>=2.6' 'numpy>=1.26' 'safetensors>=0.4'
fi
PY="$VENV/bin/python benches/kafka_baseline.py"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B=127.0.0.1:$PORT
$TANSU broker --listener-url tcp://$B --advertised-listener-url tcp://$B \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
PIDS=($!)
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.1; done
TOPICS=(in lat_in_mmnet lat_out_mmnet lat_in_py lat_out_py)
for r in $(seq 1 "$ROUNDS"); do TOPICS+=("out_mmnet_$r" "out_py_$r"); done
for t in "${TOPICS[@]}"; do
  $TANSU topic create --broker tcp://$B --partitions 3 $t >/dev/null
done
# Tansu answers a fetch only after fetch.wait.max.ms even when data is there (Kafka answers
# as soon as fetch.min.bytes arrive), so every consumer here, both operators and the
# reader, waits at most 10 ms.
X=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 -X fetch.wait.max.ms=10)

say "model: Spambase (57 features), memory 32"
"$MMNET" train --data data/spambase.parquet --memory-size 32 --epochs 20 --out "$OUT/model" --quiet

say "produce $N JSON records"
"$MMNET" produce --data data/spambase.parquet --brokers $B --topic in --repeat $(( N / 4207 + 1 )) --limit $N

# Both start in the background of this shell (not in $(...), which would wait for them) and
# leave their pid in $pid.
start_mmnet() { # input output group
  "$MMNET" kafka --model "$OUT/model" --brokers $B --input-topic "$1" --output-topic "$2" --group "$3" \
    --metrics-listen "" "${X[@]}" >/dev/null 2>>"$OUT/mmnet.log" &
  pid=$!; PIDS+=($pid)
}
start_py() {
  $PY consume --model "$OUT/model" --brokers $B --input "$1" --output "$2" --group "$3" >/dev/null 2>>"$OUT/python.log" &
  pid=$!; PIDS+=($pid)
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

for r in $(seq 1 "$ROUNDS"); do
  say "throughput round $r/$ROUNDS: mmnet"
  start_mmnet in "out_mmnet_$r" "g_mmnet_$r"
  $PY measure --brokers $B --topic "out_mmnet_$r" --n $N | tee "$OUT/tput_mmnet_$r.json"
  stop "$pid"
  say "throughput round $r/$ROUNDS: python"
  start_py in "out_py_$r" "g_py_$r"
  $PY measure --brokers $B --topic "out_py_$r" --n $N | tee "$OUT/tput_py_$r.json"
  stop "$pid"
done

L=$(( RATE * SECONDS_AT_RATE ))
for who in mmnet py; do
  say "latency at $RATE records/s for ${SECONDS_AT_RATE} s: $who"
  if [[ $who == mmnet ]]; then start_mmnet lat_in_mmnet lat_out_mmnet l_mmnet; else start_py lat_in_py lat_out_py l_py; fi
  sleep 6 # group join, so the offered rate meets a running operator
  $PY measure --brokers $B --topic lat_out_$who --n $L --warmup 0.1 >"$OUT/lat_$who.json" &
  m=$!
  "$MMNET" produce --data data/spambase.parquet --brokers $B --topic lat_in_$who --repeat $(( L / 4207 + 1 )) --limit $L --rate $RATE >/dev/null
  wait $m
  cat "$OUT/lat_$who.json"
  stop "$pid"
done

say "agreement: numpy recomputes mmnet's scores"
$PY check --model "$OUT/model" --brokers $B --input in --scores out_mmnet_1 --n 5000 --total $N | tee "$OUT/check.json"

python3 - "$OUT" "$N" "$RATE" "$ROUNDS" <<'EOF'
import json, sys, platform, os, statistics
out, n, rate, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
j = lambda f: json.load(open(f"{out}/{f}"))
lm, lp, ck = j("lat_mmnet.json"), j("lat_py.json"), j("check.json")
runs = {w: [j(f"tput_{w}_{r}.json") for r in range(1, rounds + 1)] for w in ("mmnet", "py")}
rate_of = {w: [x["records_per_s"] for x in runs[w]] for w in runs}
med = {w: statistics.median(v) for w, v in rate_of.items()}
tm = {"complete": all(x["complete"] for x in runs["mmnet"])}
tp = {"complete": all(x["complete"] for x in runs["py"])}
ratio = med["mmnet"] / med["py"]
pairs = [a / b for a, b in zip(rate_of["mmnet"], rate_of["py"])]
fmt = lambda v: ", ".join(f"{x:,.0f}" for x in v)
lines = [
    f"# Kafka operator benchmark ({n} JSON records, Spambase model, Tansu broker, {os.cpu_count()} cores)",
    "",
    "| | mmnet kafka | Python (confluent-kafka + numpy) | ratio |",
    "|---|---|---|---|",
    f"| throughput, records/s (median of {rounds}) | {med['mmnet']:,.0f} | {med['py']:,.0f} | **{ratio:.2f}x** |",
    f"| latency p50 at {rate}/s, ms | {lm['p50_ms']:.1f} | {lp['p50_ms']:.1f} | |",
    f"| latency p99 at {rate}/s, ms | {lm['p99_ms']:.1f} | {lp['p99_ms']:.1f} | |",
    "",
    f"Rounds (mmnet then Python, alternating): mmnet {fmt(rate_of['mmnet'])}; Python {fmt(rate_of['py'])};"
    f" per-round ratios {', '.join(f'{x:.2f}' for x in pairs)}.",
    "",
    f"Scores agree: numpy recomputed {ck['compared']} of mmnet's scores, max |diff| = {ck['max_abs_diff']:.2e}.",
    f"All records arrived: mmnet {tm['complete']}/{lm['complete']}, python {tp['complete']}/{lp['complete']} (throughput/latency runs).",
]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
