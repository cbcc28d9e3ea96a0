#!/usr/bin/env bash
# make bench-cluster: rows/s of the same query over the same Parquet directory through
# `mmnet sql` in one process, through a Ballista cluster of 1 executor, and of 2 executors,
# side by side in one run (alternating rounds, medians). A benchmark, not a test: it prints
# numbers and writes $OUT/results.md.
#
# On one 2-core machine the two cluster shapes get the same cores as the local run: one
# executor with 2 task slots, or two executors with 1 slot each. What the comparison shows
# is the cost of the cluster path itself (planning on the scheduler, task dispatch, results
# through Arrow Flight, a process per executor), not scale-out, which needs more machines.
#
#   ROWS (10,000,000) rows in FILES (10) Parquet files under hive-style partitions, made
#   from the shipped Spambase rows (57 features) repeated; the default model (mmnet train
#   with its defaults: an ensemble of 5 networks on this data).
set -euo pipefail
MMNET=${1:-target/release/mmnet}
OUT=${2:-out/bench-cluster}
ROWS=${ROWS:-10000000}
FILES=${FILES:-10}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
say() { printf '\n== %s\n' "$*"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [[ ! -f $OUT/model/manifest.json ]]; then
  say "model: Spambase, mmnet train defaults"
  "$MMNET" train --data data/spambase.parquet --out "$OUT/model" --quiet
fi

# first_cell: the first column of the first row of `mmnet sql`'s table output on stdin.
first_cell() { awk -F'|' 'NR == 4 { gsub(/ /, "", $2); print $2 }'; }

TABLE=$OUT/table-$ROWS-$FILES
per=$((ROWS / FILES))
if [[ ! -f $TABLE/.done ]]; then
  say "table: $ROWS rows in $FILES files ($TABLE)"
  rm -rf "$TABLE"
  src=$("$MMNET" sql --model "$OUT/model" --table s=data/spambase.parquet \
    "SELECT count(*) AS n FROM s" | first_cell)
  reps=$(((per + src - 1) / src))
  for ((k = 0; k < FILES; k++)); do
    mkdir -p "$TABLE/part=$k"
    "$MMNET" sql --model "$OUT/model" --table s=data/spambase.parquet \
      --output "$TABLE/part=$k/data.parquet" \
      "SELECT s.* FROM s CROSS JOIN generate_series(1, $reps) LIMIT $per" >/dev/null
  done
  touch "$TABLE/.done"
fi
rows=$((per * FILES))

QUERY="SELECT count(*) AS n, sum(CAST(mmnet_is_anomaly(*) AS BIGINT)) AS flagged FROM t"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do sleep 0.1; done; }

# cluster EXECUTORS SLOTS: a scheduler and EXECUTORS executors with SLOTS task slots each;
# the scheduler's address in $URL.
cluster() {
  cleanup; PIDS=()
  local sp; sp=$(port)
  "$MMNET" cluster scheduler --model "$OUT/model" --bind 127.0.0.1:"$sp" 2>>"$OUT/scheduler.log" &
  PIDS+=($!)
  wait_port "$sp"
  for ((e = 0; e < $1; e++)); do
    local g f; g=$(port); f=$(port)
    "$MMNET" cluster executor --model "$OUT/model" --scheduler 127.0.0.1:"$sp" \
      --bind 127.0.0.1:"$g" --flight-port "$f" --concurrency "$2" \
      --work-dir "$OUT/work-$e" 2>>"$OUT/executor-$e.log" &
    PIDS+=($!)
    wait_port "$f"
  done
  sleep 1
  URL=df://127.0.0.1:$sp
}

# timed LABEL ARGS...: seconds of one query run, the result row kept in $OUT/LABEL.out.
timed() {
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$MMNET" sql --model "$OUT/model" --table t="$TABLE" "$@" "$QUERY" >"$OUT/$label.out"
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

declare -A T
for ((r = 1; r <= ROUNDS; r++)); do
  say "round $r"
  T[local]+="$(timed local) "
  cluster 1 2
  T[one]+="$(timed one --cluster "$URL") "
  cluster 2 1
  T[two]+="$(timed two --cluster "$URL") "
  cleanup; PIDS=()
  echo "local ${T[local]}| 1 executor ${T[one]}| 2 executors ${T[two]}"
done

for l in local one two; do grep '^|' "$OUT/$l.out" | tail -1 | sed "s/^/$l: /"; done
# Every path must have counted every row once.
for l in local one two; do
  n=$(first_cell <"$OUT/$l.out")
  [[ $n == "$rows" ]] || { echo "$l counted $n rows, expected $rows" >&2; exit 1; }
done

python3 - "$OUT" "$rows" "${T[local]}" "${T[one]}" "${T[two]}" "$MMNET" "$FILES" <<'EOF'
import statistics, sys, platform, subprocess
out, rows, loc, one, two, mmnet, files = sys.argv[1:]
rows = int(rows)
med = lambda s: statistics.median(float(x) for x in s.split())
l, o, t = med(loc), med(one), med(two)
cpu = next((x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")), "?")
lines = [
    f"Rows: {rows:,} in {files} Parquet files (Spambase's 57 features), query "
    "`SELECT count(*), sum(CAST(mmnet_is_anomaly(*) AS BIGINT)) FROM t`, default model, "
    f"binary {mmnet}, {cpu}, {subprocess.getoutput('nproc')} cores; medians of "
    f"{len(loc.split())} alternating rounds (wall time of the whole `mmnet sql` command).",
    "",
    "| path | seconds | rows/s | vs local |",
    "|---|---|---|---|",
    f"| local `mmnet sql` (1 process) | {l:.2f} | {rows / l:,.0f} | 1.00x |",
    f"| cluster, 1 executor x 2 slots | {o:.2f} | {rows / o:,.0f} | {l / o:.2f}x |",
    f"| cluster, 2 executors x 1 slot | {t:.2f} | {rows / t:,.0f} | {l / t:.2f}x |",
    "",
    f"Overhead of the cluster path on the same cores: {100 * (o - l) / l:+.1f} % (1 executor), "
    f"{100 * (t - l) / l:+.1f} % (2 executors).",
]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
