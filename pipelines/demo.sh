#!/usr/bin/env bash
# make demo: the paper's protocol on the shipped Spambase data, end to end with the CLI.
#   1. hold out a stratified 20 % test split, keep 30 labeled anomalies (mmnet experiment --export-splits)
#   2. train on the unlabeled rows + the 30 labeled anomalies (mmnet train)
#   3. score the held-out rows to Parquet and list the top anomalies (mmnet score)
#   4. the same top rows with their true labels, in SQL (mmnet sql)
#   5. AUC-ROC / AUC-PR of every score variant on the held-out rows (mmnet eval)
set -euo pipefail
MMNET=${1:-target/release/mmnet}
OUT=${2:-out/demo}
DATA=data/spambase.parquet
rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "split $DATA with the paper's protocol (seed 0)"
"$MMNET" experiment --data "$DATA" --runs 1 --seed 0 --export-splits "$OUT/splits" --export-only

step "train on D_u + 30 labeled anomalies (memory 32, as the paper uses for Spambase)"
"$MMNET" train --data "$OUT/splits/run0/train.parquet" --exclude true_label \
  --memory-size 32 --epochs 200 --seed 0 --out "$OUT/model"

step "score the held-out test rows"
"$MMNET" score --model "$OUT/model" --input "$OUT/splits/run0/test.parquet" \
  --output "$OUT/test_scored.parquet" --top 10

step "the same ranking in SQL, with the true labels beside it"
"$MMNET" sql --model "$OUT/model" --table test="$OUT/splits/run0/test.parquet" \
  "SELECT label AS true_label, mmnet_score(*) AS score, mmnet_s_sum(*) AS s_sum, mmnet_is_anomaly(*) AS flagged
   FROM test ORDER BY mmnet_score(*) DESC LIMIT 10"

step "evaluate on the held-out test rows"
"$MMNET" eval --model "$OUT/model" --data "$OUT/splits/run0/test.parquet"

printf '\nmodel: %s/model   scored rows: %s/test_scored.parquet\n' "$OUT" "$OUT"
