#!/usr/bin/env bash
# make demo: the paper's protocol on the shipped Spambase data, end to end with the CLI.
#   1. hold out a stratified 20 % test split, keep 30 labeled anomalies (mmnet experiment --export-splits)
#   2. train on the unlabeled rows + the 30 labeled anomalies (mmnet train)
#   3. score the held-out rows to Parquet and list the top anomalies (mmnet score)
#   4. the same top rows with their true labels, in SQL (mmnet sql)
#   5. AUC-ROC / AUC-PR of every score variant on the held-out rows (mmnet eval), the same as
#      pictures (mmnet report) and why the top-ranked row scored high (mmnet explain)
#   6. start a Tansu broker, stream the held-out rows through the Kafka operator
#      (mmnet produce -> mmnet kafka -> score topic), read its metrics, stop it cleanly
#   7. a summary: records scored per surface, anomalies flagged, AUC, where the outputs are
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
  --output "$OUT/test_scored.parquet" --top 10 | tee "$OUT/score.txt"
PARQUET_SCORED=$(awk '/^scored [0-9]+ rows/ {print $2}' "$OUT/score.txt")
PARQUET_FLAGGED=$(awk '/^scored [0-9]+ rows/ {for (i = 1; i <= NF; i++) if ($i == "anomalies") print $(i-1)}' "$OUT/score.txt")
TOP_ROW=$(awk '/^top 10 rows/ {getline; getline; print $1; exit}' "$OUT/score.txt")

step "the same ranking in SQL, with the true labels beside it"
"$MMNET" sql --model "$OUT/model" --table readings="$OUT/splits/run0/test.parquet" \
  "SELECT label AS true_label, mmnet_score(*) AS score, mmnet_s_sum(*) AS s_sum, mmnet_is_anomaly(*) AS flagged
   FROM readings ORDER BY mmnet_score(*) DESC LIMIT 10"
"$MMNET" sql --model "$OUT/model" --table readings="$OUT/splits/run0/test.parquet" \
  --output "$OUT/sql_counts.csv" \
  "SELECT count(mmnet_score(*)) AS scored, sum(CASE WHEN mmnet_is_anomaly(*) THEN 1 ELSE 0 END) AS flagged FROM readings"
SQL_SCORED=$(awk -F, 'NR == 2 {print $1}' "$OUT/sql_counts.csv")
SQL_FLAGGED=$(awk -F, 'NR == 2 {print $2}' "$OUT/sql_counts.csv")

step "evaluate on the held-out test rows"
"$MMNET" eval --model "$OUT/model" --data "$OUT/splits/run0/test.parquet" | tee "$OUT/eval.txt"
# The model's own score is the `default` row; the first line names what it is
# (`mmnet_score = VARIANT + supervised`: the network's chosen score plus the supervised term).
AUC=$(awk 'NR == 1 {sub(/.*mmnet_score = /, ""); v = $0} $1 == "default" {print v ": AUC-ROC " $2 ", AUC-PR " $3}' "$OUT/eval.txt")

step "the same as pictures: ROC/PR curves, score histogram, training losses"
"$MMNET" report --model "$OUT/model" --data "$OUT/splits/run0/test.parquet" --out "$OUT/report"

step "why the top-ranked held-out row (row $TOP_ROW) scored high"
"$MMNET" explain --model "$OUT/model" --input "$OUT/splits/run0/test.parquet" --row "$TOP_ROW" \
  --top-memory 3 --top-features 5

step "stream the held-out rows through Kafka (Tansu broker, mmnet produce -> mmnet kafka)"
TANSU=${TANSU:-.tools/bin/tansu}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_get() { # host port path: a tiny HTTP GET without curl
  exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\n\r\n' "$3" >&3 && cat <&3; exec 3<&-
}
metric() { http_get 127.0.0.1 "$MPORT" /metrics | awk -v m="$1" '$1 == m {print $2}'; }
KPORT=$(free_port); MPORT=$(free_port); B=127.0.0.1:$KPORT
"$TANSU" broker --listener-url tcp://$B --advertised-listener-url tcp://$B \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
TANSU_PID=$!
OP_PID=
cleanup() { [[ -n $OP_PID ]] && kill "$OP_PID" 2>/dev/null; kill "$TANSU_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$KPORT) 2>/dev/null; do sleep 0.1; done
for t in telemetry scores telemetry-dlq; do
  "$TANSU" topic create --broker tcp://$B --partitions 3 $t >/dev/null
done
"$MMNET" kafka --config pipelines/kafka.toml --model "$OUT/model" --brokers $B \
  --metrics-listen 127.0.0.1:$MPORT 2>"$OUT/kafka.log" &
OP_PID=$!
"$MMNET" produce --data "$OUT/splits/run0/test.parquet" --brokers $B --topic telemetry
ROWS=$("$MMNET" sql --model "$OUT/model" --table t="$OUT/splits/run0/test.parquet" "SELECT count(*) AS n FROM t" \
  | awk '/^\| *[0-9]/ {print $2}')
for _ in $(seq 600); do
  [[ "$(metric mmnet_records_out_total 2>/dev/null)" == "$ROWS" ]] && break
  sleep 0.1
done
KAFKA_SCORED=$(metric mmnet_records_out_total); KAFKA_FLAGGED=$(metric mmnet_anomalies_total)
echo "operator metrics (http://127.0.0.1:$MPORT/metrics):"
http_get 127.0.0.1 "$MPORT" /metrics | grep -E '^mmnet_(messages_in|records_out|anomalies)_total |^mmnet_dead_letters_total\{reason="(invalid_json|missing_feature)"' || true
kill -TERM "$OP_PID"; wait "$OP_PID"; OP_PID=
tail -1 "$OUT/kafka.log"

step "summary ($ROWS held-out rows, default score on them: $AUC)"
printf '%-8s %8s of %s records scored, %4s flagged as anomalies  -> %s\n' \
  Parquet "$PARQUET_SCORED" "$ROWS" "$PARQUET_FLAGGED" "$OUT/test_scored.parquet" \
  SQL "$SQL_SCORED" "$ROWS" "$SQL_FLAGGED" "SELECT mmnet_score(*) ... FROM readings" \
  Kafka "${KAFKA_SCORED:-0}" "$ROWS" "${KAFKA_FLAGGED:-0}" "topic scores on the Tansu broker"
echo "model: $OUT/model   report: $OUT/report/index.html"
for s in "Parquet:$PARQUET_SCORED" "SQL:$SQL_SCORED" "Kafka:${KAFKA_SCORED:-0}"; do
  [[ "${s#*:}" == "$ROWS" ]] || { echo "demo: ${s%%:*} scored ${s#*:} of $ROWS records" >&2; exit 1; }
done
[[ "$PARQUET_FLAGGED" == "$SQL_FLAGGED" && "$SQL_FLAGGED" == "${KAFKA_FLAGGED:-0}" ]] ||
  { echo "demo: the surfaces disagree on the anomalies flagged" >&2; exit 1; }
