#!/usr/bin/env bash
# make bench-latency: `mmnet kafka` next to a no-op pipe (benches/noop_pipe.rs: consume,
# produce the same bytes, the operator's own client settings) on one Tansu broker, in one
# run, for both profiles. A benchmark, not a test: it prints numbers and writes
# $OUT/results.md.
#
#   1. latency: records offered at RATE/s for SECONDS_AT_RATE s to a fresh topic while the
#      pipe or the operator runs; a reader (poll() per message, fetch.wait.max.ms = READER_WAIT_MS) takes
#      arrival time minus the input's producer timestamp (both copy it onto their output),
#      p50/p99 after the first 10 %. For mmnet also p50/p99 of mmnet_record_latency_seconds
#      (its receipt of a message to the broker's acknowledgement of its score record), from
#      the histogram's buckets. Order per profile: pipe, mmnet, pipe, mmnet (ROUNDS_LAT pairs);
#      medians reported.
#   2. throughput (throughput profile and low-latency): N JSON records waiting on a
#      3-partition topic; pipe and mmnet alternate over ROUNDS rounds, each into a fresh
#      output topic and group; a reader times first to last arrival; medians reported.
set -euo pipefail
MMNET=${1:-target/release/mmnet}
OUT=${2:-out/bench-latency}
PIPE=${PIPE:-target/release/examples/noop_pipe}
N=${N:-100000}
RATE=${RATE:-2000}
SECONDS_AT_RATE=${SECONDS_AT_RATE:-15}
ROUNDS=${ROUNDS:-5}
ROUNDS_LAT=${ROUNDS_LAT:-2}
TANSU=.tools/bin/tansu
VENV=.tools/bench-venv
rm -rf "$OUT" && mkdir -p "$OUT"
say() { printf '\n== %s\n' "$*"; }

if [[ ! -x $VENV/bin/python ]]; then
  say "reader environment ($VENV): confluent-kafka, numpy, safetensors"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'confluent-kafka>=2.6' 'numpy>=1.26' 'safetensors>=0.4'
fi
PY="$VENV/bin/python benches/kafka_baseline.py"
PROFILES=${PROFILES:-throughput low-latency}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B=127.0.0.1:$PORT
$TANSU broker --listener-url tcp://$B --advertised-listener-url tcp://$B \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
PIDS=($!)
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.1; done
topic() { $TANSU topic create --broker tcp://$B --partitions 3 "$1" >/dev/null; }
X=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=1000)
# EXTRA_X="-X key=value ...": more client settings for the pipe and the operator alike.
read -r -a EXTRA <<<"${EXTRA_X:-}"
X+=("${EXTRA[@]}")
# The reader's fetch.wait.max.ms (Tansu answers a fetch within it; see BENCHMARKS.md).
READER_WAIT_MS=${READER_WAIT_MS:-10}

say "model: Spambase (57 features), memory 32"
# TRAIN_ARGS: e.g. "--ensemble 1" to measure one network instead of the default ensemble.
read -r -a TRAIN <<<"${TRAIN_ARGS:-}"
"$MMNET" train --data data/spambase.parquet --memory-size 32 --epochs 20 "${TRAIN[@]}" --out "$OUT/model" --quiet

MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# start WHO PROFILE INPUT OUTPUT GROUP: in the background, pid in $pid.
start() {
  if [[ $1 == mmnet ]]; then
    "$MMNET" kafka --model "$OUT/model" --brokers $B --input-topic "$3" --output-topic "$4" --group "$5" \
      --profile "$2" --metrics-listen "127.0.0.1:$MPORT" "${X[@]}" >/dev/null 2>>"$OUT/mmnet.log" &
  else
    "$PIPE" --brokers $B --input "$3" --output "$4" --group "$5" --profile "$2" "${X[@]}" \
      >/dev/null 2>>"$OUT/pipe.log" &
  fi
  pid=$!; PIDS+=($pid)
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }
scrape() { python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' "http://127.0.0.1:$MPORT/metrics"; }

L=$(( RATE * SECONDS_AT_RATE ))
for profile in $PROFILES; do
  for r in $(seq 1 "$ROUNDS_LAT"); do
    for who in pipe mmnet; do
      tag="${profile}_${who}_$r"
      say "latency at $RATE records/s for ${SECONDS_AT_RATE} s: $who, $profile, round $r"
      topic "li_$tag"; topic "lo_$tag"
      start $who $profile "li_$tag" "lo_$tag" "lg_$tag"
      sleep 6 # group join, so the offered rate meets a running consumer
      $PY measure --brokers $B --topic "lo_$tag" --n $L --warmup 0.1 --per-message --fetch-wait-ms "$READER_WAIT_MS" \
        >"$OUT/lat_$tag.json" &
      m=$!
      "$MMNET" produce --data data/spambase.parquet --brokers $B --topic "li_$tag" \
        --repeat $(( L / 4207 + 1 )) --limit $L --rate $RATE -X linger.ms=0 >/dev/null
      wait $m
      if [[ $who == mmnet ]]; then scrape >"$OUT/metrics_$tag.txt"; fi
      cat "$OUT/lat_$tag.json"
      stop "$pid"
    done
  done
done

topic tin
say "produce $N JSON records for the throughput rounds"
"$MMNET" produce --data data/spambase.parquet --brokers $B --topic tin --repeat $(( N / 4207 + 1 )) --limit $N >/dev/null
for profile in $PROFILES; do
  for r in $(seq 1 "$ROUNDS"); do
    for who in pipe mmnet; do
      tag="${profile}_${who}_$r"
      say "throughput round $r/$ROUNDS: $who, $profile"
      topic "to_$tag"
      start $who $profile tin "to_$tag" "tg_$tag"
      $PY measure --brokers $B --topic "to_$tag" --n $N | tee "$OUT/tput_$tag.json"
      stop "$pid"
    done
  done
done

PROFILES="$PROFILES" python3 benches/latency_report.py "$OUT" "$RATE" "$ROUNDS" "$ROUNDS_LAT" "$N"
