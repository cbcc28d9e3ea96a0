#!/usr/bin/env bash
# make experiment: 10 runs of the paper's protocol on each shared dataset that is present,
# with the paper's memory sizes (Sec. IV-A-3). Writes one JSON per dataset.
set -euo pipefail
MMNET=${1:-target/release/mmnet}
DATA=${2:-../shared/data}
OUT=${3:-out/experiment}
RUNS=${RUNS:-10}
mkdir -p "$OUT"
run() { # name file memory [extra args...]
  local name=$1 file=$2 mem=$3; shift 3
  if [ ! -f "$DATA/$file" ]; then echo "skip $name: $DATA/$file not found"; return; fi
  echo "== $name"
  "$MMNET" experiment --data "$DATA/$file" --runs "$RUNS" --memory-size "$mem" --quiet \
    --json "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
}
run spambase spambase.npz 32
run arrhythmia arrhythmia.npz 128
run annthyroid annthyroid_typed.npz 128 --exclude anomaly_type
run nslkdd nslkdd.parquet 64
