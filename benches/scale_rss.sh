#!/usr/bin/env bash
# Peak memory of scoring a Parquet file many times larger than memory would allow if it were
# loaded whole: ROWS (default 10,000,000) x 122 float32 features (~4.9 GB of values).
# Measures peak RSS with /usr/bin/time -v for `mmnet score` (Parquet -> Parquet) and for
# `mmnet sql` (an aggregate over mmnet_score(*)). Needs the release build and ~12 GB of disk.
set -euo pipefail
ROWS=${ROWS:-10000000}
DIR=${DIR:-out/scale}
MMNET=target/release/mmnet
GEN=target/release/examples/gen_parquet
mkdir -p "$DIR"
[ -x "$GEN" ] || cargo build --release -p mmnet-arrow --example gen_parquet
[ -f "$DIR/big.parquet" ] || "$GEN" "$DIR/big.parquet" "$ROWS" 122 1
"$GEN" "$DIR/train.parquet" 100000 122 2
"$MMNET" train --data "$DIR/train.parquet" --out "$DIR/model" --epochs 1 --quiet
ls -l "$DIR/big.parquet"
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" > "$DIR/$label.out" 2> "$DIR/$label.time"
  printf '%-6s peak RSS %7.1f MB, wall %s\n' "$label" \
    "$(awk '/Maximum resident/ {print $6/1024}' "$DIR/$label.time")" \
    "$(awk -F': ' '/Elapsed/ {print $2}' "$DIR/$label.time")"
  tail -n 3 "$DIR/$label.out"
}
measure score "$MMNET" score --model "$DIR/model" --input "$DIR/big.parquet" --output "$DIR/big_scored.parquet" --quiet
measure sql "$MMNET" sql --model "$DIR/model" --table big="$DIR/big.parquet" \
  "SELECT count(*) AS rows, avg(mmnet_score(*)) AS mean_score, sum(CAST(mmnet_is_anomaly(*) AS INT)) AS flagged FROM big"
rm -f "$DIR/big_scored.parquet"
